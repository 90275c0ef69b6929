//! The reference index: which `GitlabDeployment`s follow which workload, and which use which
//! connection.
//!
//! A watch event on a Deployment (or any target kind), a connection, or a Secret a connection
//! reads must wake exactly the resources that depend on it, without listing every
//! `GitlabDeployment` (linkerd's policy-controller index is the model). The `GitlabDeployment`
//! watches (one per served namespace) apply their events to it under one lock, with references
//! resolved by [`super::references::references`]; the target watchers and the connection and
//! Secret handlers only look it up. A relist (`Init` … `InitDone`) rebuilds a namespace's part
//! from scratch, so an owner deleted while the watch was down does not linger.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::references::References;
use crate::api::deployment::{ConnectionKind, GitlabDeployment};
use crate::api::validate::ConnectionTarget;

/// The key this process files a `GitlabDeployment` under in its own maps (this index, the
/// webhook's id index, pending writes): name and namespace only. `ObjectRef::from_obj` also
/// copies the resourceVersion and uid, which no lookup compares; in a heap profile those
/// copies, one per map, were a tenth of the operator's memory per resource.
pub fn owner_key(obj: &GitlabDeployment) -> ObjectRef<GitlabDeployment> {
    let key = ObjectRef::new(&obj.name_any());
    match obj.namespace() {
        Some(ns) => key.within(&ns),
        None => key,
    }
}

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
    /// Nothing changed (the owner's references are the same).
    Unchanged,
    /// The owner was added or now refers elsewhere.
    Updated,
    /// As `Updated`, and this target kind had no owner before: a watcher for it is needed.
    NewKind(TargetKind),
}

/// A connection as one owner uses it: kind and name, then the owner's namespace (where a
/// `GitlabConnection` is looked up; a `ClusterGitlabConnection` serves many), so one cluster
/// connection's users are one contiguous range.
type ConnectionUse = (ConnectionKind, String, String);

fn connection_use(refs: &References) -> ConnectionUse {
    (
        refs.connection.kind,
        refs.connection.name.clone(),
        refs.namespace.clone(),
    )
}

/// Index from target and connection to owners, and owner to references. `O` is the owner's
/// key (an `ObjectRef<GitlabDeployment>` in the operator; anything hashable in tests).
#[derive(Debug)]
///
/// Each owner key is stored once and shared (`Arc`) by the maps that name it: three copies of
/// an `ObjectRef` (its inline fields and two strings) per resource were ~0.3 KiB of the
/// index's ~1 KiB per resource in a heap profile. Lookups take `&O` (an `Arc<O>` hashes and
/// compares as its `O`).
pub struct ReferenceIndex<O: Eq + Hash + Clone> {
    by_owner: HashMap<Arc<O>, References>,
    /// Owners per target: almost always one, so a `Vec` (one slot) rather than a `HashSet`
    /// (four buckets at least: ~400 bytes per target in a heap profile).
    by_target: BTreeMap<TargetKey, Vec<Arc<O>>>,
    by_connection: BTreeMap<ConnectionUse, HashSet<Arc<O>>>,
    kinds: BTreeMap<TargetKind, usize>,
    /// Per relisting watch (keyed by the namespace it covers, `None` = all), the owners seen
    /// since its `Init`.
    relists: HashMap<Option<String>, HashSet<Arc<O>>>,
}

impl<O: Eq + Hash + Clone> Default for ReferenceIndex<O> {
    fn default() -> Self {
        Self {
            by_owner: HashMap::new(),
            by_target: BTreeMap::new(),
            by_connection: BTreeMap::new(),
            kinds: BTreeMap::new(),
            relists: HashMap::new(),
        }
    }
}

impl<O: Eq + Hash + Clone> ReferenceIndex<O> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record what `owner` refers to (an added or modified owner).
    pub fn apply(&mut self, owner: O, refs: References) -> IndexChange {
        let owner = match self.by_owner.get_key_value(&owner) {
            Some((known, _)) => Arc::clone(known),
            None => Arc::new(owner),
        };
        for (scope, seen) in self.relists.iter_mut() {
            if scope.as_deref().is_none_or(|ns| ns == refs.namespace) {
                seen.insert(Arc::clone(&owner));
            }
        }
        if self.by_owner.get(&*owner) == Some(&refs) {
            return IndexChange::Unchanged;
        }
        // Known before this owner's old references go: an owner that only changes its
        // connection, or moves within a kind, does not make the kind new.
        let kind_known = refs
            .target
            .as_ref()
            .is_some_and(|t| self.kinds.contains_key(&t.kind));
        self.remove_owner(&owner);
        self.by_connection
            .entry(connection_use(&refs))
            .or_default()
            .insert(Arc::clone(&owner));
        let mut change = IndexChange::Updated;
        if let Some(target) = &refs.target {
            *self.kinds.entry(target.kind.clone()).or_insert(0) += 1;
            if !kind_known {
                change = IndexChange::NewKind(target.kind.clone());
            }
            // `push` onto an empty `Vec` would reserve four slots.
            let owners = self
                .by_target
                .entry(target.clone())
                .or_insert_with(|| Vec::with_capacity(1));
            if !owners.contains(&owner) {
                owners.push(Arc::clone(&owner));
            }
        }
        self.by_owner.insert(owner, refs);
        change
    }

    /// Forget `owner` (a deleted owner, or one without a namespace).
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
        remove_from(&mut self.by_connection, &connection_use(&old), owner);
        let Some(target) = old.target else {
            return;
        };
        if let Some(owners) = self.by_target.get_mut(&target) {
            owners.retain(|o| **o != *owner);
            if owners.is_empty() {
                self.by_target.remove(&target);
            }
        }
        if let Some(count) = self.kinds.get_mut(&target.kind) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.kinds.remove(&target.kind);
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
        let stale: Vec<Arc<O>> = self
            .by_owner
            .iter()
            .filter(|(owner, refs)| {
                scope.is_none_or(|ns| ns == refs.namespace) && !seen.contains(*owner)
            })
            .map(|(owner, _)| Arc::clone(owner))
            .collect();
        for owner in stale {
            self.remove_owner(&owner);
        }
    }

    /// The owners that follow `target` (in no particular order).
    pub fn owners_of(&self, target: &TargetKey) -> Vec<O> {
        self.by_target
            .get(target)
            .map(|owners| owners.iter().map(|o| O::clone(o)).collect())
            .unwrap_or_default()
    }

    /// Whether some owner follows `target`.
    pub fn is_followed(&self, target: &TargetKey) -> bool {
        self.by_target.contains_key(target)
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
            .flat_map(|(_, owners)| owners.iter().map(|o| O::clone(o)))
            .collect()
    }

    /// The owners that use `connection`: for a `GitlabConnection`, those in `namespace` (its
    /// own); for a `ClusterGitlabConnection`, those in every namespace.
    pub fn users_of(&self, connection: &ConnectionTarget, namespace: Option<&str>) -> Vec<O> {
        let kind = connection.kind;
        match kind {
            ConnectionKind::GitlabConnection => namespace
                .and_then(|ns| {
                    self.by_connection
                        .get(&(kind, connection.name.clone(), ns.to_owned()))
                })
                .map(|owners| owners.iter().map(|o| O::clone(o)).collect())
                .unwrap_or_default(),
            ConnectionKind::ClusterGitlabConnection => self
                .by_connection
                .range((kind, connection.name.clone(), String::new())..)
                .take_while(|((k, name, _), _)| *k == kind && *name == connection.name)
                .flat_map(|(_, owners)| owners.iter().map(|o| O::clone(o)))
                .collect(),
        }
    }

    /// What an owner refers to.
    pub fn references_of(&self, owner: &O) -> Option<&References> {
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

/// Take `owner` out of `key`'s set, dropping the set when it empties.
fn remove_from<K: Ord, O: Eq + Hash>(map: &mut BTreeMap<K, HashSet<Arc<O>>>, key: &K, owner: &O) {
    if let Some(owners) = map.get_mut(key) {
        owners.remove(owner);
        if owners.is_empty() {
            map.remove(key);
        }
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

    /// An owner in the target's namespace that follows it through the default connection.
    fn follows(target: TargetKey) -> References {
        References {
            namespace: target.namespace.clone(),
            connection: ConnectionTarget::default(),
            target: Some(target),
        }
    }

    fn uses(namespace: &str, kind: ConnectionKind, name: &str) -> References {
        References {
            namespace: namespace.into(),
            connection: ConnectionTarget {
                kind,
                name: name.into(),
            },
            target: Some(deploy(namespace, "web")),
        }
    }

    #[test]
    fn first_owner_of_a_kind_reports_new_kind_then_updates() {
        let mut idx = ReferenceIndex::new();
        assert_eq!(
            idx.apply("a", follows(deploy("ns", "web"))),
            IndexChange::NewKind(deploy("ns", "web").kind)
        );
        assert_eq!(
            idx.apply("b", follows(deploy("ns", "web"))),
            IndexChange::Updated
        );
        assert_eq!(
            idx.apply("b", follows(deploy("ns", "web"))),
            IndexChange::Unchanged
        );
        assert_eq!(sorted(idx.owners_of(&deploy("ns", "web"))), vec!["a", "b"]);
        assert_eq!(idx.len(), 2);
        let mut alone = ReferenceIndex::new();
        alone.apply("a", follows(deploy("ns", "web")));
        assert_eq!(
            alone.apply("a", follows(deploy("ns", "api"))),
            IndexChange::Updated,
            "its kind's watcher already runs"
        );
    }

    #[test]
    fn moving_an_owner_removes_it_from_the_old_target() {
        let mut idx = ReferenceIndex::new();
        idx.apply("a", follows(deploy("ns", "web")));
        assert_eq!(
            idx.apply("a", follows(sts("ns", "db"))),
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
        let mut idx = ReferenceIndex::new();
        idx.apply("a", follows(deploy("ns", "web")));
        idx.remove(&"a");
        assert!(idx.is_empty());
        assert_eq!(idx.kinds().count(), 0);
        assert_eq!(
            idx.apply("a", follows(deploy("ns", "web"))),
            IndexChange::NewKind(deploy("ns", "web").kind),
            "a kind that came back needs its watcher again"
        );
    }

    #[test]
    fn owners_of_kind_lists_only_that_kind() {
        let mut idx = ReferenceIndex::new();
        idx.apply("a", follows(deploy("ns", "web")));
        idx.apply("b", follows(sts("ns", "db")));
        idx.apply("c", follows(deploy("other", "api")));
        assert_eq!(
            sorted(idx.owners_of_kind(&deploy("x", "y").kind)),
            vec!["a", "c"]
        );
        assert_eq!(sorted(idx.owners_of_kind(&sts("x", "y").kind)), vec!["b"]);
    }

    #[test]
    fn same_name_in_another_namespace_is_another_target() {
        let mut idx = ReferenceIndex::new();
        idx.apply("a", follows(deploy("one", "web")));
        idx.apply("b", follows(deploy("two", "web")));
        assert_eq!(sorted(idx.owners_of(&deploy("one", "web"))), vec!["a"]);
        assert_eq!(sorted(idx.owners_of(&deploy("two", "web"))), vec!["b"]);
    }

    #[test]
    fn relist_drops_owners_it_did_not_see() {
        let mut idx = ReferenceIndex::new();
        idx.apply("a", follows(deploy("ns", "web")));
        idx.apply("gone", follows(deploy("ns", "web")));
        idx.relist_started(None);
        idx.apply("a", follows(deploy("ns", "web")));
        idx.relist_done(None);
        assert_eq!(sorted(idx.owners_of(&deploy("ns", "web"))), vec!["a"]);
        assert_eq!(idx.references_of(&"gone"), None);
    }

    #[test]
    fn a_namespace_relist_leaves_other_namespaces_alone() {
        let mut idx = ReferenceIndex::new();
        idx.apply("a", follows(deploy("one", "web")));
        idx.apply("b", follows(deploy("two", "web")));
        idx.relist_started(Some("one"));
        idx.relist_done(Some("one"));
        assert!(idx.owners_of(&deploy("one", "web")).is_empty());
        assert_eq!(idx.owners_of(&deploy("two", "web")), vec!["b"]);
    }

    #[test]
    fn delete_during_relist_is_not_resurrected() {
        let mut idx = ReferenceIndex::new();
        idx.relist_started(None);
        idx.apply("a", follows(deploy("ns", "web")));
        idx.remove(&"a");
        idx.relist_done(None);
        assert!(idx.is_empty());
    }

    /// A connection (or a Secret it reads) wakes only the resources that use it: a namespaced
    /// connection only its own namespace's, a cluster connection every namespace's.
    #[test]
    fn users_of_a_connection_are_only_its_users() {
        use ConnectionKind::{ClusterGitlabConnection as Cluster, GitlabConnection as Local};
        let mut idx = ReferenceIndex::new();
        idx.apply("a", uses("one", Local, "default"));
        idx.apply("b", uses("one", Local, "team"));
        idx.apply("c", uses("two", Local, "default"));
        idx.apply("d", uses("one", Cluster, "shared"));
        idx.apply("e", uses("two", Cluster, "shared"));
        idx.apply("f", uses("two", Cluster, "shared-2"));
        let conn = |kind, name: &str| ConnectionTarget {
            kind,
            name: name.into(),
        };
        // (connection, the namespace of the event, users)
        let cases: &[(ConnectionTarget, Option<&str>, Vec<&str>)] = &[
            (conn(Local, "default"), Some("one"), vec!["a"]),
            (conn(Local, "default"), Some("two"), vec!["c"]),
            (conn(Local, "team"), Some("one"), vec!["b"]),
            (conn(Local, "team"), Some("two"), vec![]),
            (conn(Local, "default"), None, vec![]),
            (conn(Local, "shared"), Some("one"), vec![]),
            (conn(Cluster, "shared"), None, vec!["d", "e"]),
            (conn(Cluster, "shared"), Some("one"), vec!["d", "e"]),
            (conn(Cluster, "shared-2"), None, vec!["f"]),
            (conn(Cluster, "default"), None, vec![]),
            (conn(Cluster, "share"), None, vec![]),
        ];
        for (connection, namespace, want) in cases {
            assert_eq!(
                sorted(idx.users_of(connection, *namespace)),
                *want,
                "{connection:?} from {namespace:?}"
            );
        }
    }

    #[test]
    fn switching_connection_moves_the_user() {
        use ConnectionKind::{ClusterGitlabConnection as Cluster, GitlabConnection as Local};
        let mut idx = ReferenceIndex::new();
        idx.apply("a", uses("ns", Local, "default"));
        assert_eq!(
            idx.apply("a", uses("ns", Cluster, "shared")),
            IndexChange::Updated,
            "same target, another connection"
        );
        let local = ConnectionTarget::default();
        let shared = ConnectionTarget {
            kind: Cluster,
            name: "shared".into(),
        };
        assert!(idx.users_of(&local, Some("ns")).is_empty());
        assert_eq!(idx.users_of(&shared, None), vec!["a"]);
        assert_eq!(idx.owners_of(&deploy("ns", "web")), vec!["a"]);
        idx.remove(&"a");
        assert!(idx.users_of(&shared, None).is_empty());
    }

    #[test]
    fn an_owner_without_a_target_still_uses_its_connection() {
        let mut idx = ReferenceIndex::new();
        let refs = References {
            target: None,
            ..uses("ns", ConnectionKind::GitlabConnection, "default")
        };
        assert_eq!(idx.apply("a", refs), IndexChange::Updated);
        assert_eq!(idx.kinds().count(), 0);
        assert_eq!(
            idx.users_of(&ConnectionTarget::default(), Some("ns")),
            vec!["a"]
        );
        // A relist of its namespace that does not see it drops it from the connection too.
        idx.relist_started(Some("ns"));
        idx.relist_done(Some("ns"));
        assert!(
            idx.users_of(&ConnectionTarget::default(), Some("ns"))
                .is_empty()
        );
        assert!(idx.is_empty());
    }
}
