//! Pruning of undeclared fields (the real server's `pruning.Prune`).

use serde_json::Value;

use super::{Node, OBJECT_META_FIELDS, RESOURCE_META};

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `pruning.prune` / `skipPrune`; `resource` marks the root and embedded resources, whose
/// apiVersion/kind/metadata are kept (metadata reduced to ObjectMeta fields).
pub(crate) fn prune_node(
    value: &mut Value,
    node: Option<&Node>,
    resource: bool,
    path: &str,
    pruned: &mut Vec<String>,
) {
    prune_inner(value, node, resource, false, path, pruned);
}

/// `skip` is `skipPrune`: list items under a preserve-unknown-fields node keep unknown fields too.
fn prune_inner(
    value: &mut Value,
    node: Option<&Node>,
    resource: bool,
    skip: bool,
    path: &str,
    pruned: &mut Vec<String>,
) {
    let preserve = skip || node.is_some_and(|n| n.preserve_unknown);
    match value {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child_path = join_key(path, &key);
                if resource && RESOURCE_META.contains(&key.as_str()) {
                    if key == "metadata"
                        && let Some(Value::Object(meta)) = map.get_mut("metadata")
                    {
                        let unknown: Vec<String> = meta
                            .keys()
                            .filter(|k| !OBJECT_META_FIELDS.contains(&k.as_str()))
                            .cloned()
                            .collect();
                        for k in unknown {
                            meta.remove(&k);
                            pruned.push(join_key(&child_path, &k));
                        }
                    }
                    continue;
                }
                let Some(child) = map.get_mut(&key) else {
                    continue;
                };
                match node {
                    Some(n) => {
                        if let Some(prop) = n.properties.get(&key) {
                            prune_node(child, Some(prop), prop.embedded, &child_path, pruned);
                        } else if let Some(add) = &n.additional {
                            prune_node(child, Some(add), add.embedded, &child_path, pruned);
                        } else if !preserve {
                            map.remove(&key);
                            pruned.push(child_path);
                        }
                    }
                    None => {
                        map.remove(&key);
                        pruned.push(child_path);
                    }
                }
            }
        }
        Value::Array(items) => {
            let item_node = node.and_then(|n| n.items.as_deref());
            if preserve && item_node.is_none() {
                return;
            }
            for (i, item) in items.iter_mut().enumerate() {
                let embedded = item_node.is_some_and(|n| n.embedded);
                prune_inner(
                    item,
                    item_node,
                    embedded,
                    preserve,
                    &format!("{path}[{i}]"),
                    pruned,
                );
            }
        }
        _ => {}
    }
}
