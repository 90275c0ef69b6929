//! The real backend: the pinned upstream control plane of `tests/cluster` (etcd,
//! kube-apiserver with `Node,RBAC` and the default admission plugins, kube-controller-manager,
//! our fake kubelet), one per test binary on random loopback ports.
//!
//! nextest runs every test in its own process, so "one per test binary" is shared through
//! files under `target/cluster/run/<test binary>/`: the first process to find no running
//! cluster starts the launcher (detached, its own process group) and every process holds a
//! shared `flock` on `lease` for as long as it lives. The launcher stops everything once no
//! process has held the lease for a few seconds, so a test that panics or is killed leaves
//! nothing behind, and `--max-lifetime` bounds it even if this logic failed.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long an unused cluster lives on (the gap between two test processes is far shorter).
const IDLE: &str = "8s";
/// Upper bound of a cluster's life whatever happens to the processes using it.
const MAX_LIFETIME: &str = "2h";

pub struct Cluster {
    pub kubeconfig: PathBuf,
    /// How long this process waited for the cluster (zero when it joined a running one).
    pub start_time: Duration,
    /// The shared lock that keeps the cluster alive; released when the process exits.
    _lease: File,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The cluster of this test binary, started on first use.
pub fn shared() -> &'static Cluster {
    CLUSTER.get_or_init(start_or_join)
}

/// `target/` of this build: test binaries live in `target/<profile>/deps/`.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn lock_file(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// The directory of the built binaries: `GDO_CLUSTER_BIN` when the nextest setup script
/// built them, otherwise `tests/cluster/build` (which returns at once when they are built).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GDO_CLUSTER_BIN") {
        return PathBuf::from(dir);
    }
    let root = target_dir().join("cluster");
    std::fs::create_dir_all(&root).unwrap();
    let lock = lock_file(&root.join("build.lock"));
    lock.lock().unwrap();
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cluster/build"))
        .env("CARGO_TARGET_DIR", target_dir())
        .stderr(Stdio::inherit())
        .output()
        .expect("run tests/cluster/build (needs bash and Go)");
    assert!(out.status.success(), "tests/cluster/build failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn start_or_join() -> Cluster {
    let begun = Instant::now();
    let bin = bin_dir();
    let exe = std::env::current_exe().unwrap();
    let name = exe.file_name().unwrap().to_string_lossy().into_owned();
    let state = target_dir().join("cluster/run").join(name);
    std::fs::create_dir_all(&state).unwrap();
    let start_lock_path = state.join("start.lock");
    let lease_path = state.join("lease");
    let stdout_path = state.join("launcher.out");
    let kubeconfig = state.join("kubeconfig");

    let start_lock = lock_file(&start_lock_path);
    start_lock.lock().unwrap();
    let lease = lock_file(&lease_path);
    let running = is_ready(&stdout_path) && launcher_alive(&state);
    if !running {
        let data = state.join("data");
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).unwrap();
        let out = File::create(&stdout_path).unwrap();
        let err = File::create(state.join("launcher.log")).unwrap();
        let mut child = Command::new(bin.join("launcher"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--dir")
            .arg(&data)
            .arg("--bin")
            .arg(&bin)
            .arg("--lease")
            .arg(&lease_path)
            .arg("--start-lock")
            .arg(&start_lock_path)
            .args(["--idle", IDLE, "--max-lifetime", MAX_LIFETIME])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own group: a terminal's Ctrl-C or nextest's kill of one test is not for it.
            .process_group(0)
            .spawn()
            .expect("start tests/cluster launcher");
        std::fs::write(state.join("pid"), child.id().to_string()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(240);
        while !is_ready(&stdout_path) {
            let log = || std::fs::read_to_string(state.join("launcher.log")).unwrap_or_default();
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the launcher exited ({status}):\n{}", log());
            }
            assert!(
                Instant::now() < deadline,
                "the control plane was not ready in 240 s:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // Not waited for: it outlives this process by design.
        drop(child);
    }
    lease.lock_shared().unwrap();
    start_lock.unlock().unwrap();
    let start_time = begun.elapsed();
    if !running {
        eprintln!(
            "real control plane ({}) started in {:.1} s",
            bin.display(),
            start_time.as_secs_f64()
        );
    }
    Cluster {
        kubeconfig,
        start_time,
        _lease: lease,
    }
}

fn is_ready(stdout: &Path) -> bool {
    std::fs::read_to_string(stdout).is_ok_and(|s| s.lines().any(|l| l == "ready"))
}

/// Whether the launcher recorded in `pid` is still running (not a zombie, not another
/// program that got the same pid).
fn launcher_alive(state: &Path) -> bool {
    let Ok(pid) = std::fs::read_to_string(state.join("pid")) else {
        return false;
    };
    let proc = Path::new("/proc").join(pid.trim());
    let running = std::fs::read_to_string(proc.join("stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    });
    running
        && std::fs::read_link(proc.join("exe"))
            .is_ok_and(|exe| exe.file_name().is_some_and(|n| n == "launcher"))
}

/// A kube `Client` for the cluster's admin (group `system:masters`).
pub async fn admin_client(cluster: &Cluster) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&cluster.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}
