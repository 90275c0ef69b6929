//! A faithful emulator of GitLab's Deployments REST API (`/api/v4/projects/:id/deployments*`),
//! for tests and demos. The contract is `spec/gitlab-deployments-api.md`: status codes, exact
//! bodies, headers, validation order and the deployment state machine.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! let gl = gitlab_emulator::GitlabEmulator::start()?;
//! let h = gl.handle();
//! let p = h.seed_project("team/app", "main", 3); // project, branch of 3 commits, maintainer
//! println!("{}/api/v4/projects/{}/deployments  token {}", gl.base_url(), p.id, p.maintainer_token);
//! # Ok(()) }
//! ```

pub mod clock;
pub mod demo;
pub mod faults;
pub mod handle;
pub mod model;
pub mod records;
pub mod state;
pub mod webhooks;

mod api;
mod params;
mod render;
mod server;

pub use clock::Clock;
pub use demo::{DEFAULT_APPROVER_TOKEN, DEFAULT_ROOT_TOKEN, DemoFacts, seed_demo};
pub use faults::{Fault, FaultKind, FaultPhase, RateLimit};
pub use handle::{
    ApprovalRuleSpec, CiDeploymentSpec, EmulatorHandle, MergeRequestSpec, ProjectSpec,
    SeededProject,
};
pub use model::{
    DeployAccess, DeploymentStatus, Edition, Role, Scope, Token, TokenKind, Visibility,
};
pub use records::{CounterKey, DeploymentRecord, Endpoint, HookDelivery, RequestRecord};
pub use server::{GitlabEmulator, router, serve};
pub use state::Compat;
pub use webhooks::HookFault;
