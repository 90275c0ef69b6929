//! The namespace-scoped install's RBAC (`deploy/overlays/namespaced`, watching `apps`) under
//! real enforcement: see tests/harness/rbac_real.rs. A binary of its own, so no cluster-wide
//! operator of another test shares its control plane.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod harness;

use harness::Backend;

async fn the_operator_runs_on_the_namespaced_overlays_rbac_under_real_enforcement(
    backend: Backend,
) {
    assert_eq!(backend, Backend::Real);
    harness::rbac_real::operator_runs_on_rendered_rbac("deploy/overlays/namespaced", Some("apps"))
        .await;
}

real_only!(the_operator_runs_on_the_namespaced_overlays_rbac_under_real_enforcement);
