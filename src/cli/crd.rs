//! `crd`: print the CustomResourceDefinitions as one multi-document YAML stream, ready for
//! `gitlab-deployment-operator crd | kubectl apply -f -`. The same text is committed as
//! `crds/crds.yaml`; `tests/crds_fresh.rs` fails when that file is stale.

use std::io::Write;

use crate::api::crds::{RenderError, crds_yaml};

#[derive(Debug, clap::Args)]
pub struct CrdArgs {}

#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("cannot write the CRDs to standard output: {0}")]
    Write(#[from] std::io::Error),
}

impl CrdError {
    /// 1: internal rendering failure; 2: output could not be written (closed pipe, full disk).
    pub fn exit_code(&self) -> u8 {
        match self {
            CrdError::Render(_) => 1,
            CrdError::Write(_) => 2,
        }
    }
}

/// Print all CRDs to standard output.
pub fn run(_args: CrdArgs) -> Result<(), CrdError> {
    let yaml = crds_yaml()?;
    let mut out = std::io::stdout().lock();
    out.write_all(yaml.as_bytes())?;
    out.flush()?;
    Ok(())
}
