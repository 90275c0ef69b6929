//! Custom resource types, shared names and condition helpers.

pub mod conditions;
pub mod connection;
pub mod crds;
pub mod deployment;
pub mod names;
pub mod validate;

pub use connection::{ClusterGitlabConnection, GitlabConnection};
pub use deployment::{GitlabDeployment, GitlabDeploymentSpec, GitlabDeploymentStatus};
pub use validate::{SpecError, ValidatedSpec};

#[cfg(test)]
mod tests;
