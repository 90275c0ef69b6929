//! Throughput of create+update pairs on loopback:
//! `cargo run --release -p gitlab-emulator --example throughput [CLIENTS] [SECONDS]`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gitlab_emulator::GitlabEmulator;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let gl = GitlabEmulator::start().unwrap();
    let p = gl.handle().seed_project("bench/app", "main", 3);
    let api = format!("{}/projects/{}/deployments", gl.api_url(), p.id);
    let pairs = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (api, token, sha, pairs) = (
            api.clone(),
            p.maintainer_token.clone(),
            p.head().to_string(),
            pairs.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while Instant::now() < deadline {
                let created: serde_json::Value = client
                    .post(&api)
                    .header("PRIVATE-TOKEN", &token)
                    .json(&serde_json::json!({
                        "environment": format!("env-{c}"), "sha": sha, "ref": "main",
                        "tag": false, "status": "running"
                    }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let id = created["id"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("create failed: {created}"));
                let r = client
                    .put(format!("{api}/{id}"))
                    .header("PRIVATE-TOKEN", &token)
                    .json(&serde_json::json!({"status": "success"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                pairs.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    let n = pairs.load(Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} create+update pairs in {secs:.1}s with {clients} concurrent clients: {:.0} pairs/s",
        n as f64 / secs
    );
}
