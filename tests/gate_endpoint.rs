//! The approval gate endpoint end to end: real HTTP to the gate, which answers from a real
//! reflector cache fed by a real watch on the kube emulator through kube's `Client`. The
//! GitlabDeployment statuses are written through the API (`replace_status`) in the shape the
//! approval contract gives (docs/approvals.md), except in
//! `the_gate_answers_what_the_operator_learned_from_gitlab`, where the operator writes them from
//! the GitLab emulator's answers (every path: pending, approved, a new sha, rejected, no token).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gitlab_deployment_operator::controller::shard::Shard;
use gitlab_deployment_operator::controller::targets::Scope;
use gitlab_deployment_operator::gate::server::{GateConfig, bind};
use gitlab_deployment_operator::gate::{GateAuth, GateCache, GateError, GateMetrics};
use gitlab_deployment_operator::gitlab::ApprovalStatus;
use harness::{Env, NS};
use kube::api::PostParams;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "gate-token-0123456789abcdef";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const OTHER_SHA: &str = "fedcba9876543210fedcba9876543210fedcba98";

fn http() -> reqwest::Client {
    gitlab_deployment_operator::gitlab::install_crypto_provider();
    reqwest::Client::new()
}

/// A running gate over its own (standby) cache of namespace `apps`.
struct Gate {
    addr: SocketAddr,
    metrics: Arc<GateMetrics>,
    token_dir: harness::TempDir,
    stop: CancellationToken,
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Gate {
    fn token_file(&self) -> std::path::PathBuf {
        self.token_dir.path().join("token")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET /v1/namespaces/apps/gitlabdeployments/NAME` with the token: status and body.
    async fn verdict(&self, name: &str) -> (u16, Value) {
        self.verdict_with(name, Some(TOKEN)).await
    }

    async fn verdict_with(&self, name: &str, token: Option<&str>) -> (u16, Value) {
        let mut request =
            http().get(self.url(&format!("/v1/namespaces/{NS}/gitlabdeployments/{name}")));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let code = response.status().as_u16();
        (code, response.json().await.unwrap_or(Value::Null))
    }

    /// Flagger's webhook call (`confirm-rollout` and friends) for canary `name` in `apps`, the
    /// token in `metadata.token` as Flagger sends it.
    async fn flagger(&self, route: &str, name: &str, metadata: Value) -> (u16, Value) {
        let response = http()
            .post(self.url(route))
            .json(&json!({
                "name": name, "namespace": NS, "phase": "Progressing",
                "checksum": "6d5b8c7f9", "metadata": metadata,
            }))
            .send()
            .await
            .unwrap();
        let code = response.status().as_u16();
        (code, response.json().await.unwrap_or(Value::Null))
    }

    async fn confirm(&self, name: &str) -> u16 {
        self.flagger("/flagger/v1/gate", name, json!({"token": TOKEN}))
            .await
            .0
    }

    /// Poll the verdict of `name` until it is `state` for `sha` (the operator writes it).
    async fn wait_verdict(&self, name: &str, state: &str, sha: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (code, body) = self.verdict(name).await;
            if code == 200 && body["state"] == state && body["sha"] == sha {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never became {state} for {sha}: last {code} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Poll the verdict of `name` until its state is `want` (the watch delivers the status).
    async fn wait_state(&self, name: &str, want: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (code, body) = self.verdict(name).await;
            if code == 200 && body["state"] == want {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never became {want}: last {code} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn config(addr: SocketAddr, auth: GateAuth, per_second: u32, burst: u32) -> GateConfig {
    GateConfig {
        addr,
        auth,
        per_second: NonZeroU32::new(per_second).unwrap(),
        burst: NonZeroU32::new(burst).unwrap(),
    }
}

/// A gate on a loopback port over a standby cache of `apps` (the same code a standby replica
/// runs), authenticated by a token file holding [`TOKEN`].
async fn start_gate(env: &Env, per_second: u32, burst: u32) -> Gate {
    let cache = GateCache::default();
    let stop = CancellationToken::new();
    tokio::spawn(gitlab_deployment_operator::gate::cache::follow(
        env.client.clone(),
        Scope::Namespaces(vec![NS.to_owned()]),
        Shard::default(),
        cache.clone(),
        stop.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cache.synced() {
        assert!(Instant::now() < deadline, "the standby cache never synced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    serve_gate(cache, stop, per_second, burst).await
}

/// A gate on a loopback port over `cache`, authenticated by a token file holding [`TOKEN`].
async fn serve_gate(
    cache: GateCache,
    stop: CancellationToken,
    per_second: u32,
    burst: u32,
) -> Gate {
    let token_dir = harness::tempdir("gate-token");
    std::fs::write(token_dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    let metrics = Arc::new(GateMetrics::default());
    let shutdown = stop.clone();
    let (addr, server) = bind(
        &config(
            "127.0.0.1:0".parse().unwrap(),
            GateAuth::TokenFile(token_dir.path().join("token")),
            per_second,
            burst,
        ),
        cache,
        Arc::clone(&metrics),
        async move { shutdown.cancelled().await },
    )
    .await
    .unwrap();
    tokio::spawn(server);
    Gate {
        addr,
        metrics,
        token_dir,
        stop,
    }
}

/// A GitlabDeployment of `spec_sha` (none: it follows its target's revision), with `approval`
/// (`{gate: true}`) or without.
async fn create(env: &Env, name: &str, spec_sha: Option<&str>, approval: Option<Value>) {
    let mut spec = json!({
        "project": env.project.path, "environment": "production", "ref": "main",
        "target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
    });
    if let Some(sha) = spec_sha {
        spec["sha"] = json!(sha);
    }
    if let Some(approval) = approval {
        spec["approval"] = approval;
    }
    env.apply_gld(name, spec).await;
}

/// Write the status the contract describes: the `Approved` condition (`status`, `reason`) for
/// generation `observed` (the current one when `None`), `status.deployment` of `sha`, and
/// `status.approval` unless the state is `NotRequired`.
async fn write_status(
    env: &Env,
    name: &str,
    condition: (&str, &str),
    sha: &str,
    observed: Option<i64>,
) {
    let api = env.glds();
    let mut gd = api.get(name).await.unwrap();
    let generation = gd.metadata.generation.unwrap();
    let (status, reason) = condition;
    let state = match reason {
        "Approved" => "Approved",
        "ApprovalPending" => "Pending",
        "ApprovalRejected" => "Rejected",
        _ => "NotRequired",
    };
    let message = match reason {
        "ApprovalPending" => format!(
            "1 of 2 approvals for GitLab deployment 41 ({}): approve in GitLab or run kubectl gld approve {name} -n {NS}",
            &sha[..7]
        ),
        "ApprovalRejected" => "rejected by alice: not during the freeze".to_owned(),
        other => other.to_owned(),
    };
    let mut status_json = json!({
        "observedGeneration": generation,
        "shortSha": &sha[..7],
        "deployment": {"id": 41, "iid": 3, "sha": sha, "ref": "main", "status": "running"},
        "conditions": [{
            "type": "Approved", "status": status, "reason": reason, "message": message,
            "observedGeneration": observed.unwrap_or(generation),
            "lastTransitionTime": "2026-12-06T12:00:00Z",
        }],
    });
    if state != "NotRequired" {
        status_json["approval"] = json!({
            "state": state, "deploymentId": 41, "sha": sha, "required": 2,
            "pending": if state == "Approved" { 0 } else { 1 },
        });
    }
    gd.status = Some(serde_json::from_value(status_json).unwrap());
    api.replace_status(name, &PostParams::default(), &gd)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_gate_allows_only_an_approval_of_the_wanted_revision() {
    let env = Env::start().await;
    let gate = start_gate(&env, 1000, 1000).await;
    create(
        &env,
        "web-production",
        Some(SHA),
        Some(json!({"gate": true})),
    )
    .await;

    // Nothing judged yet: pending, and Flagger is told "not yet".
    let body = gate.wait_state("web-production", "pending").await;
    assert_eq!(body["approved"], false);
    assert_eq!(gate.confirm("web-production").await, 409);

    // Approvals pending.
    write_status(
        &env,
        "web-production",
        ("False", "ApprovalPending"),
        SHA,
        None,
    )
    .await;
    let body = gate.wait_state("web-production", "pending").await;
    assert_eq!(body["reason"], "ApprovalPending");
    assert_eq!(body["required"], 2);
    assert_eq!(body["pending"], 1);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("kubectl gld approve"),
        "{body}"
    );
    assert_eq!(gate.confirm("web-production").await, 409);

    // Approved for the wanted sha: allowed, everywhere.
    write_status(&env, "web-production", ("True", "Approved"), SHA, None).await;
    let body = gate.wait_state("web-production", "approved").await;
    assert_eq!(
        body,
        json!({
            "state": "approved", "approved": true, "sha": SHA, "required": 2, "pending": 0,
            "deploymentId": 41, "reason": "Approved", "message": "Approved",
        })
    );
    let (code, body) = gate
        .flagger(
            "/flagger/v1/gate",
            "web-production",
            json!({"token": TOKEN}),
        )
        .await;
    assert_eq!((code, body["approved"].clone()), (200, json!(true)));
    assert_eq!(
        gate.flagger(
            "/flagger/v1/rollback",
            "web-production",
            json!({"token": TOKEN})
        )
        .await
        .0,
        409,
        "an approved revision is not rolled back"
    );

    // An approval of another sha does not pass for the wanted one.
    write_status(
        &env,
        "web-production",
        ("True", "Approved"),
        OTHER_SHA,
        None,
    )
    .await;
    let body = gate.wait_state("web-production", "pending").await;
    assert_eq!(body["sha"], OTHER_SHA);
    assert!(body["message"].as_str().unwrap().contains(SHA), "{body}");
    assert_eq!(gate.confirm("web-production").await, 409);

    // An approval of an older generation does not pass either: a spec change (a new sha)
    // bumps the generation, the condition still names the old one.
    write_status(&env, "web-production", ("True", "Approved"), SHA, None).await;
    gate.wait_state("web-production", "approved").await;
    create(
        &env,
        "web-production",
        Some(OTHER_SHA),
        Some(json!({"gate": true})),
    )
    .await;
    let body = gate.wait_state("web-production", "pending").await;
    assert!(
        body["message"].as_str().unwrap().contains("generation"),
        "{body}"
    );
    assert_eq!(gate.confirm("web-production").await, 409);

    // Rejected: 403 for the confirm hooks, 200 for Flagger's rollback hook.
    write_status(
        &env,
        "web-production",
        ("False", "ApprovalRejected"),
        OTHER_SHA,
        None,
    )
    .await;
    let body = gate.wait_state("web-production", "rejected").await;
    assert_eq!(body["approved"], false);
    assert_eq!(body["message"], "rejected by alice: not during the freeze");
    assert_eq!(gate.confirm("web-production").await, 403);
    let (code, body) = gate
        .flagger(
            "/flagger/v1/rollback",
            "web-production",
            json!({"token": TOKEN}),
        )
        .await;
    assert_eq!((code, body["state"].clone()), (200, json!("rejected")));

    // A resource that says nothing about approvals, in an environment that needs none:
    // `NotRequired` is approved (the verdict does not read spec.approval).
    create(&env, "web-staging", Some(SHA), None).await;
    write_status(&env, "web-staging", ("True", "NotRequired"), SHA, None).await;
    let body = gate.wait_state("web-staging", "approved").await;
    assert_eq!(body["required"], 0);
    assert_eq!(gate.confirm("web-staging").await, 200);

    // Every answer was counted by route and code, every verdict by state.
    assert!(gate.metrics.count("flagger_gate", 200) >= 2);
    assert!(gate.metrics.count("flagger_gate", 409) >= 4);
    assert_eq!(gate.metrics.count("flagger_gate", 403), 1);
    assert_eq!(gate.metrics.count("flagger_rollback", 200), 1);
    assert!(gate.metrics.count("verdict", 200) >= 7);
    for state in ["approved", "pending", "rejected"] {
        assert!(gate.metrics.verdict_count(state) >= 1, "{state}");
    }
}

#[tokio::test]
async fn flagger_names_the_resource_in_metadata_and_unknown_ones_are_404() {
    let env = Env::start().await;
    let gate = start_gate(&env, 1000, 1000).await;
    create(
        &env,
        "web-production",
        Some(SHA),
        Some(json!({"gate": true})),
    )
    .await;
    write_status(&env, "web-production", ("True", "Approved"), SHA, None).await;
    gate.wait_state("web-production", "approved").await;

    // The canary `podinfo` asks about GitlabDeployment `web-production` of its namespace.
    let (code, body) = gate
        .flagger(
            "/flagger/v1/gate",
            "podinfo",
            json!({"token": TOKEN, "gitlabDeployment": "web-production"}),
        )
        .await;
    assert_eq!((code, body["sha"].clone()), (200, json!(SHA)));
    // Without it, the canary's own name: none here.
    let (code, body) = gate
        .flagger("/flagger/v1/gate", "podinfo", json!({"token": TOKEN}))
        .await;
    assert_eq!(code, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("apps/podinfo"),
        "{body}"
    );
    assert_eq!(gate.verdict("nothing-here").await.0, 404);
    // Another namespace is another resource.
    let response = http()
        .get(gate.url("/v1/namespaces/elsewhere/gitlabdeployments/web-production"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    // A malformed payload is 400 (after authentication), a path that is no route 404.
    let response = http()
        .post(gate.url("/flagger/v1/gate"))
        .bearer_auth(TOKEN)
        .body("{\"name\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let response = http().get(gate.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
}

#[tokio::test]
async fn requests_without_the_token_are_refused_and_a_rotated_token_works() {
    let env = Env::start().await;
    let gate = start_gate(&env, 1000, 1000).await;
    create(&env, "web-production", Some(SHA), None).await;
    write_status(&env, "web-production", ("True", "Approved"), SHA, None).await;
    gate.wait_state("web-production", "approved").await;

    // No token, a wrong one, a prefix of the right one, another scheme: 401, and no verdict
    // leaks into the body.
    for token in [None, Some("wrong"), Some(&TOKEN[..TOKEN.len() - 1])] {
        let (code, body) = gate.verdict_with("web-production", token).await;
        assert_eq!(code, 401, "{token:?}");
        assert!(body.get("state").is_none(), "{body}");
    }
    let response = http()
        .get(gate.url(&format!(
            "/v1/namespaces/{NS}/gitlabdeployments/web-production"
        )))
        .basic_auth("user", Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    // Flagger without a token, or with a wrong one in metadata.
    assert_eq!(
        gate.flagger("/flagger/v1/gate", "web-production", json!({}))
            .await
            .0,
        401
    );
    assert_eq!(
        gate.flagger("/flagger/v1/gate", "web-production", json!({"token": "x"}))
            .await
            .0,
        401
    );
    // Flagger's metadata token, and a header token on the same route (a proxy may add one).
    assert_eq!(gate.confirm("web-production").await, 200);
    let response = http()
        .post(gate.url("/flagger/v1/gate"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "web-production", "namespace": NS}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(gate.metrics.count("verdict", 401) >= 4);
    assert!(gate.metrics.count("flagger_gate", 401) >= 2);

    // Rotation: the Secret's file changes, the new token works and the old one stops.
    std::fs::write(gate.token_file(), "the-rotated-gate-token").unwrap();
    assert_eq!(
        gate.verdict_with("web-production", Some("the-rotated-gate-token"))
            .await
            .0,
        200
    );
    assert_eq!(gate.verdict("web-production").await.0, 401);
    // The Secret gone (file removed): everything is refused, nothing is answered open.
    std::fs::remove_file(gate.token_file()).unwrap();
    assert_eq!(
        gate.verdict_with("web-production", Some("the-rotated-gate-token"))
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn bodies_and_request_rates_are_bounded() {
    let env = Env::start().await;
    let gate = start_gate(&env, 1000, 1000).await;
    create(&env, "web-production", Some(SHA), None).await;
    gate.wait_state("web-production", "pending").await;
    // 17 KiB of metadata: refused before it is parsed or the token is looked at.
    let big = "x".repeat(17 * 1024);
    let (code, _) = gate
        .flagger(
            "/flagger/v1/gate",
            "web-production",
            json!({"token": TOKEN, "pad": big}),
        )
        .await;
    assert_eq!(code, 413);
    // Just under the limit is read.
    let fits = "x".repeat(15 * 1024);
    let (code, _) = gate
        .flagger(
            "/flagger/v1/gate",
            "web-production",
            json!({"token": TOKEN, "pad": fits}),
        )
        .await;
    assert_eq!(code, 409);
    assert_eq!(gate.metrics.count("flagger_gate", 413), 1);

    // Two requests of burst, one per second after: the third at once is 429 with Retry-After,
    // before any token check.
    let limited = start_gate(&env, 1, 2).await;
    let mut codes = Vec::new();
    let mut retry_after = None;
    for _ in 0..3 {
        let response = http()
            .get(limited.url(&format!(
                "/v1/namespaces/{NS}/gitlabdeployments/web-production"
            )))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        codes.push(response.status().as_u16());
        if let Some(v) = response.headers().get("retry-after") {
            retry_after = Some(v.to_str().unwrap().parse::<u64>().unwrap());
        }
    }
    assert_eq!(codes, [200, 200, 429]);
    assert_eq!(retry_after, Some(1));
    let (code, _) = limited
        .flagger("/flagger/v1/gate", "web-production", json!({}))
        .await;
    assert_eq!(code, 429, "the limit comes before authentication");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        limited.verdict("web-production").await.0,
        200,
        "the bucket refills"
    );
    assert_eq!(limited.metrics.count("verdict", 429), 1);
    assert_eq!(limited.metrics.count("flagger_gate", 429), 1);
}

#[tokio::test]
async fn the_gate_refuses_to_start_without_a_token() {
    let dir = harness::tempdir("gate-no-token");
    let missing = dir.path().join("token");
    let start = |auth| async move {
        bind(
            &config("127.0.0.1:0".parse().unwrap(), auth, 10, 10),
            GateCache::default(),
            Arc::new(GateMetrics::default()),
            std::future::pending(),
        )
        .await
        .map(|(addr, _)| addr)
    };
    let err = start(GateAuth::TokenFile(missing.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, GateError::Token(_)), "{err}");
    assert!(err.to_string().contains("--gate-insecure-no-auth"), "{err}");
    std::fs::write(&missing, "  \n").unwrap();
    let err = start(GateAuth::TokenFile(missing.clone()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    // The explicit opt-out starts, and answers without a token.
    assert!(start(GateAuth::Insecure).await.is_ok());
}

/// The operator's `run` hands the gate its own synced cache (no second watch on a single
/// replica) and takes it back when it stops: the gate then says it has no cache (503), never
/// an answer from a cache nobody keeps current.
#[tokio::test]
async fn the_operator_publishes_its_cache_to_the_gate_and_withdraws_it_on_stop() {
    let env = Env::start().await;
    create(&env, "web-production", Some(SHA), None).await;
    let cache = GateCache::default();
    let metrics = Arc::new(GateMetrics::default());
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let (addr, server) = bind(
        &config(
            "127.0.0.1:0".parse().unwrap(),
            GateAuth::Insecure,
            1000,
            1000,
        ),
        cache.clone(),
        Arc::clone(&metrics),
        async move { shutdown.cancelled().await },
    )
    .await
    .unwrap();
    tokio::spawn(server);
    let url = |name: &str| format!("http://{addr}/v1/namespaces/{NS}/gitlabdeployments/{name}");
    // No controller cache yet, no standby: 503 with Retry-After.
    let response = http().get(url("web-production")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "1");

    let mut run_config = env.config();
    run_config.gate = Some(cache.clone());
    let op = env.start_operator_with(run_config);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let code = http()
            .get(url("web-production"))
            .send()
            .await
            .unwrap()
            .status();
        if code == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the operator never published its cache: {code}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        http()
            .get(url("nothing-here"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    op.stop().await;
    assert_eq!(
        http()
            .get(url("web-production"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    stop.cancel();
}

/// With leader election a standby answers from its own watch; once it leads, the controller's
/// cache takes over and the standby's is dropped (no second copy); when it stops leading, the
/// standby watch comes back, so the replica keeps answering throughout.
#[tokio::test]
async fn a_standby_answers_from_its_own_cache_and_hands_over_to_the_controller() {
    let env = Env::start().await;
    create(&env, "web-production", Some(SHA), None).await;
    write_status(&env, "web-production", ("True", "Approved"), SHA, None).await;
    let cache = GateCache::default();
    let stop = CancellationToken::new();
    tokio::spawn(gitlab_deployment_operator::gate::cache::follow(
        env.client.clone(),
        env.backend.scope(&env.ns),
        Shard::default(),
        cache.clone(),
        stop.clone(),
    ));
    let shutdown = stop.clone();
    let (addr, server) = bind(
        &config(
            "127.0.0.1:0".parse().unwrap(),
            GateAuth::Insecure,
            1000,
            1000,
        ),
        cache.clone(),
        Arc::new(GateMetrics::default()),
        async move { shutdown.cancelled().await },
    )
    .await
    .unwrap();
    tokio::spawn(server);
    let url = format!("http://{addr}/v1/namespaces/{NS}/gitlabdeployments/web-production");
    let wait_for = |want: &'static str| {
        let cache = cache.clone();
        let url = url.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if cache.source() == Some(want) {
                    let response = http().get(&url).send().await.unwrap();
                    if response.status() == 200 {
                        return response.json::<Value>().await.unwrap();
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "never answered from the {want} cache ({:?})",
                    cache.source()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(wait_for("standby").await["state"], "approved");

    let mut run_config = env.config();
    run_config.gate = Some(cache.clone());
    let op = env.start_operator_with(run_config);
    wait_for("controller").await;
    op.stop().await;
    wait_for("standby").await;
    stop.cancel();
}

/// Every path of the gate with the operator writing the statuses from GitLab's answers (the
/// GitLab emulator with production protected): pending is refused, an approval is allowed,
/// a new sha after an approval of the old one is refused until approved itself, a rejection is
/// refused, and a request without the token never sees a verdict.
#[tokio::test]
async fn the_gate_answers_what_the_operator_learned_from_gitlab() {
    let env = Env::start().await;
    let approver = env.protect_production();
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let cache = GateCache::default();
    let gate = serve_gate(cache.clone(), CancellationToken::new(), 1000, 1000).await;
    let mut run_config = env.config();
    run_config.gate = Some(cache);
    let op = env.start_operator_with(run_config);
    let first = env.project.head().to_owned();
    create(
        &env,
        "web-production",
        Some(&first),
        Some(json!({"gate": true})),
    )
    .await;

    let pending = gate.wait_verdict("web-production", "pending", &first).await;
    assert_eq!(pending["sha"], first.as_str());
    assert_ne!(
        gate.confirm("web-production").await,
        200,
        "pending is refused"
    );
    let (code, body) = gate.verdict_with("web-production", None).await;
    assert_eq!(code, 401, "{body}");
    let (code, _) = gate
        .verdict_with("web-production", Some("wrong-token"))
        .await;
    assert_eq!(code, 401);

    let held = env.glds().get("web-production").await.unwrap();
    let first_id = held.status.unwrap().deployment.unwrap().id;
    env.review(&approver, first_id, ApprovalStatus::Approved)
        .await;
    env.refresh("web-production", "approved").await;
    let approved = gate
        .wait_verdict("web-production", "approved", &first)
        .await;
    assert_eq!(approved["approved"], true);
    assert_eq!(approved["sha"], first.as_str());
    assert_eq!(gate.confirm("web-production").await, 200);

    // The next sha: the approval of the first never passes for it.
    let second = env.gitlab.handle().push_commits(env.project.id, "main", 1)[0].clone();
    create(
        &env,
        "web-production",
        Some(&second),
        Some(json!({"gate": true})),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, body) = gate.verdict("web-production").await;
        if code == 200 && body["sha"] == second.as_str() && body["state"] == "pending" {
            break;
        }
        assert_ne!(
            (body["sha"].as_str(), body["approved"].as_bool()),
            (Some(second.as_str()), Some(true)),
            "the new sha passed on the old approval"
        );
        assert!(
            Instant::now() < deadline,
            "the new sha never held: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(
        gate.confirm("web-production").await,
        200,
        "the new sha is refused"
    );

    // Rejected: refused for good.
    let held = env.glds().get("web-production").await.unwrap();
    let second_id = held.status.unwrap().deployment.unwrap().id;
    assert_ne!(second_id, first_id);
    env.review(&approver, second_id, ApprovalStatus::Rejected)
        .await;
    env.refresh("web-production", "rejected").await;
    let rejected = gate
        .wait_verdict("web-production", "rejected", &second)
        .await;
    assert_eq!(rejected["approved"], false);
    assert_ne!(gate.confirm("web-production").await, 200);
    assert_eq!(env.gitlab_deployments("production").len(), 2);
    op.stop().await;
}
