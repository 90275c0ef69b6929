//! Rules for the built-in workload kinds (§1.5.1–§1.5.5). The generation gate has passed.

use super::json::{bool_at, condition, condition_true, int_at, str_at};
use super::{OnDeletePolicy, Reason, RolloutState, RolloutStatus, TargetObject, TrackCtx};

fn progressing(reason: Reason, message: String) -> RolloutStatus {
    RolloutStatus::new(RolloutState::Progressing, reason, message)
}

fn succeeded(reason: Reason, message: String) -> RolloutStatus {
    RolloutStatus::new(RolloutState::Succeeded, reason, message)
}

/// Deployment, rows D1–D9.
pub fn deployment(t: &TargetObject) -> RolloutStatus {
    let o = &t.object;
    let name = t.name();
    let spec_replicas = int_at(o, &["spec", "replicas"]).unwrap_or(1);
    let replicas = int_at(o, &["status", "replicas"]).unwrap_or(0);
    let updated = int_at(o, &["status", "updatedReplicas"]).unwrap_or(0);
    let available = int_at(o, &["status", "availableReplicas"]).unwrap_or(0);
    let progressing_cond = condition(o, "Progressing");
    // D1 before D2: the controller never overwrites a reported deadline with "paused".
    if progressing_cond.is_some_and(|c| c.reason == "ProgressDeadlineExceeded") {
        return RolloutStatus::new(
            RolloutState::Failed,
            Reason::ProgressDeadlineExceeded,
            format!("Rollout failed: deployment {name:?} exceeded its progress deadline"),
        );
    }
    if bool_at(o, &["spec", "paused"]) {
        return progressing(
            Reason::Paused,
            format!("Rollout paused: Deployment {name:?} has spec.paused=true"),
        );
    }
    // D6: a ReplicaFailure (quota, admission) is appended to the progressing message.
    let failure = condition_true(o, "ReplicaFailure")
        .map(|c| format!(" ({}: {})", c.reason, c.message))
        .unwrap_or_default();
    if updated < spec_replicas {
        return progressing(
            Reason::ReplicasUpdating,
            format!(
                "Waiting for rollout to finish: {updated} of {spec_replicas} new replicas have been updated{failure}"
            ),
        );
    }
    if replicas > updated {
        return progressing(
            Reason::OldReplicasTerminating,
            format!(
                "Waiting for rollout to finish: {} old replicas are pending termination{failure}",
                replicas - updated
            ),
        );
    }
    if available < updated {
        return progressing(
            Reason::ReplicasBecomingAvailable,
            format!(
                "Waiting for rollout to finish: {available} of {updated} updated replicas are available{failure}"
            ),
        );
    }
    if let Some(c) = progressing_cond.filter(|c| c.reason != "NewReplicaSetAvailable") {
        return progressing(
            Reason::ReplicasBecomingAvailable,
            format!(
                "Waiting for rollout to finish: the Deployment controller reports {}",
                c.reason
            ),
        );
    }
    if spec_replicas == 0 {
        return succeeded(
            Reason::ScaledToZero,
            "Rollout complete: scaled to zero, no pods running".to_owned(),
        );
    }
    succeeded(
        Reason::RolloutComplete,
        format!("Rollout complete: {updated} of {spec_replicas} replicas updated and available"),
    )
}

fn on_delete(o: &serde_json::Value) -> bool {
    str_at(o, &["spec", "updateStrategy", "type"]) == Some("OnDelete")
}

/// StatefulSet, rows S1–S9 and the OnDelete policy.
pub fn statefulset(t: &TargetObject, ctx: &TrackCtx) -> RolloutStatus {
    let o = &t.object;
    let r = int_at(o, &["spec", "replicas"]).unwrap_or(1);
    let replicas = int_at(o, &["status", "replicas"]).unwrap_or(0);
    let ready = int_at(o, &["status", "readyReplicas"]).unwrap_or(0);
    let updated = int_at(o, &["status", "updatedReplicas"]).unwrap_or(0);
    let available = int_at(o, &["status", "availableReplicas"]).unwrap_or(ready);
    let update_rev = str_at(o, &["status", "updateRevision"]).unwrap_or("");
    let current_rev = str_at(o, &["status", "currentRevision"]).unwrap_or("");
    if ready < r {
        return progressing(
            Reason::PodsNotReady,
            format!(
                "Waiting for rollout to finish: {} pods are not ready",
                r - ready
            ),
        );
    }
    if on_delete(o) {
        return match ctx.on_delete_policy {
            OnDeletePolicy::SpecApplied => succeeded(
                Reason::OnDeleteSpecApplied,
                format!(
                    "Rollout complete: {updated} of {r} pods at revision {update_rev}; remaining pods update when deleted"
                ),
            ),
            OnDeletePolicy::WaitForPods if updated < r => progressing(
                Reason::ReplicasUpdating,
                format!(
                    "Waiting for rollout to finish: {updated} of {r} new pods have been updated (OnDelete: delete old pods to update them)"
                ),
            ),
            OnDeletePolicy::WaitForPods => succeeded(
                Reason::RolloutComplete,
                format!("Rollout complete: {updated} of {r} pods at revision {update_rev}"),
            ),
        };
    }
    if replicas > r {
        return progressing(
            Reason::OldReplicasTerminating,
            format!(
                "Waiting for rollout to finish: {} old replicas are pending termination",
                replicas - r
            ),
        );
    }
    let partition =
        int_at(o, &["spec", "updateStrategy", "rollingUpdate", "partition"]).unwrap_or(0);
    if partition > 0 {
        let wanted = (r - partition).max(0);
        if updated < wanted {
            return progressing(
                Reason::PartitionRollout,
                format!(
                    "Waiting for partitioned rollout to finish: {updated} of {wanted} new pods have been updated"
                ),
            );
        }
        return succeeded(
            Reason::PartitionRolloutComplete,
            format!(
                "Partitioned rollout complete: {updated} new pods have been updated (partition {partition})"
            ),
        );
    }
    if updated < r {
        return progressing(
            Reason::ReplicasUpdating,
            format!("Waiting for rollout to finish: {updated} of {r} new pods have been updated"),
        );
    }
    if update_rev != current_rev {
        return progressing(
            Reason::RevisionMismatch,
            format!(
                "Waiting for rollout to finish: {updated} pods at revision {update_rev}, current revision {current_rev}"
            ),
        );
    }
    if int_at(o, &["spec", "minReadySeconds"]).unwrap_or(0) > 0 && available < r {
        return progressing(
            Reason::ReplicasBecomingAvailable,
            format!(
                "Waiting for rollout to finish: {available} of {r} updated replicas are available"
            ),
        );
    }
    if r == 0 {
        return succeeded(
            Reason::ScaledToZero,
            "Rollout complete: scaled to zero, no pods running".to_owned(),
        );
    }
    succeeded(
        Reason::RolloutComplete,
        format!("Rollout complete: {r} of {r} pods updated and ready at revision {update_rev}"),
    )
}

/// DaemonSet, rows DS1–DS6.
pub fn daemonset(t: &TargetObject, ctx: &TrackCtx) -> RolloutStatus {
    let o = &t.object;
    let Some(d) = int_at(o, &["status", "desiredNumberScheduled"]) else {
        return progressing(
            Reason::PodsNotReady,
            "Waiting for rollout to finish: the DaemonSet controller has not reported the desired number of pods".to_owned(),
        );
    };
    let updated = int_at(o, &["status", "updatedNumberScheduled"]).unwrap_or(0);
    let available = int_at(o, &["status", "numberAvailable"]).unwrap_or(0);
    let current = int_at(o, &["status", "currentNumberScheduled"]).unwrap_or(0);
    let ready = int_at(o, &["status", "numberReady"]).unwrap_or(0);
    let check_updated = !on_delete(o) || ctx.on_delete_policy == OnDeletePolicy::WaitForPods;
    if check_updated && updated < d {
        return progressing(
            Reason::ReplicasUpdating,
            format!("Waiting for rollout to finish: {updated} of {d} new pods have been updated"),
        );
    }
    if available < d {
        return progressing(
            Reason::ReplicasBecomingAvailable,
            format!("Waiting for rollout to finish: {available} of {d} updated pods are available"),
        );
    }
    if current < d || ready < d {
        return progressing(
            Reason::PodsNotReady,
            format!(
                "Waiting for rollout to finish: {} pods are not ready",
                d - current.min(ready)
            ),
        );
    }
    if on_delete(o) && !check_updated {
        return succeeded(
            Reason::OnDeleteSpecApplied,
            format!(
                "Rollout complete: {updated} of {d} pods updated; remaining pods update when deleted"
            ),
        );
    }
    if d == 0 {
        return succeeded(
            Reason::ScaledToZero,
            "Rollout complete: 0 nodes eligible, no pods running".to_owned(),
        );
    }
    succeeded(
        Reason::RolloutComplete,
        format!(
            "Rollout complete: daemon set {:?} successfully rolled out on {d} nodes",
            t.name()
        ),
    )
}

/// Standalone ReplicaSet (§1.5.4).
pub fn replicaset(t: &TargetObject) -> RolloutStatus {
    let o = &t.object;
    let r = int_at(o, &["spec", "replicas"]).unwrap_or(1);
    let available = int_at(o, &["status", "availableReplicas"]).unwrap_or(0);
    if let Some(c) = condition_true(o, "ReplicaFailure") {
        return progressing(
            Reason::ReplicaFailure,
            format!(
                "Waiting for rollout to finish: {available} of {r} replicas are available ({}: {})",
                c.reason, c.message
            ),
        );
    }
    if available < r {
        return progressing(
            Reason::ReplicasBecomingAvailable,
            format!("Waiting for rollout to finish: {available} of {r} new replicas are available"),
        );
    }
    succeeded(
        Reason::RolloutComplete,
        format!("Rollout complete: {available} of {r} replicas available"),
    )
}

/// Job (§1.5.5).
pub fn job(t: &TargetObject) -> RolloutStatus {
    let o = &t.object;
    let succeeded_pods = int_at(o, &["status", "succeeded"]).unwrap_or(0);
    if condition_true(o, "Complete").is_some() {
        return succeeded(
            Reason::RolloutComplete,
            format!("Job completed: {succeeded_pods} pods succeeded"),
        );
    }
    if let Some(c) = condition_true(o, "Failed") {
        return RolloutStatus::new(
            RolloutState::Failed,
            Reason::JobFailed,
            format!(
                "Rollout failed: job {:?} failed: {}: {}",
                t.name(),
                c.reason,
                c.message
            ),
        );
    }
    if condition_true(o, "Suspended").is_some() || bool_at(o, &["spec", "suspend"]) {
        return progressing(
            Reason::Paused,
            format!("Rollout paused: Job {:?} is suspended", t.name()),
        );
    }
    let active = int_at(o, &["status", "active"]).unwrap_or(0);
    let failed = int_at(o, &["status", "failed"]).unwrap_or(0);
    progressing(
        Reason::InProgress,
        format!(
            "Waiting for job to finish: {active} active, {succeeded_pods} succeeded, {failed} failed pods"
        ),
    )
}
