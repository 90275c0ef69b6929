//! The 422 Invalid `metav1.Status` and its causes, worded as Go's `field.Error` (spec §5):
//! kubectl rebuilds its message from `details.causes`, so every byte counts.

use serde_json::{Map, Value, json};

use super::gofmt;

/// `details.causes[].reason` values (Go's `field.ErrorType` strings).
pub mod reason {
    pub const INVALID: &str = "FieldValueInvalid";
    pub const TYPE_INVALID: &str = "FieldValueTypeInvalid";
    pub const REQUIRED: &str = "FieldValueRequired";
    pub const NOT_SUPPORTED: &str = "FieldValueNotSupported";
    pub const DUPLICATE: &str = "FieldValueDuplicate";
    pub const FORBIDDEN: &str = "FieldValueForbidden";
    pub const TOO_LONG: &str = "FieldValueTooLong";
    pub const TOO_MANY: &str = "FieldValueTooMany";
}

/// One `details.causes[]` entry of a 422 Invalid `Status`. `message` is Go's `ErrorBody()`
/// (`Invalid value: "zz": ...`), never prefixed with the field: kubectl prints `<field>: <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl Cause {
    /// `field.Invalid(path, value, detail)`.
    pub fn invalid(field: impl Into<String>, bad_value: &Value, detail: &str) -> Self {
        Self::with_value(reason::INVALID, field, bad_value, detail)
    }

    /// `field.TypeInvalid(path, value, detail)` (same body as Invalid, other reason).
    pub fn type_invalid(field: impl Into<String>, bad_value: &Value, detail: &str) -> Self {
        Self::with_value(reason::TYPE_INVALID, field, bad_value, detail)
    }

    /// `field.Required(path, detail)`.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        Self::without_value(reason::REQUIRED, "Required value", field, detail)
    }

    /// `field.Forbidden(path, detail)`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self::without_value(reason::FORBIDDEN, "Forbidden", field, detail)
    }

    /// `field.Duplicate(path, value)`.
    pub fn duplicate(field: impl Into<String>, bad_value: &Value) -> Self {
        Self {
            reason: reason::DUPLICATE,
            field: field.into(),
            message: format!("Duplicate value: {}", gofmt::bad_value(bad_value)),
        }
    }

    /// `field.NotSupported(path, value, valid)`: `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, bad_value: &Value, valid: &[String]) -> Self {
        let mut message = format!("Unsupported value: {}", gofmt::bad_value(bad_value));
        if !valid.is_empty() {
            let quoted: Vec<String> = valid.iter().map(|v| gofmt::quote(v)).collect();
            message.push_str(&format!(": supported values: {}", quoted.join(", ")));
        }
        Self {
            reason: reason::NOT_SUPPORTED,
            field: field.into(),
            message,
        }
    }

    /// `field.TooLong(path, value, max)` as of Kubernetes 1.32 (the value is omitted).
    // (unverified) wording: 1.32's apimachinery says "may not be more than N bytes"; older
    // releases said "may not be longer than N".
    pub fn too_long(field: impl Into<String>, max: u64) -> Self {
        let unit = if max == 1 { "byte" } else { "bytes" };
        Self {
            reason: reason::TOO_LONG,
            field: field.into(),
            message: format!("Too long: may not be more than {max} {unit}"),
        }
    }

    /// `field.TooMany(path, actual, max)`: `Too many: 5: must have at most 3 items`.
    pub fn too_many(field: impl Into<String>, actual: usize, max: u64) -> Self {
        let unit = if max == 1 { "item" } else { "items" };
        Self {
            reason: reason::TOO_MANY,
            field: field.into(),
            message: format!("Too many: {actual}: must have at most {max} {unit}"),
        }
    }

    fn with_value(
        reason: &'static str,
        field: impl Into<String>,
        bad_value: &Value,
        detail: &str,
    ) -> Self {
        let mut message = format!("Invalid value: {}", gofmt::bad_value(bad_value));
        if !detail.is_empty() {
            message.push_str(": ");
            message.push_str(detail);
        }
        Self {
            reason,
            field: field.into(),
            message,
        }
    }

    fn without_value(
        reason: &'static str,
        kind: &str,
        field: impl Into<String>,
        detail: &str,
    ) -> Self {
        let message = if detail.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}: {detail}")
        };
        Self {
            reason,
            field: field.into(),
            message,
        }
    }

    /// `<field>: <message>` as Go's `field.Error.Error()` and kubectl print it.
    pub fn display(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }

    /// The `details.causes[]` JSON entry.
    pub fn to_json(&self) -> Value {
        json!({"reason": self.reason, "message": self.message, "field": self.field})
    }
}

/// The 422 `metav1.Status` for `causes` (spec §5). `group` empty for core kinds. The message
/// is Go's aggregate: one cause bare, several in `[a, b]`, identical texts once.
pub fn invalid_status(group: &str, kind: &str, name: &str, causes: &[Cause]) -> Value {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let mut seen = std::collections::HashSet::new();
    let texts: Vec<String> = causes
        .iter()
        .map(Cause::display)
        .filter(|t| seen.insert(t.clone()))
        .collect();
    let message = match texts.as_slice() {
        [] => format!("{qualified} {} is invalid", gofmt::quote(name)),
        [one] => format!("{qualified} {} is invalid: {one}", gofmt::quote(name)),
        many => format!(
            "{qualified} {} is invalid: [{}]",
            gofmt::quote(name),
            many.join(", ")
        ),
    };
    let mut details = Map::new();
    if !name.is_empty() {
        details.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        details.insert("group".into(), json!(group));
    }
    details.insert("kind".into(), json!(kind));
    if !causes.is_empty() {
        details.insert(
            "causes".into(),
            Value::Array(causes.iter().map(Cause::to_json).collect()),
        );
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Invalid",
        "details": details,
        "code": 422,
    })
}
