//! CRDs through kube-rs (spec §10): served at once, validation pipeline with the real messages,
//! subresources, deletion; and a kube-runtime `Controller` with `owns()`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{DEADLINE, wait_until, widget_crd};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Resource, ResourceExt};
use kube_emulator::KubeEmulator;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn widget_ar() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("test.emulator.io", "v1", "Widget"),
        "widgets",
    )
}

async fn setup() -> (KubeEmulator, Client, Api<DynamicObject>) {
    let emu = KubeEmulator::start().await.unwrap();
    let client = emu.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(widget_crd()).unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    tokio::time::timeout(
        DEADLINE,
        await_condition(
            crds,
            "widgets.test.emulator.io",
            conditions::is_crd_established(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let api = Api::namespaced_with(client.clone(), "default", &widget_ar());
    (emu, client, api)
}

fn widget(name: &str, spec: serde_json::Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "test.emulator.io/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec})).unwrap()
}

fn status_of(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected API error, got {other:?}"),
    }
}

#[tokio::test]
async fn crd_is_served_with_discovery_and_defaults() {
    let (_emu, client, api) = setup().await;
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let (ar, caps) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(ar, _)| ar.plural == "widgets")
        .expect("widgets discovered");
    assert_eq!(ar.kind, "Widget");
    assert!(
        caps.subresources
            .iter()
            .any(|(s, _)| s.plural == "widgets/status" || s.plural == "status"),
        "{:?}",
        caps.subresources
    );
    let w = api
        .create(
            &PostParams::default(),
            &widget("a", json!({"color": "red"})),
        )
        .await
        .unwrap();
    assert_eq!(w.data["spec"]["size"], 1, "default applied");
    assert_eq!(w.metadata.generation, Some(1));
}

#[tokio::test]
async fn validation_answers_422_with_real_messages() {
    let (_emu, _client, api) = setup().await;
    let pp = PostParams::default();
    let err = status_of(
        api.create(&pp, &widget("bad", json!({"color": "green"})))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert_eq!(err.reason, "Invalid");
    // Schema errors skip the CEL rules; the real server then adds a second cause saying so.
    assert!(
        err.message.starts_with("Widget.test.emulator.io \"bad\" is invalid: [spec.color: Unsupported value: \"green\": supported values: \"red\", \"blue\""),
        "{}",
        err.message
    );
    let causes = err.details.as_ref().unwrap().causes.clone();
    assert_eq!(causes[0].field, "spec.color");
    assert_eq!(causes[0].reason, "FieldValueNotSupported");
    let err = status_of(
        api.create(&pp, &widget("bad", json!({})))
            .await
            .unwrap_err(),
    );
    assert!(
        err.message.contains("spec.color: Required value"),
        "{}",
        err.message
    );
    let err = status_of(
        api.create(&pp, &widget("bad", json!({"color": "red", "size": 11})))
            .await
            .unwrap_err(),
    );
    assert!(err.message.contains("size too big"), "{}", err.message);
    let err = status_of(
        api.create(&pp, &widget("bad", json!({"color": "red", "sha": "zz"})))
            .await
            .unwrap_err(),
    );
    assert!(
        err.message.contains(
            "spec.sha: Invalid value: \"zz\": spec.sha in body should match '^[0-9a-f]{7}$'"
        ),
        "{}",
        err.message
    );
    // Transition rule on update.
    api.create(&pp, &widget("t", json!({"color": "red"})))
        .await
        .unwrap();
    let err = status_of(
        api.patch(
            "t",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": "blue"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains("color is immutable"),
        "{}",
        err.message
    );
    // Unknown fields: pruned by default, 400 with fieldValidation=Strict.
    let w = api
        .create(&pp, &widget("u", json!({"color": "red", "bogus": 1})))
        .await
        .unwrap();
    assert!(w.data["spec"].get("bogus").is_none());
    let strict = PatchParams::apply("t").validation_strict();
    let err = status_of(
        api.patch(
            "s",
            &strict,
            &Patch::Apply(&widget("s", json!({"color": "red", "bogus": 1}))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 400);
    assert!(
        err.message.contains("unknown field \"spec.bogus\""),
        "{}",
        err.message
    );
    // Strategic merge patch is not for custom resources.
    let err = status_of(
        api.patch(
            "t",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 415);
}

#[tokio::test]
async fn status_and_scale_subresources() {
    let (_emu, _client, api) = setup().await;
    api.create(
        &PostParams::default(),
        &widget("s", json!({"color": "red", "replicas": 2})),
    )
    .await
    .unwrap();
    // The main endpoint ignores status; /status ignores spec.
    let w = api
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "X"}})),
        )
        .await
        .unwrap();
    assert!(w.data.get("status").is_none());
    let status = json!({"apiVersion": "test.emulator.io/v1", "kind": "Widget", "status": {"phase": "Ready", "replicas": 2, "conditions": [{"type": "Ready", "status": "True"}]}});
    let w = api
        .patch_status("s", &PatchParams::apply("ctrl"), &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(w.data["status"]["phase"], "Ready");
    assert_eq!(w.metadata.generation, Some(1));
    let again = api
        .patch_status("s", &PatchParams::apply("ctrl"), &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(
        again.resource_version(),
        w.resource_version(),
        "no-op status apply"
    );
    let mf = w.metadata.managed_fields.unwrap();
    assert!(mf.iter().any(
        |m| m.manager.as_deref() == Some("ctrl") && m.subresource.as_deref() == Some("status")
    ));
    let scale = api.get_scale("s").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    api.patch_scale(
        "s",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 5}})),
    )
    .await
    .unwrap();
    assert_eq!(api.get("s").await.unwrap().data["spec"]["replicas"], 5);
}

#[tokio::test]
async fn deleting_the_crd_deletes_its_resources() {
    let (_emu, client, api) = setup().await;
    api.create(
        &PostParams::default(),
        &widget("gone", json!({"color": "red"})),
    )
    .await
    .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete("widgets.test.emulator.io", &DeleteParams::default())
        .await
        .unwrap();
    wait_until("CRD removed", || {
        let crds = crds.clone();
        async move {
            crds.get_opt("widgets.test.emulator.io")
                .await
                .unwrap()
                .is_none()
        }
    })
    .await;
    let err = status_of(api.get("gone").await.unwrap_err());
    assert_eq!(err.code, 404);
}

#[derive(Debug, thiserror::Error)]
#[error("reconcile failed: {0}")]
struct ReconcileError(#[from] kube::Error);

#[tokio::test]
async fn controller_with_owns_reconciles_and_repairs() {
    let (_emu, client, api) = setup().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let ctx = Arc::new(client.clone());
    let controller = Controller::new_with(api.clone(), Default::default(), widget_ar())
        .owns(cms.clone(), Default::default())
        .run(
            |w: Arc<DynamicObject>, client: Arc<Client>| async move {
                let cms: Api<ConfigMap> = Api::namespaced((*client).clone(), "default");
                let oref = w.controller_owner_ref(&widget_ar()).unwrap();
                let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("{}-cm", w.name_any()), "ownerReferences": [oref]},
                    "data": {"color": w.data["spec"]["color"]}});
                cms.patch(
                    &format!("{}-cm", w.name_any()),
                    &PatchParams::apply("widget-ctrl").force(),
                    &Patch::Apply(&cm),
                )
                .await?;
                Ok::<_, ReconcileError>(Action::await_change())
            },
            |_w, _e, _ctx| Action::requeue(Duration::from_millis(200)),
            ctx,
        )
        .for_each(|_| async {});
    let task = tokio::spawn(controller);
    api.create(
        &PostParams::default(),
        &widget("c", json!({"color": "blue"})),
    )
    .await
    .unwrap();
    wait_until("owned ConfigMap created", || {
        let cms = cms.clone();
        async move { cms.get_opt("c-cm").await.unwrap().is_some() }
    })
    .await;
    // Deleting the owned object triggers the owner's reconcile, which recreates it.
    let uid = cms.get("c-cm").await.unwrap().uid();
    cms.delete("c-cm", &DeleteParams::default()).await.unwrap();
    wait_until("owned ConfigMap recreated", || {
        let cms = cms.clone();
        let uid = uid.clone();
        async move {
            cms.get_opt("c-cm")
                .await
                .unwrap()
                .is_some_and(|c| c.uid() != uid)
        }
    })
    .await;
    // Deleting the owner garbage-collects the ConfigMap.
    api.delete("c", &DeleteParams::default()).await.unwrap();
    wait_until("owned ConfigMap collected", || {
        let cms = cms.clone();
        async move { cms.get_opt("c-cm").await.unwrap().is_none() }
    })
    .await;
    task.abort();
}
