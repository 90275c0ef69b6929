//! Token Secrets and CA bundles are read by name (`get`) through a short-lived memo, never
//! listed or watched (issue 15), and with `--require-token-label` only labelled token Secrets
//! are used (issue 20, point 5). The harness takes list and watch of Secrets and ConfigMaps
//! away on the kube emulator (403, as deploy/'s RBAC would), so every test here runs with
//! `get` only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::time::Duration;

use gitlab_deployment_operator::api::GitlabDeployment;
use gitlab_deployment_operator::api::names::{TOKEN_LABEL, reason};
use gitlab_deployment_operator::controller::credentials::CredentialPolicy;
use harness::{Env, NS, Operator, TOKEN_SECRET, gitlab_status, until};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};
use kube_emulator::RequestRecord;
use serde_json::json;

fn succeeded(gd: &GitlabDeployment) -> bool {
    gitlab_status(gd).as_deref() == Some("success")
}

/// The `Stalled=True` condition's (reason, message), if any.
fn stalled(gd: &GitlabDeployment) -> Option<(String, String)> {
    gd.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled" && c.status == "True")
        .map(|c| (c.reason.clone(), c.message.clone()))
}

async fn wait_stalled(env: &Env, name: &str, reason: &'static str) -> String {
    let gd = env
        .wait_for(name, reason, |gd| {
            stalled(gd).is_some_and(|(r, _)| r == reason)
        })
        .await;
    stalled(&gd).unwrap().1
}

/// Server-side apply of a core object (Secret, ConfigMap) in the harness namespace.
async fn put<K>(env: &Env, obj: serde_json::Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(env.client.clone(), NS);
    let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
    api.patch(
        &name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap();
}

/// A connection `name` to `url` with the harness token Secret and `extra` spec fields.
async fn connection(env: &Env, name: &str, url: &str, extra: serde_json::Value) {
    let mut spec = json!({"url": url, "tokenSecretRef": {"name": TOKEN_SECRET, "key": "token"},
                          "timeout": "5s"});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    put::<gitlab_deployment_operator::api::GitlabConnection>(
        env,
        json!({"apiVersion": "gitlab-operator.io/v1alpha1", "kind": "GitlabConnection",
               "metadata": {"name": name}, "spec": spec}),
    )
    .await;
}

fn using(env: &Env, environment: &str, connection: &str) -> serde_json::Value {
    let mut spec = env.fixed_spec(environment, env.project.head());
    spec["connectionRef"] = json!({"kind": "GitlabConnection", "name": connection});
    spec
}

fn secret_and_config_map_reads(env: &Env) -> Vec<RequestRecord> {
    env.emulator()
        .hooks()
        .requests()
        .into_iter()
        .filter(|r| r.group.is_empty() && (r.resource == "secrets" || r.resource == "configmaps"))
        .collect()
}

/// Wait until the operator has read `name` (a `get` in the kube request log) `n` times.
async fn wait_reads(env: &Env, resource: &str, name: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let seen = secret_and_config_map_reads(env)
            .iter()
            .filter(|r| r.verb == "get" && r.resource == resource && r.name == name)
            .count();
        if seen >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{resource}/{name} read {seen} times, waited for {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn secrets_and_config_maps_are_read_by_name_never_listed_or_watched() {
    let env = Env::start().await;
    // Other people's Secrets, as Helm keeps them: never to be read.
    for i in 0..3 {
        put::<Secret>(
            &env,
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": format!("sh.helm.release.v1.web.v{i}"),
                                "labels": {"owner": "helm"}},
                   "type": "helm.sh/release.v1", "stringData": {"release": "x".repeat(4096)}}),
        )
        .await;
    }
    put::<ConfigMap>(
        &env,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrelated"},
               "data": {"k": "v"}}),
    )
    .await;
    put::<ConfigMap>(
        &env,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gitlab-ca"},
               "data": {"ca.crt": kube_emulator::tls::CA_PEM}}),
    )
    .await;
    connection(
        &env,
        "with-ca",
        &env.gitlab.base_url(),
        json!({"caBundle": {"configMapRef": {"name": "gitlab-ca", "key": "ca.crt"}}}),
    )
    .await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    env.emulator().hooks().clear_requests();
    let op = env.start_operator();
    for (name, conn) in [("one", "default"), ("two", "with-ca"), ("three", "with-ca")] {
        env.apply_gld(name, using(&env, name, conn)).await;
    }
    for name in ["one", "two", "three"] {
        env.wait_for(name, "success", succeeded).await;
    }
    op.stop().await;

    let reads = secret_and_config_map_reads(&env);
    let mut names: Vec<String> = reads
        .iter()
        .map(|r| format!("{} {}/{}", r.verb, r.resource, r.name))
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(
        names,
        ["get configmaps/gitlab-ca", "get secrets/gitlab-token"],
        "only the objects connections name, only by name (no list, no watch)"
    );
    // Memoised: three resources, two connections, six reconciles or more, one read each.
    for (resource, name) in [("secrets", TOKEN_SECRET), ("configmaps", "gitlab-ca")] {
        let n = reads
            .iter()
            .filter(|r| r.resource == resource && r.name == name)
            .count();
        assert_eq!(n, 1, "{resource}/{name} read {n} times: {reads:?}");
    }
}

#[tokio::test]
async fn an_unlabelled_token_secret_is_refused_when_the_label_is_required() {
    let env = Env::start().await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let mut config = env.config();
    config.settings.credentials.require_token_label = true;
    let op = env.start_operator_with(config);
    env.apply_gld("web-staging", env.fixed_spec("staging", env.project.head()))
        .await;
    let message = wait_stalled(&env, "web-staging", reason::TOKEN_SECRET_MISSING).await;
    assert!(
        message.contains(TOKEN_LABEL) && message.contains("\"true\""),
        "the message names the label: {message}"
    );
    assert!(
        message.contains(&format!("{NS}/{TOKEN_SECRET}")),
        "and the Secret: {message}"
    );
    env.wait_for_event("web-staging", reason::TOKEN_SECRET_MISSING)
        .await;
    assert!(
        env.gitlab_calls().is_empty(),
        "nothing is sent to GitLab with an unlabelled Secret"
    );

    // Labelled, it is used: the memo looks at a refused Secret again within seconds.
    Api::<Secret>::namespaced(env.client.clone(), NS)
        .patch(
            TOKEN_SECRET,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {TOKEN_LABEL: "true"}}})),
        )
        .await
        .unwrap();
    env.wait_for("web-staging", "success once labelled", succeeded)
        .await;
    op.stop().await;
}

/// The memo trusts a read for an hour here: only the 401 can make the operator read the
/// rotated token.
#[tokio::test]
async fn a_revoked_token_is_replaced_at_the_first_401() {
    let env = Env::start().await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let mut config = env.config();
    config.settings.credentials = CredentialPolicy {
        memo_lifetime: Duration::from_secs(3600),
        ..CredentialPolicy::default()
    };
    let op = env.start_operator_with(config);
    env.apply_gld("one", env.fixed_spec("one", env.project.head()))
        .await;
    env.wait_for("one", "success", succeeded).await;

    let gl = env.gitlab.handle();
    gl.add_personal_access_token(
        env.project.maintainer_id,
        "glpat-rotated-at-401",
        &[gitlab_emulator::Scope::Api],
    );
    env.put_token("glpat-rotated-at-401").await;
    gl.set_token_revoked(&env.project.maintainer_token, true);
    gl.clear_requests();
    env.apply_gld("two", env.fixed_spec("two", env.project.head()))
        .await;
    env.wait_for("two", "success with the rotated token", succeeded)
        .await;
    let refused = gl.requests().iter().filter(|r| r.status == 401).count();
    assert_eq!(
        refused,
        1,
        "one 401, then the re-read token: {:?}",
        gl.requests()
    );
    assert_eq!(env.gitlab_deployments("two").len(), 1, "created once");
    let reasons = env.event_reasons("two").await;
    assert!(
        !reasons.iter().any(|r| r == "Unauthorized"),
        "retried at once, never stalled: {reasons:?}"
    );
    op.stop().await;
}

/// The memo trusts a read for one second here: a rotated token is read again without any
/// refusal from GitLab.
#[tokio::test]
async fn a_rotated_token_is_used_within_the_memo_lifetime() {
    let env = Env::start().await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let mut config = env.config();
    config.settings.credentials = CredentialPolicy {
        memo_lifetime: Duration::from_secs(1),
        ..CredentialPolicy::default()
    };
    let op = env.start_operator_with(config);
    env.apply_gld("one", env.fixed_spec("one", env.project.head()))
        .await;
    env.wait_for("one", "success", succeeded).await;

    let gl = env.gitlab.handle();
    gl.add_personal_access_token(
        env.project.maintainer_id,
        "glpat-rotated-in-time",
        &[gitlab_emulator::Scope::Api],
    );
    let before = secret_and_config_map_reads(&env).len();
    env.put_token("glpat-rotated-in-time").await;
    // The memo's next re-read (the put itself is the test's own request).
    wait_reads(&env, "secrets", TOKEN_SECRET, before + 2).await;
    gl.set_token_revoked(&env.project.maintainer_token, true);
    gl.clear_requests();
    env.apply_gld("two", env.fixed_spec("two", env.project.head()))
        .await;
    env.wait_for("two", "success with the rotated token", succeeded)
        .await;
    assert!(
        gl.requests().iter().all(|r| r.status != 401),
        "the new token was already in use: {:?}",
        gl.requests()
    );
    op.stop().await;
}

#[tokio::test]
async fn missing_ca_bundles_stall_and_recover_by_themselves() {
    let env = Env::start().await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    // GitLab over TLS with a certificate of the kube emulator's test CA, which only the CA
    // bundle makes trusted.
    let tls_url = tls_proxy(env.gitlab.base_url()).await;
    put::<Secret>(
        &env,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ca-secret"},
               "stringData": {"other": "x"}}),
    )
    .await;
    connection(
        &env,
        "ca-in-config-map",
        &tls_url,
        json!({"caBundle": {"configMapRef": {"name": "gitlab-ca", "key": "ca.crt"}}}),
    )
    .await;
    connection(
        &env,
        "ca-in-secret",
        &tls_url,
        json!({"caBundle": {"secretRef": {"name": "ca-secret", "key": "ca.crt"}}}),
    )
    .await;
    let proxy = tls_url.trim_start_matches("https://").to_owned();
    let op = env.start_operator_with(env.config_allowing(&[&proxy]));
    for name in ["ca-in-config-map", "ca-in-secret"] {
        env.apply_gld(name, using(&env, name, name)).await;
    }
    for (name, object) in [
        ("ca-in-config-map", "ConfigMap apps/gitlab-ca"),
        ("ca-in-secret", "Secret apps/ca-secret"),
    ] {
        let message = wait_stalled(&env, name, reason::CONNECTION_INVALID).await;
        assert!(message.contains(object), "{name}: {message}");
    }
    assert!(env.gitlab_calls().is_empty(), "nothing sent to GitLab");

    put::<ConfigMap>(
        &env,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gitlab-ca"},
               "data": {"ca.crt": kube_emulator::tls::CA_PEM}}),
    )
    .await;
    put::<Secret>(
        &env,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ca-secret"},
               "stringData": {"ca.crt": kube_emulator::tls::CA_PEM}}),
    )
    .await;
    for name in ["ca-in-config-map", "ca-in-secret"] {
        env.wait_for(
            name,
            "success over TLS once the CA bundle is there",
            succeeded,
        )
        .await;
    }
    op.stop().await;
}

/// Wait until the operator's reconcile count has not moved for `quiet`; returns it.
async fn settled_reconciles(op: &Operator, quiet: Duration) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let mut last = op.reconciled();
    let mut since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = op.reconciled();
        if now != last {
            (last, since) = (now, tokio::time::Instant::now());
        } else if since.elapsed() >= quiet {
            return last;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the operator never settled"
        );
    }
}

/// A change to a connection, or to the token Secret it reads, wakes only the resources that
/// use that connection (looked up in the operator's reference index), not every resource.
#[tokio::test]
async fn a_connection_or_secret_change_wakes_only_its_users() {
    let env = Env::start().await;
    env.apply_workload("web", "registry.example/app:1.0.0", json!({}))
        .await;
    let other_token = |token: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "other-token"},
               "stringData": {"token": token}})
    };
    let other_connection = |timeout: &str| json!({"tokenSecretRef": {"name": "other-token", "key": "token"}, "timeout": timeout});
    put::<Secret>(&env, other_token(&env.project.maintainer_token)).await;
    connection(
        &env,
        "other",
        &env.gitlab.base_url(),
        other_connection("5s"),
    )
    .await;
    let mut config = env.config();
    config.settings.credentials = CredentialPolicy {
        memo_lifetime: Duration::from_secs(1),
        ..CredentialPolicy::default()
    };
    let op = env.start_operator_with(config);
    let resources = [
        ("a1", "default"),
        ("a2", "default"),
        ("a3", "default"),
        ("b1", "other"),
    ];
    for (name, conn) in resources {
        env.apply_gld(name, using(&env, name, conn)).await;
    }
    for (name, _) in resources {
        env.wait_for(name, "success", succeeded).await;
    }
    // Longer than the 5 s safety-net requeues that follow the first reconciles.
    let settled = settled_reconciles(&op, Duration::from_secs(6)).await;

    // The connection changes: its one user is reconciled, the default connection's are not.
    connection(
        &env,
        "other",
        &env.gitlab.base_url(),
        other_connection("6s"),
    )
    .await;
    until(
        "the connection's user is reconciled",
        Duration::from_secs(20),
        || op.reconciled() > settled,
    )
    .await;
    let after_connection = settled_reconciles(&op, Duration::from_secs(2)).await;
    assert_eq!(
        after_connection - settled,
        1,
        "a connection change reconciles its one user only"
    );

    // Its token Secret is rotated: the memo sees it, and again only that user is reconciled.
    env.gitlab.handle().add_personal_access_token(
        env.project.maintainer_id,
        "glpat-other-rotated",
        &[gitlab_emulator::Scope::Api],
    );
    put::<Secret>(&env, other_token("glpat-other-rotated")).await;
    until(
        "the Secret's user is reconciled",
        Duration::from_secs(20),
        || op.reconciled() > after_connection,
    )
    .await;
    let after_secret = settled_reconciles(&op, Duration::from_secs(2)).await;
    assert_eq!(
        after_secret - after_connection,
        1,
        "a token Secret change reconciles the users of its connection only"
    );
    op.stop().await;
}

/// `https://127.0.0.1:<port>` in front of `upstream` (plain http), with the kube emulator's
/// test certificate (issued by `kube_emulator::tls::CA_PEM` for 127.0.0.1). Runs until the
/// test's runtime ends.
async fn tls_proxy(upstream: String) -> String {
    let acceptor = kube_emulator::tls::acceptor().unwrap();
    let upstream = url::Url::parse(&upstream).unwrap();
    let upstream = format!(
        "{}:{}",
        upstream.host_str().unwrap(),
        upstream.port_or_known_default().unwrap()
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    format!("https://127.0.0.1:{port}")
}
