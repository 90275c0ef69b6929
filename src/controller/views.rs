//! The GitLab client's answers, mapped onto the status module's input views. The status
//! module mirrors GitLab's JSON on its own so it stays pure and table-testable; this is the
//! one place that knows both shapes.

use chrono::{DateTime, Utc};
use k8s_openapi::jiff::Timestamp;

use crate::api::deployment::{DeploymentId, GitlabStatus};
use crate::controller::status::{
    ApprovalRuleView, ApprovalSummaryView, ApprovalView, EnvironmentView, GitlabDeploymentView,
    MergeRequestView, UserView,
};
use crate::gitlab::{
    ApprovalStatus, Deployment, DeploymentApproval, DeploymentStatus, MergeRequest, WriteStatus,
};

fn timestamp(t: &DateTime<Utc>) -> Option<Timestamp> {
    Timestamp::from_millisecond(t.timestamp_millis()).ok()
}

fn id(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// GitLab's status as the CRD spells it. A status this operator does not know (a newer
/// GitLab) is treated as still running: it never makes us report a conclusion.
pub fn gitlab_status(status: DeploymentStatus) -> GitlabStatus {
    match status {
        DeploymentStatus::Created => GitlabStatus::Created,
        DeploymentStatus::Running | DeploymentStatus::Unknown => GitlabStatus::Running,
        DeploymentStatus::Success => GitlabStatus::Success,
        DeploymentStatus::Failed => GitlabStatus::Failed,
        DeploymentStatus::Canceled => GitlabStatus::Canceled,
        DeploymentStatus::Skipped => GitlabStatus::Skipped,
        DeploymentStatus::Blocked => GitlabStatus::Blocked,
    }
}

/// The status to send for a planned transition; `None` for the states the API cannot set.
pub fn write_status(status: GitlabStatus) -> Option<WriteStatus> {
    match status {
        GitlabStatus::Running => Some(WriteStatus::Running),
        GitlabStatus::Success => Some(WriteStatus::Success),
        GitlabStatus::Failed => Some(WriteStatus::Failed),
        GitlabStatus::Canceled => Some(WriteStatus::Canceled),
        GitlabStatus::Created | GitlabStatus::Skipped | GitlabStatus::Blocked => None,
    }
}

fn approval(a: &DeploymentApproval) -> ApprovalView {
    ApprovalView {
        user: UserView {
            username: a.user.username.clone(),
        },
        status: match a.status {
            ApprovalStatus::Approved => "approved".to_owned(),
            ApprovalStatus::Rejected => "rejected".to_owned(),
        },
        comment: a.comment.clone(),
        created_at: timestamp(&a.created_at),
    }
}

/// `None` only for an answer without a positive id, which GitLab never sends.
pub fn deployment_view(d: &Deployment) -> Option<GitlabDeploymentView> {
    Some(GitlabDeploymentView {
        id: DeploymentId::try_from(d.id).ok()?,
        iid: id(d.iid),
        ref_name: d.git_ref.clone(),
        sha: d.sha.clone(),
        status: gitlab_status(d.status),
        created_at: timestamp(&d.created_at),
        updated_at: timestamp(&d.updated_at),
        environment: Some(EnvironmentView {
            id: id(d.environment.id),
            external_url: d.environment.external_url.clone(),
        }),
        pending_approval_count: d.pending_approval_count.map(i64::from),
        approvals: d
            .approvals
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(approval)
            .collect(),
        approval_summary: d.approval_summary.as_ref().map(|s| ApprovalSummaryView {
            rules: s
                .rules
                .iter()
                .map(|r| ApprovalRuleView {
                    id: r.id.map(id),
                    access_level_description: r.access_level_description.clone(),
                    required_approvals: i64::from(r.required_approvals),
                    deployment_approvals: r.deployment_approvals.iter().map(approval).collect(),
                })
                .collect(),
        }),
    })
}

pub fn merge_request_view(m: &MergeRequest) -> MergeRequestView {
    MergeRequestView {
        iid: id(m.iid),
        title: m.title.clone(),
        web_url: m.web_url.clone().unwrap_or_default(),
        author: m.author.as_ref().map(|a| UserView {
            username: a.username.clone(),
        }),
        merged_at: m.merged_at.as_ref().and_then(timestamp),
    }
}
