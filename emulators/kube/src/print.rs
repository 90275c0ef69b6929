//! Server-side printing seam (spec §9): Table responses for list, get and watch events.
//! Column logic lives in the pure `table` module; this file picks columns per resource.

use crate::resources::ResourceInfo;
use serde_json::{Value, json};

/// What `rows[].object` carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// A `meta.k8s.io/v1` Table of `rows` for `res`: CRD printer columns, the built-in
/// printers of the `table` module, or NAME + AGE.
pub fn table(
    res: &ResourceInfo,
    rows: &[Value],
    include: IncludeObject,
    rv: Option<String>,
) -> Value {
    let now = chrono::Utc::now();
    let inc = match include {
        IncludeObject::None => crate::table::IncludeObject::None,
        IncludeObject::Metadata => crate::table::IncludeObject::Metadata,
        IncludeObject::Object => crate::table::IncludeObject::Object,
    };
    let mut t = match &res.crd {
        Some(c) => crate::table::render(
            &crate::table::PrinterColumn::list_from(&c.printer_columns),
            rows,
            inc,
            now,
        ),
        None => crate::table::builtin_table(&res.plural, rows, inc, now)
            .unwrap_or_else(|| render(res, rows, include, now)),
    };
    if t.get("kind").is_none() {
        t = render(res, rows, include, now);
    }
    if let Some(rv) = rv {
        t["metadata"] = json!({"resourceVersion": rv});
    }
    t
}

fn render(
    res: &ResourceInfo,
    rows: &[Value],
    include: IncludeObject,
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    let name_col = json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0});
    let age_col = json!({"name": "Age", "type": "date", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0});
    let custom: Vec<Value> = res
        .crd
        .as_ref()
        .and_then(|c| c.printer_columns.as_array().cloned())
        .unwrap_or_default();
    let mut cols = vec![name_col];
    let mut paths: Vec<String> = Vec::new();
    if custom.is_empty() {
        cols.push(age_col);
        paths.push(".metadata.creationTimestamp".into());
    } else {
        for c in &custom {
            cols.push(json!({
                "name": c.get("name").cloned().unwrap_or(json!("")),
                "type": c.get("type").cloned().unwrap_or(json!("string")),
                "format": c.get("format").cloned().unwrap_or(json!("")),
                "description": c.get("description").cloned().unwrap_or(json!("")),
                "priority": c.get("priority").cloned().unwrap_or(json!(0)),
            }));
            paths.push(
                c.get("jsonPath")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            );
        }
    }
    let rows: Vec<Value> = rows
        .iter()
        .map(|o| {
            let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
            for (i, p) in paths.iter().enumerate() {
                let ty = cols[i + 1].get("type").and_then(Value::as_str).unwrap_or("string");
                let v = simple_path(o, p);
                cells.push(cell(v, ty, now));
            }
            let mut row = json!({"cells": cells});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({}))});
                }
                IncludeObject::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": cols, "rows": rows})
}

fn simple_path(obj: &Value, path: &str) -> Option<Value> {
    let mut cur = obj;
    for seg in path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
    {
        cur = cur.get(seg)?;
    }
    Some(cur.clone())
}

fn cell(v: Option<Value>, ty: &str, now: chrono::DateTime<chrono::Utc>) -> Value {
    let Some(v) = v else { return Value::Null };
    match ty {
        "date" => v
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| {
                json!(human_duration(
                    now.signed_duration_since(t.with_timezone(&chrono::Utc))
                ))
            })
            .unwrap_or(json!("<invalid>")),
        "integer" => {
            if v.is_i64() || v.is_u64() {
                v
            } else {
                Value::Null
            }
        }
        "number" => {
            if v.is_number() {
                v
            } else {
                Value::Null
            }
        }
        "boolean" => {
            if v.is_boolean() {
                v
            } else {
                Value::Null
            }
        }
        _ => match v {
            Value::String(s) => json!(s),
            other => json!(other.to_string()),
        },
    }
}

/// kubectl-style short durations: `45s`, `5m10s`, `3h`, `2d5h`.
pub fn human_duration(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds();
    if s < 0 {
        return "0s".into();
    }
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        return if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = m / 60;
    if h < 48 {
        return if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        };
    }
    let days = h / 24;
    if h < 24 * 8 {
        return if h % 24 == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{}h", h % 24)
        };
    }
    format!("{days}d")
}
