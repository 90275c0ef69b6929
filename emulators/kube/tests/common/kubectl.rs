//! The real kubectl against an emulator, without blocking the runtime that serves it.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub const KUBECTL: &str = "/usr/bin/kubectl";

/// Whether the real kubectl is here (tests that need it pass with a note when it is not).
pub fn installed() -> bool {
    let here = Path::new(KUBECTL).exists();
    if !here {
        eprintln!("kubectl not installed; skipping");
    }
    here
}

/// kubectl with its own HOME and discovery cache in a temp directory (removed on drop).
pub struct Kubectl {
    pub kubeconfig: PathBuf,
    pub dir: PathBuf,
}

impl Kubectl {
    /// For `emu` (which must serve TLS: kubectl sends its token only over TLS).
    pub fn for_emulator(emu: &kube_emulator::KubeEmulator, prefix: &str) -> Kubectl {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Kubectl {
            kubeconfig: emu.kubeconfig_path().to_path_buf(),
            dir,
        }
    }

    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new(KUBECTL);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .args(args)
            .env("HOME", &self.dir)
            .env_remove("KUBECONFIG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("kubectl starts");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .await
                .unwrap();
        }
        drop(child.stdin.take());
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl finishes")
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs a command that must succeed; returns stdout.
    pub async fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, stdout, stderr) = self.run(args, stdin).await;
        assert!(
            ok,
            "kubectl {args:?} failed:\nstdout: {stdout}\nstderr: {stderr}"
        );
        stdout
    }

    /// Runs a command that must fail; returns stderr.
    pub async fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, stdout, stderr) = self.run(args, stdin).await;
        assert!(!ok, "kubectl {args:?} should fail:\nstdout: {stdout}");
        stderr
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
