//! The emulated GitLab data: users, tokens, projects, repositories, merge requests, groups,
//! environments, protection rules and deployments. Plain data, serialisable so that the binary
//! can keep it in a state file.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Project (or group) membership role, ordered as GitLab's access levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    Guest,
    Planner,
    Reporter,
    Developer,
    Maintainer,
    Owner,
}

impl Role {
    /// GitLab's numeric access level (`Gitlab::Access`).
    pub fn access_level(self) -> u32 {
        match self {
            Role::Guest => 10,
            Role::Planner => 15,
            Role::Reporter => 20,
            Role::Developer => 30,
            Role::Maintainer => 40,
            Role::Owner => 50,
        }
    }
}

/// Project visibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Visibility {
    #[default]
    Private,
    Internal,
    Public,
}

/// Personal/project/group access-token scopes that matter for the Deployments API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    Api,
    ReadApi,
    /// Any other scope (e.g. `read_user`, `read_repository`), which grants nothing here.
    Other(String),
}

/// How a token authenticates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenKind {
    /// Personal, project or group access token (`PRIVATE-TOKEN`, `Bearer`, `private_token`).
    Personal,
    /// OAuth2 access token (`Bearer`, `access_token`).
    OAuth,
    /// CI/CD job token (`JOB-TOKEN`, `job_token`) of a job running in `project_id`.
    Job { project_id: u64 },
}

/// A credential known to the emulator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub token: String,
    pub user_id: u64,
    pub kind: TokenKind,
    pub scopes: Vec<Scope>,
    pub expired: bool,
    pub revoked: bool,
}

/// A GitLab user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub username: String,
    pub name: String,
    pub admin: bool,
    /// `active`, `blocked`, `deactivated`, ...
    pub state: String,
}

/// A group, possibly nested under a parent, with direct members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: u64,
    pub name: String,
    pub path: String,
    pub parent_id: Option<u64>,
    pub members: BTreeMap<u64, Role>,
}

/// A commit of the emulated repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub sha: String,
    pub parents: Vec<String>,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

/// Who may deploy to a protected environment (a deploy access level).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeployAccess {
    /// Members with at least this role.
    Role(Role),
    User(u64),
    /// Members of a group; `inherited` includes members of ancestor groups.
    Group {
        group_id: u64,
        inherited: bool,
    },
}

/// One approval rule of a protected environment: exactly one of user, group or role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRule {
    pub id: u64,
    pub user_id: Option<u64>,
    pub group_id: Option<u64>,
    /// Role rules: 20 Reporter, 30 Developer, 40 Maintainer, 60 Admin.
    pub access_level: Option<u32>,
    pub required_approvals: u32,
    /// 0 = direct group members only, 1 = include inherited members.
    pub group_inheritance_type: u32,
}

/// A project-level protected environment (matched by environment name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedEnvironment {
    pub name: String,
    pub deploy_access: Vec<DeployAccess>,
    pub approval_rules: Vec<ApprovalRule>,
}

/// An environment, created on first deployment (or seeded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    pub id: u64,
    pub project_id: u64,
    pub name: String,
    pub slug: String,
    pub external_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// `production`, `staging`, `testing`, `development` or `other`; guessed from the name
    /// when not given (A.8).
    #[serde(default = "other_tier")]
    pub tier: String,
    /// `available`, `stopping` or `stopped`.
    #[serde(default = "available")]
    pub state: String,
    /// The dashboard for Kubernetes (GitLab 17.4+): an agent of the same project, the
    /// namespace it shows, and a Flux resource for the sync badge.
    #[serde(default)]
    pub cluster_agent_id: Option<u64>,
    #[serde(default)]
    pub kubernetes_namespace: Option<String>,
    #[serde(default)]
    pub flux_resource_path: Option<String>,
}

fn other_tier() -> String {
    "other".to_string()
}

fn available() -> String {
    "available".to_string()
}

/// A GitLab agent for Kubernetes, registered in one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterAgent {
    pub id: u64,
    pub project_id: u64,
    /// `\A[a-z0-9]([-a-z0-9]*[a-z0-9])?\z`, unique per project.
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub created_by_user_id: Option<u64>,
}

/// A merge request (only what the deployments API shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeRequest {
    pub id: u64,
    pub iid: u64,
    pub project_id: u64,
    pub title: String,
    pub description: Option<String>,
    /// `opened`, `closed`, `locked`, `merged`.
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub merged_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub target_branch: String,
    pub source_branch: String,
    pub author_id: u64,
    pub sha: Option<String>,
    pub merge_commit_sha: Option<String>,
    pub squash_commit_sha: Option<String>,
}

/// Deployment status as stored (all model states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeploymentStatus {
    Created,
    Running,
    Success,
    Failed,
    Canceled,
    Skipped,
    Blocked,
}

impl DeploymentStatus {
    pub const ALL: [DeploymentStatus; 7] = [
        DeploymentStatus::Created,
        DeploymentStatus::Running,
        DeploymentStatus::Success,
        DeploymentStatus::Failed,
        DeploymentStatus::Canceled,
        DeploymentStatus::Skipped,
        DeploymentStatus::Blocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Created => "created",
            DeploymentStatus::Running => "running",
            DeploymentStatus::Success => "success",
            DeploymentStatus::Failed => "failed",
            DeploymentStatus::Canceled => "canceled",
            DeploymentStatus::Skipped => "skipped",
            DeploymentStatus::Blocked => "blocked",
        }
    }

    pub fn parse(s: &str) -> Option<DeploymentStatus> {
        DeploymentStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            DeploymentStatus::Success | DeploymentStatus::Failed | DeploymentStatus::Canceled
        )
    }
}

/// One approval (or rejection) of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub user_id: u64,
    /// `approved` or `rejected`.
    pub status: String,
    pub comment: Option<String>,
    pub created_at: DateTime<Utc>,
    pub rule_id: Option<u64>,
}

/// A deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: u64,
    pub iid: u64,
    pub project_id: u64,
    pub environment_id: u64,
    pub sha: String,
    pub ref_: String,
    pub tag: bool,
    pub status: DeploymentStatus,
    pub user_id: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The CI job that created it; `None` for API-created deployments.
    pub deployable: Option<serde_json::Value>,
    pub approvals: Vec<Approval>,
    /// Linked merge request ids (global ids), in link order.
    pub merge_request_ids: Vec<u64>,
}

/// A project with its repository, environments and settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub id: u64,
    /// Full path, e.g. `group/subgroup/project`.
    pub path: String,
    pub visibility: Visibility,
    pub environments_enabled: bool,
    pub allow_pipeline_trigger_approve_deployment: bool,
    /// Namespace group: its members (and its ancestors' members) are members of the project.
    pub group_id: Option<u64>,
    pub members: BTreeMap<u64, Role>,
    /// Projects whose job tokens may access this one (the project itself always may).
    pub job_token_allowlist: Vec<u64>,
    pub commits: BTreeMap<String, Commit>,
    pub branches: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub protected_environments: Vec<ProtectedEnvironment>,
    pub next_deployment_iid: u64,
    pub next_mr_iid: u64,
}

/// A project webhook (`web_hooks` row, project scope). Only the events the emulator sends are
/// stored; the other flags are echoed as GitLab's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectHook {
    pub id: u64,
    pub project_id: u64,
    pub url: String,
    /// Write-only: sent as `X-Gitlab-Token`, never rendered.
    pub token: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub push_events: bool,
    pub deployment_events: bool,
    pub enable_ssl_verification: bool,
    pub created_at: DateTime<Utc>,
}

/// CE (FOSS) or EE build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Edition {
    Ce,
    #[default]
    Ee,
}
