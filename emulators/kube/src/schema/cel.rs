//! `x-kubernetes-validations` (CEL) with the real server's semantics and messages.
//!
//! kube-cel compiles and evaluates the rules (with Kubernetes' CEL libraries and the schema's
//! value conversions: date-time → timestamp, embedded resources, maps). The walk is ours,
//! because the real server's differs from kube-cel's in what matters to clients:
//! * `oldSelf` is correlated only through object properties, map values and the items of
//!   `x-kubernetes-list-type: map` lists (by key), never by list index;
//! * `null` values are not evaluated;
//! * failures become `field.Error`s whose bad value is the schema type (`Invalid value: "object"`),
//!   relocated by `fieldPath`, typed by `reason`, paths `spec.items[0]` / `spec.labels[key]`.
//!
//! Each node with rules is compiled as a node-only schema (descendant rules stripped, types and
//! formats kept) so kube-cel evaluates exactly that node's rules against the value we pass.
//! Known gap: cel-rust parses without type checking, so a rule naming an undeclared field is
//! accepted at CRD creation (the real server rejects it) and fails at evaluation instead.

use serde_json::Value;

use super::{Cause, Node, SchemaError, gofmt, validate::list_map_key};

/// One rule as declared.
#[derive(Debug, Clone)]
struct RuleDef {
    rule: String,
    message: Option<String>,
    message_expression: Option<String>,
    reason: Option<String>,
    field_path: Option<String>,
    /// `optionalOldSelf: true`: evaluated here with `oldSelf` an optional (kube-cel binds
    /// null instead, which breaks `oldSelf.hasValue()` / `oldSelf.value()`).
    optional_old_self: bool,
}

/// The compiled rules of one schema node.
#[derive(Debug)]
pub(crate) struct NodeRules {
    /// Every rule, in declaration order (indices match `defs`).
    compiled: kube_cel::CompiledSchema,
    /// The rules without `optionalOldSelf`, when some have it (kube-cel evaluates these).
    without_optional: Option<kube_cel::CompiledSchema>,
    defs: Vec<RuleDef>,
}

fn strip_rules(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "x-kubernetes-validations")
                .map(|(k, v)| (k.clone(), strip_rules(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_rules).collect()),
        other => other.clone(),
    }
}

/// Go's `%#v` of an `apiextensions.ValidationRule`, the bad value the real server reports for a
/// rule that does not compile.
fn go_rule(raw: &Value) -> String {
    let s = |k: &str| gofmt::quote(raw.get(k).and_then(Value::as_str).unwrap_or(""));
    let reason = match raw.get("reason").and_then(Value::as_str) {
        Some(_) => "(*apiextensions.FieldValueErrorReason)(0xc000000000)".to_string(),
        None => "(*apiextensions.FieldValueErrorReason)(nil)".to_string(),
    };
    let optional = match raw.get("optionalOldSelf").and_then(Value::as_bool) {
        Some(_) => "(*bool)(0xc000000000)",
        None => "(*bool)(nil)",
    };
    format!(
        "apiextensions.ValidationRule{{Rule:{}, Message:{}, MessageExpression:{}, Reason:{reason}, FieldPath:{}, OptionalOldSelf:{optional}}}",
        s("rule"),
        s("message"),
        s("messageExpression"),
        s("fieldPath"),
    )
}

impl NodeRules {
    /// Compiles the node's rules; `None` when it declares none.
    pub(crate) fn compile(raw: &Value, path: &str) -> Result<Option<NodeRules>, SchemaError> {
        let Some(rules) = raw
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        else {
            return Ok(None);
        };
        if rules.is_empty() {
            return Ok(None);
        }
        let mut defs = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            let str_of = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
            let Some(rule) = str_of("rule").filter(|s| !s.trim().is_empty()) else {
                return Err(SchemaError::Invalid {
                    field: format!("{path}.x-kubernetes-validations[{i}].rule"),
                    message: "Required value".into(),
                });
            };
            let reason = str_of("reason");
            if let Some(reason) = &reason
                && ![
                    "FieldValueInvalid",
                    "FieldValueForbidden",
                    "FieldValueRequired",
                    "FieldValueDuplicate",
                ]
                .contains(&reason.as_str())
            {
                return Err(SchemaError::Invalid {
                    field: format!("{path}.x-kubernetes-validations[{i}].reason"),
                    message: format!(
                        "Unsupported value: {}: supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\"",
                        gofmt::quote(reason)
                    ),
                });
            }
            defs.push(RuleDef {
                rule,
                message: str_of("message"),
                message_expression: str_of("messageExpression"),
                reason,
                field_path: str_of("fieldPath"),
                optional_old_self: r.get("optionalOldSelf").and_then(Value::as_bool) == Some(true),
            });
        }
        // Only this node's rules: children keep their schema (types/formats drive the CEL
        // value conversion) but lose their rules, which their own node evaluates.
        let mut node_only = strip_rules(raw);
        if let Value::Object(map) = &mut node_only {
            map.insert(
                "x-kubernetes-validations".into(),
                Value::Array(rules.clone()),
            );
        }
        let compiled = kube_cel::compile_schema(&node_only);
        for (i, result) in compiled.validations.iter().enumerate() {
            let Err(err) = result else { continue };
            let raw_rule = rules.get(i).cloned().unwrap_or(Value::Null);
            let detail = std::error::Error::source(err)
                .map(|s| s.to_string())
                .unwrap_or_else(|| err.to_string());
            return Err(match err {
                // The bad value is the whole rule here too (`schema.XValidations[i]`).
                kube_cel::CompilationError::MessageExpressionParse { .. } => {
                    SchemaError::CelCompile {
                        field: format!("{path}.x-kubernetes-validations[{i}].messageExpression"),
                        message: format!(
                            "Invalid value: {}: messageExpression compilation failed: {detail}",
                            go_rule(&raw_rule)
                        ),
                    }
                }
                _ => SchemaError::CelCompile {
                    field: format!("{path}.x-kubernetes-validations[{i}].rule"),
                    message: format!(
                        "Invalid value: {}: compilation failed: {detail}",
                        go_rule(&raw_rule)
                    ),
                },
            });
        }
        let without_optional = if defs.iter().any(|d| d.optional_old_self) {
            let kept: Vec<Value> = rules
                .iter()
                .filter(|r| r.get("optionalOldSelf").and_then(Value::as_bool) != Some(true))
                .cloned()
                .collect();
            if let Value::Object(map) = &mut node_only {
                map.insert("x-kubernetes-validations".into(), Value::Array(kept));
            }
            Some(kube_cel::compile_schema(&node_only))
        } else {
            None
        };
        Ok(Some(NodeRules {
            compiled,
            without_optional,
            defs,
        }))
    }
}

/// `field.Path` rendering for CEL errors.
fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Evaluates every rule of the schema against `obj` (and `old` on update).
pub(crate) fn evaluate(root: &Node, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut out = Vec::new();
    walk(root, obj, old, "", &mut out);
    out
}

fn walk(node: &Node, value: &Value, old: Option<&Value>, path: &str, out: &mut Vec<Cause>) {
    if value.is_null() {
        return;
    }
    let old = old.filter(|o| !o.is_null());
    if let Some(rules) = &node.rules {
        evaluate_node(node, rules, value, old, path, out);
    }
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let old_child = old.and_then(|o| o.get(key));
                if let Some(prop) = node.properties.get(key) {
                    walk(prop, v, old_child, &child(path, key), out);
                } else if let Some(add) = &node.additional {
                    walk(add, v, old_child, &format!("{path}[{key}]"), out);
                }
            }
        }
        Value::Array(items) => {
            let Some(item_node) = &node.items else { return };
            let correlate = node.list_type.as_deref() == Some("map");
            let old_items = old.and_then(Value::as_array);
            for (i, item) in items.iter().enumerate() {
                let old_item = match (correlate, old_items) {
                    (true, Some(olds)) => {
                        let key = list_map_key(node, item);
                        olds.iter().find(|o| list_map_key(node, o) == key)
                    }
                    _ => None,
                };
                walk(item_node, item, old_item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// `fieldPath` (`.sha`, `.a.b`, `['x']`) appended to the node path.
fn relocate(path: &str, field_path: Option<&str>) -> String {
    let Some(fp) = field_path.map(str::trim).filter(|f| !f.is_empty()) else {
        return path.to_string();
    };
    let mut rendered = String::new();
    let mut rest = fp;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("['") {
            let (key, after) = r.split_once("']").unwrap_or((r, ""));
            rendered = child(&rendered, key);
            rest = after;
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            rendered = child(&rendered, &r[..end]);
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let (idx, after) = r.split_once(']').unwrap_or((r, ""));
            rendered.push_str(&format!("[{idx}]"));
            rest = after;
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            rendered = child(&rendered, &rest[..end]);
            rest = &rest[end..];
        }
    }
    child(path, &rendered)
}

/// `failed rule: <rule>` unless a message is set (both trimmed, as the real server does).
fn static_message(def: &RuleDef) -> String {
    match def
        .message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        Some(m) => m.to_string(),
        None => format!("failed rule: {}", def.rule.trim()),
    }
}

fn rule_error_string(def: &RuleDef) -> String {
    match def
        .message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        Some(m) => m.to_string(),
        None => def.rule.trim().to_string(),
    }
}

/// The real server's wording for a rule that fails to evaluate, from cel-rust's error text
/// (cel-go says `no such key: a`, cel-rust `No such key: a`).
fn runtime_detail(raw: &str, def: &RuleDef) -> String {
    let rule = rule_error_string(def);
    let overload = [
        "No such overload",
        "Unsupported binary operator",
        "Unsupported unary operator",
        "Unexpected type",
        "Method '",
    ];
    if let Some(key) = raw.strip_prefix("No such key: ") {
        format!("no such key: {key} evaluating rule: {rule}")
    } else if overload.iter().any(|p| raw.starts_with(p)) || raw.contains("can not be compared to")
    {
        format!(
            "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {rule}"
        )
    } else if raw.starts_with("Division by zero") {
        format!("division by zero evaluating rule: {rule}")
    } else if raw.starts_with("Remainder by zero") {
        format!("modulus by zero evaluating rule: {rule}")
    } else {
        format!("{raw} evaluating rule: {rule}")
    }
}

/// How one rule ended.
enum Outcome {
    /// Evaluated to false; the resolved message (messageExpression, message or fallback).
    Failed(String),
    /// Could not be evaluated (cel-rust's error text).
    Error(String),
}

/// JSON → CEL for the rules evaluated here (plain conversion, no schema formats).
fn to_cel(v: &Value) -> kube_cel::cel::Value {
    use kube_cel::cel::Value as C;
    match v {
        Value::Null => C::Null,
        Value::Bool(b) => C::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => C::Int(i),
            None => C::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => C::String(std::sync::Arc::new(s.clone())),
        Value::Array(items) => C::List(std::sync::Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => {
            let m: std::collections::HashMap<String, C> =
                map.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            C::from(m)
        }
    }
}

/// The rules with `optionalOldSelf: true`, with `oldSelf` bound to `optional.of(old)` or
/// `optional.none()` as the real server does.
fn evaluate_optional(
    rules: &NodeRules,
    value: &Value,
    old: Option<&Value>,
    unchanged: bool,
    out: &mut Vec<(usize, Outcome)>,
) {
    use kube_cel::KubeCelExt;
    use kube_cel::cel::objects::OptionalValue;
    use kube_cel::cel::{Context, Value as C};
    let mut ctx = Context::default();
    ctx.register_all();
    ctx.add_variable_from_value("self", to_cel(value));
    let old_self = match old {
        Some(o) => OptionalValue::of(to_cel(o)),
        None => OptionalValue::none(),
    };
    ctx.add_variable_from_value("oldSelf", C::Opaque(std::sync::Arc::new(old_self)));
    for (i, def) in rules
        .defs
        .iter()
        .enumerate()
        .filter(|(_, d)| d.optional_old_self)
    {
        let Some(Ok(cr)) = rules.compiled.validations.get(i) else {
            continue;
        };
        if unchanged && !cr.is_transition_rule {
            continue;
        }
        match cr.program.execute(&ctx) {
            Ok(C::Bool(true)) => {}
            Ok(C::Bool(false)) => {
                let from_expression =
                    cr.message_program
                        .as_ref()
                        .and_then(|p| match p.execute(&ctx) {
                            Ok(C::String(m)) if !m.trim().is_empty() && !m.contains('\n') => {
                                Some(m.trim().to_string())
                            }
                            _ => None,
                        });
                out.push((
                    i,
                    Outcome::Failed(from_expression.unwrap_or_else(|| static_message(def))),
                ));
            }
            Ok(_) => out.push((i, Outcome::Error("rule did not evaluate to a bool".into()))),
            Err(e) => out.push((i, Outcome::Error(e.to_string()))),
        }
    }
}

fn evaluate_node(
    node: &Node,
    rules: &NodeRules,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    out: &mut Vec<Cause>,
) {
    // Ratcheting: on an unchanged value only transition rules still count.
    let unchanged = old == Some(value);
    let mut outcomes: Vec<(usize, Outcome)> = Vec::new();
    let kube_cel_rules = rules.without_optional.as_ref().unwrap_or(&rules.compiled);
    if let Err(errors) = kube_cel::validate_compiled(kube_cel_rules, value, old) {
        let mut used = vec![false; rules.defs.len()];
        for err in errors.iter() {
            // Map the error back to its declaration (rule texts may repeat: take them in order).
            let Some(i) = rules
                .defs
                .iter()
                .enumerate()
                .position(|(i, d)| !used[i] && !d.optional_old_self && d.rule == err.rule)
            else {
                continue;
            };
            used[i] = true;
            let transition = rules
                .compiled
                .validations
                .get(i)
                .and_then(|r| r.as_ref().ok())
                .is_some_and(|c| c.is_transition_rule);
            if unchanged && !transition {
                continue;
            }
            let def = &rules.defs[i];
            outcomes.push((
                i,
                match err.kind {
                    kube_cel::ErrorKind::ValidationFailure => {
                        Outcome::Failed(match &def.message_expression {
                            // A messageExpression that yields nothing usable falls back to `message`.
                            Some(_) => {
                                let m = err.message.trim();
                                let fallback = format!("failed rule: {}", def.rule);
                                if m.is_empty() || m.contains('\n') || err.message == fallback {
                                    static_message(def)
                                } else {
                                    m.to_string()
                                }
                            }
                            None => static_message(def),
                        })
                    }
                    _ => Outcome::Error(
                        err.message
                            .strip_prefix("rule evaluation error: ")
                            .unwrap_or(&err.message)
                            .to_string(),
                    ),
                },
            ));
        }
    }
    if rules.without_optional.is_some() {
        evaluate_optional(rules, value, old, unchanged, &mut outcomes);
    }
    outcomes.sort_by_key(|(i, _)| *i);
    let type_value = Value::from(node.type_name());
    for (i, outcome) in outcomes {
        let def = &rules.defs[i];
        match outcome {
            Outcome::Failed(detail) => {
                let field = relocate(path, def.field_path.as_deref());
                out.push(match def.reason.as_deref() {
                    Some("FieldValueForbidden") => Cause::forbidden(field, &detail),
                    Some("FieldValueRequired") => Cause::required(field, &detail),
                    Some("FieldValueDuplicate") => Cause::duplicate(field, &type_value),
                    _ => Cause::invalid(field, &type_value, &detail),
                });
            }
            // Runtime failure (no such key, overload, non-bool result): reported at the node,
            // not relocated, like the real server.
            Outcome::Error(raw) => out.push(Cause::invalid(
                path,
                &type_value,
                &runtime_detail(&raw, def),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::relocate;

    #[test]
    fn field_paths() {
        assert_eq!(relocate("spec", Some(".sha")), "spec.sha");
        assert_eq!(relocate("spec", Some(".a.b")), "spec.a.b");
        assert_eq!(relocate("spec", Some(".items[0]")), "spec.items[0]");
        assert_eq!(relocate("spec", Some("['a.b']")), "spec.a.b");
        assert_eq!(relocate("", Some(".spec")), "spec");
        assert_eq!(relocate("spec", None), "spec");
    }
}
