//! The listener: `POST /hooks/gitlab`, checked in this order — token (401), size (413),
//! strict parse (400), `object_kind` (202 for anything but deployments) — then routed
//! ([`HookRoute`]): in the replica that runs the controller, the owner (202 when no resource
//! holds the id) is woken (200); in a standby, the request goes on unchanged to the leader's
//! receiver, which checks it again. Every outcome is counted in
//! `gitlab_operator_webhooks_total{result}`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::routing::post;
use kube::runtime::reflector::ObjectRef;
use parking_lot::{Mutex, RwLock};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::hints::{HookHints, HookSource};
use super::ids::DeploymentIds;
use super::payload::{self, Hook, MAX_BODY};
use super::tokens::{self, HookTokens, SecretName};
use crate::api::deployment::{ApprovalState, DeploymentId, GitlabDeployment};
use crate::controller::scoped::ScopedStore;

/// Marks a hook a standby passed on, so that a replica that does not lead either (a leader
/// change under way) refuses it instead of passing it around.
const FORWARDED: HeaderName = HeaderName::from_static("x-gitlab-operator-forwarded");
/// The headers GitLab sends that are passed on to the leader.
const PASSED_ON: [&str; 4] = [
    "x-gitlab-token",
    "x-gitlab-event",
    "x-gitlab-event-uuid",
    "content-type",
];
/// How long a standby waits for the leader's receiver (GitLab itself waits 10 s or more).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// The receiver's settings (`run --webhook-addr`, `--webhook-secret`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    pub addr: SocketAddr,
    /// The Secret holding one token per connection (see [`super::tokens`]).
    pub secret: SecretName,
    /// The approval safety net for deployments GitLab's hooks reach us for: the first read
    /// after this long pending, doubling with the time pending up to `safety_net_max`.
    pub safety_net: Duration,
    pub safety_net_max: Duration,
    /// How long a connection may send no hook after a write GitLab answers with one before
    /// its hooks count as broken (its approvals are polled as without hooks).
    pub echo_wait: Duration,
    /// Where the other replicas reach this receiver while this replica leads (the pod's IP
    /// and the port of `addr`); it is published on the leader Lease. `None`: hooks that reach
    /// a standby are refused (503).
    pub advertise: Option<SocketAddr>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookLabels {
    /// `woken`, `current`, `unknown_deployment`, `ignored_kind`, `unauthorized`,
    /// `too_large`, `malformed`; in a standby `forwarded`, `forward_failed`, `no_leader`.
    pub result: &'static str,
}

/// The receiver's metrics.
#[derive(Debug, Default)]
pub struct WebhookMetrics {
    pub hooks: Family<HookLabels, Counter>,
}

impl WebhookMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry
            .sub_registry_with_prefix("gitlab_operator")
            .register(
                "webhooks",
                "GitLab webhook requests by outcome (only `woken` causes a GitLab read)",
                self.hooks.clone(),
            );
    }

    /// Requests counted with `result` so far.
    pub fn count(&self, result: &'static str) -> u64 {
        self.hooks.get_or_create(&HookLabels { result }).get()
    }

    fn record(&self, result: &'static str) {
        self.hooks.get_or_create(&HookLabels { result }).inc();
    }
}

/// Wakes one resource (the controller's trigger channel).
pub type Wake = Arc<dyn Fn(ObjectRef<GitlabDeployment>) + Send + Sync>;

/// What the replica that runs the controller needs to act on a hook.
pub struct Local {
    pub ids: Arc<Mutex<DeploymentIds<ObjectRef<GitlabDeployment>>>>,
    pub hints: Arc<HookHints>,
    pub deployments: ScopedStore<GitlabDeployment>,
    pub wake: Wake,
}

#[derive(Clone, Default)]
enum Route {
    /// Neither a controller here nor a leader known (starting, or a leader change).
    #[default]
    Nowhere,
    /// This replica runs the controller.
    Local(Arc<Local>),
    /// Another replica leads; its receiver is here.
    Leader(SocketAddr),
}

/// Where verified hooks go in this process: its own controller while it runs one, otherwise
/// the leader's receiver. With leader election every replica listens, so a hook GitLab sends to
/// a standby still takes effect at once; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct HookRoute(Arc<RwLock<Route>>);

impl HookRoute {
    /// This replica's controller takes hooks until the guard is dropped.
    pub fn serve_locally(&self, local: Local) -> LocalGuard {
        *self.0.write() = Route::Local(Arc::new(local));
        LocalGuard(self.clone())
    }

    /// The leader's receiver, as the leader Lease says; ignored while this replica leads.
    pub fn follow(&self, leader: Option<SocketAddr>) {
        let mut route = self.0.write();
        if !matches!(*route, Route::Local(_)) {
            *route = leader.map_or(Route::Nowhere, Route::Leader);
        }
    }

    fn current(&self) -> Route {
        self.0.read().clone()
    }
}

/// See [`HookRoute::serve_locally`].
pub struct LocalGuard(HookRoute);

impl Drop for LocalGuard {
    fn drop(&mut self) {
        *self.0.0.write() = Route::Nowhere;
    }
}

/// Everything a request needs.
pub struct Receiver {
    pub tokens: HookTokens,
    pub route: HookRoute,
    pub metrics: Arc<WebhookMetrics>,
    /// Passes hooks on to the leader (plain HTTP inside the cluster, no proxy).
    forward: reqwest::Client,
}

impl Receiver {
    pub fn new(
        tokens: HookTokens,
        route: HookRoute,
        metrics: Arc<WebhookMetrics>,
    ) -> std::io::Result<Self> {
        crate::gitlab::install_crypto_provider();
        let forward = reqwest::Client::builder()
            .timeout(FORWARD_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self {
            tokens,
            route,
            metrics,
            forward,
        })
    }
}

/// Bind `addr` now (so a taken port fails the start), and return the server to run.
pub async fn bind(
    addr: SocketAddr,
    receiver: Receiver,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(
    SocketAddr,
    impl std::future::Future<Output = std::io::Result<()>> + Send + 'static,
)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let router = Router::new()
        .route("/hooks/gitlab", post(receive))
        .with_state(Arc::new(receiver));
    let server = async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
    };
    Ok((local, server))
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Body,
) -> (StatusCode, &'static str) {
    let (status, result) = handle(&r, &headers, body).await;
    r.metrics.record(result);
    if status.is_client_error() || status.is_server_error() {
        tracing::debug!(result, "webhook refused");
    }
    (status, result)
}

async fn handle(r: &Receiver, headers: &HeaderMap, body: Body) -> (StatusCode, &'static str) {
    let presented = headers
        .get("x-gitlab-token")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let sources = tokens::matching(&r.tokens.current().await, presented);
    if sources.is_empty() {
        return (StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    };
    let (deployment_id, status) = match payload::parse(&bytes) {
        Ok(Hook::Deployment {
            deployment_id,
            status,
        }) => (deployment_id, status),
        Ok(Hook::Other { .. }) => return (StatusCode::ACCEPTED, "ignored_kind"),
        Err(err) => {
            tracing::debug!(category = err.category(), error = %err, "malformed webhook");
            return (StatusCode::BAD_REQUEST, "malformed");
        }
    };
    match r.route.current() {
        Route::Local(local) => act(&local, &sources, deployment_id, &status),
        Route::Leader(leader) if !headers.contains_key(FORWARDED) => {
            forward(&r.forward, leader, headers, bytes).await
        }
        Route::Leader(_) | Route::Nowhere => (StatusCode::SERVICE_UNAVAILABLE, "no_leader"),
    }
}

/// A standby passes the verified hook on unchanged; the leader checks it again and acts on it
/// as if GitLab had sent it there.
async fn forward(
    http: &reqwest::Client,
    leader: SocketAddr,
    headers: &HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, &'static str) {
    let mut request = http
        .post(format!("http://{leader}/hooks/gitlab"))
        .header(FORWARDED.as_str(), "1")
        .body(body);
    for name in PASSED_ON {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value.clone());
        }
    }
    match request.send().await {
        Ok(answer) if !answer.status().is_server_error() => {
            let status =
                StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::ACCEPTED);
            (status, "forwarded")
        }
        Ok(answer) => {
            tracing::warn!(%leader, status = %answer.status(), "the leader's webhook receiver refused a hook passed on");
            (StatusCode::BAD_GATEWAY, "forward_failed")
        }
        Err(err) => {
            tracing::warn!(%leader, error = %err, "cannot pass a hook on to the leader's webhook receiver");
            (StatusCode::BAD_GATEWAY, "forward_failed")
        }
    }
}

/// In the replica that runs the controller: record what the hook shows about GitLab's hooks,
/// and wake the owner when the hook may tell it something new.
fn act(
    r: &Local,
    sources: &[HookSource],
    deployment_id: DeploymentId,
    status: &str,
) -> (StatusCode, &'static str) {
    for source in sources {
        r.hints.heard_hook(source);
        // Any hook naming the deployment shows that its project's hooks reach us.
        r.hints.confirm(source, deployment_id);
        // Only a server that sends approval events (MR !239337) makes polling for approvals
        // unnecessary; lifecycle hooks alone say nothing about approvals.
        if is_approval_event(status) {
            r.hints.heard_from(source);
        }
    }
    let owners = r.ids.lock().owners(deployment_id, sources);
    if owners.is_empty() {
        return (StatusCode::ACCEPTED, "unknown_deployment");
    }
    let mut woke = false;
    for owner in owners {
        let Some(obj) = r.deployments.get(&owner) else {
            continue;
        };
        if news_for(&obj, deployment_id, status) {
            r.hints.wake(owner.clone());
            (r.wake)(owner);
            woke = true;
        }
    }
    if woke {
        (StatusCode::OK, "woken")
    } else {
        (StatusCode::OK, "current")
    }
}

/// Whether a hook may tell `obj` something it does not know: an approval event while its
/// approval is pending, or a lifecycle status other than the one recorded. A replay of what
/// the resource already shows costs nothing. (The payload is only compared, never stored.)
fn news_for(obj: &GitlabDeployment, deployment_id: DeploymentId, status: &str) -> bool {
    let Some(recorded) = obj.status.as_ref() else {
        return true;
    };
    let Some(deployment) = recorded
        .deployment
        .as_ref()
        .filter(|d| d.id == deployment_id)
    else {
        return false;
    };
    match status {
        _ if is_approval_event(status) || status == "blocked" => recorded
            .approval
            .as_ref()
            .is_some_and(|a| a.state == ApprovalState::Pending),
        other => deployment.status.to_string() != other,
    }
}

fn is_approval_event(status: &str) -> bool {
    matches!(status, "approved" | "rejected")
}

/// The connection a resource uses, as hooks name it (for the index).
pub fn source_of(
    obj: &GitlabDeployment,
    default: &crate::api::validate::ConnectionTarget,
) -> Option<HookSource> {
    let namespace = obj.metadata.namespace.as_deref()?;
    let connection =
        crate::api::validate::ConnectionTarget::of(obj.spec.connection_ref.as_ref(), default);
    Some(HookSource::of(&connection, namespace))
}
