//! `spec.approval.promote` against Argo Rollouts' own controller (v1.10.1, built from its Go
//! module by tests/tools/argo-rollouts/build on first use) on the pinned upstream control plane
//! (tests/cluster): the controller creates the canary's ReplicaSet, the upstream
//! kube-controller-manager its pods, the fake kubelet makes them Ready, and the Rollout stops at
//! its `pause: {}` step until the operator promotes it on GitLab's approval. Nothing here plays
//! the Rollout's controller.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod harness;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gitlab_deployment_operator::api::GitlabDeployment;
use gitlab_deployment_operator::api::names::reason;
use gitlab_deployment_operator::gitlab::ApprovalStatus;
use harness::{Backend, Env};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The controller's binary (built once) and the directory of its CRDs.
fn argo_rollouts() -> (PathBuf, PathBuf) {
    let out = Command::new(repo().join("tests/tools/argo-rollouts/build"))
        .stderr(Stdio::inherit())
        .output()
        .expect("tests/tools/argo-rollouts/build runs");
    assert!(out.status.success(), "building Argo Rollouts failed");
    let bin = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let crds = bin.parent().unwrap().join("crds");
    (bin, crds)
}

/// The controller process; killed when the test ends, however it ends.
struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn install_crds(env: &Env, dir: &Path) {
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    for file in [
        "rollout",
        "analysis-run",
        "analysis-template",
        "cluster-analysis-template",
        "experiment",
    ] {
        let text = std::fs::read_to_string(dir.join(format!("{file}-crd.yaml"))).unwrap();
        harness::apply_crd(&crds, &serde_yaml::from_str(&text).unwrap()).await;
    }
}

/// Argo Rollouts' controller for the test's namespace only, with the admin kubeconfig.
fn start_controller(env: &Env, bin: &Path) -> Controller {
    let log = std::env::temp_dir().join(format!("argo-rollouts-{}.log", env.ns));
    let log_file = std::fs::File::create(&log).unwrap();
    eprintln!("Argo Rollouts controller log: {}", log.display());
    let child = Command::new(bin)
        .arg("--kubeconfig")
        .arg(env.kubeconfig_path())
        .args([
            "--namespaced",
            "--namespace",
            &env.ns,
            "--leader-elect=false",
        ])
        .args(["--metricsPort", &free_port().to_string()])
        .args(["--healthzPort", &free_port().to_string()])
        .env("POD_NAMESPACE", &env.ns)
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("the Argo Rollouts controller starts");
    Controller(child)
}

fn rollouts(env: &Env) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"),
        "rollouts",
    );
    Api::namespaced_with(env.client.clone(), &env.ns, &resource)
}

/// The example's Rollout (examples/gitops/argo-rollouts/promote) running `image`, two
/// replicas, its timed pause shortened so the test does not wait five minutes.
fn rollout(image: &str) -> Value {
    let path = repo().join("examples/gitops/argo-rollouts/promote/rollout.yaml");
    let mut r: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    r["spec"]["replicas"] = json!(2);
    r["spec"]["strategy"]["canary"]["steps"][3] = json!({"pause": {"duration": "1s"}});
    r["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
    r
}

async fn apply_rollout(env: &Env, image: &str) {
    rollouts(env)
        .patch(
            "web",
            &PatchParams::apply("test").force(),
            &Patch::Apply(&rollout(image)),
        )
        .await
        .unwrap();
}

async fn wait_rollout(env: &Env, what: &str, check: impl Fn(&Value) -> bool) -> DynamicObject {
    let api = rollouts(env);
    let cond = move |obj: Option<&DynamicObject>| obj.is_some_and(|o| check(&o.data["status"]));
    match tokio::time::timeout(
        Duration::from_secs(90),
        await_condition(api.clone(), "web", cond),
    )
    .await
    {
        Ok(Ok(Some(obj))) => obj,
        other => {
            let last = api.get_opt("web").await.ok().flatten();
            panic!(
                "Rollout web: {what} did not happen ({other:?}); status {}",
                last.map(|o| o.data["status"].to_string())
                    .unwrap_or_default()
            )
        }
    }
}

fn healthy(status: &Value) -> bool {
    status["phase"] == "Healthy"
        && status["currentPodHash"].is_string()
        && status["currentPodHash"] == status["stableRS"]
}

fn approved(gd: &GitlabDeployment) -> Option<(String, String)> {
    gd.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Approved")
        .map(|c| (c.status.clone(), c.reason.clone()))
}

async fn promoted_on_approval(backend: Backend) {
    let (bin, crds) = argo_rollouts();
    let env = Env::start_on(backend).await;
    install_crds(&env, &crds).await;
    let _controller = start_controller(&env, &bin);
    let approver = env.protect_production();

    // The stable revision: a new Rollout goes straight to its template, no steps.
    apply_rollout(&env, "registry.example/app:1.0.0").await;
    let stable = wait_rollout(&env, "the first revision healthy", healthy).await;
    let stable_hash = stable.data["status"]["stableRS"]
        .as_str()
        .unwrap()
        .to_owned();

    let op = env.start_operator();
    // One GitOps commit: the gate names the commit, the Rollout gets its image.
    let sha = env.project.head().to_owned();
    let gld: Value = serde_yaml::from_str(
        &std::fs::read_to_string(
            repo().join("examples/gitops/argo-rollouts/promote/gitlabdeployment.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut spec = gld["spec"].clone();
    spec["project"] = json!(env.project.path);
    spec.as_object_mut().unwrap().remove("revisionFrom");
    spec["sha"] = json!(sha);
    spec["rolloutStartGrace"] = json!("5m");
    env.apply_gld("web-production", spec).await;
    apply_rollout(&env, "registry.example/app:2.0.0").await;

    // Argo Rollouts' controller runs the canary to its `pause: {}`; the gate holds.
    let paused = wait_rollout(&env, "paused at step 1", |s| {
        s["currentStepIndex"] == 1
            && s["pauseConditions"]
                .as_array()
                .is_some_and(|p| p.iter().any(|c| c["reason"] == "CanaryPauseStep"))
    })
    .await;
    let canary_hash = paused.data["status"]["currentPodHash"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(canary_hash, stable_hash);
    let held = env
        .wait_for("web-production", "held (Approved=False)", |gd| {
            approved(gd) == Some(("False".into(), reason::APPROVAL_PENDING.into()))
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = rollouts(&env).get("web").await.unwrap();
    assert_eq!(
        still.data["status"]["currentStepIndex"], 1,
        "held: not promoted"
    );

    assert!(held.status.is_some());
    env.decide("web-production", &approver, ApprovalStatus::Approved)
        .await;
    // The operator promotes; the controller finishes the canary (50 %, a timed pause).
    let done = wait_rollout(&env, "healthy on the canary's revision", |s| {
        healthy(s) && s["stableRS"] == canary_hash.as_str()
    })
    .await;
    assert_eq!(done.data["status"]["stableRS"], canary_hash.as_str());
    env.wait_for("web-production", "success", |gd| {
        harness::gitlab_status(gd).as_deref() == Some("success")
    })
    .await;
    env.wait_for_event("web-production", reason::ROLLOUT_PROMOTED)
        .await;
    let deployments = env.gitlab_deployments("production");
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    assert_eq!(
        (deployments[0].sha.as_str(), deployments[0].status.as_str()),
        (sha.as_str(), "success")
    );
    op.stop().await;
}

real_only!(promoted_on_approval);
