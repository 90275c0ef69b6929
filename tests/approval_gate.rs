//! The approval gate (`spec.approval.gate`) end to end: the operator against the kube
//! emulator and the GitLab emulator (EE, production protected with one required approval).
//! Every case checks GitLab's side too: exactly one GitLab deployment per revision.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::time::Duration;

use gitlab_deployment_operator::api::GitlabDeployment;
use gitlab_deployment_operator::api::names::reason;
use gitlab_deployment_operator::gitlab::ApprovalStatus;
use harness::Env;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde_json::json;

fn gated(env: &Env, sha: &str) -> serde_json::Value {
    let mut spec = env.fixed_spec("production", sha);
    spec["approval"] = json!({"gate": true});
    spec["rolloutStartGrace"] = json!("30s");
    spec
}

fn condition(gd: &GitlabDeployment, type_: &str) -> Option<Condition> {
    gd.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

fn approved(gd: &GitlabDeployment) -> Option<(String, String)> {
    condition(gd, "Approved").map(|c| (c.status, c.reason))
}

/// Production protected (one approval), Deployment `web` at 1.0.0, the operator running and
/// `web-prod` gated at the project's head: returned once it is held (`Approved=False`), with
/// the approver's token.
async fn start_held(env: &Env) -> (String, harness::Operator, GitlabDeployment) {
    let approver = env.protect_production();
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let op = env.start_operator();
    let sha = env.project.head().to_owned();
    env.apply_gld("web-prod", gated(env, &sha)).await;
    let held = env
        .wait_for("web-prod", "held (Approved=False)", |gd| {
            approved(gd) == Some(("False".into(), reason::APPROVAL_PENDING.into()))
        })
        .await;
    (approver, op, held)
}

/// A new commit on main, `web-prod` gated at it: returned once its own deployment is held.
async fn next_sha_held(env: &Env) -> (String, GitlabDeployment) {
    let sha = env.gitlab.handle().push_commits(env.project.id, "main", 1)[0].clone();
    env.apply_gld("web-prod", gated(env, &sha)).await;
    let held = env
        .wait_for("web-prod", "the next sha held", |gd| {
            gd.status
                .as_ref()
                .and_then(|s| s.deployment.as_ref())
                .is_some_and(|d| d.sha == sha)
                && approved(gd) == Some(("False".into(), reason::APPROVAL_PENDING.into()))
        })
        .await;
    (sha, held)
}

/// Apply a new image: the rollout a GitOps engine applies once the gate opens.
async fn roll_out(env: &Env, image: &str) {
    env.apply_workload(
        "web",
        image,
        json!({"emulator.gitlab-operator.io/rollout-step": "100ms"}),
    )
    .await;
}

#[tokio::test]
async fn the_gate_holds_until_gitlab_approves_then_reports_the_rollout() {
    let env = Env::start().await;
    let sha = env.project.head().to_owned();
    // Created at once, running, held: Approved=False with the command that approves.
    let (approver, op, held) = start_held(&env).await;
    let status = held.status.clone().unwrap();
    let dep = status.deployment.clone().unwrap();
    assert_eq!(dep.status.as_str(), "running");
    assert_eq!(
        status.approval.as_ref().unwrap().sha.as_deref(),
        Some(sha.as_str())
    );
    assert_eq!(
        status.approval.as_ref().unwrap().deployment_id,
        Some(dep.id)
    );
    let ready = condition(&held, "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", reason::APPROVAL_PENDING)
    );
    assert!(
        ready.message.contains("kubectl gld approve web-prod"),
        "{}",
        ready.message
    );
    // The workload is settled on its old revision: the gate must not report that as success.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = env.glds().get("web-prod").await.unwrap();
    assert_eq!(harness::gitlab_status(&still).as_deref(), Some("running"));

    env.review(&approver, dep.id, ApprovalStatus::Approved)
        .await;
    env.refresh("web-prod", "approved").await;
    env.wait_for("web-prod", "Approved=True", |gd| {
        approved(gd) == Some(("True".into(), reason::APPROVED.into()))
    })
    .await;
    // The gate opened; the engine applies the app; its rollout is the approved revision.
    roll_out(&env, "registry.example/app:2.0.0").await;
    env.wait_for("web-prod", "success", |gd| {
        harness::gitlab_status(gd).as_deref() == Some("success")
    })
    .await;
    let deployments = env.gitlab_deployments("production");
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    assert_eq!(deployments[0].status, "success");
    op.stop().await;
}

#[tokio::test]
async fn a_rejection_fails_the_deployment_and_stalls_until_the_next_revision() {
    let env = Env::start().await;
    let (approver, op, held) = start_held(&env).await;
    let id = held.status.unwrap().deployment.unwrap().id;
    env.review(&approver, id, ApprovalStatus::Rejected).await;
    env.refresh("web-prod", "rejected").await;
    let failed = env
        .wait_for("web-prod", "failed", |gd| {
            harness::gitlab_status(gd).as_deref() == Some("failed")
        })
        .await;
    let stalled = condition(&failed, "Stalled").unwrap();
    assert_eq!(stalled.reason, reason::APPROVAL_REJECTED);
    let approved_c = condition(&failed, "Approved").unwrap();
    assert_eq!(
        (approved_c.status.as_str(), approved_c.reason.as_str()),
        ("False", reason::APPROVAL_REJECTED)
    );
    assert!(
        approved_c.message.contains("approver"),
        "names who rejected: {}",
        approved_c.message
    );
    env.wait_for_event("web-prod", reason::APPROVAL_REJECTED)
        .await;
    let deployments = env.gitlab_deployments("production");
    assert_eq!(deployments.len(), 1);
    assert_eq!(deployments[0].status, "failed");

    // A new revision starts over: a new deployment, held again.
    let next = env.gitlab.handle().push_commits(env.project.id, "main", 1);
    env.apply_gld("web-prod", gated(&env, &next[0])).await;
    env.wait_for("web-prod", "the new sha held", |gd| {
        gd.status
            .as_ref()
            .and_then(|s| s.approval.as_ref())
            .is_some_and(|a| a.sha.as_deref() == Some(next[0].as_str()))
            && approved(gd) == Some(("False".into(), reason::APPROVAL_PENDING.into()))
    })
    .await;
    let deployments = env.gitlab_deployments("production");
    assert_eq!(deployments.len(), 2, "{deployments:?}");
    assert_eq!(deployments[1].status, "running");
    op.stop().await;
}

#[tokio::test]
async fn an_approval_of_one_sha_never_passes_for_the_next() {
    let env = Env::start().await;
    let first = env.project.head().to_owned();
    let (approver, op, held) = start_held(&env).await;
    let id = held.status.unwrap().deployment.unwrap().id;
    env.review(&approver, id, ApprovalStatus::Approved).await;
    env.refresh("web-prod", "1").await;
    env.wait_for("web-prod", "Approved=True", |gd| {
        approved(gd).is_some_and(|(s, _)| s == "True")
    })
    .await;
    roll_out(&env, "registry.example/app:2.0.0").await;
    env.wait_for("web-prod", "success", |gd| {
        harness::gitlab_status(gd).as_deref() == Some("success")
    })
    .await;

    // The next sha: its own deployment, held; the old approval does not count.
    let (second, held) = next_sha_held(&env).await;
    assert_eq!(harness::gitlab_status(&held).as_deref(), Some("running"));
    let deployments = env.gitlab_deployments("production");
    assert_eq!(
        deployments
            .iter()
            .map(|d| (d.sha.as_str(), d.status.as_str()))
            .collect::<Vec<_>>(),
        [(first.as_str(), "success"), (second.as_str(), "running")]
    );
    op.stop().await;
}

#[tokio::test]
async fn an_unprotected_environment_is_approved_at_once_and_the_condition_says_not_required() {
    let env = Env::start().await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let op = env.start_operator();
    let sha = env.project.head().to_owned();
    let mut spec = gated(&env, &sha);
    spec["environment"] = json!("staging");
    env.apply_gld("web-staging", spec).await;
    env.wait_for("web-staging", "Approved=True NotRequired", |gd| {
        approved(gd) == Some(("True".into(), reason::NOT_REQUIRED.into()))
    })
    .await;
    roll_out(&env, "registry.example/app:2.0.0").await;
    env.wait_for("web-staging", "success", |gd| {
        harness::gitlab_status(gd).as_deref() == Some("success")
    })
    .await;
    assert_eq!(env.gitlab_deployments("staging").len(), 1);
    op.stop().await;
}

/// The engines' own health code (Argo CD's Lua health check run by gopher-lua, Flux's CEL
/// healthCheckExprs run by fluxcd/pkg/runtime/cel) on the status objects this operator really
/// wrote: held (pending), approved, rejected.
#[tokio::test]
async fn argo_cd_and_flux_read_the_operators_real_status_objects() {
    let env = Env::start().await;
    let (approver, op, pending) = start_held(&env).await;
    let object = |gd: &GitlabDeployment| {
        let mut v = serde_json::to_value(gd).unwrap();
        v["apiVersion"] = json!("gitlab-operator.io/v1alpha1");
        v["kind"] = json!("GitlabDeployment");
        v
    };
    let id = pending.status.clone().unwrap().deployment.unwrap().id;
    env.review(&approver, id, ApprovalStatus::Approved).await;
    env.refresh("web-prod", "1").await;
    let approved_gd = env
        .wait_for("web-prod", "approved", |gd| {
            approved(gd) == Some(("True".into(), reason::APPROVED.into()))
        })
        .await;
    roll_out(&env, "registry.example/app:2.0.0").await;
    env.wait_for("web-prod", "success", |gd| {
        harness::gitlab_status(gd).as_deref() == Some("success")
    })
    .await;
    let (_, held_again) = next_sha_held(&env).await;
    let id = held_again.status.clone().unwrap().deployment.unwrap().id;
    env.review(&approver, id, ApprovalStatus::Rejected).await;
    env.refresh("web-prod", "2").await;
    let rejected = env
        .wait_for("web-prod", "rejected", |gd| {
            approved(gd) == Some(("False".into(), reason::APPROVAL_REJECTED.into()))
                && harness::gitlab_status(gd).as_deref() == Some("failed")
        })
        .await;
    op.stop().await;

    let objects = [
        object(&pending),
        object(&approved_gd),
        object(&held_again),
        object(&rejected),
    ];
    let argo: Vec<String> = harness::gitops::argocd_health(&objects)
        .iter()
        .map(|h| h["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(argo, ["Progressing", "Healthy", "Progressing", "Degraded"]);
    let flux: Vec<String> = harness::gitops::flux_health(&objects)
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    assert_eq!(flux, ["InProgress", "Current", "InProgress", "Failed"]);
}

/// `spec.approval.promote` end to end, on the example under examples/gitops/argo-rollouts/
/// promote: the test plays Argo Rollouts' controller (status writes as it makes them) and
/// checks the operator's patches.
mod argo_rollouts {
    use super::*;
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};

    fn example(file: &str) -> serde_json::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/gitops/argo-rollouts/promote")
            .join(file);
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn rollouts(env: &Env) -> Api<DynamicObject> {
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"),
            "rollouts",
        );
        Api::namespaced_with(env.client.clone(), &env.ns, &resource)
    }

    /// Argo Rollouts' CRD as far as the API server is concerned: a status subresource and
    /// its own schema (not ours to check).
    async fn install_rollout_crd(env: &Env) {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let crd: CustomResourceDefinition = serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "rollouts.argoproj.io"},
            "spec": {
                "group": "argoproj.io", "scope": "Namespaced",
                "names": {"kind": "Rollout", "plural": "rollouts", "singular": "rollout", "listKind": "RolloutList"},
                "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                    "subresources": {"status": {}}}]
            }
        }))
        .unwrap();
        harness::apply_crd(&Api::all(env.client.clone()), &crd).await;
    }

    /// A status write of Argo Rollouts' controller.
    async fn controller_writes(env: &Env, status: serde_json::Value) {
        rollouts(env)
            .patch_status(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .unwrap();
    }

    /// The example's Rollout carrying `sha`, its second indefinite pause made one too (so the
    /// test can check that a later pause is left to people), and the example's
    /// GitlabDeployment pointed at the emulated project. The controller has started the
    /// canary and waits at step 1 (`pause: {}`).
    async fn start_paused(env: &Env, sha: &str) -> harness::Operator {
        install_rollout_crd(env).await;
        let mut rollout = example("rollout.yaml");
        rollout["metadata"]["namespace"] = json!(env.ns);
        rollout["spec"]["template"]["metadata"]["annotations"]["app.example.com/git-revision"] =
            json!(sha);
        rollout["spec"]["strategy"]["canary"]["steps"][3] = json!({"pause": {}});
        let obj: DynamicObject = serde_json::from_value(rollout).unwrap();
        let created = rollouts(env)
            .create(&Default::default(), &obj)
            .await
            .unwrap();
        let generation = created.metadata.generation.unwrap();
        controller_writes(
            env,
            json!({
                "observedGeneration": generation.to_string(),
                "currentPodHash": "h2", "stableRS": "h1", "phase": "Paused",
                "currentStepIndex": 1, "controllerPause": true,
                "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-01-01T00:00:00Z"}],
                "message": "CanaryPauseStep"
            }),
        )
        .await;
        let op = env.start_operator();
        let mut gld = example("gitlabdeployment.yaml");
        gld["spec"]["project"] = json!(env.project.path);
        env.apply_gld("web-production", gld["spec"].clone()).await;
        env.wait_for("web-production", "held (Approved=False)", |gd| {
            approved(gd) == Some(("False".into(), reason::APPROVAL_PENDING.into()))
        })
        .await;
        op
    }

    fn pause_reasons(rollout: &DynamicObject) -> Vec<String> {
        rollout.data["status"]["pauseConditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["reason"].as_str().map(str::to_owned))
            .collect()
    }

    /// The operator's writes to the Rollout, from the emulator's request log.
    fn rollout_writes(env: &Env) -> Vec<String> {
        env.emulator()
            .hooks()
            .requests()
            .into_iter()
            .filter(|r| {
                r.resource == "rollouts" && r.verb != "get" && r.verb != "list" && r.verb != "watch"
            })
            .filter(|r| r.field_manager == "gitlab-deployment-operator")
            .map(|r| format!("{} {}/{}", r.verb, r.resource, r.subresource))
            .collect()
    }

    #[tokio::test]
    async fn an_approval_promotes_the_paused_rollout_once_and_the_rollout_is_reported() {
        let env = Env::start().await;
        let approver = env.protect_production();
        let sha = env.project.head().to_owned();
        let op = start_paused(&env, &sha).await;
        // Held: nothing touches the Rollout.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            pause_reasons(&rollouts(&env).get("web").await.unwrap()),
            ["CanaryPauseStep"]
        );
        assert!(rollout_writes(&env).is_empty());

        env.decide("web-production", &approver, ApprovalStatus::Approved)
            .await;
        // The promote `kubectl argo rollouts promote` would send: pause conditions cleared
        // through the status subresource.
        harness::until("the operator promotes", Duration::from_secs(20), || {
            !rollout_writes(&env).is_empty()
        })
        .await;
        let promoted = rollouts(&env).get("web").await.unwrap();
        assert!(
            pause_reasons(&promoted).is_empty(),
            "{:?}",
            promoted.data["status"]
        );
        assert_eq!(rollout_writes(&env), ["patch rollouts/status"]);
        env.wait_for_event("web-production", reason::ROLLOUT_PROMOTED)
            .await;
        let gd = env.glds().get("web-production").await.unwrap();
        let record = gd
            .status
            .unwrap()
            .deployment
            .unwrap()
            .gate
            .unwrap()
            .promoted
            .unwrap();
        assert_eq!((record.pod_hash.as_str(), record.step), ("h2", Some(1)));

        // The controller moves on to the next indefinite pause: that one is for people.
        controller_writes(
            &env,
            json!({
                "currentStepIndex": 3, "controllerPause": true, "phase": "Paused",
                "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-01-01T00:05:00Z"}]
            }),
        )
        .await;
        env.refresh("web-production", "later pause").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            pause_reasons(&rollouts(&env).get("web").await.unwrap()),
            ["CanaryPauseStep"]
        );
        assert_eq!(
            rollout_writes(&env).len(),
            1,
            "a later pause is not promoted"
        );
        let gd = env.glds().get("web-production").await.unwrap();
        assert_eq!(harness::gitlab_status(&gd).as_deref(), Some("running"));

        // A person promotes it; the rollout completes and GitLab hears success.
        controller_writes(
            &env,
            json!({
                "pauseConditions": null, "controllerPause": false, "currentStepIndex": 4,
                "stableRS": "h2", "phase": "Healthy", "message": null
            }),
        )
        .await;
        env.wait_for("web-production", "success", |gd| {
            harness::gitlab_status(gd).as_deref() == Some("success")
        })
        .await;
        let deployments = env.gitlab_deployments("production");
        assert_eq!(deployments.len(), 1, "{deployments:?}");
        assert_eq!(deployments[0].sha, sha);
        op.stop().await;
    }

    #[tokio::test]
    async fn a_rejection_aborts_the_rollout_and_fails_the_deployment() {
        let env = Env::start().await;
        let approver = env.protect_production();
        let sha = env.project.head().to_owned();
        let op = start_paused(&env, &sha).await;
        env.decide("web-production", &approver, ApprovalStatus::Rejected)
            .await;
        harness::until("the operator aborts", Duration::from_secs(20), || {
            !rollout_writes(&env).is_empty()
        })
        .await;
        let aborted = rollouts(&env).get("web").await.unwrap();
        assert_eq!(aborted.data["status"]["abort"], json!(true));
        assert_eq!(
            pause_reasons(&aborted),
            ["CanaryPauseStep"],
            "an abort promotes nothing"
        );
        env.wait_for_event("web-production", reason::ROLLOUT_ABORTED)
            .await;
        let failed = env
            .wait_for("web-production", "failed and stalled", |gd| {
                harness::gitlab_status(gd).as_deref() == Some("failed")
                    && condition(gd, "Stalled").is_some_and(|c| {
                        c.status == "True" && c.reason == reason::APPROVAL_REJECTED
                    })
            })
            .await;
        assert!(
            failed
                .status
                .unwrap()
                .deployment
                .unwrap()
                .gate
                .unwrap()
                .aborted_at
                .is_some()
        );

        // Argo Rollouts' controller takes the abort; a person retries it: not overruled.
        controller_writes(
            &env,
            json!({"abort": false, "pauseConditions": null, "phase": "Progressing"}),
        )
        .await;
        env.refresh("web-production", "retried").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(rollout_writes(&env), ["patch rollouts/status"], "one abort");
        let deployments = env.gitlab_deployments("production");
        assert_eq!(deployments.len(), 1, "{deployments:?}");
        assert_eq!(deployments[0].status, "failed");
        op.stop().await;
    }
}
