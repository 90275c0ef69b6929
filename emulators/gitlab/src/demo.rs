//! The demo seed shared by the binary and the operator's in-process sandbox.

use crate::handle::{ApprovalRuleSpec, EmulatorHandle, MergeRequestSpec, ProjectSpec};
use crate::model::{DeployAccess, Role, Scope};

/// Default private token of the demo's `root` user (binary: `--token`).
pub const DEFAULT_ROOT_TOKEN: &str = "glpat-emulator-root";
/// Default private token of the demo's `approver` user.
pub const DEFAULT_APPROVER_TOKEN: &str = "glpat-emulator-approver";

/// What the demo seed created, for printing and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoFacts {
    pub project_id: u64,
    /// `demo/app`.
    pub project_path: String,
    pub branch: String,
    /// `main`'s commits, newest first (40-hex).
    pub main_shas: Vec<String>,
    pub root_user_id: u64,
    pub root_token: String,
    pub approver_user_id: u64,
    pub approver_token: String,
    /// Protected with one approval required from `approver`; only Maintainers may deploy.
    pub protected_environment: String,
    /// iid of the merged merge request into `main`.
    pub merged_mr_iid: u64,
}

/// Seeds: project 1 `demo/app`, branch `main` with 5 commits, a merged MR, Maintainer `root`
/// (token `root_token`), Developer `approver`, and `production` protected with a user rule
/// naming `approver` (one approval). `root` may not approve its own deployments because the
/// project setting `allow_pipeline_trigger_approve_deployment` stays off.
pub fn seed_demo(h: &EmulatorHandle, root_token: &str, approver_token: &str) -> DemoFacts {
    let root = h.add_user("root", "Administrator", false);
    h.add_personal_access_token(root, root_token, &[Scope::Api]);
    let approver = h.add_user("approver", "Alice Approver", false);
    h.add_personal_access_token(approver, approver_token, &[Scope::Api]);
    let project = h.add_project(ProjectSpec::new("demo/app").id(1));
    h.add_member(project, root, Role::Maintainer);
    h.add_member(project, approver, Role::Developer);
    let shas = h.push_commits(project, "main", 4);
    // A merge commit on main for the merged MR (parents: previous head, feature commit).
    let feature = h.add_commit(project, &[&shas[1]], "Add health endpoint");
    let prev = shas.last().cloned().unwrap_or_default();
    let merge = h.add_commit(
        project,
        &[&prev, &feature],
        "Merge branch 'health-endpoint' into 'main'",
    );
    h.set_branch(project, "main", &merge);
    h.set_branch(project, "health-endpoint", &feature);
    h.set_tag(project, "v1.0.0", &shas[1]);
    let mut mr = MergeRequestSpec::merged("Add health endpoint", root, "main", &merge);
    mr.source_branch = "health-endpoint".to_string();
    mr.sha = Some(feature);
    let (_, mr_iid) = h.add_merge_request(project, mr);
    h.add_environment(project, "production", Some("https://app.example.com"));
    h.add_environment(project, "staging", None);
    h.protect_environment(
        project,
        "production",
        vec![DeployAccess::Role(Role::Maintainer)],
        vec![ApprovalRuleSpec::User {
            user_id: approver,
            required_approvals: 1,
        }],
    );
    DemoFacts {
        project_id: project,
        project_path: "demo/app".to_string(),
        branch: "main".to_string(),
        main_shas: h.branch_history(project, "main"),
        root_user_id: root,
        root_token: root_token.to_string(),
        approver_user_id: approver,
        approver_token: approver_token.to_string(),
        protected_environment: "production".to_string(),
        merged_mr_iid: mr_iid,
    }
}

/// The facts of an already-seeded demo (e.g. reloaded from a state file).
pub fn demo_facts(h: &EmulatorHandle) -> Option<DemoFacts> {
    let g = h.lock();
    let d = &g.data;
    let project = d.projects.get(&1)?;
    let root = d.users.values().find(|u| u.username == "root")?;
    let approver = d.users.values().find(|u| u.username == "approver")?;
    let token_of = |uid: u64| {
        d.tokens
            .values()
            .find(|t| t.user_id == uid)
            .map(|t| t.token.clone())
            .unwrap_or_default()
    };
    Some(DemoFacts {
        project_id: project.id,
        project_path: project.path.clone(),
        branch: "main".to_string(),
        main_shas: project.branch_history("main"),
        root_user_id: root.id,
        root_token: token_of(root.id),
        approver_user_id: approver.id,
        approver_token: token_of(approver.id),
        protected_environment: "production".to_string(),
        merged_mr_iid: d
            .merge_requests
            .values()
            .find(|m| m.project_id == project.id)
            .map(|m| m.iid)
            .unwrap_or(0),
    })
}
