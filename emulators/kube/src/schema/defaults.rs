//! Defaulting (`structuraldefaulting.Default`) and removal of disallowed nulls.

use serde_json::Value;

use super::Node;

fn non_nullable_null(v: &Value, node: &Node) -> bool {
    v.is_null() && !node.nullable
}

/// `structuraldefaulting.Default`.
pub(crate) fn default_node(value: &mut Value, node: &Node) {
    match value {
        Value::Object(map) => {
            for (key, prop) in &node.properties {
                let Some(default) = &prop.default else {
                    continue;
                };
                if map.get(key).is_none_or(|v| non_nullable_null(v, prop)) {
                    map.insert(key.clone(), default.clone());
                }
            }
            for (key, child) in map.iter_mut() {
                if let Some(prop) = node.properties.get(key) {
                    default_node(child, prop);
                } else if let Some(add) = &node.additional {
                    if non_nullable_null(child, add) {
                        match &add.default {
                            Some(d) => *child = d.clone(),
                            None => continue,
                        }
                    }
                    default_node(child, add);
                }
            }
        }
        Value::Array(items) => {
            let Some(item_node) = &node.items else { return };
            for item in items.iter_mut() {
                if non_nullable_null(item, item_node) {
                    match &item_node.default {
                        Some(d) => *item = d.clone(),
                        None => continue,
                    }
                }
                default_node(item, item_node);
            }
        }
        _ => {}
    }
}

/// `structuraldefaulting.PruneNonNullableNullsWithoutDefaults`: object fields and map values
/// that are `null` where the schema does not allow it are dropped.
pub(crate) fn prune_nulls(value: &mut Value, node: &Node) {
    match value {
        Value::Object(map) => {
            map.retain(|key, v| {
                let child = node.properties.get(key).or(node.additional.as_deref());
                !(child.is_some_and(|c| non_nullable_null(v, c) && c.default.is_none()))
            });
            for (key, child) in map.iter_mut() {
                if let Some(prop) = node.properties.get(key).or(node.additional.as_deref()) {
                    prune_nulls(child, prop);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_node) = &node.items {
                for item in items.iter_mut() {
                    prune_nulls(item, item_node);
                }
            }
        }
        _ => {}
    }
}
