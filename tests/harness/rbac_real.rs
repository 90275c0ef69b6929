//! RBAC enforced by the real kube-apiserver (`--authorization-mode=Node,RBAC`): the roles and
//! bindings rendered from `deploy/` (the pinned `kubectl kustomize`) are applied to the real
//! cluster, and the operator runs elected, as the Deployment runs it, with a token of its
//! ServiceAccount, not as cluster-admin. A call the rendered roles do not grant is refused
//! with 403 and the rollout never reaches GitLab `success`, so the test fails.
//!
//! Every request the operator makes goes through a recording layer on its client, so the test
//! also shows what enforcement alone cannot: that none of them was refused (a 403 the
//! operator retried past would not fail the rollout), and which granted rules the run
//! exercised. Each rendered (group, resource, verb) is exercised here or listed in
//! [`NOT_EXERCISED_HERE`] with where it is proven (tests/rbac.rs holds every grant against the
//! emulator's request log, with StatefulSet, DaemonSet and ClusterGitlabConnection targets).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use super::{Env, cluster, gitlab_status};
use gitlab_deployment_operator::admin::AdminState;
use gitlab_deployment_operator::controller::leader::{LeaseConfig, run_elected};
use gitlab_deployment_operator::controller::run::Telemetry;
use gitlab_deployment_operator::controller::targets::Scope;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::ResourceExt;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::wait::{await_condition, conditions};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::rbac_rules::{OPERATOR_NS, SA, describe, grants};

/// Granted by the rendered install, not exercised by this run's create → success → delete of
/// one Deployment's GitlabDeployment, and where each is shown to be used.
/// (group, resource, verb, the RoleBinding's namespace when only that grant is meant, why).
const NOT_EXERCISED_HERE: &[(&str, &str, &str, Option<&str>, &str)] = &[
    (
        "apps",
        "statefulsets",
        "list",
        None,
        "tests/rbac.rs follows a StatefulSet",
    ),
    (
        "apps",
        "statefulsets",
        "watch",
        None,
        "tests/rbac.rs follows a StatefulSet",
    ),
    (
        "apps",
        "daemonsets",
        "list",
        None,
        "tests/rbac.rs follows a DaemonSet",
    ),
    (
        "apps",
        "daemonsets",
        "watch",
        None,
        "tests/rbac.rs follows a DaemonSet",
    ),
    (
        "",
        "configmaps",
        "get",
        None,
        "tests/rbac.rs reads a connection's CA bundle",
    ),
    (
        "",
        "secrets",
        "get",
        Some(OPERATOR_NS),
        "a ClusterGitlabConnection's token Secret in the operator's namespace: tests/rbac.rs",
    ),
    (
        "events.k8s.io",
        "events",
        "patch",
        None,
        "kube's Recorder patches an Event only when it repeats (tests/rbac.rs)",
    ),
];

/// Every request through a client: method, path and query, and the answer's status (0: none
/// yet).
#[derive(Clone, Default)]
pub struct Recorded(Arc<parking_lot::Mutex<Vec<(http::Method, String, u16)>>>);

impl<S> tower::Layer<S> for Recorded {
    type Service = Recording<S>;
    fn layer(&self, inner: S) -> Recording<S> {
        Recording {
            inner,
            log: self.clone(),
        }
    }
}

pub struct Recording<S> {
    inner: S,
    log: Recorded,
}

impl<S, B> tower::Service<http::Request<B>> for Recording<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
    S::Response: HasStatus,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.method().clone();
        let uri = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        // Recorded when asked (a watch's answer may still be pending when the run ends), the
        // status filled in when the answer's head arrives (0 until then).
        let log = self.log.clone();
        let index = {
            let mut entries = log.0.lock();
            entries.push((method, uri, 0));
            entries.len() - 1
        };
        let answer = self.inner.call(req);
        Box::pin(async move {
            let res = answer.await;
            if let Ok(r) = &res {
                log.0.lock()[index].2 = r.status();
            }
            res
        })
    }
}

pub trait HasStatus {
    fn status(&self) -> u16;
}

impl<B> HasStatus for http::Response<B> {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

impl Recorded {
    /// The requests as RBAC sees them (verb, group, resource, subresource, namespace, name),
    /// with their status; discovery and other non-resource paths left out.
    pub fn requests(&self) -> Vec<kube_emulator::RequestRecord> {
        self.0
            .lock()
            .iter()
            .filter_map(|(method, uri, code)| request_of(method, uri, *code))
            .collect()
    }
}

/// RBAC's view of a resource request: `/api/v1/...` or `/apis/<group>/<version>/...`, then
/// `namespaces/<ns>/` when namespaced, the resource, the name and the subresource.
fn request_of(method: &http::Method, uri: &str, code: u16) -> Option<kube_emulator::RequestRecord> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (*ns, rest),
        _ => ("", rest),
    };
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, "", ""),
        [resource, name] => (*resource, *name, ""),
        [resource, name, sub] => (*resource, *name, *sub),
        _ => return None,
    };
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method.as_str(), name.is_empty()) {
        ("GET", true) if watch => "watch",
        ("GET", true) => "list",
        ("GET", false) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "deletecollection",
        ("DELETE", false) => "delete",
        _ => return None,
    };
    Some(kube_emulator::RequestRecord {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
        subresource: subresource.into(),
        namespace: namespace.into(),
        name: name.into(),
        code,
        field_manager: String::new(),
        user_agent: String::new(),
    })
}

/// `dir` (relative to the repository) rendered by the pinned kubectl.
fn kustomize(dir: &str) -> Vec<Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let out = std::process::Command::new(cluster::bin_dir().join("kubectl"))
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml::Deserializer::from_str(&String::from_utf8(out.stdout).unwrap())
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// The install's identity and authorization objects: what this test applies.
fn rbac_resource(kind: &str) -> Option<(ApiResource, bool)> {
    let (group, version, plural, namespaced) = match kind {
        "Namespace" => ("", "v1", "namespaces", false),
        "ServiceAccount" => ("", "v1", "serviceaccounts", true),
        "ClusterRole" => ("rbac.authorization.k8s.io", "v1", "clusterroles", false),
        "ClusterRoleBinding" => (
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            false,
        ),
        "Role" => ("rbac.authorization.k8s.io", "v1", "roles", true),
        "RoleBinding" => ("rbac.authorization.k8s.io", "v1", "rolebindings", true),
        _ => return None,
    };
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Some((ApiResource::from_gvk_with_plural(&gvk, plural), namespaced))
}

/// A client that authenticates with `token` only (no client certificate), its requests
/// recorded in `recorded`.
async fn token_client(token: &str, recorded: &Recorded) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&cluster::shared().kubeconfig).unwrap();
    let mut config = kube::config::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.to_owned().into()),
        ..Default::default()
    };
    kube::client::ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(recorded)
        .build()
}

pub async fn operator_runs_on_rendered_rbac(dir: &str, watch: Option<&str>) {
    let env = match watch {
        Some(ns) => Env::start_real_in(ns.to_owned()).await,
        None => Env::start_on(super::Backend::Real).await,
    };
    let mut applied = 0;
    for obj in kustomize(dir) {
        let kind = obj["kind"].as_str().unwrap_or_default().to_owned();
        let Some((ar, namespaced)) = rbac_resource(&kind) else {
            continue;
        };
        let api: Api<DynamicObject> = if namespaced {
            let ns = obj["metadata"]["namespace"].as_str().unwrap_or(OPERATOR_NS);
            Api::namespaced_with(env.client.clone(), ns, &ar)
        } else {
            Api::all_with(env.client.clone(), &ar)
        };
        let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
        api.patch(
            &name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
        applied += 1;
    }
    assert!(applied >= 5, "the rendered install has its RBAC objects");

    let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), OPERATOR_NS);
    let request: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": ["https://kubernetes.default.svc.cluster.local"], "expirationSeconds": 3600}
    }))
    .unwrap();
    let token = sas
        .create_token_request(SA, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let recorded = Recorded::default();
    let operator_client = token_client(&token, &recorded).await;

    // Enforcement is real: what the roles do not grant is refused (asked through a client
    // of its own, so the operator's record holds only the operator's requests).
    let probe = token_client(&token, &Recorded::default()).await;
    let namespaces: Api<Namespace> = Api::all(probe);
    match namespaces.delete(&env.ns, &DeleteParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("the operator's ServiceAccount may not delete namespaces: {other:?}"),
    }

    // As the Deployment runs it: elected on its Lease in its own namespace, cluster-wide or
    // on the namespaces the install names.
    let mut config = env.config();
    config.scope = match watch {
        Some(ns) => Scope::Namespaces(vec![ns.to_owned()]),
        None => Scope::All,
    };
    config.operator_namespace = Some(OPERATOR_NS.into());
    config.instance = Some("gitlab-deployment-operator-0".into());
    let lease = LeaseConfig {
        name: "gitlab-deployment-operator".into(),
        namespace: OPERATOR_NS.into(),
        identity: "gitlab-deployment-operator-0".into(),
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(250),
    };
    let shutdown = CancellationToken::new();
    let operator = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let telemetry = Telemetry::default();
            let admin = AdminState::new(Arc::clone(&telemetry.registry));
            run_elected(operator_client, config, lease, &telemetry, admin, shutdown).await
        })
    };

    env.apply_workload(
        "web",
        "registry.example/app:1.0.0",
        json!({"emulator.gitlab-operator.io/rollout-step": "300ms"}),
    )
    .await;
    env.apply_gld("web", env.fixed_spec("staging", env.project.head()))
        .await;
    let done = env
        .wait_for("web", "GitLab success", |gd| {
            gitlab_status(gd).as_deref() == Some("success")
        })
        .await;
    env.wait_for_event(
        "web",
        gitlab_deployment_operator::api::names::reason::DEPLOYMENT_SUCCEEDED,
    )
    .await;
    // Deletion runs the finalizer with the same rights.
    let uid = done.uid().unwrap();
    env.glds()
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(env.glds(), "web", conditions::is_deleted(&uid)),
    )
    .await
    .expect("the operator lets the resource go")
    .unwrap();
    assert_eq!(env.gitlab_deployments("staging").len(), 1);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), operator)
        .await
        .expect("the operator stops on shutdown")
        .unwrap()
        .expect("the elected operator ran without an error");
    exercised_and_never_refused(&recorded, &grants(&kustomize(dir)), dir);
}

/// None of the operator's requests was refused, each is one the rendered roles grant, and
/// every granted (group, resource, verb) was exercised or is in [`NOT_EXERCISED_HERE`]. With
/// no rule that only repeats another, that is the "remove a rule and see a test fail" check
/// for every exercised rule: without it one of the recorded requests would get 403, which
/// this assertion refuses.
fn exercised_and_never_refused(
    recorded: &Recorded,
    grants: &[super::rbac_rules::Grant],
    render: &str,
) {
    let calls = recorded.requests();
    assert!(
        calls
            .iter()
            .any(|r| r.resource == "gitlabdeployments" && r.subresource == "status"),
        "the operator's requests were recorded"
    );
    let refused: Vec<String> = calls
        .iter()
        .filter(|r| r.code == 401 || r.code == 403)
        .map(|r| format!("{} -> {}", describe(r), r.code))
        .collect();
    assert!(
        refused.is_empty(),
        "{render}: refused under real RBAC:\n  {}",
        refused.join("\n  ")
    );
    let ungranted: std::collections::BTreeSet<String> = calls
        .iter()
        .filter(|r| !grants.iter().any(|g| g.allows(r)))
        .map(describe)
        .collect();
    assert!(
        ungranted.is_empty(),
        "{render}: allowed by something other than the rendered roles: {ungranted:?}"
    );
    let mut unexercised = Vec::new();
    let mut listed_but_used = Vec::new();
    let mut redundant = Vec::new();
    for (i, g) in grants.iter().enumerate() {
        for group in &g.groups {
            for resource in &g.resources {
                for verb in &g.verbs {
                    let using: Vec<&kube_emulator::RequestRecord> = calls
                        .iter()
                        .filter(|r| {
                            let res = if r.subresource.is_empty() {
                                r.resource.clone()
                            } else {
                                format!("{}/{}", r.resource, r.subresource)
                            };
                            &r.group == group && &res == resource && &r.verb == verb && g.allows(r)
                        })
                        .collect();
                    let used = !using.is_empty();
                    // Taking this (rule, resource, verb) away must refuse one of the requests:
                    // not so when every request it served another rule also grants.
                    if used
                        && using.iter().all(|r| {
                            grants
                                .iter()
                                .enumerate()
                                .any(|(j, other)| j != i && other.allows(r))
                        })
                    {
                        redundant.push(format!("{verb} {group}/{resource} ({})", g.via));
                    }
                    let listed = NOT_EXERCISED_HERE.iter().any(|(gr, re, ve, ns, _)| {
                        (*gr, *re, *ve) == (group.as_str(), resource.as_str(), verb.as_str())
                            && ns.is_none_or(|ns| g.namespace.as_deref() == Some(ns))
                    });
                    match (used, listed) {
                        (false, false) => {
                            unexercised.push(format!("{verb} {group}/{resource} ({})", g.via))
                        }
                        (true, true) => listed_but_used.push(format!("{verb} {group}/{resource}")),
                        _ => {}
                    }
                }
            }
        }
    }
    assert!(
        unexercised.is_empty(),
        "{render}: granted, not exercised on the real cluster and not listed in NOT_EXERCISED_HERE:\n  {}\nexercised:\n  {}",
        unexercised.join("\n  "),
        calls
            .iter()
            .map(|r| format!("{} -> {}", describe(r), r.code))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    assert!(
        redundant.is_empty(),
        "{render}: these grants only repeat others (removing one refuses nothing):\n  {}",
        redundant.join("\n  ")
    );
    assert!(
        listed_but_used.is_empty(),
        "{render}: exercised now, remove from NOT_EXERCISED_HERE: {listed_but_used:?}"
    );
}
