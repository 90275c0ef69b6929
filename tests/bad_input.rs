//! Bad input, one test (or one table row of a test) per row of docs/bad-input.md: what the CRD
//! refuses, and what the controller does with input the CRD cannot catch. Every controller row
//! checks the documented condition and Event, that nothing spins (GitLab requests and
//! reconciles stay few over a quiet window), and where a fix is possible that nothing is lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use gitlab_deployment_operator::api::GitlabDeployment;
use gitlab_deployment_operator::api::names::reason;
use gitlab_emulator::{Endpoint, Fault};
use harness::{Backend, Env, Operator, TOKEN_SECRET, gitlab_status};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// helpers

const UNKNOWN_SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn spec(env: &Env, environment: &str) -> serde_json::Value {
    env.fixed_spec(environment, env.project.head())
}

/// Server-side apply that returns the API error instead of unwrapping.
async fn try_apply(env: &Env, name: &str, spec: serde_json::Value) -> Result<(), kube::Error> {
    let obj = json!({
        "apiVersion": "gitlab-operator.io/v1alpha1", "kind": "GitlabDeployment",
        "metadata": {"name": name}, "spec": spec
    });
    env.glds()
        .patch(name, &PatchParams::apply("test"), &Patch::Apply(&obj))
        .await
        .map(|_| ())
}

fn condition<'a>(
    gd: &'a GitlabDeployment,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    gd.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

fn has_condition(type_: &'static str, reason: &'static str) -> impl Fn(&GitlabDeployment) -> bool {
    move |gd| condition(gd, type_).is_some_and(|c| c.reason == reason)
}

fn ready_false_with(reason: &'static str) -> impl Fn(&GitlabDeployment) -> bool {
    move |gd| {
        gd.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == reason)
        })
    }
}

fn is(status: &'static str) -> impl Fn(&GitlabDeployment) -> bool {
    move |gd| gitlab_status(gd).as_deref() == Some(status)
}

fn reconciles(op: &Operator) -> u64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &op.telemetry.registry).unwrap();
    text.lines()
        .filter(|l| l.starts_with("gitlab_operator_reconciles_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn gitlab_requests(env: &Env) -> u64 {
    env.gitlab.handle().counters().values().sum()
}

/// Over `window`, GitLab sees at most `max_gitlab` requests and the operator runs at most
/// `max_reconciles` reconciles: a stalled or backing-off resource does not spin.
async fn assert_quiet(
    env: &Env,
    op: &Operator,
    window: Duration,
    max_gitlab: u64,
    max_reconciles: u64,
    what: &str,
) {
    // Let the burst of the change itself pass (status write, Events, watch echoes) before the
    // window; the window is the assertion.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (g0, r0) = (gitlab_requests(env), reconciles(op));
    tokio::time::sleep(window).await;
    let (g1, r1) = (gitlab_requests(env), reconciles(op));
    eprintln!(
        "{what}: {} GitLab requests, {} reconciles in {window:?}",
        g1 - g0,
        r1 - r0
    );
    assert!(
        g1 - g0 <= max_gitlab,
        "{what}: {} GitLab requests in {window:?} (at most {max_gitlab})",
        g1 - g0
    );
    assert!(
        r1 - r0 <= max_reconciles,
        "{what}: {} reconciles in {window:?} (at most {max_reconciles})",
        r1 - r0
    );
}

async fn wait_rolled_out(env: &Env, name: &str) {
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    let done = |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref())
            .is_some_and(|s| s.updated_replicas == Some(2) && s.available_replicas == Some(2))
    };
    tokio::time::timeout(
        Duration::from_secs(20),
        kube::runtime::wait::await_condition(api, name, done),
    )
    .await
    .expect("the workload rolls out")
    .unwrap();
}

async fn put_secret(env: &Env, name: &str, data: serde_json::Value) {
    let api: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
    api.patch(
        name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(&secret),
    )
    .await
    .unwrap();
}

async fn connection(env: &Env, name: &str, url: &str, secret: &str, key: &str) {
    let api: Api<gitlab_deployment_operator::api::GitlabConnection> =
        Api::namespaced(env.client.clone(), &env.ns);
    let conn = serde_json::from_value(json!({
        "apiVersion": "gitlab-operator.io/v1alpha1", "kind": "GitlabConnection",
        "metadata": {"name": name},
        "spec": {"url": url, "tokenSecretRef": {"name": secret, "key": key}, "timeout": "5s"}
    }))
    .unwrap();
    api.create(&PostParams::default(), &conn).await.unwrap();
}

fn with_connection(mut spec: serde_json::Value, name: &str) -> serde_json::Value {
    spec["connectionRef"] = json!({"kind": "GitlabConnection", "name": name});
    spec
}

async fn stalled_message(env: &Env, name: &str, reason: &'static str) -> String {
    let gd = env
        .wait_for(name, reason, has_condition("Stalled", reason))
        .await;
    condition(&gd, "Stalled").unwrap().message.clone()
}

// ---------------------------------------------------------------------------------------------
// rows 1-22: refused by the CRD (422), nothing reaches the operator

/// Each row: a spec change on top of a valid spec, and a text the 422 message must contain.
fn crd_rows(env: &Env) -> Vec<(&'static str, serde_json::Value, &'static str)> {
    let base = spec(env, "staging");
    let with = |k: &str, v: serde_json::Value| {
        let mut s = base.clone();
        s[k] = v;
        s
    };
    let without = |k: &str| {
        let mut s = base.clone();
        s.as_object_mut().unwrap().remove(k);
        s
    };
    let long_env = "e".repeat(256);
    let mut both = base.clone();
    both["revisionFrom"] = json!({"container": "app"});
    let mut two_sources = without("sha");
    two_sources["revisionFrom"] = json!({"container": "app", "annotation": "example.com/sha"});
    let mut no_target_name = base.clone();
    no_target_name["target"] = json!({"apiVersion": "apps/v1", "kind": "Deployment"});
    vec![
        (
            "sha-uppercase",
            with("sha", json!(UNKNOWN_SHA.to_uppercase())),
            "spec.sha",
        ),
        (
            "sha-short",
            with("sha", json!(&UNKNOWN_SHA[..39])),
            "spec.sha",
        ),
        (
            "sha-long",
            with("sha", json!(format!("{UNKNOWN_SHA}0"))),
            "spec.sha",
        ),
        (
            "env-chars",
            with("environment", json!("prod!")),
            "spec.environment",
        ),
        (
            "env-leading-slash",
            with("environment", json!("/prod")),
            "spec.environment",
        ),
        (
            "env-too-long",
            with("environment", json!(long_env)),
            "spec.environment",
        ),
        (
            "env-empty",
            with("environment", json!("")),
            "spec.environment",
        ),
        (
            "project-no-namespace",
            with("project", json!("app")),
            "spec.project",
        ),
        (
            "project-leading-dash",
            with("project", json!("-team/app")),
            "spec.project",
        ),
        (
            "project-dot-segment",
            with("project", json!("team/..")),
            "spec.project",
        ),
        ("project-zero", with("project", json!("0")), "spec.project"),
        ("missing-project", without("project"), "spec.project"),
        (
            "missing-environment",
            without("environment"),
            "spec.environment",
        ),
        ("missing-ref", without("ref"), "spec.ref"),
        ("empty-ref", with("ref", json!("")), "spec.ref"),
        ("missing-target", without("target"), "spec.target"),
        ("missing-target-name", no_target_name, "spec.target.name"),
        ("sha-and-revision-from", both, "exactly one of spec.sha"),
        (
            "neither-sha-nor-revision-from",
            without("sha"),
            "exactly one of spec.sha",
        ),
        (
            "revision-from-two-sources",
            two_sources,
            "exactly one of revisionFrom",
        ),
        (
            "bad-deletion-policy",
            with("deletionPolicy", json!("Nuke")),
            "spec.deletionPolicy",
        ),
        (
            "bad-connection-kind",
            with("connectionRef", json!({"kind": "Elsewhere", "name": "x"})),
            "spec.connectionRef.kind",
        ),
        (
            "bad-duration",
            with("progressTimeout", json!("10 minutes")),
            "spec.progressTimeout",
        ),
    ]
}

async fn the_crd_refuses_invalid_fields(backend: Backend) {
    let env = Env::start_on(backend).await;
    let mut wrong = Vec::new();
    for (row, spec, needle) in crd_rows(&env) {
        match try_apply(&env, row, spec).await {
            Err(kube::Error::Api(status))
                if status.code == 422 && status.message.contains(needle) => {}
            other => wrong.push(format!(
                "{row}: expected 422 naming {needle:?}, got {other:?}"
            )),
        }
    }
    assert!(
        env.glds()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

async fn the_crd_refuses_changing_target_or_environment(backend: Backend) {
    let env = Env::start_on(backend).await;
    try_apply(&env, "web", spec(&env, "staging")).await.unwrap();
    let mut other_env = spec(&env, "production");
    other_env["sha"] = json!(env.project.head());
    let mut other_target = spec(&env, "staging");
    other_target["target"]["name"] = json!("api");
    for (row, spec, needle) in [
        ("environment", other_env, "spec.environment is immutable"),
        ("target", other_target, "spec.target is immutable"),
    ] {
        match try_apply(&env, "web", spec).await {
            Err(kube::Error::Api(status)) if status.code == 422 => {
                assert!(status.message.contains(needle), "{row}: {}", status.message)
            }
            other => panic!("{row}: expected 422, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// schema-valid but wrong: the controller stalls with a reason a person can act on

#[tokio::test]
async fn unknown_project_and_unknown_sha_stall_without_spinning() {
    let env = Env::start().await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let op = env.start_operator();
    let mut nope = spec(&env, "staging");
    nope["project"] = json!("team/nope");
    env.apply_gld("no-project", nope).await;
    env.apply_gld("no-sha", env.fixed_spec("production", UNKNOWN_SHA))
        .await;

    // The condition and Event reason is the GitLab client's category of the answer.
    let message = stalled_message(&env, "no-project", "NotFound").await;
    assert!(message.contains("404"), "{message}");
    env.wait_for_event("no-project", "NotFound").await;
    let message = stalled_message(&env, "no-sha", "Validation").await;
    assert!(message.contains("commit"), "{message}");
    env.wait_for_event("no-sha", "Validation").await;
    assert_quiet(
        &env,
        &op,
        Duration::from_secs(3),
        0,
        2,
        "stalled on GitLab 4xx",
    )
    .await;
    assert!(env.gitlab.handle().deployments().is_empty());

    // Nothing lost: fixing the spec resumes at once.
    env.apply_gld("no-sha", env.fixed_spec("production", env.project.head()))
        .await;
    env.wait_for("no-sha", "success after the fix", is("success"))
        .await;
    op.stop().await;
}

#[tokio::test]
async fn a_gitlab_400_on_create_stalls_and_a_spec_change_retries() {
    let env = Env::start().await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    // Rolled out before the operator starts, so no target change retries the stalled create.
    wait_rolled_out(&env, "web").await;
    let gl = env.gitlab.handle();
    gl.inject_fault(Fault::status(400).on(Endpoint::CreateDeployment).sticky());
    let op = env.start_operator();
    env.apply_gld("web", spec(&env, "staging")).await;
    let gd = env
        .wait_for("web", "Stalled", |gd| condition(gd, "Stalled").is_some())
        .await;
    let stalled = condition(&gd, "Stalled").unwrap().clone();
    eprintln!(
        "a 400 on create: Stalled {} {:?}",
        stalled.reason, stalled.message
    );
    assert_eq!(stalled.reason, "NotAllowed", "{stalled:?}");
    assert!(stalled.message.contains("400"), "{stalled:?}");
    env.wait_for_event("web", &stalled.reason).await;
    assert_quiet(&env, &op, Duration::from_secs(3), 0, 2, "stalled on a 400").await;
    gl.clear_faults();
    // A person's change (here: a new progressTimeout) is a new generation: retried, created once.
    let mut changed = spec(&env, "staging");
    changed["progressTimeout"] = json!("5m");
    env.apply_gld("web", changed).await;
    env.wait_for("web", "success", is("success")).await;
    assert_eq!(env.gitlab_deployments("staging").len(), 1);
    op.stop().await;
}

#[tokio::test]
async fn missing_or_empty_token_secrets_stall_and_recover() {
    let env = Env::start().await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    put_secret(&env, "empty", json!({"token": ""})).await;
    put_secret(&env, "other-key", json!({"password": "x"})).await;
    let url = env.gitlab.base_url();
    connection(&env, "no-secret", &url, "absent", "token").await;
    connection(&env, "empty-key", &url, "empty", "token").await;
    connection(&env, "no-key", &url, "other-key", "token").await;
    let op = env.start_operator();
    let rows = [
        ("no-secret", "not found"),
        ("empty-key", "has no key"),
        ("no-key", "has no key"),
    ];
    for (name, _) in rows {
        env.apply_gld(name, with_connection(spec(&env, name), name))
            .await;
    }
    env.apply_gld("no-connection", with_connection(spec(&env, "nc"), "absent"))
        .await;
    for (name, needle) in rows {
        let message = stalled_message(&env, name, reason::TOKEN_SECRET_MISSING).await;
        assert!(message.contains(needle), "{name}: {message}");
        env.wait_for_event(name, reason::TOKEN_SECRET_MISSING).await;
    }
    let message = stalled_message(&env, "no-connection", reason::CONNECTION_MISSING).await;
    assert!(message.contains("absent"), "{message}");
    env.wait_for_event("no-connection", reason::CONNECTION_MISSING)
        .await;
    assert!(env.gitlab_calls().is_empty(), "nothing sent to GitLab");
    assert_quiet(
        &env,
        &op,
        Duration::from_secs(3),
        0,
        4,
        "stalled on Secrets",
    )
    .await;

    // Nothing lost: the memo looks at missing and unusable Secrets again (2 s, doubling), and
    // its reads resume them once the token is there; no watch, no list.
    let token = env.project.maintainer_token.clone();
    put_secret(&env, "absent", json!({"token": token})).await;
    put_secret(&env, "empty", json!({"token": token})).await;
    put_secret(&env, "other-key", json!({"token": token})).await;
    for (name, _) in rows {
        env.wait_for(name, "success after the Secret is fixed", is("success"))
            .await;
    }
    op.stop().await;
}

// ---------------------------------------------------------------------------------------------
// the target

async fn a_missing_target_waits_quietly_then_is_followed_when_it_appears(backend: Backend) {
    let env = Env::start_on(backend).await;
    let op = env.start_operator();
    env.apply_gld("web", spec(&env, "staging")).await;
    env.wait_for(
        "web",
        "TargetNotFound",
        ready_false_with(reason::TARGET_NOT_FOUND),
    )
    .await;
    assert_quiet(
        &env,
        &op,
        Duration::from_secs(3),
        0,
        2,
        "waiting for a target",
    )
    .await;
    assert!(env.gitlab_calls().is_empty(), "nothing sent to GitLab");
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    env.wait_for("web", "success once the target exists", is("success"))
        .await;
    assert_eq!(env.gitlab_deployments("staging").len(), 1);
    op.stop().await;
}

async fn a_target_deleted_mid_rollout_cancels_the_running_deployment(backend: Backend) {
    let env = Env::start_on(backend).await;
    env.apply_workload(
        "web",
        "registry.example/app:1.0.0",
        json!({"emulator.gitlab-operator.io/rollout-outcome": "stall"}),
    )
    .await;
    let op = env.start_operator();
    env.apply_gld("web", spec(&env, "staging")).await;
    env.wait_for("web", "running", is("running")).await;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    deployments
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let gone = env
        .wait_for("web", "canceled", |gd| {
            is("canceled")(gd)
                && gd
                    .status
                    .as_ref()
                    .and_then(|s| s.rollout.as_ref())
                    .is_some_and(|r| r.reason == "TargetNotFound")
        })
        .await;
    env.wait_for_event("web", reason::DEPLOYMENT_CANCELED).await;
    let records = env.gitlab_deployments("staging");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].status, "canceled");
    assert_quiet(&env, &op, Duration::from_secs(3), 0, 2, "target gone").await;
    let ready = gone
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "False", "{ready:?}");
    // The Ready condition says why the deployment was canceled, as the rollout does.
    env.wait_for(
        "web",
        "Ready=False TargetNotFound",
        ready_false_with(reason::TARGET_NOT_FOUND),
    )
    .await;
    op.stop().await;
}

// ---------------------------------------------------------------------------------------------
// GitLab answers badly: malformed, slow, huge, wrong content type

#[tokio::test]
async fn malformed_json_after_a_create_is_adopted_not_duplicated() {
    let env = Env::start().await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    // GitLab stores the deployment; the 200 carries a body that is not JSON.
    env.gitlab.handle().inject_fault(
        Fault::malformed_json()
            .on(Endpoint::CreateDeployment)
            .after_processing(),
    );
    let op = env.start_operator();
    env.apply_gld("web", spec(&env, "staging")).await;
    // Usually adopted within a second (the rollout's progress triggers a reconcile); the
    // internal-error backoff itself is about 16 s.
    env.wait_for("web", "success", is("success")).await;
    env.wait_for_event("web", "DecodeError").await;
    env.wait_for_event("web", reason::DEPLOYMENT_ADOPTED).await;
    let records = env.gitlab_deployments("staging");
    assert_eq!(records.len(), 1, "adopted, not created twice: {records:?}");
    assert_eq!(env.gitlab.handle().count(Endpoint::CreateDeployment), 1);
    op.stop().await;
}

#[tokio::test]
async fn a_gitlab_slower_than_the_timeout_backs_off_and_recovers_without_duplicates() {
    let env = Env::start().await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let gl = env.gitlab.handle();
    // Every answer takes 6 s, the connection's timeout is 5 s; GitLab still does the work.
    gl.inject_fault(Fault::delay(Duration::from_secs(6)).sticky());
    let op = env.start_operator();
    env.apply_gld("web", spec(&env, "staging")).await;
    env.wait_for(
        "web",
        "Reconciling Timeout",
        has_condition("Reconciling", "Timeout"),
    )
    .await;
    env.wait_for_event("web", "Timeout").await;
    // Backing off: no request storm while GitLab is slow.
    assert_quiet(&env, &op, Duration::from_secs(4), 3, 4, "slow GitLab").await;
    gl.clear_faults();
    env.wait_for("web", "success once GitLab is fast again", is("success"))
        .await;
    let records = env.gitlab_deployments("staging");
    assert_eq!(
        records.len(),
        1,
        "the timed-out create was adopted: {records:?}"
    );
    op.stop().await;
}

/// A hostile "GitLab" on loopback: every request gets the same bad answer.
async fn hostile_gitlab(kind: Arc<AtomicU8>) -> String {
    use axum::body::Body;
    use axum::response::Response;
    let app = axum::Router::new().fallback(move || {
        let kind = kind.load(Ordering::SeqCst);
        async move {
            match kind {
                // 200, HTML: a proxy's login page or maintenance page.
                0 => Response::builder()
                    .status(200)
                    .header("content-type", "text/html; charset=utf-8")
                    .body(Body::from(
                        "<!DOCTYPE html><html><body>Sign in</body></html>",
                    ))
                    .unwrap(),
                // 200, 32 MiB of JSON: one giant string.
                _ => {
                    let mut body = Vec::with_capacity(32 << 20);
                    body.extend_from_slice(b"{\"message\":\"");
                    body.resize(32 << 20, b'a');
                    body.extend_from_slice(b"\"}");
                    Response::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(Body::from(body))
                        .unwrap()
                }
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn wrong_content_type_and_huge_answers_are_errors_not_crashes() {
    let env = Env::start().await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let html = hostile_gitlab(Arc::new(AtomicU8::new(0))).await;
    let huge = hostile_gitlab(Arc::new(AtomicU8::new(1))).await;
    connection(&env, "html", &html, TOKEN_SECRET, "token").await;
    connection(&env, "huge", &huge, TOKEN_SECRET, "token").await;
    let op = env.start_operator_with(env.config_allowing(&[&html, &huge]));
    for name in ["html", "huge"] {
        env.apply_gld(name, with_connection(spec(&env, name), name))
            .await;
    }
    for name in ["html", "huge"] {
        let gd = env
            .wait_for(
                name,
                "Reconciling DecodeError",
                has_condition("Reconciling", "DecodeError"),
            )
            .await;
        let message = &condition(&gd, "Reconciling").unwrap().message;
        // The client quotes at most the first 80 characters of an undecodable body.
        assert!(
            !message.contains(&"a".repeat(100)),
            "{name}: the body is not pasted into status"
        );
        assert!(
            message.len() < 2048,
            "{name}: a short message ({} bytes)",
            message.len()
        );
        env.wait_for_event(name, "DecodeError").await;
    }
    // Internal errors back off from about 16 s: nothing spins.
    assert_quiet(
        &env,
        &op,
        Duration::from_secs(3),
        0,
        2,
        "undecodable answers",
    )
    .await;
    op.stop().await;
}

/// Peak resident memory of this process (`VmHWM`), in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024
}

/// docs/bad-input.md row 34: a GitLab answer's size should be capped. A 256 MiB answer (streamed
/// by the server, so the server itself holds 1 MiB at a time) is read whole by the client.
/// Run alone (nextest runs each test in its own process; `cargo test` shares one).
#[tokio::test]
async fn a_huge_gitlab_answer_is_not_buffered_whole() {
    use axum::body::Body;
    let env = Env::start().await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let app = axum::Router::new().fallback(|| async {
        let chunks = (0..256).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1 << 20]));
        axum::response::Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from_stream(futures::stream::iter(chunks)))
            .unwrap()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    connection(&env, "huge", &url, TOKEN_SECRET, "token").await;
    let op = env.start_operator_with(env.config_allowing(&[&url]));
    let before = peak_rss_mib();
    env.apply_gld("huge", with_connection(spec(&env, "huge"), "huge"))
        .await;
    env.wait_for(
        "huge",
        "Reconciling DecodeError",
        has_condition("Reconciling", "DecodeError"),
    )
    .await;
    let grew = peak_rss_mib().saturating_sub(before);
    assert!(
        grew < 64,
        "peak memory grew by {grew} MiB reading one 256 MiB answer"
    );
    op.stop().await;
}

// ---------------------------------------------------------------------------------------------
// security hardening (issue 20): the scheme and port a token may travel to, Warning Events
// with the longest inputs, a restart that re-sends no refused create

/// docs/bad-input.md rows 35-36: plain http is refused unless the operator runs with
/// `--allow-insecure-http`, and a bare-host allow-list entry allows only the default port.
#[tokio::test]
async fn plain_http_and_unlisted_ports_are_refused_without_a_gitlab_call() {
    use gitlab_deployment_operator::controller::allowlist::{AllowedHost, HostAllowList};
    let env = Env::start().await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let gitlab: AllowedHost = env.gitlab.addr().into();
    let host_port = env.gitlab.addr().to_string();

    // The emulator's exact host:port, but over http without the flag.
    let mut config = env.config();
    config.allow = HostAllowList::new(vec![gitlab.clone()]);
    let op = env.start_operator_with(config);
    env.apply_gld("http", spec(&env, "staging")).await;
    let message = stalled_message(&env, "http", reason::HOST_NOT_ALLOWED).await;
    assert!(
        message.contains("plain http")
            && message.contains("--allow-insecure-http")
            && message.contains("GITLAB_ALLOW_INSECURE_HTTP"),
        "says how to allow it: {message}"
    );
    env.wait_for_event("http", reason::HOST_NOT_ALLOWED).await;
    op.stop().await;

    // http allowed, but the entry is the bare host: only port 80, not the emulator's port.
    let mut config = env.config();
    config.allow = HostAllowList::new(vec!["127.0.0.1".parse().unwrap()]).allow_insecure_http(true);
    let op = env.start_operator_with(config);
    env.apply_gld("port", spec(&env, "production")).await;
    let message = stalled_message(&env, "port", reason::HOST_NOT_ALLOWED).await;
    assert!(
        message.contains(&format!("{host_port:?}")) && message.contains("--allowed-host"),
        "names the refused host and port: {message}"
    );
    assert!(
        env.gitlab_calls().is_empty(),
        "no token went anywhere: {:?}",
        env.gitlab_calls()
    );
    op.stop().await;

    // With the flag and the port listed, both proceed: one deployment each.
    let op = env.start_operator_with(env.config());
    env.wait_for("http", "success", is("success")).await;
    env.wait_for("port", "success", is("success")).await;
    assert_eq!(env.gitlab_deployments("staging").len(), 1);
    assert_eq!(env.gitlab_deployments("production").len(), 1);
    op.stop().await;
}

/// Notes of the Events recorded for `name` with `reason`.
async fn event_notes(env: &Env, name: &str, reason: &str) -> Vec<String> {
    let api: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(env.client.clone(), &env.ns);
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.note)
        .collect()
}

/// docs/bad-input.md row 37: a message longer than the API server's 1,024-byte `note` limit
/// (a 2,048-character project path or connection URL, the longest the CRD accepts) still
/// gets its Warning Event, cut with an ellipsis.
#[tokio::test]
async fn warnings_about_the_longest_inputs_the_crd_accepts_are_published() {
    let env = Env::start().await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    // A URL of 2,048 characters that does not parse (the CRD's pattern lets it through).
    let bad_url = format!("https://[zz]/{}", "u".repeat(2048 - "https://[zz]/".len()));
    connection(&env, "long-url", &bad_url, TOKEN_SECRET, "token").await;
    let op = env.start_operator();
    // A project path of 2,048 characters: GitLab answers 404, quoted with the path.
    let long_project = format!("team/{}", "p".repeat(2048 - "team/".len()));
    let mut project_spec = spec(&env, "staging");
    project_spec["project"] = json!(long_project);
    env.apply_gld("long-project", project_spec).await;
    env.apply_gld(
        "long-url",
        with_connection(spec(&env, "production"), "long-url"),
    )
    .await;
    for (name, reason) in [
        ("long-project", "NotFound"),
        ("long-url", reason::HOST_NOT_ALLOWED),
    ] {
        let message = stalled_message(&env, name, reason).await;
        assert!(message.len() > 2048, "{name}: the status keeps it whole");
        env.wait_for_event(name, reason).await;
        let notes = event_notes(&env, name, reason).await;
        assert_eq!(notes.len(), 1, "{name}: {notes:?}");
        let note = &notes[0];
        assert!(note.len() <= 1024, "{name}: {} bytes", note.len());
        assert!(note.ends_with('…'), "{name}: cut with an ellipsis: {note}");
        assert!(
            message.starts_with(note.trim_end_matches('…')),
            "{name}: the note is the message's beginning"
        );
    }
    op.stop().await;
}

/// Every resource's conditions, by name.
async fn all_conditions(
    env: &Env,
) -> Vec<(
    Option<String>,
    Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
)> {
    env.glds()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|gd| (gd.metadata.name, gd.status.map(|s| s.conditions)))
        .collect()
}

/// docs/bad-input.md row 38: resources stalled on a GitLab 4xx cost no GitLab request when the
/// operator restarts (the refusal is kept in status with its generation); a spec change is a
/// new generation and retries.
#[tokio::test]
async fn a_restart_does_not_resend_creates_gitlab_refused() {
    const N: usize = 5;
    let env = Env::start().await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    wait_rolled_out(&env, "web").await;
    let op = env.start_operator();
    // 40 hex digits but no such commit: GitLab refuses each create with a 400.
    let names: Vec<String> = (0..N).map(|i| format!("refused-{i}")).collect();
    for name in &names {
        env.apply_gld(name, env.fixed_spec(name, UNKNOWN_SHA)).await;
    }
    for name in &names {
        stalled_message(&env, name, "Validation").await;
        env.wait_for_event(name, "Validation").await;
    }
    let before_stop: Vec<_> = env.gitlab_calls();
    assert_eq!(
        before_stop.len(),
        N,
        "one refused POST each: {before_stop:?}"
    );
    op.stop().await;

    let before = all_conditions(&env).await;
    let op = env.start_operator();
    // Wait until the new operator has reconciled every resource, then a quiet window.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while reconciles(&op) < N as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the restarted operator reconciles them"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_quiet(
        &env,
        &op,
        Duration::from_secs(2),
        0,
        N as u64,
        "after the restart",
    )
    .await;
    let after_restart = env.gitlab_calls();
    assert_eq!(
        after_restart.len(),
        N,
        "a restart re-sent refused creates: {:?}",
        &after_restart[N..]
    );
    let after = all_conditions(&env).await;
    assert_eq!(before, after, "still stalled, conditions unchanged");

    // A spec change (the real commit) is a new generation: retried once, created once.
    env.apply_gld(&names[0], env.fixed_spec(&names[0], env.project.head()))
        .await;
    env.wait_for(&names[0], "success", is("success")).await;
    assert_eq!(env.gitlab_deployments(&names[0]).len(), 1);
    let creates = env
        .gitlab_calls()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(creates, N + 1, "only the changed resource was sent again");
    op.stop().await;
}
// The CRD and workload cases, judged by the real apiserver and controllers too.
both_backends!(
    the_crd_refuses_invalid_fields,
    the_crd_refuses_changing_target_or_environment,
    a_missing_target_waits_quietly_then_is_followed_when_it_appears,
    a_target_deleted_mid_rollout_cancels_the_running_deployment,
);
