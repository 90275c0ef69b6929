//! This process's own status writes that the `GitlabDeployment` cache has not shown yet.
//!
//! A reconcile that acts on a cached object older than its own last write would repeat work
//! or act on a `running` GitLab has already finished, so such a reconcile stops and waits.
//! Status writes do not pass the controller's predicates (generation, finalizers, refresh),
//! so nothing would wake it: the watch reports every object it applies here, and the first
//! version past our writes wakes the waiting resource at once instead of after a fixed delay.

use super::index::owner_key;
use std::collections::{HashMap, HashSet};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use parking_lot::Mutex;

use crate::api::deployment::GitlabDeployment;

#[derive(Default)]
struct Pending {
    /// resourceVersions our writes replaced; a cached object at any of them is stale. One
    /// reconcile can write several times (intent, id, final), hence a set.
    replaced: HashSet<String>,
    /// A reconcile found the cache stale and waits for the watch to catch up.
    waiting: bool,
}

#[derive(Default)]
pub struct OwnWrites {
    pending: Mutex<HashMap<ObjectRef<GitlabDeployment>, Pending>>,
}

impl OwnWrites {
    /// Our status write replaced `replaced` (the version the write was preconditioned on).
    pub fn wrote(&self, obj: &GitlabDeployment, replaced: Option<String>) {
        if let Some(rv) = replaced {
            self.lock()
                .entry(owner_key(obj))
                .or_default()
                .replaced
                .insert(rv);
        }
    }

    /// Whether `obj` (from the cache) predates one of our writes; if so the caller is
    /// woken by [`OwnWrites::observed`] once the watch delivers a newer version. A version we
    /// did not replace means the cache caught up (or someone else wrote): forget the writes.
    pub fn is_stale(&self, obj: &GitlabDeployment) -> bool {
        let key = owner_key(obj);
        let mut pending = self.lock();
        let Some(entry) = pending.get_mut(&key) else {
            return false;
        };
        if obj
            .resource_version()
            .is_some_and(|rv| entry.replaced.contains(&rv))
        {
            entry.waiting = true;
            return true;
        }
        pending.remove(&key);
        false
    }

    /// The watch applied `obj` to the cache: true when a reconcile waits for exactly this
    /// (a version past our writes), so the caller should trigger it. The entry itself stays
    /// until the woken reconcile sees the new version, so a reconcile still holding an older
    /// copy is held back meanwhile.
    pub fn observed(&self, obj: &GitlabDeployment) -> bool {
        let mut pending = self.lock();
        let Some(entry) = pending.get_mut(&owner_key(obj)) else {
            return false;
        };
        let newer = obj
            .resource_version()
            .is_some_and(|rv| !entry.replaced.contains(&rv));
        if newer && entry.waiting {
            entry.waiting = false;
            return true;
        }
        false
    }

    pub fn forget(&self, key: &ObjectRef<GitlabDeployment>) {
        self.lock().remove(key);
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<ObjectRef<GitlabDeployment>, Pending>> {
        self.pending.lock()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(rv: &str) -> GitlabDeployment {
        serde_json::from_value(json!({
            "apiVersion": "gitlab-operator.io/v1alpha1", "kind": "GitlabDeployment",
            "metadata": {"name": "web", "namespace": "ns", "resourceVersion": rv},
            "spec": {"project": "g/p", "environment": "production", "ref": "main", "sha": "a",
                "target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}
        }))
        .unwrap()
    }

    #[test]
    fn nothing_written_nothing_stale() {
        let writes = OwnWrites::default();
        assert!(!writes.is_stale(&at("1")));
        assert!(!writes.observed(&at("2")));
    }

    #[test]
    fn a_stale_reconcile_is_woken_by_the_first_newer_version() {
        let writes = OwnWrites::default();
        // Two writes in one reconcile: 1 -> 2 -> 3.
        writes.wrote(&at("1"), Some("1".into()));
        writes.wrote(&at("2"), Some("2".into()));
        assert!(writes.is_stale(&at("1")));
        assert!(writes.is_stale(&at("2")));
        // The watch delivers version 2 (still one of ours replaced): not yet.
        assert!(!writes.observed(&at("2")));
        // Version 3 is past our writes: wake once.
        assert!(writes.observed(&at("3")));
        assert!(!writes.observed(&at("3")), "woken once, not per event");
        // A reconcile still holding version 2 is held back; the woken one goes on.
        assert!(writes.is_stale(&at("2")));
        assert!(!writes.is_stale(&at("3")));
        // Caught up: forgotten.
        assert!(!writes.is_stale(&at("2")));
    }

    #[test]
    fn no_wake_when_nobody_waits() {
        let writes = OwnWrites::default();
        writes.wrote(&at("1"), Some("1".into()));
        assert!(!writes.observed(&at("2")));
        assert!(!writes.is_stale(&at("2")));
    }

    #[test]
    fn forget_drops_the_writes() {
        let writes = OwnWrites::default();
        writes.wrote(&at("1"), Some("1".into()));
        writes.forget(&owner_key(&at("1")));
        assert!(!writes.is_stale(&at("1")));
    }
}
