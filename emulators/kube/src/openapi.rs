//! OpenAPI v3 documents for built-in kinds and served CRDs (pure).
//!
//! Spec: `shared/spec/kube-api-emulation.md` §2.3. What kubectl 1.32 reads:
//! * `--validate=strict` (the default of create/apply/replace): `/openapi/v3` → the GV
//!   document → a path whose `patch` operation carries `x-kubernetes-group-version-kind` equal
//!   to the object's GVK and a `fieldValidation` parameter; then it sends
//!   `?fieldValidation=Strict` instead of validating client-side (which would need the
//!   protobuf `/openapi/v2`). For a GV missing from the root it checks the Namespace PATCH in
//!   `api/v1`.
//! * `kubectl explain`: the GV document's `components.schemas` entry carrying the GVK.
//! * client-side `kubectl apply` of built-ins: strategic-merge metadata
//!   (`x-kubernetes-patch-strategy` / `-merge-key`) from the same schemas, falling back to v2
//!   and then to compiled-in types when a schema is missing. The built-in schemas below are a
//!   compact subset, with the patch metadata of every list they declare, so a patch computed
//!   from them merges the way the real one does.
//!
//! `/openapi/v2` can stay a 404: kubectl only falls back to it when v3 fails.

mod builtin;

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

pub use self::builtin::builtin_schemas;

/// One served group/version in the `/openapi/v3` root, with the hash of its document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupVersionInfo {
    pub group: String,
    pub version: String,
    pub hash: String,
}

/// One served resource of a group/version, as the OpenAPI document needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDoc {
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    pub status: bool,
    pub scale: bool,
}

/// A CRD version's schema for `components.schemas`.
#[derive(Debug, Clone, PartialEq)]
pub struct CrdSchema {
    pub kind: String,
    pub open_api_v3_schema: Value,
}

/// `api/v1` or `apis/<group>/<version>`: the key in the root and the document's URL path.
pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `GET /openapi/v3`: every served GV with a `serverRelativeURL` that changes with its content
/// (kubectl caches GV documents by URL).
pub fn v3_root(gvs: &[GroupVersionInfo]) -> Value {
    let paths: Map<String, Value> = gvs
        .iter()
        .map(|gv| {
            let path = gv_path(&gv.group, &gv.version);
            let url = format!("/openapi/v3/{path}?hash={}", gv.hash);
            (path, json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({"paths": paths})
}

/// Content hash for the root's `serverRelativeURL`: FNV-1a 64 over the canonical JSON (keys
/// sorted), upper-case hex like the real server's SHA-512 digests.
pub fn content_hash(doc: &Value) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in doc.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016X}")
}

/// The `components.schemas` name of a kind: `io.k8s.api.apps.v1.Deployment` for built-ins,
/// the reversed group for custom resources (`io.gitlab-operator.v1alpha1.GitlabDeployment`).
pub fn schema_name(group: &str, version: &str, kind: &str) -> String {
    match group {
        "" => format!("io.k8s.api.core.{version}.{kind}"),
        "apiextensions.k8s.io" => {
            format!("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}.{kind}")
        }
        g if g.ends_with(".k8s.io") || !g.contains('.') => {
            let short = g.split('.').next().unwrap_or(g);
            format!("io.k8s.api.{short}.{version}.{kind}")
        }
        g => {
            let reversed: Vec<&str> = g.split('.').rev().collect();
            format!("{}.{version}.{kind}", reversed.join("."))
        }
    }
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}, "application/yaml": {"schema": schema}})
}

fn query(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn bool_query(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "boolean", "uniqueItems": true}})
}

const DRY_RUN: &str = "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed";
const FIELD_MANAGER: &str =
    "fieldManager is a name associated with the actor or entity that is making these changes.";
const FIELD_VALIDATION: &str = "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict";

fn write_params() -> Vec<Value> {
    vec![
        query("dryRun", DRY_RUN),
        query("fieldManager", FIELD_MANAGER),
        query("fieldValidation", FIELD_VALIDATION),
    ]
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn operation(
    action: &str,
    op_id: String,
    description: String,
    gvk_value: &Value,
    params: Vec<Value>,
    response: &Value,
) -> Value {
    let mut op = json!({
        "description": description,
        "operationId": op_id,
        "responses": {"200": {"description": "OK", "content": json_content(response.clone())},
                      "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk_value,
    });
    if !params.is_empty() {
        op["parameters"] = Value::Array(params);
    }
    op
}

fn camel(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The operationId stem: `AppsV1`, `CoreV1`, `GitlabOperatorIoV1alpha1`.
fn op_stem(group: &str, version: &str) -> String {
    let g = if group.is_empty() {
        "Core".to_string()
    } else {
        let short = group.strip_suffix(".k8s.io").unwrap_or(group);
        short.split(['.', '-']).map(camel).collect()
    };
    format!("{g}{}", camel(version))
}

/// The item path (`…/{name}`), collection path, and status/scale paths of one resource.
/// `custom`: a CRD-served kind, whose PATCH accepts no strategic merge patch (the real CRD
/// OpenAPI builder lists only json, merge and apply patches; kubectl's client-side apply
/// would otherwise send a strategic merge patch the server rejects with 415).
fn resource_paths(
    group: &str,
    version: &str,
    r: &ResourceDoc,
    custom: bool,
    paths: &mut Map<String, Value>,
) {
    let base = format!("/{}", gv_path(group, version));
    let prefix = if r.namespaced {
        format!("{base}/namespaces/{{namespace}}")
    } else {
        base.clone()
    };
    let stem = op_stem(group, version);
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let kind_gvk = gvk(group, version, &r.kind);
    let item = schema_ref(&schema_name(group, version, &r.kind));
    let list = schema_ref(&schema_name(group, version, &format!("{}List", r.kind)));
    let status_ref = schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.Status");
    let mut patch_types = vec![
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
    ];
    if !custom {
        patch_types.push("application/strategic-merge-patch+json");
    }
    let patch_content: Map<String, Value> = patch_types
        .into_iter()
        .map(|t| {
            (
                t.to_string(),
                json!({"schema": schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.Patch")}),
            )
        })
        .collect();
    let patch_body = json!({"content": patch_content, "required": true});
    let mut path_params = vec![
        json!({"name": "name", "in": "path", "required": true, "description": format!("name of the {}", r.kind), "schema": {"type": "string", "uniqueItems": true}}),
    ];
    if r.namespaced {
        path_params.push(json!({"name": "namespace", "in": "path", "required": true, "description": "object name and auth scope, such as for teams and projects", "schema": {"type": "string", "uniqueItems": true}}));
    }
    path_params.push(query(
        "pretty",
        "If 'true', then the output is pretty printed.",
    ));
    let kind = &r.kind;

    let mut patch_params = write_params();
    patch_params.push(bool_query("force", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people."));
    let mut patch = operation(
        "patch",
        format!("patch{stem}{scope}{kind}"),
        format!("partially update the specified {kind}"),
        &kind_gvk,
        patch_params.clone(),
        &item,
    );
    patch["requestBody"] = patch_body.clone();
    let mut put = operation(
        "put",
        format!("replace{stem}{scope}{kind}"),
        format!("replace the specified {kind}"),
        &kind_gvk,
        write_params(),
        &item,
    );
    put["requestBody"] = json!({"content": json_content(item.clone()), "required": true});
    paths.insert(
        format!("{prefix}/{}/{{name}}", r.plural),
        json!({
            "get": operation("get", format!("read{stem}{scope}{kind}"), format!("read the specified {kind}"), &kind_gvk, vec![], &item),
            "put": put,
            "patch": patch,
            "delete": operation("delete", format!("delete{stem}{scope}{kind}"), format!("delete a {kind}"), &kind_gvk, vec![query("dryRun", DRY_RUN)], &status_ref),
            "parameters": path_params.clone(),
        }),
    );

    let mut collection_params = vec![];
    if r.namespaced {
        collection_params.push(path_params[1].clone());
    }
    collection_params.push(path_params[path_params.len() - 1].clone());
    let mut post = operation(
        "post",
        format!("create{stem}{scope}{kind}"),
        format!("create a {kind}"),
        &kind_gvk,
        write_params(),
        &item,
    );
    post["requestBody"] = json!({"content": json_content(item.clone()), "required": true});
    paths.insert(
        format!("{prefix}/{}", r.plural),
        json!({
            "get": operation("list", format!("list{stem}{scope}{kind}"), format!("list or watch objects of kind {kind}"), &kind_gvk, vec![], &list),
            "post": post,
            "parameters": collection_params.clone(),
        }),
    );
    if r.namespaced {
        paths.insert(
            format!("{base}/{}", r.plural),
            json!({
                "get": operation("list", format!("list{stem}{kind}ForAllNamespaces"), format!("list or watch objects of kind {kind}"), &kind_gvk, vec![], &list),
                "parameters": [path_params[path_params.len() - 1].clone()],
            }),
        );
    }
    if r.status {
        let mut patch = operation(
            "patch",
            format!("patch{stem}{scope}{kind}Status"),
            format!("partially update status of the specified {kind}"),
            &kind_gvk,
            patch_params.clone(),
            &item,
        );
        patch["requestBody"] = patch_body.clone();
        let mut put = operation(
            "put",
            format!("replace{stem}{scope}{kind}Status"),
            format!("replace status of the specified {kind}"),
            &kind_gvk,
            write_params(),
            &item,
        );
        put["requestBody"] = json!({"content": json_content(item.clone()), "required": true});
        paths.insert(
            format!("{prefix}/{}/{{name}}/status", r.plural),
            json!({
                "get": operation("get", format!("read{stem}{scope}{kind}Status"), format!("read status of the specified {kind}"), &kind_gvk, vec![], &item),
                "put": put,
                "patch": patch,
                "parameters": path_params.clone(),
            }),
        );
    }
    if r.scale {
        let scale_gvk = gvk("autoscaling", "v1", "Scale");
        let scale = schema_ref("io.k8s.api.autoscaling.v1.Scale");
        let mut patch = operation(
            "patch",
            format!("patch{stem}{scope}{kind}Scale"),
            format!("partially update scale of the specified {kind}"),
            &scale_gvk,
            patch_params,
            &scale,
        );
        patch["requestBody"] = patch_body;
        paths.insert(
            format!("{prefix}/{}/{{name}}/scale", r.plural),
            json!({
                "get": operation("get", format!("read{stem}{scope}{kind}Scale"), format!("read scale of the specified {kind}"), &scale_gvk, vec![], &scale),
                "patch": patch,
                "parameters": path_params,
            }),
        );
    }
}

/// A CRD's `openAPIV3Schema` as the real server publishes it: apiVersion/kind/metadata
/// described, metadata a reference to ObjectMeta, the GVK attached.
fn crd_component(group: &str, version: &str, kind: &str, schema: &Value) -> Value {
    let mut s = match schema {
        Value::Object(_) => schema.clone(),
        _ => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    };
    if s.get("type").is_none() {
        s["type"] = json!("object");
    }
    let props = s
        .as_object_mut()
        .map(|m| m.entry("properties").or_insert_with(|| json!({})));
    if let Some(Value::Object(props)) = props {
        props.insert("apiVersion".into(), builtin::api_version_field());
        props.insert("kind".into(), builtin::kind_field());
        props.insert(
            "metadata".into(),
            json!({"allOf": [schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")], "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}),
        );
    }
    s["x-kubernetes-group-version-kind"] = json!([gvk(group, version, kind)]);
    s
}

fn list_component(group: &str, version: &str, kind: &str) -> Value {
    json!({
        "type": "object",
        "description": format!("{kind}List is a list of {kind}"),
        "required": ["items"],
        "properties": {
            "apiVersion": builtin::api_version_field(),
            "items": {"type": "array", "description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", kind.to_lowercase()),
                      "items": schema_ref(&schema_name(group, version, kind))},
            "kind": builtin::kind_field(),
            "metadata": {"allOf": [schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")], "description": "Standard list metadata."},
        },
        "x-kubernetes-group-version-kind": [gvk(group, version, &format!("{kind}List"))],
    })
}

/// `GET /openapi/v3/<api/v1 | apis/g/v>`: paths for every resource (with the PATCH
/// `fieldValidation` parameter kubectl looks for) and `components.schemas` for `explain`:
/// CRD schemas synthesised from `crd_schemas`, built-ins from the hand-written subset,
/// anything else a permissive object.
pub fn v3_group_version(
    group: &str,
    version: &str,
    resources: &[ResourceDoc],
    crd_schemas: &[CrdSchema],
) -> Value {
    let mut paths = Map::new();
    let mut schemas: BTreeMap<String, Value> = builtin::common_schemas();
    let builtins = builtin_schemas(group, version);
    for r in resources {
        let crd = crd_schemas.iter().find(|c| c.kind == r.kind);
        resource_paths(group, version, r, crd.is_some(), &mut paths);
        let name = schema_name(group, version, &r.kind);
        let component = if let Some(crd) = crd {
            crd_component(group, version, &r.kind, &crd.open_api_v3_schema)
        } else if let Some(s) = builtins.get(&name) {
            s.clone()
        } else {
            crd_component(group, version, &r.kind, &Value::Null)
        };
        schemas.insert(name, component);
        schemas.insert(
            schema_name(group, version, &format!("{}List", r.kind)),
            list_component(group, version, &r.kind),
        );
    }
    // Nested built-in types (PodSpec, Container, …) referenced by the kinds above.
    for (name, s) in builtins {
        schemas.entry(name).or_insert(s);
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}
