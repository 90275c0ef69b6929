//! What only the real control plane can judge: rollouts decided by the upstream deployment,
//! statefulset and daemonset controllers (progress deadline, pause, scale to zero, partition,
//! OnDelete, maxUnavailable), our CRDs' CEL rules compiled and evaluated by the real
//! kube-apiserver, finalizers as the real apiserver runs them. The cases that mean
//! something on both backends run on both (`both_backends!`), the others on `Backend::Real`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod harness;

use std::time::Duration;

use gitlab_deployment_operator::api::GitlabDeployment;
use harness::{Backend, Env, gitlab_status};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde_json::json;

fn is(status: &'static str) -> impl Fn(&GitlabDeployment) -> bool {
    move |gd| gitlab_status(gd).as_deref() == Some(status)
}

fn rollout_reason(gd: &GitlabDeployment) -> Option<String> {
    gd.status
        .as_ref()
        .and_then(|s| s.rollout.as_ref())
        .map(|r| r.reason.clone())
}

fn reason_is(reason: &'static str) -> impl Fn(&GitlabDeployment) -> bool {
    move |gd| rollout_reason(gd).as_deref() == Some(reason)
}

async fn apply<K>(env: &Env, obj: serde_json::Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(env.client.clone(), &env.ns);
    let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
    api.patch(
        &name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap();
}

fn spec_for(env: &Env, environment: &str, kind: &str, name: &str) -> serde_json::Value {
    json!({
        "project": env.project.path, "environment": environment, "ref": "main",
        "revisionFrom": {"container": "app"},
        "target": {"apiVersion": "apps/v1", "kind": kind, "name": name}
    })
}

fn image(env: &Env, i: usize) -> String {
    format!("registry.example/app:{}", env.project.shas[i])
}

fn template(app: &str, image: &str) -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "app", "image": image}]}
    })
}

/// Wait until the workload's own status satisfies `check`.
async fn wait_workload<K>(env: &Env, name: &str, what: &str, check: impl Fn(&K) -> bool) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(env.client.clone(), &env.ns);
    match tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(api.clone(), name, move |o: Option<&K>| {
            o.is_some_and(&check)
        }),
    )
    .await
    {
        Ok(Ok(Some(obj))) => obj,
        other => panic!(
            "{name}: {what} ({other:?}); last: {:?}",
            api.get_opt(name).await
        ),
    }
}

/// The upstream deployment controller, not the operator nor the harness, decides that the
/// rollout failed: `Progressing=False/ProgressDeadlineExceeded` on the Deployment, then
/// `failed` in GitLab with that reason.
async fn progress_deadline_exceeded_is_the_deployment_controllers_verdict(backend: Backend) {
    let env = Env::start_on(backend).await;
    env.apply_workload(
        "web",
        "registry.example/app:1.0.0",
        json!({"emulator.gitlab-operator.io/rollout-outcome": "fail"}),
    )
    .await;
    let op = env.start_operator();
    env.apply_gld("web", env.fixed_spec("staging", env.project.head()))
        .await;
    let failed = env.wait_for("web", "failed", is("failed")).await;
    assert_eq!(
        rollout_reason(&failed).as_deref(),
        Some("ProgressDeadlineExceeded")
    );
    let deployment: Deployment = wait_workload(&env, "web", "deadline exceeded", |_| true).await;
    let progressing = deployment
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_deref()),
        ("False", Some("ProgressDeadlineExceeded")),
        "{progressing:?}"
    );
    assert_eq!(env.gitlab_deployments("staging")[0].status, "failed");
    op.stop().await;
}

/// A paused Deployment with a new image is `Paused` (GitLab `running`), not a success; resuming
/// it lets the deployment controller roll it out.
async fn a_paused_deployment_is_not_reported_until_resumed(backend: Backend) {
    let env = Env::start_on(backend).await;
    let deployment = |i: usize, paused: bool| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 2, "paused": paused, "selector": {"matchLabels": {"app": "web"}},
                     "template": template("web", &image(&env, i))}
        })
    };
    apply::<Deployment>(&env, deployment(1, false)).await;
    let op = env.start_operator();
    env.apply_gld("web", spec_for(&env, "paused", "Deployment", "web"))
        .await;
    env.wait_for("web", "first revision success", is("success"))
        .await;
    apply::<Deployment>(&env, deployment(2, true)).await;
    let paused = env.wait_for("web", "Paused", reason_is("Paused")).await;
    assert_eq!(gitlab_status(&paused).as_deref(), Some("running"));
    let gitlab = env.gitlab_deployments("paused");
    assert_eq!(gitlab.len(), 2, "{gitlab:?}");
    assert_eq!(gitlab[1].status, "running", "not success while paused");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.gitlab_deployments("paused")[1].status, "running");

    apply::<Deployment>(&env, deployment(2, false)).await;
    let done = env
        .wait_for("web", "second revision success", |gd| {
            is("success")(gd)
                && gd.status.as_ref().unwrap().deployment.as_ref().unwrap().sha
                    == env.project.shas[2]
        })
        .await;
    assert_eq!(rollout_reason(&done).as_deref(), Some("RolloutComplete"));
    op.stop().await;
}

/// Scaled to zero by the user: success, reason `ScaledToZero`, from the controller's status.
async fn a_deployment_scaled_to_zero_succeeds(backend: Backend) {
    let env = Env::start_on(backend).await;
    apply::<Deployment>(
        &env,
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                     "template": template("web", &image(&env, 1))}
        }),
    )
    .await;
    let op = env.start_operator();
    env.apply_gld("web", spec_for(&env, "zero", "Deployment", "web"))
        .await;
    // Status is written in steps: wait for the rollout's verdict, then check what GitLab got.
    let done = env
        .wait_for("web", "ScaledToZero", reason_is("ScaledToZero"))
        .await;
    assert_eq!(gitlab_status(&done).as_deref(), Some("success"));
    assert_eq!(env.gitlab_deployments("zero").len(), 1);
    op.stop().await;
}

/// A StatefulSet with `partition: 2` of 3 replicas: the statefulset controller updates only
/// ordinal 2, and that is the rollout done (`PartitionRolloutComplete`).
async fn a_statefulset_partition_rollout_completes_at_the_partition(backend: Backend) {
    let env = Env::start_on(backend).await;
    let sts = |i: usize| {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
                     "template": template("db", &image(&env, i))}
        })
    };
    apply::<StatefulSet>(&env, sts(1)).await;
    let op = env.start_operator();
    env.apply_gld("db", spec_for(&env, "db", "StatefulSet", "db"))
        .await;
    env.wait_for("db", "first revision success", is("success"))
        .await;
    apply::<StatefulSet>(&env, sts(2)).await;
    let done = env
        .wait_for("db", "partition done", |gd| {
            is("success")(gd)
                && gd.status.as_ref().unwrap().deployment.as_ref().unwrap().sha
                    == env.project.shas[2]
        })
        .await;
    assert_eq!(
        rollout_reason(&done).as_deref(),
        Some("PartitionRolloutComplete")
    );
    // The controller really held ordinals 0 and 1 back.
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let old = image(&env, 1);
    for ordinal in 0..2 {
        let pod = pods.get(&format!("db-{ordinal}")).await.unwrap();
        assert_eq!(
            pod.spec.unwrap().containers[0].image.as_deref(),
            Some(old.as_str())
        );
    }
    op.stop().await;
}

/// `OnDelete`: the statefulset controller accepts the new template and replaces no pod; the
/// operator's default policy reports that as done (`OnDeleteSpecApplied`).
async fn a_statefulset_on_delete_is_done_when_the_spec_is_applied(backend: Backend) {
    let env = Env::start_on(backend).await;
    let sts = |i: usize| {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "updateStrategy": {"type": "OnDelete"},
                     "template": template("db", &image(&env, i))}
        })
    };
    apply::<StatefulSet>(&env, sts(1)).await;
    let op = env.start_operator();
    env.apply_gld("db", spec_for(&env, "db", "StatefulSet", "db"))
        .await;
    env.wait_for("db", "first revision success", is("success"))
        .await;
    apply::<StatefulSet>(&env, sts(3)).await;
    let done = env
        .wait_for("db", "OnDelete applied", |gd| {
            is("success")(gd)
                && reason_is("OnDeleteSpecApplied")(gd)
                && gd.status.as_ref().unwrap().deployment.as_ref().unwrap().sha
                    == env.project.shas[3]
        })
        .await;
    assert_eq!(
        rollout_reason(&done).as_deref(),
        Some("OnDeleteSpecApplied")
    );
    let gitlab = env.gitlab_deployments("db");
    assert_eq!(
        (gitlab.len(), gitlab[1].status.as_str()),
        (2, "success"),
        "{gitlab:?}"
    );
    op.stop().await;
}

/// A DaemonSet on two nodes with `maxUnavailable: 1`: the daemonset controller replaces one
/// pod at a time and the rollout is done when both nodes run the new template.
async fn a_daemonset_with_max_unavailable_rolls_out(backend: Backend) {
    let env = Env::start_on(backend).await;
    let ds = |i: usize| {
        json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                     "template": template("agent", &image(&env, i))}
        })
    };
    apply::<DaemonSet>(&env, ds(1)).await;
    let op = env.start_operator();
    env.apply_gld("agent", spec_for(&env, "agent", "DaemonSet", "agent"))
        .await;
    env.wait_for("agent", "first revision success", is("success"))
        .await;
    apply::<DaemonSet>(&env, ds(2)).await;
    env.wait_for("agent", "second revision success", |gd| {
        is("success")(gd)
            && gd.status.as_ref().unwrap().deployment.as_ref().unwrap().sha == env.project.shas[2]
    })
    .await;
    let ds: DaemonSet = wait_workload(&env, "agent", "read", |_| true).await;
    let status = ds.status.unwrap();
    assert_eq!(status.desired_number_scheduled, 2, "two nodes");
    assert_eq!(status.updated_number_scheduled, Some(2));
    assert_eq!(env.gitlab_deployments("agent").len(), 2);
    op.stop().await;
}

/// Our CRDs' CEL rules (`x-kubernetes-validations`), including the transition rule that makes
/// `spec.environment` immutable, as the apiserver evaluates them.
async fn the_crds_cel_rules_are_enforced(backend: Backend) {
    let env = Env::start_on(backend).await;
    let api = env.glds();
    let mut both = env.fixed_spec("staging", env.project.head());
    both["revisionFrom"] = json!({"container": "app"});
    let err = api
        .patch(
            "both",
            &PatchParams::apply("test"),
            &Patch::Apply(&json!({
                "apiVersion": "gitlab-operator.io/v1alpha1", "kind": "GitlabDeployment",
                "metadata": {"name": "both"}, "spec": both
            })),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected a 422, got {err:?}");
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status
            .message
            .contains("set exactly one of spec.sha (a fixed commit) and spec.revisionFrom"),
        "{}",
        status.message
    );

    env.apply_gld("web", env.fixed_spec("staging", env.project.head()))
        .await;
    let err = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"environment": "production"}})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected a 422, got {err:?}");
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status.message.contains("spec.environment is immutable"),
        "{}",
        status.message
    );
}

/// The GitlabDeployment's finalizer holds deletion until the operator has canceled the GitLab
/// deployment, with the real apiserver's deletionTimestamp/finalizer semantics.
async fn deletion_waits_for_the_finalizer(backend: Backend) {
    let env = Env::start_on(backend).await;
    env.apply_workload(
        "web",
        "registry.example/app:1.0.0",
        json!({"emulator.gitlab-operator.io/rollout-outcome": "stall"}),
    )
    .await;
    let op = env.start_operator();
    env.apply_gld("web", env.fixed_spec("staging", env.project.head()))
        .await;
    let running = env.wait_for("web", "running", is("running")).await;
    assert!(
        running
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| !f.is_empty()),
        "the operator put its finalizer on: {:?}",
        running.metadata.finalizers
    );
    op.stop().await;
    // Without the operator the object stays, marked for deletion.
    env.glds()
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = env.glds().get("web").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(env.gitlab_deployments("staging")[0].status, "running");
    // The operator comes back, cancels the GitLab deployment and lets go.
    let op = env.start_operator();
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(env.glds(), "web", |o: Option<&GitlabDeployment>| {
            o.is_none()
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(env.gitlab_deployments("staging")[0].status, "canceled");
    op.stop().await;
}

both_backends!(
    progress_deadline_exceeded_is_the_deployment_controllers_verdict,
    the_crds_cel_rules_are_enforced,
    deletion_waits_for_the_finalizer,
);

// Cases that only the upstream controllers decide: the emulator has no pause, partition,
// OnDelete or maxUnavailable logic of its own to be judged.
real_only!(
    a_paused_deployment_is_not_reported_until_resumed,
    a_deployment_scaled_to_zero_succeeds,
    a_statefulset_partition_rollout_completes_at_the_partition,
    a_statefulset_on_delete_is_done_when_the_spec_is_applied,
    a_daemonset_with_max_unavailable_rolls_out,
);
