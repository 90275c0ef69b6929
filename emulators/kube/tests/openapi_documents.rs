//! OpenAPI v3 documents (spec §2.3): the root lists every GV with a content hash, each GV
//! document has, per kind, a PATCH operation with the GVK and `fieldValidation` (what kubectl's
//! query-param verifier looks for) and a `components.schemas` entry for `kubectl explain`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kube_emulator::openapi::{
    CrdSchema, GroupVersionInfo, ResourceDoc, content_hash, gv_path, schema_name, v3_group_version,
    v3_root,
};
use serde_json::{Value, json};

fn resource(kind: &str, plural: &str, namespaced: bool) -> ResourceDoc {
    ResourceDoc {
        kind: kind.into(),
        plural: plural.into(),
        namespaced,
        status: true,
        scale: false,
    }
}

/// kubectl's `supportsQueryParamV3`: find the PATCH operation for the GVK and its parameter.
fn supports_field_validation(doc: &Value, group: &str, version: &str, kind: &str) -> Option<bool> {
    for item in doc["paths"].as_object()?.values() {
        let Some(patch) = item.get("patch") else {
            continue;
        };
        let gvk = &patch["x-kubernetes-group-version-kind"];
        if gvk["group"] == group && gvk["version"] == version && gvk["kind"] == kind {
            let params = patch["parameters"].as_array()?;
            return Some(params.iter().any(|p| p["name"] == "fieldValidation"));
        }
    }
    None
}

/// Resolves `#/components/schemas/...` references (and single-`allOf` wrappers) like explain.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    let target = schema.get("allOf").and_then(|a| a.get(0)).unwrap_or(schema);
    match target.get("$ref").and_then(Value::as_str) {
        Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => schema,
    }
}

#[test]
fn root_lists_group_versions_with_hashes() {
    let gvs = vec![
        GroupVersionInfo {
            group: String::new(),
            version: "v1".into(),
            hash: "AB12".into(),
        },
        GroupVersionInfo {
            group: "gitlab-operator.io".into(),
            version: "v1alpha1".into(),
            hash: "CD34".into(),
        },
    ];
    assert_eq!(
        v3_root(&gvs),
        json!({"paths": {
            "api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=AB12"},
            "apis/gitlab-operator.io/v1alpha1": {"serverRelativeURL": "/openapi/v3/apis/gitlab-operator.io/v1alpha1?hash=CD34"},
        }})
    );
    assert_eq!(gv_path("apps", "v1"), "apis/apps/v1");
    let a = v3_group_version(
        "apps",
        "v1",
        &[resource("Deployment", "deployments", true)],
        &[],
    );
    let b = v3_group_version(
        "apps",
        "v1",
        &[
            resource("Deployment", "deployments", true),
            resource("StatefulSet", "statefulsets", true),
        ],
        &[],
    );
    assert_eq!(content_hash(&a), content_hash(&a.clone()));
    assert_ne!(content_hash(&a), content_hash(&b));
    assert_eq!(content_hash(&a).len(), 16);
}

#[test]
fn every_kind_has_a_patch_with_field_validation() {
    let core = v3_group_version(
        "",
        "v1",
        &[
            resource("ConfigMap", "configmaps", true),
            resource("Namespace", "namespaces", false),
            resource("Secret", "secrets", true),
        ],
        &[],
    );
    for kind in ["ConfigMap", "Namespace", "Secret"] {
        assert_eq!(
            supports_field_validation(&core, "", "v1", kind),
            Some(true),
            "{kind}"
        );
    }
    assert!(
        core["paths"].get("/api/v1/namespaces/{name}").is_some(),
        "cluster-scoped item path"
    );
    assert!(
        core["paths"]
            .get("/api/v1/namespaces/{namespace}/configmaps/{name}")
            .is_some()
    );
    let apps = v3_group_version(
        "apps",
        "v1",
        &[ResourceDoc {
            scale: true,
            ..resource("Deployment", "deployments", true)
        }],
        &[],
    );
    assert_eq!(
        supports_field_validation(&apps, "apps", "v1", "Deployment"),
        Some(true)
    );
    assert_eq!(
        supports_field_validation(&apps, "autoscaling", "v1", "Scale"),
        Some(true)
    );
    let patch = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(patch["x-kubernetes-action"], "patch");
    assert!(
        patch["requestBody"]["content"]
            .get("application/apply-patch+yaml")
            .is_some()
    );
    assert!(
        patch["requestBody"]["content"]
            .get("application/strategic-merge-patch+json")
            .is_some()
    );
}

#[test]
fn builtin_schemas_carry_gvk_and_patch_metadata() {
    let apps = v3_group_version(
        "apps",
        "v1",
        &[resource("Deployment", "deployments", true)],
        &[],
    );
    let name = schema_name("apps", "v1", "Deployment");
    assert_eq!(name, "io.k8s.api.apps.v1.Deployment");
    let deployment = &apps["components"]["schemas"][&name];
    assert_eq!(
        deployment["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
    );
    let template = resolve(
        &apps,
        &deployment["properties"]["spec"]["properties"]["template"],
    );
    let pod_spec = resolve(&apps, &template["properties"]["spec"]);
    let containers = &pod_spec["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    let container = resolve(&apps, &containers["items"]);
    assert_eq!(container["properties"]["image"]["type"], "string");
    let list = &apps["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentList"];
    assert_eq!(
        list["x-kubernetes-group-version-kind"][0]["kind"],
        "DeploymentList"
    );
    // Every $ref resolves inside the document.
    let text = apps.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let target = &piece[..piece.find('"').unwrap()];
        assert!(
            apps["components"]["schemas"].get(target).is_some(),
            "dangling $ref {target}"
        );
    }
}

#[test]
fn crd_schemas_are_synthesised_from_open_api_v3_schema() {
    let schema = json!({"type": "object", "description": "GitlabDeployment reports a workload's rollouts to GitLab.",
        "properties": {"spec": {"type": "object", "properties": {"environment": {"type": "string", "description": "GitLab environment name"}}}}});
    let doc = v3_group_version(
        "gitlab-operator.io",
        "v1alpha1",
        &[resource("GitlabDeployment", "gitlabdeployments", true)],
        &[CrdSchema {
            kind: "GitlabDeployment".into(),
            open_api_v3_schema: schema,
        }],
    );
    let name = schema_name("gitlab-operator.io", "v1alpha1", "GitlabDeployment");
    assert_eq!(name, "io.gitlab-operator.v1alpha1.GitlabDeployment");
    let s = &doc["components"]["schemas"][&name];
    assert_eq!(
        s["x-kubernetes-group-version-kind"],
        json!([{"group": "gitlab-operator.io", "version": "v1alpha1", "kind": "GitlabDeployment"}])
    );
    assert_eq!(
        s["properties"]["spec"]["properties"]["environment"]["description"],
        "GitLab environment name"
    );
    assert_eq!(
        resolve(&doc, &s["properties"]["metadata"])["properties"]["name"]["type"],
        "string"
    );
    assert_eq!(
        supports_field_validation(&doc, "gitlab-operator.io", "v1alpha1", "GitlabDeployment"),
        Some(true)
    );
    assert!(doc["paths"].get("/apis/gitlab-operator.io/v1alpha1/namespaces/{namespace}/gitlabdeployments/{name}/status").is_some());
    // Custom resources take no strategic merge patch (kubectl would pick it for apply).
    let patch = &doc["paths"]["/apis/gitlab-operator.io/v1alpha1/namespaces/{namespace}/gitlabdeployments/{name}"]
        ["patch"];
    let types: Vec<&String> = patch["requestBody"]["content"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        types,
        [
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json"
        ]
    );
}
