//! Memory that does not grow with other people's Secrets (issue 15): the operator, as its own
//! process, serving GitlabDeployments in a namespace that also holds 1,000 unrelated Secrets of
//! 100 KiB each (Helm release revisions, say), has an RSS within 5 MiB of the same run without
//! them. Slow (it writes ~100 MB of Secrets through the emulator), so ignored by default:
//!
//! ```sh
//! cargo nextest run -p gitlab-deployment-operator --test secret_memory --run-ignored only --no-capture
//! ```
//!
//! `SECRET_MEMORY_OPERATOR_BIN=/path/to/older/gitlab-deployment-operator` measures another
//! build instead (an operator that still watches Secrets needs list/watch, so the harness's
//! get-only restriction is lifted for it) and reports without asserting. Figures:
//! docs/benchmarks.md, "Unrelated Secrets".
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;
#[path = "chaos/process.rs"]
#[allow(dead_code)] // the chaos test's process helper; this test uses part of it
mod process;

use std::path::PathBuf;
use std::time::Duration;

use futures::{StreamExt, stream};
use harness::{Env, NS, gitlab_status};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use process::OperatorProcess;
use serde_json::json;

const UNRELATED: usize = 1_000;
const SECRET_BYTES: usize = 100 * 1024;
const RESOURCES: usize = 20;
const BUDGET_KIB: u64 = 5 * 1024;

/// Start the operator, wait until every resource is reported and reconciles have stopped,
/// then take the highest of a few RSS samples; stop it.
async fn settled_rss_kib(env: &Env, binary: Option<&PathBuf>, log: &str) -> u64 {
    let log = std::env::temp_dir().join(format!("{log}-{}.log", std::process::id()));
    let mut op = OperatorProcess::new(
        env.emulator().kubeconfig_path(),
        env.gitlab.addr(),
        log.clone(),
    );
    if let Some(binary) = binary {
        op = op.with_binary(binary.clone());
    }
    op.start();
    assert!(
        op.wait_ready(Duration::from_secs(120)).await,
        "the operator gets ready (log: {})",
        log.display()
    );
    for i in 0..RESOURCES {
        env.wait_for(&format!("r{i}"), "success", |gd| {
            gitlab_status(gd).as_deref() == Some("success")
        })
        .await;
    }
    // Quiet: no reconcile for two seconds.
    let mut last = op.scrape_reconciles().await;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = op.scrape_reconciles().await;
        if now == last {
            break;
        }
        last = now;
    }
    let mut peak = 0;
    for _ in 0..5 {
        peak = peak.max(op.rss_kib().expect("the operator's /proc status"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    op.kill().await;
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: writes 1,000 Secrets of 100 KiB; see the module docs"]
async fn unrelated_secrets_cost_the_operator_no_memory() {
    let env = Env::start().await;
    let other_build = std::env::var_os("SECRET_MEMORY_OPERATOR_BIN").map(PathBuf::from);
    if other_build.is_some() {
        env.emulator().hooks().clear_forbidden();
    }
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    for i in 0..RESOURCES {
        let name = format!("r{i}");
        env.apply_gld(&name, env.fixed_spec(&name, env.project.head()))
            .await;
    }
    let without = settled_rss_kib(&env, other_build.as_ref(), "secret-memory-without").await;

    let api: Api<Secret> = Api::namespaced(env.client.clone(), NS);
    let payload = "h".repeat(SECRET_BYTES);
    stream::iter(0..UNRELATED)
        .map(|i| {
            let api = api.clone();
            let secret: Secret = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": format!("sh.helm.release.v1.app{i}.v1"),
                             "labels": {"owner": "helm", "name": format!("app{i}")}},
                "type": "helm.sh/release.v1",
                "stringData": {"release": payload}
            }))
            .unwrap();
            async move { api.create(&PostParams::default(), &secret).await.unwrap() }
        })
        .buffer_unordered(8)
        .for_each(|_| async {})
        .await;
    let with = settled_rss_kib(&env, other_build.as_ref(), "secret-memory-with").await;

    let grew = with.saturating_sub(without);
    eprintln!(
        "operator RSS with {RESOURCES} GitlabDeployments: {:.1} MiB without, {:.1} MiB with {UNRELATED} unrelated Secrets of {} KiB ({:+.1} MiB){}",
        without as f64 / 1024.0,
        with as f64 / 1024.0,
        SECRET_BYTES / 1024,
        (with as f64 - without as f64) / 1024.0,
        other_build
            .as_ref()
            .map(|b| format!(" [build {}]", b.display()))
            .unwrap_or_default()
    );
    if other_build.is_none() {
        assert!(
            grew <= BUDGET_KIB,
            "the operator grew by {grew} KiB with unrelated Secrets (budget {BUDGET_KIB} KiB)"
        );
    }
}
