//! Watches of the workloads that `GitlabDeployment`s follow, for any kind, found at run time.
//!
//! The kinds are not known when the operator starts (a resource may name an Argo Rollout or a
//! Flux Kustomization), so one watcher per followed kind is started the first time the index
//! reports it. Each watcher keeps a store the reconciler reads from (no GET per
//! reconcile) and turns every event on a target into a trigger for exactly the resources that
//! follow it, looked up in the [`ReferenceIndex`].
//!
//! A watch covers a whole namespace, but the store keeps the body only of objects some served
//! resource follows; the others are kept as their keys (so a miss still means "does not
//! exist"). A shard that serves a quarter of a namespace's resources thus holds a quarter of
//! its workloads, and an unsharded operator none of the workloads nobody follows. An object
//! that arrived before anything followed it is read once by name when a resource starts
//! following it (a list with a `metadata.name` field selector: the `list` verb the watch
//! needs already covers it) and kept until its next event brings the body. So that a start
//! does not read every target that way, the watches list only after the `GitlabDeployment`
//! watches have (`owners_listed`): by then the index knows every followed object.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use std::borrow::Cow;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::core::DynamicResourceScope;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use parking_lot::Mutex;
use serde::{Deserialize, Deserializer};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::index::{ReferenceIndex, TargetKey, TargetKind};
use crate::rollout::TargetObject;

/// How long a lookup waits for its kind's first list before answering [`TargetLookup::Pending`]
/// (the list's end triggers the resource again anyway). Waiting keeps a start from
/// reconciling every resource twice: once too early, once when the targets are listed.
const LIST_WAIT: Duration = Duration::from_secs(30);

/// Which namespaces the operator serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    All,
    Namespaces(Vec<String>),
}

/// What the reconciler learns when it asks for a target.
#[derive(Debug)]
pub enum TargetLookup {
    /// The watcher for this kind is starting; a trigger follows once its cache is filled.
    Pending,
    /// The API server does not serve the kind (yet): the message says what was asked.
    KindNotServed(String),
    /// The kind is served but no such object exists.
    Missing,
    Found(TargetObject),
    /// The object is cached without its body and reading it by name failed.
    Unreadable(kube::Error),
}

/// A followed workload as its cache keeps it: the slimmed object as JSON text, parsed again
/// only when a reconcile reads it. Held as `serde_json::Value` trees, thousands of workloads
/// cost about 10 KiB each (every small JSON object is a whole B-tree node); the text is a
/// tenth of that, and parsing a kilobyte per reconcile costs microseconds.
#[derive(Clone, Debug)]
pub struct CachedTarget {
    /// Name, namespace and resourceVersion only: what the cache keys it by.
    metadata: ObjectMeta,
    /// `None` for an object no served resource followed when its last event arrived.
    json: Option<Box<str>>,
}

impl CachedTarget {
    /// Slim `obj` (see [`slim`]) and keep it as text.
    pub fn new(mut obj: DynamicObject) -> Result<Self, serde_json::Error> {
        slim(&mut obj);
        let metadata = ObjectMeta {
            name: obj.metadata.name.clone(),
            namespace: obj.metadata.namespace.clone(),
            resource_version: obj.metadata.resource_version.clone(),
            ..ObjectMeta::default()
        };
        let json = Some(serde_json::to_string(&obj)?.into_boxed_str());
        Ok(Self { metadata, json })
    }

    /// Keep only the key: nothing served follows this object.
    fn drop_body(&mut self) {
        self.json = None;
    }

    /// Its namespace and name, and what the cache keeps of it.
    fn into_parts(self) -> (ObjectName, Cached) {
        let name = (
            self.metadata.namespace.unwrap_or_default(),
            self.metadata.name.unwrap_or_default(),
        );
        let cached = Cached {
            version: self.metadata.resource_version,
            json: self.json,
        };
        (name, cached)
    }
}

/// What the cache keeps of one workload: its version and, when a served resource follows
/// it, the slimmed object as text.
#[derive(Clone, Debug)]
struct Cached {
    version: Option<String>,
    /// `None` for an object no served resource followed when its last event arrived.
    json: Option<Box<str>>,
}

impl Cached {
    /// The object for rollout evaluation (`None` when only its key is cached). Its kind is
    /// the one the cache was started for: list items from a real API server carry no
    /// `apiVersion`/`kind` of their own.
    fn object(&self, kind: &TargetKind) -> Option<Result<TargetObject, serde_json::Error>> {
        let json = self.json.as_deref()?;
        Some(serde_json::from_str(json).map(|object| TargetObject {
            api_version: kind.api_version.clone(),
            kind: kind.kind.clone(),
            object,
        }))
    }
}

/// One watch's workloads (a namespace, or all of them), by namespace and name. kube's
/// reflector store would keep per object an `Arc` of a whole `ObjectMeta` and a key with
/// copies of name, namespace, version and kind: about half a KiB more per workload.
#[derive(Default)]
struct TargetStore {
    objects: HashMap<ObjectName, Cached>,
    /// The objects of a relist in progress (`Init` … `InitDone`), which then replace `objects`.
    relist: Option<HashMap<ObjectName, Cached>>,
}

impl TargetStore {
    fn apply(&mut self, event: watcher::Event<CachedTarget>) {
        match event {
            watcher::Event::Apply(obj) => {
                let (name, cached) = obj.into_parts();
                self.objects.insert(name, cached);
            }
            watcher::Event::Delete(obj) => {
                self.objects.remove(&obj.into_parts().0);
            }
            watcher::Event::Init => self.relist = Some(HashMap::new()),
            watcher::Event::InitApply(obj) => {
                let (name, cached) = obj.into_parts();
                self.relist.get_or_insert_default().insert(name, cached);
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.relist.take() {
                    self.objects = listed;
                }
            }
        }
    }
}

/// The watcher decodes straight into the compact form, so no page of full objects outlives
/// its decoding.
impl<'de> Deserialize<'de> for CachedTarget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let obj = DynamicObject::deserialize(deserializer)?;
        Self::new(obj).map_err(serde::de::Error::custom)
    }
}

/// Shared, not copied: the reflector keeps its kind in every cache key, and five strings per
/// cached workload add up at thousands.
impl Resource for CachedTarget {
    type DynamicType = Arc<ApiResource>;
    type Scope = DynamicResourceScope;

    fn group(dt: &Arc<ApiResource>) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &Arc<ApiResource>) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn kind(dt: &Arc<ApiResource>) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn api_version(dt: &Arc<ApiResource>) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &Arc<ApiResource>) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// An object's namespace and name within its kind.
type ObjectName = (String, String);

/// One kind's caches and state, shared by its watch task and the lookups.
#[derive(Default)]
struct KindState {
    /// One store per watched namespace (`None` = all namespaces).
    stores: Mutex<HashMap<Option<String>, TargetStore>>,
    /// Every namespace's store has listed.
    ready: AtomicBool,
    /// Signalled when `ready` or `error` changes, for lookups waiting on the first list.
    settled: watch::Sender<()>,
    error: Mutex<Option<String>>,
    /// The kind as discovery found it (for reads by name).
    resource: Mutex<Option<Arc<ApiResource>>>,
    /// Objects read by name because their store entry had no body, each valid until the
    /// object's next event (which carries the body, now that a resource follows it).
    fetched: Mutex<HashMap<ObjectName, Cached>>,
}

impl KindState {
    fn set_error(&self, error: Option<String>) {
        *self.error.lock() = error;
        self.settled.send_replace(());
    }

    fn is_settled(&self) -> bool {
        self.ready.load(Ordering::Acquire) || self.error.lock().is_some()
    }

    /// Cached objects whose body is held (followed ones), for the `cached_targets` gauge.
    fn bodies(&self) -> usize {
        let stored: usize = self
            .stores
            .lock()
            .values()
            .map(|store| store.objects.values().filter(|t| t.json.is_some()).count())
            .sum();
        stored + self.fetched.lock().len()
    }
}

struct KindWatch {
    state: Arc<KindState>,
    task: JoinHandle<()>,
}

impl Drop for KindWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The set of running target watchers, shared by the index task and the reconciler.
pub struct TargetWatches<O: Eq + std::hash::Hash + Clone + Send + Sync + 'static> {
    client: Client,
    scope: Scope,
    index: Arc<Mutex<ReferenceIndex<O>>>,
    kinds: Mutex<HashMap<TargetKind, KindWatch>>,
    trigger: mpsc::UnboundedSender<O>,
    /// `true` once every owner watch has listed (see the module documentation).
    owners_listed: watch::Receiver<bool>,
}

impl<O: Eq + std::hash::Hash + Clone + Send + Sync + 'static> TargetWatches<O> {
    pub fn new(
        client: Client,
        scope: Scope,
        index: Arc<Mutex<ReferenceIndex<O>>>,
        trigger: mpsc::UnboundedSender<O>,
        owners_listed: watch::Receiver<bool>,
    ) -> Self {
        Self {
            client,
            scope,
            index,
            kinds: Mutex::new(HashMap::new()),
            trigger,
            owners_listed,
        }
    }

    /// Start a watcher for `kind` unless one runs already.
    pub fn ensure(&self, kind: &TargetKind) {
        let mut kinds = self.kinds.lock();
        if kinds.contains_key(kind) {
            return;
        }
        let state = Arc::new(KindState::default());
        let task = tokio::spawn(watch_kind(
            self.client.clone(),
            self.scope.clone(),
            kind.clone(),
            Arc::clone(&self.index),
            self.trigger.clone(),
            Arc::clone(&state),
            self.owners_listed.clone(),
        ));
        kinds.insert(kind.clone(), KindWatch { state, task });
    }

    /// Look a target up in its kind's cache, starting the watcher if needed; read it by name
    /// when the cache holds only its key.
    pub async fn lookup(&self, key: &TargetKey) -> TargetLookup {
        self.ensure(&key.kind);
        let Some(state) = self
            .kinds
            .lock()
            .get(&key.kind)
            .map(|watch| Arc::clone(&watch.state))
        else {
            return TargetLookup::Pending;
        };
        if !state.is_settled() {
            let mut settled = state.settled.subscribe();
            let _ = tokio::time::timeout(LIST_WAIT, async {
                while !state.is_settled() {
                    if settled.changed().await.is_err() {
                        break;
                    }
                }
            })
            .await;
        }
        if let Some(message) = state.error.lock().clone() {
            return TargetLookup::KindNotServed(message);
        }
        if !state.ready.load(Ordering::Acquire) {
            return TargetLookup::Pending;
        }
        let name: ObjectName = (key.namespace.clone(), key.name.clone());
        let cached = {
            let stores = state.stores.lock();
            stores
                .get(&Some(key.namespace.clone()))
                .or_else(|| stores.get(&None))
                .and_then(|store| store.objects.get(&name))
                .cloned()
        };
        let Some(cached) = cached else {
            return TargetLookup::Missing;
        };
        let parsed = match cached.object(&key.kind) {
            Some(parsed) => parsed,
            None => match self.read_unretained(&state, key, name, &cached).await {
                Ok(Some(read)) => match read.object(&key.kind) {
                    Some(parsed) => parsed,
                    None => return TargetLookup::Missing,
                },
                Ok(None) => return TargetLookup::Missing,
                Err(err) => return TargetLookup::Unreadable(err),
            },
        };
        match parsed {
            Ok(obj) => TargetLookup::Found(obj),
            Err(err) => {
                // Impossible short of a serde_json bug: the text was written by serde_json.
                tracing::error!(error = %err, "cached target does not parse");
                TargetLookup::Missing
            }
        }
    }

    /// The body of an object cached as its key only: from an earlier read of the same
    /// version, else read by name now (and kept when it is the version the cache knows).
    async fn read_unretained(
        &self,
        state: &KindState,
        key: &TargetKey,
        name: ObjectName,
        cached: &Cached,
    ) -> Result<Option<Cached>, kube::Error> {
        if let Some(known) = state
            .fetched
            .lock()
            .get(&name)
            .filter(|known| known.version == cached.version)
        {
            return Ok(Some(known.clone()));
        }
        let Some(resource) = state.resource.lock().clone() else {
            return Ok(None);
        };
        let api: Api<CachedTarget> =
            Api::namespaced_with(self.client.clone(), &key.namespace, &resource);
        let params = ListParams::default().fields(&format!("metadata.name={}", key.name));
        let Some(read) = api.list(&params).await?.items.into_iter().next() else {
            return Ok(None);
        };
        let read = read.into_parts().1;
        if read.version == cached.version {
            state.fetched.lock().insert(name, read.clone());
        }
        Ok(Some(read))
    }

    /// How many kinds are watched (for metrics and tests).
    pub fn watched_kinds(&self) -> usize {
        self.kinds.lock().len()
    }

    /// How many followed objects are cached with their body (for metrics and tests).
    pub fn cached_targets(&self) -> usize {
        let states: Vec<Arc<KindState>> = self
            .kinds
            .lock()
            .values()
            .map(|watch| Arc::clone(&watch.state))
            .collect();
        states.iter().map(|state| state.bodies()).sum()
    }
}

/// Split `apps/v1` into group and version (`v1` alone is the core group).
pub fn group_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// Keep what rollout evaluation and `revisionFrom` read; drop the rest so thousands of cached
/// workloads stay small (managed fields and the last-applied annotation are most of an object).
fn slim(obj: &mut DynamicObject) {
    obj.metadata.managed_fields = None;
    if let Some(annotations) = obj.metadata.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    let Some(pod_spec) = obj
        .data
        .pointer_mut("/spec/template/spec")
        .and_then(|v| v.as_object_mut())
    else {
        return;
    };
    for list in ["containers", "initContainers"] {
        if let Some(containers) = pod_spec.get_mut(list).and_then(|c| c.as_array_mut()) {
            for container in containers.iter_mut() {
                if let Some(fields) = container.as_object_mut() {
                    fields.retain(|k, _| k == "name" || k == "image");
                }
            }
        }
    }
    pod_spec.retain(|k, _| k == "containers" || k == "initContainers");
}

async fn watch_kind<O: Eq + std::hash::Hash + Clone + Send + Sync + 'static>(
    client: Client,
    scope: Scope,
    kind: TargetKind,
    index: Arc<Mutex<ReferenceIndex<O>>>,
    trigger: mpsc::UnboundedSender<O>,
    state: Arc<KindState>,
    mut owners_listed: watch::Receiver<bool>,
) {
    let (group, version) = group_version(&kind.api_version);
    let gvk = GroupVersionKind::gvk(group, version, &kind.kind);
    // Discovery can fail because the kind's CRD is not installed yet: say so on the resources
    // that follow it, and look again with a growing delay instead of giving up.
    let mut delay = Duration::from_secs(2);
    let resource = loop {
        match kube::discovery::pinned_kind(&client, &gvk).await {
            Ok((resource, _caps)) => {
                state.set_error(None);
                break resource;
            }
            Err(err) => {
                tracing::warn!(api_version = %kind.api_version, kind = %kind.kind, error = %err,
                    "target kind not served; will look again");
                state.set_error(Some(format!(
                    "the API server does not serve kind {} in {} ({err}); install its CRD or fix spec.target",
                    kind.kind, kind.api_version
                )));
                notify_kind(&index, &trigger, &kind);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(300));
            }
        }
    };
    let resource = Arc::new(resource);
    *state.resource.lock() = Some(Arc::clone(&resource));
    // Which objects to keep whole is decided as they arrive, so the index must know every
    // followed object first. An error means the run is ending.
    if owners_listed.wait_for(|listed| *listed).await.is_err() {
        return;
    }

    let namespaces: Vec<Option<String>> = match &scope {
        Scope::All => vec![None],
        Scope::Namespaces(list) => list.iter().cloned().map(Some).collect(),
    };
    let mut streams = Vec::with_capacity(namespaces.len());
    let pending = Arc::new(std::sync::atomic::AtomicUsize::new(namespaces.len()));
    for ns in namespaces {
        let api: Api<CachedTarget> = match &ns {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        state
            .stores
            .lock()
            .insert(ns.clone(), TargetStore::default());
        let kind = kind.clone();
        let index = Arc::clone(&index);
        let trigger = trigger.clone();
        let pending = Arc::clone(&pending);
        let state = Arc::clone(&state);
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .map_ok(move |event| {
                on_target_event(
                    event,
                    ns.as_ref(),
                    &kind,
                    &index,
                    &trigger,
                    &state,
                    &pending,
                );
            });
        streams.push(stream.boxed());
    }
    let mut all = futures::stream::select_all(streams);
    while let Some(item) = all.next().await {
        if let Err(err) = item {
            // The default backoff already paces retries. A refusal needs a person, so it is
            // also put on the status of every resource that follows this kind.
            tracing::warn!(kind = %kind.kind, error = %err, "target watch error");
            if is_forbidden(&err) {
                state.set_error(Some(format!(
                    "the operator may not list and watch {} in {} ({err}); grant list and watch on them in its RBAC (see docs/deploy.md)",
                    resource.plural, kind.api_version
                )));
                notify_kind(&index, &trigger, &kind);
            }
        }
    }
}

/// Keep `obj`'s body only when a served resource follows it; either way its event supersedes
/// an earlier read by name. Returns the object's key.
fn retain_if_followed<O: Eq + std::hash::Hash + Clone>(
    obj: &mut CachedTarget,
    kind: &TargetKind,
    index: &Mutex<ReferenceIndex<O>>,
    state: &KindState,
) -> TargetKey {
    let key = TargetKey {
        kind: kind.clone(),
        namespace: obj.namespace().unwrap_or_default(),
        name: obj.name_any(),
    };
    if !index.lock().is_followed(&key) {
        obj.drop_body();
    }
    state
        .fetched
        .lock()
        .remove(&(key.namespace.clone(), key.name.clone()));
    key
}

fn is_forbidden(err: &watcher::Error) -> bool {
    match err {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 403,
        watcher::Error::WatchError(s) => s.code == 403,
        _ => false,
    }
}

/// Apply one watch event to the store of `scope`, then wake whoever it concerns: the owners
/// of a changed object, or every owner of the kind once every namespace has listed.
fn on_target_event<O: Eq + std::hash::Hash + Clone>(
    mut event: watcher::Event<CachedTarget>,
    scope: Option<&String>,
    kind: &TargetKind,
    index: &Mutex<ReferenceIndex<O>>,
    trigger: &mpsc::UnboundedSender<O>,
    state: &KindState,
    pending: &std::sync::atomic::AtomicUsize,
) {
    let changed = match &mut event {
        watcher::Event::Apply(obj) => Some(retain_if_followed(obj, kind, index, state)),
        watcher::Event::InitApply(obj) => {
            retain_if_followed(obj, kind, index, state);
            None
        }
        watcher::Event::Delete(obj) => Some(retain_if_followed(obj, kind, index, state)),
        watcher::Event::Init | watcher::Event::InitDone => None,
    };
    let listed = matches!(event, watcher::Event::InitDone);
    if let Some(store) = state.stores.lock().get_mut(&scope.cloned()) {
        store.apply(event);
    }
    if let Some(key) = changed {
        for owner in index.lock().owners_of(&key) {
            let _closed = trigger.send(owner);
        }
    }
    if listed {
        state.set_error(None);
        // Owners that asked while the cache was empty were told "pending": wake them all
        // once every namespace's cache is filled.
        if pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(1))
            })
            .is_ok_and(|before| before <= 1)
        {
            state.ready.store(true, Ordering::Release);
            state.settled.send_replace(());
        }
        notify_kind(index, trigger, kind);
    }
}

/// Trigger every owner that follows some object of `kind`.
fn notify_kind<O: Eq + std::hash::Hash + Clone>(
    index: &Mutex<ReferenceIndex<O>>,
    trigger: &mpsc::UnboundedSender<O>,
    kind: &TargetKind,
) {
    for owner in index.lock().owners_of_kind(kind) {
        let _closed = trigger.send(owner);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn group_version_splits_core_and_named_groups() {
        assert_eq!(group_version("v1"), ("", "v1"));
        assert_eq!(group_version("apps/v1"), ("apps", "v1"));
        assert_eq!(
            group_version("argoproj.io/v1alpha1"),
            ("argoproj.io", "v1alpha1")
        );
    }

    #[test]
    fn slim_keeps_what_rollout_evaluation_reads() {
        let mut obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "generation": 3,
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "keep": "me"},
                "managedFields": [{"manager": "kubectl"}]},
            "spec": {"replicas": 3, "progressDeadlineSeconds": 600,
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "registry/app:1.2.3", "env": [{"name": "A"}]}],
                             "volumes": [{"name": "v"}]}}},
            "status": {"observedGeneration": 3, "updatedReplicas": 3}
        }))
        .unwrap();
        slim(&mut obj);
        assert!(obj.metadata.managed_fields.is_none());
        let annotations = obj.metadata.annotations.clone().unwrap();
        assert_eq!(annotations.len(), 1);
        assert_eq!(annotations["keep"], "me");
        assert_eq!(
            obj.data["spec"]["template"]["spec"],
            json!({"containers": [{"name": "app", "image": "registry/app:1.2.3"}]})
        );
        assert_eq!(obj.data["spec"]["replicas"], 3);
        assert_eq!(obj.data["status"]["updatedReplicas"], 3);
        assert_eq!(
            obj.data["spec"]["template"]["metadata"]["labels"]["app"],
            "web"
        );
    }

    #[test]
    fn cached_target_keeps_the_slim_object_and_takes_its_kind_from_the_cache() {
        // A list item as a real API server sends it: no apiVersion or kind of its own.
        let item = json!({
            "metadata": {"name": "web", "namespace": "ns", "resourceVersion": "7", "uid": "u1",
                "generation": 2, "labels": {"app": "web"},
                "managedFields": [{"manager": "kubectl"}]},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "i:1", "env": []}]}}},
            "status": {"observedGeneration": 2}
        });
        let cached: CachedTarget = serde_json::from_value(item).unwrap();
        assert_eq!(cached.name_any(), "web");
        assert_eq!(cached.namespace().as_deref(), Some("ns"));
        assert_eq!(cached.resource_version().as_deref(), Some("7"));
        assert!(
            cached.meta().labels.is_none(),
            "the key metadata holds no more than keys"
        );
        let kind = TargetKind {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
        };
        let (name, cached) = cached.into_parts();
        assert_eq!(name, ("ns".to_owned(), "web".to_owned()));
        assert_eq!(cached.version.as_deref(), Some("7"));
        let target = cached.object(&kind).unwrap().unwrap();
        assert_eq!(target.api_version, "apps/v1");
        assert_eq!(target.kind, "Deployment");
        assert_eq!(target.object["metadata"]["generation"], 2);
        assert_eq!(target.object["metadata"]["labels"]["app"], "web");
        assert!(target.object["metadata"].get("managedFields").is_none());
        assert_eq!(
            target.object["spec"]["template"]["spec"]["containers"],
            json!([{"name": "app", "image": "i:1"}])
        );
        assert_eq!(target.object["status"]["observedGeneration"], 2);
    }

    fn target(name: &str, version: &str) -> CachedTarget {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": version},
            "status": {"observedGeneration": 1}
        }))
        .unwrap()
    }

    fn versions(store: &TargetStore) -> Vec<(String, Option<String>)> {
        let mut all: Vec<_> = store
            .objects
            .iter()
            .map(|((_, name), c)| (name.clone(), c.version.clone()))
            .collect();
        all.sort();
        all
    }

    #[test]
    fn target_store_applies_changes_and_a_relist_replaces_everything_at_its_end() {
        let mut store = TargetStore::default();
        store.apply(watcher::Event::Apply(target("a", "1")));
        store.apply(watcher::Event::Apply(target("b", "2")));
        store.apply(watcher::Event::Apply(target("a", "3")));
        store.apply(watcher::Event::Delete(target("b", "4")));
        assert_eq!(versions(&store), vec![("a".into(), Some("3".into()))]);
        // During a relist the old contents still answer; at its end only what it listed stays.
        store.apply(watcher::Event::Init);
        store.apply(watcher::Event::InitApply(target("c", "5")));
        assert_eq!(versions(&store), vec![("a".into(), Some("3".into()))]);
        store.apply(watcher::Event::InitDone);
        assert_eq!(versions(&store), vec![("c".into(), Some("5".into()))]);
        let mut unfollowed = target("d", "6");
        unfollowed.drop_body();
        store.apply(watcher::Event::Apply(unfollowed));
        assert!(store.objects[&("ns".into(), "d".into())].json.is_none());
        assert!(store.objects[&("ns".into(), "c".into())].json.is_some());
    }
}
