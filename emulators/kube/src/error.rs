//! API errors rendered as `metav1.Status` (spec §5): kube-rs and kubectl branch on `reason` and
//! `code`, and kubectl prints `message` (or rebuilds it from `details.causes` for Invalid).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};

/// One API failure. `Status` is the catch-all with an explicit reason; the named variants are
/// the ones with wording clients depend on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{qualified} {name:?} not found")]
    NotFound {
        qualified: String,
        group: String,
        resource: String,
        name: String,
    },
    #[error("{qualified} {name:?} already exists")]
    AlreadyExists {
        qualified: String,
        group: String,
        resource: String,
        name: String,
    },
    #[error("conflict on {qualified} {name:?}")]
    Conflict {
        qualified: String,
        group: String,
        resource: String,
        name: String,
        message: Option<String>,
    },
    #[error("{message}")]
    Invalid { message: String, details: Value },
    #[error("{message}")]
    Status {
        code: u16,
        reason: &'static str,
        message: String,
        details: Option<Value>,
        retry_after: Option<u64>,
    },
}

impl ApiError {
    /// Stable category for logs and the request log.
    pub fn category(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "NotFound",
            Self::AlreadyExists { .. } => "AlreadyExists",
            Self::Conflict { .. } => "Conflict",
            Self::Invalid { .. } => "Invalid",
            Self::Status { reason, .. } => reason,
        }
    }

    pub fn code(&self) -> u16 {
        match self {
            Self::NotFound { .. } => 404,
            Self::AlreadyExists { .. } | Self::Conflict { .. } => 409,
            Self::Invalid { .. } => 422,
            Self::Status { code, .. } => *code,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::Status {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// A create whose body carries `metadata.resourceVersion`: the real apiserver's storage
    /// refuses it with a 500 that has no reason (tests/fidelity.rs, `conflict_and_not_found`).
    pub fn create_with_resource_version() -> Self {
        Self::Status {
            code: 500,
            reason: "",
            message: "resourceVersion should not be set on objects to be created".into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn not_found_path() -> Self {
        Self::Status {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: Some(json!({})),
            retry_after: None,
        }
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::Status {
            code: 405,
            reason: "MethodNotAllowed",
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn unsupported_media_type() -> Self {
        Self::Status {
            code: 415,
            reason: "UnsupportedMediaType",
            message: "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::Status {
            code: 500,
            reason: "InternalError",
            message: format!("Internal error occurred: {message}"),
            details: None,
            retry_after: None,
        }
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self::Status {
            code: 410,
            reason: "Expired",
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self::Status {
            code: 401,
            reason: "Unauthorized",
            message: "Unauthorized".into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn forbidden(message: impl Into<String>, details: Option<Value>) -> Self {
        Self::Status {
            code: 403,
            reason: "Forbidden",
            message: message.into(),
            details,
            retry_after: None,
        }
    }

    /// A 422 with plain causes: `<Kind>.<group> "<name>" is invalid: <field>: <message>`.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: &[(&str, String, String)]) -> Self {
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let rendered: Vec<String> = causes.iter().map(|(_, f, m)| format!("{f}: {m}")).collect();
        let joined = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let mut details = json!({"name": name, "kind": kind, "causes": causes.iter().map(|(r, f, m)| json!({"reason": r, "message": m, "field": f})).collect::<Vec<_>>()});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Self::Invalid {
            message: format!("{qualified} {name:?} is invalid: {joined}"),
            details,
        }
    }

    /// The `metav1.Status` body.
    pub fn status_body(&self) -> Value {
        let (message, reason, details) = match self {
            Self::NotFound { qualified, group, resource, name } => {
                (format!("{qualified} \"{name}\" not found"), "NotFound", Some(details(name, group, resource)))
            }
            Self::AlreadyExists { qualified, group, resource, name } => (
                format!("{qualified} \"{name}\" already exists"),
                "AlreadyExists",
                Some(details(name, group, resource)),
            ),
            Self::Conflict { qualified, group, resource, name, message } => (
                message.clone().unwrap_or_else(|| format!(
                    "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                )),
                "Conflict",
                Some(details(name, group, resource)),
            ),
            Self::Invalid { message, details } => (message.clone(), "Invalid", Some(details.clone())),
            Self::Status { message, reason, details, .. } => (message.clone(), *reason, details.clone()),
        };
        let mut body = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": self.code(),
        });
        // Go's `omitempty`: a Status without a reason has no `reason` field.
        if reason.is_empty()
            && let Some(m) = body.as_object_mut()
        {
            m.remove("reason");
        }
        if let Some(d) = details {
            body["details"] = d;
        }
        if let Self::Status {
            retry_after: Some(s),
            ..
        } = self
        {
            let d = body.get_mut("details").and_then(Value::as_object_mut);
            match d {
                Some(d) => {
                    d.insert("retryAfterSeconds".into(), json!(s));
                }
                None => body["details"] = json!({"retryAfterSeconds": s}),
            }
        }
        body
    }
}

fn details(name: &str, group: &str, resource: &str) -> Value {
    let mut d = json!({"name": name, "kind": resource});
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, axum::Json(self.status_body())).into_response();
        if let Self::Status {
            retry_after: Some(s),
            ..
        } = &self
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
