//! Watch semantics (spec §8), Table/metadata negotiation, and the test hooks (spec §14).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{DEADLINE, wait_until};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use kube_emulator::KubeEmulator;
use serde_json::{Value, json};
use std::time::Duration;

fn cm(name: &str, app: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"app": app}}, "data": {"k": "v"}}),
    )
    .unwrap()
}

async fn next_event<S>(s: &mut S) -> WatchEvent<ConfigMap>
where
    S: futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin,
{
    tokio::time::timeout(DEADLINE, s.try_next())
        .await
        .expect("event in time")
        .unwrap()
        .expect("stream open")
}

async fn raw(
    client: &Client,
    method: &str,
    uri: &str,
    accept: Option<&str>,
    body: Vec<u8>,
) -> (http::StatusCode, http::HeaderMap, Value) {
    let mut b = http::Request::builder().method(method).uri(uri);
    if let Some(a) = accept {
        b = b.header(http::header::ACCEPT, a);
    }
    let resp = client
        .send(b.body(kube::client::Body::from(body)).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect_bytes().await.unwrap();
    (
        parts.status,
        parts.headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn resume_from_rv_and_expired_rv_in_stream() {
    let emu = KubeEmulator::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(emu.client().await, "default");
    let c = api
        .create(&PostParams::default(), &cm("a", "x"))
        .await
        .unwrap();
    let rv = c.resource_version().unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "w"}})),
    )
    .await
    .unwrap();
    let s = api
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .unwrap();
    let mut s = std::pin::pin!(s);
    match next_event(&mut s).await {
        WatchEvent::Modified(c) => assert_eq!(c.data.unwrap()["k"], "w"),
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    // Once history is compacted, the old RV gets 410 inside a 200 stream.
    emu.state().lock().compact();
    let s = api
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .unwrap();
    let mut s = std::pin::pin!(s);
    match next_event(&mut s).await {
        WatchEvent::Error(e) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
            assert!(
                e.message.starts_with("too old resource version"),
                "{}",
                e.message
            );
        }
        other => panic!("expected ERROR 410, got {other:?}"),
    }
    // resourceVersion "0": synthetic ADDED for current objects.
    let s = api
        .watch(&WatchParams::default().timeout(30), "0")
        .await
        .unwrap();
    let mut s = std::pin::pin!(s);
    assert!(matches!(next_event(&mut s).await, WatchEvent::Added(c) if c.name_any() == "a"));
}

#[tokio::test]
async fn label_selector_transitions_and_bookmarks() {
    let emu = KubeEmulator::options()
        .bookmark_interval(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(emu.client().await, "default");
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = WatchParams::default()
        .labels("app=x")
        .timeout(30)
        .disable_bookmarks();
    let s = api.watch(&wp, &rv).await.unwrap();
    let mut s = std::pin::pin!(s);
    api.create(&PostParams::default(), &cm("t", "x"))
        .await
        .unwrap();
    assert!(matches!(next_event(&mut s).await, WatchEvent::Added(_)));
    api.patch(
        "t",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})),
    )
    .await
    .unwrap();
    assert!(
        matches!(next_event(&mut s).await, WatchEvent::Deleted(_)),
        "leaving the selector is DELETED"
    );
    api.patch(
        "t",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "x"}}})),
    )
    .await
    .unwrap();
    assert!(
        matches!(next_event(&mut s).await, WatchEvent::Added(_)),
        "entering the selector is ADDED"
    );
    let s = api
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .unwrap();
    let mut s = std::pin::pin!(s);
    let mut last_rv = 0u64;
    loop {
        match next_event(&mut s).await {
            WatchEvent::Bookmark(b) => {
                assert!(b.metadata.resource_version.parse::<u64>().unwrap() >= last_rv);
                break;
            }
            WatchEvent::Added(c) | WatchEvent::Modified(c) | WatchEvent::Deleted(c) => {
                last_rv = c.resource_version().unwrap().parse().unwrap();
            }
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
}

#[tokio::test]
async fn table_and_metadata_negotiation() {
    let emu = KubeEmulator::start().await.unwrap();
    let client = emu.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &cm("tbl", "x"))
        .await
        .unwrap();
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let (code, headers, body) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/configmaps?limit=500",
        Some(accept),
        vec![],
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        headers[http::header::CONTENT_TYPE],
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    );
    assert_eq!(body["kind"], "Table");
    let names: Vec<&str> = body["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "Name");
    assert_eq!(body["rows"][0]["cells"][0], "tbl");
    assert_eq!(body["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let accept =
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
    let (_, headers, body) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        Some(accept),
        vec![],
    )
    .await;
    assert_eq!(
        headers[http::header::CONTENT_TYPE],
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
    );
    assert_eq!(body["kind"], "PartialObjectMetadataList");
    assert!(body["items"][0].get("data").is_none());
    // dryRun=All answers 201 and stores nothing.
    let (code, _, _) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps?dryRun=All",
        None,
        serde_json::to_vec(
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}}),
        )
        .unwrap(),
    )
    .await;
    assert_eq!(code, 201);
    assert!(api.get_opt("dry").await.unwrap().is_none());
}

#[tokio::test]
async fn faults_request_log_and_admin_routes() {
    let emu = KubeEmulator::start().await.unwrap();
    let client = emu.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    emu.hooks()
        .fail_requests("/api/v1/namespaces/default/configmaps", 500, 1, None);
    match api.get("x").await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (500, "InternalError")),
        other => panic!("{other:?}"),
    }
    // kube's client retries 429 after Retry-After: the log shows the 429, then the real answer.
    emu.hooks().clear_requests();
    emu.hooks()
        .fail_requests("/api/v1/namespaces/default/configmaps", 429, 1, Some(1));
    assert!(api.get_opt("x").await.unwrap().is_none());
    let codes: Vec<u16> = emu.hooks().requests().iter().map(|r| r.code).collect();
    assert_eq!(codes, [429, 404]);
    emu.hooks().clear_requests();
    api.create(&PostParams::default(), &cm("logged", "x"))
        .await
        .unwrap();
    api.patch("logged", &PatchParams::apply("mgr"), &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "logged"}, "data": {"a": "b"}}))).await.unwrap();
    let log = emu.hooks().requests();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].verb.as_str(), log[0].resource.as_str(), log[0].code),
        ("create", "configmaps", 201)
    );
    assert_eq!(
        (
            log[1].verb.as_str(),
            log[1].name.as_str(),
            log[1].field_manager.as_str()
        ),
        ("patch", "logged", "mgr")
    );
    assert_eq!(
        emu.hooks().counts()[&("patch".to_string(), "configmaps".to_string())],
        1
    );
    // The same hooks over HTTP (binary users).
    let (code, _, body) = raw(&client, "GET", "/__emulator/counts", None, vec![]).await;
    assert_eq!(code, 200);
    assert!(
        body.as_array()
            .unwrap()
            .iter()
            .any(|c| c["verb"] == "create")
    );
    let (code, _, _) = raw(&client, "POST", "/__emulator/watches/drop", None, vec![]).await;
    assert_eq!(code, 200);
    // Restart drops connections but keeps the store; the client reconnects.
    emu.hooks().restart();
    wait_until("served again after restart", || {
        let api = api.clone();
        async move { api.get_opt("logged").await.ok().flatten().is_some() }
    })
    .await;
}

#[tokio::test]
async fn state_file_survives_a_restart_of_the_process() {
    let path =
        std::env::temp_dir().join(format!("kube-emulator-state-{}.json", uuid::Uuid::new_v4()));
    let emu = KubeEmulator::options()
        .state_file(&path)
        .start()
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(emu.client().await, "default");
    let c = api
        .create(&PostParams::default(), &cm("kept", "x"))
        .await
        .unwrap();
    let client = emu.client().await;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(common::widget_crd()).unwrap(),
    )
    .await
    .unwrap();
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("test.emulator.io", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<kube::api::DynamicObject> = Api::namespaced_with(client, "default", &ar);
    let w: kube::api::DynamicObject = serde_json::from_value(json!({"apiVersion": "test.emulator.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"color": "red"}})).unwrap();
    widgets.create(&PostParams::default(), &w).await.unwrap();
    let p = path.clone();
    wait_until("state written", || {
        let p = p.clone();
        async move {
            std::fs::read_to_string(&p)
                .is_ok_and(|t| t.contains("\"kept\"") && t.contains("\"Widget\""))
        }
    })
    .await;
    emu.shutdown().await;
    let emu = KubeEmulator::options()
        .state_file(&path)
        .start()
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(emu.client().await, "default");
    let again = api.get("kept").await.unwrap();
    assert_eq!(again.uid(), c.uid());
    assert_eq!(
        again.resource_version(),
        c.resource_version(),
        "RVs survive the reload"
    );
    let client = emu.client().await;
    let widgets: Api<kube::api::DynamicObject> = Api::namespaced_with(client, "default", &ar);
    assert_eq!(
        widgets.get("w").await.unwrap().data["spec"]["size"],
        1,
        "CRD served again after reload"
    );
    let next = api
        .create(&PostParams::default(), &cm("later", "x"))
        .await
        .unwrap();
    assert!(
        next.resource_version().unwrap().parse::<u64>().unwrap()
            > c.resource_version().unwrap().parse::<u64>().unwrap()
    );
    let _ = std::fs::remove_file(&path);
}
