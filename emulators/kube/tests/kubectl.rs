//! The real kubectl (v1.32, /usr/bin/kubectl) against the emulator over TLS with a token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{WIDGET_CRD_YAML, wait_until};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube_emulator::KubeEmulator;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Output;

struct Kubectl {
    kubeconfig: PathBuf,
    dir: PathBuf,
}

impl Kubectl {
    fn new(emu: &KubeEmulator) -> Self {
        let dir = std::env::temp_dir().join(format!("kubectl-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            kubeconfig: emu.kubeconfig_path().to_path_buf(),
            dir,
        }
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    async fn run(&self, args: &[&str]) -> Output {
        run_with(&self.kubeconfig, &self.dir, args).await
    }

    /// Run and require success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {stdout}\nstderr: {stderr}"
        );
        stdout
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn run_with(kubeconfig: &Path, dir: &Path, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(args);
    cmd.env("HOME", dir).env_remove("KUBECONFIG");
    tokio::time::timeout(common::DEADLINE, cmd.output())
        .await
        .expect("kubectl finished in time")
        .expect("kubectl runs")
}

async fn start() -> (KubeEmulator, Kubectl) {
    let emu = KubeEmulator::options()
        .tls(true)
        .rollout_step(std::time::Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let k = Kubectl::new(&emu);
    (emu, k)
}

const WIDGET: &str = "apiVersion: test.emulator.io/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {color: red, sha: abcdef0}\n";

async fn install_crd(k: &Kubectl) {
    let crd = k.file("crd.yaml", WIDGET_CRD_YAML);
    let out = k.ok(&["apply", "-f", crd.to_str().unwrap()]).await;
    assert_eq!(
        out.trim(),
        "customresourcedefinition.apiextensions.k8s.io/widgets.test.emulator.io created"
    );
    k.ok(&[
        "wait",
        "--for=condition=established",
        "crd/widgets.test.emulator.io",
        "--timeout=20s",
    ])
    .await;
}

#[tokio::test]
async fn apply_get_describe_and_validation_errors() {
    let (_emu, k) = start().await;
    install_crd(&k).await;
    let w = k.file("w.yaml", WIDGET);
    let w = w.to_str().unwrap();
    assert_eq!(
        k.ok(&["apply", "-f", w]).await.trim(),
        "widget.test.emulator.io/w1 created"
    );
    assert_eq!(
        k.ok(&["apply", "-f", w]).await.trim(),
        "widget.test.emulator.io/w1 unchanged"
    );
    let w2 = k.file("w2.yaml", &WIDGET.replace("abcdef0", "'1234567'"));
    assert_eq!(
        k.ok(&["apply", "-f", w2.to_str().unwrap()]).await.trim(),
        "widget.test.emulator.io/w1 configured"
    );
    assert_eq!(
        k.ok(&["apply", "--server-side", "-f", w2.to_str().unwrap()])
            .await
            .trim(),
        "widget.test.emulator.io/w1 serverside-applied"
    );
    // Printer columns (no implicit extra Age), short names and categories from discovery.
    let table = k.ok(&["get", "widgets"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "COLOR", "SIZE", "READY", "AGE"]);
    assert!(table.lines().nth(1).unwrap().starts_with("w1"), "{table}");
    assert!(k.ok(&["get", "wd"]).await.contains("w1"));
    assert!(k.ok(&["get", "emu"]).await.contains("w1"));
    let yaml = k.ok(&["get", "widget", "w1", "-o", "yaml"]).await;
    assert!(
        yaml.contains("sha: \"1234567\"") || yaml.contains("sha: '1234567'"),
        "{yaml}"
    );
    assert!(yaml.contains("size: 1"), "defaults are stored: {yaml}");
    let describe = k.ok(&["describe", "widget", "w1"]).await;
    assert!(
        describe.contains("Name:         w1") && describe.contains("Color:  red"),
        "{describe}"
    );
    // A CEL rule failing: kubectl rebuilds the message from the Status causes.
    let big = k.file("big.yaml", "apiVersion: test.emulator.io/v1\nkind: Widget\nmetadata: {name: big}\nspec: {color: red, size: 11}\n");
    let out = k.run(&["apply", "-f", big.to_str().unwrap()]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "The Widget \"big\" is invalid: spec: Invalid value: \"object\": size too big"
        ),
        "{stderr}"
    );
    // Not found through kubectl.
    let out = k.run(&["get", "widget", "nope"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("Error from server (NotFound): widgets.test.emulator.io \"nope\" not found"),
        "{stderr}"
    );
}

#[tokio::test]
async fn wait_for_condition_and_delete_with_finalizers() {
    let (emu, k) = start().await;
    install_crd(&k).await;
    let w = k.file(
        "w.yaml",
        &WIDGET.replace(
            "metadata: {name: w1}",
            "metadata: {name: w1, finalizers: [test.io/hold]}",
        ),
    );
    k.ok(&["apply", "-f", w.to_str().unwrap()]).await;
    let client = emu.client().await;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("test.emulator.io", "v1", "Widget"),
        "widgets",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    let waiter = {
        let (kc, dir) = (k.kubeconfig.clone(), k.dir.clone());
        tokio::spawn(async move {
            run_with(
                &kc,
                &dir,
                &[
                    "wait",
                    "--for=condition=Ready",
                    "widget/w1",
                    "--timeout=20s",
                ],
            )
            .await
        })
    };
    let status = json!({"apiVersion": "test.emulator.io/v1", "kind": "Widget", "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    api.patch_status("w1", &PatchParams::apply("test"), &Patch::Apply(&status))
        .await
        .unwrap();
    let out = waiter.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "widget.test.emulator.io/w1 condition met"
    );
    // kubectl delete blocks on the finalizer, then reports the deletion.
    let deleter = {
        let (kc, dir) = (k.kubeconfig.clone(), k.dir.clone());
        tokio::spawn(async move {
            run_with(&kc, &dir, &["delete", "widget", "w1", "--timeout=20s"]).await
        })
    };
    wait_until("deletionTimestamp set", || {
        let api = api.clone();
        async move {
            api.get("w1")
                .await
                .unwrap()
                .metadata
                .deletion_timestamp
                .is_some()
        }
    })
    .await;
    api.patch(
        "w1",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    let out = deleter.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "widget.test.emulator.io \"w1\" deleted"
    );
}

#[tokio::test]
async fn rollout_status_follows_the_simulator() {
    let (_emu, k) = start().await;
    let dep = k.file(
        "dep.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: app, image: 'nginx:1.25'}]\n",
    );
    assert_eq!(
        k.ok(&["apply", "-f", dep.to_str().unwrap()]).await.trim(),
        "deployment.apps/web created"
    );
    let out = k
        .ok(&["rollout", "status", "deployment/web", "--timeout=20s"])
        .await;
    assert!(
        out.trim_end()
            .ends_with("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    k.ok(&["set", "image", "deployment/web", "app=nginx:1.26"])
        .await;
    let out = k
        .ok(&["rollout", "status", "deployment/web", "--timeout=20s"])
        .await;
    assert!(
        out.trim_end()
            .ends_with("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    let table = k.ok(&["get", "deploy", "web"]).await;
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()[..4]
            == ["web", "3/3", "3", "3"],
        "{table}"
    );
    let sts = k.file(
        "sts.yaml",
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec:\n      containers: [{name: db, image: 'pg:16'}]\n",
    );
    k.ok(&["apply", "-f", sts.to_str().unwrap()]).await;
    let out = k
        .ok(&["rollout", "status", "statefulset/db", "--timeout=20s"])
        .await;
    assert!(
        out.contains("roll out complete") || out.contains("rolling update complete"),
        "{out}"
    );
}

#[tokio::test]
async fn wrong_token_is_unauthorized() {
    let (emu, k) = start().await;
    let text = std::fs::read_to_string(emu.kubeconfig_path())
        .unwrap()
        .replace("token: emulator-token", "token: wrong");
    let bad = k.file("bad-kubeconfig", &text);
    let out = run_with(&bad, &k.dir, &["get", "configmaps"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // kubectl 1.32 words the discovery 401 as "the server has asked for the client to provide
    // credentials"; older versions print "(Unauthorized)".
    assert!(
        stderr.contains("error: You must be logged in to the server ("),
        "{stderr}"
    );
}

#[tokio::test]
async fn typed_generators_send_protobuf() {
    let (_emu, k) = start().await;
    assert_eq!(
        k.ok(&["create", "namespace", "demo"]).await.trim(),
        "namespace/demo created"
    );
    assert_eq!(
        k.ok(&[
            "-n",
            "demo",
            "create",
            "configmap",
            "c1",
            "--from-literal=a=b"
        ])
        .await
        .trim(),
        "configmap/c1 created"
    );
    assert_eq!(
        k.ok(&[
            "-n",
            "demo",
            "create",
            "secret",
            "generic",
            "s1",
            "--from-literal=pw=x"
        ])
        .await
        .trim(),
        "secret/s1 created"
    );
    assert_eq!(
        k.ok(&[
            "-n",
            "demo",
            "get",
            "configmap",
            "c1",
            "-o",
            "jsonpath={.data.a}"
        ])
        .await,
        "b"
    );
    assert_eq!(
        k.ok(&[
            "-n",
            "demo",
            "get",
            "secret",
            "s1",
            "-o",
            "jsonpath={.type}"
        ])
        .await,
        "Opaque"
    );
    // The namespace got its default ServiceAccount.
    assert!(
        k.ok(&["-n", "demo", "get", "serviceaccounts"])
            .await
            .contains("default")
    );
    assert_eq!(
        k.ok(&["delete", "namespace", "demo"]).await.trim(),
        "namespace \"demo\" deleted"
    );
}

#[tokio::test]
async fn client_side_then_server_side_apply_takes_over_without_conflicts() {
    let (_emu, k) = start().await;
    let dep = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: app, image: 'nginx:1.25'}]\n";
    let v1 = k.file("v1.yaml", dep);
    let v2 = k.file("v2.yaml", &dep.replace("nginx:1.25", "nginx:1.26"));
    k.ok(&["apply", "-f", v1.to_str().unwrap()]).await;
    // The apiserver lets `kubectl` take fields listed in last-applied-configuration, and
    // kubectl then migrates the client-side manager's entries (managedFields replace).
    let out = k
        .ok(&["apply", "--server-side", "-f", v2.to_str().unwrap()])
        .await;
    assert_eq!(out.trim(), "deployment.apps/web serverside-applied");
    let image = k
        .ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
        .await;
    assert_eq!(image, "nginx:1.26");
    let yaml = k
        .ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "yaml",
            "--show-managed-fields",
        ])
        .await;
    assert!(
        !yaml.contains("manager: kubectl-client-side-apply"),
        "{yaml}"
    );
    // Another manager still conflicts, with kubectl's wording.
    let v3 = k.file("v3.yaml", &dep.replace("nginx:1.25", "nginx:1.27"));
    let out = k
        .run(&[
            "apply",
            "--server-side",
            "--field-manager",
            "other",
            "-f",
            v3.to_str().unwrap(),
        ])
        .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Apply failed with 1 conflict: conflict with \"kubectl\""),
        "{stderr}"
    );
}
