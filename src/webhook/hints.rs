//! What the reconciler learns from hooks: which resources a hook woke (they re-read GitLab
//! once), and which connections send hooks (their approval polling slows to a safety net).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use kube::runtime::reflector::ObjectRef;
use parking_lot::Mutex;

use crate::api::deployment::{ConnectionKind, GitlabDeployment};
use crate::api::validate::ConnectionTarget;

/// Approval polling while a connection's approval hooks arrive: a lost hook is noticed this
/// late.
pub const SAFETY_NET: Duration = Duration::from_secs(600);
/// A connection counts as sending approval events this long after the last one (a week: a
/// hook removed from GitLab brings normal polling back within it; lost single hooks are
/// caught by the safety net).
pub const HEARD_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// A connection as a webhook token names it: a namespaced `GitlabConnection` or a
/// `ClusterGitlabConnection`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookSource {
    Namespaced { namespace: String, name: String },
    Cluster { name: String },
}

impl HookSource {
    /// The connection a resource in `namespace` uses.
    pub fn of(connection: &ConnectionTarget, namespace: &str) -> HookSource {
        match connection.kind {
            ConnectionKind::GitlabConnection => HookSource::Namespaced {
                namespace: namespace.to_owned(),
                name: connection.name.clone(),
            },
            ConnectionKind::ClusterGitlabConnection => HookSource::Cluster {
                name: connection.name.clone(),
            },
        }
    }
}

/// Shared by the receiver (writes) and the reconciler (reads).
#[derive(Debug)]
pub struct HookHints {
    woken: Mutex<HashSet<ObjectRef<GitlabDeployment>>>,
    heard: Mutex<HashMap<HookSource, Instant>>,
    safety_net: Duration,
}

impl Default for HookHints {
    fn default() -> Self {
        Self::new(SAFETY_NET)
    }
}

impl HookHints {
    pub fn new(safety_net: Duration) -> Self {
        Self {
            woken: Mutex::new(HashSet::new()),
            heard: Mutex::new(HashMap::new()),
            safety_net,
        }
    }

    /// A hook named this resource's deployment: its next reconcile re-reads it.
    pub fn wake(&self, key: ObjectRef<GitlabDeployment>) {
        self.woken.lock().insert(key);
    }

    /// Whether a hook woke this resource since its last reconcile (forgetting it).
    pub fn take(&self, key: &ObjectRef<GitlabDeployment>) -> bool {
        self.woken.lock().remove(key)
    }

    /// An authenticated approval event from `source` arrived.
    pub fn heard_from(&self, source: &HookSource) {
        self.heard.lock().insert(source.clone(), Instant::now());
    }

    /// The approval safety-net interval when `source` sends approval events, else `None`
    /// (poll as usual).
    pub fn safety_net_for(&self, source: &HookSource) -> Option<Duration> {
        let heard = self.heard.lock();
        heard
            .get(source)
            .filter(|at| at.elapsed() < HEARD_FOR)
            .map(|_| self.safety_net)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_is_taken_once_and_hooks_slow_only_their_connection() {
        let hints = HookHints::new(Duration::from_secs(60));
        let key = ObjectRef::<GitlabDeployment>::new("web").within("apps");
        assert!(!hints.take(&key));
        hints.wake(key.clone());
        assert!(hints.take(&key));
        assert!(!hints.take(&key), "a wake is consumed by one reconcile");

        let a = HookSource::Namespaced {
            namespace: "apps".into(),
            name: "default".into(),
        };
        let b = HookSource::Cluster {
            name: "default".into(),
        };
        hints.heard_from(&a);
        assert_eq!(hints.safety_net_for(&a), Some(Duration::from_secs(60)));
        assert_eq!(hints.safety_net_for(&b), None);
    }
}
