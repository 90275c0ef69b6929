//! The scripted stories. Every scenario first applies the examples at revision A and waits
//! until both GitLab deployments succeeded, then plays its own part on revision B (and C).
//! Each wait is a watch with a deadline; a missed deadline is the demo's failure reason.

use std::time::{Duration, Instant};

use gitlab_emulator::EmulatorHandle;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde_json::Value;

use super::banner::{Info, approve_hint};
use super::live::stamp;
use super::manifests::{self, Outcome};
use crate::api::connection::GitlabConnection;
use crate::api::deployment::{ApprovalState, EnvironmentSyncState, GitlabDeployment, GitlabStatus};
use crate::api::names::reason;
use crate::cli::sandbox::{SandboxError, Scenario};
use crate::gitlab::{ApprovalStatus, ApproveDeployment, GitlabClient, ProjectId, Token, TokenKind};

/// Field manager of the sandbox's own applies (the operator's is `gitlab-deployment-operator`).
const MANAGER: &str = "gitlab-deployment-operator-sandbox";

/// What a scenario needs.
pub struct Demo {
    pub client: Client,
    pub namespace: String,
    pub scenario: Scenario,
    pub start: Instant,
    pub step_ms: u64,
    pub step_timeout: Duration,
    pub approve_after: Duration,
    pub info: Info,
    /// The GitLab emulator's own records: the demo's verdict is what GitLab says.
    pub gitlab: EmulatorHandle,
    /// `main`'s commits, newest first.
    pub shas: Vec<String>,
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// The GitLab deployment a resource reports, when it is of `sha` and in `status`.
fn reports(gd: &GitlabDeployment, sha: &str, status: GitlabStatus) -> bool {
    gd.status
        .as_ref()
        .and_then(|s| s.deployment.as_ref())
        .is_some_and(|d| d.sha == sha && d.status == status)
}

fn approval_is(gd: &GitlabDeployment, state: ApprovalState) -> bool {
    gd.status
        .as_ref()
        .and_then(|s| s.approval.as_ref())
        .is_some_and(|a| a.state == state)
}

fn deployment_id(gd: &GitlabDeployment) -> i64 {
    gd.status
        .as_ref()
        .and_then(|s| s.deployment.as_ref())
        .map(|d| i64::from(d.id))
        .unwrap_or_default()
}

/// Whether condition `type_` of a resource has `status` and `reason`.
fn condition_is(gd: &GitlabDeployment, type_: &str, status: &str, reason: &str) -> bool {
    gd.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .is_some_and(|c| c.status == status && c.reason == reason)
}

/// The `Ready` condition's message: the operator's own words on where a resource is stuck.
fn ready_message(gd: &GitlabDeployment) -> String {
    gd.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| format!("{}: {}", c.reason, c.message))
        .unwrap_or_else(|| "no status yet".to_owned())
}

impl Demo {
    fn say(&self, line: &str) {
        println!("{} ▸ {line}", stamp(self.start));
    }

    fn failed(&self, reason: String) -> SandboxError {
        SandboxError::Demo {
            scenario: self.scenario.as_str(),
            reason,
        }
    }

    fn revisions(&self) -> Result<(&str, &str, &str), SandboxError> {
        match self.shas.as_slice() {
            [c, b, a, ..] => Ok((a.as_str(), b.as_str(), c.as_str())),
            _ => Err(self.failed(format!(
                "the GitLab demo project has {} commits on main, 3 are needed",
                self.shas.len()
            ))),
        }
    }

    async fn apply<K>(&self, api: &Api<K>, manifest: &Value) -> Result<(), SandboxError>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let name = manifests::name_of(manifest);
        api.patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(manifest),
        )
        .await
        .map_err(|e| {
            let kind = manifest.get("kind").and_then(Value::as_str).unwrap_or("?");
            self.failed(format!("applying {kind} {name} failed: {e}"))
        })?;
        Ok(())
    }

    fn glds(&self) -> Api<GitlabDeployment> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Wait (on a watch) until `check` holds for GitlabDeployment `name`.
    async fn wait(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&GitlabDeployment) -> bool,
    ) -> Result<GitlabDeployment, SandboxError> {
        let api = self.glds();
        let cond = move |obj: Option<&GitlabDeployment>| obj.is_some_and(&check);
        match tokio::time::timeout(self.step_timeout, await_condition(api.clone(), name, cond))
            .await
        {
            Ok(Ok(Some(gd))) => Ok(gd),
            Ok(Ok(None)) => Err(self.failed(format!("{name} disappeared while {what}"))),
            Ok(Err(e)) => Err(self.failed(format!("watching {name} failed: {e}"))),
            Err(_) => {
                let last = api.get_opt(name).await.ok().flatten();
                let now = last.as_ref().map(ready_message).unwrap_or_default();
                Err(self.failed(format!(
                    "{name}: {what} did not happen within {}s; its Ready condition says {now}",
                    self.step_timeout.as_secs()
                )))
            }
        }
    }

    async fn wait_reported(
        &self,
        name: &str,
        sha: &str,
        status: GitlabStatus,
    ) -> Result<GitlabDeployment, SandboxError> {
        let what = format!("GitLab deployment of {} {status}", short(sha));
        self.wait(name, &what, |gd| reports(gd, sha, status)).await
    }

    /// `web-production`'s `spec.environmentSettings` on GitLab's environment page, as GitLab
    /// itself stores them.
    async fn show_environment_settings(&self) -> Result<(), SandboxError> {
        let gd = self
            .wait("web-production", "environment settings applied", |gd| {
                gd.status
                    .as_ref()
                    .and_then(|s| s.environment.as_ref())
                    .is_some_and(|e| e.state == EnvironmentSyncState::Applied)
            })
            .await?;
        let env_id = gd
            .status
            .as_ref()
            .and_then(|s| s.environment.as_ref())
            .map(|e| e.id);
        let shown = self
            .gitlab
            .environments()
            .into_iter()
            .find(|e| Some(i64::try_from(e.id).unwrap_or(-1)) == env_id);
        if let Some(e) = shown {
            self.say(&format!(
                "GitLab environment {} now shows tier {} and external URL {} (spec.environmentSettings)",
                e.name,
                e.tier,
                e.external_url.as_deref().unwrap_or("none")
            ));
        }
        Ok(())
    }

    /// GitLab's own record (not the operator's view) of `environment` at `sha`.
    fn gitlab_says(&self, environment: &str, sha: &str) -> Vec<String> {
        self.gitlab
            .deployments()
            .into_iter()
            .filter(|d| d.environment == environment && d.sha == sha)
            .map(|d| d.status)
            .collect()
    }

    fn check_gitlab(&self, environment: &str, sha: &str, want: &str) -> Result<(), SandboxError> {
        let seen = self.gitlab_says(environment, sha);
        if seen == [want] {
            Ok(())
        } else {
            Err(self.failed(format!(
                "GitLab has {seen:?} for {environment} at {}, expected exactly one {want}",
                short(sha)
            )))
        }
    }

    /// Apply the examples with Deployment `web` at `sha`.
    async fn apply_examples(&self, sha: &str) -> Result<(), SandboxError> {
        let (staging, production) = (manifests::staging(sha)?, manifests::production()?);
        self.say(&format!(
            "applying examples/: Secret {}, GitlabConnection {}, Deployment web at revision A ({}), GitlabDeployments {} ({}, spec.sha) and {} ({}, sha from the image tag)",
            manifests::name_of(&manifests::secret("")?),
            manifests::name_of(&manifests::connection("")?),
            short(sha),
            manifests::name_of(&staging),
            manifests::environment_of(&staging),
            manifests::name_of(&production),
            manifests::environment_of(&production),
        ));
        self.apply_connection().await?;
        self.roll_out(sha, Outcome::Success).await?;
        self.apply(&self.glds(), &staging).await?;
        self.apply(&self.glds(), &production).await?;
        Ok(())
    }

    /// The Secret and the GitlabConnection of examples/, at the emulated GitLab.
    async fn apply_connection(&self) -> Result<(), SandboxError> {
        let ns = &self.namespace;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        self.apply(&secrets, &manifests::secret(&self.info.root_token)?)
            .await?;
        let connections: Api<GitlabConnection> = Api::namespaced(self.client.clone(), ns);
        self.apply(&connections, &manifests::connection(&self.info.gitlab_url)?)
            .await
    }

    /// Roll Deployment `web` to the image built from `sha`, ending as `outcome` says.
    async fn roll_out(&self, sha: &str, outcome: Outcome) -> Result<(), SandboxError> {
        self.roll_out_named("web", sha, outcome).await
    }

    /// Roll Deployment `name` to the image built from `sha`, ending as `outcome` says.
    async fn roll_out_named(
        &self,
        name: &str,
        sha: &str,
        outcome: Outcome,
    ) -> Result<(), SandboxError> {
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        self.apply(
            &deployments,
            &manifests::deployment(name, sha, self.step_ms, outcome)?,
        )
        .await
    }

    async fn point_staging(&self, sha: &str) -> Result<(), SandboxError> {
        self.apply(&self.glds(), &manifests::staging(sha)?).await
    }

    async fn both(
        &self,
        sha: &str,
        status: GitlabStatus,
    ) -> Result<GitlabDeployment, SandboxError> {
        self.wait_reported("web-staging", sha, status).await?;
        self.wait_reported("web-production", sha, status).await
    }

    /// Play the scenario; `Ok` means it reached its expected end, checked against GitLab.
    pub async fn play(&self) -> Result<(), SandboxError> {
        let (a, b, c) = self.revisions()?;
        if matches!(self.scenario, Scenario::Approval | Scenario::Rejection) {
            self.play_gate(a, b).await?;
            self.say(&format!("demo `{}` succeeded", self.scenario.as_str()));
            return Ok(());
        }
        self.apply_examples(a).await?;
        self.both(a, GitlabStatus::Success).await?;
        self.say(&format!(
            "revision A ({}) is rolled out and reported to staging and production",
            short(a)
        ));
        self.show_environment_settings().await?;
        match self.scenario {
            Scenario::Default => {
                self.revision_b(b, Outcome::Success).await?;
                let prod = self.pending_production(b).await?;
                println!("{}", approve_hint(&self.info, deployment_id(&prod)));
                self.check_gitlab("staging", b, "success")?;
                self.check_gitlab("production", b, "success")?;
            }
            Scenario::Failure => {
                self.revision_b(b, Outcome::Fail).await?;
                self.both(b, GitlabStatus::Failed).await?;
                self.say("the rollout failed (ProgressDeadlineExceeded): GitLab shows both deployments failed");
                self.check_gitlab("staging", b, "failed")?;
                self.check_gitlab("production", b, "failed")?;
            }
            Scenario::Supersede => {
                self.revision_b(b, Outcome::Stall).await?;
                self.both(b, GitlabStatus::Running).await?;
                self.say(&format!(
                    "revision C ({}) arrives while B is still rolling out",
                    short(c)
                ));
                // Staging first this time: B is stuck in progress, so the new sha is reported
                // running at once (B canceled), and B can never be mistaken for complete by
                // C's pods finishing before staging learns of C.
                self.point_staging(c).await?;
                self.roll_out(c, Outcome::Success).await?;
                self.both(c, GitlabStatus::Success).await?;
                self.say("B's GitLab deployments were canceled, C's succeeded");
                self.check_gitlab("staging", b, "canceled")?;
                self.check_gitlab("production", b, "canceled")?;
                self.check_gitlab("staging", c, "success")?;
                self.check_gitlab("production", c, "success")?;
            }
            Scenario::Approval | Scenario::Rejection => {}
        }
        self.say(&format!("demo `{}` succeeded", self.scenario.as_str()));
        Ok(())
    }

    /// The `approval` and `rejection` stories: staging as in the examples, production behind
    /// the approval gate with a workload of its own that the sandbox applies only once GitLab
    /// approved (what Flux's `dependsOn` on the gate, or a pipeline's
    /// `kubectl wait --for=condition=Approved`, does).
    async fn play_gate(&self, a: &str, b: &str) -> Result<(), SandboxError> {
        let staging = manifests::staging(a)?;
        self.say(&format!(
            "applying examples/: Secret, GitlabConnection, Deployment web and {} at revision A ({}); production behind the approval gate of {} (spec.approval.gate) at A; its Deployment {} is applied only once GitLab approves",
            manifests::name_of(&staging),
            short(a),
            manifests::GATE.file,
            manifests::GATED_WORKLOAD,
        ));
        self.apply_connection().await?;
        self.roll_out(a, Outcome::Success).await?;
        self.apply(&self.glds(), &staging).await?;
        self.apply(&self.glds(), &manifests::gated_production(a)?)
            .await?;
        self.wait_reported("web-staging", a, GitlabStatus::Success)
            .await?;
        let held = self
            .wait(
                "web-production",
                "held for approval (Approved=False)",
                |gd| {
                    reports(gd, a, GitlabStatus::Running)
                        && condition_is(gd, "Approved", "False", reason::APPROVAL_PENDING)
                },
            )
            .await?;
        let id = deployment_id(&held);
        self.say(&format!(
            "production holds A: GitLab deployment {id} is running and waits for approval (Approved=False); nothing runs in production yet"
        ));
        println!("{}", approve_hint(&self.info, id));
        let (verdict, word) = match self.scenario {
            Scenario::Rejection => (ApprovalStatus::Rejected, "rejects"),
            _ => (ApprovalStatus::Approved, "approves"),
        };
        self.say(&format!(
            "the sandbox {word} it as `approver` in {}s",
            self.approve_after.as_secs()
        ));
        // A scripted pause for the person watching, not a wait for a condition.
        tokio::time::sleep(self.approve_after).await;
        self.review(id, verdict).await?;
        if verdict == ApprovalStatus::Rejected {
            return self.rejected(id, a, b).await;
        }
        self.say(&format!(
            "approved GitLab deployment {id} as approver; waiting for the operator to see it"
        ));
        self.wait("web-production", "Approved=True", |gd| {
            condition_is(gd, "Approved", "True", reason::APPROVED)
        })
        .await?;
        self.say(&format!(
            "Approved=True: the sandbox applies Deployment {} at A, as Flux's dependsOn on the gate would",
            manifests::GATED_WORKLOAD
        ));
        self.roll_out_named(manifests::GATED_WORKLOAD, a, Outcome::Success)
            .await?;
        self.wait_reported("web-production", a, GitlabStatus::Success)
            .await?;
        self.say("production rolled A out after the approval: GitLab shows success");
        self.check_gitlab("production", a, "success")
    }

    /// After a rejection: `failed`, Stalled, the workload never applied; the next revision
    /// starts over with its own deployment.
    async fn rejected(&self, id: i64, a: &str, b: &str) -> Result<(), SandboxError> {
        self.say(&format!(
            "rejected GitLab deployment {id} as approver; waiting for the operator to see it"
        ));
        self.wait(
            "web-production",
            "failed and Stalled (ApprovalRejected)",
            |gd| {
                reports(gd, a, GitlabStatus::Failed)
                    && condition_is(gd, "Stalled", "True", reason::APPROVAL_REJECTED)
            },
        )
        .await?;
        self.check_gitlab("production", a, "failed")?;
        let workloads: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        if workloads
            .get_opt(manifests::GATED_WORKLOAD)
            .await
            .map_err(|e| {
                self.failed(format!(
                    "reading Deployment {}: {e}",
                    manifests::GATED_WORKLOAD
                ))
            })?
            .is_some()
        {
            return Err(self.failed(format!(
                "Deployment {} exists although production was rejected",
                manifests::GATED_WORKLOAD
            )));
        }
        self.say(&format!(
            "GitLab deployment {id} is failed and web-production Stalled (ApprovalRejected); Deployment {} was never applied",
            manifests::GATED_WORKLOAD
        ));
        self.say(&format!(
            "revision B ({}) starts over: the gate names B, a new GitLab deployment waits for approval",
            short(b)
        ));
        self.apply(&self.glds(), &manifests::gated_production(b)?)
            .await?;
        self.wait("web-production", "B held for approval", |gd| {
            reports(gd, b, GitlabStatus::Running)
                && condition_is(gd, "Approved", "False", reason::APPROVAL_PENDING)
        })
        .await?;
        self.check_gitlab("production", a, "failed")?;
        self.check_gitlab("production", b, "running")
    }

    async fn revision_b(&self, b: &str, outcome: Outcome) -> Result<(), SandboxError> {
        let how = match outcome {
            Outcome::Success => "",
            Outcome::Fail => " (the emulator makes this rollout fail)",
            Outcome::Stall => " (the emulator holds this rollout in progress)",
        };
        self.say(&format!(
            "rolling out revision B ({}){how}: new image tag on Deployment web, new spec.sha on web-staging",
            short(b)
        ));
        // The rollout first, then staging's sha once the operator has seen the rollout start,
        // so the demo shows B's deployment `running` before `success`. Either order is
        // reported right (docs/sha-changes.md); this one makes the live lines easy to follow.
        self.roll_out(b, outcome).await?;
        self.wait("web-staging", "the operator sees the new rollout", |gd| {
            gd.status
                .as_ref()
                .and_then(|s| s.rollout.as_ref())
                .is_some_and(|r| r.state != "Succeeded")
        })
        .await?;
        self.point_staging(b).await
    }

    async fn pending_production(&self, b: &str) -> Result<GitlabDeployment, SandboxError> {
        self.wait_reported("web-staging", b, GitlabStatus::Success)
            .await?;
        self.wait("web-production", "success, waiting for approval", |gd| {
            reports(gd, b, GitlabStatus::Success) && approval_is(gd, ApprovalState::Pending)
        })
        .await
    }

    /// Approve or reject as the approver through the operator's own GitLab client (what
    /// `deployments approve` does).
    async fn review(&self, id: i64, status: ApprovalStatus) -> Result<(), SandboxError> {
        let step = "reviewing production as the approver";
        let client = GitlabClient::builder(
            self.info.gitlab_url.clone(),
            Token::new(TokenKind::Private, self.info.approver_token.clone()),
        )
        .build()
        .map_err(|source| SandboxError::Gitlab { step, source })?;
        let comment = match status {
            ApprovalStatus::Rejected => "rejected by the sandbox: not this week",
            _ => "approved by the sandbox",
        };
        let request = ApproveDeployment {
            status,
            comment: Some(comment.to_owned()),
            represented_as: None,
        };
        let project = ProjectId::Path(self.info.project_path.clone());
        client
            .approve_deployment(&project, u64::try_from(id).unwrap_or_default(), &request)
            .await
            .map_err(|source| SandboxError::Gitlab { step, source })?;
        Ok(())
    }
}
