//! Table tests for CRD schema pruning, defaulting, structural validation and CEL rules, with
//! the exact messages the real apiserver produces (spec §10, §5).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kube_emulator::schema::{Cause, CompiledSchema, SchemaError, invalid_status};
use serde_json::{Value, json};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn compiled_schema_is_shareable() {
    assert_send_sync::<CompiledSchema>();
}

/// A schema in the shape of the operator's GitlabDeployment CRD.
fn gitlab_deployment_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["project", "environment"],
                "x-kubernetes-validations": [
                    {"rule": "has(self.sha) != has(self.ref)", "message": "exactly one of sha or ref must be set"},
                    {"rule": "!has(oldSelf.environment) || self.environment == oldSelf.environment", "message": "environment is immutable", "fieldPath": ".environment"},
                ],
                "properties": {
                    "project": {"type": "string", "minLength": 1},
                    "environment": {"type": "string", "maxLength": 63,
                        "x-kubernetes-validations": [{"rule": "self.matches('^[a-z0-9/-]+$')", "message": "must be lower case"}]},
                    "sha": {"type": "string", "pattern": "^[0-9a-f]{40}$",
                        "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "sha is immutable"}]},
                    "ref": {"type": "string"},
                    "mode": {"type": "string", "enum": ["Cancel", "Orphan", "Delete"], "default": "Cancel"},
                    "replicas": {"type": "integer", "minimum": 0, "maximum": 10},
                    "ratio": {"type": "number", "exclusiveMinimum": true, "minimum": 0},
                    "at": {"type": "string", "format": "date-time"},
                    "note": {"type": "string", "nullable": true},
                    "port": {"x-kubernetes-int-or-string": true},
                    "tags": {"type": "array", "maxItems": 3, "minItems": 1, "items": {"type": "string"},
                        "x-kubernetes-list-type": "set",
                        "x-kubernetes-validations": [{"rule": "size(self) <= 2", "message": "at most two tags"}]},
                    "envs": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "required": ["name"], "properties": {
                            "name": {"type": "string"}, "value": {"type": "string", "default": "x"}}}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                    "target": {"type": "object", "default": {}, "properties": {
                        "kind": {"type": "string", "default": "Deployment"}, "name": {"type": "string"}}},
                }
            },
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
        }
    })
}

fn compiled() -> CompiledSchema {
    CompiledSchema::compile(&gitlab_deployment_schema()).expect("schema compiles")
}

fn base() -> Value {
    json!({
        "apiVersion": "gitlab-operator.io/v1alpha1",
        "kind": "GitlabDeployment",
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": {"project": "group/app", "environment": "production", "sha": "0123456789abcdef0123456789abcdef01234567"},
    })
}

fn with_spec(patch: Value) -> Value {
    let mut obj = base();
    json_patch::merge(&mut obj, &json!({"spec": patch}));
    obj
}

/// Appended by the real server when a structural error stops CEL evaluation.
const BLOCKED: &str = r#"FieldValueInvalid <nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#;

fn texts(causes: &[Cause]) -> Vec<String> {
    causes
        .iter()
        .map(|c| format!("{} {}", c.reason, c.display()))
        .collect()
}

#[test]
fn a_valid_object_has_no_causes() {
    let schema = compiled();
    let mut obj = base();
    schema.apply_defaults(&mut obj);
    assert_eq!(texts(&schema.validate(&obj, None)), Vec::<String>::new());
}

#[test]
fn structural_messages_match_the_real_server() {
    let schema = compiled();
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "type mismatch",
            json!({"replicas": "three"}),
            vec![
                r#"FieldValueTypeInvalid spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#,
                BLOCKED,
            ],
        ),
        (
            "pattern",
            json!({"sha": "zz"}),
            vec![
                r#"FieldValueInvalid spec.sha: Invalid value: "zz": spec.sha in body should match '^[0-9a-f]{40}$'"#,
            ],
        ),
        (
            "enum",
            json!({"mode": "Keep"}),
            vec![
                r#"FieldValueNotSupported spec.mode: Unsupported value: "Keep": supported values: "Cancel", "Orphan", "Delete""#,
                BLOCKED,
            ],
        ),
        (
            "minimum",
            json!({"replicas": -1}),
            vec![
                "FieldValueInvalid spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
            ],
        ),
        (
            "maximum",
            json!({"replicas": 11}),
            vec![
                "FieldValueInvalid spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10",
            ],
        ),
        (
            "exclusive minimum",
            json!({"ratio": 0}),
            vec![
                "FieldValueInvalid spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0",
            ],
        ),
        (
            "minLength",
            json!({"project": ""}),
            vec![
                r#"FieldValueInvalid spec.project: Invalid value: "": spec.project in body should be at least 1 chars long"#,
            ],
        ),
        (
            "maxLength",
            json!({"environment": "e".repeat(64)}),
            vec![
                "FieldValueTooLong spec.environment: Too long: may not be more than 63 bytes",
                BLOCKED,
            ],
        ),
        (
            "minItems",
            json!({"tags": []}),
            vec![
                "FieldValueInvalid spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items",
            ],
        ),
        (
            "date-time format",
            json!({"at": "yesterday"}),
            vec![
                r#"FieldValueTypeInvalid spec.at: Invalid value: "yesterday": spec.at in body must be of type date-time: "yesterday""#,
                BLOCKED,
            ],
        ),
        ("nullable allows null", json!({"note": null}), vec![]),
        (
            "int-or-string accepts both",
            json!({"port": "http"}),
            vec![],
        ),
        (
            "int-or-string rejects bool",
            json!({"port": true}),
            vec![
                r#"FieldValueTypeInvalid spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#,
                BLOCKED,
            ],
        ),
        (
            "map value type",
            json!({"labels": {"a": 1}}),
            vec![
                r#"FieldValueTypeInvalid spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer""#,
                BLOCKED,
            ],
        ),
        (
            "set duplicates",
            json!({"tags": ["a", "a"]}),
            vec![r#"FieldValueDuplicate spec.tags[1]: Duplicate value: "a""#],
        ),
        (
            "map-list duplicates",
            json!({"envs": [{"name": "A"}, {"name": "A", "value": "y"}]}),
            vec![
                r#"FieldValueDuplicate spec.envs[1]: Duplicate value: map[string]interface {}{"name":"A"}"#,
            ],
        ),
        (
            "embedded resource needs apiVersion and kind",
            json!({"template": {"metadata": {}}}),
            vec![
                "FieldValueRequired spec.template.apiVersion: Required value: must not be empty",
                "FieldValueRequired spec.template.kind: Required value: must not be empty",
                BLOCKED,
            ],
        ),
    ];
    for (name, patch, want) in cases {
        let mut obj = with_spec(patch);
        schema.apply_defaults(&mut obj);
        assert_eq!(texts(&schema.validate(&obj, None)), want, "case {name}");
    }
}

#[test]
fn required_and_type_null_messages() {
    let schema = compiled();
    let mut obj = base();
    obj["spec"].as_object_mut().unwrap().remove("project");
    assert_eq!(
        texts(&schema.validate(&obj, None))[0],
        "FieldValueRequired spec.project: Required value"
    );
    // A null that survives to validation (list item) is a type error.
    let obj = with_spec(json!({"tags": [null]}));
    assert_eq!(
        texts(&schema.validate(&obj, None))[0],
        r#"FieldValueTypeInvalid spec.tags[0]: Invalid value: "null": spec.tags[0] in body must be of type string: "null""#
    );
}

#[test]
fn cel_rules_match_the_real_server() {
    let schema = compiled();
    let old = base();
    let cases: Vec<(&str, Value, Option<&Value>, Vec<&str>)> = vec![
        (
            "exactly one of: both set",
            json!({"ref": "main"}),
            None,
            vec![
                r#"FieldValueInvalid spec: Invalid value: "object": exactly one of sha or ref must be set"#,
            ],
        ),
        (
            "matches",
            json!({"environment": "Prod"}),
            None,
            vec![
                r#"FieldValueInvalid spec.environment: Invalid value: "string": must be lower case"#,
            ],
        ),
        (
            "size",
            json!({"tags": ["a", "b", "c"]}),
            None,
            vec![r#"FieldValueInvalid spec.tags: Invalid value: "array": at most two tags"#],
        ),
        (
            "immutable sha on update",
            json!({"sha": "1123456789abcdef0123456789abcdef01234567"}),
            Some(&old),
            vec![r#"FieldValueInvalid spec.sha: Invalid value: "string": sha is immutable"#],
        ),
        (
            "transition rules skipped on create",
            json!({"sha": "1123456789abcdef0123456789abcdef01234567"}),
            None,
            vec![],
        ),
        (
            "fieldPath relocates",
            json!({"environment": "staging"}),
            Some(&old),
            vec![
                r#"FieldValueInvalid spec.environment: Invalid value: "object": environment is immutable"#,
            ],
        ),
    ];
    for (name, patch, old, want) in cases {
        let mut obj = with_spec(patch);
        schema.apply_defaults(&mut obj);
        assert_eq!(texts(&schema.validate(&obj, old)), want, "case {name}");
    }
}

#[test]
fn cel_reason_message_expression_and_fallback() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.min <= self.max"},
            {"rule": "self.min >= 0", "messageExpression": "'min must not be negative, got ' + string(self.min)"},
            {"rule": "self.max < 100", "message": "max too large", "reason": "FieldValueForbidden", "fieldPath": ".max"},
            {"rule": "self.max != 42", "message": "no", "reason": "FieldValueRequired"},
            {"rule": "self.max != 42", "reason": "FieldValueDuplicate"},
        ],
        "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}}}}});
    let schema = CompiledSchema::compile(&schema).unwrap();
    let obj = json!({"spec": {"min": -5, "max": -10}});
    assert_eq!(
        texts(&schema.validate(&obj, None)),
        vec![
            r#"FieldValueInvalid spec: Invalid value: "object": failed rule: self.min <= self.max"#,
            r#"FieldValueInvalid spec: Invalid value: "object": min must not be negative, got -5"#,
        ]
    );
    let obj = json!({"spec": {"min": 1, "max": 142}});
    assert_eq!(
        texts(&schema.validate(&obj, None)),
        vec!["FieldValueForbidden spec.max: Forbidden: max too large"]
    );
    let obj = json!({"spec": {"min": 1, "max": 42}});
    assert_eq!(
        texts(&schema.validate(&obj, None)),
        vec![
            "FieldValueRequired spec: Required value: no",
            r#"FieldValueDuplicate spec: Duplicate value: "object""#,
        ]
    );
}

#[test]
fn cel_old_self_correlates_list_maps_by_key_only() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "byKey": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": "self.v == oldSelf.v", "message": "v is immutable"}]}},
        "atomic": {"type": "array",
            "items": {"type": "object", "properties": {"v": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": "self.v == oldSelf.v", "message": "v is immutable"}]}},
    }}}});
    let schema = CompiledSchema::compile(&schema).unwrap();
    let old = json!({"spec": {"byKey": [{"name": "a", "v": "1"}, {"name": "b", "v": "2"}], "atomic": [{"v": "1"}]}});
    // Reordered: still equal per key. Atomic lists never bind oldSelf.
    let new = json!({"spec": {"byKey": [{"name": "b", "v": "2"}, {"name": "a", "v": "1"}], "atomic": [{"v": "9"}]}});
    assert_eq!(
        texts(&schema.validate(&new, Some(&old))),
        Vec::<String>::new()
    );
    let new = json!({"spec": {"byKey": [{"name": "b", "v": "3"}, {"name": "a", "v": "1"}]}});
    assert_eq!(
        texts(&schema.validate(&new, Some(&old))),
        vec![r#"FieldValueInvalid spec.byKey[0]: Invalid value: "object": v is immutable"#,]
    );
}

#[test]
fn cel_compile_errors_name_the_rule_path() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "self.a =="}]}}});
    let err = CompiledSchema::compile(&schema).unwrap_err();
    let SchemaError::CelCompile { field, message } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        field,
        "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
    );
    assert!(
        message.starts_with(r#"Invalid value: apiextensions.ValidationRule{Rule:"self.a ==", Message:"", MessageExpression:"", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:"#),
        "{message}"
    );
    assert_eq!(err.cause().reason, "FieldValueInvalid");

    let bad_pattern =
        json!({"type": "object", "properties": {"spec": {"type": "string", "pattern": "("}}});
    let err = CompiledSchema::compile_at(&bad_pattern, "spec.versions[0].schema.openAPIV3Schema")
        .unwrap_err();
    assert_eq!(
        err.cause().field,
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].pattern"
    );
}

#[test]
fn pruning_reports_unknown_fields() {
    let schema = compiled();
    let mut obj = with_spec(json!({
        "foo": 1,
        "envs": [{"name": "a", "bogus": true}],
        "labels": {"free": "form"},
        "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "junk": 1}, "spec": {"anything": 1}},
        "extra": {"kept": 1, "known": {"a": "x", "dropped": 2}},
    }));
    obj["metadata"]["bogus"] = json!("x");
    obj["status"] = json!({"phase": "Ready", "unknown": 1});
    obj["topLevel"] = json!(true);
    let pruned = schema.prune(&mut obj);
    assert_eq!(
        pruned,
        vec![
            "metadata.bogus",
            "spec.envs[0].bogus",
            "spec.extra.known.dropped",
            "spec.foo",
            "spec.template.metadata.junk",
            "status.unknown",
            "topLevel",
        ]
    );
    assert_eq!(obj["spec"]["extra"]["kept"], json!(1));
    assert_eq!(obj["spec"]["template"]["spec"]["anything"], json!(1));
    assert_eq!(obj["spec"]["labels"]["free"], json!("form"));
    assert_eq!(obj["metadata"]["name"], json!("demo"));
}

#[test]
fn defaulting_fills_absent_and_null_fields() {
    let schema = compiled();
    let mut obj =
        with_spec(json!({"mode": null, "ref": null, "note": null, "envs": [{"name": "a"}]}));
    schema.apply_defaults(&mut obj);
    let spec = &obj["spec"];
    assert_eq!(
        spec["mode"],
        json!("Cancel"),
        "null on a non-nullable field with a default → default"
    );
    assert!(
        spec.get("ref").is_none(),
        "null on a non-nullable field without default → dropped"
    );
    assert_eq!(spec["note"], Value::Null, "nullable keeps null");
    assert_eq!(spec["envs"][0]["value"], json!("x"));
    assert_eq!(
        spec["target"],
        json!({"kind": "Deployment"}),
        "defaults apply inside a defaulted object"
    );
}

#[test]
fn invalid_status_matches_spec_section_5() {
    let one = vec![Cause {
        reason: "FieldValueInvalid",
        field: "spec.sha".into(),
        message: "Invalid value: \"zz\": spec.sha in body should match '^[0-9a-f]{40}$'".into(),
    }];
    let status = invalid_status("gitlab-operator.io", "GitlabDeployment", "demo", &one);
    assert_eq!(
        status,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "GitlabDeployment.gitlab-operator.io \"demo\" is invalid: spec.sha: Invalid value: \"zz\": spec.sha in body should match '^[0-9a-f]{40}$'",
            "reason": "Invalid",
            "details": {"name": "demo", "group": "gitlab-operator.io", "kind": "GitlabDeployment",
                "causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: \"zz\": spec.sha in body should match '^[0-9a-f]{40}$'", "field": "spec.sha"}]},
            "code": 422,
        })
    );
    let two = vec![one[0].clone(), Cause::required("spec.replicas", "")];
    let status = invalid_status("", "ConfigMap", "cfg", &two);
    assert_eq!(
        status["message"],
        json!(
            "ConfigMap \"cfg\" is invalid: [spec.sha: Invalid value: \"zz\": spec.sha in body should match '^[0-9a-f]{40}$', spec.replicas: Required value]"
        )
    );
    assert!(status["details"].get("group").is_none());
}

#[test]
fn status_writes_validate_the_status_subtree() {
    let schema = compiled();
    let mut obj = with_spec(json!({"replicas": "bad"}));
    obj["status"] = json!({"phase": 3});
    let causes = schema.validate_status(&obj, None);
    assert_eq!(causes[0].field, "status.phase");
    assert!(
        causes.iter().all(|c| !c.field.starts_with("spec")),
        "{causes:?}"
    );
}

#[test]
fn updates_ratchet_errors_on_unchanged_values() {
    let schema = compiled();
    // Stored before the schema was tightened: an invalid sha and too many tags.
    let old = with_spec(json!({"sha": "zz", "tags": ["a", "b", "c"]}));
    let mut new = old.clone();
    new["spec"]["replicas"] = json!(2);
    assert_eq!(
        texts(&schema.validate(&new, Some(&old))),
        Vec::<String>::new()
    );
    // Changing the invalid value itself is validated again.
    new["spec"]["sha"] = json!("yy");
    assert_eq!(
        texts(&schema.validate(&new, Some(&old))),
        vec![
            r#"FieldValueInvalid spec.sha: Invalid value: "yy": spec.sha in body should match '^[0-9a-f]{40}$'"#,
            r#"FieldValueInvalid spec.sha: Invalid value: "string": sha is immutable"#,
        ]
    );
    new["spec"]["sha"] = json!("zz");
    new["spec"]["tags"] = json!(["a", "b", "d"]);
    assert_eq!(
        texts(&schema.validate(&new, Some(&old))),
        vec![r#"FieldValueInvalid spec.tags: Invalid value: "array": at most two tags"#]
    );
}

#[test]
fn cel_runtime_errors_are_reported_at_the_node() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "self.a == 'x'"}],
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}}});
    let schema = CompiledSchema::compile(&schema).unwrap();
    let causes = texts(&schema.validate(&json!({"spec": {"b": "y"}}), None));
    assert_eq!(
        causes,
        vec![
            r#"FieldValueInvalid spec: Invalid value: "object": no such key: a evaluating rule: self.a == 'x'"#
        ]
    );
}

#[test]
fn without_cel_rules_nothing_is_said_about_unchecked_rules() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "environment": {"type": "string", "maxLength": 5},
        "tags": {"type": "array", "maxItems": 1, "items": {"type": "string"}}}}}});
    let schema = CompiledSchema::compile(&schema).unwrap();
    let obj = json!({"spec": {"environment": "production", "tags": ["a", "b"]}});
    assert_eq!(
        texts(&schema.validate(&obj, None)),
        vec![
            "FieldValueTooLong spec.environment: Too long: may not be more than 5 bytes",
            "FieldValueTooMany spec.tags: Too many: 2: must have at most 1 item",
        ]
    );
}

#[test]
fn cel_root_rules_and_date_time_values() {
    let schema = json!({"type": "object",
    "x-kubernetes-validations": [{"rule": "self.metadata.name.startsWith('gl-')", "message": "name must start with gl-"}],
    "properties": {"metadata": {"type": "object"}, "spec": {"type": "object",
        "properties": {
            "at": {"type": "string", "format": "date-time",
                "x-kubernetes-validations": [{"rule": "self > timestamp('2020-01-01T00:00:00Z')", "message": "too old"}]},
        }}}});
    let schema = CompiledSchema::compile(&schema).unwrap();
    let ok = json!({"metadata": {"name": "gl-a"}, "spec": {"at": "2025-01-01T00:00:00Z"}});
    assert_eq!(texts(&schema.validate(&ok, None)), Vec::<String>::new());
    let bad = json!({"metadata": {"name": "a"}, "spec": {"at": "2019-01-01T00:00:00Z"}});
    assert_eq!(
        texts(&schema.validate(&bad, None)),
        vec![
            r#"FieldValueInvalid <nil>: Invalid value: "object": name must start with gl-"#,
            r#"FieldValueInvalid spec.at: Invalid value: "string": too old"#,
        ]
    );
}

#[test]
fn cel_optional_old_self_binds_an_optional() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
    "mode": {"type": "string", "x-kubernetes-validations": [
        {"rule": "self.size() > 0", "message": "mode must not be empty"},
        {"rule": "oldSelf.hasValue() ? self == oldSelf.value() : self != 'X'", "optionalOldSelf": true,
         "messageExpression": "oldSelf.hasValue() ? 'mode is fixed at ' + oldSelf.value() : 'mode X is reserved'"},
    ]}}}}});
    let schema = CompiledSchema::compile(&schema).unwrap();
    let create = json!({"spec": {"mode": "X"}});
    assert_eq!(
        texts(&schema.validate(&create, None)),
        vec![r#"FieldValueInvalid spec.mode: Invalid value: "string": mode X is reserved"#]
    );
    let old = json!({"spec": {"mode": "A"}});
    assert_eq!(
        texts(&schema.validate(&json!({"spec": {"mode": "A"}}), Some(&old))),
        Vec::<String>::new()
    );
    assert_eq!(
        texts(&schema.validate(&json!({"spec": {"mode": ""}}), Some(&old))),
        vec![
            r#"FieldValueInvalid spec.mode: Invalid value: "string": mode must not be empty"#,
            r#"FieldValueInvalid spec.mode: Invalid value: "string": mode is fixed at A"#,
        ]
    );
}

#[test]
fn cel_can_be_switched_off_per_schema() {
    let mut schema = compiled();
    let both = with_spec(json!({"ref": "main"}));
    assert_eq!(schema.validate(&both, None).len(), 1);
    schema.set_cel_enabled(false);
    assert_eq!(texts(&schema.validate(&both, None)), Vec::<String>::new());
}

#[test]
fn message_expression_compile_errors_name_the_expression_path() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "true"}, {"rule": "self.a == 1", "messageExpression": "'a is ' +"}]}}});
    let err = CompiledSchema::compile(&schema).unwrap_err();
    let cause = err.cause();
    assert_eq!(
        cause.field,
        "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[1].messageExpression"
    );
    assert!(
        cause.message.starts_with(
            r#"Invalid value: apiextensions.ValidationRule{Rule:"self.a == 1", Message:"", MessageExpression:"'a is ' +", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", OptionalOldSelf:(*bool)(nil)}: messageExpression compilation failed: ERROR: <input>:1:"#
        ),
        "{}",
        cause.message
    );
}

#[test]
fn numeric_bounds_print_as_go_openapi_does() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "count": {"type": "integer", "maximum": 1000000, "multipleOf": 2},
        "ratio": {"type": "number", "maximum": 1000000}}}}});
    let schema = CompiledSchema::compile(&schema).unwrap();
    let obj = json!({"spec": {"count": 2000001, "ratio": 2000000.5}});
    assert_eq!(
        texts(&schema.validate(&obj, None)),
        vec![
            "FieldValueInvalid spec.count: Invalid value: 2000001: spec.count in body should be less than or equal to 1000000",
            "FieldValueInvalid spec.count: Invalid value: 2000001: spec.count in body should be a multiple of 2",
            "FieldValueInvalid spec.ratio: Invalid value: 2.0000005e+06: spec.ratio in body should be less than or equal to 1e+06",
        ]
    );
}

#[test]
fn a_type_error_still_reports_the_enum() {
    let schema = compiled();
    let obj = with_spec(json!({"mode": 5}));
    assert_eq!(
        texts(&schema.validate(&obj, None)),
        vec![
            r#"FieldValueTypeInvalid spec.mode: Invalid value: "integer": spec.mode in body must be of type string: "integer""#,
            r#"FieldValueNotSupported spec.mode: Unsupported value: 5: supported values: "Cancel", "Orphan", "Delete""#,
            BLOCKED,
        ]
    );
}

#[test]
fn non_structural_schemas_are_refused_with_every_violation() {
    let schema = json!({"type": "object", "additionalProperties": {"type": "string"}, "properties": {
        "spec": {"properties": {"tags": {"type": "array"}, "template": {"x-kubernetes-embedded-resource": true}}},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        "port": {"x-kubernetes-int-or-string": true}}});
    let err = CompiledSchema::compile(&schema).unwrap_err();
    assert!(matches!(err, SchemaError::NotStructural { .. }), "{err:?}");
    let p = "spec.validation.openAPIV3Schema";
    assert_eq!(
        err.causes()
            .iter()
            .map(|c| format!("{} {}", c.reason, c.display()))
            .collect::<Vec<_>>(),
        vec![
            format!(
                "FieldValueForbidden {p}.additionalProperties: Forbidden: must not be used at the root"
            ),
            format!(
                "FieldValueRequired {p}.properties[spec].properties[tags].items: Required value: must be specified"
            ),
            format!(
                "FieldValueRequired {p}.properties[spec].properties[template].properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"
            ),
            format!(
                "FieldValueRequired {p}.properties[spec].properties[template].type: Required value: must be object if x-kubernetes-embedded-resource is true"
            ),
            format!(
                "FieldValueRequired {p}.properties[spec].type: Required value: must not be empty for specified object fields"
            ),
        ]
    );
    assert_eq!(err.cause(), err.causes()[0]);
}
