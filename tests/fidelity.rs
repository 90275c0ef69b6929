//! Differential fidelity: one table of kubectl and kube-rs scenarios, each run against the kube
//! emulator and against the pinned upstream control plane (tests/cluster, v1.37.2), comparing
//! what a client sees: status codes, `reason`, `details`, the fields clients read, printed
//! columns and kubectl's exit codes and messages.
//!
//! Every scenario returns a normalised observation (JSON) per backend; the test flattens both
//! to JSON pointers and compares them. A difference the emulator keeps on purpose is listed in
//! [`TABLE`] beside its scenario, with the reason; the test fails when a difference appears
//! that is not listed, or when a listed one no longer shows (so the list is always the truth).
//! `docs/emulator-fidelity.md` is written around this table and must name every listed
//! divergence (checked here too).
//!
//! `FIDELITY_ONLY=name,name` runs only those scenarios (while working on one).
//!
//! Beside the table, the operator itself across the one 410 a real cluster produces on
//! demand (`the_operator_keeps_reporting_across_a_crd_upgrade`): it lives in this binary
//! because it changes the spec of a CRD that every test of a binary shares on the real
//! cluster, and no other test here runs the operator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod harness;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use futures::StreamExt;
use harness::{Backend, cluster};
use kube::Client;
use kube::client::Body;
use kube_emulator::KubeEmulator;
use serde_json::{Value, json};

type Observe = for<'a> fn(&'a Target) -> Pin<Box<dyn Future<Output = Value> + Send + 'a>>;

/// One row: a scenario and the divergences accepted in it.
struct Row {
    name: &'static str,
    observe: Observe,
    /// JSON-pointer prefixes of the observation where the backends may differ, and why.
    accepted: &'static [(&'static str, &'static str)],
}

macro_rules! row {
    ($name:ident $(, $path:literal => $why:literal)* $(,)?) => {
        Row {
            name: stringify!($name),
            observe: |t| Box::pin($name(t)),
            accepted: &[$(($path, $why)),*],
        }
    };
}

/// The table. Accepted divergences stay because no client of the emulator (the operator,
/// kubectl, a user of the sandbox) acts on them; each reason says why.
const TABLE: &[Row] = &[
    row!(apply_client_side,
        "/managers/0/fieldsV1/f:data/." => "an Update manager's set lacks the `.` entry of a map it created (the emulator's field sets do not know maps from structs); only `--show-managed-fields` shows it, and `.` entries never take part in apply conflicts",
        "/managers/0/fieldsV1/f:metadata/f:annotations/." => "as above, for metadata.annotations",
    ),
    row!(apply_server_side),
    row!(apply_conflict),
    row!(printer_columns),
    row!(kubectl_wait),
    row!(watch_events),
    row!(patch_types),
    row!(status_subresource),
    row!(finalizers_and_deletion,
        "/addFinalizerWhileDeleting/details/causes/1" => "the real apiserver lists the same cause twice (two validation layers run the check); the message, reason and code are the same",
    ),
    row!(conflict_and_not_found),
    row!(invalid_bodies),
    row!(expired_watch),
    row!(list_pagination,
        "/rootCaConfigMap" => "no root-CA publisher: the emulator has no pods that mount the API's CA, and publishing a ConfigMap in every namespace would change every namespace listing its own tests make",
    ),
    row!(discovery,
        "/aggregated" => "aggregated discovery (apidiscovery.k8s.io/v2) is not served: kubectl and kube-rs ask for it with a fallback and read the legacy documents, which agree",
        "/core~1pods~1log" => "no kubelet, so no pods/log; `kubectl logs` fails on the emulator either way",
    ),
    row!(openapi,
        "/explainSelectorText/stdout" => "the descriptions of the emulator's built-in schemas are abridged (the field names and types agree: `explainSelector`); only `kubectl explain` shows them",
        "/dryRunUnknownField" => "unknown fields of built-in kinds are not rejected under fieldValidation=Strict (the emulator's built-in schemas are a subset, so it cannot tell a field it lacks from an unknown one); custom resources are validated strictly, as the real apiserver does",
    ),
];

/// One backend as the scenarios see it.
struct Target {
    backend: Backend,
    client: Client,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    /// A namespace of the scenario's own (the same name on both backends).
    ns: String,
    /// kubectl's HOME and cache, fresh per scenario so discovery is read anew.
    dir: harness::TempDir,
}

/// What a kubectl run showed: exit code, stdout and stderr (normalised by [`normalise`]).
fn kubectl_seen(code: i32, out: &str, err: &str) -> Value {
    json!({"exit": code, "stdout": lines(out), "stderr": lines(err)})
}

/// Lines with runs of blanks collapsed (column widths follow the cells) and ages replaced.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            l.split_whitespace()
                .map(|w| if is_age(w) { "<age>" } else { w })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn is_age(w: &str) -> bool {
    let digits = w.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &w[digits.len()..];
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && matches!(unit, "s" | "m" | "h" | "d" | "ms")
}

impl Target {
    async fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Value {
        let (code, out, err) = self.kubectl_raw(args, stdin).await;
        kubectl_seen(code, &out, &err)
    }

    async fn kubectl_raw(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(["--namespace", &self.ns])
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("kubectl starts");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).await.unwrap();
        }
        drop(child.stdin.take());
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl finishes")
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A raw request through kube's `Client`: status code and body (JSON when it parses).
    async fn call(&self, method: &str, path: &str, body: Option<(&str, Value)>) -> (u16, Value) {
        self.call_accept(method, path, body, "application/json")
            .await
    }

    async fn call_accept(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Value)>,
        accept: &str,
    ) -> (u16, Value) {
        let path = path.replace("{ns}", &self.ns);
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("Accept", accept);
        let body = match body {
            Some((content_type, value)) => {
                req = req.header("Content-Type", content_type);
                Body::from(serde_json::to_vec(&value).unwrap())
            }
            None => Body::empty(),
        };
        let resp = self.client.send(req.body(body).unwrap()).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect_bytes().await.unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    async fn ok(&self, method: &str, path: &str, body: Option<(&str, Value)>) -> Value {
        let (status, value) = self.call(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{:?}: {method} {path}: {status} {value}",
            self.backend
        );
        value
    }

    /// The lines of a watch that ends after `seconds` (events as `[type, name]`, errors whole).
    async fn watch(&self, path: &str, seconds: u32) -> Vec<Value> {
        let path = format!("{path}&watch=1&timeoutSeconds={seconds}");
        let (status, body) = self.call("GET", &path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        let text = match body {
            Value::String(s) => s,
            one => one.to_string(),
        };
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["type"] != "BOOKMARK")
            .map(|e| {
                if e["type"] == "ERROR" {
                    e
                } else {
                    json!([e["type"], e["object"]["metadata"]["name"]])
                }
            })
            .collect()
    }
}

/// The fields a client reads from a `Status` body.
fn status_body(code: u16, body: &Value) -> Value {
    json!({
        "code": code,
        "kind": body["kind"],
        "status": body["status"],
        "reason": body["reason"],
        "message": body["message"],
        "details": body["details"],
        "bodyCode": body["code"],
    })
}

const YAML_CM: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: conf\ndata:\n  k: \"1\"\n";

const WIDGETS: &str = "/apis/fidelity.example.com/v1/namespaces/{ns}/widgets";

/// The scenario CRD: a schema with a minimum, printer columns, the status subresource, a
/// short name and a category.
fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.fidelity.example.com"},
        "spec": {
            "group": "fidelity.example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                      "listKind": "WidgetList", "shortNames": ["wd"], "categories": ["fidelity"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Color", "type": "string", "jsonPath": ".spec.color", "priority": 1},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "required": ["size"], "properties": {
                            "size": {"type": "integer", "minimum": 1,
                                     "description": "How many."},
                            "color": {"type": "string", "enum": ["red", "blue"]}
                        }},
                        "status": {"type": "object", "properties": {
                            "phase": {"type": "string"},
                            "conditions": {"type": "array", "items": {
                                "type": "object", "properties": {
                                    "type": {"type": "string"}, "status": {"type": "string"}
                                }}}
                        }}
                    }
                }}
            }]
        }
    })
}

/// The same schema as Widgets under another name, for `expired_watch` alone: changing its spec
/// rebuilds its storage, which must not disturb the rows that use Widgets at the same time.
fn gadget_crd() -> Value {
    let mut crd = widget_crd();
    crd["metadata"]["name"] = json!(GADGET_CRD);
    crd["spec"]["names"] = json!({"plural": "gadgets", "singular": "gadget", "kind": "Gadget",
                                  "listKind": "GadgetList"});
    crd
}

const GADGET_CRD: &str = "gadgets.fidelity.example.com";
const GADGETS: &str = "/apis/fidelity.example.com/v1/namespaces/{ns}/gadgets";

/// Runs of digits as one `N` (resourceVersions differ between the backends).
fn digits_as_n(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('N') {
            out.push('N');
        }
    }
    out
}

fn widget(name: &str, size: i64) -> Value {
    json!({"apiVersion": "fidelity.example.com/v1", "kind": "Widget",
           "metadata": {"name": name}, "spec": {"size": size, "color": "red"}})
}

fn deployment(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [
                    {"name": "a", "image": "registry.example/a:1"},
                    {"name": "b", "image": "registry.example/b:1"}
                ]}
            }
        }
    })
}

fn managers(obj: &Value) -> Value {
    let mut list: Vec<Value> = obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            json!({"manager": m["manager"], "operation": m["operation"],
                   "subresource": m["subresource"], "fieldsV1": m["fieldsV1"]})
        })
        .collect();
    list.sort_by_key(|m| m.to_string());
    Value::Array(list)
}

// ---- scenarios -------------------------------------------------------------------------

async fn apply_client_side(t: &Target) -> Value {
    let first = t.kubectl(&["apply", "-f", "-"], Some(YAML_CM)).await;
    let again = t.kubectl(&["apply", "-f", "-"], Some(YAML_CM)).await;
    let changed = YAML_CM.replace("\"1\"", "\"2\"");
    let configured = t.kubectl(&["apply", "-f", "-"], Some(&changed)).await;
    let obj = t
        .ok("GET", "/api/v1/namespaces/{ns}/configmaps/conf", None)
        .await;
    let last: Value = serde_json::from_str(
        obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap_or("null"),
    )
    .unwrap();
    let diff = t.kubectl(&["diff", "-f", "-"], Some(YAML_CM)).await;
    json!({"create": first, "unchanged": again, "configured": configured,
           "lastApplied": last, "data": obj["data"], "managers": managers(&obj),
           "diffExit": diff["exit"]})
}

async fn apply_server_side(t: &Target) -> Value {
    let first = t
        .kubectl(&["apply", "--server-side", "-f", "-"], Some(YAML_CM))
        .await;
    let again = t
        .kubectl(&["apply", "--server-side", "-f", "-"], Some(YAML_CM))
        .await;
    let obj = t
        .ok("GET", "/api/v1/namespaces/{ns}/configmaps/conf", None)
        .await;
    json!({"first": first, "again": again, "managers": managers(&obj),
           "annotations": obj["metadata"]["annotations"]})
}

async fn apply_conflict(t: &Target) -> Value {
    let cm = |v: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf"},
               "data": {"k": v}})
    };
    let path = "/api/v1/namespaces/{ns}/configmaps/conf?fieldManager=";
    let apply = "application/apply-patch+yaml";
    t.ok("PATCH", &format!("{path}alice"), Some((apply, cm("1"))))
        .await;
    let (code, body) = t
        .call("PATCH", &format!("{path}bob"), Some((apply, cm("2"))))
        .await;
    let conflict = status_body(code, &body);
    let kubectl = t
        .kubectl(
            &["apply", "--server-side", "-f", "-"],
            Some(&YAML_CM.replace("\"1\"", "\"3\"")),
        )
        .await;
    let forced = t
        .ok(
            "PATCH",
            &format!("{path}bob&force=true"),
            Some((apply, cm("2"))),
        )
        .await;
    // Same value from a second manager: shared ownership, no conflict.
    let (shared, _) = t
        .call("PATCH", &format!("{path}carol"), Some((apply, cm("2"))))
        .await;
    let after = t
        .ok("GET", "/api/v1/namespaces/{ns}/configmaps/conf", None)
        .await;
    json!({"conflict": conflict, "kubectl": kubectl, "forcedData": forced["data"],
           "sharedCode": shared, "managers": managers(&after)})
}

async fn printer_columns(t: &Target) -> Value {
    t.ok("POST", WIDGETS, Some(("application/json", widget("w1", 3))))
        .await;
    t.ok(
        "POST",
        "/apis/apps/v1/namespaces/{ns}/deployments",
        Some(("application/json", deployment("d", 0))),
    )
    .await;
    t.kubectl(&["apply", "-f", "-"], Some(YAML_CM)).await;
    let table = t
        .call_accept(
            "GET",
            WIDGETS,
            None,
            "application/json;as=Table;v=v1;g=meta.k8s.io",
        )
        .await
        .1;
    let cells: Vec<Value> = table["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let mut c = r["cells"].as_array().cloned().unwrap_or_default();
            c.pop(); // the age
            json!({"cells": c, "objectKind": r["object"]["kind"]})
        })
        .collect();
    json!({
        "table": {"kind": table["kind"], "apiVersion": table["apiVersion"],
                  "columns": table["columnDefinitions"], "rows": cells},
        "widgets": t.kubectl(&["get", "widgets"], None).await,
        "widgetsWide": t.kubectl(&["get", "wd", "-o", "wide"], None).await,
        "category": t.kubectl(&["get", "fidelity"], None).await,
        "configmap": t.kubectl(&["get", "cm", "conf"], None).await,
        "deploymentWide": t.kubectl(&["get", "deploy", "-o", "wide"], None).await,
        "customColumns": t.kubectl(&["get", "widgets", "-o",
            "custom-columns=N:.metadata.name,S:.spec.size"], None).await,
        "noneFound": t.kubectl(&["get", "secrets", "-l", "none=here"], None).await,
    })
}

async fn kubectl_wait(t: &Target) -> Value {
    t.ok("POST", WIDGETS, Some(("application/json", widget("w1", 3))))
        .await;
    json!({
        "jsonpath": t.kubectl(&["wait", "--for=jsonpath={.spec.size}=3", "widget/w1",
                                "--timeout=10s"], None).await,
        "timeout": t.kubectl(&["wait", "--for=condition=Ready", "widget/w1",
                               "--timeout=1s"], None).await,
        "deleteMissing": t.kubectl(&["wait", "--for=delete", "configmap/missing",
                                     "--timeout=1s"], None).await,
        "missing": t.kubectl(&["wait", "--for=condition=Ready", "widget/missing",
                               "--timeout=1s"], None).await,
        "crdEstablished": t.kubectl(&["wait", "--for=condition=Established",
            "crd/widgets.fidelity.example.com", "--timeout=10s"], None).await,
    })
}

async fn watch_events(t: &Target) -> Value {
    let list = t
        .ok("GET", "/api/v1/namespaces/{ns}/configmaps", None)
        .await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!(
        "/api/v1/namespaces/{{ns}}/configmaps?resourceVersion={rv}&allowWatchBookmarks=true&labelSelector=v"
    );
    let watch = t.watch(&path, 3);
    let writes = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let cm = |v: &str| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "conf", "labels": {"v": v}}})
        };
        let cms = "/api/v1/namespaces/{ns}/configmaps";
        t.ok("POST", cms, Some(("application/json", cm("1")))).await;
        t.ok(
            "PATCH",
            &format!("{cms}/conf"),
            Some(("application/merge-patch+json", json!({"data": {"k": "v"}}))),
        )
        .await;
        t.ok("DELETE", &format!("{cms}/conf"), None).await;
    };
    let (events, ()) = tokio::join!(watch, writes);
    // A watch with a label selector: leaving the selection is a DELETED.
    let list = t
        .ok("GET", "/api/v1/namespaces/{ns}/configmaps", None)
        .await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!(
        "/api/v1/namespaces/{{ns}}/configmaps?resourceVersion={rv}&labelSelector=sel%3Dyes"
    );
    let selected = t.watch(&path, 3);
    let writes = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let cms = "/api/v1/namespaces/{ns}/configmaps";
        t.ok(
            "POST",
            cms,
            Some((
                "application/json",
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "sel", "labels": {"sel": "yes"}}}),
            )),
        )
        .await;
        t.ok(
            "PATCH",
            &format!("{cms}/sel"),
            Some((
                "application/merge-patch+json",
                json!({"metadata": {"labels": {"sel": "no"}}}),
            )),
        )
        .await;
    };
    let (selected, ()) = tokio::join!(selected, writes);
    // Initial events: resourceVersion=0 starts with ADDED for what exists.
    let initial = t
        .watch(
            "/api/v1/namespaces/{ns}/configmaps?resourceVersion=0&labelSelector=sel",
            1,
        )
        .await;
    json!({"events": events, "selector": selected, "initial": initial})
}

async fn patch_types(t: &Target) -> Value {
    let d = "/apis/apps/v1/namespaces/{ns}/deployments";
    t.ok("POST", d, Some(("application/json", deployment("d", 0))))
        .await;
    let images = |obj: &Value| {
        obj["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| json!([c["name"], c["image"]]))
            .collect::<Vec<_>>()
    };
    let path = format!("{d}/d");
    let strategic = t
        .ok(
            "PATCH",
            &path,
            Some((
                "application/strategic-merge-patch+json",
                json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "b", "image": "registry.example/b:2"}]}}}}),
            )),
        )
        .await;
    let merge = t
        .ok(
            "PATCH",
            &path,
            Some((
                "application/merge-patch+json",
                json!({"metadata": {"labels": {"x": "y"}}, "spec": {"template": {"spec": {
                    "containers": [{"name": "c", "image": "registry.example/c:1"}]}}}}),
            )),
        )
        .await;
    let json_patch = t
        .ok(
            "PATCH",
            &path,
            Some((
                "application/json-patch+json",
                json!([{"op": "replace", "path": "/spec/replicas", "value": 1},
                       {"op": "add", "path": "/metadata/labels/z", "value": "w"}]),
            )),
        )
        .await;
    let (failed_test_code, failed_test) = t
        .call(
            "PATCH",
            &path,
            Some((
                "application/json-patch+json",
                json!([{"op": "test", "path": "/spec/replicas", "value": 5}]),
            )),
        )
        .await;
    let (strategic_cr_code, strategic_cr) = t
        .call(
            "PATCH",
            &format!("{WIDGETS}/w1"),
            Some((
                "application/strategic-merge-patch+json",
                json!({"spec": {"size": 2}}),
            )),
        )
        .await;
    t.ok("POST", WIDGETS, Some(("application/json", widget("w1", 3))))
        .await;
    let (strategic_cr_code2, strategic_cr2) = t
        .call(
            "PATCH",
            &format!("{WIDGETS}/w1"),
            Some((
                "application/strategic-merge-patch+json",
                json!({"spec": {"size": 2}}),
            )),
        )
        .await;
    let kubectl_merge = t
        .kubectl(
            &[
                "patch",
                "widget",
                "w1",
                "--type=merge",
                "-p",
                r#"{"spec":{"size":4}}"#,
            ],
            None,
        )
        .await;
    let kubectl_noop = t
        .kubectl(
            &[
                "patch",
                "widget",
                "w1",
                "--type=merge",
                "-p",
                r#"{"spec":{"size":4}}"#,
            ],
            None,
        )
        .await;
    let kubectl_json = t
        .kubectl(
            &[
                "patch",
                "deploy",
                "d",
                "--type=json",
                "-p",
                r#"[{"op":"remove","path":"/metadata/labels/x"}]"#,
            ],
            None,
        )
        .await;
    json!({
        "strategic": images(&strategic),
        "merge": {"images": images(&merge), "labels": merge["metadata"]["labels"]},
        "json": {"replicas": json_patch["spec"]["replicas"],
                 "labels": json_patch["metadata"]["labels"],
                 "generation": json_patch["metadata"]["generation"]},
        "jsonTestFails": status_body(failed_test_code, &failed_test),
        "strategicOnMissingCr": status_body(strategic_cr_code, &strategic_cr),
        "strategicOnCr": status_body(strategic_cr_code2, &strategic_cr2),
        "kubectlMerge": kubectl_merge, "kubectlNoop": kubectl_noop, "kubectlJson": kubectl_json,
    })
}

async fn status_subresource(t: &Target) -> Value {
    let created = t
        .ok("POST", WIDGETS, Some(("application/json", widget("w1", 3))))
        .await;
    let w = format!("{WIDGETS}/w1");
    // The main resource ignores status; /status ignores everything but status.
    let main = t
        .ok(
            "PATCH",
            &w,
            Some((
                "application/merge-patch+json",
                json!({"spec": {"size": 4}, "status": {"phase": "Ignored"}}),
            )),
        )
        .await;
    let status = t
        .ok(
            "PATCH",
            &format!("{w}/status"),
            Some((
                "application/merge-patch+json",
                json!({"spec": {"size": 9}, "status": {"phase": "Ready",
                       "conditions": [{"type": "Ready", "status": "True"}]},
                       "metadata": {"labels": {"from": "status"}}}),
            )),
        )
        .await;
    let get_status = t.ok("GET", &format!("{w}/status"), None).await;
    let mut put = get_status.clone();
    put["status"]["phase"] = json!("Put");
    put["spec"]["size"] = json!(7);
    let put = t
        .ok(
            "PUT",
            &format!("{w}/status"),
            Some(("application/json", put)),
        )
        .await;
    let seen = |o: &Value| {
        json!({"spec": o["spec"], "status": o["status"], "generation": o["metadata"]["generation"],
               "labels": o["metadata"]["labels"]})
    };
    let kubectl = t
        .kubectl(
            &[
                "patch",
                "widget",
                "w1",
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"status":{"phase":"Kubectl"}}"#,
            ],
            None,
        )
        .await;
    json!({"created": seen(&created), "main": seen(&main), "status": seen(&status),
           "getStatus": {"kind": get_status["kind"], "phase": get_status["status"]["phase"]},
           "put": seen(&put), "kubectl": kubectl})
}

async fn finalizers_and_deletion(t: &Target) -> Value {
    let mut w = widget("w1", 3);
    w["metadata"]["finalizers"] = json!(["fidelity.example.com/hold"]);
    t.ok("POST", WIDGETS, Some(("application/json", w))).await;
    let path = format!("{WIDGETS}/w1");
    let (code, deleted) = t.call("DELETE", &path, None).await;
    let still = t.ok("GET", &path, None).await;
    let (again_code, again) = t.call("DELETE", &path, None).await;
    let (update_code, update) = t
        .call(
            "PATCH",
            &path,
            Some((
                "application/merge-patch+json",
                json!({"metadata": {"finalizers": ["fidelity.example.com/hold", "other/x"]}}),
            )),
        )
        .await;
    t.ok(
        "PATCH",
        &path,
        Some((
            "application/merge-patch+json",
            json!({"metadata": {"finalizers": null}}),
        )),
    )
    .await;
    let (gone_code, gone) = t.call("GET", &path, None).await;
    // Without finalizers: DELETE answers the object (custom resources) or a Status (configmaps).
    t.kubectl(&["apply", "-f", "-"], Some(YAML_CM)).await;
    let (cm_code, cm) = t
        .call("DELETE", "/api/v1/namespaces/{ns}/configmaps/conf", None)
        .await;
    let kubectl_delete = t
        .kubectl(&["delete", "configmap", "conf", "--ignore-not-found"], None)
        .await;
    let kubectl_missing = t.kubectl(&["delete", "configmap", "conf"], None).await;
    let seen = |code: u16, o: &Value| {
        json!({"code": code, "kind": o["kind"],
               "deletionTimestamp": o["metadata"]["deletionTimestamp"].is_string(),
               "finalizers": o["metadata"]["finalizers"],
               "gracePeriod": o["metadata"]["deletionGracePeriodSeconds"],
               "status": o["status"],
               "details": {"name": o["details"]["name"], "kind": o["details"]["kind"],
                           "group": o["details"]["group"], "uid": o["details"]["uid"].is_string()}})
    };
    json!({"delete": seen(code, &deleted), "stillThere": seen(200, &still),
           "deleteAgain": seen(again_code, &again),
           "addFinalizerWhileDeleting": status_body(update_code, &update),
           "gone": status_body(gone_code, &gone), "configmapDelete": seen(cm_code, &cm),
           "kubectlDelete": kubectl_delete, "kubectlMissing": kubectl_missing})
}

async fn conflict_and_not_found(t: &Target) -> Value {
    let cms = "/api/v1/namespaces/{ns}/configmaps";
    let created = t
        .ok(
            "POST",
            cms,
            Some((
                "application/json",
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "conf"}}),
            )),
        )
        .await;
    let fresh = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf"}});
    let (exists_code, exists) = t.call("POST", cms, Some(("application/json", fresh))).await;
    let mut with_rv = created.clone();
    with_rv["metadata"]["name"] = json!("other");
    let (with_rv_code, with_rv) = t
        .call("POST", cms, Some(("application/json", with_rv)))
        .await;
    let mut stale = created.clone();
    t.ok(
        "PATCH",
        &format!("{cms}/conf"),
        Some(("application/merge-patch+json", json!({"data": {"k": "1"}}))),
    )
    .await;
    stale["data"] = json!({"k": "2"});
    let (stale_code, stale_body) = t
        .call(
            "PUT",
            &format!("{cms}/conf"),
            Some(("application/json", stale)),
        )
        .await;
    let (missing_code, missing) = t.call("GET", &format!("{cms}/missing"), None).await;
    let (missing_cr_code, missing_cr) = t.call("GET", &format!("{WIDGETS}/missing"), None).await;
    let (missing_ns_code, missing_ns) = t
        .call("GET", "/api/v1/namespaces/no-such-namespace-here", None)
        .await;
    let (create_in_missing_ns_code, create_in_missing_ns) = t
        .call(
            "POST",
            "/api/v1/namespaces/no-such-namespace-here/configmaps",
            Some((
                "application/json",
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "x"}}),
            )),
        )
        .await;
    let (unknown_code, _) = t
        .call(
            "GET",
            "/apis/fidelity.example.com/v1/namespaces/{ns}/gizmos",
            None,
        )
        .await;
    json!({
        "alreadyExists": status_body(exists_code, &exists),
        "createWithResourceVersion": status_body(with_rv_code, &with_rv),
        "staleUpdate": status_body(stale_code, &stale_body),
        "notFound": status_body(missing_code, &missing),
        "notFoundCr": status_body(missing_cr_code, &missing_cr),
        "notFoundNamespace": status_body(missing_ns_code, &missing_ns),
        "createInMissingNamespace": status_body(create_in_missing_ns_code, &create_in_missing_ns),
        "unknownResourceCode": unknown_code,
        "kubectlGetMissing": t.kubectl(&["get", "configmap", "missing"], None).await,
        "kubectlCreateExisting": t.kubectl(&["create", "-f", "-"], Some(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: conf\n")).await,
    })
}

async fn invalid_bodies(t: &Target) -> Value {
    let (small_code, small) = t
        .call("POST", WIDGETS, Some(("application/json", widget("w1", 0))))
        .await;
    let mut colored = widget("w2", 2);
    colored["spec"]["color"] = json!("green");
    let (color_code, color) = t
        .call("POST", WIDGETS, Some(("application/json", colored)))
        .await;
    let mut no_selector = deployment("d", 1);
    no_selector["spec"]
        .as_object_mut()
        .unwrap()
        .remove("selector");
    let (deploy_code, deploy) = t
        .call(
            "POST",
            "/apis/apps/v1/namespaces/{ns}/deployments",
            Some(("application/json", no_selector)),
        )
        .await;
    let (bad_name_code, bad_name) = t
        .call(
            "POST",
            "/api/v1/namespaces/{ns}/configmaps",
            Some((
                "application/json",
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "Bad_Name"}}),
            )),
        )
        .await;
    let kubectl = t
        .kubectl(
            &["apply", "-f", "-"],
            Some("apiVersion: fidelity.example.com/v1\nkind: Widget\nmetadata:\n  name: w3\nspec:\n  size: 0\n"),
        )
        .await;
    let unknown_field = t
        .kubectl(
            &["apply", "-f", "-"],
            Some("apiVersion: fidelity.example.com/v1\nkind: Widget\nmetadata:\n  name: w4\nspec:\n  size: 1\n  shape: round\n"),
        )
        .await;
    json!({
        "minimum": status_body(small_code, &small),
        "enum": status_body(color_code, &color),
        "deploymentWithoutSelector": status_body(deploy_code, &deploy),
        "badName": status_body(bad_name_code, &bad_name),
        "kubectl": kubectl,
        "kubectlUnknownField": unknown_field,
    })
}

/// A watch resumed from a resourceVersion the server no longer holds. On the real apiserver a
/// change of a CRD's spec rebuilds the custom resources' watch cache (open watches end, older
/// resourceVersions are gone): the way a running operator meets 410 in practice, when its CRDs
/// are upgraded. The emulator must do the same.
async fn expired_watch(t: &Target) -> Value {
    let mut gadget = widget("g1", 3);
    gadget["kind"] = json!("Gadget");
    t.ok("POST", GADGETS, Some(("application/json", gadget)))
        .await;
    let list = t.ok("GET", GADGETS, None).await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    // An open watch, ended by the CRD change.
    let from_rv = format!("{GADGETS}?resourceVersion={rv}");
    let open = t.watch(&from_rv, 20);
    let crd_path = format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{GADGET_CRD}");
    let change = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut crd = gadget_crd();
        crd["spec"]["versions"][0]["additionalPrinterColumns"][0]["description"] =
            json!(format!("changed by {}", t.ns));
        crd["metadata"]["resourceVersion"] =
            t.ok("GET", &crd_path, None).await["metadata"]["resourceVersion"].clone();
        t.ok("PUT", &crd_path, Some(("application/json", crd)))
            .await;
        tokio::time::Instant::now()
    };
    let (events, changed_at) = tokio::join!(open, change);
    // Ended by the change, not by its 20 s timeout.
    let ended_by_the_change = changed_at.elapsed() < Duration::from_secs(10);
    // Resuming from the old resourceVersion.
    let mut resumed = Vec::new();
    for _ in 0..50 {
        resumed = t.watch(&from_rv, 1).await;
        if !resumed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let normalise = |mut e: Value| {
        if let Some(m) = e["object"]["message"].as_str() {
            e["object"]["message"] = json!(digits_as_n(m));
        }
        e
    };
    json!({
        "openWatch": events,
        "openWatchEndedByTheChange": ended_by_the_change,
        "resumed": resumed.into_iter().map(normalise).collect::<Vec<_>>(),
    })
}

async fn list_pagination(t: &Target) -> Value {
    for n in ["a", "b", "c"] {
        t.ok(
            "POST",
            "/api/v1/namespaces/{ns}/configmaps",
            Some((
                "application/json",
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": n, "labels": {"page": "yes"}}}),
            )),
        )
        .await;
    }
    let page = |v: &Value| {
        json!({"items": v["items"].as_array().unwrap().iter()
                   .map(|i| i["metadata"]["name"].clone()).collect::<Vec<_>>(),
               "continues": v["metadata"]["continue"].is_string(),
               "remaining": v["metadata"]["remainingItemCount"]})
    };
    let first = t
        .ok(
            "GET",
            "/api/v1/namespaces/{ns}/configmaps?limit=2&labelSelector=page",
            None,
        )
        .await;
    let token = first["metadata"]["continue"].as_str().unwrap_or_default();
    let second = t
        .ok(
            "GET",
            &format!(
                "/api/v1/namespaces/{{ns}}/configmaps?limit=2&labelSelector=page&continue={token}"
            ),
            None,
        )
        .await;
    let (bad_code, bad) = t
        .call(
            "GET",
            "/api/v1/namespaces/{ns}/configmaps?limit=2&continue=not-a-token",
            None,
        )
        .await;
    let chunked = t
        .kubectl(
            &[
                "get",
                "configmaps",
                "-l",
                "page",
                "--chunk-size=1",
                "-o",
                "name",
            ],
            None,
        )
        .await;
    // The message's head: what follows "continue key is not valid" is the decoder's own
    // complaint about this particular garbage (Go's base64/JSON errors).
    let mut bad_continue = status_body(bad_code, &bad);
    if let Some(m) = bad_continue["message"].as_str() {
        let head = m.split(": continue key is not valid").next().unwrap_or(m);
        bad_continue["message"] = json!(head);
    }
    // The root-CA publisher of kube-controller-manager adds kube-root-ca.crt to every
    // namespace.
    let mut root_ca = false;
    for _ in 0..50 {
        let (code, _) = t
            .call(
                "GET",
                "/api/v1/namespaces/{ns}/configmaps/kube-root-ca.crt",
                None,
            )
            .await;
        root_ca = code == 200;
        if root_ca {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    json!({"first": page(&first), "second": page(&second),
           "badContinue": bad_continue, "kubectlChunked": chunked, "rootCaConfigMap": root_ca})
}

async fn discovery(t: &Target) -> Value {
    let resource = |list: &Value, name: &str| {
        let r = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or(Value::Null);
        let mut verbs: Vec<String> = r["verbs"]
            .as_array()
            .map(|v| v.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        verbs.sort();
        json!({"kind": r["kind"], "namespaced": r["namespaced"], "verbs": verbs,
               "shortNames": r["shortNames"], "categories": r["categories"],
               "singularName": r["singularName"], "group": r["group"], "version": r["version"]})
    };
    let core = t.ok("GET", "/api/v1", None).await;
    let apps = t.ok("GET", "/apis/apps/v1", None).await;
    let widgets = t.ok("GET", "/apis/fidelity.example.com/v1", None).await;
    let groups = t.ok("GET", "/apis", None).await;
    let group = |name: &str| {
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .map(|g| json!({"preferred": g["preferredVersion"], "versions": g["versions"]}))
    };
    let mut out = json!({
        "api": {"kind": t.ok("GET", "/api", None).await["kind"]},
        "groupsKind": groups["kind"],
        "appsGroup": group("apps"),
        "widgetGroup": group("fidelity.example.com"),
        "coreKind": core["kind"], "coreGroupVersion": core["groupVersion"],
    });
    for name in [
        "configmaps",
        "secrets",
        "namespaces",
        "events",
        "pods",
        "pods/status",
        "pods/log",
    ] {
        out[format!("core/{name}")] = resource(&core, name);
    }
    for name in [
        "deployments",
        "deployments/status",
        "deployments/scale",
        "statefulsets",
        "daemonsets",
        "replicasets",
    ] {
        out[format!("apps/{name}")] = resource(&apps, name);
    }
    for name in ["widgets", "widgets/status"] {
        out[format!("fidelity/{name}")] = resource(&widgets, name);
    }
    // Aggregated discovery (what kubectl reads first).
    let (code, agg) = t
        .call_accept(
            "GET",
            "/apis",
            None,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .await;
    let agg_group = agg["items"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|g| g["metadata"]["name"] == "fidelity.example.com")
        })
        .cloned()
        .unwrap_or(Value::Null);
    out["aggregated"] = json!({"code": code, "kind": agg["kind"], "apiVersion": agg["apiVersion"],
                               "widgetGroup": agg_group});
    out["apiResources"] = t
        .kubectl(&["api-resources", "--api-group=fidelity.example.com"], None)
        .await;
    out["apiVersionsHasApps"] = json!(
        t.kubectl_raw(&["api-versions"], None)
            .await
            .1
            .lines()
            .any(|l| l == "apps/v1")
    );
    out
}

async fn openapi(t: &Target) -> Value {
    let index = t.ok("GET", "/openapi/v3", None).await;
    let paths = index["paths"].as_object().unwrap();
    let has = |p: &str| {
        paths.get(p).map(|v| {
            let url = v["serverRelativeURL"].as_str().unwrap_or_default();
            url.starts_with(&format!("/openapi/v3/{p}?hash="))
        })
    };
    let widgets = t
        .ok("GET", "/openapi/v3/apis/fidelity.example.com/v1", None)
        .await;
    let schema = &widgets["components"]["schemas"]["com.example.fidelity.v1.Widget"];
    json!({
        "paths": {"api/v1": has("api/v1"), "apis/apps/v1": has("apis/apps/v1"),
                  "apis/fidelity.example.com/v1": has("apis/fidelity.example.com/v1")},
        "widget": {"gvk": schema["x-kubernetes-group-version-kind"],
                   "size": schema["properties"]["spec"]["properties"]["size"],
                   "specRequired": schema["properties"]["spec"]["required"]},
        "explainSelector": explain_fields(
            t.kubectl(&["explain", "deployment.spec.selector"], None).await),
        "explain": t.kubectl(&["explain", "widgets.spec.size"], None).await,
        "explainDeployment": t.kubectl(&["explain", "deployment.spec.paused"], None).await,
        "explainSelectorText": t.kubectl(&["explain", "deployment.spec.selector"], None).await,
        "dryRunUnknownField": t.kubectl(&["apply", "--dry-run=server", "--validate=strict",
            "-f", "-"], Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\nunknown: 1\n"))
            .await,
    })
}

/// `kubectl explain` without the descriptions: the exit code and the lines that name the
/// kind, the field and its children with their types.
fn explain_fields(mut seen: Value) -> Value {
    if let Some(lines) = seen["stdout"].as_array_mut() {
        lines.retain(|l| {
            let l = l.as_str().unwrap_or_default();
            ["GROUP:", "KIND:", "VERSION:", "FIELD:"]
                .iter()
                .any(|h| l.starts_with(h))
                || (l.contains(" <") && !l.contains(". "))
        });
    }
    seen
}

// ---- the comparison --------------------------------------------------------------------

/// Leaves of `v` by JSON pointer (arrays by index), with the namespace name replaced by `NS`.
fn flatten(v: &Value, ns: &str, at: String, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                flatten(
                    v,
                    ns,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, v) in a.iter().enumerate() {
                flatten(v, ns, format!("{at}/{i}"), out);
            }
        }
        Value::String(s) => {
            out.insert(at, Value::String(s.replace(ns, "NS")));
        }
        other => {
            out.insert(at, other.clone());
        }
    }
}

struct Outcome {
    row: &'static str,
    /// Pointers where the backends differ: (pointer, emulator, real).
    differences: Vec<(String, Value, Value)>,
}

fn compare(row: &'static str, ns: &str, emulator: &Value, real: &Value) -> Outcome {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten(emulator, ns, String::new(), &mut a);
    flatten(real, ns, String::new(), &mut b);
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let differences = keys
        .into_iter()
        .filter_map(|k| {
            let (x, y) = (a.get(k), b.get(k));
            (x != y).then(|| {
                (
                    k.clone(),
                    x.cloned().unwrap_or(Value::Null),
                    y.cloned().unwrap_or(Value::Null),
                )
            })
        })
        .collect();
    Outcome { row, differences }
}

async fn target(backend: Backend, client: Client, kubeconfig: PathBuf, row: &str) -> Target {
    let ns = format!("fid-{}-{}", row.replace('_', "-"), std::process::id());
    let t = Target {
        backend,
        client,
        kubeconfig,
        kubectl: cluster::bin_dir().join("kubectl"),
        ns,
        dir: harness::tempdir("fidelity-kubectl"),
    };
    t.ok(
        "POST",
        "/api/v1/namespaces",
        Some((
            "application/json",
            json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": t.ns}}),
        )),
    )
    .await;
    t
}

async fn install_crds(client: &Client) {
    install_crd(client, widget_crd()).await;
    install_crd(client, gadget_crd()).await;
}

async fn install_crd(client: &Client, crd: Value) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, Patch, PatchParams};
    use kube::runtime::wait::{await_condition, conditions};
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd["metadata"]["name"].as_str().unwrap().to_owned();
    let name = name.as_str();
    crds.patch(
        name,
        &PatchParams::apply("fidelity").force(),
        &Patch::Apply(crd),
    )
    .await
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(20),
        await_condition(crds, name, conditions::is_crd_established()),
    )
    .await
    .expect("CRD established")
    .unwrap();
}

fn doc_path() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/emulator-fidelity.md"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn emulator_and_real_kubernetes_agree() {
    harness::install_tracing();
    let only: Option<Vec<String>> = std::env::var("FIDELITY_ONLY")
        .ok()
        .map(|s| s.split(',').map(str::to_owned).collect());
    let rows: Vec<&Row> = TABLE
        .iter()
        .filter(|r| only.as_ref().is_none_or(|o| o.iter().any(|n| n == r.name)))
        .collect();

    let emulator = KubeEmulator::options().tls(true).start().await.unwrap();
    let emulator_client = emulator.client().await;
    let emulator_kubeconfig = emulator.kubeconfig_path().to_path_buf();
    let cluster = tokio::task::spawn_blocking(cluster::shared).await.unwrap();
    let real_client = cluster::admin_client(cluster).await;
    tokio::join!(install_crds(&emulator_client), install_crds(&real_client));

    let began = std::time::Instant::now();
    let outcomes: Vec<Outcome> = futures::stream::iter(rows.iter().map(|row| {
        let (ec, rc) = (emulator_client.clone(), real_client.clone());
        let (ek, rk) = (emulator_kubeconfig.clone(), cluster.kubeconfig.clone());
        async move {
            let e = target(Backend::Emulator, ec, ek, row.name).await;
            let r = target(Backend::Real, rc, rk, row.name).await;
            let (seen_e, seen_r) = tokio::join!((row.observe)(&e), (row.observe)(&r));
            compare(row.name, &e.ns, &seen_e, &seen_r)
        }
    }))
    .buffer_unordered(4)
    .collect()
    .await;
    eprintln!(
        "{} scenarios on both backends in {:.1} s",
        rows.len(),
        began.elapsed().as_secs_f64()
    );

    let doc = std::fs::read_to_string(doc_path()).unwrap();
    let mut failures = Vec::new();
    for outcome in &outcomes {
        let row = TABLE.iter().find(|r| r.name == outcome.row).unwrap();
        for (path, emulator, real) in &outcome.differences {
            let listed = row.accepted.iter().any(|(p, _)| path.starts_with(p));
            eprintln!(
                "{} {}{path}: emulator {emulator} | real {real}",
                if listed { "accepted" } else { "DIVERGES" },
                outcome.row
            );
            if !listed {
                failures.push(format!(
                    "{}{path}: emulator {emulator}, real {real}",
                    outcome.row
                ));
            }
        }
        for (prefix, why) in row.accepted {
            if !outcome
                .differences
                .iter()
                .any(|(p, _, _)| p.starts_with(prefix))
            {
                failures.push(format!(
                    "{}{prefix} is listed as a divergence ({why}) but both backends agree now: \
                     remove it from the table and the doc",
                    outcome.row
                ));
            }
            if !doc.contains(&format!("`{}{prefix}`", outcome.row)) {
                failures.push(format!(
                    "docs/emulator-fidelity.md does not list `{}{prefix}`",
                    outcome.row
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "fidelity table:\n{}",
        failures.join("\n")
    );
}

// ---- the operator across an expired watch ----------------------------------------------

/// Apply the GitlabDeployment CRD as the harness does, with one more printer column when
/// `upgraded`: a change of its spec, as a new release of the operator's CRDs brings.
async fn apply_gld_crd(client: &Client, upgraded: bool) {
    use gitlab_deployment_operator::api::GitlabDeployment;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::CustomResourceExt;
    use kube::api::{Api, Patch, PatchParams};
    let mut crd = serde_json::to_value(GitlabDeployment::crd()).unwrap();
    if upgraded {
        crd["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "Upgraded", "type": "string",
                         "jsonPath": ".metadata.name", "priority": 1}));
    }
    let name = crd["metadata"]["name"].as_str().unwrap().to_owned();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        &name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
}

/// A running operator meets a watch ended by the server and resumed into 410 `Expired`, the
/// way it does in production when its CRDs are upgraded under it (`helm upgrade`,
/// `kubectl apply -f crds/`): the real apiserver rebuilds the resource's watch cache, ends
/// every open watch and expires every older resourceVersion. The operator must relist and
/// keep reporting: a change of the GitlabDeployment (seen only on the relisted watch) and a
/// new image are reported once each.
async fn the_operator_keeps_reporting_across_a_crd_upgrade(backend: Backend) {
    use gitlab_deployment_operator::api::GitlabDeployment;
    use kube::api::{WatchEvent, WatchParams};
    let env = harness::Env::start_on(backend).await;
    let shas = env.project.shas.clone();
    let success_of = |sha: String| {
        move |gd: &GitlabDeployment| {
            harness::gitlab_status(gd).as_deref() == Some("success")
                && gd
                    .status
                    .as_ref()
                    .and_then(|s| s.deployment.as_ref())
                    .map(|d| &d.sha)
                    == Some(&sha)
        }
    };
    env.apply_workload(
        "web",
        &format!("registry.example/app:{}", shas[1]),
        json!({}),
    )
    .await;
    let op = env.start_operator();
    env.apply_gld("web-prod", env.fixed_spec("prod", &shas[1]))
        .await;
    env.wait_for("web-prod", "first success", success_of(shas[1].clone()))
        .await;
    // Where a watcher that has seen everything so far resumes from.
    let glds = env.glds();
    let rv = glds
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();

    apply_gld_crd(&env.client, true).await;

    // Resuming there is expired now (the operator's watcher meets the same).
    let mut expired = None;
    for _ in 0..50 {
        let stream = glds
            .watch(&WatchParams::default().timeout(1), &rv)
            .await
            .unwrap();
        let events: Vec<_> = stream.collect().await;
        if let Some(Ok(WatchEvent::Error(e))) = events.into_iter().next() {
            expired = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let expired = expired.expect("a watch resumed from before the CRD upgrade gets 410");
    assert_eq!(
        (expired.code, expired.reason.as_str()),
        (410, "Expired"),
        "{expired:?}"
    );

    // The operator still follows the GitlabDeployment (this change reaches it only through a
    // relisted watch) and then the workload.
    env.apply_gld("web-prod", env.fixed_spec("prod", &shas[2]))
        .await;
    let wanted = shas[2].clone();
    env.wait_for("web-prod", "the new sha seen", move |gd| {
        gd.status
            .as_ref()
            .and_then(|s| s.rollout.as_ref())
            .is_some_and(|r| r.revision.as_deref() == Some(wanted.as_str()))
    })
    .await;
    env.apply_workload(
        "web",
        &format!("registry.example/app:{}", shas[2]),
        json!({}),
    )
    .await;
    env.wait_for(
        "web-prod",
        "success after the CRD upgrade",
        success_of(shas[2].clone()),
    )
    .await;
    let deployments = env.gitlab_deployments("prod");
    assert_eq!(
        deployments.len(),
        2,
        "one GitLab deployment per sha: {deployments:?}"
    );
    assert_eq!(
        (deployments[1].sha.as_str(), deployments[1].status.as_str()),
        (shas[2].as_str(), "success")
    );
    op.stop().await;
    apply_gld_crd(&env.client, false).await;
}

both_backends!(the_operator_keeps_reporting_across_a_crd_upgrade);
