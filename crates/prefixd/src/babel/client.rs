//! The connection to babeld's local interface: connect, read the greeting,
//! send `monitor`, take the dump and then the live updates into a
//! [`BabelView`], publish the summary as a [`BabelStatus`] on a `watch`
//! channel; when babeld goes away, clear the view, say so (`connected:
//! false`) and reconnect with a [`Backoff`].
//!
//! The conversation, from babeld's `local.c`: on accept, `local_header()`
//! writes `"BABEL 1.0\nversion %s\nhost %s\nmy-id %s\nok\n"`; to `monitor`
//! (`CONFIG_ACTION_MONITOR`) it calls `local_notify_all_1(s)` (every
//! interface, neighbour, xroute and route as an `add` line), sets
//! `s->monitor = 1` and replies `ok`, so the `ok` after `monitor` is the end
//! of the dump; from then on every change is written as it happens. babeld
//! is single-threaded, so the dump is never interleaved with updates.
//!
//! Why `watch` of a summary rather than a stream of events: prefix selection
//! needs only the current set of heard prefixes, a slow reader must never
//! hold babeld's socket up (babeld gives up on a client whose writes block
//! for 100 ms: `write_timeout` then `shutdown`), and a restart of babeld is
//! simply a new value.

use std::io;
use std::net::Ipv6Addr;
use std::time::Duration;

use l3roamd_daemon::{Backoff, Shutdown};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::watch;

use super::line::{parse_line, BabelLine, RouterId};
use super::view::{BabelView, HeardPrefix};
use super::{BabelLocalConfig, BabelSource};

/// The longest line kept. babeld builds every line in a 512-byte buffer
/// (`char buf[512]` in `local_notify_*_1`); anything longer is not babeld.
pub const MAX_LINE: usize = 4096;

/// How long babeld may take to greet and to finish its dump: it writes
/// both at once, so a silence this long means something else is listening.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

l3roamd_daemon::counters! {
    "An event of prefixd's connection to babeld's local interface.";
    Connects => "babel_connects": "Connections that got through babeld's greeting.",
    Syncs => "babel_syncs": "Dumps read to their end (the `ok` after `monitor`).",
    Disconnects => "babel_disconnects": "Connections lost or given up, after a greeting or not.",
    LinesIgnored => "babel_lines_ignored": "Lines prefixd does not follow: IPv4 routes, unknown kinds.",
    LinesMalformed => "babel_lines_malformed": "Lines of a known kind that did not parse (or were not UTF-8).",
    LinesTooLong => "babel_lines_too_long": "Lines longer than 4 KiB, dropped.",
    RoutesRefused => "babel_routes_refused": "Routes or xroutes not kept: the table was at prefixd.babel_max_routes.",
}

/// What prefixd knows of babeld right now.
#[derive(Debug, Clone, Default)]
pub struct BabelStatus {
    /// Connected and greeted. When false, `prefixes` is empty and the
    /// caller falls back to the kernel's routes.
    pub connected: bool,
    /// The dump is complete: `prefixes` is babeld's whole view, not a part.
    pub synced: bool,
    /// babeld's version (`version` in the greeting).
    pub version: Option<String>,
    /// This node's router-id (`my-id` in the greeting).
    pub my_id: Option<RouterId>,
    /// The client prefixes heard, sorted; empty until `synced`.
    pub prefixes: Vec<HeardPrefix>,
    /// Routes kept in the view.
    pub routes: usize,
    /// Since prefixd started, across connections. Updated without waking
    /// the receivers: a change of counters alone is no news.
    pub counters: Counters,
}

impl BabelStatus {
    /// Lines of kinds prefixd does not follow.
    pub fn lines_ignored(&self) -> u64 {
        self.counters.get(Counter::LinesIgnored)
    }

    /// Lines of a known kind that did not parse.
    pub fn lines_malformed(&self) -> u64 {
        self.counters.get(Counter::LinesMalformed)
    }
}

/// Why a connection to babeld ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Nobody listens, or the connect failed.
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    /// Reading or writing failed.
    #[error("{0}")]
    Io(io::Error),
    /// babeld closed the connection (it stopped or restarts).
    #[error("babeld closed the connection")]
    Closed,
    /// No complete greeting and dump within [`SYNC_TIMEOUT`].
    #[error("no greeting and dump within {0:?}")]
    Timeout(Duration),
    /// The first line is not `BABEL ...`.
    #[error("not babeld's local interface: first line {0:?}")]
    NotBabel(String),
    /// A local protocol other than 1.x.
    #[error("unsupported local protocol BABEL {0}")]
    Version(String),
    /// babeld answered `no` or `bad`.
    #[error("babeld answered {0:?}")]
    Refused(String),
}

// ===== lines out of bytes =====

/// One line cut out of the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    Line(String),
    TooLong,
    NotUtf8,
}

/// Cuts the stream into lines of at most `max` bytes. A longer line is
/// dropped whole (one [`Frame::TooLong`]); memory stays bounded by `max`.
#[derive(Debug)]
struct LineBuffer {
    buf: Vec<u8>,
    max: usize,
    /// Inside a line already reported too long: drop up to its newline.
    skipping: bool,
}

impl LineBuffer {
    fn new(max: usize) -> LineBuffer {
        LineBuffer {
            buf: Vec::new(),
            max,
            skipping: false,
        }
    }

    fn push(&mut self, bytes: &[u8], frames: &mut Vec<Frame>) {
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            let (body, complete) = match chunk.strip_suffix(b"\n") {
                Some(body) => (body, true),
                None => (chunk, false),
            };
            if self.skipping {
                self.skipping = !complete;
                continue;
            }
            if self.buf.len() + body.len() > self.max {
                self.buf.clear();
                frames.push(Frame::TooLong);
                self.skipping = !complete;
                continue;
            }
            self.buf.extend_from_slice(body);
            if complete {
                let line = std::mem::take(&mut self.buf);
                frames.push(match String::from_utf8(line) {
                    Ok(line) => Frame::Line(line),
                    Err(_) => Frame::NotUtf8,
                });
            }
        }
    }
}

// ===== the conversation =====

/// Where a connection is in babeld's conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the first line.
    Start,
    /// After `BABEL 1.x`, until `ok`.
    Greeting,
    /// `monitor` sent, until `ok`.
    Dump,
    /// Live updates.
    Live,
}

/// What a line asks of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Nothing.
    Continue,
    /// The greeting ended: send `monitor`.
    Greeted,
    /// The dump ended: the view is whole.
    Synced,
    /// The summary may have changed.
    Changed,
}

/// One connection's state: its phase and its view, fed line by line. Pure,
/// so the protocol is tested without sockets.
#[derive(Debug)]
struct Conversation {
    phase: Phase,
    view: BabelView,
    version: Option<String>,
}

impl Conversation {
    fn new(max_routes: usize) -> Conversation {
        Conversation {
            phase: Phase::Start,
            view: BabelView::new(max_routes),
            version: None,
        }
    }

    fn on_frame(&mut self, frame: Frame, counters: &mut Counters) -> Result<Step, SessionError> {
        let text = match frame {
            Frame::Line(text) => text,
            Frame::TooLong => {
                counters.count(Counter::LinesTooLong);
                return Ok(Step::Continue);
            }
            Frame::NotUtf8 => {
                counters.count(Counter::LinesMalformed);
                return Ok(Step::Continue);
            }
        };
        let line = match parse_line(&text) {
            Ok(Some(line)) => line,
            Ok(None) => {
                if self.phase == Phase::Start {
                    return Err(SessionError::NotBabel(first_chars(&text)));
                }
                counters.count(Counter::LinesIgnored);
                return Ok(Step::Continue);
            }
            Err(e) => {
                if self.phase == Phase::Start {
                    return Err(SessionError::NotBabel(first_chars(&text)));
                }
                tracing::debug!(line = %first_chars(&text), error = %e, "malformed babeld line");
                counters.count(Counter::LinesMalformed);
                return Ok(Step::Continue);
            }
        };
        match (self.phase, line) {
            (Phase::Start, BabelLine::Protocol(version)) => {
                if version.split('.').next() != Some("1") {
                    return Err(SessionError::Version(first_chars(&version)));
                }
                self.phase = Phase::Greeting;
                Ok(Step::Continue)
            }
            (Phase::Start, _) => Err(SessionError::NotBabel(first_chars(&text))),
            (Phase::Greeting, BabelLine::Ok) => {
                self.phase = Phase::Dump;
                Ok(Step::Greeted)
            }
            (Phase::Dump, BabelLine::Ok) => {
                self.phase = Phase::Live;
                Ok(Step::Synced)
            }
            (Phase::Greeting | Phase::Dump, BabelLine::No(_) | BabelLine::Bad) => {
                Err(SessionError::Refused(first_chars(&text)))
            }
            (_, BabelLine::Version(version)) => {
                self.version = Some(first_chars(&version));
                Ok(Step::Continue)
            }
            (phase, line) => match self.view.apply(&line) {
                Ok(true) if phase == Phase::Live => Ok(Step::Changed),
                Ok(_) => Ok(Step::Continue),
                Err(refused) => {
                    tracing::debug!(%refused, "babeld route not kept");
                    counters.count(Counter::RoutesRefused);
                    Ok(Step::Continue)
                }
            },
        }
    }
}

fn first_chars(s: &str) -> String {
    s.chars().take(80).collect()
}

// ===== the task =====

/// A byte stream to babeld, UNIX or TCP.
trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

async fn connect(source: &BabelSource) -> io::Result<Box<dyn Connection>> {
    Ok(match source {
        BabelSource::Unix(path) => Box::new(UnixStream::connect(path).await?),
        BabelSource::Tcp(port) => Box::new(TcpStream::connect((Ipv6Addr::LOCALHOST, *port)).await?),
    })
}

/// Follows babeld's local interface until shutdown.
#[derive(Debug)]
pub struct BabelClient {
    source: BabelSource,
    max_routes: usize,
    backoff: Backoff,
    sync_timeout: Duration,
    counters: Counters,
}

impl BabelClient {
    /// A client of `source` keeping at most `max_routes` routes, with the
    /// reconnection backoff of the daemons' sockets ([`Backoff::rpc`]).
    pub fn new(source: BabelSource, max_routes: usize) -> BabelClient {
        BabelClient {
            source,
            max_routes,
            backoff: Backoff::rpc(),
            sync_timeout: SYNC_TIMEOUT,
            counters: Counters::default(),
        }
    }

    /// The client `config` asks for; `None` when it names no babeld.
    pub fn from_config(config: &BabelLocalConfig) -> Option<BabelClient> {
        Some(BabelClient::new(config.source()?, config.babel_max_routes))
    }

    /// Another reconnection backoff (tests use milliseconds).
    pub fn with_backoff(mut self, backoff: Backoff) -> BabelClient {
        self.backoff = backoff;
        self
    }

    /// The channel to give to [`BabelClient::run`]: starts disconnected.
    pub fn channel() -> (watch::Sender<BabelStatus>, watch::Receiver<BabelStatus>) {
        watch::channel(BabelStatus::default())
    }

    /// Connects, follows and reconnects until `shutdown`; every change of
    /// the heard prefixes, and every connect and disconnect, is a new value
    /// of `status`.
    pub async fn run(mut self, status: watch::Sender<BabelStatus>, shutdown: Shutdown) {
        // Logged at warn once per streak of failures, then at debug: a node
        // without babeld would otherwise log every five seconds.
        let mut failing = false;
        loop {
            if shutdown.is_requested() {
                break;
            }
            let mut synced = false;
            let result = tokio::select! {
                r = self.session(&status, &mut synced) => r,
                () = shutdown.requested() => break,
            };
            self.counters.count(Counter::Disconnects);
            self.disconnected(&status);
            if synced {
                self.backoff.reset();
                failing = false;
            }
            match result {
                Ok(()) => {}
                Err(e) if failing => {
                    tracing::debug!(babeld = %self.source, error = %e, "babeld local interface");
                }
                Err(e) => {
                    tracing::warn!(babeld = %self.source, error = %e, retry_in = ?self.backoff.peek(), "babeld local interface lost; using kernel routes");
                    failing = true;
                }
            }
            if !self.backoff.wait(&shutdown).await {
                break;
            }
        }
        self.disconnected(&status);
    }

    fn disconnected(&self, status: &watch::Sender<BabelStatus>) {
        status.send_if_modified(|s| {
            let news = s.connected || s.synced || !s.prefixes.is_empty();
            *s = BabelStatus {
                counters: self.counters.clone(),
                ..BabelStatus::default()
            };
            news
        });
    }

    /// One connection, until babeld closes it (`Err(Closed)`) or fails.
    async fn session(
        &mut self,
        status: &watch::Sender<BabelStatus>,
        synced: &mut bool,
    ) -> Result<(), SessionError> {
        let mut stream = tokio::time::timeout(self.sync_timeout, connect(&self.source))
            .await
            .map_err(|_| SessionError::Timeout(self.sync_timeout))?
            .map_err(SessionError::Connect)?;
        let deadline = tokio::time::Instant::now() + self.sync_timeout;
        let mut conversation = Conversation::new(self.max_routes);
        let mut lines = LineBuffer::new(MAX_LINE);
        let mut buf = vec![0u8; MAX_LINE];
        let mut frames = Vec::new();
        loop {
            let n = if *synced {
                stream.read(&mut buf).await
            } else {
                tokio::time::timeout_at(deadline, stream.read(&mut buf))
                    .await
                    .map_err(|_| SessionError::Timeout(self.sync_timeout))?
            }
            .map_err(SessionError::Io)?;
            if n == 0 {
                return Err(SessionError::Closed);
            }
            lines.push(buf.get(..n).unwrap_or_default(), &mut frames);
            let mut news = false;
            for frame in frames.drain(..) {
                match conversation.on_frame(frame, &mut self.counters)? {
                    Step::Continue => {}
                    Step::Greeted => {
                        stream
                            .write_all(b"monitor\n")
                            .await
                            .map_err(SessionError::Io)?;
                        self.counters.count(Counter::Connects);
                        let (version, my_id) = (conversation.version.clone(), conversation.view.my_id());
                        tracing::info!(babeld = %self.source, version = version.as_deref().unwrap_or("?"), "connected to babeld's local interface");
                        status.send_modify(|s| {
                            s.connected = true;
                            s.synced = false;
                            s.version = version;
                            s.my_id = my_id;
                        });
                    }
                    Step::Synced => {
                        *synced = true;
                        self.counters.count(Counter::Syncs);
                        news = true;
                    }
                    Step::Changed => news = true,
                }
            }
            let view = &conversation.view;
            let counters = &self.counters;
            status.send_if_modified(|s| {
                s.counters = counters.clone();
                s.routes = view.route_count();
                if !(news && *synced) {
                    return false;
                }
                let prefixes = view.default_routes();
                let changed = !s.synced || s.prefixes != prefixes;
                s.synced = true;
                s.prefixes = prefixes;
                changed
            });
        }
    }
}
