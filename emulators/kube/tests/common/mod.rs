//! Shared test helpers: a tiny test CRD and condition waits with deadlines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use serde_json::Value;
use std::time::Duration;

pub mod kubectl;

pub const DEADLINE: Duration = Duration::from_secs(30);

pub async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + DEADLINE;
    while tokio::time::Instant::now() < end {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// An emulator whose workloads roll out in 50 ms steps, and a client for it.
pub async fn fast_rollouts() -> (kube_emulator::KubeEmulator, kube::Client) {
    let emu = kube_emulator::KubeEmulator::options()
        .rollout_step(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let client = emu.client().await;
    (emu, client)
}

/// The `kubectl rollout status` rule: the current generation observed, every replica updated
/// and available, `Progressing` at `NewReplicaSetAvailable`, `Available` true.
pub async fn deployment_complete(
    api: &kube::Api<k8s_openapi::api::apps::v1::Deployment>,
    name: &str,
    replicas: i32,
) -> bool {
    let d = api.get(name).await.unwrap();
    let s = d.status.clone().unwrap_or_default();
    let conditions = s.conditions.unwrap_or_default();
    let condition = |ty: &str| conditions.iter().find(|c| c.type_ == ty);
    s.observed_generation == d.metadata.generation
        && s.updated_replicas == Some(replicas)
        && s.replicas == Some(replicas)
        && s.available_replicas == Some(replicas)
        && condition("Progressing")
            .is_some_and(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"))
        && condition("Available").is_some_and(|c| c.status == "True")
}

/// A tiny CRD: `widgets.test.emulator.io`, kind `Widget`, with status/scale subresources,
/// printer columns, defaults, an enum, a pattern, a CEL rule and a transition rule.
pub const WIDGET_CRD_YAML: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.emulator.io
spec:
  group: test.emulator.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd], categories: [emu]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [color]
            x-kubernetes-validations:
            - {rule: "self.size <= 10", message: size too big}
            properties:
              color:
                type: string
                enum: [red, blue]
                x-kubernetes-validations:
                - {rule: "self == oldSelf", message: color is immutable}
              size: {type: integer, minimum: 0, default: 1}
              sha: {type: string, pattern: '^[0-9a-f]{7}$'}
              replicas: {type: integer}
          status:
            type: object
            properties:
              replicas: {type: integer}
              phase: {type: string}
              conditions:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [type]
                items:
                  type: object
                  required: [type, status]
                  properties:
                    type: {type: string}
                    status: {type: string}
                    reason: {type: string}
                    message: {type: string}
                    lastTransitionTime: {type: string, format: date-time}
"#;

pub fn widget_crd() -> Value {
    serde_yaml::from_str(WIDGET_CRD_YAML).unwrap()
}
