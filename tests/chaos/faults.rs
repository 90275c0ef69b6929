//! The chaos monkeys: GitLab 5xx/429/slow answers, dropped and expired watches, a slow and
//! flaky kube API. Every decision comes from one seeded RNG so a run's choices can be replayed.
//!
//! GitLab faults in the emulator are all-or-nothing when sticky, so "30 % of requests answer
//! 5xx" is approximated by traffic-proportional top-ups: every tick, for each request GitLab
//! saw since the previous tick, a one-shot 500/502/503 is queued with probability 0.3. The
//! queued faults hit the next requests, so over a run about 30 % of requests fail (the measured
//! share is printed).

use std::time::Duration;

use gitlab_emulator::{EmulatorHandle, Fault};
use kube_emulator::hooks::Hooks;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Default, Clone)]
pub struct FaultCounts {
    pub gitlab_5xx_queued: u64,
    pub gitlab_5xx_after_processing: u64,
    pub gitlab_create_drops: u64,
    pub gitlab_429_bursts: u64,
    pub gitlab_delays: u64,
    pub watch_drops: u64,
    pub watch_410s: u64,
    pub kube_503_bursts: u64,
    pub latency_changes: u64,
}

impl FaultCounts {
    /// The kinds that never fired (a run that misses one did not test it); the kube kinds
    /// only when the kube API was the emulator (`kube_faults`).
    pub fn missing(&self, kube_faults: bool) -> Vec<&'static str> {
        let kube = [
            "watch dropped",
            "watch 410",
            "kube 503 burst",
            "kube latency",
        ];
        [
            ("GitLab 5xx", self.gitlab_5xx_queued),
            (
                "GitLab 5xx after processing",
                self.gitlab_5xx_after_processing,
            ),
            ("GitLab create answer dropped", self.gitlab_create_drops),
            ("GitLab 429 burst", self.gitlab_429_bursts),
            ("GitLab slow answer", self.gitlab_delays),
            ("watch dropped", self.watch_drops),
            ("watch 410", self.watch_410s),
            ("kube 503 burst", self.kube_503_bursts),
            ("kube latency", self.latency_changes),
        ]
        .into_iter()
        .filter(|(k, n)| *n == 0 && (kube_faults || !kube.contains(k)))
        .map(|(k, _)| k)
        .collect()
    }
}

fn gitlab_seen(gl: &EmulatorHandle) -> u64 {
    gl.counters().values().sum()
}

/// Run the monkeys until `stop`; returns what they did. `hooks`: the kube emulator's, for
/// the kube faults; `None` on the real apiserver, which has no way to drop or expire watches,
/// answer 503 or slow down on demand (its one on-demand 410, a CRD upgrade, is
/// tests/fidelity.rs's), so there only the GitLab faults and the operator's SIGKILLs run.
pub async fn run(
    seed: u64,
    gl: EmulatorHandle,
    hooks: Option<Hooks>,
    stop: CancellationToken,
) -> FaultCounts {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut counts = FaultCounts::default();
    let mut seen = gitlab_seen(&gl);
    let tick = Duration::from_millis(200);
    // Every fault kind fires at least once per 25 ticks (5 s), so even a short run has them all.
    let mut last = [0u64; 6];
    let mut ticks = 0u64;
    let mut due = |kind: usize, p: f64, rng: &mut StdRng, ticks: u64| {
        let fire = rng.random_bool(p) || ticks - last[kind] >= 25;
        if fire {
            last[kind] = ticks;
        }
        fire
    };
    loop {
        ticks += 1;
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(tick) => {}
        }
        // GitLab: ~30 % 5xx, proportional to the traffic of the last tick.
        let now = gitlab_seen(&gl);
        for _ in seen..now {
            if rng.random_bool(0.3) {
                let code = [500, 502, 503][rng.random_range(0..3)];
                let fault = Fault::status(code);
                // One in five is answered after GitLab did the work (a proxy timing out in
                // front of a slow GitLab): the write happened, the operator sees a 5xx.
                if rng.random_bool(0.2) {
                    gl.inject_fault(fault.after_processing());
                    counts.gitlab_5xx_after_processing += 1;
                } else {
                    gl.inject_fault(fault);
                }
                counts.gitlab_5xx_queued += 1;
            }
        }
        seen = now;
        // 429 bursts with a short Retry-After (every ~6 s on average).
        if due(0, 0.03, &mut rng, ticks) {
            let n = rng.random_range(2..6);
            gl.inject_fault(Fault::rate_limited(1).times(n));
            counts.gitlab_429_bursts += 1;
        }
        // Slow GitLab: a few answers delayed up to 1.5 s (the connection's timeout is 5 s).
        if due(1, 0.05, &mut rng, ticks) {
            let ms = rng.random_range(200..1500);
            gl.inject_fault(Fault::delay(Duration::from_millis(ms)).times(3));
            counts.gitlab_delays += 1;
        }
        // A create whose answer never arrives although GitLab stored it.
        if due(2, 0.02, &mut rng, ticks) {
            gl.inject_fault(
                Fault::drop_connection()
                    .on(gitlab_emulator::Endpoint::CreateDeployment)
                    .after_processing(),
            );
            counts.gitlab_create_drops += 1;
        }
        // The kube faults are decided on either backend, so a seed makes the same GitLab
        // decisions on both; they are applied on the emulator only.
        // Kube: watches dropped (clients resume from their resourceVersion) ...
        if due(3, 0.04, &mut rng, ticks)
            && let Some(hooks) = &hooks
        {
            hooks.drop_watches();
            counts.watch_drops += 1;
        }
        // ... and forced to 410 Expired (clients relist).
        if due(4, 0.03, &mut rng, ticks) {
            let n = rng.random_range(1..4);
            if let Some(hooks) = &hooks {
                hooks.expire_next_watches(n);
                counts.watch_410s += 1;
            }
        }
        // A short burst of 503s on the custom resources' API.
        if due(5, 0.015, &mut rng, ticks)
            && let Some(hooks) = &hooks
        {
            hooks.fail_requests("/apis/gitlab-operator.io", 503, 2, None);
            counts.kube_503_bursts += 1;
        }
        // A slow API server: latency wanders between 0 and 80 ms per request.
        if rng.random_bool(0.1) {
            let latency = Duration::from_millis(rng.random_range(0..80));
            if let Some(hooks) = &hooks {
                hooks.set_latency(latency);
                counts.latency_changes += 1;
            }
        }
    }
    counts
}

/// Undo every standing fault (queued GitLab faults, kube faults and latency).
pub fn calm(gl: &EmulatorHandle, hooks: Option<&Hooks>) {
    gl.clear_faults();
    if let Some(hooks) = hooks {
        hooks.clear_faults();
    }
}

/// Share of GitLab answers that were 5xx or 429, as measured by the emulator.
pub fn measured_error_share(gl: &EmulatorHandle) -> (u64, u64, u64) {
    let counters = gl.counters();
    let total: u64 = counters.values().sum();
    let s5xx: u64 = counters
        .iter()
        .filter(|(k, _)| k.status >= 500)
        .map(|(_, v)| v)
        .sum();
    let s429: u64 = counters
        .iter()
        .filter(|(k, _)| k.status == 429)
        .map(|(_, v)| v)
        .sum();
    (total, s5xx, s429)
}
