//! Long-running processes started by the lab (babeld, our daemons).
//!
//! A process is started as `ip netns exec NS sh -c 'echo $$; exec PROG ARGS'`:
//! the shell prints its PID and then becomes the program, so the lab knows the
//! daemon's own PID even if `ip netns exec` forks. Standard output and error
//! go to a log file. The `ip` wrapper lives exactly as long as the program (it
//! either became it or waits for it), so its exit status is the program's.
//! Stopping is SIGTERM, a bounded wait, then SIGKILL.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::cmd::display_command;
use crate::error::{Error, Result};

/// How long a process gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// A process the lab started and will stop.
#[derive(Debug)]
pub struct ManagedProcess {
    name: String,
    pid: i32,
    child: Child,
    log: PathBuf,
    command: String,
    status: Option<ExitStatus>,
}

impl ManagedProcess {
    /// Starts `program args` in network namespace `netns` (or in the current
    /// one when `None`), appending its stdout and stderr to `log`.
    ///
    /// `ip` is the path of the `ip` tool; `name` is how messages call it.
    pub fn spawn(
        name: &str,
        ip: &Path,
        netns: Option<&str>,
        program: &Path,
        args: &[OsString],
        log: &Path,
    ) -> Result<Self> {
        let log_file = open_log(log)?;
        let command_line = display_command(program, args);
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new(ip);
                c.args([
                    "netns",
                    "exec",
                    ns,
                    "sh",
                    "-c",
                    "echo $$; exec \"$0\" \"$@\" 1>&2",
                ]);
                c.arg(program).args(args);
                c.stdout(Stdio::piped());
                c
            }
            None => {
                let mut c = Command::new(program);
                c.args(args);
                let out = log_file
                    .try_clone()
                    .map_err(|e| Error::io(format!("duplicating log handle {log:?}"), e))?;
                c.stdout(out);
                c
            }
        };
        command.stdin(Stdio::null()).stderr(log_file);
        scrub_daemon_env(&mut command);
        let mut child = command.spawn().map_err(|source| Error::Spawn {
            command: command_line.clone(),
            source,
        })?;
        let pid = match child.stdout.take() {
            Some(stdout) => {
                let mut line = String::new();
                // The shell prints its PID first and closes the pipe on exec,
                // so this read ends with a line or with EOF.
                let read = BufReader::new(stdout).read_line(&mut line);
                match read.map(|_| line.trim().parse::<i32>()) {
                    Ok(Ok(pid)) if pid > 0 => pid,
                    _ => {
                        let _ = child.kill();
                        let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                        return Err(Error::Exited {
                            name: name.to_string(),
                            status: format!("{status}; no PID printed, got {line:?}"),
                            log: log.to_path_buf(),
                            tail: tail_file(log, 20),
                        });
                    }
                }
            }
            None => i32::try_from(child.id())
                .map_err(|_| Error::Usage(format!("PID {} out of range", child.id())))?,
        };
        Ok(ManagedProcess {
            name: name.to_string(),
            pid,
            child,
            log: log.to_path_buf(),
            command: command_line,
            status: None,
        })
    }

    /// The lab name of the process, e.g. `n1/babeld`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The program's own PID.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// CPU time and resident memory it has used so far (from `/proc`).
    pub fn usage(&self) -> Result<ProcessUsage> {
        ProcessUsage::of(self.pid)
    }

    /// The log file holding its stdout and stderr.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The command line it was started with.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The exit status if it has exited, without blocking.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .map_err(|e| Error::io(format!("checking on {}", self.name), e))?;
        }
        Ok(self.status)
    }

    /// Ok while running; an [`Error::Exited`] with the log tail once it exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        match self.try_status()? {
            None => Ok(()),
            Some(status) => Err(Error::Exited {
                name: self.name.clone(),
                status: status.to_string(),
                log: self.log.clone(),
                tail: self.log_tail(20),
            }),
        }
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_status()? {
                return Ok(status);
            }
            if start.elapsed() >= timeout {
                return Err(Error::Timeout {
                    what: format!("{} to exit", self.name),
                    waited: start.elapsed(),
                    last: format!("still running; log ends with:\n{}", self.log_tail(10)),
                });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` to the program (not to the `ip` wrapper).
    pub fn signal(&mut self, signal: i32) -> Result<()> {
        if self.try_status()?.is_some() {
            return Ok(());
        }
        // SAFETY: kill(2) has no memory-safety preconditions.
        let rc = unsafe { libc::kill(self.pid, signal) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(Error::io(
                    format!("kill({}, {signal}) for {}", self.pid, self.name),
                    err,
                ));
            }
        }
        Ok(())
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> Result<ExitStatus> {
        self.signal(libc::SIGTERM)?;
        match self.wait_exit(grace) {
            Ok(status) => Ok(status),
            Err(_) => {
                self.signal(libc::SIGKILL)?;
                let _ = self.child.kill();
                self.wait_exit(Duration::from_secs(2))
            }
        }
    }

    /// The last `lines` lines of the log (empty if unreadable).
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log, lines)
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        if let Err(e) = self.stop(STOP_GRACE) {
            eprintln!("lab: stopping {} (pid {}): {e}", self.name, self.pid);
        }
    }
}

/// Prefix of the environment variables our daemons read as configuration.
pub const DAEMON_ENV_PREFIX: &str = "L3ROAMD_";

/// Keeps `L3ROAMD_*` variables (the lab's own, such as `L3ROAMD_BIN_DIR`)
/// out of a started process: the daemons merge every `L3ROAMD_*` variable
/// into their configuration and refuse unknown keys, and the lab configures
/// them through the file alone.
pub fn scrub_daemon_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with(DAEMON_ENV_PREFIX) {
            command.env_remove(key);
        }
    }
}

fn open_log(log: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::io(format!("opening log {log:?}"), e))
}

/// The last `lines` lines of a text file (empty if unreadable).
pub fn tail_file(path: &Path, lines: usize) -> String {
    tail_file_filtered(path, lines, &[])
}

/// The last `lines` lines of a text file that contain none of `skip`.
pub fn tail_file_filtered(path: &Path, lines: usize, skip: &[&str]) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !skip.iter().any(|s| l.contains(s)))
        .collect();
    kept[kept.len().saturating_sub(lines)..].join("\n")
}

/// What a process has cost so far: CPU time (user + system) and resident memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessUsage {
    /// User and system CPU time since it started.
    pub cpu: Duration,
    /// Resident set size now (`VmRSS`), in bytes: includes the mapped
    /// binary, which every process of the multicall binary shares.
    pub rss_bytes: u64,
    /// The private, anonymous part of it (`RssAnon`: heap, stacks), in bytes:
    /// what one more process really costs.
    pub anon_bytes: u64,
    /// Times its main thread went to sleep and was woken since it started
    /// (`voluntary_ctxt_switches`): one per wake-up of a single-threaded
    /// event loop, however short, which CPU time in clock ticks rounds
    /// away.
    pub wakes: u64,
}

impl ProcessUsage {
    /// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
    pub fn of(pid: i32) -> Result<ProcessUsage> {
        let read = |file: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/{file}"))
                .map_err(|e| Error::io(format!("reading /proc/{pid}/{file}"), e))
        };
        // SAFETY: sysconf has no preconditions.
        let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
            .ok()
            .filter(|h| *h > 0)
            .unwrap_or(100);
        let status = read("status")?;
        Ok(ProcessUsage {
            cpu: parse_stat_cpu(&read("stat")?, hz)?,
            rss_bytes: parse_status_kb(&status, "VmRSS")?,
            anon_bytes: parse_status_kb(&status, "RssAnon")?,
            wakes: parse_status_count(&status, "voluntary_ctxt_switches")?,
        })
    }

    /// The sum of two usages (a node's processes together).
    pub fn plus(self, other: ProcessUsage) -> ProcessUsage {
        ProcessUsage {
            cpu: self.cpu + other.cpu,
            rss_bytes: self.rss_bytes + other.rss_bytes,
            anon_bytes: self.anon_bytes + other.anon_bytes,
            wakes: self.wakes + other.wakes,
        }
    }
}

/// utime + stime of a `/proc/<pid>/stat` line, with `hz` clock ticks per second.
fn parse_stat_cpu(stat: &str, hz: u64) -> Result<Duration> {
    // Fields after the command name (which may hold spaces, in
    // parentheses): utime and stime are the 12th and 13th of them.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| Error::parse("/proc/<pid>/stat", stat.to_string()))
    };
    Ok(Duration::from_millis(
        (ticks(11)? + ticks(12)?) * 1000 / hz.max(1),
    ))
}

/// The `key` line (in kB) of a `/proc/<pid>/status` text, in bytes.
fn parse_status_kb(status: &str, key: &str) -> Result<u64> {
    parse_status_count(status, key).map(|kb| kb * 1024)
}

/// The number on the `key` line of a `/proc/<pid>/status` text.
fn parse_status_count(status: &str, key: &str) -> Result<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| Error::parse("/proc/<pid>/status", format!("no {key} line")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_read_from_proc_texts() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 1000 10";
        assert_eq!(
            parse_stat_cpu(stat, 100).expect("cpu"),
            Duration::from_secs(3)
        );
        assert!(parse_stat_cpu("42 (x) S 1", 100).is_err());
        let status = "Name:\tbabeld\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nRssAnon:\t 200 kB\n";
        assert_eq!(parse_status_kb(status, "VmRSS").expect("rss"), 1234 * 1024);
        assert_eq!(
            parse_status_kb(status, "RssAnon").expect("anon"),
            200 * 1024
        );
        assert!(parse_status_kb("Name: x\n", "VmRSS").is_err());
        let switches = "voluntary_ctxt_switches:\t17\nnonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(
            parse_status_count(switches, "voluntary_ctxt_switches").expect("wakes"),
            17
        );
        let mine = ProcessUsage::of(std::process::id() as i32).expect("own usage");
        assert!(mine.rss_bytes >= mine.anon_bytes && mine.anon_bytes > 0);
    }
}
