//! Project webhooks (`/projects/:id/hooks`, Maintainer): what `deployments hooks` uses to point
//! GitLab's Deployment Hooks at the operator's receiver.

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::client::{Call, GitlabClient, decode};
use super::endpoint::{Endpoint, RequestContext};
use super::error::Error;
use super::types::ProjectId;

/// A project hook as GitLab returns it (the keys shown here; the token is never returned).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ProjectHook {
    pub id: u64,
    pub url: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub deployment_events: bool,
    #[serde(default)]
    pub push_events: bool,
    #[serde(default)]
    pub enable_ssl_verification: bool,
    #[serde(default)]
    pub alert_status: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// `POST /projects/:id/hooks`: a hook for deployment events only.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CreateHook {
    pub url: String,
    /// Sent back by GitLab in `X-Gitlab-Token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub deployment_events: bool,
    /// GitLab turns push events on unless told otherwise.
    pub push_events: bool,
    pub enable_ssl_verification: bool,
}

fn hooks_path(project: &ProjectId) -> String {
    format!("projects/{}/hooks", project.url_segment())
}

impl GitlabClient {
    /// `GET /projects/:id/hooks`, every page.
    pub async fn list_hooks(&self, project: &ProjectId) -> Result<Vec<ProjectHook>, Error> {
        let call = Call {
            ctx: RequestContext::new(Endpoint::ListHooks, project, None),
            path: hooks_path(project),
            query: vec![("per_page", "100".to_owned())],
            body: None,
        };
        self.paginate(call, 1).try_collect().await
    }

    /// `POST /projects/:id/hooks` (never retried: a retry could create a second hook).
    pub async fn create_hook(
        &self,
        project: &ProjectId,
        hook: &CreateHook,
    ) -> Result<ProjectHook, Error> {
        let ctx = RequestContext::new(Endpoint::CreateHook, project, None);
        let body = serde_json::to_value(hook).map_err(|e| Error::Config {
            message: format!("cannot encode the request body for {ctx}: {e}"),
        })?;
        let call = Call {
            ctx,
            path: hooks_path(project),
            query: Vec::new(),
            body: Some(body),
        };
        let (answer, _) = self.execute(&call).await;
        decode(&call.ctx, &answer?.body)
    }

    /// `DELETE /projects/:id/hooks/:hook_id`.
    pub async fn delete_hook(&self, project: &ProjectId, id: u64) -> Result<(), Error> {
        let call = Call {
            ctx: RequestContext::new(Endpoint::DeleteHook, project, Some(id)),
            path: format!("{}/{id}", hooks_path(project)),
            query: Vec::new(),
            body: None,
        };
        let (answer, _) = self.execute(&call).await;
        answer.map(|_| ())
    }
}
