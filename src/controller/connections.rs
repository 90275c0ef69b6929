//! From a `GitlabDeployment`'s connection reference to a ready [`GitlabClient`].
//!
//! Connections (and Namespaces, for selectors) come from reflector caches; the token Secrets
//! and CA bundles they name are read by name through a short-lived memo ([`SourceMemo`]),
//! never listed or watched. Built clients are kept per connection and rebuilt only when the
//! connection or one of the objects it reads changes (keyed by their resourceVersions), so a
//! rotated token is picked up within the memo's lifetime (or at once after a 401/403, see
//! [`Connections::credentials_changed`]) and the 429 pause and token bucket of a connection
//! are shared by every resource that uses it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use parking_lot::Mutex;

use super::allowlist::{HostAllowList, HostError};
use super::credentials::{CredentialPolicy, ReadError, Source, SourceKey, SourceMemo};
use super::error::Category;
use super::scoped::ScopedStore;
use crate::api::connection::{
    CaBundleRef, ClusterGitlabConnection, ConnectionSettings, GitlabConnection, TokenType,
};
use crate::api::deployment::ConnectionKind;
use crate::api::names::{TOKEN_LABEL, TOKEN_LABEL_VALUE};
use crate::api::validate::{ConnectionTarget, parse_duration};
use crate::gitlab::{self, GitlabClient, GitlabMetrics, RateLimit, Token, TokenKind};

/// Default per-request timeout when a connection names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a connection could not be turned into a client. All but [`ReadError::Failed`] need a
/// person: the resource is marked `Stalled` and resumes when the connection changes, or when
/// the memo sees the Secret or ConfigMap change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    #[error(
        "{kind} {name:?} not found{where_}; create it, or set spec.connectionRef to an existing connection"
    )]
    NotFound {
        kind: &'static str,
        name: String,
        where_: String,
    },
    /// A ClusterGitlabConnection this namespace may not use: missing, or not serving it. One
    /// message for both, so a tenant cannot list the cluster connections that exist by
    /// probing names.
    #[error(
        "ClusterGitlabConnection {name:?} does not exist or does not serve namespace {namespace:?}; ask the cluster admin for one that serves it, or set spec.connectionRef to another connection"
    )]
    ClusterConnectionUnavailable { name: String, namespace: String },
    #[error(
        "token Secret {namespace}/{name} not found; create it with the GitLab token under key {key:?}"
    )]
    SecretMissing {
        namespace: String,
        name: String,
        key: String,
    },
    #[error(
        "token Secret {namespace}/{name} has no key {key:?} (or it is empty); add it or set tokenSecretRef.key"
    )]
    SecretKeyMissing {
        namespace: String,
        name: String,
        key: String,
    },
    #[error(
        "CA bundle {what} {namespace}/{name} has no key {key:?}; add the PEM bundle under that key"
    )]
    CaBundleMissing {
        what: &'static str,
        namespace: String,
        name: String,
        key: String,
    },
    #[error(
        "token Secret {namespace}/{name} lacks the label {label}: \"{value}\" that this operator requires of token Secrets (--require-token-label); if it holds the GitLab token for this connection, label it: kubectl -n {namespace} label secret {name} {label}={value}",
        label = TOKEN_LABEL,
        value = TOKEN_LABEL_VALUE
    )]
    SecretNotLabeled { namespace: String, name: String },
    /// The token Secret (`token`) or a CA bundle could not be read.
    #[error("{source}")]
    Read {
        token: bool,
        #[source]
        source: ReadError,
    },
    #[error("connection {name:?}: {source}")]
    Host {
        name: String,
        #[source]
        source: HostError,
    },
    #[error("connection {name:?}: timeout {found:?} is not a duration; write it like 30s")]
    Timeout { name: String, found: String },
    #[error("connection {name:?}: {message}")]
    Client { name: String, message: String },
}

impl ConnectionError {
    /// Stable category (condition reason, Event reason, metric label); all but a failed read
    /// (`KubeApiError`, retried) need a person.
    pub fn class(&self) -> Category {
        match self {
            ConnectionError::NotFound { .. }
            | ConnectionError::ClusterConnectionUnavailable { .. } => Category::ConnectionMissing,
            ConnectionError::SecretMissing { .. }
            | ConnectionError::SecretKeyMissing { .. }
            | ConnectionError::SecretNotLabeled { .. }
            | ConnectionError::Read {
                token: true,
                source: ReadError::Forbidden { .. },
            } => Category::TokenSecretMissing,
            ConnectionError::Read {
                source: ReadError::Failed { .. },
                ..
            } => Category::KubeApiError,
            ConnectionError::Host { .. } => Category::HostNotAllowed,
            ConnectionError::CaBundleMissing { .. }
            | ConnectionError::Read {
                token: false,
                source: ReadError::Forbidden { .. },
            }
            | ConnectionError::Timeout { .. }
            | ConnectionError::Client { .. } => Category::ConnectionInvalid,
        }
    }

    /// The Secret or ConfigMap that was read but is of no use as it is (a key missing, the
    /// label missing): the memo looks at it again soon, so a fix is seen within seconds.
    fn unusable_source(&self) -> Option<SourceKey> {
        match self {
            ConnectionError::SecretKeyMissing {
                namespace, name, ..
            }
            | ConnectionError::SecretNotLabeled { namespace, name } => {
                Some(SourceKey::secret(namespace, name))
            }
            ConnectionError::CaBundleMissing {
                what,
                namespace,
                name,
                ..
            } if *what == "ConfigMap" => Some(SourceKey::config_map(namespace, name)),
            ConnectionError::CaBundleMissing {
                namespace, name, ..
            } => Some(SourceKey::secret(namespace, name)),
            _ => None,
        }
    }
}

/// After a GitLab 401/403, the token is read again unless it was read this recently.
const REREAD_MIN_AGE: Duration = Duration::from_secs(1);

/// The reflector caches a connection is resolved from.
#[derive(Clone)]
pub struct ConnectionCaches {
    pub connections: ScopedStore<GitlabConnection>,
    pub cluster_connections: Store<ClusterGitlabConnection>,
    /// Namespace labels, for `namespaceSelector`; `None` when the operator may not list
    /// namespaces (a namespace-scoped install), where selectors match nothing.
    pub namespaces: Option<Store<PartialObjectMeta<Namespace>>>,
}

/// A connection's settings and where its Secrets live, whichever kind it is.
struct Resolved {
    settings: ConnectionSettings,
    /// Namespace of the token Secret and CA bundle.
    secret_namespace: String,
    /// Connection uid: the client cache key.
    uid: String,
    /// Connection resourceVersion (part of the fingerprint).
    version: String,
    display: String,
}

/// A client built for one connection, and what it was built from.
struct Built {
    /// Connection, token Secret and CA bundle resourceVersions.
    fingerprint: String,
    client: GitlabClient,
    /// The Secrets and ConfigMaps it was built from.
    reads: Vec<SourceKey>,
}

/// Builds and caches one client per connection.
pub struct Connections {
    caches: ConnectionCaches,
    allow: HostAllowList,
    metrics: Arc<GitlabMetrics>,
    policy: CredentialPolicy,
    sources: SourceMemo,
    /// Keyed by connection uid.
    clients: Mutex<HashMap<String, Built>>,
}

impl Connections {
    pub fn new(
        caches: ConnectionCaches,
        allow: HostAllowList,
        metrics: Arc<GitlabMetrics>,
        policy: CredentialPolicy,
        sources: SourceMemo,
    ) -> Self {
        Self {
            caches,
            allow,
            metrics,
            policy,
            sources,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The memo of Secrets and ConfigMaps read for connections.
    pub fn sources(&self) -> &SourceMemo {
        &self.sources
    }

    /// The client for `target`, as used from `namespace`.
    pub async fn client_for(
        &self,
        target: &ConnectionTarget,
        namespace: &str,
    ) -> Result<GitlabClient, ConnectionError> {
        let resolved = self.resolve(target, namespace)?;
        let built = self.client_from(&resolved).await;
        if let Err(err) = &built
            && let Some(key) = err.unusable_source()
        {
            self.sources.distrust(&key).await;
        }
        built
    }

    /// What a request through `target` is sent with: the connection (uid and
    /// resourceVersion) and its token Secret's resourceVersion (read through the memo). A
    /// create GitLab refused is sent again only when this (or the spec) changes. `None` when
    /// the connection cannot be resolved; using it then fails with the reason.
    pub async fn identity(&self, target: &ConnectionTarget, namespace: &str) -> Option<String> {
        let conn = self.resolve(target, namespace).ok()?;
        let token = SourceKey::secret(&conn.secret_namespace, &conn.settings.token_secret_ref.name);
        let secret_version = match self.sources.get(&token).await {
            Ok(Some(secret)) => secret.resource_version.clone(),
            Ok(None) | Err(_) => String::new(),
        };
        Some(format!("{}/{}/{secret_version}", conn.uid, conn.version))
    }

    /// Look `target` up as used from `namespace`.
    fn resolve(
        &self,
        target: &ConnectionTarget,
        namespace: &str,
    ) -> Result<Resolved, ConnectionError> {
        Ok(match target.kind {
            ConnectionKind::GitlabConnection => {
                let namespaced = self
                    .caches
                    .connections
                    .get(&ObjectRef::new(&target.name).within(namespace))
                    .ok_or_else(|| ConnectionError::NotFound {
                        kind: "GitlabConnection",
                        name: target.name.clone(),
                        where_: format!(" in namespace {namespace:?}"),
                    })?;
                Resolved {
                    settings: namespaced.spec.settings.clone(),
                    secret_namespace: namespace.to_owned(),
                    uid: namespaced.uid().unwrap_or_default(),
                    version: namespaced.resource_version().unwrap_or_default(),
                    display: format!("{namespace}/{}", target.name),
                }
            }
            ConnectionKind::ClusterGitlabConnection => {
                let unavailable = || ConnectionError::ClusterConnectionUnavailable {
                    name: target.name.clone(),
                    namespace: namespace.to_owned(),
                };
                let cluster = self
                    .caches
                    .cluster_connections
                    .get(&ObjectRef::new(&target.name))
                    .ok_or_else(unavailable)?;
                if !self.serves(&cluster, namespace) {
                    return Err(unavailable());
                }
                Resolved {
                    settings: cluster.spec.settings.clone(),
                    secret_namespace: cluster.spec.secret_namespace.clone(),
                    uid: cluster.uid().unwrap_or_default(),
                    version: cluster.resource_version().unwrap_or_default(),
                    display: target.name.clone(),
                }
            }
        })
    }

    fn serves(&self, conn: &ClusterGitlabConnection, namespace: &str) -> bool {
        if conn
            .spec
            .namespaces
            .as_ref()
            .is_some_and(|list| list.iter().any(|n| n == namespace))
        {
            return true;
        }
        let Some(selector) = conn.spec.namespace_selector.as_ref() else {
            return false;
        };
        let Some(ns) = self
            .caches
            .namespaces
            .as_ref()
            .and_then(|store| store.get(&ObjectRef::new(namespace)))
        else {
            return false;
        };
        let labels = ns.labels();
        selector_matches(selector, labels)
    }

    async fn client_from(&self, conn: &Resolved) -> Result<GitlabClient, ConnectionError> {
        let settings = &conn.settings;
        let url = self
            .allow
            .check(&settings.url)
            .map_err(|source| ConnectionError::Host {
                name: conn.display.clone(),
                source,
            })?;
        let secret_ref = &settings.token_secret_ref;
        let token_key = SourceKey::secret(&conn.secret_namespace, &secret_ref.name);
        let secret = self
            .sources
            .get(&token_key)
            .await
            .map_err(|source| ConnectionError::Read {
                token: true,
                source,
            })?
            .ok_or_else(|| ConnectionError::SecretMissing {
                namespace: conn.secret_namespace.clone(),
                name: secret_ref.name.clone(),
                key: secret_ref.key.clone(),
            })?;
        if self.policy.require_token_label && !secret.has_label(TOKEN_LABEL, TOKEN_LABEL_VALUE) {
            return Err(ConnectionError::SecretNotLabeled {
                namespace: conn.secret_namespace.clone(),
                name: secret_ref.name.clone(),
            });
        }
        let token = text_value(&secret, &secret_ref.key)
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ConnectionError::SecretKeyMissing {
                namespace: conn.secret_namespace.clone(),
                name: secret_ref.name.clone(),
                key: secret_ref.key.clone(),
            })?;
        let mut reads = vec![token_key];
        let (ca_pem, ca_version) = match &settings.ca_bundle {
            None => (None, String::new()),
            Some(bundle) => match self.ca_bundle(bundle, &conn.secret_namespace).await? {
                Some((key, pem, version)) => {
                    reads.push(key);
                    (Some(pem), version)
                }
                None => (None, String::new()),
            },
        };
        let fingerprint = format!(
            "{}/{}/{}",
            conn.version, secret.resource_version, ca_version
        );
        let mut clients = self.clients.lock();
        if let Some(built) = clients.get(&conn.uid)
            && built.fingerprint == fingerprint
        {
            return Ok(built.client.clone());
        }
        let timeout = match &settings.timeout {
            None => DEFAULT_TIMEOUT,
            Some(text) => parse_duration(text).ok_or_else(|| ConnectionError::Timeout {
                name: conn.display.clone(),
                found: text.clone(),
            })?,
        };
        let kind = match settings.token_type {
            TokenType::Private => TokenKind::Private,
            TokenType::Oauth => TokenKind::OAuth,
            TokenType::Job => TokenKind::Job,
        };
        let mut builder = GitlabClient::builder(url.as_str(), Token::new(kind, token))
            .timeout(timeout)
            .metrics(Arc::clone(&self.metrics))
            .rate_limit(settings.rate_limit.as_ref().and_then(|r| {
                // The CRD's minimum of 1 makes zero impossible from the API server; a zero
                // that slipped through means "no client-side limit".
                let per_second = NonZeroU32::new(r.requests_per_second)?;
                let burst = r.burst.and_then(NonZeroU32::new).unwrap_or(per_second);
                Some(RateLimit { per_second, burst })
            }));
        if let Some(pem) = ca_pem {
            builder = builder.ca_bundle_pem(pem);
        }
        let client = builder
            .build()
            .map_err(|e: gitlab::Error| ConnectionError::Client {
                name: conn.display.clone(),
                message: e.to_string(),
            })?;
        clients.insert(
            conn.uid.clone(),
            Built {
                fingerprint,
                client: client.clone(),
                reads,
            },
        );
        Ok(client)
    }

    /// The CA bundle's PEM, where it was read from and its version.
    async fn ca_bundle(
        &self,
        bundle: &CaBundleRef,
        namespace: &str,
    ) -> Result<Option<(SourceKey, Vec<u8>, String)>, ConnectionError> {
        let (key, key_ref, what, version_prefix) =
            match (&bundle.config_map_ref, &bundle.secret_ref) {
                (Some(r), _) => (
                    SourceKey::config_map(namespace, &r.name),
                    r,
                    "ConfigMap",
                    "cm",
                ),
                (None, Some(r)) => (SourceKey::secret(namespace, &r.name), r, "Secret", "secret"),
                (None, None) => return Ok(None),
            };
        let missing = || ConnectionError::CaBundleMissing {
            what,
            namespace: namespace.to_owned(),
            name: key_ref.name.clone(),
            key: key_ref.key.clone(),
        };
        let source = self
            .sources
            .get(&key)
            .await
            .map_err(|source| ConnectionError::Read {
                token: false,
                source,
            })?
            .ok_or_else(missing)?;
        let pem = source.value(&key_ref.key).ok_or_else(missing)?.to_vec();
        let version = format!("{version_prefix}:{}", source.resource_version);
        Ok(Some((key, pem, version)))
    }

    /// GitLab refused `refused` (401 or 403): read the Secrets and ConfigMaps it was built
    /// from again at once, and say whether the connection's client is now another one (a
    /// rotated token, a new CA bundle), so the caller retries with it. Also true when the
    /// connection cannot be resolved any more: the retry then reports why.
    pub async fn credentials_changed(
        &self,
        target: &ConnectionTarget,
        namespace: &str,
        refused: &GitlabClient,
    ) -> bool {
        let reads = self
            .clients
            .lock()
            .values()
            .find(|built| built.client.same_as(refused))
            .map(|built| built.reads.clone());
        // Not cached any more: it was replaced since (the memo saw a change).
        let Some(reads) = reads else {
            return true;
        };
        for key in &reads {
            if let Err(err) = self.sources.reread(key, REREAD_MIN_AGE).await {
                tracing::debug!(object = %key, error = %err, "re-read after a GitLab refusal failed");
            }
        }
        match self.client_for(target, namespace).await {
            Ok(current) if current.same_as(refused) => {
                // The same token, refused: look at its Secret again soon rather than within
                // the lifetime, so a fixed token ends the stall quickly.
                for key in &reads {
                    self.sources.distrust(key).await;
                }
                false
            }
            Ok(_) | Err(_) => true,
        }
    }

    /// Every Secret and ConfigMap some connection names.
    fn named_sources(&self) -> HashSet<SourceKey> {
        let mut keys = HashSet::new();
        let mut add = |settings: &ConnectionSettings, namespace: &str| {
            keys.insert(SourceKey::secret(
                namespace,
                &settings.token_secret_ref.name,
            ));
            if let Some(bundle) = &settings.ca_bundle {
                if let Some(r) = &bundle.config_map_ref {
                    keys.insert(SourceKey::config_map(namespace, &r.name));
                }
                if let Some(r) = &bundle.secret_ref {
                    keys.insert(SourceKey::secret(namespace, &r.name));
                }
            }
        };
        for conn in self.caches.connections.state() {
            if let Some(ns) = conn.namespace() {
                add(&conn.spec.settings, &ns);
            }
        }
        for conn in self.caches.cluster_connections.state() {
            add(&conn.spec.settings, &conn.spec.secret_namespace);
        }
        keys
    }

    /// Housekeeping, called every second or so: forget Secrets and ConfigMaps no connection
    /// names and clients of deleted connections, then re-read what is due (changes wake the
    /// resources that use them).
    pub async fn refresh(&self) {
        let named = self.named_sources();
        self.sources.retain(|key| named.contains(key));
        let uids: HashSet<String> = self
            .caches
            .connections
            .state()
            .iter()
            .filter_map(|c| c.uid())
            .chain(
                self.caches
                    .cluster_connections
                    .state()
                    .iter()
                    .filter_map(|c| c.uid()),
            )
            .collect();
        self.clients.lock().retain(|uid, _| uids.contains(uid));
        self.sources.refresh_due().await;
    }

    /// Whether a Secret or ConfigMap change in `namespace` named `name` can affect any
    /// connection (used to wake the resources that depend on it).
    pub fn connections_reading(&self, namespace: &str, name: &str) -> Vec<ConnectionTarget> {
        let reads = |settings: &ConnectionSettings| {
            settings.token_secret_ref.name == name
                || settings.ca_bundle.as_ref().is_some_and(|b| {
                    b.config_map_ref.as_ref().is_some_and(|r| r.name == name)
                        || b.secret_ref.as_ref().is_some_and(|r| r.name == name)
                })
        };
        let mut found = Vec::new();
        for conn in self.caches.connections.state() {
            if conn.namespace().as_deref() == Some(namespace) && reads(&conn.spec.settings) {
                found.push(ConnectionTarget {
                    kind: ConnectionKind::GitlabConnection,
                    name: conn.name_any(),
                });
            }
        }
        for conn in self.caches.cluster_connections.state() {
            if conn.spec.secret_namespace == namespace && reads(&conn.spec.settings) {
                found.push(ConnectionTarget {
                    kind: ConnectionKind::ClusterGitlabConnection,
                    name: conn.name_any(),
                });
            }
        }
        found
    }
}

/// A key's value as text (a token is UTF-8; anything else is treated as missing).
fn text_value(source: &Source, key: &str) -> Option<String> {
    String::from_utf8(source.value(key)?.to_vec()).ok()
}

/// `matchLabels` and `matchExpressions` (In, NotIn, Exists, DoesNotExist) against labels.
pub fn selector_matches(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    let labels_ok = selector
        .match_labels
        .as_ref()
        .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let exprs_ok = selector.match_expressions.as_ref().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let values = e.values.as_deref().unwrap_or(&[]);
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                // An operator the API server would have rejected: match nothing, safely.
                _ => false,
            }
        })
    });
    labels_ok && exprs_ok
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_like_the_api_server() {
        let sel = |ml: &[(&str, &str)], exprs: Vec<(&str, &str, &[&str])>| LabelSelector {
            match_labels: (!ml.is_empty()).then(|| labels(ml)),
            match_expressions: (!exprs.is_empty()).then(|| {
                exprs
                    .into_iter()
                    .map(|(k, op, vs)| LabelSelectorRequirement {
                        key: k.into(),
                        operator: op.into(),
                        values: Some(vs.iter().map(|v| v.to_string()).collect()),
                    })
                    .collect()
            }),
        };
        let ns = labels(&[("team", "web"), ("env", "prod")]);
        let cases = [
            ("empty selector matches all", sel(&[], vec![]), true),
            ("matchLabels hit", sel(&[("team", "web")], vec![]), true),
            ("matchLabels miss", sel(&[("team", "db")], vec![]), false),
            (
                "In",
                sel(&[], vec![("env", "In", &["prod", "stage"])]),
                true,
            ),
            ("In miss", sel(&[], vec![("env", "In", &["stage"])]), false),
            ("NotIn", sel(&[], vec![("env", "NotIn", &["stage"])]), true),
            (
                "NotIn absent key",
                sel(&[], vec![("x", "NotIn", &["a"])]),
                true,
            ),
            ("Exists", sel(&[], vec![("team", "Exists", &[])]), true),
            (
                "DoesNotExist",
                sel(&[], vec![("team", "DoesNotExist", &[])]),
                false,
            ),
            (
                "unknown operator",
                sel(&[], vec![("team", "Like", &[])]),
                false,
            ),
        ];
        for (name, selector, expected) in cases {
            assert_eq!(selector_matches(&selector, &ns), expected, "case {name}");
        }
    }
}
