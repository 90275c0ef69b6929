//! `run`: the operator itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::api::deployment::ConnectionKind;
use crate::api::validate::ConnectionTarget;
use crate::controller::allowlist::{AllowedHost, HostAllowList};
use crate::controller::credentials::CredentialPolicy;
use crate::controller::leader::{ElectedError, LeaseConfig, run_elected};
use crate::controller::reconcile::ReconcileSettings;
use crate::controller::run::{RunConfig, RunError, Telemetry, run as run_operator};
use crate::controller::shard::Shard;
use crate::controller::targets::Scope;
use crate::gate::{GateAuth, GateCache, GateConfig, GateError};
use crate::telemetry::{self, LogFormat};
use crate::webhook::WebhookConfig;
use crate::webhook::tokens::SecretName;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Serve only these namespaces (repeat, or comma-separate); all namespaces when absent.
    #[arg(
        long = "namespace",
        short = 'n',
        value_delimiter = ',',
        env = "WATCH_NAMESPACES"
    )]
    pub namespaces: Vec<String>,
    /// GitLab hosts connections may point at: `gitlab.example.com` (its default port),
    /// `host:port` (that port) or `*.example.com` (repeat, or comma-separate). A connection to
    /// any other host or port is refused.
    #[arg(
        long = "allowed-host",
        value_delimiter = ',',
        env = "GITLAB_ALLOWED_HOSTS"
    )]
    pub allowed_hosts: Vec<AllowedHost>,
    /// Accept plain `http://` connection URLs (the token then travels unencrypted): only for
    /// test servers and networks you trust. Without it, only `https://` is accepted.
    #[arg(long, env = "GITLAB_ALLOW_INSECURE_HTTP")]
    pub allow_insecure_http: bool,
    /// Use a token Secret only when it carries the label `gitlab-operator.io/token: "true"`;
    /// a connection naming an unlabelled Secret is `Stalled` and nothing is sent to GitLab.
    /// Keeps someone who may create connections but not read Secrets from having the
    /// operator send any Secret of the namespace to GitLab.
    #[arg(long, env = "GITLAB_REQUIRE_TOKEN_LABEL")]
    pub require_token_label: bool,
    /// Serve only the GitlabDeployments matching this label selector (kubectl's `-l` syntax),
    /// as Flux's shards do: `sharding.gitlab-operator.io/key=shard1` on a shard,
    /// `!sharding.gitlab-operator.io/key` on the main instance. Each selector elects its own
    /// leader (the lease name gets a hash of it). See docs/scaling.md.
    #[arg(long, env = "GITLAB_WATCH_LABEL_SELECTOR")]
    pub watch_label_selector: Option<String>,
    /// Reconciles run at once per served namespace.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u16,
    /// Address of the health and metrics server (`/healthz`, `/readyz`, `/metrics`).
    #[arg(long, default_value = "0.0.0.0:8080", env = "ADMIN_ADDR")]
    pub admin_addr: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Namespace the operator runs in (its Secrets are read for ClusterGitlabConnections).
    #[arg(long, env = "POD_NAMESPACE")]
    pub operator_namespace: Option<String>,
    /// This instance's name in Events and the leader lease (the pod name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds an unfinished create is given before its intent is looked up and given up. Keep
    /// it above the connections' `timeout`: a create is sent only while it can end within
    /// this grace of its claim.
    #[arg(long, default_value_t = 45)]
    pub recovery_grace_seconds: u64,
    /// Fetch the merge requests GitLab links to each successful deployment onto its status
    /// (one extra GET per revision); `--merge-requests=false` turns it off.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "FETCH_MERGE_REQUESTS")]
    pub merge_requests: bool,
    /// Connection of GitlabDeployments without `spec.connectionRef`: `GitlabConnection/NAME`
    /// (looked up in the resource's namespace) or `ClusterGitlabConnection/NAME`.
    #[arg(long, default_value = "GitlabConnection/default", value_parser = parse_connection, env = "DEFAULT_CONNECTION")]
    pub default_connection: ConnectionTarget,
    /// Elect a leader among replicas on a Lease: only the leader writes to GitLab and status.
    #[arg(long, env = "LEADER_ELECT")]
    pub leader_elect: bool,
    /// Name of the leader Lease; with `--watch-label-selector` it gets `-<hash of the selector>`
    /// appended, so every shard elects its own leader.
    #[arg(long, default_value = "gitlab-deployment-operator")]
    pub lease_name: String,
    /// Namespace of the leader Lease (default: the operator's namespace).
    #[arg(long, env = "LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long a lease is valid without renewal before another replica may take it.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// The leader stops acting when it could not renew within this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub renew_deadline: Duration,
    /// How often candidates look at the lease and the leader renews it.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub retry_period: Duration,
    /// Address of the GitLab webhook receiver (`POST /hooks/gitlab`), e.g. `0.0.0.0:8443`.
    /// Off when absent: no port is opened. See docs/webhooks.md.
    #[arg(long, env = "GITLAB_WEBHOOK_ADDR")]
    pub webhook_addr: Option<SocketAddr>,
    /// Secret with one webhook token per connection (keys `GitlabConnection.<ns>.<name>`,
    /// `ClusterGitlabConnection.<name>`): `NAME` in the operator's namespace, or `NS/NAME`.
    #[arg(
        long,
        default_value = "gitlab-webhook-tokens",
        env = "GITLAB_WEBHOOK_SECRET"
    )]
    pub webhook_secret: String,
    /// Approval polling for deployments GitLab's hooks reach us for (on a GitLab that sends
    /// approval events): only a safety net for a lost hook. The first read comes this long
    /// after the approval became pending, then the interval doubles with the time pending.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub webhook_safety_net: Duration,
    /// The safety net's longest interval: a lost approval hook is noticed within this long.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub webhook_safety_net_max: Duration,
    /// After a write GitLab answers with a hook (a create, a status change), how long a
    /// connection may send no hook at all before its hooks count as broken and its approvals
    /// are polled as without hooks again.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub webhook_echo_wait: Duration,
    /// This pod's IP (downward API): with leader election, the leader publishes
    /// `POD_IP:<port of --webhook-addr>` on its lease so that a standby passes the hooks it
    /// receives on to it.
    #[arg(long, env = "POD_IP")]
    pub pod_ip: Option<std::net::IpAddr>,
    /// Address of the approval gate endpoint for Flagger webhooks and Argo Rollouts' `web`
    /// metric, e.g. `0.0.0.0:8082`. Off when absent. See docs/approvals.md.
    #[arg(long, env = "GATE_LISTEN")]
    pub gate_listen: Option<SocketAddr>,
    /// File holding the gate's bearer token (mount it from a Secret); re-read when it changes.
    /// Required with `--gate-listen` unless `--gate-insecure-no-auth`.
    #[arg(long, env = "GATE_TOKEN_FILE")]
    pub gate_token_file: Option<std::path::PathBuf>,
    /// Serve the gate without a token: only for tests and sandboxes.
    #[arg(long)]
    pub gate_insecure_no_auth: bool,
    /// Gate requests per second over all clients (429 with Retry-After beyond).
    #[arg(long, default_value = "50")]
    pub gate_rate: std::num::NonZeroU32,
    /// Gate requests accepted at once after a quiet spell.
    #[arg(long, default_value = "100")]
    pub gate_burst: std::num::NonZeroU32,
}

pub(crate) fn parse_connection(text: &str) -> Result<ConnectionTarget, String> {
    let (kind, name) = text.split_once('/').ok_or_else(|| {
        format!("{text:?}: write GitlabConnection/NAME or ClusterGitlabConnection/NAME")
    })?;
    let kind = match kind {
        "GitlabConnection" => ConnectionKind::GitlabConnection,
        "ClusterGitlabConnection" => ConnectionKind::ClusterGitlabConnection,
        other => {
            return Err(format!(
                "{other:?} is not GitlabConnection or ClusterGitlabConnection"
            ));
        }
    };
    if name.is_empty() {
        return Err(format!("{text:?}: the connection name is empty"));
    }
    Ok(ConnectionTarget {
        kind,
        name: name.to_owned(),
    })
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::api::validate::parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration; write it like 15s or 1m"))
}

#[derive(Debug, thiserror::Error)]
pub enum RunCmdError {
    #[error("no Kubernetes configuration found ({0}); set KUBECONFIG or run in a pod")]
    Config(#[source] kube::Error),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Elected(#[from] ElectedError),
    #[error("--leader-elect needs the lease's namespace: set --lease-namespace or POD_NAMESPACE")]
    LeaseNamespace,
    #[error(
        "--lease-duration must exceed --renew-deadline, which must exceed --retry-period, so a leader stops before another can take over"
    )]
    LeaseTimings,
    #[error(
        "--webhook-secret {0:?} needs a namespace: write NS/NAME or set --operator-namespace (POD_NAMESPACE)"
    )]
    WebhookSecretNamespace(String),
    #[error(
        "--gate-listen needs --gate-token-file (a file mounted from a Secret) so that only Flagger and Argo Rollouts can ask; pass --gate-insecure-no-auth instead only for tests and sandboxes"
    )]
    GateTokenMissing,
    #[error("--gate-token-file and --gate-insecure-no-auth contradict each other: pass one")]
    GateAuthConflict,
    #[error(transparent)]
    Gate(#[from] GateError),
    #[error("cannot start the admin server on {addr}: {source}")]
    Admin {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl RunCmdError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunCmdError::Config(_) => 2,
            RunCmdError::Run(RunError::CrdMissing(_)) => 3,
            RunCmdError::Run(RunError::Selector { .. }) => 2,
            RunCmdError::Run(_) => 4,
            RunCmdError::Admin { .. } => 5,
            RunCmdError::Elected(ElectedError::Run(RunError::CrdMissing(_))) => 3,
            RunCmdError::Elected(ElectedError::Run(RunError::Selector { .. })) => 2,
            RunCmdError::Elected(ElectedError::Run(_)) => 4,
            RunCmdError::Elected(ElectedError::LostLease(_)) => 6,
            RunCmdError::Gate(GateError::Bind { .. }) => 5,
            RunCmdError::LeaseNamespace
            | RunCmdError::LeaseTimings
            | RunCmdError::WebhookSecretNamespace(_)
            | RunCmdError::GateTokenMissing
            | RunCmdError::GateAuthConflict
            | RunCmdError::Gate(GateError::Token(_)) => 2,
        }
    }
}

impl RunArgs {
    fn lease(&self) -> Result<Option<LeaseConfig>, RunCmdError> {
        if !self.leader_elect {
            return Ok(None);
        }
        let namespace = self
            .lease_namespace
            .clone()
            .or_else(|| self.operator_namespace.clone())
            .ok_or(RunCmdError::LeaseNamespace)?;
        if self.lease_duration <= self.renew_deadline || self.renew_deadline <= self.retry_period {
            return Err(RunCmdError::LeaseTimings);
        }
        let identity = self
            .identity
            .clone()
            .unwrap_or_else(|| format!("gitlab-deployment-operator-{}", rand::random::<u32>()));
        Ok(Some(LeaseConfig {
            name: self.shard().lease_name(&self.lease_name),
            namespace,
            identity,
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        }))
    }

    /// The receiver's settings, when `--webhook-addr` turns it on.
    fn webhook(&self) -> Result<Option<WebhookConfig>, RunCmdError> {
        let Some(addr) = self.webhook_addr else {
            return Ok(None);
        };
        let secret = match self.webhook_secret.split_once('/') {
            Some((namespace, name)) => SecretName {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            },
            None => SecretName {
                namespace: self.operator_namespace.clone().ok_or_else(|| {
                    RunCmdError::WebhookSecretNamespace(self.webhook_secret.clone())
                })?,
                name: self.webhook_secret.clone(),
            },
        };
        // A receiver bound to one address is reached there; one bound to all interfaces is
        // reached at the pod's IP.
        let advertise = if addr.ip().is_unspecified() {
            self.pod_ip.map(|ip| SocketAddr::new(ip, addr.port()))
        } else {
            Some(addr)
        };
        Ok(Some(WebhookConfig {
            addr,
            secret,
            safety_net: self.webhook_safety_net,
            safety_net_max: self.webhook_safety_net_max,
            echo_wait: self.webhook_echo_wait,
            advertise,
        }))
    }

    /// The gate endpoint's settings, when `--gate-listen` turns it on.
    fn gate(&self) -> Result<Option<GateConfig>, RunCmdError> {
        let Some(addr) = self.gate_listen else {
            return Ok(None);
        };
        let auth = match (&self.gate_token_file, self.gate_insecure_no_auth) {
            (Some(path), false) => GateAuth::TokenFile(path.clone()),
            (None, true) => GateAuth::Insecure,
            (None, false) => return Err(RunCmdError::GateTokenMissing),
            (Some(_), true) => return Err(RunCmdError::GateAuthConflict),
        };
        Ok(Some(GateConfig {
            addr,
            auth,
            per_second: self.gate_rate,
            burst: self.gate_burst,
        }))
    }

    fn shard(&self) -> Shard {
        Shard::new(self.watch_label_selector.as_deref())
    }

    fn config(&self) -> RunConfig {
        RunConfig {
            scope: if self.namespaces.is_empty() {
                Scope::All
            } else {
                Scope::Namespaces(self.namespaces.clone())
            },
            allow: HostAllowList::new(self.allowed_hosts.clone())
                .allow_insecure_http(self.allow_insecure_http),
            concurrency: self.concurrency.max(1),
            settings: ReconcileSettings {
                recovery_grace: Duration::from_secs(self.recovery_grace_seconds),
                fetch_merge_requests: self.merge_requests,
                default_connection: self.default_connection.clone(),
                credentials: CredentialPolicy {
                    require_token_label: self.require_token_label,
                    ..CredentialPolicy::default()
                },
                ..ReconcileSettings::default()
            },
            operator_namespace: self.operator_namespace.clone(),
            instance: self.identity.clone(),
            webhook: None,
            shard: self.shard(),
            gate: None,
        }
    }
}

/// A client from the usual config (in-cluster, or KUBECONFIG), identifying itself as the
/// operator in the API server's audit log.
async fn kube_client() -> Result<kube::Client, RunCmdError> {
    let mut config = kube::Config::infer()
        .await
        .map_err(|e| RunCmdError::Config(kube::Error::InferConfig(e)))?;
    if let Ok(agent) = http::HeaderValue::from_str(&format!(
        "{}/{}",
        crate::api::names::FIELD_MANAGER,
        env!("CARGO_PKG_VERSION")
    )) {
        config.headers.push((http::header::USER_AGENT, agent));
    }
    kube::Client::try_from(config).map_err(RunCmdError::Config)
}

/// Resolve on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub async fn run(args: RunArgs) -> Result<(), RunCmdError> {
    telemetry::init(args.log_format);
    let mut config = args.config();
    config.webhook = args.webhook()?;
    let gate = args.gate()?;
    let lease = args.lease()?;
    if config.allow == HostAllowList::default() {
        tracing::warn!(
            "no --allowed-host given: every GitLab connection will be refused (HostNotAllowed)"
        );
    }
    if args.allow_insecure_http {
        tracing::warn!(
            "--allow-insecure-http: connections may use plain http, tokens can travel unencrypted"
        );
    }
    let client = kube_client().await?;
    let telemetry = Telemetry::default();
    let shutdown = CancellationToken::new();
    let admin_state = AdminState::new(Arc::clone(&telemetry.registry));
    let stop = shutdown.clone();
    let (addr, _admin) = admin::serve(args.admin_addr, admin_state.clone(), async move {
        stop.cancelled().await;
    })
    .await
    .map_err(|source| RunCmdError::Admin {
        addr: args.admin_addr,
        source,
    })?;
    tracing::info!(%addr, "admin server listening");
    if let Some(gate) = gate {
        let cache = GateCache::default();
        config.gate = Some(cache.clone());
        let stop = shutdown.clone();
        let (addr, server) = crate::gate::server::bind(
            &gate,
            cache.clone(),
            Arc::clone(&telemetry.gate),
            async move { stop.cancelled().await },
        )
        .await?;
        tracing::info!(%addr, "gate endpoint listening");
        tokio::spawn(async move {
            if let Err(err) = server.await {
                tracing::warn!(error = %err, "gate endpoint stopped");
            }
        });
        // Only the leader runs the controller and its cache: a standby keeps its own so every
        // replica behind the Service answers.
        if lease.is_some() {
            tokio::spawn(crate::gate::cache::follow(
                client.clone(),
                config.scope.clone(),
                config.shard.clone(),
                cache,
                shutdown.clone(),
            ));
        }
    }
    let signal = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        signal.cancel();
    });
    match lease {
        Some(lease) => {
            run_elected(client, config, lease, &telemetry, admin_state, shutdown).await?;
        }
        None => run_operator(client, config, &telemetry, admin_state, shutdown).await?,
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn run_args(args: &[&str]) -> RunArgs {
        let mut argv = vec!["gitlab-deployment-operator", "run"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(args) => *args,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn the_webhook_receiver_is_off_by_default() {
        // The environment variable would turn it on; this asserts the flag default.
        if std::env::var_os("GITLAB_WEBHOOK_ADDR").is_some() {
            return;
        }
        let args = run_args(&[]);
        assert_eq!(args.webhook().unwrap(), None);
        assert_eq!(args.config().webhook, None);
    }

    #[test]
    fn gate_flags() {
        if std::env::var_os("GATE_LISTEN").is_some()
            || std::env::var_os("GATE_TOKEN_FILE").is_some()
        {
            return;
        }
        assert_eq!(run_args(&[]).gate().unwrap(), None);
        assert!(matches!(
            run_args(&["--gate-listen", "127.0.0.1:8082"]).gate(),
            Err(RunCmdError::GateTokenMissing)
        ));
        assert!(matches!(
            run_args(&[
                "--gate-listen",
                "127.0.0.1:8082",
                "--gate-token-file",
                "/t",
                "--gate-insecure-no-auth"
            ])
            .gate(),
            Err(RunCmdError::GateAuthConflict)
        ));
        let config = run_args(&[
            "--gate-listen",
            "127.0.0.1:8082",
            "--gate-token-file",
            "/var/run/gate/token",
            "--gate-rate",
            "5",
        ])
        .gate()
        .unwrap()
        .unwrap();
        assert_eq!(
            config.auth,
            GateAuth::TokenFile("/var/run/gate/token".into())
        );
        assert_eq!(config.per_second.get(), 5);
        assert_eq!(config.burst.get(), 100);
        let insecure = run_args(&["--gate-listen", "127.0.0.1:8082", "--gate-insecure-no-auth"]);
        assert_eq!(insecure.gate().unwrap().unwrap().auth, GateAuth::Insecure);
    }

    #[test]
    fn webhook_flags() {
        let args = run_args(&[
            "--webhook-addr",
            "127.0.0.1:9443",
            "--operator-namespace",
            "ops",
            "--webhook-safety-net",
            "2m",
        ]);
        assert_eq!(
            args.webhook().unwrap(),
            Some(WebhookConfig {
                addr: "127.0.0.1:9443".parse().unwrap(),
                secret: SecretName {
                    namespace: "ops".into(),
                    name: "gitlab-webhook-tokens".into(),
                },
                safety_net: Duration::from_secs(120),
                safety_net_max: Duration::from_secs(3600),
                echo_wait: Duration::from_secs(120),
                advertise: Some("127.0.0.1:9443".parse().unwrap()),
            })
        );
        let args = run_args(&[
            "--webhook-addr",
            "0.0.0.0:8443",
            "--operator-namespace",
            "ops",
            "--pod-ip",
            "10.1.2.3",
        ]);
        let config = args.webhook().unwrap().unwrap();
        assert_eq!(config.safety_net, Duration::from_secs(1800));
        assert_eq!(
            config.advertise,
            Some("10.1.2.3:8443".parse().unwrap()),
            "a receiver on every interface is advertised at the pod's IP"
        );
        let args = run_args(&[
            "--webhook-addr",
            "127.0.0.1:9443",
            "--webhook-secret",
            "x/y",
        ]);
        assert_eq!(
            args.webhook().unwrap().unwrap().secret,
            SecretName {
                namespace: "x".into(),
                name: "y".into(),
            }
        );
        let args = run_args(&["--webhook-addr", "127.0.0.1:9443"]);
        if std::env::var_os("POD_NAMESPACE").is_none() {
            assert!(matches!(
                args.webhook(),
                Err(RunCmdError::WebhookSecretNamespace(_))
            ));
        }
    }
}
