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

mod cel;
mod formats;
mod gofmt;
mod validate;

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::{Map, Value, json};

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
}

impl SchemaError {
    /// Stable category for logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::CelCompile { .. } => "CelCompile",
            Self::Invalid { .. } => "InvalidSchema",
        }
    }

    /// The cause to put in the CRD's 422 `Status` (`message` is the cause body, without field).
    pub fn cause(&self) -> Cause {
        match self {
            Self::CelCompile { field, message } | Self::Invalid { field, message } => Cause {
                reason: reason::INVALID,
                field: field.clone(),
                message: message.clone(),
            },
        }
    }
}

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

const RESOURCE_META: &[&str] = &["apiVersion", "kind", "metadata"];

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
        prune_node(obj, Some(&self.root), true, "", &mut pruned);
        pruned.sort();
        pruned
    }

    /// Applies `default:` values top-down where a field is absent (or `null` on a non-nullable
    /// field), then drops the remaining `null`s of non-nullable fields, as the real server does
    /// (`structuraldefaulting.Default` + `PruneNonNullableNullsWithoutDefaults`).
    pub fn apply_defaults(&self, obj: &mut Value) {
        default_node(obj, &self.root);
        prune_nulls(obj, &self.root);
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

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `pruning.prune` / `skipPrune`; `resource` marks the root and embedded resources, whose
/// apiVersion/kind/metadata are kept (metadata reduced to ObjectMeta fields).
fn prune_node(
    value: &mut Value,
    node: Option<&Node>,
    resource: bool,
    path: &str,
    pruned: &mut Vec<String>,
) {
    prune_inner(value, node, resource, false, path, pruned);
}

/// `skip` is `skipPrune`: list items under a preserve-unknown-fields node keep unknown fields too.
fn prune_inner(
    value: &mut Value,
    node: Option<&Node>,
    resource: bool,
    skip: bool,
    path: &str,
    pruned: &mut Vec<String>,
) {
    let preserve = skip || node.is_some_and(|n| n.preserve_unknown);
    match value {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child_path = join_key(path, &key);
                if resource && RESOURCE_META.contains(&key.as_str()) {
                    if key == "metadata"
                        && let Some(Value::Object(meta)) = map.get_mut("metadata")
                    {
                        let unknown: Vec<String> = meta
                            .keys()
                            .filter(|k| !OBJECT_META_FIELDS.contains(&k.as_str()))
                            .cloned()
                            .collect();
                        for k in unknown {
                            meta.remove(&k);
                            pruned.push(join_key(&child_path, &k));
                        }
                    }
                    continue;
                }
                let Some(child) = map.get_mut(&key) else {
                    continue;
                };
                match node {
                    Some(n) => {
                        if let Some(prop) = n.properties.get(&key) {
                            prune_node(child, Some(prop), prop.embedded, &child_path, pruned);
                        } else if let Some(add) = &n.additional {
                            prune_node(child, Some(add), add.embedded, &child_path, pruned);
                        } else if !preserve {
                            map.remove(&key);
                            pruned.push(child_path);
                        }
                    }
                    None => {
                        map.remove(&key);
                        pruned.push(child_path);
                    }
                }
            }
        }
        Value::Array(items) => {
            let item_node = node.and_then(|n| n.items.as_deref());
            if preserve && item_node.is_none() {
                return;
            }
            for (i, item) in items.iter_mut().enumerate() {
                let embedded = item_node.is_some_and(|n| n.embedded);
                prune_inner(
                    item,
                    item_node,
                    embedded,
                    preserve,
                    &format!("{path}[{i}]"),
                    pruned,
                );
            }
        }
        _ => {}
    }
}

fn non_nullable_null(v: &Value, node: &Node) -> bool {
    v.is_null() && !node.nullable
}

/// `structuraldefaulting.Default`.
fn default_node(value: &mut Value, node: &Node) {
    match value {
        Value::Object(map) => {
            for (key, prop) in &node.properties {
                let Some(default) = &prop.default else {
                    continue;
                };
                if map.get(key).is_none_or(|v| non_nullable_null(v, prop)) {
                    map.insert(key.clone(), default.clone());
                }
            }
            for (key, child) in map.iter_mut() {
                if let Some(prop) = node.properties.get(key) {
                    default_node(child, prop);
                } else if let Some(add) = &node.additional {
                    if non_nullable_null(child, add) {
                        match &add.default {
                            Some(d) => *child = d.clone(),
                            None => continue,
                        }
                    }
                    default_node(child, add);
                }
            }
        }
        Value::Array(items) => {
            let Some(item_node) = &node.items else { return };
            for item in items.iter_mut() {
                if non_nullable_null(item, item_node) {
                    match &item_node.default {
                        Some(d) => *item = d.clone(),
                        None => continue,
                    }
                }
                default_node(item, item_node);
            }
        }
        _ => {}
    }
}

/// `structuraldefaulting.PruneNonNullableNullsWithoutDefaults`: object fields and map values
/// that are `null` where the schema does not allow it are dropped.
fn prune_nulls(value: &mut Value, node: &Node) {
    match value {
        Value::Object(map) => {
            map.retain(|key, v| {
                let child = node.properties.get(key).or(node.additional.as_deref());
                !(child.is_some_and(|c| non_nullable_null(v, c) && c.default.is_none()))
            });
            for (key, child) in map.iter_mut() {
                if let Some(prop) = node.properties.get(key).or(node.additional.as_deref()) {
                    prune_nulls(child, prop);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_node) = &node.items {
                for item in items.iter_mut() {
                    prune_nulls(item, item_node);
                }
            }
        }
        _ => {}
    }
}
