//! Two operator replicas against the GitLab emulator and, as a parameter, the kube emulator or
//! real Kubernetes: only the leader acts, and a leader killed mid-rollout is replaced without a
//! duplicate GitLab deployment or a lost transition.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod harness;

use std::time::Duration;

use gitlab_emulator::Endpoint;
use harness::{Backend, Env, Operator, gitlab_status, until};
use serde_json::json;

/// How long a leader change may take here.
const LEADER_WITHIN: Duration = Duration::from_secs(20);

fn leader_of<'a>(a: &'a Operator, b: &'a Operator) -> Option<&'a str> {
    match (a.is_leader(), b.is_leader()) {
        (true, false) => Some("a"),
        (false, true) => Some("b"),
        (false, false) => None,
        (true, true) => panic!("two leaders at once"),
    }
}

async fn only_one_replica_leads_and_a_killed_leader_is_replaced_without_duplicates(
    backend: Backend,
) {
    let env = Env::start_on(backend).await;
    let a = env.start_elected("replica-a");
    let b = env.start_elected("replica-b");
    until("a leader is elected", LEADER_WITHIN, || {
        leader_of(&a, &b).is_some()
    })
    .await;
    // Give the follower a few rounds: it must stay a follower.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let first = leader_of(&a, &b).unwrap();
    let (leader, follower) = if first == "a" { (a, b) } else { (b, a) };

    // A slow rollout: the leader creates the GitLab deployment, then dies mid-rollout.
    env.apply_workload(
        "web",
        "registry.example/app:1",
        json!({"emulator.gitlab-operator.io/rollout-step": "700ms"}),
    )
    .await;
    env.apply_gld("web-staging", env.fixed_spec("staging", env.project.head()))
        .await;
    env.wait_for("web-staging", "running", |gd| {
        gitlab_status(gd).as_deref() == Some("running")
    })
    .await;
    leader.kill();
    until(
        "the follower takes over within the lease duration",
        LEADER_WITHIN,
        || follower.is_leader(),
    )
    .await;
    env.wait_for("web-staging", "success reported by the new leader", |gd| {
        gitlab_status(gd).as_deref() == Some("success")
    })
    .await;
    let deployments = env.gitlab_deployments("staging");
    assert_eq!(deployments.len(), 1, "no duplicate: {deployments:?}");
    assert_eq!(deployments[0].status, "success", "no lost transition");
    assert_eq!(env.gitlab.handle().count(Endpoint::CreateDeployment), 1);
    follower.stop().await;
}

async fn a_leader_that_stops_gracefully_hands_over_within_a_couple_of_seconds(backend: Backend) {
    let env = Env::start_on(backend).await;
    let a = env.start_elected("replica-a");
    until("a leads", LEADER_WITHIN, || a.is_leader()).await;
    let b = env.start_elected("replica-b");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!b.is_leader(), "b follows while a leads");
    let stopped = tokio::time::Instant::now();
    a.stop().await;
    until("b takes the released lease", LEADER_WITHIN, || {
        b.is_leader()
    })
    .await;
    // The lease is 3 s here; a release must hand over well before it would expire.
    assert!(
        stopped.elapsed() < Duration::from_secs(2),
        "hand-over took {:?}",
        stopped.elapsed()
    );
    b.stop().await;
}

both_backends!(
    only_one_replica_leads_and_a_killed_leader_is_replaced_without_duplicates,
    a_leader_that_stops_gracefully_hands_over_within_a_couple_of_seconds,
);
