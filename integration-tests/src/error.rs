//! The lab's error type.
//!
//! Every error says what the lab was doing (the command line, the file, the
//! state it waited for), so a failing test reads like a report rather than a
//! bare `os error 2`.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while building, driving or observing a lab.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command could not be started at all (missing program, bad path).
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line as it would be typed.
        command: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A command ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line as it would be typed.
        command: String,
        /// Exit status as printed by the standard library.
        status: String,
        /// The trimmed standard error (or output) of the command.
        stderr: String,
    },
    /// A file-system or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the lab was doing.
        context: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Output of a command or daemon did not have the expected shape.
    #[error("cannot parse {what}: {detail}")]
    Parse {
        /// What was being parsed (e.g. "`ip -j -6 route` output of n1").
        what: String,
        /// Why it was refused, with the offending text.
        detail: String,
    },
    /// A bounded wait ended before the awaited state was observed.
    #[error("timed out after {waited:?} waiting for {what}; last observed: {last}")]
    Timeout {
        /// The state that was awaited.
        what: String,
        /// How long the lab waited.
        waited: Duration,
        /// The last observation, saying what was still missing.
        last: String,
    },
    /// A process managed by the lab exited while it should be running.
    #[error("{name} exited early ({status}); log {log:?} ends with:\n{tail}")]
    Exited {
        /// Lab name of the process (e.g. `n1/ndproxy`).
        name: String,
        /// Exit status as printed by the standard library.
        status: String,
        /// The process's log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// One of our daemon binaries was not found.
    #[error(
        "daemon binary {path:?} not found; run `cargo build --workspace --bins` first \
         (or point L3ROAMD_BIN_DIR at the directory holding the binaries)"
    )]
    MissingBinary {
        /// Where the binary was expected.
        path: PathBuf,
    },
    /// The caller asked for something the lab does not have or cannot do.
    #[error("{0}")]
    Usage(String),
}

/// Result with the lab's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with what the lab was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A parse error for `what` with a `detail`.
    pub fn parse(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Parse {
            what: what.into(),
            detail: detail.into(),
        }
    }
}
