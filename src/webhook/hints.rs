//! What the reconciler learns from hooks: which resources a hook woke (they re-read GitLab
//! once), which connections send approval events, and which deployments GitLab's hooks have
//! been seen to reach us for. Only a deployment of both kinds has its approval polling slowed
//! to a safety net.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use kube::runtime::reflector::ObjectRef;
use parking_lot::Mutex;

use crate::api::deployment::{ConnectionKind, DeploymentId, GitlabDeployment};
use crate::api::validate::ConnectionTarget;
use crate::controller::plan::ApprovalPoll;

/// The safety net's first read after an approval became pending; it doubles with the time
/// pending up to [`SAFETY_NET_MAX`], as polling does between 10 s and 5 minutes. A lost
/// approval hook is noticed within the larger of this and the time the approval had been
/// pending, and never later than [`SAFETY_NET_MAX`].
pub const SAFETY_NET: Duration = Duration::from_secs(30 * 60);
/// The safety net's longest interval.
pub const SAFETY_NET_MAX: Duration = Duration::from_secs(3600);
/// A connection counts as sending approval events this long after the last one (a GitLab
/// that sends them keeps doing so; whether hooks *reach* us is told per deployment, see
/// [`HookHints::confirm`]).
pub const HEARD_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long after a write GitLab answers with a hook (a create as `running`, a status
/// change) the connection may stay silent before its hooks count as broken. GitLab delivers
/// within seconds; a Sidekiq backlog longer than this only costs reads.
pub const ECHO_WAIT: Duration = Duration::from_secs(120);
/// Confirmed deployments remembered at most; past it the old ones are dropped first and, if
/// a flood (which needs a valid token) fills it anyway, all of them: they are polled as without
/// hooks, which costs reads and delays nothing.
pub const CONFIRMED_MAX: usize = 65_536;

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

/// A connection's hooks as answers to the operator's writes.
#[derive(Debug, Default)]
struct Echoes {
    last_hook: Option<Instant>,
    unanswered_since: Option<Instant>,
}

/// Shared by the receiver (writes) and the reconciler (reads).
#[derive(Debug)]
pub struct HookHints {
    woken: Mutex<HashSet<ObjectRef<GitlabDeployment>>>,
    heard: Mutex<HashMap<HookSource, Instant>>,
    confirmed: Mutex<HashMap<(HookSource, DeploymentId), Instant>>,
    /// Per connection, when its last hook arrived and the first write since then that GitLab
    /// should have answered with one (see [`HookHints::expect_echo`]).
    echoes: Mutex<HashMap<HookSource, Echoes>>,
    echo_wait: Duration,
    safety_net: ApprovalPoll,
}

impl Default for HookHints {
    fn default() -> Self {
        Self::new(ApprovalPoll::safety_net(SAFETY_NET, SAFETY_NET_MAX))
    }
}

impl HookHints {
    pub fn new(safety_net: ApprovalPoll) -> Self {
        Self {
            woken: Mutex::new(HashSet::new()),
            heard: Mutex::new(HashMap::new()),
            confirmed: Mutex::new(HashMap::new()),
            echoes: Mutex::new(HashMap::new()),
            echo_wait: ECHO_WAIT,
            safety_net,
        }
    }

    /// As [`HookHints::new`], with another [`ECHO_WAIT`] (`--webhook-echo-wait`).
    pub fn with_echo_wait(mut self, echo_wait: Duration) -> Self {
        self.echo_wait = echo_wait;
        self
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

    /// The operator made a write through `source` that GitLab answers with a hook (a create as
    /// `running`, a status change), sending it at `sent`. If no hook at all arrives from
    /// `source` within the echo wait, its hooks count as broken: every approval of that
    /// connection is polled as without hooks again, confirmed or not, until a hook arrives. (A
    /// hook that arrived after `sent` answers it: GitLab's hook often outruns its own answer.)
    pub fn expect_echo(&self, source: &HookSource, sent: Instant) {
        let mut echoes = self.echoes.lock();
        let echo = echoes.entry(source.clone()).or_default();
        if echo.last_hook.is_some_and(|at| at >= sent) {
            return;
        }
        echo.unanswered_since.get_or_insert(sent);
    }

    /// An authenticated hook from `source` arrived: it answers every write made before it.
    pub fn heard_hook(&self, source: &HookSource) {
        self.echoes.lock().insert(
            source.clone(),
            Echoes {
                last_hook: Some(Instant::now()),
                unanswered_since: None,
            },
        );
    }

    /// How often a resource on the safety net re-plans (no GitLab call, no write when
    /// nothing changed): a connection gone silent puts it back on polling's pace this late.
    pub fn recheck_every(&self) -> Duration {
        self.echo_wait.max(Duration::from_secs(1))
    }

    fn silent(&self, source: &HookSource) -> bool {
        self.echoes
            .lock()
            .get(source)
            .and_then(|e| e.unanswered_since)
            .is_some_and(|since| since.elapsed() >= self.echo_wait)
    }

    /// An authenticated hook from `source` named deployment `id` (usually GitLab's `running`
    /// hook for the create the operator made): this project's hook reaches us with the
    /// connection's token, so an approval event for `id` will too unless that one delivery is
    /// lost. Recorded whether or not a resource holds `id` yet (the hook of a create often
    /// outruns the status write that records the id).
    pub fn confirm(&self, source: &HookSource, id: DeploymentId) {
        let mut confirmed = self.confirmed.lock();
        if confirmed.len() >= CONFIRMED_MAX {
            confirmed.retain(|_, at| at.elapsed() < HEARD_FOR);
            if confirmed.len() >= CONFIRMED_MAX {
                tracing::warn!(
                    max = CONFIRMED_MAX,
                    "too many deployments confirmed by hooks; forgetting them (their approvals are polled as without hooks)"
                );
                confirmed.clear();
            }
        }
        confirmed.insert((source.clone(), id), Instant::now());
    }

    /// How to poll the pending approval of deployment `id` of `source`: the safety net when
    /// the connection sends approval events, a hook for this very deployment arrived, and the
    /// connection's hooks have not gone silent since; otherwise `None` (poll as without hooks).
    /// A project without a hook, a hook that stopped reaching us, or an operator that
    /// restarted since, confirms nothing, so polling keeps today's pace for it.
    pub fn poll_for(&self, source: &HookSource, id: DeploymentId) -> Option<ApprovalPoll> {
        let sends_approvals = self
            .heard
            .lock()
            .get(source)
            .is_some_and(|at| at.elapsed() < HEARD_FOR);
        let confirmed = self
            .confirmed
            .lock()
            .get(&(source.clone(), id))
            .is_some_and(|at| at.elapsed() < HEARD_FOR);
        (sends_approvals && confirmed && !self.silent(source)).then_some(self.safety_net)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn d(n: i64) -> DeploymentId {
        DeploymentId::new(n).unwrap()
    }

    #[test]
    fn a_wake_is_taken_once() {
        let hints = HookHints::default();
        let key = ObjectRef::<GitlabDeployment>::new("web").within("apps");
        assert!(!hints.take(&key));
        hints.wake(key.clone());
        assert!(hints.take(&key));
        assert!(!hints.take(&key), "a wake is consumed by one reconcile");
    }

    #[test]
    fn only_confirmed_deployments_of_connections_that_send_approvals_are_slowed() {
        let net = ApprovalPoll::safety_net(Duration::from_secs(60), Duration::from_secs(120));
        let hints = HookHints::new(net);
        let a = HookSource::Namespaced {
            namespace: "apps".into(),
            name: "default".into(),
        };
        let b = HookSource::Cluster {
            name: "default".into(),
        };
        type Step<'a> = &'a dyn Fn(&HookHints);
        let cases: [(&str, Step, HookSource, i64, Option<ApprovalPoll>); 5] = [
            ("nothing heard", &|_| {}, a.clone(), 7, None),
            (
                "a hook for the deployment, no approval events",
                &|h| h.confirm(&a, d(7)),
                a.clone(),
                7,
                None,
            ),
            (
                "approval events, and this deployment's hook",
                &|h| h.heard_from(&a),
                a.clone(),
                7,
                Some(net),
            ),
            (
                "approval events, another deployment's hook only",
                &|_| {},
                a.clone(),
                8,
                None,
            ),
            (
                "the same id on another connection",
                &|_| {},
                b.clone(),
                7,
                None,
            ),
        ];
        for (name, step, source, id, want) in cases {
            step(&hints);
            assert_eq!(hints.poll_for(&source, d(id)), want, "{name}");
        }
    }

    #[test]
    fn a_connection_that_stops_answering_writes_with_hooks_is_polled_as_without_hooks() {
        let net = ApprovalPoll::safety_net(Duration::from_secs(60), Duration::from_secs(120));
        let source = HookSource::Cluster {
            name: "main".into(),
        };
        let other = HookSource::Cluster {
            name: "other".into(),
        };
        let hints = HookHints::new(net).with_echo_wait(Duration::ZERO);
        for s in [&source, &other] {
            hints.heard_from(s);
            hints.confirm(s, d(7));
        }
        assert_eq!(hints.poll_for(&source, d(7)), Some(net));
        // A write GitLab should answer with a hook; none comes within the wait (zero here).
        let sent = Instant::now();
        hints.expect_echo(&source, sent);
        assert_eq!(hints.poll_for(&source, d(7)), None, "silent: polled again");
        assert_eq!(
            hints.poll_for(&other, d(7)),
            Some(net),
            "only that connection"
        );
        // Any hook from it answers the write.
        hints.heard_hook(&source);
        assert_eq!(hints.poll_for(&source, d(7)), Some(net));
        // A hook that outran the answer to the write it echoes answers it too.
        hints.expect_echo(&source, sent);
        assert_eq!(hints.poll_for(&source, d(7)), Some(net), "answered before");

        let patient = HookHints::new(net);
        patient.heard_from(&source);
        patient.confirm(&source, d(7));
        patient.expect_echo(&source, Instant::now());
        assert_eq!(
            patient.poll_for(&source, d(7)),
            Some(net),
            "within the echo wait the hook may still come"
        );
    }
}
