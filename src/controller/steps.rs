//! The step executor: the one loop from a plan to GitLab and back to status.
//!
//! It asks the pure planner for the next step, performs it through [`GitlabCalls`], turns the
//! answer into an [`Outcome`], and plans again with the outcomes applied (by
//! [`status::apply`], the only code that turns GitLab's answers into status), until the plan
//! is `Nothing`, a step ends the pass, or [`MAX_STEPS`] were taken. Decisions stay in `plan`;
//! this module only sequences calls. The GitLab calls and the status writes are traits, so the
//! sequence tests drive this very loop against an in-memory GitLab, crashes included.
//!
//! Exactly once: before a `POST`, the intent is written through [`StatusSink`] (the
//! reconciler's write carries the resourceVersion precondition), so of two writers only one
//! can claim the create; a crash between `POST` and the id write is recovered by lookup.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::error::Error;
use super::plan::{ApprovalPoll, Cleanup, Knowledge, Plan, PlanInputs, cleanup, plan_with};
use super::status::{
    self, GitlabDeploymentView, MergeRequestView, Outcome, RolloutAction, with_rollout_action,
};
use crate::api::deployment::{
    DeploymentId, DeploymentIntent, EnvironmentRecord, EnvironmentSettings, GitlabDeploymentStatus,
    GitlabStatus, RefusedCreate,
};
use crate::api::validate::ValidatedSpec;
use crate::rollout::{RolloutControl, RolloutStatus};

/// At most this many plan steps in one reconcile (e.g. read the running deployment, cancel
/// it, write the intent and create the new one, fetch merge requests); then it requeues.
pub const MAX_STEPS: usize = 6;

/// A create the executor asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateRequest {
    pub environment: String,
    pub sha: String,
    pub ref_name: String,
    pub tag: bool,
    pub status: GitlabStatus,
    /// When another process may give the claim up (see [`claim_lifetime`]): the `POST` must be
    /// over by then, so the client sends it only while its request timeout still ends in time.
    pub over_by: std::time::Instant,
}

/// How old a recorded claim is at `now` when recovery judges it: in whole seconds, so a
/// claim is given up only once `recovery_grace` has passed since it was recorded.
fn claim_age(claimed_at: Timestamp, now: Timestamp) -> Duration {
    Duration::from_secs(u64::try_from(now.as_second() - claimed_at.as_second()).unwrap_or(0))
}

/// How long after it was stamped a write-ahead claim may be given up by a process that finds
/// no deployment for it. Its `POST` must be over by then, so the client sends it only until
/// this minus the request timeout (the send deadline).
///
/// Why that is enough: a recovering process voids a claim only when its own clock, in whole
/// seconds, is `recovery_grace` past the claim as recorded (`status::claim` rounds the stamp
/// down to the second), so never before `recorded + grace`, which is the stamp plus this
/// lifetime: the grace less the stamp's fraction of a second. A `POST` started by
/// `stamp + lifetime − timeout` has been answered or abandoned by `stamp + lifetime`, so when
/// the claim is voided GitLab has either stored the deployment (the lookup finds it) or
/// will not. Two assumptions, the same the grace always rested on: the replicas' clocks agree
/// (skew eats into the grace one for one), and GitLab does not finish a request after the
/// client's timeout gave it up. No wait after the claim counts against the grace any more:
/// a create that cannot be sent in time is not sent (`gitlab::Error::SendDeadlinePassed`).
/// With `recovery_grace` not above the timeout, no create can be sent: the error says so.
pub fn claim_lifetime(claimed_at: Timestamp, recovery_grace: Duration) -> Duration {
    let fraction = Duration::from_nanos(u64::try_from(claimed_at.subsec_nanosecond()).unwrap_or(0));
    recovery_grace.saturating_sub(fraction)
}

/// What `DELETE` left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deleted {
    /// Deleted, or already gone.
    Gone,
    /// GitLab keeps it (the environment's current successful deployment), with its reason.
    Kept(String),
}

/// The GitLab calls a reconcile makes, in the operator's terms. The production implementation
/// (`super::gitlab_calls::LiveGitlab`) resolves the connection lazily, retries once with a
/// rotated token, and maps the client's types to the status module's views.
#[allow(async_fn_in_trait)] // used only generically, never as `dyn`; Send is checked at the use
pub trait GitlabCalls {
    /// `POST` a deployment. An error of kind `User` means GitLab refused it (nothing created).
    async fn create(&mut self, request: &CreateRequest) -> Result<GitlabDeploymentView, Error>;
    /// `GET` one deployment.
    async fn read(&mut self, id: DeploymentId) -> Result<GitlabDeploymentView, Error>;
    /// `PUT status=to`; a refusal because GitLab already has another status is answered with
    /// the deployment as GitLab has it.
    async fn set_status(
        &mut self,
        id: DeploymentId,
        to: GitlabStatus,
    ) -> Result<GitlabDeploymentView, Error>;
    /// The deployment an interrupted create made, if any (see the implementation for the
    /// lookup rules); `known` are ids this resource already has.
    async fn find_interrupted(
        &mut self,
        intent: &DeploymentIntent,
        known: &[DeploymentId],
    ) -> Result<Option<GitlabDeploymentView>, Error>;
    /// The merge requests GitLab linked to a deployment (bounded).
    async fn merge_requests(&mut self, id: DeploymentId) -> Result<Vec<MergeRequestView>, Error>;
    /// Bring an environment in line with `wanted`; a refusal a person must fix is a
    /// `Rejected` record, not an error.
    async fn sync_environment(
        &mut self,
        environment_id: i64,
        wanted: &EnvironmentSettings,
    ) -> Result<EnvironmentRecord, Error>;
    /// `DELETE` a deployment.
    async fn delete(&mut self, id: DeploymentId) -> Result<Deleted, Error>;
    /// The connection and token versions requests go out with (recorded with a refusal).
    async fn identity(&mut self) -> String;
}

/// Where the write-ahead intent (and the id right after the create) is written.
#[allow(async_fn_in_trait)]
pub trait StatusSink {
    async fn write(&mut self, status: &GitlabDeploymentStatus) -> Result<(), Error>;
}

/// The writes to the target a reconcile makes: only the promote and abort of an Argo Rollout
/// (`spec.approval.promote`). Each patch carries the Rollout's resourceVersion as a
/// precondition; `Ok(false)` means the Rollout changed since it was read and nothing was sent
/// (the watch brings the new state, and the planner decides again).
#[allow(async_fn_in_trait)]
pub trait TargetControl {
    async fn promote(&mut self, resource_version: &str) -> Result<bool, Error>;
    async fn abort(&mut self, resource_version: &str) -> Result<bool, Error>;
}

/// Settings of the executor that are not per resource.
#[derive(Clone, Debug)]
pub struct StepSettings {
    /// An intent younger than this is not given up when the lookup finds nothing: a previous
    /// leader may still be inside its `POST`, which is sent only while it can end within this
    /// grace of its claim ([`claim_lifetime`]).
    pub recovery_grace: Duration,
    /// Fetch the merge requests GitLab linked to a successful deployment (one GET per
    /// revision). Off, a revision costs only its create and its status updates.
    pub fetch_merge_requests: bool,
}

/// One reconcile's fixed inputs.
pub struct Pass<'a> {
    pub spec: &'a ValidatedSpec,
    pub rollout: &'a RolloutStatus,
    pub now: Timestamp,
    pub poll: ApprovalPoll,
    /// The approval safety net instead of `poll`, for this deployment only (GitLab's hooks
    /// were seen to reach us for it): a deployment the pass creates is polled as usual.
    pub slowed: Option<(DeploymentId, ApprovalPoll)>,
    /// What is known about the recorded deployment when the pass starts (`answered` false).
    pub knowledge: Knowledge,
    /// The target's Argo Rollout facts, for `spec.approval.promote`.
    pub control: Option<&'a RolloutControl>,
    pub settings: &'a StepSettings,
}

/// Where a pass stopped. `base` is the status the pass started from plus its Rollout
/// promote and abort records; `outcomes` are its write-ahead claims and GitLab's answers in
/// call order: the next status is `status::next_status(base, outcomes, ...)`.
#[derive(Debug)]
pub struct Executed {
    pub base: GitlabDeploymentStatus,
    pub outcomes: Vec<Outcome>,
    /// `None`: wait for a watch event; `Some(ZERO)`: more steps are due at once.
    pub requeue: Option<Duration>,
    /// The error that ended the pass, if one did (what was learned before it is kept).
    pub error: Option<Error>,
    /// When the pass started on this process's monotonic clock (`Pass::now` on the wall).
    started: std::time::Instant,
}

impl Executed {
    /// The status with every outcome applied (what the planner sees next).
    pub fn current(&self, now: Timestamp) -> GitlabDeploymentStatus {
        with_outcomes(&self.base, &self.outcomes, now)
    }
}

fn with_outcomes(
    base: &GitlabDeploymentStatus,
    outcomes: &[Outcome],
    now: Timestamp,
) -> GitlabDeploymentStatus {
    let mut next = base.clone();
    for outcome in outcomes {
        status::apply(&mut next, outcome, now);
    }
    next
}

/// What one step did.
enum Step {
    /// Plan again.
    Continue,
    /// End the pass; come back after this long.
    Requeue(Duration),
}

/// Run plan steps until the plan settles, a step ends the pass, an error happens, or
/// [`MAX_STEPS`] were taken.
pub async fn execute(
    pass: &Pass<'_>,
    start: &GitlabDeploymentStatus,
    gitlab: &mut impl GitlabCalls,
    sink: &mut impl StatusSink,
    target: &mut impl TargetControl,
) -> Executed {
    let mut run = Executed {
        base: start.clone(),
        outcomes: Vec::new(),
        requeue: None,
        error: None,
        started: std::time::Instant::now(),
    };
    for _ in 0..MAX_STEPS {
        let current = run.current(pass.now);
        let answered = current
            .deployment
            .as_ref()
            .is_some_and(|d| run.outcomes.iter().any(|o| o.answered_id() == Some(d.id)));
        let poll = match (pass.slowed, current.deployment.as_ref()) {
            (Some((id, net)), Some(d)) if d.id == id => net,
            _ => pass.poll,
        };
        let inputs = PlanInputs {
            poll,
            knowledge: Knowledge {
                answered,
                ..pass.knowledge
            },
            control: pass.control,
        };
        let step = plan_with(pass.spec, &current, pass.rollout, pass.now, inputs);
        if let Plan::Nothing { requeue } = step {
            run.requeue = requeue;
            return run;
        }
        tracing::debug!(?step, "acting");
        match act(step, pass, &mut run, gitlab, sink, target).await {
            Ok(Step::Continue) => run.requeue = Some(Duration::ZERO),
            Ok(Step::Requeue(after)) => {
                run.requeue = Some(after);
                return run;
            }
            Err(err) => {
                run.error = Some(err);
                return run;
            }
        }
    }
    run
}

/// Perform one planned step, appending what GitLab answered to `run.outcomes`.
async fn act(
    step: Plan,
    pass: &Pass<'_>,
    run: &mut Executed,
    gitlab: &mut impl GitlabCalls,
    sink: &mut impl StatusSink,
    target: &mut impl TargetControl,
) -> Result<Step, Error> {
    let now = pass.now;
    match step {
        Plan::Nothing { requeue } => Ok(requeue.map_or(Step::Continue, Step::Requeue)),
        Plan::CreateDeployment {
            revision,
            initial_status,
            gate,
        } => {
            // Write-ahead: claim the create. A 409 here means another writer got there first.
            // The claim carries the time of this write, not the pass's start: the steps before
            // it (reads, a cancel, their retries) must not eat into the recovery grace another
            // process gives the POST that follows.
            let stamped = std::time::Instant::now();
            let claimed_at = now
                .checked_add(stamped.duration_since(run.started))
                .unwrap_or(now);
            // The claim is an outcome in call order: a void of an older claim earlier in this
            // pass (a recovery that found nothing) must not clear it when the create's answer
            // is lost and the reconciler writes what the pass learned.
            let claim = Outcome::Claimed(status::claim(
                &revision,
                &pass.spec.environment,
                initial_status,
                gate,
                claimed_at,
            ));
            let mut claimed = run.current(now);
            status::apply(&mut claimed, &claim, now);
            sink.write(&claimed).await?;
            run.outcomes.push(claim);
            let request = CreateRequest {
                environment: pass.spec.environment.clone(),
                sha: revision.sha.clone(),
                ref_name: revision.ref_name.clone(),
                tag: revision.tag,
                status: initial_status,
                over_by: stamped + claim_lifetime(claimed_at, pass.settings.recovery_grace),
            };
            match gitlab.create(&request).await {
                Ok(view) => {
                    tracing::Span::current().record("deployment_id", view.id.get());
                    run.outcomes.push(Outcome::Recorded {
                        view,
                        tag: revision.tag,
                    });
                    // Record the id at once: the next step may take a while.
                    sink.write(&run.current(now)).await?;
                    Ok(Step::Continue)
                }
                Err(err) => {
                    if err.is_gitlab_refusal() {
                        // GitLab refused the create (unknown sha, bad environment name, no
                        // permission): nothing was created, so the claim is void; and the
                        // same request would be refused again, so it is not repeated.
                        run.outcomes.push(Outcome::CreateRefused(RefusedCreate {
                            revision,
                            generation: pass.spec.generation,
                            reason: err.category().to_owned(),
                            message: err.to_string(),
                            connection: gitlab.identity().await,
                        }));
                    } else if err.was_not_sent() {
                        // The client did not send the POST (too late for the claim's send
                        // deadline), and nothing else under this claim can have created one
                        // (at most a POST refused with 401/403 before a token rotation): the
                        // claim is void now, and the next pass claims afresh instead of
                        // looking the create up and waiting out the grace.
                        run.outcomes.push(Outcome::IntentVoid);
                    }
                    // Otherwise the intent stays: whether GitLab created it is unknown, and
                    // the next reconcile looks it up before creating again.
                    Err(err)
                }
            }
        }
        Plan::RecoverDeployment { intent } => {
            let known = known_ids(&run.current(now));
            match gitlab.find_interrupted(&intent, &known).await? {
                Some(view) => {
                    tracing::info!(
                        id = view.id.get(),
                        "adopted the deployment of an interrupted create"
                    );
                    run.outcomes.push(Outcome::Adopted {
                        view,
                        tag: intent.revision.tag,
                    });
                    Ok(Step::Continue)
                }
                None => {
                    let age = claim_age(intent.claimed_at.0, now);
                    if age < pass.settings.recovery_grace {
                        // A previous leader may still be inside its POST: look again later.
                        return Ok(Step::Requeue(
                            pass.settings.recovery_grace - age + Duration::from_secs(1),
                        ));
                    }
                    run.outcomes.push(Outcome::IntentVoid);
                    Ok(Step::Continue)
                }
            }
        }
        Plan::ReadDeployment { id } => {
            let view = gitlab.read(id).await?;
            run.outcomes.push(Outcome::Answered(view));
            Ok(Step::Continue)
        }
        Plan::UpdateStatus { id, to } => {
            let view = gitlab.set_status(id, to).await?;
            run.outcomes.push(Outcome::Answered(view));
            Ok(Step::Continue)
        }
        Plan::Supersede { old_id, then } => {
            let view = gitlab.set_status(old_id, GitlabStatus::Canceled).await?;
            run.outcomes.push(Outcome::Answered(view));
            Box::pin(act(*then, pass, run, gitlab, sink, target)).await
        }
        Plan::PollApprovals { id, after } => {
            let before = status::current_approval(&run.current(now));
            let view = gitlab.read(id).await?;
            run.outcomes.push(Outcome::Answered(view));
            // A verdict (approved, rejected) may call for a step now (the gate fails a
            // rejected deployment, promotes an approved Rollout); still pending: come back.
            if status::current_approval(&run.current(now)) != before {
                return Ok(Step::Continue);
            }
            Ok(Step::Requeue(after))
        }
        Plan::FetchMergeRequests { id } => {
            // Disabled: an empty list marks the deployment as handled so the planner moves on.
            let views = if pass.settings.fetch_merge_requests {
                gitlab.merge_requests(id).await?
            } else {
                Vec::new()
            };
            run.outcomes.push(Outcome::MergeRequests { id, views });
            Ok(Step::Continue)
        }
        Plan::PromoteRollout {
            pause,
            resource_version,
        } => {
            control_rollout(
                RolloutAction::Promote(pause),
                &resource_version,
                now,
                run,
                sink,
                target,
            )
            .await
        }
        Plan::AbortRollout { resource_version } => {
            control_rollout(
                RolloutAction::Abort,
                &resource_version,
                now,
                run,
                sink,
                target,
            )
            .await
        }
        Plan::SyncEnvironment { environment_id } => {
            let wanted = pass.spec.environment_settings.clone().unwrap_or_default();
            let record = gitlab.sync_environment(environment_id, &wanted).await?;
            run.outcomes.push(Outcome::Environment(record));
            Ok(Step::Continue)
        }
    }
}

/// Promote or abort the target Rollout. A promote is recorded on the gate first (write-ahead,
/// like the intent before a create: of two writers only one gets past the resourceVersion
/// precondition, and after a crash only this same pause is promoted again). An abort is
/// recorded once sent: a crash before the record leaves the Rollout showing `abort`, which
/// the planner reads. The pass ends: the step was planned on the Rollout before the patch.
async fn control_rollout(
    action: RolloutAction,
    resource_version: &str,
    now: Timestamp,
    run: &mut Executed,
    sink: &mut impl StatusSink,
    target: &mut impl TargetControl,
) -> Result<Step, Error> {
    let sent = match &action {
        RolloutAction::Promote(_) => {
            sink.write(&with_rollout_action(&run.current(now), &action, now))
                .await?;
            run.base = with_rollout_action(&run.base, &action, now);
            target.promote(resource_version).await?
        }
        RolloutAction::Abort => {
            let sent = target.abort(resource_version).await?;
            if sent {
                run.base = with_rollout_action(&run.base, &action, now);
            }
            sent
        }
    };
    if !sent {
        tracing::debug!(
            ?action,
            "the Rollout changed since it was read; deciding again"
        );
    }
    Ok(Step::Requeue(ROLLOUT_CONTROL_REQUEUE))
}

/// After a promote or abort, look again this soon even if no watch event comes.
const ROLLOUT_CONTROL_REQUEUE: Duration = Duration::from_secs(5);

/// The GitLab deployments this resource already knows (current and history): a lookup for
/// an interrupted create never takes one of them for it.
fn known_ids(status: &GitlabDeploymentStatus) -> Vec<DeploymentId> {
    status
        .history
        .iter()
        .map(|h| h.deployment_id)
        .chain(status.deployment.iter().map(|d| d.id))
        .collect()
}

/// What the finalizer's GitLab cleanup ended with.
#[derive(Debug, PartialEq)]
pub enum Cleaned {
    /// Nothing (more) to do in GitLab.
    Done,
    /// Done, with something to say in an Event.
    Said(super::events::Notice),
    /// Still steps to go (the reconciler requeues).
    NotYet,
}

/// At most this many cleanup steps per reconcile (recover, read, cancel, delete).
const MAX_CLEANUP_STEPS: usize = 5;

/// Run the finalizer's cleanup steps (see [`cleanup`]) on `status`.
pub async fn execute_cleanup(
    policy: crate::api::deployment::DeletionPolicy,
    status: &mut GitlabDeploymentStatus,
    gitlab: &mut impl GitlabCalls,
    now: Timestamp,
) -> Result<Cleaned, Error> {
    use super::events::Notice;
    use crate::api::names::reason;
    let mut answered: Option<DeploymentId> = None;
    for _ in 0..MAX_CLEANUP_STEPS {
        let current = status.deployment.as_ref().map(|d| d.id);
        let step = cleanup(
            policy,
            Some(status),
            current.is_some() && answered == current,
        );
        let notice = match step {
            Cleanup::Nothing => return Ok(Cleaned::Done),
            Cleanup::Recover { intent } => {
                let known = known_ids(status);
                let outcome = match gitlab.find_interrupted(&intent, &known).await? {
                    Some(view) => Outcome::Recorded {
                        view,
                        tag: intent.revision.tag,
                    },
                    None => Outcome::IntentVoid,
                };
                status::apply(status, &outcome, now);
                continue;
            }
            Cleanup::Read { id } => {
                match gitlab.read(id).await {
                    Ok(view) => status::apply(status, &Outcome::Answered(view), now),
                    // Already gone: nothing left to cancel or delete.
                    Err(err) if err.is_gitlab_not_found() => return Ok(Cleaned::Done),
                    Err(err) => return Err(err),
                }
                answered = Some(id);
                continue;
            }
            Cleanup::Cancel { id } => {
                if !cancel_quietly(gitlab, id, status, now).await? {
                    return Ok(Cleaned::Done);
                }
                Notice {
                    warning: false,
                    reason: reason::DEPLOYMENT_CANCELED,
                    note: format!(
                        "GitLab deployment {id} canceled: its GitlabDeployment was deleted"
                    ),
                }
            }
            Cleanup::CancelThenDelete { id } => {
                cancel_quietly(gitlab, id, status, now).await?;
                delete(gitlab, id).await?
            }
            Cleanup::Delete { id } => delete(gitlab, id).await?,
        };
        return Ok(Cleaned::Said(notice));
    }
    Ok(Cleaned::NotYet)
}

/// Cancel `id`; false when GitLab no longer has it (nothing left to cancel).
async fn cancel_quietly(
    gitlab: &mut impl GitlabCalls,
    id: DeploymentId,
    status: &mut GitlabDeploymentStatus,
    now: Timestamp,
) -> Result<bool, Error> {
    match gitlab.set_status(id, GitlabStatus::Canceled).await {
        Ok(view) => {
            status::apply(status, &Outcome::Answered(view), now);
            Ok(true)
        }
        Err(err) if err.is_gitlab_not_found() => Ok(false),
        Err(err) => Err(err),
    }
}

async fn delete(
    gitlab: &mut impl GitlabCalls,
    id: DeploymentId,
) -> Result<super::events::Notice, Error> {
    use crate::api::names::reason;
    Ok(match gitlab.delete(id).await? {
        Deleted::Gone => super::events::Notice {
            warning: false,
            reason: reason::DEPLOYMENT_DELETED,
            note: format!("GitLab deployment {id} deleted with its GitlabDeployment"),
        },
        Deleted::Kept(message) => super::events::Notice {
            warning: true,
            reason: reason::CLEANUP_SKIPPED,
            note: format!(
                "GitLab keeps deployment {id} ({message}): it is what the environment runs; the resource is deleted anyway"
            ),
        },
    })
}

#[cfg(test)]
mod tests;
