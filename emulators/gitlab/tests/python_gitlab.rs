//! Runs `tests/python_gitlab.py` (python-gitlab, a client nobody here wrote) against the
//! emulator. Skips with a message only when python-gitlab is missing and `CI` is unset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gitlab_emulator::{Endpoint, Fault, GitlabEmulator};
use std::process::Command;

#[test]
fn python_gitlab_drives_the_emulator() {
    let has_gitlab = Command::new("python3")
        .args(["-c", "import gitlab"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !has_gitlab {
        if std::env::var_os("CI").is_some() {
            panic!("python-gitlab is required in CI: pip install python-gitlab");
        }
        println!("SKIPPED: python3 with python-gitlab not found (pip install python-gitlab)");
        return;
    }
    let gl = GitlabEmulator::start_demo().unwrap();
    let demo = gl.demo().unwrap().clone();
    let h = gl.handle();
    h.inject_fault(Fault::rate_limited(1).on(Endpoint::ListDeployments));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python_gitlab.py");
    let out = Command::new("python3")
        .arg(script)
        .args([
            gl.base_url().as_str(),
            &demo.root_token,
            &demo.approver_token,
            &demo.project_path,
            &demo.main_shas[0],
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python-gitlab script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("OK"), "{stdout}");
    // python-gitlab honoured the 429 and retried.
    let statuses: Vec<u16> = h
        .requests()
        .iter()
        .filter(|r| r.route == Endpoint::ListDeployments)
        .map(|r| r.status)
        .take(2)
        .collect();
    assert_eq!(statuses, vec![429, 200]);
}
