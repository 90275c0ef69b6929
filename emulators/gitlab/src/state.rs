//! The emulator's persistent data and the domain rules that read it (revision lookup,
//! access levels, protected environments, approval counts). Pure: no IO, no clock.

use crate::model::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Next ids of every global sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequences {
    pub user: u64,
    pub group: u64,
    pub project: u64,
    pub environment: u64,
    pub deployment: u64,
    pub merge_request: u64,
    pub approval_rule: u64,
    pub commit: u64,
}

impl Default for Sequences {
    fn default() -> Self {
        Sequences {
            user: 1,
            group: 1,
            project: 1,
            environment: 1,
            deployment: 1,
            merge_request: 1,
            approval_rule: 1,
            commit: 1,
        }
    }
}

/// Everything the emulator knows; this is what `--state FILE` stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Data {
    pub edition: Edition,
    /// Premium/Ultimate license: without it environments are never "protected".
    pub licensed: bool,
    pub users: BTreeMap<u64, User>,
    pub tokens: BTreeMap<String, Token>,
    pub groups: BTreeMap<u64, Group>,
    pub projects: BTreeMap<u64, Project>,
    pub environments: BTreeMap<u64, Environment>,
    pub deployments: BTreeMap<u64, Deployment>,
    pub merge_requests: BTreeMap<u64, MergeRequest>,
    #[serde(default)]
    pub cluster_agents: BTreeMap<u64, ClusterAgent>,
    pub seq: Sequences,
    /// Behaviour of older GitLab versions (all off: current 17.x/18.x behaviour).
    #[serde(default)]
    pub compat: Compat,
    /// Instance time zone as a UTC offset in seconds (0: UTC, timestamps end in `Z`).
    #[serde(default)]
    pub time_zone_offset_secs: i32,
    /// Project webhooks by id.
    #[serde(default)]
    pub hooks: BTreeMap<u64, ProjectHook>,
    /// Send the approval lifecycle events of MR !239337 (`approved`/`rejected` Deployment
    /// Hooks, EE 19.x). Off: an older server that sends none.
    #[serde(default)]
    pub approval_webhooks: bool,
    /// `allow_local_requests_from_web_hooks_and_services`: off (GitLab's default) refuses hook
    /// URLs on loopback and private networks.
    #[serde(default)]
    pub allow_local_webhooks: bool,
    /// Deployment Hook payloads waiting to be handed to the delivery tasks (not persisted: a
    /// restart loses them, as a Sidekiq queue without Redis persistence would).
    #[serde(skip)]
    pub outbox: Vec<HookEvent>,
}

/// One event for the project's hooks that have `deployment_events` set.
#[derive(Debug, Clone, PartialEq)]
pub struct HookEvent {
    pub project_id: u64,
    pub payload: serde_json::Value,
}

/// Switches for the version differences the spec documents, so clients can be tested
/// against older servers too. All `false` is current GitLab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Compat {
    /// Accept `order_by=ref` on the list (removed in GitLab 16.3).
    pub order_by_ref: bool,
    /// F2 (`updated_at` filter needs `updated_at` sort) only logged, as in ~14.x-15.x.
    pub soft_updated_at_sort_check: bool,
    /// Before F4: `order_by=finished_at` without a `finished_*` filter answers
    /// "`finished_at` filter and `finished_at` sorting must be paired".
    pub legacy_finished_at_pairing: bool,
    /// Before `allow_blank: false` on create: no "is empty" fragments; blank values fail later
    /// as sha/ref lookups or environment-name validation.
    pub no_allow_blank: bool,
    /// ~15.x-16.x approval order: "not waiting" (status must be `blocked`) is checked first.
    pub legacy_approval_order: bool,
    /// Before 17.4: environments have no `cluster_agent_id`, `kubernetes_namespace` or
    /// `flux_resource_path`. PUT ignores them (undeclared Grape parameters are dropped) and the
    /// entity never shows them.
    #[serde(default)]
    pub no_environment_kubernetes_fields: bool,
}

impl Default for Data {
    fn default() -> Self {
        Data {
            edition: Edition::Ee,
            licensed: true,
            users: BTreeMap::new(),
            tokens: BTreeMap::new(),
            groups: BTreeMap::new(),
            projects: BTreeMap::new(),
            environments: BTreeMap::new(),
            deployments: BTreeMap::new(),
            merge_requests: BTreeMap::new(),
            cluster_agents: BTreeMap::new(),
            seq: Sequences::default(),
            compat: Compat::default(),
            time_zone_offset_secs: 0,
            hooks: BTreeMap::new(),
            approval_webhooks: false,
            allow_local_webhooks: false,
            outbox: Vec::new(),
        }
    }
}

/// Deterministic 40-hex "sha" from a sequence number and content (splitmix64 rounds).
pub fn fake_sha(seq: u64, project_id: u64, message: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in message.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut x = seq
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(project_id.rotate_left(17))
        ^ h;
    let mut out = String::with_capacity(40);
    while out.len() < 40 {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        out.push_str(&format!("{z:016x}"));
    }
    out.truncate(40);
    out
}

impl Project {
    /// Resolves a revision as `git rev-parse` would for the forms clients send: a full or
    /// unique abbreviated (>= 4 hex chars) sha, a branch name or a tag name.
    pub fn resolve_revision(&self, rev: &str) -> Option<String> {
        if rev.is_empty() {
            return None;
        }
        if self.commits.contains_key(rev) {
            return Some(rev.to_string());
        }
        // git prefers a ref over an abbreviated sha when both match.
        if let Some(sha) = self.branches.get(rev) {
            return Some(sha.clone());
        }
        if let Some(sha) = self.tags.get(rev) {
            return Some(sha.clone());
        }
        let lower = rev.to_ascii_lowercase();
        if lower.len() >= 4 && lower.len() < 40 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut matches = self
                .commits
                .range(lower.clone()..)
                .take_while(|(k, _)| k.starts_with(&lower));
            if let (Some((sha, _)), None) = (matches.next(), matches.next()) {
                return Some(sha.clone());
            }
        }
        None
    }

    /// All commits reachable from `sha` (inclusive).
    pub fn ancestors(&self, sha: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![sha.to_string()];
        while let Some(s) = stack.pop() {
            if let Some(c) = self.commits.get(&s)
                && seen.insert(s.clone())
            {
                stack.extend(c.parents.iter().cloned());
            }
        }
        seen
    }

    /// Newest-first first-parent history of a branch.
    pub fn branch_history(&self, branch: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = self.branches.get(branch).cloned();
        while let Some(sha) = cur {
            if out.contains(&sha) {
                break;
            }
            cur = self
                .commits
                .get(&sha)
                .and_then(|c| c.parents.first().cloned());
            out.push(sha);
        }
        out
    }
}

/// Environment-name validation errors, in Rails validation order (length, then format).
pub fn environment_name_errors(name: &str) -> Vec<&'static str> {
    let mut errs = Vec::new();
    // Only reachable on servers without `allow_blank: false` (see `Compat::no_allow_blank`).
    if name.trim().is_empty() {
        errs.push("can't be blank");
    }
    if name.chars().count() > 255 {
        errs.push("is too long (maximum is 255 characters)");
    }
    let allowed = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_/${}. ".contains(c));
    if !allowed || name.is_empty() || name.starts_with('/') || name.ends_with('/') {
        errs.push(
            "can contain only letters, digits, '-', '_', '/', '$', '{', '}', '.', and spaces, but it cannot start or end with '/'",
        );
    }
    errs
}

/// GitLab's environment slug: lower-case, non-alphanumerics to `-`, must start with a letter,
/// dashes squeezed; names that changed or exceed 24 chars get a 6-char suffix. GitLab's suffix
/// is random; ours is derived from the name so state stays deterministic (unverified detail).
/// The tier GitLab guesses from an environment name (A.8), checked in this order.
pub fn guess_tier(name: &str) -> &'static str {
    let n = name.to_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| n.contains(w));
    if any(&["dev", "review", "trunk"]) {
        "development"
    } else if any(&[
        "test", "tst", "int", "acpt", "accept", "qa", "qc", "control", "quality",
    ]) {
        "testing"
    } else if any(&["stg", "stag", "modl", "model", "pre", "demo", "non"]) {
        "staging"
    } else if any(&["prd", "prod", "live"]) {
        "production"
    } else {
        "other"
    }
}

pub fn environment_slug(name: &str) -> String {
    let mut s: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s = format!("env-{s}");
    }
    let mut squeezed = String::with_capacity(s.len());
    for c in s.chars() {
        if !(c == '-' && squeezed.ends_with('-')) {
            squeezed.push(c);
        }
    }
    if squeezed.len() > 24 || squeezed != name {
        let mut short: String = squeezed.chars().take(17).collect();
        if !short.ends_with('-') {
            short.push('-');
        }
        let sha = fake_sha(0, 0, name);
        let suffix: String = sha
            .bytes()
            .map(|b| {
                let v = (b as u32) % 36;
                char::from_digit(v, 36).unwrap_or('a')
            })
            .take(6)
            .collect();
        short.push_str(&suffix);
        short
    } else {
        squeezed.trim_end_matches('-').to_string()
    }
}

/// The state-machine event a requested status fires, and whether it is allowed from `from`.
pub fn transition(from: DeploymentStatus, to: DeploymentStatus) -> Result<(), &'static str> {
    use DeploymentStatus::*;
    let (event, ok) = match to {
        Running => ("run", matches!(from, Created | Blocked)),
        Success => ("succeed", from != Success),
        Failed => ("drop", from != Failed),
        Canceled => ("cancel", from != Canceled),
        Skipped => ("skip", from != Skipped),
        Blocked => ("block", from == Created),
        Created => ("create", from == Skipped),
    };
    if ok { Ok(()) } else { Err(event) }
}

impl Data {
    pub fn project_by_ref(&self, id_or_path: &str) -> Option<&Project> {
        if !id_or_path.is_empty() && id_or_path.bytes().all(|b| b.is_ascii_digit()) {
            let id: u64 = id_or_path.parse().ok()?;
            return self.projects.get(&id);
        }
        self.projects
            .values()
            .find(|p| p.path.eq_ignore_ascii_case(id_or_path))
    }

    /// Whether `user` is a member of `group_id` (directly, or via an ancestor when `inherited`).
    pub fn group_member_role(&self, group_id: u64, user_id: u64, inherited: bool) -> Option<Role> {
        let mut best = None;
        let mut cur = Some(group_id);
        let mut hops = 0;
        while let Some(gid) = cur {
            let Some(g) = self.groups.get(&gid) else {
                break;
            };
            if let Some(r) = g.members.get(&user_id) {
                best = best.max(Some(*r));
            }
            if !inherited || hops > 64 {
                break;
            }
            hops += 1;
            cur = g.parent_id;
        }
        best
    }

    /// The user's effective role in the project: direct membership or via the namespace group.
    pub fn project_role(&self, project: &Project, user_id: u64) -> Option<Role> {
        let direct = project.members.get(&user_id).copied();
        let via_group = project
            .group_id
            .and_then(|g| self.group_member_role(g, user_id, true));
        direct.max(via_group)
    }

    pub fn is_admin(&self, user_id: u64) -> bool {
        self.users.get(&user_id).is_some_and(|u| u.admin)
    }

    /// Project visibility for an authenticated user: public and internal projects are visible
    /// to everyone signed in; private ones to members (any role) and admins.
    pub fn can_see_project(&self, project: &Project, user_id: u64) -> bool {
        self.is_admin(user_id)
            || project.visibility != Visibility::Private
            || self.project_role(project, user_id).is_some()
    }

    /// `read_deployment`: Reporter and up (admins always). GitLab may grant less-privileged
    /// readers on public projects with public pipelines (unverified); we require Reporter.
    pub fn has_role_at_least(&self, project: &Project, user_id: u64, role: Role) -> bool {
        self.is_admin(user_id)
            || self
                .project_role(project, user_id)
                .is_some_and(|r| r >= role)
    }

    pub fn protected_environment<'a>(
        &self,
        project: &'a Project,
        env_name: &str,
    ) -> Option<&'a ProtectedEnvironment> {
        if !self.licensed || self.edition == Edition::Ce {
            return None;
        }
        project
            .protected_environments
            .iter()
            .find(|p| p.name == env_name)
    }

    /// EE deploy access: unprotected environments allow every Developer+; protected ones only
    /// the listed access levels (admins always).
    pub fn may_deploy_to(&self, project: &Project, user_id: u64, env_name: &str) -> bool {
        if self.is_admin(user_id) {
            return true;
        }
        let Some(pe) = self.protected_environment(project, env_name) else {
            return true;
        };
        pe.deploy_access.iter().any(|a| match a {
            DeployAccess::Role(r) => self
                .project_role(project, user_id)
                .is_some_and(|mine| mine >= *r),
            DeployAccess::User(u) => *u == user_id,
            DeployAccess::Group {
                group_id,
                inherited,
            } => self
                .group_member_role(*group_id, user_id, *inherited)
                .is_some(),
        })
    }

    /// Whether `user_id` satisfies an approval rule (`check_access`).
    pub fn rule_matches(&self, project: &Project, rule: &ApprovalRule, user_id: u64) -> bool {
        if self.is_admin(user_id) {
            return true;
        }
        if let Some(u) = rule.user_id {
            return u == user_id;
        }
        if let Some(g) = rule.group_id {
            return self
                .group_member_role(g, user_id, rule.group_inheritance_type == 1)
                .is_some();
        }
        if let Some(level) = rule.access_level {
            return self
                .project_role(project, user_id)
                .is_some_and(|r| r.access_level() >= level);
        }
        false
    }

    /// `access_level_description` of a rule as the API renders it.
    pub fn rule_description(&self, rule: &ApprovalRule) -> Option<String> {
        if let Some(u) = rule.user_id {
            return self.users.get(&u).map(|u| u.name.clone());
        }
        if let Some(g) = rule.group_id {
            return self.groups.get(&g).map(|g| g.name.clone());
        }
        match rule.access_level {
            Some(40) => Some("Maintainers".to_string()),
            Some(30) => Some("Developers + Maintainers".to_string()),
            _ => None,
        }
    }

    /// Approval rules in force for a deployment's environment (empty if not protected).
    pub fn rules_for(&self, dep: &Deployment) -> Vec<ApprovalRule> {
        let Some(project) = self.projects.get(&dep.project_id) else {
            return Vec::new();
        };
        let Some(env) = self.environments.get(&dep.environment_id) else {
            return Vec::new();
        };
        self.protected_environment(project, &env.name)
            .map(|p| p.approval_rules.clone())
            .unwrap_or_default()
    }

    /// Σ over rules of max(required − approved, 0); 0 when the environment is not protected.
    pub fn pending_approval_count(&self, dep: &Deployment) -> u32 {
        self.rules_for(dep)
            .iter()
            .map(|r| {
                let approved = dep
                    .approvals
                    .iter()
                    .filter(|a| a.rule_id == Some(r.id) && a.status == "approved")
                    .count() as u32;
                r.required_approvals.saturating_sub(approved)
            })
            .sum()
    }

    /// The environment's last successful deployment (latest `success` by `finished_at`, then id).
    pub fn last_successful_deployment(&self, environment_id: u64) -> Option<&Deployment> {
        self.deployments
            .values()
            .filter(|d| d.environment_id == environment_id && d.status == DeploymentStatus::Success)
            .max_by(|a, b| a.finished_at.cmp(&b.finished_at).then(a.id.cmp(&b.id)))
    }

    /// §10: merge requests to link when `dep` has just succeeded.
    pub fn merge_requests_to_link(&self, dep: &Deployment) -> Vec<u64> {
        let Some(project) = self.projects.get(&dep.project_id) else {
            return Vec::new();
        };
        let Some(env) = self.environments.get(&dep.environment_id) else {
            return Vec::new();
        };
        // Folder environments (`review/x`) link only when their guessed tier is production
        // or staging (unverified call site); we guess the tier from the folder name.
        if env.name.contains('/') {
            let lower = env.name.to_lowercase();
            let tier_ok = ["prod", "live", "stag", "pre"]
                .iter()
                .any(|p| lower.starts_with(p));
            if !tier_ok {
                return Vec::new();
            }
        }
        let prev = self
            .deployments
            .values()
            .filter(|d| {
                d.environment_id == dep.environment_id
                    && d.id < dep.id
                    && d.status == DeploymentStatus::Success
            })
            .max_by_key(|d| d.id);
        let merged = self
            .merge_requests
            .values()
            .filter(|m| m.project_id == project.id && m.state == "merged");
        match prev {
            Some(prev) => {
                let Some(this_sha) = project.resolve_revision(&dep.sha) else {
                    return Vec::new();
                };
                let mut range = project.ancestors(&this_sha);
                if let Some(prev_sha) = project.resolve_revision(&prev.sha) {
                    for s in project.ancestors(&prev_sha) {
                        range.remove(&s);
                    }
                }
                merged
                    .filter(|m| {
                        m.merge_commit_sha
                            .as_ref()
                            .is_some_and(|s| range.contains(s))
                    })
                    .map(|m| m.id)
                    .collect()
            }
            None => merged
                .filter(|m| m.target_branch == dep.ref_)
                .map(|m| m.id)
                .collect(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use DeploymentStatus::*;

    #[test]
    fn put_matrix_matches_spec() {
        let cases = [
            (Created, [true, true, true, true]),
            (Running, [false, true, true, true]),
            (Success, [false, false, true, true]),
            (Failed, [false, true, false, true]),
            (Canceled, [false, true, true, false]),
            (Skipped, [false, true, true, true]),
            (Blocked, [true, true, true, true]),
        ];
        for (from, expect) in cases {
            for (to, ok) in [Running, Success, Failed, Canceled].into_iter().zip(expect) {
                assert_eq!(transition(from, to).is_ok(), ok, "{from:?} -> {to:?}");
            }
        }
        assert_eq!(transition(Running, Running), Err("run"));
        assert_eq!(transition(Success, Success), Err("succeed"));
    }

    #[test]
    fn environment_names() {
        assert!(environment_name_errors("production").is_empty());
        assert!(environment_name_errors("review/feature-1 ${CI}").is_empty());
        assert_eq!(environment_name_errors("/x").len(), 1);
        assert_eq!(environment_name_errors("a*b").len(), 1);
        assert_eq!(environment_name_errors(&"a".repeat(256)).len(), 1);
        assert_eq!(
            environment_name_errors(&format!("{}*", "a".repeat(256))).len(),
            2
        );
    }

    #[test]
    fn slugs() {
        assert_eq!(environment_slug("production"), "production");
        let s = environment_slug("review/feature");
        assert!(s.starts_with("review-feature-"), "{s}");
        assert_eq!(s.len(), "review-feature-".len() + 6);
        assert!(environment_slug("1abc").starts_with("env-1abc-"));
    }

    #[test]
    fn shas_are_40_hex_and_distinct() {
        let a = fake_sha(1, 1, "x");
        let b = fake_sha(2, 1, "x");
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
