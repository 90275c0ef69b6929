//! One reconcile of a `GitlabDeployment`: read the world from caches, evaluate the rollout,
//! let the step executor ([`super::steps`]) make the GitLab calls the planner decides on, and
//! write the status only when it changed. The finalizer helper is the only top-level action,
//! so deletion runs `cleanup`.
//!
//! Exactly once: status writes carry the object's resourceVersion as precondition (a `PUT` of
//! `/status`), so of two writers only one can claim a create with its write-ahead intent;
//! after a crash between `POST` and the id write, the intent is recovered by looking the
//! deployment up, never by creating a second one.

use super::index::owner_key;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use tracing::Instrument;

use super::backoff::{BackoffPolicy, FailureCounts};
use super::connections::Connections;
use super::credentials::CredentialPolicy;
use super::error::{Error, ErrorKind};
use super::events::{Notice, transitions};
use super::gitlab_calls::LiveGitlab;
use super::own_writes::OwnWrites;
use super::plan::{
    ApprovalPoll, Evaluation, Knowledge, evaluate_rollout, reported_new_sha, wanted_revision,
};
use super::status::{Observation, Outcome, Problem, next_status};
use super::steps::{Cleaned, Pass, StatusSink, StepSettings, execute, execute_cleanup};
use super::target_control::LiveRollout;
use super::targets::{TargetLookup, TargetWatches};
use crate::api::deployment::ConnectionKind;
use crate::api::deployment::{
    DeploymentId, GitlabDeployment, GitlabDeploymentStatus, GitlabStatus,
};
use crate::api::names::DEFAULT_CONNECTION_NAME;
use crate::api::names::{FIELD_MANAGER, FINALIZER, REFRESH_ANNOTATION, reason};
use crate::api::validate::{ConnectionTarget, ValidatedSpec};
use crate::metrics::OperatorMetrics;
use crate::rollout::{TrackCtx, rollout_control};
use crate::webhook::{HookHints, HookSource};

/// Settings of the reconciler that are not per resource.
#[derive(Clone, Debug)]
pub struct ReconcileSettings {
    /// An intent younger than this is not given up when the lookup finds nothing: a previous
    /// leader may still be inside its `POST`, which is sent only while it can end within this
    /// grace of its claim (`steps::claim_lifetime`).
    pub recovery_grace: Duration,
    /// A deletion whose GitLab cleanup keeps failing is let go after this long, with a Warning
    /// Event: a namespace's deletion must never block forever.
    pub cleanup_give_up_after: Duration,
    pub backoff: BackoffPolicy,
    /// Fetch the merge requests GitLab linked to a successful deployment (one GET per
    /// revision). Off, a revision costs only its create and its status updates.
    pub fetch_merge_requests: bool,
    /// The connection of resources without `spec.connectionRef` (`--default-connection`).
    pub default_connection: ConnectionTarget,
    /// How token Secrets and CA bundles are read (memo lifetime, `--require-token-label`).
    pub credentials: CredentialPolicy,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            recovery_grace: Duration::from_secs(45),
            cleanup_give_up_after: Duration::from_secs(600),
            backoff: BackoffPolicy::default(),
            fetch_merge_requests: true,
            default_connection: ConnectionTarget {
                kind: ConnectionKind::GitlabConnection,
                name: DEFAULT_CONNECTION_NAME.to_owned(),
            },
            credentials: CredentialPolicy::default(),
        }
    }
}

/// Everything a reconcile needs; shared by all reconciles.
pub struct Context {
    pub client: Client,
    pub connections: Connections,
    pub targets: Arc<TargetWatches<ObjectRef<GitlabDeployment>>>,
    /// Publishes Warnings, folding a repeat into one Event with a growing series. kube's
    /// `Recorder` remembers every Event it published for six minutes to do that; Normal
    /// Events here are one per transition (nothing to fold), so they go through a recorder
    /// made for the one Event, and memory does not grow with the rollouts of the last six
    /// minutes (at 5,000 resources that memory was a third of the operator's).
    pub recorder: Recorder,
    pub reporter: Reporter,
    pub metrics: Arc<OperatorMetrics>,
    pub failures: FailureCounts<ObjectRef<GitlabDeployment>>,
    pub settings: ReconcileSettings,
    /// Our status writes the cache has not shown yet (see [`OwnWrites`]).
    pub own_writes: Arc<OwnWrites>,
    /// Last `gitlab-operator.io/refresh` value acted on per resource: a new value re-reads the
    /// GitLab deployment at once instead of waiting for the next approval poll.
    refreshes: Mutex<HashMap<ObjectRef<GitlabDeployment>, String>>,
    /// Running deployments whose recorded status this process knows to be GitLab's. A status
    /// that says `running` may be stale after a crash (or a failed status write) between a
    /// `PUT` and recording its answer; GitLab accepts `success → canceled`, so acting on it
    /// unread could cancel a finished deployment. Such a deployment is read once first.
    /// Keyed by resource (one deployment each), so forgetting one is not a pass over all.
    verified: Mutex<HashMap<ObjectRef<GitlabDeployment>, DeploymentId>>,
    /// What GitLab's hooks said: resources to re-read now, and the deployments whose approval
    /// polling slows to a safety net. Empty without the receiver.
    pub hints: Arc<HookHints>,
}

impl Context {
    pub fn new(
        client: Client,
        connections: Connections,
        targets: Arc<TargetWatches<ObjectRef<GitlabDeployment>>>,
        reporter: Reporter,
        metrics: Arc<OperatorMetrics>,
        settings: ReconcileSettings,
        own_writes: Arc<OwnWrites>,
    ) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter.clone()),
            client,
            connections,
            targets,
            reporter,
            metrics,
            failures: FailureCounts::default(),
            settings,
            own_writes,
            refreshes: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
            hints: Arc::new(HookHints::default()),
        }
    }

    /// Share the webhook receiver's hints.
    pub fn with_hints(mut self, hints: Arc<HookHints>) -> Self {
        self.hints = hints;
        self
    }

    /// Whether the refresh annotation carries a value not acted on yet (remembering it). The
    /// first value seen after a start only primes the memory: a restart costs no GitLab call.
    fn refresh_requested(&self, obj: &GitlabDeployment) -> bool {
        let Some(value) = obj.annotations().get(REFRESH_ANNOTATION) else {
            return false;
        };
        let mut seen = self.refreshes.lock();
        match seen.insert(owner_key(obj), value.clone()) {
            Some(previous) => previous != *value,
            None => false,
        }
    }

    /// Drop what this process remembers about a resource whose cleanup is done (its
    /// finalizer goes next), so resources that come and go do not grow the maps.
    fn forget(&self, obj: &GitlabDeployment) -> Action {
        let key = owner_key(obj);
        self.own_writes.forget(&key);
        self.refreshes.lock().remove(&key);
        self.verified.lock().remove(&key);
        self.failures.reset(&key);
        self.hints.take(&key);
        Action::await_change()
    }

    fn is_verified(&self, key: &ObjectRef<GitlabDeployment>, id: DeploymentId) -> bool {
        self.verified.lock().get(key) == Some(&id)
    }

    fn set_verified(&self, key: &ObjectRef<GitlabDeployment>, id: Option<DeploymentId>) {
        let mut verified = self.verified.lock();
        match id {
            Some(id) => verified.insert(key.clone(), id),
            None => verified.remove(key),
        };
    }
}

/// The controller's reconcile function.
pub async fn reconcile(obj: Arc<GitlabDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let key = owner_key(obj.as_ref());
    let namespace = obj.namespace().ok_or(Error::Metadata("namespace"))?;
    let span = tracing::info_span!(
        "reconcile",
        namespace = %namespace,
        name = %obj.name_any(),
        deployment_id = tracing::field::Empty
    );
    if let Some(id) = obj
        .status
        .as_ref()
        .and_then(|s| s.deployment.as_ref())
        .map(|d| d.id)
    {
        span.record("deployment_id", id.get());
    }
    if ctx.own_writes.is_stale(&obj) {
        // Our own last write has not reached the cache yet: the watch wakes us when it does
        // (`OwnWrites::observed`); the requeue is only a safety net.
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let api: Api<GitlabDeployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Finalizer::Apply(obj) => apply(obj, &ctx).await,
            Finalizer::Cleanup(obj) => cleanup(obj, &ctx).await,
        }
    })
    .instrument(span)
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(inner)
        | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner,
        other => Error::Finalizer(Box::new(other)),
    });
    ctx.metrics.observe_reconcile(
        started.elapsed(),
        result.as_ref().err().map(Error::category),
    );
    if result.is_ok() {
        ctx.failures.reset(&key);
    }
    result
}

/// What to do after an error: user errors wait for a change (the status already says
/// `Stalled` and why), rate limits wait for the connection's pause, the rest back off per
/// object with jitter.
pub fn error_policy(obj: Arc<GitlabDeployment>, err: &Error, ctx: Arc<Context>) -> Action {
    let key = owner_key(obj.as_ref());
    let failures = ctx.failures.record_failure(key);
    let unit = rand::random::<f64>();
    if err.class() == super::error::Category::StaleObject {
        // Optimistic concurrency doing its job (the cache was behind a write, often our own):
        // expected, retried soon, not worth a warning.
        let delay = Duration::from_millis(200);
        tracing::debug!(error = %err, retry_in = ?delay, "stale object; retrying");
        return Action::requeue(delay);
    }
    match err.kind() {
        ErrorKind::User => {
            tracing::info!(error = %err, category = err.category(), "needs a person; waiting for a change");
            Action::await_change()
        }
        ErrorKind::RateLimited => {
            let pause = err.connection_wait().unwrap_or(Duration::from_secs(5));
            tracing::warn!(error = %err, "rate limited by GitLab");
            Action::requeue(pause + ctx.settings.backoff.delay(1, unit))
        }
        ErrorKind::Transient => {
            // A create not sent for a pause on its connection: not again before it ends.
            let delay = ctx.settings.backoff.delay(failures, unit);
            let delay = err
                .connection_wait()
                .map_or(delay, |wait| wait + ctx.settings.backoff.delay(1, unit))
                .max(delay);
            tracing::warn!(error = %err, category = err.category(), retry_in = ?delay, "transient failure");
            Action::requeue(delay)
        }
        ErrorKind::Internal => {
            let delay = ctx.settings.backoff.delay(failures.max(5), unit);
            tracing::error!(error = %err, category = err.category(), retry_in = ?delay, "internal error");
            Action::requeue(delay)
        }
    }
}

/// The object as last written, so consecutive status writes in one reconcile each carry the
/// resourceVersion of the previous one.
struct Writer<'a> {
    api: Api<GitlabDeployment>,
    obj: GitlabDeployment,
    ctx: &'a Context,
}

impl Writer<'_> {
    fn status(&self) -> GitlabDeploymentStatus {
        self.obj.status.clone().unwrap_or_default()
    }

    /// Replace `.status` with `status` if it differs, with the current resourceVersion as
    /// precondition: a concurrent writer makes this fail with 409 instead of being overwritten.
    async fn write(&mut self, status: GitlabDeploymentStatus) -> Result<(), Error> {
        if self.obj.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let mut next = self.obj.clone();
        next.status = Some(status);
        next.metadata.managed_fields = None;
        let name = self.obj.name_any();
        let written = self
            .api
            .replace_status(
                &name,
                &PostParams {
                    dry_run: false,
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                },
                &next,
            )
            .await
            .map_err(|source| {
                // What GitLab answered may now be missing from status: read it again next time.
                self.ctx.set_verified(&owner_key(&self.obj), None);
                Error::StatusWrite {
                    namespace: self.obj.namespace().unwrap_or_default(),
                    name: name.clone(),
                    source,
                }
            })?;
        self.ctx
            .own_writes
            .wrote(&written, self.obj.resource_version());
        self.obj = written;
        Ok(())
    }
}

impl StatusSink for Writer<'_> {
    async fn write(&mut self, status: &GitlabDeploymentStatus) -> Result<(), Error> {
        Writer::write(self, status.clone()).await
    }
}

async fn publish(ctx: &Context, obj: &GitlabDeployment, notices: &[Notice]) {
    let reference = obj.object_ref(&());
    for notice in notices {
        let event = notice.to_event();
        let result = if notice.warning {
            ctx.recorder.publish(&event, &reference).await
        } else {
            Recorder::new(ctx.client.clone(), ctx.reporter.clone())
                .publish(&event, &reference)
                .await
        };
        if let Err(err) = result {
            // Events are best effort: losing one must not fail the reconcile.
            tracing::warn!(error = %err, reason = notice.reason, "could not publish an Event");
        }
    }
}

/// The condition a failed reconcile leaves: its reason is the error's stable category (the
/// same word as the Event reason and the metric label), its message says what to do.
fn problem_of(err: &Error) -> Problem {
    Problem {
        reason: err.category(),
        message: err.to_string(),
        user_error: err.kind() == ErrorKind::User,
    }
}

/// Validate, and resolve a missing `connectionRef` to the operator's default connection.
fn validated(
    obj: &GitlabDeployment,
    ctx: &Context,
) -> Result<ValidatedSpec, crate::api::validate::SpecError> {
    crate::api::validate::validate(obj, &ctx.settings.default_connection)
}

async fn apply(obj: Arc<GitlabDeployment>, ctx: &Context) -> Result<Action, Error> {
    let now = Timestamp::now();
    let namespace = obj.namespace().ok_or(Error::Metadata("namespace"))?;
    let generation = obj.metadata.generation.unwrap_or(1);
    let old = obj.status.clone().unwrap_or_default();
    let mut writer = Writer {
        api: Api::namespaced(ctx.client.clone(), &namespace),
        obj: (*obj).clone(),
        ctx,
    };

    let spec = match validated(&obj, ctx) {
        Ok(spec) => spec,
        Err(spec_error) => {
            let obs = Observation {
                spec_error: Some(&spec_error),
                ..Observation::new(generation)
            };
            let next = next_status(&old, &obs, now);
            writer.write(next.clone()).await?;
            publish(ctx, &writer.obj, &transitions(&old, &next, "", false)).await;
            return Err(spec_error.into());
        }
    };

    let target = super::references::target_key(&namespace, &spec.target);
    let target_object = match ctx.targets.lookup(&target).await {
        // The kind's watcher triggers this resource once its cache is filled.
        TargetLookup::Pending => return Ok(Action::requeue(Duration::from_secs(5))),
        TargetLookup::KindNotServed(message) => {
            let err = Error::TargetKindNotServed(message);
            return fail(&mut writer, &old, &[], err, generation, now, ctx, &spec).await;
        }
        TargetLookup::Missing => None,
        TargetLookup::Found(obj) => Some(obj),
        TargetLookup::Unreadable(source) => {
            return Err(Error::TargetRead {
                namespace,
                name: spec.target.name.clone(),
                source,
            });
        }
    };
    // The pure evaluation reuses the recorded progressTimeout clock only for the revision it
    // was recorded for, so a new revision never inherits an older one's deadline.
    let Evaluation {
        rollout,
        attributed,
    } = evaluate_rollout(
        &spec,
        &old,
        target_object.as_ref(),
        &TrackCtx::default(),
        now,
    );
    let wanted = wanted_revision(&spec, &rollout);

    let mut start = old.clone();
    let key = owner_key(obj.as_ref());
    let refresh = ctx.refresh_requested(&obj);
    // A create GitLab refused is not sent again for the same spec (see `plan`), unless the
    // connection or its token changed, or a person asked for a fresh look.
    if let Some(refused) = start.refused_create.as_ref()
        && (refresh
            || ctx
                .connections
                .identity(&spec.connection, &namespace)
                .await
                .as_deref()
                != Some(refused.connection.as_str()))
    {
        start.refused_create = None;
    }
    let hinted = ctx.hints.take(&key);
    let confirmed = start
        .deployment
        .as_ref()
        .is_none_or(|d| ctx.is_verified(&key, d.id));
    let control = target_object.as_ref().and_then(rollout_control);
    let pass = Pass {
        spec: &spec,
        rollout: &rollout,
        control: control.as_ref(),
        now,
        poll: ApprovalPoll::POLLING,
        slowed: start.deployment.as_ref().and_then(|d| {
            ctx.hints
                .poll_for(&HookSource::of(&spec.connection, &namespace), d.id)
                .map(|net| (d.id, net))
        }),
        knowledge: Knowledge {
            answered: false,
            confirmed,
            refresh: refresh || hinted,
        },
        settings: &StepSettings {
            recovery_grace: ctx.settings.recovery_grace,
            fetch_merge_requests: ctx.settings.fetch_merge_requests,
        },
    };
    let mut gitlab = LiveGitlab::new(ctx, &spec);
    let mut target_writes = LiveRollout::new(ctx.client.clone(), &namespace, &spec.target);
    let run = execute(&pass, &start, &mut gitlab, &mut writer, &mut target_writes).await;
    let slowed = pass.slowed.is_some();
    if let Some(err) = run.error {
        return fail(
            &mut writer,
            &run.base,
            &run.outcomes,
            err,
            generation,
            now,
            ctx,
            &spec,
        )
        .await;
    }

    // The gate may have created the deployment in this pass: the status written says it is
    // held (the evaluation above ran before it existed).
    let rollout = if spec.approval.gate && !run.outcomes.is_empty() {
        evaluate_rollout(
            &spec,
            &run.current(now),
            target_object.as_ref(),
            &TrackCtx::default(),
            now,
        )
        .rollout
    } else {
        rollout
    };
    let status = next_status(
        &run.base,
        &Observation {
            rollout: Some(&rollout),
            wanted: wanted.as_ref(),
            outcomes: &run.outcomes,
            ..Observation::new(generation)
        },
        now,
    );
    observe_report_latency(ctx, &old, &status, now);
    writer.write(status.clone()).await?;
    // Status now holds GitLab's last answer about the current deployment.
    ctx.set_verified(&key, status.deployment.as_ref().map(|d| d.id));
    let adopted = run
        .outcomes
        .iter()
        .any(|o| matches!(o, Outcome::Adopted { .. }));
    let mut notices = transitions(&old, &status, &spec.environment, adopted);
    if let Some(note) = attributed.filter(|_| reported_new_sha(&old, &status)) {
        notices.push(Notice {
            warning: false,
            reason: reason::REVISION_ATTRIBUTED,
            note,
        });
    }
    publish(ctx, &writer.obj, &notices).await;
    // On the safety net, re-plan now and then: if the connection's hooks go silent meanwhile,
    // the next plan polls at polling's pace instead of waiting out the net.
    let requeue = match run.requeue {
        Some(d) if slowed => Some(d.min(ctx.hints.recheck_every())),
        requeue => requeue,
    };
    Ok(match requeue {
        Some(d) if d.is_zero() => Action::requeue(Duration::from_millis(100)),
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

/// Record `err` on status (Stalled for user errors, Reconciling otherwise) with what the pass
/// learned before it, emit the Events of what did change, and return the error for
/// `error_policy`.
#[allow(clippy::too_many_arguments)] // the pass's state at the failure, from three call sites
async fn fail(
    writer: &mut Writer<'_>,
    base: &GitlabDeploymentStatus,
    outcomes: &[Outcome],
    err: Error,
    generation: i64,
    now: Timestamp,
    ctx: &Context,
    spec: &ValidatedSpec,
) -> Result<Action, Error> {
    let old = writer.status();
    let problem = problem_of(&err);
    let obs = Observation {
        problem: Some(&problem),
        outcomes,
        ..Observation::new(generation)
    };
    let next = next_status(base, &obs, now);
    writer.write(next.clone()).await?;
    let mut notices = transitions(&old, &next, &spec.environment, false);
    if !problem.user_error {
        // Transient failures: kube's Recorder folds repeats into one Event with a count.
        notices.push(Notice {
            warning: true,
            reason: err.category(),
            note: err.to_string(),
        });
    }
    publish(ctx, &writer.obj, &notices).await;
    Err(err)
}

/// Count how long GitLab waited to learn that the rollout finished, when this reconcile got
/// GitLab to accept `success` or `failed` for the current deployment (by a create or an
/// update). `finishedAt` is recorded in this same reconcile the first time the finish is seen.
fn observe_report_latency(
    ctx: &Context,
    old: &GitlabDeploymentStatus,
    new: &GitlabDeploymentStatus,
    now: Timestamp,
) {
    let reported = |s: &GitlabDeploymentStatus| {
        s.deployment
            .as_ref()
            .filter(|d| matches!(d.status, GitlabStatus::Success | GitlabStatus::Failed))
            .map(|d| (d.id, d.status))
    };
    let Some(now_reported) = reported(new) else {
        return;
    };
    if reported(old) == Some(now_reported) {
        return;
    }
    if let Some(finished) = new.rollout.as_ref().and_then(|r| r.finished_at.as_ref()) {
        let millis = (now.as_millisecond() - finished.0.as_millisecond()).max(0);
        ctx.metrics.report_latency.observe(millis as f64 / 1000.0);
    }
}

async fn cleanup(obj: Arc<GitlabDeployment>, ctx: &Context) -> Result<Action, Error> {
    let Ok(spec) = validated(&obj, ctx) else {
        // A spec that never validated never reached GitLab.
        return Ok(ctx.forget(&obj));
    };
    let now = Timestamp::now();
    let mut status = obj.status.clone().unwrap_or_default();
    let mut gitlab = LiveGitlab::new(ctx, &spec);
    match execute_cleanup(spec.deletion_policy, &mut status, &mut gitlab, now).await {
        Ok(Cleaned::Done) => Ok(ctx.forget(&obj)),
        Ok(Cleaned::Said(notice)) => {
            publish(ctx, &obj, &[notice]).await;
            Ok(ctx.forget(&obj))
        }
        Ok(Cleaned::NotYet) => Ok(Action::requeue(Duration::from_secs(1))),
        Err(err) => {
            let deleting_for = obj
                .metadata
                .deletion_timestamp
                .as_ref()
                .map(|t| now.as_second() - t.0.as_second())
                .unwrap_or(0);
            let give_up = err.kind() == ErrorKind::User
                || u64::try_from(deleting_for).unwrap_or(0)
                    >= ctx.settings.cleanup_give_up_after.as_secs();
            if !give_up {
                return Err(err);
            }
            publish(
                ctx,
                &obj,
                &[Notice {
                    warning: true,
                    reason: reason::CLEANUP_SKIPPED,
                    note: format!(
                        "left the GitLab deployment as it is and let the resource go: {err}"
                    ),
                }],
            )
            .await;
            Ok(ctx.forget(&obj))
        }
    }
}
