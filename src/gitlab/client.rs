//! The connection: one [`GitlabClient`] per GitLab URL + token, cheap to clone (an `Arc`
//! inside) so every clone shares one rate limiter, one 429 pause and one set of metrics. The
//! HTTP pool is shared wider, by every client with the same transport settings
//! ([`shared_http`]). The endpoint methods live in `deployments.rs`; this module sends
//! requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use super::auth::{Token, TokenKind};
use super::classify::classify;
use super::endpoint::RequestContext;
use super::error::{Error, Late};
use super::metrics::GitlabMetrics;
use super::ratelimit::{RateLimit, Throttle, retry_after};
use super::retry::RetryPolicy;
use super::types::ProjectId;

/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

static CRYPTO_PROVIDER: Once = Once::new();

/// Install `ring` as rustls' process-wide provider (the workspace builds reqwest with
/// `rustls-no-provider`). Idempotent; a provider installed earlier by someone else (kube's
/// client, say) is kept.
pub fn install_crypto_provider() {
    CRYPTO_PROVIDER.call_once(|| {
        // Err means a provider is already installed: fine, reqwest uses whichever is default.
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The TLS settings of every client without a CA bundle of its own, built once and shared
/// (the verifier behind an `Arc`). reqwest builds them per client, and the platform verifier
/// parses the system's whole root store each time: about 200 KiB and tens of thousands of
/// allocations per client, and the operator keeps a client per connection, so with a
/// connection per namespace that was most of its memory at thousands of namespaces (a heap
/// profile, docs/benchmarks.md). The same verifier, versions and ALPN as reqwest's own.
fn shared_tls() -> Result<rustls::ClientConfig, Error> {
    static SHARED: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let provider = rustls::crypto::CryptoProvider::get_default()
                .cloned()
                .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
            let verifier = rustls_platform_verifier::Verifier::new(Arc::clone(&provider))
                .map_err(|e| format!("cannot load the system's root certificates: {e}"))?;
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS versions: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(config)
        })
        .clone()
        .map_err(Error::config)
}

/// What an HTTP client depends on besides the request: requests carry their own timeout and
/// token, so clients equal in these can share one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Transport {
    ca_bundle_pem: Option<Vec<u8>>,
    user_agent: String,
    connect_timeout: Duration,
}

/// One HTTP client, and so one pool of keep-alive connections, per transport, shared by every
/// [`GitlabClient`] built with it. With a client of its own per connection (and a connection per
/// namespace) the operator kept an idle keep-alive connection per connection to the same
/// GitLab: a heap profile at 5,000 resources over 100 namespaces found 13 MiB there (of the
/// 16 MiB the process held more than a restarted one), none of it needed. Tokens, timeouts, rate limits and 429 pauses stay per connection. The map holds
/// one entry per distinct CA bundle and user agent seen, a handful in practice.
fn shared_http(transport: &Transport) -> Result<reqwest::Client, Error> {
    static CLIENTS: OnceLock<Mutex<HashMap<Transport, reqwest::Client>>> = OnceLock::new();
    let clients = CLIENTS.get_or_init(Mutex::default);
    // A panic while the map was held cannot leave it half-written: take it as it is.
    let mut clients = clients
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(client) = clients.get(transport) {
        return Ok(client.clone());
    }
    let mut http = reqwest::Client::builder()
        .user_agent(transport.user_agent.clone())
        .connect_timeout(transport.connect_timeout)
        // Never follow redirects: a redirect could carry our token header to another host.
        .redirect(reqwest::redirect::Policy::none());
    match &transport.ca_bundle_pem {
        Some(pem) => {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::config(format!("the CA bundle is not valid PEM: {e}")))?;
            if certs.is_empty() {
                return Err(Error::config("the CA bundle holds no certificate"));
            }
            http = http.tls_certs_merge(certs);
        }
        None => http = http.tls_backend_preconfigured(shared_tls()?),
    }
    let http = http
        .build()
        .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))?;
    clients.insert(transport.clone(), http.clone());
    Ok(http)
}

/// Normalise a GitLab URL to its API root ending in `/api/v4/`: accepts `https://host`,
/// `https://host/` , `https://host/api/v4`, `http://127.0.0.1:8080`, and a relative URL root
/// (`https://host/gitlab`). Credentials in the URL are refused so they cannot leak into logs.
pub fn api_base(url: &str) -> Result<Url, Error> {
    let mut parsed = Url::parse(url.trim())
        .map_err(|e| Error::config(format!("GitLab URL {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::config(format!(
            "GitLab URL must start with https:// (or http:// for a local emulator), got scheme {:?}",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none() {
        return Err(Error::config("GitLab URL has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::config(
            "GitLab URL must not carry credentials; pass the token separately",
        ));
    }
    parsed.set_query(None);
    parsed.set_fragment(None);
    let path = parsed.path().trim_end_matches('/').to_owned();
    let path = if path.ends_with("/api/v4") {
        format!("{path}/")
    } else {
        format!("{path}/api/v4/")
    };
    parsed.set_path(&path);
    Ok(parsed)
}

/// Settings of one connection.
#[derive(Debug, Clone)]
pub struct GitlabClientBuilder {
    url: String,
    token: Token,
    timeout: Duration,
    ca_bundle_pem: Option<Vec<u8>>,
    retry: RetryPolicy,
    rate_limit: Option<RateLimit>,
    metrics: Option<Arc<GitlabMetrics>>,
    user_agent: String,
}

impl GitlabClientBuilder {
    /// Per-request timeout (connect + send + read the whole body).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Extra trusted CA certificates (PEM bundle), on top of the system roots. TLS is always
    /// verified.
    pub fn ca_bundle_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_bundle_pem = Some(pem.into());
        self
    }

    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Client-side budget (token bucket); `None` (default) disables it.
    pub fn rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.rate_limit = limit;
        self
    }

    /// Metrics shared with the operator's registry; by default an unregistered set.
    pub fn metrics(mut self, metrics: Arc<GitlabMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    pub fn build(self) -> Result<GitlabClient, Error> {
        install_crypto_provider();
        let base = api_base(&self.url)?;
        let auth = self.token.header()?;
        if self.timeout.is_zero() {
            return Err(Error::config("the request timeout must be positive"));
        }
        // The request timeout is set on each request (`send_once`), so it is not part of the
        // transport.
        let http = shared_http(&Transport {
            ca_bundle_pem: self.ca_bundle_pem,
            user_agent: self.user_agent,
            connect_timeout: self.timeout.min(Duration::from_secs(10)),
        })?;
        Ok(GitlabClient {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                token_kind: self.token.kind(),
                timeout: self.timeout,
                retry: self.retry,
                throttle: Throttle::new(self.rate_limit),
                metrics: self.metrics.unwrap_or_default(),
            }),
        })
    }
}

/// A connection to one GitLab with one token. Clone it freely.
#[derive(Debug, Clone)]
pub struct GitlabClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: Url,
    auth: (HeaderName, HeaderValue),
    token_kind: TokenKind,
    timeout: Duration,
    retry: RetryPolicy,
    throttle: Throttle,
    metrics: Arc<GitlabMetrics>,
}

/// One request to send: the route context, the path below `/api/v4/`, query and JSON body.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub ctx: RequestContext,
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<serde_json::Value>,
}

/// A successful answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl GitlabClient {
    /// Start configuring a connection to `url` (with or without `/api/v4`).
    pub fn builder(url: impl Into<String>, token: Token) -> GitlabClientBuilder {
        GitlabClientBuilder {
            url: url.into(),
            token,
            timeout: DEFAULT_TIMEOUT,
            ca_bundle_pem: None,
            retry: RetryPolicy::default(),
            rate_limit: None,
            metrics: None,
            user_agent: concat!("gitlab-deployment-operator/", env!("CARGO_PKG_VERSION"))
                .to_owned(),
        }
    }

    /// Whether `other` is a clone of this client (one connection, one token), not merely one
    /// built from equal settings.
    pub fn same_as(&self, other: &GitlabClient) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The API root this client talks to (`…/api/v4/`), without credentials.
    pub fn api_url(&self) -> &Url {
        &self.inner.base
    }

    pub fn token_kind(&self) -> TokenKind {
        self.inner.token_kind
    }

    pub fn metrics(&self) -> &Arc<GitlabMetrics> {
        &self.inner.metrics
    }

    /// The deadline set by GitLab's last 429, while it lasts: the operator requeues work on
    /// this connection until then instead of calling.
    pub fn paused_until(&self) -> Option<Instant> {
        self.inner.throttle.paused_until()
    }

    /// Send `call`, retrying per the policy; returns the answer and the number of attempts.
    pub(crate) async fn execute(&self, call: &Call) -> (Result<Answer, Error>, u32) {
        self.execute_by(call, None).await
    }

    /// As [`Self::execute`], for a call that must be over by `over_by`: some other party will
    /// then take it as no longer in flight. An attempt starts only while the request timeout
    /// still fits before `over_by`, so every request it sends has been answered or abandoned
    /// by then, and no wait (a 429 pause, the rate limiter, a backoff) that would end after
    /// that last start is begun. Refused before the first attempt, the answer is
    /// [`Error::SendDeadlinePassed`] with 0 attempts: nothing was sent. A retry refused so is
    /// answered with the error of the attempt before it, since that one was sent.
    pub(crate) async fn execute_by(
        &self,
        call: &Call,
        over_by: Option<Instant>,
    ) -> (Result<Answer, Error>, u32) {
        let policy = &self.inner.retry;
        let endpoint = call.ctx.endpoint;
        let timeout = self.inner.timeout;
        let refused = |late: Late| Error::SendDeadlinePassed {
            ctx: call.ctx.clone(),
            late,
            timeout,
        };
        // The last moment an attempt may start (none before the clock's origin: refuse).
        let send_by = match over_by.map(|by| by.checked_sub(timeout)) {
            None => None,
            Some(Some(by)) => Some(by),
            Some(None) => return (Err(refused(Late::Passed)), 0),
        };
        let started = Instant::now();
        let mut attempt = 0u32;
        // The error of the last attempt, once one was sent.
        let mut sent: Option<Error> = None;
        loop {
            attempt += 1;
            // A pause longer than the caller is willing to wait fails fast, without a request:
            // the operator requeues for the pause deadline instead of holding a reconcile.
            if let Some(until) = self.inner.throttle.paused_until() {
                let remaining = until.saturating_duration_since(Instant::now());
                if remaining > policy.max_rate_limit_wait {
                    return (
                        Err(Error::RateLimited {
                            ctx: call.ctx.clone(),
                            retry_after: remaining,
                        }),
                        attempt - 1,
                    );
                }
            }
            let late = match self.inner.throttle.ready(send_by).await {
                Err(late) => Some(late),
                Ok(()) => send_by
                    .is_some_and(|by| Instant::now() > by)
                    .then_some(Late::Passed),
            };
            if let Some(late) = late {
                tracing::warn!(endpoint = %call.ctx, attempt, "not sending a GitLab request: {late}");
                return match sent {
                    Some(err) => (Err(err), attempt - 1),
                    None => (Err(refused(late)), 0),
                };
            }
            let err = match self.send_once(call).await {
                Ok(answer) => return (Ok(answer), attempt),
                Err(err) => err,
            };
            if !endpoint.idempotent() {
                return (Err(err), attempt);
            }
            let delay = match &err {
                // The pause is already set on the connection; `ready()` waits it out.
                Error::RateLimited { retry_after, .. }
                    if *retry_after <= policy.max_rate_limit_wait
                        && attempt < policy.max_attempts =>
                {
                    Some(Duration::ZERO)
                }
                e if e.is_retryable() => {
                    let delay = policy.backoff(attempt, rand::random::<f64>());
                    policy
                        .may_retry(attempt, started.elapsed(), delay)
                        .then_some(delay)
                }
                _ => None,
            };
            // A backoff that ends after the last start is not begun either.
            let Some(delay) = delay.filter(|d| send_by.is_none_or(|by| Instant::now() + *d <= by))
            else {
                return (Err(err), attempt);
            };
            tracing::warn!(
                endpoint = %call.ctx,
                attempt,
                delay_ms = delay.as_millis() as u64,
                category = err.category(),
                "retrying GitLab request: {err}"
            );
            self.inner.metrics.retried(endpoint);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            sent = Some(err);
        }
    }

    fn url(&self, call: &Call) -> Result<Url, Error> {
        // A dot segment (`..`, or `%2e%2e`, which URL resolution reads the same) would step out
        // of `projects/:id` and send the token to another route: never build one.
        let dot_segment = call.path.split('/').any(|segment| {
            let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
            !decoded.is_empty() && decoded.bytes().all(|b| b == b'.')
        });
        if dot_segment
            || call
                .ctx
                .project
                .as_ref()
                .is_some_and(ProjectId::has_dot_segment)
        {
            return Err(Error::Config {
                message: format!(
                    "refusing to send {}: the project has a part made of dots only, which would leave projects/:id",
                    call.ctx
                ),
            });
        }
        // The path segments are already percent-encoded (ProjectId::url_segment); `join` keeps
        // `%2F` as is.
        self.inner.base.join(&call.path).map_err(|e| Error::Config {
            message: format!("cannot build the request URL for {}: {e}", call.ctx),
        })
    }

    async fn send_once(&self, call: &Call) -> Result<Answer, Error> {
        let endpoint = call.ctx.endpoint;
        let url = self.url(call)?;
        let (name, value) = &self.inner.auth;
        let mut request = self
            .inner
            .http
            .request(endpoint.method(), url)
            .timeout(self.inner.timeout)
            .header(http::header::ACCEPT, "application/json")
            .header(name.clone(), value.clone());
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let started = Instant::now();
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                self.inner
                    .metrics
                    .observe(endpoint, None, started.elapsed().as_secs_f64());
                return Err(self.transport_error(&call.ctx, e));
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match read_capped(response, MAX_BODY).await {
            Ok(Some(body)) => body,
            Ok(None) => {
                self.inner.metrics.observe(
                    endpoint,
                    Some(status.as_u16()),
                    started.elapsed().as_secs_f64(),
                );
                return Err(Error::Decode {
                    ctx: call.ctx.clone(),
                    message: format!(
                        "the answer is larger than {} MiB, more than any Deployments API answer can be; it was not read",
                        MAX_BODY / (1024 * 1024)
                    ),
                });
            }
            Err(e) => {
                self.inner
                    .metrics
                    .observe(endpoint, None, started.elapsed().as_secs_f64());
                return Err(self.transport_error(&call.ctx, e));
            }
        };
        let elapsed = started.elapsed();
        self.inner
            .metrics
            .observe(endpoint, Some(status.as_u16()), elapsed.as_secs_f64());
        tracing::debug!(
            endpoint = %call.ctx,
            code = status.as_u16(),
            elapsed_ms = elapsed.as_millis() as u64,
            "GitLab request"
        );
        if status.is_success() {
            return Ok(Answer { headers, body });
        }
        let pause = if status == StatusCode::TOO_MANY_REQUESTS {
            let pause = retry_after(&headers, SystemTime::now());
            self.inner.throttle.pause(pause);
            self.inner.metrics.rate_limit_pauses.inc();
            tracing::warn!(
                endpoint = %call.ctx,
                pause_secs = pause.as_secs_f64(),
                "GitLab rate limit hit; pausing this connection"
            );
            pause
        } else {
            Duration::ZERO
        };
        Err(classify(call.ctx.clone(), status, &body, pause))
    }

    fn transport_error(&self, ctx: &RequestContext, e: reqwest::Error) -> Error {
        if e.is_timeout() {
            return Error::Timeout {
                ctx: ctx.clone(),
                after: self.inner.timeout,
            };
        }
        // The URL carries no secret, but leave it out anyway: the context names the call.
        let e = e.without_url();
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = s.source();
        }
        Error::Transport {
            ctx: ctx.clone(),
            message,
        }
    }
}

/// Decode a JSON answer; malformed JSON is an error, never a panic.
/// The largest answer read from GitLab. A page of 100 deployments with approval details is a few
/// hundred KiB; anything near this is not a Deployments API answer (a misconfigured URL, a
/// proxy's download), and reading it whole would let one response exhaust the operator's memory.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// Read a response body up to `cap` bytes; `Ok(None)` when it is larger (stops reading at once).
async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response
        .content_length()
        .is_some_and(|len| len > cap as u64)
    {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > cap {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

pub(crate) fn decode<T: DeserializeOwned>(ctx: &RequestContext, body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| {
        let text = String::from_utf8_lossy(body);
        let snippet: String = text.chars().take(80).collect();
        Error::Decode {
            ctx: ctx.clone(),
            message: format!("{e} (body starts with {snippet:?})"),
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn api_base_table() {
        let cases = [
            (
                "https://gitlab.example.com",
                Some("https://gitlab.example.com/api/v4/"),
            ),
            (
                "https://gitlab.example.com/",
                Some("https://gitlab.example.com/api/v4/"),
            ),
            (
                "https://gitlab.example.com/api/v4",
                Some("https://gitlab.example.com/api/v4/"),
            ),
            (
                "https://gitlab.example.com/api/v4/",
                Some("https://gitlab.example.com/api/v4/"),
            ),
            (
                "http://127.0.0.1:8080",
                Some("http://127.0.0.1:8080/api/v4/"),
            ),
            (
                "https://example.com/gitlab",
                Some("https://example.com/gitlab/api/v4/"),
            ),
            (" https://h/?x=1#f ", Some("https://h/api/v4/")),
            ("ftp://h", None),
            ("https://user:glpat-SECRET@h", None),
            ("not a url", None),
        ];
        for (input, want) in cases {
            let got = api_base(input);
            assert_eq!(got.as_ref().ok().map(Url::as_str), want, "input {input:?}");
            if let Err(e) = got {
                assert!(!e.to_string().contains("SECRET"), "{e}");
            }
        }
    }

    #[test]
    fn builder_rejects_bad_settings_without_leaking_the_token() {
        let token = || Token::private("glpat-SECRET");
        let cases: [(&str, GitlabClientBuilder); 4] = [
            (
                "garbage CA",
                GitlabClient::builder("https://h", token()).ca_bundle_pem("not pem"),
            ),
            (
                "empty token",
                GitlabClient::builder("https://h", Token::private(" ")),
            ),
            (
                "zero timeout",
                GitlabClient::builder("https://h", token()).timeout(Duration::ZERO),
            ),
            (
                "bad url",
                GitlabClient::builder("gitlab.example.com", token()),
            ),
        ];
        for (name, builder) in cases {
            let err = builder.build().unwrap_err();
            assert_eq!(err.category(), "ConfigError", "case {name}");
            assert!(!format!("{err} {err:?}").contains("SECRET"), "case {name}");
        }
        let ok = GitlabClient::builder("https://gitlab.example.com/", token())
            .build()
            .unwrap();
        assert_eq!(ok.api_url().as_str(), "https://gitlab.example.com/api/v4/");
        assert!(!format!("{ok:?}").contains("SECRET"));
    }

    #[test]
    fn encoded_project_path_survives_join() {
        let base = api_base("http://127.0.0.1:1").unwrap();
        let url = base
            .join("projects/group%2Fsub%2Fproj/deployments/3")
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/api/v4/projects/group%2Fsub%2Fproj/deployments/3"
        );
    }

    #[test]
    fn no_request_path_has_a_dot_segment() {
        let client = GitlabClient::builder("http://127.0.0.1:1", Token::private("glpat-x"))
            .build()
            .unwrap();
        let get = |project: ProjectId, path: String| Call {
            ctx: RequestContext::new(
                super::super::endpoint::Endpoint::ListDeployments,
                &project,
                None,
            ),
            path,
            query: Vec::new(),
            body: None,
        };
        for (name, call) in [
            (
                "project ..",
                get(
                    ProjectId::Path("..".into()),
                    "projects/../deployments".into(),
                ),
            ),
            (
                "project group/..",
                get(
                    ProjectId::Path("group/..".into()),
                    "projects/group%2F..%2Fdeployments".into(),
                ),
            ),
            (
                "encoded dots",
                get(ProjectId::Id(1), "projects/%2e%2E/deployments".into()),
            ),
            (
                "a single dot",
                get(ProjectId::Id(1), "projects/./deployments".into()),
            ),
        ] {
            let err = client.url(&call).unwrap_err();
            assert_eq!(err.category(), "ConfigError", "case {name}: {err}");
        }
        let fine = get(
            ProjectId::Path("my.group/a..b".into()),
            "projects/my.group%2Fa..b/deployments".into(),
        );
        assert_eq!(
            client.url(&fine).unwrap().path(),
            "/api/v4/projects/my.group%2Fa..b/deployments"
        );
    }

    #[test]
    fn decode_garbage_is_an_error() {
        let ctx = RequestContext::new(
            super::super::endpoint::Endpoint::GetDeployment,
            &super::super::types::ProjectId::Id(1),
            Some(2),
        );
        let r: Result<serde_json::Value, _> = decode(&ctx, b"{\"id\": 1,");
        assert_eq!(r.unwrap_err().category(), "DecodeError");
    }
}
