//! The emulator's controller-manager: the controllers a cluster runs beside its apiserver. The
//! verbs (`ops`) only store and admission (`admit`) only checks one request; what a write sets
//! off happens here, read from the store's change history as an informer would:
//!
//! - [`crd::Crds`]: serves a CRD's kind as soon as it is written (status `NamesAccepted` and
//!   `Established`, the cleanup finalizer), stops serving it when it is gone, and empties a
//!   terminating CRD of its custom resources before releasing it;
//! - [`namespace::Namespaces`]: empties a terminating namespace, then finalizes it;
//! - [`serviceaccount::ServiceAccounts`]: a `default` ServiceAccount in every active namespace;
//! - [`gc::GarbageCollector`]: deletes dependents whose owners are gone, and the dependents of
//!   foreground deletions.
//!
//! The workload controllers (Deployment, StatefulSet, DaemonSet, ReplicaSet) are the rollout
//! simulator in `apps`, on its own paced tick.
//!
//! Two drives. [`Controllers::observe`] runs right after every write, under the same lock, for
//! what clients expect at once (a CRD served, a namespace's ServiceAccount). [`Controllers::step`]
//! is the background pass, woken after deletions (see [`run`]): on a real cluster garbage
//! collection and namespace/CRD cleanup are asynchronous, and operators must not rely on them
//! being instant.

pub(crate) mod crd;
mod gc;
mod namespace;
mod serviceaccount;

use crate::ops::{self, WriteCtx};
use crate::resources::ResourceInfo;
use crate::state::AppState;
use crate::store::{Event, Inner, Key};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The field manager of the controllers' writes.
const MANAGER: &str = "kube-controller-manager";

/// Pause before and between background passes: GC is asynchronous on real clusters.
const GC_DELAY: Duration = Duration::from_millis(20);

/// The controllers and how far into the store's history they have looked.
#[derive(Debug)]
pub struct Controllers {
    /// Every change up to this resourceVersion has been observed.
    seen_rv: u64,
    crds: crd::Crds,
    namespaces: namespace::Namespaces,
    service_accounts: serviceaccount::ServiceAccounts,
    gc: gc::GarbageCollector,
}

impl Controllers {
    /// Controllers that have seen `inner` as it is now.
    pub fn new(inner: &Inner) -> Self {
        Self {
            seen_rv: inner.rv,
            crds: crd::Crds,
            namespaces: namespace::Namespaces,
            service_accounts: serviceaccount::ServiceAccounts,
            gc: gc::GarbageCollector,
        }
    }

    /// React to every change since the last call, in resourceVersion order, the controllers'
    /// own writes included (until nothing is left to react to). When the history no longer
    /// reaches back (compaction, a state file loaded), the served CRDs are rebuilt from the
    /// store instead; namespaces are only written by API requests, which are observed at once.
    pub fn observe(&mut self, inner: &mut Inner) {
        while inner.rv > self.seen_rv {
            if inner.compacted > self.seen_rv {
                self.resync(inner);
                continue;
            }
            let now = ops::now_string();
            let mut events: Vec<Arc<Event>> = inner
                .history
                .iter()
                .rev()
                .take_while(|e| e.rv > self.seen_rv)
                .cloned()
                .collect();
            events.reverse();
            self.seen_rv = inner.rv;
            for ev in &events {
                self.crds.observe(inner, ev, &now);
                self.service_accounts.observe(inner, ev, &now);
            }
        }
    }

    /// Rebuild what the controllers keep from the store as it is, without its history (a state
    /// file was loaded, or changes were compacted away before they were observed).
    pub fn resync(&mut self, inner: &mut Inner) {
        self.seen_rv = inner.rv;
        self.crds.resync(inner, &ops::now_string());
        self.observe(inner);
    }

    /// One background pass of the garbage collector and the namespace and CRD cleanup;
    /// whether anything changed. Each controller sees the changes of the ones before it.
    pub fn step(&mut self, inner: &mut Inner) -> bool {
        let now = ops::now_string();
        let mut changed = self.gc.step(inner, &now);
        self.observe(inner);
        changed |= self.crds.step(inner, &now);
        self.observe(inner);
        changed |= self.namespaces.step(inner, &now);
        self.observe(inner);
        changed
    }
}

/// The background controllers' loop: woken after deletions, it passes until nothing changes.
pub async fn run(state: AppState) {
    loop {
        state.0.gc.notified().await;
        tokio::time::sleep(GC_DELAY).await;
        while state.step_controllers() {
            state.written(false);
            tokio::time::sleep(GC_DELAY).await;
        }
    }
}

fn ctx(now: &str) -> WriteCtx {
    WriteCtx {
        now: now.to_string(),
        manager: MANAGER.into(),
        ..Default::default()
    }
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
}

/// Delete (background propagation) each of `keys` not already being deleted; whether any was.
fn delete_each(inner: &mut Inner, keys: Vec<(ResourceInfo, Key)>, now: &str) -> bool {
    let mut changed = false;
    for (res, k) in keys {
        if inner.get(&k).is_some_and(|o| deleting(o)) {
            continue;
        }
        let ns = (!k.1.is_empty()).then_some(k.1.as_str());
        let opts = ops::DeleteOpts {
            propagation: Some("Background".into()),
            ..Default::default()
        };
        match ops::delete(inner, &res, ns, &k.2, &opts, now) {
            Ok(_) => changed = true,
            Err(e) => {
                tracing::warn!(storage = %k.0, namespace = %k.1, name = %k.2, %e, "controller delete failed")
            }
        }
    }
    changed
}

/// Finish the deletion of an emptied namespace or CRD at `key`: `release` drops what its
/// controller held it by; it is removed once no finalizer is left. Whether anything changed.
fn finish_terminating(
    inner: &mut Inner,
    key: Key,
    obj: &Value,
    release: impl FnOnce(&mut Value),
) -> bool {
    let mut n = obj.clone();
    release(&mut n);
    crate::patch::normalize_metadata(&mut n);
    let no_finalizers = n
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty());
    if no_finalizers {
        inner.remove(&key, n);
        true
    } else if n != *obj {
        inner.put(key, n, crate::store::EventType::Modified);
        true
    } else {
        false
    }
}
