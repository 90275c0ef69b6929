//! The live view: one line per change of a GitlabDeployment's GitLab deployment, approval or
//! rollout, as the operator writes it to `.status` (what `kubectl get gld -w` would show).

use std::collections::HashMap;
use std::time::Instant;

use futures::StreamExt;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;

use crate::api::deployment::{ApprovalState, GitlabDeployment};

/// What the live view shows of one resource; a line is printed when it changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub environment: String,
    /// GitLab deployment: id, short sha, status.
    pub gitlab: Option<(i64, String, String)>,
    /// Approval state and `approved/required`.
    pub approval: Option<(ApprovalState, String)>,
    pub rollout: Option<String>,
}

impl Snapshot {
    pub fn of(gd: &GitlabDeployment) -> Snapshot {
        let status = gd.status.as_ref();
        Snapshot {
            environment: gd.spec.environment.clone(),
            gitlab: status.and_then(|s| s.deployment.as_ref()).map(|d| {
                (
                    i64::from(d.id),
                    d.sha.chars().take(7).collect(),
                    d.status.as_str().to_owned(),
                )
            }),
            approval: status.and_then(|s| s.approval.as_ref()).map(|a| {
                (
                    a.state,
                    status
                        .and_then(|s| s.approvals_summary.clone())
                        .unwrap_or_default(),
                )
            }),
            rollout: status
                .and_then(|s| s.rollout.as_ref())
                .map(|r| r.message.clone())
                .filter(|m| !m.is_empty()),
        }
    }
}

/// The lines describing the change from `old` to `new` (GitLab first, then approval, then
/// rollout), without the time prefix.
pub fn changes(old: &Snapshot, new: &Snapshot) -> Vec<String> {
    let env = format!("{:<11}", new.environment);
    let mut lines = Vec::new();
    if new.gitlab != old.gitlab
        && let Some((id, sha, status)) = &new.gitlab
    {
        lines.push(format!("{env} GitLab deployment {id} ({sha}): {status}"));
    }
    let id = new.gitlab.as_ref().map(|g| g.0).unwrap_or_default();
    let same_deployment = old.gitlab.as_ref().map(|g| g.0) == Some(id);
    // A new GitLab deployment has its own approvals, even when they read the same.
    if (new.approval != old.approval || !same_deployment)
        && let Some((state, summary)) = &new.approval
    {
        let what = match state {
            ApprovalState::Pending => format!("waiting for approval ({summary} approvals)"),
            ApprovalState::Approved => format!("approved ({summary})"),
            ApprovalState::Rejected => "rejected".to_owned(),
            ApprovalState::NotRequired => "no approval required".to_owned(),
        };
        lines.push(format!("{env} GitLab deployment {id} {what}"));
    }
    if new.rollout != old.rollout
        && let Some(message) = &new.rollout
    {
        lines.push(format!("{env}   rollout: {message}"));
    }
    lines
}

/// Seconds since the sandbox started, for the line prefix.
pub fn stamp(start: Instant) -> String {
    format!("[{:>5.1}s]", start.elapsed().as_secs_f64())
}

/// Print changes of every GitlabDeployment in `api` until `stop`.
pub async fn follow(api: Api<GitlabDeployment>, start: Instant, stop: CancellationToken) {
    let mut seen: HashMap<String, Snapshot> = HashMap::new();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects();
    let mut stream = std::pin::pin!(stream);
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return,
            next = stream.next() => next,
        };
        match next {
            Some(Ok(gd)) => {
                let name = gd.metadata.name.clone().unwrap_or_default();
                let snapshot = Snapshot::of(&gd);
                let old = seen.remove(&name).unwrap_or_default();
                for line in changes(&old, &snapshot) {
                    println!("{} {line}", stamp(start));
                }
                seen.insert(name, snapshot);
            }
            Some(Err(err)) => tracing::debug!(error = %err, "live view watch error (retrying)"),
            None => return,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn snap(gitlab: Option<(i64, &str, &str)>, approval: Option<ApprovalState>) -> Snapshot {
        Snapshot {
            environment: "production".into(),
            gitlab: gitlab.map(|(i, s, st)| (i, s.into(), st.into())),
            approval: approval.map(|a| (a, "0/1".into())),
            rollout: None,
        }
    }

    #[test]
    fn lines_only_for_what_changed() {
        let cases = [
            ("nothing", snap(None, None), snap(None, None), vec![]),
            (
                "created running",
                snap(None, None),
                snap(Some((4, "abc1234", "running")), None),
                vec!["production  GitLab deployment 4 (abc1234): running"],
            ),
            (
                "success and approval pending",
                snap(Some((4, "abc1234", "running")), None),
                snap(
                    Some((4, "abc1234", "success")),
                    Some(ApprovalState::Pending),
                ),
                vec![
                    "production  GitLab deployment 4 (abc1234): success",
                    "production  GitLab deployment 4 waiting for approval (0/1 approvals)",
                ],
            ),
            (
                "next deployment, same approval state",
                snap(
                    Some((4, "abc1234", "success")),
                    Some(ApprovalState::Pending),
                ),
                snap(
                    Some((5, "def5678", "running")),
                    Some(ApprovalState::Pending),
                ),
                vec![
                    "production  GitLab deployment 5 (def5678): running",
                    "production  GitLab deployment 5 waiting for approval (0/1 approvals)",
                ],
            ),
            (
                "same again",
                snap(Some((4, "abc1234", "success")), None),
                snap(Some((4, "abc1234", "success")), None),
                vec![],
            ),
        ];
        for (name, old, new, want) in cases {
            assert_eq!(changes(&old, &new), want, "{name}");
        }
    }

    #[test]
    fn rollout_messages_follow_gitlab_lines() {
        let old = Snapshot {
            environment: "staging".into(),
            ..Snapshot::default()
        };
        let new = Snapshot {
            rollout: Some("1 of 3 updated replicas are available".into()),
            ..old.clone()
        };
        assert_eq!(
            changes(&old, &new),
            vec!["staging       rollout: 1 of 3 updated replicas are available"]
        );
    }
}
