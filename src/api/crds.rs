//! The CustomResourceDefinitions as YAML, the single source for the `crd` subcommand and the
//! committed `crds/` files (a test fails when those are stale).

use kube::CustomResourceExt;

use super::{ClusterGitlabConnection, GitlabConnection, GitlabDeployment};

/// Failure to render a CRD (not expected: the CRDs are built from static types).
#[derive(Debug, thiserror::Error)]
#[error("cannot render CustomResourceDefinition {name} as YAML: {source}")]
pub struct RenderError {
    name: String,
    #[source]
    source: serde_yaml::Error,
}

/// All CRDs of the operator, as one multi-document YAML stream (`---` separated), in a fixed
/// order so the output is byte-stable.
pub fn crds_yaml() -> Result<String, RenderError> {
    let crds = [
        GitlabDeployment::crd(),
        GitlabConnection::crd(),
        ClusterGitlabConnection::crd(),
    ];
    let mut out = String::new();
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let yaml = serde_yaml::to_string(&crd).map_err(|source| RenderError { name, source })?;
        out.push_str("---\n");
        out.push_str(&yaml);
    }
    Ok(out)
}

/// Path of the committed file, relative to the repository root.
pub const CRDS_FILE: &str = "crds/crds.yaml";
