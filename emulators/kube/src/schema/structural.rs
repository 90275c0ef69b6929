//! The structural-schema invariants a CRD's `openAPIV3Schema` must meet before the real server
//! serves it (`apiextensions-apiserver/pkg/apiserver/schema/validation.go`,
//! `validateStructuralInvariants`), limited to the clear-cut ones: a `type` everywhere it is
//! required, `items` for arrays, object roots, embedded resources typed `object`, no root
//! `additionalProperties`, and the int-or-string exclusions. Errors come sorted by their
//! text, as the real server sorts them.

use serde_json::Value;

use super::Cause;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

/// Every violation under `path` (e.g. `spec.validation.openAPIV3Schema`).
pub(crate) fn violations(schema: &Value, path: &str) -> Vec<Cause> {
    let mut out = Vec::new();
    walk(schema, Level::Root, path, &mut out);
    out.sort_by_key(Cause::display);
    out
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

fn walk(schema: &Value, level: Level, path: &str, out: &mut Vec<Cause>) {
    let Some(obj) = schema.as_object() else {
        return;
    };
    let type_ = obj.get("type").and_then(Value::as_str).unwrap_or("");
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    let embedded = flag(schema, "x-kubernetes-embedded-resource");

    if type_ == "array" && obj.get("items").is_none() {
        out.push(Cause::required(
            format!("{path}.items"),
            "must be specified",
        ));
    }
    if let Some(items) = obj.get("items") {
        walk(items, Level::Item, &format!("{path}.items"), out);
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            walk(
                prop,
                Level::Field,
                &format!("{path}.properties[{name}]"),
                out,
            );
        }
    }
    if let Some(additional) = obj.get("additionalProperties") {
        if level == Level::Root {
            out.push(Cause::forbidden(
                format!("{path}.additionalProperties"),
                "must not be used at the root",
            ));
        }
        if additional.is_object() {
            walk(
                additional,
                Level::Field,
                &format!("{path}.additionalProperties"),
                out,
            );
        }
    }
    if int_or_string && preserve {
        out.push(Cause::invalid(
            format!("{path}.x-kubernetes-preserve-unknown-fields"),
            &Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if int_or_string && embedded {
        out.push(Cause::invalid(
            format!("{path}.x-kubernetes-embedded-resource"),
            &Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if embedded && type_ != "object" {
        let detail = "must be object if x-kubernetes-embedded-resource is true";
        if type_.is_empty() {
            out.push(Cause::required(format!("{path}.type"), detail));
        } else {
            out.push(Cause::invalid(
                format!("{path}.type"),
                &Value::from(type_),
                detail,
            ));
        }
    } else if type_.is_empty() && !int_or_string && !preserve {
        let detail = match level {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        out.push(Cause::required(format!("{path}.type"), detail));
    }
    if embedded && obj.get("additionalProperties").is_some() {
        out.push(Cause::forbidden(
            format!("{path}.additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if level == Level::Root && !type_.is_empty() && type_ != "object" {
        out.push(Cause::invalid(
            format!("{path}.type"),
            &Value::from(type_),
            "must be object at the root",
        ));
    }
    if level == Level::Root || embedded {
        for meta in ["kind", "apiVersion"] {
            if let Some(t) = obj
                .get("properties")
                .and_then(|p| p.get(meta))
                .map(|p| p.get("type").and_then(Value::as_str).unwrap_or(""))
                && t != "string"
            {
                out.push(Cause::invalid(
                    format!("{path}.properties[{meta}].type"),
                    &Value::from(t),
                    "must be string",
                ));
            }
        }
    }
    if embedded
        && !preserve
        && obj
            .get("properties")
            .and_then(Value::as_object)
            .is_none_or(|p| p.is_empty())
    {
        out.push(Cause::required(
            format!("{path}.properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}
