//! `kubectl gld …`: the approver's and on-call person's view, by resource name.
//!
//! ```text
//! kubectl gld status web-prod -n apps        # what is deployed, GitLab's view, approvals, history
//! kubectl gld approve web-prod -n apps --comment "checked the canary"
//! kubectl gld reject web-prod -n apps --comment "error rate up"
//! kubectl gld refresh web-prod -n apps       # ask the operator to re-read GitLab now
//! kubectl gld open web-prod -n apps          # the deployment's page in GitLab
//! ```
//!
//! kubectl finds the plugin as an executable named `kubectl-gld` on `PATH`: a copy of (or link
//! to) the operator binary under that name runs this subcommand (see [`super::argv_for`]).
//! kubectl hands the plugin only the words after `gld`, so the cluster flags (`-n`,
//! `--kubeconfig`, `--context`) come after the verb, and `KUBECONFIG` works as for kubectl.
//!
//! It acts as the person running it: the GitLab token is theirs (`GITLAB_TOKEN`, as for
//! `deployments`), and GitLab records the approval under their name. From the cluster it reads
//! the GitlabDeployment and the URL of its connection, never the operator's token Secret. A
//! connection URL is what anyone who can edit that connection wrote, so the token is sent
//! over https only (`--allow-insecure-http` for a local emulator) and, when the person names
//! their GitLab (`GITLAB_URL`), only if the connection points at that same GitLab.

use std::path::PathBuf;

use chrono::Utc;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};
use serde_json::json;
use url::Url;

use super::deployments::{
    DeploymentsError, OutputFormat, Printer, TokenKindArg, client_builder, render_table,
    resolve_token,
};
use crate::api::names::REFRESH_ANNOTATION;
use crate::api::validate::ConnectionTarget;
use crate::api::{
    ClusterGitlabConnection, GitlabConnection, GitlabDeployment, deployment::ConnectionKind,
    names::DEFAULT_CONNECTION_NAME,
};
use crate::gitlab::{self, ApprovalStatus, ApproveDeployment, ProjectId};

/// `User-Agent` of the plugin's requests, to GitLab and to the API server, so audit logs tell
/// a person's `kubectl gld` from the operator.
const USER_AGENT: &str = concat!("kubectl-gld/", env!("CARGO_PKG_VERSION"));

/// `kubectl gld` and its flags (accepted before or after the verb).
#[derive(Debug, clap::Args)]
pub struct GldArgs {
    /// Kubeconfig file [default: KUBECONFIG, then ~/.kube/config]
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context [default: the current context]
    #[arg(long, global = true)]
    pub context: Option<String>,

    /// Namespace of the GitlabDeployment [default: the context's namespace, then `default`]
    #[arg(long, short = 'n', global = true)]
    pub namespace: Option<String>,

    /// Your GitLab, with or without /api/v4 [env: GITLAB_URL]. When set, the token is sent
    /// only if the resource's connection points at this same GitLab.
    #[arg(long, global = true, value_name = "URL")]
    pub gitlab_url: Option<String>,

    /// Your token on the command line. Discouraged: it shows in `ps` and shell history; set
    /// GITLAB_TOKEN (or GITLAB_OAUTH_TOKEN) instead.
    #[arg(long, global = true, value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Kind of the --token value.
    #[arg(long, global = true, value_enum, default_value_t = TokenKindArg::Private, requires = "token")]
    pub token_kind: TokenKindArg,

    /// Connection of resources without `spec.connectionRef` (the operator's
    /// `--default-connection`).
    #[arg(long, global = true, default_value = "GitlabConnection/default", value_parser = super::run::parse_connection)]
    pub default_connection: ConnectionTarget,

    /// Send the token to a connection whose URL is plain http (a local emulator only).
    #[arg(long, global = true)]
    pub allow_insecure_http: bool,

    /// Extra trusted CA certificates (PEM bundle) for a GitLab with a private CA.
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Per-request timeout in seconds.
    #[arg(long, global = true, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,

    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    #[command(subcommand)]
    pub command: GldCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum GldCommand {
    /// What is deployed, GitLab's view of it, its approvals and the history.
    Status(NameArg),
    /// Approve the current GitLab deployment (as you), then have the operator re-read it.
    Approve(DecisionArgs),
    /// Reject the current GitLab deployment (as you), then have the operator re-read it.
    Reject(DecisionArgs),
    /// Ask the operator to re-read GitLab now (sets the refresh annotation).
    Refresh(NameArg),
    /// Print the GitLab URL of the current deployment.
    Open(NameArg),
}

#[derive(Debug, clap::Args)]
pub struct NameArg {
    /// GitlabDeployment name.
    pub name: String,
}

#[derive(Debug, clap::Args)]
pub struct DecisionArgs {
    /// GitlabDeployment name.
    pub name: String,
    /// Comment recorded with the decision.
    #[arg(long)]
    pub comment: Option<String>,
    /// Approval rule to count the decision for (a group/user/role name), when several match.
    #[arg(long)]
    pub represented_as: Option<String>,
}

/// What went wrong. GitLab errors and usage errors keep the exit codes of `deployments`.
#[derive(Debug, thiserror::Error)]
pub enum GldError {
    #[error(transparent)]
    Gitlab(#[from] DeploymentsError),
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("{0}")]
    NotReported(String),
}

impl GldError {
    /// Exit codes: as `deployments` (2 usage, 3 unauthorized, …), 14 for the cluster, 15 when
    /// the resource has no GitLab deployment yet.
    pub fn exit_code(&self) -> u8 {
        match self {
            GldError::Gitlab(e) => e.exit_code(),
            GldError::Cluster(_) => 14,
            GldError::NotReported(_) => 15,
        }
    }

    fn usage(message: impl Into<String>) -> Self {
        GldError::Gitlab(DeploymentsError::Usage(message.into()))
    }
}

impl From<gitlab::Error> for GldError {
    fn from(e: gitlab::Error) -> Self {
        GldError::Gitlab(DeploymentsError::Gitlab(e))
    }
}

impl From<std::io::Error> for GldError {
    fn from(e: std::io::Error) -> Self {
        GldError::Gitlab(DeploymentsError::Output(e))
    }
}

/// Run `kubectl gld …`.
pub async fn run(args: GldArgs) -> Result<(), GldError> {
    gitlab::install_crypto_provider();
    let (client, namespace) = kube_client(&args).await?;
    let out = Printer::new(args.output);
    let api: Api<GitlabDeployment> = Api::namespaced(client.clone(), &namespace);
    let name = match &args.command {
        GldCommand::Status(a) | GldCommand::Refresh(a) | GldCommand::Open(a) => &a.name,
        GldCommand::Approve(a) | GldCommand::Reject(a) => &a.name,
    };
    let gd = api
        .get_opt(name)
        .await
        .map_err(|e| {
            GldError::Cluster(format!("reading GitlabDeployment {namespace}/{name}: {e}"))
        })?
        .ok_or_else(|| {
            GldError::Cluster(format!(
                "no GitlabDeployment {name} in namespace {namespace}"
            ))
        })?;
    match &args.command {
        GldCommand::Refresh(_) => {
            let value = refresh(&api, name).await?;
            out.write(&format!(
                "gitlabdeployment {namespace}/{name}: {REFRESH_ANNOTATION}={value}\n"
            ))?;
            Ok(())
        }
        GldCommand::Open(_) => {
            // No token leaves the machine here, so any scheme will do.
            let url = connection_url(&client, &gd, &args).await?;
            let api = gitlab::api_base(&url).map_err(|e| GldError::usage(e.to_string()))?;
            let web = deployment_web_url(&web_root(&api), &gd)?;
            out.write(&format!("{web}\n"))?;
            Ok(())
        }
        GldCommand::Status(_) => status(&client, &gd, &args, &out).await,
        GldCommand::Approve(a) | GldCommand::Reject(a) => {
            let decision = if matches!(args.command, GldCommand::Approve(_)) {
                ApprovalStatus::Approved
            } else {
                ApprovalStatus::Rejected
            };
            let (id, project) = current_deployment(&gd)?;
            let gitlab = gitlab_client(&client, &gd, &args).await?;
            let approval = gitlab
                .approve_deployment(
                    &project,
                    id,
                    &ApproveDeployment {
                        status: decision,
                        comment: a.comment.clone(),
                        represented_as: a.represented_as.clone(),
                    },
                )
                .await?;
            out.approval(id, &approval)?;
            // The operator polls pending approvals with a backoff; tell it to look now.
            refresh(&api, name).await?;
            Ok(())
        }
    }
}

/// A kube client from the person's kubeconfig, and the namespace to look in.
async fn kube_client(args: &GldArgs) -> Result<(Client, String), GldError> {
    let kubeconfig = match &args.kubeconfig {
        Some(path) => Kubeconfig::read_from(path),
        None => Kubeconfig::read(),
    }
    .map_err(|e| GldError::Cluster(format!("kubeconfig: {e}")))?;
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| GldError::Cluster(format!("kubeconfig: {e}")))?;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| GldError::Cluster(e.to_string()))?;
    Ok((client, namespace))
}

/// The GitLab URL of the resource's connection, as written there.
async fn connection_url(
    client: &Client,
    gd: &GitlabDeployment,
    args: &GldArgs,
) -> Result<String, GldError> {
    let namespace = gd.namespace().unwrap_or_default();
    let target = ConnectionTarget::of(gd.spec.connection_ref.as_ref(), &args.default_connection);
    let url = match target.kind {
        ConnectionKind::GitlabConnection => {
            let api: Api<GitlabConnection> = Api::namespaced(client.clone(), &namespace);
            api.get_opt(&target.name)
                .await
                .map_err(|e| GldError::Cluster(e.to_string()))?
                .map(|c| c.spec.settings.url)
        }
        ConnectionKind::ClusterGitlabConnection => {
            let api: Api<ClusterGitlabConnection> = Api::all(client.clone());
            api.get_opt(&target.name)
                .await
                .map_err(|e| GldError::Cluster(e.to_string()))?
                .map(|c| c.spec.settings.url)
        }
    }
    .ok_or_else(|| {
        let hint = if target.name == DEFAULT_CONNECTION_NAME && gd.spec.connection_ref.is_none() {
            " (the resource names no connection; pass --default-connection as the operator's)"
        } else {
            ""
        };
        GldError::Cluster(format!(
            "no {:?} {} for {namespace}/{}{hint}",
            target.kind,
            target.name,
            gd.name_any()
        ))
    })?;
    Ok(url)
}

/// Whether the person's token may go to `connection_url` (from the cluster): https unless
/// `allow_insecure_http`, and the same GitLab as `expected` (the person's `GITLAB_URL`) when
/// given. Returns the API root.
pub fn check_gitlab_url(
    connection_url: &str,
    expected: Option<&str>,
    allow_insecure_http: bool,
) -> Result<Url, String> {
    let api = gitlab::api_base(connection_url).map_err(|e| format!("the connection's {e}"))?;
    if let Some(expected) = expected {
        let mine = gitlab::api_base(expected).map_err(|e| format!("GITLAB_URL: {e}"))?;
        if mine != api {
            return Err(format!(
                "the resource's connection points at {}, not at your GITLAB_URL {}; \
                 not sending your token there",
                web_root(&api),
                web_root(&mine)
            ));
        }
    }
    if api.scheme() == "http" && !allow_insecure_http {
        return Err(format!(
            "the resource's connection uses plain http ({}); refusing to send your token \
             unencrypted (--allow-insecure-http for a local emulator)",
            web_root(&api)
        ));
    }
    Ok(api)
}

/// GitLab's web root from its API root (`https://host/gitlab/api/v4/` → `https://host/gitlab`).
fn web_root(api: &Url) -> String {
    api.as_str()
        .trim_end_matches('/')
        .trim_end_matches("/api/v4")
        .to_owned()
}

/// The page of the resource's current deployment:
/// `ROOT/PROJECT/-/environments/ENV_ID/deployments/IID` (GitLab 16.x+ deployment page), the
/// environment list without an environment id. A numeric project id has no path to build a
/// link with, so it links `ROOT/projects/ID`, which GitLab redirects to the project (unverified
/// for every version).
pub fn deployment_web_url(root: &str, gd: &GitlabDeployment) -> Result<String, GldError> {
    let record = gd
        .status
        .as_ref()
        .and_then(|s| s.deployment.as_ref())
        .ok_or_else(|| not_reported(gd))?;
    let project = ProjectId::parse(&gd.spec.project)
        .map_err(|e| GldError::usage(format!("spec.project {:?}: {e}", gd.spec.project)))?;
    Ok(match project {
        ProjectId::Id(id) => format!("{root}/projects/{id}"),
        ProjectId::Path(path) => match record.environment_id {
            Some(env) => format!(
                "{root}/{path}/-/environments/{env}/deployments/{}",
                record.iid
            ),
            None => format!("{root}/{path}/-/environments"),
        },
    })
}

fn not_reported(gd: &GitlabDeployment) -> GldError {
    GldError::NotReported(format!(
        "{}/{} has no GitLab deployment yet (kubectl describe gld {} for why)",
        gd.namespace().unwrap_or_default(),
        gd.name_any(),
        gd.name_any()
    ))
}

/// The current GitLab deployment's id and the project.
fn current_deployment(gd: &GitlabDeployment) -> Result<(u64, ProjectId), GldError> {
    let id = gd
        .status
        .as_ref()
        .and_then(|s| s.deployment.as_ref())
        .map(|d| d.id.get())
        .ok_or_else(|| not_reported(gd))?;
    let project = ProjectId::parse(&gd.spec.project)
        .map_err(|e| GldError::usage(format!("spec.project {:?}: {e}", gd.spec.project)))?;
    Ok((id, project))
}

async fn gitlab_client(
    client: &Client,
    gd: &GitlabDeployment,
    args: &GldArgs,
) -> Result<gitlab::GitlabClient, GldError> {
    let url = check_gitlab_url(
        &connection_url(client, gd, args).await?,
        args.gitlab_url
            .clone()
            .or_else(|| std::env::var("GITLAB_URL").ok())
            .filter(|u| !u.trim().is_empty())
            .as_deref(),
        args.allow_insecure_http,
    )
    .map_err(GldError::usage)?;
    let token = resolve_token(args.token.as_deref(), args.token_kind, &|k| {
        std::env::var(k).ok()
    })?;
    Ok(client_builder(
        url.to_string(),
        token,
        args.timeout,
        false,
        args.ca_file.as_deref(),
    )?
    .user_agent(USER_AGENT)
    .build()?)
}

/// Set the refresh annotation to a new value (the time), as `kubectl annotate` would.
async fn refresh(api: &Api<GitlabDeployment>, name: &str) -> Result<String, GldError> {
    let value = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {REFRESH_ANNOTATION: value}}})),
    )
    .await
    .map_err(|e| GldError::Cluster(format!("setting {REFRESH_ANNOTATION}: {e}")))?;
    Ok(value)
}

/// `status`: the resource as the operator sees it, then GitLab's view of the current
/// deployment (as the person), then the history.
async fn status(
    client: &Client,
    gd: &GitlabDeployment,
    args: &GldArgs,
    out: &Printer,
) -> Result<(), GldError> {
    let gitlab = match current_deployment(gd) {
        Ok((id, project)) => {
            let gitlab = gitlab_client(client, gd, args).await?;
            Some(gitlab.get_deployment(&project, id).await?)
        }
        Err(GldError::NotReported(_)) => None,
        Err(e) => return Err(e),
    };
    if args.output == OutputFormat::Json {
        out.json(&json!({
            "name": gd.name_any(),
            "namespace": gd.namespace(),
            "spec": gd.spec,
            "status": gd.status,
            "gitlab": gitlab,
        }))?;
        return Ok(());
    }
    out.write(&summary(gd))?;
    match &gitlab {
        Some(d) => {
            out.write("\nGitLab:\n")?;
            out.deployment(d)?;
        }
        None => out.write("\nGitLab: no deployment reported yet\n")?,
    }
    let history = gd
        .status
        .as_ref()
        .map(|s| s.history.as_slice())
        .unwrap_or_default();
    if !history.is_empty() {
        let rows: Vec<Vec<String>> = history
            .iter()
            .map(|h| {
                vec![
                    h.deployment_id.to_string(),
                    h.status.to_string(),
                    h.sha.chars().take(8).collect(),
                    h.ref_name.clone(),
                    h.created_at.as_ref().map_or_else(
                        || "-".to_owned(),
                        |t| t.0.strftime("%Y-%m-%d %H:%M:%S").to_string(),
                    ),
                    h.finished_at.as_ref().map_or_else(
                        || "-".to_owned(),
                        |t| t.0.strftime("%Y-%m-%d %H:%M:%S").to_string(),
                    ),
                ]
            })
            .collect();
        out.write("\nHistory:\n")?;
        out.write(&render_table(
            &["ID", "STATUS", "SHA", "REF", "CREATED", "FINISHED"],
            &rows,
        ))?;
    }
    Ok(())
}

/// The cluster's side of `status` as a key/value block (pure, so it is table-tested).
pub fn summary(gd: &GitlabDeployment) -> String {
    let status = gd.status.clone().unwrap_or_default();
    let mut rows = vec![
        vec![
            "name".to_owned(),
            format!("{}/{}", gd.namespace().unwrap_or_default(), gd.name_any()),
        ],
        vec!["project".to_owned(), gd.spec.project.clone()],
        vec!["environment".to_owned(), gd.spec.environment.clone()],
        vec![
            "target".to_owned(),
            format!("{}/{}", gd.spec.target.kind, gd.spec.target.name),
        ],
        vec![
            "phase".to_owned(),
            status
                .phase
                .map_or_else(|| "-".to_owned(), |p| format!("{p:?}")),
        ],
    ];
    if let Some(r) = &status.rollout {
        let message = if r.message.is_empty() {
            String::new()
        } else {
            format!(": {}", r.message)
        };
        rows.push(vec![
            "rollout".to_owned(),
            format!("{} ({}){message}", r.state, r.reason),
        ]);
    }
    match &status.deployment {
        Some(d) => rows.push(vec![
            "deployed".to_owned(),
            format!(
                "{} {} ({}), GitLab deployment {} (#{})",
                d.sha, d.ref_name, d.status, d.id, d.iid
            ),
        ]),
        None => rows.push(vec![
            "deployed".to_owned(),
            "nothing reported yet".to_owned(),
        ]),
    }
    if let Some(a) = &status.approval {
        rows.push(vec![
            "approvals".to_owned(),
            format!(
                "{:?} {}",
                a.state,
                status.approvals_summary.as_deref().unwrap_or("")
            )
            .trim_end()
            .to_owned(),
        ]);
        for r in &a.approvals {
            rows.push(vec![
                "approval".to_owned(),
                format!(
                    "{} by {}{}",
                    r.status,
                    r.user,
                    r.comment
                        .as_deref()
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default()
                ),
            ]);
        }
    }
    if let Some(c) = status
        .conditions
        .iter()
        .find(|c| c.type_ == crate::api::names::condition_type::STALLED && c.status == "True")
    {
        rows.push(vec!["stalled".to_owned(), c.message.clone()]);
    }
    let table = render_table(&["FIELD", "VALUE"], &rows);
    table.lines().skip(1).map(|l| format!("{l}\n")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_only_to_https_and_to_the_persons_gitlab() {
        // (connection url, GITLAB_URL, allow http, Ok(api root) or a word of the refusal)
        type Case = (
            &'static str,
            Option<&'static str>,
            bool,
            Result<&'static str, &'static str>,
        );
        let cases: &[Case] = &[
            (
                "https://gitlab.example.com",
                None,
                false,
                Ok("https://gitlab.example.com/api/v4/"),
            ),
            (
                "https://gitlab.example.com/api/v4",
                Some("https://gitlab.example.com/"),
                false,
                Ok("https://gitlab.example.com/api/v4/"),
            ),
            (
                "https://evil.example",
                Some("https://gitlab.example.com"),
                false,
                Err("not at your GITLAB_URL"),
            ),
            (
                "https://gitlab.example.com:8443",
                Some("https://gitlab.example.com"),
                false,
                Err("not at your GITLAB_URL"),
            ),
            ("http://gitlab.example.com", None, false, Err("plain http")),
            (
                "http://127.0.0.1:8080",
                None,
                true,
                Ok("http://127.0.0.1:8080/api/v4/"),
            ),
            ("ftp://gitlab.example.com", None, true, Err("https://")),
        ];
        for (url, expected, http, want) in cases {
            let got = check_gitlab_url(url, *expected, *http);
            match (want, &got) {
                (Ok(w), Ok(u)) => assert_eq!(u.as_str(), *w, "{url}"),
                (Err(w), Err(e)) => assert!(e.contains(w), "{url}: {e}"),
                _ => panic!("{url} {expected:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    fn gd(project: &str, env_id: Option<i64>) -> GitlabDeployment {
        serde_json::from_value(json!({
            "apiVersion": "gitlab-operator.io/v1alpha1", "kind": "GitlabDeployment",
            "metadata": {"name": "web-prod", "namespace": "apps"},
            "spec": {"project": project, "environment": "production", "ref": "main",
                     "sha": "a".repeat(40),
                     "target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}},
            "status": {"deployment": {"id": 12, "iid": 3, "sha": "a".repeat(40), "ref": "main",
                                      "status": "success", "environmentId": env_id}}
        }))
        .unwrap()
    }

    #[test]
    fn open_links_the_deployment_page() {
        let root = "https://gitlab.example.com/gl";
        let cases = [
            (
                gd("team/app", Some(5)),
                "https://gitlab.example.com/gl/team/app/-/environments/5/deployments/3",
            ),
            (
                gd("team/app", None),
                "https://gitlab.example.com/gl/team/app/-/environments",
            ),
            (
                gd("42", Some(5)),
                "https://gitlab.example.com/gl/projects/42",
            ),
        ];
        for (gd, want) in cases {
            assert_eq!(deployment_web_url(root, &gd).unwrap(), want);
        }
        let mut fresh = gd("team/app", Some(5));
        fresh.status = None;
        assert_eq!(
            deployment_web_url(root, &fresh).unwrap_err().exit_code(),
            15
        );
        let api = Url::parse("https://gitlab.example.com/gl/api/v4/").unwrap();
        assert_eq!(web_root(&api), root);
    }

    #[test]
    fn summary_shows_what_is_deployed() {
        let text = summary(&gd("team/app", Some(5)));
        assert!(text.contains("apps/web-prod"), "{text}");
        assert!(
            text.contains(&format!(
                "{} main (success), GitLab deployment 12 (#3)",
                "a".repeat(40)
            )),
            "{text}"
        );
    }
}
