//! The object store: one struct behind one `parking_lot::Mutex` (never held across `.await`;
//! a panic while it is held does not poison it).
//! A write bumps the global resourceVersion, mutates, records history and broadcasts under the
//! lock, so watch event order equals resourceVersion order.

use crate::resources::ResourceInfo;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;

/// `(storage, namespace, name)`; namespace is empty for cluster-scoped kinds. BTreeMap order is
/// the etcd key order lists need (namespace, then name).
pub type Key = (String, String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One recorded change.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: EventType,
    pub key: Key,
    pub obj: Arc<Value>,
    /// The state before this change (None for ADDED), for selector transitions and snapshots.
    pub prev: Option<Arc<Value>>,
    /// `obj` serialised, made by the first watcher that sends it in the stored form and shared
    /// by the others: every watcher of a kind serialising every event on its own was a
    /// visible part of the emulator's CPU with a few hundred watches open.
    pub json: std::sync::OnceLock<bytes::Bytes>,
}

impl Event {
    pub fn object_json(&self) -> &bytes::Bytes {
        self.json
            .get_or_init(|| serde_json::to_vec(&*self.obj).unwrap_or_default().into())
    }
}

pub struct Inner {
    /// Written only through [`Inner::put`], [`Inner::remove`] and [`Inner::load`], which keep
    /// `owned` in step.
    pub objects: BTreeMap<Key, Arc<Value>>,
    /// The keys of the objects naming each uid in their ownerReferences: the simulated
    /// controllers find a ReplicaSet's pods and a Deployment's ReplicaSets here instead of
    /// scanning the namespace at every step.
    owned: HashMap<String, BTreeSet<Key>>,
    pub rv: u64,
    pub history: VecDeque<Arc<Event>>,
    pub history_cap: usize,
    /// Every event with `rv <= compacted` has left the history window.
    pub compacted: u64,
    pub tx: broadcast::Sender<Arc<Event>>,
    pub resources: Vec<ResourceInfo>,
    /// Bumped whenever served resources change (CRDs), for discovery/OpenAPI hashes.
    pub resources_generation: u64,
    /// Per storage, the resourceVersion its watch window starts at when that is later than
    /// `compacted`: a custom resource's, from the last change of its CRD's spec (the real
    /// apiserver rebuilds the resource's watch cache then; older resourceVersions get 410).
    pub watch_floor: std::collections::HashMap<String, u64>,
    /// Events that left the history window, freed by [`Reaper`] off the lock.
    reaper: Reaper,
}

/// Frees the events that leave the history window on a thread of its own. Freeing an event's
/// objects (the last references to older versions) is most of what a write costs once the
/// window is full, and every write holds the store lock: done inline it slowed every request
/// and watch of a busy emulator.
#[derive(Default)]
struct Reaper {
    batch: Vec<Arc<Event>>,
    tx: Option<std::sync::mpsc::Sender<Vec<Arc<Event>>>>,
}

impl Reaper {
    const BATCH: usize = 256;

    fn retire(&mut self, ev: Arc<Event>) {
        self.batch.push(ev);
        if self.batch.len() < Self::BATCH {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        if self.tx.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<Vec<Arc<Event>>>();
            // The thread ends when the store (and so the sender) is dropped.
            let spawned = std::thread::Builder::new()
                .name("kube-emulator-reaper".into())
                .spawn(move || rx.into_iter().for_each(drop));
            self.tx = spawned.ok().map(|_| tx);
        }
        // Without the thread (it could not be spawned, or has ended), free it here.
        if let Some(tx) = &self.tx
            && let Err(back) = tx.send(batch)
        {
            self.tx = None;
            drop(back.0);
        }
    }
}

pub const DEFAULT_HISTORY: usize = 50_000;
pub const DEFAULT_WATCH_BUFFER: usize = 16_384;

impl Inner {
    pub fn new(resources: Vec<ResourceInfo>, history_cap: usize) -> Self {
        Self::with_watch_buffer(resources, history_cap, DEFAULT_WATCH_BUFFER)
    }

    /// `watch_buffer`: events a watcher may fall behind before its stream is closed.
    pub fn with_watch_buffer(
        resources: Vec<ResourceInfo>,
        history_cap: usize,
        watch_buffer: usize,
    ) -> Self {
        let (tx, _) = broadcast::channel(watch_buffer.max(1));
        Self {
            objects: BTreeMap::new(),
            owned: HashMap::new(),
            rv: 1,
            history: VecDeque::new(),
            history_cap,
            compacted: 1,
            tx,
            resources,
            resources_generation: 1,
            watch_floor: std::collections::HashMap::new(),
            reaper: Reaper::default(),
        }
    }

    pub fn get(&self, key: &Key) -> Option<&Arc<Value>> {
        self.objects.get(key)
    }

    fn record(&mut self, ev: Event) {
        let ev = Arc::new(ev);
        self.history.push_back(ev.clone());
        while self.history.len() > self.history_cap {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
                self.reaper.retire(old);
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(ev);
    }

    /// Store `obj` under `key` with a fresh resourceVersion and record the event.
    pub fn put(&mut self, key: Key, mut obj: Value, kind: EventType) -> Arc<Value> {
        self.rv += 1;
        let rv = self.rv;
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let obj = Arc::new(obj);
        let prev = self.objects.insert(key.clone(), obj.clone());
        self.index_owners(&key, prev.as_deref(), Some(&obj));
        self.record(Event {
            rv,
            kind,
            key,
            obj: obj.clone(),
            prev,
            json: Default::default(),
        });
        obj
    }

    /// Remove `key`; the DELETED event carries the last state with a new resourceVersion.
    pub fn remove(&mut self, key: &Key, mut last: Value) -> Option<Arc<Value>> {
        let prev = self.objects.remove(key)?;
        self.index_owners(key, Some(&prev), None);
        self.rv += 1;
        let rv = self.rv;
        if let Some(m) = last.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let obj = Arc::new(last);
        self.record(Event {
            rv,
            kind: EventType::Deleted,
            key: key.clone(),
            obj: obj.clone(),
            prev: Some(prev),
            json: Default::default(),
        });
        Some(obj)
    }

    /// Put an object back as it was saved (no event, its own resourceVersion).
    pub fn load(&mut self, key: Key, obj: Value) {
        let obj = Arc::new(obj);
        let prev = self.objects.insert(key.clone(), obj.clone());
        self.index_owners(&key, prev.as_deref(), Some(&obj));
    }

    /// Forget every object (before a [`Inner::load`] of a saved state).
    pub fn clear_objects(&mut self) {
        self.objects.clear();
        self.owned.clear();
    }

    /// The objects that name `owner_uid` in their ownerReferences, in key order.
    pub fn dependents<'a>(
        &'a self,
        owner_uid: &str,
    ) -> impl Iterator<Item = (&'a Key, &'a Arc<Value>)> + 'a {
        self.owned
            .get(owner_uid)
            .into_iter()
            .flatten()
            .filter_map(|k| self.objects.get_key_value(k))
    }

    fn index_owners(&mut self, key: &Key, before: Option<&Value>, after: Option<&Value>) {
        fn uids(obj: Option<&Value>) -> Vec<&str> {
            obj.and_then(|o| o.pointer("/metadata/ownerReferences"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r.get("uid").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default()
        }
        let (old, new) = (uids(before), uids(after));
        if old == new {
            return;
        }
        for u in old.iter().filter(|u| !new.contains(u)) {
            if let Some(keys) = self.owned.get_mut(*u) {
                keys.remove(key);
                if keys.is_empty() {
                    self.owned.remove(*u);
                }
            }
        }
        for u in new.iter().filter(|u| !old.contains(u)) {
            self.owned
                .entry((*u).to_string())
                .or_default()
                .insert(key.clone());
        }
    }

    /// The oldest resourceVersion a watch of `storage` may resume from.
    pub fn watch_start(&self, storage: &str) -> u64 {
        self.watch_floor
            .get(storage)
            .copied()
            .unwrap_or(0)
            .max(self.compacted)
    }

    /// Drop history up to the current RV (test hook): resumes from older RVs get 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// Objects of one storage (optionally one namespace) as they were at `rv`, rebuilt by
    /// undoing newer history. `None` when `rv` is older than the history window.
    pub fn snapshot(
        &self,
        storage: &str,
        ns: Option<&str>,
        rv: u64,
    ) -> Option<BTreeMap<Key, Arc<Value>>> {
        if rv < self.compacted {
            return None;
        }
        let mut objs: BTreeMap<Key, Arc<Value>> = self
            .range(storage, ns)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if rv >= self.rv {
            return Some(objs);
        }
        for ev in self.history.iter().rev() {
            if ev.rv <= rv {
                break;
            }
            if ev.key.0 != storage || ns.is_some_and(|n| n != ev.key.1) {
                continue;
            }
            match &ev.prev {
                None => {
                    objs.remove(&ev.key);
                }
                Some(p) => {
                    objs.insert(ev.key.clone(), p.clone());
                }
            }
        }
        Some(objs)
    }

    /// Objects of one storage, optionally one namespace, in key order.
    pub fn range<'a>(
        &'a self,
        storage: &str,
        ns: Option<&str>,
    ) -> impl Iterator<Item = (&'a Key, &'a Arc<Value>)> + 'a {
        let start: Key = (
            storage.to_string(),
            ns.unwrap_or("").to_string(),
            String::new(),
        );
        let storage = storage.to_string();
        let ns = ns.map(String::from);
        self.objects
            .range(start..)
            .take_while(move |(k, _)| k.0 == storage && ns.as_ref().is_none_or(|n| *n == k.1))
    }

    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// The served resource for a stored object's storage (first view; core for Events).
    pub fn resource_by_storage(&self, storage: &str) -> Option<&ResourceInfo> {
        self.resources.iter().find(|r| r.storage == storage)
    }

    /// Resource serving `apiVersion`/`kind`, for ownerReference and GC lookups.
    pub fn resource_by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.kind == kind && r.api_version() == api_version)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(name: &str) -> Key {
        ("configmaps".into(), "default".into(), name.into())
    }

    fn obj(name: &str, v: i64) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}, "data": {"v": v}})
    }

    #[test]
    fn snapshots_rebuild_past_states_from_history() {
        let mut inner = Inner::new(vec![], 100);
        inner.put(key("a"), obj("a", 1), EventType::Added);
        let rv_a1 = inner.rv;
        inner.put(key("b"), obj("b", 1), EventType::Added);
        inner.put(key("a"), obj("a", 2), EventType::Modified);
        let last = (*inner.objects[&key("b")]).clone();
        inner.remove(&key("b"), last);
        type Case<'a> = (&'a str, u64, Vec<(&'a str, i64)>);
        let cases: Vec<Case> = vec![
            ("after first write", rv_a1, vec![("a", 1)]),
            ("after b added", rv_a1 + 1, vec![("a", 1), ("b", 1)]),
            ("after a modified", rv_a1 + 2, vec![("a", 2), ("b", 1)]),
            ("latest", inner.rv, vec![("a", 2)]),
        ];
        for (name, rv, want) in cases {
            let snap = inner.snapshot("configmaps", Some("default"), rv).unwrap();
            let got: Vec<(&str, i64)> = snap
                .values()
                .map(|o| {
                    (
                        o["metadata"]["name"].as_str().unwrap(),
                        o["data"]["v"].as_i64().unwrap(),
                    )
                })
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn bounded_history_expires_old_versions() {
        let mut inner = Inner::new(vec![], 2);
        for i in 0..5 {
            inner.put(key("a"), obj("a", i), EventType::Modified);
        }
        assert_eq!(inner.history.len(), 2);
        assert!(
            inner.snapshot("configmaps", None, 2).is_none(),
            "older than the window"
        );
        assert!(inner.snapshot("configmaps", None, inner.rv - 1).is_some());
        inner.compact();
        assert!(inner.history.is_empty());
        assert!(inner.snapshot("configmaps", None, inner.rv - 1).is_none());
    }

    fn owned(name: &str, owners: &[&str]) -> Value {
        let refs: Vec<Value> = owners.iter().map(|u| json!({"uid": u})).collect();
        json!({"metadata": {"name": name, "namespace": "default", "ownerReferences": refs}})
    }

    #[test]
    fn dependents_follow_owner_references_through_writes_and_removal() {
        let mut inner = Inner::new(vec![], 100);
        let deps = |inner: &Inner, uid: &str| -> Vec<String> {
            inner.dependents(uid).map(|(k, _)| k.2.clone()).collect()
        };
        inner.put(key("a"), owned("a", &["u1"]), EventType::Added);
        inner.put(key("b"), owned("b", &["u1", "u2"]), EventType::Added);
        assert_eq!(deps(&inner, "u1"), ["a", "b"]);
        assert_eq!(deps(&inner, "u2"), ["b"]);
        // Re-owned: gone from the old owner, listed under the new one.
        inner.put(key("a"), owned("a", &["u2"]), EventType::Modified);
        assert_eq!(deps(&inner, "u1"), ["b"]);
        assert_eq!(deps(&inner, "u2"), ["a", "b"]);
        // References dropped, then an object removed.
        inner.put(key("b"), obj("b", 1), EventType::Modified);
        let last = (*inner.objects[&key("a")]).clone();
        inner.remove(&key("a"), last);
        assert!(deps(&inner, "u1").is_empty());
        assert!(deps(&inner, "u2").is_empty());
        // A reload rebuilds the index with the objects.
        inner.clear_objects();
        inner.load(key("c"), owned("c", &["u3"]));
        assert_eq!(deps(&inner, "u3"), ["c"]);
    }

    /// Versions that leave the history window are freed (on the reaper's thread).
    #[test]
    fn versions_leaving_the_history_window_are_freed() {
        let mut inner = Inner::new(vec![], 10);
        let first = std::sync::Arc::downgrade(&inner.put(key("a"), obj("a", 0), EventType::Added));
        for i in 1..=(2 * Reaper::BATCH as i64) {
            inner.put(key("a"), obj("a", i), EventType::Modified);
        }
        assert_eq!(inner.history.len(), 10);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while first.upgrade().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "the first version is still held"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(
            inner.objects[&key("a")]["data"]["v"],
            2 * Reaper::BATCH as i64
        );
    }

    #[test]
    fn events_carry_previous_state_and_monotonic_versions() {
        let mut inner = Inner::new(vec![], 10);
        let mut rx = inner.tx.subscribe();
        inner.put(key("a"), obj("a", 1), EventType::Added);
        inner.put(key("a"), obj("a", 2), EventType::Modified);
        let e1 = rx.try_recv().unwrap();
        let e2 = rx.try_recv().unwrap();
        assert!(e2.rv > e1.rv);
        assert!(e1.prev.is_none());
        assert_eq!(e2.prev.as_ref().unwrap()["data"]["v"], 1);
        assert_eq!(e2.obj["metadata"]["resourceVersion"], e2.rv.to_string());
    }
}
