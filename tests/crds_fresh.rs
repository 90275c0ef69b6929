//! The committed CRDs must equal what the code generates, so `kubectl apply -f crds/` never
//! installs a stale schema.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gitlab_deployment_operator::api::crds::{CRDS_FILE, crds_yaml};

#[test]
fn committed_crds_match_generated() {
    let generated = crds_yaml().expect("CRDs render");
    // The generated file, and the Helm chart's copy (Helm installs only files in its chart).
    for file in [
        CRDS_FILE,
        "deploy/helm/gitlab-deployment-operator/crds/crds.yaml",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is stale; regenerate it with: cargo run -p gitlab-deployment-operator -- crd > {file}",
            path.display(),
        );
    }
}

#[test]
fn crds_parse_back_as_three_definitions() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use serde::Deserialize;
    let yaml = crds_yaml().unwrap();
    let names: Vec<String> = serde_yaml::Deserializer::from_str(&yaml)
        .map(|doc| {
            CustomResourceDefinition::deserialize(doc)
                .unwrap()
                .metadata
                .name
                .unwrap()
        })
        .collect();
    assert_eq!(
        names,
        [
            "gitlabdeployments.gitlab-operator.io",
            "gitlabconnections.gitlab-operator.io",
            "clustergitlabconnections.gitlab-operator.io"
        ]
    );
}
