//! The seven routes, named by their template. The template (never the raw path) is the metric
//! label and the prefix of every error message.

use std::fmt;

use http::Method;

use super::types::ProjectId;

/// One route of the Deployments API (spec §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    ListDeployments,
    GetDeployment,
    CreateDeployment,
    UpdateDeployment,
    DeleteDeployment,
    ListMergeRequests,
    ApproveDeployment,
    /// Environments API (the subset that sets tier, URL and the dashboard for Kubernetes).
    ListEnvironments,
    GetEnvironment,
    UpdateEnvironment,
    ListClusterAgents,
    /// Project webhooks (`deployments hooks`).
    ListHooks,
    CreateHook,
    DeleteHook,
}

impl Endpoint {
    pub const ALL: [Endpoint; 14] = [
        Endpoint::ListDeployments,
        Endpoint::GetDeployment,
        Endpoint::CreateDeployment,
        Endpoint::UpdateDeployment,
        Endpoint::DeleteDeployment,
        Endpoint::ListMergeRequests,
        Endpoint::ApproveDeployment,
        Endpoint::ListEnvironments,
        Endpoint::GetEnvironment,
        Endpoint::UpdateEnvironment,
        Endpoint::ListClusterAgents,
        Endpoint::ListHooks,
        Endpoint::CreateHook,
        Endpoint::DeleteHook,
    ];

    /// Route template relative to `/api/v4`, the `endpoint` metric label.
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
            Endpoint::DeleteHook => "/projects/:id/hooks/:hook_id",
        }
    }

    /// What the second path parameter names, for messages.
    pub fn resource(self) -> &'static str {
        match self {
            Endpoint::ListEnvironments | Endpoint::GetEnvironment | Endpoint::UpdateEnvironment => {
                "environment"
            }
            Endpoint::ListClusterAgents => "agent",
            Endpoint::ListHooks | Endpoint::CreateHook | Endpoint::DeleteHook => "hook",
            _ => "deployment",
        }
    }

    pub fn method(self) -> Method {
        match self {
            Endpoint::ListDeployments
            | Endpoint::GetDeployment
            | Endpoint::ListMergeRequests
            | Endpoint::ListEnvironments
            | Endpoint::GetEnvironment
            | Endpoint::ListClusterAgents
            | Endpoint::ListHooks => Method::GET,
            Endpoint::CreateDeployment | Endpoint::ApproveDeployment | Endpoint::CreateHook => {
                Method::POST
            }
            Endpoint::UpdateDeployment | Endpoint::UpdateEnvironment => Method::PUT,
            Endpoint::DeleteDeployment | Endpoint::DeleteHook => Method::DELETE,
        }
    }

    /// Whether repeating the call is harmless, so the client may retry it on a transient
    /// failure. POST create has no idempotency key in GitLab and approval POST records a
    /// decision: neither is retried; the caller decides.
    pub fn idempotent(self) -> bool {
        !matches!(
            self,
            Endpoint::CreateDeployment | Endpoint::ApproveDeployment | Endpoint::CreateHook
        )
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method(), self.template())
    }
}

/// What a request was about, for error messages: the route, the project and the deployment
/// (or environment, on the environment routes: `deployment_id` holds the route's second id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub endpoint: Endpoint,
    pub project: Option<ProjectId>,
    pub deployment_id: Option<u64>,
}

impl RequestContext {
    pub fn new(endpoint: Endpoint, project: &ProjectId, deployment_id: Option<u64>) -> Self {
        RequestContext {
            endpoint,
            project: Some(project.clone()),
            deployment_id,
        }
    }
}

impl fmt::Display for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.endpoint)?;
        match (&self.project, self.deployment_id) {
            (Some(p), Some(d)) => write!(f, " (project {p}, {} {d})", self.endpoint.resource()),
            (Some(p), None) => write!(f, " (project {p})"),
            (None, Some(d)) => write!(f, " ({} {d})", self.endpoint.resource()),
            (None, None) => Ok(()),
        }
    }
}
