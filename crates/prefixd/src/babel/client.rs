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
    ConnectFailures => "babel_connect_failures": "Connection attempts that failed (babeld not running, wrong path or port).",
    Disconnects => "babel_disconnects": "Connections lost or given up once made, after a greeting or not.",
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
pub enum Frame {
    /// A whole line, without its newline.
    Line(String),
    /// A line longer than the limit, dropped.
    TooLong,
    /// A line that is not UTF-8, dropped.
    NotUtf8,
}

/// Cuts the stream into lines of at most `max` bytes. A longer line is
/// dropped whole (one [`Frame::TooLong`]); memory stays bounded by `max`.
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    max: usize,
    /// Inside a line already reported too long: drop up to its newline.
    skipping: bool,
}

impl LineBuffer {
    /// An empty buffer for lines of at most `max` bytes.
    pub fn new(max: usize) -> LineBuffer {
        LineBuffer {
            buf: Vec::new(),
            max,
            skipping: false,
        }
    }

    /// Appends the lines that `bytes` complete to `frames`.
    pub fn push(&mut self, bytes: &[u8], frames: &mut Vec<Frame>) {
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
pub enum Step {
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
pub struct Conversation {
    phase: Phase,
    view: BabelView,
    version: Option<String>,
}

impl Conversation {
    /// A conversation not yet greeted, keeping at most `max_routes` routes.
    pub fn new(max_routes: usize) -> Conversation {
        Conversation {
            phase: Phase::Start,
            view: BabelView::new(max_routes),
            version: None,
        }
    }

    /// Takes one line of babeld's stream.
    pub fn on_frame(
        &mut self,
        frame: Frame,
        counters: &mut Counters,
    ) -> Result<Step, SessionError> {
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
            let end = tokio::select! {
                e = self.session(&status, &mut synced) => e,
                () = shutdown.requested() => break,
            };
            self.counters.count(match end {
                SessionError::Connect(_) => Counter::ConnectFailures,
                _ => Counter::Disconnects,
            });
            self.disconnected(&status);
            if synced {
                self.backoff.reset();
                failing = false;
            }
            if failing {
                tracing::debug!(babeld = %self.source, error = %end, "babeld local interface");
            } else {
                tracing::warn!(babeld = %self.source, error = %end, retry_in = ?self.backoff.peek(), "no babeld local interface: babel routes unknown");
                failing = true;
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

    /// One connection, until babeld closes it ([`SessionError::Closed`]) or
    /// something fails; sets `synced` once the dump is complete.
    async fn session(
        &mut self,
        status: &watch::Sender<BabelStatus>,
        synced: &mut bool,
    ) -> SessionError {
        match self.follow(status, synced).await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn follow(
        &mut self,
        status: &watch::Sender<BabelStatus>,
        synced: &mut bool,
    ) -> Result<std::convert::Infallible, SessionError> {
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
                        let (version, my_id) =
                            (conversation.version.clone(), conversation.view.my_id());
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

#[cfg(test)]
mod tests {
    use super::*;
    use l3roamd_types::damage::{damaged, xorshift};
    use std::path::PathBuf;
    use tokio::net::UnixListener;

    const GREETING: &str =
        "BABEL 1.0\nversion babeld-1.13.1\nhost fake\nmy-id 02:00:00:ff:fe:00:09:01\nok\n";
    const GW1: &str = "02:00:00:ff:fe:00:01:01";
    const GW2: &str = "02:00:00:ff:fe:00:02:01";
    const WAIT: Duration = Duration::from_secs(5);

    fn lines(buffer: &mut LineBuffer, bytes: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        buffer.push(bytes, &mut frames);
        frames
    }

    #[test]
    fn line_buffer_joins_splits_and_drops_long_lines() {
        let mut b = LineBuffer::new(8);
        assert_eq!(lines(&mut b, b"ok\nad"), [Frame::Line("ok".into())]);
        assert_eq!(
            lines(&mut b, b"d\n\n"),
            [Frame::Line("add".into()), Frame::Line(String::new())]
        );
        // Exactly 8 bytes is fine, 9 is not; the rest of a long line is dropped
        // across reads, and the next line is whole again.
        assert_eq!(
            lines(&mut b, b"12345678\n"),
            [Frame::Line("12345678".into())]
        );
        assert_eq!(lines(&mut b, b"1234"), []);
        assert_eq!(lines(&mut b, b"56789"), [Frame::TooLong]);
        assert_eq!(lines(&mut b, b"more and more"), []);
        assert_eq!(lines(&mut b, b"...\nbad\n"), [Frame::Line("bad".into())]);
        assert_eq!(lines(&mut b, b"\xff\xfe\n"), [Frame::NotUtf8]);
    }

    fn feed(
        c: &mut Conversation,
        counters: &mut Counters,
        text: &str,
    ) -> Result<Vec<Step>, SessionError> {
        text.lines()
            .map(|l| c.on_frame(Frame::Line(l.to_string()), counters))
            .collect()
    }

    #[test]
    fn conversation_greeting_dump_live() {
        let mut counters = Counters::default();
        let mut c = Conversation::new(16);
        let steps = feed(&mut c, &mut counters, GREETING).unwrap();
        assert_eq!(steps.last(), Some(&Step::Greeted));
        assert_eq!(c.version.as_deref(), Some("babeld-1.13.1"));
        let route = format!("add route 1 prefix ::/0 from 2001:db8:1::/64 installed yes id {GW1} metric 96 refmetric 0 via fe80::1 if mesh0");
        // During the dump a default route is no news yet; the `ok` is.
        assert_eq!(
            feed(&mut c, &mut counters, &format!("{route}\nok")).unwrap(),
            [Step::Continue, Step::Synced]
        );
        let change = route
            .replace("add", "change")
            .replace("metric 96", "metric 100");
        assert_eq!(
            feed(&mut c, &mut counters, &change).unwrap(),
            [Step::Changed]
        );
        assert_eq!(c.view.default_routes()[0].best_metric, 100);
        feed(&mut c, &mut counters, "add route 2 prefix 10.0.0.0/8 from 0.0.0.0/0 installed yes id 02:00:00:ff:fe:00:01:01 metric 1 refmetric 0 via fe80::1 if m\nwhatever\nadd route zz\n").unwrap();
        assert_eq!(counters.get(Counter::LinesIgnored), 2);
        assert_eq!(counters.get(Counter::LinesMalformed), 1);
    }

    #[test]
    fn conversation_refuses_what_is_not_babeld() {
        let mut counters = Counters::default();
        for (text, want) in [
            ("SSH-2.0-OpenSSH_9.6\n", "not babeld"),
            ("BABEL 2.0\n", "unsupported"),
            ("\n", "not babeld"),
            ("my-id 02\n", "not babeld"),
            ("BABEL 1.0\nbad\n", "answered"),
            ("BABEL 1.0\nok\nno\n", "answered"),
        ] {
            let e = feed(&mut Conversation::new(16), &mut counters, text).unwrap_err();
            assert!(e.to_string().contains(want), "{text:?}: {e}");
        }
    }

    // ===== against a fake babeld =====

    /// A directory removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("prefixd-babel-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Greets like babeld and waits for `monitor`.
    async fn greet<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut S) {
        conn.write_all(GREETING.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while !got.ends_with(b"monitor\n") {
            let n = tokio::time::timeout(WAIT, conn.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "client closed before monitor");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"monitor\n");
    }

    async fn until(
        rx: &mut watch::Receiver<BabelStatus>,
        what: impl FnMut(&BabelStatus) -> bool,
    ) -> BabelStatus {
        tokio::time::timeout(WAIT, rx.wait_for(what))
            .await
            .expect("status not reached in time")
            .expect("client gone")
            .clone()
    }

    fn ss_route(id: &str, from: &str, gw: &str, metric: u16, installed: bool) -> String {
        let installed = if installed { "yes" } else { "no" };
        format!("add route {id} prefix ::/0 from {from} installed {installed} id {gw} metric {metric} refmetric 0 via fe80::{id} if mesh0\n")
    }

    #[tokio::test]
    async fn follows_a_fake_babeld_across_a_restart() {
        let dir = TempDir::new("restart");
        let path = dir.0.join("babeld.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (tx, mut rx) = BabelClient::channel();
        let (stop, shutdown) = Shutdown::manual();
        let client = BabelClient::new(BabelSource::Unix(path.clone()), 64).with_backoff(
            Backoff::new(Duration::from_millis(1), Duration::from_millis(10)),
        );
        let task = tokio::spawn(client.run(tx, shutdown));

        // First babeld: greeting, dump, updates.
        let (mut conn, _) = tokio::time::timeout(WAIT, listener.accept())
            .await
            .unwrap()
            .unwrap();
        greet(&mut conn).await;
        let s = until(&mut rx, |s| s.connected).await;
        assert!(!s.synced);
        assert_eq!(s.version.as_deref(), Some("babeld-1.13.1"));
        assert_eq!(s.my_id, Some("02:00:00:ff:fe:00:09:01".parse().unwrap()));
        let mut dump = String::new();
        dump += "add interface mesh0 up true ipv6 fe80::ff:fe00:901\n";
        dump += "add neighbour 5581f1b3d010 address fe80::ff:fe00:101 if mesh0 reach ffff ureach 0000 rxcost 96 txcost 96 cost 96\n";
        dump += "add xroute fdff::9/128-::/0 prefix fdff::9/128 from ::/0 metric 0\n";
        dump += &ss_route("a1", "2001:db8:1::/64", GW1, 96, true);
        dump += &format!("add route a2 prefix fdff::1/128 from ::/0 installed yes id {GW1} metric 96 refmetric 0 via fe80::a2 if mesh0\n");
        dump += &format!("add route a3 prefix 10.0.0.0/8 from 0.0.0.0/0 installed yes id {GW1} metric 96 refmetric 0 via fe80::a3 if mesh0\n");
        dump += "add gizmo 1 colour blue\n";
        dump += "add route a4 prefix ::/0\n";
        dump += &"x".repeat(MAX_LINE + 1);
        dump += "\nok\n";
        conn.write_all(dump.as_bytes()).await.unwrap();
        let s = until(&mut rx, |s| s.synced).await;
        assert!(s.connected);
        assert_eq!(s.routes, 2);
        assert_eq!(s.prefixes.len(), 1);
        assert_eq!(s.prefixes[0].source, "2001:db8:1::/64".parse().unwrap());
        assert_eq!(s.prefixes[0].gateways.len(), 1);
        assert!(s.prefixes[0].installed);
        assert_eq!(s.lines_ignored(), 2);
        assert_eq!(s.lines_malformed(), 1);
        assert_eq!(s.counters.get(Counter::LinesTooLong), 1);

        // A second gateway for the same prefix, its line split across writes.
        let update = ss_route("b1", "2001:db8:1::/64", GW2, 50, false);
        let (head, tail) = update.split_at(30);
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.flush().await.unwrap();
        tokio::task::yield_now().await;
        conn.write_all(tail.as_bytes()).await.unwrap();
        let s = until(&mut rx, |s| {
            s.prefixes.first().is_some_and(|p| p.gateways.len() == 2)
        })
        .await;
        assert_eq!(s.prefixes[0].best_metric, 50);
        assert_eq!(s.prefixes[0].gateways[0].router_id, GW2.parse().unwrap());

        // babeld stops: the view goes, the status says so.
        drop(conn);
        let s = until(&mut rx, |s| !s.connected).await;
        assert!(!s.synced);
        assert!(s.prefixes.is_empty());
        assert_eq!(s.routes, 0);

        // babeld is back with other routes: nothing of the first one remains.
        let (mut conn, _) = tokio::time::timeout(WAIT, listener.accept())
            .await
            .unwrap()
            .unwrap();
        greet(&mut conn).await;
        conn.write_all(ss_route("a1", "2001:db8:2::/64", GW2, 80, true).as_bytes())
            .await
            .unwrap();
        conn.write_all(b"ok\n").await.unwrap();
        let s = until(&mut rx, |s| s.synced).await;
        assert_eq!(s.prefixes.len(), 1);
        assert_eq!(s.prefixes[0].source, "2001:db8:2::/64".parse().unwrap());
        assert_eq!(s.prefixes[0].gateways.len(), 1);
        assert_eq!(s.counters.get(Counter::Connects), 2);
        assert_eq!(s.counters.get(Counter::Syncs), 2);
        assert_eq!(s.counters.get(Counter::Disconnects), 1);

        // Shutdown ends the task, with a last "disconnected".
        stop.send(true).unwrap();
        tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
        assert!(!rx.borrow().connected);
        assert!(rx.borrow().prefixes.is_empty());
    }

    #[tokio::test]
    async fn waits_for_babeld_to_appear_and_stops_while_waiting() {
        let dir = TempDir::new("absent");
        let path = dir.0.join("babeld.sock");
        let (tx, mut rx) = BabelClient::channel();
        let (stop, shutdown) = Shutdown::manual();
        let client = BabelClient::new(BabelSource::Unix(path.clone()), 64).with_backoff(
            Backoff::new(Duration::from_millis(1), Duration::from_millis(5)),
        );
        let task = tokio::spawn(client.run(tx, shutdown));
        // Nobody listens yet: the client retries until the socket appears.
        tokio::time::timeout(WAIT, async {
            while rx.borrow().counters.get(Counter::ConnectFailures) < 2 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        assert!(!rx.borrow().connected);
        let listener = UnixListener::bind(&path).unwrap();
        let (mut conn, _) = tokio::time::timeout(WAIT, listener.accept())
            .await
            .unwrap()
            .unwrap();
        greet(&mut conn).await;
        conn.write_all(b"ok\n").await.unwrap();
        let s = until(&mut rx, |s| s.synced).await;
        assert!(s.prefixes.is_empty());
        // A non-babeld answer on reconnect is refused, and the client keeps trying.
        drop(conn);
        let (mut conn, _) = tokio::time::timeout(WAIT, listener.accept())
            .await
            .unwrap()
            .unwrap();
        conn.write_all(b"HTTP/1.1 400 Bad Request\n").await.unwrap();
        let (_conn, _) = tokio::time::timeout(WAIT, listener.accept())
            .await
            .unwrap()
            .unwrap();
        stop.send(true).unwrap();
        tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
        assert!(!rx.borrow().connected);
    }

    #[tokio::test]
    async fn speaks_tcp_on_localhost() {
        let Ok(listener) = tokio::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).await else {
            // Not silently in CI: there loopback IPv6 must work.
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "cannot bind [::1]"
            );
            eprintln!("no [::1] here: skipped");
            return;
        };
        let port = listener.local_addr().unwrap().port();
        let (tx, mut rx) = BabelClient::channel();
        let (stop, shutdown) = Shutdown::manual();
        let task = tokio::spawn(BabelClient::new(BabelSource::Tcp(port), 64).run(tx, shutdown));
        let (mut conn, _) = tokio::time::timeout(WAIT, listener.accept())
            .await
            .unwrap()
            .unwrap();
        greet(&mut conn).await;
        conn.write_all(ss_route("a1", "2001:db8:1::/64", GW1, 96, true).as_bytes())
            .await
            .unwrap();
        conn.write_all(b"ok\n").await.unwrap();
        let s = until(&mut rx, |s| s.synced).await;
        assert_eq!(s.prefixes.len(), 1);
        stop.send(true).unwrap();
        tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    }

    // ===== property: random and damaged input =====

    #[test]
    fn random_and_damaged_streams_never_panic() {
        let mut next = xorshift(0x5eed_0dd0_0000_0004);
        let mut stream = String::from(GREETING);
        stream.push_str(&ss_route("1", "2001:db8:1::/64", GW1, 96, true));
        stream.push_str("ok\n");
        stream.push_str(&ss_route("2", "2001:db8:1::/64", GW2, 128, false));
        stream.push_str("flush route 1 prefix ::/0 from 2001:db8:1::/64 installed no id 02:00:00:ff:fe:00:01:01 metric 65535 refmetric 65535 via fe80::1 if mesh0\n");
        for _ in 0..2000 {
            let bytes = damaged(stream.as_bytes(), &mut next);
            let mut buffer = LineBuffer::new(64);
            let mut conversation = Conversation::new(4);
            let mut counters = Counters::default();
            let chunk = (next() % 40 + 1) as usize;
            'stream: for read in bytes.chunks(chunk) {
                for frame in lines(&mut buffer, read) {
                    if conversation.on_frame(frame, &mut counters).is_err() {
                        break 'stream;
                    }
                }
            }
        }
    }
}
