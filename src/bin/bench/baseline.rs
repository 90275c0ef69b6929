//! What a CI job does today, per rollout: `curl` POST a running deployment, a
//! `kubectl rollout status` process that blocks until the rollout is done, `curl` PUT success.
//! Real processes against the same emulators; their RSS is sampled from `/proc` while they
//! track their rollouts concurrently, their CPU read from this process's reaped children.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use parking_lot::Mutex;
use tokio::process::Command;

use super::BenchError;
use super::procfs;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Kubectl,
    Curl,
}

type Live = Arc<Mutex<HashMap<u32, Kind>>>;

/// Trackers alive at one sample: kubectl count, their summed RSS and PSS (KiB).
type Sample = (usize, u64, u64);

/// What the CI way costs for `rollouts` concurrent rollouts.
#[derive(Debug, Clone, Default)]
pub struct BaselineFigures {
    pub rollouts: usize,
    pub succeeded: usize,
    /// Most `kubectl rollout status` processes alive at one sample, and their summed RSS.
    pub peak_kubectl: usize,
    pub peak_kubectl_rss_kib: u64,
    /// Their summed proportional set size at that sample (shared pages divided).
    pub peak_kubectl_pss_kib: u64,
    /// Largest RSS of a single curl process seen.
    pub max_curl_rss_kib: u64,
    /// CPU of every child (kubectl and curl), summed.
    pub cpu: Duration,
    pub wall: Duration,
}

impl BaselineFigures {
    /// Mean RSS of one tracking kubectl at the peak sample.
    pub fn kib_per_rollout(&self) -> u64 {
        self.peak_kubectl_rss_kib / self.peak_kubectl.max(1) as u64
    }

    /// Mean PSS of one tracking kubectl at the peak sample.
    pub fn pss_kib_per_rollout(&self) -> u64 {
        self.peak_kubectl_pss_kib / self.peak_kubectl.max(1) as u64
    }
}

pub struct Target<'a> {
    pub kubeconfig: &'a Path,
    pub cache_dir: PathBuf,
    pub namespace: &'a str,
    pub gitlab_api: String,
    pub project_id: u64,
    pub token: String,
    pub ticks_per_second: u64,
}

async fn run_tracked(
    live: &Live,
    kind: Kind,
    cmd: &mut Command,
) -> Result<std::process::Output, BenchError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn()?;
    let pid = child.id();
    if let Some(pid) = pid {
        live.lock().insert(pid, kind);
    }
    let out = child.wait_with_output().await;
    if let Some(pid) = pid {
        live.lock().remove(&pid);
    }
    Ok(out?)
}

/// One CI job's deployment steps for workload `name` at `sha`; true when all three succeeded.
async fn track_one(
    target: &Target<'_>,
    live: &Live,
    name: &str,
    sha: &str,
) -> Result<bool, BenchError> {
    let create = run_tracked(
        live,
        Kind::Curl,
        Command::new("curl")
            .args(["-sS", "-f", "-X", "POST"])
            .args(["-H", &format!("PRIVATE-TOKEN: {}", target.token)])
            .args(["--data-urlencode", &format!("environment={name}")])
            .args(["--data-urlencode", &format!("sha={sha}")])
            .args([
                "--data",
                "ref=main",
                "--data",
                "tag=false",
                "--data",
                "status=running",
            ])
            .arg(format!(
                "{}/projects/{}/deployments",
                target.gitlab_api, target.project_id
            )),
    )
    .await?;
    if !create.status.success() {
        return Ok(false);
    }
    let created: serde_json::Value = serde_json::from_slice(&create.stdout)?;
    let Some(id) = created.get("id").and_then(serde_json::Value::as_u64) else {
        return Ok(false);
    };
    let status = run_tracked(
        live,
        Kind::Kubectl,
        Command::new("kubectl")
            .args(["rollout", "status", &format!("deployment/{name}")])
            .args(["-n", target.namespace, "--timeout=300s"])
            .arg("--kubeconfig")
            .arg(target.kubeconfig)
            .arg("--cache-dir")
            .arg(&target.cache_dir),
    )
    .await?;
    let result = if status.status.success() {
        "success"
    } else {
        "failed"
    };
    let update = run_tracked(
        live,
        Kind::Curl,
        Command::new("curl")
            .args(["-sS", "-f", "-X", "PUT"])
            .args(["-H", &format!("PRIVATE-TOKEN: {}", target.token)])
            .args(["--data", &format!("status={result}")])
            .arg(format!(
                "{}/projects/{}/deployments/{id}",
                target.gitlab_api, target.project_id
            )),
    )
    .await?;
    Ok(status.status.success() && update.status.success())
}

/// Track `names` (whose rollouts to `sha` were just started) concurrently, one CI job each.
pub async fn track_all(
    target: &Target<'_>,
    names: &[String],
    sha: &str,
) -> Result<BaselineFigures, BenchError> {
    let live: Live = Arc::default();
    // (kubectl count, their summed RSS, their summed PSS) at the fullest sample; largest curl RSS.
    let peaks: Arc<Mutex<(Sample, u64)>> = Arc::default();
    let before = procfs::cpu(std::process::id()).unwrap_or_default();
    let started = Instant::now();
    let sampler = {
        let live = Arc::clone(&live);
        let peaks = Arc::clone(&peaks);
        tokio::spawn(async move {
            loop {
                let pids: Vec<(u32, Kind)> = live.lock().iter().map(|(p, k)| (*p, *k)).collect();
                let mut kubectl: Sample = (0, 0, 0);
                let mut curl = 0u64;
                for (pid, kind) in pids {
                    let rss = procfs::memory(pid).rss_kib;
                    if rss == 0 {
                        continue;
                    }
                    match kind {
                        Kind::Kubectl => {
                            kubectl = (kubectl.0 + 1, kubectl.1 + rss, kubectl.2 + procfs::pss(pid))
                        }
                        Kind::Curl => curl = curl.max(rss),
                    }
                }
                {
                    let mut p = peaks.lock();
                    if kubectl > p.0 {
                        p.0 = kubectl;
                    }
                    p.1 = p.1.max(curl);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let results = join_all(names.iter().map(|n| track_one(target, &live, n, sha))).await;
    sampler.abort();
    let _ = sampler.await;
    let after = procfs::cpu(std::process::id()).unwrap_or_default();
    let ((peak_kubectl, peak_kubectl_rss_kib, peak_kubectl_pss_kib), max_curl_rss_kib) =
        *peaks.lock();
    let mut succeeded = 0;
    for r in results {
        match r {
            Ok(true) => succeeded += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "baseline job failed"),
        }
    }
    Ok(BaselineFigures {
        rollouts: names.len(),
        succeeded,
        peak_kubectl,
        peak_kubectl_rss_kib,
        peak_kubectl_pss_kib,
        max_curl_rss_kib,
        cpu: procfs::ticks_to_duration(
            after.children.saturating_sub(before.children),
            target.ticks_per_second,
        ),
        wall: started.elapsed(),
    })
}
