//! Every public name of the operator, in one place. No other module repeats these strings:
//! they are the operator's public interface (kubectl output, RBAC, dashboards, alerts).

/// API group of all three custom resources.
pub const API_GROUP: &str = "gitlab-operator.io";
/// API version of all three custom resources.
pub const API_VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_GROUP_VERSION: &str = "gitlab-operator.io/v1alpha1";

/// Kind names.
pub const KIND_GITLAB_DEPLOYMENT: &str = "GitlabDeployment";
pub const KIND_GITLAB_CONNECTION: &str = "GitlabConnection";
pub const KIND_CLUSTER_GITLAB_CONNECTION: &str = "ClusterGitlabConnection";

/// Finalizer that guarantees a GitLab deployment is canceled/orphaned/deleted per
/// `deletionPolicy` before the resource disappears.
pub const FINALIZER: &str = "gitlab-operator.io/deployment";
/// Server-side apply field manager for everything the operator writes.
pub const FIELD_MANAGER: &str = "gitlab-deployment-operator";
/// `reportingController` of the Events the operator emits.
pub const EVENT_REPORTER: &str = "gitlab-deployment-operator";
/// Prefix of every label and annotation the operator reads or writes.
pub const PREFIX: &str = "gitlab-operator.io/";
/// Annotation a person sets (any new value) to make the operator re-read GitLab now.
pub const REFRESH_ANNOTATION: &str = "gitlab-operator.io/refresh";
/// Annotation of the leader Lease: where the leader's webhook receiver listens, so a standby
/// that GitLab's hook reaches passes it on (`host:port`).
pub const WEBHOOK_RECEIVER_ANNOTATION: &str = "gitlab-operator.io/webhook-receiver";
/// Label a token Secret must carry, with [`TOKEN_LABEL_VALUE`], for the operator to use it when
/// run with `--require-token-label` (Argo CD's way: only Secrets labelled as credentials are
/// sent anywhere).
pub const TOKEN_LABEL: &str = "gitlab-operator.io/token";
pub const TOKEN_LABEL_VALUE: &str = "true";
/// Name of the connection used when `spec.connectionRef` is absent.
pub const DEFAULT_CONNECTION_NAME: &str = "default";

/// Condition types (kstatus / Flux conventions: `Ready` is normal-true, the other two are
/// abnormal-true and only present while true).
pub mod condition_type {
    pub const READY: &str = "Ready";
    pub const RECONCILING: &str = "Reconciling";
    pub const STALLED: &str = "Stalled";
    /// Normal-true: GitLab approved the deployment of the wanted revision (reason `Approved`)
    /// or its environment needs no approval (`NotRequired`); `False` while approvals are
    /// pending (`ApprovalPending`) or after a rejection (`ApprovalRejected`).
    pub const APPROVED: &str = "Approved";
}

/// Condition and Event reasons, CamelCase, stable: dashboards and alerts match on them.
pub mod reason {
    pub const DEPLOYMENT_CREATED: &str = "DeploymentCreated";
    pub const DEPLOYMENT_PENDING: &str = "DeploymentPending";
    pub const ROLLOUT_PENDING: &str = "RolloutPending";
    pub const ROLLOUT_PROGRESSING: &str = "RolloutProgressing";
    pub const ROLLOUT_COMPLETE: &str = "RolloutComplete";
    pub const ROLLOUT_FAILED: &str = "RolloutFailed";
    pub const ROLLOUT_UNKNOWN: &str = "RolloutUnknown";
    pub const APPROVAL_PENDING: &str = "ApprovalPending";
    pub const APPROVAL_REJECTED: &str = "ApprovalRejected";
    pub const SUPERSEDED: &str = "Superseded";
    pub const REVISION_UNKNOWN: &str = "RevisionUnknown";
    pub const TOKEN_SECRET_MISSING: &str = "TokenSecretMissing";
    pub const CONNECTION_MISSING: &str = "ConnectionMissing";
    pub const CONNECTION_INVALID: &str = "ConnectionInvalid";
    pub const TARGET_KIND_NOT_SERVED: &str = "TargetKindNotServed";
    pub const DEPLOYMENT_SUCCEEDED: &str = "DeploymentSucceeded";
    pub const DEPLOYMENT_FAILED: &str = "DeploymentFailed";
    pub const DEPLOYMENT_CANCELED: &str = "DeploymentCanceled";
    pub const DEPLOYMENT_ADOPTED: &str = "DeploymentAdopted";
    /// A changed `spec.sha` was reported on a rollout the operator had to choose (see
    /// `spec.rolloutStartGrace`).
    pub const REVISION_ATTRIBUTED: &str = "RevisionAttributed";
    /// `spec.environmentSettings` were set on the GitLab environment.
    pub const ENVIRONMENT_UPDATED: &str = "EnvironmentUpdated";
    /// GitLab refused `spec.environmentSettings` (or an older GitLab dropped them).
    pub const ENVIRONMENT_SETTINGS_REJECTED: &str = "EnvironmentSettingsRejected";
    pub const DEPLOYMENT_DELETED: &str = "DeploymentDeleted";
    /// `spec.approval.promote`: the operator promoted the Argo Rollout GitLab approved.
    pub const ROLLOUT_PROMOTED: &str = "RolloutPromoted";
    /// `spec.approval.promote`: the operator aborted the Argo Rollout GitLab rejected.
    pub const ROLLOUT_ABORTED: &str = "RolloutAborted";
    /// The API server refused the operator's promote or abort of the target (RBAC).
    pub const TARGET_WRITE_FORBIDDEN: &str = "TargetWriteForbidden";
    pub const APPROVED: &str = "Approved";
    /// `Approved=True`: the environment asks for no approval.
    pub const NOT_REQUIRED: &str = "NotRequired";
    pub const CLEANUP_SKIPPED: &str = "CleanupSkipped";
    pub const HOST_NOT_ALLOWED: &str = "HostNotAllowed";
    pub const TARGET_NOT_FOUND: &str = "TargetNotFound";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const GITLAB_ERROR: &str = "GitLabError";
}
