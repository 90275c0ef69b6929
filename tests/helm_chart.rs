//! The Helm chart (deploy/helm/gitlab-deployment-operator) with the real helm, built from its
//! Go module on first use (tests/tools/helm/build, cached under target/tools/): it lints, its
//! values are checked by values.schema.json, and its default and namespaced renders are the
//! same objects as `kubectl kustomize deploy/` and `deploy/overlays/namespaced` apart from
//! Helm's labels, so the two installs never drift.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const NS: &str = "gitlab-deployment-operator";
/// Labels Helm's templates add that kustomize's do not.
const HELM_LABELS: [&str; 4] = [
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    repo().join("deploy/helm/gitlab-deployment-operator")
}

/// The pinned helm, built once (the script is a no-op when the binary is cached).
fn helm() -> PathBuf {
    let out = Command::new(repo().join("tests/tools/helm/build"))
        .output()
        .expect("tests/tools/helm/build runs");
    assert!(
        out.status.success(),
        "building helm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().expect("command runs");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(format!(
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

fn parse_yaml_stream(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// `helm template` of the chart with `args`, one JSON value per object.
fn template(args: &[&str]) -> Result<Vec<Value>, String> {
    run(Command::new(helm())
        .args(["template", "gitlab-deployment-operator"])
        .arg(chart())
        .args(["--namespace", NS])
        .args(args))
    .map(|text| parse_yaml_stream(&text))
}

fn kustomize(dir: &Path) -> Vec<Value> {
    parse_yaml_stream(&run(Command::new("kubectl").arg("kustomize").arg(dir)).unwrap())
}

/// Objects by `kind/namespace/name`, with what may differ between the installs removed:
/// Helm's labels; the labels of CRDs (Helm installs `crds/` untemplated, kustomize labels
/// them); the order of env vars.
fn normalized(objs: Vec<Value>) -> BTreeMap<String, Value> {
    objs.into_iter()
        .map(|mut o| {
            let key = format!(
                "{}/{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["namespace"].as_str().unwrap_or(""),
                o["metadata"]["name"].as_str().unwrap()
            );
            let is_crd = o["kind"] == "CustomResourceDefinition";
            if let Some(labels) = o["metadata"]
                .get_mut("labels")
                .and_then(Value::as_object_mut)
            {
                labels.retain(|k, _| !is_crd && !HELM_LABELS.contains(&k.as_str()));
                if labels.is_empty() {
                    o["metadata"].as_object_mut().unwrap().remove("labels");
                }
            }
            if let Some(containers) = o
                .pointer_mut("/spec/template/spec/containers")
                .and_then(Value::as_array_mut)
            {
                for c in containers {
                    if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
                        env.sort_by_key(|e| e["name"].as_str().unwrap_or("").to_owned());
                    }
                }
            }
            integral_numbers(&mut o);
            (key, o)
        })
        .collect()
}

/// `10000.0` (as the generated CRDs write it) and `10000` (as kustomize re-renders it) are the
/// same number to the API server.
fn integral_numbers(v: &mut Value) {
    match v {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && n.is_f64()) {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(map) => map.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

/// Equal maps, or a message naming each object that differs.
fn assert_same(helm: BTreeMap<String, Value>, kustomize: BTreeMap<String, Value>, what: &str) {
    let mut diffs = Vec::new();
    for key in helm.keys().chain(kustomize.keys()) {
        match (helm.get(key), kustomize.get(key)) {
            (Some(h), Some(k)) if h == k => {}
            (Some(h), Some(k)) => diffs.push(format!(
                "{key} differs:\n helm: {}\n kustomize: {}",
                serde_json::to_string(h).unwrap(),
                serde_json::to_string(k).unwrap()
            )),
            (Some(_), None) => diffs.push(format!("{key} only in the chart")),
            (None, _) => diffs.push(format!("{key} only in deploy/")),
        }
    }
    diffs.dedup();
    assert!(diffs.is_empty(), "{what}:\n{}", diffs.join("\n"));
}

#[test]
fn helm_lint_passes_for_the_default_and_namespaced_values() {
    for args in [&[][..], &["--set", "watchNamespaces={apps,web}"][..]] {
        let out = run(Command::new(helm())
            .args(["lint", "--strict"])
            .arg(chart())
            .args(args))
        .unwrap_or_else(|e| panic!("helm lint {args:?}: {e}"));
        assert!(out.contains("0 chart(s) failed"), "{out}");
    }
}

#[test]
fn default_render_is_what_kubectl_kustomize_deploy_renders() {
    // `helm install --create-namespace` makes the namespace; with namespace.create the chart
    // renders it as deploy/ does.
    let helm = template(&["--include-crds", "--set", "namespace.create=true"]).unwrap();
    assert_same(
        normalized(helm),
        normalized(kustomize(&repo().join("deploy"))),
        "helm template (default values) vs kubectl kustomize deploy/",
    );
    let without_ns = template(&[]).unwrap();
    assert!(
        without_ns.iter().all(|o| o["kind"] != "Namespace"),
        "no Namespace by default"
    );
    assert!(
        without_ns
            .iter()
            .all(|o| o["kind"] != "CustomResourceDefinition"),
        "CRDs come from crds/ (helm install applies them; template shows them with --include-crds)"
    );
}

#[test]
fn namespaced_render_is_what_the_namespaced_overlay_renders() {
    let helm = template(&[
        "--include-crds",
        "--set",
        "namespace.create=true",
        "--set",
        "watchNamespaces={apps}",
    ])
    .unwrap();
    assert_same(
        normalized(helm),
        normalized(kustomize(&repo().join("deploy/overlays/namespaced"))),
        "helm template --set watchNamespaces={apps} vs kubectl kustomize deploy/overlays/namespaced",
    );
}

/// `to` as a path relative to directory `from` (kustomize refuses absolute resource paths).
fn relative(from: &Path, to: &Path) -> String {
    let ups = from.components().count() - 1;
    let rest = to.strip_prefix("/").unwrap();
    format!("{}{}", "../".repeat(ups), rest.display())
}

/// `gateEndpoint.enabled` renders what deploy/ with the gate-endpoint component renders.
#[test]
fn gate_endpoint_render_is_what_the_gate_endpoint_component_renders() {
    let dir = std::env::temp_dir().join(format!(
        "gdo-helm-gate-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\ncomponents:\n  - {}\n",
            relative(&dir, &repo().join("deploy")),
            relative(&dir, &repo().join("deploy/components/gate-endpoint"))
        ),
    )
    .unwrap();
    let helm = template(&[
        "--include-crds",
        "--set",
        "namespace.create=true",
        "--set",
        "gateEndpoint.enabled=true",
    ])
    .unwrap();
    assert_same(
        normalized(helm),
        normalized(kustomize(&dir)),
        "helm template --set gateEndpoint.enabled=true vs deploy/ + components/gate-endpoint",
    );
    let _ = std::fs::remove_dir_all(&dir);
    let custom = template(&[
        "--set",
        "gateEndpoint.enabled=true",
        "--set",
        "gateEndpoint.port=9090",
        "--set",
        "gateEndpoint.tokenSecret.name=my-gate",
        "--set",
        "gateEndpoint.tokenSecret.key=bearer",
    ])
    .unwrap();
    let d = custom.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "my-gate");
    assert_eq!(pod["volumes"][0]["secret"]["items"][0]["key"], "bearer");
    let env = pod["containers"][0]["env"].as_array().unwrap();
    assert!(
        env.iter()
            .any(|e| e["name"] == "GATE_LISTEN" && e["value"] == "0.0.0.0:9090")
    );
    let svc = custom
        .iter()
        .find(|o| {
            o["kind"] == "Service" && o["metadata"]["name"] == "gitlab-deployment-operator-gate"
        })
        .unwrap();
    assert_eq!(svc["spec"]["ports"][0]["port"], 9090);
}

#[test]
fn values_schema_refuses_bad_values() {
    for (set, word) in [
        ("replicas=0", "/replicas"),
        (
            "allowedHosts[0]=https://gitlab.example.com",
            "/allowedHosts/0",
        ),
        ("allowInsecureHttp=yes", "/allowInsecureHttp"),
        ("watchNamespaces[0]=Not_A_Namespace", "/watchNamespaces/0"),
        ("replica=3", "replica"),
        ("gateEndpoint.port=8080", "/gateEndpoint/port"),
        ("gateEndpoint.enable=true", "enable"),
        ("targetRules[0].verbs={delete}", "/targetRules/0"),
    ] {
        let err = template(&["--set", set]).expect_err(set);
        assert!(err.contains(word), "{set}: {err}");
    }
}

/// `targetRules` adds to the operator's ClusterRole what the Argo Rollouts promote example's
/// kustomize patch adds to deploy/: the two installs grant the same.
#[test]
fn target_rules_render_like_the_argo_rollouts_rbac_patch() {
    let patch: Vec<Value> = serde_yaml::from_str(
        &std::fs::read_to_string(
            repo().join("examples/gitops/argo-rollouts/promote/rbac-patch.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let rules: Vec<Value> = patch.iter().map(|op| op["value"].clone()).collect();
    assert_eq!(rules.len(), 2);
    let dir = std::env::temp_dir().join(format!("helm-target-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let values = dir.join("values.yaml");
    std::fs::write(
        &values,
        serde_yaml::to_string(&serde_json::json!({"targetRules": rules})).unwrap(),
    )
    .unwrap();
    let objs = template(&["-f", values.to_str().unwrap()]).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let role = objs
        .iter()
        .find(|o| o["kind"] == "ClusterRole" && o["metadata"]["name"] == NS)
        .unwrap();
    let granted = role["rules"].as_array().unwrap();
    assert_eq!(&granted[granted.len() - 2..], rules.as_slice());
}

#[test]
fn options_render_as_the_operator_reads_them() {
    let env_of = |objs: &[Value]| -> BTreeMap<String, String> {
        let d = objs.iter().find(|o| o["kind"] == "Deployment").unwrap();
        d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| {
                Some((
                    e["name"].as_str()?.to_owned(),
                    e["value"].as_str()?.to_owned(),
                ))
            })
            .collect()
    };
    let default = template(&[]).unwrap();
    let env = env_of(&default);
    assert!(
        !env.contains_key("GITLAB_ALLOW_INSECURE_HTTP"),
        "TLS only by default"
    );
    assert_eq!(
        env.get("GITLAB_REQUIRE_TOKEN_LABEL").map(String::as_str),
        Some("true"),
        "only labelled token Secrets by default"
    );
    let objs = template(&[
        "--set",
        "allowInsecureHttp=true",
        "--set",
        "requireTokenLabel=false",
        "--set",
        "allowedHosts={gitlab.example.com,*.corp.example:8443}",
        "--set",
        "replicas=1",
        "--set",
        "leaderElection.enabled=false",
    ])
    .unwrap();
    let env = env_of(&objs);
    assert_eq!(env["GITLAB_ALLOW_INSECURE_HTTP"], "true");
    assert!(!env.contains_key("GITLAB_REQUIRE_TOKEN_LABEL"));
    assert_eq!(
        env["GITLAB_ALLOWED_HOSTS"],
        "gitlab.example.com,*.corp.example:8443"
    );
    let d = objs.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["args"],
        serde_json::json!(["run"])
    );
    assert!(
        objs.iter().all(|o| o["kind"] != "PodDisruptionBudget"),
        "no PDB for one replica (it would block every drain)"
    );
    assert!(
        objs.iter()
            .all(|o| o["metadata"]["name"] != "gitlab-deployment-operator-leader-election"),
        "no lease RBAC without leader election"
    );
}

#[test]
fn monitoring_objects_render_from_deploy_observability() {
    let objs = template(&[
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "grafanaDashboard.enabled=true",
    ])
    .unwrap();
    let find = |kind: &str| objs.iter().find(|o| o["kind"] == kind).unwrap().clone();
    let component = parse_yaml_stream(
        &std::fs::read_to_string(
            repo().join("deploy/components/servicemonitor/servicemonitor.yaml"),
        )
        .unwrap(),
    );
    assert_eq!(find("ServiceMonitor")["spec"], component[0]["spec"]);
    let rule = parse_yaml_stream(
        &std::fs::read_to_string(repo().join("deploy/observability/prometheusrule.yaml")).unwrap(),
    );
    assert_eq!(find("PrometheusRule")["spec"], rule[0]["spec"]);
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/observability/grafana-dashboard.json"))
            .unwrap(),
    )
    .unwrap();
    let cm = find("ConfigMap");
    let shipped: Value = serde_json::from_str(
        cm["data"]["gitlab-deployment-operator.json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        shipped, dashboard,
        "the chart ships deploy/observability's dashboard"
    );
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
}

#[test]
fn chart_copies_of_the_observability_files_are_current() {
    for file in ["grafana-dashboard.json", "prometheusrule.yaml"] {
        let source =
            std::fs::read_to_string(repo().join("deploy/observability").join(file)).unwrap();
        let copy = std::fs::read_to_string(chart().join("files").join(file)).unwrap_or_default();
        assert!(
            copy == source,
            "{}/files/{file} is stale: cp deploy/observability/{file} {}/files/",
            chart().display(),
            "deploy/helm/gitlab-deployment-operator"
        );
    }
}
