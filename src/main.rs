//! Thin entry point: parse the command line, run the subcommand, map its error to an exit code.

use clap::Parser;
use gitlab_deployment_operator::cli::{self, Cli};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Cli::parse_from(cli::argv_for(std::env::args_os().collect()));
    match cli::dispatch(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::from(err.exit_code())
        }
    }
}
