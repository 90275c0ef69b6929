//! Pure decision: what should happen next for one GitlabDeployment.
//!
//! [`plan`] reads the validated spec, the current status and the target's rollout, and returns
//! the few GitLab calls to make. It guarantees:
//! - at most one create per revision: an intent without an id is recovered by lookup first;
//! - one `PUT` per real transition, and never one GitLab refuses (running→running,
//!   success→success, anything→running);
//! - a finished GitLab deployment is never changed again (a success stays a success, a
//!   timed-out rollout stays failed; GitLab would accept failed→success but the history would
//!   lie about when it failed);
//! - a newer revision cancels a still-running older one *before* the new one is created, so
//!   GitLab never shows two running deployments (§3.6);
//! - a settled resource costs no calls and no requeue;
//! - a recorded status is acted on only when it is known to be GitLab's: a cancel (GitLab
//!   accepts `success → canceled`, which would rewrite history) always reads the deployment in
//!   the same pass first, and a `running` record this process has not confirmed (a crash may
//!   have lost a `PUT`'s answer) is read before anything else ([`Knowledge`]).
//!
//! [`cleanup`] is the finalizer's counterpart: what deletion does per `deletionPolicy`.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::api::conditions::whole_seconds;
use crate::api::deployment::{
    ApprovalState, DeletionPolicy, DeployRevision, DeploymentId, DeploymentIntent,
    DeploymentRecord, GateRecord, GitlabDeploymentStatus, GitlabStatus, PromotedPause,
};
use crate::api::validate::{RevisionSource, ValidatedSpec};
use crate::controller::status::{approval_text, current_approval};
use crate::controller::status::{rollout_clock, rollout_key};
use crate::rollout::{
    Reason, RolloutControl, RolloutState, RolloutStatus, TargetObject, TrackCtx, evaluate,
    format_go_duration,
};

/// Re-evaluate a progressing or pending target this often even without watch events, so
/// `progressTimeout` fires on time (spec §8: 15–30 s).
pub const PROGRESS_REQUEUE: Duration = Duration::from_secs(30);
/// First approval poll interval; doubles up to [`APPROVAL_POLL_MAX`].
pub const APPROVAL_POLL_MIN: Duration = Duration::from_secs(10);
pub const APPROVAL_POLL_MAX: Duration = Duration::from_secs(300);

/// Bounds of the approval poll interval: it starts at `min` and doubles with the time the
/// approval has been pending, up to `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApprovalPoll {
    pub min: Duration,
    pub max: Duration,
}

impl ApprovalPoll {
    /// Polling alone finds approvals: [`APPROVAL_POLL_MIN`] doubling to [`APPROVAL_POLL_MAX`].
    pub const POLLING: ApprovalPoll = ApprovalPoll {
        min: APPROVAL_POLL_MIN,
        max: APPROVAL_POLL_MAX,
    };

    /// GitLab's hooks announce approvals; polling is only a safety net for a lost hook, and
    /// backs off as polling does: `min` after the approval became pending, doubling with the
    /// time pending up to `max`.
    pub fn safety_net(min: Duration, max: Duration) -> ApprovalPoll {
        ApprovalPoll {
            min,
            max: max.max(min),
        }
    }
}
/// GitLab links merge requests asynchronously after `success` (seconds); wait this long after
/// the success before the one fetch. (Delay length unverified; GitLab documents no bound.)
pub const MERGE_REQUEST_DELAY: Duration = Duration::from_secs(5);

/// What the planner knows about the recorded current deployment besides the status itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Knowledge {
    /// GitLab answered about the current deployment earlier in this pass (create, update,
    /// read): its recorded status is GitLab's now.
    pub answered: bool,
    /// This process has confirmed the recorded status since it last changed (see
    /// `Context::verified` in the reconciler). After a crash, or a status write that failed
    /// after a `PUT`, a recorded `running` may be stale.
    pub confirmed: bool,
    /// A person (the refresh annotation) or a GitLab hook asked for a fresh read.
    pub refresh: bool,
}

impl Knowledge {
    /// Everything recorded is known to be GitLab's and nobody asked for a read.
    pub const FRESH: Knowledge = Knowledge {
        answered: true,
        confirmed: true,
        refresh: false,
    };
}

/// The inputs of a plan besides the spec, status and rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanInputs<'a> {
    pub poll: ApprovalPoll,
    pub knowledge: Knowledge,
    /// The target's Argo Rollout facts (`None` for other kinds), for `spec.approval.promote`.
    pub control: Option<&'a RolloutControl>,
}

impl Default for PlanInputs<'_> {
    fn default() -> Self {
        PlanInputs {
            poll: ApprovalPoll::POLLING,
            knowledge: Knowledge::FRESH,
            control: None,
        }
    }
}

/// The next step. The step executor performs it, records what GitLab answered, and plans
/// again (each step is one or two GitLab calls).
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Record the intent in status (resourceVersion precondition), then `POST` the deployment
    /// with `initial_status`: `running`, or `success`/`failed` directly when the rollout had
    /// already ended (one call in total).
    CreateDeployment {
        revision: DeployRevision,
        initial_status: GitlabStatus,
        /// Set when the approval gate creates it ahead of its rollout.
        gate: Option<GateRecord>,
    },
    /// An intent without a recorded id: a crash happened between intent and id. Look the
    /// deployment up (environment, sha, ref, our user, `updated_after` the claim time) and
    /// record it; clear the intent when none exists so the next reconcile creates it.
    RecoverDeployment { intent: DeploymentIntent },
    /// `GET` the current deployment `id` and record it, then plan again: before a cancel, on a
    /// refresh request, and for a running record this process has not confirmed.
    ReadDeployment { id: DeploymentId },
    /// `PUT status=to` on deployment `id`.
    UpdateStatus { id: DeploymentId, to: GitlabStatus },
    /// Cancel the still-running deployment `old_id` (a newer revision started), then do `then`.
    Supersede {
        old_id: DeploymentId,
        then: Box<Plan>,
    },
    /// `GET` deployment `id` to refresh its pending approvals, then end the pass and come back
    /// after `after`.
    PollApprovals { id: DeploymentId, after: Duration },
    /// `GET` the merge requests GitLab linked to deployment `id` (once, after success).
    FetchMergeRequests { id: DeploymentId },
    /// Bring GitLab environment `environment_id` in line with `spec.environmentSettings`: one
    /// `GET` to compare, one `PUT` when it differs (and an agent lookup when named by name).
    SyncEnvironment { environment_id: i64 },
    /// Record `pause` in the gate's status (resourceVersion precondition), then promote the
    /// target Argo Rollout with the patch `kubectl argo rollouts promote` sends, preconditioned
    /// on the Rollout's `resource_version`; end the pass (the Rollout's watch brings the rest).
    PromoteRollout {
        pause: PromotedPause,
        resource_version: String,
    },
    /// Record the abort in the gate's status, then abort the target Argo Rollout of a rejected
    /// revision (`status.abort: true`, as `kubectl argo rollouts abort`).
    AbortRollout { resource_version: String },
    /// No GitLab call. `requeue: None` means wait for a watch event.
    Nothing { requeue: Option<Duration> },
}

impl Plan {
    const SETTLED: Plan = Plan::Nothing { requeue: None };
}

/// The target's rollout as this resource sees it, and a note when the operator had to decide
/// which rollout carries a changed `spec.sha` (see [`sha_change`]); the note becomes an Event.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub rollout: RolloutStatus,
    pub attributed: Option<String>,
}

/// Evaluate the target's rollout for this resource: fills `wanted_sha`, `revision_from` and
/// `progress_timeout` from the spec into `base` (which carries the operator's policies, pods
/// and new pod hash), and runs the `progressTimeout` clock recorded in `status` only when it
/// belongs to the revision now rolling out. A new revision never inherits an older one's clock
/// (that would time it out at once); its clock starts when the status records it.
pub fn evaluate_rollout(
    spec: &ValidatedSpec,
    status: &GitlabDeploymentStatus,
    target: Option<&TargetObject>,
    base: &TrackCtx,
    now: Timestamp,
) -> Evaluation {
    let mut ctx = base.clone();
    ctx.progress_timeout = spec.progress_timeout;
    ctx.revision_from = spec.revision_from().cloned();
    ctx.started_at = None;
    ctx.paused_for = Duration::ZERO;
    if let RevisionSource::Fixed(rev) = &spec.revision {
        ctx.wanted_sha = Some(rev.sha.clone());
    }
    let first = with_target_name(evaluate(target, &ctx, now), spec);
    let attributed = match sha_change(spec, status, &first, now) {
        ShaChange::Wait(waiting) => {
            return Evaluation {
                rollout: waiting,
                attributed: None,
            };
        }
        ShaChange::Follow => None,
        ShaChange::Attribute(note) => Some(note),
    };
    let rollout = clocked(spec, status, target, &mut ctx, first, now);
    match gate_hold(spec, status, rollout, now) {
        Gate::Hold(rollout) => Evaluation {
            rollout,
            attributed: None,
        },
        Gate::Through(rollout, note) => Evaluation {
            rollout,
            attributed: note.or(attributed),
        },
    }
}

/// What the approval gate makes of the evaluated rollout.
enum Gate {
    /// Nothing is reported yet: this `Pending` status says why.
    Hold(RolloutStatus),
    /// The rollout as evaluated, with an Event note when the gate had to attribute it.
    Through(RolloutStatus, Option<String>),
}

/// With `spec.approval.gate`, a deployment the gate created is held until GitLab approves
/// it; after that, only a rollout that started after the deployment was created (a workload
/// revision other than the one it held) is this revision's. If none starts within
/// `rolloutStartGrace` of the approval, the workload as it stands is reported, with an Event
/// (a commit that changed nothing the workload runs).
fn gate_hold(
    spec: &ValidatedSpec,
    status: &GitlabDeploymentStatus,
    rollout: RolloutStatus,
    now: Timestamp,
) -> Gate {
    let held = status
        .deployment
        .as_ref()
        .filter(|d| spec.approval.gate && !d.status.is_finished())
        .filter(|d| wanted_revision(spec, &rollout).is_some_and(|w| d.revision() == w))
        .and_then(|d| d.gate.as_ref().map(|g| (d, g)));
    let Some((dep, gate)) = held else {
        return Gate::Through(rollout, None);
    };
    let short = short_sha(&dep.sha);
    let (kind, name) = (&spec.target.kind, &spec.target.name);
    let approval = current_approval(status);
    if !matches!(
        approval,
        Some(ApprovalState::Approved | ApprovalState::NotRequired)
    ) {
        return Gate::Hold(RolloutStatus {
            state: RolloutState::Pending,
            reason: Reason::AwaitingApproval,
            message: approval_message(spec, status, dep.id, &short),
            revision: rollout.revision,
        });
    }
    let running = rollout.workload_revision();
    let rolled = running.is_some() && running != gate.held_revision;
    let absent = rollout.reason == Reason::TargetNotFound;
    if rolled || (!absent && !rollout.is_terminal()) || (absent && gate.held_revision.is_some()) {
        return Gate::Through(rollout, None);
    }
    let since = gate.approved_at.as_ref().map_or(now, |t| t.0);
    let waited = since_secs(since, now);
    if !absent && waited >= spec.rollout_start_grace {
        let note = format!(
            "No rollout of {kind} {name:?} started within {} after GitLab approved {short}; reporting the revision it runs as {short}",
            format_go_duration(spec.rollout_start_grace)
        );
        return Gate::Through(rollout, Some(note));
    }
    let waiting_for = if absent {
        format!("{kind} {name:?} to be created")
    } else {
        format!(
            "{kind} {name:?} to roll it out (up to {})",
            format_go_duration(spec.rollout_start_grace)
        )
    };
    Gate::Hold(RolloutStatus {
        state: RolloutState::Pending,
        reason: Reason::RevisionNotRolledOut,
        message: format!("GitLab approved {short}; waiting for {waiting_for}"),
        revision: rollout.revision,
    })
}

/// Where the approval of a held deployment stands, and what a person does about it.
fn approval_message(
    spec: &ValidatedSpec,
    status: &GitlabDeploymentStatus,
    id: DeploymentId,
    short: &str,
) -> String {
    let text = approval_text(status, id, short);
    if current_approval(status) == Some(ApprovalState::Rejected) {
        return text;
    }
    format!(
        "{text}: approve it in GitLab or run kubectl gld approve {} -n {}",
        spec.name, spec.namespace
    )
}

/// The second half of [`evaluate_rollout`]: the wanted commit of a GitOps object and the
/// recorded `progressTimeout` clock.
fn clocked(
    spec: &ValidatedSpec,
    status: &GitlabDeploymentStatus,
    target: Option<&TargetObject>,
    ctx: &mut TrackCtx,
    first: RolloutStatus,
    now: Timestamp,
) -> RolloutStatus {
    // revisionFrom on a GitOps object: the wanted commit is the one the object carries, so a
    // second pass checks the object has applied it.
    let derived_wanted = ctx.wanted_sha.is_none() && first.commit_sha().is_some();
    if derived_wanted {
        ctx.wanted_sha = first.commit_sha().map(str::to_owned);
    }
    let wanted = wanted_revision(spec, &first);
    let key = rollout_key(&first, wanted.as_ref());
    let same_revision = status.rollout.as_ref().is_some_and(|r| r.revision == key);
    if !same_revision && !derived_wanted {
        return first;
    }
    if !same_revision {
        return with_target_name(evaluate(target, ctx, now), spec);
    }
    let (started_at, paused_for) = rollout_clock(status, now);
    ctx.started_at = started_at;
    ctx.paused_for = paused_for;
    with_target_name(evaluate(target, ctx, now), spec)
}

/// Which rollout carries a fixed `spec.sha` that changed (the previous sha's deployment is the
/// current one). The workload and the resource are applied in either order, by CI jobs and
/// GitOps syncs alike, so the workload's state alone cannot tell:
/// - a rollout under way carries the new sha (image first, sha patched mid-rollout; or sha
///   first and the rollout has started);
/// - a rollout that finished within `rolloutStartGrace` before the operator saw the new sha
///   carries it too (image first, sha patched after `kubectl rollout status`) — ambiguous
///   with a config-only rollout just before the sha change, so it is said in an Event;
/// - otherwise (the workload still runs the revision the previous sha finished on, or one it
///   finished long ago) a rollout has yet to come (sha first): wait for it, at most
///   `rolloutStartGrace`; if none starts, the workload as it stands is the new sha's (a sha
///   whose commit changed nothing the workload runs), also said in an Event.
///
/// A config-only rollout under an unchanged sha never reaches here (same sha), so it creates
/// no GitLab deployment.
#[derive(Clone, Debug, PartialEq)]
enum ShaChange {
    /// Nothing to decide: evaluate the workload as usual.
    Follow,
    /// Evaluate as usual, and tell people which rollout was taken for the new sha.
    Attribute(String),
    /// No rollout carries the new sha yet: report nothing (this `Pending` status).
    Wait(RolloutStatus),
}

fn sha_change(
    spec: &ValidatedSpec,
    status: &GitlabDeploymentStatus,
    rollout: &RolloutStatus,
    now: Timestamp,
) -> ShaChange {
    let RevisionSource::Fixed(wanted) = &spec.revision else {
        return ShaChange::Follow;
    };
    let Some(current) = status.deployment.as_ref().filter(|d| d.sha != wanted.sha) else {
        return ShaChange::Follow;
    };
    // Kinds without a revision identity, and statuses written before the operator recorded
    // one, cannot be told apart: evaluate as usual (the behaviour before the guard existed).
    let (Some(seen), Some(running)) = (
        current.workload_revision.as_deref(),
        rollout.workload_revision(),
    ) else {
        return ShaChange::Follow;
    };
    let grace = spec.rollout_start_grace;
    let kind = &spec.target.kind;
    let name = &spec.target.name;
    let new_short = short_sha(&wanted.sha);
    let old_short = short_sha(&current.sha);

    let key = rollout_key(rollout, Some(wanted));
    let recorded = status.rollout.as_ref().filter(|r| r.revision == key);
    // Followed before: a rollout was under way when the new sha was first seen, and it is
    // still the one the workload runs (its GitLab deployment is not created yet, e.g. while
    // the controller had not observed the generation).
    if recorded.is_some_and(|r| {
        r.reason != Reason::RevisionNotRolledOut.as_str()
            && r.workload_revision.as_deref() == Some(running.as_str())
    }) {
        return ShaChange::Follow;
    }
    // Already waiting for this sha (this or an earlier reconcile, before a restart maybe).
    if let Some(wait) = recorded.filter(|r| r.reason == Reason::RevisionNotRolledOut.as_str())
        && let Some(since) = wait.waiting_since.as_ref().map(|t| t.0)
    {
        if wait.workload_revision.as_deref() != Some(running.as_str()) {
            // The workload moved while we waited: that rollout carries the new sha.
            return ShaChange::Follow;
        }
        if since_secs(since, now) >= grace {
            return ShaChange::Attribute(format!(
                "No rollout of {kind} {name:?} started within {} after spec.sha changed to {new_short}; reporting the revision it runs ({running}) as {new_short}",
                format_go_duration(grace)
            ));
        }
        return ShaChange::Wait(waiting(
            spec,
            rollout,
            &new_short,
            &old_short,
            seen == running,
        ));
    }

    if seen != running {
        if !rollout.is_terminal() {
            return ShaChange::Follow;
        }
        let old_key = rollout_key(rollout, Some(&current.revision()));
        let finished_just_before = status
            .rollout
            .as_ref()
            .filter(|r| {
                r.revision == old_key && r.workload_revision.as_deref() == Some(running.as_str())
            })
            .and_then(|r| r.finished_at.as_ref())
            .map(|t| since_secs(t.0, now))
            .filter(|ago| *ago <= grace);
        if let Some(ago) = finished_just_before {
            return ShaChange::Attribute(format!(
                "{kind} {name:?} finished rolling out {running} {} before spec.sha changed to {new_short}; reporting that rollout as {new_short}",
                format_go_duration(ago)
            ));
        }
    }
    ShaChange::Wait(waiting(
        spec,
        rollout,
        &new_short,
        &old_short,
        seen == running,
    ))
}

/// The `Pending` status of a changed sha that waits for its rollout.
fn waiting(
    spec: &ValidatedSpec,
    rollout: &RolloutStatus,
    new_short: &str,
    old_short: &str,
    on_reported: bool,
) -> RolloutStatus {
    let (kind, name) = (&spec.target.kind, &spec.target.name);
    let runs = if on_reported {
        format!("still runs the revision reported for {old_short}")
    } else {
        "has not started a rollout since".to_owned()
    };
    RolloutStatus {
        state: RolloutState::Pending,
        reason: Reason::RevisionNotRolledOut,
        message: format!(
            "spec.sha is now {new_short}, but {kind} {name:?} {runs}; waiting up to {} for it to roll out",
            format_go_duration(spec.rollout_start_grace)
        ),
        revision: rollout.revision.clone(),
    }
}

fn short_sha(sha: &str) -> String {
    sha.chars().take(7).collect()
}

/// How long a changed sha still waits for its rollout (the requeue of a waiting resource).
fn until_grace_ends(
    spec: &ValidatedSpec,
    status: &GitlabDeploymentStatus,
    now: Timestamp,
) -> Duration {
    let since = status
        .rollout
        .as_ref()
        .and_then(|r| r.waiting_since.as_ref())
        .map_or(now, |t| t.0);
    spec.rollout_start_grace
        .saturating_sub(since_secs(since, now))
        .max(Duration::from_secs(1))
}

/// Whether this pass recorded the first deployment of a new sha (the moment a rollout was
/// taken for it).
pub fn reported_new_sha(old: &GitlabDeploymentStatus, new: &GitlabDeploymentStatus) -> bool {
    new.deployment
        .as_ref()
        .is_some_and(|n| old.deployment.as_ref().is_none_or(|o| o.sha != n.sha))
}

/// An absent target has no name to print; the spec knows it (§6 "not found").
fn with_target_name(mut rollout: RolloutStatus, spec: &ValidatedSpec) -> RolloutStatus {
    if rollout.reason == Reason::TargetNotFound {
        rollout.message = format!(
            "Waiting for {} {:?} to be created",
            spec.target.kind, spec.target.name
        );
    }
    rollout
}

/// The GitLab status a rollout state maps to; `None` when nothing can be concluded.
pub fn gitlab_status_for(rollout: &RolloutStatus) -> Option<GitlabStatus> {
    match rollout.state {
        RolloutState::Progressing => Some(GitlabStatus::Running),
        RolloutState::Succeeded => Some(GitlabStatus::Success),
        RolloutState::Failed => Some(GitlabStatus::Failed),
        RolloutState::Pending | RolloutState::Unknown => None,
    }
}

/// The GitLab revision the resource wants reported now: `spec.sha`, or the commit the target
/// carries through `revisionFrom` (`None` until it carries one).
pub fn wanted_revision(spec: &ValidatedSpec, rollout: &RolloutStatus) -> Option<DeployRevision> {
    spec.wanted_revision(rollout.commit_sha(), rollout.commit_ref())
}

/// Decide the next step (see the module docs for the guarantees). The environment settings
/// come last: they never hold up reporting a rollout.
pub fn plan(
    spec: &ValidatedSpec,
    status: &GitlabDeploymentStatus,
    rollout: &RolloutStatus,
    now: Timestamp,
) -> Plan {
    plan_with(spec, status, rollout, now, PlanInputs::default())
}

/// [`plan`], with what is known about the recorded deployment and the approval poll bounds.
pub fn plan_with(
    spec: &ValidatedSpec,
    status: &GitlabDeploymentStatus,
    rollout: &RolloutStatus,
    now: Timestamp,
    inputs: PlanInputs<'_>,
) -> Plan {
    match plan_deployment(spec, status, rollout, now, inputs) {
        Plan::Nothing { requeue } => {
            environment_step(spec, status).unwrap_or(Plan::Nothing { requeue })
        }
        step => step,
    }
}

/// The environment exists once GitLab has a deployment in it; its settings are set when they
/// differ from what was last applied (or refused) there. Nothing in steady state, nothing after
/// a restart, and a refusal is not retried until the settings or the environment change.
fn environment_step(spec: &ValidatedSpec, status: &GitlabDeploymentStatus) -> Option<Plan> {
    let wanted = spec.environment_settings.as_ref()?;
    let environment_id = status.deployment.as_ref()?.environment_id?;
    let done = status
        .environment
        .as_ref()
        .is_some_and(|r| r.id == environment_id && r.settings == *wanted);
    (!done).then_some(Plan::SyncEnvironment { environment_id })
}

fn plan_deployment(
    spec: &ValidatedSpec,
    status: &GitlabDeploymentStatus,
    rollout: &RolloutStatus,
    now: Timestamp,
    inputs: PlanInputs<'_>,
) -> Plan {
    let PlanInputs {
        poll,
        knowledge,
        control,
    } = inputs;
    // 1. A claimed create whose id was never recorded: recover before anything else, or a
    //    crash between POST and the id write would become a duplicate.
    if let Some(intent) = &status.intent {
        let recorded = status
            .deployment
            .as_ref()
            .is_some_and(|d| d.revision() == intent.revision);
        if !recorded {
            return Plan::RecoverDeployment {
                intent: intent.clone(),
            };
        }
    }
    let current = status.deployment.as_ref();

    // 2. Read the recorded deployment first when it may not be GitLab's any more.
    if let Some(cur) = current
        && !knowledge.answered
        && (knowledge.refresh || (!cur.status.is_finished() && !knowledge.confirmed))
    {
        return Plan::ReadDeployment { id: cur.id };
    }

    // 3. The target went away (or is going) while its rollout was reported running: cancel.
    //    Not a deployment the gate created before its workload ever existed: the workload is
    //    applied once GitLab approves (Flux's dependsOn on the gate), so its absence is awaited.
    let never_had_workload =
        |d: &DeploymentRecord| d.gate.is_some() && d.workload_revision.is_none();
    if matches!(
        rollout.reason,
        Reason::TargetNotFound | Reason::TargetTerminating
    ) && let Some(cur) = current.filter(|d| d.status == GitlabStatus::Running)
        && !(rollout.reason == Reason::TargetNotFound && never_had_workload(cur))
    {
        return cancel(cur.id, knowledge, None);
    }

    // 3b. An approver rejected the deployment the gate holds: it fails, as a rejected CI
    //     deployment job would; the resource stalls until a new revision comes.
    if spec.approval.gate
        && let Some(cur) = current.filter(|d| d.gate.is_some() && !d.status.is_finished())
        && current_approval(status) == Some(ApprovalState::Rejected)
    {
        return Plan::UpdateStatus {
            id: cur.id,
            to: GitlabStatus::Failed,
        };
    }

    // 3c. The gate creates the deployment of a wanted revision at once, so approvers can act
    //     on it before anything rolls out.
    if spec.approval.gate
        && let Some(wanted) = wanted_revision(spec, rollout)
        && current.is_none_or(|c| c.revision() != wanted)
        && !status
            .refused_create
            .as_ref()
            .is_some_and(|r| r.refuses(&wanted, spec.generation))
    {
        let create = Plan::CreateDeployment {
            revision: wanted,
            initial_status: GitlabStatus::Running,
            gate: Some(GateRecord {
                // A rollout under way carries the wanted revision (its commit through
                // `revisionFrom`, or a changed `spec.sha` per `sha_change`): nothing to
                // exclude. A settled workload runs an older revision: its rollout is not this one.
                held_revision: (rollout.state != RolloutState::Progressing)
                    .then(|| rollout.workload_revision())
                    .flatten(),
                ..GateRecord::default()
            }),
        };
        return match current.filter(|c| !c.status.is_finished()) {
            Some(cur) => cancel(cur.id, knowledge, Some(create)),
            None => create,
        };
    }

    // 3d. With `spec.approval.promote`, the Argo Rollout follows GitLab's verdict.
    if let Some(step) = rollout_control_step(spec, status, rollout, control, now) {
        return step;
    }

    // 4. Nothing can be concluded (gate not passed, source not applied, unknown): never act on
    //    a stale status. Re-check on a timer so the deadline still fires.
    let Some(desired) = gitlab_status_for(rollout) else {
        let requeue = if rollout.reason == Reason::RevisionNotRolledOut {
            // Come back when the wait for the new sha's rollout ends.
            Some(until_grace_ends(spec, status, now).min(PROGRESS_REQUEUE))
        } else {
            current
                .filter(|d| !d.status.is_finished())
                .map(|_| PROGRESS_REQUEUE)
        };
        return follow_up(status, current, now, poll).unwrap_or(Plan::Nothing {
            requeue: requeue.or(Some(PROGRESS_REQUEUE)),
        });
    };

    // 5. Which revision? With revisionFrom the target may not carry a commit yet.
    let Some(wanted) = wanted_revision(spec, rollout) else {
        return Plan::SETTLED;
    };

    // 6. GitLab already refused this very create (4xx) for this generation: a user error stays
    //    stalled until something changes, and a restart is not a change.
    let refused = status
        .refused_create
        .as_ref()
        .is_some_and(|r| r.refuses(&wanted, spec.generation));
    if refused && current.is_none_or(|cur| cur.revision() != wanted) {
        return Plan::SETTLED;
    }

    match current {
        None => Plan::CreateDeployment {
            revision: wanted,
            initial_status: desired,
            gate: None,
        },
        Some(cur) if cur.revision() == wanted => {
            same_revision(spec, status, cur, rollout, desired, now, poll)
        }
        Some(cur) => {
            // A newer revision (or a rollback: an older sha is a new revision too).
            let create = Plan::CreateDeployment {
                revision: wanted,
                initial_status: desired,
                gate: None,
            };
            if cur.status.is_finished() {
                create
            } else {
                cancel(cur.id, knowledge, Some(create))
            }
        }
    }
}

/// With `spec.approval.promote`, what the approval of the deployment the gate holds means for
/// the target Argo Rollout of that revision:
/// - approved (or none required), and the Rollout waits at a pause only a promote ends: promote
///   it, once per revision. The pause is recorded first; the same pause may be promoted again
///   (a crash after the record), any later one is left to people. A person's `spec.paused`,
///   a timed pause or an analysis pause is never ended by the operator.
/// - rejected while the Rollout rolls the revision out: abort it, once (a person may retry).
///
/// The deployment must be the wanted revision's, and the Rollout's status must describe its
/// current spec, so a pause of another revision is never promoted.
fn rollout_control_step(
    spec: &ValidatedSpec,
    status: &GitlabDeploymentStatus,
    rollout: &RolloutStatus,
    control: Option<&RolloutControl>,
    now: Timestamp,
) -> Option<Plan> {
    if !spec.approval.promote {
        return None;
    }
    let control = control.filter(|c| c.observed && c.updating && !c.aborted)?;
    let resource_version = control.resource_version.clone()?;
    let pod_hash = control.pod_hash.clone()?;
    let cur = status.deployment.as_ref()?;
    let gate = cur.gate.as_ref()?;
    if wanted_revision(spec, rollout).is_none_or(|w| cur.revision() != w) {
        return None;
    }
    match current_approval(status)? {
        ApprovalState::Rejected => gate
            .aborted_at
            .is_none()
            .then_some(Plan::AbortRollout { resource_version }),
        ApprovalState::Approved | ApprovalState::NotRequired if !cur.status.is_finished() => {
            if control.paused_by_person {
                return None;
            }
            let pause = control.indefinite_pause?;
            let same_pause = |p: &PromotedPause| p.pod_hash == pod_hash && p.step == pause.step;
            if gate.promoted.as_ref().is_some_and(|p| !same_pause(p)) {
                return None;
            }
            Some(Plan::PromoteRollout {
                pause: PromotedPause {
                    pod_hash,
                    step: pause.step,
                    at: whole_seconds(now),
                },
                resource_version,
            })
        }
        _ => None,
    }
}

/// Cancel the running deployment `id` (then do `then`), once GitLab said in this pass that it
/// still runs: GitLab accepts `success → canceled` and `failed → canceled`, so a cancel on a
/// stale record would rewrite a finished deployment's history.
fn cancel(id: DeploymentId, knowledge: Knowledge, then: Option<Plan>) -> Plan {
    if !knowledge.answered {
        return Plan::ReadDeployment { id };
    }
    match then {
        Some(then) => Plan::Supersede {
            old_id: id,
            then: Box::new(then),
        },
        None => Plan::UpdateStatus {
            id,
            to: GitlabStatus::Canceled,
        },
    }
}

fn same_revision(
    spec: &ValidatedSpec,
    status: &GitlabDeploymentStatus,
    cur: &DeploymentRecord,
    rollout: &RolloutStatus,
    desired: GitlabStatus,
    now: Timestamp,
    poll: ApprovalPoll,
) -> Plan {
    if !cur.status.is_finished() && cur.status != desired && cur.status.can_transition_to(desired) {
        return Plan::UpdateStatus {
            id: cur.id,
            to: desired,
        };
    }
    if let Some(next) = follow_up(status, Some(cur), now, poll) {
        return next;
    }
    if cur.status.is_finished() {
        return Plan::SETTLED;
    }
    // Still running: come back before the deadline (paused rollouts have no deadline).
    if rollout.reason.is_paused() {
        return Plan::SETTLED;
    }
    Plan::Nothing {
        requeue: Some(until_deadline(spec, status, now).min(PROGRESS_REQUEUE)),
    }
}

/// Approval polling and the merge-request fetch, when due.
fn follow_up(
    status: &GitlabDeploymentStatus,
    current: Option<&DeploymentRecord>,
    now: Timestamp,
    poll: ApprovalPoll,
) -> Option<Plan> {
    let cur = current?;
    if let Some(approval) = status
        .approval
        .as_ref()
        .filter(|a| a.state == ApprovalState::Pending)
    {
        let since = approval.pending_since.as_ref().map(|t| t.0).unwrap_or(now);
        let interval = |at: Timestamp| clamp_duration(since_secs(since, at), poll.min, poll.max);
        return Some(match approval.checked_at.as_ref().map(|t| t.0) {
            Some(checked) => {
                let wait = interval(checked);
                let elapsed = since_secs(checked, now);
                if elapsed >= wait {
                    Plan::PollApprovals {
                        id: cur.id,
                        after: interval(now),
                    }
                } else {
                    Plan::Nothing {
                        requeue: Some(wait - elapsed),
                    }
                }
            }
            None => Plan::PollApprovals {
                id: cur.id,
                after: interval(now),
            },
        });
    }
    if cur.status == GitlabStatus::Success && status.merge_requests_for != Some(cur.id) {
        let succeeded_at = cur.updated_at.as_ref().map(|t| t.0).unwrap_or(now);
        let waited = since_secs(succeeded_at, now);
        return Some(if waited >= MERGE_REQUEST_DELAY {
            Plan::FetchMergeRequests { id: cur.id }
        } else {
            Plan::Nothing {
                requeue: Some(MERGE_REQUEST_DELAY - waited),
            }
        });
    }
    None
}

/// Time left before `progressTimeout` expires for the tracked revision (at least one second).
fn until_deadline(
    spec: &ValidatedSpec,
    status: &GitlabDeploymentStatus,
    now: Timestamp,
) -> Duration {
    let (Some(started), paused) = rollout_clock(status, now) else {
        return PROGRESS_REQUEUE;
    };
    let used = since_secs(started, now).saturating_sub(paused);
    spec.progress_timeout
        .saturating_sub(used)
        .max(Duration::from_secs(1))
}

fn since_secs(from: Timestamp, to: Timestamp) -> Duration {
    let d = to.duration_since(from);
    if d.is_negative() {
        Duration::ZERO
    } else {
        d.unsigned_abs()
    }
}

fn clamp_duration(d: Duration, min: Duration, max: Duration) -> Duration {
    d.max(min).min(max)
}

/// What the finalizer does with the GitLab deployment when the resource is deleted.
#[derive(Clone, Debug, PartialEq)]
pub enum Cleanup {
    /// Nothing to do in GitLab (no deployment, already finished under `Cancel`, or `Orphan`).
    Nothing,
    /// An intent without an id: look it up first, then decide again with the result.
    Recover { intent: Box<DeploymentIntent> },
    /// `GET` the deployment first: a cancel acts only on what GitLab says runs now.
    Read { id: DeploymentId },
    /// `PUT status=canceled`.
    Cancel { id: DeploymentId },
    /// `DELETE`. GitLab refuses to delete the environment's current successful deployment
    /// (400 "Deployment currently deployed to environment"): treat that as done and say so in
    /// an Event, the deployment stays as the environment's truth.
    Delete { id: DeploymentId },
    /// GitLab refuses to delete a running deployment: cancel, then delete.
    CancelThenDelete { id: DeploymentId },
}

/// Decide the finalizer's cleanup. Idempotent, and a resource whose apply never ran (no
/// deployment, no intent) needs nothing. `answered`: GitLab answered about the current
/// deployment earlier in this cleanup (see [`Knowledge::answered`]).
pub fn cleanup(
    policy: DeletionPolicy,
    status: Option<&GitlabDeploymentStatus>,
    answered: bool,
) -> Cleanup {
    let Some(status) = status else {
        return Cleanup::Nothing;
    };
    if let Some(intent) = &status.intent {
        let recorded = status
            .deployment
            .as_ref()
            .is_some_and(|d| d.revision() == intent.revision);
        if !recorded && policy != DeletionPolicy::Orphan {
            return Cleanup::Recover {
                intent: Box::new(intent.clone()),
            };
        }
    }
    let Some(cur) = status.deployment.as_ref() else {
        return Cleanup::Nothing;
    };
    let running = !cur.status.is_finished();
    if running && !answered && policy != DeletionPolicy::Orphan {
        return Cleanup::Read { id: cur.id };
    }
    match policy {
        DeletionPolicy::Orphan => Cleanup::Nothing,
        DeletionPolicy::Cancel if running => Cleanup::Cancel { id: cur.id },
        DeletionPolicy::Cancel => Cleanup::Nothing,
        DeletionPolicy::Delete if running => Cleanup::CancelThenDelete { id: cur.id },
        DeletionPolicy::Delete => Cleanup::Delete { id: cur.id },
    }
}

#[cfg(test)]
pub(crate) mod tests;
