//! Typed requests and responses of GitLab's Deployments API (spec §3, §4, §10.2).
//!
//! Responses tolerate unknown fields (GitLab adds fields over time) and keep EE-only or
//! version-dependent fields optional, so one client talks to CE, EE and older servers.
//! Timestamps deserialize from RFC 3339 with `Z` or an offset (`+02:00`) into UTC.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// A project as GitLab's `:id` accepts it: the numeric id or the full path
/// (`group/subgroup/project`), which is percent-encoded when put in a URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProjectId {
    Id(u64),
    Path(String),
}

/// `percent_encoding` set for one URL path segment: everything except RFC 3986 unreserved
/// characters, so `/` becomes `%2F` as GitLab requires (python-gitlab encodes the same way).
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl ProjectId {
    /// Parse user input: all digits → id (GitLab treats numeric-looking strings as ids),
    /// anything else → path. Surrounding slashes and whitespace are trimmed, and an already
    /// encoded path (`group%2Fapp`) is decoded first (GitLab paths cannot contain `%`).
    /// A path with a dot-only part (`.`, `..`, `group/..`) is refused: no GitLab path has one,
    /// and in a URL it would step out of `projects/:id` (`projects/../deployments`).
    pub fn parse(input: &str) -> Result<ProjectId, ProjectIdError> {
        let decoded = percent_encoding::percent_decode_str(input).decode_utf8_lossy();
        let trimmed = decoded.trim().trim_matches('/');
        if trimmed.is_empty() {
            return Err(ProjectIdError::Empty);
        }
        if trimmed.bytes().all(|b| b.is_ascii_digit())
            && let Ok(id) = trimmed.parse::<u64>()
        {
            return Ok(ProjectId::Id(id));
        }
        let path = ProjectId::Path(trimmed.to_owned());
        if path.has_dot_segment() {
            return Err(ProjectIdError::DotSegment {
                found: trimmed.to_owned(),
            });
        }
        Ok(path)
    }

    /// Whether a part of the path is made of dots only (`.`, `..`, `...`), which URL
    /// resolution (and servers that decode `%2F` before routing) would treat as a directory
    /// step. The WHATWG URL rules also read `%2e%2e` as `..`, so encoding cannot save it.
    pub fn has_dot_segment(&self) -> bool {
        match self {
            ProjectId::Id(_) => false,
            ProjectId::Path(path) => path
                .split('/')
                .any(|part| !part.is_empty() && part.bytes().all(|b| b == b'.')),
        }
    }

    /// The URL path segment: `42` or `group%2Fsub%2Fproj`.
    pub fn url_segment(&self) -> String {
        match self {
            ProjectId::Id(id) => id.to_string(),
            ProjectId::Path(path) => {
                percent_encoding::utf8_percent_encode(path, PATH_SEGMENT).to_string()
            }
        }
    }
}

/// Why a `--project` value is not a project id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectIdError {
    #[error("the project is empty; give a numeric id or a full path (group/app)")]
    Empty,
    #[error(
        "project {found:?} has a part made of dots only, which no GitLab project path has; give a numeric id or a full path (group/app)"
    )]
    DotSegment { found: String },
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProjectId::Id(id) => write!(f, "{id}"),
            ProjectId::Path(path) => f.write_str(path),
        }
    }
}

impl From<u64> for ProjectId {
    fn from(id: u64) -> Self {
        ProjectId::Id(id)
    }
}

/// A deployment status as GitLab reports it (all model states, spec §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    Created,
    Running,
    Success,
    Failed,
    Canceled,
    Skipped,
    Blocked,
    /// A status this client does not know (a newer GitLab); kept rather than failing to decode.
    #[serde(other)]
    Unknown,
}

impl DeploymentStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Created => "created",
            DeploymentStatus::Running => "running",
            DeploymentStatus::Success => "success",
            DeploymentStatus::Failed => "failed",
            DeploymentStatus::Canceled => "canceled",
            DeploymentStatus::Skipped => "skipped",
            DeploymentStatus::Blocked => "blocked",
            DeploymentStatus::Unknown => "unknown",
        }
    }
}

impl fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The statuses a client may *set* on create and update (the API accepts only these four).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteStatus {
    Running,
    Success,
    Failed,
    Canceled,
}

impl WriteStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            WriteStatus::Running => "running",
            WriteStatus::Success => "success",
            WriteStatus::Failed => "failed",
            WriteStatus::Canceled => "canceled",
        }
    }

    /// The state-machine event GitLab fires for this target status (spec §5); it appears in
    /// `cannot transition via "<event>"`.
    pub fn event(self) -> &'static str {
        match self {
            WriteStatus::Running => "run",
            WriteStatus::Success => "succeed",
            WriteStatus::Failed => "drop",
            WriteStatus::Canceled => "cancel",
        }
    }
}

impl From<WriteStatus> for DeploymentStatus {
    fn from(s: WriteStatus) -> Self {
        match s {
            WriteStatus::Running => DeploymentStatus::Running,
            WriteStatus::Success => DeploymentStatus::Success,
            WriteStatus::Failed => DeploymentStatus::Failed,
            WriteStatus::Canceled => DeploymentStatus::Canceled,
        }
    }
}

impl fmt::Display for WriteStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `FromStr` and the list of wire values for a string enum, so the CLI can parse and list them.
macro_rules! wire_values {
    ($ty:ident, [$($variant:ident),+ $(,)?]) => {
        impl $ty {
            /// Every value as GitLab spells it.
            pub const VALUES: &'static [&'static str] = &[$($ty::$variant.as_str()),+];
        }

        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                [$($ty::$variant),+]
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!("{s:?} is not one of {}", $ty::VALUES.join(", ")))
            }
        }
    };
}

wire_values!(
    DeploymentStatus,
    [
        Created, Running, Success, Failed, Canceled, Skipped, Blocked
    ]
);
wire_values!(WriteStatus, [Running, Success, Failed, Canceled]);

/// `UserBasic` (spec §4.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserBasic {
    pub id: u64,
    pub username: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub state: Option<String>,
    /// Added around GitLab 15.x; absent on older servers.
    #[serde(default)]
    pub locked: Option<bool>,
    #[serde(default)]
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub web_url: Option<String>,
}

/// The nested `environment` of a deployment (spec §4.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentBasic {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub external_url: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// A deployment: the plain entity of the list route, and the extended entity of get, create and
/// update, whose three EE approval fields are `None` on CE servers (spec §4.1, §4.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Global id, the one used in URLs (not `iid`).
    pub id: u64,
    pub iid: u64,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub sha: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The creator; null if the user was deleted.
    #[serde(default)]
    pub user: Option<UserBasic>,
    pub environment: EnvironmentBasic,
    /// The CI job that created the deployment; `None` for API-created ones. Kept untyped: only
    /// its presence matters to us (GitLab refuses PUT on CI deployments).
    #[serde(default)]
    pub deployable: Option<serde_json::Value>,
    pub status: DeploymentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_approval_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<Vec<DeploymentApproval>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_summary: Option<ApprovalSummary>,
}

/// Approval decision (spec §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Approved,
    Rejected,
}

impl ApprovalStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
        }
    }
}

impl fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

wire_values!(ApprovalStatus, [Approved, Rejected]);

/// One approval or rejection of a deployment (spec §4.3); also the approval route's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentApproval {
    pub user: UserBasic,
    pub status: ApprovalStatus,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// `approval_summary` (EE).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApprovalSummary {
    #[serde(default)]
    pub rules: Vec<ApprovalRule>,
}

/// `ApprovalRuleForSummary` (spec §4.2). Exactly one of user, group or access level is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRule {
    /// Absent on older servers.
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub user_id: Option<u64>,
    #[serde(default)]
    pub group_id: Option<u64>,
    #[serde(default)]
    pub access_level: Option<u32>,
    #[serde(default)]
    pub access_level_description: Option<String>,
    pub required_approvals: u32,
    #[serde(default)]
    pub group_inheritance_type: Option<u32>,
    #[serde(default)]
    pub deployment_approvals: Vec<DeploymentApproval>,
}

/// `MergeRequestBasic` core fields (spec §10.2); the many optional fields are not modelled
/// beyond what a deployment report needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeRequest {
    pub id: u64,
    pub iid: u64,
    pub project_id: u64,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    pub state: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub merged_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub closed_at: Option<DateTime<Utc>>,
    pub target_branch: String,
    pub source_branch: String,
    #[serde(default)]
    pub source_project_id: Option<u64>,
    #[serde(default)]
    pub target_project_id: Option<u64>,
    #[serde(default)]
    pub author: Option<UserBasic>,
    #[serde(default)]
    pub sha: Option<String>,
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
    #[serde(default)]
    pub squash_commit_sha: Option<String>,
    #[serde(default)]
    pub web_url: Option<String>,
    #[serde(default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub references: Option<MergeRequestReferences>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_by: Option<UserBasic>,
}

/// `references` of a merge request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeRequestReferences {
    #[serde(default)]
    pub short: Option<String>,
    #[serde(default)]
    pub relative: Option<String>,
    #[serde(default)]
    pub full: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// `order_by` of the list route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentOrderBy {
    Id,
    Iid,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
    /// Accepted only by servers older than GitLab 16.3.
    Ref,
}

impl DeploymentOrderBy {
    pub const fn as_str(self) -> &'static str {
        match self {
            DeploymentOrderBy::Id => "id",
            DeploymentOrderBy::Iid => "iid",
            DeploymentOrderBy::CreatedAt => "created_at",
            DeploymentOrderBy::UpdatedAt => "updated_at",
            DeploymentOrderBy::FinishedAt => "finished_at",
            DeploymentOrderBy::Ref => "ref",
        }
    }
}

wire_values!(
    DeploymentOrderBy,
    [Id, Iid, CreatedAt, UpdatedAt, FinishedAt, Ref]
);

/// Sort direction (`asc` is the default of the deployments list, `desc` of the MR list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    Asc,
    Desc,
}

impl SortOrder {
    pub const fn as_str(self) -> &'static str {
        match self {
            SortOrder::Asc => "asc",
            SortOrder::Desc => "desc",
        }
    }
}

wire_values!(SortOrder, [Asc, Desc]);

/// Filters and ordering of `GET /projects/:id/deployments` (spec §3.1). Unset fields are not
/// sent, so GitLab's defaults apply. Note GitLab's finder rules: `updated_*` filters need
/// `order_by=updated_at`, `finished_*` filters need `order_by=finished_at` and `status=success`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListDeployments {
    pub order_by: Option<DeploymentOrderBy>,
    pub sort: Option<SortOrder>,
    pub updated_after: Option<DateTime<Utc>>,
    pub updated_before: Option<DateTime<Utc>>,
    pub finished_after: Option<DateTime<Utc>>,
    pub finished_before: Option<DateTime<Utc>>,
    /// Environment *name*; an unknown name gives an empty list.
    pub environment: Option<String>,
    pub status: Option<DeploymentStatus>,
    /// Page size, 1..=100 (GitLab clamps larger values to 100); `None` → GitLab's 20.
    pub per_page: Option<u32>,
}

/// Format a timestamp the way GitLab renders them (UTC, milliseconds, `Z`).
pub(crate) fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl ListDeployments {
    /// Query pairs in GitLab's declaration order (pagination is added by the paginator).
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(v) = self.order_by {
            q.push(("order_by", v.as_str().to_owned()));
        }
        if let Some(v) = self.sort {
            q.push(("sort", v.as_str().to_owned()));
        }
        for (key, value) in [
            ("updated_after", &self.updated_after),
            ("updated_before", &self.updated_before),
            ("finished_after", &self.finished_after),
            ("finished_before", &self.finished_before),
        ] {
            if let Some(t) = value {
                q.push((key, format_time(t)));
            }
        }
        if let Some(v) = &self.environment {
            q.push(("environment", v.clone()));
        }
        if let Some(v) = self.status {
            q.push(("status", v.as_str().to_owned()));
        }
        q
    }
}

/// `state` filter of the merge-request list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeRequestState {
    Opened,
    Closed,
    Locked,
    Merged,
    All,
}

impl MergeRequestState {
    pub const fn as_str(self) -> &'static str {
        match self {
            MergeRequestState::Opened => "opened",
            MergeRequestState::Closed => "closed",
            MergeRequestState::Locked => "locked",
            MergeRequestState::Merged => "merged",
            MergeRequestState::All => "all",
        }
    }
}

wire_values!(MergeRequestState, [Opened, Closed, Locked, Merged, All]);

/// `order_by` of the merge-request list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeRequestOrderBy {
    CreatedAt,
    UpdatedAt,
    MergedAt,
    Title,
    LabelPriority,
    MilestoneDue,
    Popularity,
    Priority,
}

impl MergeRequestOrderBy {
    pub const fn as_str(self) -> &'static str {
        match self {
            MergeRequestOrderBy::CreatedAt => "created_at",
            MergeRequestOrderBy::UpdatedAt => "updated_at",
            MergeRequestOrderBy::MergedAt => "merged_at",
            MergeRequestOrderBy::Title => "title",
            MergeRequestOrderBy::LabelPriority => "label_priority",
            MergeRequestOrderBy::MilestoneDue => "milestone_due",
            MergeRequestOrderBy::Popularity => "popularity",
            MergeRequestOrderBy::Priority => "priority",
        }
    }
}

wire_values!(
    MergeRequestOrderBy,
    [
        CreatedAt,
        UpdatedAt,
        MergedAt,
        Title,
        LabelPriority,
        MilestoneDue,
        Popularity,
        Priority
    ]
);

/// Filters of `GET /projects/:id/deployments/:deployment_id/merge_requests` (spec §3.6). The
/// route takes the common merge-request filters; the most useful ones are modelled here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListMergeRequests {
    pub state: Option<MergeRequestState>,
    pub order_by: Option<MergeRequestOrderBy>,
    pub sort: Option<SortOrder>,
    pub milestone: Option<String>,
    /// Comma-joined on the wire.
    pub labels: Vec<String>,
    pub author_id: Option<u64>,
    pub author_username: Option<String>,
    pub assignee_id: Option<u64>,
    pub reviewer_id: Option<u64>,
    pub search: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub updated_after: Option<DateTime<Utc>>,
    pub updated_before: Option<DateTime<Utc>>,
    pub per_page: Option<u32>,
}

impl ListMergeRequests {
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(v) = self.state {
            q.push(("state", v.as_str().to_owned()));
        }
        if let Some(v) = self.order_by {
            q.push(("order_by", v.as_str().to_owned()));
        }
        if let Some(v) = self.sort {
            q.push(("sort", v.as_str().to_owned()));
        }
        if let Some(v) = &self.milestone {
            q.push(("milestone", v.clone()));
        }
        if !self.labels.is_empty() {
            q.push(("labels", self.labels.join(",")));
        }
        if let Some(v) = self.author_id {
            q.push(("author_id", v.to_string()));
        }
        if let Some(v) = &self.author_username {
            q.push(("author_username", v.clone()));
        }
        if let Some(v) = self.assignee_id {
            q.push(("assignee_id", v.to_string()));
        }
        if let Some(v) = self.reviewer_id {
            q.push(("reviewer_id", v.to_string()));
        }
        if let Some(v) = &self.search {
            q.push(("search", v.clone()));
        }
        for (key, value) in [
            ("created_after", &self.created_after),
            ("created_before", &self.created_before),
            ("updated_after", &self.updated_after),
            ("updated_before", &self.updated_before),
        ] {
            if let Some(t) = value {
                q.push((key, format_time(t)));
            }
        }
        q
    }
}

/// Body of `POST /projects/:id/deployments`: all five fields are required by GitLab. Sent as
/// JSON with `tag` as a boolean, like python-gitlab.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateDeployment {
    /// Environment name; GitLab creates the environment if it does not exist.
    pub environment: String,
    /// Must resolve to a commit in the project; stored as sent.
    pub sha: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Whether `ref` is a tag; stored verbatim, not checked by GitLab.
    pub tag: bool,
    pub status: WriteStatus,
}

/// Body of `PUT /projects/:id/deployments/:deployment_id`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct UpdateDeployment {
    pub status: WriteStatus,
}

/// Body of `POST /projects/:id/deployments/:deployment_id/approval` (EE).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApproveDeployment {
    pub status: ApprovalStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Which approval rule to count the decision for (substring of the rule's
    /// `access_level_description`), when the caller matches several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub represented_as: Option<String>,
}

/// One page of a paginated route, with GitLab's pagination headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: Option<u32>,
    pub next_page: Option<u32>,
    pub per_page: Option<u32>,
    /// Omitted by GitLab above 10 000 rows.
    pub total: Option<u64>,
    pub total_pages: Option<u32>,
}

/// GitLab's field → messages map of a 400 validation error.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn project_id_parse_and_encode() {
        let cases = [
            ("42", Some("42")),
            (" 42 ", Some("42")),
            ("group/sub/proj", Some("group%2Fsub%2Fproj")),
            ("/group/proj/", Some("group%2Fproj")),
            ("my.group/my-proj_x", Some("my.group%2Fmy-proj_x")),
            ("a b/c", Some("a%20b%2Fc")),
            ("group%2Fsub%2Fproj", Some("group%2Fsub%2Fproj")),
            ("my..group/a.b...c", Some("my..group%2Fa.b...c")),
            ("", None),
            ("  / ", None),
            (".", None),
            ("..", None),
            ("...", None),
            ("%2E%2e", None),
            ("../x", None),
            ("group/..", None),
            ("group%2F..%2Fother", None),
            ("./app", None),
        ];
        for (input, want) in cases {
            let got = ProjectId::parse(input).ok().map(|p| p.url_segment());
            assert_eq!(got.as_deref(), want, "input {input:?}");
        }
        assert_eq!(ProjectId::parse("7"), Ok(ProjectId::Id(7)));
        assert_eq!(ProjectId::parse(" "), Err(ProjectIdError::Empty));
        assert!(matches!(
            ProjectId::parse(".."),
            Err(ProjectIdError::DotSegment { .. })
        ));
    }

    #[test]
    fn deployment_decodes_ce_ee_offsets_and_unknown_fields() {
        let ce = r#"{"id":42,"iid":2,"ref":"main","sha":"a91957a8",
            "created_at":"2016-08-11T11:32:35.444Z","updated_at":"2016-08-11T13:34:01.123+02:00",
            "user":{"id":1,"username":"root","name":"Administrator","state":"active",
                    "avatar_url":null,"web_url":"https://gitlab.example.com/root","extra":1},
            "environment":{"id":9,"name":"production","slug":"production","external_url":null,
                    "created_at":"2016-08-11T07:30:00.000Z","updated_at":"2016-08-11T11:34:01.200Z",
                    "tier":"production"},
            "deployable":null,"status":"success","brand_new_field":{"x":1}}"#;
        let d: Deployment = serde_json::from_str(ce).unwrap();
        assert_eq!(d.status, DeploymentStatus::Success);
        assert_eq!(d.updated_at.to_rfc3339(), "2016-08-11T11:34:01.123+00:00");
        assert!(d.approvals.is_none() && d.pending_approval_count.is_none());
        assert!(d.user.unwrap().locked.is_none());

        let ee = r#"{"id":43,"iid":3,"ref":"main","sha":"abc","created_at":"2024-05-02T10:15:30.123Z",
            "updated_at":"2024-05-02T10:15:30.123Z","user":null,
            "environment":{"id":9,"name":"production","slug":"production","external_url":null,
                "created_at":"2024-05-02T10:15:30.050Z","updated_at":"2024-05-02T10:15:30.050Z"},
            "deployable":{"id":5,"status":"manual"},"status":"blocked","pending_approval_count":2,
            "approvals":[{"user":{"id":100,"username":"u","name":"U","state":"active","locked":false,
                "avatar_url":null,"web_url":"x"},"status":"approved",
                "created_at":"2022-04-11T03:37:03.058Z","comment":null}],
            "approval_summary":{"rules":[{"id":11,"user_id":null,"group_id":134,"access_level":null,
                "access_level_description":"qa-group","required_approvals":1,
                "group_inheritance_type":0,"deployment_approvals":[]}]}}"#;
        let d: Deployment = serde_json::from_str(ee).unwrap();
        assert_eq!(d.status, DeploymentStatus::Blocked);
        assert_eq!(d.pending_approval_count, Some(2));
        assert_eq!(d.approval_summary.unwrap().rules[0].required_approvals, 1);
        assert!(d.deployable.is_some());
    }

    #[test]
    fn unknown_status_is_kept() {
        let s: DeploymentStatus = serde_json::from_str(r#""waiting""#).unwrap();
        assert_eq!(s, DeploymentStatus::Unknown);
    }

    #[test]
    fn list_query_omits_unset_and_formats_times() {
        let q = ListDeployments {
            order_by: Some(DeploymentOrderBy::UpdatedAt),
            updated_after: Some("2019-03-15T10:00:00+02:00".parse().unwrap()),
            status: Some(DeploymentStatus::Success),
            ..Default::default()
        };
        assert_eq!(
            q.query(),
            vec![
                ("order_by", "updated_at".to_owned()),
                ("updated_after", "2019-03-15T08:00:00.000Z".to_owned()),
                ("status", "success".to_owned()),
            ]
        );
        assert!(ListDeployments::default().query().is_empty());
    }

    #[test]
    fn create_body_matches_python_gitlab() {
        let body = CreateDeployment {
            environment: "production".into(),
            sha: "abc".into(),
            git_ref: "main".into(),
            tag: false,
            status: WriteStatus::Running,
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"environment":"production","sha":"abc","ref":"main","tag":false,"status":"running"}"#
        );
    }
}
