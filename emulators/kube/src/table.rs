//! Server-side printing: `meta.k8s.io/v1` Table output for built-ins and CRD printer columns (pure).
//!
//! Spec: `shared/spec/kube-api-emulation.md` §9. CRDs follow apiextensions' `tableconvertor`
//! (Name column, the version's printer columns, a default Age only when there are none, typed
//! cells, `date` → human duration); built-ins follow `pkg/printers/internalversion` (cells are
//! pre-formatted, Age is a `string` column, wide columns always sent with `priority: 1`).
//! kubectl prints the cells verbatim and adds NAMESPACE/labels from `rows[].object`.

mod builtin;
mod jsonpath;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use self::builtin::{builtin_table, default_table};
pub use self::jsonpath::{jsonpath, jsonpath_all, jsonpath_text};

/// `metav1.ObjectMeta` swagger description of `name` (the Name column's description).
pub const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// `metav1.ObjectMeta` swagger description of `creationTimestamp` (Age columns).
pub const CREATION_TIMESTAMP_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// One CRD `additionalPrinterColumns` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrinterColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub priority: i32,
    #[serde(rename = "jsonPath")]
    pub json_path: String,
}

impl PrinterColumn {
    /// Parses a CRD version's `additionalPrinterColumns` (absent or malformed entries skipped).
    pub fn list_from(value: &Value) -> Vec<PrinterColumn> {
        value
            .as_array()
            .map(|cols| {
                cols.iter()
                    .filter_map(|c| serde_json::from_value(c.clone()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The column the server serves when a CRD version declares none.
    pub fn default_age() -> PrinterColumn {
        PrinterColumn {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: CREATION_TIMESTAMP_DESCRIPTION.into(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        }
    }
}

/// `includeObject` query parameter: what `rows[].object` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    /// Parses the query value; unknown or absent → `Metadata` (the server default).
    pub fn from_query(value: Option<&str>) -> Self {
        match value {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// `rows[].object` for `include`: the object, its `PartialObjectMetadata`, or null.
pub fn row_object(obj: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    }
}

/// A column definition as the Table carries it.
pub fn column_definition(
    name: &str,
    type_: &str,
    format: &str,
    description: &str,
    priority: i32,
) -> Value {
    json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority})
}

/// Assembles a Table. `metadata` is empty: the server sets `resourceVersion` (and `continue`).
pub fn table(columns: Vec<Value>, rows: Vec<Value>) -> Value {
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": columns, "rows": rows})
}

/// Table for custom resources with the CRD version's printer columns (a default Age column
/// when `columns` is empty).
pub fn render(
    columns: &[PrinterColumn],
    objects: &[Value],
    include_object: IncludeObject,
    now: DateTime<Utc>,
) -> Value {
    let default_columns;
    let columns = if columns.is_empty() {
        default_columns = [PrinterColumn::default_age()];
        &default_columns[..]
    } else {
        columns
    };
    let mut defs = vec![column_definition(
        "Name",
        "string",
        "name",
        NAME_DESCRIPTION,
        0,
    )];
    for c in columns {
        let description = if c.description.is_empty() {
            format!(
                "Custom resource definition column (in JSONPath format): {}",
                c.json_path
            )
        } else {
            c.description.clone()
        };
        defs.push(column_definition(
            &c.name,
            &c.type_,
            &c.format,
            &description,
            c.priority,
        ));
    }
    let rows = objects
        .iter()
        .map(|obj| {
            let mut cells = vec![
                obj.pointer("/metadata/name")
                    .cloned()
                    .unwrap_or_else(|| json!("")),
            ];
            cells.extend(columns.iter().map(|c| crd_cell(c, obj, now)));
            json!({"cells": cells, "object": row_object(obj, include_object)})
        })
        .collect();
    table(defs, rows)
}

/// `tableconvertor`: first JSONPath result; `string` columns get the JSONPath text, the other
/// types a JSON scalar of that type (or null), `date` a human duration.
fn crd_cell(column: &PrinterColumn, obj: &Value, now: DateTime<Utc>) -> Value {
    let Some(value) = jsonpath(obj, &column.json_path) else {
        return Value::Null;
    };
    if value.is_null() {
        return Value::Null;
    }
    match column.type_.as_str() {
        "string" => jsonpath::text(&value)
            .map(Value::String)
            .unwrap_or(Value::Null),
        "integer" => match &value {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .map(Value::from)
                .unwrap_or(Value::Null),
            _ => Value::Null,
        },
        "number" => value.as_f64().map(Value::from).unwrap_or(Value::Null),
        "boolean" => value.as_bool().map(Value::from).unwrap_or(Value::Null),
        "date" => match value.as_str() {
            Some(s) => match DateTime::parse_from_rfc3339(s) {
                Ok(t) => Value::String(human_duration_since(t.with_timezone(&Utc), now)),
                Err(_) => Value::String("<invalid>".into()),
            },
            None => Value::Null,
        },
        _ => Value::Null,
    }
}

/// `translateTimestampSince`: `<unknown>` for a missing timestamp, else the human duration.
pub fn age(timestamp: Option<&str>, now: DateTime<Utc>) -> String {
    match timestamp.map(DateTime::parse_from_rfc3339) {
        Some(Ok(t)) => human_duration_since(t.with_timezone(&Utc), now),
        _ => "<unknown>".into(),
    }
}

fn human_duration_since(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    human_duration(now.signed_duration_since(t))
}

/// apimachinery's `duration.HumanDuration`, exactly (kubectl shows it in AGE columns).
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    // Up to two seconds in the future count as "now" (clock skew), beyond is invalid.
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d.num_minutes();
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d.num_hours();
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{h}h", hours / 24);
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{dy}d", hours / 24 / 365);
    }
    format!("{}y", hours / 24 / 365)
}
