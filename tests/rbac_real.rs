//! The cluster-wide install's RBAC (`deploy/`) under real enforcement: see
//! tests/harness/rbac_real.rs. (tests/rbac.rs proves the other direction on the emulator:
//! nothing granted goes unused.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod harness;

use harness::Backend;

async fn the_operator_runs_on_the_cluster_wide_rbac_of_deploy_under_real_enforcement(
    backend: Backend,
) {
    assert_eq!(backend, Backend::Real);
    harness::rbac_real::operator_runs_on_rendered_rbac("deploy", None).await;
}

real_only!(the_operator_runs_on_the_cluster_wide_rbac_of_deploy_under_real_enforcement);
