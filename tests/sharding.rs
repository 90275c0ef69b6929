//! Label sharding (`--watch-label-selector`): shards each serve exactly the resources carrying
//! their label and elect their own leader on their own lease; the main instance (`!key`)
//! ignores sharded resources; a resource relabelled mid-rollout is handed over with one GitLab
//! deployment per revision; killing one shard's leader leaves the other shard alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use gitlab_deployment_operator::controller::shard::Shard;
use gitlab_emulator::Endpoint;
use harness::{Env, Operator, gitlab_status, until};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

const KEY: &str = "sharding.gitlab-operator.io/key";
const SHARD1: &str = "sharding.gitlab-operator.io/key=shard1";
const SHARD2: &str = "sharding.gitlab-operator.io/key=shard2";
const MAIN: &str = "!sharding.gitlab-operator.io/key";

/// A resource following Deployment `workload`, the sha read from its image tag.
fn spec(env: &Env, environment: &str, workload: &str) -> serde_json::Value {
    let mut spec = env.image_tag_spec(environment);
    spec["target"]["name"] = json!(workload);
    spec
}

fn shard_label(shard: Option<&str>) -> serde_json::Value {
    match shard {
        Some(value) => json!({ KEY: value }),
        None => json!({}),
    }
}

/// GitlabDeployments in the operator's caches (the sum of its `resources` gauge, refreshed
/// every 5 s).
fn cached_resources(op: &Operator) -> i64 {
    let text = gitlab_deployment_operator::metrics::encode(&op.telemetry.registry).unwrap();
    text.lines()
        .filter(|l| l.starts_with("gitlab_operator_resources{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
        .sum()
}

/// Followed workloads the operator caches whole (`cached_targets`, refreshed every 5 s).
fn cached_targets(op: &Operator) -> i64 {
    let text = gitlab_deployment_operator::metrics::encode(&op.telemetry.registry).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("gitlab_operator_cached_targets "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

/// Lists of Deployments the kube emulator has answered (watch requests are not lists).
fn deployment_lists(env: &Env) -> usize {
    env.emulator()
        .hooks()
        .requests()
        .iter()
        .filter(|r| r.verb == "list" && r.resource == "deployments")
        .count()
}

fn shard_metric(op: &Operator) -> String {
    let text = gitlab_deployment_operator::metrics::encode(&op.telemetry.registry).unwrap();
    text.lines()
        .find(|l| l.starts_with("gitlab_operator_shard_info{"))
        .unwrap_or_default()
        .to_owned()
}

async fn lease(env: &Env, selector: &str) -> Lease {
    let api: Api<Lease> = Api::namespaced(env.client.clone(), "kube-system");
    api.get(&Shard::new(Some(selector)).lease_name("leader"))
        .await
        .unwrap()
}

async fn relabel(env: &Env, name: &str, shard: &str) {
    env.glds()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": { KEY: shard }}})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn two_shards_each_reconcile_exactly_their_own_and_the_main_instance_ignores_sharded_ones() {
    let env = Env::start().await;
    let head = env.project.head().to_owned();
    let shard1 = env.start_elected_shard("shard1-a", Some(SHARD1));
    let shard2 = env.start_elected_shard("shard2-a", Some(SHARD2));
    let main = env.start_elected_shard("main-a", Some(MAIN));
    // Three selectors, three leases: every one leads at once, none waits for another.
    until("every shard leads", Duration::from_secs(10), || {
        shard1.is_leader() && shard2.is_leader() && main.is_leader()
    })
    .await;
    let names: BTreeSet<String> = [SHARD1, SHARD2, MAIN]
        .iter()
        .map(|s| Shard::new(Some(s)).lease_name("leader"))
        .collect();
    assert_eq!(names.len(), 3, "one lease per selector: {names:?}");
    for (selector, holder) in [(SHARD1, "shard1-a"), (SHARD2, "shard2-a"), (MAIN, "main-a")] {
        let held = lease(&env, selector).await.spec.unwrap().holder_identity;
        assert_eq!(held.as_deref(), Some(holder), "lease of {selector}");
    }

    let resources = [
        ("one", Some("shard1"), "shard1-a"),
        ("two", Some("shard2"), "shard2-a"),
        ("plain", None, "main-a"),
        ("other", Some("shard3"), ""),
    ];
    for (name, shard, _) in resources {
        env.apply_workload(name, &format!("registry.example/app:{head}"), json!({}))
            .await;
        env.apply_gld_labelled(name, shard_label(shard), spec(&env, name, name))
            .await;
    }
    for (name, _, instance) in resources.iter().filter(|r| !r.2.is_empty()) {
        env.wait_for(name, "success", |gd| {
            gitlab_status(gd).as_deref() == Some("success")
        })
        .await;
        env.wait_for_event(name, "DeploymentCreated").await;
        assert_eq!(
            env.event_instances(name).await,
            BTreeSet::from([(*instance).to_owned()]),
            "{name} is acted on by its shard only"
        );
        assert_eq!(env.gitlab_deployments(name).len(), 1, "{name}");
    }
    // A resource no shard selects is left alone by all of them, the main instance included.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let other = env.glds().get("other").await.unwrap();
    assert!(other.status.is_none(), "no shard serves shard3: {other:?}");
    assert!(env.gitlab_deployments("other").is_empty());
    assert!(env.event_instances("other").await.is_empty());
    // Each cache holds its own resource only.
    until("the resource gauges count", Duration::from_secs(8), || {
        [&shard1, &shard2, &main]
            .iter()
            .all(|op| cached_resources(op) == 1)
    })
    .await;
    assert!(shard_metric(&shard1).contains(&format!("shard=\"{SHARD1}\"")));
    assert!(shard_metric(&main).contains(&format!("shard=\"{MAIN}\"")));
    for op in [shard1, shard2, main] {
        op.stop().await;
    }
}

#[tokio::test]
async fn relabelling_mid_rollout_hands_over_with_one_gitlab_deployment_per_revision() {
    let env = Env::start().await;
    let shas = env.project.shas.clone();
    let slow = json!({"emulator.gitlab-operator.io/rollout-step": "700ms"});
    let shard1 = env.start_elected_shard("shard1-a", Some(SHARD1));
    let shard2 = env.start_elected_shard("shard2-a", Some(SHARD2));
    until("both shards lead", Duration::from_secs(10), || {
        shard1.is_leader() && shard2.is_leader()
    })
    .await;
    let names = ["r0", "r1", "r2", "r3"];
    for name in names {
        env.apply_workload(
            name,
            &format!("registry.example/app:{}", shas[2]),
            slow.clone(),
        )
        .await;
        env.apply_gld_labelled(name, shard_label(Some("shard1")), spec(&env, name, name))
            .await;
    }
    // Revision 1 rolls out under shard1; halfway it moves to shard2.
    for name in names {
        env.wait_for(name, "running under shard1", |gd| {
            gitlab_status(gd).as_deref() == Some("running")
        })
        .await;
        relabel(&env, name, "shard2").await;
    }
    for name in names {
        env.wait_for(name, "revision 1 success", |gd| {
            gitlab_status(gd).as_deref() == Some("success")
                && gd.status.as_ref().unwrap().deployment.as_ref().unwrap().sha == shas[2]
        })
        .await;
    }
    // Revision 2 starts under shard2 and moves back to shard1 while it rolls out.
    for name in names {
        env.apply_workload(
            name,
            &format!("registry.example/app:{}", shas[3]),
            slow.clone(),
        )
        .await;
    }
    for name in names {
        env.wait_for(name, "revision 2 running", |gd| {
            gitlab_status(gd).as_deref() == Some("running")
                && gd.status.as_ref().unwrap().deployment.as_ref().unwrap().sha == shas[3]
        })
        .await;
        relabel(&env, name, "shard1").await;
    }
    for name in names {
        env.wait_for(name, "revision 2 success", |gd| {
            gitlab_status(gd).as_deref() == Some("success")
                && gd.status.as_ref().unwrap().deployment.as_ref().unwrap().sha == shas[3]
        })
        .await;
        let deployments = env.gitlab_deployments(name);
        let seen: Vec<(&str, &str)> = deployments
            .iter()
            .map(|d| (d.sha.as_str(), d.status.as_str()))
            .collect();
        assert_eq!(
            seen,
            vec![(shas[2].as_str(), "success"), (shas[3].as_str(), "success")],
            "{name}: one deployment per revision, no lost transition"
        );
        let instances = env.event_instances(name).await;
        assert_eq!(
            instances,
            BTreeSet::from(["shard1-a".to_owned(), "shard2-a".to_owned()]),
            "{name} was served by both shards in turn"
        );
    }
    assert_eq!(
        env.gitlab.handle().count(Endpoint::CreateDeployment),
        2 * names.len()
    );
    shard1.stop().await;
    shard2.stop().await;
}

#[tokio::test]
async fn killing_one_shards_leader_leaves_the_other_shard_alone_and_its_standby_takes_over() {
    let env = Env::start().await;
    let shas = env.project.shas.clone();
    let slow = json!({"emulator.gitlab-operator.io/rollout-step": "700ms"});
    let one_a = env.start_elected_shard("shard1-a", Some(SHARD1));
    until("shard1-a leads", Duration::from_secs(10), || {
        one_a.is_leader()
    })
    .await;
    let one_b = env.start_elected_shard("shard1-b", Some(SHARD1));
    let two = env.start_elected_shard("shard2-a", Some(SHARD2));
    until("shard2 leads", Duration::from_secs(10), || two.is_leader()).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!one_b.is_leader(), "shard1-b is shard1's standby");
    let two_before = lease(&env, SHARD2).await.spec.unwrap();

    for (name, shard) in [("a", "shard1"), ("b", "shard2")] {
        env.apply_workload(
            name,
            &format!("registry.example/app:{}", shas[2]),
            slow.clone(),
        )
        .await;
        env.apply_gld_labelled(name, shard_label(Some(shard)), spec(&env, name, name))
            .await;
    }
    for name in ["a", "b"] {
        env.wait_for(name, "running", |gd| {
            gitlab_status(gd).as_deref() == Some("running")
        })
        .await;
    }
    one_a.kill();
    let killed = tokio::time::Instant::now();
    // The harness's lease is 3 s; the standby takes it once it has seen no renewal that long.
    until(
        "shard1's standby takes over within its lease",
        Duration::from_secs(5),
        || one_b.is_leader(),
    )
    .await;
    assert!(
        killed.elapsed() < Duration::from_secs(3) + Duration::from_secs(1),
        "took {:?}",
        killed.elapsed()
    );
    for name in ["a", "b"] {
        env.wait_for(name, "success", |gd| {
            gitlab_status(gd).as_deref() == Some("success")
        })
        .await;
        assert_eq!(
            env.gitlab_deployments(name).len(),
            1,
            "{name}: no duplicate"
        );
        assert_eq!(env.gitlab_deployments(name)[0].status, "success");
    }
    assert!(two.is_leader(), "shard2 kept leading throughout");
    let two_after = lease(&env, SHARD2).await.spec.unwrap();
    assert_eq!(
        (two_after.holder_identity, two_after.lease_transitions),
        (two_before.holder_identity, two_before.lease_transitions),
        "shard2's lease never changed hands"
    );
    assert_eq!(
        env.event_instances("b").await,
        BTreeSet::from(["shard2-a".to_owned()]),
        "shard2's resource saw only shard2"
    );
    assert_eq!(
        env.event_instances("a").await,
        BTreeSet::from(["shard1-a".to_owned(), "shard1-b".to_owned()])
    );
    one_b.stop().await;
    two.stop().await;
}

#[tokio::test]
async fn each_shard_caches_only_the_workloads_its_own_resources_follow() {
    let env = Env::start().await;
    let shas = env.project.shas.clone();
    // Four workloads in one namespace, there before any shard starts.
    for name in ["a", "b", "c", "d"] {
        env.apply_workload(
            name,
            &format!("registry.example/app:{}", shas[2]),
            json!({}),
        )
        .await;
    }
    let shard1 = env.start_elected_shard("shard1-a", Some(SHARD1));
    let shard2 = env.start_elected_shard("shard2-a", Some(SHARD2));
    until("both shards lead", Duration::from_secs(10), || {
        shard1.is_leader() && shard2.is_leader()
    })
    .await;
    for (name, shard) in [("a", "shard1"), ("b", "shard2")] {
        env.apply_gld_labelled(name, shard_label(Some(shard)), spec(&env, name, name))
            .await;
    }
    for name in ["a", "b"] {
        env.wait_for(name, "success", |gd| {
            gitlab_status(gd).as_deref() == Some("success")
        })
        .await;
    }
    // Both watch the namespace's Deployments; each keeps whole only the one it follows.
    until(
        "each shard caches one workload",
        Duration::from_secs(8),
        || cached_targets(&shard1) == 1 && cached_targets(&shard2) == 1,
    )
    .await;

    // A resource of shard1 starts following `c`, which shard1 holds only by key: read by
    // name once (one list with a name selector), not on every reconcile.
    let lists_before = deployment_lists(&env);
    env.apply_gld_labelled("c", shard_label(Some("shard1")), spec(&env, "c", "c"))
        .await;
    env.wait_for("c", "success", |gd| {
        gitlab_status(gd).as_deref() == Some("success")
    })
    .await;
    until(
        "shard1 caches two workloads",
        Duration::from_secs(8),
        || cached_targets(&shard1) == 2 && cached_targets(&shard2) == 1,
    )
    .await;
    assert_eq!(deployment_lists(&env) - lists_before, 1, "one read by name");
    assert_eq!(env.gitlab_deployments("c").len(), 1);

    // Its next rollout comes through the watch (which now keeps it whole): reported as usual.
    env.apply_workload("c", &format!("registry.example/app:{}", shas[3]), json!({}))
        .await;
    env.wait_for("c", "revision 2 success", |gd| {
        gitlab_status(gd).as_deref() == Some("success")
            && gd.status.as_ref().unwrap().deployment.as_ref().unwrap().sha == shas[3]
    })
    .await;
    assert_eq!(deployment_lists(&env) - lists_before, 1, "no further read");
    let seen: Vec<(String, String)> = env
        .gitlab_deployments("c")
        .iter()
        .map(|d| (d.sha.clone(), d.status.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (shas[2].clone(), "success".to_owned()),
            (shas[3].clone(), "success".to_owned())
        ]
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!((cached_targets(&shard1), cached_targets(&shard2)), (2, 1));
    shard1.stop().await;
    shard2.stop().await;
}

#[tokio::test]
async fn a_malformed_selector_stops_the_start_with_a_message_that_says_how_to_write_it() {
    use gitlab_deployment_operator::admin::AdminState;
    use gitlab_deployment_operator::controller::run::{RunConfig, RunError, Telemetry, run};
    let env = Env::start().await;
    let config = RunConfig {
        shard: Shard::new(Some("sharding.gitlab-operator.io/key in shard1")),
        ..env.config()
    };
    let telemetry = Telemetry::default();
    let admin = AdminState::new(std::sync::Arc::clone(&telemetry.registry));
    let stop = tokio_util::sync::CancellationToken::new();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        run(env.client.clone(), config, &telemetry, admin, stop),
    )
    .await
    .expect("fails at once, not in a watch retry loop");
    let err = result.expect_err("the API server refuses the selector");
    assert!(matches!(err, RunError::Selector { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("--watch-label-selector"), "{message}");
    assert!(message.contains("key in shard1"), "{message}");
}
