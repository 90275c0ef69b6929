//! The operator end to end: the GitLab emulator and, as a parameter, either the kube emulator
//! or the pinned upstream control plane (tests/cluster), over loopback through kube's real
//! `Client` and real watches. Each body runs on both (`both_backends!`): `<test>::emulator`
//! and `<test>::real`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod harness;

use std::time::Duration;

use gitlab_deployment_operator::api::deployment::ApprovalState;
use gitlab_deployment_operator::api::names::reason;
use gitlab_deployment_operator::gitlab::ApprovalStatus;
use gitlab_emulator::{Endpoint, Fault};
use harness::{Backend, Env, gitlab_status};
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

fn writes(env: &Env) -> usize {
    let gl = env.gitlab.handle();
    gl.count(Endpoint::CreateDeployment) + gl.count(Endpoint::UpdateDeployment)
}

fn is(status: &'static str) -> impl Fn(&gitlab_deployment_operator::api::GitlabDeployment) -> bool {
    move |gd| gitlab_status(gd).as_deref() == Some(status)
}

async fn happy_path_creates_once_and_reports_success_with_two_writes(backend: Backend) {
    let env = Env::start_on(backend).await;
    // Slow enough that the create happens while the rollout is still in progress.
    env.apply_workload(
        "web",
        "registry.example/app:1.0.0",
        json!({"emulator.gitlab-operator.io/rollout-step": "400ms"}),
    )
    .await;
    let op = env.start_operator();
    let sha = env.project.head().to_owned();
    env.apply_gld("web-staging", env.fixed_spec("staging", &sha))
        .await;
    env.wait_for("web-staging", "running", is("running")).await;
    let done = env.wait_for("web-staging", "success", is("success")).await;
    let status = done.status.unwrap();
    let dep = status.deployment.unwrap();
    assert_eq!(dep.sha, sha);
    assert_eq!(status.short_sha.as_deref(), Some(&sha[..7]));
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True", "{ready:?}");

    let deployments = env.gitlab_deployments("staging");
    assert_eq!(
        deployments.len(),
        1,
        "exactly one GitLab deployment: {deployments:?}"
    );
    assert_eq!(deployments[0].status, "success");
    assert_eq!(writes(&env), 2, "POST running + PUT success");
    let reasons = env
        .wait_for_event("web-staging", reason::DEPLOYMENT_SUCCEEDED)
        .await;
    assert!(
        reasons.contains(&reason::DEPLOYMENT_CREATED.to_string()),
        "{reasons:?}"
    );
    op.stop().await;
}

async fn an_already_rolled_out_workload_costs_one_call(backend: Backend) {
    let env = Env::start_on(backend).await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    // Let the emulated rollout finish before anything follows it.
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(env.client.clone(), &env.ns);
    tokio::time::timeout(
        Duration::from_secs(20),
        kube::runtime::wait::await_condition(
            deployments,
            "web",
            |d: Option<&k8s_openapi::api::apps::v1::Deployment>| {
                d.and_then(|d| d.status.as_ref()).is_some_and(|s| {
                    s.available_replicas == Some(2) && s.updated_replicas == Some(2)
                })
            },
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let op = env.start_operator();
    env.apply_gld("web-staging", env.fixed_spec("staging", env.project.head()))
        .await;
    env.wait_for("web-staging", "success", is("success")).await;
    assert_eq!(writes(&env), 1, "one POST status=success");
    op.stop().await;
}

async fn a_failed_rollout_is_reported_failed(backend: Backend) {
    let env = Env::start_on(backend).await;
    env.apply_workload(
        "web",
        "registry.example/app:1.0.0",
        json!({"emulator.gitlab-operator.io/rollout-outcome": "fail"}),
    )
    .await;
    let op = env.start_operator();
    env.apply_gld("web-staging", env.fixed_spec("staging", env.project.head()))
        .await;
    let failed = env.wait_for("web-staging", "failed", is("failed")).await;
    let rollout = failed.status.unwrap().rollout.unwrap();
    assert_eq!(rollout.state, "Failed", "{rollout:?}");
    assert_eq!(env.gitlab_deployments("staging")[0].status, "failed");
    env.wait_for_event("web-staging", reason::DEPLOYMENT_FAILED)
        .await;
    op.stop().await;
}

async fn a_new_image_supersedes_the_running_deployment_and_a_rollback_is_a_new_revision(
    backend: Backend,
) {
    let env = Env::start_on(backend).await;
    let shas = env.project.shas.clone();
    let slow = json!({"emulator.gitlab-operator.io/rollout-step": "500ms"});
    env.apply_workload(
        "web",
        &format!("registry.example/app:{}", shas[2]),
        slow.clone(),
    )
    .await;
    let op = env.start_operator();
    env.apply_gld("web-prod", env.image_tag_spec("prod")).await;
    env.wait_for("web-prod", "running", is("running")).await;
    // A newer revision arrives while the first still rolls out.
    env.apply_workload(
        "web",
        &format!("registry.example/app:{}", shas[3]),
        slow.clone(),
    )
    .await;
    let done = env
        .wait_for("web-prod", "second revision success", |gd| {
            is("success")(gd)
                && gd.status.as_ref().unwrap().deployment.as_ref().unwrap().sha == shas[3]
        })
        .await;
    let deployments = env.gitlab_deployments("prod");
    assert_eq!(deployments.len(), 2, "{deployments:?}");
    assert_eq!(deployments[0].sha, shas[2]);
    assert_eq!(
        deployments[0].status, "canceled",
        "the superseded one is canceled"
    );
    assert_eq!(deployments[1].status, "success");
    let history = done.status.unwrap().history;
    assert_eq!(history[0].deployment_id.get(), deployments[0].id);

    // Roll back to the first image: a new revision, a new GitLab deployment.
    env.apply_workload(
        "web",
        &format!("registry.example/app:{}", shas[2]),
        json!({}),
    )
    .await;
    env.wait_for("web-prod", "rollback success", |gd| {
        is("success")(gd) && gd.status.as_ref().unwrap().deployment.as_ref().unwrap().sha == shas[2]
    })
    .await;
    let deployments = env.gitlab_deployments("prod");
    assert_eq!(deployments.len(), 3, "{deployments:?}");
    assert_eq!(deployments[2].sha, shas[2]);
    op.stop().await;
}

async fn revision_from_an_annotation(backend: Backend) {
    let env = Env::start_on(backend).await;
    let sha = env.project.shas[1].clone();
    env.apply_workload(
        "web",
        "registry.example/app:latest",
        json!({"example.com/commit": sha}),
    )
    .await;
    let op = env.start_operator();
    env.apply_gld(
        "web-staging",
        json!({
            "project": env.project.id.to_string(), "environment": "staging", "ref": "main",
            "revisionFrom": {"annotation": "example.com/commit"},
            "target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
        }),
    )
    .await;
    let done = env.wait_for("web-staging", "success", is("success")).await;
    assert_eq!(done.status.unwrap().deployment.unwrap().sha, sha);
    op.stop().await;
}

async fn a_crash_between_post_and_id_is_recovered_by_lookup_not_a_second_create(backend: Backend) {
    let env = Env::start_on(backend).await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    // GitLab stores the deployment but the answer never arrives: as if the operator died
    // right after its POST.
    env.gitlab.handle().inject_fault(
        Fault::drop_connection()
            .on(Endpoint::CreateDeployment)
            .after_processing(),
    );
    let op = env.start_operator();
    env.apply_gld("web-staging", env.fixed_spec("staging", env.project.head()))
        .await;
    env.wait_for("web-staging", "success", is("success")).await;
    let deployments = env.gitlab_deployments("staging");
    assert_eq!(
        deployments.len(),
        1,
        "adopted, not created twice: {deployments:?}"
    );
    assert_eq!(env.gitlab.handle().count(Endpoint::CreateDeployment), 1);
    env.wait_for_event("web-staging", reason::DEPLOYMENT_ADOPTED)
        .await;
    op.stop().await;
}

async fn two_operators_at_once_make_one_deployment(backend: Backend) {
    let env = Env::start_on(backend).await;
    env.apply_workload(
        "web",
        "registry.example/app:1.0.0",
        json!({"emulator.gitlab-operator.io/rollout-step": "300ms"}),
    )
    .await;
    let a = env.start_operator();
    let b = env.start_operator();
    for i in 0..4 {
        env.apply_gld(
            &format!("web-{i}"),
            env.fixed_spec(&format!("env-{i}"), env.project.head()),
        )
        .await;
    }
    for i in 0..4 {
        env.wait_for(&format!("web-{i}"), "success", is("success"))
            .await;
        let deployments = env.gitlab_deployments(&format!("env-{i}"));
        assert_eq!(deployments.len(), 1, "env-{i}: {deployments:?}");
    }
    a.stop().await;
    b.stop().await;
}

async fn a_restart_when_settled_costs_no_gitlab_call(backend: Backend) {
    let env = Env::start_on(backend).await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let op = env.start_operator();
    env.apply_gld("web-staging", env.fixed_spec("staging", env.project.head()))
        .await;
    env.wait_for("web-staging", "merge requests fetched", |gd| {
        gd.status
            .as_ref()
            .is_some_and(|s| s.merge_requests_for.is_some())
    })
    .await;
    op.stop().await;
    env.gitlab.handle().clear_requests();
    let op = env.start_operator();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !op.admin.is_ready() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(op.admin.is_ready());
    // The restarted operator did reconcile the resource it found (otherwise "no call" would
    // prove nothing), and a little longer for any follow-up it might have planned.
    op.wait_reconciled(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = env.gitlab_calls();
    assert!(
        calls.is_empty(),
        "a settled resource costs nothing after a restart: {calls:?}"
    );
    op.stop().await;
}

async fn gitlab_5xx_and_429_bursts_are_retried_without_duplicates(backend: Backend) {
    let env = Env::start_on(backend).await;
    env.apply_workload(
        "web",
        "registry.example/app:1.0.0",
        json!({"emulator.gitlab-operator.io/rollout-step": "300ms"}),
    )
    .await;
    let gl = env.gitlab.handle();
    gl.inject_fault(Fault::status(503).on(Endpoint::CreateDeployment).times(2));
    gl.inject_fault(
        Fault::rate_limited(1)
            .on(Endpoint::UpdateDeployment)
            .times(1),
    );
    gl.inject_fault(Fault::status(500).on(Endpoint::UpdateDeployment).times(2));
    let op = env.start_operator();
    env.apply_gld("web-staging", env.fixed_spec("staging", env.project.head()))
        .await;
    env.wait_for("web-staging", "success", is("success")).await;
    assert_eq!(env.gitlab_deployments("staging").len(), 1);
    op.stop().await;
}

/// The write-ahead claim's send deadline, end to end. GitLab answers one resource's create
/// 429 with an 8 s Retry-After, pausing the shared connection for longer than a claim's send
/// window (the harness's 7 s recovery grace less the connection's 5 s timeout). Another
/// resource's create, claimed during the pause, is not sent: its claim is voided at once
/// (`SendDeadlinePassed` on status, as an Event and in the metrics) and claimed again until
/// the pause is over; then each revision has exactly one GitLab deployment.
async fn a_create_that_cannot_be_sent_in_time_is_claimed_again_not_duplicated(backend: Backend) {
    let env = Env::start_on(backend).await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let gl = env.gitlab.handle();
    gl.inject_fault(Fault::rate_limited(8).on(Endpoint::CreateDeployment));
    let op = env.start_operator();
    let condition = |reason: &'static str| {
        move |gd: &gitlab_deployment_operator::api::GitlabDeployment| {
            gd.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Reconciling" && c.status == "True" && c.reason == reason)
            })
        }
    };
    env.apply_gld("web-review", env.fixed_spec("review", env.project.head()))
        .await;
    env.wait_for("web-review", "rate limited", condition("RateLimited"))
        .await;
    env.apply_gld("web-staging", env.fixed_spec("staging", env.project.head()))
        .await;
    let refused = env
        .wait_for("web-staging", "not sent", condition("SendDeadlinePassed"))
        .await;
    let status = refused.status.unwrap();
    assert!(status.intent.is_none(), "voided at once: {status:?}");
    let message = &status
        .conditions
        .iter()
        .find(|c| c.reason == "SendDeadlinePassed")
        .unwrap()
        .message;
    assert!(message.contains("nothing reached GitLab"), "{message}");
    env.wait_for_event("web-staging", "SendDeadlinePassed")
        .await;
    let refusals = op
        .telemetry
        .operator
        .reconciles
        .get_or_create(&gitlab_deployment_operator::metrics::ReconcileLabels {
            result: "error",
            category: "SendDeadlinePassed",
        })
        .get();
    assert!(refusals >= 1);
    assert!(env.gitlab_deployments("staging").is_empty());

    env.wait_for("web-staging", "success after the pause", is("success"))
        .await;
    env.wait_for("web-review", "success after the pause", is("success"))
        .await;
    assert_eq!(env.gitlab_deployments("staging").len(), 1);
    assert_eq!(env.gitlab_deployments("review").len(), 1);
    // review: its 429 and its create; staging: its one create, none sent during the pause.
    assert_eq!(
        gl.count(Endpoint::CreateDeployment),
        3,
        "{:?}",
        env.gitlab_calls()
    );
    op.stop().await;
}

async fn a_wrong_token_stalls_and_fixing_the_secret_recovers(backend: Backend) {
    let env = Env::start_on(backend).await;
    env.put_token("glpat-wrong").await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let op = env.start_operator();
    env.apply_gld("web-staging", env.fixed_spec("staging", env.project.head()))
        .await;
    let stalled = env
        .wait_for("web-staging", "Stalled", |gd| {
            gd.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Stalled" && c.status == "True")
            })
        })
        .await;
    let message = &stalled.status.unwrap().conditions[0].message;
    assert!(message.contains("401"), "{message}");
    assert!(
        !message.contains("glpat-wrong"),
        "the token never appears: {message}"
    );
    env.put_token(&env.project.maintainer_token.clone()).await;
    env.wait_for("web-staging", "success after the fix", is("success"))
        .await;
    op.stop().await;
}

async fn an_invalid_spec_is_rejected_by_the_crd(backend: Backend) {
    let env = Env::start_on(backend).await;
    let api = env.glds();
    let bad = json!({
        "apiVersion": "gitlab-operator.io/v1alpha1", "kind": "GitlabDeployment",
        "metadata": {"name": "bad"},
        "spec": {"project": "team/app", "environment": "staging", "ref": "main", "sha": "abc",
                 "target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}
    });
    let err = api
        .patch("bad", &PatchParams::apply("test"), &Patch::Apply(&bad))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(status.message.contains("spec.sha"), "{}", status.message);
        }
        other => panic!("expected a 422, got {other:?}"),
    }
}

async fn deletion_policies_cancel_orphan_and_delete(backend: Backend) {
    let env = Env::start_on(backend).await;
    env.apply_workload(
        "web",
        "registry.example/app:1.0.0",
        json!({"emulator.gitlab-operator.io/rollout-outcome": "stall"}),
    )
    .await;
    let op = env.start_operator();
    for (name, policy) in [
        ("cancel", "Cancel"),
        ("orphan", "Orphan"),
        ("delete", "Delete"),
    ] {
        let mut spec = env.fixed_spec(name, env.project.head());
        spec["deletionPolicy"] = json!(policy);
        env.apply_gld(name, spec).await;
        env.wait_for(name, "running", is("running")).await;
    }
    for name in ["cancel", "orphan", "delete"] {
        env.glds()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    for name in ["cancel", "orphan", "delete"] {
        let api = env.glds();
        tokio::time::timeout(
            Duration::from_secs(20),
            // Gone for good (`is_deleted("")` would hold at once: it compares uids).
            kube::runtime::wait::await_condition(
                api,
                name,
                |o: Option<&gitlab_deployment_operator::api::GitlabDeployment>| o.is_none(),
            ),
        )
        .await
        .ok();
        assert!(
            env.glds().get_opt(name).await.unwrap().is_none(),
            "{name} is gone"
        );
    }
    assert_eq!(env.gitlab_deployments("cancel")[0].status, "canceled");
    assert_eq!(env.gitlab_deployments("orphan")[0].status, "running");
    assert!(
        env.gitlab_deployments("delete").is_empty(),
        "canceled, then deleted"
    );
    op.stop().await;
}

async fn approval_pending_then_approved_is_on_status(backend: Backend) {
    let env = Env::start_on(backend).await;
    let approver = env.protect_production();
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let op = env.start_operator();
    env.apply_gld("web-prod", env.fixed_spec("production", env.project.head()))
        .await;
    let pending = env
        .wait_for_approval("web-prod", ApprovalState::Pending)
        .await;
    let status = pending.status.unwrap();
    assert_eq!(status.approvals_summary.as_deref(), Some("0/1"));
    let id = status.deployment.unwrap().id;
    env.review(&approver, id, ApprovalStatus::Approved).await;
    env.refresh("web-prod", "1").await;
    let approved = env
        .wait_for_approval("web-prod", ApprovalState::Approved)
        .await;
    let status = approved.status.unwrap();
    assert_eq!(status.approvals_summary.as_deref(), Some("1/1"));
    let approval = status.approval.unwrap();
    assert_eq!(approval.approvals[0].user, "approver");
    assert_eq!(approval.approvals[0].comment.as_deref(), Some("looks good"));
    env.wait_for_event("web-prod", reason::APPROVED).await;
    // Events are listed eventually (the real apiserver showed Approved before ApprovalPending
    // once): wait for each rather than expect both in one list.
    env.wait_for_event("web-prod", reason::APPROVAL_PENDING)
        .await;
    op.stop().await;
}

async fn a_rejection_is_a_condition_and_an_event(backend: Backend) {
    let env = Env::start_on(backend).await;
    let approver = env.protect_production();
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let op = env.start_operator();
    env.apply_gld("web-prod", env.fixed_spec("production", env.project.head()))
        .await;
    let pending = env
        .wait_for_approval("web-prod", ApprovalState::Pending)
        .await;
    let id = pending.status.unwrap().deployment.unwrap().id;
    env.review(&approver, id, ApprovalStatus::Rejected).await;
    env.refresh("web-prod", "1").await;
    let rejected = env
        .wait_for_approval("web-prod", ApprovalState::Rejected)
        .await;
    let conditions = rejected.status.unwrap().conditions;
    assert!(
        conditions
            .iter()
            .any(|c| c.reason == reason::APPROVAL_REJECTED),
        "{conditions:?}"
    );
    env.wait_for_event("web-prod", reason::APPROVAL_REJECTED)
        .await;
    op.stop().await;
}

async fn merge_requests_shipped_are_on_status(backend: Backend) {
    let env = Env::start_on(backend).await;
    let gl = env.gitlab.handle();
    let merge_commit = env.project.shas[3].clone();
    gl.add_merge_request(
        env.project.id,
        gitlab_emulator::MergeRequestSpec::merged(
            "Add login",
            env.project.maintainer_id,
            "main",
            &merge_commit,
        ),
    );
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let op = env.start_operator();
    env.apply_gld("web-staging", env.fixed_spec("staging", env.project.head()))
        .await;
    let done = env
        .wait_for("web-staging", "merge requests on status", |gd| {
            gd.status
                .as_ref()
                .is_some_and(|s| !s.merge_requests.is_empty())
        })
        .await;
    let mrs = done.status.unwrap().merge_requests;
    assert_eq!(mrs.len(), 1);
    assert_eq!(mrs[0].title, "Add login");
    op.stop().await;
}

async fn a_rotated_token_is_picked_up_from_its_secret(backend: Backend) {
    let env = Env::start_on(backend).await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let op = env.start_operator();
    env.apply_gld("one", env.fixed_spec("one", env.project.head()))
        .await;
    env.wait_for("one", "success", is("success")).await;
    // Rotate: a new token for the same user, the old one revoked.
    let gl = env.gitlab.handle();
    gl.add_personal_access_token(
        env.project.maintainer_id,
        "glpat-rotated",
        &[gitlab_emulator::Scope::Api],
    );
    gl.set_token_revoked(&env.project.maintainer_token, true);
    env.put_token("glpat-rotated").await;
    env.apply_gld("two", env.fixed_spec("two", env.project.head()))
        .await;
    env.wait_for("two", "success with the rotated token", is("success"))
        .await;
    op.stop().await;
}

async fn a_spec_the_crd_could_not_catch_is_stalled_by_the_controller(backend: Backend) {
    let env = Env::start_on(backend).await;
    let op = env.start_operator();
    // Schema-valid, but the target kind does not exist in this cluster.
    env.apply_gld(
        "ghost",
        json!({
            "project": env.project.path, "environment": "staging", "ref": "main",
            "sha": env.project.head(),
            "target": {"apiVersion": "example.com/v1", "kind": "Nothing", "name": "x"}
        }),
    )
    .await;
    let stalled = env
        .wait_for("ghost", "Stalled", |gd| {
            gd.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Stalled" && c.status == "True")
            })
        })
        .await;
    let stalled_cond = stalled
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap();
    assert_eq!(stalled_cond.reason, reason::TARGET_KIND_NOT_SERVED);
    assert!(
        stalled_cond.message.contains("Nothing"),
        "{}",
        stalled_cond.message
    );
    assert!(env.gitlab_calls().is_empty(), "nothing was sent to GitLab");
    op.stop().await;
}

/// The message of the `Stalled` condition once it has `reason`.
async fn stalled_message(env: &Env, name: &str, reason: &'static str) -> String {
    let stalled = env
        .wait_for(name, &format!("Stalled {reason}"), |gd| {
            gd.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Stalled" && c.reason == reason)
            })
        })
        .await;
    stalled.status.unwrap().conditions[0].message.clone()
}

async fn a_host_outside_the_allow_list_is_refused(backend: Backend) {
    let env = Env::start_on(backend).await;
    env.create_connection("elsewhere", "https://gitlab.evil.example")
        .await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let op = env.start_operator();
    let mut spec = env.fixed_spec("staging", env.project.head());
    spec["connectionRef"] = json!({"kind": "GitlabConnection", "name": "elsewhere"});
    env.apply_gld("web-staging", spec).await;
    let message = stalled_message(&env, "web-staging", reason::HOST_NOT_ALLOWED).await;
    assert!(message.contains("--allowed-host"), "{message}");
    // Only the refused host is named: the allow-list (the emulator's 127.0.0.1:PORT) is the
    // cluster admin's business, not every tenant's.
    assert!(message.contains("\"gitlab.evil.example\""), "{message}");
    assert!(
        !message.contains("127.0.0.1"),
        "shows the allow-list: {message}"
    );
    op.stop().await;
}

async fn apply_json(
    env: &Env,
    api_version: &str,
    kind: &str,
    plural: &str,
    obj: serde_json::Value,
) {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    let api: kube::Api<DynamicObject> =
        kube::Api::namespaced_with(env.client.clone(), &env.ns, &ar);
    let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
    api.patch(
        &name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap();
}

fn target_spec(
    env: &Env,
    environment: &str,
    api_version: &str,
    kind: &str,
    name: &str,
) -> serde_json::Value {
    json!({
        "project": env.project.path, "environment": environment, "ref": "main", "sha": env.project.head(),
        "target": {"apiVersion": api_version, "kind": kind, "name": name}
    })
}

async fn statefulsets_and_daemonsets_are_followed(backend: Backend) {
    let env = Env::start_on(backend).await;
    let op = env.start_operator();
    let template = json!({
        "metadata": {"labels": {"app": "db"}},
        "spec": {"containers": [{"name": "db", "image": "registry.example/db:1"}]}
    });
    apply_json(&env, "apps/v1", "StatefulSet", "statefulsets", json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "annotations": {"emulator.gitlab-operator.io/rollout-step": "200ms"}},
        "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": template}
    })).await;
    apply_json(&env, "apps/v1", "DaemonSet", "daemonsets", json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "annotations": {"emulator.gitlab-operator.io/rollout-step": "200ms",
                                                      "emulator.gitlab-operator.io/nodes": "2"}},
        "spec": {"selector": {"matchLabels": {"app": "db"}}, "template": template}
    })).await;
    env.apply_gld(
        "db",
        target_spec(&env, "db", "apps/v1", "StatefulSet", "db"),
    )
    .await;
    env.apply_gld(
        "agent",
        target_spec(&env, "agent", "apps/v1", "DaemonSet", "agent"),
    )
    .await;
    env.wait_for("db", "StatefulSet success", is("success"))
        .await;
    env.wait_for("agent", "DaemonSet success", is("success"))
        .await;
    assert_eq!(env.gitlab_deployments("db").len(), 1);
    assert_eq!(env.gitlab_deployments("agent").len(), 1);
    op.stop().await;
}

async fn a_custom_kind_with_kstatus_conditions_is_followed(backend: Backend) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let env = Env::start_on(backend).await;
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .unwrap();
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(env.client.clone());
    crds.patch(
        "widgets.example.com",
        &PatchParams::apply("test").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        kube::runtime::wait::await_condition(
            crds,
            "widgets.example.com",
            kube::runtime::wait::conditions::is_crd_established(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let op = env.start_operator();
    apply_json(&env, "example.com/v1", "Widget", "widgets", json!({
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}
    })).await;
    env.apply_gld(
        "w",
        target_spec(&env, "widgets", "example.com/v1", "Widget", "w"),
    )
    .await;
    // The widget's controller (this test) reports progress, then readiness, kstatus-style.
    let widgets: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        env.client.clone(),
        &env.ns,
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("example.com", "v1", "Widget"),
            "widgets",
        ),
    );
    let set_status = |ready: &str, reason: &str| {
        json!({"status": {"observedGeneration": 1, "conditions": [
            {"type": "Ready", "status": ready, "reason": reason, "message": reason,
             "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}]}})
    };
    widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(set_status("False", "Progressing")),
        )
        .await
        .unwrap();
    env.wait_for("w", "running", is("running")).await;
    widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(set_status("True", "Succeeded")),
        )
        .await
        .unwrap();
    env.wait_for("w", "success", is("success")).await;
    assert_eq!(env.gitlab_deployments("widgets").len(), 1);
    op.stop().await;
}

async fn a_new_sha_is_not_reported_successful_before_the_workload_rolls_it_out(backend: Backend) {
    let env = Env::start_on(backend).await;
    let shas = env.project.shas.clone();
    env.apply_workload("web", "registry.example/app:1", json!({}))
        .await;
    let op = env.start_operator();
    env.apply_gld("web-staging", env.fixed_spec("staging", &shas[2]))
        .await;
    env.wait_for("web-staging", "first sha success", is("success"))
        .await;

    // CI bumps spec.sha before (here: without) changing the workload.
    env.apply_gld("web-staging", env.fixed_spec("staging", &shas[3]))
        .await;
    env.wait_for("web-staging", "waiting for the workload", |gd| {
        gd.status
            .as_ref()
            .and_then(|s| s.rollout.as_ref())
            .is_some_and(|r| r.reason == "RevisionNotRolledOut")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        env.gitlab_deployments("staging").len(),
        1,
        "nothing reported for the new sha while the old pods run"
    );

    // The workload follows: now the new sha rolls out and is reported.
    env.apply_workload("web", "registry.example/app:2", json!({}))
        .await;
    env.wait_for("web-staging", "new sha success", |gd| {
        is("success")(gd) && gd.status.as_ref().unwrap().deployment.as_ref().unwrap().sha == shas[3]
    })
    .await;
    assert_eq!(env.gitlab_deployments("staging").len(), 2);
    op.stop().await;
}

#[tokio::test]
async fn a_cluster_connection_as_the_default_serves_only_its_namespaces() {
    use gitlab_deployment_operator::api::ClusterGitlabConnection;
    use gitlab_deployment_operator::api::deployment::ConnectionKind;
    use gitlab_deployment_operator::api::validate::ConnectionTarget;
    let env = Env::start().await;
    let api: kube::Api<ClusterGitlabConnection> = kube::Api::all(env.client.clone());
    for (name, namespaces) in [("shared", vec![harness::NS]), ("elsewhere", vec!["other"])] {
        let conn: ClusterGitlabConnection = serde_json::from_value(json!({
            "apiVersion": "gitlab-operator.io/v1alpha1", "kind": "ClusterGitlabConnection",
            "metadata": {"name": name},
            "spec": {"url": env.gitlab.base_url(), "secretNamespace": harness::NS,
                     "tokenSecretRef": {"name": harness::TOKEN_SECRET}, "namespaces": namespaces,
                     "timeout": "5s"}
        }))
        .unwrap();
        api.create(&Default::default(), &conn).await.unwrap();
    }
    env.apply_workload("web", "registry.example/app:1", json!({}))
        .await;
    let mut config = env.config();
    config.settings.default_connection = ConnectionTarget {
        kind: ConnectionKind::ClusterGitlabConnection,
        name: "shared".into(),
    };
    let op = env.start_operator_with(config);
    // No connectionRef: the operator's default, a cluster connection serving this namespace.
    env.apply_gld("by-default", env.fixed_spec("one", env.project.head()))
        .await;
    env.wait_for("by-default", "success", is("success")).await;
    // A cluster connection that does not serve this namespace is refused, with the fix.
    let mut spec = env.fixed_spec("two", env.project.head());
    spec["connectionRef"] = json!({"kind": "ClusterGitlabConnection", "name": "elsewhere"});
    env.apply_gld("not-served", spec).await;
    let message = stalled_message(&env, "not-served", reason::CONNECTION_MISSING).await;
    assert!(message.contains("does not serve namespace"), "{message}");
    // A cluster connection that does not exist is refused with the same words, so a tenant
    // cannot tell which cluster connections exist by probing names.
    let mut spec = env.fixed_spec("three", env.project.head());
    spec["connectionRef"] = json!({"kind": "ClusterGitlabConnection", "name": "nowhere"});
    env.apply_gld("missing", spec).await;
    let missing_message = stalled_message(&env, "missing", reason::CONNECTION_MISSING).await;
    assert_eq!(
        missing_message.replace("nowhere", "NAME"),
        message.replace("elsewhere", "NAME"),
        "missing and not serving this namespace read the same"
    );
    op.stop().await;
}

both_backends!(
    happy_path_creates_once_and_reports_success_with_two_writes,
    an_already_rolled_out_workload_costs_one_call,
    a_failed_rollout_is_reported_failed,
    a_new_image_supersedes_the_running_deployment_and_a_rollback_is_a_new_revision,
    revision_from_an_annotation,
    a_crash_between_post_and_id_is_recovered_by_lookup_not_a_second_create,
    two_operators_at_once_make_one_deployment,
    a_restart_when_settled_costs_no_gitlab_call,
    gitlab_5xx_and_429_bursts_are_retried_without_duplicates,
    a_create_that_cannot_be_sent_in_time_is_claimed_again_not_duplicated,
    a_wrong_token_stalls_and_fixing_the_secret_recovers,
    an_invalid_spec_is_rejected_by_the_crd,
    deletion_policies_cancel_orphan_and_delete,
    approval_pending_then_approved_is_on_status,
    a_rejection_is_a_condition_and_an_event,
    merge_requests_shipped_are_on_status,
    a_rotated_token_is_picked_up_from_its_secret,
    a_spec_the_crd_could_not_catch_is_stalled_by_the_controller,
    a_host_outside_the_allow_list_is_refused,
    statefulsets_and_daemonsets_are_followed,
    a_custom_kind_with_kstatus_conditions_is_followed,
    a_new_sha_is_not_reported_successful_before_the_workload_rolls_it_out,
);
