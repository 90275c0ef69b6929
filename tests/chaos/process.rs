//! The operator as a separate OS process, so a kill is a real SIGKILL (no destructor, no
//! graceful shutdown, an in-flight HTTP request cut wherever it was).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

pub struct OperatorProcess {
    child: Option<Child>,
    binary: PathBuf,
    kubeconfig: PathBuf,
    /// The GitLab emulator: the only host the operator is allowed to reach.
    gitlab: SocketAddr,
    log: PathBuf,
    admin: Option<SocketAddr>,
    pub starts: u32,
    pub kills: u32,
    /// `gitlab_operator_reconciles_total` summed over every process, scraped before each kill.
    pub reconciles: u64,
    /// `--namespace` values; empty: every namespace.
    namespaces: Vec<String>,
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("bound socket has an address").port()
}

impl OperatorProcess {
    pub fn new(kubeconfig: &Path, gitlab: SocketAddr, log: PathBuf) -> Self {
        Self {
            child: None,
            binary: PathBuf::from(env!("CARGO_BIN_EXE_gitlab-deployment-operator")),
            kubeconfig: kubeconfig.to_owned(),
            gitlab,
            log,
            admin: None,
            starts: 0,
            kills: 0,
            reconciles: 0,
            namespaces: Vec::new(),
        }
    }

    /// Serve only these namespaces (`--namespace`): on the real cluster a test binary shares.
    #[allow(dead_code)] // tests/chaos.rs uses it, tests/secret_memory.rs does not
    pub fn serving(mut self, namespaces: Vec<String>) -> Self {
        self.namespaces = namespaces;
        self
    }

    /// Run another build of the operator (an older one, to compare).
    #[allow(dead_code)] // tests/secret_memory.rs uses it, tests/chaos.rs does not
    pub fn with_binary(mut self, binary: PathBuf) -> Self {
        self.binary = binary;
        self
    }

    /// Resident memory of the running process (`VmRSS`), in KiB.
    #[allow(dead_code)] // tests/secret_memory.rs uses it, tests/chaos.rs does not
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Spawn `gitlab-deployment-operator run`, its output appended to the log file.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the operator log");
        let err = log.try_clone().expect("clone the log handle");
        let child = Command::new(&self.binary)
            .args([
                "run",
                "--allowed-host",
                &self.gitlab.to_string(),
                "--allow-insecure-http",
                "--admin-addr",
                &admin.to_string(),
                // Above the connection's 5 s timeout, leaving each create 1-2 s after its
                // claim to be sent (docs/chaos.md).
                "--recovery-grace-seconds",
                "7",
                "--identity",
                &format!("chaos-{}", self.starts),
            ])
            .args(
                self.namespaces
                    .iter()
                    .flat_map(|ns| ["--namespace", ns.as_str()]),
            )
            .env("KUBECONFIG", &self.kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("CHAOS_OPERATOR_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("WATCH_NAMESPACES")
            .env_remove("LEADER_ELECT")
            .env_remove("GITLAB_ALLOWED_HOSTS")
            .env_remove("GITLAB_ALLOW_INSECURE_HTTP")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the operator binary");
        self.child = Some(child);
        self.admin = Some(admin);
        self.starts += 1;
    }

    /// SIGKILL (`Child::kill`), after scraping its reconcile count.
    pub async fn kill(&mut self) {
        if let Some(n) = self.scrape_reconciles().await {
            self.reconciles += n;
        }
        if let Some(mut child) = self.child.take() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the operator exited on its own ({status}); see {}",
                    self.log.display()
                );
            }
            child.kill().await.expect("SIGKILL the operator");
            self.kills += 1;
        }
    }

    /// Fail loudly if the process died by itself (a panic or an exit is a finding).
    pub fn assert_alive(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!(
                "the operator exited on its own ({status}); see {}",
                self.log.display()
            );
        }
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let addr = self.admin?;
        let fut = async {
            let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
            let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.ok()?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.ok()?;
            let text = String::from_utf8_lossy(&buf).into_owned();
            let code = text.split_whitespace().nth(1)?.parse().ok()?;
            let body = text
                .split_once("\r\n\r\n")
                .map(|(_, b)| b.to_owned())
                .unwrap_or_default();
            Some((code, body))
        };
        tokio::time::timeout(Duration::from_secs(3), fut)
            .await
            .ok()
            .flatten()
    }

    /// Wait until `/readyz` answers 200 (watches synced), or `timeout`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            self.assert_alive();
            if let Some((200, _)) = self.get("/readyz").await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Sum of `gitlab_operator_reconciles_total` of the current process.
    pub async fn scrape_reconciles(&self) -> Option<u64> {
        let (code, body) = self.get("/metrics").await?;
        (code == 200).then(|| sum_metric(&body, "gitlab_operator_reconciles_total"))
    }
}

/// Sum every sample of `family` in a Prometheus text exposition.
pub fn sum_metric(text: &str, family: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(family))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
