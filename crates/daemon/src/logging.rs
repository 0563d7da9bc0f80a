//! Logging with tracing to stderr, where procd collects it.

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// The running filter, so that a daemon can change its level at runtime
/// (the C control socket's `verbosity`).
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// The level cannot be changed.
#[derive(Debug, thiserror::Error)]
pub enum LevelError {
    /// Logging was not set up by [`init`] (or by someone else first).
    #[error("logging is not set up for changes")]
    NotSetUp,
    /// The level is no tracing level.
    #[error("{0:?} is no log level")]
    Invalid(String),
    /// The subscriber is gone.
    #[error("cannot change the log level: {0}")]
    Reload(String),
}

/// The filter for `level`: the HTTP/2 stack under gRPC logs every frame at
/// debug, so it stays at info unless RUST_LOG asks for it.
fn directives(level: &str) -> String {
    format!("{level},h2=info,hyper=info,hyper_util=info,tower=info,tonic=info")
}

/// Sets up the global subscriber: the level from the configuration, raised
/// by `-v`/`-d`; `RUST_LOG` (when set) overrides both. Calling it twice is
/// harmless (the second call changes nothing).
pub fn init(name: &str, level: &str, verbosity: u8) {
    let level = match verbosity {
        0 => level,
        1 => "debug",
        _ => "trace",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives(level)));
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = std::env::var_os("NO_COLOR").is_none() && is_terminal_stderr();
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false);
    if tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .is_ok()
    {
        let _ = FILTER.set(handle);
    }
    tracing::debug!(daemon = name, level, "logging set up");
}

/// Changes the level set up by [`init`] to `level` (`info`, `debug`,
/// `trace`, ...), replacing what the configuration, the flags or RUST_LOG
/// gave.
pub fn set_level(level: &str) -> Result<(), LevelError> {
    if level.parse::<tracing::Level>().is_err() {
        return Err(LevelError::Invalid(level.to_string()));
    }
    let handle = FILTER.get().ok_or(LevelError::NotSetUp)?;
    handle
        .reload(EnvFilter::new(directives(level)))
        .map_err(|e| LevelError::Reload(e.to_string()))?;
    tracing::info!(level, "log level changed");
    Ok(())
}

fn is_terminal_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_changes_at_runtime() {
        assert!(matches!(set_level("loud"), Err(LevelError::Invalid(_))));
        init("test", "info", 0);
        // Another test binary's subscriber may have come first; then there
        // is nothing to change, and saying so is right.
        match FILTER.get() {
            Some(_) => {
                assert!(
                    !tracing::enabled!(tracing::Level::DEBUG)
                        || std::env::var_os("RUST_LOG").is_some()
                );
                set_level("debug").unwrap();
                assert!(tracing::enabled!(tracing::Level::DEBUG));
                set_level("info").unwrap();
                assert!(!tracing::enabled!(tracing::Level::DEBUG));
            }
            None => assert!(matches!(set_level("debug"), Err(LevelError::NotSetUp))),
        }
    }
}
