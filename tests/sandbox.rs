//! The real binary's `sandbox --exit-after-demo`, once per scenario: it must exit 0 within the
//! deadline and print what a newcomer is promised (where things are, the live GitLab
//! statuses, the approve command).
#![cfg(feature = "sandbox")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Well under a minute each, even on a loaded 2-core machine (the approval scenario waits for
/// the operator's first approval poll, 10 s after the deployment was created).
const DEADLINE: Duration = Duration::from_secs(90);

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

async fn sandbox(scenario: &str) -> Run {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_gitlab-deployment-operator"))
        .args([
            "sandbox",
            "--exit-after-demo",
            "--scenario",
            scenario,
            "--rollout-step-ms",
            "250",
            "--approve-after",
            "1",
            "--step-timeout",
            "45",
        ])
        .env_remove("KUBECONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!("sandbox --scenario {scenario} still running after {DEADLINE:?}")
        })
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

impl Run {
    fn assert_ok(&self, scenario: &str) {
        assert_eq!(
            self.code,
            Some(0),
            "sandbox --scenario {scenario} failed after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.took,
            self.stdout,
            self.stderr
        );
        // The start-up progress, the banner, and the verdict.
        self.has("starting the Kubernetes API emulator");
        self.has("starting the GitLab emulator");
        self.has("installing the CRDs");
        self.has("operator running");
        self.has("get gld");
        self.has("describe gld web-production");
        self.has("curl -s -H 'PRIVATE-TOKEN: glpat-emulator-root' http://127.0.0.1:");
        self.has("/api/v4/projects/1/deployments");
        self.has(&format!("demo `{scenario}` succeeded"));
        // Revision A, live: staging reaches success (production too, unless it was rejected).
        self.line_with(&["staging", "GitLab deployment", ": success"]);
        if scenario != "rejection" {
            self.line_with(&["production", "GitLab deployment", ": success"]);
        }
    }

    fn has(&self, text: &str) {
        assert!(
            self.stdout.contains(text),
            "output lacks {text:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
    }

    fn line_with(&self, parts: &[&str]) {
        assert!(
            self.stdout
                .lines()
                .any(|l| parts.iter().all(|p| l.contains(p))),
            "no line with all of {parts:?}\n--- stdout\n{}",
            self.stdout
        );
    }
}

#[tokio::test]
async fn default_scenario_reports_success_and_shows_how_to_approve() {
    let run = sandbox("default").await;
    run.assert_ok("default");
    run.line_with(&["production", "waiting for approval (0/1 approvals)"]);
    run.has("GITLAB_TOKEN=glpat-emulator-approver gitlab-deployment-operator deployments --project demo/app approve ");
    run.has("GITLAB_URL=http://127.0.0.1:");
}

#[tokio::test]
async fn failure_scenario_reports_failed() {
    let run = sandbox("failure").await;
    run.assert_ok("failure");
    run.line_with(&["staging", "GitLab deployment", ": failed"]);
    run.line_with(&["production", "GitLab deployment", ": failed"]);
}

#[tokio::test]
async fn supersede_scenario_cancels_the_first_and_succeeds_the_second() {
    let run = sandbox("supersede").await;
    run.assert_ok("supersede");
    run.line_with(&["staging", "GitLab deployment", ": running"]);
    run.line_with(&["staging", "GitLab deployment", ": canceled"]);
    run.line_with(&["production", "GitLab deployment", ": canceled"]);
}

#[tokio::test]
async fn approval_scenario_approves_as_the_approver() {
    let run = sandbox("approval").await;
    run.assert_ok("approval");
    run.has("approved GitLab deployment");
    run.has("nothing runs in production yet");
    run.line_with(&["production", "approved (1/1)"]);
    run.line_with(&["production", "GitLab deployment", ": success"]);
}

#[tokio::test]
async fn rejection_scenario_fails_the_deployment_and_never_rolls_out() {
    let run = sandbox("rejection").await;
    run.assert_ok("rejection");
    run.has("rejected GitLab deployment");
    run.has("was never applied");
    run.line_with(&["production", "rejected"]);
    run.line_with(&["production", "GitLab deployment", ": failed"]);
}

#[tokio::test]
async fn a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_gitlab-deployment-operator"))
        .args(["sandbox", "--exit-after-demo", "--gitlab-port", &port])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(DEADLINE, out).await.unwrap().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot start the GitLab emulator on 127.0.0.1:"),
        "{stderr}"
    );
}

/// Interactive mode: after the demo the sandbox keeps serving, the real `kubectl` reads the
/// GitlabDeployments through the printed kubeconfig (HTTPS with the test CA, bearer token), and
/// Ctrl-C (SIGINT) stops it cleanly with exit 0.
#[tokio::test]
async fn real_kubectl_reads_the_running_sandbox_and_ctrl_c_stops_it() {
    let kubectl = std::path::Path::new("/usr/bin/kubectl");
    if !kubectl.exists() {
        eprintln!("skipped: no kubectl at {}", kubectl.display());
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_gitlab-deployment-operator"))
        .args(["sandbox", "--rollout-step-ms", "250"])
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut kubeconfig = None;
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(path) = line.trim().strip_prefix("kubeconfig") {
                kubeconfig = Some(path.trim().to_owned());
            }
            let done = line.contains("keeps running");
            seen.push(line);
            if done {
                return;
            }
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .unwrap_or_else(|_| panic!("the demo did not finish:\n{}", seen.join("\n")));
    let kubeconfig = kubeconfig.expect("the banner names the kubeconfig");

    let home = std::env::temp_dir().join(format!("sandbox-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let out = Command::new(kubectl)
        .args(["--kubeconfig", &kubeconfig, "--cache-dir"])
        .arg(home.join("cache"))
        .args(["get", "gld"])
        .env("HOME", &home)
        .env_remove("KUBECONFIG")
        .output();
    let out = tokio::time::timeout(DEADLINE, out).await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&home);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl get gld failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header = stdout.lines().next().unwrap_or_default();
    for column in [
        "NAME",
        "ENVIRONMENT",
        "SHA",
        "GITLAB",
        "ROLLOUT",
        "APPROVALS",
        "AGE",
    ] {
        assert!(header.contains(column), "{stdout}");
    }
    let production = stdout
        .lines()
        .find(|l| l.starts_with("web-production"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        production.contains("success") && production.contains("0/1"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("web-staging") && l.contains("success")),
        "{stdout}"
    );

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the sandbox stops on Ctrl-C")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let mut rest = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push(line);
    }
    assert!(rest.iter().any(|l| l.contains("stopping")), "{rest:?}");
    assert!(
        !std::path::Path::new(&kubeconfig).exists(),
        "the kubeconfig is removed on exit"
    );
}
