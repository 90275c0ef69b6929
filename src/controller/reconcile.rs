//! One reconcile of a `GitlabDeployment`: read the world from caches, ask the pure planner
//! what to do, make the few GitLab calls it decided on, and write the status only when it
//! changed. The finalizer helper is the only top-level action, so deletion runs `cleanup`.
//!
//! Exactly once: before a `POST`, the intent is written to status with the object's
//! resourceVersion as precondition (a `PUT` of `/status`), so of two writers only one can claim
//! the create; after a crash between `POST` and the id write, the intent is recovered by
//! looking the deployment up, never by creating a second one.

use std::collections::HashMap;
use std::sync::PoisonError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
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
use super::index::{TargetKey, TargetKind};
use super::own_writes::OwnWrites;
use super::plan::{
    ApprovalPoll, Cleanup, Evaluation, Plan, cleanup as plan_cleanup, evaluate_rollout,
    plan_polled, record_workload_revision, reported_new_sha, wanted_revision,
};
use super::status::{
    Observation, Problem, next_status, record_deployment, record_merge_requests, with_intent,
};
use super::targets::{TargetLookup, TargetWatches};
use super::views::{deployment_view, gitlab_status, merge_request_view, write_status};
use crate::api::deployment::ConnectionKind;
use crate::api::deployment::{
    DeploymentIntent, EnvironmentRecord, EnvironmentSettings, EnvironmentSyncState,
    GitlabDeployment, GitlabDeploymentStatus, GitlabStatus, RefusedCreate,
};
use crate::api::names::DEFAULT_CONNECTION_NAME;
use crate::api::names::{FIELD_MANAGER, FINALIZER, REFRESH_ANNOTATION, reason};
use crate::api::validate::{AgentRef, ConnectionTarget, ProjectRef, ValidatedSpec};
use crate::gitlab::{
    self, CreateDeployment, DeploymentOrderBy, GitlabClient, ListDeployments, ProjectId, SortOrder,
    UpdateEnvironment,
};
use crate::metrics::OperatorMetrics;
use crate::rollout::TrackCtx;
use crate::webhook::{HookHints, HookSource};

/// At most this many plan steps in one reconcile (e.g. cancel the old deployment, write the
/// intent and create the new one, fetch merge requests); then the reconcile requeues.
const MAX_STEPS: usize = 6;
/// Merge requests kept per deployment are bounded by the status module; never page further.
const MAX_MERGE_REQUEST_PAGES: usize = 3;
/// How far before the intent's claim time a recovered deployment may have been updated
/// (clock skew between the operator and GitLab).
const RECOVERY_SKEW: Duration = Duration::from_secs(300);

/// Settings of the reconciler that are not per resource.
#[derive(Clone, Debug)]
pub struct ReconcileSettings {
    /// An intent younger than this is not given up when the lookup finds nothing: a previous
    /// leader may still be inside its `POST` (bounded by the request timeout).
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
    verified: Mutex<HashMap<ObjectRef<GitlabDeployment>, i64>>,
    /// What GitLab's hooks said: resources to re-read now, connections whose approvals are
    /// announced (their polling slows to a safety net). Empty without the receiver.
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
        let mut seen = self
            .refreshes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match seen.insert(ObjectRef::from_obj(obj), value.clone()) {
            Some(previous) => previous != *value,
            None => false,
        }
    }

    /// Drop what this process remembers about a resource whose cleanup is done (its
    /// finalizer goes next), so resources that come and go do not grow the maps.
    fn forget(&self, obj: &GitlabDeployment) -> Action {
        let key = ObjectRef::from_obj(obj);
        self.own_writes.forget(&key);
        self.refreshes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
        self.failures.reset(&key);
        self.hints.take(&key);
        Action::await_change()
    }

    fn is_verified(&self, key: &ObjectRef<GitlabDeployment>, id: i64) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(key)
            == Some(&id)
    }

    fn set_verified(&self, key: &ObjectRef<GitlabDeployment>, id: Option<i64>) {
        let mut verified = self
            .verified
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match id {
            Some(id) => verified.insert(key.clone(), id),
            None => verified.remove(key),
        };
    }
}

/// The controller's reconcile function.
pub async fn reconcile(obj: Arc<GitlabDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let key = ObjectRef::from_obj(obj.as_ref());
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
        span.record("deployment_id", id);
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
    let key = ObjectRef::from_obj(obj.as_ref());
    let failures = ctx.failures.record_failure(key);
    let unit = rand::random::<f64>();
    match err.kind() {
        ErrorKind::User => {
            tracing::info!(error = %err, category = err.category(), "needs a person; waiting for a change");
            Action::await_change()
        }
        ErrorKind::RateLimited => {
            let pause = match err {
                Error::Gitlab {
                    source: gitlab::Error::RateLimited { retry_after, .. },
                    ..
                } => *retry_after,
                _ => Duration::from_secs(5),
            };
            tracing::warn!(error = %err, "rate limited by GitLab");
            Action::requeue(pause + ctx.settings.backoff.delay(1, unit))
        }
        ErrorKind::Transient => {
            if err.category() == super::error::STALE_OBJECT {
                // Optimistic concurrency doing its job (the cache was behind a write, often
                // our own): expected, retried soon, not worth a warning.
                let delay = Duration::from_millis(200);
                tracing::debug!(error = %err, retry_in = ?delay, "stale object; retrying");
                return Action::requeue(delay);
            }
            let delay = ctx.settings.backoff.delay(failures, unit);
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

fn project_id(project: &ProjectRef) -> ProjectId {
    match project {
        ProjectRef::Id(id) => ProjectId::Id(*id),
        ProjectRef::Path(path) => ProjectId::Path(path.clone()),
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
                self.ctx.set_verified(&ObjectRef::from_obj(&self.obj), None);
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

/// The connection's client, resolved once per reconcile (and only when a step needs GitLab).
async fn gitlab_client(
    ctx: &Context,
    spec: &ValidatedSpec,
    namespace: &str,
    cached: &mut Option<GitlabClient>,
) -> Result<GitlabClient, Error> {
    if let Some(client) = cached {
        return Ok(client.clone());
    }
    let client = ctx
        .connections
        .client_for(&spec.connection, namespace)
        .await?;
    *cached = Some(client.clone());
    Ok(client)
}

/// GitLab refused the token (401) or its user (403): re-read the connection's Secret at once
/// rather than wait for the memo to expire. True when the connection now has other
/// credentials (a rotated token): `used` is cleared and the caller retries once with them.
async fn rotated_after_refusal(
    ctx: &Context,
    spec: &ValidatedSpec,
    namespace: &str,
    err: &Error,
    used: &mut Option<GitlabClient>,
) -> bool {
    let refused = matches!(
        err,
        Error::Gitlab {
            source: gitlab::Error::Unauthorized { .. } | gitlab::Error::Forbidden { .. },
            ..
        }
    );
    let Some(client) = used.as_ref().filter(|_| refused) else {
        return false;
    };
    if !ctx
        .connections
        .credentials_changed(&spec.connection, namespace, client)
        .await
    {
        return false;
    }
    tracing::info!(
        category = err.category(),
        "GitLab refused the token, and its Secret changed: retrying with the new one"
    );
    *used = None;
    true
}

/// Validate, and resolve a missing `connectionRef` to the operator's default connection.
fn validated(
    obj: &GitlabDeployment,
    ctx: &Context,
) -> Result<ValidatedSpec, crate::api::validate::SpecError> {
    let mut spec = crate::api::validate::validate(obj)?;
    if obj.spec.connection_ref.is_none() {
        spec.connection = ctx.settings.default_connection.clone();
    }
    Ok(spec)
}

/// Everything learned from GitLab during one reconcile.
#[derive(Default)]
struct Learned {
    adopted: bool,
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

    let target = TargetKey {
        kind: TargetKind {
            api_version: spec.target.api_version.clone(),
            kind: spec.target.kind.clone(),
        },
        namespace: namespace.clone(),
        name: spec.target.name.clone(),
    };
    let target_object = match ctx.targets.lookup(&target) {
        // The kind's watcher triggers this resource once its cache is filled.
        TargetLookup::Pending => return Ok(Action::requeue(Duration::from_secs(5))),
        TargetLookup::KindNotServed(message) => {
            let err = Error::TargetKindNotServed(message);
            return fail(&mut writer, &old, err, generation, now, ctx, &spec).await;
        }
        TargetLookup::Missing => None,
        TargetLookup::Found(obj) => Some(obj),
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

    let mut status = old.clone();
    let mut learned = Learned::default();
    let mut requeue: Option<Duration> = None;
    let mut client: Option<GitlabClient> = None;
    let mut rotated = false;
    let key = ObjectRef::from_obj(obj.as_ref());
    let refresh = ctx.refresh_requested(&obj);
    // A create GitLab refused is not sent again for the same spec (see `plan`), unless the
    // connection or its token changed, or a person asked for a fresh look.
    if let Some(refused) = status.refused_create.as_ref()
        && (refresh
            || ctx
                .connections
                .identity(&spec.connection, &namespace)
                .await
                .as_deref()
                != Some(refused.connection.as_str()))
    {
        status.refused_create = None;
    }
    let hinted = ctx.hints.take(&key);
    // Read the current deployment first when a person asked for a fresh look (the refresh
    // annotation) or a GitLab hook named it, or when it is running and this process has not
    // confirmed its recorded status yet (a crash may have lost a PUT's answer; see
    // `Context::verified`).
    let reread = status
        .deployment
        .as_ref()
        .filter(|d| refresh || hinted || (!d.status.is_finished() && !ctx.is_verified(&key, d.id)))
        .map(|d| d.id);
    let poll = ctx
        .hints
        .safety_net_for(&HookSource::of(&spec.connection, &namespace))
        .map_or(ApprovalPoll::POLLING, ApprovalPoll::safety_net);
    if let Some(id) = reread {
        let step = Plan::PollApprovals {
            id,
            after: Duration::ZERO,
        };
        let gitlab = match gitlab_client(ctx, &spec, &namespace, &mut client).await {
            Ok(c) => c,
            Err(err) => return fail(&mut writer, &status, err, generation, now, ctx, &spec).await,
        };
        let done = act(
            step,
            &gitlab,
            &spec,
            &mut status,
            &mut writer,
            &mut learned,
            ctx,
            now,
        )
        .await;
        if let Err(err) = done {
            if rotated_after_refusal(ctx, &spec, &namespace, &err, &mut client).await {
                // Start over with the new token (the re-read comes first again).
                return Ok(Action::requeue(Duration::from_millis(100)));
            }
            return fail(&mut writer, &status, err, generation, now, ctx, &spec).await;
        }
    }
    for _ in 0..MAX_STEPS {
        let step = plan_polled(&spec, &status, &rollout, now, poll);
        if let Plan::Nothing { requeue: r } = step {
            requeue = r;
            break;
        }
        let gitlab = match gitlab_client(ctx, &spec, &namespace, &mut client).await {
            Ok(c) => c,
            Err(err) => return fail(&mut writer, &status, err, generation, now, ctx, &spec).await,
        };
        tracing::debug!(?step, "acting");
        match act(
            step,
            &gitlab,
            &spec,
            &mut status,
            &mut writer,
            &mut learned,
            ctx,
            now,
        )
        .await
        {
            Ok(Some(after)) => {
                requeue = Some(after);
                break;
            }
            Ok(None) => {}
            Err(err)
                if !rotated
                    && rotated_after_refusal(ctx, &spec, &namespace, &err, &mut client).await =>
            {
                // The same plan again, with the new token (a refused create left no intent,
                // and its refusal was the old token's).
                rotated = true;
                status.refused_create = None;
                continue;
            }
            Err(err) => return fail(&mut writer, &status, err, generation, now, ctx, &spec).await,
        }
        requeue = Some(Duration::ZERO);
    }

    record_workload_revision(&old, &mut status, wanted.as_ref(), &rollout);
    let obs = Observation {
        rollout: Some(&rollout),
        wanted: wanted.as_ref(),
        ..Observation::new(generation)
    };
    let next = next_status(&status, &obs, now);
    observe_report_latency(ctx, &old, &next, now);
    writer.write(next.clone()).await?;
    // Status now holds GitLab's last answer about the current deployment.
    ctx.set_verified(&key, next.deployment.as_ref().map(|d| d.id));
    let mut notices = transitions(&old, &next, &spec.environment, learned.adopted);
    if let Some(note) = attributed.filter(|_| reported_new_sha(&old, &next)) {
        notices.push(Notice {
            warning: false,
            reason: reason::REVISION_ATTRIBUTED,
            note,
        });
    }
    publish(ctx, &writer.obj, &notices).await;
    Ok(match requeue {
        Some(d) if d.is_zero() => Action::requeue(Duration::from_millis(100)),
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

/// Record `err` on status (Stalled for user errors, Reconciling otherwise), emit the Events
/// of what did change, and return the error for `error_policy`.
async fn fail(
    writer: &mut Writer<'_>,
    status: &GitlabDeploymentStatus,
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
        ..Observation::new(generation)
    };
    let next = next_status(status, &obs, now);
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

/// Perform one planned step. `Ok(Some(d))` ends this reconcile with a requeue after `d`.
#[allow(clippy::too_many_arguments)] // one step's whole context, passed from one call site
async fn act(
    step: Plan,
    gitlab: &GitlabClient,
    spec: &ValidatedSpec,
    status: &mut GitlabDeploymentStatus,
    writer: &mut Writer<'_>,
    learned: &mut Learned,
    ctx: &Context,
    now: Timestamp,
) -> Result<Option<Duration>, Error> {
    let project = project_id(&spec.project);
    match step {
        Plan::Nothing { requeue } => Ok(requeue),
        Plan::CreateDeployment {
            revision,
            initial_status,
        } => {
            let Some(to) = write_status(initial_status) else {
                return Ok(None);
            };
            // Write-ahead: claim the create. A 409 here means another writer got there first.
            let claimed = with_intent(status, &revision, &spec.environment, initial_status, now);
            writer.write(claimed.clone()).await?;
            *status = claimed;
            let request = CreateDeployment {
                environment: spec.environment.clone(),
                sha: revision.sha.clone(),
                git_ref: revision.ref_name.clone(),
                tag: revision.tag,
                status: to,
            };
            match gitlab.create_deployment(&project, &request).await {
                Ok(created) => {
                    tracing::Span::current().record("deployment_id", created.id);
                    record_deployment(status, &deployment_view(&created), revision.tag, now);
                    // Record the id at once: the next step may take a while.
                    writer.write(status.clone()).await?;
                    Ok(None)
                }
                Err(err) => {
                    let refused = err.kind() == gitlab::ErrorKind::User;
                    let err = Error::gitlab("create deployment", err);
                    if refused {
                        // GitLab refused the create (unknown sha, bad environment name, no
                        // permission): nothing was created, so the claim is void; and the same
                        // request would be refused again, so it is not repeated.
                        status.intent = None;
                        status.refused_create = Some(RefusedCreate {
                            revision,
                            generation: spec.generation,
                            reason: err.category().to_owned(),
                            message: err.to_string(),
                            connection: ctx
                                .connections
                                .identity(&spec.connection, &spec.namespace)
                                .await
                                .unwrap_or_default(),
                        });
                    }
                    // Otherwise the intent stays: whether GitLab created it is unknown, and
                    // the next reconcile looks it up before creating again.
                    Err(err)
                }
            }
        }
        Plan::RecoverDeployment { intent } => {
            match find_intended(gitlab, &project, &intent, status).await? {
                Some(found) => {
                    tracing::info!(
                        id = found.id,
                        "adopted the deployment of an interrupted create"
                    );
                    record_deployment(status, &deployment_view(&found), intent.revision.tag, now);
                    learned.adopted = true;
                    Ok(None)
                }
                None => {
                    let age = Duration::from_secs(
                        u64::try_from(now.as_second() - intent.claimed_at.0.as_second())
                            .unwrap_or(0),
                    );
                    if age < ctx.settings.recovery_grace {
                        // A previous leader may still be inside its POST: look again later.
                        return Ok(Some(
                            ctx.settings.recovery_grace - age + Duration::from_secs(1),
                        ));
                    }
                    status.intent = None;
                    Ok(None)
                }
            }
        }
        Plan::UpdateStatus { id, to } => {
            update(gitlab, &project, id, to, status, now).await?;
            Ok(None)
        }
        Plan::Supersede { old_id, then } => {
            update(
                gitlab,
                &project,
                old_id,
                GitlabStatus::Canceled,
                status,
                now,
            )
            .await?;
            Box::pin(act(*then, gitlab, spec, status, writer, learned, ctx, now)).await
        }
        Plan::PollApprovals { id, after } => {
            let d = gitlab
                .get_deployment(&project, u64::try_from(id).unwrap_or(0))
                .await
                .map_err(|e| Error::gitlab("read approvals", e))?;
            let tag = status.deployment.as_ref().is_some_and(|d| d.tag);
            record_deployment(status, &deployment_view(&d), tag, now);
            Ok(Some(after))
        }
        Plan::FetchMergeRequests { id } if !ctx.settings.fetch_merge_requests => {
            // Disabled: mark the deployment as handled so the planner moves on.
            record_merge_requests(status, id, &[]);
            Ok(None)
        }
        Plan::SyncEnvironment { environment_id } => {
            let wanted = spec.environment_settings.clone().unwrap_or_default();
            status.environment =
                Some(sync_environment(gitlab, &project, environment_id, wanted).await?);
            Ok(None)
        }
        Plan::FetchMergeRequests { id } => {
            let mrs: Vec<_> = gitlab
                .list_merge_requests(
                    &project,
                    u64::try_from(id).unwrap_or(0),
                    &Default::default(),
                )
                .take(MAX_MERGE_REQUEST_PAGES * 20)
                .try_collect()
                .await
                .map_err(|e| Error::gitlab("list merge requests", e))?;
            let views: Vec<_> = mrs.iter().map(merge_request_view).collect();
            record_merge_requests(status, id, &views);
            Ok(None)
        }
    }
}

/// Set `wanted` on GitLab environment `id`: read it, send only what differs, and check GitLab
/// kept it (a GitLab before 17.4 silently drops the Kubernetes fields). A refusal that a person
/// must fix (a 4xx) is recorded as `Rejected` and not retried until the settings change;
/// transient errors are returned and retried with backoff.
async fn sync_environment(
    gitlab: &GitlabClient,
    project: &ProjectId,
    id: i64,
    wanted: EnvironmentSettings,
) -> Result<EnvironmentRecord, Error> {
    let record = |state, message: String| EnvironmentRecord {
        id,
        settings: wanted.clone(),
        state,
        message,
    };
    let env_id = u64::try_from(id).unwrap_or_default();
    let outcome: Result<Result<String, String>, gitlab::Error> = async {
        let agent = match wanted.cluster_agent.as_deref().map(AgentRef::parse) {
            None => None,
            Some(AgentRef::Id(agent)) => Some(agent),
            Some(AgentRef::Name { project: at, name }) => {
                let at = at.map_or_else(|| project.clone(), ProjectId::Path);
                let agents = gitlab.list_cluster_agents(&at).await?;
                match agents.into_iter().find(|a| a.name == name) {
                    Some(a) => Some(a.id),
                    None => {
                        return Ok(Err(format!(
                            "GitLab has no agent {name:?} registered in project {at}; register it, or name one that is"
                        )));
                    }
                }
            }
        };
        let current = gitlab.get_environment(project, env_id).await?;
        let update = environment_update(&current, &wanted, agent);
        if update.is_empty() {
            return Ok(Ok(String::new()));
        }
        let after = gitlab.update_environment(project, env_id, &update).await?;
        let dropped = environment_update(&after, &wanted, agent).fields();
        if dropped.is_empty() {
            Ok(Ok(format!("set {}", update.fields().join(", "))))
        } else {
            Ok(Err(format!(
                "GitLab accepted the update of environment {} but did not keep {}: the Kubernetes fields need GitLab 17.4 or newer, and a token that may read the agent (Developer)",
                current.name,
                dropped.join(", ")
            )))
        }
    }
    .await;
    match outcome {
        Ok(Ok(message)) => Ok(record(EnvironmentSyncState::Applied, message)),
        Ok(Err(message)) => Ok(record(EnvironmentSyncState::Rejected, message)),
        Err(err) if err.kind() == gitlab::ErrorKind::User => {
            Ok(record(EnvironmentSyncState::Rejected, err.to_string()))
        }
        Err(err) => Err(Error::gitlab("update environment", err)),
    }
}

/// What must change on `current` to show `wanted` (only the fields the spec sets).
fn environment_update(
    current: &gitlab::Environment,
    wanted: &EnvironmentSettings,
    agent: Option<u64>,
) -> UpdateEnvironment {
    let differs = |want: &Option<String>, have: &Option<String>| {
        want.as_ref().filter(|w| Some(*w) != have.as_ref()).cloned()
    };
    UpdateEnvironment {
        external_url: differs(&wanted.external_url, &current.external_url),
        tier: differs(&wanted.tier.map(|t| t.as_str().to_owned()), &current.tier),
        cluster_agent_id: agent
            .filter(|a| current.cluster_agent.as_ref().map(|c| c.id) != Some(*a)),
        kubernetes_namespace: differs(&wanted.kubernetes_namespace, &current.kubernetes_namespace),
        flux_resource_path: differs(&wanted.flux_resource_path, &current.flux_resource_path),
    }
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

/// `PUT status`; a refusal because GitLab already has that status (our cache was behind, or an
/// earlier answer was lost) is settled by reading the deployment back.
async fn update(
    gitlab: &GitlabClient,
    project: &ProjectId,
    id: i64,
    to: GitlabStatus,
    status: &mut GitlabDeploymentStatus,
    now: Timestamp,
) -> Result<(), Error> {
    let Some(wire) = write_status(to) else {
        return Ok(());
    };
    let gid = u64::try_from(id).unwrap_or(0);
    let tag = status
        .deployment
        .as_ref()
        .filter(|d| d.id == id)
        .is_some_and(|d| d.tag);
    // A cancel only ever means "stop what is still running". GitLab accepts success -> canceled
    // and failed -> canceled, so a cancel sent on a stale recorded `running` would rewrite a
    // finished deployment's history (the chaos suite found two ways to get such a stale record).
    // Cancels are rare (supersede, workload gone, deletion): read the deployment first and leave
    // a finished one as it is.
    if to == GitlabStatus::Canceled {
        let current = gitlab
            .get_deployment(project, gid)
            .await
            .map_err(|e| Error::gitlab("read deployment before canceling it", e))?;
        if gitlab_status(current.status).is_finished() {
            record_answer(status, id, &deployment_view(&current), tag, now);
            return Ok(());
        }
    }
    let answer =
        match gitlab.update_deployment_status(project, gid, wire).await {
            Ok(d) => d,
            Err(gitlab::Error::InvalidTransition { .. }) => gitlab
                .get_deployment(project, gid)
                .await
                .map_err(|e| Error::gitlab("read deployment after a refused update", e))?,
            Err(e) => return Err(Error::gitlab("update deployment", e)),
        };
    record_answer(status, id, &deployment_view(&answer), tag, now);
    Ok(())
}

/// Record GitLab's answer about deployment `id`: the current one, or one in the history.
fn record_answer(
    status: &mut GitlabDeploymentStatus,
    id: i64,
    view: &crate::controller::status::GitlabDeploymentView,
    tag: bool,
    now: Timestamp,
) {
    if status.deployment.as_ref().is_some_and(|d| d.id == id) {
        record_deployment(status, view, tag, now);
    } else if let Some(entry) = status.history.iter_mut().find(|h| h.deployment_id == id) {
        entry.status = view.status;
    }
}

/// The deployment an interrupted create made: same environment, sha and ref, updated after
/// the claim (minus clock skew), and not one this resource already knows. The oldest wins:
/// it is the one the interrupted `POST` made.
async fn find_intended(
    gitlab: &GitlabClient,
    project: &ProjectId,
    intent: &DeploymentIntent,
    status: &GitlabDeploymentStatus,
) -> Result<Option<gitlab::Deployment>, Error> {
    let claimed = DateTime::<Utc>::from_timestamp(intent.claimed_at.0.as_second(), 0)
        .unwrap_or_default()
        - chrono::Duration::from_std(RECOVERY_SKEW).unwrap_or_default();
    let query = ListDeployments {
        environment: Some(intent.environment.clone()),
        order_by: Some(DeploymentOrderBy::UpdatedAt),
        sort: Some(SortOrder::Asc),
        updated_after: Some(claimed),
        per_page: Some(100),
        ..Default::default()
    };
    let known: Vec<i64> = status
        .history
        .iter()
        .map(|h| h.deployment_id)
        .chain(status.deployment.iter().map(|d| d.id))
        .collect();
    let candidates: Vec<gitlab::Deployment> = gitlab
        .list_deployments(project, &query)
        .try_filter(|d| {
            let matches = d.sha == intent.revision.sha
                && d.git_ref == intent.revision.ref_name
                && d.deployable.is_none()
                && !known.contains(&i64::try_from(d.id).unwrap_or(i64::MAX));
            futures::future::ready(matches)
        })
        .try_collect()
        .await
        .map_err(|e| Error::gitlab("look up an interrupted create", e))?;
    Ok(candidates.into_iter().min_by_key(|d| d.id))
}

async fn cleanup(obj: Arc<GitlabDeployment>, ctx: &Context) -> Result<Action, Error> {
    let Ok(spec) = validated(&obj, ctx) else {
        // A spec that never validated never reached GitLab.
        return Ok(ctx.forget(&obj));
    };
    let namespace = spec.namespace.clone();
    let now = Timestamp::now();
    let mut status = obj.status.clone().unwrap_or_default();
    let give_up = |err: &Error| {
        let deleting_for = obj
            .metadata
            .deletion_timestamp
            .as_ref()
            .map(|t| now.as_second() - t.0.as_second())
            .unwrap_or(0);
        err.kind() == ErrorKind::User
            || u64::try_from(deleting_for).unwrap_or(0)
                >= ctx.settings.cleanup_give_up_after.as_secs()
    };
    let mut client: Option<GitlabClient> = None;
    let mut rotated = false;
    for _ in 0..3 {
        let step = plan_cleanup(spec.deletion_policy, Some(&status));
        if step == Cleanup::Nothing {
            return Ok(ctx.forget(&obj));
        }
        let result = async {
            let gitlab = gitlab_client(ctx, &spec, &namespace, &mut client).await?;
            let project = project_id(&spec.project);
            run_cleanup(step, &gitlab, &project, &mut status, now).await
        }
        .await;
        match result {
            Err(err)
                if !rotated
                    && rotated_after_refusal(ctx, &spec, &namespace, &err, &mut client).await =>
            {
                rotated = true;
            }
            Ok(Some(notice)) => {
                publish(ctx, &obj, &[notice]).await;
                return Ok(ctx.forget(&obj));
            }
            Ok(None) => {}
            Err(err) if give_up(&err) => {
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
                return Ok(ctx.forget(&obj));
            }
            Err(err) => return Err(err),
        }
    }
    Ok(Action::requeue(Duration::from_secs(1)))
}

/// One cleanup step; `Some(notice)` when the cleanup is finished with something to say.
async fn run_cleanup(
    step: Cleanup,
    gitlab: &GitlabClient,
    project: &ProjectId,
    status: &mut GitlabDeploymentStatus,
    now: Timestamp,
) -> Result<Option<Notice>, Error> {
    match step {
        Cleanup::Nothing => Ok(None),
        Cleanup::Recover { intent } => {
            match find_intended(gitlab, project, &intent, status).await? {
                Some(found) => {
                    record_deployment(status, &deployment_view(&found), intent.revision.tag, now)
                }
                None => status.intent = None,
            }
            Ok(None)
        }
        Cleanup::Cancel { id } => {
            cancel_quietly(gitlab, project, id, status, now).await?;
            Ok(Some(Notice {
                warning: false,
                reason: reason::DEPLOYMENT_CANCELED,
                note: format!("GitLab deployment {id} canceled: its GitlabDeployment was deleted"),
            }))
        }
        Cleanup::CancelThenDelete { id } => {
            cancel_quietly(gitlab, project, id, status, now).await?;
            delete(gitlab, project, id).await.map(Some)
        }
        Cleanup::Delete { id } => delete(gitlab, project, id).await.map(Some),
    }
}

async fn cancel_quietly(
    gitlab: &GitlabClient,
    project: &ProjectId,
    id: i64,
    status: &mut GitlabDeploymentStatus,
    now: Timestamp,
) -> Result<(), Error> {
    match update(gitlab, project, id, GitlabStatus::Canceled, status, now).await {
        // Already gone: nothing left to cancel.
        Err(Error::Gitlab {
            source: gitlab::Error::NotFound { .. },
            ..
        }) => Ok(()),
        other => other,
    }
}

async fn delete(gitlab: &GitlabClient, project: &ProjectId, id: i64) -> Result<Notice, Error> {
    match gitlab
        .delete_deployment(project, u64::try_from(id).unwrap_or(0))
        .await
    {
        Ok(()) | Err(gitlab::Error::NotFound { .. }) => Ok(Notice {
            warning: false,
            reason: reason::DEPLOYMENT_DELETED,
            note: format!("GitLab deployment {id} deleted with its GitlabDeployment"),
        }),
        Err(gitlab::Error::NotAllowed { message, .. }) => Ok(Notice {
            warning: true,
            reason: reason::CLEANUP_SKIPPED,
            note: format!(
                "GitLab keeps deployment {id} ({message}): it is what the environment runs; the resource is deleted anyway"
            ),
        }),
        Err(e) => Err(Error::gitlab("delete deployment", e)),
    }
}
