//! RBAC by evidence, not by hope (style §8): run the operator end to end against the kube
//! emulator, elected on its lease as the Deployment runs it (create → success → delete of a
//! GitlabDeployment, plus StatefulSet and DaemonSet targets, token Secrets and CA bundles read in
//! the served namespace and in the operator's own), read the emulator's request log,
//! and hold the rules rendered from `deploy/` (real `kubectl kustomize`) against it:
//! - every (group, resource, subresource, verb, namespace) the operator used is granted to its
//!   ServiceAccount by the rendered bindings;
//! - every granted (group, resource, verb) was used, or is in [`UNUSED_BUT_NEEDED`] with the
//!   reason it is granted anyway.
//!
//! Test-side calls go through a client with its own User-Agent and are left out; the set-up
//! before the operator starts is cleared from the log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gitlab_deployment_operator::admin::AdminState;
use gitlab_deployment_operator::api::names::TOKEN_LABEL;
use gitlab_deployment_operator::api::{ClusterGitlabConnection, GitlabConnection};
use gitlab_deployment_operator::controller::leader::{LeaseConfig, run_elected};
use gitlab_deployment_operator::controller::run::Telemetry;
use gitlab_deployment_operator::controller::targets::Scope;
use harness::rbac_rules::{Grant, describe, grants};
use harness::{Env, NS, TOKEN_SECRET, gitlab_status};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::ResourceExt;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::wait::{await_condition, conditions};
use kube_emulator::RequestRecord;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use harness::rbac_rules::OPERATOR_NS;
/// User-Agent of the test's own calls, so they can be told from the operator's.
const TEST_UA: &str = "rbac-test-driver";

/// Granted but not exercised by a create → success → delete cycle, each with its reason.
/// A grant neither used nor listed here fails the test: remove it from `deploy/`.
const UNUSED_BUT_NEEDED: &[(&str, &str, &str, &str)] = &[(
    "events.k8s.io",
    "events",
    "patch",
    "kube's Recorder merge-patches an Event only when the same Event repeats; one cycle emits each once",
)];

/// A client for the test's own calls: same server and credentials, its own User-Agent.
async fn test_client(env: &Env) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(env.kubeconfig_path()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(TEST_UA),
    ));
    kube::Client::try_from(config).unwrap()
}

/// A StatefulSet or DaemonSet `name` in the harness namespace, rolled out by the emulator.
async fn apply_workload_of_kind(env: &Env, kind: &str, name: &str) {
    let api: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        NS,
        &ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", kind)),
    );
    let mut spec = json!({
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0.0"}]}
        }
    });
    if kind == "StatefulSet" {
        spec["replicas"] = json!(1);
        spec["serviceName"] = json!(name);
    }
    let obj = json!({
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": {"name": name,
            "annotations": {"emulator.gitlab-operator.io/rollout-step": "100ms"}},
        "spec": spec
    });
    api.patch(
        name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap();
}

/// Connections that read every kind of object the operator reads by name, in both places it
/// reads them: the harness namespace's `default` connection (its token Secret, now labelled,
/// and a CA bundle ConfigMap) and a ClusterGitlabConnection `shared` whose token Secret and CA
/// bundle are in the operator's namespace.
async fn read_sources_everywhere(env: &Env, client: &kube::Client) {
    let apply = PatchParams::apply("rbac-test").force();
    for ns in [NS, OPERATOR_NS] {
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let ca = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gitlab-ca"},
                        "data": {"ca.crt": kube_emulator::tls::CA_PEM}});
        config_maps
            .patch("gitlab-ca", &apply, &Patch::Apply(&ca))
            .await
            .unwrap();
    }
    Api::<Secret>::namespaced(client.clone(), NS)
        .patch(
            TOKEN_SECRET,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {TOKEN_LABEL: "true"}}})),
        )
        .await
        .unwrap();
    let shared_token = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "shared-token", "labels": {TOKEN_LABEL: "true"}},
        "stringData": {"token": env.project.maintainer_token}});
    Api::<Secret>::namespaced(client.clone(), OPERATOR_NS)
        .patch("shared-token", &apply, &Patch::Apply(&shared_token))
        .await
        .unwrap();
    let ca_bundle = json!({"configMapRef": {"name": "gitlab-ca", "key": "ca.crt"}});
    Api::<GitlabConnection>::namespaced(client.clone(), NS)
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"caBundle": ca_bundle}})),
        )
        .await
        .unwrap();
    let shared = json!({"apiVersion": "gitlab-operator.io/v1alpha1", "kind": "ClusterGitlabConnection",
        "metadata": {"name": "shared"},
        "spec": {"url": env.gitlab.base_url(), "secretNamespace": OPERATOR_NS,
                 "tokenSecretRef": {"name": "shared-token"}, "caBundle": ca_bundle,
                 "namespaces": [NS], "timeout": "5s"}});
    Api::<ClusterGitlabConnection>::all(client.clone())
        .patch("shared", &apply, &Patch::Apply(&shared))
        .await
        .unwrap();
}

/// Start the operator with `scope`, drive one GitlabDeployment through create → success →
/// delete, and return the operator's own requests.
async fn operator_requests(scope: Scope) -> Vec<RequestRecord> {
    let mut env = Env::start().await;
    let tagged = test_client(&env).await;
    // The operator's own namespace exists in a real install (ClusterGitlabConnections keep
    // their Secrets there).
    let namespaces: Api<Namespace> = Api::all(tagged.clone());
    let ns: Namespace = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NS}}),
    )
    .unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    read_sources_everywhere(&env, &tagged).await;

    let hooks = env.emulator().hooks();
    hooks.clear_requests();
    let mut config = env.config();
    config.scope = scope;
    config.operator_namespace = Some(OPERATOR_NS.into());
    config.instance = Some("gitlab-deployment-operator-0".into());
    // As deploy/ runs it.
    config.settings.credentials.require_token_label = true;
    // As the Deployment runs it: --leader-elect with the default lease name, in the operator's
    // namespace (fast timings so the test does not wait).
    let lease = LeaseConfig {
        name: "gitlab-deployment-operator".into(),
        namespace: OPERATOR_NS.into(),
        identity: "gitlab-deployment-operator-0".into(),
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(250),
    };
    // The operator keeps the untagged client it was started with; from here on the harness
    // helpers (apply, wait, delete) go through the tagged one.
    let shutdown = CancellationToken::new();
    let operator = {
        let client = env.client.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let telemetry = Telemetry::default();
            let admin = AdminState::new(Arc::clone(&telemetry.registry));
            run_elected(client, config, lease, &telemetry, admin, shutdown).await
        })
    };
    env.client = tagged;

    let sha = env.project.head().to_owned();
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    env.apply_gld(
        "web-staging",
        json!({
            "project": "team/app", "environment": "staging", "ref": "main", "sha": sha,
            "target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
        }),
    )
    .await;
    let done = env
        .wait_for("web-staging", "GitLab status success", |gd| {
            gitlab_status(gd).as_deref() == Some("success")
        })
        .await;
    // The other built-in target kinds, so their watches are in the log too.
    // The StatefulSet's goes through the ClusterGitlabConnection, whose Secret and CA bundle
    // are in the operator's namespace.
    for (kind, name, environment, connection) in [
        (
            "StatefulSet",
            "db",
            "staging-db",
            json!({"kind": "ClusterGitlabConnection", "name": "shared"}),
        ),
        (
            "DaemonSet",
            "agent",
            "staging-agent",
            json!({"kind": "GitlabConnection", "name": "default"}),
        ),
    ] {
        apply_workload_of_kind(&env, kind, name).await;
        let gld = format!("{name}-staging");
        env.apply_gld(
            &gld,
            json!({
                "project": "team/app", "environment": environment, "ref": "main", "sha": sha,
                "target": {"apiVersion": "apps/v1", "kind": kind, "name": name},
                "connectionRef": connection
            }),
        )
        .await;
        env.wait_for(&gld, "GitLab status success", |gd| {
            gitlab_status(gd).as_deref() == Some("success")
        })
        .await;
    }
    let uid = done.uid().unwrap();
    env.glds()
        .delete("web-staging", &DeleteParams::default())
        .await
        .unwrap();
    // Gone only once the operator's cleanup removed its finalizer.
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(env.glds(), "web-staging", conditions::is_deleted(&uid)),
    )
    .await
    .expect("the operator lets the resource go")
    .unwrap();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), operator)
        .await
        .expect("the operator stops on shutdown")
        .unwrap()
        .expect("the elected operator ran without error");

    let all = hooks.requests();
    assert!(
        all.iter().any(|r| r.user_agent == TEST_UA),
        "the test's own calls are recognisable"
    );
    let ours: Vec<RequestRecord> = all
        .into_iter()
        .filter(|r| r.user_agent != TEST_UA)
        .collect();
    assert!(
        ours.iter()
            .any(|r| r.resource == "gitlabdeployments" && r.subresource == "status"),
        "the operator's status writes are in the log"
    );
    ours
}

/// Compare the operator's calls with the grants; returns a printable summary of the calls.
fn compare(calls: &[RequestRecord], grants: &[Grant], render: &str) {
    let mut seen = BTreeSet::new();
    let mut missing = BTreeSet::new();
    for r in calls {
        seen.insert(describe(r));
        if !grants.iter().any(|g| g.allows(r)) {
            missing.insert(describe(r));
        }
    }
    let writers: BTreeSet<String> = calls
        .iter()
        .filter(|r| !matches!(r.verb.as_str(), "get" | "list" | "watch"))
        .map(|r| {
            format!(
                "{} fieldManager={:?} User-Agent={:?}",
                describe(r),
                r.field_manager,
                r.user_agent
            )
        })
        .collect();
    eprintln!("operator writes ({render}):");
    for w in &writers {
        eprintln!("  {w}");
    }
    eprintln!("operator calls seen ({render}):");
    for s in &seen {
        eprintln!("  {s}");
    }
    assert!(
        missing.is_empty(),
        "{render}: the operator made calls its RBAC does not grant (it would get 403):\n  {}",
        missing.into_iter().collect::<Vec<_>>().join("\n  ")
    );

    let mut unused = Vec::new();
    let mut excused = Vec::new();
    for g in grants {
        for group in &g.groups {
            for resource in &g.resources {
                for verb in &g.verbs {
                    let used = calls.iter().any(|r| {
                        let res = if r.subresource.is_empty() {
                            r.resource.clone()
                        } else {
                            format!("{}/{}", r.resource, r.subresource)
                        };
                        &r.group == group && &res == resource && &r.verb == verb && g.allows(r)
                    });
                    if used {
                        continue;
                    }
                    let key = (group.as_str(), resource.as_str(), verb.as_str());
                    match UNUSED_BUT_NEEDED
                        .iter()
                        .find(|(gr, re, ve, _)| (*gr, *re, *ve) == key)
                    {
                        Some((_, _, _, why)) => {
                            excused.push(format!("{verb} {group}/{resource} ({}): {why}", g.via));
                        }
                        None => unused.push(format!("{verb} {group}/{resource} ({})", g.via)),
                    }
                }
            }
        }
    }
    eprintln!("granted, unused, explained ({render}):");
    for e in &excused {
        eprintln!("  {e}");
    }
    assert!(
        unused.is_empty(),
        "{render}: granted but never used and not explained in UNUSED_BUT_NEEDED; drop them from deploy/:\n  {}",
        unused.join("\n  ")
    );
}

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

#[tokio::test]
async fn cluster_wide_rbac_grants_exactly_the_calls_the_operator_makes() {
    let calls = operator_requests(Scope::All).await;
    let objs = harness::kustomize(&deploy_dir());
    compare(&calls, &grants(&objs), "deploy/");
}

#[tokio::test]
async fn namespaced_overlay_rbac_grants_exactly_the_calls_the_operator_makes() {
    let objs = harness::kustomize(&deploy_dir().join("overlays/namespaced"));
    // Serve what the overlay's Deployment says it serves.
    let env_list = objs
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .and_then(|d| {
            d["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_array()
                .cloned()
        })
        .unwrap();
    let watched: Vec<String> = env_list
        .iter()
        .find(|e| e["name"] == "WATCH_NAMESPACES")
        .and_then(|e| e["value"].as_str())
        .unwrap()
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    assert!(
        watched.iter().any(|n| n == NS),
        "the overlay's example serves the harness namespace {NS}: {watched:?}"
    );
    let calls = operator_requests(Scope::Namespaces(watched)).await;
    compare(&calls, &grants(&objs), "deploy/overlays/namespaced");
}

#[test]
fn rule_matching_follows_rbac() {
    let grant = Grant {
        namespace: Some("apps".into()),
        via: "test".into(),
        groups: vec!["gitlab-operator.io".into()],
        resources: vec!["gitlabdeployments/status".into()],
        verbs: vec!["update".into()],
        names: vec![],
    };
    let req = |ns: &str, sub: &str, verb: &str| RequestRecord {
        verb: verb.into(),
        group: "gitlab-operator.io".into(),
        resource: "gitlabdeployments".into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: "x".into(),
        code: 200,
        field_manager: String::new(),
        user_agent: String::new(),
    };
    assert!(grant.allows(&req("apps", "status", "update")));
    assert!(
        !grant.allows(&req("other", "status", "update")),
        "namespace"
    );
    assert!(!grant.allows(&req("", "status", "update")), "cluster-wide");
    assert!(!grant.allows(&req("apps", "", "update")), "main resource");
    assert!(!grant.allows(&req("apps", "status", "patch")), "verb");
    let named = Grant {
        names: vec!["lease-a".into()],
        namespace: None,
        resources: vec!["gitlabdeployments".into()],
        ..grant
    };
    assert!(!named.allows(&req("apps", "", "update")), "resourceNames");
}
