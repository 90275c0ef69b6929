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
    let second = env.gitlab.handle().push_commits(env.project.id, "main", 1)[0].clone();
    env.apply_gld("web-prod", gated(&env, &second)).await;
    let held = env
        .wait_for("web-prod", "the second sha held", |gd| {
            gd.status
                .as_ref()
                .and_then(|s| s.deployment.as_ref())
                .is_some_and(|d| d.sha == second)
                && approved(gd) == Some(("False".into(), reason::APPROVAL_PENDING.into()))
        })
        .await;
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
    let second = env.gitlab.handle().push_commits(env.project.id, "main", 1)[0].clone();
    env.apply_gld("web-prod", gated(&env, &second)).await;
    let held_again = env
        .wait_for("web-prod", "second held", |gd| {
            gd.status
                .as_ref()
                .and_then(|s| s.deployment.as_ref())
                .is_some_and(|d| d.sha == second)
                && approved(gd) == Some(("False".into(), reason::APPROVAL_PENDING.into()))
        })
        .await;
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
