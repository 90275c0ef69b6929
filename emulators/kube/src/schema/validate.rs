//! Structural validation with the real server's messages: kube-openapi's schema validator
//! errors as converted by apiextensions' `validateCustomResource`, then the embedded-resource
//! (`schemaobjectmeta.Validate`) and list-type (`structurallisttype`) checks.

use serde_json::Value;

use super::{Cause, Node, formats, gofmt};

/// Paths in kube-openapi errors: properties and map keys dotted, list items `[i]`.
fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// go-openapi's "name in body" subject (the root is ".").
fn subject(path: &str) -> &str {
    if path.is_empty() { "." } else { path }
}

/// Schema errors for the whole object.
pub(crate) fn structural(root: &Node, obj: &Value) -> Vec<Cause> {
    structural_at(root, obj, "")
}

/// Schema errors for `value` validated against `node` at `path`.
pub(crate) fn structural_at(node: &Node, value: &Value, path: &str) -> Vec<Cause> {
    let mut out = Vec::new();
    check(node, value, path, &mut out);
    out
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "number" => v.is_number(),
        // go-openapi accepts a float that is a whole number for `integer`.
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => true,
    }
}

/// kube-openapi's `SchemaValidator`: type, junctors, string, format, number, slice, enum,
/// object, in that order. A type mismatch does not stop the enum check (both are reported).
fn check(node: &Node, value: &Value, path: &str, out: &mut Vec<Cause>) {
    let subject = subject(path);
    let expected = if node.int_or_string {
        Some("integer,string".to_string())
    } else {
        node.type_.clone()
    };
    if value.is_null() {
        if node.nullable || expected.is_none() {
            return;
        }
        let t = expected.unwrap_or_default();
        out.push(Cause::type_invalid(
            path,
            &Value::from("null"),
            &format!("{subject} in body must be of type {t}: \"null\""),
        ));
        check_enum(node, value, path, out);
        return;
    }
    if let Some(t) = &expected {
        let ok = if node.int_or_string {
            type_matches("integer", value) || value.is_string()
        } else {
            type_matches(t, value)
        };
        if !ok {
            let actual = gofmt::json_type(value);
            out.push(Cause::type_invalid(
                path,
                &Value::from(actual),
                &format!(
                    "{subject} in body must be of type {t}: {}",
                    gofmt::quote(actual)
                ),
            ));
            check_enum(node, value, path, out);
            return;
        }
    }

    junctors(node, value, path, out);

    match value {
        Value::String(s) => check_string(node, s, value, path, out),
        Value::Number(n) => check_number(node, n, value, path, out),
        Value::Array(items) => {
            if let Some(item_node) = &node.items {
                for (i, item) in items.iter().enumerate() {
                    check(item_node, item, &index(path, i), out);
                }
            }
            if let Some(min) = node.min_items
                && (items.len() as u64) < min
            {
                out.push(Cause::invalid(
                    path,
                    &Value::from(items.len()),
                    &format!("{subject} in body should have at least {min} items"),
                ));
            }
            if let Some(max) = node.max_items
                && (items.len() as u64) > max
            {
                out.push(Cause::too_many(path, items.len(), max));
            }
        }
        _ => {}
    }
    check_enum(node, value, path, out);
    if let Value::Object(map) = value {
        check_object(node, map, path, out);
    }
}

/// The object validator: a properties-count failure is the only error of the node; then map
/// values, declared properties, and missing required fields.
fn check_object(
    node: &Node,
    map: &serde_json::Map<String, Value>,
    path: &str,
    out: &mut Vec<Cause>,
) {
    let subject = subject(path);
    if let Some(min) = node.min_properties
        && (map.len() as u64) < min
    {
        out.push(Cause::invalid(
            path,
            &Value::from(map.len()),
            &format!("{subject} in body should have at least {min} properties"),
        ));
        return;
    }
    if let Some(max) = node.max_properties
        && (map.len() as u64) > max
    {
        out.push(Cause::too_many(path, map.len(), max));
        return;
    }
    if let Some(add) = &node.additional {
        for (key, v) in map
            .iter()
            .filter(|(k, _)| !node.properties.contains_key(k.as_str()))
        {
            check(add, v, &child(path, key), out);
        }
    }
    for (key, v) in map {
        if let Some(prop) = node.properties.get(key) {
            check(prop, v, &child(path, key), out);
        }
    }
    for name in &node.required {
        if !map.contains_key(name) {
            out.push(Cause::required(child(path, name), ""));
        }
    }
}

fn check_enum(node: &Node, value: &Value, path: &str, out: &mut Vec<Cause>) {
    let Some(values) = &node.enum_values else {
        return;
    };
    let same_number =
        |e: &Value| value.is_number() && e.as_f64().is_some() && e.as_f64() == value.as_f64();
    if values.contains(value) || values.iter().any(same_number) {
        return;
    }
    let valid: Vec<String> = values
        .iter()
        .map(|e| match e {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    out.push(Cause::not_supported(path, value, &valid));
}

fn check_string(node: &Node, s: &str, value: &Value, path: &str, out: &mut Vec<Cause>) {
    let subject = subject(path);
    let chars = s.chars().count() as u64;
    if let Some(max) = node.max_length
        && chars > max
    {
        out.push(Cause::too_long(path, max));
    }
    if let Some(min) = node.min_length
        && chars < min
    {
        out.push(Cause::invalid(
            path,
            value,
            &format!("{subject} in body should be at least {min} chars long"),
        ));
    }
    if let Some((pattern, re)) = &node.pattern
        && !re.is_match(s)
    {
        out.push(Cause::invalid(
            path,
            value,
            &format!("{subject} in body should match '{pattern}'"),
        ));
    }
    if let Some(format) = &node.format
        && !formats::valid(format, s)
    {
        out.push(Cause::type_invalid(
            path,
            value,
            &format!(
                "{subject} in body must be of type {format}: {}",
                gofmt::quote(s)
            ),
        ));
    }
}

/// go-openapi's `*NativeType` checks: integer data is compared with (and reports) the bound
/// truncated to int64 (`less than or equal to 1000000`), float data the float bound (`1e+06`).
fn check_number(
    node: &Node,
    n: &serde_json::Number,
    value: &Value,
    path: &str,
    out: &mut Vec<Cause>,
) {
    let subject = subject(path);
    let Some(x) = n.as_f64() else { return };
    let integer = n.is_i64() || n.is_u64();
    let (x, bound) = if integer {
        let x = n.as_i64().map_or(x, |i| i as f64);
        (x, (|b: f64| b.trunc()) as fn(f64) -> f64)
    } else {
        (x, (|b: f64| b) as fn(f64) -> f64)
    };
    let show = |b: f64| {
        if integer {
            (b as i64).to_string()
        } else {
            gofmt::float(b)
        }
    };
    let mut fail = |detail: String| {
        out.push(Cause::invalid(
            path,
            value,
            &format!("{subject} in body {detail}"),
        ))
    };
    if let Some(max) = node.maximum.map(bound) {
        if node.exclusive_maximum && x >= max {
            fail(format!("should be less than {}", show(max)));
        } else if !node.exclusive_maximum && x > max {
            fail(format!("should be less than or equal to {}", show(max)));
        }
    }
    if let Some(min) = node.minimum.map(bound) {
        if node.exclusive_minimum && x <= min {
            fail(format!("should be greater than {}", show(min)));
        } else if !node.exclusive_minimum && x < min {
            fail(format!("should be greater than or equal to {}", show(min)));
        }
    }
    if let Some(m) = node.multiple_of.map(bound)
        && m != 0.0
        && (x / m).fract().abs() > 1e-9
    {
        fail(format!("should be a multiple of {}", show(m)));
    }
}

/// allOf / anyOf / oneOf / not: structural schemas allow only value validations inside them.
fn junctors(node: &Node, value: &Value, path: &str, out: &mut Vec<Cause>) {
    let subject = subject(path);
    for branch in &node.all_of {
        check(branch, value, path, out);
    }
    if !node.any_of.is_empty()
        && !node
            .any_of
            .iter()
            .any(|b| structural_at(b, value, path).is_empty())
    {
        out.push(Cause::invalid(
            path,
            &Value::from(""),
            &format!("{subject} in body must validate at least one schema (anyOf)"),
        ));
        if let Some(first) = node.any_of.first() {
            check(first, value, path, out);
        }
    }
    if !node.one_of.is_empty() {
        let passing = node
            .one_of
            .iter()
            .filter(|b| structural_at(b, value, path).is_empty())
            .count();
        if passing != 1 {
            out.push(Cause::invalid(
                path,
                &Value::from(""),
                &format!("{subject} in body must validate one and only one schema (oneOf)"),
            ));
        }
    }
    if let Some(not) = &node.not
        && structural_at(not, value, path).is_empty()
    {
        out.push(Cause::invalid(
            path,
            &Value::from(""),
            &format!("{subject} in body must not validate the schema (not)"),
        ));
    }
}

/// Embedded-resource checks over the whole object (`field.Path` rendering: map keys `[key]`).
pub(crate) fn embedded(root: &Node, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    walk_embedded(root, obj, "", true, &mut out);
    out
}

/// List-type set/map uniqueness over the whole object.
pub(crate) fn lists(root: &Node, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    walk_lists(root, obj, "", &mut out);
    out
}

/// The value at a structural error path (`spec.items[0].name`; map keys dotted).
fn value_at<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (key, indices) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            cur = cur.get(key)?;
        }
        for idx in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            cur = cur.get(idx.parse::<usize>().ok()?)?;
        }
    }
    Some(cur)
}

fn parent(path: &str) -> &str {
    if path.ends_with(']') {
        return path.rfind('[').map_or("", |i| &path[..i]);
    }
    path.rfind('.').map_or("", |i| &path[..i])
}

/// Ratcheting: whether the node a structural error is about has the same value in `old`
/// (for a missing required field, the node is the parent object).
pub(crate) fn unchanged(cause: &Cause, new: &Value, old: &Value) -> bool {
    let path = if cause.reason == super::reason::REQUIRED {
        parent(&cause.field)
    } else {
        cause.field.as_str()
    };
    match (value_at(new, path), value_at(old, path)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn field_child(path: &str, key: &str) -> String {
    child(path, key)
}

fn field_key(path: &str, key: &str) -> String {
    format!("{path}[{key}]")
}

fn walk_embedded(node: &Node, value: &Value, path: &str, root: bool, out: &mut Vec<Cause>) {
    match value {
        Value::Object(map) => {
            if node.embedded && !root {
                check_embedded(map, path, out);
            }
            for (key, v) in map {
                if let Some(prop) = node.properties.get(key) {
                    walk_embedded(prop, v, &field_child(path, key), false, out);
                } else if let Some(add) = &node.additional {
                    walk_embedded(add, v, &field_key(path, key), false, out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_node) = &node.items {
                for (i, item) in items.iter().enumerate() {
                    walk_embedded(item_node, item, &index(path, i), false, out);
                }
            }
        }
        _ => {}
    }
}

fn dns1035_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `validateEmbeddedResource`: apiVersion and kind required and well-formed.
fn check_embedded(map: &serde_json::Map<String, Value>, path: &str, out: &mut Vec<Cause>) {
    if !map.contains_key("apiVersion") {
        out.push(Cause::required(
            field_child(path, "apiVersion"),
            "must not be empty",
        ));
    }
    if !map.contains_key("kind") {
        out.push(Cause::required(
            field_child(path, "kind"),
            "must not be empty",
        ));
    }
    if let Some(v) = map.get("apiVersion") {
        let p = field_child(path, "apiVersion");
        match v.as_str() {
            None => out.push(Cause::invalid(p, v, "must be a string")),
            Some("") => out.push(Cause::invalid(p, v, "must not be empty")),
            Some(s) if s.matches('/').count() > 1 => {
                out.push(Cause::invalid(
                    p,
                    v,
                    &format!("unexpected GroupVersion string: {s}"),
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(v) = map.get("kind") {
        let p = field_child(path, "kind");
        match v.as_str() {
            None => out.push(Cause::invalid(p, v, "must be a string")),
            Some("") => out.push(Cause::invalid(p, v, "must not be empty")),
            Some(s) if !dns1035_label(&s.to_lowercase()) => out.push(Cause::invalid(
                p,
                v,
                "may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
            )),
            Some(_) => {}
        }
    }
}

fn walk_lists(node: &Node, value: &Value, path: &str, out: &mut Vec<Cause>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if let Some(prop) = node.properties.get(key) {
                    walk_lists(prop, v, &field_child(path, key), out);
                } else if let Some(add) = &node.additional {
                    walk_lists(add, v, &field_key(path, key), out);
                }
            }
        }
        Value::Array(items) => {
            match node.list_type.as_deref() {
                Some("set") => {
                    for (i, item) in items.iter().enumerate() {
                        if items[..i].contains(item) {
                            out.push(Cause::duplicate(index(path, i), item));
                        }
                    }
                }
                Some("map") => check_list_map(node, items, path, out),
                _ => {}
            }
            if let Some(item_node) = &node.items {
                for (i, item) in items.iter().enumerate() {
                    walk_lists(item_node, item, &index(path, i), out);
                }
            }
        }
        _ => {}
    }
}

/// The key tuple of a list-map element (absent keys take the key field's default).
pub(crate) fn list_map_key(node: &Node, item: &Value) -> serde_json::Map<String, Value> {
    let mut key = serde_json::Map::new();
    for name in &node.list_map_keys {
        let v = item.get(name).cloned().or_else(|| {
            node.items
                .as_ref()
                .and_then(|i| i.properties.get(name))
                .and_then(|p| p.default.clone())
        });
        if let Some(v) = v {
            key.insert(name.clone(), v);
        }
    }
    key
}

fn check_list_map(node: &Node, items: &[Value], path: &str, out: &mut Vec<Cause>) {
    for (i, item) in items.iter().enumerate() {
        if !item.is_object() && !item.is_null() {
            out.push(Cause::invalid(
                index(path, i),
                item,
                "must be an object for an array of list-type map",
            ));
            return;
        }
    }
    if items.len() <= 1 {
        return;
    }
    let mut seen: Vec<serde_json::Map<String, Value>> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if item.is_null() {
            continue;
        }
        let key = list_map_key(node, item);
        if seen.contains(&key) {
            out.push(Cause::duplicate(index(path, i), &Value::Object(key)));
        } else {
            seen.push(key);
        }
    }
}
