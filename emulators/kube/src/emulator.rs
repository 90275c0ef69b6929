//! The in-process emulator handle: binds 127.0.0.1, serves, runs the background controllers
//! (GC, namespace/CRD cleanup, apps rollouts, persistence) and writes a kubeconfig.

use crate::hooks::Hooks;
use crate::server;
use crate::state::{AppState, Settings};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const DEFAULT_TOKEN: &str = "emulator-token";

/// Options for [`KubeEmulator`].
#[derive(Debug, Clone)]
pub struct KubeEmulatorOptions {
    pub settings: Settings,
    pub port: u16,
    /// Serve HTTPS with the built-in test CA (needed for kubectl to send the token).
    pub tls: bool,
}

impl Default for KubeEmulatorOptions {
    fn default() -> Self {
        Self {
            settings: Settings {
                token: Some(DEFAULT_TOKEN.into()),
                ..Settings::default()
            },
            port: 0,
            tls: false,
        }
    }
}

impl KubeEmulatorOptions {
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.settings.token = Some(token.into());
        self
    }
    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.settings.state_file = Some(path.into());
        self
    }
    /// HTTPS with the built-in test CA: kubectl sends bearer tokens only over TLS.
    pub fn tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }
    /// No bearer token required.
    pub fn no_auth(mut self) -> Self {
        self.settings.token = None;
        self
    }
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    pub fn bookmark_interval(mut self, d: Duration) -> Self {
        self.settings.bookmark_interval = d;
        self
    }
    pub fn history(mut self, events: usize) -> Self {
        self.settings.history = events;
        self
    }
    pub fn rollout_step(mut self, d: Duration) -> Self {
        self.settings.rollout_step = d;
        self
    }

    pub async fn start(self) -> io::Result<KubeEmulator> {
        KubeEmulator::start_with(self).await
    }
}

/// A running emulator. Dropping it stops serving.
pub struct KubeEmulator {
    addr: SocketAddr,
    scheme: &'static str,
    state: AppState,
    dir: PathBuf,
    kubeconfig: PathBuf,
    tasks: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
}

/// Kubeconfig text both kubectl and kube-rs accept (spec §1).
pub fn kubeconfig_yaml(url: &str, token: Option<&str>) -> String {
    let user = match token {
        Some(t) => format!("    token: {t}\n"),
        None => String::from("    username: emulator\n"),
    };
    // An https URL gets the built-in test CA so clients verify the server.
    let ca = if url.starts_with("https://") {
        format!(
            "    certificate-authority-data: {}\n",
            crate::b64::encode(crate::tls::CA_PEM.as_bytes())
        )
    } else {
        String::new()
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: emulator\n  cluster:\n    server: {url}\n{ca}users:\n- name: emulator\n  user:\n{user}contexts:\n- name: emulator\n  context:\n    cluster: emulator\n    user: emulator\n    namespace: default\ncurrent-context: emulator\npreferences: {{}}\n"
    )
}

impl KubeEmulator {
    /// Start on 127.0.0.1 with a random port and the default token.
    pub async fn start() -> io::Result<Self> {
        Self::start_with(KubeEmulatorOptions::default()).await
    }

    pub fn options() -> KubeEmulatorOptions {
        KubeEmulatorOptions::default()
    }

    pub async fn start_with(opts: KubeEmulatorOptions) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", opts.port)).await?;
        let addr = listener.local_addr()?;
        let state = AppState::new(opts.settings.clone(), Hooks::new());
        if let Some(path) = &opts.settings.state_file {
            crate::persist::load(&state, path)?;
        }
        let stopping = Arc::new(AtomicBool::new(false));
        let tasks = spawn_all(listener, addr, state.clone(), stopping.clone(), opts.tls)?;
        let dir = std::env::temp_dir().join(format!("kube-emulator-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let kubeconfig = dir.join("kubeconfig");
        let scheme = if opts.tls { "https" } else { "http" };
        std::fs::write(
            &kubeconfig,
            kubeconfig_yaml(
                &format!("{scheme}://{addr}"),
                opts.settings.token.as_deref(),
            ),
        )?;
        Ok(Self {
            addr,
            scheme,
            state,
            dir,
            kubeconfig,
            tasks,
            stopping,
        })
    }

    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn hooks(&self) -> Hooks {
        self.state.hooks().clone()
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// A kube client built from the kubeconfig through kube's own config loading.
    pub async fn try_client(&self) -> kube::Result<kube::Client> {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .map_err(kube::Error::InferKubeconfig)?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(kube::Error::InferKubeconfig)?;
        kube::Client::try_from(config)
    }

    /// Like [`Self::try_client`]; the kubeconfig is ours and always valid.
    pub async fn client(&self) -> kube::Client {
        #[allow(clippy::expect_used)]
        self.try_client()
            .await
            .expect("the emulator's own kubeconfig is valid")
    }

    /// Stop serving and the background tasks.
    pub async fn shutdown(mut self) {
        self.stop();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }

    fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.state.hooks().drop_watches();
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for KubeEmulator {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Spawn the server (with restart support) and the background controllers.
pub fn spawn_all(
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    stopping: Arc<AtomicBool>,
    tls: bool,
) -> io::Result<Vec<JoinHandle<()>>> {
    let acceptor = if tls {
        Some(crate::tls::acceptor()?)
    } else {
        None
    };
    let mut tasks = Vec::new();
    let s = state.clone();
    tasks.push(tokio::spawn(async move {
        let mut listener = Some(listener);
        loop {
            let l = match listener.take() {
                Some(l) => l,
                None => match TcpListener::bind(addr).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(%e, %addr, "cannot rebind after restart");
                        return;
                    }
                },
            };
            let hooks = s.hooks().clone();
            let app = server::router(s.clone());
            let stop = async move { hooks.wait_restart().await };
            let r = match &acceptor {
                Some(a) => {
                    let l = crate::tls::TlsListener {
                        tcp: l,
                        acceptor: a.clone(),
                    };
                    axum::serve(l, app).with_graceful_shutdown(stop).await
                }
                None => axum::serve(l, app).with_graceful_shutdown(stop).await,
            };
            if let Err(e) = r {
                tracing::error!(%e, "server stopped");
                return;
            }
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            tracing::info!("emulator restarted: connections dropped, store kept");
        }
    }));
    tasks.push(tokio::spawn(crate::controllers::run(state.clone())));
    tasks.push(tokio::spawn(crate::apps::run(state.clone())));
    if state.settings().state_file.is_some() {
        tasks.push(tokio::spawn(crate::persist::run(state.clone())));
    }
    Ok(tasks)
}
