//! Lenient readers over a target's JSON: missing fields read as absent, never panic (§8).

use serde_json::Value;

/// The value at `path` (object keys).
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, key| cur.get(key))
}

pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

/// Integers; also accepts numeric strings (Argo Rollouts writes observedGeneration as one).
pub fn int_at(v: &Value, path: &[&str]) -> Option<i64> {
    match at(v, path)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub fn bool_at(v: &Value, path: &[&str]) -> bool {
    at(v, path).and_then(Value::as_bool).unwrap_or(false)
}

/// A `status.conditions[]` entry.
#[derive(Clone, Copy, Debug)]
pub struct Cond<'a> {
    pub status: &'a str,
    pub reason: &'a str,
    pub message: &'a str,
    pub observed_generation: Option<i64>,
}

impl Cond<'_> {
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
    pub fn is_false(&self) -> bool {
        self.status == "False"
    }
}

pub fn conditions(v: &Value) -> impl Iterator<Item = (&str, Cond<'_>)> {
    at(v, &["status", "conditions"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let type_ = c.get("type")?.as_str()?;
            Some((
                type_,
                Cond {
                    status: c.get("status").and_then(Value::as_str).unwrap_or("Unknown"),
                    reason: c.get("reason").and_then(Value::as_str).unwrap_or(""),
                    message: c.get("message").and_then(Value::as_str).unwrap_or(""),
                    observed_generation: c.get("observedGeneration").and_then(Value::as_i64),
                },
            ))
        })
}

pub fn condition<'a>(v: &'a Value, type_: &str) -> Option<Cond<'a>> {
    conditions(v).find(|(t, _)| *t == type_).map(|(_, c)| c)
}

pub fn condition_true<'a>(v: &'a Value, type_: &str) -> Option<Cond<'a>> {
    condition(v, type_).filter(Cond::is_true)
}
