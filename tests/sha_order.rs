//! A fixed `spec.sha` and its workload change in either order (CI jobs patch one after the
//! other, GitOps syncs apply both): every order reports the new sha exactly once, never
//! before the rollout that carries it, and never waits forever — with and without an operator
//! restart between the two changes, on the kube emulator and on the pinned upstream control
//! plane. The rule is `spec.rolloutStartGrace` (README).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod harness;

use std::time::Duration;

use chrono::{DateTime, Utc};
use gitlab_deployment_operator::api::GitlabDeployment;
use gitlab_deployment_operator::api::names::reason;
use harness::{Backend, Env, Operator, gitlab_status};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::runtime::wait::await_condition;
use serde_json::json;

/// Rollout pace of the workload: 2 replicas, so a rollout takes a few steps.
const FAST: &str = "100ms";

struct Case {
    env: Env,
    op: Option<Operator>,
    a: String,
    b: String,
}

impl Case {
    /// Deployment `web` at image 1 and `web-staging` at sha A with `grace`, reported success.
    async fn start(backend: Backend, grace: &str, step: &str) -> Case {
        let env = Env::start_on(backend).await;
        let shas = env.project.shas.clone();
        let (a, b) = (shas[2].clone(), shas[3].clone());
        env.apply_workload("web", "registry.example/app:1", step_annotation(step))
            .await;
        let op = env.start_operator();
        env.apply_gld("web-staging", spec(&env, &a, grace)).await;
        env.wait_for("web-staging", "A success", reported(&a, "success"))
            .await;
        Case {
            env,
            op: Some(op),
            a,
            b,
        }
    }

    async fn image(&self, tag: &str, step: &str) -> DateTime<Utc> {
        let at = Utc::now();
        self.env
            .apply_workload(
                "web",
                &format!("registry.example/app:{tag}"),
                step_annotation(step),
            )
            .await;
        at
    }

    async fn sha(&self, sha: &str, grace: &str) {
        self.env
            .apply_gld("web-staging", spec(&self.env, sha, grace))
            .await;
    }

    async fn stop_operator(&mut self) {
        if let Some(op) = self.op.take() {
            op.stop().await;
        }
    }

    fn start_operator(&mut self) {
        if self.op.is_none() {
            self.op = Some(self.env.start_operator());
        }
    }

    /// B reported `success` (waited for on the watch), exactly one GitLab deployment per sha.
    async fn b_succeeds(&self) -> gitlab_emulator::records::DeploymentRecord {
        self.env
            .wait_for("web-staging", "B success", reported(&self.b, "success"))
            .await;
        let all = self.env.gitlab_deployments("staging");
        let shas: Vec<&str> = all.iter().map(|d| d.sha.as_str()).collect();
        assert_eq!(
            shas,
            [self.a.as_str(), self.b.as_str()],
            "one deployment per sha"
        );
        all[1].clone()
    }

    async fn finish(mut self) {
        self.stop_operator().await;
    }
}

fn step_annotation(step: &str) -> serde_json::Value {
    json!({"emulator.gitlab-operator.io/rollout-step": step})
}

fn spec(env: &Env, sha: &str, grace: &str) -> serde_json::Value {
    let mut spec = env.fixed_spec("staging", sha);
    spec["rolloutStartGrace"] = json!(grace);
    spec
}

fn reported(sha: &str, status: &'static str) -> impl Fn(&GitlabDeployment) -> bool {
    let sha = sha.to_owned();
    move |gd| {
        gitlab_status(gd).as_deref() == Some(status)
            && gd
                .status
                .as_ref()
                .and_then(|s| s.deployment.as_ref())
                .is_some_and(|d| d.sha == sha)
    }
}

/// Waiting for the new sha's rollout (`RevisionNotRolledOut`).
fn waiting(gd: &GitlabDeployment) -> bool {
    gd.status
        .as_ref()
        .and_then(|s| s.rollout.as_ref())
        .is_some_and(|r| r.reason == "RevisionNotRolledOut")
}

/// As `kubectl rollout status` would: the Deployment's newest revision is available.
async fn rolled_out(env: &Env) {
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    let done = |d: Option<&Deployment>| {
        d.is_some_and(|d| {
            let st = d.status.as_ref();
            st.and_then(|s| s.observed_generation) == d.metadata.generation
                && st.and_then(|s| s.updated_replicas) == Some(2)
                && st.and_then(|s| s.available_replicas) == Some(2)
                && st.and_then(|s| s.replicas) == Some(2)
        })
    };
    tokio::time::timeout(Duration::from_secs(30), await_condition(api, "web", done))
        .await
        .unwrap()
        .unwrap();
}

/// The Deployment has started rolling its newest revision and is not done.
async fn mid_rollout(env: &Env) {
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    let rolling = |d: Option<&Deployment>| {
        d.is_some_and(|d| {
            let st = d.status.as_ref();
            st.and_then(|s| s.observed_generation) == d.metadata.generation
                && st.and_then(|s| s.updated_replicas).unwrap_or(0) < 2
        })
    };
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(api, "web", rolling),
    )
    .await
    .unwrap()
    .unwrap();
}

/// The operator has seen the workload's rollout of `revision` finish under sha A.
async fn saw_finish(case: &Case, revision: &'static str) {
    case.env
        .wait_for("web-staging", "the rollout seen finished", move |gd| {
            gd.status
                .as_ref()
                .and_then(|s| s.rollout.as_ref())
                .is_some_and(|r| {
                    r.workload_revision.as_deref() == Some(revision) && r.finished_at.is_some()
                })
        })
        .await;
}

async fn attributed(case: &Case) -> bool {
    case.env
        .event_reasons("web-staging")
        .await
        .iter()
        .any(|r| r == reason::REVISION_ATTRIBUTED)
}

// --- sha first: the sha is patched, the rollout comes after -------------------------------

async fn sha_first(backend: Backend, restart: bool) {
    let mut case = Case::start(backend, "1m", FAST).await;
    if restart {
        case.stop_operator().await;
    }
    case.sha(&case.b.clone(), "1m").await;
    case.start_operator();
    case.env
        .wait_for("web-staging", "waiting for B's rollout", waiting)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(case.env.gitlab_deployments("staging").len(), 1);
    let image_at = case.image("2", FAST).await;
    let b = case.b_succeeds().await;
    assert!(
        b.created_at >= image_at,
        "B reported before its rollout started ({} < {image_at})",
        b.created_at
    );
    assert!(
        !attributed(&case).await,
        "an unambiguous order needs no Event"
    );
    case.finish().await;
}

async fn sha_first_then_the_rollout(backend: Backend) {
    sha_first(backend, false).await;
}

async fn sha_first_with_a_restart_in_between(backend: Backend) {
    sha_first(backend, true).await;
}

// --- image first, settled before the sha is patched ----------------------------------------

async fn image_first_settled(backend: Backend, restart: bool) {
    let mut case = Case::start(backend, "1m", FAST).await;
    case.image("2", FAST).await;
    rolled_out(&case.env).await;
    saw_finish(&case, "revision 2").await;
    if restart {
        case.stop_operator().await;
    }
    case.sha(&case.b.clone(), "1m").await;
    case.start_operator();
    case.b_succeeds().await;
    // The workload alone cannot tell this from a config-only rollout just before: say so.
    case.env
        .wait_for_event("web-staging", reason::REVISION_ATTRIBUTED)
        .await;
    case.finish().await;
}

async fn image_first_settled_before_the_sha_changes(backend: Backend) {
    image_first_settled(backend, false).await;
}

async fn image_first_settled_with_a_restart_in_between(backend: Backend) {
    image_first_settled(backend, true).await;
}

/// The operator was down for the whole rollout and the sha change: it never saw the rollout
/// finish, so it waits for the grace and then reports the workload as it stands.
async fn image_first_while_the_operator_was_down(backend: Backend) {
    let mut case = Case::start(backend, "3s", FAST).await;
    case.stop_operator().await;
    case.image("2", FAST).await;
    rolled_out(&case.env).await;
    case.sha(&case.b.clone(), "3s").await;
    case.start_operator();
    case.env
        .wait_for("web-staging", "waiting for B's rollout", waiting)
        .await;
    case.b_succeeds().await;
    case.env
        .wait_for_event("web-staging", reason::REVISION_ATTRIBUTED)
        .await;
    case.finish().await;
}

// --- image first, the sha patched while the rollout is under way --------------------------

async fn image_first_mid_rollout(backend: Backend, restart: bool) {
    let mut case = Case::start(backend, "1m", FAST).await;
    case.image("2", "1s").await;
    mid_rollout(&case.env).await;
    if restart {
        case.stop_operator().await;
    }
    case.sha(&case.b.clone(), "1m").await;
    case.start_operator();
    case.env
        .wait_for("web-staging", "B running", reported(&case.b, "running"))
        .await;
    case.b_succeeds().await;
    assert!(
        !attributed(&case).await,
        "a rollout under way is unambiguous"
    );
    case.finish().await;
}

async fn image_first_with_the_sha_patched_mid_rollout(backend: Backend) {
    image_first_mid_rollout(backend, false).await;
}

async fn image_first_mid_rollout_with_a_restart_in_between(backend: Backend) {
    image_first_mid_rollout(backend, true).await;
}

// --- both in one apply ---------------------------------------------------------------------

async fn both_at_once(backend: Backend, restart: bool) {
    let mut case = Case::start(backend, "1m", FAST).await;
    if restart {
        case.stop_operator().await;
    }
    let b = case.b.clone();
    tokio::join!(case.image("2", FAST), case.sha(&b, "1m"));
    case.start_operator();
    case.b_succeeds().await;
    case.finish().await;
}

async fn image_and_sha_in_one_apply(backend: Backend) {
    both_at_once(backend, false).await;
}

async fn image_and_sha_in_one_apply_with_a_restart(backend: Backend) {
    both_at_once(backend, true).await;
}

// --- a config-only rollout between two shas -------------------------------------------------

async fn config_only_between(backend: Backend, restart: bool) {
    let grace = "4s";
    let mut case = Case::start(backend, grace, FAST).await;
    // Same sha, new pod template (a configuration change): no new GitLab deployment.
    patch_template_env(&case.env, "v2").await;
    rolled_out(&case.env).await;
    saw_finish(&case, "revision 2").await;
    assert_eq!(case.env.gitlab_deployments("staging").len(), 1);
    // Long (more than the grace) after the config-only rollout, CI bumps the sha first.
    tokio::time::sleep(Duration::from_secs(5)).await;
    if restart {
        case.stop_operator().await;
    }
    case.sha(&case.b.clone(), grace).await;
    case.start_operator();
    case.env
        .wait_for("web-staging", "waiting for B's rollout", waiting)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        case.env.gitlab_deployments("staging").len(),
        1,
        "the config-only rollout is not taken for B"
    );
    let image_at = case.image("3", FAST).await;
    let b = case.b_succeeds().await;
    assert!(b.created_at >= image_at, "B reported before its rollout");
    case.finish().await;
}

/// A new pod template under the same image: the Deployment rolls out a new revision.
async fn patch_template_env(env: &Env, value: &str) {
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    let patch =
        json!({"spec": {"template": {"metadata": {"annotations": {"example.com/config": value}}}}});
    api.patch(
        "web",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .unwrap();
}

async fn a_config_only_rollout_between_two_shas(backend: Backend) {
    config_only_between(backend, false).await;
}

async fn a_config_only_rollout_between_two_shas_with_a_restart(backend: Backend) {
    config_only_between(backend, true).await;
}

// --- no rollout ever comes --------------------------------------------------------------

async fn no_rollout_ever(backend: Backend, restart: bool) {
    let mut case = Case::start(backend, "2s", FAST).await;
    case.sha(&case.b.clone(), "2s").await;
    case.env
        .wait_for("web-staging", "waiting for B's rollout", waiting)
        .await;
    if restart {
        case.stop_operator().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        case.start_operator();
    }
    case.b_succeeds().await;
    let reasons = case
        .env
        .wait_for_event("web-staging", reason::REVISION_ATTRIBUTED)
        .await;
    assert_eq!(
        reasons
            .iter()
            .filter(|r| *r == reason::REVISION_ATTRIBUTED)
            .count(),
        1,
        "{reasons:?}"
    );
    case.finish().await;
}

async fn a_sha_whose_workload_never_changes_is_reported_after_the_grace(backend: Backend) {
    no_rollout_ever(backend, false).await;
}

async fn a_sha_whose_workload_never_changes_with_a_restart_while_waiting(backend: Backend) {
    no_rollout_ever(backend, true).await;
}

both_backends!(
    sha_first_then_the_rollout,
    sha_first_with_a_restart_in_between,
    image_first_settled_before_the_sha_changes,
    image_first_settled_with_a_restart_in_between,
    image_first_while_the_operator_was_down,
    image_and_sha_in_one_apply,
    image_and_sha_in_one_apply_with_a_restart,
    a_config_only_rollout_between_two_shas,
    a_config_only_rollout_between_two_shas_with_a_restart,
    a_sha_whose_workload_never_changes_is_reported_after_the_grace,
    a_sha_whose_workload_never_changes_with_a_restart_while_waiting,
);

// The patch lands mid-rollout only where the rollout's pace is steered (the emulator's
// rollout-step annotation); upstream's pace is the fake kubelet's.
mod image_first_with_the_sha_patched_mid_rollout {
    #[tokio::test]
    async fn emulator() {
        super::image_first_with_the_sha_patched_mid_rollout(super::Backend::Emulator).await
    }
}

mod image_first_mid_rollout_with_a_restart_in_between {
    #[tokio::test]
    async fn emulator() {
        super::image_first_mid_rollout_with_a_restart_in_between(super::Backend::Emulator).await
    }
}
