//! Conformance through kube-rs's typed and dynamic APIs and kube-runtime (spec §3-§8, §11).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{DEADLINE, wait_until};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ObjectReference};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use kube_emulator::KubeEmulator;
use serde_json::json;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"app": "t"}}, "data": {"k": "v"}}),
    )
    .unwrap()
}

async fn setup() -> (KubeEmulator, Client) {
    let emu = KubeEmulator::start().await.unwrap();
    let client = emu.client().await;
    (emu, client)
}

fn status_of(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected API error, got {other:?}"),
    }
}

#[tokio::test]
async fn crud_conflicts_and_not_found() {
    let (_emu, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    assert!(created.uid().is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let err = status_of(
        api.create(&PostParams::default(), &cm("a"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "AlreadyExists");
    assert_eq!(err.message, "configmaps \"a\" already exists");
    // Update with the read RV works, then the stale RV conflicts.
    let mut c = created.clone();
    c.data = Some([("k".to_string(), "w".to_string())].into());
    let updated = api.replace("a", &PostParams::default(), &c).await.unwrap();
    assert_ne!(updated.resource_version(), created.resource_version());
    let err = status_of(
        api.replace("a", &PostParams::default(), &c)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.reason, "Conflict");
    assert!(
        err.message.contains("the object has been modified"),
        "{}",
        err.message
    );
    // A no-op update keeps the resourceVersion.
    let same = api
        .replace("a", &PostParams::default(), &updated)
        .await
        .unwrap();
    assert_eq!(same.resource_version(), updated.resource_version());
    let err = status_of(api.get("missing").await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "configmaps \"missing\" not found");
    // Creating into a missing namespace.
    let other: Api<ConfigMap> = Api::namespaced(client.clone(), "nope");
    let err = status_of(
        other
            .create(&PostParams::default(), &cm("x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.message, "namespaces \"nope\" not found");
    // generateName.
    let mut g = cm("");
    g.metadata.name = None;
    g.metadata.generate_name = Some("gen-".into());
    let g = api.create(&PostParams::default(), &g).await.unwrap();
    assert!(g.name_any().starts_with("gen-") && g.name_any().len() == 9);
    // Delete returns, then 404.
    api.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(status_of(api.get("a").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn generation_tracks_spec_only() {
    let (_emu, client) = setup().await;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}
    }))
    .unwrap();
    let d = api.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    // Defaulting applied.
    assert_eq!(
        d.spec.as_ref().unwrap().progress_deadline_seconds,
        Some(600)
    );
    let pp = PatchParams::default();
    let d = api
        .patch(
            "web",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    let d = api
        .patch("web", &pp, &Patch::Merge(json!({"spec": {"replicas": 2}})))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(2));
    // Status writes through /status never bump it.
    let d = api
        .patch_status(
            "web",
            &pp,
            &Patch::Merge(json!({"status": {"observedGeneration": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(2));
    // Selector mismatch → 422 with the real message.
    let bad: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "bad"},
        "spec": {"selector": {"matchLabels": {"app": "x"}},
                 "template": {"metadata": {"labels": {"app": "y"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }))
    .unwrap();
    let err = status_of(api.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("`selector` does not match template `labels`"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn finalizers_and_deletion() {
    let (_emu, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut c = cm("f");
    c.metadata.finalizers = Some(vec!["test/x".into()]);
    api.create(&PostParams::default(), &c).await.unwrap();
    let r = api.delete("f", &DeleteParams::default()).await.unwrap();
    let pending = r
        .left()
        .expect("object still present while finalizers remain");
    assert!(pending.metadata.deletion_timestamp.is_some());
    // Adding a finalizer while deleting is forbidden.
    let err = status_of(
        api.patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["test/x", "test/y"]}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains("no new finalizers can be added"),
        "{}",
        err.message
    );
    // JSON patch `test` + remove, as the kube-rs finalizer helper does, completes the delete.
    let p: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "test/x"},
        {"op": "remove", "path": "/metadata/finalizers/0"}
    ]))
    .unwrap();
    api.patch("f", &PatchParams::default(), &Patch::Json::<()>(p))
        .await
        .unwrap();
    assert_eq!(status_of(api.get("f").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn finalizer_helper_round_trip() {
    use kube::runtime::controller::Action;
    use kube::runtime::finalizer::{Event, finalizer};
    use std::sync::Arc;
    let (_emu, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("h")).await.unwrap();
    let run = |api: Api<ConfigMap>| async move {
        let obj = Arc::new(api.get("h").await.unwrap());
        finalizer(&api, "test.io/cleanup", obj, |ev| async move {
            match ev {
                Event::Apply(_) | Event::Cleanup(_) => {
                    Ok::<_, std::io::Error>(Action::await_change())
                }
            }
        })
        .await
    };
    run(api.clone()).await.unwrap();
    assert_eq!(
        api.get("h").await.unwrap().finalizers(),
        &["test.io/cleanup".to_string()]
    );
    api.delete("h", &DeleteParams::default()).await.unwrap();
    run(api.clone()).await.unwrap();
    assert_eq!(status_of(api.get("h").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn selectors_and_pagination() {
    let (_emu, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..7 {
        let mut c = cm(&format!("p{i}"));
        c.metadata.labels = Some(
            [(
                "parity".to_string(),
                (if i % 2 == 0 { "even" } else { "odd" }).to_string(),
            )]
            .into(),
        );
        api.create(&PostParams::default(), &c).await.unwrap();
    }
    let even = api
        .list(&ListParams::default().labels("parity=even"))
        .await
        .unwrap();
    assert_eq!(even.items.len(), 4);
    let notin = api
        .list(&ListParams::default().labels("parity notin (even)"))
        .await
        .unwrap();
    assert_eq!(notin.items.len(), 3);
    let one = api
        .list(&ListParams::default().fields("metadata.name=p3"))
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    let first = api.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(first.items.len(), 3);
    assert_eq!(first.metadata.remaining_item_count, Some(4));
    let token = first.metadata.continue_.clone().unwrap();
    // A write between pages does not show up in the same snapshot.
    api.create(&PostParams::default(), &cm("p9")).await.unwrap();
    let second = api
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    let third = api
        .list(
            &ListParams::default()
                .limit(3)
                .continue_token(second.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    // p9 was created after the snapshot: the three pages hold exactly p0..p6.
    assert_eq!(
        first.items.len() + second.items.len() + third.items.len(),
        7
    );
    assert!(third.metadata.continue_.as_deref().unwrap_or("").is_empty());
    assert_eq!(
        first.metadata.resource_version,
        third.metadata.resource_version
    );
    let err = status_of(
        api.list(&ListParams::default().labels("a b"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
}

#[tokio::test]
async fn server_side_apply_conflicts_and_no_op() {
    let (_emu, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"a": "1"}});
    let first = api
        .patch("s", &PatchParams::apply("one"), &Patch::Apply(&body))
        .await
        .unwrap();
    let again = api
        .patch("s", &PatchParams::apply("one"), &Patch::Apply(&body))
        .await
        .unwrap();
    assert_eq!(
        first.resource_version(),
        again.resource_version(),
        "no-op apply keeps the RV"
    );
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"a": "2"}});
    let err = status_of(
        api.patch("s", &PatchParams::apply("two"), &Patch::Apply(&other))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert_eq!(
        err.message,
        // An `Apply` manager is named alone (the real apiserver's wording, tests/fidelity.rs).
        "Apply failed with 1 conflict: conflict with \"one\": .data.a"
    );
    let forced = api
        .patch(
            "s",
            &PatchParams::apply("two").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["a"], "2");
    // Manager "one" dropping a field it no longer co-owns leaves it to "two".
    let mf = forced.metadata.managed_fields.unwrap();
    assert!(mf.iter().any(|m| m.manager.as_deref() == Some("two") && m.operation.as_deref() == Some("Apply")));
    // Fields removed from an apply are removed from the object.
    let b2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"a": "2", "b": "x"}});
    api.patch("s", &PatchParams::apply("two"), &Patch::Apply(&b2))
        .await
        .unwrap();
    let b3 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"a": "2"}});
    let r = api
        .patch("s", &PatchParams::apply("two"), &Patch::Apply(&b3))
        .await
        .unwrap();
    assert!(!r.data.unwrap().contains_key("b"));
    // Apply creates.
    let c = api
        .patch(
            "new",
            &PatchParams::apply("one"),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(c.name_any(), "new");
}

#[tokio::test]
async fn watcher_reflector_and_forced_relist() {
    let (emu, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream =
        reflector(writer, watcher(api.clone(), watcher::Config::default())).applied_objects();
    let task = tokio::spawn(async move {
        let mut s = std::pin::pin!(stream);
        while let Some(r) = s.next().await {
            let _ = r;
        }
    });
    reader.wait_until_ready().await.unwrap();
    api.create(&PostParams::default(), &cm("w1")).await.unwrap();
    wait_until("w1 in the store", || {
        let r = reader.clone();
        async move { r.state().iter().any(|c| c.name_any() == "w1") }
    })
    .await;
    // Drop every watch and force 410 on the next: the watcher relists and sees later writes.
    emu.hooks().expire_next_watches(1);
    emu.hooks().drop_watches();
    api.create(&PostParams::default(), &cm("w2")).await.unwrap();
    api.delete("w1", &DeleteParams::default()).await.unwrap();
    wait_until("w2 present and w1 gone", || {
        let r = reader.clone();
        async move {
            let names: Vec<String> = r.state().iter().map(|c| c.name_any()).collect();
            names.contains(&"w2".to_string()) && !names.contains(&"w1".to_string())
        }
    })
    .await;
    let watches = emu
        .hooks()
        .requests()
        .iter()
        .filter(|r| r.verb == "watch")
        .count();
    assert!(watches >= 2, "re-watched after the drop: {watches}");
    task.abort();
}

#[tokio::test]
async fn streaming_list_and_metadata_watch() {
    let (_emu, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &cm("m1")).await.unwrap();
    let s = watcher(api.clone(), watcher::Config::default().streaming_lists()).default_backoff();
    let mut s = std::pin::pin!(s);
    let mut saw_init_done = false;
    let mut saw_m1 = false;
    while let Some(ev) = tokio::time::timeout(DEADLINE, s.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        match ev {
            watcher::Event::InitApply(c) if c.name_any() == "m1" => saw_m1 = true,
            watcher::Event::InitDone => {
                saw_init_done = true;
                break;
            }
            _ => {}
        }
    }
    assert!(saw_m1 && saw_init_done);
    let ms = watcher(
        Api::<kube::core::PartialObjectMeta<ConfigMap>>::namespaced(client.clone(), "default"),
        watcher::Config::default(),
    )
    .applied_objects();
    let mut ms = std::pin::pin!(ms);
    let first = tokio::time::timeout(DEADLINE, ms.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.name_any(), "m1");
}

#[tokio::test]
async fn events_recorder_creates_then_patches_series() {
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let (_emu, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let c = api.create(&PostParams::default(), &cm("ev")).await.unwrap();
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: c.metadata.name.clone(),
        namespace: Some("default".into()),
        uid: c.metadata.uid.clone(),
        ..Default::default()
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "test-ctrl".into(),
            instance: Some("i-1".into()),
        },
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: "Tested".into(),
        note: Some("hello".into()),
        action: "Test".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    // Core v1 view (kubectl describe) sees one event with count 2.
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let list = core
        .list(&ListParams::default().fields("involvedObject.name=ev"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].count, Some(2));
    assert_eq!(list.items[0].message.as_deref(), Some("hello"));
    let v1: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client, "default");
    let list = v1.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items[0].series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(
        list.items[0].reporting_controller.as_deref(),
        Some("test-ctrl")
    );
}

#[tokio::test]
async fn leases_optimistic_concurrency() {
    let (_emu, client) = setup().await;
    let api: Api<Lease> = Api::namespaced(client, "default");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "leader"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": "2025-01-02T03:04:05.123456Z"}
    }))
    .unwrap();
    let l = api.create(&PostParams::default(), &lease).await.unwrap();
    assert_eq!(
        status_of(
            api.create(&PostParams::default(), &lease)
                .await
                .unwrap_err()
        )
        .reason,
        "AlreadyExists"
    );
    let got = api.get_metadata("leader").await.unwrap();
    assert_eq!(got.metadata.resource_version, l.metadata.resource_version);
    let raw = api.get("leader").await.unwrap();
    let renew = serde_json::to_value(raw.spec.unwrap().renew_time).unwrap();
    assert_eq!(
        renew,
        json!("2025-01-02T03:04:05.123456Z"),
        "MicroTime keeps microseconds"
    );
    let mut a = l.clone();
    a.spec.as_mut().unwrap().holder_identity = Some("b".into());
    api.replace("leader", &PostParams::default(), &a)
        .await
        .unwrap();
    let mut stale = l.clone();
    stale.spec.as_mut().unwrap().holder_identity = Some("c".into());
    assert_eq!(
        status_of(
            api.replace("leader", &PostParams::default(), &stale)
                .await
                .unwrap_err()
        )
        .code,
        409
    );
}

#[tokio::test]
async fn owner_gc_and_namespace_deletion() {
    let (_emu, client) = setup().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "gc"}})).unwrap(),
    )
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "gc");
    let owner = api
        .create(&PostParams::default(), &cm("owner"))
        .await
        .unwrap();
    let mut dep = cm("dep");
    dep.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "owner".into(),
            uid: owner.uid().unwrap(),
            controller: Some(true),
            block_owner_deletion: None,
        },
    ]);
    api.create(&PostParams::default(), &dep).await.unwrap();
    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    wait_until("dependent collected", || {
        let api = api.clone();
        async move { api.get_opt("dep").await.unwrap().is_none() }
    })
    .await;
    api.create(&PostParams::default(), &cm("inside"))
        .await
        .unwrap();
    let ns = nss
        .delete("gc", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Terminating"));
    wait_until("namespace removed", || {
        let nss = nss.clone();
        async move { nss.get_opt("gc").await.unwrap().is_none() }
    })
    .await;
}

#[tokio::test]
async fn delete_collection_and_dry_run() {
    let (_emu, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for n in ["d1", "d2", "keep"] {
        let mut c = cm(n);
        if n == "keep" {
            c.metadata.labels = Some([("app".to_string(), "other".to_string())].into());
        }
        api.create(&PostParams::default(), &c).await.unwrap();
    }
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let d = api.create(&dry, &cm("dry")).await.unwrap();
    assert_eq!(d.name_any(), "dry");
    assert!(api.get_opt("dry").await.unwrap().is_none());
    let deleted = api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("app=t"),
        )
        .await
        .unwrap()
        .left()
        .unwrap();
    let mut names: Vec<String> = deleted.items.iter().map(|c| c.name_any()).collect();
    names.sort();
    assert_eq!(names, ["d1", "d2"]);
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert!(left.contains(&"keep".to_string()) && !left.contains(&"d1".to_string()));
}

#[tokio::test]
async fn foreground_deletion_and_metadata_validation() {
    let (_emu, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let owner = api
        .create(&PostParams::default(), &cm("fg-owner"))
        .await
        .unwrap();
    let mut dep = cm("fg-dep");
    dep.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "fg-owner".into(),
            uid: owner.uid().unwrap(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        },
    ]);
    dep.metadata.finalizers = Some(vec!["test/hold".into()]);
    api.create(&PostParams::default(), &dep).await.unwrap();
    let pending = api
        .delete("fg-owner", &DeleteParams::foreground())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(
        pending
            .finalizers()
            .contains(&"foregroundDeletion".to_string())
    );
    wait_until("dependent marked for deletion", || {
        let api = api.clone();
        async move {
            api.get("fg-dep")
                .await
                .unwrap()
                .metadata
                .deletion_timestamp
                .is_some()
        }
    })
    .await;
    assert!(
        api.get_opt("fg-owner").await.unwrap().is_some(),
        "owner waits for its dependents"
    );
    api.patch(
        "fg-dep",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    wait_until("owner released", || {
        let api = api.clone();
        async move { api.get_opt("fg-owner").await.unwrap().is_none() }
    })
    .await;
    let mut bad = cm("bad-labels");
    bad.metadata.labels = Some([("app".to_string(), "not valid!".to_string())].into());
    let err = status_of(api.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!(err.code, 422);
    assert!(
        err.message.starts_with("ConfigMap \"bad-labels\" is invalid: metadata.labels: Invalid value: \"not valid!\": a valid label must be"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn malformed_bodies_are_rejected_not_fatal() {
    let (_emu, client) = setup().await;
    let dynamic = kube::api::ApiResource::erase::<Deployment>(&());
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &dynamic);
    let bad: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
        "spec": {"selector": {"matchLabels": "nope"}, "template": []}
    }))
    .unwrap();
    let err = status_of(api.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!(err.code, 400);
    let req = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": ["a"]}})).unwrap())
        .unwrap();
    let err = client.request::<ConfigMap>(req).await.unwrap_err();
    assert_eq!(status_of(err).code, 400);
    // The server is still healthy.
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("fine"))
        .await
        .unwrap();
}

#[tokio::test]
async fn events_k8s_io_creation_is_validated() {
    let (_emu, client) = setup().await;
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client, "default");
    let ev: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": "bad.1"},
        "type": "Normal",
        "regarding": {"kind": "ConfigMap", "name": "x", "namespace": "default"}
    }))
    .unwrap();
    let err = status_of(api.create(&PostParams::default(), &ev).await.unwrap_err());
    assert_eq!(err.code, 422);
    let fields: Vec<String> = err
        .details
        .unwrap()
        .causes
        .iter()
        .map(|c| c.field.clone())
        .collect();
    assert_eq!(
        fields,
        [
            "eventTime",
            "reportingController",
            "reportingInstance",
            "action",
            "reason"
        ]
    );
}
