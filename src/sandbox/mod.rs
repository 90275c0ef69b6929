//! The sandbox's implementation (compiled with the `sandbox` feature): start both emulators
//! and the operator in this process, print where they are, play the scenario, keep running.

mod banner;
mod live;
mod manifests;
mod script;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gitlab_emulator::GitlabEmulator;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, CustomResourceExt};
use kube_emulator::KubeEmulator;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::api::{ClusterGitlabConnection, GitlabConnection, GitlabDeployment};
use crate::cli::sandbox::{SandboxArgs, SandboxError};
use crate::controller::allowlist::{AllowedHost, HostAllowList};
use crate::controller::credentials::CredentialPolicy;
use crate::controller::reconcile::ReconcileSettings;
use crate::controller::run::{RunConfig, RunError, Telemetry};
use crate::controller::shard::Shard;
use crate::controller::targets::Scope;

/// Namespace of the demo: the kubeconfig's default, so `kubectl get gld` needs no `-n`.
const NAMESPACE: &str = "default";
/// Set-up steps (CRDs established) get this long.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the start-up waits for the operator to report its caches synced.
const READY_WAIT: Duration = Duration::from_secs(10);

/// Logs go to stderr at `warn` unless `RUST_LOG` says otherwise, so the demo's lines on stdout
/// stay readable; `RUST_LOG=gitlab_deployment_operator=info` shows the operator at work.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _already_set = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

struct Progress {
    start: Instant,
}

impl Progress {
    fn step(&self, line: &str) {
        println!("{} {line}", live::stamp(self.start));
    }
}

async fn install_crds(client: &Client) -> Result<(), SandboxError> {
    let step = "installing the CRDs";
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [
        GitlabDeployment::crd(),
        GitlabConnection::crd(),
        ClusterGitlabConnection::crd(),
    ] {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.create(&PostParams::default(), &crd)
            .await
            .map_err(|source| SandboxError::Kube { step, source })?;
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(SETUP_TIMEOUT, established).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(SandboxError::Kube {
                    step,
                    source: kube::Error::Service(Box::new(e)),
                });
            }
            Err(_) => {
                return Err(SandboxError::Demo {
                    scenario: "set-up",
                    reason: format!("CRD {name} was not established within 30s"),
                });
            }
        }
    }
    Ok(())
}

/// The operator as `run` starts it, allowed to reach only the sandbox's GitLab emulator: its
/// loopback address and port, over plain http (`--allow-insecure-http`: the emulator serves no
/// TLS, and nothing leaves the machine).
fn operator_config(gitlab: SocketAddr) -> RunConfig {
    // The allow-list is the operator's guard against a namespace pointing it anywhere.
    let only_gitlab = AllowedHost::from(gitlab);
    RunConfig {
        scope: Scope::All,
        allow: HostAllowList::new(vec![only_gitlab]).allow_insecure_http(true),
        concurrency: 4,
        // As deploy/ runs it: only labelled token Secrets (the example's is).
        settings: ReconcileSettings {
            credentials: CredentialPolicy {
                require_token_label: true,
                ..CredentialPolicy::default()
            },
            ..ReconcileSettings::default()
        },
        operator_namespace: None,
        instance: Some("sandbox".to_owned()),
        webhook: None,
        shard: Shard::default(),
        gate: None,
    }
}

struct Operator {
    task: JoinHandle<Result<(), RunError>>,
    admin: AdminState,
    admin_addr: SocketAddr,
}

async fn start_operator(
    client: Client,
    gitlab: SocketAddr,
    shutdown: CancellationToken,
) -> Result<Operator, SandboxError> {
    let telemetry = Telemetry::default();
    let admin_state = AdminState::new(Arc::clone(&telemetry.registry));
    let stop = shutdown.clone();
    let bind: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let (admin_addr, _admin) = admin::serve(bind, admin_state.clone(), async move {
        stop.cancelled().await;
    })
    .await
    .map_err(|source| SandboxError::Start {
        what: "operator's health and metrics server",
        port: 0,
        source,
    })?;
    let admin = admin_state.clone();
    let task = tokio::spawn(async move {
        let config = operator_config(gitlab);
        crate::controller::run::run(client, config, &telemetry, admin_state, shutdown).await
    });
    Ok(Operator {
        task,
        admin,
        admin_addr,
    })
}

impl Operator {
    /// Wait until every cache synced (`/readyz`), at most [`READY_WAIT`]: the demo's own waits
    /// are the real check, so a slow sync only delays, never fails, the set-up. An operator
    /// that stopped with an error is one.
    async fn ready(&mut self) -> Result<bool, SandboxError> {
        let deadline = Instant::now() + READY_WAIT;
        while !self.admin.is_ready() {
            if self.task.is_finished() {
                return Err(self.stopped().await);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(true)
    }

    async fn stopped(&mut self) -> SandboxError {
        match (&mut self.task).await {
            Ok(Err(e)) => SandboxError::Operator(e),
            Ok(Ok(())) => SandboxError::Demo {
                scenario: "set-up",
                reason: "the operator stopped on its own".to_owned(),
            },
            Err(e) => SandboxError::Demo {
                scenario: "set-up",
                reason: format!("the operator task ended abnormally: {e}"),
            },
        }
    }
}

/// Resolves on Ctrl-C (or SIGTERM on Unix).
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

pub async fn run(args: SandboxArgs) -> Result<(), SandboxError> {
    init_logging();
    crate::gitlab::install_crypto_provider();
    let progress = Progress {
        start: Instant::now(),
    };
    progress.step(&format!(
        "gitlab-deployment-operator sandbox, scenario `{}`",
        args.scenario.as_str()
    ));

    progress.step("starting the Kubernetes API emulator (HTTPS, test CA)…");
    let kube = KubeEmulator::options()
        .tls(true)
        .port(args.kube_port)
        .start()
        .await
        .map_err(|source| SandboxError::Start {
            what: "Kubernetes API emulator",
            port: args.kube_port,
            source,
        })?;
    progress.step(&format!("  Kubernetes API at {}", kube.url()));

    progress.step("starting the GitLab emulator (project demo/app, users root and approver)…");
    let gitlab_start = |source| SandboxError::Start {
        what: "GitLab emulator",
        port: args.gitlab_port,
        source,
    };
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", args.gitlab_port)).map_err(gitlab_start)?;
    let gitlab = GitlabEmulator::start_demo_with(
        listener,
        gitlab_emulator::DEFAULT_ROOT_TOKEN,
        gitlab_emulator::DEFAULT_APPROVER_TOKEN,
    )
    .map_err(gitlab_start)?;
    let facts = gitlab.demo().cloned().ok_or_else(|| SandboxError::Demo {
        scenario: "set-up",
        reason: "the GitLab emulator started without its demo seed".to_owned(),
    })?;
    progress.step(&format!("  GitLab at {}", gitlab.base_url()));

    let client = kube
        .try_client()
        .await
        .map_err(|source| SandboxError::Kube {
            step: "building a client from the emulator's kubeconfig",
            source,
        })?;
    progress
        .step("installing the CRDs (GitlabDeployment, GitlabConnection, ClusterGitlabConnection)…");
    install_crds(&client).await?;

    progress.step("starting the operator…");
    let shutdown = CancellationToken::new();
    let mut operator = start_operator(client.clone(), gitlab.addr(), shutdown.clone()).await?;
    if operator.ready().await? {
        progress.step("  operator running, caches synced");
    } else {
        progress.step("  operator running (caches not reported synced yet; going on)");
    }

    let info = banner::Info {
        kube_url: kube.url(),
        kubeconfig: kube.kubeconfig_path().display().to_string(),
        gitlab_url: gitlab.base_url(),
        project_path: facts.project_path.clone(),
        project_id: facts.project_id,
        root_token: facts.root_token.clone(),
        approver_token: facts.approver_token.clone(),
        admin_url: format!("http://{}", operator.admin_addr),
    };
    println!("{}", banner::banner(&info));

    let live = tokio::spawn(live::follow(
        Api::namespaced(client.clone(), NAMESPACE),
        progress.start,
        shutdown.clone(),
    ));
    let demo = script::Demo {
        client,
        namespace: NAMESPACE.to_owned(),
        scenario: args.scenario,
        start: progress.start,
        step_ms: args.rollout_step_ms.max(1),
        step_timeout: Duration::from_secs(args.step_timeout.max(1)),
        approve_after: Duration::from_secs(args.approve_after),
        info: info.clone(),
        gitlab: gitlab.handle(),
        shas: facts.main_shas.clone(),
    };

    let outcome = tokio::select! {
        result = demo.play() => Some(result),
        err = operator.stopped() => Some(Err(err)),
        _ = interrupted() => None,
    };
    // Let the live view print the last changes before the verdict.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let result = match outcome {
        None => Ok(()),
        Some(result) if args.exit_after_demo => result,
        Some(result) => {
            if let Err(e) = &result {
                println!("{} ✗ {e}", live::stamp(progress.start));
            }
            println!(
                "\nThe sandbox keeps running (kubeconfig {}); press Ctrl-C to stop.",
                info.kubeconfig
            );
            tokio::select! {
                _ = interrupted() => {}
                err = operator.stopped() => {
                    shutdown.cancel();
                    return Err(err);
                }
            }
            Ok(())
        }
    };
    progress.step("stopping…");
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), &mut operator.task).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), live).await;
    gitlab.shutdown();
    kube.shutdown().await;
    result
}
