//! Test hooks (spec §14): fault injection, latency, watch control, request log, rollout control.
//! Cheap to clone; shared by the library handle, the admin HTTP routes and the server.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// One logged API request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RequestRecord {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub code: u16,
    pub field_manager: String,
    pub user_agent: String,
}

/// An injected failure: the next `remaining` requests whose path starts with `path_prefix`
/// answer `code` (500, 503, 429 with `Retry-After`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Fault {
    pub path_prefix: String,
    pub code: u16,
    pub remaining: usize,
    #[serde(default)]
    pub retry_after_seconds: Option<u64>,
}

/// A request kind the emulator's stand-in authorizer refuses (see [`Hooks::forbid`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Forbidden {
    verb: String,
    group: String,
    resource: String,
}

#[derive(Default)]
struct HookState {
    faults: Mutex<Vec<Fault>>,
    forbidden: Mutex<Vec<Forbidden>>,
    latency_ms: AtomicU64,
    force_expired_watches: AtomicUsize,
    log: Mutex<Vec<RequestRecord>>,
    rollouts_paused: AtomicBool,
    advance_steps: AtomicU64,
    drop_generation: AtomicU64,
    bookmarks_disabled: AtomicBool,
    wake: tokio::sync::Notify,
    drop_tx: std::sync::OnceLock<tokio::sync::watch::Sender<u64>>,
}

/// Handle on the emulator's test hooks.
#[derive(Clone, Default)]
pub struct Hooks(Arc<HookState>);

impl Hooks {
    pub fn new() -> Self {
        let h = Self::default();
        let (tx, _) = tokio::sync::watch::channel(0u64);
        let _ = h.0.drop_tx.set(tx);
        h
    }

    /// Close every open watch stream (clients re-watch from their last resourceVersion).
    pub fn drop_watches(&self) {
        let g = self.0.drop_generation.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(tx) = self.0.drop_tx.get() {
            tx.send_replace(g);
        }
    }

    pub(crate) fn drop_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.0.drop_tx.get().map(|tx| tx.subscribe())
    }

    /// The next `n` watch requests get an in-stream `ERROR` 410 Expired (forces a relist).
    pub fn expire_next_watches(&self, n: usize) {
        self.0.force_expired_watches.fetch_add(n, Ordering::SeqCst);
    }

    pub(crate) fn take_forced_expiry(&self) -> bool {
        self.0
            .force_expired_watches
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Fail the next `count` requests under `path_prefix` with `code` (429 adds `Retry-After`).
    pub fn fail_requests(
        &self,
        path_prefix: &str,
        code: u16,
        count: usize,
        retry_after_seconds: Option<u64>,
    ) {
        self.0.faults.lock().push(Fault {
            path_prefix: path_prefix.into(),
            code,
            remaining: count,
            retry_after_seconds,
        });
    }

    pub(crate) fn take_fault(&self, path: &str) -> Option<Fault> {
        let mut faults = self.0.faults.lock();
        let f = faults
            .iter_mut()
            .find(|f| f.remaining > 0 && path.starts_with(&f.path_prefix))?;
        f.remaining -= 1;
        let out = f.clone();
        faults.retain(|f| f.remaining > 0);
        Some(out)
    }

    /// Refuse every `verb` on `resource` (with `/subresource` if any) of API `group` with a
    /// 403 Forbidden shaped like the real authorizer's: the emulator enforces no RBAC, so a
    /// test that must hold with fewer rights (no list/watch of Secrets, say) takes them away
    /// here. Applies to every client, until [`Hooks::clear_forbidden`].
    pub fn forbid(&self, verb: &str, group: &str, resource: &str) {
        self.0.forbidden.lock().push(Forbidden {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
        });
    }

    /// Undo every [`Hooks::forbid`].
    pub fn clear_forbidden(&self) {
        self.0.forbidden.lock().clear();
    }

    pub(crate) fn is_forbidden(&self, verb: &str, group: &str, resource: &str) -> bool {
        self.0
            .forbidden
            .lock()
            .iter()
            .any(|f| f.verb == verb && f.group == group && f.resource == resource)
    }

    pub fn clear_faults(&self) {
        self.0.faults.lock().clear();
        self.0.latency_ms.store(0, Ordering::SeqCst);
    }

    /// Add latency to every API request.
    pub fn set_latency(&self, d: Duration) {
        self.0
            .latency_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }

    pub(crate) fn latency(&self) -> Duration {
        Duration::from_millis(self.0.latency_ms.load(Ordering::SeqCst))
    }

    /// Stop sending periodic bookmarks.
    pub fn set_bookmarks(&self, enabled: bool) {
        self.0.bookmarks_disabled.store(!enabled, Ordering::SeqCst);
    }

    pub(crate) fn bookmarks_enabled(&self) -> bool {
        !self.0.bookmarks_disabled.load(Ordering::SeqCst)
    }

    /// "Restart": drop every connection and watch, keep the store.
    pub fn restart(&self) {
        self.drop_watches();
        self.0.wake.notify_waiters();
    }

    pub(crate) async fn wait_restart(&self) {
        self.0.wake.notified().await
    }

    pub(crate) fn record(&self, r: RequestRecord) {
        self.0.log.lock().push(r);
    }

    /// Every API request so far (not admin or discovery requests).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.0.log.lock().clone()
    }

    pub fn clear_requests(&self) {
        self.0.log.lock().clear();
    }

    /// Request counts by `(verb, resource)` (resource includes `/subresource`).
    pub fn counts(&self) -> BTreeMap<(String, String), usize> {
        let mut out = BTreeMap::new();
        for r in self.0.log.lock().iter() {
            let res = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            *out.entry((r.verb.clone(), res)).or_insert(0) += 1;
        }
        out
    }

    /// Pause the rollout simulator (no automatic steps until resumed or advanced).
    pub fn pause_rollouts(&self, paused: bool) {
        self.0.rollouts_paused.store(paused, Ordering::SeqCst);
    }

    pub(crate) fn rollouts_paused(&self) -> bool {
        self.0.rollouts_paused.load(Ordering::SeqCst)
    }

    /// Perform `n` rollout steps on every workload (works while paused).
    pub fn advance_rollouts(&self, n: u64) {
        self.0.advance_steps.fetch_add(n, Ordering::SeqCst);
    }

    pub(crate) fn take_advance(&self) -> u64 {
        self.0.advance_steps.swap(0, Ordering::SeqCst)
    }
}
