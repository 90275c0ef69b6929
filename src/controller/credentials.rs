//! Token Secrets and CA bundles (Secrets, ConfigMaps), read by name and remembered briefly.
//!
//! Why not a cache: a reflector of Secrets (or kube-runtime's `metadata_watcher`) needs `list`
//! and `watch` on every Secret of the served namespaces, which security reviews flag, and a
//! full reflector holds other people's Secrets (Helm keeps every release revision as one of up
//! to 1 MiB) in the operator's memory. A label-filtered watch (cert-manager's way) would keep
//! memory down but not the RBAC: list/watch cannot be limited by label. So, as Flux does, the
//! operator reads only the objects its connections name, with `Api::get_opt` (kube-rs 5: one
//! object by name, `None` on 404), which needs `get` and nothing else. kube-rs has no memo
//! with a lifetime (reflector stores are filled only by watches), hence this small one:
//!
//! - a read is trusted for the memo lifetime (default a minute); after that the next use, or
//!   the background refresh, reads it again, so a rotated token is used within the lifetime;
//! - [`SourceMemo::reread`] reads at once (a GitLab 401/403 asks for it);
//! - an absent object is looked at again after 2 s, doubling up to the lifetime: a resource
//!   `Stalled` on a missing Secret recovers by itself, at a bounded cost, without a watch;
//! - every change seen (created, deleted, new resourceVersion) is sent on a channel, which
//!   wakes the resources that use it, as the watch used to;
//! - entries no connection names are dropped ([`SourceMemo::retain`]).
//!
//! Only what connections use is kept: resourceVersion, labels and data. [`Source`]'s `Debug`
//! shows key names, never values, so a token cannot reach a log through it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How the operator treats the Secrets and ConfigMaps its connections name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialPolicy {
    /// How long a read is trusted before it is read again.
    pub memo_lifetime: Duration,
    /// Use a token Secret only when it carries the label `gitlab-operator.io/token: "true"`
    /// (`--require-token-label`), so a connection cannot make the operator send any Secret
    /// of its namespace (a database password, say) to GitLab.
    pub require_token_label: bool,
}

impl Default for CredentialPolicy {
    fn default() -> Self {
        Self {
            memo_lifetime: Duration::from_secs(60),
            require_token_label: false,
        }
    }
}

/// First re-read of an object that was absent (or could not be read); doubles per miss, up to
/// the memo lifetime.
const FIRST_RECHECK: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    Secret,
    ConfigMap,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Secret => "Secret",
            SourceKind::ConfigMap => "ConfigMap",
        }
    }

    /// The RBAC resource name.
    pub fn resource(self) -> &'static str {
        match self {
            SourceKind::Secret => "secrets",
            SourceKind::ConfigMap => "configmaps",
        }
    }
}

/// A Secret or ConfigMap a connection names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey {
    pub kind: SourceKind,
    pub namespace: String,
    pub name: String,
}

impl SourceKey {
    pub fn secret(namespace: &str, name: &str) -> Self {
        Self {
            kind: SourceKind::Secret,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    pub fn config_map(namespace: &str, name: &str) -> Self {
        Self {
            kind: SourceKind::ConfigMap,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind.as_str(), self.namespace, self.name)
    }
}

/// What a read found: the parts connections use.
#[derive(Clone, PartialEq, Eq)]
pub struct Source {
    pub resource_version: String,
    pub labels: BTreeMap<String, String>,
    data: BTreeMap<String, Vec<u8>>,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be tokens: name the keys only.
        f.debug_struct("Source")
            .field("resource_version", &self.resource_version)
            .field("labels", &self.labels)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Source {
    /// A key's bytes.
    pub fn value(&self, key: &str) -> Option<&[u8]> {
        self.data.get(key).map(Vec::as_slice)
    }

    /// Whether the object carries `label` with exactly `value`.
    pub fn has_label(&self, label: &str, value: &str) -> bool {
        self.labels.get(label).is_some_and(|v| v == value)
    }

    fn from_secret(secret: Secret) -> Self {
        let resource_version = secret.resource_version().unwrap_or_default();
        let labels = secret.metadata.labels.unwrap_or_default();
        // `stringData` only exists on writes; an API server folds it into `data`. `data` wins.
        let mut data: BTreeMap<String, Vec<u8>> = secret
            .string_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        data.extend(
            secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0)),
        );
        Self {
            resource_version,
            labels,
            data,
        }
    }

    fn from_config_map(cm: ConfigMap) -> Self {
        let resource_version = cm.resource_version().unwrap_or_default();
        let labels = cm.metadata.labels.unwrap_or_default();
        let mut data: BTreeMap<String, Vec<u8>> = cm
            .binary_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        data.extend(
            cm.data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes())),
        );
        Self {
            resource_version,
            labels,
            data,
        }
    }
}

/// A read that did not answer "here it is" or "there is none".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// RBAC refused the `get`: a person must grant it.
    #[error(
        "the operator may not read {key} (the API server answered 403); grant its ServiceAccount get on {resource} in namespace {namespace} (docs/deploy.md, RBAC)",
        resource = key.kind.resource(),
        namespace = key.namespace
    )]
    Forbidden { key: SourceKey },
    /// The API server failed or was unreachable: retried.
    #[error("reading {key} from the Kubernetes API failed: {message}")]
    Failed { key: SourceKey, message: String },
}

#[derive(Default)]
struct Slot {
    /// When it was last read and what was found (`None`: absent).
    read: Option<(Instant, Option<Arc<Source>>)>,
    /// Trusted until then.
    due: Option<Instant>,
    /// Reads in a row that found nothing, failed, or found what [`SourceMemo::distrust`]
    /// refused (paces the re-reads).
    misses: u32,
    /// The object as last read is of no use (a key missing, the label missing, the token
    /// refused by GitLab): until it changes, it is looked at again on the miss schedule.
    unusable: bool,
    /// Last read asked for by [`SourceMemo::reread`].
    reread_at: Option<Instant>,
}

/// The memo (see the module docs). Shared by every reconcile; cheap to look into.
pub struct SourceMemo {
    client: Client,
    lifetime: Duration,
    slots: Mutex<HashMap<SourceKey, Arc<tokio::sync::Mutex<Slot>>>>,
    changes: mpsc::UnboundedSender<SourceKey>,
}

impl SourceMemo {
    /// Changes seen by any read are sent on `changes`.
    pub fn new(
        client: Client,
        lifetime: Duration,
        changes: mpsc::UnboundedSender<SourceKey>,
    ) -> Self {
        Self {
            client,
            lifetime: lifetime.max(Duration::from_millis(100)),
            slots: Mutex::new(HashMap::new()),
            changes,
        }
    }

    fn slot(&self, key: &SourceKey) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock();
        Arc::clone(slots.entry(key.clone()).or_default())
    }

    /// The object, from the memo while it is trusted, else read now. Concurrent callers for
    /// one key wait for one read.
    pub async fn get(&self, key: &SourceKey) -> Result<Option<Arc<Source>>, ReadError> {
        let slot = self.slot(key);
        let mut slot = slot.lock().await;
        if let (Some(due), Some((_, found))) = (slot.due, &slot.read)
            && Instant::now() < due
        {
            return Ok(found.clone());
        }
        self.read(key, &mut slot).await
    }

    /// Read the object again now, unless another caller of `reread` did less than `min_age`
    /// ago (many resources refused by GitLab at once then cost one read, not one each).
    pub async fn reread(
        &self,
        key: &SourceKey,
        min_age: Duration,
    ) -> Result<Option<Arc<Source>>, ReadError> {
        let slot = self.slot(key);
        let mut slot = slot.lock().await;
        if let (Some(at), Some((_, found))) = (slot.reread_at, &slot.read)
            && at.elapsed() < min_age
        {
            return Ok(found.clone());
        }
        slot.reread_at = Some(Instant::now());
        self.read(key, &mut slot).await
    }

    /// The object as read is of no use to a connection (see [`Slot::unusable`]): look at it
    /// again soon, as if it were absent, so the resources waiting on a fix see it within
    /// seconds rather than within the lifetime.
    pub async fn distrust(&self, key: &SourceKey) {
        let slot = self.slot(key);
        let mut slot = slot.lock().await;
        if slot.unusable {
            return;
        }
        slot.unusable = true;
        slot.misses = slot.misses.max(1);
        let soon = Instant::now() + recheck_after(self.lifetime, slot.misses);
        slot.due = Some(slot.due.map_or(soon, |due| due.min(soon)));
    }

    /// Read every entry whose trust has run out (absent ones on their backoff), so changes
    /// wake the resources waiting on them.
    pub async fn refresh_due(&self) {
        let slots: Vec<(SourceKey, Arc<tokio::sync::Mutex<Slot>>)> = self
            .slots
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        for (key, slot) in slots {
            // A slot being read right now is being refreshed anyway.
            let Ok(mut slot) = slot.try_lock() else {
                continue;
            };
            if slot.due.is_some_and(|due| Instant::now() >= due) {
                // Errors are kept in the slot's backoff and seen by the next user.
                let _ = self.read(&key, &mut slot).await;
            }
        }
    }

    /// Forget every entry `keep` refuses (no connection names it any more).
    pub fn retain(&self, keep: impl Fn(&SourceKey) -> bool) {
        self.slots.lock().retain(|key, _| keep(key));
    }

    /// The keys remembered, for tests and diagnostics.
    pub fn keys(&self) -> Vec<SourceKey> {
        let mut keys: Vec<SourceKey> = self.slots.lock().keys().cloned().collect();
        keys.sort();
        keys
    }

    async fn fetch(&self, key: &SourceKey) -> Result<Option<Source>, kube::Error> {
        Ok(match key.kind {
            SourceKind::Secret => Api::<Secret>::namespaced(self.client.clone(), &key.namespace)
                .get_opt(&key.name)
                .await?
                .map(Source::from_secret),
            SourceKind::ConfigMap => {
                Api::<ConfigMap>::namespaced(self.client.clone(), &key.namespace)
                    .get_opt(&key.name)
                    .await?
                    .map(Source::from_config_map)
            }
        })
    }

    async fn read(
        &self,
        key: &SourceKey,
        slot: &mut Slot,
    ) -> Result<Option<Arc<Source>>, ReadError> {
        let now = Instant::now();
        match self.fetch(key).await {
            Ok(found) => {
                let found = found.map(Arc::new);
                if let Some((_, before)) = &slot.read
                    && version(before.as_deref()) != version(found.as_deref())
                {
                    tracing::debug!(object = %key, "changed; waking its users");
                    slot.unusable = false;
                    let _ = self.changes.send(key.clone());
                }
                slot.misses = if found.is_some() && !slot.unusable {
                    0
                } else {
                    slot.misses.saturating_add(1)
                };
                slot.due = Some(now + recheck_after(self.lifetime, slot.misses));
                slot.read = Some((now, found.clone()));
                Ok(found)
            }
            Err(err) => {
                slot.misses = slot.misses.saturating_add(1);
                slot.due = Some(now + recheck_after(self.lifetime, slot.misses));
                let forbidden = matches!(&err, kube::Error::Api(s) if s.code == 403);
                if !forbidden && let Some((_, Some(last))) = &slot.read {
                    // An API server hiccup: keep using what was read last, rather than fail
                    // resources that were working.
                    tracing::warn!(object = %key, error = %err, "could not re-read; using the last read");
                    return Ok(Some(Arc::clone(last)));
                }
                Err(if forbidden {
                    ReadError::Forbidden { key: key.clone() }
                } else {
                    ReadError::Failed {
                        key: key.clone(),
                        message: err.to_string(),
                    }
                })
            }
        }
    }
}

/// When to read again after `misses` reads in a row that found nothing or failed: present,
/// the lifetime; otherwise 2 s doubling per miss, up to the lifetime.
fn recheck_after(lifetime: Duration, misses: u32) -> Duration {
    if misses == 0 {
        return lifetime;
    }
    FIRST_RECHECK
        .saturating_mul(1u32 << misses.saturating_sub(1).min(16))
        .min(lifetime)
}

fn version(source: Option<&Source>) -> Option<&str> {
    source.map(|s| s.resource_version.as_str())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn secret_values_come_from_data_then_string_data() {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s", "resourceVersion": "7", "labels": {"gitlab-operator.io/token": "true"}},
            "stringData": {"a": "from-string-data", "b": "only-string-data"}
        }))
        .unwrap();
        let mut secret = secret;
        secret.data = Some(BTreeMap::from([(
            "a".to_owned(),
            ByteString(b"from-data".to_vec()),
        )]));
        let source = Source::from_secret(secret);
        assert_eq!(source.value("a"), Some(&b"from-data"[..]));
        assert_eq!(source.value("b"), Some(&b"only-string-data"[..]));
        assert_eq!(source.value("c"), None);
        assert!(source.has_label("gitlab-operator.io/token", "true"));
        assert!(!source.has_label("gitlab-operator.io/token", "True"));
        assert_eq!(source.resource_version, "7");
        let debug = format!("{source:?}");
        assert!(
            !debug.contains("from-data") && !debug.contains("only-string-data"),
            "values never in Debug: {debug}"
        );
    }

    #[test]
    fn absent_objects_are_looked_at_again_sooner_then_every_lifetime() {
        let minute = Duration::from_secs(60);
        let cases = [
            ("present", 0, 60),
            ("first miss", 1, 2),
            ("second miss", 2, 4),
            ("fifth miss", 5, 32),
            ("sixth miss: capped at the lifetime", 6, 60),
            ("many misses", u32::MAX, 60),
        ];
        for (name, misses, secs) in cases {
            assert_eq!(
                recheck_after(minute, misses),
                Duration::from_secs(secs),
                "case {name}"
            );
        }
    }

    #[test]
    fn config_map_text_wins_over_binary() {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c", "resourceVersion": "3"},
            "data": {"ca.crt": "PEM"},
            "binaryData": {"ca.crt": "QklO", "other": "QklO"}
        }))
        .unwrap();
        let source = Source::from_config_map(cm);
        assert_eq!(source.value("ca.crt"), Some(&b"PEM"[..]));
        assert_eq!(source.value("other"), Some(&b"BIN"[..]));
    }
}
