//! The GitLab webhook receiver: `POST /hooks/gitlab` on its own listener, off by default.
//!
//! A hook is a **hint**. An authenticated Deployment Hook wakes the GitlabDeployment that owns
//! its `deployment_id` (found through [`ids::DeploymentIds`], never by a scan); that resource
//! then re-reads the deployment and its approvals from the API as it always does. Nothing from
//! a payload reaches status, so a forged or replayed hook costs at most one GET.
//!
//! - [`payload`]: the strict, bounded parse (pure).
//! - [`tokens`]: which connection a `X-Gitlab-Token` belongs to (the webhook Secret, memoised).
//! - [`ids`]: deployment id → owning resource.
//! - [`hints`]: what the reconciler learns from hooks (wake-ups, connections that send approval
//!   events, deployments hooks were seen for).
//! - [`server`]: the listener, its metrics, and the route from a standby to the leader.

pub mod hints;
pub mod ids;
pub mod payload;
pub mod server;
pub mod tokens;

pub use hints::{HookHints, HookSource};
pub use server::{HookRoute, WebhookConfig, WebhookMetrics};
