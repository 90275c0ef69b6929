//! The operator end to end: both emulators over loopback, kube's real `Client`, real watches.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use gitlab_emulator::Endpoint;
use harness::{Env, gitlab_status};
use serde_json::json;

#[tokio::test]
async fn happy_path_creates_once_and_reports_success_with_two_calls() {
    let env = Env::start().await;
    let op = env.start_operator();
    let sha = env.project.head().to_owned();
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    env.apply_gld(
        "web-staging",
        json!({
            "project": "team/app", "environment": "staging", "ref": "main", "sha": sha,
            "target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
        }),
    )
    .await;
    let done = env
        .wait_for("web-staging", "GitLab status success", |gd| {
            gitlab_status(gd).as_deref() == Some("success")
        })
        .await;
    let status = done.status.unwrap();
    let dep = status.deployment.unwrap();
    assert_eq!(dep.sha, sha);
    assert_eq!(status.short_sha.as_deref(), Some(&sha[..7]));

    let gl = env.gitlab.handle();
    let deployments = gl.deployments();
    assert_eq!(
        deployments.len(),
        1,
        "exactly one GitLab deployment: {deployments:?}"
    );
    let writes = gl.count(Endpoint::CreateDeployment) + gl.count(Endpoint::UpdateDeployment);
    assert!(writes <= 2, "create + at most one PUT, saw {writes}");
    op.stop().await;
}
