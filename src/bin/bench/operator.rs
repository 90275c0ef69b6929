//! The operator as a separate process, so its RSS and CPU time are its own: started with
//! `run`, watched through its admin port, stopped with SIGTERM as Kubernetes would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::BenchError;
use super::procfs::{self, CpuTicks, Memory};
use super::stats;

pub struct OperatorProcess {
    child: Child,
    pid: u32,
    admin: SocketAddr,
    http: reqwest::Client,
}

/// How to start one.
pub struct Launch<'a> {
    pub binary: &'a Path,
    pub kubeconfig: &'a Path,
    /// The GitLab emulator: the only host the operator may reach (plain http on loopback).
    pub gitlab: SocketAddr,
    pub concurrency: u16,
    pub merge_requests: bool,
    /// Its stderr (logs) goes here.
    pub log: PathBuf,
    /// `--watch-label-selector`, when it serves one shard.
    pub selector: Option<String>,
    /// `--namespace`: the run's namespaces on a cluster others use too; empty: all.
    pub namespaces: &'a [String],
}

/// A port that was free a moment ago (the admin address must be known up front).
fn free_port() -> Result<u16, BenchError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl OperatorProcess {
    pub async fn start(launch: &Launch<'_>) -> Result<OperatorProcess, BenchError> {
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let log = std::fs::File::create(&launch.log)?;
        let mut command = Command::new(launch.binary);
        command.arg("run");
        if let Some(selector) = &launch.selector {
            command.args(["--watch-label-selector", selector]);
        }
        if !launch.namespaces.is_empty() {
            command.args(["--namespace", &launch.namespaces.join(",")]);
        }
        let child = command
            .args(["--allowed-host", &launch.gitlab.to_string()])
            .arg("--allow-insecure-http")
            .args(["--admin-addr", &admin.to_string()])
            .args(["--concurrency", &launch.concurrency.to_string()])
            .arg(format!("--merge-requests={}", launch.merge_requests))
            .env("KUBECONFIG", launch.kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                BenchError::Setup(format!("cannot start {}: {e}", launch.binary.display()))
            })?;
        let pid = child
            .id()
            .ok_or_else(|| BenchError::Setup("operator exited at once".into()))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| BenchError::Setup(format!("http client: {e}")))?;
        let mut op = OperatorProcess {
            child,
            pid,
            admin,
            http,
        };
        op.wait_ready(Duration::from_secs(120)).await?;
        Ok(op)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    async fn wait_ready(&mut self, within: Duration) -> Result<(), BenchError> {
        let deadline = tokio::time::Instant::now() + within;
        let url = format!("http://{}/readyz", self.admin);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BenchError::Setup(format!(
                    "operator exited before ready: {status}"
                )));
            }
            if let Ok(resp) = self.http.get(&url).send().await
                && resp.status().is_success()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BenchError::Timeout("operator /readyz".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its `/metrics` text.
    pub async fn metrics(&self) -> Result<String, BenchError> {
        let url = format!("http://{}/metrics", self.admin);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| BenchError::Setup(format!("scrape {url}: {e}")))?;
        resp.text()
            .await
            .map_err(|e| BenchError::Setup(format!("scrape {url}: {e}")))
    }

    /// `gitlab_operator_reconciles_total`, all results and categories.
    pub async fn reconciles(&self) -> Result<u64, BenchError> {
        let text = self.metrics().await?;
        Ok(stats::metric_sum(&text, "gitlab_operator_reconciles_total") as u64)
    }

    pub fn memory(&self) -> Memory {
        procfs::memory(self.pid)
    }

    pub fn cpu(&self) -> CpuTicks {
        procfs::cpu(self.pid).unwrap_or_default()
    }

    /// SIGTERM (through `kill(1)`: this crate forbids `unsafe`), then wait; SIGKILL after 20 s.
    pub async fn stop(mut self) -> Result<(), BenchError> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(_) => Ok(()),
            Err(_) => {
                let _ = self.child.kill().await;
                Ok(())
            }
        }
    }
}

/// The label key the bench shards by, and the selector of shard `i` of `shards` (`None`: one
/// unsharded operator).
pub const SHARD_KEY: &str = "sharding.gitlab-operator.io/key";

pub fn shard_selector(i: usize, shards: usize) -> Option<String> {
    (shards > 1).then(|| format!("{SHARD_KEY}=shard{i}"))
}

/// One operator process per shard (one in all when unsharded), measured together.
pub struct Fleet {
    pub members: Vec<OperatorProcess>,
}

impl Fleet {
    /// Start `shards` processes (at least one); each logs to `<log>-<i>`. One process keeps
    /// `launch`'s selector (a restarted shard): it once got none, so the "restart of one
    /// shard" started an unsharded process beside the other shards.
    pub async fn start(launch: &Launch<'_>, shards: usize) -> Result<Fleet, BenchError> {
        let mut members = Vec::new();
        for i in 0..shards.max(1) {
            let one = Launch {
                log: launch.log.with_extension(format!("{i}.log")),
                selector: if shards > 1 {
                    shard_selector(i, shards)
                } else {
                    launch.selector.clone()
                },
                ..*launch
            };
            members.push(OperatorProcess::start(&one).await?);
        }
        Ok(Fleet { members })
    }

    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().map(OperatorProcess::pid).collect()
    }

    /// Reconciles of every member.
    pub async fn reconciles(&self) -> Result<u64, BenchError> {
        let mut total = 0;
        for op in &self.members {
            total += op.reconciles().await?;
        }
        Ok(total)
    }

    /// Every member's `/metrics`, one after the other.
    pub async fn metrics(&self) -> Result<String, BenchError> {
        let mut text = String::new();
        for op in &self.members {
            text.push_str(&op.metrics().await?);
        }
        Ok(text)
    }

    /// CPU ticks of all members.
    pub fn cpu_own(&self) -> u64 {
        self.members.iter().map(|op| op.cpu().own).sum()
    }

    pub fn memory(&self) -> Vec<Memory> {
        self.members.iter().map(OperatorProcess::memory).collect()
    }

    pub async fn stop(self) -> Result<(), BenchError> {
        for op in self.members {
            op.stop().await?;
        }
        Ok(())
    }
}
