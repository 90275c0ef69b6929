//! The one seam between the server and the pure `schema` module: compile a CRD version's
//! schema, and run prune → default → validate for a custom resource write (spec §10).

use crate::schema::CompiledSchema;
use serde_json::Value;

/// A compiled CRD version schema.
#[derive(Debug)]
pub struct Compiled(CompiledSchema);

/// One validation failure: `(reason, field, message)`.
pub type Cause = (String, String, String);

fn cause(c: crate::schema::Cause) -> Cause {
    (c.reason.to_string(), c.field, c.message)
}

pub fn compile(raw: &Value) -> Result<Compiled, Vec<Cause>> {
    CompiledSchema::compile(raw)
        .map(Compiled)
        .map_err(|e| vec![cause(e.cause())])
}

/// Prune unknown fields; returns their dotted paths (for `fieldValidation`).
pub fn prune(c: &Compiled, obj: &mut Value) -> Vec<String> {
    c.0.prune(obj)
}

pub fn apply_defaults(c: &Compiled, obj: &mut Value) {
    c.0.apply_defaults(obj)
}

/// Whole-object validation, or `.status` only for the status subresource.
pub fn validate(c: &Compiled, obj: &Value, old: Option<&Value>, status_only: bool) -> Vec<Cause> {
    let causes = if status_only {
        c.0.validate_status(obj, old)
    } else {
        c.0.validate(obj, old)
    };
    causes.into_iter().map(cause).collect()
}
