//! From a `GitlabDeployment`'s connection reference to a ready [`GitlabClient`].
//!
//! Everything is read from reflector caches (connections, Secrets, ConfigMaps, Namespaces), never
//! fetched per reconcile. Built clients are cached per connection and rebuilt only when the
//! connection or one of the objects it reads changes (keyed by their resourceVersions), so a
//! rotated token is picked up on the next reconcile and the 429 pause and token bucket of a
//! connection are shared by every resource that uses it.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use super::allowlist::{HostAllowList, HostError};
use super::scoped::ScopedStore;
use crate::api::connection::{
    CaBundleRef, ClusterGitlabConnection, ConnectionSettings, GitlabConnection, TokenType,
};
use crate::api::deployment::ConnectionKind;
use crate::api::names::reason;
use crate::api::validate::{ConnectionTarget, parse_duration};
use crate::gitlab::{self, GitlabClient, GitlabMetrics, RateLimit, Token, TokenKind};

/// Default per-request timeout when a connection names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a connection could not be turned into a client. All of these need a person: the
/// resource is marked `Stalled` and resumes when the connection, Secret or ConfigMap changes.
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
    /// Stable category (condition reason, Event reason, metric label).
    pub fn category(&self) -> &'static str {
        match self {
            ConnectionError::NotFound { .. }
            | ConnectionError::ClusterConnectionUnavailable { .. } => reason::CONNECTION_MISSING,
            ConnectionError::SecretMissing { .. } | ConnectionError::SecretKeyMissing { .. } => {
                reason::TOKEN_SECRET_MISSING
            }
            ConnectionError::Host { .. } => reason::HOST_NOT_ALLOWED,
            ConnectionError::CaBundleMissing { .. }
            | ConnectionError::Timeout { .. }
            | ConnectionError::Client { .. } => reason::CONNECTION_INVALID,
        }
    }
}

/// The reflector caches a connection is resolved from.
#[derive(Clone)]
pub struct ConnectionCaches {
    pub connections: ScopedStore<GitlabConnection>,
    pub cluster_connections: Store<ClusterGitlabConnection>,
    pub secrets: ScopedStore<Secret>,
    pub config_maps: ScopedStore<ConfigMap>,
    /// Namespace labels, for `namespaceSelector`; `None` when the operator may not list
    /// namespaces (a namespace-scoped install), where selectors match nothing.
    pub namespaces: Option<Store<PartialObjectMeta<Namespace>>>,
}

/// A connection's settings and where its Secrets live, whichever kind it is.
struct Resolved<'a> {
    settings: &'a ConnectionSettings,
    /// Namespace of the token Secret and CA bundle.
    secret_namespace: String,
    /// Connection uid: the client cache key.
    uid: String,
    /// Connection resourceVersion (part of the fingerprint).
    version: String,
    display: String,
}

/// Builds and caches one client per connection.
pub struct Connections {
    caches: ConnectionCaches,
    allow: HostAllowList,
    metrics: Arc<GitlabMetrics>,
    clients: Mutex<HashMap<String, (String, GitlabClient)>>,
}

impl Connections {
    pub fn new(
        caches: ConnectionCaches,
        allow: HostAllowList,
        metrics: Arc<GitlabMetrics>,
    ) -> Self {
        Self {
            caches,
            allow,
            metrics,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `target`, as used from `namespace`.
    pub fn client_for(
        &self,
        target: &ConnectionTarget,
        namespace: &str,
    ) -> Result<GitlabClient, ConnectionError> {
        self.with_resolved(target, namespace, |resolved| self.client_from(resolved))
    }

    /// What a request through `target` is sent with: the connection (uid and
    /// resourceVersion) and its token Secret's resourceVersion. A create GitLab refused is
    /// sent again only when this (or the spec) changes. `None` when the connection cannot be
    /// resolved; using it then fails with the reason.
    pub fn identity(&self, target: &ConnectionTarget, namespace: &str) -> Option<String> {
        self.with_resolved(target, namespace, |conn| {
            let secret_version = self
                .caches
                .secrets
                .get(
                    &ObjectRef::new(&conn.settings.token_secret_ref.name)
                        .within(&conn.secret_namespace),
                )
                .and_then(|secret| secret.resource_version())
                .unwrap_or_default();
            Ok(format!("{}/{}/{secret_version}", conn.uid, conn.version))
        })
        .ok()
    }

    /// Look `target` up as used from `namespace` and hand it to `then`.
    fn with_resolved<T>(
        &self,
        target: &ConnectionTarget,
        namespace: &str,
        then: impl FnOnce(&Resolved<'_>) -> Result<T, ConnectionError>,
    ) -> Result<T, ConnectionError> {
        // The stores hand out Arcs; keep them alive while `resolved` borrows from them.
        let (namespaced, cluster);
        let resolved = match target.kind {
            ConnectionKind::GitlabConnection => {
                namespaced = self
                    .caches
                    .connections
                    .get(&ObjectRef::new(&target.name).within(namespace))
                    .ok_or_else(|| ConnectionError::NotFound {
                        kind: "GitlabConnection",
                        name: target.name.clone(),
                        where_: format!(" in namespace {namespace:?}"),
                    })?;
                Resolved {
                    settings: &namespaced.spec.settings,
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
                cluster = self
                    .caches
                    .cluster_connections
                    .get(&ObjectRef::new(&target.name))
                    .ok_or_else(unavailable)?;
                if !self.serves(&cluster, namespace) {
                    return Err(unavailable());
                }
                Resolved {
                    settings: &cluster.spec.settings,
                    secret_namespace: cluster.spec.secret_namespace.clone(),
                    uid: cluster.uid().unwrap_or_default(),
                    version: cluster.resource_version().unwrap_or_default(),
                    display: target.name.clone(),
                }
            }
        };
        then(&resolved)
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

    fn client_from(&self, conn: &Resolved<'_>) -> Result<GitlabClient, ConnectionError> {
        let settings = conn.settings;
        let url = self
            .allow
            .check(&settings.url)
            .map_err(|source| ConnectionError::Host {
                name: conn.display.clone(),
                source,
            })?;
        let secret_ref = &settings.token_secret_ref;
        let secret = self
            .caches
            .secrets
            .get(&ObjectRef::new(&secret_ref.name).within(&conn.secret_namespace))
            .ok_or_else(|| ConnectionError::SecretMissing {
                namespace: conn.secret_namespace.clone(),
                name: secret_ref.name.clone(),
                key: secret_ref.key.clone(),
            })?;
        let token = secret_value(&secret, &secret_ref.key)
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ConnectionError::SecretKeyMissing {
                namespace: conn.secret_namespace.clone(),
                name: secret_ref.name.clone(),
                key: secret_ref.key.clone(),
            })?;
        let (ca_pem, ca_version) = match &settings.ca_bundle {
            None => (None, String::new()),
            Some(bundle) => {
                let (pem, version) = self.ca_bundle(bundle, &conn.secret_namespace)?;
                (Some(pem), version)
            }
        };
        let fingerprint = format!(
            "{}/{}/{}",
            conn.version,
            secret.resource_version().unwrap_or_default(),
            ca_version
        );
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some((cached, client)) = clients.get(&conn.uid)
            && *cached == fingerprint
        {
            return Ok(client.clone());
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
        clients.insert(conn.uid.clone(), (fingerprint, client.clone()));
        Ok(client)
    }

    fn ca_bundle(
        &self,
        bundle: &CaBundleRef,
        namespace: &str,
    ) -> Result<(Vec<u8>, String), ConnectionError> {
        if let Some(key_ref) = &bundle.config_map_ref {
            let missing = || ConnectionError::CaBundleMissing {
                what: "ConfigMap",
                namespace: namespace.to_owned(),
                name: key_ref.name.clone(),
                key: key_ref.key.clone(),
            };
            let cm = self
                .caches
                .config_maps
                .get(&ObjectRef::new(&key_ref.name).within(namespace))
                .ok_or_else(missing)?;
            let pem = cm
                .data
                .as_ref()
                .and_then(|d| d.get(&key_ref.key))
                .map(|s| s.as_bytes().to_vec())
                .or_else(|| {
                    cm.binary_data
                        .as_ref()
                        .and_then(|d| d.get(&key_ref.key))
                        .map(|b| b.0.clone())
                })
                .ok_or_else(missing)?;
            return Ok((
                pem,
                format!("cm:{}", cm.resource_version().unwrap_or_default()),
            ));
        }
        if let Some(key_ref) = &bundle.secret_ref {
            let missing = || ConnectionError::CaBundleMissing {
                what: "Secret",
                namespace: namespace.to_owned(),
                name: key_ref.name.clone(),
                key: key_ref.key.clone(),
            };
            let secret = self
                .caches
                .secrets
                .get(&ObjectRef::new(&key_ref.name).within(namespace))
                .ok_or_else(missing)?;
            let pem = secret_value(&secret, &key_ref.key).ok_or_else(missing)?;
            return Ok((
                pem.into_bytes(),
                format!("secret:{}", secret.resource_version().unwrap_or_default()),
            ));
        }
        Ok((Vec::new(), String::new()))
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

/// A Secret key's value as text (`data` wins over `stringData`, which only exists on writes).
fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(bytes.0.clone()).ok();
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .cloned()
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
