//! Built-in printers through the emulator's HTTP server, as the real kubectl (v1.32) shows
//! them: headers, computed cells (READY 1/1, ports), wide columns and label columns.
//! Skipped (passes) when kubectl is not installed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use kube_emulator::KubeEmulator;

mod common;
use common::kubectl::{self, Kubectl};

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_prints_builtin_columns() {
    if !kubectl::installed() {
        return;
    }
    // kubectl sends the bearer token only over TLS.
    let emu = KubeEmulator::options()
        .tls(true)
        .rollout_step(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let k = Kubectl::for_emulator(&emu, "table-kubectl");

    let ns = k.ok(&["get", "namespace", "default"], None).await;
    let lines: Vec<&str> = ns.lines().collect();
    assert_eq!(words(lines[0]), ["NAME", "STATUS", "AGE"], "{ns}");
    assert_eq!(&words(lines[1])[..2], ["default", "Active"], "{ns}");

    // Applied as YAML (JSON on the wire); `kubectl create configmap` would send protobuf.
    k.ok(
        &["apply", "-f", "-"],
        Some(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata: {a: \"1\", b: \"2\"}\n",
        ),
    )
    .await;
    let cm = k.ok(&["get", "cm", "cfg"], None).await;
    let lines: Vec<&str> = cm.lines().collect();
    assert_eq!(words(lines[0]), ["NAME", "DATA", "AGE"], "{cm}");
    assert_eq!(&words(lines[1])[..2], ["cfg", "2"], "{cm}");

    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: app\n        image: nginx:1\n";
    k.ok(&["apply", "-f", "-"], Some(deploy)).await;
    k.ok(
        &["rollout", "status", "deployment/web", "--timeout=30s"],
        None,
    )
    .await;
    let out = k.ok(&["get", "deployments"], None).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        words(lines[0]),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{out}"
    );
    assert_eq!(&words(lines[1])[..4], ["web", "2/2", "2", "2"], "{out}");
    let wide = k
        .ok(&["get", "deployments", "-o", "wide", "--show-labels"], None)
        .await;
    let lines: Vec<&str> = wide.lines().collect();
    assert_eq!(
        words(lines[0]),
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR",
            "LABELS"
        ],
        "{wide}"
    );
    assert_eq!(
        &words(lines[1])[5..],
        ["app", "nginx:1", "app=web", "app=web"],
        "{wide}"
    );

    // A second client-side apply: kubectl computes a strategic-merge patch from the
    // /openapi/v3 apps/v1 schema (containers merged by name); the image change lands.
    let sidecar = deploy.replace(
        "        image: nginx:1\n",
        "        image: nginx:2\n      - name: side\n        image: envoy:1\n",
    );
    k.ok(&["apply", "-f", "-"], Some(&sidecar)).await;
    let wide = k.ok(&["get", "deployments", "-o", "wide"], None).await;
    let row = words(wide.lines().nth(1).unwrap());
    assert_eq!(&row[5..7], ["app,side", "nginx:2,envoy:1"], "{wide}");

    let explain = k.ok(&["explain", "deployments.spec.replicas"], None).await;
    assert!(explain.contains("FIELD: replicas <integer>"), "{explain}");

    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports:\n  - port: 80\n";
    k.ok(&["apply", "-f", "-"], Some(svc)).await;
    let out = k.ok(&["get", "svc", "web"], None).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        words(lines[0]),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ],
        "{out}"
    );
    let row = words(lines[1]);
    assert_eq!(
        (row[0], row[1], row[3], row[4]),
        ("web", "ClusterIP", "<none>", "80/TCP"),
        "{out}"
    );
}
