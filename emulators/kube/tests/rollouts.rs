//! The apps rollout simulator (spec §11; rollout-status.md §1.5.1-1.5.3) through kube-rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{deployment_complete, fast_rollouts as setup, wait_until};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn workload(kind: &str, name: &str, replicas: Option<i32>, annotations: Value) -> Value {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}}
    });
    if let Some(r) = replicas {
        spec["replicas"] = json!(r);
    }
    json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "annotations": annotations}, "spec": spec})
}

fn condition<'a>(
    d: &'a Deployment,
    ty: &str,
) -> Option<&'a k8s_openapi::api::apps::v1::DeploymentCondition> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == ty)
}

#[tokio::test]
async fn deployment_rolls_out_and_updates() {
    let (_emu, client) = setup().await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment =
        serde_json::from_value(workload("Deployment", "web", Some(3), json!({}))).unwrap();
    api.create(&PostParams::default(), &d).await.unwrap();
    wait_until("first rollout complete", || {
        deployment_complete(&api, "web", 3)
    })
    .await;
    let d = api.get("web").await.unwrap();
    assert_eq!(
        d.annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("1")
    );
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let sets = rs.list(&ListParams::default()).await.unwrap();
    assert_eq!(sets.items.len(), 1);
    let first = &sets.items[0];
    let hash = first.labels().get("pod-template-hash").cloned().unwrap();
    assert_eq!(first.name_any(), format!("web-{hash}"));
    assert_eq!(first.owner_references()[0].uid, d.uid().unwrap());
    // A template change: new ReplicaSet at revision 2, old one scaled to zero.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.26"}]}}}});
    api.patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    wait_until("second rollout complete", || async {
        deployment_complete(&api, "web", 3).await
            && api
                .get("web")
                .await
                .unwrap()
                .annotations()
                .get("deployment.kubernetes.io/revision")
                .map(String::as_str)
                == Some("2")
    })
    .await;
    let sets = rs.list(&ListParams::default()).await.unwrap();
    assert_eq!(sets.items.len(), 2);
    let old = sets
        .items
        .iter()
        .find(|r| r.name_any() == first.name_any())
        .unwrap();
    assert_eq!(old.spec.as_ref().unwrap().replicas, Some(0));
}

#[tokio::test]
async fn deployment_failure_outcome_reports_deadline_exceeded() {
    let (_emu, client) = setup().await;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    let d: Deployment = serde_json::from_value(workload(
        "Deployment",
        "bad",
        Some(2),
        json!({"emulator.gitlab-operator.io/rollout-outcome": "fail"}),
    ))
    .unwrap();
    api.create(&PostParams::default(), &d).await.unwrap();
    wait_until("ProgressDeadlineExceeded", || async {
        let d = api.get("bad").await.unwrap();
        condition(&d, "Progressing").is_some_and(|c| {
            c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        })
    })
    .await;
}

#[tokio::test]
async fn paused_rollouts_advance_step_by_step() {
    let (emu, client) = setup().await;
    emu.hooks().pause_rollouts(true);
    let api: Api<Deployment> = Api::namespaced(client, "default");
    let d: Deployment =
        serde_json::from_value(workload("Deployment", "slow", Some(2), json!({}))).unwrap();
    let created = api.create(&PostParams::default(), &d).await.unwrap();
    assert!(created.status.is_none());
    emu.hooks().advance_rollouts(1);
    wait_until("generation observed", || async {
        let d = api.get("slow").await.unwrap();
        d.status.as_ref().and_then(|s| s.observed_generation) == Some(1)
    })
    .await;
    let d = api.get("slow").await.unwrap();
    assert_eq!(
        condition(&d, "Progressing")
            .and_then(|c| c.reason.clone())
            .as_deref(),
        Some("NewReplicaSetCreated")
    );
    assert_eq!(d.status.as_ref().unwrap().updated_replicas, None);
    emu.hooks().pause_rollouts(false);
    wait_until("rollout complete after resume", || {
        deployment_complete(&api, "slow", 2)
    })
    .await;
    // spec.paused: the controller reports DeploymentPaused.
    api.patch("slow", &PatchParams::default(), &Patch::Merge(json!({"spec": {"paused": true, "template": {"metadata": {"labels": {"app": "slow", "v": "2"}}}}}))).await.unwrap();
    wait_until("DeploymentPaused", || async {
        let d = api.get("slow").await.unwrap();
        condition(&d, "Progressing").is_some_and(|c| {
            c.reason.as_deref() == Some("DeploymentPaused") && c.status == "Unknown"
        })
    })
    .await;
}

#[tokio::test]
async fn statefulset_and_daemonset_roll_out() {
    let (_emu, client) = setup().await;
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let s: StatefulSet =
        serde_json::from_value(workload("StatefulSet", "db", Some(3), json!({}))).unwrap();
    sts.create(&PostParams::default(), &s).await.unwrap();
    let done = |name: &'static str| {
        let sts = sts.clone();
        async move {
            let s = sts.get(name).await.unwrap();
            let st = s.status.clone().unwrap_or_default();
            st.observed_generation == s.metadata.generation
                && st.ready_replicas == Some(3)
                && st.updated_replicas == Some(3)
                && st.current_revision.is_some()
                && st.current_revision == st.update_revision
        }
    };
    wait_until("statefulset ready", || done("db")).await;
    let before = sts
        .get("db")
        .await
        .unwrap()
        .status
        .unwrap()
        .update_revision
        .unwrap();
    sts.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {"x": "1"}}}}})),
    )
    .await
    .unwrap();
    wait_until("statefulset updated", || async {
        done("db").await
            && sts
                .get("db")
                .await
                .unwrap()
                .status
                .unwrap()
                .update_revision
                .as_deref()
                != Some(before.as_str())
    })
    .await;
    let ds: Api<DaemonSet> = Api::namespaced(client, "default");
    let d: DaemonSet = serde_json::from_value(workload(
        "DaemonSet",
        "agent",
        None,
        json!({"emulator.gitlab-operator.io/nodes": "2"}),
    ))
    .unwrap();
    ds.create(&PostParams::default(), &d).await.unwrap();
    wait_until("daemonset available", || async {
        let d = ds.get("agent").await.unwrap();
        let st = d.status.clone().unwrap_or_default();
        st.observed_generation == d.metadata.generation
            && st.desired_number_scheduled == 2
            && st.updated_number_scheduled == Some(2)
            && st.number_available == Some(2)
    })
    .await;
}

#[tokio::test]
async fn pods_follow_replicasets_and_crashloops_time_out() {
    use k8s_openapi::api::core::v1::Pod;
    let (_emu, client) = setup().await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let d: Deployment =
        serde_json::from_value(workload("Deployment", "ok", Some(2), json!({}))).unwrap();
    api.create(&PostParams::default(), &d).await.unwrap();
    wait_until("rollout complete", || deployment_complete(&api, "ok", 2)).await;
    let list = pods
        .list(&ListParams::default().labels("app=ok"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 2);
    for p in &list.items {
        let st = p.status.as_ref().unwrap();
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert!(st.container_statuses.as_ref().unwrap()[0].ready);
        assert!(p.labels().contains_key("pod-template-hash"));
    }
    let mut bad = workload(
        "Deployment",
        "crash",
        Some(2),
        json!({"emulator.gitlab-operator.io/rollout-outcome": "crashloop"}),
    );
    bad["spec"]["progressDeadlineSeconds"] = json!(2);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(bad).unwrap(),
    )
    .await
    .unwrap();
    wait_until("a pod in CrashLoopBackOff", || async {
        pods.list(&ListParams::default().labels("app=crash"))
            .await
            .unwrap()
            .items
            .iter()
            .any(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|cs| {
                        cs[0].restart_count > 0
                            && cs[0]
                                .state
                                .as_ref()
                                .and_then(|s| s.waiting.as_ref())
                                .and_then(|w| w.reason.as_deref())
                                == Some("CrashLoopBackOff")
                    })
            })
    })
    .await;
    wait_until("ProgressDeadlineExceeded after the deadline", || async {
        let d = api.get("crash").await.unwrap();
        condition(&d, "Progressing")
            .is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
    })
    .await;
    // Deleting the Deployment collects its ReplicaSets and their pods.
    api.delete("ok", &Default::default()).await.unwrap();
    wait_until("pods collected", || async {
        pods.list(&ListParams::default().labels("app=ok"))
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
}
