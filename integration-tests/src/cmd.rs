//! Running external programs (`ip`, `babeld`, `grpcurl`) with error context.
//!
//! Tools are looked up on `PATH` and then in the sbin directories, because
//! test runners often start without `/usr/sbin` on `PATH` while babeld lives
//! there. Every command runs with a time limit, so a hung tool fails the test
//! instead of hanging it.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a command may run unless the caller says otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Directories searched after `PATH`.
const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin"];

/// Finds an executable by name on `PATH` or in the sbin directories.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Like [`find_tool`], but an error naming the tool when it is missing.
pub fn tool(name: &str) -> Result<PathBuf> {
    find_tool(name).ok_or_else(|| Error::Usage(format!("required tool `{name}` not found")))
}

/// True if `path` is a regular file with an execute bit.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A command line as a person would type it, for error messages.
pub fn display_command<S: AsRef<OsStr>>(program: impl AsRef<OsStr>, args: &[S]) -> String {
    std::iter::once(program.as_ref())
        .chain(args.iter().map(AsRef::as_ref))
        .map(|a| {
            let s = a.to_string_lossy();
            if s.is_empty() || s.contains(|c: char| c.is_whitespace() || "'\"$;&|".contains(c)) {
                format!("'{}'", s.replace('\'', r"'\''"))
            } else {
                s.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a finished command left behind.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// How it ended.
    pub status: ExitStatus,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl Output {
    /// The standard output if the command succeeded, else an error with its stderr.
    pub fn success(self) -> Result<String> {
        if self.status.success() {
            Ok(self.stdout)
        } else {
            let detail = if self.stderr.trim().is_empty() {
                self.stdout.trim().to_string()
            } else {
                self.stderr.trim().to_string()
            };
            Err(Error::Command {
                command: self.command,
                status: self.status.to_string(),
                stderr: detail,
            })
        }
    }
}

/// Runs `program args...` to completion within `timeout`, whatever its exit status.
pub fn run_status<S: AsRef<OsStr>>(
    program: impl AsRef<OsStr>,
    args: &[S],
    timeout: Duration,
) -> Result<Output> {
    let mut command = Command::new(program.as_ref());
    command.args(args);
    run_command(command, timeout)
}

/// Runs a prepared `command` to completion within `timeout`, capturing its output.
pub fn run_command(mut command: Command, timeout: Duration) -> Result<Output> {
    let line = display_command(
        command.get_program(),
        &command.get_args().collect::<Vec<_>>(),
    );
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn {
            command: line.clone(),
            source,
        })?;
    let command = line;
    // Drain both pipes on their own threads so a chatty child cannot block on a full pipe.
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Timeout {
                    what: format!("`{command}` to finish"),
                    waited: timeout,
                    last: "still running; killed".into(),
                });
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(Error::io(format!("waiting for `{command}`"), e)),
        }
    };
    let collect = |h: Option<thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    Ok(Output {
        command,
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

/// Runs `program args...` and returns its stdout; a non-zero exit is an error.
pub fn run<S: AsRef<OsStr>>(program: impl AsRef<OsStr>, args: &[S]) -> Result<String> {
    run_status(program, args, DEFAULT_COMMAND_TIMEOUT)?.success()
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_command_reports_stderr() {
        let err = run("sh", &["-c", "echo boom >&2; exit 3"]).expect_err("must fail");
        let msg = err.to_string();
        assert!(
            msg.contains("boom") && msg.contains("exit status: 3"),
            "{msg}"
        );
    }

    #[test]
    fn hung_command_times_out() {
        let err =
            run_status("sleep", &["5"], Duration::from_millis(100)).expect_err("must time out");
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
    }

    #[test]
    fn quoting_for_display() {
        assert_eq!(display_command("sh", &["-c", "echo $$"]), "sh -c 'echo $$'");
    }
}
