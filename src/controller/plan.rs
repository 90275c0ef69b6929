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
//! - a settled resource costs no calls and no requeue.
//!
//! [`cleanup`] is the finalizer's counterpart: what deletion does per `deletionPolicy`.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::api::deployment::{
    ApprovalState, DeletionPolicy, DeployRevision, DeploymentIntent, DeploymentRecord,
    GitlabDeploymentStatus, GitlabStatus,
};
use crate::api::validate::{RevisionSource, ValidatedSpec};
use crate::controller::status::{rollout_clock, rollout_key};
use crate::rollout::{Reason, RolloutState, RolloutStatus, TargetObject, TrackCtx, evaluate};

/// Re-evaluate a progressing or pending target this often even without watch events, so
/// `progressTimeout` fires on time (spec §8: 15–30 s).
pub const PROGRESS_REQUEUE: Duration = Duration::from_secs(30);
/// First approval poll interval; doubles up to [`APPROVAL_POLL_MAX`].
pub const APPROVAL_POLL_MIN: Duration = Duration::from_secs(10);
pub const APPROVAL_POLL_MAX: Duration = Duration::from_secs(300);
/// GitLab links merge requests asynchronously after `success` (seconds); wait this long after
/// the success before the one fetch. (Delay length unverified; GitLab documents no bound.)
pub const MERGE_REQUEST_DELAY: Duration = Duration::from_secs(5);

/// The next step. The reconciler performs it, records the result in status, and reconciles
/// again (each step is one or two GitLab calls).
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Record the intent in status (resourceVersion precondition), then `POST` the deployment
    /// with `initial_status`: `running`, or `success`/`failed` directly when the rollout had
    /// already ended (one call in total).
    CreateDeployment {
        revision: DeployRevision,
        initial_status: GitlabStatus,
    },
    /// An intent without a recorded id: a crash happened between intent and id. Look the
    /// deployment up (environment, sha, ref, our user, `updated_after` the claim time) and
    /// record it; clear the intent when none exists so the next reconcile creates it.
    RecoverDeployment { intent: DeploymentIntent },
    /// `PUT status=to` on deployment `id`.
    UpdateStatus { id: i64, to: GitlabStatus },
    /// Cancel the still-running deployment `old_id` (a newer revision started), then do `then`.
    Supersede { old_id: i64, then: Box<Plan> },
    /// `GET` deployment `id` to refresh its approvals, then requeue after `after`.
    PollApprovals { id: i64, after: Duration },
    /// `GET` the merge requests GitLab linked to deployment `id` (once, after success).
    FetchMergeRequests { id: i64 },
    /// No GitLab call. `requeue: None` means wait for a watch event.
    Nothing { requeue: Option<Duration> },
}

impl Plan {
    const SETTLED: Plan = Plan::Nothing { requeue: None };
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
) -> RolloutStatus {
    let mut ctx = base.clone();
    ctx.progress_timeout = spec.progress_timeout;
    ctx.revision_from = spec.revision_from().cloned();
    ctx.started_at = None;
    ctx.paused_for = Duration::ZERO;
    if let RevisionSource::Fixed(rev) = &spec.revision {
        ctx.wanted_sha = Some(rev.sha.clone());
    }
    let first = with_target_name(evaluate(target, &ctx, now), spec);
    if let Some(waiting) = not_rolled_out(spec, status, &first) {
        return waiting;
    }
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
        return with_target_name(evaluate(target, &ctx, now), spec);
    }
    let (started_at, paused_for) = rollout_clock(status, now);
    ctx.started_at = started_at;
    ctx.paused_for = paused_for;
    with_target_name(evaluate(target, &ctx, now), spec)
}

/// The workload's own revision identity (pod-template hash / update revision, else the
/// revision number such as `deployment.kubernetes.io/revision`); `None` for kinds that have
/// neither.
pub fn workload_revision(rollout: &RolloutStatus) -> Option<String> {
    let revision = rollout.revision.as_ref()?;
    revision
        .kind_id
        .clone()
        .or_else(|| revision.number.map(|n| format!("revision {n}")))
}

/// A fixed `spec.sha` that changed while the workload still shows the revision under which the
/// previous sha was reported: the new sha's rollout has not started (the workload's update has
/// not arrived yet, or never will), so nothing may be concluded from the old pods. `Pending`
/// keeps GitLab untouched until the workload moves; the revision is kept so the status says
/// which one it waits to leave.
fn not_rolled_out(
    spec: &ValidatedSpec,
    status: &GitlabDeploymentStatus,
    rollout: &RolloutStatus,
) -> Option<RolloutStatus> {
    let RevisionSource::Fixed(wanted) = &spec.revision else {
        return None;
    };
    let current = status.deployment.as_ref()?;
    let seen = current.workload_revision.as_deref()?;
    let now_running = workload_revision(rollout)?;
    if current.sha == wanted.sha || seen != now_running {
        return None;
    }
    let short: String = wanted.sha.chars().take(7).collect();
    Some(RolloutStatus {
        state: RolloutState::Pending,
        reason: Reason::RevisionNotRolledOut,
        message: format!(
            "spec.sha is now {short}, but {} {:?} still runs the revision reported for {}; waiting for it to roll out",
            spec.target.kind,
            spec.target.name,
            current.sha.chars().take(7).collect::<String>()
        ),
        revision: rollout.revision.clone(),
    })
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

/// Decide the next step (see the module docs for the guarantees).
pub fn plan(
    spec: &ValidatedSpec,
    status: &GitlabDeploymentStatus,
    rollout: &RolloutStatus,
    now: Timestamp,
) -> Plan {
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

    // 2. The target went away (or is going) while its rollout was reported running: cancel.
    if matches!(
        rollout.reason,
        Reason::TargetNotFound | Reason::TargetTerminating
    ) && let Some(cur) = current.filter(|d| d.status == GitlabStatus::Running)
    {
        return Plan::UpdateStatus {
            id: cur.id,
            to: GitlabStatus::Canceled,
        };
    }

    // 3. Nothing can be concluded (gate not passed, source not applied, unknown): never act on
    //    a stale status. Re-check on a timer so the deadline still fires.
    let Some(desired) = gitlab_status_for(rollout) else {
        let requeue = current
            .filter(|d| !d.status.is_finished())
            .map(|_| PROGRESS_REQUEUE);
        return follow_up(status, current, now).unwrap_or(Plan::Nothing {
            requeue: requeue.or(Some(PROGRESS_REQUEUE)),
        });
    };

    // 4. Which revision? With revisionFrom the target may not carry a commit yet.
    let Some(wanted) = wanted_revision(spec, rollout) else {
        return Plan::SETTLED;
    };

    // 5. GitLab already refused this very create (4xx) for this generation: a user error stays
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
        },
        Some(cur) if cur.revision() == wanted => {
            same_revision(spec, status, cur, rollout, desired, now)
        }
        Some(cur) => {
            // A newer revision (or a rollback: an older sha is a new revision too).
            let create = Plan::CreateDeployment {
                revision: wanted,
                initial_status: desired,
            };
            if cur.status.is_finished() {
                create
            } else {
                Plan::Supersede {
                    old_id: cur.id,
                    then: Box::new(create),
                }
            }
        }
    }
}

fn same_revision(
    spec: &ValidatedSpec,
    status: &GitlabDeploymentStatus,
    cur: &DeploymentRecord,
    rollout: &RolloutStatus,
    desired: GitlabStatus,
    now: Timestamp,
) -> Plan {
    if !cur.status.is_finished() && cur.status != desired && cur.status.can_transition_to(desired) {
        return Plan::UpdateStatus {
            id: cur.id,
            to: desired,
        };
    }
    if let Some(next) = follow_up(status, Some(cur), now) {
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
) -> Option<Plan> {
    let cur = current?;
    if let Some(approval) = status
        .approval
        .as_ref()
        .filter(|a| a.state == ApprovalState::Pending)
    {
        let since = approval.pending_since.as_ref().map(|t| t.0).unwrap_or(now);
        let interval = |at: Timestamp| {
            clamp_duration(since_secs(since, at), APPROVAL_POLL_MIN, APPROVAL_POLL_MAX)
        };
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
    let Some(rollout) = status.rollout.as_ref() else {
        return PROGRESS_REQUEUE;
    };
    let Some(started) = rollout.started_at.as_ref().map(|t| t.0) else {
        return PROGRESS_REQUEUE;
    };
    let paused = Duration::from_secs(u64::try_from(rollout.paused_seconds).unwrap_or(0));
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
    Recover { intent: DeploymentIntent },
    /// `PUT status=canceled`.
    Cancel { id: i64 },
    /// `DELETE`. GitLab refuses to delete the environment's current successful deployment
    /// (400 "Deployment currently deployed to environment"): treat that as done and say so in
    /// an Event, the deployment stays as the environment's truth.
    Delete { id: i64 },
    /// GitLab refuses to delete a running deployment: cancel, then delete.
    CancelThenDelete { id: i64 },
}

/// Decide the finalizer's cleanup. Idempotent, and a resource whose apply never ran (no
/// deployment, no intent) needs nothing.
pub fn cleanup(policy: DeletionPolicy, status: Option<&GitlabDeploymentStatus>) -> Cleanup {
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
                intent: intent.clone(),
            };
        }
    }
    let Some(cur) = status.deployment.as_ref() else {
        return Cleanup::Nothing;
    };
    let running = !cur.status.is_finished();
    match policy {
        DeletionPolicy::Orphan => Cleanup::Nothing,
        DeletionPolicy::Cancel if running => Cleanup::Cancel { id: cur.id },
        DeletionPolicy::Cancel => Cleanup::Nothing,
        DeletionPolicy::Delete if running => Cleanup::CancelThenDelete { id: cur.id },
        DeletionPolicy::Delete => Cleanup::Delete { id: cur.id },
    }
}

#[cfg(test)]
mod tests;
