//! The `deployments` subcommand: the real binary against the GitLab emulator, for each
//! subcommand, success and error paths, exit codes, and the token never printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

use gitlab_emulator::{
    ApprovalRuleSpec, DeployAccess, Edition, Fault, GitlabEmulator, MergeRequestSpec, Role, Scope,
    SeededProject,
};

type EmuEndpoint = gitlab_emulator::Endpoint;

const SECRET: &str = "glpat-CLISECRET-h2";

struct Cli {
    gl: GitlabEmulator,
    project: SeededProject,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

fn finish(out: Output) -> Run {
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains("CLISECRET"), "token printed: {text}");
    }
    run
}

fn setup() -> Cli {
    let gl = GitlabEmulator::start().expect("emulator starts");
    let h = gl.handle();
    let project = h.seed_project("team/app", "main", 4);
    h.add_personal_access_token(project.maintainer_id, SECRET, &[Scope::Api]);
    Cli { gl, project }
}

impl Cli {
    /// The binary with a clean environment: only what the test passes.
    fn command(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitlab-deployment-operator"));
        cmd.env_clear().arg("deployments").args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        finish(cmd.output().expect("binary runs"))
    }

    /// With GITLAB_URL, GITLAB_TOKEN and `--project team/app`.
    fn run(&self, args: &[&str]) -> Run {
        let url = self.gl.base_url();
        let mut full = vec!["--project", "team/app"];
        full.extend_from_slice(args);
        self.command(&[("GITLAB_URL", &url), ("GITLAB_TOKEN", SECRET)], &full)
    }

    fn create(&self, env: &str, status: &str) -> u64 {
        let r = self.run(&[
            "-o",
            "json",
            "create",
            "--environment",
            env,
            "--sha",
            self.project.head(),
            "--ref",
            "main",
            "--status",
            status,
        ]);
        assert_eq!(r.code, 0, "create failed: {}", r.stderr);
        r.json()["id"].as_u64().unwrap()
    }
}

#[test]
fn create_get_update_list_delete() {
    let cli = setup();
    let h = cli.gl.handle();

    // create: JSON for scripts, the typed entity.
    let r = cli.run(&[
        "-o",
        "json",
        "create",
        "--environment",
        "production",
        "--sha",
        cli.project.head(),
        "--ref",
        "main",
        "--tag=false",
        "--status",
        "running",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let created = r.json();
    assert_eq!(created["status"], "running");
    assert_eq!(created["environment"]["name"], "production");
    let id = created["id"].as_u64().unwrap();
    assert_eq!(h.deployment(id).unwrap().status, "running");

    // get: a key/value block by default.
    let r = cli.run(&["get", &id.to_string()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("status"), "{}", r.stdout);
    assert!(r.stdout.contains("running"));
    assert!(r.stdout.contains("production"));
    assert!(r.stdout.contains(cli.project.head()));

    // update: running → success; again → InvalidTransition (exit 7) with GitLab's words.
    let r = cli.run(&["update", &id.to_string(), "--status", "success"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("success"));
    let r = cli.run(&["update", &id.to_string(), "--status", "success"]);
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(r.stderr.contains("\"succeed\""), "{}", r.stderr);

    // list: an aligned table with a header.
    let second = cli.create("staging", "failed");
    let r = cli.run(&["list"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("ID"), "{}", r.stdout);
    assert!(lines[0].contains("ENVIRONMENT") && lines[0].contains("STATUS"));
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    let status_col = lines[0].find("STATUS").unwrap();
    assert!(
        lines[1][status_col..].starts_with("success"),
        "aligned: {}",
        r.stdout
    );
    assert!(
        lines[2][status_col..].starts_with("failed"),
        "aligned: {}",
        r.stdout
    );

    // list with filters, as JSON.
    let r = cli.run(&[
        "-o",
        "json",
        "list",
        "--environment",
        "staging",
        "--status",
        "failed",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let items = r.json();
    assert_eq!(items.as_array().unwrap().len(), 1);
    assert_eq!(items[0]["id"].as_u64(), Some(second));

    // A finder-rule violation is a Validation error (exit 6) with GitLab's text.
    let r = cli.run(&["list", "--updated-after", "2024-01-01"]);
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("`updated_at` filter requires `updated_at` sort"),
        "{}",
        r.stderr
    );

    // delete: the current deployment is refused (exit 8); the failed one goes.
    let r = cli.run(&["delete", &id.to_string()]);
    assert_eq!(r.code, 8, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("Deployment currently deployed to environment"),
        "{}",
        r.stderr
    );
    let r = cli.run(&["delete", &second.to_string()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), format!("deleted deployment {second}"));
    assert!(h.deployment(second).is_none());

    // get of the deleted one: NotFound (exit 5).
    let r = cli.run(&["get", &second.to_string()]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("404 Not found"), "{}", r.stderr);
}

#[test]
fn list_pages_and_all() {
    let cli = setup();
    let h = cli.gl.handle();
    for _ in 0..5 {
        cli.create("review", "running");
    }
    h.clear_requests();
    let r = cli.run(&["list", "--per-page", "2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 3, "header + 2 rows: {}", r.stdout);
    assert!(
        r.stderr.contains("--page 2"),
        "footer tells how to go on: {}",
        r.stderr
    );

    let r = cli.run(&["list", "--per-page", "2", "--page", "3"]);
    assert_eq!(r.stdout.lines().count(), 2, "{}", r.stdout);
    assert!(!r.stderr.contains("--page"), "{}", r.stderr);

    h.clear_requests();
    let r = cli.run(&["-o", "json", "list", "--per-page", "2", "--all"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json().as_array().unwrap().len(), 5);
    assert_eq!(h.count(EmuEndpoint::ListDeployments), 3);
}

#[test]
fn merge_requests_and_approve() {
    let cli = setup();
    let h = cli.gl.handle();
    h.add_merge_request(
        cli.project.id,
        MergeRequestSpec::merged(
            "Faster rollouts",
            cli.project.maintainer_id,
            "main",
            cli.project.head(),
        ),
    );
    let id = cli.create("production", "success");
    let r = cli.run(&["merge-requests", &id.to_string()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.lines().next().unwrap().starts_with("MR"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("Faster rollouts"), "{}", r.stdout);
    assert!(r.stdout.contains("merged"));
    let r = cli.run(&[
        "-o",
        "json",
        "merge-requests",
        &id.to_string(),
        "--state",
        "merged",
        "--all",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["title"], "Faster rollouts");

    // Approve on a protected environment with one Maintainer approval rule.
    let (approver_id, approver_token) = h.add_user_with_token("approver");
    h.add_member(cli.project.id, approver_id, Role::Maintainer);
    h.protect_environment(
        cli.project.id,
        "production",
        vec![DeployAccess::Role(Role::Maintainer)],
        vec![ApprovalRuleSpec::role(Role::Maintainer, 1)],
    );
    let pending = cli.create("production", "running");
    let r = cli.run(&["get", &pending.to_string()]);
    assert!(r.stdout.contains("pending approvals"), "{}", r.stdout);
    let url = cli.gl.base_url();
    let as_approver = |args: &[&str]| {
        let mut full = vec!["-p", "team/app"];
        full.extend_from_slice(args);
        cli.command(
            &[("GITLAB_URL", &url), ("GITLAB_TOKEN", &approver_token)],
            &full,
        )
    };
    let r = as_approver(&["approve", &pending.to_string(), "--comment", "go"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("approved by approver"), "{}", r.stdout);
    assert_eq!(h.deployment(pending).unwrap().pending_approval_count, 0);

    // Not protected → NotAllowed (8) with GitLab's message.
    let staging = cli.create("staging", "running");
    let r = as_approver(&["approve", &staging.to_string(), "--status", "rejected"]);
    assert_eq!(r.code, 8, "{}", r.stderr);
    assert!(
        r.stderr.contains("This environment is not protected."),
        "{}",
        r.stderr
    );

    // CE has no approval route → NotFound (5).
    h.set_edition(Edition::Ce);
    let r = as_approver(&["approve", &pending.to_string()]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("EE"), "{}", r.stderr);
}

#[test]
fn error_exit_codes() {
    let cli = setup();
    let h = cli.gl.handle();
    let url = cli.gl.base_url();
    let id = cli.create("production", "running");
    let ids = id.to_string();

    // Usage (2): no token, no URL, no project, bad flag value.
    let r = cli.command(&[("GITLAB_URL", &url)], &["-p", "1", "list"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("GITLAB_TOKEN"), "{}", r.stderr);
    let r = cli.command(&[("GITLAB_TOKEN", SECRET)], &["-p", "1", "list"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = cli.command(&[("GITLAB_URL", &url), ("GITLAB_TOKEN", SECRET)], &["list"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = cli.run(&["update", &ids, "--status", "created"]);
    assert_eq!(
        r.code, 2,
        "clap rejects a status the API cannot set: {}",
        r.stderr
    );

    // Unauthorized (3): unknown token via --token; the token is not echoed (checked in finish).
    let r = cli.command(
        &[("GITLAB_URL", &url)],
        &[
            "--token",
            "glpat-CLISECRET-wrong",
            "-p",
            "team/app",
            "get",
            &ids,
        ],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("401"), "{}", r.stderr);

    // Forbidden (4): a Reporter cannot create.
    let (reporter_id, reporter_token) = h.add_user_with_token("reporter");
    h.add_member(cli.project.id, reporter_id, Role::Reporter);
    let r = cli.command(
        &[("GITLAB_URL", &url), ("GITLAB_TOKEN", &reporter_token)],
        &[
            "-p",
            "team/app",
            "create",
            "--environment",
            "x",
            "--sha",
            cli.project.head(),
            "--ref",
            "main",
            "--status",
            "running",
        ],
    );
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("403 Forbidden"), "{}", r.stderr);

    // NotFound (5): unknown project.
    let r = cli.command(
        &[("GITLAB_URL", &url), ("GITLAB_TOKEN", SECRET)],
        &["-p", "team/none", "list"],
    );
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("404 Project Not Found"), "{}", r.stderr);

    // Validation (6): unknown sha, GitLab's field message.
    let r = cli.run(&[
        "create",
        "--environment",
        "production",
        "--sha",
        "deadbeef",
        "--ref",
        "main",
        "--status",
        "running",
    ]);
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(
        r.stderr.contains("sha: The commit does not exist"),
        "{}",
        r.stderr
    );

    // NotAllowed (8): delete a running deployment.
    let r = cli.run(&["delete", &ids]);
    assert_eq!(r.code, 8, "{}", r.stderr);
    assert!(
        r.stderr.contains("Cannot destroy running deployment"),
        "{}",
        r.stderr
    );

    // RateLimited (10): POST is never retried.
    h.inject_fault(Fault::rate_limited(30).on(EmuEndpoint::CreateDeployment));
    let r = cli.run(&[
        "create",
        "--environment",
        "production",
        "--sha",
        cli.project.head(),
        "--ref",
        "main",
        "--status",
        "running",
    ]);
    assert_eq!(r.code, 10, "{}", r.stderr);
    assert!(r.stderr.contains("429"), "{}", r.stderr);

    // ServerError (11): sticky 500 with --no-retry → one request.
    h.clear_requests();
    h.inject_fault(Fault::status(500).on(EmuEndpoint::GetDeployment).sticky());
    let r = cli.run(&["--no-retry", "get", &ids]);
    assert_eq!(r.code, 11, "{}", r.stderr);
    assert_eq!(h.count(EmuEndpoint::GetDeployment), 1);
    h.clear_faults();

    // Timeout (12).
    h.inject_fault(Fault::delay(std::time::Duration::from_secs(4)).on(EmuEndpoint::GetDeployment));
    let r = cli.run(&["--no-retry", "--timeout", "1", "get", &ids]);
    assert_eq!(r.code, 12, "{}", r.stderr);
    h.clear_faults();

    // Internal (1): malformed JSON.
    h.inject_fault(Fault::malformed_json().on(EmuEndpoint::GetDeployment));
    let r = cli.run(&["get", &ids]);
    assert_eq!(r.code, 1, "{}", r.stderr);

    // TransportError (13): nothing listens.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = cli.command(
        &[
            ("GITLAB_URL", &format!("http://127.0.0.1:{port}")),
            ("GITLAB_TOKEN", SECRET),
        ],
        &["--no-retry", "-p", "1", "get", "1"],
    );
    assert_eq!(r.code, 13, "{}", r.stderr);
}

#[test]
fn gitlab_ci_defaults() {
    let cli = setup();
    let h = cli.gl.handle();
    h.add_job_token("job-CLISECRET", cli.project.id, cli.project.maintainer_id);
    let id = cli.create("production", "running");
    let project_id = cli.project.id.to_string();
    let url = cli.gl.api_url(); // with /api/v4: accepted too
    let r = cli.command(
        &[
            ("CI_SERVER_URL", &url),
            ("CI_JOB_TOKEN", "job-CLISECRET"),
            ("CI_PROJECT_ID", &project_id),
        ],
        &[
            "-o",
            "json",
            "update",
            &id.to_string(),
            "--status",
            "canceled",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["status"], "canceled");
    assert!(
        h.requests()
            .iter()
            .all(|rec| !rec.path.contains("CLISECRET"))
    );
}

/// `--project .` or `..` (or their percent-encoded forms, or a dot-only part of a path) would
/// leave `projects/:id` once the URL is resolved (`list --project ..` → `GET /api/v4/deployments`,
/// `delete --project .. 1` → `DELETE /api/v4/deployments/1`, with the token): refused as a bad
/// argument before any request.
#[test]
fn dot_only_projects_are_refused_before_any_request() {
    let cli = setup();
    let h = cli.gl.handle();
    let id = cli.create("staging", "success");
    h.clear_requests();
    let url = cli.gl.base_url();
    for project in [".", "..", "%2e%2E", "...", "team/..", "../team", "./app"] {
        for args in [
            vec!["list"],
            vec!["get", "1"],
            vec!["update", "1", "--status", "canceled"],
            vec!["delete", "1"],
        ] {
            let mut full = vec!["--project", project];
            full.extend_from_slice(&args);
            let r = cli.command(&[("GITLAB_URL", &url), ("GITLAB_TOKEN", SECRET)], &full);
            assert_eq!(r.code, 2, "{project:?} {args:?}: {}", r.stderr);
            assert!(
                r.stderr.contains("dots only") && r.stderr.contains("--project"),
                "{project:?} {args:?}: {}",
                r.stderr
            );
        }
    }
    assert!(h.requests().is_empty(), "sent: {:?}", h.requests());
    // The same command line with a real project still works.
    let r = cli.run(&["-o", "json", "get", &id.to_string()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn hooks_create_list_delete() {
    let cli = setup();
    let h = cli.gl.handle();
    h.set_allow_local_webhooks(true);
    let url = cli.gl.base_url();
    let env = [
        ("GITLAB_URL", url.as_str()),
        ("GITLAB_TOKEN", SECRET),
        ("GITLAB_WEBHOOK_TOKEN", "hook-CLISECRET"),
    ];
    let created = cli.command(
        &env,
        &[
            "--project",
            "team/app",
            "-o",
            "json",
            "hooks",
            "create",
            "--hook-url",
            "http://127.0.0.1:9443/hooks/gitlab",
        ],
    );
    assert_eq!(created.code, 0, "{}", created.stderr);
    let hook = created.json()[0].clone();
    assert_eq!(hook["deployment_events"], true);
    assert_eq!(hook["push_events"], false);
    let stored = h.hooks();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].token.as_deref(), Some("hook-CLISECRET"));

    // Without a secret token the hook is not created: the receiver would refuse its hooks.
    let refused = cli.command(
        &env[..2],
        &[
            "--project",
            "team/app",
            "hooks",
            "create",
            "--hook-url",
            "http://127.0.0.1:9443/hooks/gitlab",
        ],
    );
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("GITLAB_WEBHOOK_TOKEN"),
        "{}",
        refused.stderr
    );
    assert_eq!(h.hooks().len(), 1);

    let listed = cli.run(&["hooks", "list"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed.stdout.contains("http://127.0.0.1:9443/hooks/gitlab"),
        "{}",
        listed.stdout
    );
    let id = hook["id"].as_u64().unwrap().to_string();
    let deleted = cli.run(&["hooks", "delete", &id]);
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    assert!(h.hooks().is_empty());
    // GitLab's hooks routes are Maintainer-only; a missing hook is 404.
    assert_eq!(cli.run(&["hooks", "delete", &id]).code, 5);
}
