//! The target → owner index: which `GitlabDeployment`s follow which workload.
//!
//! A watch event on a Deployment (or any target kind) must wake exactly the resources that name
//! it, without listing every `GitlabDeployment`. One task owns the index and applies the
//! `GitlabDeployment` watch events to it (linkerd's policy-controller index is the model); the
//! target watchers only look it up. A relist (`Init` … `InitDone`) rebuilds the index from
//! scratch, so an owner deleted while the watch was down does not linger.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;

/// The API kind of a target, as written in `spec.target` (`apps/v1`, `Deployment`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetKind {
    pub api_version: String,
    pub kind: String,
}

/// One target object: its kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetKey {
    pub kind: TargetKind,
    pub namespace: String,
    pub name: String,
}

/// What applying an owner changed, so the caller knows when to start a watcher for a new kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexChange {
    /// Nothing changed (the owner already pointed at this target).
    Unchanged,
    /// The owner was added or now points elsewhere.
    Updated,
    /// As `Updated`, and this kind had no owner before: a watcher for it is needed.
    NewKind(TargetKind),
}

/// Index from target to owners, and owner to target. `O` is the owner's key (an
/// `ObjectRef<GitlabDeployment>` in the operator; anything hashable in tests).
#[derive(Debug)]
pub struct TargetIndex<O: Eq + Hash + Clone> {
    by_target: BTreeMap<TargetKey, HashSet<O>>,
    by_owner: HashMap<O, TargetKey>,
    kinds: BTreeMap<TargetKind, usize>,
    /// Per relisting watch (keyed by the namespace it covers, `None` = all), the owners seen
    /// since its `Init`.
    relists: HashMap<Option<String>, HashSet<O>>,
}

impl<O: Eq + Hash + Clone> Default for TargetIndex<O> {
    fn default() -> Self {
        Self {
            by_target: BTreeMap::new(),
            by_owner: HashMap::new(),
            kinds: BTreeMap::new(),
            relists: HashMap::new(),
        }
    }
}

impl<O: Eq + Hash + Clone> TargetIndex<O> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record that `owner` follows `target` (an added or modified owner).
    pub fn apply(&mut self, owner: O, target: TargetKey) -> IndexChange {
        for (scope, seen) in self.relists.iter_mut() {
            if scope.as_deref().is_none_or(|ns| ns == target.namespace) {
                seen.insert(owner.clone());
            }
        }
        if self.by_owner.get(&owner) == Some(&target) {
            return IndexChange::Unchanged;
        }
        self.remove_owner(&owner);
        let kind = target.kind.clone();
        let count = self.kinds.entry(kind.clone()).or_insert(0);
        *count += 1;
        let new_kind = *count == 1;
        self.by_target
            .entry(target.clone())
            .or_default()
            .insert(owner.clone());
        self.by_owner.insert(owner, target);
        if new_kind {
            IndexChange::NewKind(kind)
        } else {
            IndexChange::Updated
        }
    }

    /// Forget `owner` (a deleted owner, or one whose spec no longer names a valid target).
    pub fn remove(&mut self, owner: &O) {
        for seen in self.relists.values_mut() {
            seen.remove(owner);
        }
        self.remove_owner(owner);
    }

    fn remove_owner(&mut self, owner: &O) {
        let Some(old) = self.by_owner.remove(owner) else {
            return;
        };
        if let Some(owners) = self.by_target.get_mut(&old) {
            owners.remove(owner);
            if owners.is_empty() {
                self.by_target.remove(&old);
            }
        }
        if let Some(count) = self.kinds.get_mut(&old.kind) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.kinds.remove(&old.kind);
            }
        }
    }

    /// A relist of the owners in `scope` (a namespace, or `None` for all) started: those not
    /// re-applied before [`Self::relist_done`] are dropped. Watches of different namespaces
    /// relist independently.
    pub fn relist_started(&mut self, scope: Option<&str>) {
        self.relists
            .insert(scope.map(str::to_owned), HashSet::new());
    }

    /// The relist of `scope` finished: drop every owner in it that the relist did not mention.
    /// (Kinds that became new during the relist were already reported by `apply`; this only
    /// removes.)
    pub fn relist_done(&mut self, scope: Option<&str>) {
        let Some(seen) = self.relists.remove(&scope.map(str::to_owned)) else {
            return;
        };
        let stale: Vec<O> = self
            .by_owner
            .iter()
            .filter(|(owner, target)| {
                scope.is_none_or(|ns| ns == target.namespace) && !seen.contains(*owner)
            })
            .map(|(owner, _)| owner.clone())
            .collect();
        for owner in stale {
            self.remove_owner(&owner);
        }
    }

    /// The owners that follow `target` (in no particular order).
    pub fn owners_of(&self, target: &TargetKey) -> Vec<O> {
        self.by_target
            .get(target)
            .map(|owners| owners.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every owner that follows some object of `kind` (in no particular order).
    pub fn owners_of_kind(&self, kind: &TargetKind) -> Vec<O> {
        // Keys sort by kind first, so one kind's targets are a contiguous range.
        let start = TargetKey {
            kind: kind.clone(),
            namespace: String::new(),
            name: String::new(),
        };
        self.by_target
            .range(start..)
            .take_while(|(target, _)| &target.kind == kind)
            .flat_map(|(_, owners)| owners.iter().cloned())
            .collect()
    }

    /// The target an owner follows.
    pub fn target_of(&self, owner: &O) -> Option<&TargetKey> {
        self.by_owner.get(owner)
    }

    /// Every kind that at least one owner follows.
    pub fn kinds(&self) -> impl Iterator<Item = &TargetKind> {
        self.kinds.keys()
    }

    /// How many owners are indexed.
    pub fn len(&self) -> usize {
        self.by_owner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_owner.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn sorted<O: Ord>(mut v: Vec<O>) -> Vec<O> {
        v.sort();
        v
    }

    fn deploy(ns: &str, name: &str) -> TargetKey {
        TargetKey {
            kind: TargetKind {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
            },
            namespace: ns.into(),
            name: name.into(),
        }
    }

    fn sts(ns: &str, name: &str) -> TargetKey {
        TargetKey {
            kind: TargetKind {
                api_version: "apps/v1".into(),
                kind: "StatefulSet".into(),
            },
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn first_owner_of_a_kind_reports_new_kind_then_updates() {
        let mut idx = TargetIndex::new();
        assert_eq!(
            idx.apply("a", deploy("ns", "web")),
            IndexChange::NewKind(deploy("ns", "web").kind)
        );
        assert_eq!(idx.apply("b", deploy("ns", "web")), IndexChange::Updated);
        assert_eq!(idx.apply("b", deploy("ns", "web")), IndexChange::Unchanged);
        assert_eq!(sorted(idx.owners_of(&deploy("ns", "web"))), vec!["a", "b"]);
        assert_eq!(idx.len(), 2);
    }

    #[test]
    fn moving_an_owner_removes_it_from_the_old_target() {
        let mut idx = TargetIndex::new();
        idx.apply("a", deploy("ns", "web"));
        assert_eq!(
            idx.apply("a", sts("ns", "db")),
            IndexChange::NewKind(sts("ns", "db").kind)
        );
        assert!(idx.owners_of(&deploy("ns", "web")).is_empty());
        assert_eq!(sorted(idx.owners_of(&sts("ns", "db"))), vec!["a"]);
        assert_eq!(
            idx.kinds().count(),
            1,
            "the Deployment kind has no owner left"
        );
    }

    #[test]
    fn removing_the_last_owner_forgets_the_kind() {
        let mut idx = TargetIndex::new();
        idx.apply("a", deploy("ns", "web"));
        idx.remove(&"a");
        assert!(idx.is_empty());
        assert_eq!(idx.kinds().count(), 0);
        assert_eq!(
            idx.apply("a", deploy("ns", "web")),
            IndexChange::NewKind(deploy("ns", "web").kind),
            "a kind that came back needs its watcher again"
        );
    }

    #[test]
    fn owners_of_kind_lists_only_that_kind() {
        let mut idx = TargetIndex::new();
        idx.apply("a", deploy("ns", "web"));
        idx.apply("b", sts("ns", "db"));
        idx.apply("c", deploy("other", "api"));
        assert_eq!(
            sorted(idx.owners_of_kind(&deploy("x", "y").kind)),
            vec!["a", "c"]
        );
        assert_eq!(sorted(idx.owners_of_kind(&sts("x", "y").kind)), vec!["b"]);
    }

    #[test]
    fn same_name_in_another_namespace_is_another_target() {
        let mut idx = TargetIndex::new();
        idx.apply("a", deploy("one", "web"));
        idx.apply("b", deploy("two", "web"));
        assert_eq!(sorted(idx.owners_of(&deploy("one", "web"))), vec!["a"]);
        assert_eq!(sorted(idx.owners_of(&deploy("two", "web"))), vec!["b"]);
    }

    #[test]
    fn relist_drops_owners_it_did_not_see() {
        let mut idx = TargetIndex::new();
        idx.apply("a", deploy("ns", "web"));
        idx.apply("gone", deploy("ns", "web"));
        idx.relist_started(None);
        idx.apply("a", deploy("ns", "web"));
        idx.relist_done(None);
        assert_eq!(sorted(idx.owners_of(&deploy("ns", "web"))), vec!["a"]);
        assert_eq!(idx.target_of(&"gone"), None);
    }

    #[test]
    fn a_namespace_relist_leaves_other_namespaces_alone() {
        let mut idx = TargetIndex::new();
        idx.apply("a", deploy("one", "web"));
        idx.apply("b", deploy("two", "web"));
        idx.relist_started(Some("one"));
        idx.relist_done(Some("one"));
        assert!(idx.owners_of(&deploy("one", "web")).is_empty());
        assert_eq!(idx.owners_of(&deploy("two", "web")), vec!["b"]);
    }

    #[test]
    fn delete_during_relist_is_not_resurrected() {
        let mut idx = TargetIndex::new();
        idx.relist_started(None);
        idx.apply("a", deploy("ns", "web"));
        idx.remove(&"a");
        idx.relist_done(None);
        assert!(idx.is_empty());
    }
}
