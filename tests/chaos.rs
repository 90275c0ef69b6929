//! Chaos: many rollouts across many GitlabDeployments while the operator (a separate process)
//! is SIGKILLed at random moments and restarted, GitLab answers ~30 % 5xx with 429 bursts and
//! slow answers, watches are dropped and forced to 410, and the kube API is slow and flaky.
//! Afterwards the GitLab emulator's records must show exactly one deployment per revision, a
//! final status matching each rollout's outcome, superseded ones canceled, and every resource
//! Ready or Stalled with a reason. See docs/chaos.md for the forms, the seed and the counting.
//!
//! - `chaos_short` (CI): 10 resources x 4 rollouts = 40 rollouts, every fault kind.
//! - `chaos_full` (ignored): 50 x 4 = 200 rollouts;
//!   `cargo nextest run -p gitlab-deployment-operator --run-ignored only -E 'test(chaos_full)' --no-capture`.
//!
//! `CHAOS_SEED=<n>` replays a run's decisions (outcomes, pauses, kill moments, faults); thread
//! timing still differs between runs, so a replay is likely, not certain, to hit the same bug.
//!
//! `chaos_short` runs on both backends (`chaos_short::emulator`, `chaos_short::real`): on the
//! real control plane the deployment controller and the fake kubelet roll out, and the kube
//! faults (dropped and expired watches, 503s, latency) are left out: they are the emulator's
//! hooks, and the real apiserver has no way to produce them on demand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;
#[path = "chaos/faults.rs"]
mod monkeys;
#[path = "chaos/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gitlab_deployment_operator::api::GitlabDeployment;
use harness::{Backend, Env};
use kube::api::Api;
use process::OperatorProcess;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Success,
    Failed,
    /// A newer image was applied while this one still rolled out.
    Superseded,
}

#[derive(Debug)]
struct Rollout {
    environment: String,
    sha: String,
    outcome: Outcome,
    /// The final status GitLab showed when the driver moved on (success/failed rollouts only).
    seen: Option<String>,
}

struct Shape {
    resources: usize,
    rollouts_per_resource: usize,
    /// SIGKILL after this many milliseconds of life (uniform in the range).
    kill_after_ms: std::ops::Range<u64>,
}

fn seed() -> u64 {
    std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

fn gld_spec(env: &Env, environment: &str, workload: &str) -> serde_json::Value {
    json!({
        "project": env.project.path, "environment": environment, "ref": "main",
        "revisionFrom": {"container": "app"},
        "target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload}
    })
}

/// The GitLab deployment of (environment, sha) once it has a final status.
fn final_status(env: &Env, environment: &str, sha: &str) -> Option<String> {
    env.gitlab
        .handle()
        .deployments()
        .into_iter()
        .filter(|d| d.environment == environment && d.sha == sha)
        .map(|d| d.status)
        .find(|s| matches!(s.as_str(), "success" | "failed" | "canceled"))
}

/// One resource's life: its rollouts one after another, each success/fail rollout waited for
/// until GitLab shows a final status (or a generous deadline), superseded ones replaced after a
/// short random pause while they still roll out.
async fn drive(env: Arc<Env>, index: usize, shas: Vec<String>, seed: u64) -> Vec<Rollout> {
    let mut rng = StdRng::seed_from_u64(seed);
    let workload = format!("web-{index}");
    let environment = format!("env-{index}");
    let mut done = Vec::new();
    for (k, sha) in shas.iter().enumerate() {
        let last = k + 1 == shas.len();
        let roll: f64 = rng.random();
        let outcome = if roll < 0.6 || (last && roll >= 0.8) {
            Outcome::Success
        } else if roll < 0.8 {
            Outcome::Failed
        } else {
            Outcome::Superseded
        };
        let extra = match outcome {
            Outcome::Success => json!({"emulator.gitlab-operator.io/rollout-step": "150ms"}),
            Outcome::Failed => json!({"emulator.gitlab-operator.io/rollout-outcome": "fail"}),
            // Slow enough (two replicas, 1 s a step) that it cannot finish before the next one.
            Outcome::Superseded => json!({"emulator.gitlab-operator.io/rollout-step": "1s"}),
        };
        env.apply_workload(&workload, &format!("registry.example/app:{sha}"), extra)
            .await;
        if k == 0 {
            env.apply_gld(
                &format!("gld-{index}"),
                gld_spec(&env, &environment, &workload),
            )
            .await;
        }
        let seen = match outcome {
            Outcome::Superseded => {
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..900))).await;
                None
            }
            Outcome::Success | Outcome::Failed => {
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    if let Some(status) = final_status(&env, &environment, sha) {
                        break Some(status);
                    }
                    if Instant::now() > deadline {
                        eprintln!("chaos: {environment} {sha} not reported within 60 s");
                        break None;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        done.push(Rollout {
            environment: environment.clone(),
            sha: sha.clone(),
            outcome,
            seen,
        });
    }
    done
}

/// Ready=True, or Stalled=True with a reason.
fn settled(gd: &GitlabDeployment) -> bool {
    let Some(status) = gd.status.as_ref() else {
        return false;
    };
    let current = status.observed_generation == gd.metadata.generation;
    let has = |t: &str| {
        status
            .conditions
            .iter()
            .any(|c| c.type_ == t && c.status == "True" && !c.reason.is_empty())
    };
    current && (has("Ready") || has("Stalled"))
}

async fn chaos(shape: Shape, backend: Backend) {
    let started = Instant::now();
    let seed = seed();
    println!(
        "chaos: seed {seed} (replay with CHAOS_SEED={seed}); {} resources x {} rollouts on {backend:?}",
        shape.resources, shape.rollouts_per_resource
    );
    let env = Arc::new(Env::start_on(backend).await);
    let gl = env.gitlab.handle();
    let hooks = env.kube.as_ref().map(|kube| kube.hooks());
    let shas = gl.push_commits(env.project.id, "main", shape.rollouts_per_resource);

    let log =
        std::env::temp_dir().join(format!("chaos-operator-{seed}-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let serving = match backend {
        Backend::Emulator => Vec::new(),
        Backend::Real => vec![env.ns.clone()],
    };
    let op = Arc::new(tokio::sync::Mutex::new(
        OperatorProcess::new(&env.kubeconfig_path(), env.gitlab.addr(), log.clone())
            .serving(serving),
    ));
    println!("chaos: operator log {}", log.display());
    {
        let mut op = op.lock().await;
        op.start();
        assert!(
            op.wait_ready(Duration::from_secs(30)).await,
            "operator ready"
        );
    }

    let stop = CancellationToken::new();
    let faults = tokio::spawn(monkeys::run(
        seed ^ 0x5eed,
        gl.clone(),
        hooks.clone(),
        stop.clone(),
    ));
    // The killer: SIGKILL after `kill_after_ms` of life, restart after 0.1-1.5 s.
    let kill_after = shape.kill_after_ms.clone();
    let killer = {
        let op = Arc::clone(&op);
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed ^ 0xdead);
            let mut downtime = Duration::ZERO;
            loop {
                let up = Duration::from_millis(rng.random_range(kill_after.clone()));
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(up) => {}
                }
                let down = Duration::from_millis(rng.random_range(100..1500));
                let mut op = op.lock().await;
                op.kill().await;
                tokio::time::sleep(down).await;
                downtime += down;
                op.start();
            }
            downtime
        })
    };

    let drivers: Vec<_> = (0..shape.resources)
        .map(|i| {
            tokio::spawn(drive(
                Arc::clone(&env),
                i,
                shas.clone(),
                seed.wrapping_add(i as u64 + 1),
            ))
        })
        .collect();
    let mut rollouts = Vec::new();
    for d in drivers {
        rollouts.extend(d.await.expect("driver task"));
    }
    let chaos_time = started.elapsed();
    stop.cancel();
    let fault_counts = faults.await.expect("fault task");
    let downtime = killer.await.expect("killer task");
    monkeys::calm(&gl, hooks.as_ref());
    let (gl_total, gl_5xx, gl_429) = monkeys::measured_error_share(&gl);

    // Calm: the operator (still or freshly running) must bring everything to rest.
    {
        let mut op = op.lock().await;
        if !op.is_running() {
            op.start();
        }
        assert!(
            op.wait_ready(Duration::from_secs(30)).await,
            "operator ready after the chaos; log {}",
            log.display()
        );
    }
    let api: Api<GitlabDeployment> = Api::namespaced(env.client.clone(), &env.ns);
    let deadline = Instant::now() + Duration::from_secs(90);
    let environments: Vec<String> = (0..shape.resources).map(|i| format!("env-{i}")).collect();
    loop {
        let list = api.list(&Default::default()).await.unwrap().items;
        let all_settled = list.len() == shape.resources && list.iter().all(settled);
        let none_running = !gl
            .deployments()
            .iter()
            .any(|d| environments.contains(&d.environment) && d.status == "running");
        if all_settled && none_running {
            break;
        }
        if Instant::now() > deadline {
            break; // the checks below say what is stuck
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    op.lock().await.assert_alive();

    // ---- verdict, from GitLab's records ----
    let records = gl.deployments();
    let mut problems = Vec::new();
    let mut by_revision: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    // For a problem's message: which deployments, created and updated when (to match the
    // operator log).
    let mut when: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for d in records
        .iter()
        .filter(|d| environments.contains(&d.environment))
    {
        by_revision
            .entry((d.environment.clone(), d.sha.clone()))
            .or_default()
            .push(d.status.clone());
        when.entry((d.environment.clone(), d.sha.clone()))
            .or_default()
            .push(format!(
                "id {} {} created {} updated {}",
                d.id,
                d.status,
                d.created_at.format("%H:%M:%S%.3f"),
                d.updated_at.format("%H:%M:%S%.3f")
            ));
    }
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rollouts {
        let got = by_revision
            .remove(&(r.environment.clone(), r.sha.clone()))
            .unwrap_or_default();
        let key = match (r.outcome, got.as_slice()) {
            (_, many) if many.len() > 1 => {
                problems.push(format!(
                    "{} {}: {} GitLab deployments {many:?} ({:?})",
                    r.environment,
                    r.sha,
                    many.len(),
                    when.get(&(r.environment.clone(), r.sha.clone()))
                ));
                "duplicate"
            }
            (Outcome::Success, [s]) if s == "success" => "success reported",
            (Outcome::Failed, [s]) if s == "failed" => "failed reported",
            (Outcome::Superseded, [s]) if s == "canceled" => "superseded canceled",
            (Outcome::Superseded, []) => "superseded never seen",
            (outcome, got) => {
                problems.push(format!(
                    "{} {}: expected {outcome:?}, GitLab has {got:?} (when the driver moved on: {:?})",
                    r.environment, r.sha, r.seen
                ));
                "wrong"
            }
        };
        *tally.entry(key).or_default() += 1;
    }
    for ((environment, sha), statuses) in by_revision {
        problems.push(format!(
            "{environment} {sha}: GitLab deployments {statuses:?} for a revision never rolled out"
        ));
    }
    for gd in api.list(&Default::default()).await.unwrap().items {
        if !settled(&gd) {
            problems.push(format!(
                "{} is stuck: {}",
                gd.metadata.name.clone().unwrap_or_default(),
                serde_json::to_string(&gd.status.as_ref().map(|s| &s.conditions)).unwrap()
            ));
        }
    }
    let (kills, starts, mut reconciles) = {
        let op = op.lock().await;
        (op.kills, op.starts, op.reconciles)
    };
    if let Some(n) = op.lock().await.scrape_reconciles().await {
        reconciles += n;
    }
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for r in &rollouts {
        *outcomes.entry(format!("{:?}", r.outcome)).or_default() += 1;
    }
    println!("chaos: {} rollouts {outcomes:?}", rollouts.len());
    println!("chaos: verdicts {tally:?}");
    println!(
        "chaos: operator SIGKILLed {kills} times ({starts} starts, {:.1} s down), {reconciles} reconciles",
        downtime.as_secs_f64()
    );
    println!(
        "chaos: GitLab answered {gl_total} requests, {gl_5xx} 5xx ({:.0} %), {gl_429} 429",
        100.0 * gl_5xx as f64 / gl_total.max(1) as f64
    );
    println!("chaos: faults {fault_counts:?}");
    println!(
        "chaos: {:.0} s under chaos, {:.0} s in all",
        chaos_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    op.lock().await.kill().await;
    assert!(
        problems.is_empty(),
        "seed {seed}: {} problems (operator log {}):\n{}",
        problems.len(),
        log.display(),
        problems.join("\n")
    );
    assert!(kills > 0, "the operator was killed at least once");
    let missing = fault_counts.missing(hooks.is_some());
    assert!(
        missing.is_empty(),
        "fault kinds that never fired: {missing:?}"
    );
    let _ = std::fs::remove_file(&log);
}

/// CI form: 40 rollouts across 10 resources, every fault kind, well under 3 minutes.
const SHORT: Shape = Shape {
    resources: 10,
    rollouts_per_resource: 4,
    kill_after_ms: 1500..5000,
};

mod chaos_short {
    use super::{Backend, SHORT, chaos};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn emulator() {
        chaos(SHORT, Backend::Emulator).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn real() {
        chaos(SHORT, Backend::Real).await;
    }
}

/// The full form: 200 rollouts across 50 resources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full chaos run (several minutes): cargo nextest run -p gitlab-deployment-operator --run-ignored only -E 'test(chaos_full)' --no-capture"]
async fn chaos_full() {
    chaos(
        Shape {
            resources: 50,
            rollouts_per_resource: 4,
            // Five times the resources: a restarted operator re-reconciles all 50 and recovers
            // every interrupted create (7 s grace; 3 s when this was measured) before it makes progress, so it needs longer
            // lives than in the short form (with 1.5-5 s, 26 of 176 revisions went unreported
            // within 60 s; none was duplicated or wrong).
            kill_after_ms: 5000..15000,
        },
        Backend::Emulator,
    )
    .await;
}

/// Found by `chaos_short` (seed 12920504249689495242: a success and a failed deployment ended
/// `canceled` in GitLab). Reproduced deterministically: GitLab applies `PUT status=success`
/// but the answer is a 502 (a proxy timing out in front of it); then a new revision arrives.
/// The first deployment must stay `success` in GitLab.
#[tokio::test]
async fn a_success_answered_502_is_not_canceled_by_the_next_revision() {
    use gitlab_emulator::{Endpoint, Fault};
    let env = Env::start().await;
    let shas = env.project.shas.clone();
    env.apply_workload(
        "web",
        &format!("registry.example/app:{}", shas[2]),
        json!({"emulator.gitlab-operator.io/rollout-step": "300ms"}),
    )
    .await;
    let gl = env.gitlab.handle();
    let op = env.start_operator();
    env.apply_gld("web", env.image_tag_spec("prod")).await;
    env.wait_for("web", "running", |gd| {
        harness::gitlab_status(gd).as_deref() == Some("running")
    })
    .await;
    // GitLab records the next PUT, but its answer is a 502, and so is the retry's.
    gl.inject_fault(
        Fault::status(502)
            .on(Endpoint::UpdateDeployment)
            .after_processing()
            .times(3),
    );
    gl.wait_for(Duration::from_secs(20), |h| {
        h.deployments()
            .iter()
            .any(|d| d.sha == shas[2] && d.status == "success")
            .then_some(())
    })
    .await
    .expect("GitLab records success");
    // Let the operator settle on whatever it concluded, then roll a new revision.
    tokio::time::sleep(Duration::from_secs(3)).await;
    env.apply_workload(
        "web",
        &format!("registry.example/app:{}", shas[3]),
        json!({}),
    )
    .await;
    second_revision_leaves_the_first_finished(&env, &shas).await;
    op.stop().await;
}

/// Found by `chaos_short` (seed 12920504249689495242: a success and a failed deployment ended
/// `canceled` in GitLab). The state a SIGKILL right after `PUT status=success` leaves: GitLab
/// says success, the resource's status still says running. A new revision arrives before the
/// operator is back. The restarted operator supersedes the old deployment from its recorded
/// `running` without re-reading it, and GitLab accepts success -> canceled: its history now
/// says a deployment that succeeded was canceled.
#[tokio::test]
async fn a_success_reported_just_before_a_kill_is_not_canceled_by_the_next_revision() {
    use gitlab_deployment_operator::gitlab::{GitlabClient, ProjectId, Token, WriteStatus};
    let env = Env::start().await;
    let shas = env.project.shas.clone();
    env.apply_workload(
        "web",
        &format!("registry.example/app:{}", shas[2]),
        json!({"emulator.gitlab-operator.io/rollout-step": "1s"}),
    )
    .await;
    let op = env.start_operator();
    env.apply_gld("web", env.image_tag_spec("prod")).await;
    let running = env
        .wait_for("web", "running", |gd| {
            harness::gitlab_status(gd).as_deref() == Some("running")
        })
        .await;
    let id = running.status.unwrap().deployment.unwrap().id;
    op.stop().await;
    // What the operator did just before it died: GitLab now says success.
    let client = GitlabClient::builder(
        env.gitlab.base_url(),
        Token::private(&env.project.maintainer_token),
    )
    .build()
    .unwrap();
    client
        .update_deployment_status(
            &ProjectId::Id(env.project.id),
            id.get(),
            WriteStatus::Success,
        )
        .await
        .unwrap();
    // The next revision, while the operator is down.
    env.apply_workload(
        "web",
        &format!("registry.example/app:{}", shas[3]),
        json!({}),
    )
    .await;
    let op = env.start_operator();
    second_revision_leaves_the_first_finished(&env, &shas).await;
    op.stop().await;
}

/// The revision `shas[3]` succeeds in GitLab and the finished deployment of `shas[2]` is still
/// `success` (never rewritten to `canceled` by the superseding rollout).
async fn second_revision_leaves_the_first_finished(env: &Env, shas: &[String]) {
    env.wait_for("web", "second revision success", |gd| {
        harness::gitlab_status(gd).as_deref() == Some("success")
            && gd.status.as_ref().unwrap().deployment.as_ref().unwrap().sha == shas[3]
    })
    .await;
    let first: Vec<_> = env
        .gitlab_deployments("prod")
        .into_iter()
        .filter(|d| d.sha == shas[2])
        .map(|d| d.status)
        .collect();
    assert_eq!(first, ["success"], "the finished deployment was changed");
}
