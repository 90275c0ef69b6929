//! Server-side printing: `meta.k8s.io/v1` Table output for built-ins and CRD printer columns (pure).
//!
//! Spec: `shared/spec/kube-api-emulation.md` §9. Mirrors apiextensions' `tableconvertor` for CRDs
//! and `pkg/printers/internalversion` for built-ins; kubectl prints the cells verbatim.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// Table for custom resources with the CRD version's printer columns.
pub fn render(
    columns: &[PrinterColumn],
    objects: &[Value],
    include_object: IncludeObject,
    now: DateTime<Utc>,
) -> Value {
    let _ = (columns, objects, include_object, now);
    Value::Null
}

/// Table for a built-in resource (by plural); `None` when there is no dedicated printer.
pub fn builtin_table(
    kind_plural: &str,
    objects: &[Value],
    include_object: IncludeObject,
    now: DateTime<Utc>,
) -> Option<Value> {
    let _ = (kind_plural, objects, include_object, now);
    None
}

/// The first result of a CRD-style JSONPath (`.status.phase`, `{.a[?(@.t=="x")].b}`).
pub fn jsonpath(obj: &Value, expr: &str) -> Option<Value> {
    let _ = (obj, expr);
    None
}
