//! The bench command cannot rot: run it with tiny numbers and check it prints its figures.
//! No timing is asserted (the machine is shared); only that every phase ran and reported.
#![cfg(feature = "sandbox")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[test]
fn bench_runs_every_phase_at_a_tiny_size_and_prints_its_table() {
    let baseline = Path::new("/usr/bin/kubectl").exists() && Path::new("/usr/bin/curl").exists();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bench"));
    cmd.args(["--sizes", "4", "--rounds", "1", "--rate", "40"])
        .args(["--steady-secs", "1", "--restart-settle-secs", "1"])
        .args(["--baseline", if baseline { "2" } else { "0" }])
        .arg("--operator-bin")
        .arg(env!("CARGO_BIN_EXE_gitlab-deployment-operator"))
        .env("RUST_LOG", "error");
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
    if baseline {
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
