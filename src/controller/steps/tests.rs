//! Sequence tests: the production step executor against an in-memory GitLab that enforces
//! GitLab's `PUT` matrix, counting the calls (spec §7 tracker rows T1–T8), crashes included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use k8s_openapi::jiff::SignedDuration;

use super::*;
use crate::api::deployment::{DeployRevision, DeploymentRecord, GitlabStatus};
use crate::controller::plan::tests::{complete, did, fixed, now, progressing, rev, ro};
use crate::controller::status::{Observation, next_status};
use crate::rollout::{Reason, RolloutState};
use GitlabStatus::{Running, Success};

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

const SETTINGS: StepSettings = StepSettings {
    recovery_grace: Duration::ZERO,
    fetch_merge_requests: true,
};

/// An in-memory GitLab: deployments, the `PUT` matrix, and a log of calls.
#[derive(Default)]
struct MemoryGitlab {
    deployments: Vec<GitlabDeploymentView>,
    calls: Vec<String>,
    /// Creates the client refuses to send (their send deadline passed), then the rest go.
    unsent_creates: usize,
    /// Creates GitLab stores whose answer is lost (a dropped connection), then the rest.
    lost_creates: usize,
    /// The `over_by` of every create asked for.
    over_by: Vec<std::time::Instant>,
}

impl MemoryGitlab {
    fn find(&mut self, id: DeploymentId) -> &mut GitlabDeploymentView {
        self.deployments.iter_mut().find(|d| d.id == id).unwrap()
    }

    /// Flip a deployment's status behind the operator's back (another writer, a lost answer).
    fn set_behind(&mut self, id: i64, to: GitlabStatus) {
        self.find(did(id)).status = to;
    }

    fn post(&mut self, r: &DeployRevision, s: GitlabStatus) -> GitlabDeploymentView {
        let id = did(i64::try_from(self.deployments.len()).unwrap() + 1);
        let view = GitlabDeploymentView {
            id,
            iid: i64::try_from(id.get()).unwrap(),
            ref_name: r.ref_name.clone(),
            sha: r.sha.clone(),
            status: s,
            created_at: Some(now()),
            updated_at: Some(now() - SignedDuration::from_secs(60)),
            environment: None,
            pending_approval_count: None,
            approvals: vec![],
            approval_summary: None,
        };
        self.deployments.push(view.clone());
        self.calls.push(format!("POST {} {s}", &r.sha[..1]));
        view
    }
}

/// The request context of a create in project 1.
fn create_ctx() -> crate::gitlab::RequestContext {
    crate::gitlab::RequestContext::new(
        crate::gitlab::Endpoint::CreateDeployment,
        &crate::gitlab::ProjectId::Id(1),
        None,
    )
}

impl GitlabCalls for MemoryGitlab {
    async fn create(&mut self, r: &CreateRequest) -> Result<GitlabDeploymentView, Error> {
        self.over_by.push(r.over_by);
        if self.unsent_creates > 0 {
            self.unsent_creates -= 1;
            self.calls.push(format!("NOT SENT {}", &r.sha[..1]));
            return Err(Error::gitlab(
                "create deployment",
                crate::gitlab::Error::SendDeadlinePassed {
                    ctx: create_ctx(),
                    late: crate::gitlab::Late::Paused(Duration::from_secs(30)),
                    timeout: Duration::from_secs(30),
                },
            ));
        }
        let revision = DeployRevision {
            sha: r.sha.clone(),
            ref_name: r.ref_name.clone(),
            tag: r.tag,
        };
        let view = self.post(&revision, r.status);
        if self.lost_creates > 0 {
            self.lost_creates -= 1;
            return Err(Error::gitlab(
                "create deployment",
                crate::gitlab::Error::Transport {
                    ctx: create_ctx(),
                    message: "connection closed before message completed".into(),
                },
            ));
        }
        Ok(view)
    }

    async fn read(&mut self, id: DeploymentId) -> Result<GitlabDeploymentView, Error> {
        self.calls.push(format!("GET {id}"));
        Ok(self.find(id).clone())
    }

    async fn set_status(
        &mut self,
        id: DeploymentId,
        to: GitlabStatus,
    ) -> Result<GitlabDeploymentView, Error> {
        let d = self.find(id);
        assert!(
            d.status.can_transition_to(to),
            "GitLab would refuse {} -> {to}",
            d.status
        );
        d.status = to;
        let (sha, view) = (d.sha[..1].to_owned(), d.clone());
        self.calls.push(format!("PUT {sha} {to}"));
        Ok(view)
    }

    async fn find_interrupted(
        &mut self,
        intent: &DeploymentIntent,
        known: &[DeploymentId],
    ) -> Result<Option<GitlabDeploymentView>, Error> {
        self.calls.push("LOOKUP".into());
        Ok(self
            .deployments
            .iter()
            .filter(|d| d.sha == intent.revision.sha && !known.contains(&d.id))
            .min_by_key(|d| d.id)
            .cloned())
    }

    async fn merge_requests(&mut self, id: DeploymentId) -> Result<Vec<MergeRequestView>, Error> {
        self.calls.push(format!("MRS {id}"));
        Ok(vec![])
    }

    async fn sync_environment(
        &mut self,
        environment_id: i64,
        wanted: &EnvironmentSettings,
    ) -> Result<EnvironmentRecord, Error> {
        self.calls.push(format!("ENV {environment_id}"));
        Ok(EnvironmentRecord {
            id: environment_id,
            settings: wanted.clone(),
            state: crate::api::deployment::EnvironmentSyncState::Applied,
            message: String::new(),
        })
    }

    async fn delete(&mut self, id: DeploymentId) -> Result<Deleted, Error> {
        self.calls.push(format!("DELETE {id}"));
        self.deployments.retain(|d| d.id != id);
        Ok(Deleted::Gone)
    }

    async fn identity(&mut self) -> String {
        "memory".into()
    }
}

/// The API server's copy of the status: what survives a crash. `crash_at` fails that write
/// (1-based) as if the process died just before it.
struct MemorySink {
    persisted: GitlabDeploymentStatus,
    writes: usize,
    crash_at: Option<usize>,
}

impl StatusSink for MemorySink {
    async fn write(&mut self, status: &GitlabDeploymentStatus) -> Result<(), Error> {
        self.writes += 1;
        if self.crash_at == Some(self.writes) {
            return Err(Error::Metadata("crash (test)"));
        }
        self.persisted = status.clone();
        Ok(())
    }
}

/// A target that is not an Argo Rollout: the planner never asks for a promote or abort.
struct NoRollout;

impl TargetControl for NoRollout {
    async fn promote(&mut self, _: &str) -> Result<bool, Error> {
        panic!("promote planned for a target that is not a Rollout")
    }
    async fn abort(&mut self, _: &str) -> Result<bool, Error> {
        panic!("abort planned for a target that is not a Rollout")
    }
}

/// One process's view: what it has confirmed (the reconciler's `verified` memory).
struct Process {
    confirmed: Option<DeploymentId>,
}

impl Process {
    fn fresh() -> Self {
        Process { confirmed: None }
    }
}

/// Reconcile until settled, as the reconciler does: execute, then the next status from the
/// outcomes. `crash_at`: the process dies at that status write; what was persisted is
/// returned (the next process starts from it).
async fn drive(
    gitlab: &mut MemoryGitlab,
    process: &mut Process,
    spec: &crate::api::validate::ValidatedSpec,
    mut st: GitlabDeploymentStatus,
    rollout: &RolloutStatus,
    crash_at: Option<usize>,
) -> GitlabDeploymentStatus {
    let wanted = crate::controller::plan::wanted_revision(spec, rollout);
    for _ in 0..10 {
        let mut sink = MemorySink {
            persisted: st.clone(),
            writes: 0,
            crash_at,
        };
        let confirmed = st
            .deployment
            .as_ref()
            .is_none_or(|d| process.confirmed == Some(d.id));
        let pass = Pass {
            spec,
            rollout,
            now: now(),
            poll: ApprovalPoll::POLLING,
            slowed: None,
            knowledge: Knowledge {
                answered: false,
                confirmed,
                refresh: false,
            },
            control: None,
            settings: &SETTINGS,
        };
        let run = execute(&pass, &st, gitlab, &mut sink, &mut NoRollout).await;
        if run.error.is_some() {
            *process = Process::fresh();
            return sink.persisted;
        }
        st = next_status(
            &run.base,
            &Observation {
                rollout: Some(rollout),
                wanted: wanted.as_ref(),
                outcomes: &run.outcomes,
                ..Observation::new(1)
            },
            now(),
        );
        process.confirmed = st.deployment.as_ref().map(|d| d.id);
        if run.requeue != Some(Duration::ZERO) {
            return st;
        }
    }
    panic!("did not settle: {:?}", gitlab.calls);
}

#[tokio::test]
async fn sequences_cost_the_minimum_calls() {
    type Steps = Vec<(crate::api::validate::ValidatedSpec, RolloutStatus)>;
    let cases: Vec<(&str, Steps, Vec<&str>)> = vec![
        (
            "created complete: one POST in total",
            vec![(fixed(A), complete())],
            vec!["POST a success", "MRS 1"],
        ),
        (
            "running then success",
            vec![
                (fixed(A), progressing()),
                (fixed(A), progressing()),
                (fixed(A), complete()),
            ],
            vec!["POST a running", "PUT a success", "MRS 1"],
        ),
        (
            "running then failed",
            vec![
                (fixed(A), progressing()),
                (fixed(A), ro(RolloutState::Failed, Reason::ProgressTimeout)),
            ],
            vec!["POST a running", "PUT a failed"],
        ),
        (
            "T1 superseded: the running one is read before it is canceled",
            vec![(fixed(A), progressing()), (fixed(B), progressing())],
            vec![
                "POST a running",
                "GET 1",
                "PUT a canceled",
                "POST b running",
            ],
        ),
        (
            "T2 after success",
            vec![(fixed(A), complete()), (fixed(B), progressing())],
            vec!["POST a success", "MRS 1", "POST b running"],
        ),
        (
            "T3 target deleted",
            vec![
                (fixed(A), progressing()),
                (fixed(A), ro(RolloutState::Pending, Reason::TargetNotFound)),
            ],
            vec!["POST a running", "GET 1", "PUT a canceled"],
        ),
        (
            "T4 rollback",
            vec![
                (fixed(A), complete()),
                (fixed(B), complete()),
                (fixed(A), progressing()),
                (fixed(A), complete()),
            ],
            vec![
                "POST a success",
                "MRS 1",
                "POST b success",
                "MRS 2",
                "POST a running",
                "PUT a success",
                "MRS 3",
            ],
        ),
        (
            "T6 scale: no calls",
            vec![
                (fixed(A), complete()),
                (fixed(A), progressing()),
                (fixed(A), complete()),
            ],
            vec!["POST a success", "MRS 1"],
        ),
    ];
    for (name, steps, want) in cases {
        let mut gitlab = MemoryGitlab::default();
        let mut process = Process::fresh();
        let mut st = GitlabDeploymentStatus::default();
        for (spec, rollout) in &steps {
            st = drive(&mut gitlab, &mut process, spec, st, rollout, None).await;
        }
        assert_eq!(gitlab.calls, want, "case {name}");
    }
}

#[tokio::test]
async fn crash_between_post_and_id_is_recovered_without_a_duplicate() {
    // T8: the POST happened, the id write did not (write 1 is the intent, 2 the id).
    let mut gitlab = MemoryGitlab::default();
    let mut process = Process::fresh();
    let st = drive(
        &mut gitlab,
        &mut process,
        &fixed(A),
        GitlabDeploymentStatus::default(),
        &progressing(),
        Some(2),
    )
    .await;
    assert!(st.intent.is_some() && st.deployment.is_none());
    let st = drive(&mut gitlab, &mut process, &fixed(A), st, &complete(), None).await;
    assert_eq!(
        gitlab.calls,
        ["POST a running", "LOOKUP", "PUT a success", "MRS 1"]
    );
    assert!(st.intent.is_none());
    assert_eq!(
        st.deployment.as_ref().map(|d| (d.id, d.status)),
        Some((did(1), Success))
    );

    // The crash happened before the POST: the lookup finds nothing and the create happens once.
    let mut gitlab = MemoryGitlab::default();
    let st = drive(
        &mut gitlab,
        &mut process,
        &fixed(A),
        GitlabDeploymentStatus::default(),
        &progressing(),
        Some(1),
    )
    .await;
    assert!(st.intent.is_none(), "the claim itself was not written");
    let st = status::with_intent(&st, &rev(A), "production", Running, None, now());
    drive(
        &mut gitlab,
        &mut process,
        &fixed(A),
        st,
        &progressing(),
        None,
    )
    .await;
    assert_eq!(gitlab.calls, ["LOOKUP", "POST a running"]);
}

#[tokio::test]
async fn a_restarted_process_reads_an_unconfirmed_running_deployment_before_acting() {
    // The previous process recorded `running`, then GitLab moved on (its PUT's answer was lost):
    // the new process reads first and never cancels a finished deployment.
    let mut gitlab = MemoryGitlab::default();
    let mut process = Process::fresh();
    let st = drive(
        &mut gitlab,
        &mut process,
        &fixed(A),
        GitlabDeploymentStatus::default(),
        &progressing(),
        None,
    )
    .await;
    gitlab.set_behind(1, Success);
    let mut restarted = Process::fresh();
    let st = drive(
        &mut gitlab,
        &mut restarted,
        &fixed(B),
        st,
        &progressing(),
        None,
    )
    .await;
    assert_eq!(gitlab.calls, ["POST a running", "GET 1", "POST b running"]);
    assert_eq!(st.history.first().map(|h| h.status), Some(Success));
    // Confirmed by this process: no read on the next pass.
    let before = gitlab.calls.len();
    drive(
        &mut gitlab,
        &mut restarted,
        &fixed(B),
        st,
        &progressing(),
        None,
    )
    .await;
    assert_eq!(gitlab.calls.len(), before);
}

#[tokio::test]
async fn a_settled_status_is_a_fixed_point() {
    // Settled: plan says nothing, and recomputing status changes nothing (no write, no loop).
    let mut gitlab = MemoryGitlab::default();
    let mut process = Process::fresh();
    let st = drive(
        &mut gitlab,
        &mut process,
        &fixed(A),
        GitlabDeploymentStatus::default(),
        &complete(),
        None,
    )
    .await;
    let calls = gitlab.calls.len();
    let again = drive(&mut gitlab, &mut process, &fixed(A), st, &complete(), None).await;
    assert_eq!(gitlab.calls.len(), calls, "no calls once settled");
    let wanted = rev(A);
    let rollout = complete();
    let obs = Observation {
        rollout: Some(&rollout),
        wanted: Some(&wanted),
        ..Observation::new(1)
    };
    let later = now() + SignedDuration::from_secs(3600);
    let recomputed = next_status(&again, &obs, later);
    assert_eq!(again, recomputed);
    assert_eq!(
        serde_json::to_string(&again).unwrap(),
        serde_json::to_string(&recomputed).unwrap()
    );
}

#[tokio::test]
async fn cleanup_reads_before_it_cancels_and_leaves_a_finished_deployment() {
    use crate::api::deployment::DeletionPolicy;
    let record = |status| GitlabDeploymentStatus {
        deployment: Some(DeploymentRecord {
            id: did(1),
            iid: 1,
            sha: A.into(),
            ref_name: "main".into(),
            tag: false,
            status,
            environment_id: None,
            environment_url: None,
            created_at: None,
            updated_at: None,
            workload_revision: None,
            gate: None,
        }),
        ..GitlabDeploymentStatus::default()
    };
    let cases: Vec<(&str, DeletionPolicy, GitlabStatus, Vec<&str>, bool)> = vec![
        (
            "running: read, cancel",
            DeletionPolicy::Cancel,
            Running,
            vec!["GET 1", "PUT a canceled"],
            true,
        ),
        (
            "recorded running but finished in GitLab: read, nothing",
            DeletionPolicy::Cancel,
            Success,
            vec!["GET 1"],
            false,
        ),
        (
            "delete a running one: read, cancel, delete",
            DeletionPolicy::Delete,
            Running,
            vec!["GET 1", "PUT a canceled", "DELETE 1"],
            true,
        ),
        (
            "orphan: nothing",
            DeletionPolicy::Orphan,
            Running,
            vec![],
            false,
        ),
    ];
    for (name, policy, in_gitlab, want, said) in cases {
        let mut gitlab = MemoryGitlab::default();
        gitlab.post(&rev(A), Running);
        gitlab.set_behind(1, in_gitlab);
        gitlab.calls.clear();
        let mut st = record(Running);
        let end = execute_cleanup(policy, &mut st, &mut gitlab, now())
            .await
            .unwrap();
        assert_eq!(gitlab.calls, want, "case {name}");
        assert_eq!(
            matches!(end, Cleaned::Said(_)),
            said,
            "case {name}: {end:?}"
        );
    }
    // Nothing recorded: nothing to do.
    let mut gitlab = MemoryGitlab::default();
    let mut st = GitlabDeploymentStatus::default();
    let end = execute_cleanup(DeletionPolicy::Cancel, &mut st, &mut gitlab, now())
        .await
        .unwrap();
    assert_eq!(end, Cleaned::Done);
    assert!(gitlab.calls.is_empty());
}

/// An Argo Rollout as the API server holds it: a resourceVersion and where it is paused.
struct MemoryRollout {
    rv: u64,
    step: Option<i64>,
    patches: Vec<String>,
}

impl MemoryRollout {
    fn facts(&self) -> crate::rollout::RolloutControl {
        crate::rollout::RolloutControl {
            resource_version: Some(self.rv.to_string()),
            indefinite_pause: self
                .step
                .map(|s| crate::rollout::IndefinitePause { step: Some(s) }),
            ..crate::controller::plan::tests::paused_rollout(None)
        }
    }
}

impl MemoryRollout {
    /// A patch with a resourceVersion precondition, as the API server applies it.
    fn patch(&mut self, resource_version: &str, what: String) -> bool {
        if resource_version != self.rv.to_string() {
            return false;
        }
        self.patches.push(what);
        self.rv += 1;
        true
    }
}

impl TargetControl for MemoryRollout {
    async fn promote(&mut self, resource_version: &str) -> Result<bool, Error> {
        let sent = self.patch(resource_version, format!("promote step {:?}", self.step));
        if sent {
            self.step = None;
        }
        Ok(sent)
    }
    async fn abort(&mut self, resource_version: &str) -> Result<bool, Error> {
        Ok(self.patch(resource_version, "abort".into()))
    }
}

/// `spec.approval.promote`: one promote per revision whatever crashes, and never a patch
/// decided on a Rollout that has moved on.
#[tokio::test]
async fn a_promote_is_sent_once_per_revision_across_crashes() {
    use crate::api::deployment::{
        ApprovalPolicy, ApprovalState, ApprovalStatus, GateRecord, TargetRef,
    };

    let mut spec = fixed(B);
    spec.target = TargetRef {
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Rollout".into(),
        name: "web".into(),
    };
    spec.approval = ApprovalPolicy {
        gate: true,
        promote: true,
    };
    let mut gitlab = MemoryGitlab::default();
    let view = gitlab.post(&rev(B), Running);
    let mut approved = GitlabDeploymentStatus::default();
    status::apply(
        &mut approved,
        &status::Outcome::Recorded { view, tag: false },
        now(),
    );
    if let Some(d) = approved.deployment.as_mut() {
        d.gate = Some(GateRecord {
            held_revision: Some("old".into()),
            ..GateRecord::default()
        });
    }
    approved.approval = Some(ApprovalStatus {
        state: ApprovalState::Approved,
        deployment_id: approved.deployment.as_ref().map(|d| d.id),
        required: 1,
        ..ApprovalStatus::default()
    });
    let awaiting = ro(RolloutState::Progressing, Reason::AwaitingPromotion);
    let mut rollout = MemoryRollout {
        rv: 41,
        step: Some(1),
        patches: Vec::new(),
    };
    let setup_calls = gitlab.calls.len();

    async fn once(
        spec: &crate::api::validate::ValidatedSpec,
        rollout_status: &RolloutStatus,
        st: &GitlabDeploymentStatus,
        facts: &crate::rollout::RolloutControl,
        gitlab: &mut MemoryGitlab,
        target: &mut MemoryRollout,
        crash_at: Option<usize>,
    ) -> (Executed, GitlabDeploymentStatus) {
        let mut sink = MemorySink {
            persisted: st.clone(),
            writes: 0,
            crash_at,
        };
        let pass = Pass {
            spec,
            rollout: rollout_status,
            now: now(),
            poll: ApprovalPoll::POLLING,
            slowed: None,
            knowledge: Knowledge {
                answered: false,
                confirmed: true,
                refresh: false,
            },
            control: Some(facts),
            settings: &SETTINGS,
        };
        let run = execute(&pass, st, gitlab, &mut sink, target).await;
        (run, sink.persisted)
    }

    // The process dies writing the promote down: nothing is sent.
    let facts = rollout.facts();
    let (run, persisted) = once(
        &spec,
        &awaiting,
        &approved,
        &facts,
        &mut gitlab,
        &mut rollout,
        Some(1),
    )
    .await;
    assert!(run.error.is_some());
    assert!(rollout.patches.is_empty(), "no patch before the record");
    assert_eq!(persisted, approved);

    // The next process promotes; it dies before its final status write (only the
    // write-ahead record survives). The Argo controller moves on to the next indefinite pause.
    let (run, persisted) = once(
        &spec,
        &awaiting,
        &approved,
        &facts,
        &mut gitlab,
        &mut rollout,
        None,
    )
    .await;
    assert!(run.error.is_none());
    assert_eq!(rollout.patches, ["promote step Some(1)"]);
    let promoted = persisted
        .deployment
        .as_ref()
        .and_then(|d| d.gate.as_ref())
        .and_then(|g| g.promoted.clone())
        .expect("the promote is recorded before it is sent");
    assert_eq!(
        (promoted.pod_hash.as_str(), promoted.step),
        ("new", Some(1))
    );

    // A reconcile that still sees the pause in a lagging cache: the precondition stops it.
    let (_, _) = once(
        &spec,
        &awaiting,
        &persisted,
        &facts,
        &mut gitlab,
        &mut rollout,
        None,
    )
    .await;
    assert_eq!(
        rollout.patches.len(),
        1,
        "a patch decided on an old resourceVersion is not applied"
    );

    // The Rollout waits at its next indefinite pause: that one is for people.
    rollout.step = Some(3);
    rollout.rv += 1;
    let facts = rollout.facts();
    let (run, _) = once(
        &spec,
        &awaiting,
        &persisted,
        &facts,
        &mut gitlab,
        &mut rollout,
        None,
    )
    .await;
    assert!(run.error.is_none());
    assert_eq!(rollout.patches.len(), 1, "{:?}", rollout.patches);
    assert_eq!(
        gitlab.calls.len(),
        setup_calls,
        "promoting costs no GitLab call: {:?}",
        gitlab.calls
    );
}

/// The send deadline's arithmetic: a claim's lifetime never outlasts the moment a recovering
/// process may give it up (the same `claim_age` rule recovery applies), and it is tight on a
/// whole-second grace, so a `POST` the client starts by `lifetime − timeout` is over first.
#[test]
fn a_claim_lives_until_recovery_may_give_it_up_and_no_longer() {
    let at = |secs: i64, ms: i64| {
        Timestamp::new(1_790_000_000 + secs, 0).unwrap() + SignedDuration::from_millis(ms)
    };
    let s = Duration::from_secs;
    let ms = Duration::from_millis;
    // (case, stamp, grace, timeout, lifetime, last start after the stamp: None = never)
    let cases = [
        ("on the second", at(0, 0), s(45), s(30), s(45), Some(s(15))),
        (
            "late in the second",
            at(0, 900),
            s(45),
            s(30),
            ms(44_100),
            Some(ms(14_100)),
        ),
        (
            "the tests' settings",
            at(3, 250),
            s(7),
            s(5),
            ms(6_750),
            Some(ms(1_750)),
        ),
        (
            "grace equal to the timeout",
            at(0, 1),
            s(30),
            s(30),
            ms(29_999),
            None,
        ),
        ("grace below the timeout", at(0, 0), s(2), s(5), s(2), None),
        (
            "no grace",
            at(0, 500),
            Duration::ZERO,
            s(5),
            Duration::ZERO,
            None,
        ),
        (
            "a fractional grace",
            at(0, 900),
            ms(2_500),
            s(1),
            ms(1_600),
            Some(ms(600)),
        ),
    ];
    for (name, stamp, grace, timeout, lifetime, last_start) in cases {
        let got = claim_lifetime(stamp, grace);
        assert_eq!(got, lifetime, "case {name}");
        assert_eq!(
            got.checked_sub(timeout).filter(|d| !d.is_zero()),
            last_start,
            "case {name}"
        );
        // As recovery sees it: the claim is recorded in whole seconds, and not given up while
        // its age is under the grace, up to the end of its lifetime.
        let recorded = crate::api::conditions::whole_seconds(stamp).0;
        let end = stamp + SignedDuration::try_from(got).unwrap();
        let just_before = end - SignedDuration::from_nanos(1);
        assert!(
            got.is_zero() || claim_age(recorded, just_before) < grace,
            "case {name}: voidable before its lifetime ends"
        );
        if grace.subsec_nanos() == 0 {
            assert!(claim_age(recorded, end) >= grace, "case {name}: not tight");
        }
    }
}

/// A polling pass whose recorded deployment this process has confirmed, for the claim tests.
fn confirmed_pass<'a>(
    spec: &'a ValidatedSpec,
    rollout: &'a RolloutStatus,
    settings: &'a StepSettings,
) -> Pass<'a> {
    Pass {
        spec,
        rollout,
        now: now(),
        poll: ApprovalPoll::POLLING,
        slowed: None,
        knowledge: Knowledge {
            answered: false,
            confirmed: true,
            refresh: false,
        },
        control: None,
        settings,
    }
}

#[tokio::test]
async fn a_create_not_sent_in_time_voids_its_claim_at_once() {
    let settings = StepSettings {
        recovery_grace: Duration::from_secs(45),
        fetch_merge_requests: false,
    };
    let spec = fixed(A);
    let rollout = progressing();
    let pass = confirmed_pass(&spec, &rollout, &settings);
    let mut gitlab = MemoryGitlab {
        unsent_creates: 1,
        ..MemoryGitlab::default()
    };
    let mut sink = MemorySink {
        persisted: GitlabDeploymentStatus::default(),
        writes: 0,
        crash_at: None,
    };
    let before = std::time::Instant::now();
    let run = execute(
        &pass,
        &GitlabDeploymentStatus::default(),
        &mut gitlab,
        &mut sink,
        &mut NoRollout,
    )
    .await;
    let err = run.error.as_ref().expect("the refusal ends the pass");
    assert!(err.was_not_sent(), "{err}");
    assert_eq!(err.kind(), crate::gitlab::ErrorKind::Transient);
    assert!(sink.persisted.intent.is_some(), "claimed before the create");
    // The create must be over before another process may give the claim up: 45 s after the
    // claim as recorded, less the stamp's fraction of a second.
    let over_by = gitlab.over_by[0];
    assert!(
        over_by > before + Duration::from_secs(44)
            && over_by <= std::time::Instant::now() + Duration::from_secs(45)
    );
    // What the reconciler writes with the error: the claim is void, nothing to look up.
    let st = run.current(now());
    assert!(st.intent.is_none(), "void at once: nothing was sent");
    // The next pass claims again and creates at once: no lookup, no wait for the grace.
    let run = execute(&pass, &st, &mut gitlab, &mut sink, &mut NoRollout).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(gitlab.calls, ["NOT SENT a", "POST a running"]);
    assert_eq!(run.current(now()).deployment.map(|d| d.id), Some(did(1)));
}

/// Found by the chaos suite (seed 17649859610359075179: two `failed` deployments of one
/// revision, 64 ms apart). One pass voids an old claim (its lookup found nothing), claims
/// again and POSTs; GitLab stores the deployment but the answer is lost. What the reconciler
/// then writes must still hold the new claim: the old claim's void came first and must not
/// clear it, or the next pass creates a second deployment instead of looking the first up.
#[tokio::test]
async fn a_void_earlier_in_the_pass_does_not_clear_the_claim_made_after_it() {
    let spec = fixed(A);
    let rollout = progressing();
    let pass = confirmed_pass(&spec, &rollout, &SETTINGS);
    let old_claim = status::with_intent(
        &GitlabDeploymentStatus::default(),
        &rev(A),
        "production",
        Running,
        None,
        now() - SignedDuration::from_secs(60),
    );
    let mut gitlab = MemoryGitlab {
        lost_creates: 1,
        ..MemoryGitlab::default()
    };
    let mut sink = MemorySink {
        persisted: old_claim.clone(),
        writes: 0,
        crash_at: None,
    };
    let run = execute(&pass, &old_claim, &mut gitlab, &mut sink, &mut NoRollout).await;
    assert!(run.error.is_some(), "the create's answer was lost");
    assert_eq!(gitlab.calls, ["LOOKUP", "POST a running"]);
    // What the reconciler writes with the error: the new claim, not the void of the old one.
    let written = run.current(now());
    let claim = written.intent.as_ref().expect("the new claim survives");
    assert_eq!(claim.claimed_at.0, now(), "the new claim, not the old one");
    let run = execute(&pass, &written, &mut gitlab, &mut sink, &mut NoRollout).await;
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(
        gitlab.calls,
        ["LOOKUP", "POST a running", "LOOKUP"],
        "adopted, not created twice"
    );
    assert_eq!(gitlab.deployments.len(), 1);
    assert_eq!(run.current(now()).deployment.map(|d| d.id), Some(did(1)));
}
