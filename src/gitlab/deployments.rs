//! The seven Deployments API calls, one method each, with typed requests and responses.

use futures::stream::Stream;
use tokio::time::Instant;

use super::client::{Call, GitlabClient, decode};
use super::endpoint::{Endpoint, RequestContext};
use super::error::Error;
use super::types::{
    ApproveDeployment, CreateDeployment, Deployment, DeploymentApproval, DeploymentStatus,
    ListDeployments, ListMergeRequests, MergeRequest, Page, ProjectId, UpdateDeployment,
    WriteStatus,
};

/// GitLab's largest page; full walks use it unless the caller chose a size.
const MAX_PER_PAGE: u32 = 100;

fn deployments_path(project: &ProjectId) -> String {
    format!("projects/{}/deployments", project.url_segment())
}

fn deployment_path(project: &ProjectId, id: u64) -> String {
    format!("{}/{id}", deployments_path(project))
}

fn json_body<T: serde::Serialize>(
    ctx: &RequestContext,
    body: &T,
) -> Result<serde_json::Value, Error> {
    serde_json::to_value(body).map_err(|e| Error::Config {
        message: format!("cannot encode the request body for {ctx}: {e}"),
    })
}

impl GitlabClient {
    fn list_call(&self, project: &ProjectId, query: &ListDeployments) -> Call {
        let mut q = query.query();
        if let Some(per_page) = query.per_page {
            q.push(("per_page", per_page.to_string()));
        }
        Call {
            ctx: RequestContext::new(Endpoint::ListDeployments, project, None),
            path: deployments_path(project),
            query: q,
            body: None,
        }
    }

    /// `GET /projects/:id/deployments`: every matching deployment, all pages, lazily. Without
    /// an explicit `per_page` it asks for GitLab's maximum (100) to spend fewer calls.
    pub fn list_deployments(
        &self,
        project: &ProjectId,
        query: &ListDeployments,
    ) -> impl Stream<Item = Result<Deployment, Error>> + Send + 'static {
        let mut query = query.clone();
        query.per_page = query.per_page.or(Some(MAX_PER_PAGE));
        self.paginate(self.list_call(project, &query), 1)
    }

    /// `GET /projects/:id/deployments`: one page (1-based) with GitLab's pagination headers.
    pub async fn list_deployments_page(
        &self,
        project: &ProjectId,
        query: &ListDeployments,
        page: u32,
    ) -> Result<Page<Deployment>, Error> {
        self.fetch_page(&self.list_call(project, query), page).await
    }

    /// `GET /projects/:id/deployments/:deployment_id`.
    pub async fn get_deployment(&self, project: &ProjectId, id: u64) -> Result<Deployment, Error> {
        let call = Call {
            ctx: RequestContext::new(Endpoint::GetDeployment, project, Some(id)),
            path: deployment_path(project, id),
            query: Vec::new(),
            body: None,
        };
        let (answer, _) = self.execute(&call).await;
        decode(&call.ctx, &answer?.body)
    }

    /// `POST /projects/:id/deployments`. Never retried: GitLab has no idempotency key, so after
    /// a timeout or a 5xx the deployment may or may not exist; the caller looks it up (the
    /// operator's write-ahead intent) before creating again. A 201 may also be GitLab's
    /// duplicate short-circuit returning an existing successful deployment (spec §3.3).
    pub async fn create_deployment(
        &self,
        project: &ProjectId,
        request: &CreateDeployment,
    ) -> Result<Deployment, Error> {
        self.create(project, request, None).await
    }

    /// [`Self::create_deployment`] for a caller that will take the create as settled at
    /// `over_by` (the operator: when another process may give up its write-ahead claim): the
    /// `POST` is sent only while its timeout still ends by then, and no wait before it that
    /// would end later is begun. Otherwise `Error::SendDeadlinePassed`, and nothing was sent.
    pub async fn create_deployment_by(
        &self,
        project: &ProjectId,
        request: &CreateDeployment,
        over_by: Instant,
    ) -> Result<Deployment, Error> {
        self.create(project, request, Some(over_by)).await
    }

    async fn create(
        &self,
        project: &ProjectId,
        request: &CreateDeployment,
        over_by: Option<Instant>,
    ) -> Result<Deployment, Error> {
        let ctx = RequestContext::new(Endpoint::CreateDeployment, project, None);
        let call = Call {
            body: Some(json_body(&ctx, request)?),
            ctx,
            path: deployments_path(project),
            query: Vec::new(),
        };
        let (answer, _) = self.execute_by(&call, over_by).await;
        decode(&call.ctx, &answer?.body)
    }

    /// `PUT /projects/:id/deployments/:deployment_id` with a new status. Retried on transient
    /// failures. If a retry is refused with "cannot transition" because an earlier attempt did
    /// land (its answer was lost), the deployment is read back and returned when it already has
    /// the requested status, so a lost answer does not turn into a false error.
    pub async fn update_deployment_status(
        &self,
        project: &ProjectId,
        id: u64,
        status: WriteStatus,
    ) -> Result<Deployment, Error> {
        let ctx = RequestContext::new(Endpoint::UpdateDeployment, project, Some(id));
        let call = Call {
            body: Some(json_body(&ctx, &UpdateDeployment { status })?),
            ctx,
            path: deployment_path(project, id),
            query: Vec::new(),
        };
        match self.execute(&call).await {
            (Ok(answer), _) => decode(&call.ctx, &answer.body),
            (Err(err @ Error::InvalidTransition { .. }), attempts) if attempts > 1 => {
                match self.get_deployment(project, id).await {
                    Ok(d) if d.status == DeploymentStatus::from(status) => Ok(d),
                    _ => Err(err),
                }
            }
            (Err(err), _) => Err(err),
        }
    }

    /// `DELETE /projects/:id/deployments/:deployment_id` (Maintainer; not for running or
    /// currently deployed deployments).
    pub async fn delete_deployment(&self, project: &ProjectId, id: u64) -> Result<(), Error> {
        let call = Call {
            ctx: RequestContext::new(Endpoint::DeleteDeployment, project, Some(id)),
            path: deployment_path(project, id),
            query: Vec::new(),
            body: None,
        };
        let (answer, attempts) = self.execute(&call).await;
        match answer {
            Ok(_) => Ok(()),
            // A retried DELETE whose first attempt landed answers 404: the goal is reached.
            Err(Error::NotFound {
                what: super::error::Missing::Deployment,
                ..
            }) if attempts > 1 => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn merge_requests_call(&self, project: &ProjectId, id: u64, query: &ListMergeRequests) -> Call {
        let mut q = query.query();
        if let Some(per_page) = query.per_page {
            q.push(("per_page", per_page.to_string()));
        }
        Call {
            ctx: RequestContext::new(Endpoint::ListMergeRequests, project, Some(id)),
            path: format!("{}/merge_requests", deployment_path(project, id)),
            query: q,
            body: None,
        }
    }

    /// `GET /projects/:id/deployments/:deployment_id/merge_requests`: all pages, lazily (100 per
    /// page unless set). GitLab does not look the deployment up: an unknown id yields `[]`.
    pub fn list_merge_requests(
        &self,
        project: &ProjectId,
        id: u64,
        query: &ListMergeRequests,
    ) -> impl Stream<Item = Result<MergeRequest, Error>> + Send + 'static {
        let mut query = query.clone();
        query.per_page = query.per_page.or(Some(MAX_PER_PAGE));
        self.paginate(self.merge_requests_call(project, id, &query), 1)
    }

    /// One page of the merge requests shipped by a deployment.
    pub async fn list_merge_requests_page(
        &self,
        project: &ProjectId,
        id: u64,
        query: &ListMergeRequests,
        page: u32,
    ) -> Result<Page<MergeRequest>, Error> {
        self.fetch_page(&self.merge_requests_call(project, id, query), page)
            .await
    }

    /// `POST /projects/:id/deployments/:deployment_id/approval` (GitLab EE, Premium). Not
    /// retried: it records a decision. On CE the route is absent → `NotFound { what: Route }`.
    pub async fn approve_deployment(
        &self,
        project: &ProjectId,
        id: u64,
        request: &ApproveDeployment,
    ) -> Result<DeploymentApproval, Error> {
        let ctx = RequestContext::new(Endpoint::ApproveDeployment, project, Some(id));
        let call = Call {
            body: Some(json_body(&ctx, request)?),
            ctx,
            path: format!("{}/approval", deployment_path(project, id)),
            query: Vec::new(),
        };
        let (answer, _) = self.execute(&call).await;
        decode(&call.ctx, &answer?.body)
    }
}
