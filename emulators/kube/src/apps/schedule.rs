//! Which workloads a tick steps: the simulator's view of the workloads, kept current from the
//! store's history so that a tick looks only at the due ones, and skips settled ones cheaply.

use super::{Kind, STEP_ANNOTATION, annotation, parse_duration, rv_of, uid_of};
use crate::resources::ResourceInfo;
use crate::store::{Inner, Key};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Ticks between two full passes over the workloads (about 5 s): they re-read every workload
/// (a safety net behind the history-driven updates) and drop the state of deleted ones. A
/// pass over every object on every tick was most of the simulator's cost at thousands of
/// workloads (the bench's profile).
pub const RESCAN_EVERY_TICKS: u32 = 200;

/// A workload a tick steps: `steps` times (its own step when `on_schedule`, plus the steps
/// the test hook advanced every workload by).
#[derive(Debug)]
pub struct Due {
    pub kind: Kind,
    pub key: Key,
    pub uid: String,
    pub steps: u64,
    pub on_schedule: bool,
}

/// A settled workload is still fully stepped every this many of its steps, as a safety net
/// behind the owned-object change tracking (at the default 200 ms step: every 4 s).
const RECHECK_EVERY_STEPS: u32 = 20;

/// A workload whose last full step was a no-op at a fixed point (rollout complete, timed out,
/// paused): nothing about it can change until its object, an owned object or the hooks do.
/// Its due steps are skipped while `rv` is its resourceVersion.
#[derive(Debug)]
pub struct Settled {
    pub rv: String,
    pub skipped: u32,
}

/// What the simulator keeps about one workload between ticks, so that a tick looks only at
/// the workloads that are due instead of reading every object. Kept current from the store's
/// history; the simulator's own writes never change these fields.
#[derive(Debug)]
pub struct Tracked {
    pub kind: Kind,
    pub uid: String,
    pub step: Duration,
    pub deleting: bool,
    pub last_step: Option<Instant>,
    pub settled: Option<Settled>,
}

impl Tracked {
    /// From the current object; a previous entry for the same uid keeps its schedule, and
    /// stays settled only while the object is unchanged.
    fn new(kind: Kind, obj: &Value, default_step: Duration, prev: Option<Tracked>) -> Self {
        let uid = uid_of(obj);
        let (last_step, settled) = match prev {
            Some(p) if p.uid == uid => (p.last_step, p.settled.filter(|s| s.rv == rv_of(obj))),
            _ => (None, None),
        };
        Self {
            kind,
            uid: uid.to_string(),
            step: annotation(obj, STEP_ANNOTATION)
                .and_then(parse_duration)
                .unwrap_or(default_step),
            deleting: obj.pointer("/metadata/deletionTimestamp").is_some(),
            last_step,
            settled,
        }
    }
}

/// `(kind, name)` of each ownerReference.
fn owner_refs(obj: &Value) -> impl Iterator<Item = (&str, &str)> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let f = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
            (f("kind"), f("name"))
        })
}

/// The simulator's view of the workloads, kept in step with the store.
pub struct Workloads {
    /// The workload kinds served, with their resources.
    pub kinds: Vec<(Kind, ResourceInfo)>,
    pub tracked: BTreeMap<Key, Tracked>,
    /// Every change up to this resourceVersion has been looked at (or was the simulator's).
    pub seen_rv: u64,
    default_step: Duration,
}

impl Workloads {
    pub fn new(default_step: Duration) -> Self {
        Self {
            kinds: Vec::new(),
            tracked: BTreeMap::new(),
            seen_rv: 0,
            default_step,
        }
    }

    /// The workloads due now. Settled ones (unchanged since, see `Tracked::new`) are skipped
    /// cheaply, but not more than RECHECK_EVERY_STEPS times in a row. One pass without string
    /// compares or store reads: it visits every workload on every tick.
    pub fn due(&mut self, now: Instant, advance: u64, paused: bool) -> Vec<Due> {
        self.tracked
            .iter_mut()
            .filter(|(_, t)| !t.deleting)
            .filter_map(|(key, t)| {
                let on_schedule =
                    !paused && t.last_step.is_none_or(|l| now.duration_since(l) >= t.step);
                if on_schedule
                    && advance == 0
                    && let Some(s) = t.settled.as_mut()
                    && s.skipped < RECHECK_EVERY_STEPS
                {
                    s.skipped += 1;
                    t.last_step = Some(now);
                    return None;
                }
                let steps = u64::from(on_schedule) + advance;
                (steps > 0).then(|| Due {
                    kind: t.kind,
                    key: key.clone(),
                    uid: t.uid.clone(),
                    steps,
                    on_schedule,
                })
            })
            .collect()
    }

    fn refresh(&mut self, inner: &Inner, key: &Key) {
        let prev = self.tracked.remove(key);
        let kind = self.kinds.iter().find(|(_, r)| r.storage == key.0);
        if let (Some(obj), Some((kind, _))) = (inner.get(key), kind) {
            let t = Tracked::new(*kind, obj, self.default_step, prev);
            self.tracked.insert(key.clone(), t);
        }
    }

    /// Re-read every workload from the store. `forget_settled`: changes to owned objects may
    /// have been missed, so every workload gets a full step again.
    pub fn rescan(&mut self, inner: &Inner, forget_settled: bool) {
        let mut fresh = BTreeMap::new();
        for (kind, res) in &self.kinds {
            for (key, obj) in inner.range(&res.storage, None) {
                let prev = self.tracked.remove(key);
                let mut t = Tracked::new(*kind, obj, self.default_step, prev);
                if forget_settled {
                    t.settled = None;
                }
                fresh.insert(key.clone(), t);
            }
        }
        self.tracked = fresh;
    }

    /// Apply the changes others made since the last tick: workloads created, edited or
    /// deleted, and owned objects (ReplicaSets, their pods, ControllerRevisions) written by
    /// someone else (e.g. `kubectl delete pod`), whose owner then gets a full step that
    /// repairs them. When the history no longer reaches back, everything is re-read.
    pub fn catch_up(&mut self, inner: &Inner) {
        if inner.rv <= self.seen_rv {
            return;
        }
        if inner.compacted > self.seen_rv {
            self.rescan(inner, true);
            return;
        }
        let storage = |group: &str, plural: &str| {
            inner
                .resource(group, "v1", plural)
                .map(|r| r.storage.clone())
                .unwrap_or_default()
        };
        let rs_storage = storage("apps", "replicasets");
        let cr_storage = storage("apps", "controllerrevisions");
        let pod_storage = storage("", "pods");
        let owner_key = |ns: &str, kind: &str, name: &str| {
            self.kinds
                .iter()
                .find(|(_, r)| r.kind == kind)
                .map(|(_, r)| (r.storage.clone(), ns.to_string(), name.to_string()))
        };
        let mut edited: Vec<Key> = Vec::new();
        let mut touched: Vec<Key> = Vec::new();
        for ev in inner
            .history
            .iter()
            .rev()
            .take_while(|e| e.rv > self.seen_rv)
        {
            let (storage, ns) = (ev.key.0.as_str(), ev.key.1.as_str());
            if self.kinds.iter().any(|(_, r)| r.storage == storage) {
                edited.push(ev.key.clone());
            } else if storage == rs_storage || storage == cr_storage {
                touched.extend(owner_refs(&ev.obj).filter_map(|(k, n)| owner_key(ns, k, n)));
            } else if storage == pod_storage {
                // Pod -> its ReplicaSet (by name, in the pod's namespace) -> the workload.
                for (_, rs_name) in owner_refs(&ev.obj) {
                    let rs_key = (rs_storage.clone(), ns.to_string(), rs_name.to_string());
                    if let Some(rs) = inner.get(&rs_key) {
                        touched.extend(owner_refs(rs).filter_map(|(k, n)| owner_key(ns, k, n)));
                    }
                }
            }
        }
        for key in edited {
            self.refresh(inner, &key);
        }
        for key in touched {
            if let Some(t) = self.tracked.get_mut(&key) {
                t.settled = None;
            }
        }
    }
}
