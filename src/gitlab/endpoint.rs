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
}

impl Endpoint {
    pub const ALL: [Endpoint; 7] = [
        Endpoint::ListDeployments,
        Endpoint::GetDeployment,
        Endpoint::CreateDeployment,
        Endpoint::UpdateDeployment,
        Endpoint::DeleteDeployment,
        Endpoint::ListMergeRequests,
        Endpoint::ApproveDeployment,
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
        }
    }

    pub fn method(self) -> Method {
        match self {
            Endpoint::ListDeployments | Endpoint::GetDeployment | Endpoint::ListMergeRequests => {
                Method::GET
            }
            Endpoint::CreateDeployment | Endpoint::ApproveDeployment => Method::POST,
            Endpoint::UpdateDeployment => Method::PUT,
            Endpoint::DeleteDeployment => Method::DELETE,
        }
    }

    /// Whether repeating the call is harmless, so the client may retry it on a transient
    /// failure. POST create has no idempotency key in GitLab and approval POST records a
    /// decision: neither is retried; the caller decides.
    pub fn idempotent(self) -> bool {
        !matches!(
            self,
            Endpoint::CreateDeployment | Endpoint::ApproveDeployment
        )
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method(), self.template())
    }
}

/// What a request was about, for error messages: the route, the project and the deployment.
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
            (Some(p), Some(d)) => write!(f, " (project {p}, deployment {d})"),
            (Some(p), None) => write!(f, " (project {p})"),
            (None, Some(d)) => write!(f, " (deployment {d})"),
            (None, None) => Ok(()),
        }
    }
}
