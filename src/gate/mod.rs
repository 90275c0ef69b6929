//! The approval gate endpoint (`run --gate-listen`), off by default: Flagger's confirm and
//! rollback webhooks and Argo Rollouts' `web` metric ask it whether a GitlabDeployment is
//! approved for its wanted revision. It answers from the operator's cache, never from GitLab,
//! so a busy analysis costs no GitLab call. See docs/approvals.md.
//!
//! - [`verdict`]: the contract's verdict (pure, table-tested).
//! - [`auth`]: the bearer token from a file mounted from a Secret, re-read on rotation.
//! - [`cache`]: the controller's cache, or a standby's own while it does not lead.
//! - [`server`]: routes, bounds (body size, rate, read time) and status codes.
//! - [`metrics`]: the `gitlab_operator_gate_*` families.

pub mod auth;
pub mod cache;
pub mod metrics;
pub mod server;
pub mod verdict;

pub use auth::GateAuth;
pub use cache::GateCache;
pub use metrics::GateMetrics;
pub use server::{GateConfig, GateError};
pub use verdict::{GateState, Verdict, verdict};
