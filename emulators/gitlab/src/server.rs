//! The HTTP server: `router`/`serve` for embedding, and [`GitlabEmulator`], which runs the
//! server on its own thread and runtime so that it works from sync tests, `current_thread`
//! async tests and multi-threaded ones alike.

use crate::demo::{DEFAULT_APPROVER_TOKEN, DEFAULT_ROOT_TOKEN, DemoFacts, seed_demo};
use crate::handle::EmulatorHandle;
use axum::Router;
use std::io;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// All routes. Routing is done by one fallback handler so that GitLab's processing order
/// (rate limit → route → auth → params → endpoint) and its catch-all 404 are exact.
pub fn router(state: EmulatorHandle) -> Router {
    Router::new()
        .fallback(crate::api::dispatch)
        .with_state(state)
}

/// Serves until the listener fails (or the task is dropped).
pub async fn serve(listener: TcpListener, state: EmulatorHandle) -> io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

/// A running emulator on `127.0.0.1:<ephemeral port>`; stopped by [`GitlabEmulator::shutdown`]
/// or on drop.
#[derive(Debug)]
pub struct GitlabEmulator {
    addr: SocketAddr,
    handle: EmulatorHandle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    demo: Option<DemoFacts>,
}

impl GitlabEmulator {
    /// Empty state: EE edition, license on, real clock.
    pub fn start() -> io::Result<GitlabEmulator> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        Self::start_on(std_listener)
    }

    /// With the demo seed ([`crate::seed_demo`]) and the default tokens.
    pub fn start_demo() -> io::Result<GitlabEmulator> {
        let mut gl = Self::start()?;
        let facts = seed_demo(&gl.handle, DEFAULT_ROOT_TOKEN, DEFAULT_APPROVER_TOKEN);
        gl.demo = Some(facts);
        Ok(gl)
    }

    /// The demo seed with chosen tokens on an already bound listener (e.g. a fixed port for
    /// a sandbox that prints its URL).
    pub fn start_demo_with(
        std_listener: std::net::TcpListener,
        root_token: &str,
        approver_token: &str,
    ) -> io::Result<GitlabEmulator> {
        let mut gl = Self::start_on(std_listener)?;
        let facts = seed_demo(&gl.handle, root_token, approver_token);
        gl.demo = Some(facts);
        Ok(gl)
    }

    /// Serves on an already bound listener.
    pub fn start_on(std_listener: std::net::TcpListener) -> io::Result<GitlabEmulator> {
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let handle = EmulatorHandle::new(&format!("http://{addr}"));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let state = handle.clone();
        let thread = std::thread::Builder::new()
            .name(format!("gitlab-emulator-{}", addr.port()))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    tokio::select! {
                        res = serve(listener, state) => {
                            if let Err(e) = res {
                                tracing::error!(error = %e, "gitlab emulator stopped");
                            }
                        }
                        _ = stop_rx => {}
                    }
                });
                // Dropping the runtime cancels in-flight requests (e.g. injected hangs).
                rt.shutdown_background();
            })?;
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("gitlab emulator thread exited before starting"))??;
        Ok(GitlabEmulator {
            addr,
            handle,
            stop: Some(stop_tx),
            thread: Some(thread),
            demo: None,
        })
    }

    /// `http://127.0.0.1:PORT` (the API root is `base_url()/api/v4`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/api/v4`.
    pub fn api_url(&self) -> String {
        format!("{}/api/v4", self.base_url())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A cheap clone of the handle for seeding, records, faults and the clock.
    pub fn handle(&self) -> EmulatorHandle {
        self.handle.clone()
    }

    /// The demo seed's facts, when started with [`GitlabEmulator::start_demo`].
    pub fn demo(&self) -> Option<&DemoFacts> {
        self.demo.as_ref()
    }

    /// Stops the server and waits for its thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for GitlabEmulator {
    fn drop(&mut self) {
        self.stop_now();
    }
}
