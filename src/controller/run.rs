//! Wiring: the watches, caches, index and `Controller`s of a running operator.
//!
//! - `GitlabDeployment`s: one watch (and one `Controller`) per served namespace, or one for all.
//!   Their events feed the target index; status-only updates (our own writes) are filtered by
//!   the generation predicate, while finalizer changes, the refresh annotation and deletion
//!   still get through.
//! - Targets: one watch per followed kind, started on first use ([`TargetWatches`]); their
//!   events wake exactly the resources that follow the changed object.
//! - Connections and Namespaces (selectors): caches the connection resolver reads; a change
//!   wakes the resources that use it.
//! - Token Secrets and CA bundles are never listed or watched: they are read by name through
//!   a short-lived memo ([`SourceMemo`]), refreshed in the background; a change it sees wakes
//!   the resources that use it, so a fixed Secret ends a `Stalled` state without anyone
//!   touching the resource.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt, future};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Controller;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Client, Resource, ResourceExt};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::allowlist::HostAllowList;
use super::connections::{ConnectionCaches, Connections};
use super::credentials::SourceMemo;
use super::index::{IndexChange, ReferenceIndex, owner_key};
use super::own_writes::OwnWrites;
use super::reconcile::{Context, ReconcileSettings, error_policy, reconcile};
use super::references::references;
use super::scoped::ScopedStore;
use super::shard::Shard;
use super::targets::{Scope, TargetWatches};
use crate::admin::AdminState;
use crate::api::connection::{ClusterGitlabConnection, GitlabConnection};
use crate::api::deployment::{ApprovalState, ConnectionKind, GitlabDeployment};
use crate::api::names::{EVENT_REPORTER, REFRESH_ANNOTATION};
use crate::api::validate::ConnectionTarget;
use crate::controller::plan::ApprovalPoll;
use crate::gate::{GateCache, GateMetrics};
use crate::gitlab::GitlabMetrics;
use crate::metrics::{OperatorMetrics, PhaseLabels};
use crate::webhook::ids::DeploymentIds;
use crate::webhook::server::{Local, Receiver, source_of};
use crate::webhook::tokens::HookTokens;
use crate::webhook::{HookHints, HookRoute, WebhookConfig, WebhookMetrics};

/// How the operator runs (from the command line).
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub scope: Scope,
    pub allow: HostAllowList,
    /// Reconciles in flight at once (per namespace controller).
    pub concurrency: u16,
    pub settings: ReconcileSettings,
    /// Namespace the operator runs in (where ClusterGitlabConnections usually keep their
    /// Secrets; they are read by name, so nothing here depends on it any more).
    pub operator_namespace: Option<String>,
    /// `reportingInstance` of Events (the pod name).
    pub instance: Option<String>,
    /// The GitLab webhook receiver; `None` (the default) opens no port.
    pub webhook: Option<WebhookConfig>,
    /// The label selector every `GitlabDeployment` watch is filtered by (`--watch-label-selector`).
    pub shard: Shard,
    /// Where the gate endpoint reads GitlabDeployments: the run publishes its cache there once
    /// synced and withdraws it when it ends. `None` when the gate is off.
    pub gate: Option<GateCache>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "the GitlabDeployment CRD is not installed (the API server answered: {0}); install the CRDs: `gitlab-deployment-operator crd | kubectl apply -f -`"
    )]
    CrdMissing(String),
    #[error(
        "the API server refused --watch-label-selector {selector:?}: {message}; write it as kubectl's -l takes it, e.g. sharding.gitlab-operator.io/key=shard1 or !sharding.gitlab-operator.io/key"
    )]
    Selector { selector: String, message: String },
    #[error("cannot reach the Kubernetes API server: {0}")]
    Kube(#[source] kube::Error),
    #[error("cannot start the webhook receiver on {addr}: {source}")]
    Webhook {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The shared metrics and registry of one operator process.
pub struct Telemetry {
    /// Every family, for `/metrics` (the families are shared handles: updating the metrics
    /// below updates what the registry renders).
    pub registry: Arc<Registry>,
    pub operator: Arc<OperatorMetrics>,
    pub gitlab: Arc<GitlabMetrics>,
    pub webhook: Arc<WebhookMetrics>,
    pub gate: Arc<GateMetrics>,
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::default();
        let operator = Arc::new(OperatorMetrics::default());
        operator.register(&mut registry);
        let gitlab = Arc::new(GitlabMetrics::register(&mut registry));
        let webhook = Arc::new(WebhookMetrics::default());
        webhook.register(&mut registry);
        let gate = Arc::new(GateMetrics::default());
        gate.register(&mut registry);
        Self {
            registry: Arc::new(registry),
            operator,
            gitlab,
            webhook,
            gate,
        }
    }
}

/// Fail early with the fix when the CRDs are missing or the shard's selector is malformed,
/// instead of a watch error loop. Lists in the first served namespace when the operator is
/// namespace-scoped, so a namespaced install needs no cluster-wide right for it.
pub async fn check_crds(client: &Client, scope: &Scope, shard: &Shard) -> Result<(), RunError> {
    let api: Api<GitlabDeployment> = match scope {
        Scope::Namespaces(list) if !list.is_empty() => Api::namespaced(client.clone(), &list[0]),
        _ => Api::all(client.clone()),
    };
    let mut params = ListParams::default().limit(1);
    if let Some(selector) = shard.selector() {
        params = params.labels(selector);
    }
    match api.list(&params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            Err(RunError::CrdMissing(status.message))
        }
        Err(kube::Error::Api(status)) if status.code == 400 && shard.selector().is_some() => {
            Err(RunError::Selector {
                selector: shard.metric_label(),
                message: status.message,
            })
        }
        Err(err) => Err(RunError::Kube(err)),
    }
}

/// Every `GitlabDeployment` watch is filtered by the shard's selector: the API server then
/// sends a deletion when a relabelled resource leaves the shard and an addition when one
/// joins, so a shard drops (and stops acting on) what it no longer serves.
fn deployment_watch_config(shard: &Shard) -> watcher::Config {
    match shard.selector() {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    }
}

/// The namespaces watches are opened in: `None` = all.
fn watch_namespaces(scope: &Scope) -> Vec<Option<String>> {
    match scope {
        Scope::All => vec![None],
        Scope::Namespaces(list) => list.iter().cloned().map(Some).collect(),
    }
}

fn api_for<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Reflect `K` in each namespace; returns the caches and one stream of watch events to drive.
fn reflect_scoped<K>(
    client: &Client,
    namespaces: &[Option<String>],
    gate: &Arc<SyncGate>,
) -> (
    ScopedStore<K>,
    impl Stream<Item = watcher::Event<K>> + Send + 'static,
)
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let mut stores = ScopedStore::default();
    let mut streams = Vec::new();
    for ns in namespaces {
        let (reader, writer) = reflector::store();
        stores.insert(ns.clone(), reader);
        let stream = watcher(api_for::<K>(client, ns), watcher::Config::default())
            .default_backoff()
            .modify(drop_managed_fields)
            .reflect(writer)
            .filter_map(|event| future::ready(log_watch_error::<K>(event)))
            .inspect(gate.watch());
        streams.push(stream.boxed());
    }
    (stores, futures::stream::select_all(streams))
}

/// Managed fields are most of a small object and nothing here reads them (status writes send
/// none): every cache drops them. In a heap profile the Namespace cache alone held ~17 KiB per
/// namespace of them. `kubectl apply`'s copy of the whole object in an annotation goes too.
fn drop_managed_fields<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Readiness: flips the admin server to ready once every watch has delivered its first full
/// list. (Waiting on the reflector stores instead does not work when several tasks wait on
/// the same store: kube-runtime's `DelayedInit` wakes only the last waiter.)
struct SyncGate {
    remaining: std::sync::atomic::AtomicUsize,
    admin: AdminState,
    /// `true` once every watch has listed: reconciles wait for it (see [`SyncGate::synced`]).
    synced: tokio::sync::watch::Sender<bool>,
}

impl SyncGate {
    fn new(admin: AdminState) -> Arc<Self> {
        Arc::new(Self {
            remaining: std::sync::atomic::AtomicUsize::new(0),
            admin,
            synced: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Resolves once every watch has delivered its first full list. A reconcile that ran
    /// earlier would judge a GitlabDeployment on empty connection and Secret caches: "connection
    /// not found", and on deletion it would let the finalizer go without canceling the GitLab
    /// deployment (seen against the real kube-apiserver, whose lists return in no fixed order).
    fn synced(self: &Arc<Self>) -> impl Future<Output = ()> + Send + use<> {
        let mut rx = self.synced.subscribe();
        async move {
            // An error means the gate is gone: the run is ending anyway.
            let _ = rx.wait_for(|synced| *synced).await;
        }
    }

    /// Register one more watch; the returned closure marks it synced (only its first call
    /// counts).
    fn watch<K>(self: &Arc<Self>) -> impl FnMut(&watcher::Event<K>) + Send + 'static {
        self.remaining
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let gate = Arc::clone(self);
        let mut done = false;
        move |event| {
            if !done && matches!(event, watcher::Event::InitDone) {
                done = true;
                let before = gate
                    .remaining
                    .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                if before == 1 {
                    gate.synced.send_replace(true);
                    gate.admin.set_ready(true);
                    tracing::info!("caches synced; ready");
                }
            }
        }
    }
}

/// Keep a watch event; log a watch error (the default backoff already paces the retries).
fn log_watch_error<K: Resource<DynamicType = ()>>(
    event: Result<watcher::Event<K>, watcher::Error>,
) -> Option<watcher::Event<K>> {
    match event {
        Ok(event) => Some(event),
        Err(err) => {
            tracing::warn!(kind = %K::kind(&()), error = %err, "watch error; retrying with backoff");
            None
        }
    }
}

/// Routes a trigger to the controller of the resource's namespace.
#[derive(Clone)]
struct Triggers {
    senders: Arc<HashMap<Option<String>, mpsc::UnboundedSender<ObjectRef<GitlabDeployment>>>>,
    metrics: Arc<OperatorMetrics>,
}

impl Triggers {
    fn send(&self, target: ObjectRef<GitlabDeployment>) {
        let sender = self
            .senders
            .get(&target.namespace)
            .or_else(|| self.senders.get(&None));
        if let Some(sender) = sender
            && sender.send(target).is_ok()
        {
            self.metrics.queue_depth.inc();
        }
    }
}

fn hash_refresh(obj: &GitlabDeployment) -> Option<u64> {
    let mut hasher = DefaultHasher::new();
    obj.annotations().get(REFRESH_ANNOTATION).hash(&mut hasher);
    Some(hasher.finish())
}

type OwnerIndex = Mutex<ReferenceIndex<ObjectRef<GitlabDeployment>>>;

/// Apply one `GitlabDeployment` watch event to the reference index, starting a target watcher
/// the first time a kind is followed.
fn index_event(
    event: &watcher::Event<GitlabDeployment>,
    scope: Option<&str>,
    index: &OwnerIndex,
    targets: &TargetWatches<ObjectRef<GitlabDeployment>>,
    default: &ConnectionTarget,
) {
    let mut new_kinds = Vec::new();
    {
        let mut index = index.lock();
        match event {
            watcher::Event::Init => index.relist_started(scope),
            watcher::Event::InitDone => index.relist_done(scope),
            watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => {
                let owner = owner_key(obj);
                match references(obj, default) {
                    Some(refs) => {
                        if let IndexChange::NewKind(kind) = index.apply(owner, refs) {
                            new_kinds.push(kind);
                        }
                    }
                    None => index.remove(&owner),
                }
            }
            watcher::Event::Delete(obj) => index.remove(&owner_key(obj)),
        }
    }
    // Outside the index lock: starting a watcher takes the watchers' own lock.
    for kind in new_kinds {
        targets.ensure(&kind);
    }
}

type DeploymentIdIndex = Mutex<DeploymentIds<ObjectRef<GitlabDeployment>>>;

/// Bind the webhook receiver on `webhook.addr` with hooks going where `route` says; the
/// returned future serves until `shutdown`.
pub async fn serve_hooks(
    client: &Client,
    webhook: &WebhookConfig,
    route: HookRoute,
    telemetry: &Telemetry,
    shutdown: CancellationToken,
) -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let receiver = Receiver::new(
        HookTokens::new(client.clone(), &webhook.secret),
        route,
        Arc::clone(&telemetry.webhook),
    )?;
    let (addr, server) = crate::webhook::server::bind(webhook.addr, receiver, async move {
        shutdown.cancelled().await;
    })
    .await?;
    tracing::info!(%addr, "webhook receiver listening");
    Ok(async move {
        if let Err(err) = server.await {
            tracing::warn!(error = %err, "webhook receiver stopped");
        }
    })
}

/// Apply one `GitlabDeployment` watch event to the deployment id index of the webhook
/// receiver. After a relist of `scope`, owners its store no longer holds are dropped.
fn index_deployment_ids(
    event: &watcher::Event<GitlabDeployment>,
    scope: Option<&str>,
    store: &Store<GitlabDeployment>,
    ids: &DeploymentIdIndex,
    default: &ConnectionTarget,
) {
    let mut ids = ids.lock();
    match event {
        watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => {
            let held = obj
                .status
                .as_ref()
                .and_then(|s| s.deployment.as_ref())
                .map(|d| d.id)
                .zip(source_of(obj, default));
            ids.apply(owner_key(obj), held);
        }
        watcher::Event::Delete(obj) => ids.remove(&owner_key(obj)),
        watcher::Event::InitDone => ids.retain(|owner| {
            scope.is_some_and(|ns| owner.namespace.as_deref() != Some(ns))
                || store.get(owner).is_some()
        }),
        watcher::Event::Init => {}
    }
}

/// Run the operator until `shutdown` is cancelled. `admin` turns ready once every cache
/// has synced. With `config.webhook`, the receiver listens here for as long as this runs.
pub async fn run(
    client: Client,
    config: RunConfig,
    telemetry: &Telemetry,
    admin: AdminState,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    run_routed(client, config, telemetry, admin, shutdown, None).await
}

/// As [`run`]; with `hooks`, the receiver is not bound here: an elected replica listens for
/// its whole life (see `leader::run_elected`), and this run takes the hooks of that listener
/// while it lasts.
pub async fn run_routed(
    client: Client,
    config: RunConfig,
    telemetry: &Telemetry,
    admin: AdminState,
    shutdown: CancellationToken,
    hooks: Option<HookRoute>,
) -> Result<(), RunError> {
    check_crds(&client, &config.scope, &config.shard).await?;
    telemetry.operator.set_shard(config.shard.metric_label());
    let namespaces = watch_namespaces(&config.scope);
    // Every background task of this run; dropping the set (a return, or the whole future
    // being dropped as on a kill) aborts them all, so nothing outlives the operator.
    let mut tasks = tokio::task::JoinSet::new();

    // Triggers: one channel per controller.
    let mut senders = HashMap::new();
    let mut receivers = HashMap::new();
    for ns in &namespaces {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.insert(ns.clone(), tx);
        receivers.insert(ns.clone(), rx);
    }
    let triggers = Triggers {
        senders: Arc::new(senders),
        metrics: Arc::clone(&telemetry.operator),
    };

    let gate = SyncGate::new(admin.clone());

    // Target watchers feed the same triggers through a forwarding channel.
    let index: Arc<OwnerIndex> = Arc::new(Mutex::new(ReferenceIndex::new()));
    let (target_tx, mut target_rx) = mpsc::unbounded_channel::<ObjectRef<GitlabDeployment>>();
    let targets = Arc::new(TargetWatches::new(
        client.clone(),
        config.scope.clone(),
        Arc::clone(&index),
        target_tx,
        gate.synced.subscribe(),
    ));
    {
        let triggers = triggers.clone();
        tasks.spawn(async move {
            while let Some(target) = target_rx.recv().await {
                triggers.send(target);
            }
        });
    }

    // Connection caches.
    let (connections, connection_events) =
        reflect_scoped::<GitlabConnection>(&client, &namespaces, &gate);
    let (cluster_connections, cluster_writer) = reflector::store::<ClusterGitlabConnection>();
    let cluster_events = watcher(
        Api::<ClusterGitlabConnection>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(drop_managed_fields)
    .reflect(cluster_writer)
    .filter_map(|e| future::ready(log_watch_error(e)))
    .inspect(gate.watch());
    let namespace_store: Option<Store<kube::core::PartialObjectMeta<Namespace>>> =
        if config.scope == Scope::All {
            let (reader, writer) = reflector::store();
            let events = watcher(
                Api::<kube::core::PartialObjectMeta<Namespace>>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff()
            .modify(drop_managed_fields)
            .reflect(writer)
            .for_each(|_| future::ready(()));
            tasks.spawn(events);
            Some(reader)
        } else {
            None
        };

    // Webhook hints, and the deployment id index the receiver looks hooks up in (kept only
    // with the receiver: two map entries per resource, 0.8 KiB in all in a heap profile).
    let hints = Arc::new(
        config
            .webhook
            .as_ref()
            .map(|w| {
                HookHints::new(ApprovalPoll::safety_net(w.safety_net, w.safety_net_max))
                    .with_echo_wait(w.echo_wait)
            })
            .unwrap_or_default(),
    );
    let deployment_ids: Arc<DeploymentIdIndex> = Arc::new(Mutex::new(DeploymentIds::default()));

    // GitlabDeployment watches, one per namespace.
    let own_writes = Arc::new(OwnWrites::default());
    let mut deployment_stores = ScopedStore::<GitlabDeployment>::default();
    let mut controllers_input = Vec::new();
    for ns in &namespaces {
        let (reader, writer) = reflector::store();
        deployment_stores.insert(ns.clone(), reader.clone());
        let index = Arc::clone(&index);
        let targets = Arc::clone(&targets);
        let scope = ns.clone();
        let mut synced = gate.watch();
        let own_writes = Arc::clone(&own_writes);
        let wake = triggers.clone();
        let ids = config
            .webhook
            .is_some()
            .then(|| Arc::clone(&deployment_ids));
        let id_store = reader.clone();
        let default = config.settings.default_connection.clone();
        let stream = watcher(
            api_for::<GitlabDeployment>(&client, ns),
            deployment_watch_config(&config.shard),
        )
        .default_backoff()
        .modify(drop_managed_fields)
        .reflect(writer)
        .inspect_ok(move |event| {
            index_event(event, scope.as_deref(), &index, &targets, &default);
            if let Some(ids) = &ids {
                index_deployment_ids(event, scope.as_deref(), &id_store, ids, &default);
            }
            if let watcher::Event::Apply(obj) = event
                && own_writes.observed(obj)
            {
                wake.send(owner_key(obj));
            }
            synced(event);
        })
        .touched_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::finalizers)
                .combine(hash_refresh),
            Default::default(),
        );
        controllers_input.push((ns.clone(), reader, stream));
    }

    // The gate endpoint answers from this cache once it holds every resource, and stops when
    // this run ends (a lost lease: the standby's own cache takes over, see `gate::cache`).
    let _withdraw_gate = config.gate.as_ref().map(GateCache::withdraw_on_drop);
    if let Some(cache) = config.gate.clone() {
        let synced = gate.synced();
        let stores = deployment_stores.clone();
        tasks.spawn(async move {
            synced.await;
            cache.publish(stores);
        });
    }

    let caches = ConnectionCaches {
        connections: connections.clone(),
        cluster_connections: cluster_connections.clone(),
        namespaces: namespace_store,
    };
    let (source_changes, mut changed_sources) = mpsc::unbounded_channel();
    let resolver = Connections::new(
        caches,
        config.allow.clone(),
        Arc::clone(&telemetry.gitlab),
        config.settings.credentials.clone(),
        SourceMemo::new(
            client.clone(),
            config.settings.credentials.memo_lifetime,
            source_changes,
        ),
    );
    let reporter = Reporter {
        controller: EVENT_REPORTER.to_owned(),
        instance: config.instance.clone(),
    };
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            resolver,
            Arc::clone(&targets),
            reporter,
            Arc::clone(&telemetry.operator),
            config.settings.clone(),
            own_writes,
        )
        .with_hints(Arc::clone(&hints)),
    );

    // Hooks go to this run's controller while it lasts (the guard gives them up when it ends);
    // without an elected replica's listener, this run binds its own.
    let _hooks_here = match &config.webhook {
        None => None,
        Some(webhook) => {
            let wake = triggers.clone();
            let route = hooks.clone().unwrap_or_default();
            let guard = route.serve_locally(Local {
                ids: Arc::clone(&deployment_ids),
                hints: Arc::clone(&hints),
                deployments: deployment_stores.clone(),
                wake: Arc::new(move |owner| wake.send(owner)),
            });
            if hooks.is_none() {
                let server = serve_hooks(&client, webhook, route, telemetry, shutdown.clone())
                    .await
                    .map_err(|source| RunError::Webhook {
                        addr: webhook.addr,
                        source,
                    })?;
                tasks.spawn(server);
            }
            Some(guard)
        }
    };

    // Dependents of connections, Secrets and ConfigMaps, looked up in the reference index:
    // an event wakes only the resources that use the connection. The initial list wakes them
    // too: a GitlabDeployment reconciled before its connection's first list arrived was judged
    // on an empty cache ("not found") and would otherwise wait for the next change (seen
    // against the real kube-apiserver, whose lists come back in no fixed order).
    {
        let index = Arc::clone(&index);
        let triggers = triggers.clone();
        let ctx = Arc::clone(&ctx);
        let wake = move |connection: ConnectionTarget, namespace: Option<String>| {
            let users = index.lock().users_of(&connection, namespace.as_deref());
            for target in users {
                triggers.send(target);
            }
        };
        let wake_conn = wake.clone();
        tasks.spawn(connection_events.for_each(move |event| {
            if let watcher::Event::Apply(c)
            | watcher::Event::InitApply(c)
            | watcher::Event::Delete(c) = &event
            {
                wake_conn(
                    ConnectionTarget {
                        kind: ConnectionKind::GitlabConnection,
                        name: c.name_any(),
                    },
                    c.namespace(),
                );
            }
            future::ready(())
        }));
        let wake_cluster = wake.clone();
        tasks.spawn(cluster_events.for_each(move |event| {
            if let watcher::Event::Apply(c)
            | watcher::Event::InitApply(c)
            | watcher::Event::Delete(c) = &event
            {
                wake_cluster(
                    ConnectionTarget {
                        kind: ConnectionKind::ClusterGitlabConnection,
                        name: c.name_any(),
                    },
                    None,
                );
            }
            future::ready(())
        }));
        // A Secret or ConfigMap the memo saw change (created, rotated, deleted).
        let ctx_changes = Arc::clone(&ctx);
        tasks.spawn(async move {
            while let Some(key) = changed_sources.recv().await {
                for conn in ctx_changes
                    .connections
                    .connections_reading(&key.namespace, &key.name)
                {
                    wake(conn, Some(key.namespace.clone()));
                }
            }
        });
        // The memo's housekeeping: drop what no connection names, re-read what is due.
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => ctx.connections.refresh().await,
                }
            }
        });
    }

    // Resources by phase and watched kinds, for dashboards.
    {
        let deployments = deployment_stores.clone();
        let metrics = Arc::clone(&telemetry.operator);
        let targets = Arc::clone(&targets);
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let mut counts: HashMap<String, i64> = HashMap::new();
                let now = k8s_openapi::jiff::Timestamp::now();
                let (mut pending, mut oldest) = (0_i64, 0_i64);
                for gd in deployments.state() {
                    if let Some(a) = gd
                        .status
                        .as_ref()
                        .and_then(|s| s.approval.as_ref())
                        .filter(|a| a.state == ApprovalState::Pending)
                    {
                        pending += 1;
                        let since = a.pending_since.as_ref().map_or(now, |t| t.0);
                        oldest = oldest.max(now.as_second() - since.as_second());
                    }
                    let phase = gd
                        .status
                        .as_ref()
                        .and_then(|s| s.phase)
                        .map(|p| format!("{p:?}"))
                        .unwrap_or_else(|| "Unknown".to_owned());
                    *counts.entry(phase).or_default() += 1;
                }
                metrics.resources.clear();
                for (phase, n) in counts {
                    metrics
                        .resources
                        .get_or_create(&PhaseLabels { phase })
                        .set(n);
                }
                metrics.approvals_pending.set(pending);
                metrics.approval_pending_max_seconds.set(oldest.max(0));
                metrics
                    .watched_kinds
                    .set(i64::try_from(targets.watched_kinds()).unwrap_or(i64::MAX));
                metrics
                    .cached_targets
                    .set(i64::try_from(targets.cached_targets()).unwrap_or(i64::MAX));
            }
        });
    }

    let mut controllers = Vec::new();
    for (ns, reader, stream) in controllers_input {
        let Some(rx) = receivers.remove(&ns) else {
            continue;
        };
        let metrics = Arc::clone(&telemetry.operator);
        let trigger_stream =
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx).inspect(move |_| {
                metrics.queue_depth.dec();
            });
        let shutdown = shutdown.clone();
        let controller = Controller::for_stream(stream, reader)
            .with_config(
                kube::runtime::controller::Config::default().concurrency(config.concurrency),
            )
            .reconcile_on(trigger_stream)
            .graceful_shutdown_on(async move { shutdown.cancelled().await })
            .run(
                {
                    let gate = Arc::clone(&gate);
                    move |obj, ctx| {
                        let synced = gate.synced();
                        async move {
                            synced.await;
                            reconcile(obj, ctx).await
                        }
                    }
                },
                error_policy,
                Arc::clone(&ctx),
            )
            .for_each(|result| {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "reconcile did not run");
                }
                future::ready(())
            });
        controllers.push(controller);
    }
    tracing::info!(namespaces = ?config.scope, "operator running");

    future::join_all(controllers).await;
    Ok(())
}
