//! Patch application (spec §6.2): JSON merge patch, JSON patch with the Kubernetes `test`
//! semantics, and strategic merge patch for built-in kinds.

use crate::error::{ApiError, ApiResult};
use serde_json::{Map, Value};

/// RFC 7386 merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// RFC 6902 JSON patch. A `test` against a missing object member compares as `null` (the
/// behaviour of the JSON-patch library the real server uses); a missing parent still fails.
pub fn json_patch(target: &mut Value, patch: &Value) -> ApiResult<()> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| {
        ApiError::bad_request(format!(
            "the server rejected our request due to an error in our request: {e}"
        ))
    })?;
    if ops.0.len() > 10_000 {
        return Err(ApiError::bad_request(
            "the allowed maximum operations in a JSON patch is 10000",
        ));
    }
    for op in ops.0 {
        if let json_patch::PatchOperation::Test(t) = &op {
            let path = t.path.as_str();
            let actual = match target.pointer(path) {
                Some(v) => v.clone(),
                None => {
                    let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                    if target.pointer(parent).is_none_or(|p| !p.is_object()) {
                        return Err(patch_invalid(format!(
                            "testing value {path} failed: missing parent"
                        )));
                    }
                    Value::Null
                }
            };
            if actual != t.value {
                return Err(patch_invalid(format!(
                    "testing value {path} failed: test failed"
                )));
            }
            continue;
        }
        json_patch::patch(target, &[op]).map_err(|e| patch_invalid(e.to_string()))?;
    }
    Ok(())
}

/// JSON-patch failures are 422 Invalid with empty details (exact library wording unverified).
/// A JSON patch that does not apply: upstream answers any such failure with a generic 422
/// (`NewGenericServerResponse`), the patch library's own text only in its log.
fn patch_invalid(message: String) -> ApiError {
    tracing::debug!(%message, "json patch does not apply");
    ApiError::Invalid {
        message: "the server rejected our request due to an error in our request".into(),
        details: serde_json::json!({}),
    }
}

/// The merge key of a built-in list field (patchMergeKey), by field name.
pub fn builtin_list_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "hostAliases"
        | "resourceClaims"
        | "secrets" => match field {
            "hostAliases" => "ip",
            _ => "name",
        },
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "tolerations" | "topologySpreadConstraints" => return None,
        _ => return None,
    })
}

/// Strategic merge patch for built-in kinds: merge patch plus merging of keyed lists and the
/// `$patch`, `$setElementOrder`, `$retainKeys` and `$deleteFromPrimitiveList` directives.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    strategic_inner(target, patch, None)
}

fn strategic_inner(target: &mut Value, patch: &Value, _field: Option<&str>) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut clean = p.clone();
        clean.remove("$patch");
        *target = Value::Object(clean);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    if let Some(Value::Array(keep)) = p.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        t.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in p {
        if k.starts_with("$setElementOrder/") || k == "$retainKeys" || k == "$patch" {
            continue;
        }
        if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Value::Array(del)) = (t.get_mut(list), v) {
                cur.retain(|x| !del.contains(x));
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (builtin_list_key(k), v) {
            (Some(key), Value::Array(items)) if items.iter().all(Value::is_object) => {
                let cur = t.entry(k.clone()).or_insert(Value::Array(vec![]));
                if !cur.is_array() {
                    *cur = Value::Array(vec![]);
                }
                if let Value::Array(cur) = cur {
                    merge_keyed_list(cur, items, key);
                }
                if let Some(Value::Array(order)) = p.get(&format!("$setElementOrder/{k}"))
                    && let Some(Value::Array(cur)) = t.get_mut(k)
                {
                    reorder(cur, order, key);
                }
            }
            _ => strategic_inner(t.entry(k.clone()).or_insert(Value::Null), v, Some(k)),
        }
    }
}

fn merge_keyed_list(cur: &mut Vec<Value>, items: &[Value], key: &str) {
    for item in items {
        let id = item.get(key).cloned();
        let directive = item.get("$patch").and_then(Value::as_str);
        let pos = id
            .as_ref()
            .and_then(|id| cur.iter().position(|c| c.get(key) == Some(id)));
        match (directive, pos) {
            (Some("delete"), Some(i)) => {
                cur.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => strategic_inner(&mut cur[i], item, None),
            (_, None) => {
                let mut clean = item.clone();
                if let Value::Object(m) = &mut clean {
                    m.remove("$patch");
                }
                let mut fresh = Value::Object(Map::new());
                strategic_inner(&mut fresh, &clean, None);
                cur.push(fresh);
            }
        }
    }
}

fn reorder(cur: &mut Vec<Value>, order: &[Value], key: &str) {
    let mut sorted = Vec::with_capacity(cur.len());
    for o in order {
        if let Some(id) = o.get(key)
            && let Some(i) = cur.iter().position(|c| c.get(key) == Some(id))
        {
            sorted.push(cur.remove(i));
        }
    }
    sorted.append(cur);
    *cur = sorted;
}

/// Omit empty metadata lists/maps as the real server's typed ObjectMeta does: it never stores
/// `finalizers: []` (the kube-rs finalizer helper's `test ... null` depends on it).
pub fn normalize_metadata(obj: &mut Value) {
    if let Some(Value::Object(m)) = obj.get_mut("metadata") {
        m.retain(|_, c| {
            !(c.is_null()
                || c.as_object().is_some_and(Map::is_empty)
                || c.as_array().is_some_and(Vec::is_empty))
        });
    }
}

/// Drop `null` members recursively (typed built-in kinds cannot hold them).
pub fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, c| !c.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_test_null_on_missing_member() {
        let mut obj = json!({"metadata": {"name": "x"}});
        let p = json!([{"op":"test","path":"/metadata/finalizers","value":null},{"op":"add","path":"/metadata/finalizers","value":["a"]}]);
        json_patch(&mut obj, &p).unwrap();
        assert_eq!(obj["metadata"]["finalizers"], json!(["a"]));
        // Present now: the same test fails.
        assert!(json_patch(&mut obj, &p).is_err());
        // Missing parent fails.
        let p = json!([{"op":"test","path":"/nope/x","value":null}]);
        assert!(json_patch(&mut obj, &p).is_err());
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut obj = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}});
        strategic_merge(
            &mut obj,
            &json!({"spec": {"containers": [{"name": "b", "image": "2"}, {"name": "c", "image": "3"}]}}),
        );
        assert_eq!(obj["spec"]["containers"].as_array().unwrap().len(), 3);
        assert_eq!(obj["spec"]["containers"][1]["image"], "2");
        strategic_merge(
            &mut obj,
            &json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
        );
        assert_eq!(obj["spec"]["containers"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn merge_patch_null_deletes() {
        let mut obj = json!({"a": {"b": 1, "c": 2}});
        merge_patch(&mut obj, &json!({"a": {"b": null}}));
        assert_eq!(obj, json!({"a": {"c": 2}}));
    }
}
