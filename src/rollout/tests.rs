//! Table tests: every row of `rollout-status.md` §7, plus revision extraction and messages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::revision::{commit_from_target, commit_in, image_tag_or_digest};
use super::*;
use crate::api::deployment::RevisionFrom;

const T: &str = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d";
const OLD: &str = "ffffffffffffffffffffffffffffffffffffffff";

fn now() -> Timestamp {
    "2026-01-01T12:00:00Z".parse().unwrap()
}

fn ago(mins: i64) -> Timestamp {
    now() - k8s_openapi::jiff::SignedDuration::from_mins(mins)
}

/// JSON merge patch (RFC 7386), enough to vary a base object per case.
fn merge(mut base: Value, patch: Value) -> Value {
    fn apply(target: &mut Value, patch: Value) {
        match patch {
            Value::Object(map) => {
                if !target.is_object() {
                    *target = json!({});
                }
                let obj = target.as_object_mut().unwrap();
                for (k, v) in map {
                    if v.is_null() {
                        obj.remove(&k);
                    } else {
                        apply(obj.entry(k).or_insert(Value::Null), v);
                    }
                }
            }
            other => *target = other,
        }
    }
    apply(&mut base, patch);
    base
}

fn obj(api_version: &str, kind: &str, gen_: i64, patch: Value) -> Option<TargetObject> {
    let base = json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"name": "web", "namespace": "apps", "generation": gen_},
    });
    Some(TargetObject::from_value(merge(base, patch)))
}

/// Deployment with gen=obs and counters (spec.replicas, replicas, updated, available).
fn deploy(
    spec: i64,
    replicas: i64,
    updated: i64,
    available: i64,
    patch: Value,
) -> Option<TargetObject> {
    let base = json!({
        "spec": {"replicas": spec},
        "status": {"observedGeneration": 5, "replicas": replicas, "updatedReplicas": updated,
                   "availableReplicas": available, "readyReplicas": available},
    });
    obj("apps/v1", "Deployment", 5, merge(base, patch))
}

fn sts(spec: i64, ready: i64, updated: i64, partition: i64, patch: Value) -> Option<TargetObject> {
    let base = json!({
        "spec": {"replicas": spec, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}},
        "status": {"observedGeneration": 3, "replicas": spec, "readyReplicas": ready, "updatedReplicas": updated,
                   "currentReplicas": spec, "updateRevision": "web-7c5d9f8b4d", "currentRevision": "web-7c5d9f8b4d"},
    });
    obj("apps/v1", "StatefulSet", 3, merge(base, patch))
}

fn ds(desired: i64, updated: i64, available: i64, patch: Value) -> Option<TargetObject> {
    let base = json!({
        "spec": {"updateStrategy": {"type": "RollingUpdate"}},
        "status": {"observedGeneration": 2, "desiredNumberScheduled": desired, "updatedNumberScheduled": updated,
                   "numberAvailable": available, "numberReady": available, "currentNumberScheduled": desired},
    });
    obj("apps/v1", "DaemonSet", 2, merge(base, patch))
}

fn cond(type_: &str, status: &str, reason: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": format!("{type_} is {status} because {reason}")})
}

fn pod(hash: &str, waiting: &str, restarts: i64, started: Timestamp) -> Value {
    json!({
        "metadata": {"name": format!("web-{hash}-x"), "labels": {"pod-template-hash": hash}},
        "status": {"startTime": started.to_string(), "containerStatuses": [
            {"name": "app", "restartCount": restarts, "state": {"waiting": {"reason": waiting}}}
        ]},
    })
}

fn rollout(gen_: i64, obs: &str, status: Value) -> Option<TargetObject> {
    obj(
        "argoproj.io/v1alpha1",
        "Rollout",
        gen_,
        json!({"status": merge(json!({"observedGeneration": obs}), status)}),
    )
}

fn kustomization(status: Value, spec: Value) -> Option<TargetObject> {
    obj(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        2,
        json!({"spec": spec, "status": merge(json!({"observedGeneration": 2}), status)}),
    )
}

fn helmrelease(status: Value) -> Option<TargetObject> {
    obj(
        "helm.toolkit.fluxcd.io/v2",
        "HelmRelease",
        2,
        json!({"status": merge(json!({"observedGeneration": 2}), status)}),
    )
}

fn app(status: Value) -> Option<TargetObject> {
    obj(
        "argoproj.io/v1alpha1",
        "Application",
        1,
        json!({"status": status}),
    )
}

fn generic(gen_: i64, obs: i64, conditions: Value) -> Option<TargetObject> {
    obj(
        "example.com/v1",
        "Widget",
        gen_,
        json!({"status": {"observedGeneration": obs, "conditions": conditions}}),
    )
}

struct Case {
    row: &'static str,
    target: Option<TargetObject>,
    ctx: TrackCtx,
    state: RolloutState,
    reason: Option<Reason>,
    message_contains: &'static str,
}

fn case(
    row: &'static str,
    target: Option<TargetObject>,
    state: RolloutState,
    reason: Reason,
) -> Case {
    Case {
        row,
        target,
        ctx: TrackCtx::default(),
        state,
        reason: Some(reason),
        message_contains: "",
    }
}

impl Case {
    fn ctx(mut self, f: impl FnOnce(&mut TrackCtx)) -> Self {
        f(&mut self.ctx);
        self
    }
    fn any_reason(mut self) -> Self {
        self.reason = None;
        self
    }
    fn message(mut self, m: &'static str) -> Self {
        self.message_contains = m;
        self
    }
}

fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in cases {
        let got = evaluate(c.target.as_ref(), &c.ctx, now());
        let reason_ok = c.reason.is_none_or(|r| r == got.reason);
        if got.state != c.state || !reason_ok || !got.message.contains(c.message_contains) {
            failures.push(format!(
                "row {}: want {:?}/{:?} (message containing {:?}), got {:?}/{:?}: {}",
                c.row, c.state, c.reason, c.message_contains, got.state, got.reason, got.message
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

use Reason as R;
use RolloutState::{Failed, Pending, Progressing, Succeeded, Unknown};

fn timed(mins: i64) -> impl FnOnce(&mut TrackCtx) {
    move |ctx| {
        ctx.started_at = Some(ago(mins));
        ctx.progress_timeout = Duration::from_secs(600);
    }
}

#[test]
fn deployment_rows() {
    let pde = json!({"status": {"conditions": [cond("Progressing", "False", "ProgressDeadlineExceeded")]}});
    run(vec![
        case("1", None, Pending, R::TargetNotFound),
        case("2", obj("apps/v1", "Deployment", 5, json!({"spec": {"replicas": 3}, "status": {"observedGeneration": 4, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}})), Pending, R::GenerationNotObserved)
            .message("generation 5, observed generation 4"),
        case("3", obj("apps/v1", "Deployment", 5, json!({"status": {"observedGeneration": 4, "conditions": [cond("Progressing", "False", "ProgressDeadlineExceeded")]}})), Pending, R::GenerationNotObserved),
        case("4", deploy(3, 3, 1, 2, json!({})), Progressing, R::ReplicasUpdating).message("1 of 3 new replicas have been updated"),
        case("5", deploy(3, 4, 3, 3, json!({})), Progressing, R::OldReplicasTerminating).message("1 old replicas are pending termination"),
        case("6", deploy(3, 3, 3, 2, json!({})), Progressing, R::ReplicasBecomingAvailable).message("2 of 3 updated replicas are available"),
        case("7", deploy(3, 3, 3, 3, json!({"status": {"conditions": [cond("Progressing", "True", "NewReplicaSetAvailable"), cond("Available", "True", "MinimumReplicasAvailable")]}})), Succeeded, R::RolloutComplete),
        case("8", deploy(3, 3, 1, 1, pde.clone()), Failed, R::ProgressDeadlineExceeded).message("deployment \"web\" exceeded its progress deadline"),
        case("9", deploy(3, 3, 0, 3, json!({"spec": {"paused": true}, "status": {"conditions": [cond("Progressing", "Unknown", "DeploymentPaused")]}})), Progressing, R::Paused)
            .message("Deployment \"web\" has spec.paused=true"),
        case("10", deploy(3, 3, 1, 1, merge(pde, json!({"spec": {"paused": true}}))), Failed, R::ProgressDeadlineExceeded),
        case("11", deploy(0, 0, 0, 0, json!({})), Succeeded, R::ScaledToZero).message("scaled to zero"),
        case("12", deploy(0, 2, 0, 2, json!({})), Progressing, R::OldReplicasTerminating),
        case("13", deploy(3, 3, 2, 2, json!({"status": {"conditions": [cond("ReplicaFailure", "True", "FailedCreate")]}})), Progressing, R::ReplicasUpdating).message("FailedCreate"),
        case("14", deploy(3, 3, 3, 3, json!({"status": {"conditions": [cond("Progressing", "True", "ReplicaSetUpdated")]}})), Progressing, R::ReplicasBecomingAvailable),
        case("15", deploy(3, 3, 3, 3, json!({"spec": {"progressDeadlineSeconds": 2147483647}})), Succeeded, R::RolloutComplete),
        case("16", deploy(3, 3, 1, 2, json!({})), Failed, R::ProgressTimeout).ctx(timed(11))
            .message("not finished within 10m0s (progressTimeout); last state: 1 of 3 new replicas"),
        case("17", deploy(3, 3, 1, 2, json!({})), Progressing, R::ReplicasUpdating).ctx(timed(11)).ctx(|c| c.paused_for = Duration::from_secs(300)),
        case("18", deploy(3, 3, 3, 3, json!({"metadata": {"deletionTimestamp": "2026-01-01T11:59:00Z"}})), Unknown, R::TargetTerminating),
        case("19", obj("apps/v1", "Deployment", 1, json!({"spec": {"replicas": 1}, "status": {}})), Pending, R::GenerationNotObserved),
    ]);
}

#[test]
fn deployment_pod_problem_rows() {
    let fail_fast = |pods: Vec<Value>, on: bool| {
        move |c: &mut TrackCtx| {
            c.fail_fast = on;
            c.pods = pods;
            c.new_pod_hash = Some("5d9c7b8f6".into());
        }
    };
    let crash = vec![pod("5d9c7b8f6", "CrashLoopBackOff", 4, ago(5))];
    run(vec![
        case(
            "20",
            deploy(3, 3, 3, 2, json!({})),
            Failed,
            R::CrashLoopBackOff,
        )
        .ctx(fail_fast(crash.clone(), true))
        .message("in CrashLoopBackOff (container \"app\", 4 restarts)"),
        case(
            "21",
            deploy(3, 3, 3, 2, json!({})),
            Progressing,
            R::PodProblem,
        )
        .ctx(fail_fast(crash, false)),
        case(
            "22",
            deploy(3, 3, 3, 3, json!({})),
            Succeeded,
            R::RolloutComplete,
        )
        .ctx(fail_fast(
            vec![pod("6b4f7c9d8e", "CrashLoopBackOff", 9, ago(5))],
            true,
        )),
        case(
            "22b old pod while progressing",
            deploy(3, 3, 3, 2, json!({})),
            Progressing,
            R::ReplicasBecomingAvailable,
        )
        .ctx(fail_fast(
            vec![pod("6b4f7c9d8e", "CrashLoopBackOff", 9, ago(5))],
            true,
        )),
        case(
            "23",
            deploy(3, 3, 1, 1, json!({})),
            Failed,
            R::ImagePullFailed,
        )
        .ctx(fail_fast(
            vec![pod("5d9c7b8f6", "ErrImagePull", 0, ago(3))],
            true,
        )),
        case(
            "23b within grace",
            deploy(3, 3, 1, 1, json!({})),
            Progressing,
            R::PodProblem,
        )
        .ctx(fail_fast(
            vec![pod("5d9c7b8f6", "ImagePullBackOff", 0, ago(1))],
            true,
        )),
        case(
            "24",
            deploy(3, 3, 1, 1, json!({})),
            Failed,
            R::ImagePullFailed,
        )
        .ctx(fail_fast(
            vec![pod("5d9c7b8f6", "InvalidImageName", 0, ago(0))],
            true,
        )),
    ]);
}

#[test]
fn statefulset_rows() {
    run(vec![
        case(
            "25",
            obj(
                "apps/v1",
                "StatefulSet",
                3,
                json!({"spec": {"replicas": 3}, "status": {"observedGeneration": 0}}),
            ),
            Pending,
            R::GenerationNotObserved,
        ),
        case(
            "26",
            sts(3, 2, 3, 0, json!({})),
            Progressing,
            R::PodsNotReady,
        )
        .message("1 pods are not ready"),
        case(
            "27",
            sts(3, 3, 0, 2, json!({})),
            Progressing,
            R::PartitionRollout,
        )
        .message("0 of 1 new pods have been updated"),
        case(
            "28",
            sts(3, 3, 1, 2, json!({})),
            Succeeded,
            R::PartitionRolloutComplete,
        )
        .message("(partition 2)"),
        case(
            "29",
            sts(3, 3, 0, 5, json!({})),
            Succeeded,
            R::PartitionRolloutComplete,
        ),
        case(
            "30",
            sts(3, 3, 2, 0, json!({})),
            Progressing,
            R::ReplicasUpdating,
        ),
        case(
            "31",
            sts(
                3,
                3,
                3,
                0,
                json!({"status": {"currentRevision": "web-6b4f7c9d8e"}}),
            ),
            Progressing,
            R::RevisionMismatch,
        )
        .message("3 pods at revision web-7c5d9f8b4d, current revision web-6b4f7c9d8e"),
        case(
            "32",
            sts(3, 3, 3, 0, json!({})),
            Succeeded,
            R::RolloutComplete,
        ),
        case(
            "33",
            sts(3, 3, 3, 0, json!({"status": {"replicas": 4}})),
            Progressing,
            R::OldReplicasTerminating,
        ),
        case(
            "34",
            sts(
                3,
                3,
                1,
                0,
                json!({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}}),
            ),
            Succeeded,
            R::OnDeleteSpecApplied,
        )
        .message("remaining pods update when deleted"),
        case(
            "35",
            sts(
                3,
                3,
                1,
                0,
                json!({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}}),
            ),
            Progressing,
            R::ReplicasUpdating,
        )
        .ctx(|c| c.on_delete_policy = OnDeletePolicy::WaitForPods),
        case("36", sts(3, 1, 3, 0, json!({})), Failed, R::ProgressTimeout).ctx(timed(11)),
        case(
            "S7 minReadySeconds",
            sts(
                3,
                3,
                3,
                0,
                json!({"spec": {"minReadySeconds": 10}, "status": {"availableReplicas": 2}}),
            ),
            Progressing,
            R::ReplicasBecomingAvailable,
        ),
        case(
            "S8 zero",
            sts(0, 0, 0, 0, json!({"status": {"replicas": 0}})),
            Succeeded,
            R::ScaledToZero,
        ),
    ]);
}

#[test]
fn daemonset_rows() {
    let on_delete = json!({"spec": {"updateStrategy": {"type": "OnDelete"}}});
    run(vec![
        case(
            "37",
            ds(5, 3, 5, json!({})),
            Progressing,
            R::ReplicasUpdating,
        )
        .message("3 of 5 new pods have been updated"),
        case(
            "38",
            ds(5, 5, 4, json!({})),
            Progressing,
            R::ReplicasBecomingAvailable,
        )
        .message("4 of 5 updated pods are available"),
        case("39", ds(5, 5, 5, json!({})), Succeeded, R::RolloutComplete),
        case(
            "40",
            obj(
                "apps/v1",
                "DaemonSet",
                2,
                json!({"status": {"observedGeneration": 1, "desiredNumberScheduled": 5}}),
            ),
            Pending,
            R::GenerationNotObserved,
        ),
        case(
            "41",
            obj(
                "apps/v1",
                "DaemonSet",
                2,
                json!({"status": {"observedGeneration": 2}}),
            ),
            Progressing,
            R::PodsNotReady,
        ),
        case(
            "42",
            ds(5, 2, 5, on_delete.clone()),
            Succeeded,
            R::OnDeleteSpecApplied,
        ),
        case(
            "42b waitForPods",
            ds(5, 2, 5, on_delete),
            Progressing,
            R::ReplicasUpdating,
        )
        .ctx(|c| c.on_delete_policy = OnDeletePolicy::WaitForPods),
        case("43", ds(0, 0, 0, json!({})), Succeeded, R::ScaledToZero).message("0 nodes eligible"),
        case(
            "DS4 not ready",
            ds(5, 5, 5, json!({"status": {"numberReady": 4}})),
            Progressing,
            R::PodsNotReady,
        ),
    ]);
}

#[test]
fn replicaset_and_job_rows() {
    run(vec![
        case(
            "44",
            obj(
                "apps/v1",
                "ReplicaSet",
                1,
                json!({"spec": {"replicas": 3}, "status": {"observedGeneration": 1, "availableReplicas": 1, "conditions": [cond("ReplicaFailure", "True", "FailedCreate")]}}),
            ),
            Progressing,
            R::ReplicaFailure,
        ),
        case(
            "RS complete",
            obj(
                "apps/v1",
                "ReplicaSet",
                1,
                json!({"spec": {"replicas": 3}, "status": {"observedGeneration": 1, "availableReplicas": 3}}),
            ),
            Succeeded,
            R::RolloutComplete,
        ),
        case(
            "45",
            obj(
                "batch/v1",
                "Job",
                1,
                json!({"status": {"conditions": [cond("Failed", "True", "BackoffLimitExceeded")]}}),
            ),
            Failed,
            R::JobFailed,
        )
        .message("BackoffLimitExceeded"),
        case(
            "46",
            obj(
                "batch/v1",
                "Job",
                1,
                json!({"status": {"succeeded": 1, "conditions": [cond("Complete", "True", "")]}}),
            ),
            Succeeded,
            R::RolloutComplete,
        ),
        case(
            "Job suspended",
            obj(
                "batch/v1",
                "Job",
                1,
                json!({"status": {"conditions": [cond("Suspended", "True", "JobSuspended")]}}),
            ),
            Progressing,
            R::Paused,
        ),
        case(
            "Job running",
            obj("batch/v1", "Job", 1, json!({"status": {"active": 1}})),
            Progressing,
            R::InProgress,
        ),
    ]);
}

#[test]
fn argo_rollout_rows() {
    run(vec![
        case("47", rollout(4, "3", json!({})), Pending, R::GenerationNotObserved),
        case("48", rollout(4, "4", json!({"phase": "Paused", "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-01-01T11:00:00Z"}]})), Progressing, R::AwaitingPromotion)
            .message("Rollout paused: CanaryPauseStep"),
        case("49", rollout(4, "4", json!({"phase": "Degraded", "message": "RolloutAborted: analysis failed", "conditions": [cond("Progressing", "False", "RolloutAborted")]})), Failed, R::RolloutAborted)
            .message("Rollout failed: RolloutAborted: "),
        case("50", rollout(4, "4", json!({"conditions": [cond("InvalidSpec", "True", "InvalidSpec")]})), Failed, R::InvalidSpec),
        case("51", rollout(4, "4", json!({"phase": "Healthy", "stableRS": "abc", "currentPodHash": "abc"})), Succeeded, R::Healthy),
        case("52", rollout(4, "4", json!({"phase": "Progressing", "stableRS": "abc", "currentPodHash": "def", "message": "waiting for all steps to complete"})), Progressing, R::InProgress)
            .any_reason()
            .message("waiting for all steps to complete"),
        case("53", rollout(4, "4", json!({"controllerPause": true, "pauseConditions": []})), Progressing, R::Paused),
        case("AR1 hash generation skips gate", rollout(4, "7b9f8d6c5", json!({"phase": "Healthy", "stableRS": "a", "currentPodHash": "a"})), Succeeded, R::Healthy),
        case("AR5 deadline", rollout(4, "4", json!({"conditions": [cond("Progressing", "False", "ProgressDeadlineExceeded")]})), Failed, R::ProgressDeadlineExceeded),
        case("AR8 healthy but not promoted", rollout(4, "4", json!({"phase": "Healthy", "stableRS": "a", "currentPodHash": "b"})), Progressing, R::InProgress),
    ]);
}

#[test]
fn flux_rows() {
    let wanted = |c: &mut TrackCtx| c.wanted_sha = Some(T.to_owned());
    let attempted = format!("main@sha1:{T}");
    run(vec![
        case("54", kustomization(json!({"lastAttemptedRevision": format!("main@sha1:{OLD}"), "conditions": [cond("Ready", "True", "ReconciliationSucceeded")]}), json!({})), Pending, R::SourceRevisionNotApplied).ctx(wanted),
        case("55", kustomization(json!({"lastAttemptedRevision": attempted, "conditions": [cond("Ready", "False", "HealthCheckFailed")]}), json!({})), Failed, R::HealthCheckFailed)
            .ctx(wanted)
            .message("Rollout failed: HealthCheckFailed: "),
        case("55b retry as progress", kustomization(json!({"lastAttemptedRevision": attempted, "conditions": [cond("Ready", "False", "HealthCheckFailed")]}), json!({})), Progressing, R::RetryingAfterFailure)
            .ctx(wanted)
            .ctx(|c| c.flux_retry_as_progress = true),
        case("56", kustomization(json!({"lastAttemptedRevision": attempted, "conditions": [cond("Ready", "Unknown", "Progressing"), cond("Reconciling", "True", "Progressing")]}), json!({})), Progressing, R::Reconciling).ctx(wanted),
        case("57", kustomization(json!({"lastAttemptedRevision": attempted, "lastAppliedRevision": attempted, "conditions": [cond("Ready", "True", "ReconciliationSucceeded")]}), json!({})), Succeeded, R::ReconciliationSucceeded).ctx(wanted),
        case("58", kustomization(json!({"conditions": [cond("Stalled", "True", "BuildFailed")]}), json!({})), Failed, R::Stalled).ctx(wanted),
        case("59", kustomization(json!({}), json!({"suspend": true})), Progressing, R::Paused).ctx(wanted),
        case("60", helmrelease(json!({"conditions": [cond("Released", "False", "UpgradeFailed")]})), Failed, R::ReleaseFailed),
        case("61", helmrelease(json!({"conditions": [cond("Remediated", "True", "RollbackSucceeded")]})), Failed, R::ReleaseFailed),
        case("62", helmrelease(json!({"history": [{"chartVersion": "1.2.3"}], "conditions": [cond("Ready", "True", "UpgradeSucceeded")]})), Succeeded, R::ReconciliationSucceeded),
        case("HR6", helmrelease(json!({"conditions": [cond("Ready", "Unknown", "Progressing")]})), Progressing, R::Reconciling),
    ]);
}

#[test]
fn argocd_rows() {
    let wanted = |c: &mut TrackCtx| c.wanted_sha = Some(T.to_owned());
    let synced = |health: &str| json!({"sync": {"status": "Synced", "revision": T}, "health": {"status": health, "message": "some pods"}});
    run(vec![
        case("63", app(json!({"sync": {"status": "OutOfSync", "revision": OLD}, "health": {"status": "Healthy"}})), Pending, R::SourceRevisionNotApplied).ctx(wanted),
        case("64", app(json!({"sync": {"status": "OutOfSync", "revision": OLD}, "operationState": {"phase": "Failed", "message": "one or more objects failed to apply", "syncResult": {"revision": T}}})), Failed, R::SyncFailed)
            .ctx(wanted)
            .message("one or more objects failed to apply"),
        case("65", app(synced("Progressing")), Progressing, R::InProgress).any_reason().ctx(wanted),
        case("66", app(synced("Degraded")), Failed, R::Degraded).ctx(wanted),
        case("67", app(synced("Healthy")), Succeeded, R::Healthy).ctx(wanted),
        case("68", app(synced("Suspended")), Progressing, R::Paused).ctx(wanted),
        case("AA3 running", app(merge(synced("Healthy"), json!({"operationState": {"phase": "Running", "syncResult": {"revision": T}}}))), Progressing, R::Reconciling).ctx(wanted),
        case("AA7 unknown", app(synced("Unknown")), Unknown, R::StatusUnparseable).ctx(wanted),
    ]);
}

#[test]
fn generic_rows() {
    run(vec![
        case(
            "69",
            generic(2, 2, json!([cond("Reconciling", "True", "Progressing")])),
            Progressing,
            R::Reconciling,
        ),
        case(
            "70",
            generic(2, 2, json!([cond("Stalled", "True", "Broken")])),
            Failed,
            R::Stalled,
        ),
        case(
            "71",
            generic(2, 1, json!([cond("Ready", "True", "Succeeded")])),
            Pending,
            R::GenerationNotObserved,
        ),
        case("72", generic(2, 2, json!([])), Unknown, R::UnsupportedKind),
        case(
            "72b succeed policy",
            generic(2, 2, json!([])),
            Succeeded,
            R::Healthy,
        )
        .ctx(|c| c.generic_no_conditions = GenericNoConditions::Succeed),
        case(
            "ready true",
            generic(2, 2, json!([cond("Ready", "True", "Succeeded")])),
            Succeeded,
            R::Healthy,
        ),
        case(
            "ready false",
            generic(2, 2, json!([cond("Ready", "False", "Waiting")])),
            Progressing,
            R::InProgress,
        ),
    ]);
}

#[test]
fn timeout_overlay_cases() {
    run(vec![
        case(
            "within timeout",
            deploy(3, 3, 1, 2, json!({})),
            Progressing,
            R::ReplicasUpdating,
        )
        .ctx(timed(9)),
        case(
            "no clock yet",
            deploy(3, 3, 1, 2, json!({})),
            Progressing,
            R::ReplicasUpdating,
        )
        .ctx(|c| c.progress_timeout = Duration::from_secs(1)),
        case(
            "paused never times out",
            deploy(3, 3, 0, 3, json!({"spec": {"paused": true}})),
            Progressing,
            R::Paused,
        )
        .ctx(timed(60)),
        case(
            "complete is not overridden",
            deploy(3, 3, 3, 3, json!({})),
            Succeeded,
            R::RolloutComplete,
        )
        .ctx(timed(60)),
        case(
            "pending is not overridden",
            None,
            Pending,
            R::TargetNotFound,
        )
        .ctx(timed(60)),
        case(
            "statefulset never reports failure itself",
            sts(3, 2, 3, 0, json!({})),
            Failed,
            R::ProgressTimeout,
        )
        .ctx(timed(30)),
    ]);
}

#[test]
fn image_tags_and_commits() {
    let cases = [
        ("tag", "registry.example.com/app:1a2b3c4d", Some("1a2b3c4d")),
        (
            "port and tag",
            "registry:5000/group/app:v1.2.3",
            Some("v1.2.3"),
        ),
        ("port, no tag", "registry:5000/group/app", None),
        ("digest only", "app@sha256:abcd", Some("sha256:abcd")),
        ("tag and digest", "app:1a2b3c4@sha256:abcd", Some("1a2b3c4")),
        ("no tag", "nginx", None),
    ];
    for (name, image, want) in cases {
        assert_eq!(image_tag_or_digest(image).as_deref(), want, "case {name}");
    }
    let commits = [
        ("full", T, Some(T)),
        ("short", "1a2b3c4", Some("1a2b3c4")),
        ("suffix", "v1.2.3-1a2b3c4d", Some("1a2b3c4d")),
        ("too short", "1a2b3c", None),
        ("not hex", "latest", None),
        ("uppercase", "1A2B3C4D", None),
        ("digest", "sha256:abcd", None),
    ];
    for (name, value, want) in commits {
        assert_eq!(commit_in(value).as_deref(), want, "case {name}");
    }
}

#[test]
fn revision_from_target() {
    let object = json!({
        "metadata": {"annotations": {"example.com/commit-sha": OLD}},
        "spec": {"template": {
            "metadata": {"annotations": {"example.com/commit-sha": T, "example.com/ref": "release-1"}},
            "spec": {"containers": [{"name": "app", "image": "reg/app:v2-1a2b3c4d"}, {"name": "sidecar", "image": "envoy:1.30"}]},
        }},
    });
    let from = |annotation: Option<&str>, container: Option<&str>, ref_annotation: Option<&str>| {
        RevisionFrom {
            annotation: annotation.map(Into::into),
            container: container.map(Into::into),
            ref_annotation: ref_annotation.map(Into::into),
        }
    };
    let cases = [
        (
            "template annotation wins",
            from(Some("example.com/commit-sha"), None, None),
            Some(T),
            None,
        ),
        (
            "ref annotation",
            from(
                Some("example.com/commit-sha"),
                None,
                Some("example.com/ref"),
            ),
            Some(T),
            Some("release-1"),
        ),
        (
            "container tag suffix",
            from(None, Some("app"), None),
            Some("1a2b3c4d"),
            None,
        ),
        (
            "container tag not a commit",
            from(None, Some("sidecar"), None),
            None,
            None,
        ),
        (
            "missing container",
            from(None, Some("nope"), None),
            None,
            None,
        ),
        (
            "missing annotation",
            from(Some("nope"), None, None),
            None,
            None,
        ),
    ];
    for (name, f, sha, ref_name) in cases {
        let got = commit_from_target(&object, &f);
        assert_eq!(got.sha.as_deref(), sha, "case {name}");
        assert_eq!(got.ref_name.as_deref(), ref_name, "case {name}");
    }
    // Object metadata is the fallback for kinds without a pod template (Flux, Argo CD).
    let flux = json!({"metadata": {"annotations": {"example.com/commit-sha": T}}});
    assert_eq!(
        commit_from_target(&flux, &from(Some("example.com/commit-sha"), None, None))
            .sha
            .as_deref(),
        Some(T)
    );
}

#[test]
fn revision_identity_per_kind() {
    let ctx = TrackCtx {
        new_pod_hash: Some("5d9c7b8f6".into()),
        ..TrackCtx::default()
    };
    let cases = [
        (
            "deployment",
            deploy(
                3,
                3,
                3,
                3,
                json!({"metadata": {"annotations": {"deployment.kubernetes.io/revision": "7"}}}),
            ),
            Some("5d9c7b8f6"),
            Some(7),
        ),
        (
            "statefulset",
            sts(3, 3, 3, 0, json!({})),
            Some("web-7c5d9f8b4d"),
            None,
        ),
        (
            "rollout",
            rollout(4, "4", json!({"currentPodHash": "abc"})),
            Some("abc"),
            None,
        ),
        (
            "kustomization",
            kustomization(json!({"lastAttemptedRevision": "main@sha1:x"}), json!({})),
            Some("main@sha1:x"),
            None,
        ),
    ];
    for (name, target, kind_id, number) in cases {
        let rev = evaluate(target.as_ref(), &ctx, now()).revision.unwrap();
        assert_eq!(rev.kind_id.as_deref(), kind_id, "case {name}");
        assert_eq!(rev.number, number, "case {name}");
    }
}

#[test]
fn typed_objects_evaluate_like_json() {
    use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let d = Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            generation: Some(2),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(2),
            ..Default::default()
        }),
        status: Some(DeploymentStatus {
            observed_generation: Some(2),
            replicas: Some(2),
            updated_replicas: Some(2),
            available_replicas: Some(2),
            ..Default::default()
        }),
    };
    let target = TargetObject::from_typed(&d).unwrap();
    let got = evaluate(Some(&target), &TrackCtx::default(), now());
    assert_eq!((got.state, got.reason), (Succeeded, R::RolloutComplete));
}

#[test]
fn go_duration_format() {
    for (secs, want) in [(600, "10m0s"), (5400, "1h30m0s"), (45, "45s"), (0, "0s")] {
        assert_eq!(format_go_duration(Duration::from_secs(secs)), want);
    }
}

#[test]
fn success_message_names_the_revision() {
    let target = deploy(
        3,
        3,
        3,
        3,
        json!({
            "metadata": {"annotations": {"deployment.kubernetes.io/revision": "7"}},
            "spec": {"template": {"metadata": {"annotations": {"example.com/sha": T}}}},
        }),
    );
    let ctx = TrackCtx {
        new_pod_hash: Some("5d9c7b8f6".into()),
        revision_from: Some(RevisionFrom {
            annotation: Some("example.com/sha".into()),
            container: None,
            ref_annotation: None,
        }),
        ..TrackCtx::default()
    };
    let got = evaluate(target.as_ref(), &ctx, now());
    assert_eq!(
        got.message,
        "Rollout complete: 3 of 3 replicas updated and available at revision 7 (pod-template-hash 5d9c7b8f6, sha 1a2b3c4)"
    );
    assert_eq!(got.commit_sha(), Some(T));
}

/// What the approval gate's promote and abort read from an Argo Rollout.
#[test]
fn rollout_control_reads_where_an_argo_rollout_waits() {
    let canary = json!({"strategy": {"canary": {"steps": [
        {"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": "1m"}}
    ]}}});
    let base = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "generation": 3, "resourceVersion": "41"},
        "spec": canary,
        "status": {
            "observedGeneration": "3", "currentPodHash": "new", "stableRS": "old",
            "currentStepIndex": 1, "controllerPause": true,
            "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-01-01T11:00:00Z"}]
        }
    });
    let control =
        |patch: Value| rollout_control(&TargetObject::from_value(merge(base.clone(), patch)));
    let at_step = |c: Option<RolloutControl>| c.and_then(|c| c.indefinite_pause).map(|p| p.step);

    let paused = control(json!({})).unwrap();
    assert_eq!(
        paused,
        RolloutControl {
            resource_version: Some("41".into()),
            observed: true,
            pod_hash: Some("new".into()),
            updating: true,
            aborted: false,
            paused_by_person: false,
            indefinite_pause: Some(IndefinitePause { step: Some(1) }),
        }
    );
    let cases: Vec<(&str, Value, Option<Option<i64>>)> = vec![
        (
            "timed pause step",
            json!({"status": {"currentStepIndex": 3}}),
            None,
        ),
        (
            "pause: {duration: 0} is timed too",
            json!({"spec": {"strategy": {"canary": {"steps": [{"pause": {"duration": 0}}]}}}, "status": {"currentStepIndex": 0}}),
            None,
        ),
        (
            "a step without pause",
            json!({"status": {"currentStepIndex": 0}}),
            None,
        ),
        (
            "step index past the steps",
            json!({"status": {"currentStepIndex": 9}}),
            None,
        ),
        (
            "analysis pause beside the step pause",
            json!({"status": {"pauseConditions": [{"reason": "CanaryPauseStep"}, {"reason": "InconclusiveAnalysis"}]}}),
            None,
        ),
        (
            "no pause conditions (promoted, the controller not yet moved on)",
            json!({"status": {"pauseConditions": null}}),
            None,
        ),
        (
            "blue-green, auto-promotion off",
            json!({"spec": {"strategy": {"canary": null, "blueGreen": {"autoPromotionEnabled": false}}}, "status": {"currentStepIndex": null, "pauseConditions": [{"reason": "BlueGreenPause"}]}}),
            Some(None),
        ),
        (
            "blue-green, auto-promotion after a delay",
            json!({"spec": {"strategy": {"canary": null, "blueGreen": {"autoPromotionSeconds": 30}}}, "status": {"currentStepIndex": null, "pauseConditions": [{"reason": "BlueGreenPause"}]}}),
            None,
        ),
    ];
    for (name, patch, want) in cases {
        assert_eq!(at_step(control(patch)), want, "{name}");
    }
    let manual = control(json!({"spec": {"paused": true}})).unwrap();
    assert!(manual.paused_by_person);
    let stale = control(json!({"metadata": {"generation": 4}})).unwrap();
    assert!(!stale.observed, "status of an older spec");
    let settled = control(json!({"status": {"stableRS": "new"}})).unwrap();
    assert!(!settled.updating);
    let aborted = control(json!({"status": {"abort": true}})).unwrap();
    assert!(aborted.aborted);
    assert_eq!(
        rollout_control(&TargetObject::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}
        }))),
        None,
        "only Argo Rollouts"
    );
}
