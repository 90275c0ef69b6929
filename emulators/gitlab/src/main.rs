//! `gitlab-emulator`: the GitLab Deployments API emulator as a loopback server with the demo
//! seed, for demos and for real clients (curl, python-gitlab).

use clap::Parser;
use gitlab_emulator::{
    DEFAULT_APPROVER_TOKEN, DEFAULT_ROOT_TOKEN, Edition, EmulatorHandle, RateLimit,
};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "gitlab-emulator",
    version,
    about = "A faithful GitLab Deployments API emulator"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8929")]
    listen: String,
    /// Private token of the demo's Maintainer `root`.
    #[arg(long, default_value = DEFAULT_ROOT_TOKEN)]
    token: String,
    /// Private token of the demo's `approver` (Developer, may approve `production`).
    #[arg(long, default_value = DEFAULT_APPROVER_TOKEN)]
    approver_token: String,
    /// Keep all state in this JSON file: loaded at start, rewritten atomically after each write.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Emulate a CE (FOSS) build: no approval route, no approval fields.
    #[arg(long)]
    ce: bool,
    /// Throttle each user (or anonymous IP) to N requests per `--rate-period` seconds.
    #[arg(long)]
    rate_limit: Option<u64>,
    #[arg(long, default_value_t = 60)]
    rate_period: u64,
    /// Let project hooks point at loopback and private addresses (GitLab's "allow requests to
    /// the local network from webhooks"; off by default, as in GitLab).
    #[arg(long)]
    allow_local_webhooks: bool,
    /// Send the approval lifecycle events (`approved`/`rejected` Deployment Hooks, MR !239337).
    #[arg(long)]
    approval_webhooks: bool,
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot read state file {path}: {source}")]
    ReadState {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "state file {path} is not valid emulator state ({source}); move it away to start fresh"
    )]
    ParseState {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gitlab-emulator: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), CliError> {
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|source| CliError::Listen {
            addr: args.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| CliError::Listen {
        addr: args.listen.clone(),
        source,
    })?;
    let base = format!("http://{addr}");
    let h = EmulatorHandle::new(&base);
    let loaded = match &args.state {
        Some(path) if path.exists() => {
            let bytes = std::fs::read(path).map_err(|source| CliError::ReadState {
                path: path.clone(),
                source,
            })?;
            h.load_data_json(&bytes)
                .map_err(|source| CliError::ParseState {
                    path: path.clone(),
                    source,
                })?;
            true
        }
        _ => false,
    };
    let facts = if loaded {
        gitlab_emulator::demo::demo_facts(&h)
    } else {
        if args.ce {
            h.set_edition(Edition::Ce);
        }
        Some(gitlab_emulator::seed_demo(
            &h,
            &args.token,
            &args.approver_token,
        ))
    };
    h.set_state_file(args.state.clone());
    if args.allow_local_webhooks {
        h.set_allow_local_webhooks(true);
    }
    if args.approval_webhooks {
        h.set_approval_webhooks(true);
    }
    if let Some(n) = args.rate_limit {
        h.set_rate_limit(Some(RateLimit::new(n, args.rate_period)));
    }
    println!("GitLab emulator listening on {base}");
    println!("API root: {base}/api/v4");
    if let Some(f) = facts {
        println!("project: id {} path {}", f.project_id, f.project_path);
        println!("token (root, Maintainer): {}", f.root_token);
        println!(
            "token (approver, Developer, approves {}): {}",
            f.protected_environment, f.approver_token
        );
        println!("{} shas (newest first):", f.branch);
        for sha in &f.main_shas {
            println!("  {sha}");
        }
    }
    if let Some(p) = &args.state {
        println!("state file: {}", p.display());
    }
    gitlab_emulator::serve(listener, h)
        .await
        .map_err(CliError::Serve)
}
