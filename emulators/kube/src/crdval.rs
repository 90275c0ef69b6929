//! The one seam between the server and the pure `schema` module: compile a CRD version's
//! schema, and run prune → default → validate for a custom resource write (spec §10).

use serde_json::Value;

/// A compiled CRD version schema.
#[derive(Debug)]
pub struct Compiled {
    pub raw: Value,
}

/// One validation failure: `(reason, field, message)`.
pub type Cause = (String, String, String);

pub fn compile(raw: &Value) -> Result<Compiled, Vec<Cause>> {
    Ok(Compiled { raw: raw.clone() })
}

/// Prune unknown fields; returns their dotted paths (for `fieldValidation`).
pub fn prune(_c: &Compiled, _obj: &mut Value) -> Vec<String> {
    Vec::new()
}

pub fn apply_defaults(_c: &Compiled, _obj: &mut Value) {}

pub fn validate(_c: &Compiled, _obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
    Vec::new()
}
