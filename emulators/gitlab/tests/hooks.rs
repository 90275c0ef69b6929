//! Project webhooks (spec Part B): the hooks API over real HTTP, and Deployment Hooks
//! delivered to a real HTTP receiver with GitLab's headers, faults and the approval events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use common::fx;
use gitlab_emulator::*;
use serde_json::{Value, json};

/// What the receiver got: headers (lower-case names) and the JSON body.
type Got = Arc<Mutex<Vec<(Vec<(String, String)>, Value)>>>;

/// A receiver on loopback answering `status`; returns its URL and what it received.
async fn receiver(status: u16) -> (String, Got) {
    let got: Got = Arc::default();
    let sink = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/hooks/gitlab",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                let headers = headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                    .collect();
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                sink.lock().unwrap().push((headers, body));
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hooks/gitlab"), got)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn wait_for(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn hooks_api_create_list_get_delete() {
    let f = fx();
    let path = format!("/projects/{}/hooks", f.p.id);
    // Local URLs are refused unless the admin setting allows them.
    let body = json!({"url": "http://127.0.0.1:9/hooks/gitlab", "token": "s3cret", "deployment_events": true});
    f.json("POST", &path, &f.tok, body.clone())
        .await
        .assert(422, r#"{"error":"Invalid url given"}"#);
    f.json(
        "POST",
        &path,
        &f.tok,
        json!({"url": "ftp://hooks.example.com/"}),
    )
    .await
    .assert(422, r#"{"error":"Invalid url given"}"#);
    f.json("POST", &path, &f.tok, json!({"token": "x"}))
        .await
        .assert(400, r#"{"error":"url is missing"}"#);
    f.json(
        "POST",
        &path,
        &f.tok,
        json!({"url": "https://hooks.example.com/", "deployment_events": "maybe"}),
    )
    .await
    .assert(400, r#"{"error":"deployment_events is invalid"}"#);
    // Developers may not even read hooks; the role check comes before parameters.
    f.json("POST", &path, &f.dev, json!({}))
        .await
        .assert(403, r#"{"message":"403 Forbidden"}"#);
    f.call("GET", &path, Some(&f.dev), None)
        .await
        .assert(403, r#"{"message":"403 Forbidden"}"#);

    f.h.set_allow_local_webhooks(true);
    let created = f.json("POST", &path, &f.tok, body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let hook = created.json();
    assert!(hook.get("token").is_none(), "the token is write-only");
    assert_eq!(hook["deployment_events"], true);
    assert_eq!(hook["push_events"], true);
    assert_eq!(hook["url_variables"], json!([]));
    let keys: Vec<&str> = hook
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(keys.contains(&"enable_ssl_verification") && keys.contains(&"alert_status"));
    let id = hook["id"].as_u64().unwrap();

    let list = f.get(&path).await;
    assert_eq!(list.status, 200);
    let items = list.json();
    assert_eq!(items.as_array().unwrap().len(), 1);
    assert!(
        items[0].get("url_variables").is_none(),
        "omitted in the list"
    );
    assert!(
        items[0].get("custom_headers").is_none(),
        "omitted in the list"
    );
    assert_eq!(f.get(&format!("{path}/{id}")).await.json()["id"], id);

    f.call(
        "DELETE",
        &format!("{path}/{id}"),
        Some(&f.tok.clone()),
        None,
    )
    .await
    .assert(204, "");
    f.call(
        "DELETE",
        &format!("{path}/{id}"),
        Some(&f.tok.clone()),
        None,
    )
    .await
    .assert(404, r#"{"message":"404 Not found"}"#);
    assert!(f.h.hooks().is_empty());
}

#[tokio::test]
async fn deployment_hooks_are_delivered_with_gitlabs_headers() {
    let f = fx();
    f.h.set_allow_local_webhooks(true);
    let (url, got) = receiver(200).await;
    let path = format!("/projects/{}/hooks", f.p.id);
    let r = f
        .json(
            "POST",
            &path,
            &f.tok,
            json!({"url": url, "token": "s3cret", "deployment_events": true}),
        )
        .await;
    assert_eq!(r.status, 201);
    // A hook without deployment events gets nothing.
    let (other_url, other) = receiver(200).await;
    f.json("POST", &path, &f.tok, json!({"url": other_url}))
        .await;

    let id = f.create("staging", f.p.head(), "running").await;
    f.put_status(id, "success").await;
    wait_for("two deliveries", || got.lock().unwrap().len() == 2).await;
    let got = got.lock().unwrap().clone();
    let statuses: Vec<&str> = got
        .iter()
        .map(|(_, b)| b["status"].as_str().unwrap())
        .collect();
    let mut sorted = statuses.clone();
    sorted.sort_unstable();
    // Delivery order is not guaranteed (two asynchronous hops in GitLab).
    assert_eq!(sorted, ["running", "success"]);
    for (headers, body) in &got {
        assert_eq!(header(headers, "x-gitlab-event"), Some("Deployment Hook"));
        assert_eq!(header(headers, "x-gitlab-token"), Some("s3cret"));
        assert_eq!(header(headers, "x-gitlab-event-uuid").unwrap().len(), 36);
        assert!(header(headers, "idempotency-key").is_some());
        assert_eq!(body["object_kind"], "deployment");
        assert_eq!(body["deployment_id"], id);
        assert_eq!(body["deployable_id"], Value::Null);
        assert_eq!(body["environment"], "staging");
        assert_eq!(body["ref"], "main");
        assert_eq!(body["short_sha"], &f.p.head()[..8]);
        assert_eq!(body["project"]["path_with_namespace"], "team/app");
        assert!(
            body["status_changed_at"]
                .as_str()
                .unwrap()
                .ends_with(".000+00:00")
        );
        assert!(body.get("approval").is_none());
    }
    assert!(other.lock().unwrap().is_empty());
    // The delivery log is written after the receiver answered: wait for it too.
    wait_for("two logged deliveries", || f.h.hook_deliveries().len() == 2).await;
    let log = f.h.hook_deliveries();
    assert!(
        log.iter()
            .all(|d| d.outcome == "ok" && d.response_status == Some(200))
    );
}

#[tokio::test]
async fn delivery_faults_drop_or_delay_and_failures_are_not_retried() {
    let f = fx();
    f.h.set_allow_local_webhooks(true);
    let (url, got) = receiver(200).await;
    let path = format!("/projects/{}/hooks", f.p.id);
    f.json(
        "POST",
        &path,
        &f.tok,
        json!({"url": url, "deployment_events": true}),
    )
    .await;
    f.h.fault_hook_deliveries(HookFault::Drop, Some(1));
    let id = f.create("staging", f.p.head(), "running").await;
    wait_for("the dropped delivery", || {
        f.h.hook_deliveries().iter().any(|d| d.outcome == "dropped")
    })
    .await;
    assert!(got.lock().unwrap().is_empty());

    f.h.fault_hook_deliveries(HookFault::Delay(Duration::from_millis(400)), Some(1));
    let started = Instant::now();
    f.put_status(id, "success").await;
    wait_for("the delayed delivery", || got.lock().unwrap().len() == 1).await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(
        header(&got.lock().unwrap()[0].0, "x-gitlab-token").is_none(),
        "no token set"
    );

    // A receiver answering 500 is a failure, logged once: GitLab does not retry it.
    let (failing, failing_got) = receiver(500).await;
    f.json(
        "POST",
        &path,
        &f.tok,
        json!({"url": failing, "deployment_events": true}),
    )
    .await;
    let second = f.create("production", f.p.head(), "running").await;
    wait_for("the failed delivery", || {
        !failing_got.lock().unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(failing_got.lock().unwrap().len(), 1);
    let failed: Vec<_> =
        f.h.hook_deliveries()
            .into_iter()
            .filter(|d| d.deployment_id == second && d.response_status == Some(500))
            .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].outcome, "failed");
}

#[tokio::test]
async fn approval_events_only_behind_the_option() {
    let f = fx();
    f.h.set_allow_local_webhooks(true);
    let (approver, approver_token) = f.h.add_user_with_token("approver");
    f.h.add_member(f.p.id, approver, Role::Developer);
    f.h.protect_environment(
        f.p.id,
        "production",
        vec![DeployAccess::Role(Role::Maintainer)],
        vec![ApprovalRuleSpec::role(Role::Developer, 1)],
    );
    let (url, got) = receiver(200).await;
    let path = format!("/projects/{}/hooks", f.p.id);
    f.json(
        "POST",
        &path,
        &f.tok,
        json!({"url": url, "deployment_events": true}),
    )
    .await;
    let id = f.create("production", f.p.head(), "running").await;
    wait_for("running", || got.lock().unwrap().len() == 1).await;
    let approval = format!("{}/{id}/approval", f.deployments());
    let r = f
        .json(
            "POST",
            &approval,
            &approver_token,
            json!({"status": "rejected"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        got.lock().unwrap().len(),
        1,
        "no approval events without the option"
    );

    f.h.set_approval_webhooks(true);
    let r = f
        .json(
            "POST",
            &approval,
            &approver_token,
            json!({"status": "approved", "comment": "ship it"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    wait_for("the approval event", || got.lock().unwrap().len() == 2).await;
    let body = got.lock().unwrap()[1].1.clone();
    assert_eq!(body["object_kind"], "deployment");
    assert_eq!(body["status"], "approved");
    assert_eq!(body["deployment_id"], id);
    assert_eq!(body["approver"]["username"], "approver");
    assert_eq!(body["approver"]["email"], "[REDACTED]");
    assert_eq!(body["approval"]["status"], "approved");
    assert_eq!(body["approval"]["comment"], "ship it");
    assert_eq!(body["approval"]["approval_rule"]["required_approvals"], 1);
    // The deployer stays in `user`.
    assert_ne!(body["user"]["username"], "approver");
    // The same decision again saves nothing and sends nothing.
    f.json(
        "POST",
        &approval,
        &approver_token,
        json!({"status": "approved"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(got.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_timed_out_delivery_is_retried_with_the_same_event_uuid() {
    let f = fx();
    f.h.set_allow_local_webhooks(true);
    f.h.set_webhook_timeout(Duration::from_millis(100));
    let calls = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&calls);
    let app = axum::Router::new().route(
        "/slow",
        axum::routing::post(move |headers: HeaderMap| {
            let sink = Arc::clone(&sink);
            async move {
                let uuid = headers
                    .get("x-gitlab-event-uuid")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                sink.lock().unwrap().push(uuid);
                tokio::time::sleep(Duration::from_secs(2)).await;
                "late"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let path = format!("/projects/{}/hooks", f.p.id);
    f.json(
        "POST",
        &path,
        &f.tok,
        json!({"url": format!("http://{addr}/slow"), "deployment_events": true}),
    )
    .await;
    f.create("staging", f.p.head(), "running").await;
    wait_for("five attempts", || {
        f.h.hook_deliveries()
            .iter()
            .filter(|d| d.outcome == "timeout")
            .count()
            == 5
    })
    .await;
    let attempts = f.h.hook_deliveries();
    let uuids: Vec<&str> = attempts.iter().map(|d| d.event_uuid.as_str()).collect();
    assert!(uuids.iter().all(|u| *u == uuids[0]), "{uuids:?}");
    assert_eq!(
        attempts.iter().map(|d| d.attempt).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(calls.lock().unwrap().len(), 5);
    assert!(calls.lock().unwrap().iter().all(|u| u == uuids[0]));
}
