//! Settled workloads: the rollout simulator skips a finished Deployment until it or something
//! it owns changes; outside changes are still noticed and repaired.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

// Steps of 50 ms: a settled workload is re-checked in full only every 20 steps (1 s), so the
// repairs below within that window come from noticing the change itself.
use common::{deployment_complete, fast_rollouts as setup, wait_until};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}},
        }
    }))
    .unwrap()
}

/// Names of the live, Ready pods of `app`.
async fn ready_pods(pods: &Api<Pod>, app: &str) -> BTreeSet<String> {
    pods.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .map(|p| p.name_any())
        .collect()
}

/// Create `name`, wait for its rollout, then give it time to settle (many idle steps).
async fn settled(client: &Client, name: &str, replicas: i32) -> Api<Deployment> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &deployment(name, replicas, "nginx:1.25"),
    )
    .await
    .unwrap();
    wait_until("rollout complete", || {
        deployment_complete(&api, name, replicas)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    api
}

#[tokio::test]
async fn settled_deployment_gets_a_deleted_pod_back() {
    let (_emu, client) = setup().await;
    let api = settled(&client, "keep", 2).await;
    let rv = api.get("keep").await.unwrap().resource_version();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let before = ready_pods(&pods, "keep").await;
    assert_eq!(before.len(), 2, "{before:?}");
    // Settled: idle steps write nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(api.get("keep").await.unwrap().resource_version(), rv);
    let victim = before.iter().next().unwrap().clone();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    wait_until("a replacement pod is Ready", || async {
        let now = ready_pods(&pods, "keep").await;
        now.len() == 2 && !now.contains(&victim)
    })
    .await;
    wait_until("the deployment is complete again", || {
        deployment_complete(&api, "keep", 2)
    })
    .await;
}

#[tokio::test]
async fn settled_deployment_rolls_when_its_template_changes() {
    let (_emu, client) = setup().await;
    let api = settled(&client, "roll", 2).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let old = ready_pods(&pods, "roll").await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.26"}]}}}});
    api.patch("roll", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    wait_until("the new template rolled out", || async {
        deployment_complete(&api, "roll", 2).await
            && api
                .get("roll")
                .await
                .unwrap()
                .annotations()
                .get("deployment.kubernetes.io/revision")
                .map(String::as_str)
                == Some("2")
    })
    .await;
    wait_until("pods of the new template only", || async {
        let list = pods
            .list(&ListParams::default().labels("app=roll"))
            .await
            .unwrap();
        list.items.len() == 2
            && list.items.iter().all(|p| {
                !old.contains(&p.name_any())
                    && p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("nginx:1.26")
            })
    })
    .await;
    // Scaling a settled deployment is a change too.
    api.patch(
        "roll",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    wait_until("scaled to 3", || deployment_complete(&api, "roll", 3)).await;
    assert_eq!(ready_pods(&pods, "roll").await.len(), 3);
}

#[tokio::test]
async fn settled_deployment_repairs_an_edited_replicaset() {
    let (_emu, client) = setup().await;
    let _api = settled(&client, "fix", 1).await;
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let name = rs.list(&ListParams::default()).await.unwrap().items[0].name_any();
    rs.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 4}})),
    )
    .await
    .unwrap();
    wait_until("the ReplicaSet scaled back to 1", || async {
        rs.get(&name).await.unwrap().spec.unwrap().replicas == Some(1)
    })
    .await;
}
