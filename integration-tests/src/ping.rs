//! ICMPv6 echo from inside a namespace, without the `ping` tool.
//!
//! A short-lived thread enters the namespace with `setns(2)` (which moves only
//! the calling thread), opens a raw ICMPv6 socket there and sends echo
//! requests at a fixed interval, recording the round trip of each reply. The
//! machine need not have iputils installed, and later benchmarks get exact
//! per-sequence timings (a handover gap is a run of missing sequences).

use std::fs::File;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

const ECHO_REQUEST: u8 = 128;
const ECHO_REPLY: u8 = 129;
const HEADER_LEN: usize = 8;
const PAYLOAD: &[u8; 16] = b"l3roamd-lab-ping";

/// The outcome of one ping run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingResult {
    /// Destination that was pinged.
    pub destination: Ipv6Addr,
    /// Echo requests handed to the kernel.
    pub transmitted: u32,
    /// Distinct echo replies received.
    pub received: u32,
    /// Round-trip time per sequence number (index = sequence), `None` if lost.
    pub rtts: Vec<Option<Duration>>,
    /// Requests the kernel refused to send (e.g. no route), with the first reason.
    pub send_errors: u32,
    /// The first send error, if any.
    pub first_error: Option<String>,
    /// ICMPv6 destination-unreachable errors about our requests, by code
    /// (3 = address unreachable), with the router that sent them.
    pub unreachable: Vec<(u8, Ipv6Addr)>,
    /// ICMPv6 time-exceeded errors (code 0: hop limit, a routing loop)
    /// about our requests, with the router that sent them.
    pub time_exceeded: Vec<(u8, Ipv6Addr)>,
}

impl PingResult {
    /// True when every request got its reply.
    pub fn all_received(&self) -> bool {
        self.transmitted > 0 && self.received == self.transmitted && self.send_errors == 0
    }

    /// Mean round-trip time of the replies received.
    pub fn mean_rtt(&self) -> Option<Duration> {
        let got: Vec<Duration> = self.rtts.iter().flatten().copied().collect();
        let n = u32::try_from(got.len()).ok().filter(|n| *n > 0)?;
        Some(got.iter().sum::<Duration>() / n)
    }
}

impl std::fmt::Display for PingResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} transmitted, {} received",
            self.destination, self.transmitted, self.received
        )?;
        if let Some(rtt) = self.mean_rtt() {
            write!(f, ", mean rtt {rtt:?}")?;
        }
        if let Some(e) = &self.first_error {
            write!(f, ", {} send errors (first: {e})", self.send_errors)?;
        }
        Ok(())
    }
}

/// Sends `count` echo requests to `dst` from the namespace at `netns_path`,
/// one per `interval`, and waits up to `linger` after the last for replies.
///
/// `iface` names the outgoing interface, needed for link-local destinations.
pub fn ping(
    netns_path: &Path,
    dst: Ipv6Addr,
    iface: Option<&str>,
    count: u32,
    interval: Duration,
    linger: Duration,
) -> Result<PingResult> {
    ping_in(netns_path, dst, iface, None, count, interval, linger)
}

/// Like [`ping`], with the echo requests sent from `source` (bound to the
/// socket): which of a client's addresses a packet leaves with decides the
/// source-specific route, and so the gateway, it takes.
pub fn ping_from(
    netns_path: &Path,
    dst: Ipv6Addr,
    source: Ipv6Addr,
    count: u32,
    interval: Duration,
    linger: Duration,
) -> Result<PingResult> {
    ping_in(netns_path, dst, None, Some(source), count, interval, linger)
}

pub(crate) fn ping_in(
    netns_path: &Path,
    dst: Ipv6Addr,
    iface: Option<&str>,
    source: Option<Ipv6Addr>,
    count: u32,
    interval: Duration,
    linger: Duration,
) -> Result<PingResult> {
    let iface = iface
        .map(|i| {
            std::ffi::CString::new(i).map_err(|_| Error::Usage(format!("bad interface name {i:?}")))
        })
        .transpose()?;
    let ns_path = netns_path.to_path_buf();
    let ns = File::open(netns_path)
        .map_err(|e| Error::io(format!("opening namespace {}", netns_path.display()), e))?;
    let handle = thread::Builder::new()
        .name("lab-ping".into())
        .spawn(move || -> Result<PingResult> {
            // SAFETY: setns on a valid open fd; it changes only this thread's namespace.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(Error::io(
                    "setns(CLONE_NEWNET)",
                    std::io::Error::last_os_error(),
                ));
            }
            // Interface indexes are per namespace: look it up after setns.
            let scope = match &iface {
                // SAFETY: a valid NUL-terminated string.
                Some(name) => match unsafe { libc::if_nametoindex(name.as_ptr()) } {
                    0 => {
                        return Err(Error::io(
                            format!("no interface {name:?} in {}", ns_name(&ns_path)),
                            std::io::Error::last_os_error(),
                        ))
                    }
                    index => index,
                },
                None => 0,
            };
            run(dst, scope, source, count, interval, linger)
        })
        .map_err(|e| Error::io("spawning ping thread", e))?;
    handle
        .join()
        .map_err(|_| Error::Usage("ping thread panicked".into()))?
}

// ===== a ping that runs until it is stopped =====

/// An ICMPv6 error about one of a [`LivePing`]'s requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpError {
    /// When it arrived.
    pub at: Instant,
    /// ICMPv6 type: 1 destination unreachable, 3 time exceeded.
    pub icmp_type: u8,
    /// ICMPv6 code (type 1: 0 no route, 3 address unreachable; type 3: 0 hop limit).
    pub code: u8,
    /// The router that sent it.
    pub from: Ipv6Addr,
}

impl IcmpError {
    /// True for "Time exceeded: Hop limit", the mark of a routing loop.
    pub fn is_loop(&self) -> bool {
        self.icmp_type == TIME_EXCEEDED
    }

    /// True for "Destination unreachable: No route".
    pub fn is_no_route(&self) -> bool {
        self.icmp_type == DEST_UNREACHABLE && self.code == 0
    }

    /// Short name as ping prints it, e.g. `Time exceeded: Hop limit`.
    pub fn name(&self) -> String {
        match (self.icmp_type, self.code) {
            (TIME_EXCEEDED, 0) => "Time exceeded: Hop limit".into(),
            (TIME_EXCEEDED, c) => format!("Time exceeded: code {c}"),
            (DEST_UNREACHABLE, 0) => "Destination unreachable: No route".into(),
            (DEST_UNREACHABLE, 3) => "Destination unreachable: Address unreachable".into(),
            (DEST_UNREACHABLE, c) => format!("Destination unreachable: code {c}"),
            (t, c) => format!("ICMPv6 type {t} code {c}"),
        }
    }
}

impl std::fmt::Display for IcmpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} from {}", self.name(), self.from)
    }
}

/// Hard cap on the requests of one [`LivePing`] (sequence numbers are 16 bits).
pub const LIVE_MAX_REQUESTS: u32 = 60_000;

/// Per-request outcome of a [`LivePing`].
#[derive(Debug, Clone, Default)]
pub struct PingRun {
    /// Destination that was pinged.
    pub destination: Option<Ipv6Addr>,
    /// When each request was handed to the kernel (`None`: refused), by sequence.
    pub sent: Vec<Option<Instant>>,
    /// When its reply arrived, by sequence.
    pub received: Vec<Option<Instant>>,
    /// Requests the kernel refused.
    pub send_errors: u64,
    /// The first refusal.
    pub first_error: Option<String>,
    /// Replies received twice.
    pub duplicates: u64,
    /// ICMPv6 errors about our requests, in order of arrival.
    pub errors: Vec<IcmpError>,
}

impl PingRun {
    /// Arrival of the last reply that arrived before `t`.
    pub fn last_reply_before(&self, t: Instant) -> Option<Instant> {
        self.received
            .iter()
            .flatten()
            .filter(|r| **r < t)
            .max()
            .copied()
    }

    /// Arrival of the first reply that arrived at or after `t`.
    pub fn first_reply_after(&self, t: Instant) -> Option<Instant> {
        self.received
            .iter()
            .flatten()
            .filter(|r| **r >= t)
            .min()
            .copied()
    }

    /// Requests sent at or after `t` that got no reply, leaving out those
    /// sent within `tail` of the last request (their replies may still be
    /// on the way when the ping stopped).
    pub fn lost_sent_after(&self, t: Instant, tail: Duration) -> usize {
        let last = self.sent.iter().flatten().max().copied();
        self.sent
            .iter()
            .zip(&self.received)
            .filter(|(s, r)| {
                r.is_none() && s.is_some_and(|s| s >= t && last.is_none_or(|l| s + tail <= l))
            })
            .count()
    }

    /// Requests sent at or after `t`.
    pub fn sent_after(&self, t: Instant) -> usize {
        self.sent.iter().flatten().filter(|s| **s >= t).count()
    }

    /// The longest round trip of the requests sent at or after `t`: a
    /// stall that held packets and delivered them in a burst shows here.
    pub fn max_rtt_sent_after(&self, t: Instant) -> Option<Duration> {
        self.sent
            .iter()
            .zip(&self.received)
            .filter_map(|(s, r)| match (s, r) {
                (Some(s), Some(r)) if *s >= t => Some(r.saturating_duration_since(*s)),
                _ => None,
            })
            .max()
    }

    /// The ICMPv6 errors that arrived at or after `t`.
    pub fn errors_after(&self, t: Instant) -> Vec<IcmpError> {
        self.errors.iter().filter(|e| e.at >= t).copied().collect()
    }
}

/// What a [`LivePing`] shares with its thread.
#[derive(Default)]
struct LiveShared {
    stop: std::sync::atomic::AtomicBool,
    replies: std::sync::Mutex<Vec<Instant>>,
    icmp_errors: std::sync::atomic::AtomicUsize,
    /// Destinations that answered at least once (a [`MultiPing`]'s).
    answered: std::sync::atomic::AtomicUsize,
    error: std::sync::Mutex<Option<String>>,
}

/// A ping that sends one echo request per interval until it is stopped,
/// recording the send and arrival time of every request and every ICMPv6
/// error about them (time exceeded, destination unreachable). Roaming
/// measurements run one from the gateway to the client and one back.
pub struct LivePing {
    shared: std::sync::Arc<LiveShared>,
    handle: Option<thread::JoinHandle<Result<PingRun>>>,
    linger: std::sync::Arc<std::sync::Mutex<Duration>>,
}

impl std::fmt::Debug for LivePing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LivePing")
            .field("replies", &self.replies())
            .finish()
    }
}

impl LivePing {
    /// Starts pinging `dst` from the namespace at `netns_path` every `interval`.
    pub fn start(netns_path: &Path, dst: Ipv6Addr, interval: Duration) -> Result<LivePing> {
        LivePing::start_from(netns_path, None, dst, interval)
    }

    /// Like [`LivePing::start`], from the address `source` if given (a
    /// flow from one of a client's addresses).
    pub fn start_from(
        netns_path: &Path,
        source: Option<Ipv6Addr>,
        dst: Ipv6Addr,
        interval: Duration,
    ) -> Result<LivePing> {
        let ns = File::open(netns_path)
            .map_err(|e| Error::io(format!("opening namespace {}", netns_path.display()), e))?;
        let shared = std::sync::Arc::new(LiveShared::default());
        let linger = std::sync::Arc::new(std::sync::Mutex::new(Duration::from_millis(500)));
        let (s, l) = (shared.clone(), linger.clone());
        let handle = thread::Builder::new()
            .name("lab-live-ping".into())
            .spawn(move || {
                let result = live_in_netns(&ns, source, dst, interval, &s, &l);
                if let Err(e) = &result {
                    if let Ok(mut slot) = s.error.lock() {
                        *slot = Some(e.to_string());
                    }
                }
                result
            })
            .map_err(|e| Error::io("spawning ping thread", e))?;
        Ok(LivePing {
            shared,
            handle: Some(handle),
            linger,
        })
    }

    /// Replies received so far.
    pub fn replies(&self) -> usize {
        self.shared.replies.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Replies that arrived at or after `t`.
    pub fn replies_since(&self, t: Instant) -> usize {
        self.shared
            .replies
            .lock()
            .map(|r| r.iter().filter(|a| **a >= t).count())
            .unwrap_or(0)
    }

    /// ICMPv6 errors about our requests received so far.
    pub fn icmp_errors(&self) -> usize {
        self.shared
            .icmp_errors
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A fatal error of the ping thread, if it ended with one.
    pub fn error(&self) -> Option<String> {
        self.shared.error.lock().ok().and_then(|e| e.clone())
    }

    /// Stops sending, waits up to `linger` for the replies still missing, and returns the run.
    pub fn stop(mut self, linger: Duration) -> Result<PingRun> {
        if let Ok(mut l) = self.linger.lock() {
            *l = linger;
        }
        self.shared
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => h
                .join()
                .map_err(|_| Error::Usage("ping thread panicked".into()))?,
            None => Err(Error::Usage("ping already stopped".into())),
        }
    }
}

impl Drop for LivePing {
    fn drop(&mut self) {
        self.shared
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn live_in_netns(
    ns: &File,
    source: Option<Ipv6Addr>,
    dst: Ipv6Addr,
    interval: Duration,
    shared: &LiveShared,
    linger: &std::sync::Mutex<Duration>,
) -> Result<PingRun> {
    // SAFETY: setns on a valid open fd; it moves only this (dedicated) thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(Error::io(
            "setns(CLONE_NEWNET)",
            std::io::Error::last_os_error(),
        ));
    }
    let sock = raw_icmpv6_socket()?;
    if let Some(source) = source {
        bind_to(&sock, source, 0)?;
    }
    let id = next_identifier();
    let mut run = PingRun {
        destination: Some(dst),
        ..PingRun::default()
    };
    let start = Instant::now();
    let mut seq: u32 = 0;
    let mut linger_until: Option<Instant> = None;
    // Bounded: sends stop at LIVE_MAX_REQUESTS, then the linger ends the loop.
    loop {
        let now = Instant::now();
        if linger_until.is_none()
            && (shared.stop.load(std::sync::atomic::Ordering::Relaxed) || seq >= LIVE_MAX_REQUESTS)
        {
            let l = linger
                .lock()
                .map(|l| *l)
                .unwrap_or(Duration::from_millis(500));
            linger_until = Some(now + l);
        }
        match linger_until {
            Some(end) => {
                let all_in = run
                    .sent
                    .iter()
                    .zip(&run.received)
                    .all(|(s, r)| s.is_none() || r.is_some());
                if now >= end || all_in {
                    break;
                }
            }
            None => {
                if now >= start + interval * seq {
                    let s = u16::try_from(seq).unwrap_or(u16::MAX);
                    match send_echo(&sock, dst, 0, id, s) {
                        Ok(()) => run.sent.push(Some(Instant::now())),
                        Err(e) => {
                            run.sent.push(None);
                            run.send_errors += 1;
                            run.first_error.get_or_insert_with(|| e.to_string());
                        }
                    }
                    run.received.push(None);
                    seq += 1;
                    continue;
                }
            }
        }
        let wake = linger_until.unwrap_or(start + interval * seq);
        let wait = wake
            .saturating_duration_since(now)
            .min(Duration::from_millis(20));
        let reply = receive_reply(&sock, dst, id, wait)?;
        let at = Instant::now();
        match reply {
            Some(Reply::Echo(rseq)) => {
                if let Some(slot) = run.received.get_mut(usize::from(rseq)) {
                    if slot.is_some() {
                        run.duplicates += 1;
                    } else {
                        *slot = Some(at);
                        if let Ok(mut r) = shared.replies.lock() {
                            r.push(at);
                        }
                    }
                }
            }
            Some(Reply::Unreachable { code, from }) => run.errors.push(IcmpError {
                at,
                icmp_type: DEST_UNREACHABLE,
                code,
                from,
            }),
            Some(Reply::TimeExceeded { code, from }) => run.errors.push(IcmpError {
                at,
                icmp_type: TIME_EXCEEDED,
                code,
                from,
            }),
            None => {}
        }
        if matches!(
            reply,
            Some(Reply::Unreachable { .. } | Reply::TimeExceeded { .. })
        ) {
            shared
                .icmp_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    Ok(run)
}

// ===== one pinger for many destinations =====

/// Many [`LivePing`]s in one: one thread and one raw socket send an echo
/// request to each destination every interval (the destinations' sends
/// spread evenly over the interval) and record every reply and ICMPv6
/// error per destination. A hundred clients at 10 packets/s are 1,000
/// requests/s, which a hundred ping threads on a 2-core machine would turn
/// into scheduling noise in the very gaps being measured.
pub struct MultiPing {
    shared: std::sync::Arc<LiveShared>,
    handle: Option<thread::JoinHandle<Result<Vec<PingRun>>>>,
}

impl std::fmt::Debug for MultiPing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiPing")
            .field("replies", &self.replies())
            .finish()
    }
}

impl MultiPing {
    /// Starts pinging every address of `dsts` from the namespace at
    /// `netns_path`, each every `interval`.
    pub fn start(netns_path: &Path, dsts: &[Ipv6Addr], interval: Duration) -> Result<MultiPing> {
        if dsts.is_empty() {
            return Err(Error::Usage("a MultiPing needs destinations".into()));
        }
        let ns = File::open(netns_path)
            .map_err(|e| Error::io(format!("opening namespace {}", netns_path.display()), e))?;
        let shared = std::sync::Arc::new(LiveShared::default());
        let s = shared.clone();
        let dsts = dsts.to_vec();
        let handle = thread::Builder::new()
            .name("lab-multi-ping".into())
            .spawn(move || {
                let result = multi_in_netns(&ns, &dsts, interval, &s);
                if let Err(e) = &result {
                    if let Ok(mut slot) = s.error.lock() {
                        *slot = Some(e.to_string());
                    }
                }
                result
            })
            .map_err(|e| Error::io("spawning ping thread", e))?;
        Ok(MultiPing {
            shared,
            handle: Some(handle),
        })
    }

    /// Replies received so far, all destinations together.
    pub fn replies(&self) -> usize {
        self.shared.replies.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Destinations that have answered at least once.
    pub fn answered(&self) -> usize {
        self.shared
            .answered
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A fatal error of the ping thread, if it ended with one.
    pub fn error(&self) -> Option<String> {
        self.shared.error.lock().ok().and_then(|e| e.clone())
    }

    /// Stops sending, waits up to 1 s for missing replies, and returns one
    /// run per destination, in the order given.
    pub fn stop(mut self) -> Result<Vec<PingRun>> {
        self.shared
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => h
                .join()
                .map_err(|_| Error::Usage("ping thread panicked".into()))?,
            None => Err(Error::Usage("ping already stopped".into())),
        }
    }
}

impl Drop for MultiPing {
    fn drop(&mut self) {
        self.shared
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn multi_in_netns(
    ns: &File,
    dsts: &[Ipv6Addr],
    interval: Duration,
    shared: &LiveShared,
) -> Result<Vec<PingRun>> {
    // SAFETY: setns on a valid open fd; it moves only this (dedicated) thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(Error::io(
            "setns(CLONE_NEWNET)",
            std::io::Error::last_os_error(),
        ));
    }
    let sock = raw_icmpv6_socket()?;
    // 1,000 replies/s must not overflow the default receive buffer while
    // this thread is busy sending.
    let size: libc::c_int = 4 << 20;
    // SAFETY: a valid int option of its size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let id = next_identifier();
    let index: std::collections::HashMap<Ipv6Addr, usize> =
        dsts.iter().enumerate().map(|(i, d)| (*d, i)).collect();
    let mut runs: Vec<PingRun> = dsts
        .iter()
        .map(|d| PingRun {
            destination: Some(*d),
            ..PingRun::default()
        })
        .collect();
    let mut answered = vec![false; dsts.len()];
    let n = dsts.len() as u32;
    let start = Instant::now();
    // Request k (all destinations round robin) is due at start + k·interval/n.
    let due = |k: u64| start + interval.mul_f64(k as f64 / f64::from(n));
    let mut k: u64 = 0;
    let max = u64::from(LIVE_MAX_REQUESTS) * u64::from(n);
    let mut linger_until: Option<Instant> = None;
    // Bounded: sends stop at LIVE_MAX_REQUESTS per destination, then the linger ends the loop.
    loop {
        let now = Instant::now();
        if linger_until.is_none()
            && (shared.stop.load(std::sync::atomic::Ordering::Relaxed) || k >= max)
        {
            linger_until = Some(now + Duration::from_secs(1));
        }
        match linger_until {
            Some(end) => {
                let all_in = runs.iter().all(|r| {
                    r.sent
                        .iter()
                        .zip(&r.received)
                        .all(|(s, r)| s.is_none() || r.is_some())
                });
                if now >= end || all_in {
                    break;
                }
            }
            None => {
                if now >= due(k) {
                    let i = (k % u64::from(n)) as usize;
                    let run = &mut runs[i];
                    let seq = u16::try_from(run.sent.len()).unwrap_or(u16::MAX);
                    match send_echo(&sock, dsts[i], 0, id, seq) {
                        Ok(()) => run.sent.push(Some(Instant::now())),
                        Err(e) => {
                            run.sent.push(None);
                            run.send_errors += 1;
                            run.first_error.get_or_insert_with(|| e.to_string());
                        }
                    }
                    run.received.push(None);
                    k += 1;
                    continue;
                }
            }
        }
        let wake = linger_until.unwrap_or(due(k));
        let wait = wake
            .saturating_duration_since(now)
            .min(Duration::from_millis(20));
        let Some((dst, reply)) = receive_any(&sock, id, wait)? else {
            continue;
        };
        let Some((i, run)) = index
            .get(&dst)
            .and_then(|i| runs.get_mut(*i).map(|r| (*i, r)))
        else {
            continue;
        };
        let at = Instant::now();
        match reply {
            Reply::Echo(rseq) => {
                if let Some(slot) = run.received.get_mut(usize::from(rseq)) {
                    if slot.is_some() {
                        run.duplicates += 1;
                    } else {
                        *slot = Some(at);
                        if let Ok(mut r) = shared.replies.lock() {
                            r.push(at);
                        }
                        if let Some(first) = answered.get_mut(i).filter(|a| !**a) {
                            *first = true;
                            shared
                                .answered
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
            }
            Reply::Unreachable { code, from } => run.errors.push(IcmpError {
                at,
                icmp_type: DEST_UNREACHABLE,
                code,
                from,
            }),
            Reply::TimeExceeded { code, from } => run.errors.push(IcmpError {
                at,
                icmp_type: TIME_EXCEEDED,
                code,
                from,
            }),
        }
    }
    Ok(runs)
}

/// Waits up to `wait` for one ICMPv6 packet; returns the destination it is
/// about (the echo's source, or the quoted request's destination) and what it means.
fn receive_any(sock: &OwnedFd, id: u16, wait: Duration) -> Result<Option<(Ipv6Addr, Reply)>> {
    let mut buf = [0u8; 1500];
    let Some((packet, from)) = receive_icmp(sock, wait, &mut buf)? else {
        return Ok(None);
    };
    let about = match packet.first().copied() {
        Some(DEST_UNREACHABLE | TIME_EXCEEDED) => {
            let quoted: [u8; 16] = match packet.get(HEADER_LEN + 24..HEADER_LEN + 40) {
                Some(q) => q.try_into().unwrap_or([0; 16]),
                None => return Ok(None),
            };
            Ipv6Addr::from(quoted)
        }
        _ => from,
    };
    Ok(parse_reply(packet, from, about, id).map(|r| (about, r)))
}

fn ns_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn next_identifier() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Mix in the PID so two test processes pinging in one namespace do not collide.
    (std::process::id() as u16).wrapping_mul(31) ^ NEXT.fetch_add(1, Ordering::Relaxed)
}

fn run(
    dst: Ipv6Addr,
    scope: u32,
    source: Option<Ipv6Addr>,
    count: u32,
    interval: Duration,
    linger: Duration,
) -> Result<PingResult> {
    let sock = raw_icmpv6_socket()?;
    if let Some(source) = source {
        bind_to(&sock, source, scope)?;
    }
    let id = next_identifier();
    let mut result = PingResult {
        destination: dst,
        transmitted: 0,
        received: 0,
        rtts: vec![None; count as usize],
        send_errors: 0,
        first_error: None,
        unreachable: Vec::new(),
        time_exceeded: Vec::new(),
    };
    let mut sent_at: Vec<Option<Instant>> = vec![None; count as usize];
    let start = Instant::now();
    let mut next_seq: u32 = 0;
    let end_of_sends = start + interval * count.saturating_sub(1);
    let deadline = end_of_sends + linger;
    // Each iteration sends or receives once; the deadline bounds the loop.
    loop {
        let now = Instant::now();
        if next_seq < count && now >= start + interval * next_seq {
            let seq = u16::try_from(next_seq).unwrap_or(u16::MAX);
            match send_echo(&sock, dst, scope, id, seq) {
                Ok(()) => {
                    result.transmitted += 1;
                    sent_at[next_seq as usize] = Some(Instant::now());
                }
                Err(e) => {
                    result.send_errors += 1;
                    result.first_error.get_or_insert_with(|| e.to_string());
                }
            }
            next_seq += 1;
            continue;
        }
        if now >= deadline || (next_seq >= count && result.received >= result.transmitted) {
            break;
        }
        let wake = if next_seq < count {
            start + interval * next_seq
        } else {
            deadline
        };
        let reply = receive_reply(&sock, dst, id, wake.saturating_duration_since(now))?;
        if let Some(Reply::Unreachable { code, from }) = reply {
            result.unreachable.push((code, from));
        }
        if let Some(Reply::TimeExceeded { code, from }) = reply {
            result.time_exceeded.push((code, from));
        }
        if let Some(Reply::Echo(seq)) = reply {
            let idx = seq as usize;
            if let (Some(Some(t)), Some(slot)) = (sent_at.get(idx), result.rtts.get_mut(idx)) {
                if slot.is_none() {
                    *slot = Some(t.elapsed());
                    result.received += 1;
                }
            }
        }
    }
    Ok(result)
}

pub(crate) fn sockaddr(dst: Ipv6Addr, scope: u32) -> libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_addr.s6_addr = dst.octets();
    sa.sin6_scope_id = scope;
    sa
}

fn send_echo(sock: &OwnedFd, dst: Ipv6Addr, scope: u32, id: u16, seq: u16) -> std::io::Result<()> {
    let mut packet = [0u8; HEADER_LEN + PAYLOAD.len()];
    packet[0] = ECHO_REQUEST;
    // Checksum (bytes 2..4) is filled in by the kernel for raw ICMPv6 sockets.
    packet[4..6].copy_from_slice(&id.to_be_bytes());
    packet[6..8].copy_from_slice(&seq.to_be_bytes());
    packet[HEADER_LEN..].copy_from_slice(PAYLOAD);
    let sa = sockaddr(dst, scope);
    // SAFETY: buffer and address are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&sa as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// What one received ICMPv6 message meant for this ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// Our echo reply with this sequence number.
    Echo(u16),
    /// A destination-unreachable error quoting one of our requests.
    Unreachable { code: u8, from: Ipv6Addr },
    /// A time-exceeded error (hop limit: a loop) quoting one of our requests.
    TimeExceeded { code: u8, from: Ipv6Addr },
}

/// Waits up to `wait` for `sock` to be readable (false: timed out or
/// interrupted); `what` names the poll in an error.
pub(crate) fn readable(sock: &OwnedFd, wait: Duration, what: &str) -> Result<bool> {
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(wait.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
    if ready < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(Error::io(what.to_string(), e));
    }
    Ok(ready > 0)
}

/// Waits up to `wait` for one ICMPv6 packet; returns what it means for us.
fn receive_reply(sock: &OwnedFd, dst: Ipv6Addr, id: u16, wait: Duration) -> Result<Option<Reply>> {
    let mut buf = [0u8; 1500];
    let Some((packet, from)) = receive_icmp(sock, wait, &mut buf)? else {
        return Ok(None);
    };
    Ok(parse_reply(packet, from, dst, id))
}

/// Waits up to `wait` for one ICMPv6 packet on `sock`; returns it (within
/// `buf`) and its sender.
fn receive_icmp<'a>(
    sock: &OwnedFd,
    wait: Duration,
    buf: &'a mut [u8; 1500],
) -> Result<Option<(&'a [u8], Ipv6Addr)>> {
    if !readable(sock, wait, "poll on ICMPv6 socket")? {
        return Ok(None);
    }
    let mut from = sockaddr(Ipv6Addr::UNSPECIFIED, 0);
    let mut from_len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    // SAFETY: buffer and address storage are valid for the lengths given.
    let n = unsafe {
        libc::recvfrom(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
            (&mut from as *mut libc::sockaddr_in6).cast(),
            &mut from_len,
        )
    };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        ) {
            return Ok(None);
        }
        return Err(Error::io("receiving on ICMPv6 socket", e));
    }
    let packet = buf.get(..n as usize).unwrap_or(&[]);
    Ok(Some((packet, Ipv6Addr::from(from.sin6_addr.s6_addr))))
}

/// Destination unreachable (RFC 4443 §3.1).
const DEST_UNREACHABLE: u8 = 1;
/// Time exceeded (RFC 4443 §3.3).
const TIME_EXCEEDED: u8 = 3;

/// What `packet` (an ICMPv6 message from `from`) means for our ping to `dst`.
fn parse_reply(packet: &[u8], from: Ipv6Addr, dst: Ipv6Addr, id: u16) -> Option<Reply> {
    let kind = packet.first().copied();
    if kind == Some(DEST_UNREACHABLE) || kind == Some(TIME_EXCEEDED) {
        // The quoted packet: IPv6 header after 8 bytes, our echo request after it.
        let quoted = packet.get(HEADER_LEN..)?;
        let quoted_dst: [u8; 16] = quoted.get(24..40)?.try_into().ok()?;
        let echo = quoted.get(40..48)?;
        if Ipv6Addr::from(quoted_dst) == dst
            && echo.first() == Some(&ECHO_REQUEST)
            && echo.get(4..6) == Some(&id.to_be_bytes()[..])
        {
            let code = *packet.get(1)?;
            return Some(if kind == Some(TIME_EXCEEDED) {
                Reply::TimeExceeded { code, from }
            } else {
                Reply::Unreachable { code, from }
            });
        }
        return None;
    }
    Some(Reply::Echo(parse_echo(packet, from, dst, id)?))
}

/// The sequence number if `packet` (an ICMPv6 message) is our echo reply from `dst`.
fn parse_echo(packet: &[u8], from: Ipv6Addr, dst: Ipv6Addr, id: u16) -> Option<u16> {
    if packet.len() < HEADER_LEN || packet[0] != ECHO_REPLY || from != dst {
        return None;
    }
    if u16::from_be_bytes([packet[4], packet[5]]) != id {
        return None;
    }
    Some(u16::from_be_bytes([packet[6], packet[7]]))
}

/// Binds `sock` to the local address `addr` (with `scope` for a link-local one).
pub(crate) fn bind_to(sock: &OwnedFd, addr: Ipv6Addr, scope: u32) -> Result<()> {
    let sa = sockaddr(addr, scope);
    // SAFETY: a valid sockaddr_in6 of the length given.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&sa as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(Error::io(
            format!("binding ICMPv6 socket to {addr}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// A raw ICMPv6 socket of this namespace (needs root).
pub(crate) fn raw_icmpv6_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMPV6,
        )
    };
    if raw < 0 {
        return Err(Error::io(
            "opening raw ICMPv6 socket (needs root)",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: `raw` is a fresh, valid descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_matching() {
        let dst: Ipv6Addr = "fdff::4".parse().expect("addr");
        let reply = [ECHO_REPLY, 0, 0, 0, 0x12, 0x34, 0, 7];
        assert_eq!(parse_reply(&reply, dst, dst, 0x1234), Some(Reply::Echo(7)));
        assert_eq!(parse_reply(&reply, dst, dst, 0x1235), None);
        assert_eq!(parse_reply(&reply, Ipv6Addr::LOCALHOST, dst, 0x1234), None);
        assert_eq!(parse_reply(&reply[..4], dst, dst, 0x1234), None);
        let request = [ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 7];
        assert_eq!(parse_reply(&request, dst, dst, 0x1234), None);
        // An address-unreachable error quoting our request.
        let src: Ipv6Addr = "2001:db8::1".parse().expect("addr");
        let mut error = vec![DEST_UNREACHABLE, 3, 0, 0, 0, 0, 0, 0];
        error.extend_from_slice(&[0x60, 0, 0, 0, 0, 24, 58, 64]);
        error.extend_from_slice(&src.octets());
        error.extend_from_slice(&dst.octets());
        error.extend_from_slice(&request);
        let router: Ipv6Addr = "fdff::1".parse().expect("addr");
        assert_eq!(
            parse_reply(&error, router, dst, 0x1234),
            Some(Reply::Unreachable {
                code: 3,
                from: router
            })
        );
        assert_eq!(parse_reply(&error, router, dst, 0x1235), None);
        assert_eq!(parse_reply(&error[..40], router, dst, 0x1234), None);
        // The same quoted request in a time-exceeded error (a loop).
        error[0] = TIME_EXCEEDED;
        error[1] = 0;
        assert_eq!(
            parse_reply(&error, router, dst, 0x1234),
            Some(Reply::TimeExceeded {
                code: 0,
                from: router
            })
        );
    }

    #[test]
    fn summary_counts() {
        let r = PingResult {
            destination: "fdff::1".parse().expect("addr"),
            transmitted: 2,
            received: 1,
            rtts: vec![Some(Duration::from_millis(2)), None],
            send_errors: 0,
            first_error: None,
            unreachable: Vec::new(),
            time_exceeded: Vec::new(),
        };
        assert!(!r.all_received());
        assert_eq!(r.mean_rtt(), Some(Duration::from_millis(2)));
    }
}
