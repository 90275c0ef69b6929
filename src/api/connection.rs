//! `GitlabConnection` (namespaced) and `ClusterGitlabConnection` (cluster-scoped): where GitLab
//! is and how to authenticate. The operator additionally checks `url` against its host
//! allow-list, so a namespace cannot point it anywhere.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::deployment::DURATION_PATTERN;

/// Settings shared by both connection kinds.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSettings {
    /// Base URL of the GitLab instance, e.g. `https://gitlab.example.com` (no `/api/v4`).
    #[schemars(regex(pattern = r"^https?://[^\s/]+(/[^\s]*)?$"))]
    #[schemars(length(min = 8, max = 2048))]
    pub url: String,
    /// Secret key holding the token.
    pub token_secret_ref: SecretKeyRef,
    /// How the token is sent: `private` (PRIVATE-TOKEN), `oauth` (Authorization: Bearer) or
    /// `job` (JOB-TOKEN).
    #[serde(default)]
    pub token_type: TokenType,
    /// Extra CA certificates (PEM) to trust for `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<CaBundleRef>,
    /// Per-request timeout (Go duration, default `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,
    /// Client-side rate limit for all requests over this connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

/// A key of a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key in the Secret's data (default `token`).
    #[serde(default = "default_token_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_token_key() -> String {
    "token".to_owned()
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    #[default]
    Private,
    Oauth,
    Job,
}

/// A CA bundle is referenced, not inlined: bundles are usually distributed as ConfigMaps
/// (trust-manager, OpenShift's injected CA) and rotate on their own schedule; an inline PEM
/// would bloat every watch event of the connection and need an edit on each rotation.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("has(self.configMapRef) != has(self.secretRef)").message(
    "set exactly one of caBundle.configMapRef and caBundle.secretRef"
))]
#[serde(rename_all = "camelCase")]
pub struct CaBundleRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<KeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<KeyRef>,
}

/// A key of a ConfigMap or Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct KeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    #[schemars(range(min = 1, max = 10000))]
    pub requests_per_second: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub burst: Option<u32>,
}

/// A GitLab connection usable by GitlabDeployments of its own namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gitlab-operator.io",
    version = "v1alpha1",
    kind = "GitlabConnection",
    namespaced,
    derive = "PartialEq",
    category = "gitlab",
    cel,
    doc = "A GitLab instance and token for GitlabDeployments in the same namespace.",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct GitlabConnectionSpec {
    #[serde(flatten)]
    pub settings: ConnectionSettings,
}

/// A GitLab connection shared by several namespaces.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gitlab-operator.io",
    version = "v1alpha1",
    kind = "ClusterGitlabConnection",
    derive = "PartialEq",
    category = "gitlab",
    cel,
    doc = "A GitLab instance and token shared by GitlabDeployments of the namespaces it names.",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("has(self.namespaces) || has(self.namespaceSelector)").message(
    "set namespaces or namespaceSelector: a ClusterGitlabConnection serves only the namespaces it names"
))]
#[serde(rename_all = "camelCase")]
pub struct ClusterGitlabConnectionSpec {
    #[serde(flatten)]
    pub settings: ConnectionSettings,
    /// Namespace of the token Secret (and of a CA bundle reference).
    #[schemars(length(min = 1, max = 63))]
    pub secret_namespace: String,
    /// Namespaces allowed to use this connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// Namespaces, by label, allowed to use this connection (in addition to `namespaces`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}
