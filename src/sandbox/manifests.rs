//! The sandbox's resources, taken from `examples/` (one source of truth: what a person applies
//! to a real cluster is what the demo applies), with the few sandbox-only changes made here:
//! the token and URL of the emulated GitLab, the commit being rolled out, and the emulator's
//! rollout annotations. Pure: no IO, so the overlays are table-tested.

use serde_json::{Value, json};

use crate::cli::sandbox::SandboxError;

/// One bundled manifest: its path under `examples/` and its text.
#[derive(Clone, Copy, Debug)]
pub struct Example {
    pub file: &'static str,
    pub yaml: &'static str,
}

pub const SECRET: Example = Example {
    file: "examples/secret.yaml",
    yaml: include_str!("../../examples/secret.yaml"),
};
pub const CONNECTION: Example = Example {
    file: "examples/gitlabconnection.yaml",
    yaml: include_str!("../../examples/gitlabconnection.yaml"),
};
pub const DEPLOYMENT: Example = Example {
    file: "examples/deployment.yaml",
    yaml: include_str!("../../examples/deployment.yaml"),
};
pub const STAGING: Example = Example {
    file: "examples/gitlabdeployment-staging.yaml",
    yaml: include_str!("../../examples/gitlabdeployment-staging.yaml"),
};
pub const PRODUCTION: Example = Example {
    file: "examples/gitlabdeployment-production.yaml",
    yaml: include_str!("../../examples/gitlabdeployment-production.yaml"),
};
/// The approval gate of the Flux example: production held until GitLab approves.
pub const GATE: Example = Example {
    file: "examples/gitops/flux/approval-gate/gate/gitlabdeployment.yaml",
    yaml: include_str!("../../examples/gitops/flux/approval-gate/gate/gitlabdeployment.yaml"),
};

/// The Deployment production runs in the gated scenarios: its own workload, applied only once
/// GitLab approved (as Flux's `dependsOn` on the gate would apply it).
pub const GATED_WORKLOAD: &str = "web-production";

/// Rollout pace of the kube emulator's Deployment controller (see `kube_emulator::apps`).
pub const STEP_ANNOTATION: &str = "emulator.gitlab-operator.io/rollout-step";
/// `success` (default), `fail` or `stall` (see `kube_emulator::apps`).
pub const OUTCOME_ANNOTATION: &str = "emulator.gitlab-operator.io/rollout-outcome";
/// The container whose image tag `examples/gitlabdeployment-production.yaml` reads.
pub const APP_CONTAINER: &str = "app";

/// How the emulated rollout of one revision behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The emulator reports `ProgressDeadlineExceeded` after the first step.
    Fail,
    /// No progress at all (the rollout stays in progress).
    Stall,
}

impl Outcome {
    fn annotation(self) -> Option<&'static str> {
        match self {
            Outcome::Success => None,
            Outcome::Fail => Some("fail"),
            Outcome::Stall => Some("stall"),
        }
    }
}

/// Parse a bundled example into JSON.
pub fn parse(example: Example) -> Result<Value, SandboxError> {
    let value: Value = serde_yaml::from_str(example.yaml).map_err(|e| SandboxError::Example {
        file: example.file,
        reason: e.to_string(),
    })?;
    if value.get("kind").and_then(Value::as_str).is_none() {
        return Err(SandboxError::Example {
            file: example.file,
            reason: "no kind".to_owned(),
        });
    }
    Ok(value)
}

fn malformed(example: Example, what: &str) -> SandboxError {
    SandboxError::Example {
        file: example.file,
        reason: format!("{what} is missing"),
    }
}

/// The token Secret holding `token` instead of the placeholder.
pub fn secret(token: &str) -> Result<Value, SandboxError> {
    let mut v = parse(SECRET)?;
    let data = v
        .get_mut("stringData")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| malformed(SECRET, "stringData"))?;
    data.insert("token".to_owned(), json!(token));
    Ok(v)
}

/// The `default` GitlabConnection pointing at `url` (the emulator).
pub fn connection(url: &str) -> Result<Value, SandboxError> {
    let mut v = parse(CONNECTION)?;
    let spec = v
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| malformed(CONNECTION, "spec"))?;
    spec.insert("url".to_owned(), json!(url));
    // The example's rate limit suits a shared GitLab; the sandbox has it to itself and its
    // timeout should show a stuck emulator quickly.
    spec.remove("rateLimit");
    spec.insert("timeout".to_owned(), json!("5s"));
    Ok(v)
}

/// Deployment `name` (the example's `web`, or [`GATED_WORKLOAD`]) running the image built from
/// commit `sha`, paced by the emulator's annotations: one pod step every `step_ms`, ending as
/// `outcome` says.
pub fn deployment(
    name: &str,
    sha: &str,
    step_ms: u64,
    outcome: Outcome,
) -> Result<Value, SandboxError> {
    let mut v = parse(DEPLOYMENT)?;
    if name != name_of(&v) {
        v["metadata"]["name"] = json!(name);
        v["metadata"]["labels"]["app"] = json!(name);
        // Its own pods: the example's selector and labels name `web`.
        v["spec"]["selector"]["matchLabels"]["app"] = json!(name);
        v["spec"]["template"]["metadata"]["labels"]["app"] = json!(name);
    }
    let containers = v
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| malformed(DEPLOYMENT, "spec.template.spec.containers"))?;
    let app = containers
        .iter_mut()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(APP_CONTAINER))
        .ok_or_else(|| malformed(DEPLOYMENT, "container `app`"))?;
    let image = app
        .get("image")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(DEPLOYMENT, "the image of container `app`"))?;
    app["image"] = json!(with_tag(image, sha));
    let metadata = v
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| malformed(DEPLOYMENT, "metadata"))?;
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| malformed(DEPLOYMENT, "metadata.annotations as a map"))?;
    annotations.insert(STEP_ANNOTATION.to_owned(), json!(format!("{step_ms}ms")));
    if let Some(outcome) = outcome.annotation() {
        annotations.insert(OUTCOME_ANNOTATION.to_owned(), json!(outcome));
    }
    Ok(v)
}

/// `image` with its tag replaced by `tag` (a registry port is not a tag).
pub fn with_tag(image: &str, tag: &str) -> String {
    let name = image.split('@').next().unwrap_or(image);
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    let repo = match name[slash..].find(':') {
        Some(colon) => &name[..slash + colon],
        None => name,
    };
    format!("{repo}:{tag}")
}

/// `web-staging`, reporting the fixed commit `sha`.
pub fn staging(sha: &str) -> Result<Value, SandboxError> {
    at_sha(STAGING, sha)
}

/// A GitlabDeployment example with `spec.sha` set to `sha`.
fn at_sha(example: Example, sha: &str) -> Result<Value, SandboxError> {
    let mut v = parse(example)?;
    let spec = v
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| malformed(example, "spec"))?;
    spec.insert("sha".to_owned(), json!(sha));
    Ok(v)
}

/// `web-production`, as in the example (the commit comes from the image tag).
pub fn production() -> Result<Value, SandboxError> {
    parse(PRODUCTION)
}

/// `web-production` behind the approval gate (the Flux example's gate) at commit `sha`,
/// following its own Deployment [`GATED_WORKLOAD`].
pub fn gated_production(sha: &str) -> Result<Value, SandboxError> {
    let mut v = at_sha(GATE, sha)?;
    let target = v
        .pointer_mut("/spec/target")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| malformed(GATE, "spec.target"))?;
    target.insert("name".to_owned(), json!(GATED_WORKLOAD));
    Ok(v)
}

/// `metadata.name` of a manifest.
pub fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `spec.environment` of a GitlabDeployment manifest.
pub fn environment_of(v: &Value) -> &str {
    v.pointer("/spec/environment")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const SHA: &str = "1111111111111111111111111111111111111111";

    #[test]
    fn every_bundled_example_parses() {
        for example in [SECRET, CONNECTION, DEPLOYMENT, STAGING, PRODUCTION, GATE] {
            parse(example).unwrap_or_else(|e| panic!("{}: {e}", example.file));
        }
    }

    #[test]
    fn with_tag_replaces_only_the_tag() {
        let cases = [
            ("plain", "app", "app:X"),
            ("tagged", "app:1.0", "app:X"),
            ("registry port", "reg:5000/app", "reg:5000/app:X"),
            ("port and tag", "reg:5000/g/app:old", "reg:5000/g/app:X"),
            ("digest dropped", "reg/app:1@sha256:abc", "reg/app:X"),
        ];
        for (name, image, want) in cases {
            assert_eq!(with_tag(image, "X"), want, "{name}");
        }
    }

    #[test]
    fn overlays_change_only_what_the_sandbox_needs() {
        let s = secret("glpat-x").unwrap();
        assert_eq!(s["stringData"]["token"], "glpat-x");
        let c = connection("http://127.0.0.1:1").unwrap();
        assert_eq!(c["spec"]["url"], "http://127.0.0.1:1");
        assert_eq!(c["spec"]["tokenSecretRef"]["name"], name_of(&s));
        assert!(c["spec"].get("rateLimit").is_none());

        let d = deployment("web", SHA, 250, Outcome::Fail).unwrap();
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            format!("registry.example.com/demo/app:{SHA}")
        );
        assert_eq!(d["metadata"]["annotations"][STEP_ANNOTATION], "250ms");
        assert_eq!(d["metadata"]["annotations"][OUTCOME_ANNOTATION], "fail");
        let ok = deployment("web", SHA, 250, Outcome::Success).unwrap();
        assert!(
            ok["metadata"]["annotations"]
                .get(OUTCOME_ANNOTATION)
                .is_none()
        );

        let st = staging(SHA).unwrap();
        assert_eq!(st["spec"]["sha"], SHA);
        assert_eq!(environment_of(&st), "staging");
        assert_eq!(st["spec"]["target"]["name"], name_of(&d));
        let p = production().unwrap();
        assert_eq!(environment_of(&p), "production");
        assert_eq!(p["spec"]["revisionFrom"]["container"], APP_CONTAINER);
        assert_eq!(p["spec"]["target"]["name"], name_of(&d));

        let g = gated_production(SHA).unwrap();
        assert_eq!(
            (name_of(&g), environment_of(&g)),
            ("web-production", "production")
        );
        assert_eq!(g["spec"]["sha"], SHA);
        assert_eq!(g["spec"]["approval"]["gate"], true);
        let w = deployment(GATED_WORKLOAD, SHA, 250, Outcome::Success).unwrap();
        assert_eq!(g["spec"]["target"]["name"], name_of(&w));
        assert_eq!(w["spec"]["selector"]["matchLabels"]["app"], GATED_WORKLOAD);
        assert_eq!(
            w["spec"]["template"]["metadata"]["labels"]["app"],
            GATED_WORKLOAD
        );
    }
}
