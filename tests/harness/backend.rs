//! Which Kubernetes a test runs against: the kube emulator, or the pinned upstream control
//! plane of `tests/cluster` (see `cluster.rs`). A test body takes a [`Backend`] and the
//! [`both_backends!`] macro makes one test per backend from it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};

use gitlab_deployment_operator::controller::targets::Scope;
use kube_emulator::KubeEmulator;
use serde_json::{Value, json};

use super::{Env, cluster};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Emulator,
    /// Upstream kube-apiserver, etcd and kube-controller-manager (tests/cluster).
    Real,
}

/// The fake kubelet's per-pod knobs (tests/cluster/fakekubelet).
pub const READY_AFTER: &str = "fake-kubelet.gitlab-operator.io/ready-after";
pub const NEVER_READY: &str = "fake-kubelet.gitlab-operator.io/never-ready";

impl Backend {
    /// What the operator under test watches: everything on its own emulator, only the test's
    /// namespace on the real cluster that the tests of a binary share.
    pub fn scope(self, ns: &str) -> Scope {
        match self {
            Backend::Emulator => Scope::All,
            Backend::Real => Scope::Namespaces(vec![ns.to_owned()]),
        }
    }

    /// Where leader-election Leases go: `kube-system` on a test's own emulator, the test's
    /// namespace on the real cluster that other tests share at the same time.
    pub fn lease_namespace(self, ns: &str) -> String {
        match self {
            Backend::Emulator => "kube-system".to_owned(),
            Backend::Real => ns.to_owned(),
        }
    }

    /// Carry the emulator's rollout annotations (`rollout-step`, `rollout-outcome`)
    /// over to a Deployment for the real cluster, where the deployment controller decides:
    /// pods become Ready after the step (the fake kubelet's `ready-after`), a failing rollout
    /// gets pods that never become Ready and a short progress deadline, so it ends in the
    /// controller's own `ProgressDeadlineExceeded`.
    pub fn adapt_workload(self, deployment: &mut Value) {
        if self == Backend::Emulator {
            return;
        }
        let annotations = deployment["metadata"]["annotations"].clone();
        let mut pod = serde_json::Map::new();
        if let Some(step) = annotations
            .get("emulator.gitlab-operator.io/rollout-step")
            .and_then(Value::as_str)
        {
            pod.insert(READY_AFTER.into(), json!(step));
        }
        match annotations
            .get("emulator.gitlab-operator.io/rollout-outcome")
            .and_then(Value::as_str)
        {
            Some("fail") => {
                pod.insert(NEVER_READY.into(), json!("true"));
                deployment["spec"]["progressDeadlineSeconds"] = json!(5);
            }
            // Never done, and not failed within the test's time (the deadline stays 30 s).
            Some("stall") => {
                pod.insert(NEVER_READY.into(), json!("true"));
            }
            _ => {}
        }
        if !pod.is_empty() {
            deployment["spec"]["template"]["metadata"]["annotations"] = Value::Object(pod);
        }
    }
}

static NAMESPACES: AtomicUsize = AtomicUsize::new(0);

impl Env {
    /// The test environment on `backend`: as [`Env::start`] on the emulator; on the real
    /// cluster of this test binary, the CRDs applied and a namespace of the test's own.
    pub async fn start_on(backend: Backend) -> Env {
        match backend {
            Backend::Emulator => Env::start().await,
            Backend::Real => {
                let ns = format!(
                    "t{}-{}",
                    std::process::id(),
                    NAMESPACES.fetch_add(1, Ordering::Relaxed)
                );
                Env::start_real_in(ns).await
            }
        }
    }

    /// As [`Env::start_on`] with [`Backend::Real`], in namespace `ns` (for a test that needs
    /// a namespace named by something it reads, such as a rendered install; it must then be
    /// the only test of its binary using that name).
    pub async fn start_real_in(ns: String) -> Env {
        super::install_tracing();
        let cluster = tokio::task::spawn_blocking(cluster::shared).await.unwrap();
        let client = cluster::admin_client(cluster).await;
        Env::start_on_client(None, client, Backend::Real, ns).await
    }

    /// The kube emulator, for tests that steer it (latency, faults); they run on it only.
    pub fn emulator(&self) -> &KubeEmulator {
        self.kube
            .as_ref()
            .expect("this test steers the kube emulator and runs on Backend::Emulator only")
    }

    /// A kubeconfig for the real `kubectl`, on either backend.
    pub fn kubeconfig_path(&self) -> std::path::PathBuf {
        match &self.kube {
            Some(kube) => kube.kubeconfig_path().to_path_buf(),
            None => cluster::shared().kubeconfig.clone(),
        }
    }
}

/// `both_backends!(body)` for an `async fn body(backend: Backend)`: a module `body` with the
/// tests `emulator` and `real`, the same body on each.
#[macro_export]
macro_rules! both_backends {
    ($($body:ident),+ $(,)?) => {$(
        mod $body {
            #[tokio::test]
            async fn emulator() {
                super::$body($crate::harness::Backend::Emulator).await
            }
            #[tokio::test]
            async fn real() {
                super::$body($crate::harness::Backend::Real).await
            }
        }
    )+};
}

/// `real_only!(body)`: the module `body` with the one test `real`, for what only the upstream
/// controllers decide.
#[macro_export]
macro_rules! real_only {
    ($($body:ident),+ $(,)?) => {$(
        mod $body {
            #[tokio::test]
            async fn real() {
                super::$body($crate::harness::Backend::Real).await
            }
        }
    )+};
}
