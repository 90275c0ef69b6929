//! Conformance of the Environments API subset (spec `gitlab-environments-and-hooks.md` Part A)
//! over real HTTP: list by name, get, PUT with field validation, and the cluster agents list.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::fx;
use gitlab_emulator::Compat;
use serde_json::json;

#[tokio::test]
async fn environments_are_listed_by_exact_name_and_read_by_id() {
    let f = fx();
    f.create("review/fix-foo", &f.p.shas[0], "success").await;
    f.create("production", &f.p.shas[0], "success").await;
    let list = f
        .get(&format!(
            "/projects/{}/environments?name=production",
            f.p.id
        ))
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    let envs = list.json();
    assert_eq!(envs.as_array().unwrap().len(), 1);
    let env = &envs[0];
    assert_eq!(env["name"], "production");
    assert_eq!(env["tier"], "production", "tier guessed from the name");
    assert_eq!(env["project"]["path_with_namespace"], "team/app");
    assert!(env.get("last_deployment").is_none(), "only on GET one");
    assert!(
        env.get("cluster_agent").is_none(),
        "absent without an agent"
    );
    // Unknown name: 200 [] with X-Total 0; exact, case-sensitive.
    let none = f
        .get(&format!(
            "/projects/{}/environments?name=Production",
            f.p.id
        ))
        .await;
    none.assert(200, "[]");
    assert_eq!(none.header("x-total").as_deref(), Some("0"));
    let review = f
        .get(&format!(
            "/projects/{}/environments?name=review/fix-foo",
            f.p.id
        ))
        .await
        .json();
    assert_eq!(review[0]["tier"], "development");
    // GET one: no project, with last_deployment.
    let id = env["id"].as_u64().unwrap();
    let one = f
        .get(&format!("/projects/{}/environments/{id}", f.p.id))
        .await
        .json();
    assert!(one.get("project").is_none());
    assert_eq!(one["last_deployment"]["status"], "success");
    assert!(one["last_deployment"].get("environment").is_none());
    // Not an integer; another project's id; reporter may read.
    f.get(&format!("/projects/{}/environments/abc", f.p.id))
        .await
        .assert(400, r#"{"error":"environment_id is invalid"}"#);
    f.get(&format!("/projects/{}/environments/999", f.p.id))
        .await
        .assert(404, r#"{"message":"404 Not found"}"#);
    let r = f
        .call(
            "GET",
            &format!("/projects/{}/environments/{id}", f.p.id),
            Some(&f.reporter),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    f.get(&format!("/projects/{}/environments?search=pr", f.p.id))
        .await
        .assert(
            400,
            r#"{"message":"400 Bad request - Search query is less than 3 characters"}"#,
        );
}

#[tokio::test]
async fn put_sets_tier_url_and_the_kubernetes_dashboard_with_gitlabs_validation() {
    let f = fx();
    f.create("production", &f.p.shas[0], "success").await;
    let id = f.h.environment(f.p.id, "production").unwrap().id;
    let path = format!("/projects/{}/environments/{id}", f.p.id);
    let agent = f.h.add_cluster_agent(f.p.id, "prod-agent");
    let other = f.h.seed_project("team/other", "main", 1);
    let foreign = f.h.add_cluster_agent(other.id, "elsewhere");

    // Namespace without an agent: the model error, in PUT's attribute-hash form.
    f.json(
        "PUT",
        &path,
        &f.tok,
        json!({"kubernetes_namespace": "apps"}),
    )
    .await
    .assert(
        400,
        r#"{"message":{"kubernetes_namespace":["cannot be set without a cluster agent"]}}"#,
    );
    f.json("PUT", &path, &f.tok, json!({"flux_resource_path": "x"}))
        .await
        .assert(
            400,
            r#"{"message":{"flux_resource_path":["cannot be set without a kubernetes namespace"]}}"#,
        );
    f.json("PUT", &path, &f.tok, json!({"tier": "prod"}))
        .await
        .assert(400, r#"{"error":"tier does not have a valid value"}"#);
    f.json(
        "PUT",
        &path,
        &f.tok,
        json!({"external_url": "javascript:alert(1)"}),
    )
    .await
    .assert(
        400,
        r#"{"message":{"external_url":["javascript scheme is not allowed"]}}"#,
    );
    f.json("PUT", &path, &f.tok, json!({"cluster_agent_id": foreign}))
        .await
        .assert(
            400,
            r#"{"message":"400 Bad request - cluster agent doesn't exist or cannot be associated with this environment"}"#,
        );
    f.json("PUT", &path, &f.tok, json!({"slug": "x"}))
        .await
        .assert(
            400,
            r#"{"error":"slug is automatically generated and cannot be changed"}"#,
        );
    // Reporter may not change it.
    f.json("PUT", &path, &f.reporter, json!({"tier": "staging"}))
        .await
        .assert(403, r#"{"message":"403 Forbidden"}"#);

    let flux = "kustomize.toolkit.fluxcd.io/v1/namespaces/apps/kustomizations/web";
    let r = f
        .json(
            "PUT",
            &path,
            &f.tok,
            json!({"tier": "staging", "external_url": "https://web.example.com",
                   "cluster_agent_id": agent, "kubernetes_namespace": "apps",
                   "flux_resource_path": flux}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let env = r.json();
    assert_eq!(env["tier"], "staging");
    assert_eq!(env["external_url"], "https://web.example.com");
    assert_eq!(env["cluster_agent"]["name"], "prod-agent");
    assert_eq!(env["kubernetes_namespace"], "apps");
    assert_eq!(env["flux_resource_path"], flux);
    assert_eq!(env["project"]["id"], f.p.id);
    // A Reporter does not see the agent and its keys.
    let seen = f.call("GET", &path, Some(&f.reporter), None).await.json();
    assert!(seen.get("cluster_agent").is_none() && seen.get("kubernetes_namespace").is_none());
    // An empty PUT changes nothing; `name` is ignored.
    let r = f
        .json("PUT", &path, &f.tok, json!({"name": "renamed"}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["name"], "production");
    // Removing the agent while a namespace is set is refused.
    f.json("PUT", &path, &f.tok, json!({"cluster_agent_id": null}))
        .await
        .assert(
            400,
            r#"{"message":{"kubernetes_namespace":["cannot be set without a cluster agent"]}}"#,
        );
}

#[tokio::test]
async fn a_gitlab_before_17_4_drops_the_kubernetes_fields_silently() {
    let f = fx();
    f.create("production", &f.p.shas[0], "success").await;
    let id = f.h.environment(f.p.id, "production").unwrap().id;
    let agent = f.h.add_cluster_agent(f.p.id, "prod-agent");
    f.h.set_compat(Compat {
        no_environment_kubernetes_fields: true,
        ..Compat::default()
    });
    let r = f
        .json(
            "PUT",
            &format!("/projects/{}/environments/{id}", f.p.id),
            &f.tok,
            json!({"tier": "staging", "cluster_agent_id": agent, "kubernetes_namespace": "apps"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let env = r.json();
    assert_eq!(env["tier"], "staging");
    assert!(env.get("cluster_agent").is_none());
    assert!(env.get("kubernetes_namespace").is_none());
    assert_eq!(
        f.h.environment(f.p.id, "production")
            .unwrap()
            .cluster_agent_id,
        None
    );
}

#[tokio::test]
async fn cluster_agents_are_listed_by_name_for_developers() {
    let f = fx();
    f.h.add_cluster_agent(f.p.id, "zeta");
    f.h.add_cluster_agent(f.p.id, "alpha");
    let r = f
        .call(
            "GET",
            &format!("/projects/{}/cluster_agents", f.p.id),
            Some(&f.dev),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let names: Vec<_> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["alpha", "zeta"]);
    assert_eq!(
        r.json()[0]["config_project"]["path_with_namespace"],
        "team/app"
    );
    f.call(
        "GET",
        &format!("/projects/{}/cluster_agents", f.p.id),
        Some(&f.reporter),
        None,
    )
    .await
    .assert(404, r#"{"message":"404 ClusterAgents Not Found"}"#);
}
