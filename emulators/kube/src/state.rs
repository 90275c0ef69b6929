//! Shared server state: the store, the hooks, and the notifications that wake background tasks.

use crate::controllers::Controllers;
use crate::hooks::Hooks;
use crate::resources;
use crate::store::{DEFAULT_HISTORY, DEFAULT_WATCH_BUFFER, Inner};
use parking_lot::{Mutex, MutexGuard};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Server settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Bearer token required on API requests (None: no authentication).
    pub token: Option<String>,
    /// Periodic bookmark interval for watches that allow them.
    pub bookmark_interval: Duration,
    /// Server-side cap for watches without `timeoutSeconds`.
    pub max_watch: Duration,
    pub history: usize,
    /// Events a watcher may lag behind before its stream is closed.
    pub watch_buffer: usize,
    pub state_file: Option<PathBuf>,
    /// Default rollout step of the apps simulator.
    pub rollout_step: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            token: None,
            bookmark_interval: Duration::from_secs(5),
            max_watch: Duration::from_secs(1800),
            history: DEFAULT_HISTORY,
            watch_buffer: DEFAULT_WATCH_BUFFER,
            state_file: None,
            rollout_step: Duration::from_millis(200),
        }
    }
}

pub struct Shared {
    inner: Mutex<Inner>,
    /// Locked only while `inner` is held (lock order: `inner`, then `controllers`).
    controllers: Mutex<Controllers>,
    pub settings: Settings,
    pub hooks: Hooks,
    /// Wakes the background controllers (GC, namespace and CRD cleanup).
    pub gc: Notify,
    /// Wakes the state-file writer.
    pub persist: Notify,
}

/// Cheap handle on the server state.
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

impl AppState {
    pub fn new(settings: Settings, hooks: Hooks) -> Self {
        let mut inner = Inner::with_watch_buffer(
            resources::builtins(),
            settings.history,
            settings.watch_buffer,
        );
        let mut controllers = Controllers::new(&inner);
        crate::bootstrap::seed(&mut inner, &mut controllers);
        Self(Arc::new(Shared {
            inner: Mutex::new(inner),
            controllers: Mutex::new(controllers),
            settings,
            hooks,
            gc: Notify::new(),
            persist: Notify::new(),
        }))
    }

    /// Lock the store. Never hold the guard across `.await`.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.inner.lock()
    }

    /// Lock the store for a write: the controllers see what `f` wrote before the lock is
    /// released, so what a client expects at once (a CRD served) is there with the response.
    pub fn write<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut inner = self.lock();
        let out = f(&mut inner);
        self.observe(&mut inner);
        out
    }

    /// Let the controllers see what was written to `inner` (held by the caller).
    pub fn observe(&self, inner: &mut Inner) {
        self.0.controllers.lock().observe(inner);
    }

    /// The store was filled without history (a state file): the controllers start over.
    pub fn resync_controllers(&self, inner: &mut Inner) {
        self.0.controllers.lock().resync(inner);
    }

    /// One pass of the background controllers; whether anything changed.
    pub fn step_controllers(&self) -> bool {
        let mut inner = self.lock();
        self.0.controllers.lock().step(&mut inner)
    }

    pub fn hooks(&self) -> &Hooks {
        &self.0.hooks
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// After a removal: run GC soon; after any write: persist soon.
    pub fn written(&self, removed: bool) {
        if removed {
            self.0.gc.notify_one();
        }
        self.0.persist.notify_one();
    }
}

/// Load a `--state` file into `state` (missing file: empty store).
pub fn load_state(state: &AppState, path: &std::path::Path) -> std::io::Result<()> {
    crate::persist::load(state, path)
}
