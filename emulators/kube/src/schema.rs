//! CRD structural schemas: pruning, defaulting, validation and CEL rules (pure).
//!
//! Spec: `shared/spec/kube-api-emulation.md` §10 (pipeline and exact messages) and §5 (the 422
//! `Status`). Compile once per CRD version with [`CompiledSchema::compile`], then per request:
//! [`CompiledSchema::prune`] → [`CompiledSchema::apply_defaults`] → [`CompiledSchema::validate`].
//!
//! Messages follow the real apiserver's conversion of kube-openapi errors into `field.Error`s
//! (`apiextensions-apiserver/pkg/apiserver/validation/validation.go`), its list-type and
//! embedded-resource checks, and its CEL validator (`apiserver/pkg/apis/cel` +
//! `apiextensions-apiserver/pkg/apiserver/schema/cel/validation.go`). CEL itself is evaluated by
//! `kube-cel`, the evaluator kube-derive's `#[x_kube(validation)]` uses.

mod cause;
mod cel;
mod defaults;
mod formats;
mod gofmt;
mod prune;
mod structural;
mod validate;

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;

pub use self::cause::{Cause, invalid_status, reason};
pub use self::gofmt::{float as go_float, quote as go_quote};

/// Why a CRD's schema cannot be served; the server answers 422 on the CRD with [`SchemaError::cause`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum SchemaError {
    /// A `x-kubernetes-validations` rule (or its `messageExpression`) does not compile.
    #[error("{field}: {message}")]
    CelCompile { field: String, message: String },
    /// The schema itself is malformed (e.g. a `pattern` that is not a regular expression).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The schema is not structural (a missing `type`, an array without `items`, ...).
    #[error("schema is not structural: {}", causes.iter().map(Cause::display).collect::<Vec<_>>().join(", "))]
    NotStructural { causes: Vec<Cause> },
}

impl SchemaError {
    /// Stable category for logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::CelCompile { .. } => "CelCompile",
            Self::Invalid { .. } => "InvalidSchema",
            Self::NotStructural { .. } => "NotStructural",
        }
    }

    /// The first cause for the CRD's 422 `Status` (see [`SchemaError::causes`] for all).
    pub fn cause(&self) -> Cause {
        self.causes().into_iter().next().unwrap_or(Cause {
            reason: reason::INVALID,
            field: String::new(),
            message: self.to_string(),
        })
    }

    /// Every cause for the CRD's 422 `Status` (`message` is the cause body, without field).
    pub fn causes(&self) -> Vec<Cause> {
        match self {
            Self::CelCompile { field, message } | Self::Invalid { field, message } => {
                let reason = if message.starts_with("Required value") {
                    reason::REQUIRED
                } else if message.starts_with("Unsupported value") {
                    reason::NOT_SUPPORTED
                } else {
                    reason::INVALID
                };
                vec![Cause {
                    reason,
                    field: field.clone(),
                    message: message.clone(),
                }]
            }
            Self::NotStructural { causes } => causes.clone(),
        }
    }
}

/// ObjectMeta's JSON fields: the only keys `metadata` keeps (root and embedded resources).
pub const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

pub(crate) const RESOURCE_META: &[&str] = &["apiVersion", "kind", "metadata"];

/// One schema node, parsed once.
#[derive(Debug, Default)]
pub(crate) struct Node {
    pub type_: Option<String>,
    pub format: Option<String>,
    pub nullable: bool,
    pub properties: BTreeMap<String, Node>,
    pub additional: Option<Box<Node>>,
    pub items: Option<Box<Node>>,
    pub required: Vec<String>,
    pub enum_values: Option<Vec<Value>>,
    pub pattern: Option<(String, Regex)>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub exclusive_minimum: bool,
    pub exclusive_maximum: bool,
    pub multiple_of: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub default: Option<Value>,
    pub preserve_unknown: bool,
    pub embedded: bool,
    pub int_or_string: bool,
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    pub all_of: Vec<Node>,
    pub any_of: Vec<Node>,
    pub one_of: Vec<Node>,
    pub not: Option<Box<Node>>,
    pub rules: Option<cel::NodeRules>,
}

impl Node {
    fn parse(raw: &Value, path: &str) -> Result<Node, SchemaError> {
        let Some(obj) = raw.as_object() else {
            return Err(SchemaError::Invalid {
                field: path.to_string(),
                message: format!(
                    "Invalid value: {}: must be an object",
                    gofmt::bad_value(raw)
                ),
            });
        };
        let str_of = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        let bool_of = |k: &str| obj.get(k).and_then(Value::as_bool).unwrap_or(false);
        let f64_of = |k: &str| obj.get(k).and_then(Value::as_f64);
        let u64_of = |k: &str| obj.get(k).and_then(Value::as_u64);
        let mut node = Node {
            type_: str_of("type").filter(|t| !t.is_empty()),
            format: str_of("format").filter(|f| !f.is_empty()),
            nullable: bool_of("nullable"),
            required: string_list(obj.get("required")),
            enum_values: obj.get("enum").and_then(Value::as_array).cloned(),
            minimum: f64_of("minimum"),
            maximum: f64_of("maximum"),
            exclusive_minimum: bool_of("exclusiveMinimum"),
            exclusive_maximum: bool_of("exclusiveMaximum"),
            multiple_of: f64_of("multipleOf"),
            min_length: u64_of("minLength"),
            max_length: u64_of("maxLength"),
            min_items: u64_of("minItems"),
            max_items: u64_of("maxItems"),
            min_properties: u64_of("minProperties"),
            max_properties: u64_of("maxProperties"),
            default: obj.get("default").cloned(),
            preserve_unknown: bool_of("x-kubernetes-preserve-unknown-fields"),
            embedded: bool_of("x-kubernetes-embedded-resource"),
            int_or_string: bool_of("x-kubernetes-int-or-string"),
            list_type: str_of("x-kubernetes-list-type"),
            list_map_keys: string_list(obj.get("x-kubernetes-list-map-keys")),
            ..Node::default()
        };
        if let Some(pattern) = str_of("pattern") {
            match Regex::new(&pattern) {
                Ok(re) => node.pattern = Some((pattern, re)),
                Err(e) => {
                    return Err(SchemaError::Invalid {
                        field: format!("{path}.pattern"),
                        message: format!(
                            "Invalid value: {}: must be a valid regular expression, but isn't: {e}",
                            gofmt::quote(&pattern)
                        ),
                    });
                }
            }
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (name, child) in props {
                let child_path = format!("{path}.properties[{name}]");
                node.properties
                    .insert(name.clone(), Node::parse(child, &child_path)?);
            }
        }
        match obj.get("additionalProperties") {
            Some(add @ Value::Object(_)) => {
                node.additional = Some(Box::new(Node::parse(
                    add,
                    &format!("{path}.additionalProperties"),
                )?));
            }
            // `additionalProperties: true` only appears next to preserve-unknown-fields.
            Some(Value::Bool(true)) => node.preserve_unknown = true,
            _ => {}
        }
        if let Some(items) = obj.get("items") {
            let items = match items {
                Value::Array(list) => list.first().cloned().unwrap_or(Value::Null),
                other => other.clone(),
            };
            if items.is_object() {
                node.items = Some(Box::new(Node::parse(&items, &format!("{path}.items"))?));
            }
        }
        for (key, target) in [
            ("allOf", &mut node.all_of),
            ("anyOf", &mut node.any_of),
            ("oneOf", &mut node.one_of),
        ] {
            if let Some(list) = obj.get(key).and_then(Value::as_array) {
                for (i, branch) in list.iter().enumerate() {
                    target.push(Node::parse(branch, &format!("{path}.{key}[{i}]"))?);
                }
            }
        }
        if let Some(not) = obj.get("not") {
            node.not = Some(Box::new(Node::parse(not, &format!("{path}.not"))?));
        }
        node.rules = cel::NodeRules::compile(raw, path)?;
        Ok(node)
    }

    /// Whether this node or any below it declares `x-kubernetes-validations`.
    fn has_rules(&self) -> bool {
        self.rules.is_some()
            || self.properties.values().any(Node::has_rules)
            || self.additional.as_ref().is_some_and(|n| n.has_rules())
            || self.items.as_ref().is_some_and(|n| n.has_rules())
    }

    /// The schema `type` the CEL validator reports as the bad value (`Invalid value: "object"`).
    pub(crate) fn type_name(&self) -> &str {
        self.type_.as_deref().unwrap_or("")
    }
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A CRD version's schema, compiled once (regular expressions and CEL programs included).
#[derive(Debug)]
pub struct CompiledSchema {
    raw: Value,
    root: Node,
    has_rules: bool,
    cel_enabled: bool,
}

impl CompiledSchema {
    /// Compiles a CRD version's `openAPIV3Schema`, including every CEL rule. Error paths start at
    /// `spec.validation.openAPIV3Schema`, the real server's path when all versions share one
    /// schema (the usual single-version CRD).
    pub fn compile(open_api_v3_schema: &Value) -> Result<CompiledSchema, SchemaError> {
        Self::compile_at(open_api_v3_schema, "spec.validation.openAPIV3Schema")
    }

    /// As [`CompiledSchema::compile`], with error paths under `field_prefix`
    /// (e.g. `spec.versions[1].schema.openAPIV3Schema`).
    pub fn compile_at(
        open_api_v3_schema: &Value,
        field_prefix: &str,
    ) -> Result<CompiledSchema, SchemaError> {
        let violations = structural::violations(open_api_v3_schema, field_prefix);
        if !violations.is_empty() {
            return Err(SchemaError::NotStructural { causes: violations });
        }
        let root = Node::parse(open_api_v3_schema, field_prefix)?;
        let has_rules = root.has_rules();
        Ok(CompiledSchema {
            raw: open_api_v3_schema.clone(),
            root,
            has_rules,
            cel_enabled: true,
        })
    }

    /// The schema as given.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// The escape hatch of spec §10: with CEL off, `validate` runs only the structural checks
    /// (for a CRD whose rules use a CEL feature this evaluator lacks).
    pub fn set_cel_enabled(&mut self, enabled: bool) {
        self.cel_enabled = enabled;
    }

    /// Drops fields not declared in the schema (the real server's `pruning.Prune` with the root
    /// treated as an embedded resource), and metadata keys that are not ObjectMeta fields.
    /// Returns the dropped paths (`spec.foo`, `spec.items[0].bar`, `metadata.foo`), sorted, for
    /// `fieldValidation=Strict|Warn` (`unknown field "spec.foo"`).
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        let mut pruned = Vec::new();
        prune::prune_node(obj, Some(&self.root), true, "", &mut pruned);
        pruned.sort();
        pruned
    }

    /// Applies `default:` values top-down where a field is absent (or `null` on a non-nullable
    /// field), then drops the remaining `null`s of non-nullable fields, as the real server does
    /// (`structuraldefaulting.Default` + `PruneNonNullableNullsWithoutDefaults`).
    pub fn apply_defaults(&self, obj: &mut Value) {
        defaults::default_node(obj, &self.root);
        defaults::prune_nulls(obj, &self.root);
    }

    /// Structural validation (type, required, enum, pattern, bounds, lengths, formats,
    /// nullable, int-or-string), embedded resources and list-type uniqueness, then the CEL rules
    /// (`old` = the stored object on update, enabling transition rules). All errors collected.
    ///
    /// On update, errors on values that did not change are dropped (CRD validation
    /// ratcheting, on by default since 1.30), as are list-type errors when the old object
    /// already had some.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = validate::structural(&self.root, obj);
        if let Some(old) = old {
            causes.retain(|c| !validate::unchanged(c, obj, old));
        }
        causes.extend(validate::embedded(&self.root, obj));
        if old.is_none_or(|o| validate::lists(&self.root, o).is_empty()) {
            causes.extend(validate::lists(&self.root, obj));
        }
        self.append_cel(&mut causes, obj, old);
        root_as_nil(causes)
    }

    /// Validation for a `/status` write: the structural checks of the `status` subtree only,
    /// then every CEL rule (the real status strategy runs the whole-object CEL validator).
    pub fn validate_status(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        if let (Some(status_node), Some(status)) =
            (self.root.properties.get("status"), obj.get("status"))
        {
            causes = validate::structural_at(status_node, status, "status");
            if let Some(old) = old {
                causes.retain(|c| !validate::unchanged(c, obj, old));
            }
            let only_status = |c: &Cause| {
                c.field == "status"
                    || c.field.starts_with("status.")
                    || c.field.starts_with("status[")
            };
            causes.extend(
                validate::embedded(&self.root, obj)
                    .into_iter()
                    .filter(only_status),
            );
            if old.is_none_or(|o| validate::lists(&self.root, o).is_empty()) {
                causes.extend(
                    validate::lists(&self.root, obj)
                        .into_iter()
                        .filter(only_status),
                );
            }
        }
        self.append_cel(&mut causes, obj, old);
        root_as_nil(causes)
    }

    /// CEL runs only when no "blocking" structural error was found (real server:
    /// `hasBlockingErr` in the custom resource strategy), else one cause says so.
    fn append_cel(&self, causes: &mut Vec<Cause>, obj: &Value, old: Option<&Value>) {
        // Without any rule the real server has no CEL validator, hence no "not checked" cause.
        if !self.has_rules || !self.cel_enabled {
            return;
        }
        let blocking = causes.iter().any(|c| {
            matches!(
                c.reason,
                reason::NOT_SUPPORTED
                    | reason::REQUIRED
                    | reason::TOO_LONG
                    | reason::TOO_MANY
                    | reason::TYPE_INVALID
            )
        });
        if blocking {
            // The real server passes a nil field path and nil value: Go prints `<nil>` and "null".
            causes.push(Cause::invalid(
                "<nil>",
                &Value::Null,
                "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            ));
        } else {
            causes.extend(cel::evaluate(&self.root, obj, old));
        }
    }
}

/// The real validators start from a nil `field.Path`: an error about the object itself has
/// the field Go prints for it, `<nil>`.
fn root_as_nil(mut causes: Vec<Cause>) -> Vec<Cause> {
    for c in &mut causes {
        if c.field.is_empty() {
            c.field = "<nil>".into();
        }
    }
    causes
}
