//! The bench command cannot rot: run it with tiny numbers and check it prints its figures.
//! No timing is asserted (the machine is shared); only that every phase ran and reported.
//!
//! Every phase runs on both backends (`every_phase::emulator`, `every_phase::real`: the bench
//! pointed at the test binary's real control plane with `--kubeconfig`). The sharded run
//! stays on the emulator: it measures sharding, which the backend does not change.
#![cfg(feature = "sandbox")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::{Backend, cluster};

mod every_phase {
    use super::{Backend, bench_runs_every_phase_at_a_tiny_size_and_prints_its_table as body};

    #[test]
    fn emulator() {
        body(Backend::Emulator);
    }

    #[test]
    fn real() {
        body(Backend::Real);
    }
}

fn bench_runs_every_phase_at_a_tiny_size_and_prints_its_table(backend: Backend) {
    let baseline = Path::new("/usr/bin/kubectl").exists() && Path::new("/usr/bin/curl").exists();
    let json_path = std::env::temp_dir().join(format!("bench-smoke-{}.json", std::process::id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bench"));
    cmd.args(["--sizes", "4", "--rounds", "1", "--rate", "40"])
        .arg("--json")
        .arg(&json_path)
        .args(["--steady-secs", "1", "--restart-settle-secs", "1"])
        .args(["--baseline", if baseline { "2" } else { "0" }])
        .arg("--operator-bin")
        .arg(env!("CARGO_BIN_EXE_gitlab-deployment-operator"))
        .env("RUST_LOG", "error");
    if backend == Backend::Real {
        cmd.arg("--kubeconfig").arg(&cluster::shared().kubeconfig);
    }
    let started = std::time::Instant::now();
    let out = cmd.output().expect("bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        started.elapsed() < Duration::from_secs(200),
        "a tiny bench should be quick"
    );
    for needle in [
        "calls/revision",
        "| 4 | ",
        "default --merge-requests=true",
        "size 4: adoption",
    ] {
        assert!(
            stdout.contains(needle),
            "no {needle:?} in:\n{stdout}\n{stderr}"
        );
    }
    // The JSON says what the table says.
    let figures: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json_path);
    let size = &figures["sizes"][0];
    assert_eq!(size["size"], 4);
    assert_eq!(size["shards"], 1);
    assert_eq!(size["revisions"], 4);
    let per_revision = size["calls_per_revision"].as_f64().unwrap();
    assert!(
        stdout.contains(&format!("| 4 | {per_revision:.3} (")),
        "the table's calls/revision is the JSON's {per_revision}:\n{stdout}"
    );
    for field in [
        "steady_calls",
        "restart_calls",
        "peak_rss_kib",
        "cpu_secs_total",
    ] {
        assert!(size[field].is_number(), "{field} in {size}");
    }
    for q in ["p50", "p99", "max"] {
        assert!(size["latency_ms"][q].is_i64(), "latency {q} in {size}");
    }
    assert!(size["merge_requests"]["calls_per_revision"].is_number());
    if baseline {
        assert!(figures["baseline"]["rss_kib_per_rollout"].as_u64().unwrap() > 0);
        assert!(figures["baseline"]["pss_kib_per_rollout"].as_u64().unwrap() > 0);
        assert!(
            stdout.contains("baseline: 2 rollouts (2 succeeded)"),
            "baseline missing:\n{stdout}"
        );
        assert!(
            stdout.contains("operator at 4:"),
            "comparison missing:\n{stdout}"
        );
    }
}

#[test]
fn bench_runs_sharded_and_restarts_one_shard_without_gitlab_calls() {
    let json_path =
        std::env::temp_dir().join(format!("bench-smoke-shards-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "--sizes", "6", "--rounds", "1", "--rate", "40", "--shards", "2",
        ])
        .args([
            "--steady-secs",
            "1",
            "--restart-settle-secs",
            "1",
            "--baseline",
            "0",
        ])
        .args(["--merge-request-round", "false"])
        .arg("--json")
        .arg(&json_path)
        .arg("--operator-bin")
        .arg(env!("CARGO_BIN_EXE_gitlab-deployment-operator"))
        .env("RUST_LOG", "error")
        .output()
        .expect("bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let figures: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json_path);
    let size = &figures["sizes"][0];
    assert_eq!(size["shards"], 2);
    assert_eq!(size["per_process"].as_array().unwrap().len(), 2);
    assert_eq!(
        size["calls_per_revision"].as_f64(),
        Some(2.0),
        "each revision reported once across the shards: {size}"
    );
    assert_eq!(size["restart_calls"], 0, "{size}");
    assert_eq!(
        size["restart_reconciles"].as_u64().map(|n| n >= 3),
        Some(true)
    );
    assert!(size["merge_requests"].is_null());
    assert!(stdout.contains("size 6 over 2 shards"), "{stdout}");
}
