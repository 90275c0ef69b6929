//! Pure rollout evaluation (spec `rollout-status.md`): a target object to a [`RolloutStatus`].
//! No client, no async, no clock except the `now` argument: every rule is table-tested.
//!
//! Order for every kind (§1.4): absent → terminating → generation gate → kind rule → pod
//! overlay (`failFast`) → `progressTimeout` overlay.

mod generic;
mod gitops;
pub mod json;
mod promotion;
pub mod revision;
mod workloads;

#[cfg(test)]
mod tests;

pub use promotion::{IndefinitePause, RolloutControl, rollout_control};

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use self::json::{int_at, str_at};
use crate::api::deployment::RevisionFrom;

/// Where a rollout stands (§1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RolloutState {
    /// Nothing can be concluded yet (absent, generation not observed, source not picked up).
    Pending,
    /// The controller is working on the revision (includes paused).
    Progressing,
    /// Fully rolled out. Terminal for the revision.
    Succeeded,
    /// Failed, or `progressTimeout` expired. Terminal for the revision.
    Failed,
    /// Cannot be evaluated; never terminal by itself.
    Unknown,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Pending => "Pending",
            RolloutState::Progressing => "Progressing",
            RolloutState::Succeeded => "Succeeded",
            RolloutState::Failed => "Failed",
            RolloutState::Unknown => "Unknown",
        }
    }
}

/// Stable reason codes (§1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    TargetNotFound,
    GenerationNotObserved,
    SourceRevisionNotApplied,
    /// `spec.sha` changed but the workload still runs the revision reported for the previous
    /// sha: the new one has not started rolling out.
    RevisionNotRolledOut,
    /// The approval gate holds the wanted revision until GitLab approves it.
    AwaitingApproval,
    ReplicasUpdating,
    OldReplicasTerminating,
    ReplicasBecomingAvailable,
    PodsNotReady,
    PartitionRollout,
    RevisionMismatch,
    Paused,
    AwaitingPromotion,
    Reconciling,
    DependencyNotReady,
    RetryingAfterFailure,
    ReplicaFailure,
    PodProblem,
    InProgress,
    RolloutComplete,
    PartitionRolloutComplete,
    OnDeleteSpecApplied,
    ScaledToZero,
    ReconciliationSucceeded,
    Healthy,
    ProgressDeadlineExceeded,
    ProgressTimeout,
    RolloutAborted,
    InvalidSpec,
    Stalled,
    HealthCheckFailed,
    ReleaseFailed,
    SyncFailed,
    Degraded,
    JobFailed,
    CrashLoopBackOff,
    ImagePullFailed,
    TargetTerminating,
    UnsupportedKind,
    StatusUnparseable,
    ApiError,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        use Reason::*;
        match self {
            TargetNotFound => "TargetNotFound",
            GenerationNotObserved => "GenerationNotObserved",
            SourceRevisionNotApplied => "SourceRevisionNotApplied",
            RevisionNotRolledOut => "RevisionNotRolledOut",
            AwaitingApproval => "AwaitingApproval",
            ReplicasUpdating => "ReplicasUpdating",
            OldReplicasTerminating => "OldReplicasTerminating",
            ReplicasBecomingAvailable => "ReplicasBecomingAvailable",
            PodsNotReady => "PodsNotReady",
            PartitionRollout => "PartitionRollout",
            RevisionMismatch => "RevisionMismatch",
            Paused => "Paused",
            AwaitingPromotion => "AwaitingPromotion",
            Reconciling => "Reconciling",
            DependencyNotReady => "DependencyNotReady",
            RetryingAfterFailure => "RetryingAfterFailure",
            ReplicaFailure => "ReplicaFailure",
            PodProblem => "PodProblem",
            InProgress => "InProgress",
            RolloutComplete => "RolloutComplete",
            PartitionRolloutComplete => "PartitionRolloutComplete",
            OnDeleteSpecApplied => "OnDeleteSpecApplied",
            ScaledToZero => "ScaledToZero",
            ReconciliationSucceeded => "ReconciliationSucceeded",
            Healthy => "Healthy",
            ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
            ProgressTimeout => "ProgressTimeout",
            RolloutAborted => "RolloutAborted",
            InvalidSpec => "InvalidSpec",
            Stalled => "Stalled",
            HealthCheckFailed => "HealthCheckFailed",
            ReleaseFailed => "ReleaseFailed",
            SyncFailed => "SyncFailed",
            Degraded => "Degraded",
            JobFailed => "JobFailed",
            CrashLoopBackOff => "CrashLoopBackOff",
            ImagePullFailed => "ImagePullFailed",
            TargetTerminating => "TargetTerminating",
            UnsupportedKind => "UnsupportedKind",
            StatusUnparseable => "StatusUnparseable",
            ApiError => "ApiError",
        }
    }

    /// The paused reasons stop the `progressTimeout` clock (§2.4).
    pub fn is_paused(self) -> bool {
        matches!(self, Reason::Paused | Reason::AwaitingPromotion)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of what is being rolled out (§3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revision {
    /// pod-template-hash / updateRevision / currentPodHash / source revision.
    pub kind_id: Option<String>,
    /// `deployment.kubernetes.io/revision`, ControllerRevision number, Rollout revision.
    pub number: Option<i64>,
    /// Commit sha read through `revisionFrom`.
    pub commit_sha: Option<String>,
    /// Ref read through `revisionFrom.refAnnotation`.
    pub commit_ref: Option<String>,
}

/// The result of one evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutStatus {
    pub state: RolloutState,
    pub reason: Reason,
    /// One sentence for `status.rollout.message` and events (§6).
    pub message: String,
    pub revision: Option<Revision>,
}

impl RolloutStatus {
    pub fn new(state: RolloutState, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            state,
            reason,
            message: message.into(),
            revision: None,
        }
    }

    /// Ended for its revision (`Succeeded` or `Failed`).
    pub fn is_terminal(&self) -> bool {
        matches!(self.state, RolloutState::Succeeded | RolloutState::Failed)
    }

    /// The workload's own revision identity (pod-template hash / update revision, else the
    /// revision number such as `deployment.kubernetes.io/revision`); `None` for kinds that
    /// have neither.
    pub fn workload_revision(&self) -> Option<String> {
        let revision = self.revision.as_ref()?;
        revision
            .kind_id
            .clone()
            .or_else(|| revision.number.map(|n| format!("revision {n}")))
    }

    /// The commit sha the target carries (through `revisionFrom`).
    pub fn commit_sha(&self) -> Option<&str> {
        self.revision.as_ref().and_then(|r| r.commit_sha.as_deref())
    }

    /// The ref the target carries (through `revisionFrom.refAnnotation`).
    pub fn commit_ref(&self) -> Option<&str> {
        self.revision.as_ref().and_then(|r| r.commit_ref.as_deref())
    }
}

/// OnDelete update strategy policy for StatefulSets and DaemonSets (§1.5.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnDeletePolicy {
    /// Succeed once the spec is accepted and pods are ready on any revision.
    #[default]
    SpecApplied,
    /// Wait until every pod runs the new revision.
    WaitForPods,
}

/// What to do with an object that has no conditions and no kind rule (§1.5.10).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GenericNoConditions {
    #[default]
    Unknown,
    Succeed,
}

/// Everything evaluation needs besides the object: the tracked revision's clock and policies.
#[derive(Clone, Debug)]
pub struct TrackCtx {
    /// Fallback deadline for kinds that never report failure (§2.2).
    pub progress_timeout: Duration,
    /// Start of the timeout clock for the current revision (persisted in status).
    pub started_at: Option<Timestamp>,
    /// Time spent paused since `started_at` (the clock stops while paused).
    pub paused_for: Duration,
    /// Commit the GitOps kinds must have picked up (Flux, Argo CD).
    pub wanted_sha: Option<String>,
    /// Read the commit from the target's template.
    pub revision_from: Option<RevisionFrom>,
    pub on_delete_policy: OnDeletePolicy,
    /// Fail on crash loops / image pull errors of new-revision pods (§2.3).
    pub fail_fast: bool,
    pub crash_loop_threshold: i64,
    pub image_pull_grace: Duration,
    pub generic_no_conditions: GenericNoConditions,
    /// Treat Flux failures as retrying until `progressTimeout` (FK4 policy).
    pub flux_retry_as_progress: bool,
    /// Pods of the target (any revision); only those of `new_pod_hash` are inspected.
    pub pods: Vec<Value>,
    /// `pod-template-hash` / `controller-revision-hash` of the new revision, if known.
    pub new_pod_hash: Option<String>,
}

impl Default for TrackCtx {
    fn default() -> Self {
        Self {
            progress_timeout: crate::api::validate::DEFAULT_PROGRESS_TIMEOUT,
            started_at: None,
            paused_for: Duration::ZERO,
            wanted_sha: None,
            revision_from: None,
            on_delete_policy: OnDeletePolicy::default(),
            fail_fast: false,
            crash_loop_threshold: 3,
            image_pull_grace: Duration::from_secs(120),
            generic_no_conditions: GenericNoConditions::default(),
            flux_retry_as_progress: false,
            pods: Vec::new(),
            new_pod_hash: None,
        }
    }
}

/// The object being followed, as JSON (typed k8s-openapi objects and cached dynamic ones alike).
#[derive(Clone, Debug, PartialEq)]
pub struct TargetObject {
    pub api_version: String,
    pub kind: String,
    pub object: Value,
}

impl TargetObject {
    /// From any JSON object with `apiVersion` and `kind`.
    pub fn from_value(object: Value) -> Self {
        let api_version = str_at(&object, &["apiVersion"])
            .unwrap_or_default()
            .to_owned();
        let kind = str_at(&object, &["kind"]).unwrap_or_default().to_owned();
        Self {
            api_version,
            kind,
            object,
        }
    }

    /// From a typed object such as `k8s_openapi::api::apps::v1::Deployment`.
    pub fn from_typed<K>(obj: &K) -> Result<Self, serde_json::Error>
    where
        K: k8s_openapi::Resource + serde::Serialize,
    {
        let mut value = serde_json::to_value(obj)?;
        if let Some(map) = value.as_object_mut() {
            map.insert(
                "apiVersion".into(),
                Value::String(K::API_VERSION.to_owned()),
            );
            map.insert("kind".into(), Value::String(K::KIND.to_owned()));
        }
        Ok(Self::from_value(value))
    }

    fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }

    fn name(&self) -> &str {
        str_at(&self.object, &["metadata", "name"]).unwrap_or("")
    }
}

/// Evaluate the rollout of `target` (`None`: not found) per §1.4.
pub fn evaluate(target: Option<&TargetObject>, ctx: &TrackCtx, now: Timestamp) -> RolloutStatus {
    let Some(target) = target else {
        return RolloutStatus::new(
            RolloutState::Pending,
            Reason::TargetNotFound,
            "Waiting for the target to be created",
        );
    };
    let revision = revision_of(target, ctx);
    let mut status = evaluate_kind(target, ctx, now);
    status = pod_overlay(status, target, ctx, now);
    status = timeout_overlay(status, ctx, now);
    if status.reason == Reason::RolloutComplete && target.kind == "Deployment" {
        status.message.push_str(&revision_suffix(&revision));
    }
    status.revision = Some(revision);
    status
}

fn evaluate_kind(target: &TargetObject, ctx: &TrackCtx, now: Timestamp) -> RolloutStatus {
    let obj = &target.object;
    if json::at(obj, &["metadata", "deletionTimestamp"]).is_some_and(|v| !v.is_null()) {
        return RolloutStatus::new(
            RolloutState::Unknown,
            Reason::TargetTerminating,
            format!("{} {:?} is being deleted", target.kind, target.name()),
        );
    }
    match (target.group(), target.kind.as_str()) {
        ("apps", "Deployment") => {
            gate_strict(target).unwrap_or_else(|| workloads::deployment(target))
        }
        ("apps", "StatefulSet") => {
            gate_strict(target).unwrap_or_else(|| workloads::statefulset(target, ctx))
        }
        ("apps", "DaemonSet") => {
            gate_strict(target).unwrap_or_else(|| workloads::daemonset(target, ctx))
        }
        ("apps", "ReplicaSet") => {
            gate_strict(target).unwrap_or_else(|| workloads::replicaset(target))
        }
        ("batch", "Job") => workloads::job(target),
        ("argoproj.io", "Rollout") => gitops::argo_rollout(target),
        ("argoproj.io", "Application") => gitops::argocd_application(target, ctx),
        ("kustomize.toolkit.fluxcd.io", "Kustomization") => gitops::flux_kustomization(target, ctx),
        ("helm.toolkit.fluxcd.io", "HelmRelease") => gitops::flux_helmrelease(target, ctx),
        _ => {
            let _ = now;
            generic::evaluate(target, ctx)
        }
    }
}

/// ` at revision 7 (pod-template-hash 5d9c7b8f6, sha 1a2b3c4)` as far as known (§6).
fn revision_suffix(revision: &Revision) -> String {
    let mut details = Vec::new();
    if let Some(hash) = &revision.kind_id {
        details.push(format!("pod-template-hash {hash}"));
    }
    if let Some(sha) = &revision.commit_sha {
        details.push(format!("sha {}", sha.chars().take(7).collect::<String>()));
    }
    let mut out = revision
        .number
        .map(|n| format!(" at revision {n}"))
        .unwrap_or_default();
    if !details.is_empty() {
        out.push_str(&format!(" ({})", details.join(", ")));
    }
    out
}

/// Strict generation gate for workload kinds (§1.4 step 3): observedGeneration absent, zero,
/// or behind `metadata.generation` means the status describes an older spec.
fn gate_strict(target: &TargetObject) -> Option<RolloutStatus> {
    let generation = int_at(&target.object, &["metadata", "generation"]);
    let observed = int_at(&target.object, &["status", "observedGeneration"]);
    match (generation, observed) {
        (Some(g), Some(o)) if o > 0 && o >= g => None,
        (g, o) => Some(not_observed(g, o)),
    }
}

fn not_observed(generation: Option<i64>, observed: Option<i64>) -> RolloutStatus {
    let show = |v: Option<i64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
    RolloutStatus::new(
        RolloutState::Pending,
        Reason::GenerationNotObserved,
        format!(
            "Waiting for rollout to be observed: generation {}, observed generation {}",
            show(generation),
            show(observed)
        ),
    )
}

/// Revision identity (§3) plus the commit read through `revisionFrom`.
pub fn revision_of(target: &TargetObject, ctx: &TrackCtx) -> Revision {
    let obj = &target.object;
    let (kind_id, number) = match (target.group(), target.kind.as_str()) {
        ("apps", "Deployment") => (
            ctx.new_pod_hash.clone(),
            str_at(
                obj,
                &[
                    "metadata",
                    "annotations",
                    "deployment.kubernetes.io/revision",
                ],
            )
            .and_then(|s| s.parse().ok()),
        ),
        ("apps", "StatefulSet") => (
            str_at(obj, &["status", "updateRevision"]).map(str::to_owned),
            None,
        ),
        ("apps", "DaemonSet") => (
            ctx.new_pod_hash.clone(),
            str_at(
                obj,
                &[
                    "metadata",
                    "annotations",
                    "deprecated.daemonset.template.generation",
                ],
            )
            .and_then(|s| s.parse().ok()),
        ),
        ("argoproj.io", "Rollout") => (
            str_at(obj, &["status", "currentPodHash"]).map(str::to_owned),
            str_at(
                obj,
                &["metadata", "annotations", "rollout.argoproj.io/revision"],
            )
            .and_then(|s| s.parse().ok()),
        ),
        ("argoproj.io", "Application") => (
            str_at(obj, &["status", "sync", "revision"]).map(str::to_owned),
            None,
        ),
        ("kustomize.toolkit.fluxcd.io", _) | ("helm.toolkit.fluxcd.io", _) => (
            str_at(obj, &["status", "lastAttemptedRevision"]).map(str::to_owned),
            None,
        ),
        _ => (ctx.new_pod_hash.clone(), None),
    };
    let commit = ctx
        .revision_from
        .as_ref()
        .map(|from| revision::commit_from_target(obj, from))
        .unwrap_or_default();
    Revision {
        kind_id,
        number,
        commit_sha: commit.sha,
        commit_ref: commit.ref_name,
    }
}

/// Pod inspection (§2.3): only pods of the new revision, only while progressing. With
/// `failFast` off, problems show in the message (`PodProblem`) but never fail the rollout.
fn pod_overlay(
    status: RolloutStatus,
    target: &TargetObject,
    ctx: &TrackCtx,
    now: Timestamp,
) -> RolloutStatus {
    if status.state != RolloutState::Progressing || status.reason.is_paused() {
        return status;
    }
    let Some(hash) = ctx.new_pod_hash.as_deref() else {
        return status;
    };
    let new_pods = ctx.pods.iter().filter(|p| {
        str_at(p, &["metadata", "labels", "pod-template-hash"]) == Some(hash)
            || str_at(p, &["metadata", "labels", "controller-revision-hash"]) == Some(hash)
    });
    let mut crash: Vec<(String, i64)> = Vec::new();
    let mut pull: Option<(String, String, bool)> = None; // (container, reason, past grace)
    for pod in new_pods {
        let since = str_at(pod, &["status", "startTime"])
            .or_else(|| str_at(pod, &["metadata", "creationTimestamp"]))
            .and_then(|t| t.parse::<Timestamp>().ok());
        let waited = since
            .map(|s| now.duration_since(s).unsigned_abs())
            .unwrap_or(Duration::ZERO);
        let statuses = json::at(pod, &["status", "containerStatuses"])
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for c in statuses {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let restarts = c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
            match json::str_at(c, &["state", "waiting", "reason"]) {
                Some("CrashLoopBackOff") => crash.push((name, restarts)),
                Some(r @ ("ErrImagePull" | "ImagePullBackOff")) => {
                    pull = Some((name, r.to_owned(), waited > ctx.image_pull_grace));
                }
                Some(r @ ("InvalidImageName" | "ErrImageNeverPull")) => {
                    pull = Some((name, r.to_owned(), true))
                }
                _ => {}
            }
        }
    }
    let revision = revision_label(target, ctx);
    if let Some((container, reason, past_grace)) = pull {
        let message = format!(
            "pods of revision {revision} cannot pull their image ({reason}, container {container:?})"
        );
        if ctx.fail_fast && past_grace {
            return RolloutStatus::new(
                RolloutState::Failed,
                Reason::ImagePullFailed,
                format!("Rollout failed: {message}"),
            );
        }
        return RolloutStatus::new(
            RolloutState::Progressing,
            Reason::PodProblem,
            format!(
                "Waiting for rollout to finish: {message}; {}",
                status.message
            ),
        );
    }
    if let Some((container, restarts)) = crash.iter().max_by_key(|(_, r)| *r).cloned() {
        let message = format!(
            "{} pods of revision {revision} in CrashLoopBackOff (container {container:?}, {restarts} restarts)",
            crash.len()
        );
        if ctx.fail_fast && restarts >= ctx.crash_loop_threshold {
            return RolloutStatus::new(
                RolloutState::Failed,
                Reason::CrashLoopBackOff,
                format!("Rollout failed: {message}"),
            );
        }
        return RolloutStatus::new(
            RolloutState::Progressing,
            Reason::PodProblem,
            format!("Waiting for rollout to finish: {message}"),
        );
    }
    status
}

fn revision_label(target: &TargetObject, ctx: &TrackCtx) -> String {
    str_at(
        &target.object,
        &[
            "metadata",
            "annotations",
            "deployment.kubernetes.io/revision",
        ],
    )
    .map(str::to_owned)
    .or_else(|| ctx.new_pod_hash.clone())
    .unwrap_or_else(|| "new".to_owned())
}

/// `progressTimeout` (§2.2): a progressing, not paused rollout whose clock (minus paused time)
/// ran past the timeout fails. The clock starts at `ctx.started_at`.
fn timeout_overlay(status: RolloutStatus, ctx: &TrackCtx, now: Timestamp) -> RolloutStatus {
    if status.state != RolloutState::Progressing || status.reason.is_paused() {
        return status;
    }
    let Some(started) = ctx.started_at else {
        return status;
    };
    let elapsed = now.duration_since(started);
    if elapsed.is_negative() {
        return status;
    }
    let running = elapsed.unsigned_abs().saturating_sub(ctx.paused_for);
    if running <= ctx.progress_timeout {
        return status;
    }
    let last = status
        .message
        .strip_prefix("Waiting for rollout to finish: ")
        .unwrap_or(&status.message);
    RolloutStatus::new(
        RolloutState::Failed,
        Reason::ProgressTimeout,
        format!(
            "Rollout failed: not finished within {} (progressTimeout); last state: {last}",
            format_go_duration(ctx.progress_timeout)
        ),
    )
}

/// Format like Go's `time.Duration.String` for whole seconds (`10m0s`, `1h30m0s`, `45s`).
pub fn format_go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}
