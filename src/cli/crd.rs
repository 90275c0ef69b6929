//! `crd`: print the CustomResourceDefinitions. (Filled in by the operator-core work.)

#[derive(Debug, clap::Args)]
pub struct CrdArgs {}

#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error("the crd subcommand is not built yet")]
    NotBuilt,
}

impl CrdError {
    pub fn exit_code(&self) -> u8 {
        1
    }
}

pub fn run(_args: CrdArgs) -> Result<(), CrdError> {
    Err(CrdError::NotBuilt)
}
