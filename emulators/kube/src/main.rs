//! `kube-emulator --listen 127.0.0.1:PORT --kubeconfig FILE [--token TOKEN] [--state FILE]`

use clap::Parser;
use kube_emulator::{AppState, Hooks, Settings, kubeconfig_yaml};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// A Kubernetes API server emulator that kube-rs and kubectl accept.
#[derive(Parser, Debug)]
#[command(name = "kube-emulator", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Where to write a kubeconfig for this server.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Bearer token clients must send.
    #[arg(long, default_value = kube_emulator::DEFAULT_TOKEN)]
    token: String,
    /// Persist the store to this file (loaded at start).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Serve plain HTTP (kubectl then sends no token: combine with `--token ""`).
    #[arg(long)]
    plain_http: bool,
    /// Default rollout step of the apps simulator, in milliseconds.
    #[arg(long, default_value_t = 200)]
    rollout_step_ms: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-emulator: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let settings = Settings {
        token: (!args.token.is_empty()).then(|| args.token.clone()),
        state_file: args.state.clone(),
        rollout_step: Duration::from_millis(args.rollout_step_ms),
        ..Settings::default()
    };
    let state = AppState::new(settings, Hooks::new());
    if let Some(p) = &args.state {
        kube_emulator::state::load_state(&state, p)?;
    }
    let url = format!(
        "{}://{addr}",
        if args.plain_http { "http" } else { "https" }
    );
    std::fs::write(
        &args.kubeconfig,
        kubeconfig_yaml(
            &url,
            (!args.token.is_empty()).then_some(args.token.as_str()),
        ),
    )?;
    println!("kube-emulator serving {url}");
    println!("kubeconfig written to {}", args.kubeconfig.display());
    println!(
        "  kubectl --kubeconfig {} get namespaces",
        args.kubeconfig.display()
    );
    println!("  export KUBECONFIG={}", args.kubeconfig.display());
    println!("admin hooks under {url}/__emulator/ (same bearer token)");
    let stopping = Arc::new(AtomicBool::new(false));
    let tasks = kube_emulator::spawn_all(
        listener,
        addr,
        state.clone(),
        stopping.clone(),
        !args.plain_http,
    )?;
    let _ = tokio::signal::ctrl_c().await;
    stopping.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in tasks {
        t.abort();
    }
    Ok(())
}
