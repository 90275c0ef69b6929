//! Benchmark (not a test): `cargo run --release -p kube-emulator --example bench`.
//! 10,000 ConfigMaps, 100 concurrent watches: list latency p50/p99, watch fan-out latency, RSS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube_emulator::KubeEmulator;
use serde_json::json;
use std::time::{Duration, Instant};

const OBJECTS: usize = 10_000;
const WATCHES: usize = 100;
const LISTS: usize = 30;
const WRITES: usize = 50;

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<f64>()
                    .unwrap_or(0.0)
            })
        })
        .unwrap_or(0.0)
        / 1024.0
}

#[tokio::main]
async fn main() {
    let emu = KubeEmulator::start().await.unwrap();
    let client = emu.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let rss0 = rss_mib();
    let t = Instant::now();
    stream::iter(0..OBJECTS)
        .map(|i| {
            let api = api.clone();
            async move {
                let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("cm-{i:05}"), "labels": {"app": "bench", "shard": (i % 10).to_string()}}, "data": {"key": "x".repeat(64)}})).unwrap();
                api.create(&PostParams::default(), &cm).await.unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let create_elapsed = t.elapsed();
    let rss_loaded = rss_mib();

    let mut full = Vec::new();
    for _ in 0..LISTS {
        let t = Instant::now();
        let l = api.list(&ListParams::default()).await.unwrap();
        assert_eq!(l.items.len(), OBJECTS);
        full.push(t.elapsed());
    }
    let mut paged = Vec::new();
    for _ in 0..LISTS {
        let t = Instant::now();
        let l = api.list(&ListParams::default().limit(500)).await.unwrap();
        assert_eq!(l.items.len(), 500);
        paged.push(t.elapsed());
    }
    let mut selected = Vec::new();
    for _ in 0..LISTS {
        let t = Instant::now();
        let l = api
            .list(&ListParams::default().labels("shard=3"))
            .await
            .unwrap();
        assert_eq!(l.items.len(), OBJECTS / 10);
        selected.push(t.elapsed());
    }

    // 100 watches from the current RV; each write's ADDED is timed at every watcher.
    let rv = api
        .list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let mut tasks = Vec::new();
    for _ in 0..WATCHES {
        let api = api.clone();
        let tx = tx.clone();
        let rv = rv.clone();
        tasks.push(tokio::spawn(async move {
            let s = api
                .watch(&WatchParams::default().timeout(290), &rv)
                .await
                .unwrap();
            let mut s = std::pin::pin!(s);
            while let Ok(Some(ev)) = s.try_next().await {
                if let WatchEvent::Added(cm) = ev {
                    let _ = tx.send((cm.metadata.name.unwrap_or_default(), Instant::now()));
                }
            }
        }));
    }
    drop(tx);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_watching = rss_mib();
    let mut fanout = Vec::new();
    for i in 0..WRITES {
        let name = format!("probe-{i}");
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        let t = Instant::now();
        api.create(&PostParams::default(), &cm).await.unwrap();
        let mut seen = 0;
        while seen < WATCHES {
            let (n, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .unwrap()
                .unwrap();
            if n == name {
                fanout.push(at.duration_since(t));
                seen += 1;
            }
        }
    }
    for t in tasks {
        t.abort();
    }
    println!("kube-emulator bench: {OBJECTS} ConfigMaps, {WATCHES} watches");
    println!(
        "  create {OBJECTS} (32 concurrent): {:.2?} ({:.0}/s)",
        create_elapsed,
        OBJECTS as f64 / create_elapsed.as_secs_f64()
    );
    println!(
        "  full list (10k items):   p50 {:.2?}  p99 {:.2?}",
        pct(&mut full, 0.5),
        pct(&mut full, 0.99)
    );
    println!(
        "  paged list (limit=500):  p50 {:.2?}  p99 {:.2?}",
        pct(&mut paged, 0.5),
        pct(&mut paged, 0.99)
    );
    println!(
        "  label-selected (1k):     p50 {:.2?}  p99 {:.2?}",
        pct(&mut selected, 0.5),
        pct(&mut selected, 0.99)
    );
    println!(
        "  watch fan-out ({WRITES} writes x {WATCHES}): p50 {:.2?}  p99 {:.2?}",
        pct(&mut fanout, 0.5),
        pct(&mut fanout, 0.99)
    );
    println!(
        "  RSS (whole process incl. client): start {rss0:.0} MiB, loaded {rss_loaded:.0} MiB, with watches {rss_watching:.0} MiB"
    );
}
