//! Load figures for the rollout simulator (not a test):
//! `cargo run --release -p kube-emulator --example sim_load -- [N] [K] [STEP_MS] [SETTLE_S]`
//!
//! Starts the emulator in-process, creates N Deployments (1 replica, 50 per namespace) through
//! HTTP, waits for them to settle (at most SETTLE_S seconds), then prints the process CPU
//! (from /proc/self/stat) while idle, a GET's latency under that load, and the CPU and rollout
//! durations while rolling K Deployments per second to new images for 20 s.
//! Defaults: N=5000, K=10, STEP_MS=2000 (the operator bench's pace), SETTLE_S=300.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_emulator::KubeEmulator;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const PER_NS: usize = 50;
const ROLL_SECONDS: u64 = 20;

/// utime + stime of this process, in seconds (clock ticks of 100 Hz).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime/stime are fields 14/15 overall.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn ns_name(i: usize) -> String {
    format!("load-{:03}", i / PER_NS)
}

fn name(i: usize) -> String {
    format!("app-{i:05}")
}

fn deployment(i: usize, image: &str) -> Deployment {
    let n = name(i);
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": n, "namespace": ns_name(i)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": n}},
            "template": {"metadata": {"labels": {"app": n}},
                "spec": {"containers": [{"name": "app", "image": image}]}},
        }
    }))
    .unwrap()
}

/// A Deployment has finished rolling out its current template (what `kubectl rollout status`
/// waits for).
fn complete(d: &Value) -> bool {
    let generation = d.pointer("/metadata/generation").and_then(Value::as_i64);
    let s = |p: &str| d.pointer(p).and_then(Value::as_i64);
    let progressing = d
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"))
        .and_then(|c| c["reason"].as_str())
        == Some("NewReplicaSetAvailable");
    generation.is_some()
        && s("/status/observedGeneration") == generation
        && s("/status/updatedReplicas") == Some(1)
        && s("/status/replicas") == Some(1)
        && s("/status/availableReplicas") == Some(1)
        && progressing
}

/// How many of the Deployments are complete, read straight from the store.
fn count_complete(emu: &KubeEmulator) -> usize {
    let state = emu.state();
    let inner = state.lock();
    let Some(res) = inner.resource("apps", "v1", "deployments") else {
        return 0;
    };
    inner
        .range(&res.storage, None)
        .filter(|(_, d)| complete(d))
        .count()
}

fn is_complete(emu: &KubeEmulator, i: usize) -> bool {
    let state = emu.state();
    let inner = state.lock();
    let Some(res) = inner.resource("apps", "v1", "deployments") else {
        return false;
    };
    let key = (res.storage.clone(), ns_name(i), name(i));
    inner.get(&key).is_some_and(|d| complete(d))
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// GET latencies of one Deployment, spread over `window`.
async fn get_latencies(api: &Api<Deployment>, n: &str, window: Duration) -> Vec<Duration> {
    let end = Instant::now() + window;
    let mut out = Vec::new();
    while Instant::now() < end {
        let t = Instant::now();
        api.get(n).await.unwrap();
        out.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(5000) as usize;
    let k = args.get(1).copied().unwrap_or(10) as usize;
    let step_ms = args.get(2).copied().unwrap_or(2000);
    let settle_s = args.get(3).copied().unwrap_or(300);
    println!("sim_load: N={n} K={k}/s step={step_ms}ms ({PER_NS} per namespace)");
    let emu = KubeEmulator::options()
        .rollout_step(Duration::from_millis(step_ms))
        .start()
        .await
        .unwrap();
    let client = emu.client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in 0..n.div_ceil(PER_NS) {
        let obj: Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns_name(ns * PER_NS)}})).unwrap();
        namespaces
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
    }
    let t = Instant::now();
    let cpu0 = cpu_seconds();
    stream::iter(0..n)
        .map(|i| {
            let api: Api<Deployment> = Api::namespaced(client.clone(), &ns_name(i));
            async move {
                api.create(&PostParams::default(), &deployment(i, "nginx:1.25"))
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    println!(
        "create: {n} deployments in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let settle_end = t + Duration::from_secs(settle_s);
    let mut done = 0;
    while Instant::now() < settle_end {
        done = count_complete(&emu);
        if done >= n {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let settle = t.elapsed().as_secs_f64();
    println!(
        "settle: {done}/{n} complete after {settle:.1}s (create+settle CPU {:.1}s, {:.0}% of a core)",
        cpu_seconds() - cpu0,
        100.0 * (cpu_seconds() - cpu0) / settle
    );

    // Idle: nothing changes, the simulator only has to notice that.
    let api0: Api<Deployment> = Api::namespaced(client.clone(), &ns_name(0));
    let c0 = cpu_seconds();
    let t0 = Instant::now();
    let mut lat = get_latencies(&api0, &name(0), Duration::from_secs(10)).await;
    let idle_cpu = (cpu_seconds() - c0) / t0.elapsed().as_secs_f64();
    println!(
        "idle: CPU {:.1}% of a core; GET p50 {:.2?} p99 {:.2?} ({} requests)",
        idle_cpu * 100.0,
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        lat.len()
    );

    // Rolling: K Deployments a second get a new image; time each rollout to completion.
    let rv0 = emu.state().lock().rv;
    let c0 = cpu_seconds();
    let t0 = Instant::now();
    let mut started: HashMap<usize, Instant> = HashMap::new();
    let mut durations: Vec<Duration> = Vec::new();
    let mut patch_lat: Vec<Duration> = Vec::new();
    let mut next = 0usize;
    let roll_end = t0 + Duration::from_secs(ROLL_SECONDS);
    let mut second = tokio::time::interval(Duration::from_secs(1));
    while Instant::now() < roll_end {
        second.tick().await;
        for _ in 0..k {
            let i = (next * 7919) % n;
            next += 1;
            if started.contains_key(&i) {
                continue;
            }
            let api: Api<Deployment> = Api::namespaced(client.clone(), &ns_name(i));
            let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.26"}]}}}});
            let tp = Instant::now();
            api.patch(&name(i), &PatchParams::default(), &Patch::Strategic(patch))
                .await
                .unwrap();
            patch_lat.push(tp.elapsed());
            started.insert(i, tp);
        }
        started.retain(|i, t| {
            // The patch bumped the generation: complete means the new one is observed.
            if is_complete(&emu, *i) {
                durations.push(t.elapsed());
                false
            } else {
                true
            }
        });
    }
    let roll_cpu = (cpu_seconds() - c0) / t0.elapsed().as_secs_f64();
    let drain_end = Instant::now() + Duration::from_secs(120);
    while !started.is_empty() && Instant::now() < drain_end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        started.retain(|i, t| {
            if is_complete(&emu, *i) {
                durations.push(t.elapsed());
                false
            } else {
                true
            }
        });
    }
    let finished = durations.len();
    let writes = emu.state().lock().rv - rv0;
    println!(
        "rolling: CPU {:.1}% of a core while rolling {k}/s for {ROLL_SECONDS}s; patch p50 {:.2?} p99 {:.2?}",
        roll_cpu * 100.0,
        pct(&mut patch_lat, 0.5),
        pct(&mut patch_lat, 0.99),
    );
    println!(
        "rollouts: {finished} complete, {} unfinished after 120s; {:.1} writes per rollout; duration p50 {:.2?} p99 {:.2?} max {:.2?}",
        started.len(),
        writes as f64 / finished.max(1) as f64,
        pct(&mut durations, 0.5),
        pct(&mut durations, 0.99),
        durations.last().copied().unwrap_or_default(),
    );
}
