//! CRD structural schemas: pruning, defaulting, validation and CEL rules (pure).
//!
//! Spec: `shared/spec/kube-api-emulation.md` §10 (pipeline and exact messages) and §5 (the 422
//! `Status`). Compile once per CRD version with [`CompiledSchema::compile`], then per request:
//! [`CompiledSchema::prune`] → [`CompiledSchema::apply_defaults`] → [`CompiledSchema::validate`].

use serde_json::Value;

/// Why a CRD's schema cannot be served; the server answers 422 on the CRD with [`SchemaError::cause`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum SchemaError {
    /// A `x-kubernetes-validations` rule (or its `messageExpression`) does not compile.
    #[error("{field}: {message}")]
    CelCompile { field: String, message: String },
    /// The schema itself is malformed (e.g. `properties` not an object).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

impl SchemaError {
    /// Stable category for logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::CelCompile { .. } => "CelCompile",
            Self::Invalid { .. } => "InvalidSchema",
        }
    }
    /// The cause to put in the CRD's 422 `Status`.
    pub fn cause(&self) -> Cause {
        match self {
            Self::CelCompile { field, message } | Self::Invalid { field, message } => Cause {
                reason: "FieldValueInvalid",
                field: field.clone(),
                message: message.clone(),
            },
        }
    }
}

/// One `details.causes[]` entry of a 422 Invalid `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

/// A CRD version's schema, compiled once.
#[derive(Debug)]
pub struct CompiledSchema {
    raw: Value,
}

impl CompiledSchema {
    /// Compiles a CRD version's `openAPIV3Schema`, including every CEL rule. Error paths start at
    /// `spec.validation.openAPIV3Schema` (the real server's path when all versions share a schema).
    pub fn compile(open_api_v3_schema: &Value) -> Result<CompiledSchema, SchemaError> {
        Self::compile_at(open_api_v3_schema, "spec.validation.openAPIV3Schema")
    }

    /// As [`CompiledSchema::compile`], with error paths under `field_prefix`
    /// (e.g. `spec.versions[1].schema.openAPIV3Schema`).
    pub fn compile_at(
        open_api_v3_schema: &Value,
        _field_prefix: &str,
    ) -> Result<CompiledSchema, SchemaError> {
        Ok(CompiledSchema {
            raw: open_api_v3_schema.clone(),
        })
    }

    /// The schema as given.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// Drops undeclared fields; returns their dotted paths (`spec.foo`) for `fieldValidation`.
    pub fn prune(&self, _obj: &mut Value) -> Vec<String> {
        Vec::new()
    }

    /// Applies `default:` values top-down and drops non-nullable nulls without a default.
    pub fn apply_defaults(&self, _obj: &mut Value) {}

    /// Structural validation, then CEL rules (`old` = the stored object on update).
    pub fn validate(&self, _obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        Vec::new()
    }

    /// Validation for a `/status` write: only causes under `status` count.
    pub fn validate_status(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        self.validate(obj, old)
            .into_iter()
            .filter(|c| {
                c.field == "status"
                    || c.field.starts_with("status.")
                    || c.field.starts_with("status[")
            })
            .collect()
    }
}

/// The 422 `metav1.Status` for `causes` (spec §5). `group` empty for core kinds.
pub fn invalid_status(group: &str, kind: &str, name: &str, causes: &[Cause]) -> Value {
    let _ = (group, kind, name, causes);
    Value::Null
}
