//! The control socket: accept, read one line, answer, close.
//!
//! As in the C daemon, a connection carries one command: the server reads
//! up to the first `\n` or `\r` (or the end of input), writes the whole
//! answer, and closes, so `echo get_clients | socat - UNIX-CONNECT:...`
//! and respondd's read-until-short-read both work. Unlike it, nothing a
//! client does blocks the daemon: every connection runs in its own task,
//! at most [`Limits::connections`] at a time (more are told so and
//! closed), a line longer than [`Limits::line`] is an error, and reading,
//! answering and writing each have a deadline.

use std::future::Future;
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use l3roamd_types::{Ipv6Prefix, MacAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::command::{Command, CommandError, Verbosity};
use crate::reply::{self, Client};

l3roamd_daemon::counters! {
    "A counter of the C control socket, shown by core's `GetStatus`.";
    Commands => "compat_commands": "Commands answered (also with an error from the daemon).",
    Malformed => "compat_malformed": "Lines that were no command (unknown, bad arguments, too long).",
    Failed => "compat_failed": "Commands the daemon could not carry out (not supported, unavailable).",
    Refused => "compat_refused": "Connections refused because the connection limit was reached.",
    TimedOut => "compat_timed_out": "Connections closed because reading, answering or writing took too long.",
    AcceptErrors => "compat_accept_errors": "Errors accepting a connection.",
}

/// Bounds on what one client may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest line read, in bytes (the C daemon's buffer: 1024).
    pub line: usize,
    /// Connections served at the same time.
    pub connections: usize,
    /// Time for the client to send its line.
    pub read: Duration,
    /// Time for the daemon to answer.
    pub answer: Duration,
    /// Time for the client to take the answer.
    pub write: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            line: 1024,
            connections: 16,
            read: Duration::from_secs(2),
            answer: Duration::from_secs(5),
            write: Duration::from_secs(5),
        }
    }
}

/// Why the daemon could not carry out a command; the text goes back as an
/// `error: ...` line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The command has no equivalent here (with the reason).
    #[error("not supported: {0}")]
    NotSupported(String),
    /// The daemon refused an argument.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The daemon (or a peer it asked) cannot answer now.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// What the control socket asks of the daemon that hosts it.
pub trait Backend: Send + Sync + 'static {
    /// The clients this node serves.
    fn clients(&self) -> impl Future<Output = Result<Vec<Client>, BackendError>> + Send;
    /// The mesh interfaces in use.
    fn mesh_interfaces(&self) -> impl Future<Output = Result<Vec<String>, BackendError>> + Send;
    /// Adds a mesh interface; adding one in use is no error.
    fn add_mesh_interface(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Removes a mesh interface; removing one not in use is no error.
    fn remove_mesh_interface(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// The client prefixes routed here.
    fn prefixes(&self) -> impl Future<Output = Result<Vec<Ipv6Prefix>, BackendError>> + Send;
    /// Looks for the neighbour `addr` (with `mac`) now.
    fn probe(
        &self,
        addr: Ipv6Addr,
        mac: MacAddr,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Sets the log level.
    fn set_verbosity(&self, verbosity: Verbosity) -> Result<(), BackendError>;
}

/// The counters, shared with whoever shows them.
pub type SharedCounters = Arc<Mutex<Counters>>;

fn count(counters: &SharedCounters, counter: Counter) {
    // A poisoned lock still holds usable numbers.
    let mut c = counters.lock().unwrap_or_else(|e| e.into_inner());
    c.count(counter);
}

/// What the C daemon had no equivalent for here, with the reason.
const NO_PREFIXES: &str = "client prefixes come from mesh.client_prefixes and \
    prefixd (PrefixD/Announce on a gateway)";
const NO_ADDRESSES: &str = "clientmon learns client addresses from the \
    client link itself (neighbour table, ND snooping)";

/// The answer to `command`: the bytes to write and whether the daemon
/// failed to carry it out.
pub async fn answer<B: Backend>(backend: &B, command: &Command) -> Result<String, BackendError> {
    match command {
        Command::GetClients => Ok(reply::clients(&backend.clients().await?)),
        Command::GetMeshifs => Ok(reply::mesh_interfaces(&backend.mesh_interfaces().await?)),
        // The C daemon answered these with nothing on success.
        Command::AddMeshif(name) => backend
            .add_mesh_interface(name)
            .await
            .map(|()| String::new()),
        Command::DelMeshif(name) => backend
            .remove_mesh_interface(name)
            .await
            .map(|()| String::new()),
        Command::Probe(addr, mac) => backend.probe(*addr, *mac).await.map(|()| String::new()),
        Command::Verbosity(v) => backend.set_verbosity(*v).map(|()| String::new()),
        Command::GetPrefixes => Ok(reply::prefixes(&backend.prefixes().await?)),
        Command::HasRoute(addr) => {
            let clients = backend.clients().await?;
            let found = clients
                .iter()
                .any(|c| c.addresses.iter().any(|(a, _)| a == addr));
            Ok(reply::has_route(*addr, found))
        }
        Command::AddPrefix(_) | Command::DelPrefix(_) => {
            Err(BackendError::NotSupported(NO_PREFIXES.into()))
        }
        Command::AddAddress(..) | Command::DelAddress(..) => {
            Err(BackendError::NotSupported(NO_ADDRESSES.into()))
        }
    }
}

/// Serves `listener` until `shutdown` resolves; open connections are cut
/// then. Never returns an error: a failed accept is counted and retried
/// after a pause (so that running out of descriptors cannot spin).
pub async fn serve<B: Backend>(
    listener: UnixListener,
    backend: Arc<B>,
    limits: Limits,
    counters: SharedCounters,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.connections));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        // Finished connections are reaped here, so the set stays small.
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                count(&counters, Counter::AcceptErrors);
                tracing::warn!(error = %e, "control socket: accept failed");
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            count(&counters, Counter::Refused);
            // Non-blocking: a client that does not read loses the line.
            drain(&stream);
            let _ = stream.try_write(b"error: too many connections\n");
            continue;
        };
        let backend = backend.clone();
        let counters = counters.clone();
        connections.spawn(async move {
            connection(stream, &*backend, limits, &counters).await;
            drop(slot);
        });
    }
    connections.shutdown().await;
}

/// Discards what the client sent beyond its line, as far as it has
/// arrived: closing a UNIX socket with unread input resets the connection,
/// and the client would lose the answer. Never waits.
fn drain(stream: &UnixStream) {
    let mut buf = [0u8; 4096];
    let mut left = DRAIN_BYTES;
    while left > 0 {
        match stream.try_read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// Most input [`drain`] discards.
const DRAIN_BYTES: usize = 1 << 20;

/// Pause after a failed accept.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Reads the line: up to its end, the end of input, or `limit` bytes.
async fn read_line(
    stream: &mut UnixStream,
    limit: usize,
) -> std::io::Result<Result<Vec<u8>, CommandError>> {
    let mut line = Vec::with_capacity(128);
    let mut buf = [0u8; 256];
    loop {
        let n = stream.read(&mut buf).await?;
        let read = buf.get(..n).unwrap_or_default();
        if read.is_empty() {
            return Ok(Ok(line));
        }
        if let Some(end) = read.iter().position(|b| *b == b'\n' || *b == b'\r') {
            line.extend_from_slice(read.get(..end).unwrap_or_default());
            return Ok(if line.len() > limit {
                Err(CommandError::TooLong(limit))
            } else {
                Ok(line)
            });
        }
        line.extend_from_slice(read);
        if line.len() > limit {
            return Ok(Err(CommandError::TooLong(limit)));
        }
    }
}

async fn connection<B: Backend>(
    mut stream: UnixStream,
    backend: &B,
    limits: Limits,
    counters: &SharedCounters,
) {
    let line = match tokio::time::timeout(limits.read, read_line(&mut stream, limits.line)).await {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "control socket: read failed");
            return;
        }
        Err(_) => {
            count(counters, Counter::TimedOut);
            drain(&stream);
            let _ = stream.try_write(b"error: no command within the time limit\n");
            return;
        }
    };
    let reply = match line.and_then(|l| Command::parse(&l)) {
        Err(e) => {
            count(counters, Counter::Malformed);
            tracing::debug!(error = %e, "control socket: no command");
            reply::error(&e)
        }
        Ok(command) => {
            count(counters, Counter::Commands);
            match tokio::time::timeout(limits.answer, answer(backend, &command)).await {
                Ok(Ok(reply)) => {
                    tracing::debug!(%command, "control socket: answered");
                    reply
                }
                Ok(Err(e)) => {
                    count(counters, Counter::Failed);
                    tracing::debug!(%command, error = %e, "control socket: command failed");
                    reply::error(&format_args!("{}: {e}", command.name()))
                }
                Err(_) => {
                    count(counters, Counter::TimedOut);
                    reply::error(&format_args!("{}: no answer in time", command.name()))
                }
            }
        }
    };
    drain(&stream);
    let write = async {
        stream.write_all(reply.as_bytes()).await?;
        stream.shutdown().await
    };
    match tokio::time::timeout(limits.write, write).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "control socket: write failed"),
        Err(_) => count(counters, Counter::TimedOut),
    }
}
