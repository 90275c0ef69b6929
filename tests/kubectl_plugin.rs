//! `kubectl gld …` as an approver runs it: the real kubectl finds the plugin on `PATH` (the
//! operator binary under the name `kubectl-gld`), reads the resource from the kube emulator
//! and talks to the GitLab emulator with the approver's own token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::path::PathBuf;
use std::process::Command;

use gitlab_deployment_operator::api::deployment::ApprovalState;
use harness::{Env, NS, gitlab_status};
use serde_json::json;

/// A directory holding `kubectl-gld`, a link to the operator binary.
fn plugin_dir() -> harness::TempDir {
    let dir = harness::tempdir("kubectl-gld");
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_gitlab-deployment-operator"),
        dir.path().join("kubectl-gld"),
    )
    .unwrap();
    dir
}

struct Kubectl<'a> {
    env: &'a Env,
    plugins: PathBuf,
    cache: PathBuf,
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Kubectl<'_> {
    /// Run the real kubectl with the plugin directory first on `PATH`, `KUBECONFIG` pointing
    /// at the emulator, and `vars` in the environment (no GITLAB_* from the caller's shell).
    async fn run(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let path = format!(
            "{}:{}",
            self.plugins.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.args(args)
            .env("PATH", path)
            .env("KUBECONFIG", self.env.emulator().kubeconfig_path())
            .env("KUBECACHEDIR", &self.cache)
            .env_remove("GITLAB_URL")
            .env_remove("GITLAB_TOKEN")
            .env_remove("GITLAB_OAUTH_TOKEN")
            .env_remove("CI_JOB_TOKEN");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().await.expect("kubectl runs");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn ok(&self, args: &[&str], vars: &[(&str, &str)]) -> String {
        let out = self.run(args, vars).await;
        assert_eq!(
            out.code, 0,
            "kubectl {args:?}: {}\n{}",
            out.stderr, out.stdout
        );
        out.stdout
    }
}

fn kubectl_installed() -> bool {
    if Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok()
    {
        return true;
    }
    assert!(
        std::env::var("CI").is_err(),
        "kubectl must be installed in CI"
    );
    eprintln!("kubectl not installed; skipping");
    false
}

async fn annotation(env: &Env, name: &str) -> Option<String> {
    env.glds()
        .get(name)
        .await
        .unwrap()
        .metadata
        .annotations
        .and_then(|a| a.get("gitlab-operator.io/refresh").cloned())
}

#[tokio::test]
async fn kubectl_gld_status_open_approve_reject_refresh_end_to_end() {
    if !kubectl_installed() {
        return;
    }
    let env = Env::start_tls().await;
    let plugins = plugin_dir();
    let cache = harness::tempdir("kubectl-cache");
    let k = Kubectl {
        env: &env,
        plugins: plugins.path().to_owned(),
        cache: cache.path().join("cache"),
    };
    // Discovery: kubectl lists the plugin found on PATH.
    let list = k.ok(&["plugin", "list"], &[]).await;
    assert!(list.contains("kubectl-gld"), "{list}");

    let approver = env.protect_production();
    {
        use gitlab_emulator::{ApprovalRuleSpec, DeployAccess, Role};
        env.gitlab.handle().protect_environment(
            env.project.id,
            "canary",
            vec![DeployAccess::Role(Role::Maintainer)],
            vec![ApprovalRuleSpec::role(Role::Developer, 1)],
        );
    }
    env.apply_workload("web", "registry.example/app:1", json!({}))
        .await;
    let op = env.start_operator();
    let sha = env.project.head().to_owned();
    env.apply_gld("web-prod", env.fixed_spec("production", &sha))
        .await;
    env.apply_gld("web-canary", env.fixed_spec("canary", &sha))
        .await;
    for name in ["web-prod", "web-canary"] {
        env.wait_for(name, "success, approval pending", |gd| {
            gitlab_status(gd).as_deref() == Some("success")
                && gd.status.as_ref().unwrap().approvals_summary.as_deref() == Some("0/1")
        })
        .await;
    }
    let as_approver: &[(&str, &str)] = &[("GITLAB_TOKEN", &approver)];
    let insecure = "--allow-insecure-http";

    // status: the cluster's view, GitLab's view (read with the approver's token), approvals.
    let status = k
        .ok(
            &["gld", "status", "web-prod", "-n", NS, insecure],
            as_approver,
        )
        .await;
    let gd = env.glds().get("web-prod").await.unwrap();
    let record = gd.status.as_ref().unwrap().deployment.clone().unwrap();
    for want in [
        format!("{NS}/web-prod"),
        "production".to_owned(),
        format!("{sha} main (success), GitLab deployment {}", record.id),
        "Pending 0/1".to_owned(),
        "GitLab:".to_owned(),
        "pending approvals  1".to_owned(),
    ] {
        assert!(status.contains(&want), "no {want:?} in\n{status}");
    }
    let json_status: serde_json::Value = serde_json::from_str(
        &k.ok(
            &[
                "gld", "status", "web-prod", "-n", NS, insecure, "-o", "json",
            ],
            as_approver,
        )
        .await,
    )
    .unwrap();
    assert_eq!(json_status["gitlab"]["id"], json!(record.id));
    assert_eq!(json_status["gitlab"]["status"], json!("success"));

    // open: the deployment's page, built from the connection's URL (no token needed).
    let url = k.ok(&["gld", "open", "web-prod", "-n", NS], &[]).await;
    assert_eq!(
        url.trim(),
        format!(
            "{}/team/app/-/environments/{}/deployments/{}",
            env.gitlab.base_url().trim_end_matches('/'),
            record.environment_id.unwrap(),
            record.iid
        )
    );

    // The token goes only where the person says, and not over plain http unless asked.
    let refused = k
        .run(&["gld", "status", "web-prod", "-n", NS], as_approver)
        .await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("plain http"), "{}", refused.stderr);
    let elsewhere = k
        .run(
            &["gld", "approve", "web-prod", "-n", NS, insecure],
            &[
                ("GITLAB_TOKEN", &approver),
                ("GITLAB_URL", "https://gitlab.example.com"),
            ],
        )
        .await;
    assert_eq!(elsewhere.code, 2, "{}", elsewhere.stderr);
    assert!(
        elsewhere.stderr.contains("not sending your token"),
        "{}",
        elsewhere.stderr
    );
    let no_token = k
        .run(&["gld", "approve", "web-prod", "-n", NS, insecure], &[])
        .await;
    assert_eq!(no_token.code, 2, "{}", no_token.stderr);
    assert!(
        no_token.stderr.contains("GITLAB_TOKEN"),
        "{}",
        no_token.stderr
    );
    let missing = k
        .run(&["gld", "status", "nope", "-n", NS, insecure], as_approver)
        .await;
    assert_eq!(missing.code, 14, "{}", missing.stderr);

    // approve: recorded in GitLab as the approver, and the operator sees it at once (the
    // plugin sets the refresh annotation; nobody runs kubectl annotate).
    let approved = k
        .ok(
            &[
                "gld",
                "approve",
                "web-prod",
                "-n",
                NS,
                insecure,
                "--comment",
                "canary is clean",
                "--kubeconfig",
                &env.emulator().kubeconfig_path().display().to_string(),
            ],
            as_approver,
        )
        .await;
    assert!(
        approved.contains(&format!("deployment {} approved by approver", record.id))
            && approved.contains("canary is clean"),
        "{approved}"
    );
    let gd = env
        .wait_for_approval("web-prod", ApprovalState::Approved)
        .await;
    let approval = gd.status.unwrap().approval.unwrap();
    assert_eq!(approval.approvals[0].user, "approver");
    assert!(annotation(&env, "web-prod").await.is_some());

    // reject, on the other resource.
    let rejected = k
        .ok(
            &[
                "gld",
                "reject",
                "web-canary",
                "-n",
                NS,
                insecure,
                "--comment",
                "no",
            ],
            as_approver,
        )
        .await;
    assert!(rejected.contains("rejected by approver"), "{rejected}");
    env.wait_for_approval("web-canary", ApprovalState::Rejected)
        .await;

    // refresh: a new annotation value each time.
    let before = annotation(&env, "web-prod").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let out = k.ok(&["gld", "refresh", "web-prod", "-n", NS], &[]).await;
    let after = annotation(&env, "web-prod").await;
    assert_ne!(before, after);
    assert!(
        out.contains(&format!("gitlab-operator.io/refresh={}", after.unwrap())),
        "{out}"
    );

    // Never the operator's token Secret: the plugin's requests, by their User-Agent.
    let plugin_requests: Vec<_> = env
        .emulator()
        .hooks()
        .requests()
        .into_iter()
        .filter(|r| r.user_agent.starts_with("kubectl-gld/"))
        .collect();
    assert!(
        plugin_requests
            .iter()
            .any(|r| r.resource == "gitlabconnections" && r.verb == "get"),
        "{plugin_requests:?}"
    );
    assert!(
        plugin_requests.iter().all(|r| r.resource != "secrets"),
        "{plugin_requests:?}"
    );
    op.stop().await;
}
