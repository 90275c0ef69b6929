//! End-to-end harness: the kube emulator and the GitLab emulator on loopback, the CRDs
//! installed, a fresh namespace with a token Secret and a default GitlabConnection, and the
//! operator running in-process against both through kube's real `Client` and real HTTP.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod backend;
pub mod cluster;
pub mod gitops;
pub mod rbac_real;
pub mod rbac_rules;

pub use backend::Backend;

use std::sync::Arc;
use std::time::Duration;

use gitlab_deployment_operator::admin::AdminState;
use gitlab_deployment_operator::api::{GitlabConnection, GitlabDeployment};
use gitlab_deployment_operator::controller::allowlist::{AllowedHost, HostAllowList};
use gitlab_deployment_operator::controller::leader::{LeaseConfig, run_elected};
use gitlab_deployment_operator::controller::reconcile::ReconcileSettings;
use gitlab_deployment_operator::controller::run::{RunConfig, Telemetry, run};
use gitlab_deployment_operator::controller::shard::Shard;
use gitlab_emulator::{GitlabEmulator, SeededProject};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, CustomResourceExt};
use kube_emulator::KubeEmulator;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const NS: &str = "apps";
pub const TOKEN_SECRET: &str = "gitlab-token";

pub struct Operator {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    pub telemetry: Arc<Telemetry>,
    pub admin: AdminState,
}

impl Operator {
    /// Whether this instance currently leads (its `leader` gauge).
    pub fn is_leader(&self) -> bool {
        self.telemetry.operator.leader.get() == 1
    }

    /// Successful reconciles so far (the `reconciles` counter).
    pub fn reconciled(&self) -> u64 {
        self.telemetry
            .operator
            .reconciles
            .get_or_create(&gitlab_deployment_operator::metrics::ReconcileLabels {
                result: "ok",
                category: "none",
            })
            .get()
    }

    /// Wait until it has finished `n` successful reconciles (a restarted operator has then
    /// looked at what it found, so counting GitLab calls after this means something).
    pub async fn wait_reconciled(&self, n: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.reconciled() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the operator reconciled {} times, not {n}",
                self.reconciled()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stop it as a SIGTERM would: graceful shutdown, wait for the task.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }

    /// Stop it as a SIGKILL would: abort at whatever await point it is.
    pub fn kill(self) {
        self.task.abort();
    }
}

pub struct Env {
    /// The kube emulator; `None` on [`Backend::Real`] (see [`Env::emulator`]).
    pub kube: Option<KubeEmulator>,
    pub gitlab: GitlabEmulator,
    pub client: Client,
    pub project: SeededProject,
    /// Which Kubernetes this test runs against.
    pub backend: Backend,
    /// The test's namespace: `apps` on the emulator (one per test), a fresh one on the shared
    /// real cluster.
    pub ns: String,
}

/// Poll `check` every 50 ms until it holds; fail the test naming `what` after `within`.
pub async fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn install_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,gitlab_deployment_operator=info".into()),
        )
        .with_test_writer()
        .try_init();
}

impl Env {
    /// Both emulators, the CRDs, namespace `apps` with the token Secret and a `default`
    /// GitlabConnection to project `team/app` (branch `main`, 5 commits).
    pub async fn start() -> Env {
        Self::start_with(KubeEmulator::options()).await
    }

    /// As [`Env::start`], with the kube emulator serving TLS (the real kubectl sends its
    /// bearer token only over TLS).
    pub async fn start_tls() -> Env {
        Self::start_with(KubeEmulator::options().tls(true)).await
    }

    async fn start_with(options: kube_emulator::KubeEmulatorOptions) -> Env {
        install_tracing();
        let kube = options.start().await.expect("kube emulator starts");
        // deploy/ grants only `get` on Secrets and ConfigMaps (the operator reads the ones its
        // connections name, by name): take list and watch away as that RBAC would, so every
        // end-to-end test holds with those rights.
        for resource in ["secrets", "configmaps"] {
            for verb in ["list", "watch"] {
                kube.hooks().forbid(verb, "", resource);
            }
        }
        let client = kube.client().await;
        Self::start_on_client(Some(kube), client, Backend::Emulator, NS.to_owned()).await
    }

    async fn start_on_client(
        kube: Option<KubeEmulator>,
        client: Client,
        backend: Backend,
        ns: String,
    ) -> Env {
        let gitlab = GitlabEmulator::start().expect("gitlab emulator starts");
        let project = gitlab.handle().seed_project("team/app", "main", 5);

        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in [
            GitlabDeployment::crd(),
            GitlabConnection::crd(),
            gitlab_deployment_operator::api::ClusterGitlabConnection::crd(),
        ] {
            apply_crd(&crds, &crd).await;
        }
        let env = Env {
            kube,
            gitlab,
            client,
            project,
            backend,
            ns,
        };
        env.create_namespace(&env.ns).await;
        env.put_token(&env.project.maintainer_token.clone()).await;
        env.create_connection("default", &env.gitlab.base_url())
            .await;
        env
    }

    pub async fn create_namespace(&self, name: &str) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
        }))
        .unwrap();
        let _ = api.create(&PostParams::default(), &ns).await;
    }

    /// Create or replace the token Secret.
    pub async fn put_token(&self, token: &str) {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": TOKEN_SECRET},
            "stringData": {"token": token}
        });
        api.patch(
            TOKEN_SECRET,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&secret),
        )
        .await
        .unwrap();
    }

    pub async fn create_connection(&self, name: &str, url: &str) {
        let api: Api<GitlabConnection> = Api::namespaced(self.client.clone(), &self.ns);
        let conn: GitlabConnection = serde_json::from_value(json!({
            "apiVersion": "gitlab-operator.io/v1alpha1", "kind": "GitlabConnection",
            "metadata": {"name": name},
            "spec": {"url": url, "tokenSecretRef": {"name": TOKEN_SECRET, "key": "token"},
                     "timeout": "5s"}
        }))
        .unwrap();
        api.create(&PostParams::default(), &conn).await.unwrap();
    }

    /// The operator as the tests run it: allowed to reach the GitLab emulator's address only,
    /// over plain http (`--allow-insecure-http`; the emulators serve http on loopback).
    pub fn config(&self) -> RunConfig {
        self.config_allowing(&[])
    }

    /// As [`Env::config`], also allowing the servers at `urls` (`http://127.0.0.1:PORT`).
    pub fn config_allowing(&self, urls: &[&str]) -> RunConfig {
        let mut hosts: Vec<AllowedHost> = vec![self.gitlab.addr().into()];
        for url in urls {
            let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
            hosts.push(addr.into());
        }
        RunConfig {
            scope: self.backend.scope(&self.ns),
            allow: HostAllowList::new(hosts).allow_insecure_http(true),
            concurrency: 4,
            settings: ReconcileSettings {
                // Above the connections' 5 s timeout: a create may be sent only in the first
                // 1-2 s after its claim (grace − timeout, less the claim's fraction of a
                // second), and with a grace not above the timeout none could be.
                recovery_grace: Duration::from_secs(7),
                ..ReconcileSettings::default()
            },
            operator_namespace: None,
            instance: Some("test-operator".into()),
            webhook: None,
            shard: Shard::default(),
            gate: None,
        }
    }

    pub fn start_operator(&self) -> Operator {
        self.start_operator_with(self.config())
    }

    /// An operator that campaigns for the lease `leader` in namespace `kube-system` (the
    /// test's own namespace on the shared real cluster) with fast
    /// timings (lease 3 s, renew deadline 2 s, retry 250 ms), as replica `identity`.
    pub fn start_elected(&self, identity: &str) -> Operator {
        self.start_elected_shard(identity, None)
    }

    /// As [`Env::start_elected`], serving only the resources matching `selector`: the lease is
    /// named as `run --watch-label-selector` names it (`leader-<hash>`), so each shard has its
    /// own.
    pub fn start_elected_shard(&self, identity: &str, selector: Option<&str>) -> Operator {
        let config = RunConfig {
            shard: Shard::new(selector),
            ..self.config()
        };
        self.start_elected_with(identity, config)
    }

    /// As [`Env::start_elected`], with `config` (its shard names the lease).
    pub fn start_elected_with(&self, identity: &str, config: RunConfig) -> Operator {
        let shard = config.shard.clone();
        let lease = LeaseConfig {
            name: shard.lease_name("leader"),
            namespace: self.backend.lease_namespace(&self.ns),
            identity: identity.into(),
            lease_duration: Duration::from_secs(3),
            renew_deadline: Duration::from_secs(2),
            retry_period: Duration::from_millis(250),
        };
        let config = RunConfig {
            instance: Some(identity.into()),
            ..config
        };
        self.spawn_operator(config, Some(lease))
    }

    pub fn start_operator_with(&self, config: RunConfig) -> Operator {
        self.spawn_operator(config, None)
    }

    fn spawn_operator(&self, config: RunConfig, lease: Option<LeaseConfig>) -> Operator {
        let telemetry = Arc::new(Telemetry::default());
        let admin = AdminState::new(Arc::clone(&telemetry.registry));
        let shutdown = CancellationToken::new();
        let task = {
            let client = self.client.clone();
            let telemetry = Arc::clone(&telemetry);
            let admin = admin.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                match lease {
                    // An elected replica may end with "lost the lease" when a test kills it.
                    Some(lease) => {
                        if let Err(err) =
                            run_elected(client, config, lease, &telemetry, admin, shutdown).await
                        {
                            tracing::warn!(error = %err, "elected operator ended");
                        }
                    }
                    None => {
                        if let Err(err) = run(client, config, &telemetry, admin, shutdown).await {
                            panic!("operator failed: {err}");
                        }
                    }
                }
            })
        };
        Operator {
            shutdown,
            task,
            telemetry,
            admin,
        }
    }

    /// A Deployment `name` running `image`, with the emulator's rollout annotations.
    pub async fn apply_workload(&self, name: &str, image: &str, extra: serde_json::Value) {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.ns);
        let mut annotations = json!({"emulator.gitlab-operator.io/rollout-step": "100ms"});
        if let (Some(a), Some(e)) = (annotations.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                a.insert(k.clone(), v.clone());
            }
        }
        let mut deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {
                "replicas": 2,
                "progressDeadlineSeconds": 30,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": image}]}
                }
            }
        });
        self.backend.adapt_workload(&mut deployment);
        api.patch(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&deployment),
        )
        .await
        .unwrap();
    }

    pub async fn apply_gld(&self, name: &str, spec: serde_json::Value) {
        self.apply_gld_labelled(name, json!({}), spec).await;
    }

    /// As [`Env::apply_gld`], with these labels (a shard's, say).
    pub async fn apply_gld_labelled(
        &self,
        name: &str,
        labels: serde_json::Value,
        spec: serde_json::Value,
    ) {
        let api: Api<GitlabDeployment> = Api::namespaced(self.client.clone(), &self.ns);
        let obj = json!({
            "apiVersion": "gitlab-operator.io/v1alpha1", "kind": "GitlabDeployment",
            "metadata": {"name": name, "labels": labels},
            "spec": spec
        });
        api.patch(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap();
    }

    pub fn glds(&self) -> Api<GitlabDeployment> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Wait (on a watch) until `check` holds for the resource, or fail with its last status.
    pub async fn wait_for(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&GitlabDeployment) -> bool,
    ) -> GitlabDeployment {
        let api = self.glds();
        let cond = move |obj: Option<&GitlabDeployment>| obj.is_some_and(&check);
        match tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), name, cond),
        )
        .await
        {
            Ok(Ok(Some(obj))) => obj,
            other => {
                let last = api.get_opt(name).await.ok().flatten();
                panic!(
                    "timed out waiting for {name}: {what} ({other:?}); last status: {}",
                    serde_json::to_string_pretty(&last.and_then(|o| o.status)).unwrap()
                );
            }
        }
    }
}

/// The GitLab status recorded on a resource.
pub fn gitlab_status(gd: &GitlabDeployment) -> Option<String> {
    gd.status
        .as_ref()
        .and_then(|s| s.deployment.as_ref())
        .map(|d| d.status.to_string())
}

impl Env {
    /// GitLab deployments in `environment`, oldest first.
    pub fn gitlab_deployments(
        &self,
        environment: &str,
    ) -> Vec<gitlab_emulator::records::DeploymentRecord> {
        let mut list: Vec<_> = self
            .gitlab
            .handle()
            .deployments()
            .into_iter()
            .filter(|d| d.environment == environment)
            .collect();
        list.sort_by_key(|d| d.id);
        list
    }

    /// GitLab requests the operator made (everything: the tests themselves use the handle).
    pub fn gitlab_calls(&self) -> Vec<gitlab_emulator::RequestRecord> {
        self.gitlab.handle().requests()
    }

    /// Reasons of the Events recorded for a GitlabDeployment.
    pub async fn event_reasons(&self, name: &str) -> Vec<String> {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), &self.ns);
        let mut events: Vec<_> = api
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect();
        events.sort_by(|a, b| {
            a.event_time
                .as_ref()
                .map(|t| t.0)
                .cmp(&b.event_time.as_ref().map(|t| t.0))
        });
        events.into_iter().filter_map(|e| e.reason).collect()
    }

    /// The `reportingInstance`s of the Events recorded for a GitlabDeployment: which operator
    /// instances acted on it.
    pub async fn event_instances(&self, name: &str) -> std::collections::BTreeSet<String> {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), NS);
        api.list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .filter_map(|e| e.reporting_instance)
            .collect()
    }

    /// Wait until an Event with `reason` was recorded for `name` (Events are published right
    /// after the status write, so a test that saw the status may be a moment early).
    pub async fn wait_for_event(&self, name: &str, reason: &str) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let reasons = self.event_reasons(name).await;
            if reasons.iter().any(|r| r == reason) {
                return reasons;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {reason} Event for {name}; saw {reasons:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Protect `production` with one approval by a Developer (only Maintainers deploy there),
    /// and add user `approver`; returns the approver's token.
    pub fn protect_production(&self) -> String {
        use gitlab_emulator::{ApprovalRuleSpec, DeployAccess, Role};
        let gl = self.gitlab.handle();
        let (approver, token) = gl.add_user_with_token("approver");
        gl.add_member(self.project.id, approver, Role::Developer);
        gl.protect_environment(
            self.project.id,
            "production",
            vec![DeployAccess::Role(Role::Maintainer)],
            vec![ApprovalRuleSpec::role(Role::Developer, 1)],
        );
        token
    }

    /// Approve or reject GitLab deployment `id` as the holder of `token`.
    pub async fn review(
        &self,
        token: &str,
        id: gitlab_deployment_operator::api::deployment::DeploymentId,
        status: gitlab_deployment_operator::gitlab::ApprovalStatus,
    ) {
        use gitlab_deployment_operator::gitlab::{
            ApproveDeployment, GitlabClient, ProjectId, Token,
        };
        let client = GitlabClient::builder(self.gitlab.base_url(), Token::private(token))
            .build()
            .unwrap();
        client
            .approve_deployment(
                &ProjectId::Id(self.project.id),
                id.get(),
                &ApproveDeployment {
                    status,
                    comment: Some("looks good".into()),
                    represented_as: None,
                },
            )
            .await
            .unwrap();
    }

    /// Ask the operator to re-read GitLab now (the refresh annotation).
    pub async fn refresh(&self, name: &str, value: &str) {
        self.glds()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"annotations": {"gitlab-operator.io/refresh": value}}}),
                ),
            )
            .await
            .unwrap();
    }

    /// Approve or reject, as the holder of `token`, the GitLab deployment GitlabDeployment
    /// `name` holds now, and ask the operator to re-read it at once.
    pub async fn decide(
        &self,
        name: &str,
        token: &str,
        status: gitlab_deployment_operator::gitlab::ApprovalStatus,
    ) {
        let gd = self.glds().get(name).await.unwrap();
        let id = gd
            .status
            .and_then(|s| s.deployment)
            .expect("a GitLab deployment to decide on")
            .id;
        self.review(token, id, status).await;
        // A value of its own per decision: an unchanged annotation would wake nothing.
        self.refresh(name, &format!("{status:?}-{id}")).await;
    }

    /// Wait until `status.approval.state` is `state`.
    pub async fn wait_for_approval(
        &self,
        name: &str,
        state: gitlab_deployment_operator::api::deployment::ApprovalState,
    ) -> GitlabDeployment {
        self.wait_for(name, &format!("approval {state:?}"), move |gd| {
            gd.status
                .as_ref()
                .and_then(|s| s.approval.as_ref())
                .is_some_and(|a| a.state == state)
        })
        .await
    }

    /// A GitlabDeployment following Deployment `web` at a fixed sha.
    pub fn fixed_spec(&self, environment: &str, sha: &str) -> serde_json::Value {
        json!({
            "project": self.project.path, "environment": environment, "ref": "main", "sha": sha,
            "target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
        })
    }

    /// A GitlabDeployment following Deployment `web`, the sha read from the image tag.
    pub fn image_tag_spec(&self, environment: &str) -> serde_json::Value {
        json!({
            "project": self.project.path, "environment": environment, "ref": "main",
            "revisionFrom": {"container": "app"},
            "target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
        })
    }
}

/// Apply a CRD and wait until it is established. Server-side apply: the real cluster is
/// shared by the tests of a binary, so a CRD may be there already.
pub async fn apply_crd(crds: &Api<CustomResourceDefinition>, crd: &CustomResourceDefinition) {
    let name = crd.metadata.name.clone().unwrap();
    crds.patch(
        &name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(crd),
    )
    .await
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(crds.clone(), &name, conditions::is_crd_established()),
    )
    .await
    .expect("CRD established in time")
    .unwrap();
}

/// `kubectl kustomize DIR` (the machine's kubectl, as .ci/run requires it on PATH), one JSON
/// value per object.
pub fn kustomize(dir: &std::path::Path) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml::Deserializer::from_str(&String::from_utf8(out.stdout).unwrap())
        .map(|doc| serde_json::Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// A fresh directory under the system temp dir, removed on drop (the operator crate has no
/// tempfile dependency).
pub fn tempdir(prefix: &str) -> TempDir {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&path).unwrap();
    TempDir(path)
}

pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
