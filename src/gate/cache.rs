//! Where the gate reads GitlabDeployments: the controller's own reflector cache, published here
//! once it has synced, so a request costs no API or GitLab call.
//!
//! Only the leader runs the controller, yet a Service spreads Flagger's and Argo Rollouts'
//! requests over every replica, and a standby answering "unavailable" would make an Argo
//! measurement error or a Flagger canary wait another interval for nothing. So with leader
//! election a standby keeps a cache of its own ([`follow`]) while no controller cache is
//! published, and drops it once it leads and the controller's cache has synced: every replica
//! answers, and none holds two copies for long.

use std::sync::{Arc, PoisonError, RwLock};

use futures::{StreamExt, future};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api::deployment::GitlabDeployment;
use crate::controller::scoped::ScopedStore;
use crate::controller::shard::Shard;
use crate::controller::targets::Scope;

type Deployments = ScopedStore<GitlabDeployment>;

/// The caches the gate answers from; cheap to clone (shared).
#[derive(Clone)]
pub struct GateCache {
    inner: Arc<Inner>,
}

struct Inner {
    /// The controller's synced cache, while this replica runs the controller.
    controller: watch::Sender<Option<Deployments>>,
    /// A standby's own synced cache (see [`follow`]).
    standby: RwLock<Option<Deployments>>,
}

impl std::fmt::Debug for GateCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateCache")
            .field("source", &self.source())
            .finish()
    }
}

impl Default for GateCache {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                controller: watch::Sender::new(None),
                standby: RwLock::new(None),
            }),
        }
    }
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    Found(Arc<GitlabDeployment>),
    NotFound,
    /// No synced cache yet (starting, or a standby still listing).
    NotSynced,
}

impl GateCache {
    /// The controller's cache, synced: the gate answers from it until it is withdrawn.
    pub fn publish(&self, deployments: Deployments) {
        self.inner.controller.send_replace(Some(deployments));
    }

    /// The controller stopped (lost the lease, shut down): its cache is no longer kept current.
    pub fn withdraw(&self) {
        self.inner.controller.send_replace(None);
    }

    /// A guard that withdraws the published cache when dropped, however the controller ends.
    pub fn withdraw_on_drop(&self) -> WithdrawOnDrop {
        WithdrawOnDrop(self.clone())
    }

    fn standby(&self) -> Option<Deployments> {
        self.inner
            .standby
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_standby(&self, deployments: Option<Deployments>) {
        *self
            .inner
            .standby
            .write()
            .unwrap_or_else(PoisonError::into_inner) = deployments;
    }

    /// Whether a synced cache is there to answer from (the controller's or a standby's).
    pub fn synced(&self) -> bool {
        self.source().is_some()
    }

    /// Which cache answers now: `controller`, `standby`, or none yet.
    pub fn source(&self) -> Option<&'static str> {
        if self.inner.controller.borrow().is_some() {
            Some("controller")
        } else if self.standby().is_some() {
            Some("standby")
        } else {
            None
        }
    }

    /// The resource `namespace/name`, from the controller's cache or else the standby's.
    pub fn lookup(&self, namespace: &str, name: &str) -> Lookup {
        let store = self
            .inner
            .controller
            .borrow()
            .clone()
            .or_else(|| self.standby());
        let Some(store) = store else {
            return Lookup::NotSynced;
        };
        match store.get(&ObjectRef::new(name).within(namespace)) {
            Some(gd) => Lookup::Found(gd),
            None => Lookup::NotFound,
        }
    }
}

/// See [`GateCache::withdraw_on_drop`].
pub struct WithdrawOnDrop(GateCache);

impl Drop for WithdrawOnDrop {
    fn drop(&mut self) {
        self.0.withdraw();
    }
}

/// Keep a cache of the GitlabDeployments `scope` and `shard` cover while no controller cache is
/// published, until `shutdown`. The watches are the controller's (same namespaces, same label
/// selector, managed fields dropped), so a standby answers exactly as the leader would.
pub async fn follow(
    client: Client,
    scope: Scope,
    shard: Shard,
    cache: GateCache,
    shutdown: CancellationToken,
) {
    let mut published = cache.inner.controller.subscribe();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            waited = published.wait_for(Option::is_none) => if waited.is_err() { return },
        }
        tracing::info!("gate: keeping a standby cache of GitlabDeployments");
        let namespaces: Vec<Option<String>> = match &scope {
            Scope::All => vec![None],
            Scope::Namespaces(list) => list.iter().cloned().map(Some).collect(),
        };
        let mut stores = ScopedStore::default();
        let mut streams = Vec::new();
        for ns in &namespaces {
            let api: Api<GitlabDeployment> = match ns {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            };
            let config = match shard.selector() {
                Some(selector) => watcher::Config::default().labels(selector),
                None => watcher::Config::default(),
            };
            let (reader, writer) = reflector::store();
            stores.insert(ns.clone(), reader);
            streams.push(
                watcher(api, config)
                    .default_backoff()
                    .modify(|gd: &mut GitlabDeployment| {
                        kube::Resource::meta_mut(gd).managed_fields = None;
                    })
                    .reflect(writer)
                    .boxed(),
            );
        }
        let mut unsynced = streams.len();
        let mut events = futures::stream::select_all(streams);
        let synced_cache = cache.clone();
        let drive = async {
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::InitDone) if unsynced > 0 => {
                        unsynced -= 1;
                        if unsynced == 0 {
                            synced_cache.set_standby(Some(stores.clone()));
                            tracing::info!("gate: standby cache synced");
                        }
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, "gate: standby watch error; retrying with backoff");
                    }
                }
            }
            future::pending::<()>().await;
        };
        let stop = tokio::select! {
            _ = shutdown.cancelled() => true,
            waited = published.wait_for(Option::is_some) => waited.is_err(),
            () = drive => true,
        };
        cache.set_standby(None);
        if stop {
            return;
        }
        tracing::info!("gate: answering from the controller's cache; standby cache dropped");
    }
}
