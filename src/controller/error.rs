//! The reconciler's error: one variant per failing step, each with a stable category (Event
//! reason, metric label) and a kind that `error_policy` matches on.

use super::connections::{ConnectionError, KUBE_API_ERROR};
use crate::api::names::reason;
use crate::api::validate::SpecError;
use crate::gitlab;

/// How `error_policy` treats an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Retry with per-object exponential backoff.
    Transient,
    /// Retry when the connection's `Retry-After` pause ends.
    RateLimited,
    /// Needs a person: `Stalled=True` is already on status; wait for a change.
    User,
    /// A bug or an impossible state: retry slowly and log loudly.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("{0}")]
    TargetKindNotServed(String),
    #[error("GitLab {step}: {source}")]
    Gitlab {
        step: &'static str,
        #[source]
        source: gitlab::Error,
    },
    #[error("writing the status of {namespace}/{name}: {source}")]
    StatusWrite {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("the object has no {0}; it did not come from the API server")]
    Metadata(&'static str),
    #[error("GitLab {step}: unexpected answer: {detail}")]
    GitlabAnswer { step: &'static str, detail: String },
}

impl Error {
    pub fn gitlab(step: &'static str, source: gitlab::Error) -> Self {
        Error::Gitlab { step, source }
    }

    /// GitLab itself refused the request as a user error (4xx): sending it again changes
    /// nothing. Errors before any request (no Secret, a host not allowed) are not refusals.
    pub fn is_gitlab_refusal(&self) -> bool {
        matches!(self, Error::Gitlab { .. }) && self.kind() == ErrorKind::User
    }

    /// GitLab answered 404 for the deployment (or project) the call named.
    pub fn is_gitlab_not_found(&self) -> bool {
        matches!(
            self,
            Error::Gitlab {
                source: gitlab::Error::NotFound { .. },
                ..
            }
        )
    }

    /// Stable PascalCase category.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Spec(e) => e.category(),
            Error::Connection(e) => e.category(),
            Error::TargetKindNotServed(_) => reason::TARGET_KIND_NOT_SERVED,
            Error::Gitlab { source, .. } => source.category(),
            Error::StatusWrite { source, .. } if is_conflict(source) => STALE_OBJECT,
            Error::StatusWrite { .. } => KUBE_API_ERROR,
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.category(),
                // The finalizer patch carries a `test` of the finalizers we saw: a 422/409 means
                // our cached copy was behind the server; the watch brings the fresh one.
                kube::runtime::finalizer::Error::AddFinalizer(e)
                | kube::runtime::finalizer::Error::RemoveFinalizer(e)
                    if is_stale_patch(e) =>
                {
                    STALE_OBJECT
                }
                _ => "FinalizerError",
            },
            Error::Metadata(_) => "InvalidObject",
            Error::GitlabAnswer { .. } => reason::GITLAB_ERROR,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Connection(e) if e.is_transient() => ErrorKind::Transient,
            Error::Spec(_) | Error::Connection(_) | Error::TargetKindNotServed(_) => {
                ErrorKind::User
            }
            Error::Gitlab { source, .. } => match source.kind() {
                gitlab::ErrorKind::Transient => ErrorKind::Transient,
                gitlab::ErrorKind::RateLimited => ErrorKind::RateLimited,
                gitlab::ErrorKind::User => ErrorKind::User,
                gitlab::ErrorKind::Internal => ErrorKind::Internal,
            },
            Error::StatusWrite { .. } => ErrorKind::Transient,
            Error::GitlabAnswer { .. } => ErrorKind::Internal,
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.kind(),
                // Adding/removing the finalizer failed: an API hiccup.
                _ => ErrorKind::Transient,
            },
            Error::Metadata(_) => ErrorKind::Internal,
        }
    }
}

/// Category of a write refused because our cached copy of the object was behind the server's
/// (a 409 on a status write, a failed `test` in the finalizer patch). Retried almost at once.
pub const STALE_OBJECT: &str = "StaleObject";

fn is_stale_patch(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409 || status.code == 422)
}

/// A 409 from the API server: someone else wrote the object since we read it.
pub fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::controller::credentials::{ReadError, SourceKey};

    #[test]
    fn errors_keep_their_category_and_kind() {
        let cases: Vec<(Error, &str, ErrorKind)> = vec![
            (
                Error::Spec(SpecError::RefEmpty),
                reason::INVALID_SPEC,
                ErrorKind::User,
            ),
            (
                Error::Connection(ConnectionError::SecretMissing {
                    namespace: "ns".into(),
                    name: "s".into(),
                    key: "token".into(),
                }),
                reason::TOKEN_SECRET_MISSING,
                ErrorKind::User,
            ),
            (
                Error::Connection(ConnectionError::SecretNotLabeled {
                    namespace: "ns".into(),
                    name: "s".into(),
                }),
                reason::TOKEN_SECRET_MISSING,
                ErrorKind::User,
            ),
            (
                Error::Connection(ConnectionError::Read {
                    token: true,
                    source: ReadError::Forbidden {
                        key: SourceKey::secret("ns", "s"),
                    },
                }),
                reason::TOKEN_SECRET_MISSING,
                ErrorKind::User,
            ),
            (
                Error::Connection(ConnectionError::Read {
                    token: false,
                    source: ReadError::Forbidden {
                        key: SourceKey::config_map("ns", "ca"),
                    },
                }),
                reason::CONNECTION_INVALID,
                ErrorKind::User,
            ),
            (
                Error::Connection(ConnectionError::Read {
                    token: true,
                    source: ReadError::Failed {
                        key: SourceKey::secret("ns", "s"),
                        message: "connection refused".into(),
                    },
                }),
                KUBE_API_ERROR,
                ErrorKind::Transient,
            ),
            (
                Error::TargetKindNotServed("no".into()),
                reason::TARGET_KIND_NOT_SERVED,
                ErrorKind::User,
            ),
            (
                Error::Metadata("namespace"),
                "InvalidObject",
                ErrorKind::Internal,
            ),
        ];
        for (err, category, kind) in cases {
            assert_eq!(err.category(), category, "{err}");
            assert_eq!(err.kind(), kind, "{err}");
        }
    }
}
