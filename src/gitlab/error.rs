//! The client's error type: one variant per way a call can fail, each with a stable
//! [`Category`] (the Event reason, the `category` metric label, the CLI's exit code) from which
//! the operator's reaction ([`ErrorKind`]) follows. Turning GitLab's answers into these variants
//! is `classify`'s job (spec §7, §8).

use std::fmt;
use std::time::Duration;

use super::endpoint::RequestContext;
use super::types::FieldErrors;

/// How a caller should react to an error; the operator's `error_policy` matches on it. The one
/// such enum of the crate: the controller's errors use it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Goes away by itself (a server error, a timeout, a conflict): retry with backoff.
    Transient,
    /// Wait for the connection's pause deadline, then retry.
    RateLimited,
    /// Retrying will not help until a person changes something (token, spec, project).
    User,
    /// A bug or an unexpected server: retry slowly and report it.
    Internal,
}

/// The stable category of an [`Error`], one per variant. Each is named exactly as its
/// category string, and each has one [`ErrorKind`]: callers decide on these variants, never by
/// comparing strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Unauthorized,
    Forbidden,
    NotFound,
    Validation,
    InvalidTransition,
    NotAllowed,
    Conflict,
    RateLimited,
    ServerError,
    Timeout,
    TransportError,
    DecodeError,
    UnexpectedStatus,
    ConfigError,
    SendDeadlinePassed,
}

impl Category {
    /// Every category, for tables derived from them (the reasons that mean `Stalled`).
    pub const ALL: [Category; 15] = [
        Category::Unauthorized,
        Category::Forbidden,
        Category::NotFound,
        Category::Validation,
        Category::InvalidTransition,
        Category::NotAllowed,
        Category::Conflict,
        Category::RateLimited,
        Category::ServerError,
        Category::Timeout,
        Category::TransportError,
        Category::DecodeError,
        Category::UnexpectedStatus,
        Category::ConfigError,
        Category::SendDeadlinePassed,
    ];

    /// The stable PascalCase name: the Kubernetes Event reason and the `category` metric label.
    pub const fn name(self) -> &'static str {
        match self {
            Category::Unauthorized => "Unauthorized",
            Category::Forbidden => "Forbidden",
            Category::NotFound => "NotFound",
            Category::Validation => "Validation",
            Category::InvalidTransition => "InvalidTransition",
            Category::NotAllowed => "NotAllowed",
            Category::Conflict => "Conflict",
            Category::RateLimited => "RateLimited",
            Category::ServerError => "ServerError",
            Category::Timeout => "Timeout",
            Category::TransportError => "TransportError",
            Category::DecodeError => "DecodeError",
            Category::UnexpectedStatus => "UnexpectedStatus",
            Category::ConfigError => "ConfigError",
            Category::SendDeadlinePassed => "SendDeadlinePassed",
        }
    }

    pub const fn kind(self) -> ErrorKind {
        match self {
            Category::ServerError
            | Category::Timeout
            | Category::TransportError
            | Category::Conflict
            | Category::SendDeadlinePassed => ErrorKind::Transient,
            Category::RateLimited => ErrorKind::RateLimited,
            Category::Unauthorized
            | Category::Forbidden
            | Category::NotFound
            | Category::Validation
            | Category::InvalidTransition
            | Category::NotAllowed
            | Category::ConfigError => ErrorKind::User,
            Category::DecodeError | Category::UnexpectedStatus => ErrorKind::Internal,
        }
    }
}

/// What a 404 was about. GitLab distinguishes them only by body text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Missing {
    /// `{"message":"404 Project Not Found"}`: unknown project or one the token cannot see.
    Project,
    /// `{"message":"404 Not found"}`: the deployment is not in this project.
    Deployment,
    /// `{"error":"404 Not Found"}` (or 405): no such route: wrong base URL, an un-encoded path,
    /// or the EE approval route on a CE server.
    Route,
    /// A 404 body we do not recognise.
    Other,
}

/// Why a call with a send deadline was not sent (see [`Error::SendDeadlinePassed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Late {
    /// The deadline had already passed when the call was ready to go.
    Passed,
    /// GitLab's 429 pause on this connection ends this long from now, after the deadline.
    Paused(Duration),
    /// The connection's own request budget (`rateLimit`) frees a request only this long from
    /// now, after the deadline.
    Budget(Duration),
}

impl fmt::Display for Late {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Late::Passed => write!(f, "its send deadline had passed"),
            Late::Paused(wait) => write!(
                f,
                "GitLab's rate-limit pause on this connection ends in {:.1}s, after its send deadline",
                wait.as_secs_f64()
            ),
            Late::Budget(wait) => write!(
                f,
                "the connection's rateLimit frees a request only in {:.1}s, after its send deadline",
                wait.as_secs_f64()
            ),
        }
    }
}

/// An error from the GitLab Deployments API client. Messages name the call and say what to do;
/// none contains the token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{ctx}: GitLab rejected the token (401 {detail}); check that it is valid, not expired or \
         revoked, and that its kind (private, OAuth or job token) is the one configured"
    )]
    Unauthorized { ctx: RequestContext, detail: String },

    #[error("{ctx}: {}", forbidden_text(.message, .missing_scope.as_deref()))]
    Forbidden {
        ctx: RequestContext,
        message: String,
        /// Set for `insufficient_scope`: the scope(s) GitLab asked for.
        missing_scope: Option<String>,
    },

    #[error("{ctx}: {}", not_found_text(*.what, .message))]
    NotFound {
        ctx: RequestContext,
        what: Missing,
        message: String,
    },

    #[error("{ctx}: GitLab rejected the request (400): {message}; fix the named parameters")]
    Validation {
        ctx: RequestContext,
        /// GitLab's text, or the rendered field map.
        message: String,
        /// GitLab's field → messages map (empty for Grape's `{"error": "..."}` form).
        fields: FieldErrors,
    },

    #[error(
        "{ctx}: GitLab refused the status change (status: cannot transition via \"{event}\"): \
         the deployment's current status does not allow it, and re-sending the current status is \
         refused too; read the deployment to see its status"
    )]
    InvalidTransition { ctx: RequestContext, event: String },

    #[error("{ctx}: GitLab does not allow this: {message}")]
    NotAllowed {
        ctx: RequestContext,
        status: u16,
        message: String,
    },

    #[error("{ctx}: GitLab reported a conflict ({status}: {message}); retry later")]
    Conflict {
        ctx: RequestContext,
        status: u16,
        message: String,
    },

    #[error(
        "{ctx}: GitLab's rate limit was hit (429); this connection pauses for {}s before its next \
         request (nothing was processed by GitLab, so the call may be sent again after the pause)",
        .retry_after.as_secs_f64().ceil()
    )]
    RateLimited {
        ctx: RequestContext,
        retry_after: Duration,
    },

    #[error(
        "{ctx}: GitLab answered {status} ({message}); a GitLab or proxy failure, try again later"
    )]
    Server {
        ctx: RequestContext,
        status: u16,
        message: String,
    },

    #[error(
        "{ctx}: no answer from GitLab within {}s; check that GitLab is reachable or raise the \
         request timeout",
        .after.as_secs_f64()
    )]
    Timeout {
        ctx: RequestContext,
        after: Duration,
    },

    #[error(
        "{ctx}: could not talk to GitLab: {message}; check the URL, DNS, proxy and TLS settings \
         (CA bundle)"
    )]
    Transport {
        ctx: RequestContext,
        message: String,
    },

    #[error("{ctx}: GitLab's answer could not be read: {message}; is the URL really a GitLab API?")]
    Decode {
        ctx: RequestContext,
        message: String,
    },

    #[error("{ctx}: GitLab answered an unexpected {status} ({message})")]
    Unexpected {
        ctx: RequestContext,
        status: u16,
        message: String,
    },

    #[error("invalid GitLab client configuration: {message}")]
    Config { message: String },

    /// The caller gave the call a moment by which it must be over (the operator: when another
    /// process may give up a claimed create), and the request, with its timeout, no longer fit
    /// before it. Nothing was sent: this error is never the answer to a request that left.
    #[error(
        "{ctx}: not sent, because {late} (the last moment a request with this connection's {}s \
         timeout could start and still end in time); nothing reached GitLab, and the operator \
         claims the create again; if this keeps happening, the connection's timeout leaves too \
         little of the operator's recovery grace (--recovery-grace-seconds): shorten the one or \
         raise the other",
        .timeout.as_secs_f64()
    )]
    SendDeadlinePassed {
        ctx: RequestContext,
        late: Late,
        timeout: Duration,
    },
}

fn forbidden_text(message: &str, missing_scope: Option<&str>) -> String {
    match missing_scope {
        Some(scope) => format!(
            "the token lacks the scope this call needs (403 insufficient_scope, GitLab wants \
             {scope:?}); use a token with the `api` scope (`read_api` is enough only for reads)"
        ),
        None => format!(
            "GitLab refused the call ({message}); the token's user needs the Reporter role to \
             read, Developer to create/update, Maintainer to delete, deploy access to protected \
             environments, and the project's Environments feature must be on"
        ),
    }
}

fn not_found_text(what: Missing, message: &str) -> String {
    match what {
        Missing::Project => format!(
            "GitLab does not know this project or the token's user cannot see it ({message}); \
             check the project id or full path and the user's membership"
        ),
        Missing::Deployment => format!(
            "no such deployment in this project ({message}); use the global deployment `id`, \
             not the per-project `iid`"
        ),
        Missing::Route => format!(
            "GitLab has no such route ({message}); check the GitLab URL (with or without \
             /api/v4), and note that the approval route exists only on GitLab EE"
        ),
        Missing::Other => format!("GitLab answered 404 ({message})"),
    }
}

impl Error {
    /// The error's category, from its variant.
    pub fn class(&self) -> Category {
        match self {
            Error::Unauthorized { .. } => Category::Unauthorized,
            Error::Forbidden { .. } => Category::Forbidden,
            Error::NotFound { .. } => Category::NotFound,
            Error::Validation { .. } => Category::Validation,
            Error::InvalidTransition { .. } => Category::InvalidTransition,
            Error::NotAllowed { .. } => Category::NotAllowed,
            Error::Conflict { .. } => Category::Conflict,
            Error::RateLimited { .. } => Category::RateLimited,
            Error::Server { .. } => Category::ServerError,
            Error::Timeout { .. } => Category::Timeout,
            Error::Transport { .. } => Category::TransportError,
            Error::Decode { .. } => Category::DecodeError,
            Error::Unexpected { .. } => Category::UnexpectedStatus,
            Error::Config { .. } => Category::ConfigError,
            Error::SendDeadlinePassed { .. } => Category::SendDeadlinePassed,
        }
    }

    /// Stable PascalCase name of [`Error::class`]: the Event reason and the metric label.
    pub fn category(&self) -> &'static str {
        self.class().name()
    }

    pub fn kind(&self) -> ErrorKind {
        self.class().kind()
    }

    /// Whether the client itself may resend an *idempotent* call after this error: 5xx,
    /// timeouts and transport failures. 4xx are never retried (429 is handled separately,
    /// through the connection's pause).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Server { .. } | Error::Timeout { .. } | Error::Transport { .. }
        )
    }

    /// How long to wait before calling this connection again: a 429's pause, or the wait a
    /// call not sent for its deadline would have needed.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => Some(*retry_after),
            Error::SendDeadlinePassed {
                late: Late::Paused(wait) | Late::Budget(wait),
                ..
            } => Some(*wait),
            _ => None,
        }
    }

    /// GitLab's own message, for the CLI and for status conditions.
    pub fn gitlab_message(&self) -> Option<&str> {
        match self {
            Error::Forbidden { message, .. }
            | Error::NotFound { message, .. }
            | Error::Validation { message, .. }
            | Error::NotAllowed { message, .. }
            | Error::Conflict { message, .. }
            | Error::Server { message, .. }
            | Error::Unexpected { message, .. } => Some(message),
            Error::Unauthorized { detail, .. } => Some(detail),
            _ => None,
        }
    }

    /// The HTTP status GitLab answered, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthorized { .. } => Some(401),
            Error::Forbidden { .. } => Some(403),
            Error::NotFound { .. } => Some(404),
            Error::Validation { .. } | Error::InvalidTransition { .. } => Some(400),
            Error::RateLimited { .. } => Some(429),
            Error::NotAllowed { status, .. }
            | Error::Conflict { status, .. }
            | Error::Server { status, .. }
            | Error::Unexpected { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn config(message: impl fmt::Display) -> Error {
        Error::Config {
            message: message.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are public (Event reasons, metric labels, docs): each is its variant's name,
    /// and no two are the same.
    #[test]
    fn each_category_is_named_as_its_variant() {
        let mut seen = std::collections::HashSet::new();
        for c in Category::ALL {
            assert_eq!(format!("{c:?}"), c.name());
            assert!(seen.insert(c.name()), "{c:?} twice");
        }
    }
}
