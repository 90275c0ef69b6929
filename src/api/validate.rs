//! Second validation layer, in Rust (Stackable's `validate.rs` style): the CRD's OpenAPI and
//! CEL rules are not guaranteed to have run (an old CRD, a `kubectl replace --validate=false`,
//! a dry-run client), so the planner accepts only a [`ValidatedSpec`]. A failure becomes
//! `Stalled=True` with the error's message, never a panic or a hot loop.

use std::sync::LazyLock;
use std::time::Duration;

use kube::ResourceExt;
use regex::Regex;

use super::deployment::{
    ApprovalPolicy, ConnectionKind, ConnectionRef, DURATION_PATTERN, DeletionPolicy,
    DeployRevision, ENVIRONMENT_PATTERN, EnvironmentSettings, GitlabDeployment, PROJECT_PATTERN,
    RevisionFrom, SHA_PATTERN, TargetRef,
};
use super::names::{DEFAULT_CONNECTION_NAME, reason};

/// Default `progressTimeout`: the Deployment controller's default progress deadline.
pub const DEFAULT_PROGRESS_TIMEOUT: Duration = Duration::from_secs(600);
/// Default `rolloutStartGrace`: long enough for a CI job or a GitOps sync to apply the
/// workload after the resource (seconds apart), short enough that a sha whose workload never
/// changes is still reported soon.
pub const DEFAULT_ROLLOUT_START_GRACE: Duration = Duration::from_secs(60);
/// GitLab's environment name limit.
pub const ENVIRONMENT_MAX_LEN: usize = 255;

// The patterns are compile-time constants shared with the CRD schema; a failure to compile
// them is a programming error caught by the validation tests, never a runtime input.
#[allow(clippy::expect_used)]
mod patterns {
    use super::*;
    pub(super) static SHA_RE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(SHA_PATTERN).expect("SHA_PATTERN is a valid regex"));
    pub(super) static ENV_RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(ENVIRONMENT_PATTERN).expect("ENVIRONMENT_PATTERN is a valid regex")
    });
    pub(super) static PROJECT_RE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(PROJECT_PATTERN).expect("PROJECT_PATTERN is a valid regex"));
    pub(super) static DURATION_RE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(DURATION_PATTERN).expect("DURATION_PATTERN is a valid regex"));
}
use patterns::{DURATION_RE, ENV_RE, PROJECT_RE, SHA_RE};

/// A GitLab project reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProjectRef {
    Id(u64),
    /// Full path, e.g. `group/sub/project` (URL-encode it for `:id`).
    Path(String),
}

impl ProjectRef {
    /// The `:id` path segment as GitLab expects it (numeric, or the full path URL-encoded).
    pub fn as_url_segment(&self) -> String {
        match self {
            ProjectRef::Id(id) => id.to_string(),
            ProjectRef::Path(path) => path.replace('/', "%2F"),
        }
    }
}

/// The connection to use, defaults resolved.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionTarget {
    pub kind: ConnectionKind,
    pub name: String,
}

impl ConnectionTarget {
    /// The connection a resource uses: the one `spec.connectionRef` names, else `default` (the
    /// operator's `--default-connection`). The one place this rule is decided; the validation,
    /// the reference index, the webhook receiver and `kubectl gld` all ask here.
    pub fn of(connection_ref: Option<&ConnectionRef>, default: &ConnectionTarget) -> Self {
        match connection_ref {
            Some(r) => ConnectionTarget {
                kind: r.kind,
                name: r.name.clone(),
            },
            None => default.clone(),
        }
    }
}

/// `GitlabConnection/default`, the operator's default `--default-connection`.
impl Default for ConnectionTarget {
    fn default() -> Self {
        ConnectionTarget {
            kind: ConnectionKind::GitlabConnection,
            name: DEFAULT_CONNECTION_NAME.to_owned(),
        }
    }
}

/// Where the reported commit comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevisionSource {
    /// `spec.sha`: one fixed revision.
    Fixed(DeployRevision),
    /// `spec.revisionFrom`: the commit is read from the target at each rollout.
    FromTarget {
        from: RevisionFrom,
        default_ref: String,
        tag: bool,
    },
}

/// A spec that passed every rule: the only input [`crate::controller::plan::plan`] accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedSpec {
    pub namespace: String,
    pub name: String,
    /// `metadata.generation` this validation is for.
    pub generation: i64,
    pub connection: ConnectionTarget,
    pub project: ProjectRef,
    pub environment: String,
    pub revision: RevisionSource,
    pub target: TargetRef,
    pub progress_timeout: Duration,
    /// `spec.rolloutStartGrace` (fixed sha only; see the field's docs).
    pub rollout_start_grace: Duration,
    /// `spec.environmentSettings` with its defaults resolved.
    pub environment_settings: Option<EnvironmentSettings>,
    /// `spec.approval`, absent read as all off.
    pub approval: ApprovalPolicy,
    pub deletion_policy: DeletionPolicy,
}

impl ValidatedSpec {
    /// The GitLab revision to report, given the commit sha read from the target (ignored for a
    /// fixed `spec.sha`) and an optional ref read from the target. `None` when the target does
    /// not carry a usable commit yet.
    pub fn wanted_revision(
        &self,
        target_sha: Option<&str>,
        target_ref: Option<&str>,
    ) -> Option<DeployRevision> {
        match &self.revision {
            RevisionSource::Fixed(rev) => Some(rev.clone()),
            RevisionSource::FromTarget {
                default_ref, tag, ..
            } => target_sha.map(|sha| DeployRevision {
                sha: sha.to_owned(),
                ref_name: target_ref.unwrap_or(default_ref).to_owned(),
                tag: *tag,
            }),
        }
    }

    /// `revisionFrom`, when the commit is read from the target.
    pub fn revision_from(&self) -> Option<&RevisionFrom> {
        match &self.revision {
            RevisionSource::Fixed(_) => None,
            RevisionSource::FromTarget { from, .. } => Some(from),
        }
    }
}

/// Why a spec was refused. Each message names the field, what was found and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(
        "metadata.{field} is missing; the API server always sets it, so this object did not come from one"
    )]
    Metadata { field: &'static str },
    #[error(
        "spec.project {found:?} is neither a numeric project id nor a full path like group/project; use the id or the path shown in GitLab's project settings"
    )]
    Project { found: String },
    #[error("spec.environment is empty; set the GitLab environment name, e.g. production")]
    EnvironmentEmpty,
    #[error("spec.environment is {len} characters long; GitLab allows at most 255")]
    EnvironmentTooLong { len: usize },
    #[error(
        "spec.environment {found:?} is not a valid GitLab environment name: use only letters, digits, spaces and - _ / $ {{ }} ., and do not start or end with /"
    )]
    EnvironmentChars { found: String },
    #[error("spec.ref is empty; set the branch or tag being deployed, e.g. main")]
    RefEmpty,
    #[error(
        "spec.sha {found:?} is not a full commit sha; write all 40 lowercase hex characters (git rev-parse HEAD)"
    )]
    Sha { found: String },
    #[error(
        "spec.sha and spec.revisionFrom are both set; keep sha for a fixed commit, or revisionFrom to follow the target"
    )]
    ShaAndRevisionFrom,
    #[error(
        "neither spec.sha nor spec.revisionFrom is set; set sha to a commit, or revisionFrom to read it from the target"
    )]
    NoRevision,
    #[error("spec.revisionFrom must set exactly one of annotation and container (found {found})")]
    RevisionFrom { found: &'static str },
    #[error("spec.target.{field} is empty; name the workload to follow (apiVersion, kind, name)")]
    Target { field: &'static str },
    #[error("spec.progressTimeout {found:?} is not a duration; write it like 10m, 90s or 1h30m")]
    ProgressTimeout { found: String },
    #[error("spec.rolloutStartGrace {found:?} is not a duration; write it like 1m, 30s or 2m30s")]
    RolloutStartGrace { found: String },
    #[error(
        "spec.approval.promote needs spec.approval.gate: true and an Argo Rollouts Rollout target (apiVersion argoproj.io/v1alpha1, kind Rollout)"
    )]
    ApprovalPromote,
    #[error(
        "spec.connectionRef.name is empty; name a GitlabConnection or ClusterGitlabConnection, or drop connectionRef to use the default"
    )]
    ConnectionName,
}

impl SpecError {
    /// Stable category (Event reason, metric label).
    pub fn category(&self) -> &'static str {
        reason::INVALID_SPEC
    }
}

/// Check every rule of the CRD again and resolve defaults; a resource without
/// `spec.connectionRef` uses `default_connection`.
pub fn validate(
    gd: &GitlabDeployment,
    default_connection: &ConnectionTarget,
) -> Result<ValidatedSpec, SpecError> {
    let spec = &gd.spec;
    let namespace = gd
        .namespace()
        .ok_or(SpecError::Metadata { field: "namespace" })?;
    let name = gd
        .metadata
        .name
        .clone()
        .ok_or(SpecError::Metadata { field: "name" })?;
    // A missing generation only happens for objects not read from the API server (tests,
    // dry runs); treat it as the first generation.
    let generation = gd.metadata.generation.unwrap_or(1);

    let project = parse_project(&spec.project)?;
    validate_environment(&spec.environment)?;
    if spec.ref_name.trim().is_empty() {
        return Err(SpecError::RefEmpty);
    }
    let revision = match (&spec.sha, &spec.revision_from) {
        (Some(_), Some(_)) => return Err(SpecError::ShaAndRevisionFrom),
        (None, None) => return Err(SpecError::NoRevision),
        (Some(sha), None) => {
            if !SHA_RE.is_match(sha) {
                return Err(SpecError::Sha { found: sha.clone() });
            }
            RevisionSource::Fixed(DeployRevision {
                sha: sha.clone(),
                ref_name: spec.ref_name.clone(),
                tag: spec.tag,
            })
        }
        (None, Some(from)) => {
            let has_annotation = from.annotation.as_deref().is_some_and(|a| !a.is_empty());
            let has_container = from.container.as_deref().is_some_and(|c| !c.is_empty());
            match (has_annotation, has_container) {
                (true, true) => return Err(SpecError::RevisionFrom { found: "both" }),
                (false, false) => return Err(SpecError::RevisionFrom { found: "neither" }),
                _ => {}
            }
            RevisionSource::FromTarget {
                from: from.clone(),
                default_ref: spec.ref_name.clone(),
                tag: spec.tag,
            }
        }
    };
    for (field, value) in [
        ("apiVersion", &spec.target.api_version),
        ("kind", &spec.target.kind),
        ("name", &spec.target.name),
    ] {
        if value.trim().is_empty() {
            return Err(SpecError::Target { field });
        }
    }
    let progress_timeout = match &spec.progress_timeout {
        None => DEFAULT_PROGRESS_TIMEOUT,
        Some(text) => parse_duration(text).ok_or_else(|| SpecError::ProgressTimeout {
            found: text.clone(),
        })?,
    };
    let rollout_start_grace = match &spec.rollout_start_grace {
        None => DEFAULT_ROLLOUT_START_GRACE,
        Some(text) => parse_duration(text).ok_or_else(|| SpecError::RolloutStartGrace {
            found: text.clone(),
        })?,
    };
    if spec
        .connection_ref
        .as_ref()
        .is_some_and(|r| r.name.trim().is_empty())
    {
        return Err(SpecError::ConnectionName);
    }
    let connection = ConnectionTarget::of(spec.connection_ref.as_ref(), default_connection);
    let approval = spec.approval.clone().unwrap_or_default();
    let rollout_target =
        spec.target.kind == "Rollout" && spec.target.api_version.starts_with("argoproj.io/");
    if approval.promote && !(approval.gate && rollout_target) {
        return Err(SpecError::ApprovalPromote);
    }
    let environment_settings = spec
        .environment_settings
        .as_ref()
        .map(|settings| resolve_environment_settings(settings, &namespace, &spec.target));
    Ok(ValidatedSpec {
        namespace,
        name,
        generation,
        connection,
        project,
        environment: spec.environment.clone(),
        revision,
        target: spec.target.clone(),
        progress_timeout,
        rollout_start_grace,
        environment_settings,
        approval,
        deletion_policy: spec.deletion_policy,
    })
}

/// Fill the defaults of `spec.environmentSettings`: with an agent, the dashboard shows this
/// namespace, and a Flux target is the resource whose sync badge it shows.
pub fn resolve_environment_settings(
    settings: &EnvironmentSettings,
    namespace: &str,
    target: &TargetRef,
) -> EnvironmentSettings {
    let mut resolved = settings.clone();
    if resolved.cluster_agent.is_some() {
        if resolved.kubernetes_namespace.is_none() {
            resolved.kubernetes_namespace = Some(namespace.to_owned());
        }
        if resolved.flux_resource_path.is_none() {
            resolved.flux_resource_path = flux_resource_path(namespace, target);
        }
    }
    resolved
}

/// GitLab's path of a Flux Kustomization or HelmRelease (`GROUP/VERSION/namespaces/NS/PLURAL/NAME`).
fn flux_resource_path(namespace: &str, target: &TargetRef) -> Option<String> {
    let (group, version) = target.api_version.split_once('/')?;
    let plural = match (group, target.kind.as_str()) {
        ("kustomize.toolkit.fluxcd.io", "Kustomization") => "kustomizations",
        ("helm.toolkit.fluxcd.io", "HelmRelease") => "helmreleases",
        _ => return None,
    };
    Some(format!(
        "{group}/{version}/namespaces/{namespace}/{plural}/{}",
        target.name
    ))
}

/// How `spec.environmentSettings.clusterAgent` names the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentRef {
    Id(u64),
    /// By name, in `project` (the deployment's project when `None`).
    Name {
        project: Option<String>,
        name: String,
    },
}

impl AgentRef {
    pub fn parse(text: &str) -> AgentRef {
        if let Ok(id) = text.parse::<u64>() {
            return AgentRef::Id(id);
        }
        match text.rsplit_once(':') {
            Some((project, name)) => AgentRef::Name {
                project: Some(project.to_owned()),
                name: name.to_owned(),
            },
            None => AgentRef::Name {
                project: None,
                name: text.to_owned(),
            },
        }
    }
}

fn parse_project(text: &str) -> Result<ProjectRef, SpecError> {
    if !PROJECT_RE.is_match(text) {
        return Err(SpecError::Project {
            found: text.to_owned(),
        });
    }
    match text.parse::<u64>() {
        Ok(id) => Ok(ProjectRef::Id(id)),
        Err(_) => Ok(ProjectRef::Path(text.to_owned())),
    }
}

fn validate_environment(env: &str) -> Result<(), SpecError> {
    if env.is_empty() {
        return Err(SpecError::EnvironmentEmpty);
    }
    let len = env.chars().count();
    if len > ENVIRONMENT_MAX_LEN {
        return Err(SpecError::EnvironmentTooLong { len });
    }
    if !ENV_RE.is_match(env) {
        return Err(SpecError::EnvironmentChars {
            found: env.to_owned(),
        });
    }
    Ok(())
}

/// Parse a Go duration (`10m`, `1h30m`, `1.5s`) as Kubernetes writes them. Negative or
/// malformed durations are refused.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if !DURATION_RE.is_match(text) {
        return None;
    }
    let parsed: kube::core::Duration = text.parse().ok()?;
    if parsed.is_negative() {
        return None;
    }
    Some(parsed.into())
}
