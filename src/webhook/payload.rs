//! The strict parse of a webhook body: a bounded JSON object with a string `object_kind`;
//! for `deployment`, a positive integer `deployment_id` and a string `status`. Other keys
//! are ignored (GitLab adds keys over time); wrong types are refused.

use serde::Deserialize;

use crate::api::deployment::DeploymentId;

/// Largest body read; GitLab's own payloads for deployments are a few KiB.
pub const MAX_BODY: usize = 1024 * 1024;

/// What a body announces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hook {
    /// A Deployment Hook: lifecycle (`running`, `success`, ...) or approval (`blocked`,
    /// `approved`, `rejected`) event of deployment `deployment_id`.
    Deployment {
        deployment_id: DeploymentId,
        status: String,
    },
    /// Another `object_kind` (push, pipeline, ...): accepted and ignored.
    Other { object_kind: String },
}

/// Why a body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("the body is not a JSON object: {0}")]
    NotJson(String),
    #[error("the body has no string object_kind")]
    NoKind,
    #[error("the deployment hook is malformed: {0}")]
    Deployment(String),
}

impl PayloadError {
    /// Stable category, for the metric and logs.
    pub fn category(&self) -> &'static str {
        match self {
            PayloadError::NotJson(_) => "NotJson",
            PayloadError::NoKind => "NoObjectKind",
            PayloadError::Deployment(_) => "MalformedDeploymentHook",
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    object_kind: String,
}

#[derive(Deserialize)]
struct DeploymentFields {
    deployment_id: i64,
    status: String,
}

/// Parse a body (already bounded by [`MAX_BODY`]).
pub fn parse(body: &[u8]) -> Result<Hook, PayloadError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    if !value.is_object() {
        return Err(PayloadError::NotJson("not an object".into()));
    }
    let envelope = Envelope::deserialize(&value).map_err(|_| PayloadError::NoKind)?;
    if envelope.object_kind != "deployment" {
        return Ok(Hook::Other {
            object_kind: envelope.object_kind,
        });
    }
    let fields = DeploymentFields::deserialize(&value)
        .map_err(|e| PayloadError::Deployment(e.to_string()))?;
    let Some(deployment_id) = DeploymentId::new(fields.deployment_id) else {
        return Err(PayloadError::Deployment(
            "deployment_id is not a positive integer".into(),
        ));
    };
    if fields.status.is_empty() {
        return Err(PayloadError::Deployment("status is empty".into()));
    }
    Ok(Hook::Deployment {
        deployment_id,
        status: fields.status,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        let deployment = |id: i64, status: &str| -> Result<Hook, &'static str> {
            Ok(Hook::Deployment {
                deployment_id: DeploymentId::new(id).unwrap(),
                status: status.into(),
            })
        };
        let cases: Vec<(&str, Result<Hook, &'static str>)> = vec![
            (
                r#"{"object_kind":"deployment","status":"success","deployment_id":43,"deployable_id":null}"#,
                deployment(43, "success"),
            ),
            (
                r#"{"object_kind":"deployment","status":"approved","deployment_id":7,"approver":{"id":1},"approval":{"status":"approved"}}"#,
                deployment(7, "approved"),
            ),
            (
                r#"{"object_kind":"push","ref":"main"}"#,
                Ok(Hook::Other {
                    object_kind: "push".into(),
                }),
            ),
            (
                r#"{"object_kind":"deployment","status":"success","deployment_id":"43"}"#,
                Err("MalformedDeploymentHook"),
            ),
            (
                r#"{"object_kind":"deployment","status":"success","deployment_id":-1}"#,
                Err("MalformedDeploymentHook"),
            ),
            (
                r#"{"object_kind":"deployment","status":"success"}"#,
                Err("MalformedDeploymentHook"),
            ),
            (
                r#"{"object_kind":"deployment","status":7,"deployment_id":1}"#,
                Err("MalformedDeploymentHook"),
            ),
            (r#"{"object_kind":1}"#, Err("NoObjectKind")),
            (r#"{"status":"success"}"#, Err("NoObjectKind")),
            (r#"[1,2]"#, Err("NotJson")),
            (r#"{"object_kind":"deployment""#, Err("NotJson")),
            ("", Err("NotJson")),
        ];
        for (body, want) in cases {
            let got = parse(body.as_bytes()).map_err(|e| e.category());
            assert_eq!(got, want, "{body}");
        }
    }
}
