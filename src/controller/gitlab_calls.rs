//! [`GitlabCalls`] over the real client: the connection is resolved on the first call (a
//! settled resource resolves nothing), a token GitLab refuses is retried once when its Secret
//! has changed (rotation), and the client's types become the status module's views.

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use super::error::Error;
use super::reconcile::Context;
use super::status::{GitlabDeploymentView, MergeRequestView};
use super::steps::{CreateRequest, Deleted, GitlabCalls};
use super::views::{deployment_view, merge_request_view, write_status};
use crate::api::deployment::{
    DeploymentId, DeploymentIntent, EnvironmentRecord, EnvironmentSettings, EnvironmentSyncState,
    GitlabStatus,
};
use crate::api::validate::{AgentRef, ProjectRef, ValidatedSpec};
use crate::gitlab::{
    self, CreateDeployment, DeploymentOrderBy, GitlabClient, ListDeployments, ProjectId, SortOrder,
    UpdateEnvironment,
};
use crate::webhook::HookSource;

/// Merge requests kept per deployment are bounded by the status module; never page further.
const MAX_MERGE_REQUEST_PAGES: usize = 3;
/// How far before the intent's claim time a recovered deployment may have been updated
/// (clock skew between the operator and GitLab).
const RECOVERY_SKEW: std::time::Duration = std::time::Duration::from_secs(300);

/// One reconcile's GitLab: the resource's connection, resolved lazily.
pub struct LiveGitlab<'a> {
    ctx: &'a Context,
    spec: &'a ValidatedSpec,
    project: ProjectId,
    client: Option<GitlabClient>,
    /// A rotated token was already tried in this reconcile (at most once).
    rotated: bool,
}

impl<'a> LiveGitlab<'a> {
    pub fn new(ctx: &'a Context, spec: &'a ValidatedSpec) -> Self {
        let project = match &spec.project {
            ProjectRef::Id(id) => ProjectId::Id(*id),
            ProjectRef::Path(path) => ProjectId::Path(path.clone()),
        };
        Self {
            ctx,
            spec,
            project,
            client: None,
            rotated: false,
        }
    }

    /// A hook from this connection should follow the write just made (see
    /// [`crate::webhook::HookHints::expect_echo`]).
    fn expect_echo(&self, sent: std::time::Instant) {
        self.ctx.hints.expect_echo(
            &HookSource::of(&self.spec.connection, &self.spec.namespace),
            sent,
        );
    }

    async fn client(&mut self) -> Result<GitlabClient, Error> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let client = self
            .ctx
            .connections
            .client_for(&self.spec.connection, &self.spec.namespace)
            .await?;
        self.client = Some(client.clone());
        Ok(client)
    }

    /// GitLab refused the token (401) or its user (403): re-read the connection's Secret at
    /// once rather than wait for the memo to expire. True when the connection now has other
    /// credentials (a rotated token): the caller sends the request again, once. A refused
    /// request was not processed, so sending it again (even a `POST`) creates nothing twice.
    async fn renewed_after(&mut self, err: &gitlab::Error) -> bool {
        let refused = matches!(
            err,
            gitlab::Error::Unauthorized { .. } | gitlab::Error::Forbidden { .. }
        );
        if !refused || self.rotated {
            return false;
        }
        let Some(client) = self.client.as_ref() else {
            return false;
        };
        if !self
            .ctx
            .connections
            .credentials_changed(&self.spec.connection, &self.spec.namespace, client)
            .await
        {
            return false;
        }
        tracing::info!(
            category = err.category(),
            "GitLab refused the token, and its Secret changed: retrying with the new one"
        );
        self.rotated = true;
        self.client = None;
        true
    }
}

/// Send a request with the resource's client, once more with a rotated token if GitLab
/// refused the first one.
macro_rules! with_client {
    ($self:ident, |$client:ident| $call:expr) => {
        loop {
            let $client = $self.client().await?;
            match $call.await {
                Err(err) if $self.renewed_after(&err).await => continue,
                other => break other,
            }
        }
    };
}

fn view(step: &'static str, d: &gitlab::Deployment) -> Result<GitlabDeploymentView, Error> {
    deployment_view(d).ok_or_else(|| Error::GitlabAnswer {
        step,
        detail: format!("deployment id {} is not a GitLab deployment id", d.id),
    })
}

impl GitlabCalls for LiveGitlab<'_> {
    async fn create(&mut self, request: &CreateRequest) -> Result<GitlabDeploymentView, Error> {
        let Some(status) = write_status(request.status) else {
            return Err(Error::GitlabAnswer {
                step: "create deployment",
                detail: format!("{} cannot be requested through the API", request.status),
            });
        };
        let body = CreateDeployment {
            environment: request.environment.clone(),
            sha: request.sha.clone(),
            git_ref: request.ref_name.clone(),
            tag: request.tag,
            status,
        };
        let project = self.project.clone();
        let sent = std::time::Instant::now();
        let over_by = tokio::time::Instant::from_std(request.over_by);
        let created = with_client!(self, |c| c.create_deployment_by(&project, &body, over_by))
            .map_err(|e| Error::gitlab("create deployment", e))?;
        // GitLab answers a create as `running` with a `running` hook (one made as `success`
        // may be folded into the last deployment, which sends none).
        if request.status == GitlabStatus::Running {
            self.expect_echo(sent);
        }
        view("create deployment", &created)
    }

    async fn read(&mut self, id: DeploymentId) -> Result<GitlabDeploymentView, Error> {
        let project = self.project.clone();
        let d = with_client!(self, |c| c.get_deployment(&project, id.get()))
            .map_err(|e| Error::gitlab("read deployment", e))?;
        view("read deployment", &d)
    }

    async fn set_status(
        &mut self,
        id: DeploymentId,
        to: GitlabStatus,
    ) -> Result<GitlabDeploymentView, Error> {
        let Some(wire) = write_status(to) else {
            return Err(Error::GitlabAnswer {
                step: "update deployment",
                detail: format!("{to} cannot be requested through the API"),
            });
        };
        let project = self.project.clone();
        let sent = std::time::Instant::now();
        let answer = match with_client!(self, |c| c.update_deployment_status(
            &project,
            id.get(),
            wire
        )) {
            Ok(d) => {
                // Every status change GitLab accepts is answered with a hook.
                self.expect_echo(sent);
                d
            }
            // GitLab already has another status (our record was behind, or an earlier answer
            // was lost): its answer is the deployment as it is.
            Err(gitlab::Error::InvalidTransition { .. }) => with_client!(self, |c| c
                .get_deployment(&project, id.get()))
            .map_err(|e| Error::gitlab("read deployment after a refused update", e))?,
            Err(e) => return Err(Error::gitlab("update deployment", e)),
        };
        view("update deployment", &answer)
    }

    /// Same environment, sha and ref, made by no CI job, updated after the claim (minus clock
    /// skew), and not one this resource already knows. The oldest wins: it is the one the
    /// interrupted `POST` made.
    async fn find_interrupted(
        &mut self,
        intent: &DeploymentIntent,
        known: &[DeploymentId],
    ) -> Result<Option<GitlabDeploymentView>, Error> {
        let claimed = DateTime::<Utc>::from_timestamp(intent.claimed_at.0.as_second(), 0)
            .unwrap_or_default()
            - chrono::Duration::from_std(RECOVERY_SKEW).unwrap_or_default();
        let query = ListDeployments {
            environment: Some(intent.environment.clone()),
            order_by: Some(DeploymentOrderBy::UpdatedAt),
            sort: Some(SortOrder::Asc),
            updated_after: Some(claimed),
            per_page: Some(100),
            ..Default::default()
        };
        let project = self.project.clone();
        let candidates: Vec<gitlab::Deployment> = with_client!(self, |c| c
            .list_deployments(&project, &query)
            .try_filter(|d| {
                let matches = d.sha == intent.revision.sha
                    && d.git_ref == intent.revision.ref_name
                    && d.deployable.is_none()
                    && DeploymentId::try_from(d.id).is_ok_and(|id| !known.contains(&id));
                futures::future::ready(matches)
            })
            .try_collect::<Vec<_>>())
        .map_err(|e| Error::gitlab("look up an interrupted create", e))?;
        candidates
            .iter()
            .min_by_key(|d| d.id)
            .map(|d| view("look up an interrupted create", d))
            .transpose()
    }

    async fn merge_requests(&mut self, id: DeploymentId) -> Result<Vec<MergeRequestView>, Error> {
        let project = self.project.clone();
        let mrs: Vec<gitlab::MergeRequest> = with_client!(self, |c| c
            .list_merge_requests(&project, id.get(), &Default::default())
            .take(MAX_MERGE_REQUEST_PAGES * 20)
            .try_collect::<Vec<_>>())
        .map_err(|e| Error::gitlab("list merge requests", e))?;
        Ok(mrs.iter().map(merge_request_view).collect())
    }

    /// Set `wanted` on GitLab environment `id`: read it, send only what differs, and check
    /// GitLab kept it (a GitLab before 17.4 silently drops the Kubernetes fields). A refusal
    /// that a person must fix (a 4xx) is recorded as `Rejected` and not retried until the
    /// settings change; transient errors are returned and retried with backoff.
    async fn sync_environment(
        &mut self,
        id: i64,
        wanted: &EnvironmentSettings,
    ) -> Result<EnvironmentRecord, Error> {
        let record = |state, message: String| EnvironmentRecord {
            id,
            settings: wanted.clone(),
            state,
            message,
        };
        let client = self.client().await?;
        match sync_environment(&client, &self.project, id, wanted).await {
            Ok(Ok(message)) => Ok(record(EnvironmentSyncState::Applied, message)),
            Ok(Err(message)) => Ok(record(EnvironmentSyncState::Rejected, message)),
            Err(err) if err.kind() == gitlab::ErrorKind::User => {
                Ok(record(EnvironmentSyncState::Rejected, err.to_string()))
            }
            Err(err) => Err(Error::gitlab("update environment", err)),
        }
    }

    async fn delete(&mut self, id: DeploymentId) -> Result<Deleted, Error> {
        let project = self.project.clone();
        match with_client!(self, |c| c.delete_deployment(&project, id.get())) {
            Ok(()) | Err(gitlab::Error::NotFound { .. }) => Ok(Deleted::Gone),
            Err(gitlab::Error::NotAllowed { message, .. }) => Ok(Deleted::Kept(message)),
            Err(e) => Err(Error::gitlab("delete deployment", e)),
        }
    }

    async fn identity(&mut self) -> String {
        self.ctx
            .connections
            .identity(&self.spec.connection, &self.spec.namespace)
            .await
            .unwrap_or_default()
    }
}

/// `Ok(Ok(what was set))`, `Ok(Err(why GitLab did not take it))`, or the client's error.
async fn sync_environment(
    gitlab: &GitlabClient,
    project: &ProjectId,
    id: i64,
    wanted: &EnvironmentSettings,
) -> Result<Result<String, String>, gitlab::Error> {
    let env_id = u64::try_from(id).unwrap_or_default();
    let agent = match wanted.cluster_agent.as_deref().map(AgentRef::parse) {
        None => None,
        Some(AgentRef::Id(agent)) => Some(agent),
        Some(AgentRef::Name { project: at, name }) => {
            let at = at.map_or_else(|| project.clone(), ProjectId::Path);
            let agents = gitlab.list_cluster_agents(&at).await?;
            match agents.into_iter().find(|a| a.name == name) {
                Some(a) => Some(a.id),
                None => {
                    return Ok(Err(format!(
                        "GitLab has no agent {name:?} registered in project {at}; register it, or name one that is"
                    )));
                }
            }
        }
    };
    let current = gitlab.get_environment(project, env_id).await?;
    let update = environment_update(&current, wanted, agent);
    if update.is_empty() {
        return Ok(Ok(String::new()));
    }
    let after = gitlab.update_environment(project, env_id, &update).await?;
    let dropped = environment_update(&after, wanted, agent).fields();
    if dropped.is_empty() {
        Ok(Ok(format!("set {}", update.fields().join(", "))))
    } else {
        Ok(Err(format!(
            "GitLab accepted the update of environment {} but did not keep {}: the Kubernetes fields need GitLab 17.4 or newer, and a token that may read the agent (Developer)",
            current.name,
            dropped.join(", ")
        )))
    }
}

/// What must change on `current` to show `wanted` (only the fields the spec sets).
fn environment_update(
    current: &gitlab::Environment,
    wanted: &EnvironmentSettings,
    agent: Option<u64>,
) -> UpdateEnvironment {
    let differs = |want: &Option<String>, have: &Option<String>| {
        want.as_ref().filter(|w| Some(*w) != have.as_ref()).cloned()
    };
    UpdateEnvironment {
        external_url: differs(&wanted.external_url, &current.external_url),
        tier: differs(&wanted.tier.map(|t| t.as_str().to_owned()), &current.tier),
        cluster_agent_id: agent
            .filter(|a| current.cluster_agent.as_ref().map(|c| c.id) != Some(*a)),
        kubernetes_namespace: differs(&wanted.kubernetes_namespace, &current.kubernetes_namespace),
        flux_resource_path: differs(&wanted.flux_resource_path, &current.flux_resource_path),
    }
}
