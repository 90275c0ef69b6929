//! Kubernetes Events for what changed, decided by comparing the status before and after a
//! reconcile. Events are emitted on transitions only, so a settled resource never adds one,
//! and a repeated error is folded by kube's `Recorder` into one Event with a growing series.

use kube::runtime::events::{Event, EventType};

use crate::api::conditions::find_condition;
use crate::api::deployment::{
    ApprovalState, EnvironmentSyncState, GitlabDeploymentStatus, GitlabStatus,
};
use crate::api::names::{condition_type::STALLED, reason};
use crate::gitlab;

/// An Event to publish: type, reason (a constant from `names::reason`), one-sentence note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// The API server refuses an events.k8s.io/v1 Event whose `note` is longer than 1,024 bytes
/// (`note: Invalid value: "": can have at most 1024 characters`; Go counts bytes), and a
/// refused Event is simply lost. Messages quote user input (a 2,048-character URL or project
/// path) and GitLab's answers, so every note is cut to fit.
pub const MAX_NOTE_BYTES: usize = 1024;
const ELLIPSIS: char = '…';

/// `note` cut to [`MAX_NOTE_BYTES`] on a character boundary, ending in an ellipsis when cut.
pub fn fit_note(note: &str) -> String {
    if note.len() <= MAX_NOTE_BYTES {
        return note.to_owned();
    }
    let mut end = MAX_NOTE_BYTES - ELLIPSIS.len_utf8();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = note[..end].to_owned();
    cut.push(ELLIPSIS);
    cut
}

impl Notice {
    /// The Event to publish. Every Event the operator emits is built here, so none can carry a
    /// note the API server refuses.
    pub fn to_event(&self) -> Event {
        Event {
            type_: if self.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: self.reason.to_owned(),
            note: Some(fit_note(&self.note)),
            action: "Reconcile".to_owned(),
            secondary: None,
        }
    }
}

fn normal(reason: &'static str, note: String) -> Notice {
    Notice {
        warning: false,
        reason,
        note,
    }
}

fn warning(reason: &'static str, note: String) -> Notice {
    Notice {
        warning: true,
        reason,
        note,
    }
}

/// The Events that describe the change from `old` to `new`. `adopted` tells that the current
/// deployment was found by the crash-recovery lookup instead of created.
pub fn transitions(
    old: &GitlabDeploymentStatus,
    new: &GitlabDeploymentStatus,
    environment: &str,
    adopted: bool,
) -> Vec<Notice> {
    let mut notices = Vec::new();
    let old_dep = old.deployment.as_ref();
    if let Some(dep) = new.deployment.as_ref() {
        let short: String = dep.sha.chars().take(7).collect();
        let is_new = old_dep.is_none_or(|o| o.id != dep.id);
        if is_new {
            // The previous one, if it was still running, was canceled on the way.
            if let Some(prev) = new.history.first().filter(|h| {
                old_dep.is_some_and(|o| o.id == h.deployment_id && o.status != h.status)
                    && h.status == GitlabStatus::Canceled
            }) {
                notices.push(normal(
                    reason::SUPERSEDED,
                    format!(
                        "GitLab deployment {} canceled: superseded by {short}",
                        prev.deployment_id
                    ),
                ));
            }
            let (why, verb) = if adopted {
                (reason::DEPLOYMENT_ADOPTED, "Adopted existing")
            } else {
                (reason::DEPLOYMENT_CREATED, "Created")
            };
            notices.push(normal(
                why,
                format!(
                    "{verb} GitLab deployment {} (#{}) for {short} on {} in environment {environment}, status {}",
                    dep.id, dep.iid, dep.ref_name, dep.status
                ),
            ));
        }
        let old_status = old_dep.filter(|o| o.id == dep.id).map(|o| o.status);
        if is_new || old_status != Some(dep.status) {
            match dep.status {
                GitlabStatus::Success => notices.push(normal(
                    reason::DEPLOYMENT_SUCCEEDED,
                    format!(
                        "GitLab deployment {} of {short} is success: the rollout completed",
                        dep.id
                    ),
                )),
                GitlabStatus::Failed => notices.push(warning(
                    reason::DEPLOYMENT_FAILED,
                    format!(
                        "GitLab deployment {} of {short} is failed: {}",
                        dep.id,
                        new.rollout
                            .as_ref()
                            .map(|r| r.message.as_str())
                            .unwrap_or("the rollout failed")
                    ),
                )),
                GitlabStatus::Canceled if !is_new => notices.push(normal(
                    reason::DEPLOYMENT_CANCELED,
                    format!("GitLab deployment {} of {short} is canceled", dep.id),
                )),
                _ => {}
            }
        }
    }
    notices.extend(rollout_actions(old, new));
    let old_approval = old.approval.as_ref().map(|a| a.state);
    if let Some(approval) = new.approval.as_ref()
        && old_approval != Some(approval.state)
    {
        let summary = new.approvals_summary.as_deref().unwrap_or("");
        match approval.state {
            ApprovalState::Pending => notices.push(normal(
                reason::APPROVAL_PENDING,
                format!(
                    "GitLab deployment waits for approval ({summary} approvals, {} pending)",
                    approval.pending
                ),
            )),
            ApprovalState::Approved => notices.push(normal(
                reason::APPROVED,
                format!("GitLab deployment approved ({summary})"),
            )),
            ApprovalState::Rejected => {
                let by = approval
                    .approvals
                    .iter()
                    .filter(|a| a.status == "rejected")
                    .map(|a| match &a.comment {
                        Some(c) => format!("{} ({c})", a.user),
                        None => a.user.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                notices.push(warning(
                    reason::APPROVAL_REJECTED,
                    format!("GitLab deployment rejected by {by}"),
                ));
            }
            ApprovalState::NotRequired => {}
        }
    }
    let stalled = |s: &GitlabDeploymentStatus| {
        find_condition(&s.conditions, STALLED)
            .filter(|c| c.status == "True")
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    if let Some((why, message)) = stalled(new)
        && stalled(old).as_ref().map(|(r, _)| r) != Some(&why)
    {
        notices.push(Notice {
            warning: true,
            reason: stalled_reason(&why),
            note: message,
        });
    }
    if let Some(env) = new
        .environment
        .as_ref()
        .filter(|e| old.environment.as_ref() != Some(*e))
    {
        match env.state {
            EnvironmentSyncState::Applied if !env.message.is_empty() => notices.push(normal(
                reason::ENVIRONMENT_UPDATED,
                format!("GitLab environment {} updated: {}", env.id, env.message),
            )),
            EnvironmentSyncState::Applied => {}
            EnvironmentSyncState::Rejected => notices.push(warning(
                reason::ENVIRONMENT_SETTINGS_REJECTED,
                format!(
                    "spec.environmentSettings not applied to GitLab environment {} (not retried until they change): {}",
                    env.id, env.message
                ),
            )),
        }
    }
    notices
}

/// The promote or abort of an Argo Rollout this pass recorded (`spec.approval.promote`).
fn rollout_actions(old: &GitlabDeploymentStatus, new: &GitlabDeploymentStatus) -> Vec<Notice> {
    let Some(dep) = new.deployment.as_ref() else {
        return Vec::new();
    };
    let Some(gate) = dep.gate.as_ref() else {
        return Vec::new();
    };
    let before = old
        .deployment
        .as_ref()
        .filter(|o| o.id == dep.id)
        .and_then(|o| o.gate.as_ref());
    let short: String = dep.sha.chars().take(7).collect();
    let mut notices = Vec::new();
    if let Some(pause) = gate
        .promoted
        .as_ref()
        .filter(|p| before.and_then(|b| b.promoted.as_ref()) != Some(*p))
    {
        let at = pause.step.map_or_else(
            || "its blue-green pause".to_owned(),
            |s| format!("step {s}"),
        );
        notices.push(normal(
            reason::ROLLOUT_PROMOTED,
            format!(
                "Promoted the Rollout paused at {at} (pod hash {}): GitLab deployment {} of {short} is approved",
                pause.pod_hash, dep.id
            ),
        ));
    }
    if gate.aborted_at.is_some() && before.is_none_or(|b| b.aborted_at.is_none()) {
        notices.push(warning(
            reason::ROLLOUT_ABORTED,
            format!(
                "Aborted the Rollout: GitLab deployment {} of {short} was rejected",
                dep.id
            ),
        ));
    }
    notices
}

/// Map a condition reason string back to its constant (Event and condition reasons must be
/// `'static`).
pub fn stalled_reason(found: &str) -> &'static str {
    const STALLED_REASONS: [&str; 12] = [
        reason::INVALID_SPEC,
        reason::TOKEN_SECRET_MISSING,
        reason::CONNECTION_MISSING,
        reason::CONNECTION_INVALID,
        reason::HOST_NOT_ALLOWED,
        reason::TARGET_NOT_FOUND,
        reason::TARGET_KIND_NOT_SERVED,
        reason::GITLAB_ERROR,
        reason::ROLLOUT_FAILED,
        reason::APPROVAL_REJECTED,
        reason::REVISION_UNKNOWN,
        reason::TARGET_WRITE_FORBIDDEN,
    ];
    // The GitLab client's categories that need a person.
    let gitlab_user_errors = gitlab::Category::ALL
        .into_iter()
        .filter(|c| c.kind() == gitlab::ErrorKind::User)
        .map(gitlab::Category::name);
    STALLED_REASONS
        .into_iter()
        .chain(gitlab_user_errors)
        .find(|r| *r == found)
        .unwrap_or("Stalled")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::api::deployment::{DeploymentRecord, HistoryEntry};

    fn did(n: i64) -> crate::api::deployment::DeploymentId {
        crate::api::deployment::DeploymentId::new(n).unwrap()
    }

    fn dep(id: i64, status: GitlabStatus) -> DeploymentRecord {
        DeploymentRecord {
            id: did(id),
            iid: id,
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            ref_name: "main".into(),
            tag: false,
            status,
            environment_id: Some(1),
            environment_url: None,
            created_at: None,
            updated_at: None,
            workload_revision: None,
            gate: None,
        }
    }

    fn with(d: Option<DeploymentRecord>) -> GitlabDeploymentStatus {
        GitlabDeploymentStatus {
            deployment: d,
            ..Default::default()
        }
    }

    fn reasons(n: &[Notice]) -> Vec<&'static str> {
        n.iter().map(|n| n.reason).collect()
    }

    #[test]
    fn each_transition_gets_its_event_and_nothing_else() {
        let cases: Vec<(
            &str,
            GitlabDeploymentStatus,
            GitlabDeploymentStatus,
            bool,
            Vec<&str>,
        )> = vec![
            (
                "nothing changed",
                with(Some(dep(1, GitlabStatus::Running))),
                with(Some(dep(1, GitlabStatus::Running))),
                false,
                vec![],
            ),
            (
                "created running",
                with(None),
                with(Some(dep(1, GitlabStatus::Running))),
                false,
                vec![reason::DEPLOYMENT_CREATED],
            ),
            (
                "created already successful",
                with(None),
                with(Some(dep(1, GitlabStatus::Success))),
                false,
                vec![reason::DEPLOYMENT_CREATED, reason::DEPLOYMENT_SUCCEEDED],
            ),
            (
                "adopted",
                with(None),
                with(Some(dep(1, GitlabStatus::Running))),
                true,
                vec![reason::DEPLOYMENT_ADOPTED],
            ),
            (
                "succeeded",
                with(Some(dep(1, GitlabStatus::Running))),
                with(Some(dep(1, GitlabStatus::Success))),
                false,
                vec![reason::DEPLOYMENT_SUCCEEDED],
            ),
            (
                "failed",
                with(Some(dep(1, GitlabStatus::Running))),
                with(Some(dep(1, GitlabStatus::Failed))),
                false,
                vec![reason::DEPLOYMENT_FAILED],
            ),
            (
                "canceled",
                with(Some(dep(1, GitlabStatus::Running))),
                with(Some(dep(1, GitlabStatus::Canceled))),
                false,
                vec![reason::DEPLOYMENT_CANCELED],
            ),
        ];
        for (name, old, new, adopted, expected) in cases {
            assert_eq!(
                reasons(&transitions(&old, &new, "prod", adopted)),
                expected,
                "case {name}"
            );
        }
    }

    #[test]
    fn supersede_reports_the_cancel_and_the_create() {
        let old = with(Some(dep(1, GitlabStatus::Running)));
        let mut new = with(Some(dep(2, GitlabStatus::Running)));
        new.history.push(HistoryEntry {
            deployment_id: did(1),
            sha: "x".into(),
            ref_name: "main".into(),
            status: GitlabStatus::Canceled,
            created_at: None,
            finished_at: None,
        });
        assert_eq!(
            reasons(&transitions(&old, &new, "prod", false)),
            vec![reason::SUPERSEDED, reason::DEPLOYMENT_CREATED]
        );
    }

    #[test]
    fn notes_fit_the_api_servers_limit_on_a_character_boundary() {
        let cases: Vec<(&str, String)> = vec![
            ("empty", String::new()),
            ("short", "GitLab deployment 1 canceled".into()),
            ("exactly the limit", "a".repeat(MAX_NOTE_BYTES)),
            ("one over", "a".repeat(MAX_NOTE_BYTES + 1)),
            (
                "a 2 KiB url",
                format!("connection URL {:?} is refused", "h".repeat(2048)),
            ),
            // 3-byte characters: the cut point falls inside one.
            ("multi-byte", "ü€".repeat(400)),
            ("emoji", "🚀".repeat(300)),
        ];
        for (name, note) in cases {
            let fitted = fit_note(&note);
            assert!(
                fitted.len() <= MAX_NOTE_BYTES,
                "case {name}: {} bytes",
                fitted.len()
            );
            if note.len() <= MAX_NOTE_BYTES {
                assert_eq!(fitted, note, "case {name}: short notes are untouched");
            } else {
                assert!(fitted.ends_with('…'), "case {name}: {fitted}");
                let kept = fitted.trim_end_matches('…');
                assert!(note.starts_with(kept), "case {name}: a prefix is kept");
                assert!(
                    kept.len() + 2 * '…'.len_utf8() > MAX_NOTE_BYTES,
                    "case {name}: as much as fits is kept ({} bytes)",
                    kept.len()
                );
            }
        }
        let notice = warning(reason::HOST_NOT_ALLOWED, "x".repeat(5000));
        assert!(notice.to_event().note.unwrap().len() <= MAX_NOTE_BYTES);
    }

    #[test]
    fn warnings_are_warnings() {
        let n = transitions(
            &with(Some(dep(1, GitlabStatus::Running))),
            &with(Some(dep(1, GitlabStatus::Failed))),
            "prod",
            false,
        );
        assert!(n[0].warning);
        assert!(n[0].note.contains("failed"), "{}", n[0].note);
    }

    #[test]
    fn stalled_reasons_are_kept_and_the_rest_is_stalled() {
        let cases = [
            (reason::INVALID_SPEC, reason::INVALID_SPEC),
            (reason::TOKEN_SECRET_MISSING, reason::TOKEN_SECRET_MISSING),
            (reason::APPROVAL_REJECTED, reason::APPROVAL_REJECTED),
            // The GitLab client's categories that need a person.
            ("Unauthorized", "Unauthorized"),
            ("Forbidden", "Forbidden"),
            ("NotFound", "NotFound"),
            ("Validation", "Validation"),
            ("InvalidTransition", "InvalidTransition"),
            ("NotAllowed", "NotAllowed"),
            ("ConfigError", "ConfigError"),
            // Retried ones, and anything unknown.
            ("ServerError", "Stalled"),
            ("RateLimited", "Stalled"),
            ("DecodeError", "Stalled"),
            ("SomethingElse", "Stalled"),
        ];
        for (found, want) in cases {
            assert_eq!(stalled_reason(found), want, "{found}");
        }
    }
}
