//! The listener: `POST /hooks/gitlab`, checked in this order — token (401), size (413),
//! strict parse (400), `object_kind` (202 for anything but deployments), owner (202 when no
//! resource holds the id) — then the owner is woken (200). Every outcome is counted in
//! `gitlab_operator_webhooks_total{result}`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use kube::runtime::reflector::ObjectRef;
use parking_lot::Mutex;
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

/// The receiver's settings (`run --webhook-addr`, `--webhook-secret`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    pub addr: SocketAddr,
    /// The Secret holding one token per connection (see [`super::tokens`]).
    pub secret: SecretName,
    /// Approval polling while a connection's hooks arrive.
    pub safety_net: Duration,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookLabels {
    /// `woken`, `current`, `unknown_deployment`, `ignored_kind`, `unauthorized`,
    /// `too_large`, `malformed`.
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

/// Everything a request needs.
pub struct Receiver {
    pub tokens: HookTokens,
    pub ids: Arc<Mutex<DeploymentIds<ObjectRef<GitlabDeployment>>>>,
    pub hints: Arc<HookHints>,
    pub deployments: ScopedStore<GitlabDeployment>,
    pub wake: Wake,
    pub metrics: Arc<WebhookMetrics>,
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
    if status.is_client_error() {
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
    // Only a server that sends approval events (MR !239337) makes polling for approvals
    // unnecessary; lifecycle hooks alone say nothing about approvals.
    if is_approval_event(&status) {
        for source in &sources {
            r.hints.heard_from(source);
        }
    }
    let owners = r.ids.lock().owners(deployment_id, &sources);
    if owners.is_empty() {
        return (StatusCode::ACCEPTED, "unknown_deployment");
    }
    let mut woke = false;
    for owner in owners {
        let Some(obj) = r.deployments.get(&owner) else {
            continue;
        };
        if news_for(&obj, deployment_id, &status) {
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
