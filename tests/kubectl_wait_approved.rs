//! The CI example (examples/gitops/ci/gitlab-ci.yml) with the real kubectl, against the kube
//! emulator and the pinned upstream control plane (`both_backends!`): its script lines run under `sh` as a GitLab runner runs them, with the job's
//! variables. Its wait step ends, with success, only once `Approved=True` is written for the
//! generation the job itself applied (an approval of the previous commit does not count), and
//! fails at its timeout while approvals are pending or after a rejection, printing why.
//!
//! The operator is not running here: the test writes the statuses the operator writes (the
//! Argo CD health check's fixtures, examples/gitops/argocd/resource_customizations/…/testdata).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use harness::gitops::argocd_health_dir;
use harness::{Backend, Env};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

const OLD_SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const NEW_SHA: &str = "89abcdef0123456789abcdef0123456789abcdef";
const JOB: &str = "deploy-production";

struct Pipeline {
    variables: Vec<(String, String)>,
    /// The job's script lines before the wait step, the wait step.
    before_wait: Vec<String>,
    wait: String,
}

fn pipeline() -> Pipeline {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gitops/ci/gitlab-ci.yml");
    let ci: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let variables = ci["variables"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let script: Vec<String> = ci[JOB]["script"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    let at = script
        .iter()
        .position(|s| s.contains("wait --for=condition=Approved"))
        .expect("the job waits for Approved");
    // The workload is touched only after the wait.
    for line in &script[..at] {
        assert!(!line.contains("deployment/web"), "before the wait: {line}");
    }
    assert!(
        script[at + 1..]
            .iter()
            .any(|l| l.contains("deployment/web"))
    );
    Pipeline {
        variables,
        before_wait: script[..at].to_vec(),
        wait: script[at].clone(),
    }
}

/// `sh -c line` with the job's variables, GitLab's predefined ones for `sha`, and kubectl
/// pointed at the test's cluster.
fn job_shell(
    env: &Env,
    home: &Path,
    p: &Pipeline,
    sha: &str,
    timeout: &str,
    line: &str,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c").arg(line);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("KUBECONFIG", env.kubeconfig_path());
    for (k, v) in &p.variables {
        cmd.env(k, v);
    }
    cmd.env("KUBE_NAMESPACE", &env.ns)
        .env("APPROVAL_TIMEOUT", timeout)
        .env("CI_PROJECT_PATH", &env.project.path)
        .env("CI_COMMIT_REF_NAME", "main")
        .env("CI_COMMIT_SHA", sha)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Run the job's lines before the wait for commit `sha` (what a pipeline of that commit does
/// first); the GitlabDeployment's generation afterwards.
async fn name_revision(env: &Env, home: &Path, p: &Pipeline, sha: &str) -> i64 {
    for line in &p.before_wait {
        let out = job_shell(env, home, p, sha, "1s", line)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{line}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let gld = env.glds().get(&gitlab_deployment(p)).await.unwrap();
    assert_eq!(gld.spec.sha.as_deref(), Some(sha));
    assert!(gld.spec.approval.as_ref().is_some_and(|a| a.gate));
    gld.metadata.generation.unwrap()
}

fn gitlab_deployment(p: &Pipeline) -> String {
    p.variables
        .iter()
        .find(|(k, _)| k == "GITLAB_DEPLOYMENT")
        .map(|(_, v)| v.clone())
        .unwrap()
}

/// Write the status of fixture `file` as the operator would for `generation`.
async fn write_status(env: &Env, p: &Pipeline, file: &str, generation: i64) {
    let path = argocd_health_dir().join("testdata").join(file);
    let fixture: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut status = fixture["status"].clone();
    status["observedGeneration"] = json!(generation);
    for c in status["conditions"].as_array_mut().unwrap() {
        c["observedGeneration"] = json!(generation);
    }
    env.glds()
        .patch_status(
            &gitlab_deployment(p),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .unwrap();
}

fn kubectl_installed() -> bool {
    if std::process::Command::new("kubectl")
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

/// The emulator serves TLS here: kubectl sends its bearer token only over TLS.
async fn start(backend: Backend) -> Env {
    match backend {
        Backend::Emulator => Env::start_tls().await,
        Backend::Real => Env::start_on(Backend::Real).await,
    }
}

async fn the_wait_step_ends_only_once_this_commit_is_approved(backend: Backend) {
    if !kubectl_installed() {
        return;
    }
    let env = start(backend).await;
    let home = harness::tempdir("kubectl-home");
    let p = pipeline();
    // The previous commit's pipeline: approved, for its generation.
    let old = name_revision(&env, home.path(), &p, OLD_SHA).await;
    write_status(&env, &p, "gate-approved.yaml", old).await;
    // This commit's pipeline names its revision; the status still shows the old approval.
    let new = name_revision(&env, home.path(), &p, NEW_SHA).await;
    assert!(new > old);
    let mut wait = job_shell(&env, home.path(), &p, NEW_SHA, "60s", &p.wait)
        .spawn()
        .unwrap();
    let still_waiting = |wait: &mut tokio::process::Child, why: &str| {
        assert!(
            wait.try_wait().unwrap().is_none(),
            "the wait step ended {why}"
        );
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    still_waiting(&mut wait, "on the previous commit's approval");
    write_status(&env, &p, "gate-pending.yaml", new).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    still_waiting(&mut wait, "while approvals are pending");
    write_status(&env, &p, "gate-approved.yaml", new).await;
    let out = tokio::time::timeout(Duration::from_secs(20), wait.wait_with_output())
        .await
        .expect("the wait step ends once approved")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("condition met"), "{stdout}");
}

async fn the_wait_step_fails_at_its_timeout_while_pending_or_rejected_and_says_why(
    backend: Backend,
) {
    if !kubectl_installed() {
        return;
    }
    let env = start(backend).await;
    let home = harness::tempdir("kubectl-home");
    let p = pipeline();
    let generation = name_revision(&env, home.path(), &p, OLD_SHA).await;
    for (fixture, why) in [
        (
            "gate-pending.yaml",
            "1 of 2 approvals for GitLab deployment 42",
        ),
        (
            "gate-rejected.yaml",
            "rejected by bob: not during the freeze",
        ),
    ] {
        write_status(&env, &p, fixture, generation).await;
        let started = tokio::time::Instant::now();
        let out = job_shell(&env, home.path(), &p, OLD_SHA, "3s", &p.wait)
            .output()
            .await
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(1), "{fixture}: {stdout}{stderr}");
        assert!(
            started.elapsed() >= Duration::from_secs(3),
            "{fixture}: ended before its timeout"
        );
        assert!(stderr.contains("timed out"), "{fixture}: {stderr}");
        assert!(stdout.contains(why), "{fixture}: {stdout}");
    }
}

both_backends!(
    the_wait_step_ends_only_once_this_commit_is_approved,
    the_wait_step_fails_at_its_timeout_while_pending_or_rejected_and_says_why,
);
