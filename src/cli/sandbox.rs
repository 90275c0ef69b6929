//! `sandbox`: try the operator on a laptop, in one process.
//!
//! It starts the Kubernetes API emulator (HTTPS with a test CA, so the real `kubectl` works
//! against it) and the GitLab emulator (the demo seed: project `demo/app`, users `root` and
//! `approver`, protected environment `production` needing one approval) on loopback, installs
//! the CRDs, runs the operator against both, applies the manifests of `examples/` and plays a
//! scripted story, printing each GitLab deployment's status live as the operator reports it.
//! Then it keeps running until Ctrl-C so a person can poke at it with `kubectl` and `curl`, or
//! exits with the demo's verdict (`--exit-after-demo`, for tests and CI).
//!
//! Exit codes:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | the demo did what it should (or Ctrl-C) |
//! | 1 | the demo did not reach its expected end (the reason is printed) |
//! | 2 | a port could not be bound or an emulator could not start |
//! | 3 | a Kubernetes or GitLab call of the set-up failed |
//! | 4 | the operator stopped with an error |
//! | 5 | a bundled example manifest is unreadable (a build defect) |
//! | 6 | built without the `sandbox` feature |
//!
//! The emulators are test and demo infrastructure: a production build drops them with
//! `cargo build --release --no-default-features`, and this subcommand then says so.

#[cfg(feature = "sandbox")]
#[path = "../sandbox/mod.rs"]
mod imp;

/// `sandbox` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Port of the Kubernetes API emulator on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0, value_name = "PORT")]
    pub kube_port: u16,
    /// Port of the GitLab emulator on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0, value_name = "PORT")]
    pub gitlab_port: u16,
    /// The story to play.
    #[arg(long, value_enum, default_value_t = Scenario::Default)]
    pub scenario: Scenario,
    /// Exit after the scripted demo: 0 when it reached its expected end, 1 with the reason
    /// when not. Without it the sandbox keeps running until Ctrl-C.
    #[arg(long)]
    pub exit_after_demo: bool,
    /// Pace of the emulated rollouts: time between two pod steps, in milliseconds (the
    /// `emulator.gitlab-operator.io/rollout-step` annotation put on the Deployment).
    #[arg(long, default_value_t = 700, value_name = "MS")]
    pub rollout_step_ms: u64,
    /// Pause before the `approval` scenario approves production as the approver, in seconds.
    #[arg(long, default_value_t = 3, value_name = "SECONDS")]
    pub approve_after: u64,
    /// How long one demo step may take before the demo is declared failed, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub step_timeout: u64,
}

/// The story the sandbox plays after applying the examples (revision A rolled out and
/// reported to staging and production first, in every scenario).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Roll out revision B: both GitLab deployments go running → success; production then
    /// waits for approval, and the command to approve it is printed.
    Default,
    /// Revision B's rollout fails (ProgressDeadlineExceeded): both GitLab deployments go
    /// running → failed.
    Failure,
    /// Revision C arrives while B still rolls out: B's GitLab deployments are canceled, C's
    /// succeed.
    Supersede,
    /// Production behind the approval gate (`spec.approval.gate`, the Flux example's gate):
    /// revision A's GitLab deployment is created `running` and held; nothing runs in
    /// production until the sandbox approves as `approver` after a pause; then production's
    /// workload is applied and reported `success`.
    Approval,
    /// Like `approval`, but the approver rejects: the GitLab deployment is set `failed`, the
    /// resource is Stalled (`ApprovalRejected`), production's workload is never applied, and
    /// revision B starts over with a deployment of its own, held again.
    Rejection,
}

impl Scenario {
    /// The `--scenario` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Default => "default",
            Scenario::Failure => "failure",
            Scenario::Supersede => "supersede",
            Scenario::Approval => "approval",
            Scenario::Rejection => "rejection",
        }
    }
}

/// Why the sandbox stopped, with the exit code of the module table.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "cannot start the {what} on 127.0.0.1:{port}: {source}; choose another port (or 0 for any free port)"
    )]
    Start {
        what: &'static str,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("sandbox set-up failed while {step}: {source}")]
    Kube {
        step: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("sandbox set-up failed while {step}: {source}")]
    Gitlab {
        step: &'static str,
        #[source]
        source: crate::gitlab::Error,
    },
    #[error("the operator stopped: {0}")]
    Operator(#[from] crate::controller::run::RunError),
    #[error("the bundled example {file} is not a valid manifest: {reason}")]
    Example { file: &'static str, reason: String },
    #[error("demo `{scenario}` failed: {reason}")]
    Demo {
        scenario: &'static str,
        reason: String,
    },
    #[error(
        "this binary was built without the `sandbox` feature (it embeds the emulators); rebuild with default features: `cargo run --release -- sandbox`"
    )]
    NotBuilt,
}

impl SandboxError {
    pub fn exit_code(&self) -> u8 {
        match self {
            SandboxError::Demo { .. } => 1,
            SandboxError::Start { .. } => 2,
            SandboxError::Kube { .. } | SandboxError::Gitlab { .. } => 3,
            SandboxError::Operator(_) => 4,
            SandboxError::Example { .. } => 5,
            SandboxError::NotBuilt => 6,
        }
    }
}

/// Run the sandbox (see the module docs).
pub async fn run(args: SandboxArgs) -> Result<(), SandboxError> {
    #[cfg(feature = "sandbox")]
    {
        imp::run(args).await
    }
    #[cfg(not(feature = "sandbox"))]
    {
        let _ = args;
        Err(SandboxError::NotBuilt)
    }
}
