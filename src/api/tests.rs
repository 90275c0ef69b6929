//! Spec validation (Rust side), CEL rules of the CRD (client-side, via kube's `#[kube(cel)]`),
//! and the public names baked into the derive attributes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kube::{CustomResourceExt, Resource};
use serde_json::{Value, json};

use super::deployment::*;
use super::names;
use super::validate::{
    ConnectionTarget, ProjectRef, RevisionSource, SpecError, parse_duration, validate,
};
use super::{ClusterGitlabConnection, GitlabConnection};

const SHA: &str = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d";

fn base() -> Value {
    json!({
        "apiVersion": "gitlab-operator.io/v1alpha1",
        "kind": "GitlabDeployment",
        "metadata": {"name": "web", "namespace": "apps", "generation": 2},
        "spec": {
            "project": "group/web",
            "environment": "production",
            "ref": "main",
            "sha": SHA,
            "target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        },
    })
}

fn with(patch: Value) -> GitlabDeployment {
    let mut v = base();
    merge(&mut v, patch);
    serde_json::from_value(v).expect("test object deserializes")
}

fn merge(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(map) => {
            let obj = target.as_object_mut().unwrap();
            for (k, v) in map {
                if v.is_null() {
                    obj.remove(&k);
                } else if v.is_object() && obj.get(&k).is_some_and(Value::is_object) {
                    merge(obj.get_mut(&k).unwrap(), v);
                } else {
                    obj.insert(k, v);
                }
            }
        }
        other => *target = other,
    }
}

#[test]
fn validate_accepts_and_resolves_defaults() {
    let v = validate(&with(json!({})), &ConnectionTarget::default()).unwrap();
    assert_eq!(v.namespace, "apps");
    assert_eq!(v.generation, 2);
    assert_eq!(v.project, ProjectRef::Path("group/web".into()));
    assert_eq!(v.connection.name, names::DEFAULT_CONNECTION_NAME);
    assert_eq!(v.progress_timeout, std::time::Duration::from_secs(600));
    assert_eq!(v.deletion_policy, DeletionPolicy::Cancel);
    assert!(
        matches!(v.revision, RevisionSource::Fixed(ref r) if r.sha == SHA && r.ref_name == "main" && !r.tag)
    );

    let v = validate(
        &with(
            json!({"spec": {"project": "42", "progressTimeout": "1h30m", "deletionPolicy": "Delete",
        "connectionRef": {"kind": "ClusterGitlabConnection", "name": "shared"}}}),
        ),
        &ConnectionTarget::default(),
    )
    .unwrap();
    assert_eq!(v.project, ProjectRef::Id(42));
    assert_eq!(v.project.as_url_segment(), "42");
    assert_eq!(v.progress_timeout, std::time::Duration::from_secs(5400));
    assert_eq!(v.connection.kind, ConnectionKind::ClusterGitlabConnection);
    assert_eq!(
        ProjectRef::Path("a/b/c".into()).as_url_segment(),
        "a%2Fb%2Fc"
    );
}

#[test]
fn validate_table() {
    let long_env = "e".repeat(256);
    let cases: Vec<(&str, Value, Result<(), SpecError>)> = vec![
        ("valid", json!({}), Ok(())),
        (
            "nested group path",
            json!({"spec": {"project": "a/b/c.d_e-f"}}),
            Ok(()),
        ),
        (
            "dotted segment",
            json!({"spec": {"project": "group/.dotfiles"}}),
            Ok(()),
        ),
        (
            "segment of dots and a dash",
            json!({"spec": {"project": "group/.-web"}}),
            Ok(()),
        ),
        (
            "dot-only segment",
            json!({"spec": {"project": "group/.."}}),
            Err(SpecError::Project {
                found: "group/..".into(),
            }),
        ),
        (
            "dot-only first segment",
            json!({"spec": {"project": "../deployments"}}),
            Err(SpecError::Project {
                found: "../deployments".into(),
            }),
        ),
        (
            "segment starting with dash",
            json!({"spec": {"project": "group/-web"}}),
            Err(SpecError::Project {
                found: "group/-web".into(),
            }),
        ),
        (
            "env with allowed chars",
            json!({"spec": {"environment": "review/feature-1 ${x}.y_z"}}),
            Ok(()),
        ),
        (
            "env 255 chars",
            json!({"spec": {"environment": "e".repeat(255)}}),
            Ok(()),
        ),
        (
            "project without group",
            json!({"spec": {"project": "web"}}),
            Err(SpecError::Project {
                found: "web".into(),
            }),
        ),
        (
            "project trailing slash",
            json!({"spec": {"project": "group/"}}),
            Err(SpecError::Project {
                found: "group/".into(),
            }),
        ),
        (
            "project zero id",
            json!({"spec": {"project": "0"}}),
            Err(SpecError::Project { found: "0".into() }),
        ),
        (
            "env empty",
            json!({"spec": {"environment": ""}}),
            Err(SpecError::EnvironmentEmpty),
        ),
        (
            "env too long",
            json!({"spec": {"environment": long_env}}),
            Err(SpecError::EnvironmentTooLong { len: 256 }),
        ),
        (
            "env leading slash",
            json!({"spec": {"environment": "/prod"}}),
            Err(SpecError::EnvironmentChars {
                found: "/prod".into(),
            }),
        ),
        (
            "env trailing slash",
            json!({"spec": {"environment": "prod/"}}),
            Err(SpecError::EnvironmentChars {
                found: "prod/".into(),
            }),
        ),
        (
            "env bad char",
            json!({"spec": {"environment": "prod:eu"}}),
            Err(SpecError::EnvironmentChars {
                found: "prod:eu".into(),
            }),
        ),
        (
            "ref empty",
            json!({"spec": {"ref": " "}}),
            Err(SpecError::RefEmpty),
        ),
        (
            "short sha",
            json!({"spec": {"sha": "1a2b3c4"}}),
            Err(SpecError::Sha {
                found: "1a2b3c4".into(),
            }),
        ),
        (
            "uppercase sha",
            json!({"spec": {"sha": SHA.to_uppercase()}}),
            Err(SpecError::Sha {
                found: SHA.to_uppercase(),
            }),
        ),
        (
            "sha and revisionFrom",
            json!({"spec": {"revisionFrom": {"annotation": "x/sha"}}}),
            Err(SpecError::ShaAndRevisionFrom),
        ),
        (
            "neither",
            json!({"spec": {"sha": null}}),
            Err(SpecError::NoRevision),
        ),
        (
            "revisionFrom both",
            json!({"spec": {"sha": null, "revisionFrom": {"annotation": "a", "container": "c"}}}),
            Err(SpecError::RevisionFrom { found: "both" }),
        ),
        (
            "revisionFrom neither",
            json!({"spec": {"sha": null, "revisionFrom": {}}}),
            Err(SpecError::RevisionFrom { found: "neither" }),
        ),
        (
            "revisionFrom container",
            json!({"spec": {"sha": null, "revisionFrom": {"container": "app"}}}),
            Ok(()),
        ),
        (
            "target kind empty",
            json!({"spec": {"target": {"kind": ""}}}),
            Err(SpecError::Target { field: "kind" }),
        ),
        (
            "bad timeout",
            json!({"spec": {"progressTimeout": "ten minutes"}}),
            Err(SpecError::ProgressTimeout {
                found: "ten minutes".into(),
            }),
        ),
        (
            "negative timeout",
            json!({"spec": {"progressTimeout": "-5m"}}),
            Err(SpecError::ProgressTimeout {
                found: "-5m".into(),
            }),
        ),
        (
            "empty connection name",
            json!({"spec": {"connectionRef": {"kind": "GitlabConnection", "name": ""}}}),
            Err(SpecError::ConnectionName),
        ),
        (
            "no namespace",
            json!({"metadata": {"namespace": null}}),
            Err(SpecError::Metadata { field: "namespace" }),
        ),
    ];
    for (name, patch, want) in cases {
        let got = validate(&with(patch), &ConnectionTarget::default()).map(|_| ());
        assert_eq!(got, want, "case {name}");
        if let Err(e) = got {
            assert_eq!(e.category(), names::reason::INVALID_SPEC, "case {name}");
            assert!(
                e.to_string().contains("spec.") || e.to_string().contains("metadata."),
                "case {name}: message names the field: {e}"
            );
        }
    }
}

#[test]
fn durations_parse_like_go() {
    let cases = [
        ("10m", Some(600)),
        ("90s", Some(90)),
        ("1h30m", Some(5400)),
        ("1.5s", Some(1)),
        ("10", None),
        ("m", None),
        ("-1s", None),
        ("", None),
    ];
    for (text, want) in cases {
        assert_eq!(
            parse_duration(text).map(|d| d.as_secs()),
            want,
            "case {text:?}"
        );
    }
}

fn cel_errors(result: Result<(), kube::core::cel::ValidationErrors>) -> Vec<String> {
    match result {
        Ok(()) => vec![],
        Err(e) => e.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

#[test]
fn cel_create_rules() {
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("sha only", json!({}), None),
        (
            "revisionFrom only",
            json!({"spec": {"sha": null, "revisionFrom": {"annotation": "example.com/sha"}}}),
            None,
        ),
        (
            "both",
            json!({"spec": {"revisionFrom": {"annotation": "example.com/sha"}}}),
            Some("set exactly one of spec.sha"),
        ),
        (
            "neither",
            json!({"spec": {"sha": null}}),
            Some("set exactly one of spec.sha"),
        ),
        (
            "revisionFrom with both sources",
            json!({"spec": {"sha": null, "revisionFrom": {"annotation": "a", "container": "b"}}}),
            Some("set exactly one of revisionFrom.annotation"),
        ),
    ];
    for (name, patch, want) in cases {
        let errors = cel_errors(with(patch).validate_cel());
        match want {
            None => assert!(errors.is_empty(), "case {name}: unexpected {errors:?}"),
            Some(w) => assert!(
                errors.iter().any(|e| e.contains(w)),
                "case {name}: want {w:?} in {errors:?}"
            ),
        }
    }
}

#[test]
fn cel_update_rules() {
    let old = with(json!({}));
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "new sha is a new revision, allowed",
            json!({"spec": {"sha": "ffffffffffffffffffffffffffffffffffffffff"}}),
            None,
        ),
        (
            "timeout change allowed",
            json!({"spec": {"progressTimeout": "20m"}}),
            None,
        ),
        (
            "environment change refused",
            json!({"spec": {"environment": "staging"}}),
            Some("spec.environment is immutable"),
        ),
        (
            "target change refused",
            json!({"spec": {"target": {"name": "other"}}}),
            Some("spec.target is immutable"),
        ),
    ];
    for (name, patch, want) in cases {
        let errors = cel_errors(with(patch).validate_cel_update(&old));
        match want {
            None => assert!(errors.is_empty(), "case {name}: unexpected {errors:?}"),
            Some(w) => {
                assert!(
                    errors
                        .iter()
                        .any(|e| e.contains(w) && e.contains("create a new GitlabDeployment")),
                    "case {name}: want {w:?} in {errors:?}"
                )
            }
        }
    }
}

#[test]
fn cel_connection_rules() {
    let conn = |patch: Value| -> ClusterGitlabConnection {
        let mut v = json!({
            "apiVersion": "gitlab-operator.io/v1alpha1", "kind": "ClusterGitlabConnection",
            "metadata": {"name": "shared"},
            "spec": {"url": "https://gitlab.example.com", "tokenSecretRef": {"name": "gitlab-token"}, "secretNamespace": "ops", "namespaces": ["apps"]},
        });
        merge(&mut v, patch);
        serde_json::from_value(v).unwrap()
    };
    let ok = conn(json!({}));
    assert_eq!(
        ok.spec.settings.token_secret_ref.key, "token",
        "key defaults to token"
    );
    assert!(cel_errors(ok.validate_cel()).is_empty());
    let no_scope = cel_errors(conn(json!({"spec": {"namespaces": null}})).validate_cel());
    assert!(
        no_scope
            .iter()
            .any(|e| e.contains("set namespaces or namespaceSelector")),
        "{no_scope:?}"
    );
    let both_ca = cel_errors(
        conn(json!({"spec": {"caBundle": {"configMapRef": {"name": "ca", "key": "ca.crt"}, "secretRef": {"name": "ca", "key": "ca.crt"}}}}))
            .validate_cel(),
    );
    assert!(
        both_ca
            .iter()
            .any(|e| e.contains("exactly one of caBundle")),
        "{both_ca:?}"
    );
}

#[test]
fn derive_attributes_use_the_public_names() {
    assert_eq!(GitlabDeployment::group(&()), names::API_GROUP);
    assert_eq!(GitlabDeployment::version(&()), names::API_VERSION);
    assert_eq!(GitlabDeployment::api_version(&()), names::API_GROUP_VERSION);
    assert_eq!(GitlabDeployment::kind(&()), names::KIND_GITLAB_DEPLOYMENT);
    assert_eq!(GitlabConnection::kind(&()), names::KIND_GITLAB_CONNECTION);
    assert_eq!(
        ClusterGitlabConnection::kind(&()),
        names::KIND_CLUSTER_GITLAB_CONNECTION
    );
    let crd = GitlabDeployment::crd();
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["gld".to_owned(), "gldeploy".to_owned()][..])
    );
    assert_eq!(
        crd.spec.names.categories.as_deref(),
        Some(&["gitlab".to_owned()][..])
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(ClusterGitlabConnection::crd().spec.scope, "Cluster");
    let columns: Vec<(String, i32)> = crd.spec.versions[0]
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| (c.name.to_uppercase(), c.priority.unwrap_or(0)))
        .collect();
    let want = [
        ("ENVIRONMENT", 0),
        ("SHA", 0),
        ("GITLAB", 0),
        ("ROLLOUT", 0),
        ("APPROVALS", 0),
        ("AGE", 0),
        ("DEPLOYMENT", 1),
        ("REF", 1),
        ("MESSAGE", 1),
    ];
    assert_eq!(columns, want.map(|(n, p)| (n.to_owned(), p)));
    assert!(
        crd.spec.versions[0]
            .subresources
            .as_ref()
            .unwrap()
            .status
            .is_some()
    );
}

#[test]
fn gitlab_state_machine_matches_the_put_matrix() {
    use GitlabStatus::*;
    // Rows of spec §5.1 for the requestable targets: running, success, failed, canceled.
    let rows = [
        (Created, [true, true, true, true]),
        (Running, [false, true, true, true]),
        (Success, [false, false, true, true]),
        (Failed, [false, true, false, true]),
        (Canceled, [false, true, true, false]),
        (Skipped, [false, true, true, true]),
        (Blocked, [true, true, true, true]),
    ];
    for (from, allowed) in rows {
        for (to, ok) in [Running, Success, Failed, Canceled]
            .into_iter()
            .zip(allowed)
        {
            assert_eq!(from.can_transition_to(to), ok, "{from} -> {to}");
        }
    }
}

#[test]
fn environment_settings_defaults_follow_the_target_kind() {
    use crate::api::deployment::{EnvironmentSettings, TargetRef};
    use crate::api::validate::resolve_environment_settings;
    let target = |api_version: &str, kind: &str| TargetRef {
        api_version: api_version.into(),
        kind: kind.into(),
        name: "web".into(),
    };
    let agent = EnvironmentSettings {
        cluster_agent: Some("prod-agent".into()),
        ..EnvironmentSettings::default()
    };
    let cases = [
        (
            "Deployment",
            agent.clone(),
            target("apps/v1", "Deployment"),
            Some("shop"),
            None,
        ),
        (
            "Flux Kustomization",
            agent.clone(),
            target("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
            Some("shop"),
            Some("kustomize.toolkit.fluxcd.io/v1/namespaces/shop/kustomizations/web"),
        ),
        (
            "Flux HelmRelease",
            agent.clone(),
            target("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
            Some("shop"),
            Some("helm.toolkit.fluxcd.io/v2/namespaces/shop/helmreleases/web"),
        ),
        (
            "an Argo CD Application has no Flux path",
            agent.clone(),
            target("argoproj.io/v1alpha1", "Application"),
            Some("shop"),
            None,
        ),
        (
            "explicit values win",
            EnvironmentSettings {
                kubernetes_namespace: Some("other".into()),
                flux_resource_path: Some("x".into()),
                ..agent
            },
            target("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
            Some("other"),
            Some("x"),
        ),
        (
            "no agent: no dashboard defaults",
            EnvironmentSettings::default(),
            target("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
            None,
            None,
        ),
    ];
    for (name, settings, target, namespace, flux) in cases {
        let got = resolve_environment_settings(&settings, "shop", &target);
        assert_eq!(got.kubernetes_namespace.as_deref(), namespace, "{name}");
        assert_eq!(got.flux_resource_path.as_deref(), flux, "{name}");
    }
}

#[test]
fn cluster_agents_are_named_by_id_name_or_project_and_name() {
    use crate::api::validate::AgentRef;
    assert_eq!(AgentRef::parse("42"), AgentRef::Id(42));
    assert_eq!(
        AgentRef::parse("prod-agent"),
        AgentRef::Name {
            project: None,
            name: "prod-agent".into()
        }
    );
    assert_eq!(
        AgentRef::parse("group/infra:prod-agent"),
        AgentRef::Name {
            project: Some("group/infra".into()),
            name: "prod-agent".into()
        }
    );
}
