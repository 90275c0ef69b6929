//! Deployment id → the GitlabDeployment that owns it, fed by the GitlabDeployment watch (the
//! id recorded in `status.deployment.id`), so a hook finds its resource without a scan.
//! Deployment ids are per GitLab instance; each entry also keeps the resource's connection,
//! and a hook only wakes owners of the connections its token belongs to.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use super::hints::HookSource;
use crate::api::deployment::DeploymentId;

/// The index; `O` is the owner's key (`ObjectRef<GitlabDeployment>` in the operator).
#[derive(Debug)]
pub struct DeploymentIds<O: Eq + Hash + Clone> {
    by_id: HashMap<DeploymentId, HashSet<O>>,
    by_owner: HashMap<O, (DeploymentId, HookSource)>,
}

impl<O: Eq + Hash + Clone> Default for DeploymentIds<O> {
    fn default() -> Self {
        Self {
            by_id: HashMap::new(),
            by_owner: HashMap::new(),
        }
    }
}

impl<O: Eq + Hash + Clone> DeploymentIds<O> {
    /// Record what `owner` holds now: a deployment id of a connection, or nothing.
    pub fn apply(&mut self, owner: O, held: Option<(DeploymentId, HookSource)>) {
        if self.by_owner.get(&owner) == held.as_ref() {
            return;
        }
        self.remove(&owner);
        if let Some((id, source)) = held {
            self.by_id.entry(id).or_default().insert(owner.clone());
            self.by_owner.insert(owner, (id, source));
        }
    }

    /// Forget a deleted owner.
    pub fn remove(&mut self, owner: &O) {
        let Some((id, _)) = self.by_owner.remove(owner) else {
            return;
        };
        if let Some(owners) = self.by_id.get_mut(&id) {
            owners.remove(owner);
            if owners.is_empty() {
                self.by_id.remove(&id);
            }
        }
    }

    /// Keep only the owners `keep` accepts (after a relist, the ones still cached).
    pub fn retain(&mut self, keep: impl Fn(&O) -> bool) {
        let gone: Vec<O> = self.by_owner.keys().filter(|o| !keep(o)).cloned().collect();
        for owner in gone {
            self.remove(&owner);
        }
    }

    /// Owners of deployment `id` that use one of `sources`.
    pub fn owners(&self, id: DeploymentId, sources: &[HookSource]) -> Vec<O> {
        self.by_id
            .get(&id)
            .into_iter()
            .flatten()
            .filter(|o| {
                self.by_owner
                    .get(*o)
                    .is_some_and(|(_, source)| sources.contains(source))
            })
            .cloned()
            .collect()
    }

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

    fn ns(name: &str) -> HookSource {
        HookSource::Namespaced {
            namespace: "apps".into(),
            name: name.into(),
        }
    }

    fn d(n: i64) -> DeploymentId {
        DeploymentId::new(n).unwrap()
    }

    #[test]
    fn owners_by_id_and_connection() {
        let mut ids = DeploymentIds::default();
        ids.apply("a", Some((d(7), ns("one"))));
        ids.apply("b", Some((d(7), ns("two"))));
        ids.apply("c", Some((d(8), ns("one"))));
        assert_eq!(ids.owners(d(7), &[ns("one")]), vec!["a"]);
        assert_eq!(ids.owners(d(7), &[ns("two")]), vec!["b"]);
        assert!(ids.owners(d(9), &[ns("one")]).is_empty());
        // A new deployment for `a` moves it.
        ids.apply("a", Some((d(10), ns("one"))));
        assert!(ids.owners(d(7), &[ns("one")]).is_empty());
        assert_eq!(ids.owners(d(10), &[ns("one")]), vec!["a"]);
        ids.apply("a", None);
        ids.remove(&"b");
        ids.retain(|o| *o != "c");
        assert!(ids.is_empty());
    }
}
