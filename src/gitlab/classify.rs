//! Turning GitLab's answers into [`Error`]s (spec §7, §8).
//!
//! GitLab answers in two shapes: `{"error": "..."}` (routing, Grape parameter validation,
//! OAuth token errors) and `{"message": string | {field: [msgs]} | [msgs]}` (endpoint code).
//! Rate limits and proxies answer plain text or HTML. [`classify`] turns status + body into one
//! variant; it is pure so it is table-tested below.

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

use super::endpoint::RequestContext;
use super::error::{Error, Missing};
use super::types::FieldErrors;

/// The parts of a GitLab JSON error body.
#[derive(Debug, Default, PartialEq)]
struct ErrorBody {
    message: Option<Value>,
    error: Option<String>,
    error_description: Option<String>,
    scope: Option<String>,
    /// The body as text when it is not JSON (429 `Retry later`, proxy HTML), shortened.
    raw: String,
}

const MAX_RAW: usize = 200;

/// Text of an HTML error page (a proxy's 502, say): tags and `<head>`/`<style>` content
/// removed, so the message shows "502 Bad Gateway" rather than markup.
fn strip_html(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let body_start = lower.find("<body").unwrap_or(0);
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text[body_start..].chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn parse_body(body: &[u8]) -> ErrorBody {
    let text = String::from_utf8_lossy(body);
    let text = if text.trim_start().starts_with('<') {
        std::borrow::Cow::Owned(strip_html(&text))
    } else {
        text
    };
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let raw = if collapsed.chars().count() > MAX_RAW {
        let cut: String = collapsed.chars().take(MAX_RAW).collect();
        format!("{cut}…")
    } else {
        collapsed
    };
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return ErrorBody {
            raw,
            ..ErrorBody::default()
        };
    };
    let string = |key: &str| match map.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    ErrorBody {
        message: map.get("message").cloned(),
        error: string("error"),
        error_description: string("error_description"),
        scope: string("scope"),
        raw,
    }
}

/// Render GitLab's `message` value: a string as is, a field map as `field: a, b; other: c`,
/// an array joined with `; `.
fn render_message(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}: {}", render_list(v)))
            .collect::<Vec<_>>()
            .join("; "),
        Value::Array(_) => render_list(v),
        other => other.to_string(),
    }
}

fn render_list(v: &Value) -> String {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn field_errors(v: &Value) -> FieldErrors {
    let mut out = FieldErrors::new();
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let msgs = match v {
                    Value::Array(items) => items
                        .iter()
                        .map(|i| match i {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect(),
                    Value::String(s) => vec![s.clone()],
                    other => vec![other.to_string()],
                };
                out.insert(k.clone(), msgs);
            }
        }
        Value::Array(_) => {
            out.insert("base".to_owned(), vec![render_list(v)]);
        }
        _ => {}
    }
    out
}

/// `cannot transition via "run"` → `run`.
fn transition_event(fields: &FieldErrors) -> Option<String> {
    const PREFIX: &str = "cannot transition via \"";
    fields.get("status")?.iter().find_map(|m| {
        m.strip_prefix(PREFIX)
            .and_then(|rest| rest.strip_suffix('"'))
            .map(str::to_owned)
    })
}

impl ErrorBody {
    /// Best human text of the body: `message`, else `error` (+ description), else raw text.
    fn text(&self) -> String {
        if let Some(m) = &self.message {
            return render_message(m);
        }
        match (&self.error, &self.error_description) {
            (Some(e), Some(d)) => format!("{e}: {d}"),
            (Some(e), None) => e.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) if self.raw.is_empty() => "empty body".to_owned(),
            (None, None) => self.raw.clone(),
        }
    }
}

/// Turn a non-success answer into an [`Error`]. `retry_after` is the pause computed from the
/// rate-limit headers (see `ratelimit::retry_after`), used for 429.
pub(crate) fn classify(
    ctx: RequestContext,
    status: StatusCode,
    body: &[u8],
    retry_after: Duration,
) -> Error {
    let parsed = parse_body(body);
    let text = parsed.text();
    let code = status.as_u16();
    match code {
        401 => Error::Unauthorized { ctx, detail: text },
        403 => {
            if parsed.error.as_deref() == Some("insufficient_scope") {
                Error::Forbidden {
                    ctx,
                    missing_scope: Some(parsed.scope.clone().unwrap_or_else(|| "api".to_owned())),
                    message: text,
                }
            } else if text.starts_with("403 Forbidden - ") {
                // e.g. "Deployments created using GitLab CI can not be updated using the API":
                // a rule about this deployment, not about the caller's role.
                Error::NotAllowed {
                    ctx,
                    status: code,
                    message: text,
                }
            } else {
                Error::Forbidden {
                    ctx,
                    message: text,
                    missing_scope: None,
                }
            }
        }
        404 | 405 => {
            let what = match (&parsed.message, &parsed.error) {
                (Some(Value::String(m)), _) if m == "404 Project Not Found" => Missing::Project,
                (Some(Value::String(m)), _) if m.eq_ignore_ascii_case("404 Not found") => {
                    Missing::Deployment
                }
                (None, Some(_)) => Missing::Route,
                _ if code == 405 => Missing::Route,
                _ => Missing::Other,
            };
            Error::NotFound {
                ctx,
                what,
                message: text,
            }
        }
        400 => match (&parsed.message, &parsed.error) {
            // Grape parameter errors: {"error": "a is missing, b is invalid"}.
            (None, Some(e)) => Error::Validation {
                ctx,
                message: e.clone(),
                fields: FieldErrors::new(),
            },
            (Some(m @ (Value::Object(_) | Value::Array(_))), _) => {
                let fields = field_errors(m);
                match transition_event(&fields) {
                    Some(event) => Error::InvalidTransition { ctx, event },
                    None => Error::Validation {
                        ctx,
                        message: text,
                        fields,
                    },
                }
            }
            // Finder rules F1–F5 ("400 Bad request - ..."): a bad filter combination.
            (Some(Value::String(m)), _) if m.starts_with("400 Bad request") => Error::Validation {
                ctx,
                message: text,
                fields: FieldErrors::new(),
            },
            // Business rules with bare messages: "Cannot destroy running deployment",
            // "Deployment currently deployed to environment", approval rules (§9.3).
            (Some(Value::String(_)), _) => Error::NotAllowed {
                ctx,
                status: code,
                message: text,
            },
            _ => Error::Validation {
                ctx,
                message: text,
                fields: FieldErrors::new(),
            },
        },
        409 | 412 => Error::Conflict {
            ctx,
            status: code,
            message: text,
        },
        429 => Error::RateLimited { ctx, retry_after },
        500..=599 => Error::Server {
            ctx,
            status: code,
            message: text,
        },
        _ => Error::Unexpected {
            ctx,
            status: code,
            message: text,
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::gitlab::ErrorKind;
    use crate::gitlab::endpoint::Endpoint;
    use crate::gitlab::types::ProjectId;

    fn ctx() -> RequestContext {
        RequestContext::new(
            Endpoint::UpdateDeployment,
            &ProjectId::Path("group/proj".into()),
            Some(42),
        )
    }

    #[test]
    fn real_bodies_map_to_categories() {
        // (name, status, body, category, kind)
        let cases: &[(&str, u16, &str, &str, ErrorKind)] = &[
            (
                "E3 401",
                401,
                r#"{"message":"401 Unauthorized"}"#,
                "Unauthorized",
                ErrorKind::User,
            ),
            (
                "E4 expired",
                401,
                r#"{"error":"invalid_token","error_description":"Token is expired. You can either do re-authorization or token refresh."}"#,
                "Unauthorized",
                ErrorKind::User,
            ),
            (
                "E5 scope",
                403,
                r#"{"error":"insufficient_scope","error_description":"The request requires higher privileges than provided by the access token.","scope":"api"}"#,
                "Forbidden",
                ErrorKind::User,
            ),
            (
                "E9 role",
                403,
                r#"{"message":"403 Forbidden"}"#,
                "Forbidden",
                ErrorKind::User,
            ),
            (
                "E15 CI",
                403,
                r#"{"message":"403 Forbidden - Deployments created using GitLab CI can not be updated using the API"}"#,
                "NotAllowed",
                ErrorKind::User,
            ),
            (
                "E1 route",
                404,
                r#"{"error":"404 Not Found"}"#,
                "NotFound",
                ErrorKind::User,
            ),
            (
                "E2 405",
                405,
                r#"{"error":"405 Not Allowed"}"#,
                "NotFound",
                ErrorKind::User,
            ),
            (
                "E8 project",
                404,
                r#"{"message":"404 Project Not Found"}"#,
                "NotFound",
                ErrorKind::User,
            ),
            (
                "E10 deployment",
                404,
                r#"{"message":"404 Not found"}"#,
                "NotFound",
                ErrorKind::User,
            ),
            (
                "E6 grape",
                400,
                r#"{"error":"status is missing, status does not have a valid value"}"#,
                "Validation",
                ErrorKind::User,
            ),
            (
                "E7 per_page",
                400,
                r#"{"error":"per_page has a value not allowed"}"#,
                "Validation",
                ErrorKind::User,
            ),
            (
                "E11 finder",
                400,
                r#"{"message":"400 Bad request - `updated_at` filter requires `updated_at` sort"}"#,
                "Validation",
                ErrorKind::User,
            ),
            (
                "E12 sha",
                400,
                r#"{"message":{"sha":["The commit does not exist"]}}"#,
                "Validation",
                ErrorKind::User,
            ),
            (
                "E14 name",
                400,
                r#"{"message":{"name":["is too long (maximum is 255 characters)","can contain only letters"]}}"#,
                "Validation",
                ErrorKind::User,
            ),
            (
                "approval array",
                400,
                r#"{"message":["Comment is too long"]}"#,
                "Validation",
                ErrorKind::User,
            ),
            (
                "E16 transition",
                400,
                r#"{"message":{"status":["cannot transition via \"run\""]}}"#,
                "InvalidTransition",
                ErrorKind::User,
            ),
            (
                "E17 running",
                400,
                r#"{"message":"Cannot destroy running deployment"}"#,
                "NotAllowed",
                ErrorKind::User,
            ),
            (
                "E18 deployed",
                400,
                r#"{"message":"Deployment currently deployed to environment"}"#,
                "NotAllowed",
                ErrorKind::User,
            ),
            (
                "E19 approval",
                400,
                r#"{"message":"This environment is not protected."}"#,
                "NotAllowed",
                ErrorKind::User,
            ),
            (
                "E20 429",
                429,
                "Retry later\n",
                "RateLimited",
                ErrorKind::RateLimited,
            ),
            (
                "E21 500",
                500,
                r#"{"message":"500 Internal Server Error"}"#,
                "ServerError",
                ErrorKind::Transient,
            ),
            (
                "502 html",
                502,
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
                "ServerError",
                ErrorKind::Transient,
            ),
            (
                "E22 409",
                409,
                r#"{"message":"409 Conflict: Resource lock"}"#,
                "Conflict",
                ErrorKind::Transient,
            ),
            (
                "412",
                412,
                r#"{"message":"412 Precondition Failed"}"#,
                "Conflict",
                ErrorKind::Transient,
            ),
            (
                "418",
                418,
                "teapot",
                "UnexpectedStatus",
                ErrorKind::Internal,
            ),
            (
                "400 garbage",
                400,
                "not json",
                "Validation",
                ErrorKind::User,
            ),
        ];
        for (name, status, body, category, kind) in cases {
            let err = classify(
                ctx(),
                StatusCode::from_u16(*status).unwrap(),
                body.as_bytes(),
                Duration::from_secs(7),
            );
            assert_eq!(err.category(), *category, "case {name}: {err}");
            assert_eq!(err.kind(), *kind, "case {name}");
        }
    }

    #[test]
    fn details_are_extracted() {
        let err = classify(
            ctx(),
            StatusCode::BAD_REQUEST,
            br#"{"message":{"status":["cannot transition via \"run\""]}}"#,
            Duration::ZERO,
        );
        match err {
            Error::InvalidTransition { event, .. } => assert_eq!(event, "run"),
            other => panic!("{other:?}"),
        }

        let err = classify(
            ctx(),
            StatusCode::BAD_REQUEST,
            br#"{"message":{"sha":["The commit does not exist"],"ref":["The branch or tag does not exist"]}}"#,
            Duration::ZERO,
        );
        match &err {
            Error::Validation {
                fields, message, ..
            } => {
                assert_eq!(fields["sha"], vec!["The commit does not exist".to_owned()]);
                assert_eq!(
                    message,
                    "ref: The branch or tag does not exist; sha: The commit does not exist"
                );
            }
            other => panic!("{other:?}"),
        }

        let err = classify(
            ctx(),
            StatusCode::NOT_FOUND,
            br#"{"message":"404 Project Not Found"}"#,
            Duration::ZERO,
        );
        assert!(matches!(
            err,
            Error::NotFound {
                what: Missing::Project,
                ..
            }
        ));
        let err = classify(
            ctx(),
            StatusCode::NOT_FOUND,
            br#"{"message":"404 Not found"}"#,
            Duration::ZERO,
        );
        assert!(matches!(
            err,
            Error::NotFound {
                what: Missing::Deployment,
                ..
            }
        ));
        let err = classify(
            ctx(),
            StatusCode::NOT_FOUND,
            br#"{"error":"404 Not Found"}"#,
            Duration::ZERO,
        );
        assert!(matches!(
            err,
            Error::NotFound {
                what: Missing::Route,
                ..
            }
        ));

        let err = classify(
            ctx(),
            StatusCode::FORBIDDEN,
            br#"{"error":"insufficient_scope","error_description":"x","scope":"api"}"#,
            Duration::ZERO,
        );
        assert!(matches!(&err, Error::Forbidden { missing_scope: Some(s), .. } if s == "api"));

        let err = classify(
            ctx(),
            StatusCode::TOO_MANY_REQUESTS,
            b"Retry later\n",
            Duration::from_secs(3),
        );
        assert!(
            matches!(err, Error::RateLimited { retry_after, .. } if retry_after == Duration::from_secs(3))
        );
    }

    #[test]
    fn html_pages_are_reduced_to_text() {
        let page = "<!DOCTYPE html>\n<html><head><title>x</title><style>body{color:red}</style></head>\n<body><h1>502 Bad Gateway</h1>\n<p>nginx</p></body></html>";
        let err = classify(
            ctx(),
            StatusCode::BAD_GATEWAY,
            page.as_bytes(),
            Duration::ZERO,
        );
        assert_eq!(err.gitlab_message(), Some("502 Bad Gateway nginx"));
    }

    #[test]
    fn messages_name_the_call_and_stay_short() {
        let body = "x".repeat(10_000);
        let err = classify(
            ctx(),
            StatusCode::BAD_GATEWAY,
            body.as_bytes(),
            Duration::ZERO,
        );
        let text = err.to_string();
        assert!(text.starts_with(
            "PUT /projects/:id/deployments/:deployment_id (project group/proj, deployment 42)"
        ));
        assert!(text.len() < 600, "{text}");
        let err = classify(
            ctx(),
            StatusCode::BAD_REQUEST,
            br#"{"message":"Cannot destroy running deployment"}"#,
            Duration::ZERO,
        );
        assert_eq!(
            err.gitlab_message(),
            Some("Cannot destroy running deployment")
        );
    }
}
