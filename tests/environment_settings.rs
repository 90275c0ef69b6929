//! `spec.environmentSettings` reach GitLab's environment once per change: one agent lookup,
//! one GET to compare and one PUT; nothing in steady state or after a restart; and a GitLab
//! that refuses (or, before 17.4, silently drops) the settings is a readable status and a
//! Warning Event, never a loop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::time::Duration;

use gitlab_deployment_operator::api::GitlabDeployment;
use gitlab_deployment_operator::api::deployment::{EnvironmentRecord, EnvironmentSyncState};
use gitlab_deployment_operator::api::names::reason;
use gitlab_emulator::Compat;
use harness::Env;
use serde_json::json;

fn settings_spec(env: &Env, settings: serde_json::Value) -> serde_json::Value {
    let mut spec = env.fixed_spec("production", env.project.head());
    spec["environmentSettings"] = settings;
    spec
}

fn environment(gd: &GitlabDeployment) -> Option<&EnvironmentRecord> {
    gd.status.as_ref().and_then(|s| s.environment.as_ref())
}

/// Requests to the Environments API and the agents list.
fn environment_calls(env: &Env) -> Vec<String> {
    env.gitlab_calls()
        .into_iter()
        .filter(|r| r.endpoint.contains("/environments") || r.endpoint.contains("/cluster_agents"))
        .map(|r| format!("{} {}", r.method, r.endpoint))
        .collect()
}

/// Wait until `web-production`'s settings are `Rejected`; GitLab's (or our) message.
async fn rejected(env: &Env) -> String {
    let gd = env
        .wait_for("web-production", "settings rejected", |gd| {
            environment(gd).is_some_and(|e| e.state == EnvironmentSyncState::Rejected)
        })
        .await;
    environment(&gd).unwrap().message.clone()
}

async fn applied(env: &Env, name: &str, external_url: &'static str) -> GitlabDeployment {
    env.wait_for(name, "environment settings applied", move |gd| {
        environment(gd).is_some_and(|e| {
            e.state == EnvironmentSyncState::Applied
                && e.settings.external_url.as_deref() == Some(external_url)
        })
    })
    .await
}

#[tokio::test]
async fn settings_reach_gitlab_once_per_change_and_cost_nothing_after() {
    let env = Env::start().await;
    let agent = env
        .gitlab
        .handle()
        .add_cluster_agent(env.project.id, "prod-agent");
    env.apply_workload("web", "registry.example/app:1", json!({}))
        .await;
    let op = env.start_operator();
    let settings = json!({"tier": "production", "externalURL": "https://web.example.com",
                          "clusterAgent": "prod-agent"});
    env.apply_gld("web-production", settings_spec(&env, settings.clone()))
        .await;
    let gd = applied(&env, "web-production", "https://web.example.com").await;
    // Defaults: the resource's namespace; a Deployment has no Flux path.
    let record = environment(&gd).unwrap();
    assert_eq!(
        record.settings.kubernetes_namespace.as_deref(),
        Some(harness::NS)
    );
    assert_eq!(record.settings.flux_resource_path, None);
    let shown = env
        .gitlab
        .handle()
        .environment(env.project.id, "production")
        .unwrap();
    assert_eq!(shown.tier, "production");
    assert_eq!(
        shown.external_url.as_deref(),
        Some("https://web.example.com")
    );
    assert_eq!(shown.cluster_agent_id, Some(agent));
    assert_eq!(shown.kubernetes_namespace.as_deref(), Some(harness::NS));
    assert_eq!(
        environment_calls(&env),
        [
            "GET /projects/:id/cluster_agents",
            "GET /projects/:id/environments/:environment_id",
            "PUT /projects/:id/environments/:environment_id",
        ]
    );
    env.wait_for_event("web-production", reason::ENVIRONMENT_UPDATED)
        .await;

    // Steady state and a restart: no call.
    tokio::time::sleep(Duration::from_secs(1)).await;
    op.stop().await;
    let op = env.start_operator();
    op.wait_reconciled(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        environment_calls(&env).len(),
        3,
        "{:?}",
        environment_calls(&env)
    );

    // A change in the spec: one lookup, one GET, one PUT again.
    let mut changed = settings;
    changed["externalURL"] = json!("https://shop.example.com");
    env.apply_gld("web-production", settings_spec(&env, changed))
        .await;
    applied(&env, "web-production", "https://shop.example.com").await;
    assert_eq!(
        environment_calls(&env).len(),
        6,
        "{:?}",
        environment_calls(&env)
    );
    assert_eq!(
        env.gitlab
            .handle()
            .environment(env.project.id, "production")
            .unwrap()
            .external_url
            .as_deref(),
        Some("https://shop.example.com")
    );
    op.stop().await;
}

#[tokio::test]
async fn an_older_gitlab_that_drops_the_kubernetes_fields_is_said_once() {
    let env = Env::start().await;
    env.gitlab
        .handle()
        .add_cluster_agent(env.project.id, "prod-agent");
    env.gitlab.handle().set_compat(Compat {
        no_environment_kubernetes_fields: true,
        ..Compat::default()
    });
    env.apply_workload("web", "registry.example/app:1", json!({}))
        .await;
    let op = env.start_operator();
    env.apply_gld(
        "web-production",
        settings_spec(
            &env,
            json!({"tier": "production", "clusterAgent": "prod-agent"}),
        ),
    )
    .await;
    let message = rejected(&env).await;
    assert!(
        message.contains("17.4") && message.contains("kubernetes_namespace"),
        "{message}"
    );
    // The deployment itself is reported as usual.
    env.wait_for("web-production", "success", |gd| {
        harness::gitlab_status(gd).as_deref() == Some("success")
    })
    .await;
    env.wait_for_event("web-production", reason::ENVIRONMENT_SETTINGS_REJECTED)
        .await;
    let calls = environment_calls(&env).len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(environment_calls(&env).len(), calls, "no retry loop");
    op.stop().await;
}

#[tokio::test]
async fn an_agent_gitlab_does_not_know_is_refused_with_its_name() {
    let env = Env::start().await;
    env.apply_workload("web", "registry.example/app:1", json!({}))
        .await;
    let op = env.start_operator();
    env.apply_gld(
        "web-production",
        settings_spec(&env, json!({"clusterAgent": "no-such-agent"})),
    )
    .await;
    let message = rejected(&env).await;
    assert!(message.contains("no-such-agent"), "{message}");
    op.stop().await;
}

#[tokio::test]
async fn the_crd_refuses_a_namespace_without_an_agent() {
    let env = Env::start().await;
    let api = env.glds();
    let obj: GitlabDeployment = serde_json::from_value(json!({
        "apiVersion": "gitlab-operator.io/v1alpha1", "kind": "GitlabDeployment",
        "metadata": {"name": "bad"},
        "spec": settings_spec(&env, json!({"kubernetesNamespace": "apps", "externalURL": "javascript:alert(1)"}))
    }))
    .unwrap();
    let err = api
        .create(&Default::default(), &obj)
        .await
        .expect_err("the CRD refuses it");
    let text = err.to_string();
    assert!(
        text.contains("needs environmentSettings.clusterAgent"),
        "{text}"
    );
    assert!(text.contains("javascript:"), "{text}");
}
