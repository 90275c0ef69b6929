//! The GitOps engines' own evaluation of a GitlabDeployment, for tests: Argo CD's health check
//! (examples/gitops/argocd/resource_customizations/…/health.lua) run as Argo CD runs it, and
//! the Flux gate Kustomization's healthCheckExprs evaluated by Flux's own code. Both tools are
//! small Go programs built once from pinned modules (tests/tools/lua, tests/tools/flux-health).
//!
//! A test that holds the examples to objects the operator really wrote passes them here:
//! `argocd_health(&[obj])` and `flux_health(&[obj])` (or the tools' command lines, see their
//! `main.go`: `argocd-lua-health eval SCRIPT FILE=STATUS…`, `flux-health KUSTOMIZATIONS FILE=STATUS…`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Argo CD's layout for GitlabDeployment's health check (health.lua, health_test.yaml, testdata/).
pub fn argocd_health_dir() -> PathBuf {
    repo()
        .join("examples/gitops/argocd/resource_customizations/gitlab-operator.io/GitlabDeployment")
}

/// The Flux Kustomizations of the approval-gate example (the gate holds the healthCheckExprs).
pub fn flux_kustomizations() -> PathBuf {
    repo().join("examples/gitops/flux/approval-gate/kustomizations.yaml")
}

/// Build a tool with its `build` script (a no-op once cached) and return the binary's path.
fn tool(dir: &str) -> PathBuf {
    let out = Command::new(repo().join("tests/tools").join(dir).join("build"))
        .output()
        .unwrap_or_else(|e| panic!("tests/tools/{dir}/build runs: {e}"));
    assert!(
        out.status.success(),
        "building tests/tools/{dir} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// tests/tools/lua: Argo CD's way of running a health.lua (gopher-lua, argocd-cm's libraries).
pub fn lua_health_tool() -> PathBuf {
    tool("lua")
}

/// tests/tools/flux-health: fluxcd/pkg/runtime/cel's status reader, as kustomize-controller uses it.
pub fn flux_health_tool() -> PathBuf {
    tool("flux-health")
}

/// Run a tool; its exit code and stdout parsed as one JSON value per line.
pub fn run_tool(cmd: &mut Command) -> (Option<i32>, Vec<Value>, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("tool runs");
    let lines = String::from_utf8(stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (
        status.code(),
        lines,
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Write objects as JSON files (the tools read YAML or JSON) into `dir`.
fn write_objects(dir: &Path, objects: &[Value]) -> Vec<PathBuf> {
    objects
        .iter()
        .enumerate()
        .map(|(i, obj)| {
            let path = dir.join(format!("object-{i}.json"));
            std::fs::write(&path, serde_json::to_vec(obj).unwrap()).unwrap();
            path
        })
        .collect()
}

/// Argo CD's health (`{status, message}`) of each object, by the example's health.lua.
pub fn argocd_health(objects: &[Value]) -> Vec<Value> {
    let dir = super::tempdir("argocd-health");
    let files = write_objects(dir.path(), objects);
    let (code, lines, stderr) = run_tool(
        Command::new(lua_health_tool())
            .arg("eval")
            .arg(argocd_health_dir().join("health.lua"))
            .args(&files),
    );
    assert_eq!(code, Some(0), "argocd-lua-health failed: {stderr}{lines:?}");
    lines.into_iter().map(|l| l["health"].clone()).collect()
}

/// kstatus' status (`Current`, `InProgress`, `Failed`, `Unknown`) Flux's kustomize-controller
/// gives each object with the gate Kustomization's healthCheckExprs; with the error, if any.
pub fn flux_health(objects: &[Value]) -> Vec<(String, Option<String>)> {
    let dir = super::tempdir("flux-health");
    let files = write_objects(dir.path(), objects);
    let (code, lines, stderr) = run_tool(
        Command::new(flux_health_tool())
            .arg(flux_kustomizations())
            .args(&files),
    );
    assert_eq!(code, Some(0), "flux-health failed: {stderr}{lines:?}");
    lines
        .into_iter()
        .map(|l| {
            (
                l["status"].as_str().unwrap().to_owned(),
                l["error"].as_str().map(str::to_owned),
            )
        })
        .collect()
}
