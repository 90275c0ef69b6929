//! GitLab's API entities, as structs whose field order is the entity declaration order, so
//! serialised keys come out in the order real GitLab sends them.

use crate::model::*;
use crate::state::Data;
use serde::Serialize;
use serde_json::Value;

/// A timestamp in the instance time zone (`Z` for UTC, else `+02:00` style).
fn ts(d: &Data, t: &chrono::DateTime<chrono::Utc>) -> String {
    crate::clock::render_in(t, d.time_zone_offset_secs)
}

#[derive(Serialize)]
pub struct UserBasic {
    id: u64,
    username: String,
    name: String,
    state: String,
    locked: bool,
    avatar_url: String,
    web_url: String,
}

/// A stable fake gravatar hash (GitLab uses the md5 of the e-mail address).
fn avatar_hash(username: &str) -> String {
    crate::state::fake_sha(0, 7, username)[..32].to_string()
}

pub fn user(u: &User, base: &str) -> UserBasic {
    UserBasic {
        id: u.id,
        username: u.username.clone(),
        name: u.name.clone(),
        state: u.state.clone(),
        locked: false,
        avatar_url: format!(
            "https://www.gravatar.com/avatar/{}?s=80&d=identicon",
            avatar_hash(&u.username)
        ),
        web_url: format!("{base}/{}", u.username),
    }
}

#[derive(Serialize)]
pub struct EnvironmentBasic {
    id: u64,
    name: String,
    slug: String,
    external_url: Option<String>,
    created_at: String,
    updated_at: String,
}

#[derive(Serialize)]
pub struct ApprovalEntity {
    user: Option<UserBasic>,
    status: String,
    created_at: String,
    comment: Option<String>,
}

#[derive(Serialize)]
pub struct RuleForSummary {
    id: u64,
    user_id: Option<u64>,
    group_id: Option<u64>,
    access_level: Option<u32>,
    access_level_description: Option<String>,
    required_approvals: u32,
    group_inheritance_type: u32,
    deployment_approvals: Vec<ApprovalEntity>,
}

#[derive(Serialize)]
pub struct ApprovalSummary {
    rules: Vec<RuleForSummary>,
}

#[derive(Serialize)]
pub struct EeFields {
    pending_approval_count: u32,
    approvals: Vec<ApprovalEntity>,
    approval_summary: ApprovalSummary,
}

#[derive(Serialize)]
pub struct DeploymentEntity {
    id: u64,
    iid: u64,
    #[serde(rename = "ref")]
    ref_: String,
    sha: String,
    created_at: String,
    updated_at: String,
    user: Option<UserBasic>,
    environment: Option<EnvironmentBasic>,
    deployable: Option<Value>,
    status: &'static str,
    #[serde(flatten)]
    ee: Option<EeFields>,
}

pub fn approval(d: &Data, a: &Approval, base: &str) -> ApprovalEntity {
    ApprovalEntity {
        user: d.users.get(&a.user_id).map(|u| user(u, base)),
        status: a.status.clone(),
        created_at: ts(d, &a.created_at),
        comment: a.comment.clone(),
    }
}

/// `Deployment` (lists) or `DeploymentExtended` (`extended`: EE approval fields on EE builds).
pub fn deployment(d: &Data, dep: &Deployment, base: &str, extended: bool) -> DeploymentEntity {
    let ee = (extended && d.edition == Edition::Ee).then(|| EeFields {
        pending_approval_count: d.pending_approval_count(dep),
        approvals: dep.approvals.iter().map(|a| approval(d, a, base)).collect(),
        approval_summary: ApprovalSummary {
            rules: d
                .rules_for(dep)
                .iter()
                .map(|r| RuleForSummary {
                    id: r.id,
                    user_id: r.user_id,
                    group_id: r.group_id,
                    access_level: r.access_level,
                    access_level_description: d.rule_description(r),
                    required_approvals: r.required_approvals,
                    group_inheritance_type: r.group_inheritance_type,
                    deployment_approvals: dep
                        .approvals
                        .iter()
                        .filter(|a| a.rule_id == Some(r.id))
                        .map(|a| approval(d, a, base))
                        .collect(),
                })
                .collect(),
        },
    });
    DeploymentEntity {
        id: dep.id,
        iid: dep.iid,
        ref_: dep.ref_.clone(),
        sha: dep.sha.clone(),
        created_at: ts(d, &dep.created_at),
        updated_at: ts(d, &dep.updated_at),
        user: dep
            .user_id
            .and_then(|u| d.users.get(&u))
            .map(|u| user(u, base)),
        environment: d
            .environments
            .get(&dep.environment_id)
            .map(|e| EnvironmentBasic {
                id: e.id,
                name: e.name.clone(),
                slug: e.slug.clone(),
                external_url: e.external_url.clone(),
                created_at: ts(d, &e.created_at),
                updated_at: ts(d, &e.updated_at),
            }),
        deployable: dep.deployable.clone(),
        status: dep.status.as_str(),
        ee,
    }
}

#[derive(Serialize)]
pub struct References {
    short: String,
    relative: String,
    full: String,
}

#[derive(Serialize)]
pub struct MergeRequestBasic {
    id: u64,
    iid: u64,
    project_id: u64,
    title: String,
    description: Option<String>,
    state: String,
    created_at: String,
    updated_at: String,
    merged_by: Option<UserBasic>,
    merge_user: Option<UserBasic>,
    merged_at: Option<String>,
    closed_by: Option<UserBasic>,
    closed_at: Option<String>,
    target_branch: String,
    source_branch: String,
    user_notes_count: u64,
    upvotes: u64,
    downvotes: u64,
    author: Option<UserBasic>,
    assignees: Vec<Value>,
    assignee: Option<Value>,
    reviewers: Vec<Value>,
    source_project_id: u64,
    target_project_id: u64,
    labels: Vec<String>,
    draft: bool,
    imported: bool,
    imported_from: &'static str,
    work_in_progress: bool,
    milestone: Option<Value>,
    merge_when_pipeline_succeeds: bool,
    merge_status: &'static str,
    detailed_merge_status: &'static str,
    sha: Option<String>,
    merge_commit_sha: Option<String>,
    squash_commit_sha: Option<String>,
    discussion_locked: Option<bool>,
    should_remove_source_branch: Option<bool>,
    force_remove_source_branch: Option<bool>,
    prepared_at: String,
    reference: String,
    references: References,
    web_url: String,
    time_stats: Value,
    squash: bool,
    squash_on_merge: bool,
    task_completion_status: Value,
    has_conflicts: bool,
    blocking_discussions_resolved: bool,
}

pub fn merge_request(d: &Data, m: &MergeRequest, base: &str) -> MergeRequestBasic {
    let project_path = d
        .projects
        .get(&m.project_id)
        .map(|p| p.path.clone())
        .unwrap_or_default();
    let author = d.users.get(&m.author_id).map(|u| user(u, base));
    let merged = m.state == "merged";
    let merger = || {
        merged
            .then(|| d.users.get(&m.author_id).map(|u| user(u, base)))
            .flatten()
    };
    MergeRequestBasic {
        id: m.id,
        iid: m.iid,
        project_id: m.project_id,
        title: m.title.clone(),
        description: m.description.clone(),
        state: m.state.clone(),
        created_at: ts(d, &m.created_at),
        updated_at: ts(d, &m.updated_at),
        merged_by: merger(),
        merge_user: merger(),
        merged_at: m.merged_at.as_ref().map(|t| ts(d, t)),
        closed_by: None,
        closed_at: m.closed_at.as_ref().map(|t| ts(d, t)),
        target_branch: m.target_branch.clone(),
        source_branch: m.source_branch.clone(),
        user_notes_count: 0,
        upvotes: 0,
        downvotes: 0,
        author,
        assignees: Vec::new(),
        assignee: None,
        reviewers: Vec::new(),
        source_project_id: m.project_id,
        target_project_id: m.project_id,
        labels: Vec::new(),
        draft: false,
        imported: false,
        imported_from: "none",
        work_in_progress: false,
        milestone: None,
        merge_when_pipeline_succeeds: false,
        merge_status: if merged { "merged" } else { "can_be_merged" },
        detailed_merge_status: if merged { "not_open" } else { "mergeable" },
        sha: m.sha.clone(),
        merge_commit_sha: m.merge_commit_sha.clone(),
        squash_commit_sha: m.squash_commit_sha.clone(),
        discussion_locked: None,
        should_remove_source_branch: None,
        force_remove_source_branch: Some(true),
        prepared_at: ts(d, &m.created_at),
        reference: format!("!{}", m.iid),
        references: References {
            short: format!("!{}", m.iid),
            relative: format!("!{}", m.iid),
            full: format!("{project_path}!{}", m.iid),
        },
        web_url: format!("{base}/{project_path}/-/merge_requests/{}", m.iid),
        time_stats: serde_json::json!({
            "time_estimate": 0, "total_time_spent": 0,
            "human_time_estimate": null, "human_total_time_spent": null
        }),
        squash: false,
        squash_on_merge: false,
        task_completion_status: serde_json::json!({"count": 0, "completed_count": 0}),
        has_conflicts: false,
        blocking_discussions_resolved: true,
    }
}

/// `ProjectHook` (B.4), in entity key order; `token` is never shown. `url_variables` and
/// `custom_headers` (always empty here) appear only on the single-hook routes.
#[derive(Serialize)]
pub struct ProjectHookEntity {
    id: u64,
    url: String,
    name: Option<String>,
    description: Option<String>,
    created_at: String,
    push_events: bool,
    tag_push_events: bool,
    merge_requests_events: bool,
    repository_update_events: bool,
    enable_ssl_verification: bool,
    alert_status: &'static str,
    disabled_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url_variables: Option<Vec<Value>>,
    push_events_branch_filter: Option<String>,
    branch_filter_strategy: &'static str,
    custom_webhook_template: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_headers: Option<Vec<Value>>,
    project_id: u64,
    issues_events: bool,
    confidential_issues_events: bool,
    note_events: bool,
    confidential_note_events: bool,
    pipeline_events: bool,
    wiki_page_events: bool,
    deployment_events: bool,
    feature_flag_events: bool,
    job_events: bool,
    releases_events: bool,
    milestone_events: bool,
    emoji_events: bool,
    resource_access_token_events: bool,
    vulnerability_events: bool,
}

pub fn project_hook(d: &Data, h: &ProjectHook, full: bool) -> ProjectHookEntity {
    ProjectHookEntity {
        id: h.id,
        url: h.url.clone(),
        name: h.name.clone(),
        description: h.description.clone(),
        created_at: ts(d, &h.created_at),
        push_events: h.push_events,
        tag_push_events: false,
        merge_requests_events: false,
        repository_update_events: false,
        enable_ssl_verification: h.enable_ssl_verification,
        alert_status: "executable",
        disabled_until: None,
        url_variables: full.then(Vec::new),
        push_events_branch_filter: None,
        branch_filter_strategy: "wildcard",
        custom_webhook_template: None,
        custom_headers: full.then(Vec::new),
        project_id: h.project_id,
        issues_events: false,
        confidential_issues_events: false,
        note_events: false,
        confidential_note_events: false,
        pipeline_events: false,
        wiki_page_events: false,
        deployment_events: h.deployment_events,
        feature_flag_events: false,
        job_events: false,
        releases_events: false,
        milestone_events: false,
        emoji_events: false,
        resource_access_token_events: false,
        vulnerability_events: false,
    }
}
