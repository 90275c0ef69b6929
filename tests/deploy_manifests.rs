//! `deploy/` renders with the real kubectl (kustomize v5 built into kubectl 1.32), the rendered
//! objects carry the security context, probes, replicas, PDB and RBAC shape the install promises,
//! the image (Dockerfile) agrees with the Deployment, and the whole render applies to the kube
//! emulator with `kubectl apply --server-side`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::{CommandFactory, Parser};
use gitlab_deployment_operator::api::crds::crds_yaml;
use gitlab_deployment_operator::cli::{Cli, Command as Sub};
use gitlab_deployment_operator::controller::shard::Shard;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube_emulator::KubeEmulator;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

const KUBECTL: &str = "/usr/bin/kubectl";
const OPERATOR_NS: &str = "gitlab-deployment-operator";
const NAME: &str = "gitlab-deployment-operator";
const SA: &str = "gitlab-deployment-operator";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy_dir() -> PathBuf {
    repo().join("deploy")
}

/// `kubectl kustomize <dir>` parsed into one JSON value per object.
fn kustomize(dir: &Path) -> Vec<Value> {
    let out = Command::new(KUBECTL)
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    parse_yaml_stream(&String::from_utf8(out.stdout).unwrap())
}

fn parse_yaml_stream(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the render"))
}

fn of_kind<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| o["kind"] == kind).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn container(objs: &[Value]) -> Value {
    let dep = find(objs, "Deployment", NAME);
    let containers = dep["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "one container");
    containers[0].clone()
}

fn env_value(c: &Value, name: &str) -> Option<String> {
    c["env"]
        .as_array()?
        .iter()
        .find_map(|e| (e["name"] == name).then(|| e["value"].as_str().unwrap_or("").to_owned()))
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| &labels[k] == v))
}

#[test]
fn base_deployment_is_hardened_probed_and_spread() {
    let objs = kustomize(&deploy_dir());
    let dep = find(&objs, "Deployment", NAME);
    assert_eq!(dep["metadata"]["namespace"], OPERATOR_NS);
    let spec = &dep["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let pod = &spec["template"]["spec"];
    assert!(labels_match(
        &spec["selector"]["matchLabels"],
        &spec["template"]["metadata"]["labels"]
    ));
    assert_eq!(pod["serviceAccountName"], SA);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let uid = pod["securityContext"]["runAsUser"].as_u64().unwrap();
    assert_ne!(uid, 0, "never root");
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let spread = pod["topologySpreadConstraints"].as_array().unwrap();
    assert!(
        spread
            .iter()
            .any(|t| t["topologyKey"] == "kubernetes.io/hostname"
                && labels_match(
                    &t["labelSelector"]["matchLabels"],
                    &spec["template"]["metadata"]["labels"]
                )),
        "replicas spread across nodes: {spread:?}"
    );

    let c = container(&objs);
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert!(sc["capabilities"]["add"].is_null(), "no capability added");
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(
                c["resources"][kind][res].is_string(),
                "resources.{kind}.{res} set: {}",
                c["resources"]
            );
        }
    }

    // Probes hit the admin server's paths on the port the operator listens on.
    let admin_port: u16 = env_value(&c, "ADMIN_ADDR")
        .unwrap_or_else(|| "0.0.0.0:8080".into())
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let ports = c["ports"].as_array().unwrap();
    let port_named = |name: &Value| -> u64 {
        match name {
            Value::Number(n) => n.as_u64().unwrap(),
            Value::String(s) => ports
                .iter()
                .find(|p| p["name"] == s.as_str())
                .unwrap_or_else(|| panic!("probe names port {s}, which the container lacks"))
                ["containerPort"]
                .as_u64()
                .unwrap(),
            other => panic!("bad port {other}"),
        }
    };
    for (probe, path) in [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(port_named(&get["port"]), u64::from(admin_port), "{probe}");
    }

    // The downward API feeds the operator's namespace and identity.
    for (var, field) in [
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_NAME", "metadata.name"),
    ] {
        let e = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == var)
            .unwrap_or_else(|| panic!("{var} set"));
        assert_eq!(e["valueFrom"]["fieldRef"]["fieldPath"], field);
    }
}

#[test]
fn deployment_command_and_env_are_what_the_cli_accepts() {
    let objs = kustomize(&deploy_dir());
    let c = container(&objs);
    let mut argv = strings(&c["command"]);
    argv.extend(strings(&c["args"]));
    assert_eq!(argv[0], "/usr/local/bin/gitlab-deployment-operator");
    let parsed = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let Sub::Run(run_args) = parsed.command else {
        panic!("{argv:?} does not run the operator")
    };
    // Two replicas need leader election, and the lease Role must name the lease it uses.
    assert!(run_args.leader_elect, "--leader-elect with 2 replicas");
    assert!(
        run_args.lease_namespace.is_none(),
        "the lease lives in the operator's namespace (POD_NAMESPACE)"
    );
    let lease_role = find(&objs, "Role", "gitlab-deployment-operator-leader-election");
    assert_eq!(lease_role["metadata"]["namespace"], OPERATOR_NS);
    for rule in lease_role["rules"].as_array().unwrap() {
        let names = strings(&rule["resourceNames"]);
        assert!(
            names.is_empty() || names == [run_args.lease_name.clone()],
            "the lease Role names the lease --lease-name uses ({}): {rule}",
            run_args.lease_name
        );
    }

    // Every env var the manifest sets is one the `run` subcommand (or the log filter) reads,
    // so a typo cannot silently do nothing.
    let cli = Cli::command();
    let run = cli.find_subcommand("run").expect("run subcommand");
    let mut known: BTreeSet<String> = run
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    known.insert("RUST_LOG".into());
    for e in c["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        assert!(known.contains(name), "{name} is read by nobody ({known:?})");
    }
    assert!(
        env_value(&c, "GITLAB_ALLOWED_HOSTS").is_some_and(|h| !h.is_empty()),
        "an allow-list, else every connection is refused"
    );
    assert!(
        env_value(&c, "GITLAB_ALLOW_INSECURE_HTTP").is_none(),
        "the production manifest keeps tokens on TLS"
    );
    assert_eq!(
        env_value(&c, "GITLAB_REQUIRE_TOKEN_LABEL").as_deref(),
        Some("true"),
        "only labelled token Secrets are sent to GitLab (docs/deploy.md, Secrets)"
    );
}

#[test]
fn pdb_and_metrics_service_select_the_operator_pods() {
    let objs = kustomize(&deploy_dir());
    let dep = find(&objs, "Deployment", NAME);
    let pod_labels = &dep["spec"]["template"]["metadata"]["labels"];
    let pdb = find(&objs, "PodDisruptionBudget", NAME);
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(pdb["metadata"]["namespace"], OPERATOR_NS);
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert!(
        pdb["spec"]["minAvailable"].as_i64() < dep["spec"]["replicas"].as_i64(),
        "a drain can evict one replica"
    );
    assert!(labels_match(
        &pdb["spec"]["selector"]["matchLabels"],
        pod_labels
    ));

    let svc = find(&objs, "Service", "gitlab-deployment-operator-metrics");
    assert!(labels_match(&svc["spec"]["selector"], pod_labels));
    let port = &svc["spec"]["ports"][0];
    assert_eq!(port["name"], "metrics");
    let c = container(&objs);
    assert!(
        c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == port["targetPort"]),
        "the Service targets a named container port"
    );
}

/// Every binding of the render: (namespace of a RoleBinding or None for cluster-wide, role
/// kind, role name).
fn bindings(objs: &[Value]) -> Vec<(Option<String>, String, String)> {
    let mut out = Vec::new();
    for b in objs
        .iter()
        .filter(|o| o["kind"] == "RoleBinding" || o["kind"] == "ClusterRoleBinding")
    {
        let subjects = b["subjects"].as_array().unwrap();
        assert_eq!(subjects.len(), 1, "bound to the operator only: {b}");
        assert_eq!(subjects[0]["kind"], "ServiceAccount");
        assert_eq!(subjects[0]["name"], SA);
        assert_eq!(subjects[0]["namespace"], OPERATOR_NS);
        let role_kind = b["roleRef"]["kind"].as_str().unwrap().to_owned();
        let role_name = b["roleRef"]["name"].as_str().unwrap().to_owned();
        let ns = b["metadata"]["namespace"].as_str().map(str::to_owned);
        // The role it names is part of the install.
        let role = objs.iter().find(|o| {
            o["kind"] == role_kind.as_str()
                && o["metadata"]["name"] == role_name.as_str()
                && (role_kind == "ClusterRole" || o["metadata"]["namespace"] == json!(ns))
        });
        assert!(role.is_some(), "binding {b} names a role not in the render");
        out.push((ns, role_kind, role_name));
    }
    out
}

fn assert_no_wildcards_or_escalation(objs: &[Value]) {
    for role in objs
        .iter()
        .filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole")
    {
        for rule in role["rules"].as_array().unwrap() {
            for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                assert!(
                    !strings(&rule[field]).iter().any(|s| s.contains('*')),
                    "no wildcard: {rule}"
                );
            }
            let verbs = strings(&rule["verbs"]);
            for v in &verbs {
                assert!(
                    ["get", "list", "watch", "create", "update", "patch"].contains(&v.as_str()),
                    "verb {v} is not one the operator uses: {rule}"
                );
            }
            for r in strings(&rule["resources"]) {
                assert!(
                    ![
                        "roles",
                        "clusterroles",
                        "rolebindings",
                        "clusterrolebindings",
                        "pods",
                        "serviceaccounts"
                    ]
                    .contains(&r.as_str()),
                    "no grant on {r}"
                );
                if r == "secrets" || r == "configmaps" {
                    // Read by name only: never enumerated, never cached wholesale.
                    assert_eq!(verbs, ["get"], "{r} are read by name only: {rule}");
                }
            }
        }
    }
}

#[test]
fn base_rbac_is_cluster_wide_least_privilege_with_a_lease_role() {
    let objs = kustomize(&deploy_dir());
    assert_no_wildcards_or_escalation(&objs);
    let binds = bindings(&objs);
    assert!(binds.contains(&(
        None,
        "ClusterRole".into(),
        "gitlab-deployment-operator".into()
    )));
    assert!(binds.contains(&(
        None,
        "ClusterRole".into(),
        "gitlab-deployment-operator-cluster".into()
    )));
    assert!(binds.contains(&(
        Some(OPERATOR_NS.into()),
        "Role".into(),
        "gitlab-deployment-operator-leader-election".into()
    )));
    let lease = find(&objs, "Role", "gitlab-deployment-operator-leader-election");
    assert_eq!(lease["metadata"]["namespace"], OPERATOR_NS);
    let mut verbs = BTreeSet::new();
    for rule in lease["rules"].as_array().unwrap() {
        assert_eq!(strings(&rule["apiGroups"]), ["coordination.k8s.io"]);
        assert_eq!(strings(&rule["resources"]), ["leases"]);
        verbs.extend(strings(&rule["verbs"]));
    }
    assert_eq!(
        verbs,
        ["create", "get", "update"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    let sa = find(&objs, "ServiceAccount", SA);
    assert_eq!(sa["metadata"]["namespace"], OPERATOR_NS);
    let ns = find(&objs, "Namespace", OPERATOR_NS);
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

#[test]
fn namespaced_overlay_grants_per_watched_namespace_only() {
    let objs = kustomize(&deploy_dir().join("overlays/namespaced"));
    assert_no_wildcards_or_escalation(&objs);
    let c = container(&objs);
    let watched: BTreeSet<String> = env_value(&c, "WATCH_NAMESPACES")
        .expect("WATCH_NAMESPACES set")
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    assert!(!watched.is_empty());
    let binds = bindings(&objs);
    // Namespaced rules are never bound cluster-wide.
    assert!(
        !binds.contains(&(
            None,
            "ClusterRole".into(),
            "gitlab-deployment-operator".into()
        )),
        "{binds:?}"
    );
    let granted: BTreeSet<String> = binds
        .iter()
        .filter(|(_, kind, name)| kind == "ClusterRole" && name == "gitlab-deployment-operator")
        .filter_map(|(ns, _, _)| ns.clone())
        .collect();
    assert_eq!(granted, watched, "one RoleBinding per watched namespace");
    // What stays cluster-wide: ClusterGitlabConnections only, not namespaces (the
    // namespaceSelector limit, docs/deploy.md); the startup CRD check lists in a served
    // namespace (tests/rbac_real_namespaced.rs found the cluster-wide list unused).
    let cluster = find(&objs, "ClusterRole", "gitlab-deployment-operator-cluster");
    let resources: BTreeSet<String> = cluster["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| strings(&r["resources"]))
        .collect();
    assert_eq!(
        resources,
        ["clustergitlabconnections"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    // Its own namespace's Secrets (ClusterGitlabConnection tokens, get only) and the lease.
    assert!(binds.contains(&(
        Some(OPERATOR_NS.into()),
        "Role".into(),
        "gitlab-deployment-operator-own-namespace".into()
    )));
    assert!(binds.contains(&(
        Some(OPERATOR_NS.into()),
        "Role".into(),
        "gitlab-deployment-operator-leader-election".into()
    )));
}

#[test]
fn servicemonitor_component_scrapes_the_metrics_service() {
    let dir = scratch_dir("servicemonitor");
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\ncomponents:\n  - {}\n",
            relative(&dir, &deploy_dir()),
            relative(&dir, &deploy_dir().join("components/servicemonitor"))
        ),
    )
    .unwrap();
    let objs = kustomize(&dir);
    let sm = find(&objs, "ServiceMonitor", NAME);
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    let svc = find(&objs, "Service", "gitlab-deployment-operator-metrics");
    assert!(labels_match(
        &sm["spec"]["selector"]["matchLabels"],
        &svc["metadata"]["labels"]
    ));
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        svc["spec"]["ports"][0]["name"]
    );
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The install guide's own kustomization (docs/deploy.md) renders and does what it says: your
/// image, your GitLab host, on top of `deploy/` and of the namespaced overlay.
#[test]
fn install_guide_kustomization_sets_image_and_allowed_host() {
    let guide = std::fs::read_to_string(repo().join("docs/deploy.md")).unwrap();
    let start = guide
        .find("# my-install/kustomization.yaml")
        .expect("the guide shows its kustomization");
    let block: String = guide[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.trim() != "```")
        .map(|l| format!("{}\n", l.strip_prefix("   ").unwrap_or(l)))
        .collect();
    for base in ["deploy", "deploy/overlays/namespaced"] {
        let dir = scratch_dir("guide");
        let text = block.replace(
            "../deploy ",
            &format!("{} ", relative(&dir, &repo().join(base))),
        );
        std::fs::write(dir.join("kustomization.yaml"), text).unwrap();
        let objs = kustomize(&dir);
        let c = container(&objs);
        assert_eq!(
            c["image"], "registry.example.com/gitlab-deployment-operator:0.1.0",
            "{base}: the guide's images entry applies"
        );
        assert_eq!(
            env_value(&c, "GITLAB_ALLOWED_HOSTS").as_deref(),
            Some("gitlab.mycompany.com"),
            "{base}: the guide's host patch applies"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn deploy_crds_match_the_generated_crds() {
    let committed = std::fs::read_to_string(deploy_dir().join("base/crds.yaml")).unwrap();
    let generated = crds_yaml().expect("CRDs render");
    assert!(
        committed == generated,
        "deploy/base/crds.yaml is stale; regenerate it with: cargo run -- crd > deploy/base/crds.yaml"
    );
}

/// The instructions of the Dockerfile's last stage, as (INSTRUCTION, arguments).
fn final_stage(dockerfile: &str) -> Vec<(String, String)> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    let instructions: Vec<(String, String)> = joined
        .into_iter()
        .map(|l| {
            let (i, rest) = l.split_once(' ').unwrap_or((&l, ""));
            (i.to_uppercase(), rest.trim().to_owned())
        })
        .collect();
    let last_from = instructions
        .iter()
        .rposition(|(i, _)| i == "FROM")
        .expect("a FROM");
    instructions[last_from..].to_vec()
}

#[test]
fn dockerfile_runs_the_deployments_binary_as_numeric_non_root() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let stage = final_stage(&dockerfile);
    let user = stage
        .iter()
        .rev()
        .find(|(i, _)| i == "USER")
        .map(|(_, a)| a.clone())
        .expect("the final stage sets USER");
    let (uid, gid) = user.split_once(':').unwrap_or((&user, ""));
    let uid: u32 = uid
        .parse()
        .unwrap_or_else(|_| panic!("USER {user} is numeric (runAsNonRoot needs a number)"));
    assert_ne!(uid, 0, "USER is not root");
    if !gid.is_empty() {
        assert_ne!(gid.parse::<u32>().expect("numeric group"), 0);
    }

    let objs = kustomize(&deploy_dir());
    let dep = find(&objs, "Deployment", NAME);
    let pod_sc = &dep["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(
        pod_sc["runAsUser"], uid,
        "Deployment runAsUser = image USER"
    );
    let command = strings(&container(&objs)["command"]);
    let binary = &command[0];

    let entrypoint = stage
        .iter()
        .find(|(i, _)| i == "ENTRYPOINT")
        .map(|(_, a)| a.clone())
        .expect("ENTRYPOINT");
    let entry: Vec<String> = serde_json::from_str(&entrypoint).expect("exec-form ENTRYPOINT");
    assert_eq!(&entry[0], binary, "ENTRYPOINT = the Deployment's command");
    assert!(
        stage
            .iter()
            .any(|(i, a)| i == "COPY" && a.split_whitespace().last() == Some(binary.as_str())),
        "the binary is copied to {binary}"
    );
    // Built locked, release, with the pinned toolchain.
    assert!(dockerfile.contains("cargo build --release --locked"));
    let toolchain = std::fs::read_to_string(repo().join("rust-toolchain.toml")).unwrap();
    let channel = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel"))
        .and_then(|l| l.split('"').nth(1))
        .expect("a pinned channel");
    assert!(
        dockerfile.contains(&format!("ARG RUST_VERSION={channel}")),
        "the build image is the pinned toolchain {channel}"
    );
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l.trim() == "target/"),
        "target/ stays out of the context"
    );
}

/// `to` as seen from `from` (kustomize refuses absolute paths to other kustomizations).
fn relative(from: &Path, to: &Path) -> String {
    let from = from.canonicalize().unwrap();
    let to = to.canonicalize().unwrap();
    let ups = from.components().count() - 1;
    let down = to.strip_prefix("/").unwrap();
    format!("{}{}", "../".repeat(ups), down.display())
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn dockerignore_keeps_every_file_the_sources_embed() {
    let ignored: Vec<String> = std::fs::read_to_string(repo().join(".dockerignore"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("**"))
        .map(|l| l.trim_end_matches('/').to_owned())
        .collect();
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    for member in ["emulators/gitlab/src", "emulators/kube/src"] {
        rust_files(&repo().join(member), &mut files);
    }
    let root = repo().canonicalize().unwrap();
    let mut embedded = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for macro_ in ["include_str!(\"", "include_bytes!(\""] {
            for (at, _) in text.match_indices(macro_) {
                let rest = &text[at + macro_.len()..];
                let Some(end) = rest.find('"') else { continue };
                let target = file.parent().unwrap().join(&rest[..end]);
                let target = target.canonicalize().unwrap_or_else(|_| {
                    panic!(
                        "{} embeds {}, which is missing",
                        file.display(),
                        target.display()
                    )
                });
                let inside = target
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                embedded += 1;
                for pattern in &ignored {
                    assert!(
                        !(inside == *pattern || inside.starts_with(&format!("{pattern}/"))),
                        "{} embeds {inside}, which .dockerignore ({pattern}) keeps out of the image build",
                        file.display()
                    );
                }
            }
        }
    }
    assert!(embedded > 0, "the scan found the known include_str! uses");
}

fn scratch_dir(what: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir =
        std::env::temp_dir().join(format!("gdo-deploy-{what}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The emulator serves the kinds an operator test needs (spec §11), not RBAC or policy/v1:
/// register stand-in CRDs for them so the whole render can be applied; the schema keeps every
/// field (the real server validates them, this test checks shape above).
async fn register_stand_ins(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (group, kind, plural, scope) in [
        ("rbac.authorization.k8s.io", "Role", "roles", "Namespaced"),
        (
            "rbac.authorization.k8s.io",
            "RoleBinding",
            "rolebindings",
            "Namespaced",
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRole",
            "clusterroles",
            "Cluster",
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            "clusterrolebindings",
            "Cluster",
        ),
        (
            "policy",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            "Namespaced",
        ),
    ] {
        let name = format!("{plural}.{group}");
        let crd: CustomResourceDefinition = serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": name,
                "annotations": {"api-approved.kubernetes.io": "unapproved, test stand-in for a built-in kind"}},
            "spec": {"group": group, "scope": scope,
                "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
        }))
        .unwrap();
        match crds.create(&PostParams::default(), &crd).await {
            Ok(_) => {}
            // The emulator grew the built-in kind meanwhile: nothing to stand in for.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => panic!("stand-in CRD {name}: {e}"),
        }
        tokio::time::timeout(
            Duration::from_secs(10),
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .expect("stand-in CRD established in time")
        .unwrap();
    }
}

/// Whether the emulator's discovery already serves `group/version` `plural` (then no stand-in).
async fn served(client: &kube::Client, group_version: &str, plural: &str) -> bool {
    let url = format!("/apis/{group_version}");
    let req = http::Request::get(url).body(Vec::new()).unwrap();
    match client.request::<Value>(req).await {
        Ok(list) => list["resources"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x["name"] == plural)),
        Err(_) => false,
    }
}

/// `kubectl apply --server-side -f -` of `rendered` against the emulator. Async: the emulator
/// serves kubectl from this test's own runtime.
async fn kubectl_apply(kube: &KubeEmulator, rendered: &str) -> String {
    let home = scratch_dir("kubectl-home");
    let mut child = tokio::process::Command::new(KUBECTL)
        .args([
            "apply",
            "--server-side",
            "--field-manager",
            "deploy-test",
            "-f",
            "-",
        ])
        .arg("--kubeconfig")
        .arg(kube.kubeconfig_path())
        .arg("--cache-dir")
        .arg(home.join("cache"))
        .env("HOME", &home)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(rendered.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("kubectl apply finished in time")
        .unwrap();
    let _ = std::fs::remove_dir_all(&home);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl apply --server-side failed:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn render_text(dir: &Path) -> String {
    let out = Command::new(KUBECTL)
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// Apply a render to a fresh emulator; every object must then exist as applied.
async fn apply_and_check(dir: &Path, namespaces_first: &[&str]) {
    // TLS: kubectl sends the bearer token only over https.
    let kube = KubeEmulator::options()
        .tls(true)
        .start()
        .await
        .expect("kube emulator starts");
    let client = kube.client().await;
    if !(served(&client, "rbac.authorization.k8s.io/v1", "roles").await
        && served(&client, "policy/v1", "poddisruptionbudgets").await)
    {
        register_stand_ins(&client).await;
    }
    for ns in namespaces_first {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        let obj = serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .unwrap();
        let _ = api.create(&PostParams::default(), &obj).await;
    }
    let text = render_text(dir);
    let objs = parse_yaml_stream(&text);
    let stdout = kubectl_apply(&kube, &text).await;
    // kubectl prints one "<kind>.<group>/<name> serverside-applied" line per object.
    let applied = stdout
        .lines()
        .filter(|l| l.ends_with("serverside-applied"))
        .count();
    assert_eq!(applied, objs.len(), "every object applied:\n{stdout}");

    // Read a few back through kube's client: the CRDs serve, the Deployment is as rendered.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in of_kind(&objs, "CustomResourceDefinition") {
        let name = crd["metadata"]["name"].as_str().unwrap();
        tokio::time::timeout(
            Duration::from_secs(10),
            await_condition(crds.clone(), name, conditions::is_crd_established()),
        )
        .await
        .expect("CRD established in time")
        .unwrap();
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), OPERATOR_NS);
    let live = deployments.get(NAME).await.unwrap();
    let spec = live.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(SA));
    kube.shutdown().await;
}

#[tokio::test]
async fn base_applies_server_side_to_the_kube_emulator() {
    apply_and_check(&deploy_dir(), &[]).await;
}

#[tokio::test]
async fn namespaced_overlay_applies_server_side_to_the_kube_emulator() {
    // The watched namespaces exist before the install (they are the users' namespaces).
    apply_and_check(&deploy_dir().join("overlays/namespaced"), &["apps"]).await;
}

/// The webhooks component turns the receiver on where the CLI reads it, and the Service and
/// the example Ingress reach the container port it listens on.
#[test]
fn webhooks_component_opens_the_receiver_port_behind_a_service() {
    let dir = scratch_dir("webhooks");
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\ncomponents:\n  - {}\n",
            relative(&dir, &deploy_dir()),
            relative(&dir, &deploy_dir().join("components/webhooks"))
        ),
    )
    .unwrap();
    let objs = kustomize(&dir);
    let c = container(&objs);
    let addr: std::net::SocketAddr = env_value(&c, "GITLAB_WEBHOOK_ADDR")
        .expect("the component sets GITLAB_WEBHOOK_ADDR")
        .parse()
        .unwrap();
    let port = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "webhooks")
        .expect("a named container port for the receiver");
    assert_eq!(port["containerPort"], u64::from(addr.port()));
    // The leader advertises POD_IP:port on its lease so that a standby passes hooks on.
    let pod_ip = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "POD_IP")
        .expect("the component sets POD_IP, which `run --pod-ip` reads");
    assert_eq!(pod_ip["valueFrom"]["fieldRef"]["fieldPath"], "status.podIP");
    let svc = find(&objs, "Service", "gitlab-deployment-operator-webhooks");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "webhooks");
    let deployment = find(&objs, "Deployment", NAME);
    assert!(labels_match(
        &svc["spec"]["selector"],
        &deployment["spec"]["template"]["metadata"]["labels"]
    ));
    // Without the component the receiver stays off: no env, no port.
    let base = container(&kustomize(&deploy_dir()));
    assert_eq!(env_value(&base, "GITLAB_WEBHOOK_ADDR"), None);

    let ingress = parse_yaml_stream(
        &std::fs::read_to_string(deploy_dir().join("components/webhooks/ingress-example.yaml"))
            .unwrap(),
    );
    let backend = &ingress[0]["spec"]["rules"][0]["http"]["paths"][0];
    assert_eq!(backend["path"], "/hooks/gitlab");
    assert_eq!(
        backend["backend"]["service"]["name"],
        svc["metadata"]["name"]
    );
    assert_eq!(
        backend["backend"]["service"]["port"]["name"],
        svc["spec"]["ports"][0]["name"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `deploy/` with the gate-endpoint component, rendered in a scratch kustomization.
fn gate_render() -> (PathBuf, Vec<Value>) {
    let dir = scratch_dir("gate");
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\ncomponents:\n  - {}\n",
            relative(&dir, &deploy_dir()),
            relative(&dir, &deploy_dir().join("components/gate-endpoint"))
        ),
    )
    .unwrap();
    let objs = kustomize(&dir);
    (dir, objs)
}

/// The gate-endpoint component turns the gate on the way the CLI reads it (listen address and
/// a token file, never the insecure flag), mounts the token Secret as a directory where the
/// token file is (a subPath mount would never see a rotation), and the Service reaches the
/// container port on every replica. Without the component nothing of it renders.
#[test]
fn gate_endpoint_component_mounts_the_token_and_opens_the_port_behind_a_service() {
    let (dir, objs) = gate_render();
    let c = container(&objs);
    let mut argv = strings(&c["command"]);
    argv.extend(strings(&c["args"]));
    let cli = Cli::command();
    let run = cli.find_subcommand("run").unwrap();
    for var in ["GATE_LISTEN", "GATE_TOKEN_FILE"] {
        assert!(
            run.get_arguments()
                .any(|a| a.get_env() == Some(std::ffi::OsStr::new(var))),
            "{var} is a `run` flag's env"
        );
    }
    let addr: std::net::SocketAddr = env_value(&c, "GATE_LISTEN")
        .expect("the component sets GATE_LISTEN")
        .parse()
        .unwrap();
    let token_file = PathBuf::from(env_value(&c, "GATE_TOKEN_FILE").expect("a token file"));
    // The same settings parse as `run` arguments into an authenticated gate.
    argv.extend([
        "--gate-listen".to_owned(),
        addr.to_string(),
        "--gate-token-file".to_owned(),
        token_file.display().to_string(),
    ]);
    let Sub::Run(run_args) = Cli::try_parse_from(&argv).unwrap().command else {
        panic!("not run")
    };
    assert!(!run_args.gate_insecure_no_auth);
    let port = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "gate")
        .expect("a named container port for the gate");
    assert_eq!(port["containerPort"], u64::from(addr.port()));
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "gate-token")
        .expect("the token volume is mounted");
    assert!(
        mount.get("subPath").is_none(),
        "no subPath: rotation must reach the file"
    );
    assert_eq!(mount["readOnly"], true);
    assert_eq!(
        Path::new(mount["mountPath"].as_str().unwrap()),
        token_file.parent().unwrap()
    );
    let deployment = find(&objs, "Deployment", NAME);
    let volume = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "gate-token")
        .unwrap();
    assert_eq!(
        volume["secret"]["secretName"],
        "gitlab-deployment-operator-gate"
    );
    assert_eq!(
        volume["secret"]["items"][0]["path"].as_str(),
        token_file.file_name().and_then(|f| f.to_str())
    );
    let svc = find(&objs, "Service", "gitlab-deployment-operator-gate");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "gate");
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert!(labels_match(
        &svc["spec"]["selector"],
        &deployment["spec"]["template"]["metadata"]["labels"]
    ));
    // Off by default: no env, no port, no Service.
    let base = kustomize(&deploy_dir());
    assert_eq!(env_value(&container(&base), "GATE_LISTEN"), None);
    assert!(
        base.iter()
            .all(|o| o["metadata"]["name"] != "gitlab-deployment-operator-gate")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `deploy/` with the shard component, rendered in a scratch kustomization.
fn shard_render() -> (PathBuf, Vec<Value>) {
    let dir = scratch_dir("shard");
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\ncomponents:\n  - {}\n",
            relative(&dir, &deploy_dir()),
            relative(&dir, &deploy_dir().join("components/shard"))
        ),
    )
    .unwrap();
    let objs = kustomize(&dir);
    (dir, objs)
}

/// The lease a Deployment's operator elects its leader on, as `run` derives it from the
/// manifest's arguments and its `GITLAB_WATCH_LABEL_SELECTOR`.
fn lease_of(dep: &Value) -> (Option<String>, String) {
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    let mut argv = strings(&c["command"]);
    argv.extend(strings(&c["args"]));
    let Sub::Run(run_args) = Cli::try_parse_from(&argv).unwrap().command else {
        panic!("{argv:?} does not run the operator")
    };
    assert!(run_args.leader_elect);
    let selector = env_value(c, "GITLAB_WATCH_LABEL_SELECTOR");
    let lease = Shard::new(selector.as_deref()).lease_name(&run_args.lease_name);
    (selector, lease)
}

#[test]
fn shard_component_adds_a_shard_with_its_own_lease_and_the_main_install_excludes_it() {
    let (dir, objs) = shard_render();
    let main = find(&objs, "Deployment", NAME);
    let shard = find(&objs, "Deployment", "gitlab-deployment-operator-shard1");
    let (main_selector, main_lease) = lease_of(main);
    let (shard_selector, shard_lease) = lease_of(shard);
    assert_eq!(
        main_selector.as_deref(),
        Some("!sharding.gitlab-operator.io/key"),
        "the main instance leaves sharded resources alone"
    );
    assert_eq!(
        shard_selector.as_deref(),
        Some("sharding.gitlab-operator.io/key=shard1")
    );
    assert_ne!(main_lease, shard_lease, "the shards never contend");

    // The lease Role lets each instance get and update exactly its own lease.
    let role = find(&objs, "Role", "gitlab-deployment-operator-leader-election");
    let named: BTreeSet<String> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| strings(&r["resourceNames"]))
        .collect();
    assert_eq!(named, BTreeSet::from([main_lease, shard_lease]));

    // No controller, budget or Service of one instance selects the other's pods.
    let pods = |d: &Value| d["spec"]["template"]["metadata"]["labels"].clone();
    for (owner, other) in [(main, shard), (shard, main)] {
        assert!(labels_match(
            &owner["spec"]["selector"]["matchLabels"],
            &pods(owner)
        ));
        assert!(
            !labels_match(&owner["spec"]["selector"]["matchLabels"], &pods(other)),
            "overlapping Deployment selectors"
        );
    }
    let pdb = find(
        &objs,
        "PodDisruptionBudget",
        "gitlab-deployment-operator-shard1",
    );
    assert!(labels_match(
        &pdb["spec"]["selector"]["matchLabels"],
        &pods(shard)
    ));
    assert!(!labels_match(
        &pdb["spec"]["selector"]["matchLabels"],
        &pods(main)
    ));
    let main_pdb = find(&objs, "PodDisruptionBudget", NAME);
    assert!(!labels_match(
        &main_pdb["spec"]["selector"]["matchLabels"],
        &pods(shard)
    ));
    let svc = find(
        &objs,
        "Service",
        "gitlab-deployment-operator-shard1-metrics",
    );
    assert!(labels_match(&svc["spec"]["selector"], &pods(shard)));
    let main_svc = find(&objs, "Service", "gitlab-deployment-operator-metrics");
    assert_eq!(
        svc["metadata"]["labels"], main_svc["metadata"]["labels"],
        "the ServiceMonitor finds both metrics Services"
    );

    // The shard is the main Deployment in every other respect (no drift between the copies).
    let normalise = |d: &Value| {
        let text = serde_json::to_string(d)
            .unwrap()
            .replace("gitlab-deployment-operator-shard1", NAME)
            .replace("\"operator-shard1\"", "\"operator\"");
        let mut d: Value = serde_json::from_str(&text).unwrap();
        let env = d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array_mut()
            .unwrap();
        env.retain(|e| e["name"] != "GITLAB_WATCH_LABEL_SELECTOR");
        d
    };
    assert_eq!(normalise(shard), normalise(main));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn shard_component_applies_server_side_to_the_kube_emulator() {
    let (dir, _) = shard_render();
    apply_and_check(&dir, &[]).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn gate_endpoint_component_applies_server_side_to_the_kube_emulator() {
    let (dir, _) = gate_render();
    apply_and_check(&dir, &[]).await;
    let _ = std::fs::remove_dir_all(&dir);
}
