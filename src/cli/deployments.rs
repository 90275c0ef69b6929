//! `deployments`: GitLab's whole Deployments API from a shell.
//!
//! ```text
//! gitlab-deployment-operator deployments --project group/app list --environment production
//! gitlab-deployment-operator deployments -p 42 create --environment staging --sha abc123 --ref main --status running
//! gitlab-deployment-operator deployments -p 42 update 1001 --status success
//! gitlab-deployment-operator deployments -p 42 -o json list --all
//! GITLAB_WEBHOOK_TOKEN=… gitlab-deployment-operator deployments -p 42 hooks create --hook-url https://hooks.example.com/hooks/gitlab
//! ```
//!
//! Connection: `--url` or `GITLAB_URL` (inside GitLab CI `CI_SERVER_URL` is the default), the
//! token from `GITLAB_TOKEN` (private/personal/project token), `GITLAB_OAUTH_TOKEN` (OAuth) or
//! `CI_JOB_TOKEN` (job token), in that order; `--token` exists but is discouraged (it shows in
//! `ps` and shell history). `--project` takes a numeric id or a full path; inside GitLab CI
//! `CI_PROJECT_ID` is the default. The token is never printed.
//!
//! Output: an aligned table (or key/value block) by default, `-o json` for scripts.
//!
//! Exit codes, one per error category so scripts can react:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | internal: unreadable GitLab answer (`DecodeError`), unexpected status, output failure |
//! | 2 | usage: bad flags, missing URL/token/project, bad configuration (`ConfigError`) |
//! | 3 | `Unauthorized` (401): token invalid, expired or revoked |
//! | 4 | `Forbidden` (403): role or token scope insufficient |
//! | 5 | `NotFound` (404): project, deployment or route |
//! | 6 | `Validation` (400): parameters GitLab refused |
//! | 7 | `InvalidTransition` (400): status change not allowed from the current status |
//! | 8 | `NotAllowed` (400/403): business rule (running or current deployment, approval rules, CI deployment) |
//! | 9 | `Conflict` (409/412) |
//! | 10 | `RateLimited` (429) |
//! | 11 | `ServerError` (5xx) |
//! | 12 | `Timeout` |
//! | 13 | `TransportError`: connection, DNS or TLS failure |

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use futures::TryStreamExt;

use crate::gitlab::{
    self, ApprovalStatus, ApproveDeployment, Category, CreateDeployment, CreateHook, Deployment,
    DeploymentApproval, DeploymentOrderBy, DeploymentStatus, GitlabClient, ListDeployments,
    ListMergeRequests, MergeRequest, MergeRequestOrderBy, MergeRequestState, Page, ProjectHook,
    ProjectId, RetryPolicy, SortOrder, Token, TokenKind, WriteStatus,
};

/// A clap parser listing GitLab's wire values and yielding the typed value.
fn wire<T>(values: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: std::str::FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(values).try_map(|s| s.parse::<T>())
}

/// Timestamps for filters: RFC 3339 (`2024-05-01T10:00:00Z`, `…+02:00`) or a date
/// (`2024-05-01`, midnight UTC).
fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            format!("{s:?} is not a timestamp; use RFC 3339 (2024-05-01T10:00:00Z) or a date (2024-05-01)")
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TokenKindArg {
    Private,
    Oauth,
    Job,
}

impl From<TokenKindArg> for TokenKind {
    fn from(k: TokenKindArg) -> Self {
        match k {
            TokenKindArg::Private => TokenKind::Private,
            TokenKindArg::Oauth => TokenKind::OAuth,
            TokenKindArg::Job => TokenKind::Job,
        }
    }
}

/// `deployments` and its connection flags (accepted before or after the subcommand).
#[derive(Debug, clap::Args)]
pub struct DeploymentsArgs {
    /// GitLab URL, with or without /api/v4 [env: GITLAB_URL, then CI_SERVER_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,

    /// Token on the command line. Discouraged: it shows in `ps` and shell history; set
    /// GITLAB_TOKEN, GITLAB_OAUTH_TOKEN or CI_JOB_TOKEN instead.
    #[arg(long, global = true, value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Kind of the --token value.
    #[arg(long, global = true, value_enum, default_value_t = TokenKindArg::Private, requires = "token")]
    pub token_kind: TokenKindArg,

    /// Project: numeric id or full path (group/subgroup/project) [env: CI_PROJECT_ID]
    #[arg(long, short = 'p', global = true, value_name = "ID|PATH")]
    pub project: Option<String>,

    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Per-request timeout in seconds.
    #[arg(long, global = true, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,

    /// Extra trusted CA certificates (PEM bundle) for a GitLab with a private CA.
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Do not retry failed reads/updates (5xx, timeouts) and do not wait out a 429.
    #[arg(long, global = true)]
    pub no_retry: bool,

    /// Boxed: the subcommands' flags are many, and `Command` should stay small.
    #[command(subcommand)]
    pub command: Box<DeploymentsCommand>,
}

#[derive(Debug, clap::Subcommand)]
pub enum DeploymentsCommand {
    /// List a project's deployments (GET /projects/:id/deployments).
    List(ListArgs),
    /// Show one deployment (GET /projects/:id/deployments/:deployment_id).
    Get(IdArgs),
    /// Create a deployment (POST /projects/:id/deployments). Never retried automatically.
    Create(CreateArgs),
    /// Set a deployment's status (PUT /projects/:id/deployments/:deployment_id).
    Update(UpdateArgs),
    /// Delete a deployment (DELETE /projects/:id/deployments/:deployment_id; Maintainer).
    Delete(IdArgs),
    /// Merge requests shipped by a deployment (GET …/:deployment_id/merge_requests).
    MergeRequests(MergeRequestsArgs),
    /// Approve or reject a blocked deployment (POST …/:deployment_id/approval; GitLab EE).
    Approve(ApproveArgs),
    /// Project webhooks that send Deployment Hooks to the operator's receiver
    /// (/projects/:id/hooks; Maintainer). See docs/webhooks.md.
    #[command(subcommand)]
    Hooks(HooksCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum HooksCommand {
    /// Create a hook for deployment events only (POST /projects/:id/hooks). The secret token
    /// comes from GITLAB_WEBHOOK_TOKEN or --secret-file, never from the command line.
    Create(CreateHookArgs),
    /// List the project's hooks (GET /projects/:id/hooks).
    List,
    /// Delete a hook (DELETE /projects/:id/hooks/:hook_id).
    Delete(HookIdArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateHookArgs {
    /// Where GitLab posts, e.g. https://gitlab-hooks.example.com/hooks/gitlab (`--url` is
    /// GitLab's own URL).
    #[arg(long, value_name = "URL")]
    pub hook_url: String,
    /// File holding the secret token (the value of the connection's key in the operator's
    /// webhook Secret) [default: env GITLAB_WEBHOOK_TOKEN].
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Name shown in GitLab's webhook list.
    #[arg(long)]
    pub name: Option<String>,
    /// Let GitLab skip TLS verification of the receiver (not recommended).
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
}

#[derive(Debug, clap::Args)]
pub struct HookIdArgs {
    /// Hook id.
    pub hook_id: u64,
}

#[derive(Debug, clap::Args)]
pub struct PageArgs {
    /// Page to show (1-based).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub page: u32,
    /// Items per page (GitLab: default 20, at most 100).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub per_page: Option<u32>,
    /// Walk every page.
    #[arg(long, conflicts_with = "page")]
    pub all: bool,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only this environment (by name).
    #[arg(long)]
    pub environment: Option<String>,
    /// Only deployments with this status.
    #[arg(long, value_parser = wire::<DeploymentStatus>(DeploymentStatus::VALUES))]
    pub status: Option<DeploymentStatus>,
    /// Order by (GitLab default id; `ref` only on GitLab < 16.3).
    #[arg(long, value_parser = wire::<DeploymentOrderBy>(DeploymentOrderBy::VALUES))]
    pub order_by: Option<DeploymentOrderBy>,
    /// Sort direction (GitLab default asc).
    #[arg(long, value_parser = wire::<SortOrder>(SortOrder::VALUES))]
    pub sort: Option<SortOrder>,
    /// Updated at or after (needs --order-by updated_at).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub updated_after: Option<DateTime<Utc>>,
    /// Updated at or before (needs --order-by updated_at).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub updated_before: Option<DateTime<Utc>>,
    /// Finished at or after (needs --order-by finished_at --status success).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub finished_after: Option<DateTime<Utc>>,
    /// Finished before (needs --order-by finished_at --status success).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub finished_before: Option<DateTime<Utc>>,
    #[command(flatten)]
    pub pages: PageArgs,
}

#[derive(Debug, clap::Args)]
pub struct IdArgs {
    /// Deployment id (the global `id`, not the per-project `iid`).
    pub deployment_id: u64,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Environment name (created by GitLab if it does not exist).
    #[arg(long)]
    pub environment: String,
    /// Commit SHA that is deployed.
    #[arg(long)]
    pub sha: String,
    /// Branch or tag name that is deployed.
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: String,
    /// The ref is a tag (`--tag`, or `--tag=false`).
    #[arg(long, num_args = 0..=1, default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tag: bool,
    /// Initial status.
    #[arg(long, value_parser = wire::<WriteStatus>(WriteStatus::VALUES))]
    pub status: WriteStatus,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Deployment id (the global `id`).
    pub deployment_id: u64,
    /// New status.
    #[arg(long, value_parser = wire::<WriteStatus>(WriteStatus::VALUES))]
    pub status: WriteStatus,
}

#[derive(Debug, clap::Args)]
pub struct MergeRequestsArgs {
    /// Deployment id (the global `id`).
    pub deployment_id: u64,
    /// Only merge requests in this state.
    #[arg(long, value_parser = wire::<MergeRequestState>(MergeRequestState::VALUES))]
    pub state: Option<MergeRequestState>,
    /// Order by (GitLab default created_at).
    #[arg(long, value_parser = wire::<MergeRequestOrderBy>(MergeRequestOrderBy::VALUES))]
    pub order_by: Option<MergeRequestOrderBy>,
    /// Sort direction (GitLab default desc).
    #[arg(long, value_parser = wire::<SortOrder>(SortOrder::VALUES))]
    pub sort: Option<SortOrder>,
    /// Milestone title (`None`, `Any` also accepted by GitLab).
    #[arg(long)]
    pub milestone: Option<String>,
    /// Labels (repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    #[arg(long)]
    pub author_id: Option<u64>,
    #[arg(long)]
    pub author_username: Option<String>,
    #[arg(long)]
    pub assignee_id: Option<u64>,
    #[arg(long)]
    pub reviewer_id: Option<u64>,
    /// Search in title and description.
    #[arg(long)]
    pub search: Option<String>,
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub created_after: Option<DateTime<Utc>>,
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub created_before: Option<DateTime<Utc>>,
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub updated_after: Option<DateTime<Utc>>,
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub updated_before: Option<DateTime<Utc>>,
    #[command(flatten)]
    pub pages: PageArgs,
}

#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// Deployment id (the global `id`).
    pub deployment_id: u64,
    /// Decision.
    #[arg(long, default_value = "approved", value_parser = wire::<ApprovalStatus>(ApprovalStatus::VALUES))]
    pub status: ApprovalStatus,
    /// Comment recorded with the decision.
    #[arg(long)]
    pub comment: Option<String>,
    /// Approval rule to count the decision for (a group/user/role name), when several match.
    #[arg(long)]
    pub represented_as: Option<String>,
}

/// What went wrong, with the exit code documented in the module table.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentsError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Gitlab(#[from] gitlab::Error),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl DeploymentsError {
    /// Exit code per error category (module doc table).
    pub fn exit_code(&self) -> u8 {
        match self {
            DeploymentsError::Usage(_) => 2,
            DeploymentsError::Output(_) => 1,
            DeploymentsError::Gitlab(e) => match e.class() {
                Category::ConfigError => 2,
                Category::Unauthorized => 3,
                Category::Forbidden => 4,
                Category::NotFound => 5,
                Category::Validation => 6,
                Category::InvalidTransition => 7,
                Category::NotAllowed => 8,
                Category::Conflict => 9,
                Category::RateLimited => 10,
                Category::ServerError => 11,
                Category::Timeout => 12,
                Category::TransportError => 13,
                // `SendDeadlinePassed` needs a deadline, which the CLI never sets.
                Category::DecodeError
                | Category::UnexpectedStatus
                | Category::SendDeadlinePassed => 1,
            },
        }
    }
}

/// Reads the environment; a seam so tests of the resolution rules need no process env.
fn resolve_connection(
    args: &DeploymentsArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Token, ProjectId), DeploymentsError> {
    let non_empty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let url = args
        .url
        .clone()
        .or_else(|| non_empty("GITLAB_URL"))
        .or_else(|| non_empty("CI_SERVER_URL"))
        .ok_or_else(|| {
            DeploymentsError::Usage(
                "no GitLab URL: pass --url or set GITLAB_URL (e.g. https://gitlab.example.com)"
                    .to_owned(),
            )
        })?;
    let token = resolve_token(args.token.as_deref(), args.token_kind, env)?;
    let project_text = args
        .project
        .clone()
        .or_else(|| non_empty("CI_PROJECT_ID"))
        .ok_or_else(|| {
            DeploymentsError::Usage(
                "no project: pass --project with a numeric id or a full path (group/app)"
                    .to_owned(),
            )
        })?;
    let project = ProjectId::parse(&project_text)
        .map_err(|e| DeploymentsError::Usage(format!("--project {project_text:?}: {e}")))?;
    Ok((url, token, project))
}

/// The user's token: `--token` (of `kind`), else `GITLAB_TOKEN`, `GITLAB_OAUTH_TOKEN`,
/// `CI_JOB_TOKEN`, in that order. Shared with `kubectl gld`, which acts as the person too.
pub(crate) fn resolve_token(
    flag: Option<&str>,
    kind: TokenKindArg,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Token, DeploymentsError> {
    let non_empty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    match flag {
        Some(t) => Ok(Token::new(kind.into(), t.to_owned())),
        None => non_empty("GITLAB_TOKEN")
            .map(Token::private)
            .or_else(|| non_empty("GITLAB_OAUTH_TOKEN").map(Token::oauth))
            .or_else(|| non_empty("CI_JOB_TOKEN").map(Token::job))
            .ok_or_else(|| {
                DeploymentsError::Usage(
                    "no GitLab token: set GITLAB_TOKEN (personal/project access token with the \
                     `api` scope), GITLAB_OAUTH_TOKEN or CI_JOB_TOKEN"
                        .to_owned(),
                )
            }),
    }
}

/// A client for a person at a shell: per-request timeout, optional private CA, retries
/// unless `no_retry`. Shared with `kubectl gld`.
pub(crate) fn client_builder(
    url: String,
    token: Token,
    timeout_seconds: u64,
    no_retry: bool,
    ca_file: Option<&std::path::Path>,
) -> Result<gitlab::GitlabClientBuilder, DeploymentsError> {
    if timeout_seconds == 0 {
        return Err(DeploymentsError::Usage(
            "--timeout must be at least 1 second".to_owned(),
        ));
    }
    let mut builder =
        GitlabClient::builder(url, token).timeout(Duration::from_secs(timeout_seconds));
    if no_retry {
        builder = builder.retry(RetryPolicy::none());
    }
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            DeploymentsError::Usage(format!("cannot read --ca-file {}: {e}", path.display()))
        })?;
        builder = builder.ca_bundle_pem(pem);
    }
    Ok(builder)
}

/// Run `deployments …`.
pub async fn run(args: DeploymentsArgs) -> Result<(), DeploymentsError> {
    let (url, token, project) = resolve_connection(&args, &|k| std::env::var(k).ok())?;
    let client = client_builder(
        url,
        token,
        args.timeout,
        args.no_retry,
        args.ca_file.as_deref(),
    )?
    .build()?;
    let out = Printer::new(args.output);
    match args.command.as_ref() {
        DeploymentsCommand::List(a) => {
            let query = ListDeployments {
                order_by: a.order_by,
                sort: a.sort,
                updated_after: a.updated_after,
                updated_before: a.updated_before,
                finished_after: a.finished_after,
                finished_before: a.finished_before,
                environment: a.environment.clone(),
                status: a.status,
                per_page: a.pages.per_page,
            };
            if a.pages.all {
                let all: Vec<Deployment> = client
                    .list_deployments(&project, &query)
                    .try_collect()
                    .await?;
                out.deployments(&all, None)
            } else {
                let page = client
                    .list_deployments_page(&project, &query, a.pages.page)
                    .await?;
                out.deployments(&page.items, Some(&page))
            }
        }
        DeploymentsCommand::Get(a) => {
            out.deployment(&client.get_deployment(&project, a.deployment_id).await?)
        }
        DeploymentsCommand::Create(a) => {
            let request = CreateDeployment {
                environment: a.environment.clone(),
                sha: a.sha.clone(),
                git_ref: a.git_ref.clone(),
                tag: a.tag,
                status: a.status,
            };
            out.deployment(&client.create_deployment(&project, &request).await?)
        }
        DeploymentsCommand::Update(a) => out.deployment(
            &client
                .update_deployment_status(&project, a.deployment_id, a.status)
                .await?,
        ),
        DeploymentsCommand::Delete(a) => {
            client.delete_deployment(&project, a.deployment_id).await?;
            out.deleted(a.deployment_id)
        }
        DeploymentsCommand::MergeRequests(a) => {
            let query = ListMergeRequests {
                state: a.state,
                order_by: a.order_by,
                sort: a.sort,
                milestone: a.milestone.clone(),
                labels: a.labels.clone(),
                author_id: a.author_id,
                author_username: a.author_username.clone(),
                assignee_id: a.assignee_id,
                reviewer_id: a.reviewer_id,
                search: a.search.clone(),
                created_after: a.created_after,
                created_before: a.created_before,
                updated_after: a.updated_after,
                updated_before: a.updated_before,
                per_page: a.pages.per_page,
            };
            if a.pages.all {
                let all: Vec<MergeRequest> = client
                    .list_merge_requests(&project, a.deployment_id, &query)
                    .try_collect()
                    .await?;
                out.merge_requests(&all, None)
            } else {
                let page = client
                    .list_merge_requests_page(&project, a.deployment_id, &query, a.pages.page)
                    .await?;
                out.merge_requests(&page.items, Some(&page))
            }
        }
        DeploymentsCommand::Approve(a) => {
            let request = ApproveDeployment {
                status: a.status,
                comment: a.comment.clone(),
                represented_as: a.represented_as.clone(),
            };
            let approval = client
                .approve_deployment(&project, a.deployment_id, &request)
                .await?;
            out.approval(a.deployment_id, &approval)
        }
        DeploymentsCommand::Hooks(HooksCommand::List) => {
            out.hooks(&client.list_hooks(&project).await?)
        }
        DeploymentsCommand::Hooks(HooksCommand::Create(a)) => {
            let token = hook_secret(a, &|k| std::env::var(k).ok())?;
            let request = CreateHook {
                url: a.hook_url.clone(),
                token: Some(token),
                name: a.name.clone(),
                deployment_events: true,
                push_events: false,
                enable_ssl_verification: !a.insecure_skip_tls_verify,
            };
            out.hooks(&[client.create_hook(&project, &request).await?])
        }
        DeploymentsCommand::Hooks(HooksCommand::Delete(a)) => {
            client.delete_hook(&project, a.hook_id).await?;
            match out.format {
                OutputFormat::Json => out.json(&serde_json::json!({ "deleted_hook": a.hook_id })),
                OutputFormat::Table => out.write(&format!("deleted hook {}\n", a.hook_id)),
            }
        }
    }
}

/// The hook's secret token: `--secret-file` (trailing newline dropped), else
/// `GITLAB_WEBHOOK_TOKEN`. Never a flag value (it would show in `ps`).
fn hook_secret(
    args: &CreateHookArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, DeploymentsError> {
    let token = match &args.secret_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| {
                DeploymentsError::Usage(format!(
                    "cannot read --secret-file {}: {e}",
                    path.display()
                ))
            })?
            .trim_end_matches(['\n', '\r'])
            .to_owned(),
        None => env("GITLAB_WEBHOOK_TOKEN").unwrap_or_default(),
    };
    if token.trim().is_empty() {
        return Err(DeploymentsError::Usage(
            "no webhook secret token: set GITLAB_WEBHOOK_TOKEN or pass --secret-file; the \
             operator refuses hooks without one"
                .to_owned(),
        ));
    }
    Ok(token)
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// Writes results as a table/key-value block or as JSON (`-o json`). Shared with `kubectl gld`.
pub(crate) struct Printer {
    format: OutputFormat,
}

fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn short_sha(sha: &str) -> String {
    sha.chars().take(8).collect()
}

/// Render rows as columns separated by two spaces, each as wide as its widest cell.
pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                s.push_str(cell);
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

fn page_footer<T>(page: &Page<T>, noun: &str) -> Option<String> {
    let next = page.next_page?;
    let of = match (page.total_pages, page.total) {
        (Some(pages), Some(total)) => format!(" of {pages} ({total} {noun})"),
        _ => String::new(),
    };
    Some(format!(
        "page {}{of}; --page {next} for the next one, --all for every page",
        page.page.unwrap_or(next.saturating_sub(1))
    ))
}

impl Printer {
    pub(crate) fn new(format: OutputFormat) -> Self {
        Self { format }
    }

    pub(crate) fn write(&self, text: &str) -> Result<(), DeploymentsError> {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        stdout.flush()?;
        Ok(())
    }

    pub(crate) fn json<T: serde::Serialize + ?Sized>(
        &self,
        value: &T,
    ) -> Result<(), DeploymentsError> {
        let mut text = serde_json::to_string_pretty(value)
            .map_err(|e| DeploymentsError::Output(std::io::Error::other(e)))?;
        text.push('\n');
        self.write(&text)
    }

    fn deployments(
        &self,
        items: &[Deployment],
        page: Option<&Page<Deployment>>,
    ) -> Result<(), DeploymentsError> {
        if self.format == OutputFormat::Json {
            return self.json(items);
        }
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|d| {
                vec![
                    d.id.to_string(),
                    d.iid.to_string(),
                    d.environment.name.clone(),
                    d.status.to_string(),
                    d.git_ref.clone(),
                    short_sha(&d.sha),
                    d.user
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |u| u.username.clone()),
                    time(&d.created_at),
                    time(&d.updated_at),
                ]
            })
            .collect();
        if rows.is_empty() {
            eprintln!("no deployments");
        } else {
            self.write(&render_table(
                &[
                    "ID",
                    "IID",
                    "ENVIRONMENT",
                    "STATUS",
                    "REF",
                    "SHA",
                    "USER",
                    "CREATED",
                    "UPDATED",
                ],
                &rows,
            ))?;
        }
        if let Some(footer) = page.and_then(|p| page_footer(p, "deployments")) {
            eprintln!("{footer}");
        }
        Ok(())
    }

    pub(crate) fn deployment(&self, d: &Deployment) -> Result<(), DeploymentsError> {
        if self.format == OutputFormat::Json {
            return self.json(d);
        }
        let mut rows = vec![
            vec!["id".to_owned(), d.id.to_string()],
            vec!["iid".to_owned(), d.iid.to_string()],
            vec!["status".to_owned(), d.status.to_string()],
            vec![
                "environment".to_owned(),
                format!("{} (id {})", d.environment.name, d.environment.id),
            ],
            vec!["ref".to_owned(), d.git_ref.clone()],
            vec!["sha".to_owned(), d.sha.clone()],
            vec![
                "user".to_owned(),
                d.user
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |u| u.username.clone()),
            ],
            vec!["created".to_owned(), time(&d.created_at)],
            vec!["updated".to_owned(), time(&d.updated_at)],
            vec![
                "created by".to_owned(),
                if d.deployable.is_some() {
                    "CI job"
                } else {
                    "API"
                }
                .to_owned(),
            ],
        ];
        if let Some(url) = &d.environment.external_url {
            rows.push(vec!["url".to_owned(), url.clone()]);
        }
        if let Some(pending) = d.pending_approval_count {
            rows.push(vec!["pending approvals".to_owned(), pending.to_string()]);
        }
        for a in d.approvals.iter().flatten() {
            rows.push(vec![
                "approval".to_owned(),
                format!(
                    "{} by {} at {}{}",
                    a.status,
                    a.user.username,
                    time(&a.created_at),
                    a.comment
                        .as_deref()
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default()
                ),
            ]);
        }
        for r in d.approval_summary.iter().flat_map(|s| &s.rules) {
            let approved = r
                .deployment_approvals
                .iter()
                .filter(|a| a.status == ApprovalStatus::Approved)
                .count();
            rows.push(vec![
                "rule".to_owned(),
                format!(
                    "{}: {approved}/{} approved",
                    r.access_level_description.as_deref().unwrap_or("(unnamed)"),
                    r.required_approvals
                ),
            ]);
        }
        let table = render_table(&["FIELD", "VALUE"], &rows);
        // Drop the header line: a key/value block reads better without it.
        let body: String = table.lines().skip(1).map(|l| format!("{l}\n")).collect();
        self.write(&body)
    }

    fn hooks(&self, items: &[ProjectHook]) -> Result<(), DeploymentsError> {
        if self.format == OutputFormat::Json {
            return self.json(items);
        }
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|h| {
                vec![
                    h.id.to_string(),
                    h.url.clone(),
                    h.deployment_events.to_string(),
                    h.enable_ssl_verification.to_string(),
                    h.alert_status.clone().unwrap_or_default(),
                ]
            })
            .collect();
        self.write(&render_table(
            &["ID", "URL", "DEPLOYMENT EVENTS", "SSL VERIFY", "STATUS"],
            &rows,
        ))
    }

    fn deleted(&self, id: u64) -> Result<(), DeploymentsError> {
        match self.format {
            OutputFormat::Json => self.json(&serde_json::json!({ "deleted": id })),
            OutputFormat::Table => self.write(&format!("deleted deployment {id}\n")),
        }
    }

    fn merge_requests(
        &self,
        items: &[MergeRequest],
        page: Option<&Page<MergeRequest>>,
    ) -> Result<(), DeploymentsError> {
        if self.format == OutputFormat::Json {
            return self.json(items);
        }
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|m| {
                let title: String = if m.title.chars().count() > 60 {
                    format!("{}…", m.title.chars().take(59).collect::<String>())
                } else {
                    m.title.clone()
                };
                vec![
                    format!("!{}", m.iid),
                    m.state.clone(),
                    format!("{} → {}", m.source_branch, m.target_branch),
                    m.author
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |u| u.username.clone()),
                    m.merged_at.as_ref().map_or_else(|| "-".to_owned(), time),
                    title,
                ]
            })
            .collect();
        if rows.is_empty() {
            eprintln!("no merge requests");
        } else {
            self.write(&render_table(
                &["MR", "STATE", "BRANCHES", "AUTHOR", "MERGED", "TITLE"],
                &rows,
            ))?;
        }
        if let Some(footer) = page.and_then(|p| page_footer(p, "merge requests")) {
            eprintln!("{footer}");
        }
        Ok(())
    }

    pub(crate) fn approval(&self, id: u64, a: &DeploymentApproval) -> Result<(), DeploymentsError> {
        if self.format == OutputFormat::Json {
            return self.json(a);
        }
        self.write(&format!(
            "deployment {id} {} by {} at {}{}\n",
            a.status,
            a.user.username,
            time(&a.created_at),
            a.comment
                .as_deref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default()
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: DeploymentsArgs,
    }

    fn parse(argv: &[&str]) -> DeploymentsArgs {
        let mut full = vec!["x"];
        full.extend_from_slice(argv);
        Wrapper::try_parse_from(full).unwrap().args
    }

    type Env = &'static [(&'static str, &'static str)];
    /// (name, argv, env, want url, want kind, want project)
    type Case = (
        &'static str,
        &'static [&'static str],
        Env,
        &'static str,
        TokenKind,
        ProjectId,
    );

    #[test]
    fn connection_resolution_order() {
        let env_of = |pairs: Env| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let cases: &[Case] = &[
            (
                "env private",
                &["list"],
                &[
                    ("GITLAB_URL", "https://g"),
                    ("GITLAB_TOKEN", "t"),
                    ("CI_PROJECT_ID", "7"),
                ],
                "https://g",
                TokenKind::Private,
                ProjectId::Id(7),
            ),
            (
                "oauth",
                &["-p", "a/b", "list"],
                &[("GITLAB_URL", "https://g"), ("GITLAB_OAUTH_TOKEN", "t")],
                "https://g",
                TokenKind::OAuth,
                ProjectId::Path("a/b".into()),
            ),
            (
                "ci defaults",
                &["list"],
                &[
                    ("CI_SERVER_URL", "https://ci"),
                    ("CI_JOB_TOKEN", "j"),
                    ("CI_PROJECT_ID", "9"),
                ],
                "https://ci",
                TokenKind::Job,
                ProjectId::Id(9),
            ),
            (
                "flags win",
                &[
                    "--url",
                    "https://f",
                    "--token",
                    "x",
                    "--token-kind",
                    "job",
                    "--project",
                    "3",
                    "list",
                ],
                &[
                    ("GITLAB_URL", "https://g"),
                    ("GITLAB_TOKEN", "t"),
                    ("CI_PROJECT_ID", "7"),
                ],
                "https://f",
                TokenKind::Job,
                ProjectId::Id(3),
            ),
            (
                "private before job",
                &["list", "-p", "1"],
                &[
                    ("GITLAB_URL", "https://g"),
                    ("GITLAB_TOKEN", "t"),
                    ("CI_JOB_TOKEN", "j"),
                ],
                "https://g",
                TokenKind::Private,
                ProjectId::Id(1),
            ),
        ];
        for (name, argv, env, url, kind, project) in cases {
            let args = parse(argv);
            let (u, t, p) = resolve_connection(&args, &env_of(env)).unwrap();
            assert_eq!(
                (u.as_str(), t.kind(), &p),
                (*url, *kind, project),
                "case {name}"
            );
        }
        let args = parse(&["list"]);
        let err = resolve_connection(&args, &env_of(&[("GITLAB_URL", "https://g")])).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("GITLAB_TOKEN"));
    }

    #[test]
    fn flags_parse_to_typed_values() {
        let args = parse(&[
            "-p",
            "1",
            "list",
            "--status",
            "success",
            "--order-by",
            "finished_at",
            "--finished-after",
            "2024-05-01",
            "--all",
        ]);
        match *args.command {
            DeploymentsCommand::List(l) => {
                assert_eq!(l.status, Some(DeploymentStatus::Success));
                assert_eq!(l.order_by, Some(DeploymentOrderBy::FinishedAt));
                assert_eq!(
                    l.finished_after.unwrap().to_rfc3339(),
                    "2024-05-01T00:00:00+00:00"
                );
                assert!(l.pages.all);
            }
            other => panic!("{other:?}"),
        }
        let args = parse(&[
            "create",
            "--environment",
            "prod",
            "--sha",
            "abc",
            "--ref",
            "v1",
            "--tag",
            "--status",
            "running",
        ]);
        assert!(matches!(
            *args.command,
            DeploymentsCommand::Create(CreateArgs {
                tag: true,
                status: WriteStatus::Running,
                ..
            })
        ));
        let bad = Wrapper::try_parse_from(["x", "update", "1", "--status", "created"]);
        assert!(bad.is_err(), "created is not a settable status");
    }

    #[test]
    fn table_aligns_columns() {
        let t = render_table(
            &["A", "LONG"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["q".into(), "22".into()],
            ],
        );
        assert_eq!(t, "A    LONG\nxyz  1\nq    22\n");
    }
}
