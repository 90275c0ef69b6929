//! The JSONPath subset CRD printer columns use (client-go `util/jsonpath`): `.a.b`, `['a.b']`,
//! `[0]`, `[-1]`, `[*]`, `.*`, `..name`, and filters `[?(@.type=="Ready")]` with
//! `== != < <= > >=` or bare existence. Missing keys yield no result, never an error.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Wildcard,
    Index(i64),
    Filter(Filter),
    /// `..`: the next step applies to every descendant (and the node itself).
    Descend,
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    path: Vec<Step>,
    op: Option<(String, Value)>,
}

fn parse(expr: &str) -> Option<Vec<Step>> {
    let mut s = expr.trim();
    if let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        s = inner.trim();
    }
    let s = s.strip_prefix('$').unwrap_or(s);
    parse_steps(s)
}

fn parse_steps(s: &str) -> Option<Vec<Step>> {
    let chars: Vec<char> = s.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                if chars.get(i + 1) == Some(&'.') {
                    steps.push(Step::Descend);
                    i += 2;
                    if chars.get(i) == Some(&'[') {
                        continue;
                    }
                } else {
                    i += 1;
                }
                if chars.get(i) == Some(&'*') {
                    steps.push(Step::Wildcard);
                    i += 1;
                    continue;
                }
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
                if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let close = find_close(&chars, i)?;
                let inner: String = chars[i + 1..close].iter().collect();
                steps.push(parse_bracket(inner.trim())?);
                i = close + 1;
            }
            c if c.is_whitespace() => i += 1,
            _ => {
                // A leading bare name (`status.phase`) is read as a field.
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    name.push(chars[i]);
                    i += 1;
                }
                steps.push(Step::Field(name));
            }
        }
    }
    Some(steps)
}

/// The `]` closing the bracket at `open`, skipping quoted strings and nested brackets.
fn find_close(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (j, &c) in chars.iter().enumerate().skip(open) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    if s.len() >= 2
        && ((s.starts_with('\'') && s.ends_with('\'')) || (s.starts_with('"') && s.ends_with('"')))
    {
        Some(s[1..s.len() - 1].to_string())
    } else {
        None
    }
}

fn parse_bracket(inner: &str) -> Option<Step> {
    if inner == "*" {
        return Some(Step::Wildcard);
    }
    if let Some(key) = unquote(inner) {
        return Some(Step::Field(key));
    }
    if let Some(cond) = inner.strip_prefix('?') {
        let cond = cond.trim().strip_prefix('(')?.strip_suffix(')')?.trim();
        return Some(Step::Filter(parse_filter(cond)?));
    }
    if let Ok(n) = inner.parse::<i64>() {
        return Some(Step::Index(n));
    }
    // `[0:1]` slices are not used by printer columns: take the start.
    inner
        .split(':')
        .next()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map(Step::Index)
}

fn parse_filter(cond: &str) -> Option<Filter> {
    for op in ["==", "!=", "<=", ">=", "<", ">"] {
        if let Some((left, right)) = split_outside_quotes(cond, op) {
            let path = parse_steps(left.trim().strip_prefix('@')?)?;
            let right = right.trim();
            let literal = match unquote(right) {
                Some(s) => Value::String(s),
                None => serde_json::from_str(right).ok()?,
            };
            return Some(Filter {
                path,
                op: Some((op.to_string(), literal)),
            });
        }
    }
    let path = parse_steps(cond.strip_prefix('@')?)?;
    Some(Filter { path, op: None })
}

fn split_outside_quotes<'a>(s: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, _) if s[i..].starts_with(op) => return Some((&s[..i], &s[i + op.len()..])),
            _ => {}
        }
    }
    None
}

fn descendants<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(v);
    match v {
        Value::Object(map) => map.values().for_each(|c| descendants(c, out)),
        Value::Array(items) => items.iter().for_each(|c| descendants(c, out)),
        _ => {}
    }
}

fn eval<'a>(steps: &[Step], input: Vec<&'a Value>) -> Vec<&'a Value> {
    let mut current = input;
    let mut i = 0;
    while i < steps.len() {
        let mut next = Vec::new();
        match &steps[i] {
            Step::Descend => {
                for v in &current {
                    descendants(v, &mut next);
                }
            }
            Step::Field(name) => next.extend(current.iter().filter_map(|v| v.get(name.as_str()))),
            Step::Wildcard => {
                for v in &current {
                    match v {
                        Value::Object(map) => next.extend(map.values()),
                        Value::Array(items) => next.extend(items.iter()),
                        _ => {}
                    }
                }
            }
            Step::Index(n) => {
                for v in &current {
                    if let Value::Array(items) = v {
                        let idx = if *n < 0 { items.len() as i64 + n } else { *n };
                        if let Some(item) = usize::try_from(idx).ok().and_then(|i| items.get(i)) {
                            next.push(item);
                        }
                    }
                }
            }
            Step::Filter(filter) => {
                for v in &current {
                    if let Value::Array(items) = v {
                        next.extend(items.iter().filter(|item| matches(filter, item)));
                    }
                }
            }
        }
        current = next;
        i += 1;
    }
    current
}

fn matches(filter: &Filter, item: &Value) -> bool {
    let found = eval(&filter.path, vec![item]);
    let Some((op, literal)) = &filter.op else {
        return !found.is_empty();
    };
    let Some(left) = found.first() else {
        return false;
    };
    match (left, literal) {
        (Value::Number(a), Value::Number(b)) => {
            let (Some(a), Some(b)) = (a.as_f64(), b.as_f64()) else {
                return false;
            };
            compare(op, a.partial_cmp(&b))
        }
        (Value::String(a), Value::String(b)) => compare(op, Some(a.as_str().cmp(b.as_str()))),
        (a, b) => match op.as_str() {
            "==" => *a == b,
            "!=" => *a != b,
            _ => false,
        },
    }
}

fn compare(op: &str, ord: Option<std::cmp::Ordering>) -> bool {
    use std::cmp::Ordering::*;
    let Some(ord) = ord else { return false };
    match op {
        "==" => ord == Equal,
        "!=" => ord != Equal,
        "<" => ord == Less,
        "<=" => ord != Greater,
        ">" => ord == Greater,
        ">=" => ord != Less,
        _ => false,
    }
}

/// Every result of `expr` against `obj` (empty when the expression does not parse).
pub fn jsonpath_all(obj: &Value, expr: &str) -> Vec<Value> {
    match parse(expr) {
        Some(steps) => eval(&steps, vec![obj]).into_iter().cloned().collect(),
        None => Vec::new(),
    }
}

/// The first result of a CRD-style JSONPath (`.status.phase`, `{.a[?(@.t=="x")].b}`), as the
/// table convertor takes it.
pub fn jsonpath(obj: &Value, expr: &str) -> Option<Value> {
    let steps = parse(expr)?;
    eval(&steps, vec![obj]).first().map(|v| (*v).clone())
}

/// All results rendered as kubectl's JSONPath printer does, space separated.
pub fn jsonpath_text(obj: &Value, expr: &str) -> String {
    jsonpath_all(obj, expr)
        .iter()
        .filter_map(text)
        .collect::<Vec<_>>()
        .join(" ")
}

/// JSONPath text of one value: strings raw, numbers as Go prints them, maps and lists as
/// compact JSON; `null` prints nothing (the cell becomes null).
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => i.to_string(),
            None => crate::schema::go_float(n.as_f64().unwrap_or(0.0)),
        }),
        // Go's json.Marshal escapes <, > and & (HTML-safe output).
        Value::Array(_) | Value::Object(_) => Some(
            v.to_string()
                .replace('<', "\\u003c")
                .replace('>', "\\u003e")
                .replace('&', "\\u0026"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths() {
        let obj = json!({
            "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "demo"}},
            "spec": {"replicas": 3, "sha": "abc", "ports": [{"port": 80}, {"port": 443}]},
            "status": {"conditions": [
                {"type": "Reconciling", "status": "False"},
                {"type": "Ready", "status": "True", "reason": "Done"}]},
        });
        let cases: Vec<(&str, Option<Value>)> = vec![
            (".spec.replicas", Some(json!(3))),
            ("{.spec.sha}", Some(json!("abc"))),
            (
                ".status.conditions[?(@.type==\"Ready\")].status",
                Some(json!("True")),
            ),
            (
                ".status.conditions[?(@.type=='Ready')].reason",
                Some(json!("Done")),
            ),
            (
                ".status.conditions[?(@.type!=\"Ready\")].type",
                Some(json!("Reconciling")),
            ),
            (".status.conditions[?(@.reason)].type", Some(json!("Ready"))),
            (".spec.ports[1].port", Some(json!(443))),
            (".spec.ports[-1].port", Some(json!(443))),
            (".spec.ports[*].port", Some(json!(80))),
            (".spec.ports[?(@.port>100)].port", Some(json!(443))),
            (
                ".metadata.labels.app\\.kubernetes\\.io/name",
                Some(json!("demo")),
            ),
            (
                ".metadata.labels['app.kubernetes.io/name']",
                Some(json!("demo")),
            ),
            ("..port", Some(json!(80))),
            (".status.missing", None),
            (".spec.ports[5]", None),
        ];
        for (expr, want) in cases {
            assert_eq!(jsonpath(&obj, expr), want, "{expr}");
        }
        assert_eq!(jsonpath_text(&obj, ".spec.ports[*].port"), "80 443");
        assert_eq!(
            text(&json!({"a": "<b&c>"})).as_deref(),
            Some(r#"{"a":"\u003cb\u0026c\u003e"}"#)
        );
    }
}
