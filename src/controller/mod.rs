//! Reconcile orchestration. `plan` and `status` are pure: they decide, the reconciler acts.

pub mod allowlist;
pub mod backoff;
pub mod index;
pub mod plan;
pub mod status;
pub mod targets;
