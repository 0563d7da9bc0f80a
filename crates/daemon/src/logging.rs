//! Logging with tracing to stderr, where procd collects it.

use tracing_subscriber::EnvFilter;

/// Sets up the global subscriber: the level from the configuration, raised
/// by `-v`/`-d`; `RUST_LOG` (when set) overrides both. Calling it twice is
/// harmless (the second call changes nothing).
pub fn init(name: &str, level: &str, verbosity: u8) {
    let level = match verbosity {
        0 => level,
        1 => "debug",
        _ => "trace",
    };
    // The HTTP/2 stack under gRPC logs every frame at debug: keep it at info
    // unless RUST_LOG asks for it.
    let directives = format!("{level},h2=info,hyper=info,hyper_util=info,tower=info,tonic=info");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives));
    let ansi = std::env::var_os("NO_COLOR").is_none() && is_terminal_stderr();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
    tracing::debug!(daemon = name, level, "logging set up");
}

fn is_terminal_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}
