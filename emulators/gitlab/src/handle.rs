//! The shared state behind one mutex, and [`EmulatorHandle`]: the test-facing API for
//! seeding, records, faults, rate limits and the clock. Every method is synchronous and takes
//! the lock briefly, so it is usable from sync code and from async tasks alike.

use crate::clock::Clock;
use crate::faults::{Fault, RateLimit};
use crate::model::*;
use crate::records::{CounterKey, DeploymentRecord, Endpoint, HookDelivery, RequestRecord};
use crate::state::{Data, environment_slug, fake_sha, guess_tier};
use crate::webhooks::HookFault;
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// How many requests the log keeps (oldest dropped first).
const REQUEST_LOG_CAPACITY: usize = 10_000;

/// Everything mutable, behind one mutex (never held across `.await`).
#[derive(Debug)]
pub(crate) struct Inner {
    pub data: Data,
    pub clock: Clock,
    /// Base of `web_url`s and `Link` headers, e.g. `http://127.0.0.1:PORT`.
    pub external_url: String,
    pub faults: Vec<Fault>,
    pub requests: VecDeque<RequestRecord>,
    pub counters: BTreeMap<CounterKey, u64>,
    pub rate_limit: Option<RateLimit>,
    /// identity → (window start in epoch seconds, count).
    pub rate_windows: HashMap<String, (i64, u64)>,
    pub state_file: Option<PathBuf>,
    /// Faults for the next hook deliveries: (fault, remaining count; `None` = sticky).
    pub hook_faults: VecDeque<(HookFault, Option<u32>)>,
    /// Hook delivery attempts, oldest first (the last `REQUEST_LOG_CAPACITY`).
    pub hook_deliveries: Vec<HookDelivery>,
    /// `gitlab.yml` `webhook_timeout` (default 10 s).
    pub webhook_timeout: std::time::Duration,
}

impl Inner {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The fault for the next hook delivery, if one is set (counting it down).
    pub fn take_hook_fault(&mut self) -> Option<HookFault> {
        let (fault, remaining) = self.hook_faults.front_mut()?;
        let fault = *fault;
        if let Some(n) = remaining {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.hook_faults.pop_front();
            }
        }
        Some(fault)
    }

    /// Writes the data to the state file, if any: tmp file + rename, so a crash never leaves
    /// a half-written state.
    pub fn persist(&self) {
        let Some(path) = &self.state_file else { return };
        let json = match serde_json::to_vec_pretty(&self.data) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise emulator state");
                return;
            }
        };
        let tmp = path.with_extension("tmp");
        let res = std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = res {
            tracing::error!(error = %e, path = %path.display(), "cannot write emulator state");
        }
    }
}

/// Project settings for [`EmulatorHandle::add_project`].
#[derive(Debug, Clone)]
pub struct ProjectSpec {
    /// Fixed id; `None` takes the next free one.
    pub id: Option<u64>,
    /// Full path, e.g. `group/app`.
    pub path: String,
    pub visibility: Visibility,
    pub environments_enabled: bool,
    pub allow_pipeline_trigger_approve_deployment: bool,
    pub group_id: Option<u64>,
}

impl ProjectSpec {
    /// A private project with environments enabled.
    pub fn new(path: &str) -> ProjectSpec {
        ProjectSpec {
            id: None,
            path: path.to_string(),
            visibility: Visibility::Private,
            environments_enabled: true,
            allow_pipeline_trigger_approve_deployment: false,
            group_id: None,
        }
    }
    pub fn id(mut self, id: u64) -> ProjectSpec {
        self.id = Some(id);
        self
    }
    pub fn visibility(mut self, v: Visibility) -> ProjectSpec {
        self.visibility = v;
        self
    }
}

/// A merged (or other-state) merge request to seed.
#[derive(Debug, Clone)]
pub struct MergeRequestSpec {
    pub title: String,
    pub author_id: u64,
    pub source_branch: String,
    pub target_branch: String,
    /// Head sha of the source branch.
    pub sha: Option<String>,
    pub merge_commit_sha: Option<String>,
    /// `merged` (default), `opened`, `closed`, `locked`.
    pub state: String,
    /// Defaults to the emulator's "now".
    pub merged_at: Option<DateTime<Utc>>,
    pub description: Option<String>,
}

impl MergeRequestSpec {
    pub fn merged(
        title: &str,
        author_id: u64,
        target_branch: &str,
        merge_commit_sha: &str,
    ) -> Self {
        MergeRequestSpec {
            title: title.to_string(),
            author_id,
            source_branch: format!("feature-{}", title.to_lowercase().replace(' ', "-")),
            target_branch: target_branch.to_string(),
            sha: None,
            merge_commit_sha: Some(merge_commit_sha.to_string()),
            state: "merged".to_string(),
            merged_at: None,
            description: None,
        }
    }
}

/// An approval rule to seed on a protected environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalRuleSpec {
    User {
        user_id: u64,
        required_approvals: u32,
    },
    /// `inherited`: `group_inheritance_type` 1 (members of ancestor groups count too).
    Group {
        group_id: u64,
        inherited: bool,
        required_approvals: u32,
    },
    /// Access level 20/30/40 (a role) or 60 (admins).
    AccessLevel {
        access_level: u32,
        required_approvals: u32,
    },
}

impl ApprovalRuleSpec {
    pub fn role(role: Role, required_approvals: u32) -> Self {
        ApprovalRuleSpec::AccessLevel {
            access_level: role.access_level(),
            required_approvals,
        }
    }
}

/// A deployment as CI would have created it (with a `deployable` job).
#[derive(Debug, Clone)]
pub struct CiDeploymentSpec {
    pub project_id: u64,
    pub environment: String,
    pub sha: String,
    pub ref_: String,
    pub tag: bool,
    pub status: DeploymentStatus,
    pub user_id: u64,
    /// Job object; `None` gets a small fake job.
    pub deployable: Option<serde_json::Value>,
}

/// A project seeded by [`EmulatorHandle::seed_project`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededProject {
    pub id: u64,
    pub path: String,
    pub branch: String,
    /// Commits of `branch`, oldest first (the last one is the branch head).
    pub shas: Vec<String>,
    /// A Maintainer member (`<path-with-dashes>-maintainer`) and its `api` token.
    pub maintainer_id: u64,
    pub maintainer_token: String,
}

impl SeededProject {
    pub fn head(&self) -> &str {
        self.shas.last().map(String::as_str).unwrap_or_default()
    }
}

/// Cheap, cloneable handle on a running (or embedded) emulator's state.
#[derive(Debug, Clone)]
pub struct EmulatorHandle {
    pub(crate) inner: Arc<Mutex<Inner>>,
}

impl EmulatorHandle {
    /// An empty EE, licensed emulator state.
    pub fn new(external_url: &str) -> EmulatorHandle {
        EmulatorHandle {
            inner: Arc::new(Mutex::new(Inner {
                data: Data::default(),
                clock: Clock::Real,
                external_url: external_url.trim_end_matches('/').to_string(),
                faults: Vec::new(),
                requests: VecDeque::new(),
                counters: BTreeMap::new(),
                rate_limit: None,
                rate_windows: HashMap::new(),
                state_file: None,
                hook_faults: VecDeque::new(),
                hook_deliveries: Vec::new(),
                webhook_timeout: std::time::Duration::from_secs(10),
            })),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the data half-updated in a way that
        // matters to a test emulator; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the data and persists it afterwards.
    fn write<R>(&self, f: impl FnOnce(&mut Data, DateTime<Utc>) -> R) -> R {
        let mut g = self.lock();
        let now = g.now();
        let r = f(&mut g.data, now);
        g.persist();
        r
    }

    // ---- instance settings -------------------------------------------------------------

    /// `allow_local_requests_from_web_hooks_and_services`: hooks may point at loopback and
    /// private addresses (off by default, as in GitLab).
    pub fn set_allow_local_webhooks(&self, allow: bool) {
        self.write(|d, _| d.allow_local_webhooks = allow);
    }

    /// Send the approval lifecycle events (`approved`/`rejected`) of MR !239337.
    pub fn set_approval_webhooks(&self, on: bool) {
        self.write(|d, _| d.approval_webhooks = on);
    }

    /// `webhook_timeout`: how long a delivery waits for the receiver.
    pub fn set_webhook_timeout(&self, timeout: std::time::Duration) {
        self.lock().webhook_timeout = timeout;
    }

    /// Apply `fault` to the next `times` hook deliveries (`None`: until cleared).
    pub fn fault_hook_deliveries(&self, fault: HookFault, times: Option<u32>) {
        self.lock().hook_faults.push_back((fault, times));
    }

    pub fn clear_hook_faults(&self) {
        self.lock().hook_faults.clear();
    }

    /// Every hook delivery attempt so far, oldest first.
    pub fn hook_deliveries(&self) -> Vec<HookDelivery> {
        self.lock().hook_deliveries.clone()
    }

    pub(crate) fn record_hook_delivery(&self, delivery: HookDelivery) {
        let mut g = self.lock();
        if g.hook_deliveries.len() >= REQUEST_LOG_CAPACITY {
            g.hook_deliveries.remove(0);
        }
        g.hook_deliveries.push(delivery);
    }

    /// The project hooks (tokens included, for tests).
    pub fn hooks(&self) -> Vec<ProjectHook> {
        self.lock().data.hooks.values().cloned().collect()
    }

    pub fn set_edition(&self, edition: Edition) {
        self.write(|d, _| d.edition = edition);
    }
    /// Premium/Ultimate license; without it no environment is protected.
    pub fn set_licensed(&self, licensed: bool) {
        self.write(|d, _| d.licensed = licensed);
    }
    /// Render timestamps in an instance time zone (`+02:00` style) instead of UTC (`Z`).
    pub fn set_time_zone_offset(&self, offset_secs: i32) {
        self.write(|d, _| d.time_zone_offset_secs = offset_secs);
    }
    /// Emulate documented behaviour of older GitLab versions (see [`crate::state::Compat`]).
    pub fn set_compat(&self, compat: crate::state::Compat) {
        self.write(|d, _| d.compat = compat);
    }
    /// Base URL used in `web_url`s and `Link` headers (defaults to the emulator's own URL).
    pub fn set_external_url(&self, url: &str) {
        self.lock().external_url = url.trim_end_matches('/').to_string();
    }
    /// Keep the data in `path` (written atomically after every change).
    pub fn set_state_file(&self, path: Option<PathBuf>) {
        let mut g = self.lock();
        g.state_file = path;
        g.persist();
    }
    /// Replace all data (e.g. loaded from a state file).
    pub fn load_data_json(&self, json: &[u8]) -> serde_json::Result<()> {
        let data: Data = serde_json::from_slice(json)?;
        let mut g = self.lock();
        g.data = data;
        Ok(())
    }
    /// All data as JSON (what `--state FILE` holds).
    pub fn data_json(&self) -> String {
        serde_json::to_string_pretty(&self.lock().data).unwrap_or_default()
    }

    // ---- clock -------------------------------------------------------------------------

    pub fn set_clock(&self, clock: Clock) {
        self.lock().clock = clock;
    }
    /// Freeze "now" at `t`.
    pub fn set_now(&self, t: DateTime<Utc>) {
        self.lock().clock = Clock::Fixed(crate::clock::truncate_ms(t));
    }
    pub fn advance_clock(&self, by: Duration) {
        self.lock().clock.advance(by);
    }
    pub fn now(&self) -> DateTime<Utc> {
        self.lock().now()
    }

    // ---- users and tokens --------------------------------------------------------------

    /// Adds a user and returns its id.
    pub fn add_user(&self, username: &str, name: &str, admin: bool) -> u64 {
        self.write(|d, _| {
            let id = d.seq.user;
            d.seq.user += 1;
            d.users.insert(
                id,
                User {
                    id,
                    username: username.to_string(),
                    name: name.to_string(),
                    admin,
                    state: "active".to_string(),
                },
            );
            id
        })
    }

    pub fn user_id(&self, username: &str) -> Option<u64> {
        self.lock()
            .data
            .users
            .values()
            .find(|u| u.username == username)
            .map(|u| u.id)
    }

    pub fn add_token(&self, token: Token) {
        self.write(|d, _| {
            d.tokens.insert(token.token.clone(), token);
        });
    }

    /// A personal access token with the given scopes.
    pub fn add_personal_access_token(&self, user_id: u64, token: &str, scopes: &[Scope]) {
        self.add_token(Token {
            token: token.to_string(),
            user_id,
            kind: TokenKind::Personal,
            scopes: scopes.to_vec(),
            expired: false,
            revoked: false,
        });
    }

    /// An OAuth2 access token with scope `api`.
    pub fn add_oauth_token(&self, user_id: u64, token: &str) {
        self.add_token(Token {
            token: token.to_string(),
            user_id,
            kind: TokenKind::OAuth,
            scopes: vec![Scope::Api],
            expired: false,
            revoked: false,
        });
    }

    /// A CI job token of a job in `project_id` run by `user_id`.
    pub fn add_job_token(&self, token: &str, project_id: u64, user_id: u64) {
        self.add_token(Token {
            token: token.to_string(),
            user_id,
            kind: TokenKind::Job { project_id },
            scopes: Vec::new(),
            expired: false,
            revoked: false,
        });
    }

    pub fn set_token_expired(&self, token: &str, expired: bool) {
        self.write(|d, _| {
            if let Some(t) = d.tokens.get_mut(token) {
                t.expired = expired;
            }
        });
    }

    pub fn set_token_revoked(&self, token: &str, revoked: bool) {
        self.write(|d, _| {
            if let Some(t) = d.tokens.get_mut(token) {
                t.revoked = revoked;
            }
        });
    }

    /// A user `username` (name = username) with an `api` personal access token
    /// `glpat-<username>`; returns `(user id, token)`.
    pub fn add_user_with_token(&self, username: &str) -> (u64, String) {
        let id = self.add_user(username, username, false);
        let token = format!("glpat-{username}");
        self.add_personal_access_token(id, &token, &[Scope::Api]);
        (id, token)
    }

    // ---- groups ------------------------------------------------------------------------

    pub fn add_group(&self, path: &str, name: &str, parent_id: Option<u64>) -> u64 {
        self.write(|d, _| {
            let id = d.seq.group;
            d.seq.group += 1;
            d.groups.insert(
                id,
                Group {
                    id,
                    name: name.to_string(),
                    path: path.to_string(),
                    parent_id,
                    members: BTreeMap::new(),
                },
            );
            id
        })
    }

    pub fn add_group_member(&self, group_id: u64, user_id: u64, role: Role) {
        self.write(|d, _| {
            if let Some(g) = d.groups.get_mut(&group_id) {
                g.members.insert(user_id, role);
            }
        });
    }

    // ---- projects ----------------------------------------------------------------------

    /// Adds a project and returns its id.
    pub fn add_project(&self, spec: ProjectSpec) -> u64 {
        self.write(|d, _| {
            let id = spec.id.unwrap_or(d.seq.project);
            d.seq.project = d.seq.project.max(id + 1);
            d.projects.insert(
                id,
                Project {
                    id,
                    path: spec.path,
                    visibility: spec.visibility,
                    environments_enabled: spec.environments_enabled,
                    allow_pipeline_trigger_approve_deployment: spec
                        .allow_pipeline_trigger_approve_deployment,
                    group_id: spec.group_id,
                    members: BTreeMap::new(),
                    job_token_allowlist: Vec::new(),
                    commits: BTreeMap::new(),
                    branches: BTreeMap::new(),
                    tags: BTreeMap::new(),
                    protected_environments: Vec::new(),
                    next_deployment_iid: 1,
                    next_mr_iid: 1,
                },
            );
            id
        })
    }

    fn with_project<R: Default>(
        &self,
        project_id: u64,
        f: impl FnOnce(&mut Project, DateTime<Utc>) -> R,
    ) -> R {
        self.write(|d, now| {
            d.projects
                .get_mut(&project_id)
                .map(|p| f(p, now))
                .unwrap_or_default()
        })
    }

    pub fn add_member(&self, project_id: u64, user_id: u64, role: Role) {
        self.with_project(project_id, |p, _| {
            p.members.insert(user_id, role);
        });
    }

    pub fn remove_member(&self, project_id: u64, user_id: u64) {
        self.with_project(project_id, |p, _| {
            p.members.remove(&user_id);
        });
    }

    pub fn set_environments_enabled(&self, project_id: u64, enabled: bool) {
        self.with_project(project_id, |p, _| p.environments_enabled = enabled);
    }

    pub fn set_allow_pipeline_trigger_approve_deployment(&self, project_id: u64, allow: bool) {
        self.with_project(project_id, |p, _| {
            p.allow_pipeline_trigger_approve_deployment = allow
        });
    }

    pub fn set_visibility(&self, project_id: u64, v: Visibility) {
        self.with_project(project_id, |p, _| p.visibility = v);
    }

    /// Projects whose job tokens may call this project's API (besides itself).
    pub fn set_job_token_allowlist(&self, project_id: u64, allowed: &[u64]) {
        self.with_project(project_id, |p, _| p.job_token_allowlist = allowed.to_vec());
    }

    // ---- repository --------------------------------------------------------------------

    /// Adds a commit with the given parents; returns its deterministic 40-hex sha.
    pub fn add_commit(&self, project_id: u64, parents: &[&str], message: &str) -> String {
        self.write(|d, now| {
            let seq = d.seq.commit;
            d.seq.commit += 1;
            let sha = fake_sha(seq, project_id, message);
            if let Some(p) = d.projects.get_mut(&project_id) {
                p.commits.insert(
                    sha.clone(),
                    Commit {
                        sha: sha.clone(),
                        parents: parents.iter().map(|s| s.to_string()).collect(),
                        message: message.to_string(),
                        created_at: now,
                    },
                );
            }
            sha
        })
    }

    pub fn set_branch(&self, project_id: u64, name: &str, sha: &str) {
        self.with_project(project_id, |p, _| {
            p.branches.insert(name.to_string(), sha.to_string());
        });
    }

    pub fn set_tag(&self, project_id: u64, name: &str, sha: &str) {
        self.with_project(project_id, |p, _| {
            p.tags.insert(name.to_string(), sha.to_string());
        });
    }

    /// Appends `n` commits to `branch` (creating it), returns the new shas oldest first.
    pub fn push_commits(&self, project_id: u64, branch: &str, n: usize) -> Vec<String> {
        let mut head = self
            .lock()
            .data
            .projects
            .get(&project_id)
            .and_then(|p| p.branches.get(branch).cloned());
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let parents: Vec<&str> = head.as_deref().into_iter().collect();
            let sha = self.add_commit(project_id, &parents, &format!("{branch}: change {}", i + 1));
            head = Some(sha.clone());
            out.push(sha);
        }
        if let Some(h) = &head {
            self.set_branch(project_id, branch, h);
        }
        out
    }

    /// Newest-first first-parent history of a branch.
    pub fn branch_history(&self, project_id: u64, branch: &str) -> Vec<String> {
        self.lock()
            .data
            .projects
            .get(&project_id)
            .map(|p| p.branch_history(branch))
            .unwrap_or_default()
    }

    /// One-liner fixture: a private project at `path` with `branch` of `commits` commits and a
    /// Maintainer holding an `api` token.
    pub fn seed_project(&self, path: &str, branch: &str, commits: usize) -> SeededProject {
        let id = self.add_project(ProjectSpec::new(path));
        let username = format!("{}-maintainer", path.replace('/', "-"));
        let (maintainer_id, maintainer_token) = self.add_user_with_token(&username);
        self.add_member(id, maintainer_id, Role::Maintainer);
        let shas = self.push_commits(id, branch, commits);
        SeededProject {
            id,
            path: path.to_string(),
            branch: branch.to_string(),
            shas,
            maintainer_id,
            maintainer_token,
        }
    }

    // ---- merge requests ----------------------------------------------------------------

    /// Adds a merge request; returns `(id, iid)`.
    pub fn add_merge_request(&self, project_id: u64, spec: MergeRequestSpec) -> (u64, u64) {
        self.write(|d, now| {
            let id = d.seq.merge_request;
            let Some(p) = d.projects.get_mut(&project_id) else {
                return (0, 0);
            };
            d.seq.merge_request += 1;
            let iid = p.next_mr_iid;
            p.next_mr_iid += 1;
            let merged = spec.state == "merged";
            let merged_at = if merged {
                Some(spec.merged_at.unwrap_or(now))
            } else {
                None
            };
            d.merge_requests.insert(
                id,
                MergeRequest {
                    id,
                    iid,
                    project_id,
                    title: spec.title,
                    description: spec.description,
                    state: spec.state,
                    created_at: now,
                    updated_at: merged_at.unwrap_or(now),
                    merged_at,
                    closed_at: None,
                    target_branch: spec.target_branch,
                    source_branch: spec.source_branch,
                    author_id: spec.author_id,
                    sha: spec.sha.or_else(|| spec.merge_commit_sha.clone()),
                    merge_commit_sha: spec.merge_commit_sha,
                    squash_commit_sha: None,
                },
            );
            (id, iid)
        })
    }

    // ---- environments ------------------------------------------------------------------

    /// Adds (or returns) the environment `name` of a project.
    pub fn add_environment(&self, project_id: u64, name: &str, external_url: Option<&str>) -> u64 {
        self.write(|d, now| ensure_environment(d, project_id, name, external_url, now))
    }

    /// Protects environment `name` (replacing an earlier protection) with deploy access levels
    /// and approval rules; returns the new rules' ids.
    pub fn protect_environment(
        &self,
        project_id: u64,
        name: &str,
        deploy_access: Vec<DeployAccess>,
        rules: Vec<ApprovalRuleSpec>,
    ) -> Vec<u64> {
        self.write(|d, _| {
            let mut ids = Vec::new();
            let mut approval_rules = Vec::new();
            for r in rules {
                let id = d.seq.approval_rule;
                d.seq.approval_rule += 1;
                ids.push(id);
                let (user_id, group_id, access_level, required, inh) = match r {
                    ApprovalRuleSpec::User {
                        user_id,
                        required_approvals,
                    } => (Some(user_id), None, None, required_approvals, 0),
                    ApprovalRuleSpec::Group {
                        group_id,
                        inherited,
                        required_approvals,
                    } => (
                        None,
                        Some(group_id),
                        None,
                        required_approvals,
                        u32::from(inherited),
                    ),
                    ApprovalRuleSpec::AccessLevel {
                        access_level,
                        required_approvals,
                    } => (None, None, Some(access_level), required_approvals, 0),
                };
                approval_rules.push(ApprovalRule {
                    id,
                    user_id,
                    group_id,
                    access_level,
                    required_approvals: required.clamp(1, 5),
                    group_inheritance_type: inh,
                });
            }
            if let Some(p) = d.projects.get_mut(&project_id) {
                p.protected_environments.retain(|pe| pe.name != name);
                p.protected_environments.push(ProtectedEnvironment {
                    name: name.to_string(),
                    deploy_access,
                    approval_rules,
                });
            }
            ids
        })
    }

    pub fn unprotect_environment(&self, project_id: u64, name: &str) {
        self.with_project(project_id, |p, _| {
            p.protected_environments.retain(|pe| pe.name != name)
        });
    }

    // ---- environments and agents ---------------------------------------------------------

    /// Register a GitLab agent for Kubernetes in `project_id`; returns its id.
    pub fn add_cluster_agent(&self, project_id: u64, name: &str) -> u64 {
        self.write(|d, now| {
            let id = d.cluster_agents.keys().next_back().map_or(1, |k| k + 1);
            d.cluster_agents.insert(
                id,
                ClusterAgent {
                    id,
                    project_id,
                    name: name.to_string(),
                    created_at: now,
                    created_by_user_id: None,
                },
            );
            id
        })
    }

    /// Every environment, as stored.
    pub fn environments(&self) -> Vec<Environment> {
        self.lock().data.environments.values().cloned().collect()
    }

    /// The environment `name` of `project_id`, as stored.
    pub fn environment(&self, project_id: u64, name: &str) -> Option<Environment> {
        self.lock()
            .data
            .environments
            .values()
            .find(|e| e.project_id == project_id && e.name == name)
            .cloned()
    }

    // ---- deployments -------------------------------------------------------------------

    /// A deployment as CI creates it: it has a `deployable`, so `PUT` answers 403. Returns
    /// `(id, iid)`.
    pub fn add_ci_deployment(&self, spec: CiDeploymentSpec) -> (u64, u64) {
        self.write(|d, now| {
            if !d.projects.contains_key(&spec.project_id) {
                return (0, 0);
            }
            let env_id = ensure_environment(d, spec.project_id, &spec.environment, None, now);
            let id = d.seq.deployment;
            d.seq.deployment += 1;
            let Some(p) = d.projects.get_mut(&spec.project_id) else {
                return (0, 0);
            };
            let iid = p.next_deployment_iid;
            p.next_deployment_iid += 1;
            let job_id = 1000 + id;
            let deployable = spec.deployable.unwrap_or_else(|| {
                serde_json::json!({
                    "id": job_id, "status": spec.status.as_str(), "stage": "deploy",
                    "name": format!("deploy:{}", spec.environment), "ref": spec.ref_,
                    "tag": spec.tag, "coverage": null, "allow_failure": false,
                    "created_at": crate::clock::render(&now), "started_at": null,
                    "finished_at": null, "duration": null,
                    "project": {"ci_job_token_scope_enabled": false}
                })
            });
            let finished_at = spec.status.is_finished().then_some(now);
            d.deployments.insert(
                id,
                Deployment {
                    id,
                    iid,
                    project_id: spec.project_id,
                    environment_id: env_id,
                    sha: spec.sha,
                    ref_: spec.ref_,
                    tag: spec.tag,
                    status: spec.status,
                    user_id: Some(spec.user_id),
                    created_at: now,
                    updated_at: now,
                    finished_at,
                    deployable: Some(deployable),
                    approvals: Vec::new(),
                    merge_request_ids: Vec::new(),
                },
            );
            (id, iid)
        })
    }

    /// Every stored deployment, by id.
    pub fn deployments(&self) -> Vec<DeploymentRecord> {
        let g = self.lock();
        let d = &g.data;
        d.deployments
            .values()
            .map(|dep| {
                let user = dep.user_id.and_then(|u| d.users.get(&u));
                DeploymentRecord {
                    project_id: dep.project_id,
                    id: dep.id,
                    iid: dep.iid,
                    environment: d
                        .environments
                        .get(&dep.environment_id)
                        .map(|e| e.name.clone())
                        .unwrap_or_default(),
                    sha: dep.sha.clone(),
                    ref_: dep.ref_.clone(),
                    tag: dep.tag,
                    status: dep.status.as_str().to_string(),
                    user_id: dep.user_id,
                    username: user.map(|u| u.username.clone()),
                    created_at: dep.created_at,
                    updated_at: dep.updated_at,
                    finished_at: dep.finished_at,
                    from_ci: dep.deployable.is_some(),
                    pending_approval_count: d.pending_approval_count(dep),
                    approvals: dep
                        .approvals
                        .iter()
                        .map(|a| {
                            let name = d.users.get(&a.user_id).map(|u| u.username.clone());
                            (name.unwrap_or_default(), a.status.clone())
                        })
                        .collect(),
                    merge_request_iids: dep
                        .merge_request_ids
                        .iter()
                        .filter_map(|m| d.merge_requests.get(m).map(|m| m.iid))
                        .collect(),
                }
            })
            .collect()
    }

    pub fn deployment(&self, id: u64) -> Option<DeploymentRecord> {
        self.deployments().into_iter().find(|d| d.id == id)
    }

    // ---- request log -------------------------------------------------------------------

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().requests.iter().cloned().collect()
    }

    pub fn clear_requests(&self) {
        let mut g = self.lock();
        g.requests.clear();
        g.counters.clear();
    }

    /// Requests by (route template, method, status).
    pub fn counters(&self) -> BTreeMap<CounterKey, u64> {
        self.lock().counters.clone()
    }

    /// How many logged requests hit `endpoint` (any status).
    pub fn count(&self, endpoint: Endpoint) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.route == endpoint)
            .count()
    }

    /// How many logged requests were writes (POST/PUT/DELETE), any route.
    pub fn write_count(&self) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "DELETE" | "PATCH"))
            .count()
    }

    pub(crate) fn record(&self, rec: RequestRecord) {
        tracing::debug!(
            method = %rec.method,
            endpoint = rec.endpoint,
            status = rec.status,
            "gitlab emulator request"
        );
        let mut g = self.lock();
        let key = CounterKey {
            endpoint: rec.endpoint.clone(),
            method: rec.method.clone(),
            status: rec.status,
        };
        *g.counters.entry(key).or_insert(0) += 1;
        if g.requests.len() >= REQUEST_LOG_CAPACITY {
            g.requests.pop_front();
        }
        g.requests.push_back(rec);
    }

    /// Polls `probe` (every 20 ms) until it returns `Some` or `timeout` passes; for async
    /// tests that wait on what a client did ("a deployment reached success").
    pub async fn wait_for<T>(
        &self,
        timeout: std::time::Duration,
        mut probe: impl FnMut(&EmulatorHandle) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(t) = probe(self) {
                return Some(t);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Blocking twin of [`EmulatorHandle::wait_for`] for sync tests (never call it on an async
    /// runtime thread).
    pub fn wait_for_blocking<T>(
        &self,
        timeout: std::time::Duration,
        mut probe: impl FnMut(&EmulatorHandle) -> Option<T>,
    ) -> Option<T> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(t) = probe(self) {
                return Some(t);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    // ---- faults and rate limits --------------------------------------------------------

    pub fn inject_fault(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// `None` disables the throttle (GitLab's self-managed default).
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        let mut g = self.lock();
        g.rate_limit = limit;
        g.rate_windows.clear();
    }
}

/// Finds or creates the environment `name` of a project; returns its id.
pub(crate) fn ensure_environment(
    d: &mut Data,
    project_id: u64,
    name: &str,
    external_url: Option<&str>,
    now: DateTime<Utc>,
) -> u64 {
    if let Some(e) = d
        .environments
        .values()
        .find(|e| e.project_id == project_id && e.name == name)
    {
        return e.id;
    }
    let id = d.seq.environment;
    d.seq.environment += 1;
    d.environments.insert(
        id,
        Environment {
            id,
            project_id,
            name: name.to_string(),
            slug: environment_slug(name),
            external_url: external_url.map(str::to_string),
            created_at: now,
            updated_at: now,
            tier: guess_tier(name).to_string(),
            state: "available".to_string(),
            cluster_agent_id: None,
            kubernetes_namespace: None,
            flux_resource_path: None,
        },
    );
    id
}
