//! The reconciler's error: one variant per failing step, each with a stable [`Category`]
//! (Event reason, condition reason, metric label) from which the [`ErrorKind`] `error_policy`
//! matches on follows.

use super::connections::ConnectionError;
use crate::api::names::reason;
use crate::api::validate::SpecError;
use crate::gitlab;
pub use crate::gitlab::ErrorKind;

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
    /// Reading a followed workload by name (one its cache holds only by key) failed.
    #[error("reading the target {namespace}/{name}: {source}")]
    TargetRead {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status of {namespace}/{name}: {source}")]
    StatusWrite {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// Adding or removing the finalizer failed. (`reconcile` unwraps the finalizer helper's
    /// `ApplyFailed`/`CleanupFailed` into the error they carry, so only its own failures are
    /// kept here.)
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("the object has no {0}; it did not come from the API server")]
    Metadata(&'static str),
    #[error("GitLab {step}: unexpected answer: {detail}")]
    GitlabAnswer { step: &'static str, detail: String },
    /// The promote or abort of the target Argo Rollout (`spec.approval.promote`) failed.
    #[error("{action} {target}: {source}")]
    TargetWrite {
        action: &'static str,
        /// `Rollout NAMESPACE/NAME`.
        target: String,
        #[source]
        source: Box<kube::Error>,
    },
}

/// The stable category of an [`Error`]. Its name is the public word (Event reason, condition
/// reason, `category` metric label); its kind is how `error_policy` treats it. Decisions match
/// on these variants, never on the names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    InvalidSpec,
    ConnectionMissing,
    TokenSecretMissing,
    ConnectionInvalid,
    HostNotAllowed,
    TargetKindNotServed,
    /// The API server refused a promote or abort of the target: the operator's role lacks
    /// `patch` on the Rollout's status (docs/deploy.md, "Other target kinds").
    TargetWriteForbidden,
    /// The Kubernetes API failed a read or a write: retried.
    KubeApiError,
    /// A write refused because our cached copy of the object was behind the server's (a 409
    /// on a status write, a failed `test` in the finalizer patch): retried almost at once.
    StaleObject,
    FinalizerError,
    InvalidObject,
    /// GitLab answered something the operator cannot use (not one of the client's errors).
    GitlabError,
    Gitlab(gitlab::Category),
}

impl Category {
    pub const fn name(self) -> &'static str {
        match self {
            Category::InvalidSpec => reason::INVALID_SPEC,
            Category::ConnectionMissing => reason::CONNECTION_MISSING,
            Category::TokenSecretMissing => reason::TOKEN_SECRET_MISSING,
            Category::ConnectionInvalid => reason::CONNECTION_INVALID,
            Category::HostNotAllowed => reason::HOST_NOT_ALLOWED,
            Category::TargetKindNotServed => reason::TARGET_KIND_NOT_SERVED,
            Category::TargetWriteForbidden => reason::TARGET_WRITE_FORBIDDEN,
            Category::KubeApiError => "KubeApiError",
            Category::StaleObject => "StaleObject",
            Category::FinalizerError => "FinalizerError",
            Category::InvalidObject => "InvalidObject",
            Category::GitlabError => reason::GITLAB_ERROR,
            Category::Gitlab(c) => c.name(),
        }
    }

    pub const fn kind(self) -> ErrorKind {
        match self {
            Category::InvalidSpec
            | Category::ConnectionMissing
            | Category::TokenSecretMissing
            | Category::ConnectionInvalid
            | Category::HostNotAllowed
            | Category::TargetKindNotServed
            | Category::TargetWriteForbidden => ErrorKind::User,
            Category::KubeApiError | Category::StaleObject | Category::FinalizerError => {
                ErrorKind::Transient
            }
            Category::InvalidObject | Category::GitlabError => ErrorKind::Internal,
            Category::Gitlab(c) => c.kind(),
        }
    }
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

    /// The client refused to send the request (its send deadline had passed): GitLab never
    /// saw it. For a create, the write-ahead claim it was made under is therefore void.
    pub fn was_not_sent(&self) -> bool {
        matches!(
            self,
            Error::Gitlab {
                source: gitlab::Error::SendDeadlinePassed { .. },
                ..
            }
        )
    }

    /// How long the connection asks callers to wait (a 429 pause, or the wait a create not
    /// sent would have needed): the reconciler does not try again sooner.
    pub fn connection_wait(&self) -> Option<std::time::Duration> {
        match self {
            Error::Gitlab { source, .. } => source.retry_after(),
            _ => None,
        }
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

    /// The error's category, from its variant (and, for a wrapped error, the wrapped one's).
    pub fn class(&self) -> Category {
        match self {
            Error::Spec(_) => Category::InvalidSpec,
            Error::Connection(e) => e.class(),
            Error::TargetKindNotServed(_) => Category::TargetKindNotServed,
            Error::Gitlab { source, .. } => Category::Gitlab(source.class()),
            Error::StatusWrite { source, .. } if is_conflict(source) => Category::StaleObject,
            Error::StatusWrite { .. } | Error::TargetRead { .. } => Category::KubeApiError,
            // The finalizer patch carries a `test` of the finalizers we saw: a 422/409 means
            // our cached copy was behind the server; the watch brings the fresh one.
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::AddFinalizer(e)
                | kube::runtime::finalizer::Error::RemoveFinalizer(e)
                    if is_stale_patch(e) =>
                {
                    Category::StaleObject
                }
                _ => Category::FinalizerError,
            },
            Error::Metadata(_) => Category::InvalidObject,
            Error::GitlabAnswer { .. } => Category::GitlabError,
            Error::TargetWrite { source, .. } if matches!(source.as_ref(), kube::Error::Api(s) if s.code == 403) => {
                Category::TargetWriteForbidden
            }
            Error::TargetWrite { .. } => Category::KubeApiError,
        }
    }

    /// Stable PascalCase name of [`Error::class`].
    pub fn category(&self) -> &'static str {
        self.class().name()
    }

    pub fn kind(&self) -> ErrorKind {
        self.class().kind()
    }
}

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

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            ..kube::core::Status::default()
        }))
    }

    fn status_write(code: u16) -> Error {
        Error::StatusWrite {
            namespace: "ns".into(),
            name: "web".into(),
            source: api_error(code),
        }
    }

    fn gitlab_ctx() -> gitlab::RequestContext {
        gitlab::RequestContext::new(
            gitlab::Endpoint::CreateDeployment,
            &gitlab::ProjectId::Id(1),
            None,
        )
    }

    /// The category names are public (Event and condition reasons, metric labels, docs): each
    /// stays what it is, and each variant has one.
    #[test]
    fn category_names_are_stable() {
        let own = [
            (Category::InvalidSpec, "InvalidSpec"),
            (Category::ConnectionMissing, "ConnectionMissing"),
            (Category::TokenSecretMissing, "TokenSecretMissing"),
            (Category::ConnectionInvalid, "ConnectionInvalid"),
            (Category::HostNotAllowed, "HostNotAllowed"),
            (Category::TargetKindNotServed, "TargetKindNotServed"),
            (Category::TargetWriteForbidden, "TargetWriteForbidden"),
            (Category::KubeApiError, "KubeApiError"),
            (Category::StaleObject, "StaleObject"),
            (Category::FinalizerError, "FinalizerError"),
            (Category::InvalidObject, "InvalidObject"),
            (Category::GitlabError, "GitLabError"),
        ];
        let mut seen = std::collections::HashSet::new();
        for (category, name) in own {
            assert_eq!(category.name(), name);
            assert!(seen.insert(name), "{name} twice");
        }
        for c in gitlab::Category::ALL {
            assert_eq!(Category::Gitlab(c).name(), c.name());
            assert_eq!(Category::Gitlab(c).kind(), c.kind());
            assert!(seen.insert(c.name()), "{} twice", c.name());
        }
    }

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
                "KubeApiError",
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
            (
                Error::GitlabAnswer {
                    step: "create deployment",
                    detail: "no id".into(),
                },
                "GitLabError",
                ErrorKind::Internal,
            ),
            (status_write(409), "StaleObject", ErrorKind::Transient),
            (status_write(500), "KubeApiError", ErrorKind::Transient),
            (
                Error::Finalizer(Box::new(kube::runtime::finalizer::Error::AddFinalizer(
                    api_error(422),
                ))),
                "StaleObject",
                ErrorKind::Transient,
            ),
            (
                Error::Finalizer(Box::new(kube::runtime::finalizer::Error::RemoveFinalizer(
                    api_error(503),
                ))),
                "FinalizerError",
                ErrorKind::Transient,
            ),
            (
                Error::gitlab(
                    "create deployment",
                    gitlab::Error::Timeout {
                        ctx: gitlab_ctx(),
                        after: std::time::Duration::from_secs(5),
                    },
                ),
                "Timeout",
                ErrorKind::Transient,
            ),
            (
                Error::gitlab(
                    "create deployment",
                    gitlab::Error::RateLimited {
                        ctx: gitlab_ctx(),
                        retry_after: std::time::Duration::from_secs(5),
                    },
                ),
                "RateLimited",
                ErrorKind::RateLimited,
            ),
            (
                Error::gitlab(
                    "create deployment",
                    gitlab::Error::SendDeadlinePassed {
                        ctx: gitlab_ctx(),
                        late: gitlab::Late::Paused(std::time::Duration::from_secs(3)),
                        timeout: std::time::Duration::from_secs(5),
                    },
                ),
                "SendDeadlinePassed",
                ErrorKind::Transient,
            ),
            (
                Error::gitlab(
                    "create deployment",
                    gitlab::Error::Unauthorized {
                        ctx: gitlab_ctx(),
                        detail: "401 Unauthorized".into(),
                    },
                ),
                "Unauthorized",
                ErrorKind::User,
            ),
        ];
        for (err, category, kind) in cases {
            assert_eq!(err.category(), category, "{err}");
            assert_eq!(err.kind(), kind, "{err}");
            assert_eq!(
                err.was_not_sent(),
                category == "SendDeadlinePassed",
                "{err}"
            );
            // The connection's wait: a 429's pause, the pause a create was not sent for.
            let wait = match category {
                "RateLimited" => Some(std::time::Duration::from_secs(5)),
                "SendDeadlinePassed" => Some(std::time::Duration::from_secs(3)),
                _ => None,
            };
            assert_eq!(err.connection_wait(), wait, "{err}");
        }
    }
}
