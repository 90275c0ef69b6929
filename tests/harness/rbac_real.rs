//! RBAC enforced by the real kube-apiserver (`--authorization-mode=Node,RBAC`): the roles and
//! bindings rendered from `deploy/` (the pinned `kubectl kustomize`) are applied to the real
//! cluster, and the operator runs elected, as the Deployment runs it, with a token of its
//! ServiceAccount, not as cluster-admin. A call the rendered roles do not grant is refused
//! with 403 and the rollout never reaches GitLab `success`, so the test fails.
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

const OPERATOR_NS: &str = "gitlab-deployment-operator";
const SA: &str = "gitlab-deployment-operator";

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

/// A client that authenticates with `token` only (no client certificate).
async fn token_client(token: &str) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&cluster::shared().kubeconfig).unwrap();
    let mut config = kube::config::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.to_owned().into()),
        ..Default::default()
    };
    kube::Client::try_from(config).unwrap()
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
    let operator_client = token_client(&token).await;

    // Enforcement is real: what the roles do not grant is refused.
    let namespaces: Api<Namespace> = Api::all(operator_client.clone());
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
}
