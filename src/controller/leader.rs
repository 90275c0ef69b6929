//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas only one
//! writes to GitLab and to status.
//!
//! A small loop of our own rather than `kube-lease-manager` 0.13: that crate lets a follower
//! sleep until the holder's lease expires, so a leader that releases the lease on SIGTERM is
//! still only replaced after the full lease duration; we poll every `retry_period` and take a
//! released lease at once. The rules follow client-go's leader election: a lease is expired
//! when its record has not changed for `lease_duration` *as observed locally* (no trust in other
//! nodes' clocks); the holder renews every `retry_period` and gives up leadership when it could
//! not renew within `renew_deadline`; every write carries the resourceVersion read, so two
//! candidates cannot both win; the claim is published on a `watch` channel (kubert's
//! `lease.rs` is the model).

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::names::WEBHOOK_RECEIVER_ANNOTATION;
use crate::webhook::HookRoute;

/// Lease timings (client-go's defaults: 15 s, 10 s, 2 s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// What the candidate should do with the lease it just read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// We hold it: write a fresh renewTime.
    Renew,
    /// Free, released or expired: take it (leaseTransitions + 1).
    Acquire,
    /// Someone else holds a live lease.
    Follow,
}

/// Decide from the lease record, how long ago (locally) we saw it change, and who we are.
pub fn decide(spec: Option<&LeaseSpec>, unchanged_for: Duration, me: &str) -> Step {
    let Some(spec) = spec else {
        return Step::Acquire;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == me {
        return Step::Renew;
    }
    if holder.is_empty() {
        return Step::Acquire;
    }
    let duration =
        Duration::from_secs(u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0));
    if unchanged_for >= duration {
        Step::Acquire
    } else {
        Step::Follow
    }
}

/// The fields that change on every renewal; a change means the holder is alive.
fn record_key(spec: Option<&LeaseSpec>) -> Option<(Option<String>, Option<String>, Option<i32>)> {
    spec.map(|s| {
        (
            s.holder_identity.clone(),
            s.renew_time.as_ref().map(|t| t.0.to_string()),
            s.lease_transitions,
        )
    })
}

/// A running election: `is_leader` follows the claim; `release` gives it up for a successor.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    leader_tx: watch::Sender<bool>,
    /// Where this replica's webhook receiver listens, written on the lease while it leads.
    advertise: Option<SocketAddr>,
    /// Where the current leader's receiver listens, as the lease says (`None` while this
    /// replica leads, or when no live leader advertises one).
    receiver_tx: watch::Sender<Option<SocketAddr>>,
}

/// The leader's webhook receiver as `lease` names it, if another replica holds it.
fn advertised_receiver(lease: Option<&Lease>, me: &str) -> Option<SocketAddr> {
    let lease = lease?;
    let holder = lease.spec.as_ref()?.holder_identity.as_deref()?;
    if holder.is_empty() || holder == me {
        return None;
    }
    lease
        .metadata
        .annotations
        .as_ref()?
        .get(WEBHOOK_RECEIVER_ANNOTATION)?
        .parse()
        .ok()
}

impl Elector {
    pub fn new(client: Client, config: LeaseConfig) -> (Self, watch::Receiver<bool>) {
        let (leader_tx, leader_rx) = watch::channel(false);
        (
            Self {
                api: Api::namespaced(client, &config.namespace),
                config,
                leader_tx,
                advertise: None,
                receiver_tx: watch::Sender::new(None),
            },
            leader_rx,
        )
    }

    /// Publish `receiver` on the lease while leading (see [`Elector::leader_receiver`]).
    pub fn advertising(mut self, receiver: Option<SocketAddr>) -> Self {
        self.advertise = receiver;
        self
    }

    /// Follows where the leader's webhook receiver listens.
    pub fn leader_receiver(&self) -> watch::Receiver<Option<SocketAddr>> {
        self.receiver_tx.subscribe()
    }

    /// Write (or clear) this replica's receiver address on a lease it is about to hold.
    fn annotate(&self, lease: &mut Lease) {
        match self.advertise {
            Some(addr) => {
                lease
                    .metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(WEBHOOK_RECEIVER_ANNOTATION.to_owned(), addr.to_string());
            }
            None => {
                if let Some(annotations) = lease.metadata.annotations.as_mut() {
                    annotations.remove(WEBHOOK_RECEIVER_ANNOTATION);
                }
            }
        }
    }

    fn spec(&self, transitions: i32, acquire_time: Option<MicroTime>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: i32::try_from(self.config.lease_duration.as_secs()).ok(),
            acquire_time: acquire_time.or_else(|| Some(now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One read-decide-write round. Returns whether we hold the lease afterwards.
    async fn round(
        &self,
        observed: &mut (Option<LeaseRecordKey>, Instant),
    ) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.config.name).await?;
        let receiver = advertised_receiver(current.as_ref(), &self.config.identity);
        self.receiver_tx.send_if_modified(|known| {
            let changed = *known != receiver;
            *known = receiver;
            changed
        });
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let key = record_key(spec);
        if observed.0 != key {
            *observed = (key, Instant::now());
        }
        match decide(spec, observed.1.elapsed(), &self.config.identity) {
            Step::Follow => Ok(false),
            Step::Renew => {
                let Some(mut lease) = current else {
                    return Ok(false);
                };
                let old = lease.spec.clone().unwrap_or_default();
                lease.spec = Some(self.spec(old.lease_transitions.unwrap_or(0), old.acquire_time));
                self.annotate(&mut lease);
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await?;
                Ok(true)
            }
            Step::Acquire => match current {
                None => {
                    let mut lease = Lease {
                        metadata: ObjectMeta {
                            name: Some(self.config.name.clone()),
                            namespace: Some(self.config.namespace.clone()),
                            ..ObjectMeta::default()
                        },
                        spec: Some(self.spec(0, None)),
                    };
                    self.annotate(&mut lease);
                    self.api.create(&PostParams::default(), &lease).await?;
                    Ok(true)
                }
                Some(mut lease) => {
                    let transitions = lease
                        .spec
                        .as_ref()
                        .and_then(|s| s.lease_transitions)
                        .unwrap_or(0);
                    lease.spec = Some(self.spec(transitions + 1, None));
                    self.annotate(&mut lease);
                    // The resourceVersion we read is the precondition: of two candidates
                    // taking the same expired lease, one gets a 409.
                    self.api
                        .replace(&self.config.name, &PostParams::default(), &lease)
                        .await?;
                    tracing::info!(lease = %lease.name_any(), identity = %self.config.identity, "acquired the leader lease");
                    Ok(true)
                }
            },
        }
    }

    /// Campaign until `stop` is cancelled; publishes leadership on the channel. When leadership
    /// cannot be renewed within `renew_deadline`, `false` is published: the caller must stop
    /// acting at once.
    pub async fn run(self, stop: CancellationToken) {
        let mut observed: (Option<LeaseRecordKey>, Instant) = (None, Instant::now());
        let mut last_renewal: Option<Instant> = None;
        loop {
            let leading = match self.round(&mut observed).await {
                Ok(true) => {
                    last_renewal = Some(Instant::now());
                    true
                }
                Ok(false) => false,
                Err(err) => {
                    tracing::warn!(error = %err, "leader lease round failed");
                    // Keep leading only while the last successful renewal is recent enough.
                    last_renewal.is_some_and(|t| t.elapsed() < self.config.renew_deadline)
                }
            };
            if !leading {
                last_renewal = None;
            }
            self.leader_tx.send_if_modified(|current| {
                let changed = *current != leading;
                *current = leading;
                changed
            });
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(self.config.retry_period) => {}
            }
        }
        if *self.leader_tx.borrow() {
            self.release().await;
        }
        self.leader_tx.send_replace(false);
    }

    /// Give the lease up so a successor takes it on its next round, not after expiry.
    async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        if let Some(annotations) = lease.metadata.annotations.as_mut() {
            annotations.remove(WEBHOOK_RECEIVER_ANNOTATION);
        }
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(identity = %self.config.identity, "released the leader lease"),
            Err(err) => {
                tracing::warn!(error = %err, "could not release the leader lease; it expires on its own")
            }
        }
    }
}

/// A task that is aborted when its handle is dropped.
struct AbortOnDrop<T>(Option<tokio::task::JoinHandle<T>>);

impl<T> AbortOnDrop<T> {
    /// Wait for the task to finish on its own (it was told to stop).
    async fn join(&mut self) {
        if let Some(handle) = self.0.take() {
            let _ = handle.await;
        }
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
        }
    }
}

type LeaseRecordKey = (Option<String>, Option<String>, Option<i32>);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn held_by(holder: Option<&str>, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(seconds),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_standby_finds_the_leaders_receiver_on_the_lease() {
        let lease = |holder: Option<&str>, receiver: Option<&str>| Lease {
            metadata: ObjectMeta {
                annotations: receiver.map(|r| {
                    [(WEBHOOK_RECEIVER_ANNOTATION.to_owned(), r.to_owned())]
                        .into_iter()
                        .collect()
                }),
                ..ObjectMeta::default()
            },
            spec: Some(held_by(holder, 15)),
        };
        let cases = [
            (
                "another replica leads",
                Some("other"),
                Some("10.0.0.7:8443"),
                Some("10.0.0.7:8443"),
            ),
            (
                "IPv6",
                Some("other"),
                Some("[fd00::7]:8443"),
                Some("[fd00::7]:8443"),
            ),
            ("we lead", Some("me"), Some("10.0.0.7:8443"), None),
            ("released", None, Some("10.0.0.7:8443"), None),
            ("no receiver advertised", Some("other"), None, None),
            ("not an address", Some("other"), Some("leader:8443"), None),
        ];
        for (name, holder, receiver, want) in cases {
            let want: Option<SocketAddr> = want.map(|w| w.parse().unwrap());
            assert_eq!(
                advertised_receiver(Some(&lease(holder, receiver)), "me"),
                want,
                "{name}"
            );
        }
        assert_eq!(advertised_receiver(None, "me"), None, "no lease yet");
    }

    #[test]
    fn decide_follows_client_go_rules() {
        let s = Duration::from_secs;
        let cases: Vec<(&str, Option<LeaseSpec>, Duration, Step)> = vec![
            ("no lease yet", None, s(0), Step::Acquire),
            ("ours", Some(held_by(Some("me"), 15)), s(100), Step::Renew),
            (
                "released (no holder)",
                Some(held_by(None, 1)),
                s(0),
                Step::Acquire,
            ),
            (
                "released (empty holder)",
                Some(held_by(Some(""), 15)),
                s(0),
                Step::Acquire,
            ),
            (
                "someone else, live",
                Some(held_by(Some("other"), 15)),
                s(3),
                Step::Follow,
            ),
            (
                "someone else, expired",
                Some(held_by(Some("other"), 15)),
                s(15),
                Step::Acquire,
            ),
            (
                "no duration means expired",
                Some(LeaseSpec {
                    holder_identity: Some("other".into()),
                    ..LeaseSpec::default()
                }),
                s(0),
                Step::Acquire,
            ),
        ];
        for (name, spec, unchanged, expected) in cases {
            assert_eq!(
                decide(spec.as_ref(), unchanged, "me"),
                expected,
                "case {name}"
            );
        }
    }
}

/// The webhook receiver of an elected replica: it listens for the replica's whole life, so a
/// hook takes effect at once whichever replica GitLab reaches; while another replica leads, it
/// passes verified hooks on to that one's receiver (its address is on the lease).
struct ElectedHooks {
    route: HookRoute,
    _server: AbortOnDrop<()>,
    _following: AbortOnDrop<()>,
}

async fn listen_for_hooks(
    client: &Client,
    webhook: &crate::webhook::WebhookConfig,
    mut leader_receiver: watch::Receiver<Option<SocketAddr>>,
    telemetry: &super::run::Telemetry,
    shutdown: CancellationToken,
) -> Result<ElectedHooks, ElectedError> {
    let route = HookRoute::default();
    let server = super::run::serve_hooks(client, webhook, route.clone(), telemetry, shutdown)
        .await
        .map_err(|source| {
            ElectedError::Run(super::run::RunError::Webhook {
                addr: webhook.addr,
                source,
            })
        })?;
    if webhook.advertise.is_none() {
        tracing::warn!(
            "the webhook receiver has no address to advertise (set POD_IP): hooks that reach a standby are refused"
        );
    }
    let follow = route.clone();
    let following = tokio::spawn(async move {
        loop {
            let known = *leader_receiver.borrow_and_update();
            follow.follow(known);
            if leader_receiver.changed().await.is_err() {
                return;
            }
        }
    });
    Ok(ElectedHooks {
        route,
        _server: AbortOnDrop(Some(tokio::spawn(server))),
        _following: AbortOnDrop(Some(following)),
    })
}

/// Why an elected run ended badly.
#[derive(Debug, thiserror::Error)]
pub enum ElectedError {
    #[error(transparent)]
    Run(#[from] super::run::RunError),
    #[error(
        "lost the leader lease {0} (could not renew it in time); stopping so that only the new leader acts"
    )]
    LostLease(String),
}

/// Run the operator only while holding the lease. Followers wait (and report ready: a healthy
/// standby); the leader runs until `shutdown`, then releases the lease so a successor takes
/// over on its next round. Losing the lease stops the operator at once and returns an error,
/// so the process exits and restarts as a follower.
pub async fn run_elected(
    client: Client,
    config: super::run::RunConfig,
    lease: LeaseConfig,
    telemetry: &super::run::Telemetry,
    admin: crate::admin::AdminState,
    shutdown: CancellationToken,
) -> Result<(), ElectedError> {
    let lease_name = format!("{}/{}", lease.namespace, lease.name);
    let (elector, mut leader) = Elector::new(client.clone(), lease);
    let elector = elector.advertising(config.webhook.as_ref().and_then(|w| w.advertise));
    let hooks = match &config.webhook {
        Some(webhook) => Some(
            listen_for_hooks(
                &client,
                webhook,
                elector.leader_receiver(),
                telemetry,
                shutdown.clone(),
            )
            .await?,
        ),
        None => None,
    };
    let stop_electing = CancellationToken::new();
    // Aborted if this future is dropped (a kill): the campaign must not outlive the operator.
    let mut election = AbortOnDrop(Some(tokio::spawn(elector.run(stop_electing.clone()))));
    admin.set_ready(true);
    tracing::info!(lease = %lease_name, "waiting for the leader lease");
    loop {
        if *leader.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = leader.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            _ = shutdown.cancelled() => {
                stop_electing.cancel();
                election.join().await;
                return Ok(());
            }
        }
    }
    tracing::info!(lease = %lease_name, "leading");
    telemetry.operator.leader.set(1);
    admin.set_ready(false);
    let operator_stop = shutdown.child_token();
    let lost = {
        let operator_stop = operator_stop.clone();
        let mut leader = leader.clone();
        AbortOnDrop(Some(tokio::spawn(async move {
            while leader.changed().await.is_ok() {
                if !*leader.borrow() {
                    operator_stop.cancel();
                    return true;
                }
            }
            false
        })))
    };
    let result = super::run::run_routed(
        client,
        config,
        telemetry,
        admin,
        operator_stop.clone(),
        hooks.as_ref().map(|h| h.route.clone()),
    )
    .await;
    telemetry.operator.leader.set(0);
    let lost_lease = !shutdown.is_cancelled() && operator_stop.is_cancelled();
    drop(lost);
    stop_electing.cancel();
    election.join().await;
    result?;
    if lost_lease {
        return Err(ElectedError::LostLease(lease_name));
    }
    Ok(())
}
