//! GitLab's Deployments API client (spec `gitlab-deployments-api.md`).
//!
//! One [`GitlabClient`] per connection (URL + token), cheap to clone. It sends the token in the
//! header its kind requires and never anywhere else, applies a per-request timeout, an optional
//! client-side token bucket and GitLab's 429 pause shared by all callers, retries idempotent
//! calls (GET/PUT/DELETE) with jittered exponential backoff on 5xx/timeouts/transport errors,
//! never retries POSTs, follows pagination as one stream, and counts every call in
//! [`GitlabMetrics`] by route template and status code.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gitlab_deployment_operator::gitlab::Error> {
//! use futures::TryStreamExt;
//! use gitlab_deployment_operator::gitlab::*;
//! let client = GitlabClient::builder("https://gitlab.example.com", Token::private("glpat-…"))
//!     .build()?;
//! let project = ProjectId::Path("group/app".into());
//! let all: Vec<Deployment> = client
//!     .list_deployments(&project, &ListDeployments::default())
//!     .try_collect()
//!     .await?;
//! # Ok(()) }
//! ```

mod auth;
mod classify;
mod client;
mod deployments;
mod endpoint;
mod environments;
mod error;
mod hooks;
pub mod metrics;
mod paginate;
mod ratelimit;
mod retry;
pub mod types;

pub use auth::{Token, TokenKind};
pub use client::{
    DEFAULT_TIMEOUT, GitlabClient, GitlabClientBuilder, api_base, install_crypto_provider,
};
pub use endpoint::{Endpoint, RequestContext};
pub use environments::{ClusterAgent, Environment, UpdateEnvironment};
pub use error::{Category, Error, ErrorKind, Late, Missing};
pub use hooks::{CreateHook, ProjectHook};
pub use metrics::GitlabMetrics;
pub use ratelimit::{RateLimit, retry_after};
pub use retry::RetryPolicy;
pub use types::*;
