//! This process's own status writes that the `GitlabDeployment` cache has not shown yet.
//!
//! A reconcile that acts on a cached object older than its own last write would repeat work
//! or act on a `running` GitLab has already finished, so such a reconcile stops and waits.
//! Status writes do not pass the controller's predicates (generation, finalizers, refresh),
//! so nothing would wake it: the watch reports every object it applies here, and the first
//! version past our writes wakes the waiting resource at once instead of after a fixed delay.
//!
//! An entry nobody waits for is dropped [`SETTLE`] after the cache showed a version past it.
//! Kept until the resource's next reconcile instead, the map held an entry for nearly every
//! resource after a rollout (0.4 KiB each in a heap profile), for nothing.

use super::index::owner_key;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use parking_lot::Mutex;

use crate::api::deployment::GitlabDeployment;

/// How long an entry is kept after the cache caught up with it. What it still guards against
/// is a reconcile that took its object from the cache just before the newer version arrived:
/// such a reconcile checks [`OwnWrites::is_stale`] as it starts, well within this margin.
pub const SETTLE: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Pending {
    /// resourceVersions our writes replaced; a cached object at any of them is stale. One
    /// reconcile can write several times (intent, id, final), hence a set.
    replaced: HashSet<String>,
    /// A reconcile found the cache stale and waits for the watch to catch up.
    waiting: bool,
    /// When the cache first showed a version past our writes while nobody waited.
    caught_up: Option<Instant>,
}

#[derive(Default)]
struct State {
    pending: HashMap<ObjectRef<GitlabDeployment>, Pending>,
    last_sweep: Option<Instant>,
}

impl State {
    /// Drop the entries the cache caught up with more than [`SETTLE`] ago, at most once per
    /// [`SETTLE`] (the pass visits every entry).
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < SETTLE)
        {
            return;
        }
        self.last_sweep = Some(now);
        self.pending.retain(|_, p| {
            p.waiting
                || p.caught_up
                    .is_none_or(|t| now.saturating_duration_since(t) < SETTLE)
        });
        // A burst (an adoption, a platform-wide rollout) grows the table; give it back.
        if self.pending.capacity() > 4 * self.pending.len().max(64) {
            self.pending.shrink_to_fit();
        }
    }
}

#[derive(Default)]
pub struct OwnWrites {
    state: Mutex<State>,
}

impl OwnWrites {
    /// Our status write replaced `replaced` (the version the write was preconditioned on).
    pub fn wrote(&self, obj: &GitlabDeployment, replaced: Option<String>) {
        if let Some(rv) = replaced {
            let mut state = self.state.lock();
            let entry = state.pending.entry(owner_key(obj)).or_default();
            entry.replaced.insert(rv);
            entry.caught_up = None;
        }
    }

    /// Whether `obj` (from the cache) predates one of our writes; if so the caller is
    /// woken by [`OwnWrites::observed`] once the watch delivers a newer version. A version we
    /// did not replace means the cache caught up (or someone else wrote): forget the writes.
    pub fn is_stale(&self, obj: &GitlabDeployment) -> bool {
        let key = owner_key(obj);
        let mut state = self.state.lock();
        let Some(entry) = state.pending.get_mut(&key) else {
            return false;
        };
        if obj
            .resource_version()
            .is_some_and(|rv| entry.replaced.contains(&rv))
        {
            entry.waiting = true;
            return true;
        }
        state.pending.remove(&key);
        false
    }

    /// The watch applied `obj` to the cache: true when a reconcile waits for exactly this
    /// (a version past our writes), so the caller should trigger it. The entry itself stays
    /// until the woken reconcile sees the new version, so a reconcile still holding an older
    /// copy is held back meanwhile; one nobody waits for stays [`SETTLE`] longer.
    pub fn observed(&self, obj: &GitlabDeployment) -> bool {
        self.observed_at(obj, Instant::now())
    }

    fn observed_at(&self, obj: &GitlabDeployment, now: Instant) -> bool {
        let mut state = self.state.lock();
        state.sweep(now);
        let Some(entry) = state.pending.get_mut(&owner_key(obj)) else {
            return false;
        };
        let newer = obj
            .resource_version()
            .is_some_and(|rv| !entry.replaced.contains(&rv));
        if !newer {
            return false;
        }
        if entry.waiting {
            entry.waiting = false;
            return true;
        }
        entry.caught_up.get_or_insert(now);
        false
    }

    pub fn forget(&self, key: &ObjectRef<GitlabDeployment>) {
        self.state.lock().pending.remove(key);
    }

    /// Entries kept (for the tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().pending.len()
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

    #[test]
    fn an_entry_nobody_waits_for_goes_once_the_cache_has_shown_a_newer_version_for_a_while() {
        let writes = OwnWrites::default();
        let t0 = Instant::now();
        writes.wrote(&at("1"), Some("1".into()));
        // The watch shows version 2: caught up, nobody waits.
        assert!(!writes.observed_at(&at("2"), t0));
        assert_eq!(
            writes.len(),
            1,
            "kept for a reconcile that read version 1 just before"
        );
        assert!(
            writes.is_stale(&at("1")),
            "that reconcile is still held back"
        );
        // is_stale set `waiting`: a waiting entry is never swept.
        assert!(writes.observed_at(&at("3"), t0 + SETTLE * 3), "woken");
        // Nobody waits any more; the next sweep after SETTLE drops it.
        let other = {
            let mut o = at("7");
            o.metadata.name = Some("other".into());
            o
        };
        assert!(!writes.observed_at(&at("3"), t0 + SETTLE * 3));
        assert!(!writes.observed_at(&other, t0 + SETTLE * 5));
        assert_eq!(writes.len(), 0);

        // A write after the cache caught up makes the entry pending again.
        writes.wrote(&at("10"), Some("10".into()));
        assert!(!writes.observed_at(&at("11"), t0 + SETTLE * 6));
        writes.wrote(&at("11"), Some("11".into()));
        assert!(!writes.observed_at(&other, t0 + SETTLE * 8));
        assert_eq!(writes.len(), 1, "the second write is not caught up yet");
        assert!(writes.is_stale(&at("11")));
    }
}
