//! Evidence from real kubectl (v1.32, /usr/bin/kubectl) about what it needs from OpenAPI:
//! a minimal discovery + OpenAPI server built only from this crate's pure `openapi` module
//! (so it does not depend on the emulator's server), with `/openapi/v2` answering 404.
//! * `kubectl create` with the default `--validate=strict` finds the PATCH `fieldValidation`
//!   parameter in `/openapi/v3` and sends `?fieldValidation=Strict`, never touching v2;
//! * `kubectl explain` renders fields from the v3 `components.schemas` (built-in and CRD);
//! * a second client-side `kubectl apply` of a Deployment reads the apps/v1 document and sends
//!   a strategic-merge patch that merges containers by name.
//!
//! Skipped (passes) when kubectl is not installed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use common::kubectl::{Kubectl, installed};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use kube_emulator::openapi::{
    CrdSchema, GroupVersionInfo, ResourceDoc, content_hash, v3_group_version, v3_root,
};
use serde_json::{Value, json};

type Log = Arc<Mutex<Vec<String>>>;

/// The one Deployment `kubectl apply` creates and then patches.
static STORED: Mutex<Option<Value>> = Mutex::new(None);

fn docs() -> Vec<(&'static str, &'static str, Value)> {
    let res = |kind: &str, plural: &str, namespaced: bool| ResourceDoc {
        kind: kind.into(),
        plural: plural.into(),
        namespaced,
        status: false,
        scale: false,
    };
    let crd_schema = json!({"type": "object", "description": "GitlabDeployment reports a workload's rollouts to GitLab.",
        "properties": {"spec": {"type": "object", "description": "What to report.",
            "properties": {"environment": {"type": "string", "description": "GitLab environment name."}}}}});
    vec![
        (
            "",
            "v1",
            v3_group_version(
                "",
                "v1",
                &[
                    res("ConfigMap", "configmaps", true),
                    res("Namespace", "namespaces", false),
                ],
                &[],
            ),
        ),
        (
            "apps",
            "v1",
            v3_group_version("apps", "v1", &[res("Deployment", "deployments", true)], &[]),
        ),
        (
            "gitlab-operator.io",
            "v1alpha1",
            v3_group_version(
                "gitlab-operator.io",
                "v1alpha1",
                &[res("GitlabDeployment", "gitlabdeployments", true)],
                &[CrdSchema {
                    kind: "GitlabDeployment".into(),
                    open_api_v3_schema: crd_schema,
                }],
            ),
        ),
    ]
}

fn resource_list(group_version: &str, resources: Value) -> Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

fn api_resource(name: &str, kind: &str, namespaced: bool) -> Value {
    json!({"name": name, "singularName": kind.to_lowercase(), "namespaced": namespaced, "kind": kind,
        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
}

async fn handle(
    State(log): State<Log>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Response {
    log.lock().unwrap().push(format!("{method} {uri}"));
    let path = uri.path();
    let ok = |v: Value| {
        (
            StatusCode::OK,
            [("content-type", "application/json")],
            v.to_string(),
        )
            .into_response()
    };
    let documents = docs();
    match (method.as_str(), path) {
        ("GET", "/api") => ok(json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})),
        ("GET", "/apis") => ok(
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}], "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}},
            {"name": "gitlab-operator.io", "versions": [{"groupVersion": "gitlab-operator.io/v1alpha1", "version": "v1alpha1"}],
             "preferredVersion": {"groupVersion": "gitlab-operator.io/v1alpha1", "version": "v1alpha1"}}]}),
        ),
        ("GET", "/api/v1") => ok(resource_list(
            "v1",
            json!([
                api_resource("configmaps", "ConfigMap", true),
                api_resource("namespaces", "Namespace", false)
            ]),
        )),
        ("GET", "/apis/apps/v1") => ok(resource_list(
            "apps/v1",
            json!([api_resource("deployments", "Deployment", true)]),
        )),
        ("GET", "/apis/gitlab-operator.io/v1alpha1") => ok(resource_list(
            "gitlab-operator.io/v1alpha1",
            json!([api_resource("gitlabdeployments", "GitlabDeployment", true)]),
        )),
        ("GET", "/openapi/v3") => {
            let gvs: Vec<GroupVersionInfo> = documents
                .iter()
                .map(|(g, v, doc)| GroupVersionInfo {
                    group: g.to_string(),
                    version: v.to_string(),
                    hash: content_hash(doc),
                })
                .collect();
            ok(v3_root(&gvs))
        }
        ("GET", p) if p.starts_with("/openapi/v3/") => {
            let wanted = &p["/openapi/v3/".len()..];
            match documents
                .into_iter()
                .find(|(g, v, _)| kube_emulator::openapi::gv_path(g, v) == wanted)
            {
                Some((_, _, doc)) => ok(doc),
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
        ("POST", "/apis/apps/v1/namespaces/default/deployments") => {
            let mut obj: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            obj["metadata"]["namespace"] = json!("default");
            obj["metadata"]["uid"] = json!("u-2");
            obj["metadata"]["resourceVersion"] = json!("2");
            *STORED.lock().unwrap() = Some(obj.clone());
            (
                StatusCode::CREATED,
                [("content-type", "application/json")],
                obj.to_string(),
            )
                .into_response()
        }
        ("GET", "/apis/apps/v1/namespaces/default/deployments/web")
            if STORED.lock().unwrap().is_some() =>
        {
            ok(STORED.lock().unwrap().clone().unwrap_or(Value::Null))
        }
        ("PATCH", "/apis/apps/v1/namespaces/default/deployments/web") => {
            log.lock()
                .unwrap()
                .push(format!("PATCH-BODY {}", String::from_utf8_lossy(&body)));
            ok(STORED.lock().unwrap().clone().unwrap_or(Value::Null))
        }
        ("POST", "/api/v1/namespaces/default/configmaps") => {
            let mut obj: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            obj["metadata"]["namespace"] = json!("default");
            obj["metadata"]["uid"] = json!("u-1");
            obj["metadata"]["resourceVersion"] = json!("1");
            (
                StatusCode::CREATED,
                [("content-type", "application/json")],
                obj.to_string(),
            )
                .into_response()
        }
        _ => {
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "the server could not find the requested resource", "reason": "NotFound", "details": {}, "code": 404});
            (
                StatusCode::NOT_FOUND,
                [("content-type", "application/json")],
                status.to_string(),
            )
                .into_response()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_uses_v3_for_field_validation_and_explain_without_v2() {
    if !installed() {
        return;
    }
    let log: Log = Arc::default();
    let app = Router::new().fallback(handle).with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = std::env::temp_dir().join(format!("openapi-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubectl = Kubectl {
        kubeconfig: dir.join("kubeconfig"),
        dir,
    };
    std::fs::write(
        &kubectl.kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: emu\n  cluster: {{server: \"http://{addr}\"}}\nusers:\n- name: emu\n  user: {{token: t}}\ncontexts:\n- name: emu\n  context: {{cluster: emu, user: emu, namespace: default}}\ncurrent-context: emu\n"
        ),
    )
    .unwrap();

    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: b\n";
    let (ok, stdout, stderr) = kubectl.run(&["create", "-f", "-"], Some(cm)).await;
    assert!(ok, "create failed: {stdout}\n{stderr}");
    assert!(stdout.contains("configmap/cfg created"), "{stdout}");

    let (ok, explain_deploy, stderr) = kubectl
        .run(
            &["explain", "deployments.spec.template.spec.containers"],
            None,
        )
        .await;
    assert!(ok, "explain failed: {stderr}");
    assert!(
        explain_deploy.contains("KIND:       Deployment"),
        "{explain_deploy}"
    );
    assert!(explain_deploy.contains("image"), "{explain_deploy}");

    let (ok, explain_crd, stderr) = kubectl
        .run(&["explain", "gitlabdeployments.spec"], None)
        .await;
    assert!(ok, "explain CRD failed: {stderr}");
    assert!(
        explain_crd.contains("GitLab environment name."),
        "{explain_crd}"
    );

    // Client-side apply of a built-in, twice: the second computes a strategic-merge patch.
    let deploy = |image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: app\n        image: {image}\n      - name: side\n        image: envoy\n"
        )
    };
    let (ok, stdout, stderr) = kubectl
        .run(&["apply", "-f", "-"], Some(&deploy("nginx:1")))
        .await;
    assert!(ok, "first apply failed: {stdout}\n{stderr}");
    let (ok, stdout, stderr) = kubectl
        .run(&["apply", "-f", "-"], Some(&deploy("nginx:2")))
        .await;
    assert!(ok, "second apply failed: {stdout}\n{stderr}");

    let requests = log.lock().unwrap().clone();
    let patch = requests
        .iter()
        .find(|r| r.starts_with("PATCH-BODY"))
        .expect("a PATCH body");
    assert!(
        patch.contains("$setElementOrder/containers"),
        "containers merged by name: {patch}"
    );
    let post = requests
        .iter()
        .find(|r| r.starts_with("POST "))
        .expect("a POST");
    assert!(post.contains("fieldValidation=Strict"), "{requests:#?}");
    assert!(
        !requests.iter().any(|r| r.contains("/openapi/v2")),
        "v2 was requested: {requests:#?}"
    );
}
