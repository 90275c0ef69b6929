//! The GitLab webhook receiver end to end: the GitLab emulator delivers project hooks to the
//! operator's receiver over real HTTP; the operator re-reads GitLab and writes status through
//! the kube emulator. Tests that need a hook GitLab would not send post it themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod harness;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gitlab_deployment_operator::api::deployment::ApprovalState;
use gitlab_deployment_operator::api::deployment::DeploymentId;
use gitlab_deployment_operator::controller::run::RunConfig;
use gitlab_deployment_operator::gitlab::ApprovalStatus;
use gitlab_deployment_operator::webhook::WebhookConfig;
use gitlab_deployment_operator::webhook::tokens::SecretName;
use gitlab_emulator::{Endpoint, HookFault};
use harness::{Backend, Env, NS, Operator};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

const HOOK_TOKEN: &str = "hook-secret-for-default";
const HOOK_SECRET: &str = "gitlab-webhook-tokens";

/// A loopback port nobody listens on now.
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The webhook Secret naming connection `apps/default`, an operator with the receiver on, and a
/// project hook in GitLab pointing at it (deployment events; approval events on).
async fn start_hooked(env: &Env, safety_net: Duration) -> (Operator, SocketAddr) {
    put_hook_secret(env).await;
    let addr = free_port();
    let op = env.start_operator_with(hooked_config(env, addr, safety_net));
    wait_listening(addr).await;
    add_project_hook(env, addr).await;
    (op, addr)
}

/// The webhook Secret, in the test's namespace, with the token of its `default` connection.
async fn put_hook_secret(env: &Env) {
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": HOOK_SECRET},
        "stringData": {format!("GitlabConnection.{}.default", env.ns): HOOK_TOKEN}
    });
    secrets
        .patch(
            HOOK_SECRET,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&secret),
        )
        .await
        .unwrap();
}

/// The harness's configuration with the receiver on `addr` (advertised there) and a fixed
/// safety net.
fn hooked_config(env: &Env, addr: SocketAddr, safety_net: Duration) -> RunConfig {
    let mut config = env.config();
    config.webhook = Some(WebhookConfig {
        addr,
        secret: SecretName {
            namespace: env.ns.clone(),
            name: HOOK_SECRET.into(),
        },
        safety_net,
        safety_net_max: safety_net,
        echo_wait: Duration::from_secs(120),
        advertise: Some(addr),
    });
    config
}

async fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "the receiver never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A project hook delivering deployment and approval events to `addr`.
async fn add_project_hook(env: &Env, addr: SocketAddr) {
    let gl = env.gitlab.handle();
    gl.set_allow_local_webhooks(true);
    gl.set_approval_webhooks(true);
    let created = http()
        .post(format!(
            "{}/api/v4/projects/{}/hooks",
            env.gitlab.base_url(),
            env.project.id
        ))
        .header("PRIVATE-TOKEN", &env.project.maintainer_token)
        .json(&json!({
            "url": format!("http://{addr}/hooks/gitlab"),
            "token": HOOK_TOKEN,
            "deployment_events": true,
            "push_events": false,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
}

fn http() -> reqwest::Client {
    gitlab_deployment_operator::gitlab::install_crypto_provider();
    reqwest::Client::new()
}

/// POST `body` to the receiver with `token`; the status code.
async fn post_hook(addr: SocketAddr, token: Option<&str>, body: impl Into<reqwest::Body>) -> u16 {
    let mut request = http()
        .post(format!("http://{addr}/hooks/gitlab"))
        .header("X-Gitlab-Event", "Deployment Hook")
        .header("Content-Type", "application/json");
    if let Some(token) = token {
        request = request.header("X-Gitlab-Token", token);
    }
    request.body(body).send().await.unwrap().status().as_u16()
}

/// GETs of GitLab deployment `id` so far.
fn reads_of(env: &Env, id: DeploymentId) -> usize {
    env.gitlab_calls()
        .iter()
        .filter(|r| r.route == Endpoint::GetDeployment && r.path.ends_with(&format!("/{id}")))
        .count()
}

fn deployment_id(gd: &gitlab_deployment_operator::api::GitlabDeployment) -> DeploymentId {
    gd.status.as_ref().unwrap().deployment.as_ref().unwrap().id
}

/// `web-prod` (protected production) pending approval, and `web-staging` settled.
async fn pending_and_settled(env: &Env) -> (String, DeploymentId, DeploymentId) {
    let approver = env.protect_production();
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    env.apply_gld("web-prod", env.fixed_spec("production", env.project.head()))
        .await;
    env.apply_gld("web-staging", env.fixed_spec("staging", env.project.head()))
        .await;
    let pending = env
        .wait_for_approval("web-prod", ApprovalState::Pending)
        .await;
    let staging = env
        .wait_for("web-staging", "success", |gd| {
            harness::gitlab_status(gd).as_deref() == Some("success")
        })
        .await;
    (approver, deployment_id(&pending), deployment_id(&staging))
}

#[tokio::test]
async fn a_hook_wakes_only_the_owner_and_the_approval_lands_within_a_second() {
    let env = Env::start().await;
    let (op, _addr) = start_hooked(&env, Duration::from_secs(600)).await;
    let (approver, prod, staging) = pending_and_settled(&env).await;
    // Let the hooks of the creates settle first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let staging_reads = reads_of(&env, staging);
    let woken = op.telemetry.webhook.count("woken");

    let started = Instant::now();
    env.review(&approver, prod, ApprovalStatus::Approved).await;
    env.wait_for_approval("web-prod", ApprovalState::Approved)
        .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the approval took {took:?} to reach the resource"
    );
    assert!(op.telemetry.webhook.count("woken") > woken);
    let delivered = env.gitlab.handle().hook_deliveries();
    let approved = delivered
        .iter()
        .find(|d| d.event_status == "approved" && d.deployment_id == prod.get())
        .expect("GitLab delivered the approval event");
    assert_eq!(approved.response_status, Some(200), "{approved:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        reads_of(&env, staging),
        staging_reads,
        "the other resource was not woken"
    );
    op.stop().await;
}

#[tokio::test]
async fn refused_hooks_change_nothing_and_say_why_in_the_metric() {
    let env = Env::start().await;
    let (op, addr) = start_hooked(&env, Duration::from_secs(600)).await;
    let (_approver, prod, _staging) = pending_and_settled(&env).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = env.glds().get("web-prod").await.unwrap();
    let calls = env.gitlab_calls().len();
    let m = &op.telemetry.webhook;
    let approved = |id: u64| {
        json!({"object_kind": "deployment", "status": "approved", "deployment_id": id}).to_string()
    };

    let counted = |result: &'static str| m.count(result);
    let (unauthorized, unknown, too_large, malformed, ignored) = (
        counted("unauthorized"),
        counted("unknown_deployment"),
        counted("too_large"),
        counted("malformed"),
        counted("ignored_kind"),
    );
    assert_eq!(
        post_hook(addr, Some("wrong"), approved(prod.get())).await,
        401
    );
    assert_eq!(post_hook(addr, None, approved(prod.get())).await, 401);
    assert_eq!(
        post_hook(addr, Some(HOOK_TOKEN), approved(prod.get() + 1000)).await,
        202
    );
    let huge = format!(
        r#"{{"object_kind":"deployment","status":"approved","deployment_id":{prod},"pad":"{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    assert_eq!(post_hook(addr, Some(HOOK_TOKEN), huge).await, 413);
    assert_eq!(
        post_hook(addr, Some(HOOK_TOKEN), "{\"object_kind\":").await,
        400
    );
    assert_eq!(
        post_hook(
            addr,
            Some(HOOK_TOKEN),
            json!({"object_kind": "deployment", "status": "approved", "deployment_id": prod.to_string()})
                .to_string()
        )
        .await,
        400
    );
    assert_eq!(
        post_hook(addr, Some(HOOK_TOKEN), r#"{"object_kind":"push"}"#).await,
        202
    );
    assert_eq!(counted("unauthorized"), unauthorized + 2);
    assert_eq!(counted("unknown_deployment"), unknown + 1);
    assert_eq!(counted("too_large"), too_large + 1);
    assert_eq!(counted("malformed"), malformed + 2);
    assert_eq!(counted("ignored_kind"), ignored + 1);

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.gitlab_calls().len(), calls, "no GitLab call was made");
    let after = env.glds().get("web-prod").await.unwrap();
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "the resource was not written"
    );
    op.stop().await;
}

#[tokio::test]
async fn a_replayed_hook_costs_at_most_one_get() {
    let env = Env::start().await;
    let (op, addr) = start_hooked(&env, Duration::from_secs(600)).await;
    let (approver, prod, _staging) = pending_and_settled(&env).await;
    env.review(&approver, prod, ApprovalStatus::Approved).await;
    env.wait_for_approval("web-prod", ApprovalState::Approved)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reads = reads_of(&env, prod);
    let hook = json!({"object_kind": "deployment", "status": "approved", "deployment_id": prod})
        .to_string();
    for _ in 0..5 {
        assert_eq!(post_hook(addr, Some(HOOK_TOKEN), hook.clone()).await, 200);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        reads_of(&env, prod) <= reads + 1,
        "five replays cost {} GETs",
        reads_of(&env, prod) - reads
    );
    assert!(op.telemetry.webhook.count("current") >= 5);
    op.stop().await;
}

#[tokio::test]
async fn a_lost_hook_is_caught_by_the_safety_net() {
    let env = Env::start().await;
    let safety_net = Duration::from_secs(2);
    let (op, addr) = start_hooked(&env, safety_net).await;
    // An approval event from this connection: GitLab announces approvals, polling slows (here
    // to the short safety net, so the test is fast).
    let announce =
        json!({"object_kind": "deployment", "status": "approved", "deployment_id": 999_999})
            .to_string();
    assert_eq!(post_hook(addr, Some(HOOK_TOKEN), announce).await, 202);
    let (approver, prod, _staging) = pending_and_settled(&env).await;
    // Polling alone would read again 10 s after the approval became pending; the safety net
    // reads every 2 s.
    let reads = reads_of(&env, prod);
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert!(
        reads_of(&env, prod) >= reads + 2,
        "the safety net read {} times in 4.5 s",
        reads_of(&env, prod) - reads
    );

    let gl = env.gitlab.handle();
    gl.fault_hook_deliveries(HookFault::Drop, None);
    let woken = op.telemetry.webhook.count("woken");
    env.review(&approver, prod, ApprovalStatus::Approved).await;
    let started = Instant::now();
    env.wait_for_approval("web-prod", ApprovalState::Approved)
        .await;
    assert!(
        started.elapsed() < safety_net * 3,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        op.telemetry.webhook.count("woken"),
        woken,
        "no hook woke it: the approval event was lost"
    );
    assert!(
        gl.hook_deliveries()
            .iter()
            .any(|d| d.event_status == "approved" && d.outcome == "dropped")
    );
    op.stop().await;
}

/// A connection whose GitLab sends approval events, but no hook for this deployment ever
/// arrives (a project without the hook, a broken Ingress): its approval is polled as without
/// hooks (10 s after it became pending), not left to the hour-long safety net.
#[tokio::test]
async fn a_deployment_no_hook_was_seen_for_is_polled_as_without_hooks() {
    let env = Env::start().await;
    let (op, addr) = start_hooked(&env, Duration::from_secs(3600)).await;
    let announce =
        json!({"object_kind": "deployment", "status": "approved", "deployment_id": 999_999})
            .to_string();
    assert_eq!(post_hook(addr, Some(HOOK_TOKEN), announce).await, 202);
    // Every delivery from now on is lost.
    env.gitlab
        .handle()
        .fault_hook_deliveries(HookFault::Drop, None);
    let (_approver, prod, _staging) = pending_and_settled(&env).await;
    let reads = reads_of(&env, prod);
    let deadline = Instant::now() + Duration::from_secs(15);
    while reads_of(&env, prod) == reads {
        assert!(
            Instant::now() < deadline,
            "no approval poll within 15 s: the unconfirmed deployment was left to the safety net"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    op.stop().await;
}

/// Hooks that stop arriving for a connection put its approvals back on polling's pace: a
/// deployment confirmed by its own hook sits on the hour-long safety net, then the project hook
/// breaks, and the operator's next write through the connection (another resource's create as
/// `running`) is answered by no hook within the echo wait.
#[tokio::test]
async fn a_connection_whose_hooks_stop_arriving_goes_back_to_polling_pace() {
    let env = Env::start().await;
    put_hook_secret(&env).await;
    let addr = free_port();
    let mut config = hooked_config(&env, addr, Duration::from_secs(3600));
    if let Some(webhook) = config.webhook.as_mut() {
        webhook.echo_wait = Duration::from_secs(1);
    }
    let op = env.start_operator_with(config);
    wait_listening(addr).await;
    add_project_hook(&env, addr).await;
    let announce =
        json!({"object_kind": "deployment", "status": "approved", "deployment_id": 999_999})
            .to_string();
    assert_eq!(post_hook(addr, Some(HOOK_TOKEN), announce).await, 202);
    let (_approver, prod, _staging) = pending_and_settled(&env).await;
    // Let the hooks of the creates settle first (one may outrun a status write: one GET).
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Polling would read 10 s after the approval became pending; the safety net does not.
    let reads = reads_of(&env, prod);
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(reads_of(&env, prod), reads, "on the safety net, not polled");

    env.gitlab
        .handle()
        .fault_hook_deliveries(HookFault::Drop, None);
    // A slow rollout of another workload: created as `running`, then `success`.
    env.apply_workload(
        "api",
        "registry.example/api:1.0.0",
        json!({"emulator.gitlab-operator.io/rollout-step": "1s"}),
    )
    .await;
    let mut spec = env.fixed_spec("dev", env.project.head());
    spec["target"]["name"] = json!("api");
    env.apply_gld("api-dev", spec).await;
    let broke = Instant::now();
    while reads_of(&env, prod) == reads {
        assert!(
            broke.elapsed() < Duration::from_secs(8),
            "still on the safety net 8 s after the connection's hooks stopped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    op.stop().await;
}

/// Two elected replicas, GitLab's project hook pointing at the standby only: the standby
/// checks the token and passes the hook on to the leader's receiver (its address is on the
/// lease), so the approval lands within a second, and what the leader learns from the hooks
/// (approval events, this deployment's hooks) slows its polling as with one replica. A forged
/// hook to the standby is refused there and costs nothing.
async fn a_hook_that_reaches_the_standby_takes_effect_on_the_leader(backend: Backend) {
    let env = Env::start_on(backend).await;
    put_hook_secret(&env).await;
    let safety_net = Duration::from_secs(2);
    let (addr_a, addr_b) = (free_port(), free_port());
    let a = env.start_elected_with("replica-a", hooked_config(&env, addr_a, safety_net));
    let b = env.start_elected_with("replica-b", hooked_config(&env, addr_b, safety_net));
    wait_listening(addr_a).await;
    wait_listening(addr_b).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(a.is_leader() || b.is_leader()) {
        assert!(Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ((leader, _), (standby, standby_addr)) = if a.is_leader() {
        ((a, addr_a), (b, addr_b))
    } else {
        ((b, addr_b), (a, addr_a))
    };
    add_project_hook(&env, standby_addr).await;

    // The standby learns the leader's receiver from the lease within a renewal or two.
    let announce =
        json!({"object_kind": "deployment", "status": "approved", "deployment_id": 999_999})
            .to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    while post_hook(standby_addr, Some(HOOK_TOKEN), announce.clone()).await != 202 {
        assert!(
            Instant::now() < deadline,
            "the standby never passed a hook on"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (approver, prod, _staging) = pending_and_settled(&env).await;
    // The leader heard the approval events and prod's own `running` hook through the standby:
    // the 2 s safety net, not polling's 10 s.
    let reads = reads_of(&env, prod);
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert!(
        reads_of(&env, prod) >= reads + 2,
        "the leader read {} times in 4.5 s",
        reads_of(&env, prod) - reads
    );

    // A forged hook to the standby: refused there, nothing read, nothing written.
    let before = env.glds().get("web-prod").await.unwrap();
    let gets = env
        .gitlab_calls()
        .iter()
        .filter(|r| r.route == Endpoint::GetDeployment)
        .count();
    let forged = json!({"object_kind": "deployment", "status": "approved", "deployment_id": prod})
        .to_string();
    let refused = standby.telemetry.webhook.count("unauthorized");
    assert_eq!(post_hook(standby_addr, Some("forged"), forged).await, 401);
    assert_eq!(standby.telemetry.webhook.count("unauthorized"), refused + 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_gets = env
        .gitlab_calls()
        .iter()
        .filter(|r| r.route == Endpoint::GetDeployment)
        .count();
    assert!(
        after_gets <= gets + 1,
        "a forged hook cost {} GETs (the safety net may read once meanwhile)",
        after_gets - gets
    );
    let after = env.glds().get("web-prod").await.unwrap();
    assert_eq!(
        after.status.as_ref().and_then(|s| s.approval.clone()),
        before.status.as_ref().and_then(|s| s.approval.clone()),
        "nothing was recorded"
    );

    // The approval: GitLab delivers it to the standby, the leader acts within a second.
    let forwarded = standby.telemetry.webhook.count("forwarded");
    let woken = leader.telemetry.webhook.count("woken");
    let started = Instant::now();
    env.review(&approver, prod, ApprovalStatus::Approved).await;
    env.wait_for_approval("web-prod", ApprovalState::Approved)
        .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the approval took {took:?} through the standby"
    );
    assert!(standby.telemetry.webhook.count("forwarded") > forwarded);
    assert!(leader.telemetry.webhook.count("woken") > woken);
    assert_eq!(
        standby.telemetry.webhook.count("woken"),
        0,
        "the standby acts on nothing itself"
    );
    let delivered = env.gitlab.handle().hook_deliveries();
    let approved = delivered
        .iter()
        .find(|d| d.event_status == "approved" && d.deployment_id == prod.get())
        .expect("GitLab delivered the approval event");
    assert_eq!(approved.response_status, Some(200), "{approved:?}");
    leader.stop().await;
    standby.stop().await;
}

/// Figures for docs/benchmarks.md (not a check): approve in GitLab → `Approved` on the
/// resource, with the receiver and with polling alone, over `SAMPLES` approvals given at random
/// moments 0–30 s after each became pending. Run with
/// `cargo nextest run --test webhooks --run-ignored only --no-capture approval_latency_figures`.
#[tokio::test]
#[ignore = "measures for ~1 minute; prints figures"]
async fn approval_latency_figures() {
    const SAMPLES: usize = 10;
    for mode in ["receiver", "receiver, hook to the standby", "polling"] {
        let env = Env::start().await;
        let net = Duration::from_secs(1800);
        let (op, standby) = match mode {
            "receiver" => (start_hooked(&env, net).await.0, None),
            "polling" => (env.start_operator(), None),
            _ => {
                put_hook_secret(&env).await;
                let (addr_a, addr_b) = (free_port(), free_port());
                let a = env.start_elected_with("replica-a", hooked_config(&env, addr_a, net));
                let b = env.start_elected_with("replica-b", hooked_config(&env, addr_b, net));
                wait_listening(addr_a).await;
                wait_listening(addr_b).await;
                while !(a.is_leader() || b.is_leader()) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // Let the standby read the leader's address from the lease.
                tokio::time::sleep(Duration::from_secs(1)).await;
                if a.is_leader() {
                    add_project_hook(&env, addr_b).await;
                    (a, Some(b))
                } else {
                    add_project_hook(&env, addr_a).await;
                    (b, Some(a))
                }
            }
        };
        let gl = env.gitlab.handle();
        let (approver, approver_token) = gl.add_user_with_token("approver");
        gl.add_member(env.project.id, approver, gitlab_emulator::Role::Developer);
        env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
            .await;
        for i in 0..SAMPLES {
            let environment = format!("prod-{i}");
            gl.protect_environment(
                env.project.id,
                &environment,
                vec![gitlab_emulator::DeployAccess::Role(
                    gitlab_emulator::Role::Maintainer,
                )],
                vec![gitlab_emulator::ApprovalRuleSpec::role(
                    gitlab_emulator::Role::Developer,
                    1,
                )],
            );
            env.apply_gld(
                &environment,
                env.fixed_spec(&environment, env.project.head()),
            )
            .await;
        }
        let mut samples = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..SAMPLES {
            let name = format!("prod-{i}");
            let pending = env.wait_for_approval(&name, ApprovalState::Pending).await;
            let id = deployment_id(&pending);
            let delay = Duration::from_millis(rand_millis(i, 30_000));
            let token = approver_token.clone();
            let client = env.client.clone();
            let base = env.gitlab.base_url();
            let project = env.project.id;
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                approve(&base, project, &token, id).await;
                let started = Instant::now();
                let api: Api<gitlab_deployment_operator::api::GitlabDeployment> =
                    Api::namespaced(client, NS);
                loop {
                    let gd = api.get(&name).await.unwrap();
                    if gd
                        .status
                        .as_ref()
                        .and_then(|s| s.approval.as_ref())
                        .is_some_and(|a| a.state == ApprovalState::Approved)
                    {
                        return started.elapsed();
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }));
        }
        for t in tasks {
            samples.push(t.await.unwrap());
        }
        samples.sort();
        let pct = |p: f64| {
            let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
            samples[i]
        };
        println!(
            "{mode}: approve → Approved over {} approvals: p50 {:?}, p99 {:?}, max {:?}",
            samples.len(),
            pct(0.5),
            pct(0.99),
            samples[samples.len() - 1]
        );
        if let Some(standby) = standby {
            assert!(standby.telemetry.webhook.count("forwarded") >= SAMPLES as u64);
            standby.stop().await;
        }
        op.stop().await;
    }
}

/// A spread of delays without a random number generator: sample `i` of a fixed sequence.
fn rand_millis(i: usize, max: u64) -> u64 {
    (u64::try_from(i).unwrap() * 7919 + 1237) % max
}

async fn approve(base: &str, project: u64, token: &str, id: DeploymentId) {
    let r = http()
        .post(format!(
            "{base}/api/v4/projects/{project}/deployments/{id}/approval"
        ))
        .header("PRIVATE-TOKEN", token)
        .json(&json!({"status": "approved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

both_backends!(a_hook_that_reaches_the_standby_takes_effect_on_the_leader);
