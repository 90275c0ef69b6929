//! Reconcile orchestration. `plan` and `status` are pure: they decide, the reconciler acts.

pub mod allowlist;
pub mod backoff;
pub mod connections;
pub mod credentials;
pub mod error;
pub mod events;
pub mod gitlab_calls;
pub mod index;
pub mod leader;
pub mod own_writes;
pub mod plan;
pub mod reconcile;
pub mod references;
pub mod run;
pub mod scoped;
pub mod shard;
pub mod status;
pub mod steps;
pub mod target_control;
pub mod targets;
pub mod views;
