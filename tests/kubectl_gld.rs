//! What a person sees: the real `kubectl get gld` against the kube emulator, while the
//! operator reports a production rollout that waits for approval and is then approved.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::process::Command;

use harness::{Env, NS, gitlab_status};
use serde_json::json;

/// Run kubectl without blocking the runtime that serves the in-process emulators.
async fn kubectl(env: &Env, cache: &std::path::Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(env.kubeconfig_path())
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .await
        .expect("kubectl runs (it is installed on these machines)");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Header and the row of `name`, split on runs of spaces.
fn row(table: &str, name: &str) -> (Vec<String>, Vec<String>) {
    let mut lines = table.lines();
    let header = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let row = lines
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    (header, row)
}

#[tokio::test]
async fn kubectl_get_gld_shows_the_rollout_and_its_approvals() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").is_err(),
            "kubectl must be installed in CI"
        );
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let env = Env::start_tls().await;
    let cache = harness::tempdir("kubectl-cache");
    let token = env.protect_production();
    env.apply_workload(
        "web",
        "registry.example/app:1",
        json!({"emulator.gitlab-operator.io/rollout-step": "300ms"}),
    )
    .await;
    let op = env.start_operator();
    env.apply_gld("web-prod", env.fixed_spec("production", env.project.head()))
        .await;
    let running = env
        .wait_for("web-prod", "running", |gd| {
            gitlab_status(gd).as_deref() == Some("running")
        })
        .await;
    let sha7 = &env.project.head()[..7];
    let table = kubectl(&env, cache.path(), &["get", "gld", "-n", NS]).await;
    let (header, cells) = row(&table, "web-prod");
    assert_eq!(
        header,
        [
            "NAME",
            "ENVIRONMENT",
            "SHA",
            "GITLAB",
            "ROLLOUT",
            "APPROVALS",
            "AGE"
        ],
        "{table}"
    );
    assert_eq!(&cells[1..4], ["production", sha7, "running"], "{table}");
    let _ = running;

    let pending = env
        .wait_for("web-prod", "success, approval pending", |gd| {
            gitlab_status(gd).as_deref() == Some("success")
                && gd.status.as_ref().unwrap().approvals_summary.as_deref() == Some("0/1")
        })
        .await;
    let table = kubectl(&env, cache.path(), &["get", "gld", "-n", NS]).await;
    let (_, cells) = row(&table, "web-prod");
    assert_eq!(
        &cells[1..6],
        ["production", sha7, "success", "Succeeded", "0/1"],
        "{table}"
    );

    // The approver approves in GitLab; a person asks the operator to look again.
    let id = pending.status.unwrap().deployment.unwrap().id;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gitlab-deployment-operator"))
        .args([
            "deployments",
            "approve",
            "--project",
            &env.project.id.to_string(),
        ])
        .arg(id.to_string())
        .args(["--status", "approved"])
        .env("GITLAB_URL", env.gitlab.base_url())
        .env("GITLAB_TOKEN", &token)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "approve: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    kubectl(
        &env,
        cache.path(),
        &[
            "annotate",
            "gld",
            "-n",
            NS,
            "web-prod",
            "gitlab-operator.io/refresh=1",
            "--overwrite",
        ],
    )
    .await;
    env.wait_for("web-prod", "approved", |gd| {
        gd.status.as_ref().unwrap().approvals_summary.as_deref() == Some("1/1")
    })
    .await;
    let table = kubectl(&env, cache.path(), &["get", "gld", "-n", NS, "-o", "wide"]).await;
    let (header, cells) = row(&table, "web-prod");
    assert_eq!(
        &header[..10],
        [
            "NAME",
            "ENVIRONMENT",
            "SHA",
            "GITLAB",
            "ROLLOUT",
            "APPROVALS",
            "AGE",
            "DEPLOYMENT",
            "REF",
            "MESSAGE"
        ],
        "{table}"
    );
    assert_eq!(cells[5], "1/1", "{table}");
    assert_eq!(cells[7], id.to_string(), "{table}");
    assert_eq!(cells[8], "main", "{table}");

    let described = kubectl(
        &env,
        cache.path(),
        &["describe", "gld", "-n", NS, "web-prod"],
    )
    .await;
    assert!(described.contains("DeploymentSucceeded"), "{described}");
    op.stop().await;
}
