//! What the approval gate reads from an Argo Rollout before it promotes or aborts it
//! (`spec.approval.promote`): which revision is rolling out, and whether it waits at a pause
//! only a promote ends. The rules follow Argo Rollouts' own: a canary `pause` step without a
//! `duration` and a blue-green pause with `autoPromotionEnabled: false` wait for
//! `kubectl argo rollouts promote`; timed pauses, analysis pauses and a person's
//! `spec.paused` are not the operator's to end.

use serde_json::Value;

use super::TargetObject;
use super::json::{at, bool_at, int_at, str_at};

/// The Argo Rollout facts the promote and abort decisions need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RolloutControl {
    /// `metadata.resourceVersion`: the promote and abort patches carry it as a precondition,
    /// so they apply only to the object state they were decided on.
    pub resource_version: Option<String>,
    /// The controller has observed the current spec (`status.observedGeneration`); otherwise
    /// the status describes an older template and nothing is decided on it.
    pub observed: bool,
    /// `status.currentPodHash`: the revision being rolled out.
    pub pod_hash: Option<String>,
    /// A new revision is on its way (`currentPodHash` differs from `stableRS`).
    pub updating: bool,
    /// `status.abort`: the rollout was aborted (by a person or by the operator).
    pub aborted: bool,
    /// `spec.paused`: a person paused it; only a person resumes it.
    pub paused_by_person: bool,
    /// Paused where only a promote continues.
    pub indefinite_pause: Option<IndefinitePause>,
}

/// A pause that waits for a promote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndefinitePause {
    /// The canary step index; `None` for a blue-green pause.
    pub step: Option<i64>,
}

/// The facts of `target` when it is an Argo Rollout (`argoproj.io`, kind `Rollout`).
pub fn rollout_control(target: &TargetObject) -> Option<RolloutControl> {
    if target.group() != "argoproj.io" || target.kind != "Rollout" {
        return None;
    }
    let o = &target.object;
    let generation = int_at(o, &["metadata", "generation"]);
    // A pre-v0.10 hash in observedGeneration is not "observed" here: promote needs v0.10+.
    let observed = matches!(
        (generation, super::gitops::argo_observed_generation(o).flatten()),
        (Some(g), Some(obs)) if obs >= g
    );
    let pod_hash = str_at(o, &["status", "currentPodHash"]).map(str::to_owned);
    let stable = str_at(o, &["status", "stableRS"]);
    Some(RolloutControl {
        resource_version: str_at(o, &["metadata", "resourceVersion"]).map(str::to_owned),
        observed,
        updating: pod_hash.is_some() && pod_hash.as_deref() != stable,
        pod_hash,
        aborted: bool_at(o, &["status", "abort"]),
        paused_by_person: bool_at(o, &["spec", "paused"]),
        indefinite_pause: indefinite_pause(o),
    })
}

/// The pause only a promote ends, if the Rollout is at one. Any other pause reason beside it
/// (an inconclusive analysis or experiment) needs a person, so it is not one.
fn indefinite_pause(o: &Value) -> Option<IndefinitePause> {
    let reasons: Vec<&str> = at(o, &["status", "pauseConditions"])
        .and_then(Value::as_array)?
        .iter()
        .filter_map(|p| p.get("reason").and_then(Value::as_str))
        .collect();
    match reasons.as_slice() {
        ["CanaryPauseStep"] => {
            let step = int_at(o, &["status", "currentStepIndex"])?;
            let index = usize::try_from(step).ok()?;
            let pause = at(o, &["spec", "strategy", "canary", "steps"])
                .and_then(Value::as_array)
                .and_then(|steps| steps.get(index))
                .and_then(|s| s.get("pause"))
                .filter(|p| p.is_object())?;
            // A duration (even "0") makes the controller end the pause itself.
            let timed = pause.get("duration").is_some_and(|d| !d.is_null());
            (!timed).then_some(IndefinitePause { step: Some(step) })
        }
        ["BlueGreenPause"] => {
            // With auto-promotion on (the default), the pause ends on its own after
            // `autoPromotionSeconds`; off, only a promote ends it.
            let auto = at(
                o,
                &["spec", "strategy", "blueGreen", "autoPromotionEnabled"],
            )
            .and_then(Value::as_bool)
            .unwrap_or(true);
            (!auto).then_some(IndefinitePause { step: None })
        }
        _ => None,
    }
}
