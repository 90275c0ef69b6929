//! Reconcile orchestration. `plan` and `status` are pure: they decide, the reconciler acts.

pub mod plan;
pub mod status;
