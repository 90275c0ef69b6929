//! The command line: one module per subcommand. Each returns `Result<(), CliError>`; only
//! `main` turns an error into an exit code.

use clap::{Parser, Subcommand};

pub mod crd;
pub mod deployments;
pub mod run;
pub mod sandbox;

/// Top-level command line of `gitlab-deployment-operator`.
#[derive(Debug, Parser)]
#[command(name = "gitlab-deployment-operator", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions as YAML (`... crd | kubectl apply -f -`).
    Crd(crd::CrdArgs),
    /// Use GitLab's Deployments API from a shell: list, get, create, update, delete,
    /// merge-requests, approve, and the project hooks that feed the webhook receiver.
    Deployments(Box<deployments::DeploymentsArgs>),
    /// Run the operator: watch GitlabDeployments and report their rollouts to GitLab.
    Run(Box<run::RunArgs>),
    /// Try it on your machine: both emulators, the operator and a live demo in one process.
    Sandbox(Box<sandbox::SandboxArgs>),
}

/// An error from a subcommand, with the exit code `main` should return.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Crd(#[from] crd::CrdError),
    #[error(transparent)]
    Deployments(#[from] deployments::DeploymentsError),
    #[error(transparent)]
    Run(#[from] run::RunCmdError),
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
}

impl CliError {
    /// Exit code per error category, so scripts can tell a bad flag from a GitLab refusal.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Crd(e) => e.exit_code(),
            CliError::Deployments(e) => e.exit_code(),
            CliError::Run(e) => e.exit_code(),
            CliError::Sandbox(e) => e.exit_code(),
        }
    }
}

/// Run the parsed command.
pub async fn dispatch(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Crd(args) => Ok(crd::run(args)?),
        Command::Deployments(args) => Ok(deployments::run(*args).await?),
        Command::Run(args) => Ok(run::run(*args).await?),
        Command::Sandbox(args) => Ok(sandbox::run(*args).await?),
    }
}
