//! The pure schema/table/openapi modules through the emulator's HTTP server, judged by what
//! the real kubectl (v1.32) prints: 422 messages from structural and CEL validation, unknown
//! fields under `--validate=strict`, `get` Table output (default and `-o wide`), and
//! `explain` of a CRD. Skipped (passes) when kubectl is not installed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kube_emulator::KubeEmulator;

mod common;
use common::kubectl::{self, Kubectl};

/// A CRD shaped like the operator's GitlabDeployment (printer columns, CEL, defaults).
const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gitlabdeployments.gitlab-operator.io
spec:
  group: gitlab-operator.io
  scope: Namespaced
  names: {plural: gitlabdeployments, singular: gitlabdeployment, kind: GitlabDeployment, shortNames: [gld], categories: [gitlab]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Environment, type: string, jsonPath: .spec.environment}
    - {name: SHA, type: string, jsonPath: .spec.sha, priority: 1}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        description: GitlabDeployment reports a workload's rollouts to GitLab.
        properties:
          spec:
            type: object
            description: What to report, and where.
            required: [environment]
            x-kubernetes-validations:
            - {rule: "has(self.sha) != has(self.ref)", message: exactly one of sha or ref must be set}
            properties:
              environment:
                type: string
                maxLength: 63
                description: GitLab environment name.
                x-kubernetes-validations:
                - {rule: "self == oldSelf", message: environment is immutable}
              sha: {type: string, pattern: '^[0-9a-f]{40}$'}
              ref: {type: string}
              deletionPolicy: {type: string, enum: [Cancel, Orphan, Delete], default: Cancel}
          status:
            type: object
            properties:
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {type: string}
                    status: {type: string}
"#;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn cr(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: gitlab-operator.io/v1alpha1\nkind: GitlabDeployment\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

async fn start() -> Option<(KubeEmulator, Kubectl)> {
    if !kubectl::installed() {
        return None;
    }
    // kubectl sends the bearer token only over TLS.
    let emu = KubeEmulator::options().tls(true).start().await.unwrap();
    let k = Kubectl::for_emulator(&emu, "schema-kubectl");
    k.ok(&["apply", "-f", "-"], Some(CRD)).await;
    k.ok(
        &[
            "wait",
            "--for=condition=established",
            "--timeout=30s",
            "crd/gitlabdeployments.gitlab-operator.io",
        ],
        None,
    )
    .await;
    Some((emu, k))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_prints_the_real_servers_validation_errors() {
    let Some((_emu, k)) = start().await else {
        return;
    };

    let stderr = k
        .fails(
            &["create", "-f", "-"],
            Some(&cr("bad-sha", "  environment: production\n  sha: zz\n")),
        )
        .await;
    assert!(
        stderr.contains(r#"The GitlabDeployment "bad-sha" is invalid: spec.sha: Invalid value: "zz": spec.sha in body should match '^[0-9a-f]{40}$'"#),
        "{stderr}"
    );

    let stderr = k
        .fails(
            &["create", "-f", "-"],
            Some(&cr(
                "both",
                &format!("  environment: production\n  sha: {SHA}\n  ref: main\n"),
            )),
        )
        .await;
    assert!(
        stderr.contains(r#"The GitlabDeployment "both" is invalid: spec: Invalid value: "object": exactly one of sha or ref must be set"#),
        "{stderr}"
    );

    let stderr = k
        .fails(
            &["create", "-f", "-"],
            Some(&cr(
                "policy",
                "  environment: production\n  ref: main\n  deletionPolicy: Keep\n",
            )),
        )
        .await;
    assert!(stderr.contains(r#"spec.deletionPolicy: Unsupported value: "Keep": supported values: "Cancel", "Orphan", "Delete""#), "{stderr}");

    // Unknown fields: default --validate=strict sends fieldValidation=Strict.
    let stderr = k
        .fails(
            &["create", "-f", "-"],
            Some(&cr(
                "typo",
                "  environment: production\n  ref: main\n  sah: abc\n",
            )),
        )
        .await;
    assert!(stderr.contains(r#"unknown field "spec.sah""#), "{stderr}");

    // Transition rule on update: environment is immutable.
    k.ok(
        &["apply", "-f", "-"],
        Some(&cr("demo", "  environment: production\n  ref: main\n")),
    )
    .await;
    let yaml = k.ok(&["get", "gld", "demo", "-o", "yaml"], None).await;
    assert!(yaml.contains("deletionPolicy: Cancel"), "defaulted: {yaml}");
    let stderr = k
        .fails(
            &["apply", "-f", "-"],
            Some(&cr("demo", "  environment: staging\n  ref: main\n")),
        )
        .await;
    assert!(
        stderr.contains(r#"spec.environment: Invalid value: "string": environment is immutable"#),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_prints_printer_columns_and_explain_reads_the_crd_schema() {
    let Some((_emu, k)) = start().await else {
        return;
    };
    k.ok(
        &["apply", "-f", "-"],
        Some(&cr(
            "demo",
            &format!("  environment: production\n  sha: {SHA}\n"),
        )),
    )
    .await;

    let out = k.ok(&["get", "gitlabdeployments"], None).await;
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "ENVIRONMENT", "READY", "AGE"], "{out}");
    // A missing value is a null cell, as from the real table convertor; kubectl prints it blank.
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["demo", "production"], "{out}");
    assert_eq!(row.len(), 3, "READY is blank: {out}");
    assert!(row[2].ends_with('s'), "age in seconds: {out}");

    let wide = k.ok(&["get", "gld", "-o", "wide"], None).await;
    assert!(wide.lines().next().unwrap().contains("SHA"), "{wide}");
    assert!(wide.contains(SHA), "{wide}");

    let labels = k.ok(&["get", "gld", "--show-labels", "-A"], None).await;
    assert!(
        labels.lines().next().unwrap().starts_with("NAMESPACE"),
        "{labels}"
    );

    let explain = k.ok(&["explain", "gitlabdeployments.spec"], None).await;
    assert!(
        explain.contains("KIND:       GitlabDeployment"),
        "{explain}"
    );
    assert!(explain.contains("GitLab environment name."), "{explain}");

    let crds = k.ok(&["get", "crd"], None).await;
    assert!(
        crds.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .eq(["NAME", "CREATED", "AT"]),
        "{crds}"
    );
}
