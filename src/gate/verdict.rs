//! The verdict of the approval contract, in one place: whether a GitlabDeployment is approved
//! for the revision it wants. Pure, so every consumer rule is table-tested here; the server
//! only renders it.

use serde::Serialize;

use crate::api::conditions::find_condition;
use crate::api::deployment::{DeploymentId, GitlabDeployment};
use crate::api::names::{condition_type, reason};

/// What a gate answers for one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum GateState {
    /// Approved for the wanted revision (`Approved=True` of the current generation, same sha).
    Approved,
    /// An approver rejected the wanted revision: final for it.
    Rejected,
    /// Anything else: no condition yet, an older generation, another sha, approvals pending.
    Pending,
}

impl GateState {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            GateState::Approved => "approved",
            GateState::Rejected => "rejected",
            GateState::Pending => "pending",
        }
    }
}

/// The body every route answers with (Argo Rollouts' `web` metric reads `approved` or `state`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub state: GateState,
    /// `state == approved`, for a plain `result.approved == true` success condition.
    pub approved: bool,
    /// The commit the status describes (`status.approval.sha`, else `status.deployment.sha`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    /// Approvals GitLab requires in total (0 when none, or not known yet).
    pub required: i64,
    /// Approvals still missing (GitLab's `pending_approval_count`).
    pub pending: i64,
    /// The GitLab deployment the approval state belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<DeploymentId>,
    /// The `Approved` condition's reason, when it describes the current generation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why the verdict is what it is, for a person reading Flagger's events or Argo's
    /// measurement (the condition's message, or what is missing).
    pub message: String,
}

/// The contract's verdict (see `docs/approvals.md`): approved iff `Approved=True` with
/// `observedGeneration == metadata.generation` and, when `spec.sha` is set, the status' sha
/// equal to it; rejected iff `Approved=False` with reason `ApprovalRejected` of the same
/// generation; pending otherwise.
pub fn verdict(gd: &GitlabDeployment) -> Verdict {
    let status = gd.status.as_ref();
    let approval = status.and_then(|s| s.approval.as_ref());
    let sha = approval.and_then(|a| a.sha.clone()).or_else(|| {
        status
            .and_then(|s| s.deployment.as_ref())
            .map(|d| d.sha.clone())
    });
    let deployment_id = approval
        .and_then(|a| a.deployment_id)
        .or_else(|| status.and_then(|s| s.deployment.as_ref()).map(|d| d.id));
    let mut out = Verdict {
        state: GateState::Pending,
        approved: false,
        sha,
        required: approval.map_or(0, |a| a.required),
        pending: approval.map_or(0, |a| a.pending),
        deployment_id,
        reason: None,
        message: String::new(),
    };
    let condition = status.and_then(|s| find_condition(&s.conditions, condition_type::APPROVED));
    let Some(condition) = condition else {
        out.message = "the operator has not judged approvals for this resource yet".to_owned();
        return out;
    };
    let generation = gd.metadata.generation;
    if condition.observed_generation.is_none() || condition.observed_generation != generation {
        out.message = format!(
            "the Approved condition describes generation {}, not the current {}: the operator has not caught up",
            show(condition.observed_generation),
            show(generation)
        );
        return out;
    }
    out.reason = Some(condition.reason.clone());
    match condition.status.as_str() {
        "True" => {
            if let Some(wanted) = gd.spec.sha.as_deref().filter(|s| !s.is_empty())
                && out.sha.as_deref() != Some(wanted)
            {
                out.message = format!(
                    "approval describes {}, the wanted revision is {wanted}",
                    out.sha.as_deref().unwrap_or("no revision")
                );
                return out;
            }
            out.state = GateState::Approved;
            out.approved = true;
        }
        "False" if condition.reason == reason::APPROVAL_REJECTED => {
            out.state = GateState::Rejected;
        }
        _ => {}
    }
    out.message = condition.message.clone();
    out
}

fn show(generation: Option<i64>) -> String {
    generation.map_or_else(|| "none".to_owned(), |g| g.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
    const OTHER: &str = "fedcba9876543210fedcba9876543210fedcba98";

    fn gd(spec_sha: Option<&str>, generation: i64, status: Value) -> GitlabDeployment {
        let mut spec = json!({
            "environment": "production",
            "ref": "main", "project": "team/app",
            "target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app"},
        });
        if let Some(sha) = spec_sha {
            spec["sha"] = json!(sha);
        }
        serde_json::from_value(json!({
            "apiVersion": "gitlab-operator.io/v1alpha1",
            "kind": "GitlabDeployment",
            "metadata": {"name": "app", "namespace": "apps", "generation": generation},
            "spec": spec,
            "status": status,
        }))
        .unwrap()
    }

    fn approved_cond(status: &str, reason: &str, generation: Option<i64>) -> Value {
        let mut c = json!({
            "type": "Approved", "status": status, "reason": reason,
            "message": format!("{reason} message"),
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        });
        if let Some(g) = generation {
            c["observedGeneration"] = json!(g);
        }
        c
    }

    fn status(cond: Option<Value>, approval_sha: Option<&str>, deployment_sha: &str) -> Value {
        let mut s = json!({
            "deployment": {"id": 7, "iid": 1, "sha": deployment_sha, "ref": "main", "status": "running"},
            "conditions": cond.into_iter().collect::<Vec<_>>(),
        });
        if let Some(sha) = approval_sha {
            s["approval"] = json!({"state": "Approved", "deploymentId": 7, "sha": sha, "required": 2, "pending": 0});
        }
        s
    }

    #[test]
    fn the_contract_table() {
        use GateState::*;
        let cases: Vec<(&str, GitlabDeployment, GateState)> = vec![
            (
                "approved, same generation, sha matches",
                gd(
                    Some(SHA),
                    3,
                    status(
                        Some(approved_cond("True", "Approved", Some(3))),
                        Some(SHA),
                        SHA,
                    ),
                ),
                Approved,
            ),
            (
                "not required (no status.approval): deployment sha counts",
                gd(
                    Some(SHA),
                    1,
                    status(
                        Some(approved_cond("True", "NotRequired", Some(1))),
                        None,
                        SHA,
                    ),
                ),
                Approved,
            ),
            (
                "no spec.sha (revisionFrom): any sha",
                gd(
                    None,
                    2,
                    status(
                        Some(approved_cond("True", "Approved", Some(2))),
                        Some(OTHER),
                        OTHER,
                    ),
                ),
                Approved,
            ),
            (
                "approved for another sha",
                gd(
                    Some(SHA),
                    3,
                    status(
                        Some(approved_cond("True", "Approved", Some(3))),
                        Some(OTHER),
                        OTHER,
                    ),
                ),
                Pending,
            ),
            (
                "status.approval's sha wins over the deployment's",
                gd(
                    Some(SHA),
                    3,
                    status(
                        Some(approved_cond("True", "Approved", Some(3))),
                        Some(OTHER),
                        SHA,
                    ),
                ),
                Pending,
            ),
            (
                "approved for an older generation",
                gd(
                    Some(SHA),
                    4,
                    status(
                        Some(approved_cond("True", "Approved", Some(3))),
                        Some(SHA),
                        SHA,
                    ),
                ),
                Pending,
            ),
            (
                "condition without observedGeneration",
                gd(
                    Some(SHA),
                    4,
                    status(
                        Some(approved_cond("True", "Approved", None)),
                        Some(SHA),
                        SHA,
                    ),
                ),
                Pending,
            ),
            (
                "pending approvals",
                gd(
                    Some(SHA),
                    3,
                    status(
                        Some(approved_cond("False", "ApprovalPending", Some(3))),
                        Some(SHA),
                        SHA,
                    ),
                ),
                Pending,
            ),
            (
                "no deployment yet",
                gd(
                    Some(SHA),
                    3,
                    json!({"conditions": [approved_cond("Unknown", "DeploymentPending", Some(3))]}),
                ),
                Pending,
            ),
            (
                "rejected",
                gd(
                    Some(SHA),
                    3,
                    status(
                        Some(approved_cond("False", "ApprovalRejected", Some(3))),
                        Some(SHA),
                        SHA,
                    ),
                ),
                Rejected,
            ),
            (
                "rejected in an older generation is not final for the new one",
                gd(
                    Some(SHA),
                    5,
                    status(
                        Some(approved_cond("False", "ApprovalRejected", Some(4))),
                        Some(SHA),
                        SHA,
                    ),
                ),
                Pending,
            ),
            ("no status at all", gd(Some(SHA), 1, Value::Null), Pending),
            (
                "no Approved condition",
                gd(Some(SHA), 1, status(None, Some(SHA), SHA)),
                Pending,
            ),
        ];
        for (name, gd, want) in cases {
            let v = verdict(&gd);
            assert_eq!(v.state, want, "{name}: {v:?}");
            assert_eq!(v.approved, want == Approved, "{name}");
        }
    }

    #[test]
    fn the_body_names_sha_and_counts() {
        let v = verdict(&gd(
            Some(SHA),
            3,
            status(
                Some(approved_cond("True", "Approved", Some(3))),
                Some(SHA),
                SHA,
            ),
        ));
        let body = serde_json::to_value(&v).unwrap();
        assert_eq!(body["state"], "approved");
        assert_eq!(body["approved"], true);
        assert_eq!(body["sha"], SHA);
        assert_eq!(body["required"], 2);
        assert_eq!(body["deploymentId"], 7);
        assert_eq!(body["reason"], "Approved");
        let pending = serde_json::to_value(verdict(&gd(Some(SHA), 1, Value::Null))).unwrap();
        assert_eq!(pending["state"], "pending");
        assert_eq!(pending["approved"], false);
        assert_eq!(pending["required"], 0);
        assert!(pending.get("sha").is_none());
    }
}
