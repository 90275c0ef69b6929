//! Logging set-up: `tracing` with text or JSON output, filtered by `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// Log output format, chosen on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Install the global subscriber. The default level is `info` for this crate and `warn` for
/// dependencies, so kube's and hyper's chatter stays out of an operator's logs unless asked
/// for with `RUST_LOG`. Calling it twice is harmless (the second call does nothing).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,gitlab_deployment_operator=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _already_set = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
