//! Runs the real `gitlab-emulator` binary and drives it with curl; checks `--state` survives a
//! restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Server {
    child: Child,
    base: String,
    shas: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on port 0 and reads the banner (base URL and `main`'s shas).
fn start(state: &std::path::Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gitlab-emulator"))
        .args(["--listen", "127.0.0.1:0", "--token", "tok-root", "--state"])
        .arg(state)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut base = String::new();
    let mut shas = Vec::new();
    let mut in_shas = false;
    while shas.len() < 5 || base.is_empty() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("banner from gitlab-emulator");
        if let Some(rest) = line.strip_prefix("GitLab emulator listening on ") {
            base = rest.trim().to_string();
        } else if line.contains("shas (newest first)") {
            in_shas = true;
        } else if in_shas && line.starts_with("  ") {
            shas.push(line.trim().to_string());
        }
    }
    Server { child, base, shas }
}

/// `curl` returning (status, body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl must be installed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

#[test]
fn binary_with_curl_and_state_file() {
    let dir = std::env::temp_dir().join(format!("gitlab-emulator-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let _ = std::fs::remove_file(&state);

    let s = start(&state);
    assert!(s.shas.iter().all(|x| x.len() == 40));
    let api = format!("{}/api/v4/projects/demo%2Fapp/deployments", s.base);
    let (code, body) = curl(&["-H", "PRIVATE-TOKEN: tok-root", &api]);
    assert_eq!((code, body.as_str()), (200, "[]"));
    let (code, body) = curl(&["-H", "PRIVATE-TOKEN: tok-root", "-X", "POST", &api]);
    assert_eq!(code, 400);
    assert!(
        body.starts_with(r#"{"error":"environment is missing, environment is empty"#),
        "{body}"
    );
    // curl --data (form) create, then multipart (-F) update.
    let data = format!(
        "environment=staging&sha={}&ref=main&tag=false&status=running",
        s.shas[0]
    );
    let (code, body) = curl(&["-H", "PRIVATE-TOKEN: tok-root", "--data", &data, &api]);
    assert_eq!(code, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = v["id"].as_u64().unwrap();
    let one = format!("{api}/{id}");
    let (code, body) = curl(&[
        "-H",
        "PRIVATE-TOKEN: tok-root",
        "-X",
        "PUT",
        "-F",
        "status=success",
        &one,
    ]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""status":"success""#));
    let (code, body) = curl(&["-X", "GET", &one]);
    assert_eq!(
        (code, body.as_str()),
        (401, r#"{"message":"401 Unauthorized"}"#)
    );
    let (code, _) = curl(&[&format!("{}/api/v4/projects/demo/app/deployments", s.base)]);
    assert_eq!(code, 404);
    drop(s);

    // Restart from the state file: the deployment and the iid sequence survive.
    let s = start(&state);
    let api = format!("{}/api/v4/projects/1/deployments", s.base);
    let (code, body) = curl(&["-H", "PRIVATE-TOKEN: tok-root", &format!("{api}/{id}")]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""status":"success""#));
    let data = format!(
        "environment=staging&sha={}&ref=main&tag=false&status=running",
        s.shas[1]
    );
    let (code, body) = curl(&["-H", "PRIVATE-TOKEN: tok-root", "--data", &data, &api]);
    assert_eq!(code, 201);
    assert!(body.contains(r#""iid":2"#), "{body}");
    drop(s);
    assert!(!dir.join("state.tmp").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
