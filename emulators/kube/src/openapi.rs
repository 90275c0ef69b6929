//! OpenAPI v3 documents for built-in kinds and served CRDs (pure).
//!
//! Spec: `shared/spec/kube-api-emulation.md` §2.3. kubectl reads `/openapi/v3` to learn that a
//! kind's PATCH accepts `fieldValidation`, and `kubectl explain` reads `components.schemas`.

use serde_json::Value;

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

/// `GET /openapi/v3`.
pub fn v3_root(gvs: &[GroupVersionInfo]) -> Value {
    let _ = gvs;
    Value::Null
}

/// `GET /openapi/v3/<api/v1 | apis/g/v>`.
pub fn v3_group_version(
    group: &str,
    version: &str,
    resources: &[ResourceDoc],
    crd_schemas: &[CrdSchema],
) -> Value {
    let _ = (group, version, resources, crd_schemas);
    Value::Null
}

/// Content hash for the root's `serverRelativeURL` (changes when the document changes).
pub fn content_hash(doc: &Value) -> String {
    let _ = doc;
    String::new()
}

/// `api/v1` or `apis/<group>/<version>`: the key in the root and the document's URL path.
pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}
