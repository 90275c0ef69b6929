//! Argo Rollouts, Flux and Argo CD objects (§1.5.6–§1.5.9).

use serde_json::Value;

use super::json::{at, bool_at, condition, condition_true, conditions, int_at, str_at};
use super::{Reason, RolloutState, RolloutStatus, TargetObject, TrackCtx, not_observed};

fn status(state: RolloutState, reason: Reason, message: String) -> RolloutStatus {
    RolloutStatus::new(state, reason, message)
}

/// Whether a source revision (`main@sha1:<sha>`, a bare sha) names the wanted commit. No wanted
/// commit (fixed-sha resources that follow a GitOps object) matches everything.
fn revision_matches(revision: Option<&str>, wanted: Option<&str>) -> bool {
    match wanted {
        None => true,
        Some(w) => revision.is_some_and(|r| r.contains(w)),
    }
}

/// An Argo Rollout's `status.observedGeneration`, a string (a number in older fixtures):
/// `None` when absent, `Some(None)` when it is not a number (a pre-v0.10 hash).
pub(super) fn argo_observed_generation(o: &Value) -> Option<Option<i64>> {
    match at(o, &["status", "observedGeneration"]) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.parse::<i64>().ok()),
        Some(Value::Number(n)) => Some(n.as_i64()),
        Some(_) => Some(None),
    }
}

/// Argo Rollout, rows AR1–AR9.
pub fn argo_rollout(t: &TargetObject) -> RolloutStatus {
    let o = &t.object;
    // AR1: observedGeneration is a string; a non-numeric one (pre-v0.10 hash) skips the gate,
    // as Argo Rollouts' own GetRolloutPhase does.
    let generation = int_at(o, &["metadata", "generation"]);
    match argo_observed_generation(o) {
        None => return not_observed(generation, None),
        Some(observed) => {
            if let (Some(g), Some(obs)) = (generation, observed)
                && obs < g
            {
                return not_observed(Some(g), Some(obs));
            }
        }
    }
    let pause_conditions: Vec<&str> = at(o, &["status", "pauseConditions"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("reason").and_then(Value::as_str))
        .collect();
    if bool_at(o, &["status", "controllerPause"]) && pause_conditions.is_empty() {
        return status(
            RolloutState::Progressing,
            Reason::Paused,
            "Rollout paused: waiting for rollout to unpause".into(),
        );
    }
    if let Some(c) = condition(o, "InvalidSpec").filter(|c| !c.is_false()) {
        return status(
            RolloutState::Failed,
            Reason::InvalidSpec,
            format!("Rollout failed: InvalidSpec: {}", c.message),
        );
    }
    if bool_at(o, &["status", "abort"]) || conditions(o).any(|(_, c)| c.reason == "RolloutAborted")
    {
        let message = str_at(o, &["status", "message"]).unwrap_or("rollout aborted");
        return status(
            RolloutState::Failed,
            Reason::RolloutAborted,
            format!("Rollout failed: RolloutAborted: {message}"),
        );
    }
    if let Some((_, c)) = conditions(o).find(|(_, c)| c.reason == "ProgressDeadlineExceeded") {
        return status(
            RolloutState::Failed,
            Reason::ProgressDeadlineExceeded,
            format!("Rollout failed: ProgressDeadlineExceeded: {}", c.message),
        );
    }
    let phase = str_at(o, &["status", "phase"]).unwrap_or("");
    if phase == "Paused" || bool_at(o, &["spec", "paused"]) || !pause_conditions.is_empty() {
        let why = if pause_conditions.is_empty() {
            "manually paused".to_owned()
        } else {
            pause_conditions.join(", ")
        };
        return status(
            RolloutState::Progressing,
            Reason::AwaitingPromotion,
            format!("Rollout paused: {why}"),
        );
    }
    let message = str_at(o, &["status", "message"]).unwrap_or("");
    if phase == "Degraded" {
        return status(
            RolloutState::Failed,
            Reason::Degraded,
            format!("Rollout failed: Degraded: {message}"),
        );
    }
    let stable = str_at(o, &["status", "stableRS"]);
    let current = str_at(o, &["status", "currentPodHash"]);
    if phase == "Healthy" && stable.is_some() && stable == current {
        return status(
            RolloutState::Succeeded,
            Reason::Healthy,
            format!(
                "Rollout complete: revision {} is stable and healthy",
                current.unwrap_or("")
            ),
        );
    }
    let message = if message.is_empty() {
        "waiting for the rollout to progress"
    } else {
        message
    };
    status(
        RolloutState::Progressing,
        Reason::InProgress,
        format!("Waiting for rollout to finish: {message}"),
    )
}

const FLUX_FAILURE_REASONS: [&str; 5] = [
    "HealthCheckFailed",
    "BuildFailed",
    "ValidationFailed",
    "ReconciliationFailed",
    "PruneFailed",
];

/// Flux Kustomization, rows FK1–FK7.
pub fn flux_kustomization(t: &TargetObject, ctx: &TrackCtx) -> RolloutStatus {
    let o = &t.object;
    if bool_at(o, &["spec", "suspend"]) {
        return status(
            RolloutState::Progressing,
            Reason::Paused,
            format!("Rollout paused: Kustomization {:?} is suspended", t.name()),
        );
    }
    if let Some(c) = condition_true(o, "Stalled") {
        return status(
            RolloutState::Failed,
            Reason::Stalled,
            format!("Rollout failed: Stalled: {}", c.message),
        );
    }
    let wanted = ctx.wanted_sha.as_deref();
    let attempted = str_at(o, &["status", "lastAttemptedRevision"]);
    if !revision_matches(attempted, wanted) {
        return status(
            RolloutState::Pending,
            Reason::SourceRevisionNotApplied,
            format!(
                "Waiting for Kustomization {:?} to apply revision {}, last attempted {}",
                t.name(),
                wanted.unwrap_or(""),
                attempted.unwrap_or("none")
            ),
        );
    }
    let generation = int_at(o, &["metadata", "generation"]);
    let ready = condition(o, "Ready");
    // Flux sets status.observedGeneration only on Ready=True or Stalled=True; a failing
    // object keeps the old one, so the Ready condition's own observedGeneration decides.
    let ready_current = ready.is_some_and(|c| match (c.observed_generation, generation) {
        (Some(obs), Some(g)) => obs >= g,
        _ => true,
    });
    if let Some(c) =
        ready.filter(|c| c.is_false() && FLUX_FAILURE_REASONS.contains(&c.reason) && ready_current)
    {
        if ctx.flux_retry_as_progress {
            return status(
                RolloutState::Progressing,
                Reason::RetryingAfterFailure,
                format!(
                    "Waiting for rollout to finish: Flux retries after {}: {}",
                    c.reason, c.message
                ),
            );
        }
        return status(
            RolloutState::Failed,
            Reason::HealthCheckFailed,
            format!("Rollout failed: {}: {}", c.reason, c.message),
        );
    }
    flux_common_tail(
        t,
        ready,
        str_at(o, &["status", "lastAppliedRevision"]),
        wanted,
    )
}

fn flux_common_tail(
    t: &TargetObject,
    ready: Option<super::json::Cond<'_>>,
    applied: Option<&str>,
    wanted: Option<&str>,
) -> RolloutStatus {
    let o = &t.object;
    let reconciling = condition_true(o, "Reconciling").is_some();
    if let Some(c) = ready.filter(|c| c.reason == "DependencyNotReady") {
        return status(
            RolloutState::Progressing,
            Reason::DependencyNotReady,
            format!("Waiting for dependencies: {}", c.message),
        );
    }
    if reconciling
        || ready.is_some_and(|c| {
            c.status == "Unknown" || c.reason == "Progressing" || c.reason == "ProgressingWithRetry"
        })
    {
        let message = ready
            .map(|c| c.message)
            .filter(|m| !m.is_empty())
            .unwrap_or("reconciliation in progress");
        return status(
            RolloutState::Progressing,
            Reason::Reconciling,
            format!("Waiting for rollout to finish: {message}"),
        );
    }
    let generation = int_at(o, &["metadata", "generation"]);
    let observed = int_at(o, &["status", "observedGeneration"]);
    let gate = matches!((generation, observed), (Some(g), Some(obs)) if obs >= g);
    if ready.is_some_and(|c| c.is_true()) && gate && revision_matches(applied, wanted) {
        return status(
            RolloutState::Succeeded,
            Reason::ReconciliationSucceeded,
            format!(
                "Rollout complete: {} {:?} applied revision {}",
                t.kind,
                t.name(),
                applied.unwrap_or("")
            ),
        );
    }
    if ready.is_some_and(|c| c.is_true()) && !gate {
        return not_observed(generation, observed);
    }
    status(
        RolloutState::Progressing,
        Reason::Reconciling,
        format!("Waiting for {} {:?} to become ready", t.kind, t.name()),
    )
}

/// Flux HelmRelease, rows HR1–HR6.
pub fn flux_helmrelease(t: &TargetObject, ctx: &TrackCtx) -> RolloutStatus {
    let o = &t.object;
    let _ = ctx;
    if bool_at(o, &["spec", "suspend"]) {
        return status(
            RolloutState::Progressing,
            Reason::Paused,
            format!("Rollout paused: HelmRelease {:?} is suspended", t.name()),
        );
    }
    if let Some(c) = condition_true(o, "Stalled") {
        return status(
            RolloutState::Failed,
            Reason::Stalled,
            format!("Rollout failed: Stalled: {}", c.message),
        );
    }
    if let Some(c) = condition(o, "Released")
        .filter(|c| c.is_false() && matches!(c.reason, "InstallFailed" | "UpgradeFailed"))
    {
        return status(
            RolloutState::Failed,
            Reason::ReleaseFailed,
            format!("Rollout failed: {}: {}", c.reason, c.message),
        );
    }
    if let Some(c) = condition_true(o, "Remediated")
        .filter(|c| matches!(c.reason, "RollbackSucceeded" | "UninstallSucceeded"))
    {
        return status(
            RolloutState::Failed,
            Reason::ReleaseFailed,
            format!(
                "Rollout failed: the release was remediated ({}): {}",
                c.reason, c.message
            ),
        );
    }
    let tests_ignored = bool_at(o, &["spec", "test", "ignoreFailures"]);
    if let Some(c) = condition(o, "TestSuccess").filter(|c| c.is_false() && !tests_ignored) {
        return status(
            RolloutState::Failed,
            Reason::ReleaseFailed,
            format!("Rollout failed: {}: {}", c.reason, c.message),
        );
    }
    // The commit is carried by the workloads' pod templates (§1.5.8), not by the release, so
    // no revision comparison here.
    flux_common_tail(t, condition(o, "Ready"), None, None)
}

/// Argo CD Application, rows AA1–AA9.
pub fn argocd_application(t: &TargetObject, ctx: &TrackCtx) -> RolloutStatus {
    let o = &t.object;
    let wanted = ctx.wanted_sha.as_deref();
    let sync_revision = str_at(o, &["status", "sync", "revision"]);
    let op_phase = str_at(o, &["status", "operationState", "phase"]);
    let op_revision =
        str_at(o, &["status", "operationState", "syncResult", "revision"]).or_else(|| {
            str_at(
                o,
                &["status", "operationState", "operation", "sync", "revision"],
            )
        });
    let op_for_wanted = op_phase.is_some() && revision_matches(op_revision, wanted);
    if !revision_matches(sync_revision, wanted) && !op_for_wanted {
        return status(
            RolloutState::Pending,
            Reason::SourceRevisionNotApplied,
            format!(
                "Waiting for Application {:?} to sync revision {}, synced {}",
                t.name(),
                wanted.unwrap_or(""),
                sync_revision.unwrap_or("none")
            ),
        );
    }
    let op_message = str_at(o, &["status", "operationState", "message"]).unwrap_or("");
    if matches!(op_phase, Some("Failed" | "Error")) && op_for_wanted {
        return status(
            RolloutState::Failed,
            Reason::SyncFailed,
            format!("Rollout failed: SyncFailed: {op_message}"),
        );
    }
    if matches!(op_phase, Some("Running" | "Terminating")) {
        return status(
            RolloutState::Progressing,
            Reason::Reconciling,
            format!("Waiting for sync to finish: {op_message}"),
        );
    }
    let health = str_at(o, &["status", "health", "status"]).unwrap_or("");
    let health_message = str_at(o, &["status", "health", "message"]).unwrap_or("");
    match health {
        "Degraded" => status(
            RolloutState::Failed,
            Reason::Degraded,
            format!("Rollout failed: Degraded: {health_message}"),
        ),
        "Suspended" => status(
            RolloutState::Progressing,
            Reason::Paused,
            format!("Rollout paused: Application {:?} is suspended", t.name()),
        ),
        "Missing" | "Progressing" => status(
            RolloutState::Progressing,
            Reason::InProgress,
            format!("Waiting for rollout to finish: application health is {health}"),
        ),
        "Unknown" => status(
            RolloutState::Unknown,
            Reason::StatusUnparseable,
            "Application health is Unknown".into(),
        ),
        "Healthy"
            if str_at(o, &["status", "sync", "status"]) == Some("Synced")
                && revision_matches(sync_revision, wanted) =>
        {
            status(
                RolloutState::Succeeded,
                Reason::Healthy,
                format!(
                    "Rollout complete: Application {:?} is synced to {} and healthy",
                    t.name(),
                    sync_revision.unwrap_or("")
                ),
            )
        }
        _ => status(
            RolloutState::Progressing,
            Reason::InProgress,
            format!("Waiting for Application {:?} to sync", t.name()),
        ),
    }
}
