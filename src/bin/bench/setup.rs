//! The world under test: both emulators in this process, the CRDs, namespaces each with the
//! token Secret and a `default` GitlabConnection, and N Deployments each followed by one
//! GitlabDeployment (its own environment, the revision read from the image tag).
//!
//! The kube API is the kube emulator in this process, or a cluster named by a kubeconfig
//! (`bench --kubeconfig`: the real control plane of `tests/cluster/run`); there the run's
//! namespaces carry a prefix of their own, as the cluster outlives the run and may be shared.
//!
//! Workloads are spread over namespaces of a bounded size, as apps are in a real cluster: the
//! kube emulator's rollout simulator looks up ReplicaSets and Pods by owner within a
//! namespace on every step, so one namespace of 5,000 Deployments would make the emulator,
//! not the operator, the thing measured.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{StreamExt, stream};
use gitlab_deployment_operator::api::{
    ClusterGitlabConnection, GitlabConnection, GitlabDeployment,
};
use gitlab_emulator::{GitlabEmulator, SeededProject};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, CustomResourceExt};
use kube_emulator::KubeEmulator;
use serde_json::{Value, json};

use super::BenchError;

const TOKEN_SECRET: &str = "gitlab-token";
/// Requests in flight at once while objects are created or patched.
const WRITERS: usize = 16;

/// One Deployment (and the GitlabDeployment of the same name following it).
#[derive(Debug, Clone)]
pub struct Workload {
    pub ns: String,
    pub name: String,
}

/// `n` workloads `w-00000`…, `per_namespace` to a namespace `<prefix>-000`….
pub fn workloads(prefix: &str, n: usize, per_namespace: usize) -> Vec<Workload> {
    (0..n)
        .map(|i| Workload {
            ns: format!("{prefix}-{:03}", i / per_namespace.max(1)),
            name: format!("w-{i:05}"),
        })
        .collect()
}

pub struct World {
    /// The in-process kube emulator; `None` when the run uses a cluster's kubeconfig.
    pub kube: Option<KubeEmulator>,
    /// What the operator and kubectl are pointed at.
    pub kubeconfig: PathBuf,
    /// Prefix of the run's namespaces (`bench` on a fresh emulator).
    pub ns_prefix: String,
    pub gitlab: GitlabEmulator,
    pub client: Client,
    pub project: SeededProject,
}

impl World {
    /// The GitLab emulator and the kube API: a fresh kube emulator (over TLS so the real
    /// kubectl sends its token), or the cluster of `kubeconfig`, with namespaces prefixed
    /// `bench-<pid>-<size>`. CRDs installed; `commits` shas seeded on `main`.
    pub async fn start(
        commits: usize,
        kubeconfig: Option<&Path>,
        size: usize,
    ) -> Result<World, BenchError> {
        let (kube, client, kubeconfig, ns_prefix) = match kubeconfig {
            None => {
                let mut options = KubeEmulator::options().tls(true).history(100_000);
                // A watcher may lag a whole size's worth of writes (creation bursts) without
                // being cut.
                options.settings.watch_buffer = 100_000;
                let kube = options
                    .start()
                    .await
                    .map_err(|e| BenchError::Setup(format!("kube emulator: {e}")))?;
                let client = kube
                    .try_client()
                    .await
                    .map_err(|e| BenchError::Setup(format!("kube client: {e}")))?;
                let path = kube.kubeconfig_path().to_path_buf();
                (Some(kube), client, path, "bench".to_owned())
            }
            Some(path) => {
                let config = kube::config::Kubeconfig::read_from(path)
                    .map_err(|e| BenchError::Setup(format!("{}: {e}", path.display())))?;
                let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
                    .await
                    .map_err(|e| BenchError::Setup(format!("{}: {e}", path.display())))?;
                let client = Client::try_from(config)?;
                let prefix = format!("bench-{}-{size}", std::process::id());
                (None, client, path.to_path_buf(), prefix)
            }
        };
        let gitlab = GitlabEmulator::start()
            .map_err(|e| BenchError::Setup(format!("gitlab emulator: {e}")))?;
        let project = gitlab.handle().seed_project("team/app", "main", commits);
        let world = World {
            kube,
            kubeconfig,
            ns_prefix,
            gitlab,
            client,
            project,
        };
        world.install_crds().await?;
        Ok(world)
    }

    /// Namespace of the baseline's CI-style workloads.
    pub fn ci_namespace(&self) -> String {
        format!("{}-ci", self.ns_prefix)
    }

    /// Server-side apply: a cluster's CRDs may be there from an earlier run.
    async fn install_crds(&self) -> Result<(), BenchError> {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for crd in [
            GitlabDeployment::crd(),
            GitlabConnection::crd(),
            ClusterGitlabConnection::crd(),
        ] {
            let name = crd.metadata.name.clone().unwrap_or_default();
            crds.patch(
                &name,
                &PatchParams::apply("bench").force(),
                &Patch::Apply(&crd),
            )
            .await?;
            tokio::time::timeout(
                Duration::from_secs(30),
                await_condition(crds.clone(), &name, conditions::is_crd_established()),
            )
            .await
            .map_err(|_| BenchError::Timeout(format!("CRD {name} established")))?
            .map_err(|e| BenchError::Setup(format!("CRD {name}: {e}")))?;
        }
        Ok(())
    }

    /// Namespace `ns` with the token Secret and the `default` GitlabConnection.
    pub async fn add_namespace(&self, ns: &str) -> Result<(), BenchError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
            )
            .await?;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": TOKEN_SECRET},
                    "stringData": {"token": self.project.maintainer_token}
                }))?,
            )
            .await?;
        let connections: Api<GitlabConnection> = Api::namespaced(self.client.clone(), ns);
        connections
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "apiVersion": "gitlab-operator.io/v1alpha1", "kind": "GitlabConnection",
                    "metadata": {"name": "default"},
                    "spec": {"url": self.gitlab.base_url(),
                             "tokenSecretRef": {"name": TOKEN_SECRET, "key": "token"},
                             "timeout": "10s"}
                }))?,
            )
            .await?;
        Ok(())
    }

    pub fn deployments(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Create Deployments `names` at `image`, `WRITERS` requests at a time.
    pub async fn create_workloads(
        &self,
        names: &[Workload],
        image: &str,
        step: &str,
        replicas: i32,
    ) -> Result<(), BenchError> {
        let objects = names
            .iter()
            .map(|w| (w.ns.clone(), workload(&w.name, image, step, replicas)));
        self.create_all::<Deployment>(objects).await
    }

    /// Create one GitlabDeployment per workload name: `<name>` follows Deployment `<name>`
    /// into environment `<name>`. With several shards the i-th is labelled for shard
    /// `i % shards`.
    pub async fn create_followers(
        &self,
        names: &[Workload],
        shards: usize,
    ) -> Result<(), BenchError> {
        let project = &self.project.path;
        let objects = names.iter().enumerate().map(|(i, w)| {
            let name = &w.name;
            let labels = match shards {
                0 | 1 => json!({}),
                n => json!({ super::operator::SHARD_KEY: format!("shard{}", i % n) }),
            };
            let obj = json!({
                "apiVersion": "gitlab-operator.io/v1alpha1", "kind": "GitlabDeployment",
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "project": project, "environment": name, "ref": "main",
                    "revisionFrom": {"container": "app"},
                    "target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
                }
            });
            (w.ns.clone(), obj)
        });
        self.create_all::<GitlabDeployment>(objects).await
    }

    /// Create each `(namespace, object)`, `WRITERS` requests at a time.
    async fn create_all<K>(
        &self,
        objects: impl Iterator<Item = (String, Value)>,
    ) -> Result<(), BenchError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + serde::de::DeserializeOwned,
    {
        let results: Vec<Result<(), BenchError>> = stream::iter(objects)
            .map(|(ns, obj)| {
                let api: Api<K> = Api::namespaced(self.client.clone(), &ns);
                async move {
                    let obj: K = serde_json::from_value(obj)?;
                    api.create(&PostParams::default(), &obj).await?;
                    Ok(())
                }
            })
            .buffer_unordered(WRITERS)
            .collect()
            .await;
        results.into_iter().collect()
    }
}

/// A Deployment running `image` in container `app`, paced by the emulator's step annotation
/// (on the real control plane, by the fake kubelet's `ready-after` on its pods).
pub fn workload(name: &str, image: &str, step: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name,
                     "annotations": {"emulator.gitlab-operator.io/rollout-step": step}},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name},
                             "annotations": {"fake-kubelet.gitlab-operator.io/ready-after": step}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }
        }
    })
}

/// Roll `name` out to `image` (a JSON merge patch of the one container, as `kubectl set image`
/// amounts to).
pub async fn set_image(api: &Api<Deployment>, name: &str, image: &str) -> Result<(), BenchError> {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The image that carries revision `sha`.
pub fn image_for(sha: &str) -> String {
    format!("registry.example/app:{sha}")
}
