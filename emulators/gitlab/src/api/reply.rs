//! Answers before they become HTTP responses: GitLab's error shapes, injected faults
//! (load-balancer HTML, 429s, malformed bodies, dropped connections).

use super::*;

/// An answer before it becomes an HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Reply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub(super) fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: Some("application/json"),
            body: body.to_string(),
            headers: Vec::new(),
        }
    }
    pub(super) fn entity<T: serde::Serialize>(status: u16, v: &T) -> Reply {
        Reply {
            status,
            content_type: Some("application/json"),
            body: serde_json::to_string(v).unwrap_or_else(|_| "null".to_string()),
            headers: Vec::new(),
        }
    }
    pub(super) fn no_content() -> Reply {
        Reply {
            status: 204,
            content_type: None,
            body: String::new(),
            headers: Vec::new(),
        }
    }
}

/// Every error answer, with GitLab's shape.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(super) enum ApiError {
    #[error("404 Not Found (no route)")]
    RouteNotFound,
    #[error("401 Unauthorized")]
    Unauthorized,
    #[error("token expired")]
    TokenExpired,
    #[error("token revoked")]
    TokenRevoked,
    #[error("insufficient scope, needs {0}")]
    InsufficientScope(&'static str),
    #[error("parameter errors: {0}")]
    Params(String),
    #[error("404 Project Not Found")]
    ProjectNotFound,
    #[error("403 Forbidden")]
    Forbidden,
    #[error("403 Forbidden - {0}")]
    ForbiddenBecause(&'static str),
    #[error("404 Not found")]
    NotFound,
    /// `not_found!('X')`: `404 X Not Found`.
    #[error("404 {0} Not Found")]
    NotFoundNamed(&'static str),
    #[error("400 Bad request - {0}")]
    BadRequest(&'static str),
    #[error("400 {0}")]
    Message(serde_json::Value),
    #[error("412 Precondition Failed")]
    PreconditionFailed,
    /// A model validation failure answered as 422 with the given body.
    #[error("422 {0}")]
    Unprocessable(serde_json::Value),
}

impl ApiError {
    /// Stable category, for logs.
    pub(super) fn category(&self) -> &'static str {
        match self {
            ApiError::RouteNotFound => "RouteNotFound",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::TokenExpired => "TokenExpired",
            ApiError::TokenRevoked => "TokenRevoked",
            ApiError::InsufficientScope(_) => "InsufficientScope",
            ApiError::Params(_) => "InvalidParameters",
            ApiError::ProjectNotFound => "ProjectNotFound",
            ApiError::Forbidden | ApiError::ForbiddenBecause(_) => "Forbidden",
            ApiError::NotFound | ApiError::NotFoundNamed(_) => "NotFound",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Message(_) => "Unprocessable",
            ApiError::PreconditionFailed => "PreconditionFailed",
            ApiError::Unprocessable(_) => "Unprocessable",
        }
    }

    pub(super) fn reply(&self) -> Reply {
        match self {
            ApiError::RouteNotFound => Reply::json(404, json!({"error": "404 Not Found"})),
            ApiError::Unauthorized => Reply::json(401, json!({"message": "401 Unauthorized"})),
            ApiError::TokenExpired | ApiError::TokenRevoked => {
                let desc = if *self == ApiError::TokenExpired {
                    "Token is expired. You can either do re-authorization or token refresh."
                } else {
                    "Token was revoked. You have to re-authorize from the user."
                };
                let mut r = Reply::json(
                    401,
                    json!({"error": "invalid_token", "error_description": desc}),
                );
                r.headers.push((
                    "WWW-Authenticate".to_string(),
                    // rack-oauth2's default realm (unverified that GitLab keeps it).
                    format!(
                        "Bearer realm=\"Protected by OAuth 2.0\", error=\"invalid_token\", error_description=\"{desc}\""
                    ),
                ));
                r
            }
            // rack-oauth2's Forbidden carries no WWW-Authenticate header (GitLab's api_guard
            // notes this with a FIXME); `scope` is the accepted scopes joined by spaces.
            ApiError::InsufficientScope(scope) => Reply::json(
                403,
                json!({
                    "error": "insufficient_scope",
                    "error_description": "The request requires higher privileges than provided by the access token.",
                    "scope": scope
                }),
            ),
            ApiError::Params(msg) => Reply::json(400, json!({"error": msg})),
            ApiError::ProjectNotFound => {
                Reply::json(404, json!({"message": "404 Project Not Found"}))
            }
            ApiError::Forbidden => Reply::json(403, json!({"message": "403 Forbidden"})),
            ApiError::ForbiddenBecause(why) => {
                Reply::json(403, json!({"message": format!("403 Forbidden - {why}")}))
            }
            ApiError::NotFound => Reply::json(404, json!({"message": "404 Not found"})),
            ApiError::NotFoundNamed(what) => {
                Reply::json(404, json!({"message": format!("404 {what} Not Found")}))
            }
            ApiError::BadRequest(text) => {
                Reply::json(400, json!({"message": format!("400 Bad request - {text}")}))
            }
            ApiError::Message(v) => Reply::json(400, json!({"message": v})),
            ApiError::PreconditionFailed => {
                Reply::json(412, json!({"message": "412 Precondition Failed"}))
            }
            ApiError::Unprocessable(v) => Reply::json(422, v.clone()),
        }
    }
}

pub(super) fn html_error(code: u16) -> Reply {
    let reason = StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    Reply {
        status: code,
        content_type: Some("text/html"),
        body: format!(
            "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        ),
        headers: Vec::new(),
    }
}

pub(super) fn throttled(limit: &RateLimit, observed: u64, now: DateTime<Utc>) -> Reply {
    Reply {
        status: 429,
        content_type: Some("text/plain"),
        body: "Retry later\n".to_string(),
        headers: rate_limit_headers(limit, observed, now)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

/// What an injected fault turns into (`None` = drop the connection).
pub(super) fn fault_reply(kind: &FaultKind, g: &Inner) -> Option<Reply> {
    match kind {
        FaultKind::Status(500) => Some(Reply::json(
            500,
            json!({"message": "500 Internal Server Error"}),
        )),
        FaultKind::Status(code @ 502..=504) => Some(html_error(*code)),
        FaultKind::Status(code) => Some(Reply::json(*code, json!({"message": code.to_string()}))),
        FaultKind::RateLimited { retry_after_secs } => {
            let limit = g
                .rate_limit
                .clone()
                .unwrap_or_else(RateLimit::gitlab_default);
            let now = g.now();
            let mut r = throttled(&limit, limit.limit + 1, now);
            let reset = now.timestamp() + *retry_after_secs as i64;
            for (k, v) in r.headers.iter_mut() {
                match k.as_str() {
                    "Retry-After" => *v = retry_after_secs.to_string(),
                    "RateLimit-Reset" => *v = reset.to_string(),
                    "RateLimit-ResetTime" => {
                        *v = DateTime::<Utc>::from_timestamp(reset, 0)
                            .map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
                            .unwrap_or_default()
                    }
                    _ => {}
                }
            }
            Some(r)
        }
        FaultKind::MalformedJson => Some(Reply {
            status: 200,
            content_type: Some("application/json"),
            body: "{\"id\": 1, \"iid\": 1, \"ref\": \"main\", \"sha\": ".to_string(),
            headers: Vec::new(),
        }),
        FaultKind::Drop => None,
        FaultKind::Delay(_) => None,
    }
}

pub(super) fn into_response(r: Reply) -> Response {
    let mut resp = Response::new(Body::from(r.body));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    if let Some(ct) = r.content_type {
        h.insert("content-type", HeaderValue::from_static(ct));
    }
    for (k, v) in r.headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            h.append(k, v);
        }
    }
    resp
}

/// A response whose body fails at once: hyper aborts the connection, so the client sees a
/// reset/EOF instead of an answer.
pub(super) fn dropped_connection() -> Response {
    let stream = futures::stream::once(async {
        Err::<Vec<u8>, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "injected fault: drop connection",
        ))
    });
    Response::new(Body::from_stream(stream))
}
