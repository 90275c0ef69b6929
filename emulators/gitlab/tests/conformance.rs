//! Conformance suite: walks spec/gitlab-deployments-api.md section by section over real HTTP
//! and checks status codes, headers and exact bodies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{TimeZone, Utc};
use common::{Fx, fx, send};
use gitlab_emulator::*;
use serde_json::{Value, json};

const NOT_FOUND_ROUTE: &str = r#"{"error":"404 Not Found"}"#;
const PROJECT_NOT_FOUND: &str = r#"{"message":"404 Project Not Found"}"#;
const FORBIDDEN: &str = r#"{"message":"403 Forbidden"}"#;
const NOT_FOUND: &str = r#"{"message":"404 Not found"}"#;
const UNAUTHORIZED: &str = r#"{"message":"401 Unauthorized"}"#;

// ---- §1 routes and project identifier ------------------------------------------------------

#[tokio::test]
async fn s1_project_by_id_or_encoded_path_and_catch_all() {
    let f = fx();
    let tok = f.tok.clone();
    f.call("GET", "/projects/team%2Fapp/deployments", Some(&tok), None)
        .await
        .assert(200, "[]");
    f.call("GET", "/projects/1/deployments", Some(&tok), None)
        .await
        .assert(200, "[]");
    // Un-encoded slash: the route does not match.
    f.call("GET", "/projects/team/app/deployments", Some(&tok), None)
        .await
        .assert(404, NOT_FOUND_ROUTE);
    // Unknown project, invisible project.
    f.call("GET", "/projects/999/deployments", Some(&tok), None)
        .await
        .assert(404, PROJECT_NOT_FOUND);
    f.call("GET", "/projects/1/deployments", Some(&f.outsider), None)
        .await
        .assert(404, PROJECT_NOT_FOUND);
    // No PATCH route: catch-all.
    f.call("PATCH", "/projects/1/deployments/1", Some(&tok), None)
        .await
        .assert(404, NOT_FOUND_ROUTE);
    f.call("GET", "/projects/1/nothing", Some(&tok), None)
        .await
        .assert(404, NOT_FOUND_ROUTE);
}

// ---- §2 authentication and roles -----------------------------------------------------------

#[tokio::test]
async fn s2_credentials_in_every_accepted_place() {
    let f = fx();
    let path = f.deployments();
    f.call("GET", &path, None, None)
        .await
        .assert(401, UNAUTHORIZED);
    f.call("GET", &path, Some("garbage"), None)
        .await
        .assert(401, UNAUTHORIZED);
    let bearer = f.client.get(f.url(&path)).bearer_auth(&f.tok);
    assert_eq!(send(bearer).await.status, 200);
    let q = f
        .client
        .get(f.url(&format!("{path}?private_token={}", f.tok)));
    assert_eq!(send(q).await.status, 200);
    let uid = f.h.user_id("dev").unwrap();
    f.h.add_oauth_token(uid, "oauth-dev");
    let o = f
        .client
        .get(f.url(&format!("{path}?access_token=oauth-dev")));
    assert_eq!(send(o).await.status, 200);
    // Job tokens: own project fine, another project is invisible.
    f.h.add_job_token("job-1", f.p.id, uid);
    let j = f.client.get(f.url(&path)).header("JOB-TOKEN", "job-1");
    assert_eq!(send(j).await.status, 200);
    let other = f.h.add_project(ProjectSpec::new("other/x"));
    f.h.add_member(other, uid, Role::Developer);
    let j = f
        .client
        .get(f.url(&format!("/projects/{other}/deployments?job_token=job-1")));
    send(j).await.assert(404, PROJECT_NOT_FOUND);
    // The request log never shows credentials.
    assert!(f.h.requests().iter().all(|r| !r.path.contains("token")));
}

#[tokio::test]
async fn s2_expired_revoked_and_scopes() {
    let f = fx();
    let path = f.deployments();
    let uid = f.h.user_id("dev").unwrap();
    f.h.add_personal_access_token(uid, "old", &[Scope::Api]);
    f.h.set_token_expired("old", true);
    let r = f.call("GET", &path, Some("old"), None).await;
    r.assert(401, r#"{"error":"invalid_token","error_description":"Token is expired. You can either do re-authorization or token refresh."}"#);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    f.h.add_personal_access_token(uid, "gone", &[Scope::Api]);
    f.h.set_token_revoked("gone", true);
    f.call("GET", &path, Some("gone"), None).await.assert(
        401,
        r#"{"error":"invalid_token","error_description":"Token was revoked. You have to re-authorize from the user."}"#,
    );
    f.h.add_personal_access_token(uid, "ro", &[Scope::ReadApi]);
    assert_eq!(f.call("GET", &path, Some("ro"), None).await.status, 200);
    // Scope is checked before parameters: an empty body still gets 403.
    f.call("POST", &path, Some("ro"), Some("")).await.assert(
        403,
        r#"{"error":"insufficient_scope","error_description":"The request requires higher privileges than provided by the access token.","scope":"api"}"#,
    );
    // Authentication runs before parameter validation.
    f.call("POST", &path, None, Some(""))
        .await
        .assert(401, UNAUTHORIZED);
}

#[tokio::test]
async fn s2_roles_per_endpoint() {
    let f = fx();
    let path = f.deployments();
    let sha = f.p.head().to_string();
    let body = format!("environment=staging&sha={sha}&ref=main&tag=false&status=running");
    // Guest sees the project but may not read deployments; Reporter reads but cannot create.
    f.call("GET", &path, Some(&f.guest), None)
        .await
        .assert(403, FORBIDDEN);
    assert_eq!(
        f.call("GET", &path, Some(&f.reporter), None).await.status,
        200
    );
    f.call("POST", &path, Some(&f.reporter), Some(&body))
        .await
        .assert(403, FORBIDDEN);
    let r = f.call("POST", &path, Some(&f.dev), Some(&body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json()["id"].as_u64().unwrap();
    let one = format!("{path}/{id}");
    assert_eq!(
        f.call("PUT", &one, Some(&f.dev), Some("status=failed"))
            .await
            .status,
        200
    );
    // Developer DELETE → 403; Maintainer may.
    f.call("DELETE", &one, Some(&f.dev), None)
        .await
        .assert(403, FORBIDDEN);
    assert_eq!(f.call("DELETE", &one, Some(&f.tok), None).await.status, 204);
    // Admins pass every check without membership.
    let admin = f.h.add_user("admin", "Admin", true);
    f.h.add_personal_access_token(admin, "admin-tok", &[Scope::Api]);
    assert_eq!(
        f.call("GET", &path, Some("admin-tok"), None).await.status,
        200
    );
    // Environments feature off: every route is 403 although the project is visible.
    f.h.set_environments_enabled(f.p.id, false);
    f.call("GET", &path, Some(&f.tok), None)
        .await
        .assert(403, FORBIDDEN);
    f.call("POST", &path, Some(&f.tok), Some(&body))
        .await
        .assert(403, FORBIDDEN);
}

// ---- §3.1 list -----------------------------------------------------------------------------

#[tokio::test]
async fn s3_1_parameter_errors_are_joined_in_declaration_order() {
    let f = fx();
    let p = f.deployments();
    let e = |m: &str| format!(r#"{{"error":"{m}"}}"#);
    f.get(&format!("{p}?page=abc"))
        .await
        .assert(400, &e("page is invalid"));
    f.get(&format!("{p}?per_page=0"))
        .await
        .assert(400, &e("per_page has a value not allowed"));
    f.get(&format!("{p}?order_by=ref"))
        .await
        .assert(400, &e("order_by does not have a valid value"));
    f.get(&format!("{p}?sort=DESC"))
        .await
        .assert(400, &e("sort does not have a valid value"));
    f.get(&format!("{p}?status=bogus"))
        .await
        .assert(400, &e("status does not have a valid value"));
    f.get(&format!("{p}?status[]=success&status[]=failed"))
        .await
        .assert(400, &e("status is invalid"));
    f.get(&format!("{p}?updated_after=yesterday"))
        .await
        .assert(400, &e("updated_after is invalid"));
    f.get(&format!("{p}?status=nope&page=x&sort=up")).await.assert(
        400,
        &e("page is invalid, sort does not have a valid value, status does not have a valid value"),
    );
    // `skipped` and `blocked` are valid filters.
    f.get(&format!("{p}?status=skipped"))
        .await
        .assert(200, "[]");
}

#[tokio::test]
async fn s3_1_finder_rules_f1_to_f5() {
    let f = fx();
    let p = f.deployments();
    let bad = |t: &str| format!(r#"{{"message":"400 Bad request - {t}"}}"#);
    let t = "2019-03-15T08:00:00Z";
    f.get(&format!(
        "{p}?updated_after={t}&finished_after={t}&order_by=updated_at"
    ))
    .await
    .assert(
        400,
        &bad("Both `updated_at` filter and `finished_at` filter can not be specified"),
    );
    f.get(&format!("{p}?updated_after={t}"))
        .await
        .assert(400, &bad("`updated_at` filter requires `updated_at` sort"));
    f.get(&format!("{p}?finished_after={t}&status=success"))
        .await
        .assert(
            400,
            &bad("`finished_at` filter requires `finished_at` sort."),
        );
    f.get(&format!("{p}?order_by=finished_at")).await.assert(
        400,
        &bad("`finished_at` sort requires `finished_at` filter or a filter with at least one of the finished statuses."),
    );
    f.get(&format!("{p}?finished_after={t}&order_by=finished_at"))
        .await
        .assert(
            400,
            &bad("`finished_at` filter must be combined with `success` status filter."),
        );
    // Valid combinations.
    f.get(&format!(
        "{p}?finished_after={t}&order_by=finished_at&status=success"
    ))
    .await
    .assert(200, "[]");
    f.get(&format!("{p}?order_by=finished_at&status=failed"))
        .await
        .assert(200, "[]");
    f.get(&format!("{p}?updated_before={t}&order_by=updated_at"))
        .await
        .assert(200, "[]");
    // Finder rules come after the project lookup and permission check.
    f.call(
        "GET",
        &format!("{p}?updated_after={t}"),
        Some(&f.guest.clone()),
        None,
    )
    .await
    .assert(403, FORBIDDEN);
}

#[tokio::test]
async fn s3_1_filters_ordering_and_plain_entity() {
    let f = fx();
    let sha = f.p.head().to_string();
    f.h.set_now(Utc.with_ymd_and_hms(2024, 5, 2, 10, 0, 0).unwrap());
    let a = f.create("staging", &sha, "running").await;
    f.h.advance_clock(chrono::Duration::seconds(10));
    let b = f.create("production", &sha, "success").await;
    f.h.advance_clock(chrono::Duration::seconds(10));
    let c = f.create("staging", &sha, "failed").await;
    f.h.advance_clock(chrono::Duration::seconds(10));
    assert_eq!(f.put_status(a, "success").await.status, 200);
    let ids = |v: Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    let p = f.deployments();
    assert_eq!(ids(f.get(&p).await.json()), vec![a, b, c]);
    assert_eq!(
        ids(f.get(&format!("{p}?sort=desc")).await.json()),
        vec![c, b, a]
    );
    assert_eq!(
        ids(f.get(&format!("{p}?environment=staging")).await.json()),
        vec![a, c]
    );
    assert_eq!(
        ids(f.get(&format!("{p}?environment=nope")).await.json()),
        Vec::<u64>::new()
    );
    assert_eq!(
        ids(f.get(&format!("{p}?status=success")).await.json()),
        vec![a, b]
    );
    assert_eq!(
        ids(f
            .get(&format!("{p}?order_by=updated_at&sort=desc"))
            .await
            .json()),
        vec![a, c, b]
    );
    assert_eq!(
        ids(f
            .get(&format!(
                "{p}?order_by=updated_at&updated_after=2024-05-02T10:00:15Z"
            ))
            .await
            .json()),
        vec![c, a]
    );
    assert_eq!(
        ids(f
            .get(&format!(
                "{p}?order_by=finished_at&status=success&finished_before=2024-05-02T10:00:30Z"
            ))
            .await
            .json()),
        vec![b]
    );
    // Lists use the plain entity: no approval fields; exact key order and timestamp format.
    let r = f.get(&format!("{p}?environment=production")).await;
    let expected_prefix = format!(
        r#"[{{"id":{b},"iid":2,"ref":"main","sha":"{sha}","created_at":"2024-05-02T10:00:10.000Z","updated_at":"2024-05-02T10:00:10.000Z","user":{{"id":"#
    );
    assert!(r.text.starts_with(&expected_prefix), "{}", r.text);
    assert!(
        r.text
            .ends_with(r#""deployable":null,"status":"success"}]"#),
        "{}",
        r.text
    );
    let keys: Vec<String> = match &r.json()[0] {
        Value::Object(_) => {
            let v: serde_json::Map<String, Value> =
                serde_json::from_str(&r.text[1..r.text.len() - 1]).unwrap();
            v.keys().cloned().collect()
        }
        _ => panic!(),
    };
    assert_eq!(keys.len(), 10);
    assert!(!r.text.contains("pending_approval_count"));
}

// ---- §6 pagination -------------------------------------------------------------------------

#[tokio::test]
async fn s6_pagination_headers_and_link() {
    let f = fx();
    let sha = f.p.head().to_string();
    for _ in 0..5 {
        f.create("staging", &sha, "running").await;
    }
    let base = f.gl.base_url();
    let r = f
        .get(&format!("{}?per_page=2&page=2", f.deployments()))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    let h = |k: &str| r.header(k).unwrap();
    assert_eq!(
        (
            h("x-page"),
            h("x-per-page"),
            h("x-next-page"),
            h("x-prev-page"),
            h("x-total"),
            h("x-total-pages")
        ),
        (
            "2".into(),
            "2".into(),
            "3".into(),
            "1".into(),
            "5".into(),
            "3".into()
        )
    );
    let link = |page: u32, rel: &str| {
        format!(
            "<{base}/api/v4/projects/1/deployments?id=1&order_by=id&page={page}&per_page=2&sort=asc>; rel=\"{rel}\""
        )
    };
    assert_eq!(
        h("link"),
        [
            link(1, "prev"),
            link(3, "next"),
            link(1, "first"),
            link(3, "last")
        ]
        .join(", ")
    );
    // Last page: empty next; beyond the end: [] with both neighbours empty.
    let r = f
        .get(&format!("{}?per_page=2&page=3", f.deployments()))
        .await;
    assert_eq!(
        (
            r.header("x-next-page").unwrap(),
            r.header("x-prev-page").unwrap()
        ),
        ("".into(), "2".into())
    );
    let r = f
        .get(&format!("{}?per_page=2&page=9", f.deployments()))
        .await;
    assert_eq!(r.text, "[]");
    assert_eq!(
        (
            r.header("x-next-page").unwrap(),
            r.header("x-prev-page").unwrap()
        ),
        ("".into(), "".into())
    );
    assert_eq!(r.header("x-total").unwrap(), "5");
    // Clamping and defaults.
    let r = f
        .get(&format!("{}?per_page=1000&page=0", f.deployments()))
        .await;
    assert_eq!(
        (r.header("x-per-page").unwrap(), r.header("x-page").unwrap()),
        ("100".into(), "1".into())
    );
    let r = f.get(&f.deployments()).await;
    assert_eq!(r.header("x-per-page").unwrap(), "20");
}

// ---- §3.2 get one --------------------------------------------------------------------------

#[tokio::test]
async fn s3_2_get_one() {
    let f = fx();
    let id = f.create("staging", f.p.head(), "running").await;
    let p = f.deployments();
    f.get(&format!("{p}/abc"))
        .await
        .assert(400, r#"{"error":"deployment_id is invalid"}"#);
    f.get(&format!("{p}/1.5"))
        .await
        .assert(400, r#"{"error":"deployment_id is invalid"}"#);
    f.get(&format!("{p}/999")).await.assert(404, NOT_FOUND);
    let r = f.get(&format!("{p}/{id}")).await;
    assert_eq!(r.status, 200);
    assert!(r.text.ends_with(r#""status":"running","pending_approval_count":0,"approvals":[],"approval_summary":{"rules":[]}}"#), "{}", r.text);
    // A deployment of another project is not found through this project.
    let other = f.h.seed_project("other/y", "main", 1);
    let r = f
        .call(
            "GET",
            &format!("/projects/{}/deployments/{id}", other.id),
            Some(&other.maintainer_token),
            None,
        )
        .await;
    r.assert(404, NOT_FOUND);
    // Order: 401 → 400 → project 404 → 403 → lookup.
    f.call("GET", &format!("{p}/abc"), None, None)
        .await
        .assert(401, UNAUTHORIZED);
    f.call("GET", "/projects/999/deployments/abc", Some(&f.tok), None)
        .await
        .assert(400, r#"{"error":"deployment_id is invalid"}"#);
    f.call("GET", &format!("{p}/999"), Some(&f.guest), None)
        .await
        .assert(403, FORBIDDEN);
    // CE: plain entity everywhere.
    f.h.set_edition(Edition::Ce);
    let r = f.get(&format!("{p}/{id}")).await;
    assert!(
        r.text.ends_with(r#""deployable":null,"status":"running"}"#),
        "{}",
        r.text
    );
}

// ---- §3.3 create ---------------------------------------------------------------------------

#[tokio::test]
async fn s3_3_create_parameter_errors() {
    let f = fx();
    let p = f.deployments();
    let tok = f.tok.clone();
    let post = |body: &'static str| f.call("POST", &p, Some(&tok), Some(body));
    post("").await.assert(400, r#"{"error":"environment is missing, environment is empty, sha is missing, sha is empty, ref is missing, ref is empty, tag is missing, status is missing, status does not have a valid value"}"#);
    let sha = f.p.head().to_string();
    let ok = |extra: &str| format!("sha={sha}&ref=main&tag=false&status=running&{extra}");
    f.call("POST", &p, Some(&tok), Some(&ok("environment=")))
        .await
        .assert(400, r#"{"error":"environment is empty"}"#);
    f.call("POST", &p, Some(&tok), Some(&ok("environment=%20%20")))
        .await
        .assert(400, r#"{"error":"environment is empty"}"#);
    let body = format!("environment=x&sha={sha}&ref=main&tag=false&status=");
    f.call("POST", &p, Some(&tok), Some(&body))
        .await
        .assert(400, r#"{"error":"status does not have a valid value"}"#);
    for bad in ["created", "skipped", "blocked", "SUCCESS"] {
        let body = format!("environment=x&sha={sha}&ref=main&tag=false&status={bad}");
        f.call("POST", &p, Some(&tok), Some(&body))
            .await
            .assert(400, r#"{"error":"status does not have a valid value"}"#);
    }
    let body = format!("environment=x&sha={sha}&ref=main&tag=maybe&status=running");
    f.call("POST", &p, Some(&tok), Some(&body))
        .await
        .assert(400, r#"{"error":"tag is invalid"}"#);
    f.call(
        "POST",
        &p,
        Some(&tok),
        Some("environment=x&tag=1&status=running"),
    )
    .await
    .assert(
        400,
        r#"{"error":"sha is missing, sha is empty, ref is missing, ref is empty"}"#,
    );
    // Parameters in the query string are honoured on POST too.
    let q = format!("{p}?environment=q&sha={sha}&ref=main&tag=true&status=running");
    assert_eq!(f.call("POST", &q, Some(&tok), None).await.status, 201);
    // Invalid JSON body.
    let r = send(
        f.client
            .post(f.url(&p))
            .header("PRIVATE-TOKEN", &tok)
            .header("content-type", "application/json")
            .body("{nope"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].is_string());
}

#[tokio::test]
async fn s3_3_create_model_errors_in_order() {
    let f = fx();
    let p = f.deployments();
    let tok = f.tok.clone();
    let sha = f.p.head().to_string();
    let body = |env: &str, sha: &str, r: &str| {
        format!("environment={env}&sha={sha}&ref={r}&tag=false&status=running")
    };
    f.call(
        "POST",
        &p,
        Some(&tok),
        Some(&body("x", "deadbeefdeadbeef", "nope")),
    )
    .await
    .assert(400, r#"{"message":{"sha":["The commit does not exist"]}}"#);
    f.call("POST", &p, Some(&tok), Some(&body("x", &sha, "nope")))
        .await
        .assert(
            400,
            r#"{"message":{"ref":["The branch or tag does not exist"]}}"#,
        );
    f.call("POST", &p, Some(&tok), Some(&body("%2Fbad", &sha, "main"))).await.assert(
        400,
        r#"{"message":{"name":["can contain only letters, digits, '-', '_', '/', '$', '{', '}', '.', and spaces, but it cannot start or end with '/'"]}}"#,
    );
    let long = format!("{}*", "a".repeat(256));
    let r = f
        .call("POST", &p, Some(&tok), Some(&body(&long, &sha, "main")))
        .await;
    assert_eq!(
        r.json()["message"]["name"][0],
        "is too long (maximum is 255 characters)"
    );
    assert_eq!(r.json()["message"]["name"].as_array().unwrap().len(), 2);
    // The project check comes before the model checks.
    f.call(
        "POST",
        "/projects/404/deployments",
        Some(&tok),
        Some(&body("x", "nope", "nope")),
    )
    .await
    .assert(404, PROJECT_NOT_FOUND);
    // Abbreviated sha, branch name as sha, tag as ref, sha as ref: all resolve; stored as sent.
    f.h.set_tag(f.p.id, "v1", &f.p.shas[0]);
    for (s, r) in [
        (&sha[..8], "main"),
        ("main", "v1"),
        (sha.as_str(), sha.as_str()),
    ] {
        let resp = f.call("POST", &p, Some(&tok), Some(&body("x", s, r))).await;
        assert_eq!(resp.status, 201, "{}", resp.text);
        assert_eq!(
            (
                resp.json()["sha"].as_str().unwrap(),
                resp.json()["ref"].as_str().unwrap()
            ),
            (s, r)
        );
    }
}

#[tokio::test]
async fn s3_3_create_json_body_iids_duplicates_and_entity() {
    let f = fx();
    let p = f.deployments();
    let sha = f.p.head().to_string();
    f.h.set_now(
        Utc.with_ymd_and_hms(2024, 5, 2, 10, 15, 30).unwrap() + chrono::Duration::milliseconds(123),
    );
    let body = json!({"environment": "production", "sha": sha, "ref": "main", "tag": false, "status": "success"});
    let r = f.json("POST", &p, &f.tok, body.clone()).await;
    assert_eq!(r.status, 201);
    let d = r.json();
    assert_eq!(
        (d["iid"].as_u64(), d["status"].as_str()),
        (Some(1), Some("success"))
    );
    assert_eq!(d["created_at"], "2024-05-02T10:15:30.123Z");
    assert_eq!(d["environment"]["slug"], "production");
    assert_eq!(d["environment"]["external_url"], Value::Null);
    assert_eq!(d["user"]["username"], "team-app-maintainer");
    let keys = [
        "id",
        "iid",
        "ref",
        "sha",
        "created_at",
        "updated_at",
        "user",
        "environment",
        "deployable",
        "status",
        "pending_approval_count",
        "approvals",
        "approval_summary",
    ];
    let mut pos = 0;
    for k in keys {
        let at = r.text[pos..]
            .find(&format!("\"{k}\":"))
            .unwrap_or_else(|| panic!("{k} out of order: {}", r.text));
        pos += at;
    }
    // Duplicate: same ref/tag/sha and status success → the same deployment, 201.
    let again = f.json("POST", &p, &f.tok, body.clone()).await;
    assert_eq!(
        (again.status, again.json()["id"].clone()),
        (201, d["id"].clone())
    );
    // Different tag → a new deployment with the next iid.
    let mut b2 = body.clone();
    b2["tag"] = json!(true);
    let r2 = f.json("POST", &p, &f.tok, b2).await;
    assert_eq!(r2.json()["iid"], 2);
    // running with the same sha is never a duplicate.
    let mut b3 = body;
    b3["status"] = json!("running");
    let r3 = f.json("POST", &p, &f.tok, b3).await;
    assert_eq!(r3.json()["iid"], 3);
    assert_eq!(f.h.deployments().len(), 3);
    // Folder-style names get a suffixed slug.
    let r = f
        .call(
            "POST",
            &p,
            Some(&f.tok),
            Some(&format!(
                "environment=review/feature-1&sha={sha}&ref=main&tag=0&status=running"
            )),
        )
        .await;
    let slug = r.json()["environment"]["slug"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        slug.starts_with("review-feature-1-") && slug.len() == 23,
        "{slug}"
    );
}

// ---- §3.4 update and §5 state machine ------------------------------------------------------

#[tokio::test]
async fn s3_4_put_matrix_and_errors() {
    let f = fx();
    let sha = f.p.head().to_string();
    let from_to = [
        ("running", "running", Some("run")),
        ("running", "success", None),
        ("success", "running", Some("run")),
        ("success", "success", Some("succeed")),
        ("success", "failed", None),
        ("failed", "success", None),
        ("failed", "failed", Some("drop")),
        ("canceled", "canceled", Some("cancel")),
        ("canceled", "success", None),
        ("running", "canceled", None),
    ];
    for (from, to, err) in from_to {
        let id = f.create(&format!("env-{from}-{to}"), &sha, from).await;
        let r = f.put_status(id, to).await;
        match err {
            Some(ev) => r.assert(
                400,
                &format!(r#"{{"message":{{"status":["cannot transition via \"{ev}\""]}}}}"#),
            ),
            None => {
                assert_eq!(r.status, 200, "{from}->{to}: {}", r.text);
                assert_eq!(r.json()["status"], to);
            }
        }
    }
    let p = f.deployments();
    let id = f.create("x", &sha, "running").await;
    let one = format!("{p}/{id}");
    f.call("PUT", &one, Some(&f.tok), None).await.assert(
        400,
        r#"{"error":"status is missing, status does not have a valid value"}"#,
    );
    f.call("PUT", &one, Some(&f.tok), Some("status=blocked"))
        .await
        .assert(400, r#"{"error":"status does not have a valid value"}"#);
    f.call(
        "PUT",
        &format!("{p}/abc"),
        Some(&f.tok),
        Some("status=success"),
    )
    .await
    .assert(404, NOT_FOUND);
    f.call(
        "PUT",
        &format!("{p}/999"),
        Some(&f.tok),
        Some("status=success"),
    )
    .await
    .assert(404, NOT_FOUND);
    f.call("PUT", &one, Some(&f.reporter), Some("status=success"))
        .await
        .assert(403, FORBIDDEN);
    // Look-up comes before authorization on PUT: a Guest gets 404 for a missing id.
    f.call(
        "PUT",
        &format!("{p}/999"),
        Some(&f.guest),
        Some("status=success"),
    )
    .await
    .assert(404, NOT_FOUND);
    // CI-created deployments cannot be updated.
    let uid = f.h.user_id("dev").unwrap();
    let (ci, _) = f.h.add_ci_deployment(CiDeploymentSpec {
        project_id: f.p.id,
        environment: "production".into(),
        sha: sha.clone(),
        ref_: "main".into(),
        tag: false,
        status: DeploymentStatus::Blocked,
        user_id: uid,
        deployable: None,
    });
    f.call("PUT", &format!("{p}/{ci}"), Some(&f.tok), Some("status=running")).await.assert(
        403,
        r#"{"message":"403 Forbidden - Deployments created using GitLab CI can not be updated using the API"}"#,
    );
    let r = f.get(&format!("{p}/{ci}")).await;
    assert_eq!(
        (
            r.json()["status"].as_str(),
            r.json()["deployable"]["id"].is_u64()
        ),
        (Some("blocked"), true)
    );
    // updated_at moves on every change.
    f.h.advance_clock(chrono::Duration::seconds(5));
    let before = f.get(&one).await.json()["updated_at"].clone();
    let after = f.put_status(id, "success").await.json()["updated_at"].clone();
    assert_ne!(before, after);
}

// ---- §3.5 delete ---------------------------------------------------------------------------

#[tokio::test]
async fn s3_5_delete_rules() {
    let f = fx();
    let p = f.deployments();
    let sha = f.p.head().to_string();
    let running = f.create("prod", &sha, "running").await;
    let tok = f.tok.clone();
    f.call("DELETE", &format!("{p}/abc"), Some(&tok), None)
        .await
        .assert(400, r#"{"error":"deployment_id is invalid"}"#);
    f.call("DELETE", &format!("{p}/999"), Some(&tok), None)
        .await
        .assert(404, NOT_FOUND);
    f.call("DELETE", &format!("{p}/{running}"), Some(&tok), None)
        .await
        .assert(400, r#"{"message":"Cannot destroy running deployment"}"#);
    assert_eq!(f.put_status(running, "success").await.status, 200);
    f.call("DELETE", &format!("{p}/{running}"), Some(&tok), None)
        .await
        .assert(
            400,
            r#"{"message":"Deployment currently deployed to environment"}"#,
        );
    let newer = f.create("prod", &f.p.shas[0], "success").await;
    // If-Unmodified-Since older than updated_at → 412 (checked before the business rules).
    let r = send(
        f.client
            .delete(f.url(&format!("{p}/{running}")))
            .header("PRIVATE-TOKEN", &tok)
            .header("If-Unmodified-Since", "Wed, 21 Oct 2015 07:28:00 GMT"),
    )
    .await;
    r.assert(412, r#"{"message":"412 Precondition Failed"}"#);
    let r = f
        .call("DELETE", &format!("{p}/{running}"), Some(&tok), None)
        .await;
    assert_eq!((r.status, r.text.as_str()), (204, ""));
    f.get(&format!("{p}/{running}"))
        .await
        .assert(404, NOT_FOUND);
    // The iid is never reused.
    let next = f.create("prod", &sha, "running").await;
    assert_eq!(f.get(&format!("{p}/{next}")).await.json()["iid"], 3);
    assert!(newer < next);
}

// ---- §3.6 and §10 merge requests ---------------------------------------------------------

#[tokio::test]
async fn s3_6_merge_request_linkage() {
    let f = fx();
    let h = &f.h;
    let author = f.p.maintainer_id;
    let first = f.p.head().to_string();
    let (_, mr1) = h.add_merge_request(
        f.p.id,
        MergeRequestSpec::merged("First", author, "main", &f.p.shas[2]),
    );
    let (_, mr_other) = h.add_merge_request(
        f.p.id,
        MergeRequestSpec::merged("Other", author, "develop", &f.p.shas[1]),
    );
    // First success in the environment: all merged MRs targeting the ref.
    let d1 = f.create("production", &first, "success").await;
    let p = f.deployments();
    let r = f.get(&format!("{p}/{d1}/merge_requests")).await;
    assert_eq!(r.status, 200);
    let iids: Vec<u64> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["iid"].as_u64().unwrap())
        .collect();
    assert_eq!(iids, vec![mr1]);
    assert_ne!(mr1, mr_other);
    assert_eq!(r.json()[0]["reference"], format!("!{mr1}"));
    assert_eq!(r.json()[0]["state"], "merged");
    assert_eq!(r.header("x-total").unwrap(), "1");
    // Next success: MRs whose merge commit is in prev..this.
    let new = h.push_commits(f.p.id, "main", 2);
    let (_, mr2) = h.add_merge_request(
        f.p.id,
        MergeRequestSpec::merged("Second", author, "main", &new[0]),
    );
    let d2 = f.create("production", &new[1], "success").await;
    let r = f.get(&format!("{p}/{d2}/merge_requests")).await;
    let iids: Vec<u64> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["iid"].as_u64().unwrap())
        .collect();
    assert_eq!(iids, vec![mr2]);
    // Running/failed deployments link nothing; unknown ids are just empty.
    let d3 = f.create("production", &new[1], "failed").await;
    f.get(&format!("{p}/{d3}/merge_requests"))
        .await
        .assert(200, "[]");
    f.get(&format!("{p}/424242/merge_requests"))
        .await
        .assert(200, "[]");
    f.get(&format!("{p}/x/merge_requests"))
        .await
        .assert(400, r#"{"error":"deployment_id is invalid"}"#);
    f.get(&format!("{p}/{d1}/merge_requests?state=opened"))
        .await
        .assert(200, "[]");
    f.get(&format!("{p}/{d1}/merge_requests?state=nope"))
        .await
        .assert(400, r#"{"error":"state does not have a valid value"}"#);
    assert_eq!(h.deployment(d1).unwrap().merge_request_iids, vec![mr1]);
}

// ---- §3.7 and §9 approvals ---------------------------------------------------------------

struct Approvals {
    f: Fx,
    qa: String,
    sec1: String,
    sec2: String,
    rules: Vec<u64>,
}

fn approvals_fixture() -> Approvals {
    let f = fx();
    let h = &f.h;
    let mk = |name: &str| {
        let (id, tok) = h.add_user_with_token(name);
        h.add_member(f.p.id, id, Role::Developer);
        (id, tok)
    };
    let (qa_id, qa) = mk("qa-user");
    let (s1, sec1) = mk("security-user-1");
    let (s2, sec2) = mk("security-user-2");
    let qa_group = h.add_group("qa-group", "qa-group", None);
    h.add_group_member(qa_group, qa_id, Role::Developer);
    let parent = h.add_group("security", "security", None);
    let sec_group = h.add_group("security-group", "security-group", Some(parent));
    h.add_group_member(sec_group, s1, Role::Developer);
    h.add_group_member(parent, s2, Role::Developer);
    let rules = h.protect_environment(
        f.p.id,
        "production",
        vec![DeployAccess::Role(Role::Maintainer)],
        vec![
            ApprovalRuleSpec::Group {
                group_id: qa_group,
                inherited: false,
                required_approvals: 1,
            },
            // Inherited: security-user-2 is a member of the parent group only.
            ApprovalRuleSpec::Group {
                group_id: sec_group,
                inherited: true,
                required_approvals: 2,
            },
        ],
    );
    Approvals {
        f,
        qa,
        sec1,
        sec2,
        rules,
    }
}

#[tokio::test]
async fn s9_approval_flow_counts_and_summary() {
    let a = approvals_fixture();
    let f = &a.f;
    let id = f.create("production", f.p.head(), "running").await;
    let p = format!("{}/{id}", f.deployments());
    let ap = format!("{p}/approval");
    let d = f.get(&p).await.json();
    assert_eq!(d["pending_approval_count"], 3);
    assert_eq!(
        d["approval_summary"]["rules"][0]["access_level_description"],
        "qa-group"
    );
    assert_eq!(
        d["approval_summary"]["rules"][1]["group_inheritance_type"],
        1
    );
    let r = f
        .call(
            "POST",
            &ap,
            Some(&a.sec1),
            Some("status=approved&comment=LGTM"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.text.starts_with(r#"{"user":{"id":"#));
    let created = r.json()["created_at"].as_str().unwrap().to_string();
    assert!(
        r.text.ends_with(&format!(
            r#""status":"approved","created_at":"{created}","comment":"LGTM"}}"#
        )),
        "{}",
        r.text
    );
    assert_eq!(f.get(&p).await.json()["pending_approval_count"], 2);
    // Same status again: unchanged (comment kept), still 201.
    let again = f
        .call(
            "POST",
            &ap,
            Some(&a.sec1),
            Some("status=approved&comment=changed"),
        )
        .await;
    assert_eq!(
        (again.status, again.json()["comment"].as_str()),
        (201, Some("LGTM"))
    );
    let r = f
        .call("POST", &ap, Some(&a.sec2), Some("status=approved"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let d = f.get(&p).await.json();
    assert_eq!(d["pending_approval_count"], 1);
    assert_eq!(
        d["approval_summary"]["rules"][1]["deployment_approvals"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(d["approvals"].as_array().unwrap().len(), 2);
    // A rejection is recorded but does not change the count; the status is untouched.
    let r = f
        .call("POST", &ap, Some(&a.qa), Some("status=rejected&comment=no"))
        .await;
    assert_eq!(r.status, 201);
    let d = f.get(&p).await.json();
    assert_eq!(
        (d["pending_approval_count"].as_u64(), d["status"].as_str()),
        (Some(1), Some("running"))
    );
    // Changing one's mind replaces status and comment.
    let r = f
        .call(
            "POST",
            &ap,
            Some(&a.qa),
            Some("status=approved&comment=ok now"),
        )
        .await;
    assert_eq!(
        (r.json()["status"].as_str(), r.json()["comment"].as_str()),
        (Some("approved"), Some("ok now"))
    );
    let d = f.get(&p).await.json();
    assert_eq!(d["pending_approval_count"], 0);
    // Nothing pending any more: A5.
    f.call("POST", &ap, Some(&a.sec1), Some("status=rejected"))
        .await
        .assert(
            400,
            r#"{"message":"This deployment is not waiting for approvals."}"#,
        );
    assert_eq!(a.rules.len(), 2);
}

#[tokio::test]
async fn s9_approval_validation_order() {
    let a = approvals_fixture();
    let f = &a.f;
    let sha = f.p.head().to_string();
    let dp = f.deployments();
    let id = f.create("production", &sha, "running").await;
    let ap = format!("{dp}/{id}/approval");
    let tok = f.tok.clone();
    // Grape errors.
    f.call("POST", &ap, Some(&tok), None).await.assert(
        400,
        r#"{"error":"status is missing, status does not have a valid value"}"#,
    );
    f.call("POST", &ap, Some(&tok), Some("status=maybe"))
        .await
        .assert(400, r#"{"error":"status does not have a valid value"}"#);
    f.call(
        "POST",
        &format!("{dp}/x/approval"),
        Some(&tok),
        Some("status=approved"),
    )
    .await
    .assert(400, r#"{"error":"deployment_id is invalid"}"#);
    f.call(
        "POST",
        &format!("{dp}/999/approval"),
        Some(&tok),
        Some("status=approved"),
    )
    .await
    .assert(404, NOT_FOUND);
    f.call("POST", &ap, Some(&f.guest), Some("status=approved"))
        .await
        .assert(403, FORBIDDEN);
    // A3: own deployment.
    f.call("POST", &ap, Some(&tok), Some("status=approved")).await.assert(
        400,
        r#"{"message":"You cannot approve your own deployment. This configuration can be adjusted in the protected environment settings."}"#,
    );
    // A6: no matching rule (dev is not in the groups).
    f.call("POST", &ap, Some(&f.dev), Some("status=approved")).await.assert(
        400,
        r#"{"message":"You don't have permission to approve this deployment. Contact the project or group owner for help."}"#,
    );
    // A7: represented_as matches no rule of the caller.
    f.call("POST", &ap, Some(&a.sec1), Some("status=approved&represented_as=qa")).await.assert(
        400,
        r#"{"message":"There are no approval rules for the given `represent_as` parameter. Use a valid User/Group/Role name instead."}"#,
    );
    assert_eq!(
        f.call(
            "POST",
            &ap,
            Some(&a.sec1),
            Some("status=approved&represented_as=security")
        )
        .await
        .status,
        201
    );
    // With the project setting the creator may approve (admins match every rule, too).
    f.h.set_allow_pipeline_trigger_approve_deployment(f.p.id, true);
    let maint = f.p.maintainer_id;
    f.h.protect_environment(
        f.p.id,
        "production",
        vec![DeployAccess::Role(Role::Maintainer)],
        vec![ApprovalRuleSpec::User {
            user_id: maint,
            required_approvals: 1,
        }],
    );
    let id2 = f.create("production", &f.p.shas[0], "running").await;
    assert_eq!(
        f.call(
            "POST",
            &format!("{dp}/{id2}/approval"),
            Some(&tok),
            Some("status=approved")
        )
        .await
        .status,
        201
    );
    // A2: unprotected environment; A4: protected without rules.
    let plain = f.create("staging", &sha, "running").await;
    f.call(
        "POST",
        &format!("{dp}/{plain}/approval"),
        Some(&tok),
        Some("status=approved"),
    )
    .await
    .assert(400, r#"{"message":"This environment is not protected."}"#);
    f.h.protect_environment(
        f.p.id,
        "staging",
        vec![DeployAccess::Role(Role::Developer)],
        vec![],
    );
    f.call(
        "POST",
        &format!("{dp}/{plain}/approval"),
        Some(&f.dev),
        Some("status=approved"),
    )
    .await
    .assert(
        400,
        r#"{"message":"Deployment approvals is not configured for this environment."}"#,
    );
    // Without a license nothing is protected; on CE the route does not exist.
    f.h.set_licensed(false);
    f.call("POST", &ap, Some(&a.sec2), Some("status=approved"))
        .await
        .assert(400, r#"{"message":"This environment is not protected."}"#);
    assert_eq!(
        f.get(&format!("{dp}/{id}")).await.json()["pending_approval_count"],
        0
    );
    f.h.set_edition(Edition::Ce);
    f.call("POST", &ap, Some(&a.sec2), Some("status=approved"))
        .await
        .assert(404, NOT_FOUND_ROUTE);
}

#[tokio::test]
async fn s9_protected_environment_deploy_access() {
    let a = approvals_fixture();
    let f = &a.f;
    let sha = f.p.head().to_string();
    let dp = f.deployments();
    // Only Maintainers may deploy to production: Developer gets 403 on create and update.
    let body = format!("environment=production&sha={sha}&ref=main&tag=false&status=running");
    f.call("POST", &dp, Some(&f.dev), Some(&body))
        .await
        .assert(403, FORBIDDEN);
    let id = f.create("production", &sha, "running").await;
    f.call(
        "PUT",
        &format!("{dp}/{id}"),
        Some(&f.dev),
        Some("status=success"),
    )
    .await
    .assert(403, FORBIDDEN);
}

// ---- §8 rate limiting and faults ---------------------------------------------------------

#[tokio::test]
async fn s8_rate_limiter_headers_and_body() {
    let f = fx();
    f.h.set_now(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 20).unwrap());
    f.h.set_rate_limit(Some(RateLimit::new(2, 60)));
    let p = f.deployments();
    assert_eq!(f.get(&p).await.status, 200);
    assert_eq!(f.get(&p).await.status, 200);
    let r = f.get(&p).await;
    assert_eq!(
        (r.status, r.text.as_str(), r.content_type().as_str()),
        (429, "Retry later\n", "text/plain")
    );
    let h = |k: &str| r.header(k).unwrap();
    assert_eq!(h("retry-after"), "40");
    assert_eq!(h("ratelimit-limit"), "2");
    assert_eq!(h("ratelimit-observed"), "3");
    assert_eq!(h("ratelimit-remaining"), "0");
    assert_eq!(h("ratelimit-name"), "throttle_authenticated_api");
    assert_eq!(h("ratelimit-reset"), "1704067260");
    assert_eq!(h("ratelimit-resettime"), "Mon, 01 Jan 2024 00:01:00 GMT");
    // Per user: another user still passes; the next window resets.
    assert_eq!(
        f.call("GET", &p, Some(&f.dev.clone()), None).await.status,
        200
    );
    f.h.advance_clock(chrono::Duration::seconds(40));
    assert_eq!(f.get(&p).await.status, 200);
}

#[tokio::test]
async fn s8_injected_faults() {
    let f = fx();
    let p = f.deployments();
    f.h.inject_fault(Fault::status(502).on(Endpoint::ListDeployments));
    let r = f.get(&p).await;
    assert_eq!(r.status, 502);
    assert!(r.content_type().starts_with("text/html") && r.text.contains("502 Bad Gateway"));
    assert_eq!(f.get(&p).await.status, 200, "one-shot");
    f.h.inject_fault(Fault::status(500).method("GET").times(2));
    f.get(&p)
        .await
        .assert(500, r#"{"message":"500 Internal Server Error"}"#);
    f.get(&p)
        .await
        .assert(500, r#"{"message":"500 Internal Server Error"}"#);
    assert_eq!(f.get(&p).await.status, 200);
    f.h.inject_fault(Fault::rate_limited(7).sticky());
    for _ in 0..2 {
        let r = f.get(&p).await;
        assert_eq!(
            (r.status, r.header("retry-after").unwrap()),
            (429, "7".to_string())
        );
        assert!(r.header("ratelimit-reset").is_some());
    }
    f.h.clear_faults();
    f.h.inject_fault(Fault::malformed_json());
    let r = f.get(&p).await;
    assert_eq!(r.status, 200);
    assert!(serde_json::from_str::<Value>(&r.text).is_err());
    // A delay hangs, then answers normally; a client timeout sees nothing.
    f.h.inject_fault(Fault::delay(std::time::Duration::from_secs(5)));
    let timed = f
        .client
        .get(f.url(&p))
        .header("PRIVATE-TOKEN", &f.tok)
        .timeout(std::time::Duration::from_millis(300))
        .send()
        .await;
    assert!(timed.unwrap_err().is_timeout());
    // After-processing faults: the write happens, the client gets an error.
    f.h.inject_fault(
        Fault::status(503)
            .on(Endpoint::CreateDeployment)
            .after_processing(),
    );
    let body = format!(
        "environment=x&sha={}&ref=main&tag=false&status=running",
        f.p.head()
    );
    assert_eq!(
        f.call("POST", &p, Some(&f.tok.clone()), Some(&body))
            .await
            .status,
        503
    );
    assert_eq!(f.h.deployments().len(), 1);
}

#[tokio::test]
async fn dropped_connection_gives_no_response() {
    let f = fx();
    f.h.inject_fault(Fault::drop_connection());
    let res = f
        .client
        .get(f.url(&f.deployments()))
        .header("PRIVATE-TOKEN", &f.tok)
        .send()
        .await;
    match res {
        Err(e) => eprintln!("dropped connection seen as: {e:?}"),
        Ok(r) => assert!(
            r.text().await.is_err(),
            "a dropped connection must not yield a full response"
        ),
    }
    assert_eq!(f.h.requests().last().unwrap().status, 0);
}

// ---- records -------------------------------------------------------------------------------

#[tokio::test]
async fn records_log_templates_and_counters() {
    let f = fx();
    let id = f.create("x", f.p.head(), "running").await;
    f.put_status(id, "success").await;
    f.call(
        "GET",
        &format!("/projects/1/deployments/{id}?private_token={}&x=1", f.tok),
        None,
        None,
    )
    .await;
    let reqs = f.h.requests();
    let summary: Vec<(String, String, u16)> = reqs
        .iter()
        .map(|r| (r.method.clone(), r.endpoint.clone(), r.status))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("POST".into(), "/projects/:id/deployments".into(), 201),
            (
                "PUT".into(),
                "/projects/:id/deployments/:deployment_id".into(),
                200
            ),
            (
                "GET".into(),
                "/projects/:id/deployments/:deployment_id".into(),
                200
            ),
        ]
    );
    assert_eq!(
        reqs[2].path,
        format!("/api/v4/projects/1/deployments/{id}?x=1")
    );
    assert_eq!(reqs[1].body, "status=success");
    let token_header = reqs[0]
        .headers
        .iter()
        .find(|(k, _)| k == "private-token")
        .unwrap();
    assert_eq!(token_header.1, "[REDACTED]");
    assert!(!format!("{reqs:?}").contains(&f.tok));
    assert_eq!(f.h.count(Endpoint::CreateDeployment), 1);
    assert_eq!(f.h.write_count(), 2);
    let c = f.h.counters();
    assert_eq!(c.values().sum::<u64>(), 3);
    let rec = f.h.deployment(id).unwrap();
    assert_eq!(
        (rec.status.as_str(), rec.environment.as_str(), rec.iid),
        ("success", "x", 1)
    );
    assert!(rec.finished_at.is_some());
    f.h.clear_requests();
    assert!(f.h.requests().is_empty());
}

#[tokio::test]
async fn demo_seed_waits_for_approval_then_approves() {
    // Plain http needs no TLS provider, but reqwest's rustls client is built with one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let gl = GitlabEmulator::start_demo().unwrap();
    let demo = gl.demo().unwrap().clone();
    assert_eq!(
        (demo.project_id, demo.project_path.as_str()),
        (1, "demo/app")
    );
    assert!(demo.main_shas.len() >= 5 && demo.main_shas.iter().all(|s| s.len() == 40));
    let c = reqwest::Client::new();
    let url = format!("{}/api/v4/projects/demo%2Fapp/deployments", gl.base_url());
    let r = send(c.post(&url).header("PRIVATE-TOKEN", &demo.root_token).json(&json!({
        "environment": "production", "sha": demo.main_shas[0], "ref": "main", "tag": false, "status": "running"
    }))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json()["id"].as_u64().unwrap();
    assert_eq!(r.json()["pending_approval_count"], 1);
    let ap = format!("{url}/{id}/approval");
    let own = send(
        c.post(&ap)
            .header("PRIVATE-TOKEN", &demo.root_token)
            .json(&json!({"status": "approved"})),
    )
    .await;
    assert_eq!(own.status, 400);
    let ok = send(
        c.post(&ap)
            .header("PRIVATE-TOKEN", &demo.approver_token)
            .json(&json!({"status": "approved"})),
    )
    .await;
    assert_eq!(ok.status, 201);
    let d = send(
        c.get(format!("{url}/{id}"))
            .header("PRIVATE-TOKEN", &demo.root_token),
    )
    .await
    .json();
    assert_eq!(d["pending_approval_count"], 0);
    // Success links the merged MR (first deployment: all merged MRs into main).
    let r = send(
        c.put(format!("{url}/{id}"))
            .header("PRIVATE-TOKEN", &demo.root_token)
            .json(&json!({"status": "success"})),
    )
    .await;
    assert_eq!(r.status, 200);
    let mrs = send(
        c.get(format!("{url}/{id}/merge_requests"))
            .header("PRIVATE-TOKEN", &demo.root_token),
    )
    .await
    .json();
    assert_eq!(mrs[0]["iid"].as_u64(), Some(demo.merged_mr_iid));
    gl.shutdown();
}

#[tokio::test]
async fn s2_visibility_groups_and_job_token_allowlist() {
    let f = fx();
    let path = f.deployments();
    // Visible (public/internal) project without a role: 403, not 404.
    f.h.set_visibility(f.p.id, Visibility::Public);
    f.call("GET", &path, Some(&f.outsider), None)
        .await
        .assert(403, FORBIDDEN);
    f.h.set_visibility(f.p.id, Visibility::Internal);
    f.call("GET", &path, Some(&f.outsider), None)
        .await
        .assert(403, FORBIDDEN);
    // Membership inherited from the namespace group (and its ancestors).
    let parent = f.h.add_group("org", "org", None);
    let uid = f.h.user_id("outsider").unwrap();
    f.h.add_group_member(parent, uid, Role::Reporter);
    let child = f.h.add_group("org/team", "team", Some(parent));
    let mut spec = ProjectSpec::new("org/team/svc");
    spec.group_id = Some(child);
    let svc = f.h.add_project(spec);
    let r = f
        .call(
            "GET",
            "/projects/org%2Fteam%2Fsvc/deployments",
            Some(&f.outsider),
            None,
        )
        .await;
    r.assert(200, "[]");
    // A job token of another project works once that project is allowlisted.
    let dev = f.h.user_id("dev").unwrap();
    f.h.add_member(svc, dev, Role::Developer);
    f.h.add_job_token("job-svc", f.p.id, dev);
    let url = format!("/projects/{svc}/deployments");
    let j = f.client.get(f.url(&url)).header("JOB-TOKEN", "job-svc");
    send(j).await.assert(404, PROJECT_NOT_FOUND);
    f.h.set_job_token_allowlist(svc, &[f.p.id]);
    let j = f.client.get(f.url(&url)).header("JOB-TOKEN", "job-svc");
    send(j).await.assert(200, "[]");
    // A job token is not a PRIVATE-TOKEN.
    f.call("GET", &url, Some("job-svc"), None)
        .await
        .assert(401, UNAUTHORIZED);
}

#[tokio::test]
async fn s3_6_merge_requests_pagination_and_sort() {
    let f = fx();
    let author = f.p.maintainer_id;
    for i in 0..3 {
        f.h.advance_clock(chrono::Duration::seconds(1));
        let title = format!("MR {i}");
        f.h.add_merge_request(
            f.p.id,
            MergeRequestSpec::merged(&title, author, "main", &f.p.shas[i]),
        );
    }
    let d = f.create("production", f.p.head(), "success").await;
    let p = format!("{}/{d}/merge_requests", f.deployments());
    let titles = |v: Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|m| m["title"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    // Default: created_at desc.
    assert_eq!(titles(f.get(&p).await.json()), vec!["MR 2", "MR 1", "MR 0"]);
    assert_eq!(
        titles(f.get(&format!("{p}?sort=asc")).await.json()),
        vec!["MR 0", "MR 1", "MR 2"]
    );
    let r = f.get(&format!("{p}?per_page=2&page=2")).await;
    assert_eq!(titles(r.json()), vec!["MR 0"]);
    assert_eq!(r.header("x-total-pages").unwrap(), "2");
    assert!(r.header("link").unwrap().contains("deployment_id="));
}

#[tokio::test]
async fn compat_switches_for_older_servers() {
    let f = fx();
    let p = f.deployments();
    f.h.set_compat(Compat {
        order_by_ref: true,
        soft_updated_at_sort_check: true,
        legacy_finished_at_pairing: true,
        no_allow_blank: true,
        legacy_approval_order: true,
        ..Compat::default()
    });
    f.get(&format!("{p}?order_by=ref")).await.assert(200, "[]");
    f.get(&format!("{p}?updated_after=2019-03-15T08:00:00Z"))
        .await
        .assert(200, "[]");
    f.get(&format!("{p}?order_by=finished_at&status=success")).await.assert(
        400,
        r#"{"message":"400 Bad request - `finished_at` filter and `finished_at` sorting must be paired"}"#,
    );
    f.call("POST", &p, Some(&f.tok), Some("")).await.assert(
        400,
        r#"{"error":"environment is missing, sha is missing, ref is missing, tag is missing, status is missing, status does not have a valid value"}"#,
    );
    let body = format!(
        "environment=&sha={}&ref=main&tag=false&status=running",
        f.p.head()
    );
    let r = f.call("POST", &p, Some(&f.tok), Some(&body)).await;
    assert_eq!(r.json()["message"]["name"][0], "can't be blank");
    let body = "environment=x&sha=&ref=main&tag=false&status=running";
    f.call("POST", &p, Some(&f.tok), Some(body))
        .await
        .assert(400, r#"{"message":{"sha":["The commit does not exist"]}}"#);
    // Legacy approval order: an API-created deployment is never `blocked`.
    let id = f.create("x", f.p.head(), "running").await;
    f.call(
        "POST",
        &format!("{p}/{id}/approval"),
        Some(&f.dev),
        Some("status=approved"),
    )
    .await
    .assert(
        400,
        r#"{"message":"This deployment is not waiting for approvals."}"#,
    );
}

#[tokio::test]
async fn wait_for_sees_a_deployment_succeed() {
    let f = fx();
    let id = f.create("x", f.p.head(), "running").await;
    let h = f.h.clone();
    let waiter = tokio::spawn(async move {
        h.wait_for(std::time::Duration::from_secs(20), |h| {
            h.deployment(id).filter(|d| d.status == "success")
        })
        .await
    });
    assert_eq!(f.put_status(id, "success").await.status, 200);
    let done = waiter.await.unwrap().expect("deployment reaches success");
    assert!(done.finished_at.is_some());
    let none =
        f.h.wait_for_blocking(std::time::Duration::from_millis(50), |h| h.deployment(999));
    assert!(none.is_none());
}

#[tokio::test]
async fn timestamps_in_an_instance_time_zone() {
    let f = fx();
    f.h.set_now(
        Utc.with_ymd_and_hms(2016, 8, 11, 11, 32, 35).unwrap()
            + chrono::Duration::milliseconds(444),
    );
    let id = f.create("x", f.p.head(), "running").await;
    let one = format!("{}/{id}", f.deployments());
    assert_eq!(
        f.get(&one).await.json()["created_at"],
        "2016-08-11T11:32:35.444Z"
    );
    f.h.set_time_zone_offset(2 * 3600);
    assert_eq!(
        f.get(&one).await.json()["created_at"],
        "2016-08-11T13:32:35.444+02:00"
    );
}
