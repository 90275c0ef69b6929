//! What tests observe: the request log, counters and a flat view of deployments.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The seven Deployments API routes (plus "no route matched").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Endpoint {
    ListDeployments,
    GetDeployment,
    CreateDeployment,
    UpdateDeployment,
    DeleteDeployment,
    ListMergeRequests,
    ApproveDeployment,
    ListEnvironments,
    GetEnvironment,
    UpdateEnvironment,
    ListClusterAgents,
    ListHooks,
    GetHook,
    CreateHook,
    DeleteHook,
    /// GitLab's catch-all route (`404 Not Found`).
    NotFound,
}

impl Endpoint {
    /// Route template, as used in counters and logs (never a raw path).
    pub fn template(self) -> &'static str {
        match self {
            Endpoint::ListDeployments | Endpoint::CreateDeployment => "/projects/:id/deployments",
            Endpoint::GetDeployment | Endpoint::UpdateDeployment | Endpoint::DeleteDeployment => {
                "/projects/:id/deployments/:deployment_id"
            }
            Endpoint::ListMergeRequests => {
                "/projects/:id/deployments/:deployment_id/merge_requests"
            }
            Endpoint::ApproveDeployment => "/projects/:id/deployments/:deployment_id/approval",
            Endpoint::ListEnvironments => "/projects/:id/environments",
            Endpoint::GetEnvironment | Endpoint::UpdateEnvironment => {
                "/projects/:id/environments/:environment_id"
            }
            Endpoint::ListClusterAgents => "/projects/:id/cluster_agents",
            Endpoint::ListHooks | Endpoint::CreateHook => "/projects/:id/hooks",
            Endpoint::GetHook | Endpoint::DeleteHook => "/projects/:id/hooks/:hook_id",
            Endpoint::NotFound => "*path",
        }
    }
}

/// One handled request. `path` has credential query parameters removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub method: String,
    /// Route template, e.g. `/projects/:id/deployments/:deployment_id`.
    pub endpoint: String,
    /// Which route matched (`NotFound` for the catch-all).
    pub route: Endpoint,
    /// Request path and query, without `private_token`/`access_token`/`job_token`.
    pub path: String,
    /// Status sent; 0 when the connection was dropped on purpose.
    pub status: u16,
    pub at: DateTime<Utc>,
    /// Request headers, credentials (`PRIVATE-TOKEN`, `Authorization`, `JOB-TOKEN`) redacted.
    pub headers: Vec<(String, String)>,
    /// Request body as text, credential parameters redacted.
    pub body: String,
}

/// Counter key: route template, method, status.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CounterKey {
    pub endpoint: String,
    pub method: String,
    pub status: u16,
}

/// A flat, test-friendly view of one stored deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub project_id: u64,
    pub id: u64,
    pub iid: u64,
    pub environment: String,
    pub sha: String,
    pub ref_: String,
    pub tag: bool,
    /// `running`, `success`, ...
    pub status: String,
    pub user_id: Option<u64>,
    pub username: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub from_ci: bool,
    pub pending_approval_count: u32,
    /// `(username, status)` of every approval/rejection.
    pub approvals: Vec<(String, String)>,
    pub merge_request_iids: Vec<u64>,
}

/// One webhook delivery attempt (what GitLab shows under a hook's "Recent events").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookDelivery {
    pub hook_id: u64,
    pub url: String,
    /// The payload's `status` (`running`, `success`, `approved`, ...).
    pub event_status: String,
    pub deployment_id: u64,
    /// `X-Gitlab-Event-UUID` of the delivery (the same on a retry).
    pub event_uuid: String,
    /// 1 for the first try.
    pub attempt: u32,
    /// The receiver's HTTP status, or `None` when no answer came.
    pub response_status: Option<u16>,
    /// `ok`, `failed`, `timeout`, `dropped` (fault), `error: ...`.
    pub outcome: String,
    pub at: DateTime<Utc>,
}
