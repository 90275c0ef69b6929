//! The README's resource reference must name every field of the CRDs, and nothing else: a new
//! field without documentation, or documentation of a field that is gone, fails here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use gitlab_deployment_operator::api::{
    ClusterGitlabConnection, GitlabConnection, GitlabDeployment,
};
use kube::CustomResourceExt;
use serde_json::Value;

/// Field paths below `prefix`: leaves, with a `LabelSelector` (matchLabels/matchExpressions)
/// counted as one field, as people think of it.
fn leaves(schema: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    let schema = match schema.get("items") {
        Some(items) if schema["type"] == "array" => items,
        _ => schema,
    };
    match schema.get("properties").and_then(Value::as_object) {
        Some(props) if !props.contains_key("matchLabels") => {
            for (name, sub) in props {
                leaves(sub, &format!("{prefix}.{name}"), out);
            }
        }
        _ => {
            out.insert(prefix.to_owned());
        }
    }
}

fn schema_of(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    serde_json::to_value(
        &crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema,
    )
    .unwrap()
}

#[test]
fn the_readme_reference_names_every_crd_field_and_no_other() {
    let mut expected = BTreeSet::new();
    let gld = schema_of(&GitlabDeployment::crd());
    leaves(&gld["properties"]["spec"], "spec", &mut expected);
    for name in gld["properties"]["status"]["properties"]
        .as_object()
        .unwrap()
        .keys()
    {
        expected.insert(format!("status.{name}"));
    }
    for crd in [GitlabConnection::crd(), ClusterGitlabConnection::crd()] {
        leaves(
            &schema_of(&crd)["properties"]["spec"],
            "spec",
            &mut expected,
        );
    }

    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## Resources")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a Resources section");
    let documented: BTreeSet<String> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|field| field.starts_with("spec.") || field.starts_with("status."))
        .map(str::to_owned)
        .collect();

    let missing: Vec<_> = expected.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&expected).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "README reference out of date.\n  fields not documented: {missing:?}\n  documented but not in the CRDs: {stale:?}"
    );
}
