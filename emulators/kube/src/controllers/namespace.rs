//! The namespace controller: a terminating namespace is emptied (every object in it deleted,
//! waiting for their finalizers), then its `kubernetes` finalizer is dropped and it goes.

use super::{delete_each, deleting};
use crate::resources::ResourceInfo;
use crate::store::{Inner, Key};
use serde_json::{Value, json};
use std::sync::Arc;

const STORAGE: &str = "namespaces";

#[derive(Debug)]
pub struct Namespaces;

impl Namespaces {
    /// Empty terminating namespaces, then finalize them; whether anything changed.
    pub fn step(&mut self, inner: &mut Inner, now: &str) -> bool {
        let terminating: Vec<(Key, Arc<Value>)> = inner
            .range(STORAGE, None)
            .filter(|(_, o)| deleting(o))
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        let mut changed = false;
        for (key, ns) in terminating {
            let contents: Vec<(ResourceInfo, Key)> = inner
                .objects
                .keys()
                .filter(|k| k.1 == key.2 && k.0 != STORAGE)
                .filter_map(|k| Some((inner.resource_by_storage(&k.0)?.clone(), k.clone())))
                .collect();
            changed |= if contents.is_empty() {
                super::finish_terminating(inner, key, &ns, |n| n["spec"] = json!({}))
            } else {
                delete_each(inner, contents, now)
            };
        }
        changed
    }
}
