//! `GitlabDeployment`: "this workload is deployed to this GitLab project's environment at this
//! revision". The OpenAPI schema and CEL rules here are the first validation layer; the same
//! rules run again in Rust in [`super::validate`] so a bad object never reaches the planner.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Commit sha: GitLab accepts abbreviations, but a full sha is the only unambiguous identity
/// (the same short sha can name different commits later), so the spec demands all 40 digits.
pub const SHA_PATTERN: &str = "^[0-9a-f]{40}$";
/// GitLab environment names: letters, digits, spaces and `-_/${}.`; not starting or ending
/// with `/` (GitLab's `environment_name_regex` plus its slash rule). Length is checked apart.
pub const ENVIRONMENT_PATTERN: &str =
    r"^[a-zA-Z0-9 _.${}-]([a-zA-Z0-9 _./${}-]*[a-zA-Z0-9 _.${}-])?$";
/// Project: a numeric id, or a full path `group/project` (nested groups allowed). Path segments
/// use GitLab's path characters (letters, digits, `_`, `-`, `.`), do not start with `-`, and
/// are not made of dots only (`..` would step out of `projects/:id` in a URL).
/// GitLab's finer end rules (no trailing `-` on groups, no `.git`/`.atom` suffix) are not
/// checked: they vary by version (unverified), and a wrong path only yields GitLab's 404,
/// while refusing a valid one would lock a user out.
pub const PROJECT_PATTERN: &str = r"^([1-9][0-9]*|(\.+[A-Za-z0-9_-]|[A-Za-z0-9_])[A-Za-z0-9_.-]*(/(\.+[A-Za-z0-9_-]|[A-Za-z0-9_])[A-Za-z0-9_.-]*)+)$";
/// Go duration as Kubernetes writes them (`90s`, `10m`, `1h30m`).
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

/// The desired state: which workload, reported as which GitLab deployment.
// kube's `printcolumn(...)` repeats `type_`/`priority` keys by design; clippy reads them as
// duplicates of one attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gitlab-operator.io",
    version = "v1alpha1",
    kind = "GitlabDeployment",
    namespaced,
    status = "GitlabDeploymentStatus",
    derive = "PartialEq",
    shortname = "gld",
    shortname = "gldeploy",
    category = "gitlab",
    cel,
    doc = "Reports the rollout of one workload to a GitLab project's environment through GitLab's Deployments API.",
    printcolumn(
        name = "Environment",
        type_ = "string",
        json_path = ".spec.environment"
    ),
    printcolumn(name = "Sha", type_ = "string", json_path = ".status.shortSha"),
    printcolumn(
        name = "GitLab",
        type_ = "string",
        json_path = ".status.deployment.status"
    ),
    printcolumn(
        name = "Rollout",
        type_ = "string",
        json_path = ".status.rollout.state"
    ),
    printcolumn(
        name = "Approvals",
        type_ = "string",
        json_path = ".status.approvalsSummary"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Deployment",
        type_ = "integer",
        json_path = ".status.deployment.id",
        priority = "1"
    ),
    printcolumn(
        name = "Ref",
        type_ = "string",
        json_path = ".status.deployment.ref",
        priority = "1"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        priority = "1"
    )
)]
#[x_kube(validation = Rule::new("has(self.sha) != has(self.revisionFrom)").message(
    "set exactly one of spec.sha (a fixed commit) and spec.revisionFrom (read the commit from the target)"
))]
#[x_kube(validation = Rule::new("!has(self.approval) || !has(self.approval.promote) || !self.approval.promote || (self.target.kind == 'Rollout' && self.target.apiVersion.startsWith('argoproj.io/'))").message(
    "spec.approval.promote works only on an Argo Rollouts Rollout target (apiVersion argoproj.io/v1alpha1, kind Rollout)"
))]
#[serde(rename_all = "camelCase")]
pub struct GitlabDeploymentSpec {
    /// The GitlabConnection or ClusterGitlabConnection to use; absent means the operator's
    /// default connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_ref: Option<ConnectionRef>,
    /// GitLab project: numeric id (`42`) or full path (`group/subgroup/project`).
    #[schemars(regex(pattern = PROJECT_PATTERN))]
    #[schemars(length(min = 1, max = 2048))]
    pub project: String,
    /// GitLab environment name (created by GitLab on first deployment).
    #[schemars(regex(pattern = ENVIRONMENT_PATTERN))]
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "spec.environment is immutable: changing it would orphan the GitLab deployment already reported; create a new GitlabDeployment instead"
    ))]
    pub environment: String,
    /// Git ref (branch or tag name) the deployment is reported for.
    #[serde(rename = "ref")]
    #[schemars(length(min = 1, max = 255))]
    pub ref_name: String,
    /// Full 40-character commit sha. Exactly one of `sha` and `revisionFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SHA_PATTERN))]
    pub sha: Option<String>,
    /// Whether `ref` is a tag (sent to GitLab as is).
    #[serde(default)]
    pub tag: bool,
    /// The workload whose rollout is reported.
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "spec.target is immutable: changing it would orphan the GitLab deployment already reported; create a new GitlabDeployment instead"
    ))]
    pub target: TargetRef,
    /// Read the commit from the target instead of `sha`, so one resource follows every future
    /// rollout of its workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_from: Option<RevisionFrom>,
    /// How long a rollout may take before it is reported `failed` (Go duration, default `10m`).
    /// Needed for kinds that never report failure themselves (StatefulSet, DaemonSet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub progress_timeout: Option<String>,
    /// With a fixed `sha`: how long after `sha` changes the operator waits for the workload to
    /// start a rollout that carries it, when none is under way (Go duration, default `1m`).
    /// Then the workload as it stands is reported as the new sha, with an Event. A rollout that
    /// is under way, or finished within this time before `sha` changed, carries the new sha.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub rollout_start_grace: Option<String>,
    /// What happens to a GitLab deployment when this resource is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// How GitLab's environment page presents this workload: tier, external URL and the
    /// dashboard for Kubernetes. Set on the environment when it differs from what GitLab shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_settings: Option<EnvironmentSettings>,
    /// GitLab deployment approvals (protected environments): whether the rollout is held
    /// until GitLab approves it, and whether the operator promotes an Argo Rollout itself.
    /// Absent: approvals are only reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalPolicy>,
}

/// How a protected environment's approvals hold a rollout. GitLab never holds a deployment
/// made through its API (it cannot create one `blocked`), so the hold is the operator's: the
/// `Approved` condition (and the gate endpoint) that a GitOps engine or a pipeline waits on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[x_kube(validation = Rule::new("!has(self.promote) || !self.promote || (has(self.gate) && self.gate)").message(
    "approval.promote needs approval.gate: the operator promotes only a revision it holds for approval"
))]
#[serde(rename_all = "camelCase")]
pub struct ApprovalPolicy {
    /// Hold each new revision for GitLab's approval: the GitLab deployment is created
    /// (`running`, the only state the API allows) as soon as the revision is wanted, so
    /// approvers can act on it, and `Approved` stays `False` until GitLab approves it. A
    /// rejection fails the deployment and stalls the resource until the next revision.
    #[serde(default)]
    pub gate: bool,
    /// With `gate`, on an Argo Rollouts `Rollout` target: when the Rollout is paused at an
    /// indefinite pause step for the wanted revision, promote it once GitLab approves (the
    /// patches `kubectl argo rollouts promote` sends), abort it on rejection.
    #[serde(default)]
    pub promote: bool,
}

/// GitLab environment settings (Environments API; the Kubernetes fields need GitLab 17.4+).
/// Absent fields are left as GitLab has them.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[x_kube(validation = Rule::new("!has(self.kubernetesNamespace) || has(self.clusterAgent)").message(
    "environmentSettings.kubernetesNamespace needs environmentSettings.clusterAgent: GitLab shows a namespace only through an agent"
))]
#[x_kube(validation = Rule::new("!has(self.fluxResourcePath) || has(self.clusterAgent)").message(
    "environmentSettings.fluxResourcePath needs environmentSettings.clusterAgent: GitLab reads Flux resources only through an agent"
))]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentSettings {
    /// `production`, `staging`, `testing`, `development` or `other`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<EnvironmentTier>,
    /// The URL GitLab links the environment to (GitLab refuses `javascript:`, `data:` and
    /// `vbscript:`).
    #[serde(
        default,
        rename = "externalURL",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = Rule::new("!self.lowerAscii().matches('^\\\\s*(javascript|data|vbscript):')").message(
        "environmentSettings.externalURL: GitLab refuses javascript:, data: and vbscript: URLs"
    ))]
    pub external_url: Option<String>,
    /// The GitLab agent for Kubernetes whose dashboard the environment shows: its numeric id,
    /// its name, or `group/project:name`. GitLab accepts only agents registered in the
    /// deployment's own project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub cluster_agent: Option<String>,
    /// Namespace the dashboard shows (default: this resource's namespace, when an agent is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        length(min = 1, max = 63)
    )]
    pub kubernetes_namespace: Option<String>,
    /// Flux resource for the sync badge, e.g.
    /// `kustomize.toolkit.fluxcd.io/v1/namespaces/NS/kustomizations/NAME` (default: the target,
    /// when it is a Flux Kustomization or HelmRelease and an agent is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub flux_resource_path: Option<String>,
}

/// GitLab's environment tiers.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EnvironmentTier {
    Production,
    Staging,
    Testing,
    Development,
    Other,
}

impl EnvironmentTier {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvironmentTier::Production => "production",
            EnvironmentTier::Staging => "staging",
            EnvironmentTier::Testing => "testing",
            EnvironmentTier::Development => "development",
            EnvironmentTier::Other => "other",
        }
    }
}

/// The environment settings last set on GitLab (or refused by it), so a steady state and a
/// restart cost no call.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentRecord {
    /// GitLab's environment id.
    pub id: i64,
    /// The settings, defaults resolved, as last applied or refused.
    pub settings: EnvironmentSettings,
    /// `Applied`, or `Rejected` (not retried until the settings or the environment change).
    pub state: EnvironmentSyncState,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvironmentSyncState {
    Applied,
    Rejected,
}

/// Which connection to use.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionRef {
    pub kind: ConnectionKind,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(
    JsonSchema,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
)]
pub enum ConnectionKind {
    #[default]
    GitlabConnection,
    ClusterGitlabConnection,
}

/// The workload to follow, in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// e.g. `apps/v1`, `argoproj.io/v1alpha1`.
    #[schemars(length(min = 1, max = 253))]
    pub api_version: String,
    /// e.g. `Deployment`, `StatefulSet`, `Rollout`, `Kustomization`.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Where the commit sha comes from when it is not fixed in the spec.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("has(self.annotation) != has(self.container)").message(
    "set exactly one of revisionFrom.annotation and revisionFrom.container"
))]
#[serde(rename_all = "camelCase")]
pub struct RevisionFrom {
    /// Annotation holding the commit sha, read from the pod template first, then from the
    /// target's own metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 317))]
    pub annotation: Option<String>,
    /// Container whose image tag is the commit sha (`app:1a2b3c4d`, `app:v1.2-1a2b3c4d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub container: Option<String>,
    /// Optional annotation holding the ref; `spec.ref` is used when absent or missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 317))]
    pub ref_annotation: Option<String>,
}

/// What to do with the GitLab deployment when the resource is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Mark a still-running GitLab deployment `canceled`; finished ones stay as they are.
    #[default]
    Cancel,
    /// Leave GitLab untouched.
    Orphan,
    /// Delete the GitLab deployment where GitLab allows it (not the environment's current
    /// successful deployment); a running one is canceled first.
    Delete,
}

/// GitLab deployment statuses (GitLab's state machine; only the first four can be requested
/// through the API).
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum GitlabStatus {
    Running,
    Success,
    Failed,
    Canceled,
    Created,
    Skipped,
    Blocked,
}

impl GitlabStatus {
    /// The wire name (`running`, `success`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            GitlabStatus::Running => "running",
            GitlabStatus::Success => "success",
            GitlabStatus::Failed => "failed",
            GitlabStatus::Canceled => "canceled",
            GitlabStatus::Created => "created",
            GitlabStatus::Skipped => "skipped",
            GitlabStatus::Blocked => "blocked",
        }
    }

    /// Whether GitLab accepts `PUT status=to` from this state (spec §5.1). Re-sending the
    /// current status is always refused.
    pub fn can_transition_to(self, to: GitlabStatus) -> bool {
        match to {
            GitlabStatus::Running => matches!(self, GitlabStatus::Created | GitlabStatus::Blocked),
            GitlabStatus::Success | GitlabStatus::Failed | GitlabStatus::Canceled => self != to,
            // Not requestable through the API.
            GitlabStatus::Created | GitlabStatus::Skipped | GitlabStatus::Blocked => false,
        }
    }

    /// `success`, `failed` and `canceled` stamp `finished_at` in GitLab.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            GitlabStatus::Success | GitlabStatus::Failed | GitlabStatus::Canceled
        )
    }
}

impl std::fmt::Display for GitlabStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What GitLab is told: the identity of one GitLab deployment (GitLab has no other key).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeployRevision {
    pub sha: String,
    #[serde(rename = "ref")]
    pub ref_name: String,
    #[serde(default)]
    pub tag: bool,
}

/// Observed state. Every field is optional so a partial status (and server-side apply) works.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GitlabDeploymentStatus {
    /// Generation whose reconcile last finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Summary derived from the conditions, never set on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// First 7 characters of the reported sha (printer column; a jsonPath cannot cut strings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_sha: Option<String>,
    /// The current GitLab deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentRecord>,
    /// Write-ahead record of a create in flight: present between "decided to create" and
    /// "id recorded". After a crash it means "look the deployment up before creating".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<DeploymentIntent>,
    /// A create GitLab refused with a 4xx: not sent again for the same revision and
    /// generation unless the connection or its Secret changes (a restart is not a change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_create: Option<RefusedCreate>,
    /// The workload's rollout as last evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutRecord>,
    /// GitLab's approval state of the current deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalStatus>,
    /// Approvals as `approved/required` (printer column), absent when none are required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals_summary: Option<String>,
    /// Merge requests GitLab linked to the current deployment (bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merge_requests: Vec<MergeRequestRecord>,
    /// Deployment id whose merge requests were fetched (fetched once, after success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_requests_for: Option<DeploymentId>,
    /// Earlier GitLab deployments of this resource, newest first (bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
    /// The GitLab environment settings from `spec.environmentSettings`, as last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Phase shown to people; derived from the conditions and the rollout.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Progressing,
    Succeeded,
    Failed,
    Stalled,
}

/// A GitLab deployment id (the global `id`, not the per-project `iid`). GitLab's ids are
/// positive; the status schema says so (`minimum: 1`), so the API server refuses a status with
/// any other, and a typed id can never become `GET /deployments/0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct DeploymentId(u64);

impl DeploymentId {
    /// `None` unless `raw` is a positive id.
    pub fn new(raw: i64) -> Option<Self> {
        u64::try_from(raw).ok().filter(|v| *v > 0).map(DeploymentId)
    }

    /// The id as the client's paths take it.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<i64> for DeploymentId {
    type Error = String;
    fn try_from(raw: i64) -> Result<Self, Self::Error> {
        DeploymentId::new(raw).ok_or_else(|| format!("{raw} is not a GitLab deployment id"))
    }
}

impl TryFrom<u64> for DeploymentId {
    type Error = String;
    fn try_from(raw: u64) -> Result<Self, Self::Error> {
        i64::try_from(raw)
            .ok()
            .and_then(DeploymentId::new)
            .ok_or_else(|| format!("{raw} is not a GitLab deployment id"))
    }
}

impl From<DeploymentId> for i64 {
    fn from(id: DeploymentId) -> i64 {
        // Constructed only from a positive i64.
        i64::try_from(id.0).unwrap_or(i64::MAX)
    }
}

impl std::fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl JsonSchema for DeploymentId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DeploymentId".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "integer", "format": "int64", "minimum": 1})
    }
}

/// The GitLab deployment as GitLab last returned it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRecord {
    pub id: DeploymentId,
    pub iid: i64,
    pub sha: String,
    #[serde(rename = "ref")]
    pub ref_name: String,
    #[serde(default)]
    pub tag: bool,
    pub status: GitlabStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Time>,
    /// The workload revision (pod-template hash, update revision) last seen while this
    /// deployment's sha was the wanted one. When `spec.sha` changes while the workload still
    /// shows this revision, the new sha has not started rolling out: its success must not be
    /// concluded from the old pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_revision: Option<String>,
    /// Set when the approval gate (`spec.approval.gate`) created this deployment to be
    /// approved before its rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateRecord>,
}

/// What the approval gate remembers about a deployment it holds.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GateRecord {
    /// The workload revision the workload was settled on when the deployment was created: a
    /// rollout that ends on it is not this revision's (absent when the workload did not exist
    /// yet, or was already rolling this revision out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_revision: Option<String>,
    /// When GitLab's approval (or "none required") was first seen: the rollout the gate let
    /// through is expected from then on (`spec.rolloutStartGrace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<Time>,
    /// With `spec.approval.promote`: the indefinite pause of the Argo Rollout the operator
    /// promoted for this revision. Written before the promote is sent, so a crash re-sends it
    /// only for this same pause, and a later pause of the revision is left to people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted: Option<PromotedPause>,
    /// With `spec.approval.promote`: when the operator aborted the Argo Rollout of this
    /// rejected revision. Once: a person who retries the Rollout afterwards is not overruled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted_at: Option<Time>,
}

/// An Argo Rollout pause the operator promoted.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PromotedPause {
    /// The Rollout's `status.currentPodHash` at the pause.
    pub pod_hash: String,
    /// The canary step index (`status.currentStepIndex`); absent for a blue-green pause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    pub at: Time,
}

impl DeploymentRecord {
    /// The GitLab identity of this deployment.
    pub fn revision(&self) -> DeployRevision {
        DeployRevision {
            sha: self.sha.clone(),
            ref_name: self.ref_name.clone(),
            tag: self.tag,
        }
    }
}

/// A create the operator decided on but has not yet seen succeed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentIntent {
    pub revision: DeployRevision,
    /// Set when the approval gate makes this create (carried to the recorded deployment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateRecord>,
    pub environment: String,
    /// Status the deployment is created with.
    pub status: GitlabStatus,
    /// When the intent was written; the lookup window starts here.
    pub claimed_at: Time,
}

/// A create GitLab refused as a user error (4xx): what was asked, for which generation, what
/// GitLab said, and through which connection. The same request would be refused again, so it
/// is not repeated until one of these changes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RefusedCreate {
    pub revision: DeployRevision,
    /// `metadata.generation` the create was sent for.
    pub generation: i64,
    /// The error category (`Validation`, `NotFound`, `NotAllowed`, ...): the Stalled reason.
    pub reason: String,
    /// The Stalled message.
    pub message: String,
    /// The connection and token Secret versions the request went out with.
    pub connection: String,
}

impl RefusedCreate {
    /// Whether creating `revision` for `generation` is the request GitLab already refused.
    pub fn refuses(&self, revision: &DeployRevision, generation: i64) -> bool {
        self.generation == generation && self.revision == *revision
    }
}

/// The last evaluation of the target's rollout.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRecord {
    /// `Pending`, `Progressing`, `Succeeded`, `Failed` or `Unknown`.
    pub state: String,
    pub reason: String,
    #[serde(default)]
    pub message: String,
    /// Workload revision id (pod-template-hash, ControllerRevision, source revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Start of the `progressTimeout` clock for the revision being rolled out (persisted so a
    /// restart does not reset it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// Start of the current pause, if paused (the clock stops while paused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_since: Option<Time>,
    /// Whole seconds spent paused before `pausedSince`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub paused_seconds: i64,
    /// The workload's own revision (pod-template hash, revision number) this record is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_revision: Option<String>,
    /// When this workload revision was first seen finished (succeeded or failed). Tells a
    /// rollout that finished just before `spec.sha` changed (it carries the new sha) from an
    /// older one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// While a changed `spec.sha` waits for a rollout to carry it: since when (the
    /// `rolloutStartGrace` clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<Time>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ApprovalState {
    #[default]
    NotRequired,
    Pending,
    Approved,
    Rejected,
}

/// GitLab's approval state of the current deployment (protected environments, EE).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalStatus {
    pub state: ApprovalState,
    /// The GitLab deployment this approval state belongs to: an approval of one revision
    /// never passes for the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<DeploymentId>,
    /// That deployment's commit sha.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    /// Approvals required in total (sum over rules).
    #[serde(default)]
    pub required: i64,
    /// GitLab's `pending_approval_count`.
    #[serde(default)]
    pub pending: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<ApprovalRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<ApprovalRuleRecord>,
    /// When approvals were first seen pending (start of the polling backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_since: Option<Time>,
    /// When GitLab was last asked (polling backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Time>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRecord {
    pub user: String,
    /// `approved` or `rejected`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRuleRecord {
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub required: i64,
    pub approved: i64,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MergeRequestRecord {
    pub iid: i64,
    pub title: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_at: Option<Time>,
}

/// One earlier GitLab deployment of this resource.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub deployment_id: DeploymentId,
    pub sha: String,
    #[serde(rename = "ref")]
    pub ref_name: String,
    /// Last status GitLab reported for it.
    pub status: GitlabStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
}
