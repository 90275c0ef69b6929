//! Pure status computation: the next `.status` from the old one and what this reconcile saw
//! and did. Guarantees: identical inputs give a byte-identical serialization (whole-second
//! timestamps that move only on change, sorted lists, bounded history), so the reconciler can
//! compare the old and next status to know whether a write is needed at all; `phase` is
//! derived from the conditions. GitLab's answers reach status only through [`apply`].
//!
//! GitLab's answers arrive as small input structs ([`GitlabDeploymentView`] and friends) that
//! `views.rs` fills from the client's types (and that deserialize from GitLab's JSON, which
//! the tests use), so this module does not depend on the client.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;

use crate::api::conditions::{NewCondition, is_true, set_condition, whole_seconds};
use crate::api::deployment::{
    ApprovalRecord, ApprovalRuleRecord, ApprovalState, ApprovalStatus, DeployRevision,
    DeploymentId, DeploymentIntent, DeploymentRecord, EnvironmentRecord, GateRecord,
    GitlabDeploymentStatus, GitlabStatus, HistoryEntry, MergeRequestRecord, Phase, PromotedPause,
    RefusedCreate, RolloutRecord,
};
use crate::api::names::condition_type::{APPROVED, READY, RECONCILING, STALLED};
use crate::api::names::reason;
use crate::api::validate::SpecError;
use crate::controller::events::stalled_reason;
use crate::rollout::{Reason, RolloutState, RolloutStatus};

/// At most this many earlier deployments are kept in `status.history` (oldest dropped).
pub const MAX_HISTORY: usize = 10;
/// At most this many merge requests are kept in `status.mergeRequests` (newest kept).
pub const MAX_MERGE_REQUESTS: usize = 20;

/// A GitLab user as it appears in approvals and merge requests (`UserBasic`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct UserView {
    pub username: String,
}

/// `DeploymentApproval`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ApprovalView {
    pub user: UserView,
    /// `approved` or `rejected`.
    pub status: String,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub created_at: Option<Timestamp>,
}

/// `ApprovalRuleForSummary`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ApprovalRuleView {
    /// Absent on older GitLab versions.
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub access_level_description: Option<String>,
    pub required_approvals: i64,
    #[serde(default)]
    pub deployment_approvals: Vec<ApprovalView>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ApprovalSummaryView {
    #[serde(default)]
    pub rules: Vec<ApprovalRuleView>,
}

/// `EnvironmentBasic`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct EnvironmentView {
    pub id: i64,
    #[serde(default)]
    pub external_url: Option<String>,
}

/// `DeploymentExtended` as returned by create, update and get. The EE approval fields are
/// absent on CE, hence optional.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct GitlabDeploymentView {
    pub id: DeploymentId,
    pub iid: i64,
    #[serde(rename = "ref")]
    pub ref_name: String,
    pub sha: String,
    pub status: GitlabStatus,
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
    #[serde(default)]
    pub environment: Option<EnvironmentView>,
    #[serde(default)]
    pub pending_approval_count: Option<i64>,
    #[serde(default)]
    pub approvals: Vec<ApprovalView>,
    #[serde(default)]
    pub approval_summary: Option<ApprovalSummaryView>,
}

/// `MergeRequestBasic` (the fields we keep).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct MergeRequestView {
    pub iid: i64,
    pub title: String,
    pub web_url: String,
    #[serde(default)]
    pub author: Option<UserView>,
    #[serde(default)]
    pub merged_at: Option<Timestamp>,
}

/// An error of this reconcile that the status should explain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// A reason constant from [`crate::api::names::reason`] (e.g. `TokenSecretMissing`).
    pub reason: &'static str,
    /// One sentence saying what is wrong and what to do.
    pub message: String,
    /// User errors stall (`Stalled=True`, no retry until the object changes); transient ones
    /// keep `Reconciling=True`.
    pub user_error: bool,
}

/// Everything one reconcile learned, in the order it happened.
#[derive(Clone, Debug)]
pub struct Observation<'a> {
    /// `metadata.generation` of the object reconciled.
    pub generation: i64,
    /// The validation result (a spec error stalls everything else).
    pub spec_error: Option<&'a SpecError>,
    /// The target's rollout, when the spec was valid.
    pub rollout: Option<&'a RolloutStatus>,
    /// The revision the resource wants reported (from [`super::plan::wanted_revision`]).
    pub wanted: Option<&'a DeployRevision>,
    /// What the steps of this reconcile learned, in call order (see [`Outcome`]).
    pub outcomes: &'a [Outcome],
    /// An error to explain.
    pub problem: Option<&'a Problem>,
}

impl<'a> Observation<'a> {
    /// An observation with nothing but the generation.
    pub fn new(generation: i64) -> Self {
        Self {
            generation,
            spec_error: None,
            rollout: None,
            wanted: None,
            outcomes: &[],
            problem: None,
        }
    }
}

/// What one step of a reconcile learned from GitLab. The step executor collects them; this
/// module alone turns them into status ([`apply`]), for the next plan within the reconcile and
/// for the status written at its end.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A deployment this resource made or found (create, recovery of an interrupted create):
    /// it becomes the current one. `tag` is what was sent on create (GitLab never returns it).
    Recorded {
        view: GitlabDeploymentView,
        tag: bool,
    },
    /// A recovery lookup found the deployment of an interrupted create.
    Adopted {
        view: GitlabDeploymentView,
        tag: bool,
    },
    /// GitLab's answer about a deployment already known (update, read, poll): the current one
    /// or one in the history.
    Answered(GitlabDeploymentView),
    /// The write-ahead claim of a create, written before its `POST`: it becomes the intent.
    /// An outcome, not part of the pass's base, so that it lands after what the pass learned
    /// before it (a void of an older claim must not clear it).
    Claimed(DeploymentIntent),
    /// A recovery lookup found nothing, or the create was not sent: the claim is void and the
    /// next plan creates.
    IntentVoid,
    /// GitLab refused the create (4xx): the claim is void and the request is not repeated.
    CreateRefused(RefusedCreate),
    /// The merge requests GitLab linked to a deployment.
    MergeRequests {
        id: DeploymentId,
        views: Vec<MergeRequestView>,
    },
    /// `spec.environmentSettings` applied to (or refused by) the GitLab environment.
    Environment(EnvironmentRecord),
}

impl Outcome {
    /// The deployment this outcome reports GitLab's current answer about, if any.
    pub fn answered_id(&self) -> Option<DeploymentId> {
        match self {
            Outcome::Recorded { view, .. }
            | Outcome::Adopted { view, .. }
            | Outcome::Answered(view) => Some(view.id),
            _ => None,
        }
    }
}

/// Apply one outcome to `status`: the one place GitLab's answers become status.
pub fn apply(status: &mut GitlabDeploymentStatus, outcome: &Outcome, now: Timestamp) {
    match outcome {
        Outcome::Recorded { view, tag } | Outcome::Adopted { view, tag } => {
            record_deployment(status, view, *tag, now);
        }
        Outcome::Answered(view) => {
            if let Some(current) = status.deployment.as_ref().filter(|d| d.id == view.id) {
                let tag = current.tag;
                record_deployment(status, view, tag, now);
            } else if let Some(entry) = status
                .history
                .iter_mut()
                .find(|h| h.deployment_id == view.id)
            {
                entry.status = view.status;
            }
        }
        Outcome::Claimed(intent) => status.intent = Some(intent.clone()),
        Outcome::IntentVoid => status.intent = None,
        Outcome::CreateRefused(refused) => {
            status.intent = None;
            status.refused_create = Some(refused.clone());
        }
        Outcome::MergeRequests { id, views } => record_merge_requests(status, *id, views),
        Outcome::Environment(record) => status.environment = Some(record.clone()),
    }
}

/// The write-ahead intent, recorded (with a resourceVersion precondition) before `POST`.
pub fn with_intent(
    status: &GitlabDeploymentStatus,
    revision: &DeployRevision,
    environment: &str,
    initial_status: GitlabStatus,
    gate: Option<GateRecord>,
    now: Timestamp,
) -> GitlabDeploymentStatus {
    let mut next = status.clone();
    next.intent = Some(claim(revision, environment, initial_status, gate, now));
    next
}

/// The intent of a create claimed at `now` (recorded in whole seconds).
pub fn claim(
    revision: &DeployRevision,
    environment: &str,
    initial_status: GitlabStatus,
    gate: Option<GateRecord>,
    now: Timestamp,
) -> DeploymentIntent {
    DeploymentIntent {
        revision: revision.clone(),
        gate,
        environment: environment.to_owned(),
        status: initial_status,
        claimed_at: whole_seconds(now),
    }
}

/// What the gate of the current deployment records before the operator acts on the target
/// Argo Rollout (written, with the resourceVersion precondition, before the patch is sent).
#[derive(Clone, Debug, PartialEq)]
pub enum RolloutAction {
    Promote(PromotedPause),
    Abort,
}

/// `status` with `action` recorded on the current deployment's gate.
pub fn with_rollout_action(
    status: &GitlabDeploymentStatus,
    action: &RolloutAction,
    now: Timestamp,
) -> GitlabDeploymentStatus {
    let mut next = status.clone();
    if let Some(gate) = next.deployment.as_mut().and_then(|d| d.gate.as_mut()) {
        match action {
            RolloutAction::Promote(pause) => gate.promoted = Some(pause.clone()),
            RolloutAction::Abort => gate.aborted_at = Some(whole_seconds(now)),
        }
    }
    next
}

/// The next status: apply every answer of `obs` to `old`, then derive conditions and phase.
pub fn next_status(
    old: &GitlabDeploymentStatus,
    obs: &Observation<'_>,
    now: Timestamp,
) -> GitlabDeploymentStatus {
    let mut next = old.clone();
    for outcome in obs.outcomes {
        apply(&mut next, outcome, now);
    }
    note_gate_approval(&mut next, now);
    if obs.spec_error.is_none()
        && let Some(rollout) = obs.rollout
    {
        record_workload_revision(old, &mut next, obs.wanted, rollout);
        record_rollout(&mut next, rollout, obs.wanted, now);
    }
    // A refusal is about one revision of one generation; once either moved on it is history.
    if next.refused_create.as_ref().is_some_and(|r| {
        r.generation != obs.generation || obs.wanted.is_some_and(|w| *w != r.revision)
    }) {
        next.refused_create = None;
    }
    derive_conditions(&mut next, obs, now);
    next.short_sha = next
        .deployment
        .as_ref()
        .map(|d| d.sha.as_str())
        .or(next.intent.as_ref().map(|i| i.revision.sha.as_str()))
        .or(obs.wanted.map(|w| w.sha.as_str()))
        .map(|sha| sha.chars().take(7).collect());
    next.observed_generation = Some(obs.generation);
    next
}

/// Remember which workload revision the reported sha ran on (see
/// `DeploymentRecord::workload_revision`): while its GitLab deployment runs, and in the pass
/// that finishes it. Once finished it is frozen, so a rollout that comes after (the next
/// sha's image, applied before `spec.sha` changes) is never taken for the old sha's.
pub fn record_workload_revision(
    old: &GitlabDeploymentStatus,
    status: &mut GitlabDeploymentStatus,
    wanted: Option<&DeployRevision>,
    rollout: &RolloutStatus,
) {
    let Some(dep) = status.deployment.as_mut() else {
        return;
    };
    if wanted.is_none_or(|w| dep.revision() != *w) {
        return;
    }
    let frozen = old
        .deployment
        .as_ref()
        .is_some_and(|o| o.id == dep.id && o.status.is_finished() && o.workload_revision.is_some());
    if !frozen && let Some(revision) = rollout.workload_revision() {
        dep.workload_revision = Some(revision);
    }
}

/// The approval state of the current deployment: `None` while none is recorded for it (no
/// deployment, or an answer about an older one). No approval record means none is required.
pub fn current_approval(status: &GitlabDeploymentStatus) -> Option<ApprovalState> {
    let dep = status.deployment.as_ref()?;
    Some(match status.approval.as_ref() {
        None => ApprovalState::NotRequired,
        Some(a) if a.deployment_id.is_none_or(|id| id == dep.id) => a.state,
        Some(_) => return None,
    })
}

/// Where the approval of deployment `id` stands, in words: "n of m approvals for GitLab
/// deployment ID (SHA)", or who rejected it and their comment. The `Approved` condition and
/// the gate's hold both say it this way.
pub fn approval_text(status: &GitlabDeploymentStatus, id: DeploymentId, short: &str) -> String {
    let approval = status.approval.as_ref();
    if approval.is_some_and(|a| a.state == ApprovalState::Rejected) {
        let by: Vec<String> = approval
            .into_iter()
            .flat_map(|a| a.approvals.iter())
            .filter(|r| r.status == "rejected")
            .map(|r| match &r.comment {
                Some(c) if !c.is_empty() => format!("{}: {c:?}", r.user),
                _ => r.user.clone(),
            })
            .collect();
        let who = if by.is_empty() {
            "an approver".to_owned()
        } else {
            by.join(", ")
        };
        return format!("GitLab deployment {id} ({short}) was rejected by {who}");
    }
    let (required, pending) = approval.map_or((0, 0), |a| (a.required, a.pending));
    format!(
        "{} of {required} approvals for GitLab deployment {id} ({short})",
        (required - pending).max(0)
    )
}

/// Remember when a held deployment was first seen approved (the start of the wait for the
/// rollout the gate let through).
fn note_gate_approval(status: &mut GitlabDeploymentStatus, now: Timestamp) {
    let approved = matches!(
        current_approval(status),
        Some(ApprovalState::Approved | ApprovalState::NotRequired)
    );
    if let Some(gate) = status.deployment.as_mut().and_then(|d| d.gate.as_mut())
        && approved
        && gate.approved_at.is_none()
    {
        gate.approved_at = Some(whole_seconds(now));
    }
}

fn to_time(t: Option<Timestamp>) -> Option<Time> {
    t.map(whole_seconds)
}

/// Record GitLab's answer about a deployment. A different id than the current one moves the
/// current one to `history` (bounded, newest first); the intent it fulfils is cleared.
fn record_deployment(
    status: &mut GitlabDeploymentStatus,
    view: &GitlabDeploymentView,
    tag: bool,
    now: Timestamp,
) {
    let record = DeploymentRecord {
        id: view.id,
        iid: view.iid,
        sha: view.sha.clone(),
        ref_name: view.ref_name.clone(),
        tag,
        status: view.status,
        environment_id: view.environment.as_ref().map(|e| e.id),
        environment_url: view
            .environment
            .as_ref()
            .and_then(|e| e.external_url.clone()),
        created_at: to_time(view.created_at),
        updated_at: to_time(view.updated_at),
        // Ours, not GitLab's: kept across GitLab answers about the same deployment.
        workload_revision: status
            .deployment
            .as_ref()
            .filter(|d| d.id == view.id)
            .and_then(|d| d.workload_revision.clone()),
        // The gate's record comes with the intent that created it, then stays.
        gate: match status.deployment.as_ref().filter(|d| d.id == view.id) {
            Some(same) => same.gate.clone(),
            None => status
                .intent
                .as_ref()
                .filter(|i| i.revision.sha == view.sha && i.revision.ref_name == view.ref_name)
                .and_then(|i| i.gate.clone()),
        },
    };
    match status.deployment.take() {
        Some(old) if old.id != view.id => {
            status.history.insert(
                0,
                HistoryEntry {
                    deployment_id: old.id,
                    sha: old.sha,
                    ref_name: old.ref_name,
                    status: old.status,
                    created_at: old.created_at,
                    finished_at: if old.status.is_finished() {
                        old.updated_at
                    } else {
                        None
                    },
                },
            );
            status.history.truncate(MAX_HISTORY);
            status.merge_requests.clear();
            status.merge_requests_for = None;
            status.approval = None;
        }
        _ => {}
    }
    if status
        .intent
        .as_ref()
        .is_some_and(|i| i.revision == record.revision())
    {
        status.intent = None;
    }
    if status
        .refused_create
        .as_ref()
        .is_some_and(|r| r.revision == record.revision())
    {
        status.refused_create = None;
    }
    status.deployment = Some(record);
    record_approvals(status, view, now);
}

/// Summarize GitLab's approval fields (§9.2): state, required/pending counts, approvals and
/// rules, sorted for a stable serialization; plus the `approved/required` column string.
fn record_approvals(
    status: &mut GitlabDeploymentStatus,
    view: &GitlabDeploymentView,
    now: Timestamp,
) {
    let rules_in = view
        .approval_summary
        .as_ref()
        .map(|s| s.rules.as_slice())
        .unwrap_or(&[]);
    let pending = view.pending_approval_count.unwrap_or(0).max(0);
    let mut rules: Vec<ApprovalRuleRecord> = rules_in
        .iter()
        .enumerate()
        .map(|(i, r)| ApprovalRuleRecord {
            id: r.id.unwrap_or(i64::try_from(i).unwrap_or(0)),
            description: r.access_level_description.clone(),
            required: r.required_approvals,
            approved: i64::try_from(
                r.deployment_approvals
                    .iter()
                    .filter(|a| a.status == "approved")
                    .count(),
            )
            .unwrap_or(i64::MAX),
        })
        .collect();
    rules.sort_by_key(|r| r.id);
    let mut approvals: Vec<ApprovalRecord> = view
        .approvals
        .iter()
        .map(|a| ApprovalRecord {
            user: a.user.username.clone(),
            status: a.status.clone(),
            comment: a.comment.clone(),
            created_at: to_time(a.created_at),
        })
        .collect();
    approvals.sort_by(|a, b| (&a.created_at, &a.user).cmp(&(&b.created_at, &b.user)));
    let required: i64 = rules.iter().map(|r| r.required).sum();
    let rejected = view.approvals.iter().any(|a| a.status == "rejected")
        || rules_in.iter().any(|r| {
            r.deployment_approvals
                .iter()
                .any(|a| a.status == "rejected")
        });
    let state = if rejected {
        ApprovalState::Rejected
    } else if pending > 0 {
        ApprovalState::Pending
    } else if required > 0 {
        ApprovalState::Approved
    } else {
        ApprovalState::NotRequired
    };
    if state == ApprovalState::NotRequired && approvals.is_empty() {
        status.approval = None;
        status.approvals_summary = None;
        return;
    }
    let old = status.approval.as_ref();
    let pending_since = match state {
        ApprovalState::Pending => old
            .filter(|a| a.state == ApprovalState::Pending)
            .and_then(|a| a.pending_since.clone())
            .or_else(|| Some(whole_seconds(now))),
        _ => None,
    };
    // Only a pending approval is polled; recording the poll time keeps the backoff stateless.
    let checked_at = (state == ApprovalState::Pending).then(|| whole_seconds(now));
    // Legacy (rule-less) protected environments report only a pending count.
    let required = if required == 0 {
        pending + count_approved(&approvals)
    } else {
        required
    };
    let approved = (required - pending).max(0);
    status.approvals_summary = (required > 0).then(|| format!("{approved}/{required}"));
    status.approval = Some(ApprovalStatus {
        state,
        deployment_id: Some(view.id),
        sha: Some(view.sha.clone()),
        required,
        pending,
        approvals,
        rules,
        pending_since,
        checked_at,
    });
}

fn count_approved(approvals: &[ApprovalRecord]) -> i64 {
    i64::try_from(approvals.iter().filter(|a| a.status == "approved").count()).unwrap_or(i64::MAX)
}

/// Keep the merge requests GitLab linked to deployment `id`: newest merge first, bounded.
fn record_merge_requests(
    status: &mut GitlabDeploymentStatus,
    id: DeploymentId,
    mrs: &[MergeRequestView],
) {
    let mut list: Vec<MergeRequestRecord> = mrs
        .iter()
        .map(|m| MergeRequestRecord {
            iid: m.iid,
            title: m.title.clone(),
            url: m.web_url.clone(),
            author: m.author.as_ref().map(|a| a.username.clone()),
            merged_at: to_time(m.merged_at),
        })
        .collect();
    list.sort_by(|a, b| (&b.merged_at, b.iid).cmp(&(&a.merged_at, a.iid)));
    list.dedup_by_key(|m| m.iid);
    list.truncate(MAX_MERGE_REQUESTS);
    status.merge_requests = list;
    status.merge_requests_for = Some(id);
}

/// The key of the tracked revision: the commit and the workload revision id.
pub fn rollout_key(rollout: &RolloutStatus, wanted: Option<&DeployRevision>) -> Option<String> {
    let sha = wanted.map(|w| w.sha.as_str()).or(rollout.commit_sha());
    let kind_id = rollout.revision.as_ref().and_then(|r| r.kind_id.as_deref());
    match (sha, kind_id) {
        (None, None) => None,
        (Some(s), None) => Some(s.to_owned()),
        (None, Some(k)) => Some(k.to_owned()),
        (Some(s), Some(k)) => Some(format!("{s} ({k})")),
    }
}

/// Record the rollout and run the `progressTimeout` clock: it starts at the first evaluation
/// past the generation gate for a revision, stops while paused, and restarts for a new revision.
pub fn record_rollout(
    status: &mut GitlabDeploymentStatus,
    rollout: &RolloutStatus,
    wanted: Option<&DeployRevision>,
    now: Timestamp,
) {
    let key = rollout_key(rollout, wanted);
    let workload_revision = rollout.workload_revision();
    let old = status.rollout.take().filter(|r| r.revision == key);
    // The finish and wait clocks belong to one workload revision: the key of a Deployment
    // carries only the sha, so a config-only rollout under the same sha keeps its key.
    let same_workload = old
        .as_ref()
        .filter(|r| r.workload_revision == workload_revision);
    let finished_at = rollout.is_terminal().then(|| {
        same_workload
            .and_then(|r| r.finished_at.clone())
            .unwrap_or_else(|| whole_seconds(now))
    });
    let waiting_since = (rollout.reason == Reason::RevisionNotRolledOut).then(|| {
        same_workload
            .and_then(|r| r.waiting_since.clone())
            .unwrap_or_else(|| whole_seconds(now))
    });
    let gate_passed = !matches!(rollout.state, RolloutState::Pending);
    let mut started_at = old.as_ref().and_then(|r| r.started_at.clone());
    if started_at.is_none() && gate_passed && rollout.reason != Reason::TargetTerminating {
        started_at = Some(whole_seconds(now));
    }
    let mut paused_since = old.as_ref().and_then(|r| r.paused_since.clone());
    let mut paused_seconds = old.as_ref().map_or(0, |r| r.paused_seconds);
    if rollout.reason.is_paused() {
        paused_since.get_or_insert_with(|| whole_seconds(now));
    } else if let Some(since) = paused_since.take() {
        paused_seconds += now.as_second().saturating_sub(since.0.as_second()).max(0);
    }
    status.rollout = Some(RolloutRecord {
        state: rollout.state.as_str().to_owned(),
        reason: rollout.reason.as_str().to_owned(),
        message: rollout.message.clone(),
        revision: key,
        started_at,
        paused_since,
        paused_seconds,
        workload_revision,
        finished_at,
        waiting_since,
    });
}

/// The `TrackCtx` clock inputs from the recorded rollout: (started_at, paused_for). A
/// current pause is counted up to `now`.
pub fn rollout_clock(
    status: &GitlabDeploymentStatus,
    now: Timestamp,
) -> (Option<Timestamp>, std::time::Duration) {
    let Some(r) = status.rollout.as_ref() else {
        return (None, std::time::Duration::ZERO);
    };
    let current_pause = r.paused_since.as_ref().map_or(0, |s| {
        now.as_second().saturating_sub(s.0.as_second()).max(0)
    });
    let paused = u64::try_from(r.paused_seconds.saturating_add(current_pause)).unwrap_or(0);
    (
        r.started_at.as_ref().map(|t| t.0),
        std::time::Duration::from_secs(paused),
    )
}

fn derive_conditions(status: &mut GitlabDeploymentStatus, obs: &Observation<'_>, now: Timestamp) {
    let generation = obs.generation;
    let (ready, abnormal) = conditions_for(status_view(status), obs);
    let approved = approved_condition(status, obs);
    let mut set = |c: NewCondition| set_condition(&mut status.conditions, c, generation, now);
    if let Some(c) = approved {
        set(c);
    }
    set(ready);
    match abnormal {
        Some(c) => set(c),
        None => {
            set(NewCondition::new(RECONCILING, false, "", ""));
            set(NewCondition::new(STALLED, false, "", ""));
        }
    }
    status.phase = Some(derive_phase(status, obs));
}

/// The parts of the status the conditions depend on (borrow split from the conditions).
struct StatusView {
    deployment: Option<(GitlabStatus, i64, String)>,
    deployed_sha: Option<String>,
    intent: bool,
    refused: Option<RefusedCreate>,
    approval: Option<ApprovalState>,
    environment_hint: String,
}

fn status_view(status: &GitlabDeploymentStatus) -> StatusView {
    StatusView {
        deployment: status
            .deployment
            .as_ref()
            .map(|d| (d.status, d.iid, d.sha.chars().take(7).collect())),
        deployed_sha: status.deployment.as_ref().map(|d| d.sha.clone()),
        intent: status.intent.is_some(),
        refused: status.refused_create.clone(),
        approval: status.approval.as_ref().map(|a| a.state),
        environment_hint: status
            .approval
            .as_ref()
            .map(|a| {
                format!(
                    "{} of {} approvals",
                    (a.required - a.pending).max(0),
                    a.required
                )
            })
            .unwrap_or_default(),
    }
}

/// (Ready, the abnormal-true condition if any).
fn conditions_for(view: StatusView, obs: &Observation<'_>) -> (NewCondition, Option<NewCondition>) {
    let not_ready =
        |reason: &'static str, message: String| NewCondition::new(READY, false, reason, message);
    let stalled = |reason: &'static str, message: String| {
        Some(NewCondition::new(STALLED, true, reason, message))
    };
    let reconciling = |reason: &'static str, message: String| {
        Some(NewCondition::new(RECONCILING, true, reason, message))
    };

    if let Some(err) = obs.spec_error {
        return (
            not_ready(reason::INVALID_SPEC, err.to_string()),
            stalled(reason::INVALID_SPEC, err.to_string()),
        );
    }
    if let Some(p) = obs.problem {
        let abnormal = if p.user_error {
            stalled(p.reason, p.message.clone())
        } else {
            reconciling(p.reason, p.message.clone())
        };
        return (not_ready(p.reason, p.message.clone()), abnormal);
    }
    // A create GitLab refused, not repeated (see `plan`): it stays stalled on GitLab's answer.
    if let (Some(refused), Some(wanted)) = (&view.refused, obs.wanted)
        && refused.refuses(wanted, obs.generation)
    {
        let why = stalled_reason(&refused.reason);
        return (
            not_ready(why, refused.message.clone()),
            stalled(why, refused.message.clone()),
        );
    }
    if view.intent && view.deployment.is_none() {
        let m = "Creating the GitLab deployment (intent recorded, id not yet known)".to_owned();
        return (
            not_ready(reason::DEPLOYMENT_PENDING, m.clone()),
            reconciling(reason::DEPLOYMENT_PENDING, m),
        );
    }
    if view.approval == Some(ApprovalState::Rejected) {
        let m = "The GitLab deployment was rejected by an approver; see status.approval".to_owned();
        return (
            not_ready(reason::APPROVAL_REJECTED, m.clone()),
            stalled(reason::APPROVAL_REJECTED, m),
        );
    }
    let rollout = obs.rollout;
    let rollout_msg = rollout.map(|r| r.message.clone()).unwrap_or_default();
    if rollout.is_some_and(|r| r.reason == Reason::AwaitingApproval) {
        return (
            not_ready(reason::APPROVAL_PENDING, rollout_msg.clone()),
            reconciling(reason::APPROVAL_PENDING, rollout_msg),
        );
    }
    if obs.wanted.is_none() && rollout.is_some_and(|r| !matches!(r.state, RolloutState::Pending)) {
        let m = "The target carries no commit sha where spec.revisionFrom points; set the annotation or image tag to the commit".to_owned();
        return (
            not_ready(reason::REVISION_UNKNOWN, m.clone()),
            stalled(reason::REVISION_UNKNOWN, m),
        );
    }
    // A newer revision is wanted than the one GitLab shows: not settled, whatever the old
    // deployment's status says.
    if let (Some(w), Some(sha)) = (obs.wanted, view.deployed_sha.as_deref())
        && w.sha != sha
        && !rollout.is_some_and(|r| r.state == RolloutState::Failed)
    {
        let short: String = w.sha.chars().take(7).collect();
        let m = format!("Waiting to report revision {short}: {rollout_msg}");
        return (
            not_ready(reason::ROLLOUT_PENDING, m.clone()),
            reconciling(reason::ROLLOUT_PENDING, m),
        );
    }
    let deployed = view
        .deployment
        .as_ref()
        .map(|(s, iid, sha)| (*s, format!("GitLab deployment #{iid} ({sha})")));
    match (rollout.map(|r| r.state), deployed) {
        (Some(RolloutState::Failed), _) => (
            not_ready(reason::ROLLOUT_FAILED, rollout_msg.clone()),
            stalled(reason::ROLLOUT_FAILED, rollout_msg),
        ),
        (_, Some((GitlabStatus::Success, what))) => {
            if view.approval == Some(ApprovalState::Pending) {
                let m = format!(
                    "{what} succeeded; waiting for approvals ({})",
                    view.environment_hint
                );
                return (
                    not_ready(reason::APPROVAL_PENDING, m.clone()),
                    reconciling(reason::APPROVAL_PENDING, m),
                );
            }
            (
                NewCondition::new(
                    READY,
                    true,
                    reason::ROLLOUT_COMPLETE,
                    format!("{what} succeeded: {rollout_msg}"),
                ),
                None,
            )
        }
        // Canceled because the workload went away: say that, not "superseded".
        (_, Some((GitlabStatus::Canceled, what)))
            if rollout.is_some_and(|r| {
                matches!(r.reason, Reason::TargetNotFound | Reason::TargetTerminating)
            }) =>
        {
            (
                not_ready(
                    reason::TARGET_NOT_FOUND,
                    format!("{what} was canceled: {rollout_msg}"),
                ),
                reconciling(
                    reason::TARGET_NOT_FOUND,
                    format!("{what} was canceled because the workload is gone; {rollout_msg}"),
                ),
            )
        }
        (_, Some((GitlabStatus::Canceled, what))) => (
            not_ready(
                reason::SUPERSEDED,
                format!("{what} was canceled: {rollout_msg}"),
            ),
            reconciling(
                reason::SUPERSEDED,
                format!("{what} was canceled; waiting for the next revision"),
            ),
        ),
        (Some(RolloutState::Progressing), _) => (
            not_ready(reason::ROLLOUT_PROGRESSING, rollout_msg.clone()),
            reconciling(reason::ROLLOUT_PROGRESSING, rollout_msg),
        ),
        (Some(RolloutState::Unknown), _) => (
            not_ready(reason::ROLLOUT_UNKNOWN, rollout_msg.clone()),
            reconciling(reason::ROLLOUT_UNKNOWN, rollout_msg),
        ),
        (Some(RolloutState::Succeeded), _) => {
            let m = "The rollout is complete; reporting it to GitLab".to_owned();
            (
                not_ready(reason::DEPLOYMENT_PENDING, m.clone()),
                reconciling(reason::DEPLOYMENT_PENDING, m),
            )
        }
        _ => {
            let reason = if rollout.is_some_and(|r| r.reason == Reason::TargetNotFound) {
                reason::TARGET_NOT_FOUND
            } else {
                reason::ROLLOUT_PENDING
            };
            (
                not_ready(reason, rollout_msg.clone()),
                reconciling(reason, rollout_msg),
            )
        }
    }
}

/// `Approved` (normal-true, see `names::condition_type::APPROVED`): whether GitLab approved
/// the deployment of the wanted revision. Left as it was when the spec is invalid.
fn approved_condition(
    status: &GitlabDeploymentStatus,
    obs: &Observation<'_>,
) -> Option<NewCondition> {
    // Only a full evaluation knows the wanted revision; a failed pass sets the condition
    // only where none exists yet (about the current deployment), so it is never missing.
    let present = status.conditions.iter().any(|c| c.type_ == APPROVED);
    if obs.spec_error.is_some() || (obs.rollout.is_none() && present) {
        return None;
    }
    let short = |sha: &str| sha.chars().take(7).collect::<String>();
    let dep = status
        .deployment
        .as_ref()
        .filter(|d| obs.wanted.is_none_or(|w| d.revision() == *w));
    let Some(dep) = dep else {
        return Some(NewCondition::unknown(
            APPROVED,
            reason::DEPLOYMENT_PENDING,
            "No GitLab deployment of the wanted revision yet",
        ));
    };
    let id = dep.id;
    let sha = short(&dep.sha);
    let approval = status.approval.as_ref();
    Some(match current_approval(status) {
        None => NewCondition::unknown(
            APPROVED,
            reason::DEPLOYMENT_PENDING,
            format!("GitLab's approvals of deployment {id} are not known yet"),
        ),
        Some(ApprovalState::NotRequired) => NewCondition::new(
            APPROVED,
            true,
            reason::NOT_REQUIRED,
            format!("GitLab deployment {id} ({sha}) needs no approval"),
        ),
        Some(ApprovalState::Approved) => {
            let by: Vec<&str> = approval
                .map(|a| {
                    a.approvals
                        .iter()
                        .filter(|r| r.status == "approved")
                        .map(|r| r.user.as_str())
                        .collect()
                })
                .unwrap_or_default();
            NewCondition::new(
                APPROVED,
                true,
                reason::APPROVED,
                format!(
                    "GitLab deployment {id} ({sha}) approved by {}",
                    by.join(", ")
                ),
            )
        }
        Some(state @ (ApprovalState::Pending | ApprovalState::Rejected)) => {
            let why = if state == ApprovalState::Pending {
                reason::APPROVAL_PENDING
            } else {
                reason::APPROVAL_REJECTED
            };
            NewCondition::new(APPROVED, false, why, approval_text(status, id, &sha))
        }
    })
}

fn derive_phase(status: &GitlabDeploymentStatus, obs: &Observation<'_>) -> Phase {
    let c = &status.conditions;
    if is_true(c, READY) {
        return Phase::Succeeded;
    }
    if is_true(c, STALLED) {
        return if obs.rollout.is_some_and(|r| r.state == RolloutState::Failed) {
            Phase::Failed
        } else {
            Phase::Stalled
        };
    }
    match obs.rollout.map(|r| r.state) {
        Some(RolloutState::Progressing) | Some(RolloutState::Succeeded) => Phase::Progressing,
        _ => Phase::Pending,
    }
}

#[cfg(test)]
mod tests;
