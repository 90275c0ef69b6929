//! Table tests for `plan` and `cleanup`. The sequence tests that count GitLab calls drive the
//! step executor and live with it (`steps/tests.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::*;
use crate::api::deployment::{
    ApprovalStatus, ConnectionKind, DeployRevision, RefusedCreate, RevisionFrom, RolloutRecord,
    TargetRef,
};
use crate::api::validate::{ConnectionTarget, ProjectRef, RevisionSource};
use crate::controller::status;
use crate::rollout::{Reason, Revision, RolloutState, RolloutStatus};

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

pub(crate) fn did(n: i64) -> DeploymentId {
    DeploymentId::new(n).unwrap()
}

pub(crate) fn now() -> Timestamp {
    "2026-01-01T12:00:00Z".parse().unwrap()
}
fn secs_ago(s: i64) -> Time {
    Time(now() - SignedDuration::from_secs(s))
}

pub(crate) fn spec(source: RevisionSource) -> ValidatedSpec {
    ValidatedSpec {
        namespace: "apps".into(),
        name: "web".into(),
        generation: 1,
        connection: ConnectionTarget {
            kind: ConnectionKind::GitlabConnection,
            name: "default".into(),
        },
        project: ProjectRef::Path("group/web".into()),
        environment: "production".into(),
        revision: source,
        target: TargetRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
        },
        progress_timeout: Duration::from_secs(600),
        rollout_start_grace: Duration::from_secs(60),
        environment_settings: None,
        approval: Default::default(),
        deletion_policy: DeletionPolicy::Cancel,
    }
}
pub(crate) fn rev(sha: &str) -> DeployRevision {
    DeployRevision {
        sha: sha.into(),
        ref_name: "main".into(),
        tag: false,
    }
}
pub(crate) fn fixed(sha: &str) -> ValidatedSpec {
    spec(RevisionSource::Fixed(rev(sha)))
}
fn follow() -> ValidatedSpec {
    spec(RevisionSource::FromTarget {
        from: RevisionFrom {
            annotation: Some("example.com/sha".into()),
            container: None,
            ref_annotation: None,
        },
        default_ref: "main".into(),
        tag: false,
    })
}

pub(crate) fn ro(state: RolloutState, reason: Reason) -> RolloutStatus {
    RolloutStatus::new(state, reason, "m")
}
fn ro_commit(state: RolloutState, reason: Reason, sha: Option<&str>) -> RolloutStatus {
    let mut r = ro(state, reason);
    r.revision = Some(Revision {
        commit_sha: sha.map(Into::into),
        ..Revision::default()
    });
    r
}
pub(crate) fn progressing() -> RolloutStatus {
    ro(RolloutState::Progressing, Reason::ReplicasUpdating)
}
pub(crate) fn complete() -> RolloutStatus {
    ro(RolloutState::Succeeded, Reason::RolloutComplete)
}

fn record(id: i64, sha: &str, status: GitlabStatus) -> DeploymentRecord {
    DeploymentRecord {
        id: did(id),
        iid: id,
        sha: sha.into(),
        ref_name: "main".into(),
        tag: false,
        status,
        environment_id: Some(1),
        environment_url: None,
        created_at: Some(secs_ago(600)),
        updated_at: Some(secs_ago(60)),
        workload_revision: None,
        gate: None,
    }
}

#[derive(Default)]
struct St(GitlabDeploymentStatus);
impl St {
    fn deployment(mut self, id: i64, sha: &str, status: GitlabStatus) -> Self {
        self.0.deployment = Some(record(id, sha, status));
        self
    }
    fn updated_secs_ago(mut self, s: i64) -> Self {
        if let Some(d) = self.0.deployment.as_mut() {
            d.updated_at = Some(secs_ago(s));
        }
        self
    }
    fn intent(mut self, sha: &str) -> Self {
        self.0.intent = Some(DeploymentIntent {
            gate: None,
            revision: rev(sha),
            environment: "production".into(),
            status: GitlabStatus::Running,
            claimed_at: secs_ago(30),
        });
        self
    }
    /// GitLab refused creating `sha` for `generation` (a 4xx).
    fn refused(mut self, sha: &str, generation: i64) -> Self {
        self.0.refused_create = Some(RefusedCreate {
            revision: rev(sha),
            generation,
            reason: "Validation".into(),
            message: "GitLab refused the create".into(),
            connection: "uid/1/2".into(),
        });
        self
    }
    fn mrs_fetched(mut self, id: i64) -> Self {
        self.0.merge_requests_for = Some(did(id));
        self
    }
    fn approval(mut self, state: ApprovalState, since: Option<i64>, checked: Option<i64>) -> Self {
        self.0.approval = Some(ApprovalStatus {
            state,
            required: 2,
            pending: 1,
            pending_since: since.map(secs_ago),
            checked_at: checked.map(secs_ago),
            ..ApprovalStatus::default()
        });
        self
    }
    fn started_secs_ago(mut self, s: i64) -> Self {
        self.0.rollout = Some(RolloutRecord {
            state: "Progressing".into(),
            reason: "ReplicasUpdating".into(),
            message: String::new(),
            revision: None,
            started_at: Some(secs_ago(s)),
            ..RolloutRecord::default()
        });
        self
    }
}

fn create(sha: &str, s: GitlabStatus) -> Plan {
    Plan::CreateDeployment {
        revision: rev(sha),
        initial_status: s,
        gate: None,
    }
}
fn nothing(requeue: Option<u64>) -> Plan {
    Plan::Nothing {
        requeue: requeue.map(Duration::from_secs),
    }
}

use GitlabStatus::{Canceled, Failed, Running, Success};

#[test]
fn plan_table() {
    let failed_pde = ro(RolloutState::Failed, Reason::ProgressDeadlineExceeded);
    let failed_timeout = ro(RolloutState::Failed, Reason::ProgressTimeout);
    let paused = ro(RolloutState::Progressing, Reason::Paused);
    let stale = ro(RolloutState::Pending, Reason::GenerationNotObserved);
    let cases: Vec<(&str, ValidatedSpec, St, RolloutStatus, Plan)> = vec![
        // First create.
        (
            "first create while progressing",
            fixed(A),
            St::default(),
            progressing(),
            create(A, Running),
        ),
        (
            "create when already complete: one call",
            fixed(A),
            St::default(),
            complete(),
            create(A, Success),
        ),
        (
            "create when already failed",
            fixed(A),
            St::default(),
            failed_pde.clone(),
            create(A, Failed),
        ),
        // A create GitLab refused (4xx) is not repeated for the same generation.
        (
            "refused create, same revision and generation: no call",
            fixed(A),
            St::default().refused(A, 1),
            progressing(),
            nothing(None),
        ),
        (
            "refused create, rollout now complete: still the same request refused",
            fixed(A),
            St::default().refused(A, 1),
            complete(),
            nothing(None),
        ),
        (
            "refused create of a newer revision: the old deployment is left alone",
            fixed(A),
            St::default().deployment(7, B, Success).refused(A, 1),
            progressing(),
            nothing(None),
        ),
        (
            "refused for an older generation: a spec change retries",
            fixed(A),
            St::default().refused(A, 0),
            progressing(),
            create(A, Running),
        ),
        (
            "refused another revision: this one is created",
            fixed(A),
            St::default().refused(B, 1),
            progressing(),
            create(A, Running),
        ),
        (
            "nothing to create before the target exists",
            fixed(A),
            St::default(),
            ro(RolloutState::Pending, Reason::TargetNotFound),
            nothing(Some(30)),
        ),
        // Transitions of the current revision.
        (
            "running -> success",
            fixed(A),
            St::default().deployment(7, A, Running),
            complete(),
            Plan::UpdateStatus {
                id: did(7),
                to: Success,
            },
        ),
        (
            "running -> failed (ProgressDeadlineExceeded)",
            fixed(A),
            St::default().deployment(7, A, Running),
            failed_pde.clone(),
            Plan::UpdateStatus {
                id: did(7),
                to: Failed,
            },
        ),
        (
            "running -> failed (progressTimeout)",
            fixed(A),
            St::default().deployment(7, A, Running),
            failed_timeout.clone(),
            Plan::UpdateStatus {
                id: did(7),
                to: Failed,
            },
        ),
        (
            "running stays running: no running->running PUT",
            fixed(A),
            St::default().deployment(7, A, Running),
            progressing(),
            nothing(Some(30)),
        ),
        (
            "requeue at the progressTimeout deadline",
            fixed(A),
            St::default()
                .deployment(7, A, Running)
                .started_secs_ago(590),
            progressing(),
            nothing(Some(10)),
        ),
        (
            "paused: no deadline, wait for events",
            fixed(A),
            St::default().deployment(7, A, Running),
            paused,
            nothing(None),
        ),
        // Newer revisions.
        (
            "supersede a running revision",
            fixed(B),
            St::default().deployment(7, A, Running),
            progressing(),
            Plan::Supersede {
                old_id: did(7),
                then: Box::new(create(B, Running)),
            },
        ),
        (
            "supersede when the new one is already complete",
            fixed(B),
            St::default().deployment(7, A, Running),
            complete(),
            Plan::Supersede {
                old_id: did(7),
                then: Box::new(create(B, Success)),
            },
        ),
        (
            "new revision after a finished one: no cancel",
            fixed(B),
            St::default().deployment(7, A, Success).mrs_fetched(7),
            progressing(),
            create(B, Running),
        ),
        (
            "rollback is a new revision",
            follow(),
            St::default().deployment(8, B, Success).mrs_fetched(8),
            ro_commit(RolloutState::Progressing, Reason::ReplicasUpdating, Some(A)),
            create(A, Running),
        ),
        (
            "revisionFrom: no commit on the target yet",
            follow(),
            St::default(),
            ro_commit(RolloutState::Progressing, Reason::ReplicasUpdating, None),
            nothing(None),
        ),
        // Crash recovery.
        (
            "intent without id: recover, never create",
            fixed(A),
            St::default().intent(A),
            complete(),
            Plan::RecoverDeployment {
                intent: St::default().intent(A).0.intent.unwrap(),
            },
        ),
        (
            "intent for a newer revision than the recorded one",
            fixed(B),
            St::default().deployment(7, A, Canceled).intent(B),
            progressing(),
            Plan::RecoverDeployment {
                intent: St::default().intent(B).0.intent.unwrap(),
            },
        ),
        (
            "intent already recorded: carry on",
            fixed(A),
            St::default().deployment(7, A, Running).intent(A),
            complete(),
            Plan::UpdateStatus {
                id: did(7),
                to: Success,
            },
        ),
        // Approvals.
        (
            "approval pending, never polled",
            fixed(A),
            St::default()
                .deployment(7, A, Running)
                .approval(ApprovalState::Pending, Some(0), None),
            progressing(),
            Plan::PollApprovals {
                id: did(7),
                after: Duration::from_secs(10),
            },
        ),
        (
            "approval pending, polled 4 s ago",
            fixed(A),
            St::default().deployment(7, A, Running).approval(
                ApprovalState::Pending,
                Some(4),
                Some(4),
            ),
            progressing(),
            nothing(Some(6)),
        ),
        (
            "approval backoff doubles",
            fixed(A),
            St::default().deployment(7, A, Success).approval(
                ApprovalState::Pending,
                Some(100),
                Some(40),
            ),
            complete(),
            nothing(Some(20)),
        ),
        (
            "approval backoff due",
            fixed(A),
            St::default().deployment(7, A, Success).approval(
                ApprovalState::Pending,
                Some(100),
                Some(60),
            ),
            complete(),
            Plan::PollApprovals {
                id: did(7),
                after: Duration::from_secs(100),
            },
        ),
        (
            "approval backoff capped at 5 min",
            fixed(A),
            St::default().deployment(7, A, Success).approval(
                ApprovalState::Pending,
                Some(7200),
                Some(300),
            ),
            complete(),
            Plan::PollApprovals {
                id: did(7),
                after: Duration::from_secs(300),
            },
        ),
        (
            "status transition before approval poll",
            fixed(A),
            St::default()
                .deployment(7, A, Running)
                .approval(ApprovalState::Pending, Some(0), None),
            complete(),
            Plan::UpdateStatus {
                id: did(7),
                to: Success,
            },
        ),
        (
            "approved: settled",
            fixed(A),
            St::default()
                .deployment(7, A, Success)
                .mrs_fetched(7)
                .approval(ApprovalState::Approved, None, None),
            complete(),
            nothing(None),
        ),
        (
            "rejected: settled, no polling",
            fixed(A),
            St::default()
                .deployment(7, A, Success)
                .mrs_fetched(7)
                .approval(ApprovalState::Rejected, None, None),
            complete(),
            nothing(None),
        ),
        // Merge requests.
        (
            "fetch merge requests once after success",
            fixed(A),
            St::default().deployment(7, A, Success),
            complete(),
            Plan::FetchMergeRequests { id: did(7) },
        ),
        (
            "give GitLab a moment to link merge requests",
            fixed(A),
            St::default().deployment(7, A, Success).updated_secs_ago(2),
            complete(),
            nothing(Some(3)),
        ),
        // Settled and stale.
        (
            "settled: nothing, no requeue",
            fixed(A),
            St::default().deployment(7, A, Success).mrs_fetched(7),
            complete(),
            nothing(None),
        ),
        (
            "re-apply of the same sha (T5)",
            fixed(A),
            St::default().deployment(7, A, Success).mrs_fetched(7),
            complete(),
            nothing(None),
        ),
        (
            "scale after success (T6): finished is never changed",
            fixed(A),
            St::default().deployment(7, A, Success).mrs_fetched(7),
            progressing(),
            nothing(None),
        ),
        (
            "timed out, completes later (T7): stays failed",
            fixed(A),
            St::default().deployment(7, A, Failed),
            complete(),
            nothing(None),
        ),
        (
            "stale generation: never act on old status",
            fixed(A),
            St::default().deployment(7, A, Running),
            stale.clone(),
            nothing(Some(30)),
        ),
        (
            "stale generation: no create either",
            fixed(A),
            St::default(),
            stale,
            nothing(Some(30)),
        ),
        (
            "unknown state leaves GitLab as is",
            fixed(A),
            St::default().deployment(7, A, Running),
            ro(RolloutState::Unknown, Reason::ApiError),
            nothing(Some(30)),
        ),
        // Target removed.
        (
            "target deleted while running (T3)",
            fixed(A),
            St::default().deployment(7, A, Running),
            ro(RolloutState::Pending, Reason::TargetNotFound),
            Plan::UpdateStatus {
                id: did(7),
                to: Canceled,
            },
        ),
        (
            "target terminating while running",
            fixed(A),
            St::default().deployment(7, A, Running),
            ro(RolloutState::Unknown, Reason::TargetTerminating),
            Plan::UpdateStatus {
                id: did(7),
                to: Canceled,
            },
        ),
        (
            "target deleted after success: untouched",
            fixed(A),
            St::default().deployment(7, A, Success).mrs_fetched(7),
            ro(RolloutState::Pending, Reason::TargetNotFound),
            nothing(Some(30)),
        ),
    ];
    for (name, spec, st, rollout, want) in cases {
        assert_eq!(plan(&spec, &st.0, &rollout, now()), want, "case {name}");
    }
}

#[test]
fn cleanup_table() {
    use DeletionPolicy::{Cancel, Delete, Orphan};
    let cases: Vec<(&str, DeletionPolicy, Option<St>, Cleanup)> = vec![
        ("apply never ran", Cancel, None, Cleanup::Nothing),
        (
            "no deployment yet",
            Delete,
            Some(St::default()),
            Cleanup::Nothing,
        ),
        (
            "cancel a running deployment",
            Cancel,
            Some(St::default().deployment(7, A, Running)),
            Cleanup::Cancel { id: did(7) },
        ),
        (
            "cancel leaves a finished deployment",
            Cancel,
            Some(St::default().deployment(7, A, Success)),
            Cleanup::Nothing,
        ),
        (
            "orphan leaves a running deployment",
            Orphan,
            Some(St::default().deployment(7, A, Running)),
            Cleanup::Nothing,
        ),
        (
            "delete a finished deployment",
            Delete,
            Some(St::default().deployment(7, A, Failed)),
            Cleanup::Delete { id: did(7) },
        ),
        (
            "delete a successful deployment (GitLab may refuse)",
            Delete,
            Some(St::default().deployment(7, A, Success)),
            Cleanup::Delete { id: did(7) },
        ),
        (
            "GitLab refuses to delete running: cancel first",
            Delete,
            Some(St::default().deployment(7, A, Running)),
            Cleanup::CancelThenDelete { id: did(7) },
        ),
        (
            "intent without id: look it up first",
            Cancel,
            Some(St::default().intent(A)),
            Cleanup::Recover {
                intent: Box::new(St::default().intent(A).0.intent.unwrap()),
            },
        ),
        (
            "orphan does not even look up",
            Orphan,
            Some(St::default().intent(A)),
            Cleanup::Nothing,
        ),
    ];
    for (name, policy, st, want) in cases {
        assert_eq!(
            cleanup(policy, st.as_ref().map(|s| &s.0), true),
            want,
            "case {name}"
        );
    }
}

#[test]
fn evaluate_rollout_runs_the_clock_of_the_same_revision_only() {
    use crate::rollout::TargetObject;
    use serde_json::json;
    let target = TargetObject::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "generation": 2},
        "spec": {"replicas": 3},
        "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 1},
    }));
    let kustomization = TargetObject::from_value(json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "apps", "generation": 1, "annotations": {"example.com/sha": B}},
        "status": {"observedGeneration": 1, "lastAttemptedRevision": format!("main@sha1:{A}"),
                   "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": ""}]},
    }));
    let clock = |key: &str, started: i64, paused: i64| {
        let mut st = St::default().started_secs_ago(started).0;
        let r = st.rollout.as_mut().unwrap();
        r.revision = Some(key.into());
        r.paused_seconds = paused;
        st
    };
    let cases: Vec<(
        &str,
        ValidatedSpec,
        GitlabDeploymentStatus,
        &TargetObject,
        RolloutState,
        Reason,
    )> = vec![
        (
            "same revision past the deadline fails",
            fixed(A),
            clock(A, 660, 0),
            &target,
            RolloutState::Failed,
            Reason::ProgressTimeout,
        ),
        (
            "paused time is not counted",
            fixed(A),
            clock(A, 660, 120),
            &target,
            RolloutState::Progressing,
            Reason::ReplicasUpdating,
        ),
        (
            "a new revision does not inherit the old clock",
            fixed(B),
            clock(A, 3600, 0),
            &target,
            RolloutState::Progressing,
            Reason::ReplicasUpdating,
        ),
        (
            "no clock recorded yet",
            fixed(A),
            GitlabDeploymentStatus::default(),
            &target,
            RolloutState::Progressing,
            Reason::ReplicasUpdating,
        ),
        (
            "fixed sha must be applied by Flux",
            fixed(B),
            GitlabDeploymentStatus::default(),
            &kustomization,
            RolloutState::Pending,
            Reason::SourceRevisionNotApplied,
        ),
        (
            "revisionFrom on a GitOps object: its own annotation",
            follow(),
            GitlabDeploymentStatus::default(),
            &kustomization,
            RolloutState::Pending,
            Reason::SourceRevisionNotApplied,
        ),
    ];
    let follow_spec = |s: ValidatedSpec| s;
    for (name, spec, st, target, state, reason) in cases {
        let mut spec = follow_spec(spec);
        if let RevisionSource::FromTarget { from, .. } = &mut spec.revision {
            from.annotation = Some("example.com/sha".into());
        }
        let got = evaluate_rollout(
            &spec,
            &st,
            Some(target),
            &crate::rollout::TrackCtx::default(),
            now(),
        )
        .rollout;
        assert_eq!(
            (got.state, got.reason),
            (state, reason),
            "case {name}: {}",
            got.message
        );
    }
}

/// A Deployment whose rollout of `deployment.kubernetes.io/revision` `revision` is complete
/// (`done`) or under way.
fn web_at(revision: &str, done: bool) -> crate::rollout::TargetObject {
    let (updated, reason) = if done {
        (2, "NewReplicaSetAvailable")
    } else {
        (1, "ReplicaSetUpdated")
    };
    crate::rollout::TargetObject::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "generation": 2,
                     "annotations": {"deployment.kubernetes.io/revision": revision}},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": updated,
                   "availableReplicas": 2, "readyReplicas": 2,
                   "conditions": [{"type": "Progressing", "status": "True", "reason": reason}]},
    }))
}

/// The rollout record as a reconcile leaves it: `key` is the sha the record was made under.
fn rollout_record(
    key: &str,
    state: RolloutState,
    reason: Reason,
    workload: &str,
    finished: Option<i64>,
    waiting: Option<i64>,
) -> RolloutRecord {
    RolloutRecord {
        state: state.as_str().into(),
        reason: reason.as_str().into(),
        message: String::new(),
        revision: Some(key.into()),
        workload_revision: Some(workload.into()),
        finished_at: finished.map(secs_ago),
        waiting_since: waiting.map(secs_ago),
        ..RolloutRecord::default()
    }
}

#[test]
fn a_changed_sha_is_carried_by_the_right_rollout_whatever_the_order() {
    use RolloutState::*;
    // A's deployment finished (success) on workload revision 1.
    let a_finished_on_1 = |rollout: Option<RolloutRecord>| {
        let mut st = St::default().deployment(1, A, GitlabStatus::Success).0;
        if let Some(d) = st.deployment.as_mut() {
            d.workload_revision = Some("revision 1".into());
        }
        st.rollout = rollout;
        st
    };
    let done = Reason::RolloutComplete;
    let waiting = Reason::RevisionNotRolledOut;
    // (case, spec, status, target, expected state and reason, an Event expected)
    let cases = vec![
        (
            "sha first: workload still on the reported revision, waits",
            fixed(B),
            a_finished_on_1(Some(rollout_record(
                A,
                Succeeded,
                done,
                "revision 1",
                Some(300),
                None,
            ))),
            web_at("1", true),
            (Pending, waiting),
            false,
        ),
        (
            "sha first: still waiting inside the grace",
            fixed(B),
            a_finished_on_1(Some(rollout_record(
                B,
                Pending,
                waiting,
                "revision 1",
                None,
                Some(59),
            ))),
            web_at("1", true),
            (Pending, waiting),
            false,
        ),
        (
            "sha first: the rollout started while waiting, followed",
            fixed(B),
            a_finished_on_1(Some(rollout_record(
                B,
                Pending,
                waiting,
                "revision 1",
                None,
                Some(10),
            ))),
            web_at("2", false),
            (Progressing, Reason::ReplicasUpdating),
            false,
        ),
        (
            "sha first: the rollout started and finished while the operator was away",
            fixed(B),
            a_finished_on_1(Some(rollout_record(
                B,
                Pending,
                waiting,
                "revision 1",
                None,
                Some(600),
            ))),
            web_at("2", true),
            (Succeeded, done),
            false,
        ),
        (
            "no rollout within the grace: the workload as it stands, with an Event",
            fixed(B),
            a_finished_on_1(Some(rollout_record(
                B,
                Pending,
                waiting,
                "revision 1",
                None,
                Some(60),
            ))),
            web_at("1", true),
            (Succeeded, done),
            true,
        ),
        (
            "image first, sha patched mid-rollout: that rollout carries it",
            fixed(B),
            a_finished_on_1(Some(rollout_record(
                A,
                Progressing,
                Reason::ReplicasUpdating,
                "revision 2",
                None,
                None,
            ))),
            web_at("2", false),
            (Progressing, Reason::ReplicasUpdating),
            false,
        ),
        (
            "image first, settled 5 s before the patch: carries it, with an Event",
            fixed(B),
            a_finished_on_1(Some(rollout_record(
                A,
                Succeeded,
                done,
                "revision 2",
                Some(5),
                None,
            ))),
            web_at("2", true),
            (Succeeded, done),
            true,
        ),
        (
            "a config-only rollout long before the sha change: wait for the sha's own",
            fixed(B),
            a_finished_on_1(Some(rollout_record(
                A,
                Succeeded,
                done,
                "revision 2",
                Some(3600),
                None,
            ))),
            web_at("2", true),
            (Pending, waiting),
            false,
        ),
        (
            "a rollout the operator never saw finish: wait, then take it",
            fixed(B),
            a_finished_on_1(Some(rollout_record(
                A,
                Succeeded,
                done,
                "revision 1",
                Some(3600),
                None,
            ))),
            web_at("2", true),
            (Pending, waiting),
            false,
        ),
        (
            "followed before (generation not observed then), now finished",
            fixed(B),
            a_finished_on_1(Some(rollout_record(
                B,
                Pending,
                Reason::GenerationNotObserved,
                "revision 2",
                None,
                None,
            ))),
            web_at("2", true),
            (Succeeded, done),
            false,
        ),
        (
            "a wait for another sha does not count for this one",
            fixed(A.replace('a', "c").as_str()),
            a_finished_on_1(Some(rollout_record(
                B,
                Pending,
                waiting,
                "revision 1",
                None,
                Some(600),
            ))),
            web_at("1", true),
            (Pending, waiting),
            false,
        ),
        (
            "same sha: a config-only rollout is evaluated as usual",
            fixed(A),
            a_finished_on_1(Some(rollout_record(
                A,
                Succeeded,
                done,
                "revision 1",
                Some(300),
                None,
            ))),
            web_at("2", true),
            (Succeeded, done),
            false,
        ),
        (
            "nothing recorded (first deployment, or an older status)",
            fixed(B),
            St::default().deployment(1, A, GitlabStatus::Success).0,
            web_at("1", true),
            (Succeeded, done),
            false,
        ),
    ];
    for (name, spec, st, target, (state, reason), event) in cases {
        let got = evaluate_rollout(
            &spec,
            &st,
            Some(&target),
            &crate::rollout::TrackCtx::default(),
            now(),
        );
        assert_eq!(
            (
                got.rollout.state,
                got.rollout.reason,
                got.attributed.is_some()
            ),
            (state, reason, event),
            "case {name}: {} / {:?}",
            got.rollout.message,
            got.attributed
        );
    }
}

#[test]
fn a_waiting_sha_is_requeued_when_its_grace_ends() {
    let mut st = St::default()
        .deployment(1, A, GitlabStatus::Success)
        .mrs_fetched(1)
        .0;
    st.rollout = Some(rollout_record(
        B,
        RolloutState::Pending,
        Reason::RevisionNotRolledOut,
        "revision 1",
        None,
        Some(45),
    ));
    let got = plan(
        &fixed(B),
        &st,
        &ro(RolloutState::Pending, Reason::RevisionNotRolledOut),
        now(),
    );
    assert_eq!(
        got,
        Plan::Nothing {
            requeue: Some(Duration::from_secs(15))
        }
    );
}

#[test]
fn the_workload_revision_of_a_finished_deployment_is_frozen() {
    let on = |revision: &str, status: GitlabStatus| {
        let mut st = St::default().deployment(1, A, status).0;
        if let Some(d) = st.deployment.as_mut() {
            d.workload_revision = Some(revision.into());
        }
        st
    };
    let mut r2 = complete();
    r2.revision = Some(Revision {
        number: Some(2),
        ..Revision::default()
    });
    let stamped = |old: &GitlabDeploymentStatus, new: GitlabDeploymentStatus, want: &str| {
        let mut new = new;
        status::record_workload_revision(old, &mut new, Some(&rev(want)), &r2);
        new.deployment.unwrap().workload_revision.unwrap()
    };
    // Running: follows the workload; the pass that finishes it stamps too.
    let running = on("revision 1", GitlabStatus::Running);
    assert_eq!(stamped(&running, running.clone(), A), "revision 2");
    assert_eq!(
        stamped(&running, on("revision 1", GitlabStatus::Success), A),
        "revision 2"
    );
    // Finished before this pass: a later rollout (the next sha's image) is not the old sha's.
    let finished = on("revision 1", GitlabStatus::Success);
    assert_eq!(stamped(&finished, finished.clone(), A), "revision 1");
    // Another sha wanted: not this deployment's revision.
    assert_eq!(stamped(&running, running.clone(), B), "revision 1");
}

#[test]
fn environment_settings_are_set_once_per_change_and_never_hold_up_a_rollout() {
    use crate::api::deployment::{
        EnvironmentRecord, EnvironmentSettings, EnvironmentSyncState, EnvironmentTier,
    };
    let settings = |tier| EnvironmentSettings {
        tier: Some(tier),
        ..EnvironmentSettings::default()
    };
    let with_settings = |tier| {
        let mut s = fixed(A);
        s.environment_settings = Some(settings(tier));
        s
    };
    let applied = |st: St, env: i64, tier, state| {
        let mut st = st.mrs_fetched(1).0;
        st.environment = Some(EnvironmentRecord {
            id: env,
            settings: settings(tier),
            state,
            message: String::new(),
        });
        st
    };
    let done = || St::default().deployment(1, A, GitlabStatus::Success);
    let sync = Plan::SyncEnvironment { environment_id: 1 };
    let cases = vec![
        (
            "no settings: nothing",
            fixed(A),
            done().mrs_fetched(1).0,
            complete(),
            Plan::SETTLED,
        ),
        (
            "no environment yet (no deployment): the deployment first",
            with_settings(EnvironmentTier::Production),
            GitlabDeploymentStatus::default(),
            complete(),
            create(A, GitlabStatus::Success),
        ),
        (
            "settled deployment, settings never applied: sync",
            with_settings(EnvironmentTier::Production),
            done().mrs_fetched(1).0,
            complete(),
            sync.clone(),
        ),
        (
            "a running rollout is reported first",
            with_settings(EnvironmentTier::Production),
            St::default().deployment(1, A, GitlabStatus::Running).0,
            complete(),
            Plan::UpdateStatus {
                id: did(1),
                to: GitlabStatus::Success,
            },
        ),
        (
            "applied: nothing (steady state, restart)",
            with_settings(EnvironmentTier::Production),
            applied(
                done(),
                1,
                EnvironmentTier::Production,
                EnvironmentSyncState::Applied,
            ),
            complete(),
            Plan::SETTLED,
        ),
        (
            "refused: not retried",
            with_settings(EnvironmentTier::Production),
            applied(
                done(),
                1,
                EnvironmentTier::Production,
                EnvironmentSyncState::Rejected,
            ),
            complete(),
            Plan::SETTLED,
        ),
        (
            "changed in the spec: sync again",
            with_settings(EnvironmentTier::Staging),
            applied(
                done(),
                1,
                EnvironmentTier::Production,
                EnvironmentSyncState::Rejected,
            ),
            complete(),
            sync.clone(),
        ),
        (
            "another environment id (recreated): sync again",
            with_settings(EnvironmentTier::Production),
            applied(
                done(),
                9,
                EnvironmentTier::Production,
                EnvironmentSyncState::Applied,
            ),
            complete(),
            sync,
        ),
    ];
    for (name, spec, st, rollout, want) in cases {
        assert_eq!(plan(&spec, &st, &rollout, now()), want, "case {name}");
    }
}

/// With hooks announcing approvals, a pending approval is re-read only every safety-net
/// interval: what polling re-reads after 100 s waits for the full interval.
#[test]
fn approval_safety_net_replaces_the_backoff() {
    let status = St::default()
        .deployment(7, A, Success)
        .approval(ApprovalState::Pending, Some(100), Some(60))
        .0;
    let spec = fixed(A);
    let polled = plan(&spec, &status, &complete(), now());
    assert!(
        matches!(polled, Plan::PollApprovals { id, .. } if id == did(7)),
        "{polled:?}"
    );
    let net = ApprovalPoll::safety_net(Duration::from_secs(600), Duration::from_secs(3600));
    assert_eq!(
        plan_with(
            &spec,
            &status,
            &complete(),
            now(),
            PlanInputs {
                poll: net,
                knowledge: Knowledge::FRESH,
                control: None,
            }
        ),
        nothing(Some(540)),
        "checked 60 s ago: the next read is 540 s away"
    );
    let due = St::default()
        .deployment(7, A, Success)
        .approval(ApprovalState::Pending, Some(900), Some(600))
        .0;
    assert_eq!(
        plan_with(
            &spec,
            &due,
            &complete(),
            now(),
            PlanInputs {
                poll: net,
                knowledge: Knowledge::FRESH,
                control: None,
            }
        ),
        Plan::PollApprovals {
            id: did(7),
            after: Duration::from_secs(900)
        },
        "due; pending 900 s, so the net backs off to 900 s"
    );
}

/// GitLab reads one pending approval costs, hour by hour, as the reconciler would make them:
/// it acts on `PollApprovals` (recording `checked_at`) and sleeps the requeue in between. It
/// starts as the create leaves it: pending, checked by the create's own answer.
/// docs/benchmarks.md quotes these figures.
fn approval_reads(poll: ApprovalPoll, hours: u64) -> Vec<usize> {
    let spec = fixed(A);
    let start = now();
    let mut status = St::default()
        .deployment(7, A, Success)
        .approval(ApprovalState::Pending, Some(0), Some(0))
        .0;
    let mut reads = vec![0; usize::try_from(hours).unwrap()];
    let mut at = start;
    let end = start + SignedDuration::from_secs(i64::try_from(hours * 3600).unwrap());
    while at < end {
        let step = plan_with(
            &spec,
            &status,
            &complete(),
            at,
            PlanInputs {
                poll,
                knowledge: Knowledge::FRESH,
                control: None,
            },
        );
        let wait = match step {
            Plan::PollApprovals { after, .. } => {
                let hour = usize::try_from(at.duration_since(start).as_secs() / 3600).unwrap();
                reads[hour] += 1;
                if let Some(a) = status.approval.as_mut() {
                    a.checked_at = Some(Time(at));
                }
                after
            }
            Plan::Nothing { requeue: Some(d) } => d,
            other => panic!("unexpected step {other:?}"),
        };
        at += SignedDuration::try_from(wait.max(Duration::from_secs(1))).unwrap();
    }
    reads
}

#[test]
fn approval_reads_per_hour_with_and_without_hooks() {
    let polling = approval_reads(ApprovalPoll::POLLING, 3);
    let net = |min, max| {
        approval_reads(
            ApprovalPoll::safety_net(Duration::from_secs(min), Duration::from_secs(max)),
            3,
        )
    };
    // The default safety net: 30 minutes doubling to an hour.
    let default = approval_reads(
        ApprovalPoll::safety_net(
            crate::webhook::hints::SAFETY_NET,
            crate::webhook::hints::SAFETY_NET_MAX,
        ),
        3,
    );
    println!(
        "reads per hour: polling {polling:?}; safety net 10m {:?}; 10m→1h {:?}; 30m→1h (default) {default:?}; 1h {:?}",
        net(600, 600),
        net(600, 3600),
        net(3600, 3600)
    );
    // Polling alone: 10 s doubling to 5 min.
    assert_eq!(polling, vec![16, 12, 12]);
    assert_eq!(
        net(600, 600),
        vec![5, 6, 6],
        "the old default: 10 minutes, fixed"
    );
    assert_eq!(net(600, 3600), vec![3, 1, 1]);
    assert_eq!(default, vec![1, 1, 1]);
    for (hour, (p, d)) in polling.iter().zip(&default).enumerate() {
        assert!(p >= &(10 * d), "hour {hour}: {p} polled vs {d} with hooks");
    }
}

/// An Argo Rollout (resourceVersion 41) rolling out pod hash `new`, waiting at an indefinite
/// pause at canary step `step` (`None`: blue-green).
pub(crate) fn paused_rollout(step: Option<i64>) -> crate::rollout::RolloutControl {
    crate::rollout::RolloutControl {
        resource_version: Some("41".into()),
        observed: true,
        pod_hash: Some("new".into()),
        updating: true,
        aborted: false,
        paused_by_person: false,
        indefinite_pause: Some(crate::rollout::IndefinitePause { step }),
    }
}

/// `spec.approval.promote` on an Argo Rollout: the Rollout follows GitLab's verdict on the
/// deployment the gate holds, and only for that deployment's revision.
#[test]
fn promote_and_abort_follow_the_verdict_on_the_held_revision() {
    use crate::api::deployment::{ApprovalPolicy, PromotedPause};
    use crate::rollout::RolloutControl;

    let mut promote = fixed(B);
    promote.target = TargetRef {
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Rollout".into(),
        name: "web".into(),
    };
    promote.approval = ApprovalPolicy {
        gate: true,
        promote: true,
    };
    let gate_only = ValidatedSpec {
        approval: ApprovalPolicy {
            gate: true,
            promote: false,
        },
        ..promote.clone()
    };
    let paused = paused_rollout;
    let pause = |step: Option<i64>| PromotedPause {
        pod_hash: "new".into(),
        step,
        at: Time(now()),
    };
    let held = |state: ApprovalState, status: GitlabStatus, promoted: Option<PromotedPause>| {
        let mut st = St::default()
            .deployment(8, B, status)
            .approval(state, Some(60), Some(0))
            .0;
        if let Some(d) = st.deployment.as_mut() {
            d.gate = Some(GateRecord {
                held_revision: Some("old".into()),
                approved_at: Some(secs_ago(5)),
                promoted,
                aborted_at: None,
            });
        }
        if let Some(a) = st.approval.as_mut() {
            a.deployment_id = Some(did(8));
        }
        st
    };
    let awaiting = ro(RolloutState::Progressing, Reason::AwaitingPromotion);
    let promote_step = |step: Option<i64>| Plan::PromoteRollout {
        pause: pause(step),
        resource_version: "41".into(),
    };
    let abort = Plan::AbortRollout {
        resource_version: "41".into(),
    };
    use ApprovalState::{Approved, NotRequired, Pending, Rejected};

    let with = |c: RolloutControl| c;
    let cases: Vec<(
        &str,
        &ValidatedSpec,
        GitlabDeploymentStatus,
        RolloutControl,
        Option<Plan>,
    )> = vec![
        (
            "approved, paused at an indefinite canary step: promote",
            &promote,
            held(Approved, Running, None),
            paused(Some(1)),
            Some(promote_step(Some(1))),
        ),
        (
            "approved, blue-green pause: promote",
            &promote,
            held(Approved, Running, None),
            paused(None),
            Some(promote_step(None)),
        ),
        (
            "no approval required: promote",
            &promote,
            held(NotRequired, Running, None),
            paused(Some(0)),
            Some(promote_step(Some(0))),
        ),
        (
            "this very pause promoted before a crash: send it again",
            &promote,
            held(Approved, Running, Some(pause(Some(1)))),
            paused(Some(1)),
            Some(promote_step(Some(1))),
        ),
        (
            "a later pause of the revision is left to people",
            &promote,
            held(Approved, Running, Some(pause(Some(1)))),
            paused(Some(3)),
            None,
        ),
        (
            "pending: hold",
            &promote,
            held(Pending, Running, None),
            paused(Some(1)),
            None,
        ),
        (
            "gate without promote: never touch the Rollout",
            &gate_only,
            held(Approved, Running, None),
            paused(Some(1)),
            None,
        ),
        (
            "a timed or analysis pause is not ours",
            &promote,
            held(Approved, Running, None),
            with(RolloutControl {
                indefinite_pause: None,
                ..paused(Some(1))
            }),
            None,
        ),
        (
            "paused by a person",
            &promote,
            held(Approved, Running, None),
            with(RolloutControl {
                paused_by_person: true,
                ..paused(Some(1))
            }),
            None,
        ),
        (
            "status of an older spec",
            &promote,
            held(Approved, Running, None),
            with(RolloutControl {
                observed: false,
                ..paused(Some(1))
            }),
            None,
        ),
        (
            "nothing new rolling out",
            &promote,
            held(Approved, Running, None),
            with(RolloutControl {
                updating: false,
                ..paused(Some(1))
            }),
            None,
        ),
        (
            "the deployment finished: any later pause is another rollout's",
            &promote,
            held(Approved, Success, None),
            paused(Some(1)),
            None,
        ),
        (
            "rejected while it rolls out: abort",
            &promote,
            held(Rejected, Failed, None),
            paused(Some(1)),
            Some(abort.clone()),
        ),
        (
            "rejected, already aborted",
            &promote,
            held(Rejected, Failed, None),
            with(RolloutControl {
                aborted: true,
                ..paused(Some(1))
            }),
            None,
        ),
        (
            "rejected, gate only: no abort",
            &gate_only,
            held(Rejected, Failed, None),
            paused(Some(1)),
            None,
        ),
    ];
    for (name, spec, status, control, want) in cases {
        let got = plan_with(
            spec,
            &status,
            &awaiting,
            now(),
            PlanInputs {
                control: Some(&control),
                ..PlanInputs::default()
            },
        );
        match want {
            Some(want) => assert_eq!(got, want, "{name}"),
            None => assert!(
                !matches!(got, Plan::PromoteRollout { .. } | Plan::AbortRollout { .. }),
                "{name}: {got:?}"
            ),
        }
    }

    // Aborted once: a person's retry afterwards is not overruled.
    let mut aborted = held(Rejected, Failed, None);
    if let Some(g) = aborted.deployment.as_mut().and_then(|d| d.gate.as_mut()) {
        g.aborted_at = Some(secs_ago(30));
    }
    let got = plan_with(
        &promote,
        &aborted,
        &awaiting,
        now(),
        PlanInputs {
            control: Some(&paused(Some(1))),
            ..PlanInputs::default()
        },
    );
    assert!(!matches!(got, Plan::AbortRollout { .. }), "{got:?}");

    // A pause of another revision: the deployment GitLab approved is for A, the spec wants B.
    let mut other = held(Approved, Running, None);
    if let Some(d) = other.deployment.as_mut() {
        d.sha = A.into();
    }
    let got = plan_with(
        &promote,
        &other,
        &awaiting,
        now(),
        PlanInputs {
            control: Some(&paused(Some(1))),
            ..PlanInputs::default()
        },
    );
    assert!(!matches!(got, Plan::PromoteRollout { .. }), "{got:?}");
}

/// A deployment the gate created before its workload ever existed waits for the workload (the
/// engine applies it once GitLab approves); one whose workload ran and went away is canceled.
#[test]
fn a_gate_deployment_waits_for_a_workload_that_never_existed() {
    let mut spec = fixed(A);
    spec.approval.gate = true;
    let absent = ro(RolloutState::Pending, Reason::TargetNotFound);
    let held = |workload_revision: Option<&str>| {
        let mut st = St::default().deployment(7, A, Running).0;
        if let Some(d) = st.deployment.as_mut() {
            d.gate = Some(GateRecord::default());
            d.workload_revision = workload_revision.map(Into::into);
        }
        st
    };
    let waiting = plan(&spec, &held(None), &absent, now());
    assert!(
        !matches!(
            waiting,
            Plan::ReadDeployment { .. } | Plan::UpdateStatus { .. }
        ),
        "{waiting:?}"
    );
    assert_eq!(
        plan_with(
            &spec,
            &held(Some("5d9c7b8f6")),
            &absent,
            now(),
            PlanInputs::default()
        ),
        Plan::UpdateStatus {
            id: did(7),
            to: Canceled
        },
        "its workload ran and was deleted"
    );
}
