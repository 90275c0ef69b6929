//! `/openapi/v2` and `/openapi/v3` routes (spec §2.3). kubectl reads the v3 documents to learn
//! that the server supports `fieldValidation` (then skips client-side validation).

use crate::state::AppState;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

pub fn handle(state: &AppState, rest: &[&str], _query: &HashMap<String, String>) -> Response {
    let (resources, generation) = {
        let inner = state.lock();
        (inner.resources.clone(), inner.resources_generation)
    };
    match rest {
        ["v3"] => {
            let gvs: Vec<crate::openapi::GroupVersionInfo> = {
                let mut seen = Vec::new();
                for r in &resources {
                    if !seen.iter().any(|g: &crate::openapi::GroupVersionInfo| {
                        g.group == r.group && g.version == r.version
                    }) {
                        seen.push(crate::openapi::GroupVersionInfo {
                            group: r.group.clone(),
                            version: r.version.clone(),
                            hash: format!("{generation:016X}"),
                        });
                    }
                }
                seen
            };
            let root = crate::openapi::v3_root(&gvs);
            if !root.is_null() {
                return json_ok(&root);
            }
            let mut paths = Map::new();
            for r in &resources {
                let p = gv_path(&r.group, &r.version);
                paths.insert(
                    p.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={generation:016X}")}),
                );
            }
            json_ok(&json!({"paths": paths}))
        }
        ["v3", gv @ ..] => {
            let p = gv.join("/");
            let rs: Vec<_> = resources
                .iter()
                .filter(|r| gv_path(&r.group, &r.version) == p)
                .collect();
            if rs.is_empty() {
                return (StatusCode::NOT_FOUND, "404 page not found").into_response();
            }
            let docs: Vec<crate::openapi::ResourceDoc> = rs
                .iter()
                .map(|r| crate::openapi::ResourceDoc {
                    kind: r.kind.clone(),
                    plural: r.plural.clone(),
                    namespaced: r.namespaced,
                    status: r.status,
                    scale: r.scale.is_some(),
                })
                .collect();
            let crds: Vec<crate::openapi::CrdSchema> = rs
                .iter()
                .filter_map(|r| {
                    Some(crate::openapi::CrdSchema {
                        kind: r.kind.clone(),
                        open_api_v3_schema: r.crd.as_ref()?.schema.clone()?,
                    })
                })
                .collect();
            let doc = crate::openapi::v3_group_version(&rs[0].group, &rs[0].version, &docs, &crds);
            if !doc.is_null() {
                let mut doc = doc;
                if rs.iter().any(|r| r.is_crd()) {
                    // Custom resources accept no strategic merge patch: the real server lists
                    // only json-patch, merge-patch and apply-patch, and kubectl's client-side
                    // apply picks strategic merge when the document offers it.
                    strip_key(&mut doc, "application/strategic-merge-patch+json");
                }
                return json_ok(&doc);
            }
            let mut paths = Map::new();
            let mut schemas = Map::new();
            for r in rs {
                let base = if r.namespaced {
                    format!("/{p}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
                } else {
                    format!("/{p}/{}/{{name}}", r.plural)
                };
                let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
                let params = json!([
                    {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                ]);
                let op = json!({"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "patch", "parameters": params, "responses": {"200": {"description": "OK"}}});
                paths.insert(base, json!({"patch": op, "put": op}));
                let schema_name = format!(
                    "{}.{}.{}",
                    r.group.split('.').rev().collect::<Vec<_>>().join("."),
                    r.version,
                    r.kind
                );
                let mut s = r
                    .crd
                    .as_ref()
                    .and_then(|c| c.schema.clone())
                    .unwrap_or_else(
                        || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
                    );
                s["x-kubernetes-group-version-kind"] = json!([gvk]);
                schemas.insert(schema_name, s);
            }
            json_ok(
                &json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": paths, "components": {"schemas": schemas}}),
            )
        }
        _ => (StatusCode::NOT_FOUND, "404 page not found").into_response(),
    }
}

fn json_ok(v: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response()
}

fn strip_key(v: &mut Value, key: &str) {
    match v {
        Value::Object(m) => {
            m.remove(key);
            m.values_mut().for_each(|c| strip_key(c, key));
        }
        Value::Array(a) => a.iter_mut().for_each(|c| strip_key(c, key)),
        _ => {}
    }
}
