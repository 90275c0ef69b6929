//! `bench`: what the operator costs at 100, 1,000 and 5,000 GitlabDeployments, beside what a
//! CI job's `kubectl rollout status` + `curl` costs per rollout (issue 7, benchmarks).
//!
//! Both emulators run in this process on loopback; the operator runs as its own process
//! (`gitlab-deployment-operator run`, built beside this binary) so its RSS and CPU time are read
//! from `/proc/<pid>` alone. Per size: create N Deployments each followed by one
//! GitlabDeployment, let the operator adopt them, roll every workload out to a new image at a
//! steady rate, then measure a quiet minute, an operator restart, and one more round with the
//! merge-request fetch on (the operator's default). Figures go to `docs/benchmarks.md`, and
//! with `--json PATH` to a file a script can read. `--shards N` runs N operator processes, each
//! serving one label shard, and restarts only the first.
//!
//! `cargo run --release --bin bench -- --sizes 100,1000,5000 --json figures.json`

// A binary crate root finds modules beside itself (src/bin/), so the paths are spelled out.
#[path = "bench/baseline.rs"]
mod baseline;
#[path = "bench/completion.rs"]
mod completion;
#[path = "bench/operator.rs"]
mod operator;
#[path = "bench/procfs.rs"]
mod procfs;
#[path = "bench/setup.rs"]
mod setup;
#[path = "bench/stats.rs"]
mod stats;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::task::JoinSet;

use completion::CompletionWatch;
use operator::{Fleet, Launch};
use setup::{Workload, World, image_for, set_image, workloads};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("setup failed: {0}")]
    Setup(String),
    #[error("timed out waiting for {0}")]
    Timeout(String),
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl BenchError {
    /// Stable category, for logs.
    pub fn category(&self) -> &'static str {
        match self {
            BenchError::Setup(_) => "Setup",
            BenchError::Timeout(_) => "Timeout",
            BenchError::Kube(_) => "Kube",
            BenchError::Io(_) => "Io",
            BenchError::Json(_) => "Json",
        }
    }
}

/// Measure the operator against in-process emulators, and the kubectl+curl baseline.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// GitlabDeployments per run (comma-separated); each size gets fresh emulators.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    sizes: Vec<usize>,
    /// Rounds of rollouts (each round rolls every workload to a new image).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Rollouts started per second (the steady arrival rate).
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Rollout pace of the emulated Deployments (the emulator's step annotation).
    #[arg(long, default_value = "2s")]
    rollout_step: String,
    /// Workloads per namespace (the emulator's rollout simulator scans a namespace per step).
    #[arg(long, default_value_t = 50)]
    per_namespace: usize,
    /// Seconds of quiet measured after the rollouts.
    #[arg(long, default_value_t = 60)]
    steady_secs: u64,
    /// Seconds to keep counting after a restarted operator has reconciled everything.
    #[arg(long, default_value_t = 10)]
    restart_settle_secs: u64,
    /// Concurrent CI-style rollouts tracked by the kubectl+curl baseline (0: skip it).
    #[arg(long, default_value_t = 100)]
    baseline: usize,
    /// `--concurrency` of the operator.
    #[arg(long, default_value_t = 8)]
    concurrency: u16,
    /// The operator binary (default: `gitlab-deployment-operator` beside this one).
    #[arg(long)]
    operator_bin: Option<PathBuf>,
    /// Operator processes, each serving one label shard (`--watch-label-selector`); the
    /// resources are labelled round-robin. 1: one unsharded operator.
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Also run the round with the default `--merge-requests=true` (a third start).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    merge_request_round: bool,
    /// Write every figure as JSON here too (for scripts that check the docs).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Measure against this cluster instead of an in-process kube emulator (the real control
    /// plane: `tests/cluster/run --kubeconfig PATH`). The run's namespaces are prefixed
    /// `bench-<pid>-<size>` and left behind; the operator serves only them.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

/// Everything measured for one size.
#[derive(Debug, Default)]
struct SizeFigures {
    size: usize,
    adoption_calls: u64,
    adoption_secs: f64,
    revisions: usize,
    rollout_calls: u64,
    rollout_calls_by: BTreeMap<String, u64>,
    rollout_secs: f64,
    latency_ms: Vec<i64>,
    missing_latency: usize,
    shards: usize,
    /// Sums over the operator processes; per process in `members`.
    rss_kib: u64,
    hwm_kib: u64,
    /// Each operator process after the rollouts: (RSS, peak RSS) in KiB.
    members: Vec<(u64, u64)>,
    cpu_rollout: Duration,
    cpu_total: Duration,
    reconciles_rollout: u64,
    /// Mean reconcile time and mean GitLab request time in the rollout phase, in ms.
    reconcile_mean_ms: f64,
    gitlab_request_mean_ms: f64,
    /// CPU of this process (both emulators) during the rollout phase.
    emulators_cpu_rollout: Duration,
    steady_calls: u64,
    steady_reconciles: u64,
    /// The restart is of one operator process (shard 0 when sharded).
    restart_calls: u64,
    restart_reconciles: u64,
    restart_rss_kib: u64,
    restart_secs: f64,
    mr_revisions: usize,
    mr_calls: u64,
    mr_latency_ms: Vec<i64>,
    not_success: usize,
}

impl SizeFigures {
    fn per_revision(&self) -> f64 {
        self.rollout_calls as f64 / self.revisions.max(1) as f64
    }
    fn mr_per_revision(&self) -> f64 {
        self.mr_calls as f64 / self.mr_revisions.max(1) as f64
    }
}

fn progress(msg: impl AsRef<str>) {
    eprintln!(
        "[bench {}] {}",
        chrono::Utc::now().format("%H:%M:%S"),
        msg.as_ref()
    );
}

/// GitLab requests the emulator served, by "METHOD route" (the counters are not capped like
/// the request log).
fn calls_by(world: &World) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (key, n) in world.gitlab.handle().counters() {
        *out.entry(format!("{} {}", key.method, key.endpoint))
            .or_insert(0) += n;
    }
    out
}

fn calls(world: &World) -> u64 {
    calls_by(world).values().sum()
}

fn diff(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0).min(*v)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Wait until every environment in `names` has a successful GitLab deployment at `sha`.
async fn wait_all_success(
    world: &World,
    names: &[Workload],
    sha: &str,
    what: &str,
) -> Result<(), BenchError> {
    let deadline =
        Instant::now() + Duration::from_secs(300) + Duration::from_millis(100) * names.len() as u32;
    let mut last_report = Instant::now();
    loop {
        let done = world
            .gitlab
            .handle()
            .deployments()
            .into_iter()
            .filter(|d| d.sha == sha && d.status == "success")
            .count();
        if done >= names.len() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout(format!(
                "{what}: {done}/{} successful",
                names.len()
            )));
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            progress(format!(
                "  {what}: {done}/{} successful in GitLab",
                names.len()
            ));
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Patches in flight at once while rolling out. Unbounded, a kube emulator that falls behind
/// (20,000 workloads on two shared cores) got a new connection per waiting patch: thousands,
/// then connection errors. Bounded, the rate simply drops to what the emulator serves.
const ROLLOUT_PATCHES_IN_FLIGHT: usize = 32;

/// Start rollouts of every workload to `sha` at `rate` per second; returns when all were sent.
async fn roll_out(
    world: &World,
    names: &[Workload],
    sha: &str,
    rate: f64,
) -> Result<(), BenchError> {
    let image = Arc::new(image_for(sha));
    let start = tokio::time::Instant::now();
    let gap = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut tasks = JoinSet::new();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(ROLLOUT_PATCHES_IN_FLIGHT));
    for (i, w) in names.iter().enumerate() {
        tokio::time::sleep_until(start + gap * i as u32).await;
        let permit = Arc::clone(&in_flight)
            .acquire_owned()
            .await
            .map_err(|e| BenchError::Setup(format!("rollout pacing: {e}")))?;
        let (api, name, image) = (world.deployments(&w.ns), w.name.clone(), Arc::clone(&image));
        tasks.spawn(async move {
            let sent = set_image(&api, &name, &image).await;
            drop(permit);
            sent
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| BenchError::Setup(format!("rollout task: {e}")))??;
    }
    Ok(())
}

/// rollout done → GitLab success, in ms, for each workload at `sha`; and how many had no pair.
fn latencies(
    world: &World,
    watch: &CompletionWatch,
    names: &[Workload],
    sha: &str,
) -> (Vec<i64>, usize) {
    let finished: HashMap<String, chrono::DateTime<chrono::Utc>> = world
        .gitlab
        .handle()
        .deployments()
        .into_iter()
        .filter(|d| d.sha == sha && d.status == "success")
        .filter_map(|d| d.finished_at.map(|f| (d.environment, f)))
        .collect();
    let mut out = Vec::with_capacity(names.len());
    let mut missing = 0;
    let trace = std::env::var_os("BENCH_TRACE").is_some();
    for name in names.iter().map(|w| &w.name) {
        if trace {
            eprintln!(
                "trace {name} {sha:.8}: complete {:?} success {:?}",
                watch.get(name, sha),
                finished.get(name)
            );
        }
        match (watch.get(name, sha), finished.get(name)) {
            (Some(done), Some(success)) => out.push((*success - done).num_milliseconds()),
            _ => missing += 1,
        }
    }
    (out, missing)
}

/// Wait until a freshly started operator has reconciled at least `n` times and then stayed
/// quiet for 3 s.
async fn wait_reconciled(op: &Fleet, n: u64) -> Result<u64, BenchError> {
    let deadline = Instant::now() + Duration::from_secs(300) + Duration::from_millis(50) * n as u32;
    let mut last = (0, Instant::now());
    loop {
        let count = op.reconciles().await?;
        if count != last.0 {
            last = (count, Instant::now());
        } else if count >= n && last.1.elapsed() >= Duration::from_secs(3) {
            return Ok(count);
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout(format!(
                "restart reconciles: {count}/{n}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Wait at least `min`, then until no GitLab call was made for 3 s (bounded: 2 minutes).
async fn wait_calls_quiet(world: &World, min: Duration) {
    tokio::time::sleep(min).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = (calls(world), Instant::now());
    while Instant::now() < deadline && last.1.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = calls(world);
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
}

/// Time sums and counts from the operator's histograms: where a reconcile's time goes.
#[derive(Debug, Default, Clone, Copy)]
struct Timing {
    reconcile_sum: f64,
    reconcile_count: f64,
    gitlab_sum: f64,
    gitlab_count: f64,
}

impl Timing {
    async fn scrape(op: &Fleet) -> Result<Timing, BenchError> {
        let text = op.metrics().await?;
        Ok(Timing {
            reconcile_sum: stats::metric_sum(
                &text,
                "gitlab_operator_reconcile_duration_seconds_sum",
            ),
            reconcile_count: stats::metric_sum(
                &text,
                "gitlab_operator_reconcile_duration_seconds_count",
            ),
            gitlab_sum: stats::metric_sum(&text, "gitlab_request_duration_seconds_sum"),
            gitlab_count: stats::metric_sum(&text, "gitlab_request_duration_seconds_count"),
        })
    }

    fn since(&self, before: &Timing) -> Timing {
        Timing {
            reconcile_sum: self.reconcile_sum - before.reconcile_sum,
            reconcile_count: self.reconcile_count - before.reconcile_count,
            gitlab_sum: self.gitlab_sum - before.gitlab_sum,
            gitlab_count: self.gitlab_count - before.gitlab_count,
        }
    }

    fn reconcile_mean_ms(&self) -> f64 {
        1000.0 * self.reconcile_sum / self.reconcile_count.max(1.0)
    }

    fn gitlab_mean_ms(&self) -> f64 {
        1000.0 * self.gitlab_sum / self.gitlab_count.max(1.0)
    }
}

struct Context {
    args: Args,
    operator_bin: PathBuf,
    ticks: u64,
    logs: PathBuf,
}

async fn run_size(
    cx: &Context,
    size: usize,
    with_baseline: bool,
) -> Result<(SizeFigures, Option<baseline::BaselineFigures>), BenchError> {
    let rounds = cx.args.rounds.max(1);
    let world = World::start(rounds + 3, cx.args.kubeconfig.as_deref(), size).await?;
    let shas = world.project.shas.clone();
    let names = workloads(&world.ns_prefix, size, cx.args.per_namespace);
    let mut namespaces: Vec<String> = names.iter().map(|w| w.ns.clone()).collect();
    namespaces.dedup();
    for ns in &namespaces {
        world.add_namespace(ns).await?;
    }
    // On a cluster of its own (the emulator) the operator serves every namespace, as it
    // would by default; elsewhere only the run's.
    let served: Vec<String> = if world.kube.is_some() {
        Vec::new()
    } else {
        namespaces.clone()
    };
    let mut fig = SizeFigures {
        size,
        ..SizeFigures::default()
    };
    let watch = CompletionWatch::start(kube::Api::all(world.client.clone()));

    progress(format!(
        "size {size}: creating {size} Deployments and GitlabDeployments"
    ));
    let t = Instant::now();
    world
        .create_workloads(&names, &image_for(&shas[0]), &cx.args.rollout_step, 1)
        .await?;
    world.create_followers(&names, cx.args.shards).await?;
    progress(format!("  created in {:.1}s", t.elapsed().as_secs_f64()));

    let launch = |merge_requests: bool, tag: &str| Launch {
        binary: &cx.operator_bin,
        kubeconfig: &world.kubeconfig,
        gitlab: world.gitlab.addr(),
        concurrency: cx.args.concurrency,
        merge_requests,
        log: cx.logs.join(format!("operator-{size}-{tag}")),
        selector: None,
        namespaces: &served,
    };
    let shards = cx.args.shards.max(1);
    fig.shards = shards;

    // Adoption: the operator meets N settled workloads.
    let before = calls(&world);
    let t = Instant::now();
    let mut op = Fleet::start(&launch(false, "1"), shards).await?;
    progress(format!("  operator pids {:?} ready; adopting", op.pids()));
    wait_all_success(&world, &names, &shas[0], "adoption").await?;
    fig.adoption_secs = t.elapsed().as_secs_f64();
    fig.adoption_calls = calls(&world) - before;

    // Rollouts at a steady rate.
    let before_by = calls_by(&world);
    let cpu0 = op.cpu_own();
    let rec0 = op.reconciles().await?;
    let timing0 = Timing::scrape(&op).await?;
    let bench0 = procfs::cpu(std::process::id()).unwrap_or_default();
    let t = Instant::now();
    for sha in &shas[1..=rounds] {
        progress(format!(
            "  rolling {size} workloads to {} at {}/s",
            &sha[..8],
            cx.args.rate
        ));
        roll_out(&world, &names, sha, cx.args.rate).await?;
        wait_all_success(&world, &names, sha, "rollout").await?;
        let (mut lat, missing) = latencies(&world, &watch, &names, sha);
        fig.latency_ms.append(&mut lat);
        fig.missing_latency += missing;
    }
    fig.rollout_secs = t.elapsed().as_secs_f64();
    fig.revisions = size * rounds;
    fig.rollout_calls_by = diff(&calls_by(&world), &before_by);
    fig.rollout_calls = fig.rollout_calls_by.values().sum();
    fig.reconciles_rollout = op.reconciles().await? - rec0;
    let timing = Timing::scrape(&op).await?.since(&timing0);
    fig.reconcile_mean_ms = timing.reconcile_mean_ms();
    fig.gitlab_request_mean_ms = timing.gitlab_mean_ms();
    let bench1 = procfs::cpu(std::process::id()).unwrap_or_default();
    fig.emulators_cpu_rollout =
        procfs::ticks_to_duration(bench1.own.saturating_sub(bench0.own), cx.ticks);
    fig.cpu_rollout = procfs::ticks_to_duration(op.cpu_own() - cpu0, cx.ticks);
    let mem = op.memory();
    fig.members = mem.iter().map(|m| (m.rss_kib, m.hwm_kib)).collect();
    fig.rss_kib = mem.iter().map(|m| m.rss_kib).sum();
    fig.hwm_kib = mem.iter().map(|m| m.hwm_kib).sum();

    // Steady state.
    progress(format!("  steady state for {}s", cx.args.steady_secs));
    let before = calls(&world);
    let rec0 = op.reconciles().await?;
    tokio::time::sleep(Duration::from_secs(cx.args.steady_secs)).await;
    fig.steady_calls = calls(&world) - before;
    fig.steady_reconciles = op.reconciles().await? - rec0;
    fig.cpu_total = procfs::ticks_to_duration(op.cpu_own(), cx.ticks);
    for (member, now) in fig.members.iter_mut().zip(op.memory()) {
        member.1 = member.1.max(now.hwm_kib);
    }
    fig.hwm_kib = fig.members.iter().map(|m| m.1).sum();

    // Restart of one process (shard 0 when sharded; the others keep running).
    progress("  restarting one operator process");
    op.members.remove(0).stop().await?;
    let before = calls(&world);
    let t = Instant::now();
    let restarted = Fleet::start(
        &Launch {
            selector: operator::shard_selector(0, shards),
            ..launch(false, "2")
        },
        1,
    )
    .await?;
    let served = size.div_ceil(shards);
    fig.restart_reconciles = wait_reconciled(&restarted, served as u64).await?;
    fig.restart_secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(cx.args.restart_settle_secs)).await;
    fig.restart_calls = calls(&world) - before;
    fig.restart_rss_kib = restarted.memory().iter().map(|m| m.rss_kib).sum();
    restarted.stop().await?;
    op.stop().await?;

    if !cx.args.merge_request_round {
        fig.not_success = not_success(&world);
        let base = if with_baseline {
            Some(run_baseline(cx, &world, &watch, &shas).await?)
        } else {
            None
        };
        return Ok((fig, base));
    }
    // The default: merge requests fetched on success.
    progress("  one more round with the default --merge-requests=true");
    let op = Fleet::start(&launch(true, "3"), shards).await?;
    wait_reconciled(&op, size as u64).await?;
    let sha = &shas[rounds + 1];
    let before = calls(&world);
    roll_out(&world, &names, sha, cx.args.rate).await?;
    wait_all_success(&world, &names, sha, "rollout with merge requests").await?;
    // The merge requests are fetched MERGE_REQUEST_DELAY (5 s) after a success: count until
    // the calls have stopped.
    wait_calls_quiet(&world, Duration::from_secs(7)).await;
    fig.mr_calls = calls(&world) - before;
    fig.mr_revisions = size;
    fig.mr_latency_ms = latencies(&world, &watch, &names, sha).0;
    fig.not_success = not_success(&world);

    let base = if with_baseline {
        Some(run_baseline(cx, &world, &watch, &shas).await?)
    } else {
        None
    };
    op.stop().await?;
    Ok((fig, base))
}

/// GitLab deployments left neither `success` nor `canceled`.
fn not_success(world: &World) -> usize {
    world
        .gitlab
        .handle()
        .deployments()
        .iter()
        .filter(|d| d.status != "success" && d.status != "canceled")
        .count()
}

async fn run_baseline(
    cx: &Context,
    world: &World,
    watch: &CompletionWatch,
    shas: &[String],
) -> Result<baseline::BaselineFigures, BenchError> {
    let n = cx.args.baseline;
    let names: Vec<Workload> = (0..n)
        .map(|i| Workload {
            ns: world.ci_namespace(),
            name: format!("ci-{i:04}"),
        })
        .collect();
    world.add_namespace(&world.ci_namespace()).await?;
    progress(format!(
        "baseline: {n} CI-style rollouts (kubectl rollout status + curl)"
    ));
    // Slow enough that every tracker is alive at once: 3 replicas, a step each second.
    world
        .create_workloads(&names, &image_for(&shas[0]), "1s", 3)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(120 + n as u64);
    while names.iter().any(|w| watch.get(&w.name, &shas[0]).is_none()) {
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout("baseline workloads available".into()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let cache_dir = cx.logs.join("kubectl-cache");
    // Warm kubectl's discovery cache once, as a CI image with a cached kubectl would be.
    let _ = tokio::process::Command::new("kubectl")
        .args(["api-resources", "-o", "name"])
        .arg("--kubeconfig")
        .arg(&world.kubeconfig)
        .arg("--cache-dir")
        .arg(&cache_dir)
        .output()
        .await?;
    let ci_ns = world.ci_namespace();
    let target = baseline::Target {
        kubeconfig: &world.kubeconfig,
        cache_dir,
        namespace: &ci_ns,
        gitlab_api: world.gitlab.api_url(),
        project_id: world.project.id,
        token: world.project.maintainer_token.clone(),
        ticks_per_second: cx.ticks,
    };
    let sha = &shas[1];
    let api = world.deployments(&ci_ns);
    let names: Vec<String> = names.into_iter().map(|w| w.name).collect();
    for name in &names {
        set_image(&api, name, &image_for(sha)).await?;
    }
    baseline::track_all(&target, &names, sha).await
}

/// Every figure of the run as JSON: what the tables print, for scripts that regenerate or
/// check the docs. Latencies in ms (`null` when nothing was measured), memory in KiB, CPU in s.
fn json_report(
    figs: &[SizeFigures],
    base: Option<&baseline::BaselineFigures>,
    args: &Args,
) -> serde_json::Value {
    use serde_json::json;
    let latency = |samples: &[i64]| {
        json!({
            "p50": stats::quantile(samples, 0.5),
            "p90": stats::quantile(samples, 0.9),
            "p99": stats::quantile(samples, 0.99),
            "max": stats::quantile(samples, 1.0),
            "samples": samples.len(),
        })
    };
    let sizes: Vec<serde_json::Value> = figs
        .iter()
        .map(|f| {
            json!({
                "size": f.size,
                "shards": f.shards,
                "revisions": f.revisions,
                "calls_per_revision": f.per_revision(),
                "rollout_calls": f.rollout_calls,
                "rollout_calls_by_route": f.rollout_calls_by,
                "rollout_secs": f.rollout_secs,
                "steady_calls": f.steady_calls,
                "steady_reconciles": f.steady_reconciles,
                "restart_calls": f.restart_calls,
                "restart_reconciles": f.restart_reconciles,
                "restart_secs": f.restart_secs,
                "restart_rss_kib": f.restart_rss_kib,
                "latency_ms": latency(&f.latency_ms),
                "unpaired_latencies": f.missing_latency,
                "rss_kib": f.rss_kib,
                "peak_rss_kib": f.hwm_kib,
                "peak_rss_kib_per_resource": f.hwm_kib as f64 / f.size.max(1) as f64,
                "per_process": f.members.iter().map(|(rss, hwm)| json!({"rss_kib": rss, "peak_rss_kib": hwm})).collect::<Vec<_>>(),
                "cpu_secs_rollout": f.cpu_rollout.as_secs_f64(),
                "cpu_secs_total": f.cpu_total.as_secs_f64(),
                "emulators_cpu_secs_rollout": f.emulators_cpu_rollout.as_secs_f64(),
                "reconciles_rollout": f.reconciles_rollout,
                "reconcile_mean_ms": f.reconcile_mean_ms,
                "gitlab_request_mean_ms": f.gitlab_request_mean_ms,
                "adoption_calls": f.adoption_calls,
                "adoption_secs": f.adoption_secs,
                "merge_requests": (f.mr_revisions > 0).then(|| json!({
                    "calls_per_revision": f.mr_per_revision(),
                    "calls": f.mr_calls,
                    "revisions": f.mr_revisions,
                    "latency_ms": latency(&f.mr_latency_ms),
                })),
                "deployments_neither_success_nor_canceled": f.not_success,
            })
        })
        .collect();
    json!({
        "settings": {
            "rounds": args.rounds,
            "rate_per_sec": args.rate,
            "rollout_step": args.rollout_step,
            "per_namespace": args.per_namespace,
            "steady_secs": args.steady_secs,
            "concurrency": args.concurrency,
            "shards": args.shards.max(1),
        },
        "sizes": sizes,
        "baseline": base.map(|b| json!({
            "rollouts": b.rollouts,
            "succeeded": b.succeeded,
            "peak_kubectl": b.peak_kubectl,
            "rss_kib_per_rollout": b.kib_per_rollout(),
            "pss_kib_per_rollout": b.pss_kib_per_rollout(),
            "max_curl_rss_kib": b.max_curl_rss_kib,
            "cpu_secs": b.cpu.as_secs_f64(),
            "cpu_secs_per_rollout": b.cpu.as_secs_f64() / b.rollouts.max(1) as f64,
            "wall_secs": b.wall.as_secs_f64(),
        })),
    })
}

/// Write the JSON figures when `--json` asks for them (after every size, as the tables).
fn write_json(figs: &[SizeFigures], base: Option<&baseline::BaselineFigures>, args: &Args) {
    let Some(path) = &args.json else {
        return;
    };
    let text = match serde_json::to_string_pretty(&json_report(figs, base, args)) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("bench: cannot encode the JSON figures: {e}");
            return;
        }
    };
    if let Err(e) = std::fs::write(path, text + "\n") {
        eprintln!("bench: cannot write {}: {e}", path.display());
    }
}

fn ms(v: Option<i64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn report(figs: &[SizeFigures], base: Option<&baseline::BaselineFigures>, steady_secs: u64) {
    println!();
    println!(
        "| GitlabDeployments | calls/revision | by route | steady calls ({steady_secs}s) | restart calls | p50 ms | p99 ms | RSS MiB (peak) | CPU s rollout (total) | reconciles rollout / steady / restart | adoption calls |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for f in figs {
        let by: Vec<String> = f
            .rollout_calls_by
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        println!(
            "| {} | {:.3} ({} / {}) | {} | {} | {} | {} | {} | {} ({}) | {:.1} ({:.1}) | {} / {} / {} | {} |",
            f.size,
            f.per_revision(),
            f.rollout_calls,
            f.revisions,
            by.join(", "),
            f.steady_calls,
            f.restart_calls,
            ms(stats::quantile(&f.latency_ms, 0.5)),
            ms(stats::quantile(&f.latency_ms, 0.99)),
            stats::mib(f.rss_kib),
            stats::mib(f.hwm_kib),
            f.cpu_rollout.as_secs_f64(),
            f.cpu_total.as_secs_f64(),
            f.reconciles_rollout,
            f.steady_reconciles,
            f.restart_reconciles,
            f.adoption_calls,
        );
    }
    println!();
    println!("With the default --merge-requests=true (one more round, same workloads):");
    println!("| GitlabDeployments | calls/revision | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    for f in figs {
        println!(
            "| {} | {:.3} ({} / {}) | {} | {} |",
            f.size,
            f.mr_per_revision(),
            f.mr_calls,
            f.mr_revisions,
            ms(stats::quantile(&f.mr_latency_ms, 0.5)),
            ms(stats::quantile(&f.mr_latency_ms, 0.99)),
        );
    }
    println!();
    for f in figs {
        println!(
            "size {}: adoption {:.1}s, rollout phase {:.1}s, latency pairs {} (unpaired {}; p90 {} ms, max {} ms), restarted RSS {} MiB, deployments neither success nor canceled: {}",
            f.size,
            f.adoption_secs,
            f.rollout_secs,
            f.latency_ms.len(),
            f.missing_latency,
            ms(stats::quantile(&f.latency_ms, 0.9)),
            ms(stats::quantile(&f.latency_ms, 1.0)),
            stats::mib(f.restart_rss_kib),
            f.not_success,
        );
    }
    for f in figs.iter().filter(|f| f.shards > 1) {
        let per: Vec<String> = f
            .members
            .iter()
            .enumerate()
            .map(|(i, (rss, hwm))| format!("shard{i} {} ({})", stats::mib(*rss), stats::mib(*hwm)))
            .collect();
        println!(
            "size {} over {} shards: RSS MiB (peak) {}; total {} ({}); restart of shard0: {} calls, {:.1}s to reconcile its {} resources",
            f.size,
            f.shards,
            per.join(", "),
            stats::mib(f.rss_kib),
            stats::mib(f.hwm_kib),
            f.restart_calls,
            f.restart_secs,
            f.size.div_ceil(f.shards),
        );
    }
    for f in figs {
        println!(
            "size {} rollout phase: mean reconcile {:.1} ms, mean GitLab request {:.1} ms; CPU s operator {:.1}, emulators (bench process) {:.1}",
            f.size,
            f.reconcile_mean_ms,
            f.gitlab_request_mean_ms,
            f.cpu_rollout.as_secs_f64(),
            f.emulators_cpu_rollout.as_secs_f64(),
        );
    }
    for f in figs {
        println!(
            "size {} latency ms: {}",
            f.size,
            stats::histogram(&f.latency_ms, &[0, 50, 100, 250, 500, 750, 1000, 2000])
        );
    }
    if let Some(b) = base {
        println!();
        println!(
            "baseline: {} rollouts ({} succeeded) in {:.1}s; peak {} kubectl alive, RSS {} MiB summed, {} MiB per rollout (PSS {} MiB per rollout); curl peak {} MiB; CPU {:.2}s total, {:.3}s per rollout",
            b.rollouts,
            b.succeeded,
            b.wall.as_secs_f64(),
            b.peak_kubectl,
            stats::mib(b.peak_kubectl_rss_kib),
            stats::mib(b.kib_per_rollout()),
            stats::mib(b.pss_kib_per_rollout()),
            stats::mib(b.max_curl_rss_kib),
            b.cpu.as_secs_f64(),
            b.cpu.as_secs_f64() / b.rollouts.max(1) as f64,
        );
        for f in figs {
            let per = f.hwm_kib as f64 / f.size.max(1) as f64;
            println!(
                "operator at {}: {:.1} KiB per tracked rollout (peak RSS / N), {:.0}x less than the baseline's RSS, {:.0}x less than its PSS",
                f.size,
                per,
                b.kib_per_rollout() as f64 / per.max(0.001),
                b.pss_kib_per_rollout() as f64 / per.max(0.001),
            );
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    gitlab_deployment_operator::gitlab::install_crypto_provider();
    let args = Args::parse();
    let operator_bin = match args.operator_bin.clone().or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("gitlab-deployment-operator")))
    }) {
        Some(bin) if bin.exists() => bin,
        other => {
            eprintln!(
                "bench: operator binary not found ({other:?}); build it (cargo build --release) or pass --operator-bin"
            );
            return ExitCode::FAILURE;
        }
    };
    let logs = std::env::temp_dir().join(format!("gitlab-operator-bench-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&logs) {
        eprintln!("bench: cannot create {}: {e}", logs.display());
        return ExitCode::FAILURE;
    }
    progress(format!(
        "operator {}; logs in {}",
        operator_bin.display(),
        logs.display()
    ));
    let cx = Context {
        ticks: procfs::ticks_per_second(),
        operator_bin,
        logs,
        args,
    };
    let mut figs = Vec::new();
    let mut base = None;
    for (i, size) in cx.args.sizes.iter().copied().enumerate() {
        let with_baseline = i == 0 && cx.args.baseline > 0;
        match run_size(&cx, size, with_baseline).await {
            Ok((f, b)) => {
                figs.push(f);
                base = base.or(b);
                // Print as each size finishes: a long run stopped early keeps what it measured.
                if i + 1 < cx.args.sizes.len() {
                    report(&figs, base.as_ref(), cx.args.steady_secs);
                }
                write_json(&figs, base.as_ref(), &cx.args);
            }
            Err(e) => {
                eprintln!("bench: size {size} failed ({}): {e}", e.category());
                report(&figs, base.as_ref(), cx.args.steady_secs);
                write_json(&figs, base.as_ref(), &cx.args);
                return ExitCode::FAILURE;
            }
        }
    }
    report(&figs, base.as_ref(), cx.args.steady_secs);
    ExitCode::SUCCESS
}
