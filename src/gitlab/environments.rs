//! The Environments API calls the operator uses to show the workload on GitLab's environment
//! page (tier, external URL, the dashboard for Kubernetes), and the agent lookup by name.

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::client::{Call, GitlabClient, decode};
use super::endpoint::{Endpoint, RequestContext};
use super::error::Error;
use super::types::ProjectId;

/// An environment as GitLab returns it (the keys the operator reads). The three Kubernetes
/// keys are absent before GitLab 17.4, and when the token may not read the agent.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Environment {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub external_url: Option<String>,
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub cluster_agent: Option<ClusterAgent>,
    #[serde(default)]
    pub kubernetes_namespace: Option<String>,
    #[serde(default)]
    pub flux_resource_path: Option<String>,
}

/// A GitLab agent for Kubernetes.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ClusterAgent {
    pub id: u64,
    pub name: String,
}

/// `PUT /projects/:id/environments/:environment_id`: only the fields set are sent, and GitLab
/// changes only those.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct UpdateEnvironment {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_agent_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes_namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flux_resource_path: Option<String>,
}

impl UpdateEnvironment {
    pub fn is_empty(&self) -> bool {
        *self == UpdateEnvironment::default()
    }

    /// The API names of the fields set, for messages.
    pub fn fields(&self) -> Vec<&'static str> {
        [
            ("external_url", self.external_url.is_some()),
            ("tier", self.tier.is_some()),
            ("cluster_agent_id", self.cluster_agent_id.is_some()),
            ("kubernetes_namespace", self.kubernetes_namespace.is_some()),
            ("flux_resource_path", self.flux_resource_path.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

fn environment_path(project: &ProjectId, id: u64) -> String {
    format!("projects/{}/environments/{id}", project.url_segment())
}

impl GitlabClient {
    /// `GET /projects/:id/environments/:environment_id`.
    pub async fn get_environment(
        &self,
        project: &ProjectId,
        id: u64,
    ) -> Result<Environment, Error> {
        let call = Call {
            ctx: RequestContext::new(Endpoint::GetEnvironment, project, Some(id)),
            path: environment_path(project, id),
            query: Vec::new(),
            body: None,
        };
        let (answer, _) = self.execute(&call).await;
        decode(&call.ctx, &answer?.body)
    }

    /// `PUT /projects/:id/environments/:environment_id` (Developer).
    pub async fn update_environment(
        &self,
        project: &ProjectId,
        id: u64,
        update: &UpdateEnvironment,
    ) -> Result<Environment, Error> {
        let ctx = RequestContext::new(Endpoint::UpdateEnvironment, project, Some(id));
        let body = serde_json::to_value(update).map_err(|e| Error::Config {
            message: format!("cannot encode the request body for {ctx}: {e}"),
        })?;
        let call = Call {
            ctx,
            path: environment_path(project, id),
            query: Vec::new(),
            body: Some(body),
        };
        let (answer, _) = self.execute(&call).await;
        decode(&call.ctx, &answer?.body)
    }

    /// `GET /projects/:id/cluster_agents`, every page: the agents registered in the project
    /// (GitLab lets an environment use only those).
    pub async fn list_cluster_agents(
        &self,
        project: &ProjectId,
    ) -> Result<Vec<ClusterAgent>, Error> {
        let call = Call {
            ctx: RequestContext::new(Endpoint::ListClusterAgents, project, None),
            path: format!("projects/{}/cluster_agents", project.url_segment()),
            query: vec![("per_page", "100".to_owned())],
            body: None,
        };
        self.paginate(call, 1).try_collect().await
    }
}
