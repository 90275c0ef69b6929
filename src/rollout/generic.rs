//! Any other kind: kstatus-compatible generic rule (§1.5.10).

use super::json::{at, condition, condition_true, int_at};
use super::{
    GenericNoConditions, Reason, RolloutState, RolloutStatus, TargetObject, TrackCtx, not_observed,
};

pub fn evaluate(t: &TargetObject, ctx: &TrackCtx) -> RolloutStatus {
    let o = &t.object;
    // kstatus skips the gate when observedGeneration is absent; mismatch means in progress.
    let generation = int_at(o, &["metadata", "generation"]);
    let observed = int_at(o, &["status", "observedGeneration"]);
    if let (Some(g), Some(obs)) = (generation, observed)
        && obs != g
    {
        return not_observed(Some(g), Some(obs));
    }
    if let Some(c) = condition_true(o, "Reconciling") {
        return RolloutStatus::new(
            RolloutState::Progressing,
            Reason::Reconciling,
            format!("Waiting for rollout to finish: {}", c.message),
        );
    }
    if let Some(c) = condition_true(o, "Stalled") {
        return RolloutStatus::new(
            RolloutState::Failed,
            Reason::Stalled,
            format!("Rollout failed: Stalled: {}", c.message),
        );
    }
    if let Some(c) = condition(o, "Ready") {
        if c.is_true() {
            return RolloutStatus::new(
                RolloutState::Succeeded,
                Reason::Healthy,
                format!("Rollout complete: {} {:?} is ready", t.kind, t.name()),
            );
        }
        return RolloutStatus::new(
            RolloutState::Progressing,
            Reason::InProgress,
            format!(
                "Waiting for {} {:?} to become ready: {}",
                t.kind,
                t.name(),
                c.message
            ),
        );
    }
    let has_conditions = at(o, &["status", "conditions"])
        .and_then(|v| v.as_array())
        .is_some_and(|a| !a.is_empty());
    match ctx.generic_no_conditions {
        GenericNoConditions::Succeed if !has_conditions => RolloutStatus::new(
            RolloutState::Succeeded,
            Reason::Healthy,
            format!("{} {:?} is current", t.kind, t.name()),
        ),
        _ => RolloutStatus::new(
            RolloutState::Unknown,
            Reason::UnsupportedKind,
            format!(
                "Cannot tell the rollout state of {} {:?}: it has no Ready, Reconciling or Stalled condition",
                t.kind,
                t.name()
            ),
        ),
    }
}
