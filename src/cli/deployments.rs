//! `deployments`: GitLab's Deployments API from a shell. (Filled in by the GitLab-client work.)

#[derive(Debug, clap::Args)]
pub struct DeploymentsArgs {}

#[derive(Debug, thiserror::Error)]
pub enum DeploymentsError {
    #[error("the deployments subcommand is not built yet")]
    NotBuilt,
}

impl DeploymentsError {
    pub fn exit_code(&self) -> u8 {
        1
    }
}

pub async fn run(_args: DeploymentsArgs) -> Result<(), DeploymentsError> {
    Err(DeploymentsError::NotBuilt)
}
