//! The listener (`run --gate-listen`). Every request is checked in this order: rate (429 with
//! `Retry-After`), body size (413) and read time (408), token (401), body shape (400), then
//! the cache lookup (404 unknown resource, 503 no synced cache yet) and the verdict.
//!
//! Routes:
//! - `POST /flagger/v1/gate`: Flagger's `confirm-rollout`, `confirm-promotion` (and
//!   `confirm-traffic-increase`) hooks. 200 only when approved; 409 while pending; 403 once
//!   rejected. Flagger takes any status above 202 as "not yet" and asks again next interval.
//! - `POST /flagger/v1/rollback`: Flagger's `rollback` hook: 200 once rejected (Flagger then
//!   fails the canary), 409 otherwise.
//! - `GET /v1/namespaces/{namespace}/gitlabdeployments/{name}`: the verdict as JSON with 200
//!   whatever its state, for Argo Rollouts' `web` metric (which errors on any other status) and
//!   for scripts.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use serde_json::json;

use super::GateMetrics;
use super::auth::{GateAuth, TokenError, TokenFile, bearer};
use super::cache::{GateCache, Lookup};
use super::verdict::{GateState, Verdict, verdict};

/// Largest request body read (Flagger's payload is a few hundred bytes).
pub const MAX_BODY: usize = 16 * 1024;
/// Longest a client may take to send its body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// Flagger metadata key naming the GitlabDeployment (default: the canary's name).
pub const METADATA_NAME: &str = "gitlabDeployment";
/// Flagger metadata key carrying the token (Flagger cannot set request headers).
pub const METADATA_TOKEN: &str = "token";

/// The endpoint's settings (`run --gate-listen`, `--gate-token-file`, `--gate-insecure-no-auth`,
/// `--gate-rate`, `--gate-burst`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateConfig {
    pub addr: SocketAddr,
    pub auth: GateAuth,
    /// Requests per second over all clients (the bucket refills at this rate).
    pub per_second: NonZeroU32,
    /// Requests accepted at once after a quiet spell.
    pub burst: NonZeroU32,
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(
        "the gate endpoint needs a token: {0} (or pass --gate-insecure-no-auth, for tests and sandboxes only)"
    )]
    Token(#[source] TokenError),
    #[error("cannot start the gate endpoint on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl GateError {
    /// Stable category.
    pub fn category(&self) -> &'static str {
        match self {
            GateError::Token(err) => err.category(),
            GateError::Bind { .. } => "bind",
        }
    }
}

struct Gate {
    cache: GateCache,
    token: Option<TokenFile>,
    limiter: DefaultDirectRateLimiter,
    metrics: Arc<GateMetrics>,
}

/// Load the token, bind `config.addr` now (a missing token or a taken port fails the start),
/// and return the bound address and the server to run until `shutdown`.
pub async fn bind(
    config: &GateConfig,
    cache: GateCache,
    metrics: Arc<GateMetrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<
    (
        SocketAddr,
        impl std::future::Future<Output = std::io::Result<()>> + Send + 'static,
    ),
    GateError,
> {
    let token = match &config.auth {
        GateAuth::TokenFile(path) => Some(TokenFile::load(path).await.map_err(GateError::Token)?),
        GateAuth::Insecure => {
            tracing::warn!(
                "--gate-insecure-no-auth: anyone who reaches the gate endpoint may read approval verdicts"
            );
            None
        }
    };
    let gate = Gate {
        cache,
        token,
        limiter: RateLimiter::direct(
            Quota::per_second(config.per_second).allow_burst(config.burst),
        ),
        metrics,
    };
    let bind_err = |source| GateError::Bind {
        addr: config.addr,
        source,
    };
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    let router = Router::new()
        .route("/flagger/v1/gate", post(flagger_gate))
        .route("/flagger/v1/rollback", post(flagger_rollback))
        .route(
            "/v1/namespaces/{namespace}/gitlabdeployments/{name}",
            get(read_verdict),
        )
        .fallback(not_a_route)
        .with_state(Arc::new(gate));
    let server = async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
    };
    Ok((local, server))
}

/// A refusal or an answer, before it is counted and rendered.
struct Answer {
    code: StatusCode,
    body: serde_json::Value,
    retry_after: Option<u64>,
}

impl Answer {
    fn error(code: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            body: json!({"error": message.into()}),
            retry_after: None,
        }
    }

    fn verdict(code: StatusCode, verdict: &Verdict) -> Self {
        Self {
            code,
            body: serde_json::to_value(verdict).unwrap_or_default(),
            retry_after: None,
        }
    }
}

impl Gate {
    /// Count, time and render one answer.
    fn finish(&self, route: &'static str, started: Instant, answer: Answer) -> Response {
        self.metrics
            .requests
            .get_or_create(&super::metrics::RequestLabels {
                route,
                code: answer.code.as_u16(),
            })
            .inc();
        self.metrics
            .duration
            .get_or_create(&super::metrics::RouteLabels { route })
            .observe(started.elapsed().as_secs_f64());
        if answer.code.is_client_error() {
            tracing::debug!(route, code = answer.code.as_u16(), "gate request refused");
        }
        let mut response = (answer.code, axum::Json(answer.body)).into_response();
        if let Some(seconds) = answer.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }

    /// `Some(refusal)` when the bucket is empty, with the whole seconds until a request fits.
    fn throttle(&self) -> Option<Answer> {
        let Err(not_until) = self.limiter.check() else {
            return None;
        };
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let mut answer = Answer::error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many gate requests; retry later",
        );
        answer.retry_after = Some((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1));
        Some(answer)
    }

    async fn authorized(&self, presented: Option<&[u8]>) -> bool {
        match &self.token {
            None => true,
            Some(file) => match presented {
                Some(token) => file.accepts(token).await,
                None => false,
            },
        }
    }

    /// The verdict for `namespace/name`, counted, or the refusal.
    fn judge(&self, namespace: &str, name: &str) -> Result<Verdict, Answer> {
        match self.cache.lookup(namespace, name) {
            Lookup::Found(gd) => {
                let v = verdict(&gd);
                self.metrics
                    .verdicts
                    .get_or_create(&super::metrics::VerdictLabels {
                        state: v.state.label(),
                    })
                    .inc();
                Ok(v)
            }
            Lookup::NotFound => Err(Answer::error(
                StatusCode::NOT_FOUND,
                format!(
                    "no GitlabDeployment {namespace}/{name} is served by this operator (check the name, the namespace and the operator's --namespace and --watch-label-selector)"
                ),
            )),
            Lookup::NotSynced => {
                let mut answer = Answer::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the operator's cache has not synced yet; retry shortly",
                );
                answer.retry_after = Some(1);
                Err(answer)
            }
        }
    }
}

/// Flagger's webhook payload; only what the gate uses is read, the rest (phase, checksum) is
/// ignored so a newer Flagger keeps working.
#[derive(Debug, Deserialize)]
struct FlaggerHook {
    name: String,
    namespace: String,
    #[serde(default)]
    metadata: Option<std::collections::BTreeMap<String, String>>,
}

/// Which question a Flagger hook asks.
#[derive(Clone, Copy)]
enum FlaggerHookKind {
    /// confirm-rollout / confirm-promotion / confirm-traffic-increase: go on only if approved.
    Gate,
    /// rollback: roll back once rejected.
    Rollback,
}

async fn flagger_gate(State(g): State<Arc<Gate>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let answer = flagger(&g, &headers, body, FlaggerHookKind::Gate).await;
    g.finish("flagger_gate", started, answer)
}

async fn flagger_rollback(State(g): State<Arc<Gate>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let answer = flagger(&g, &headers, body, FlaggerHookKind::Rollback).await;
    g.finish("flagger_rollback", started, answer)
}

async fn flagger(g: &Gate, headers: &HeaderMap, body: Body, kind: FlaggerHookKind) -> Answer {
    if let Some(refusal) = g.throttle() {
        return refusal;
    }
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await
    {
        Err(_) => {
            return Answer::error(
                StatusCode::REQUEST_TIMEOUT,
                "the request body came too slowly",
            );
        }
        Ok(Err(_)) => {
            return Answer::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body exceeds {MAX_BODY} bytes"),
            );
        }
        Ok(Ok(bytes)) => bytes,
    };
    // A header token (a proxy in front of Flagger may add one) or Flagger's metadata.token;
    // the body is parsed leniently first only to find the latter.
    let hook: Result<FlaggerHook, _> = serde_json::from_slice(&bytes);
    let from_header = bearer(
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    );
    let from_metadata = hook.as_ref().ok().and_then(|h| {
        h.metadata
            .as_ref()
            .and_then(|m| m.get(METADATA_TOKEN))
            .map(String::as_bytes)
    });
    if !g.authorized(from_header.or(from_metadata)).await {
        return unauthorized();
    }
    let hook = match hook {
        Ok(hook) if !hook.name.is_empty() && !hook.namespace.is_empty() => hook,
        Ok(_) => return Answer::error(StatusCode::BAD_REQUEST, "name and namespace are required"),
        Err(err) => {
            return Answer::error(
                StatusCode::BAD_REQUEST,
                format!("not a Flagger webhook payload: {err}"),
            );
        }
    };
    let name = hook
        .metadata
        .as_ref()
        .and_then(|m| m.get(METADATA_NAME))
        .filter(|n| !n.is_empty())
        .unwrap_or(&hook.name);
    let v = match g.judge(&hook.namespace, name) {
        Ok(v) => v,
        Err(refusal) => return refusal,
    };
    let code = match (kind, v.state) {
        (FlaggerHookKind::Gate, GateState::Approved) => StatusCode::OK,
        (FlaggerHookKind::Gate, GateState::Rejected) => StatusCode::FORBIDDEN,
        (FlaggerHookKind::Rollback, GateState::Rejected) => StatusCode::OK,
        (_, _) => StatusCode::CONFLICT,
    };
    Answer::verdict(code, &v)
}

async fn read_verdict(
    State(g): State<Arc<Gate>>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let answer = async {
        if let Some(refusal) = g.throttle() {
            return refusal;
        }
        let presented = bearer(
            headers
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
        );
        if !g.authorized(presented).await {
            return unauthorized();
        }
        match g.judge(&namespace, &name) {
            Ok(v) => Answer::verdict(StatusCode::OK, &v),
            Err(refusal) => refusal,
        }
    }
    .await;
    g.finish("verdict", started, answer)
}

async fn not_a_route(State(g): State<Arc<Gate>>) -> Response {
    let started = Instant::now();
    let answer = g.throttle().unwrap_or_else(|| {
        Answer::error(
            StatusCode::NOT_FOUND,
            "routes: POST /flagger/v1/gate, POST /flagger/v1/rollback, GET /v1/namespaces/NS/gitlabdeployments/NAME",
        )
    });
    g.finish("other", started, answer)
}

fn unauthorized() -> Answer {
    Answer::error(
        StatusCode::UNAUTHORIZED,
        "send the gate token as `Authorization: Bearer TOKEN` (Flagger: metadata.token)",
    )
}
