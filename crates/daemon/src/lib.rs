//! What every l3roamd daemon shares: the command line, the configuration
//! file, logging to stderr, and a clean stop on SIGTERM/SIGINT.
//!
//! A daemon crate calls [`start`] from its `main` with its name and a
//! closure that runs the daemon; this crate parses the flags, loads and
//! checks the configuration, sets up logging, builds a single-threaded tokio
//! runtime (routers have little memory and one or two cores) and reports the
//! outcome as the process exit code.

pub mod backoff;
pub mod cli;
pub mod config;
mod counters;
mod heap;
pub mod limits;
pub mod logging;
pub mod nonces;
pub mod rate;
mod shutdown;

pub use backoff::Backoff;
pub use cli::DaemonArgs;
pub use config::{Config, ConfigError, MeshConfig, RuntimeConfig};
pub use nonces::Nonces;
pub use rate::TokenBucket;
pub use shutdown::Shutdown;

use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code for a configuration error (sysexits' EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;
/// Exit code for a failure while running.
pub const EXIT_FAILURE: u8 = 1;

/// Why a daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration is wrong; the message names the key.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Something failed at run time; the message says what, with context.
    #[error("{0}")]
    Fatal(String),
}

impl DaemonError {
    /// A run-time failure with context: `fatal("TUN device l3roam0", err)`.
    pub fn fatal(context: impl std::fmt::Display, err: impl std::fmt::Display) -> DaemonError {
        DaemonError::Fatal(format!("{context}: {err}"))
    }
}

/// Everything a daemon gets when it starts.
#[derive(Debug)]
pub struct Context {
    /// The daemon's name, e.g. `ndproxy`.
    pub name: &'static str,
    /// The merged configuration (file, environment, flags).
    pub config: Config,
    /// The UNIX socket this daemon serves.
    pub socket: PathBuf,
    /// Resolves when the daemon is asked to stop.
    pub shutdown: Shutdown,
}

/// A daemon's identity: its binary name, its configuration section and a
/// one-line description for `--help`.
#[derive(Debug, Clone, Copy)]
pub struct DaemonInfo {
    /// The binary (and socket) name, e.g. `client-db`.
    pub name: &'static str,
    /// The TOML section of its own settings, e.g. `client_db`.
    pub section: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
}

impl DaemonInfo {
    /// The default socket path: `<runtime.socket_dir>/<section>.sock`, with
    /// `-` for `_` (`core.sock`, `client-db.sock`, ...).
    pub fn default_socket(&self, runtime: &RuntimeConfig) -> PathBuf {
        runtime
            .socket_dir
            .join(format!("{}.sock", self.section.replace('_', "-")))
    }
}

/// Runs a daemon: parses `args` (the first is the program name), loads the
/// configuration, sets up logging and runs `daemon` on a single-threaded
/// runtime until it returns. Never panics on bad input: every failure becomes
/// a message on stderr and an exit code.
pub fn start<F, Fut>(info: DaemonInfo, args: Vec<OsString>, daemon: F) -> ExitCode
where
    F: FnOnce(Context) -> Fut,
    Fut: Future<Output = Result<(), DaemonError>>,
{
    let args = match cli::parse(info, args) {
        Ok(args) => args,
        Err(e) => {
            // --help and --version end up here too, with exit code 0.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_FAILURE));
        }
    };
    let config = match Config::load(info, &args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{}: configuration error: {e}", info.name);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging::init(info.name, &config.runtime.log_level, args.verbosity());
    let socket = match config.own_socket(info) {
        Ok(socket) => socket,
        Err(e) => {
            eprintln!("{}: configuration error: {e}", info.name);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", info.name);
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let result = runtime.block_on(async {
        let shutdown = Shutdown::on_signals().map_err(|e| DaemonError::fatal("signals", e))?;
        heap::spawn_trim();
        tracing::info!(version = env!("CARGO_PKG_VERSION"), socket = %socket.display(), "starting");
        daemon(Context {
            name: info.name,
            config,
            socket,
            shutdown,
        })
        .await
    });
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(DaemonError::Config(e)) => {
            tracing::error!("configuration error: {e}");
            eprintln!("{}: configuration error: {e}", info.name);
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
