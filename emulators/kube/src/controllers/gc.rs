//! The garbage collector: deletes objects whose owners are all gone, and carries out foreground
//! deletions (dependents first, then the owner's `foregroundDeletion` finalizer). Orphan
//! propagation is done by the delete verb itself (`ops::delete`).

use super::{ctx, delete_each, deleting, meta_str};
use crate::ops::{self, FOREGROUND_FINALIZER, owner_uids};
use crate::store::{Inner, Key};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;

#[derive(Debug)]
pub struct GarbageCollector;

impl GarbageCollector {
    /// One pass; whether anything changed.
    pub fn step(&mut self, inner: &mut Inner, now: &str) -> bool {
        let mut changed = delete_orphans(inner, now);
        changed |= foreground(inner, now);
        changed
    }
}

/// Dependents none of whose owners exist any more.
fn delete_orphans(inner: &mut Inner, now: &str) -> bool {
    let live: HashSet<&str> = inner
        .objects
        .values()
        .map(|o| meta_str(o, "uid"))
        .filter(|u| !u.is_empty())
        .collect();
    let orphans: Vec<_> = inner
        .objects
        .iter()
        .filter(|(_, o)| {
            let owners = owner_uids(o);
            !owners.is_empty() && owners.iter().all(|u| !live.contains(u.as_str())) && !deleting(o)
        })
        .filter_map(|(k, _)| {
            let res = inner.resource_by_storage(&k.0)?;
            Some((res.clone(), k.clone()))
        })
        .collect();
    delete_each(inner, orphans, now)
}

/// Owners deleted in the foreground: delete their dependents, and release each owner (remove
/// the finalizer) once none remain.
fn foreground(inner: &mut Inner, now: &str) -> bool {
    let mut changed = false;
    let owners: Vec<(Key, Arc<Value>)> = inner
        .objects
        .iter()
        .filter(|(_, o)| {
            deleting(o)
                && o.pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|f| f.contains(&json!(FOREGROUND_FINALIZER)))
        })
        .map(|(k, o)| (k.clone(), o.clone()))
        .collect();
    for (key, owner) in owners {
        let uid = meta_str(&owner, "uid").to_string();
        let dependents: Vec<_> = inner.dependents(&uid).map(|(k, _)| k.clone()).collect();
        if !dependents.is_empty() {
            let dependents = dependents
                .into_iter()
                .filter_map(|k| Some((inner.resource_by_storage(&k.0)?.clone(), k)))
                .collect();
            changed |= delete_each(inner, dependents, now);
            continue;
        }
        let Some(res) = inner.resource_by_storage(&key.0).cloned() else {
            continue;
        };
        let mut released = (*owner).clone();
        if let Some(f) = released
            .pointer_mut("/metadata/finalizers")
            .and_then(Value::as_array_mut)
        {
            f.retain(|x| x != FOREGROUND_FINALIZER);
        }
        let (storage, ns, name) = key.clone();
        match ops::finish_update(inner, &res, key, owner, released, None, &ctx(now), None) {
            Ok(_) => changed = true,
            Err(e) => {
                tracing::warn!(%storage, %ns, %name, %e, "cannot release a foreground deletion")
            }
        }
    }
    changed
}
