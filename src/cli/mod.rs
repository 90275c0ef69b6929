//! The command line: one module per subcommand. Each returns `Result<(), CliError>`; only
//! `main` turns an error into an exit code.

use clap::{Parser, Subcommand};

pub mod crd;
pub mod deployments;
pub mod kubectl_plugin;
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
    /// The kubectl plugin (`kubectl gld status|approve|reject|refresh|open NAME`): this
    /// binary runs it when called as `kubectl-gld`.
    Gld(Box<kubectl_plugin::GldArgs>),
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
    Gld(#[from] kubectl_plugin::GldError),
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
            CliError::Gld(e) => e.exit_code(),
            CliError::Run(e) => e.exit_code(),
            CliError::Sandbox(e) => e.exit_code(),
        }
    }
}

/// Name kubectl looks for on `PATH` to run `kubectl gld`.
pub const KUBECTL_PLUGIN_NAME: &str = "kubectl-gld";

/// The command line to parse: called as `kubectl-gld` (a link or copy of this binary on
/// `PATH`, as kubectl's plugin discovery runs it), the arguments are those of `gld`.
pub fn argv_for(mut argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let called_as_plugin = argv
        .first()
        .and_then(|a0| std::path::Path::new(a0).file_stem())
        .is_some_and(|stem| stem == KUBECTL_PLUGIN_NAME);
    if called_as_plugin {
        argv.insert(1, "gld".into());
    }
    argv
}

/// Run the parsed command.
pub async fn dispatch(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Crd(args) => Ok(crd::run(args)?),
        Command::Deployments(args) => Ok(deployments::run(*args).await?),
        Command::Gld(args) => Ok(kubectl_plugin::run(*args).await?),
        Command::Run(args) => Ok(run::run(*args).await?),
        Command::Sandbox(args) => Ok(sandbox::run(*args).await?),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn called_as_kubectl_gld_runs_the_plugin() {
        let cases: &[(&[&str], &[&str])] = &[
            (
                &["/usr/local/bin/kubectl-gld", "status", "web"],
                &["/usr/local/bin/kubectl-gld", "gld", "status", "web"],
            ),
            (
                &["kubectl-gld.exe", "open", "web"],
                &["kubectl-gld.exe", "gld", "open", "web"],
            ),
            (
                &["gitlab-deployment-operator", "run"],
                &["gitlab-deployment-operator", "run"],
            ),
            (&["kubectl-gldx", "run"], &["kubectl-gldx", "run"]),
        ];
        for (argv, want) in cases {
            let got = argv_for(argv.iter().map(Into::into).collect());
            let want: Vec<std::ffi::OsString> = want.iter().map(Into::into).collect();
            assert_eq!(got, want);
        }
        let cli = Cli::try_parse_from(argv_for(
            [
                "kubectl-gld",
                "approve",
                "web-prod",
                "-n",
                "apps",
                "--comment",
                "ok",
            ]
            .iter()
            .map(Into::into)
            .collect(),
        ))
        .unwrap();
        assert!(matches!(cli.command, Command::Gld(_)));
    }
}
