//! What a cluster operator relies on before running this next to real workloads: the admin
//! server (readiness only after the caches synced, every metric family), and tokens that never
//! leak into logs, Events, status or metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::process::Stdio;
use std::time::Duration;

use gitlab_deployment_operator::admin;
use harness::{Env, NS, gitlab_status};
use serde_json::json;
use tokio::io::AsyncReadExt;

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    let code = response.status().as_u16();
    (code, response.text().await.unwrap())
}

#[tokio::test]
async fn readyz_waits_for_the_caches_and_metrics_have_every_family() {
    let env = Env::start().await;
    env.apply_workload("web", "registry.example/app:1", json!({}))
        .await;
    env.apply_gld("web-staging", env.fixed_spec("staging", env.project.head()))
        .await;
    // A slow API server: the initial lists take a while.
    env.emulator()
        .hooks()
        .set_latency(Duration::from_millis(300));
    let op = env.start_operator();
    let (addr, _server) = admin::serve(
        "127.0.0.1:0".parse().unwrap(),
        op.admin.clone(),
        futures::future::pending(),
    )
    .await
    .unwrap();
    let base = format!("http://{addr}");
    assert_eq!(
        get(&format!("{base}/healthz")).await.0,
        200,
        "live from the start"
    );
    assert_eq!(
        get(&format!("{base}/readyz")).await.0,
        503,
        "not ready before the caches synced"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while get(&format!("{base}/readyz")).await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.emulator().hooks().set_latency(Duration::ZERO);
    env.wait_for("web-staging", "success", |gd| {
        gitlab_status(gd).as_deref() == Some("success")
    })
    .await;
    // The phase gauge is refreshed on a timer; the rest are live.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let text = loop {
        let (code, text) = get(&format!("{base}/metrics")).await;
        assert_eq!(code, 200);
        if text.contains("gitlab_operator_resources{") || tokio::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for family in [
        "gitlab_operator_reconciles_total{result=\"ok\",category=\"none\"}",
        "gitlab_operator_reconcile_duration_seconds_bucket",
        "gitlab_operator_leader",
        "gitlab_operator_queue_depth",
        "gitlab_operator_watched_kinds",
        "gitlab_operator_resources{phase=\"Succeeded\"} 1",
        "gitlab_requests_total{endpoint=\"/projects/:id/deployments\",method=\"POST\",code=\"201\"} 1",
        "gitlab_request_duration_seconds_bucket",
        "gitlab_rate_limit_pauses_total 0",
        "gitlab_retries_total{endpoint=\"/projects/:id/deployments/:deployment_id\"} 0",
    ] {
        assert!(text.contains(family), "missing {family} in\n{text}");
    }
    assert!(!text.contains("web-staging"), "no object names in labels");
    op.stop().await;
}

#[tokio::test]
async fn the_token_never_appears_in_logs_events_status_or_metrics() {
    let env = Env::start().await;
    let good = env.project.maintainer_token.clone();
    let bad = "glpat-this-token-is-wrong";
    env.put_token(bad).await;
    env.apply_workload("web", "registry.example/app:1", json!({}))
        .await;
    env.apply_gld("web-staging", env.fixed_spec("staging", env.project.head()))
        .await;

    // The real binary, logging everything it can (debug for us, and kube's and hyper's too).
    let admin_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gitlab-deployment-operator"))
        .args(["run", "--allowed-host", &env.gitlab.addr().to_string()])
        .args(["--allow-insecure-http", "--log-format", "json"])
        .args(["--admin-addr", &format!("127.0.0.1:{admin_port}")])
        .env("KUBECONFIG", env.kubeconfig_path())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Read the logs as they come: a full pipe would block the operator.
    let mut stderr = child.stderr.take().unwrap();
    let reader = tokio::spawn(async move {
        let mut logs = String::new();
        let _ = stderr.read_to_string(&mut logs).await;
        logs
    });

    env.wait_for("web-staging", "Stalled on the wrong token", |gd| {
        gd.status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Stalled"))
    })
    .await;
    env.put_token(&good).await;
    env.wait_for("web-staging", "success with the right token", |gd| {
        gitlab_status(gd).as_deref() == Some("success")
    })
    .await;
    let (_, metrics) = get(&format!("http://127.0.0.1:{admin_port}/metrics")).await;
    child.kill().await.unwrap();
    let logs = reader.await.unwrap();

    assert!(
        logs.contains("GitLab request"),
        "debug logs were captured:\n{logs}"
    );
    let status = serde_json::to_string(&env.glds().get("web-staging").await.unwrap()).unwrap();
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(env.client.clone(), NS);
    let events = serde_json::to_string(&events.list(&Default::default()).await.unwrap()).unwrap();
    assert!(
        events.contains("Unauthorized"),
        "the 401 was reported: {events}"
    );
    for token in [good.as_str(), bad] {
        for (what, text) in [
            ("logs", &logs),
            ("status", &status),
            ("Events", &events),
            ("metrics", &metrics),
        ] {
            assert!(!text.contains(token), "the token leaked into the {what}");
        }
    }
}
