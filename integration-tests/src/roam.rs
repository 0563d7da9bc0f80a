//! One measured roam under traffic both ways, with a route audit after it.
//!
//! [`roam`] starts two [`LivePing`]s (the gateway pings the client, the
//! client pings the gateway's internet address), waits until both get
//! replies, moves the client the way a radio does ([`Lab::move_client`]),
//! waits (bounded) until both directions get replies again, audits the
//! routes of every member for the client's address, keeps the traffic
//! going for the rest of the dwell time and then measures both directions:
//! the gap, loss after link-up, the longest round trip after link-up (a
//! stall that holds packets and delivers them in a burst) and every ICMPv6
//! error. Tests assert on the [`RoamOutcome`]; the benchmark prints it.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::audit::{Audit, Expect};
use crate::babel::utc_time_of_day;
use crate::error::Result;
use crate::lab::Lab;
use crate::ping::{IcmpError, LivePing, PingRun};
use crate::wait::{self, Check};
use crate::{GATEWAY, INTERNET_ADDRESS};

/// Echo requests every 10 ms both ways.
pub const PING_INTERVAL: Duration = Duration::from_millis(10);
/// Replies wanted in each direction before a move.
pub const PRE_REPLIES: usize = 5;
/// Bound on the wait for them.
pub const PRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests sent this close to the end of a ping are not counted as lost.
pub const TAIL: Duration = Duration::from_millis(300);
/// How long a stopped ping waits for late replies.
pub const LINGER: Duration = Duration::from_millis(1_500);

/// What to do in one roam.
#[derive(Debug, Clone)]
pub struct RoamSpec {
    /// The client (lab name).
    pub client: String,
    /// The node it moves to.
    pub to: String,
    /// Time from the move until the traffic stops (the next move may follow at once).
    pub dwell: Duration,
    /// A roam fails when a direction got no reply this long after link-up.
    pub resume_timeout: Duration,
    /// Bound on the wait for the audit to pass once traffic resumed.
    pub audit_within: Duration,
    /// Whether a path may end in a handover route (see [`crate::audit`]).
    pub accept_handover: bool,
}

impl RoamSpec {
    /// `client` to `to`, 3 s dwell, 10 s resume timeout, audit within 1 s, handover routes accepted.
    pub fn new(client: &str, to: &str) -> RoamSpec {
        RoamSpec {
            client: client.to_string(),
            to: to.to_string(),
            dwell: Duration::from_secs(3),
            resume_timeout: Duration::from_secs(10),
            audit_within: Duration::from_secs(1),
            accept_handover: true,
        }
    }
}

/// One direction of traffic over a roam.
#[derive(Debug, Clone, Default)]
pub struct Direction {
    /// Last reply that arrived before link-up to the first after it.
    pub gap: Option<Duration>,
    /// From link-up (the move's end) to the first reply after it.
    pub first_after_link_up: Option<Duration>,
    /// Requests sent after link-up without a reply (last [`TAIL`] left out).
    pub lost_after_link_up: usize,
    /// Requests sent after link-up.
    pub sent_after_link_up: usize,
    /// Longest round trip of requests sent after link-up.
    pub max_rtt_after_link_up: Option<Duration>,
    /// ICMPv6 errors that arrived before the move started (while the client sat still).
    pub errors_before_move: Vec<IcmpError>,
    /// ICMPv6 errors that arrived after link-up.
    pub errors_after_link_up: Vec<IcmpError>,
    /// Requests refused by the kernel.
    pub send_errors: u64,
}

impl Direction {
    fn measure(run: &PingRun, moved: Instant, up: Instant) -> Direction {
        // Replies still in flight arrive during the move itself: the gap
        // is the silence around link-up.
        let gap = match (run.last_reply_before(up), run.first_reply_after(up)) {
            (Some(a), Some(b)) => Some(b.saturating_duration_since(a)),
            _ => None,
        };
        Direction {
            gap,
            first_after_link_up: run
                .first_reply_after(up)
                .map(|r| r.saturating_duration_since(up)),
            lost_after_link_up: run.lost_sent_after(up, TAIL),
            sent_after_link_up: run.sent_after(up),
            max_rtt_after_link_up: run.max_rtt_sent_after(up),
            errors_before_move: run
                .errors
                .iter()
                .filter(|e| e.at < moved)
                .copied()
                .collect(),
            errors_after_link_up: run.errors_after(up),
            send_errors: run.send_errors,
        }
    }

    fn json(&self, anchor: (Instant, SystemTime)) -> Value {
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        let errors = |v: &[IcmpError]| -> Vec<Value> {
            v.iter()
                .map(|e| {
                    json!({"at": wall(anchor, e.at), "error": e.name(), "from": e.from.to_string()})
                })
                .collect()
        };
        json!({
            "gap_ms": ms(self.gap),
            "first_reply_after_link_up_ms": ms(self.first_after_link_up),
            "lost_after_link_up": self.lost_after_link_up,
            "sent_after_link_up": self.sent_after_link_up,
            "max_rtt_after_link_up_ms": ms(self.max_rtt_after_link_up),
            "errors_before_move": errors(&self.errors_before_move),
            "errors_after_link_up": errors(&self.errors_after_link_up),
            "send_errors": self.send_errors,
        })
    }
}

/// Bounds a roam is checked against by [`RoamOutcome::problems`].
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest acceptable time from link-up to the first reply, each direction.
    pub first_reply: Duration,
    /// Longest acceptable round trip after link-up (a held burst exceeds it).
    pub max_rtt: Duration,
    /// Requests lost after link-up, each direction.
    pub lost_after_link_up: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            first_reply: Duration::from_millis(500),
            max_rtt: Duration::from_millis(500),
            lost_after_link_up: 10,
        }
    }
}

/// What one roam did.
#[derive(Debug, Clone)]
pub struct RoamOutcome {
    /// The client's address.
    pub address: Ipv6Addr,
    /// The node it left.
    pub from: String,
    /// The node it moved to.
    pub to: String,
    /// UTC time of day the move started.
    pub moved_at: String,
    /// How long the lab's move took (carrier down to carrier up).
    pub move_time: Duration,
    /// Whether both directions got replies before the move.
    pub flowing_before: bool,
    /// Gateway -> client.
    pub to_client: Direction,
    /// Client -> gateway.
    pub to_gateway: Direction,
    /// Whether both directions got a reply within the resume timeout.
    pub resumed: bool,
    /// The first passing audit or, if none passed, the last one taken.
    pub audit: Option<Audit>,
    /// Whether the audit passed within its bound.
    pub audit_ok: bool,
    /// Audits that saw a loop.
    pub loops_seen: usize,
    /// Routes and babeld's view at the first sign of trouble.
    pub evidence: Option<String>,
}

impl RoamOutcome {
    /// True if traffic never came back in some direction.
    pub fn failed(&self) -> bool {
        !self.resumed
    }

    /// What is wrong with this roam against `limits` (empty when all is right).
    pub fn problems(&self, limits: &Limits) -> Vec<String> {
        let mut wrong = Vec::new();
        let tag = format!("{} -> {} at {}", self.from, self.to, self.moved_at);
        if !self.flowing_before {
            wrong.push(format!("{tag}: traffic did not flow before the move"));
        }
        if !self.resumed {
            wrong.push(format!("{tag}: traffic did not resume"));
        }
        if !self.audit_ok {
            let what = self
                .audit
                .as_ref()
                .map(|a| a.summary())
                .unwrap_or_else(|| "no audit".into());
            wrong.push(format!("{tag}: route audit failed: {what}"));
        }
        if self.loops_seen > 0 {
            wrong.push(format!("{tag}: {} audits saw a loop", self.loops_seen));
        }
        for (name, d) in [
            ("gw->client", &self.to_client),
            ("client->gw", &self.to_gateway),
        ] {
            let mut counted: Vec<(String, usize)> = Vec::new();
            for e in d.errors_before_move.iter().chain(&d.errors_after_link_up) {
                let text = e.to_string();
                match counted.iter_mut().find(|(t, _)| *t == text) {
                    Some((_, n)) => *n += 1,
                    None => counted.push((text, 1)),
                }
            }
            for (text, n) in counted {
                wrong.push(format!("{tag}: {name}: {n} x {text}"));
            }
            match d.first_after_link_up {
                Some(f) if f > limits.first_reply => wrong.push(format!(
                    "{tag}: {name}: first reply {f:?} after link-up (limit {:?})",
                    limits.first_reply
                )),
                _ => {}
            }
            if let Some(r) = d.max_rtt_after_link_up.filter(|r| *r > limits.max_rtt) {
                wrong.push(format!(
                    "{tag}: {name}: a request waited {r:?} for its reply (held and delivered late; limit {:?})",
                    limits.max_rtt
                ));
            }
            if d.lost_after_link_up > limits.lost_after_link_up {
                wrong.push(format!(
                    "{tag}: {name}: {} of {} requests lost after link-up (limit {})",
                    d.lost_after_link_up, d.sent_after_link_up, limits.lost_after_link_up
                ));
            }
        }
        wrong
    }

    /// Machine-readable form.
    pub fn json(&self, anchor: (Instant, SystemTime)) -> Value {
        json!({
            "address": self.address.to_string(),
            "from": self.from,
            "to": self.to,
            "moved_at": self.moved_at,
            "move_ms": self.move_time.as_secs_f64() * 1e3,
            "flowing_before": self.flowing_before,
            "resumed": self.resumed,
            "failed": self.failed(),
            "to_client": self.to_client.json(anchor),
            "to_gateway": self.to_gateway.json(anchor),
            "audit_ok": self.audit_ok,
            "loops_seen": self.loops_seen,
            "holders": self.audit.as_ref().map(|a| a.holders.clone()).unwrap_or_default(),
            "audit": self.audit.as_ref().map(Audit::summary),
        })
    }
}

/// An anchor to turn [`Instant`]s into wall-clock times.
pub fn anchor() -> (Instant, SystemTime) {
    (Instant::now(), SystemTime::now())
}

/// UTC time of day of `at`, given an anchor.
pub fn wall(anchor: (Instant, SystemTime), at: Instant) -> String {
    let t = if at >= anchor.0 {
        anchor.1 + (at - anchor.0)
    } else {
        anchor.1 - (anchor.0 - at)
    };
    utc_time_of_day(t)
}

/// Routes (audit report) and babeld's entries for `addr` on every member, UTC-stamped.
pub fn evidence(lab: &Lab, addr: Ipv6Addr, why: &str) -> String {
    let mut out = format!(
        "===== evidence at {} UTC: {why} =====\n",
        utc_time_of_day(SystemTime::now())
    );
    match lab.audit(addr) {
        Ok(a) => out.push_str(&a.report()),
        Err(e) => out.push_str(&format!("(no audit: {e})\n")),
    }
    // The node-client address of the client with this address: where CLAIMs go.
    let nca = lab
        .clients()
        .iter()
        .find(|c| c.address == addr)
        .and_then(|c| c.node_client_address());
    if let Some(nca) = nca {
        if let Ok(a) = lab.audit(nca) {
            out.push_str(&format!("node-client address {nca}:\n"));
            for p in &a.paths {
                out.push_str(&format!("  path {} => {}\n", p.hops.join(" -> "), p.end));
            }
        }
    }
    let wanted: Vec<String> = std::iter::once(addr)
        .chain(nca)
        .map(|a| format!("{a}/128"))
        .collect();
    for m in lab.members() {
        out.push_str(&format!(
            "--- {} babeld dump (entries for {}):\n",
            m.name,
            wanted.join(", ")
        ));
        match lab.babel_dump(&m.name) {
            Ok(d) => {
                for l in d
                    .lines
                    .iter()
                    .filter(|l| l.split_whitespace().any(|w| wanted.iter().any(|x| x == w)))
                {
                    out.push_str(l);
                    out.push('\n');
                }
            }
            Err(e) => out.push_str(&format!("(no dump: {e})\n")),
        }
    }
    out
}

/// Appends `text` to `<lab dir>/evidence.txt` (kept with `L3ROAMD_LAB_KEEP=1`).
pub fn save_evidence(lab: &Lab, text: &str) {
    use std::io::Write as _;
    let path = lab.dir().join("evidence.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = writeln!(f, "{text}");
    }
}

/// Moves the client as `spec` says under traffic both ways and measures it.
pub fn roam(lab: &mut Lab, spec: &RoamSpec) -> Result<RoamOutcome> {
    let client = lab.client(&spec.client)?.clone();
    let gw_path = lab.netns(GATEWAY)?.path();
    let to_client = LivePing::start(&gw_path, client.address, PING_INTERVAL)?;
    let to_gateway = LivePing::start(&client.netns.path(), INTERNET_ADDRESS, PING_INTERVAL)?;
    let flowing_before = wait::until("traffic both ways before the move", PRE_TIMEOUT, || {
        Ok(
            if to_client.replies() >= PRE_REPLIES && to_gateway.replies() >= PRE_REPLIES {
                Check::Ready(())
            } else {
                Check::Pending(format!(
                    "{} and {} replies",
                    to_client.replies(),
                    to_gateway.replies()
                ))
            },
        )
    })
    .is_ok();
    let mut evidence_text = None;
    if !flowing_before {
        evidence_text = Some(evidence(lab, client.address, "no traffic before the move"));
    }
    let moved = Instant::now();
    let moved_at = utc_time_of_day(SystemTime::now());
    lab.move_client(&spec.client, &spec.to)?;
    let up = Instant::now();
    let resumed = wait::until(
        "traffic both ways after the move",
        spec.resume_timeout,
        || {
            Ok(
                if to_client.replies_since(up) > 0 && to_gateway.replies_since(up) > 0 {
                    Check::Ready(())
                } else {
                    Check::Pending(format!(
                        "{} and {} replies since link-up",
                        to_client.replies_since(up),
                        to_gateway.replies_since(up)
                    ))
                },
            )
        },
    )
    .is_ok();
    if !resumed && evidence_text.is_none() {
        evidence_text = Some(evidence(lab, client.address, "traffic did not resume"));
    }
    let expect = Expect {
        holder: spec.to.clone(),
        accept_handover: spec.accept_handover,
    };
    let mut loops_seen = 0;
    let mut last: Option<Audit>;
    let mut audit_ok = false;
    let audit_start = Instant::now();
    // Bounded by audit_within (and at least one audit).
    loop {
        let a = lab.audit(client.address)?;
        if a.loops() > 0 {
            loops_seen += 1;
        }
        let ok = a.is_ok(&expect);
        last = Some(a);
        if ok {
            audit_ok = true;
            break;
        }
        if audit_start.elapsed() >= spec.audit_within {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if (!audit_ok || loops_seen > 0) && evidence_text.is_none() {
        evidence_text = Some(evidence(lab, client.address, "route audit failed"));
    }
    // The rest of the dwell: audits every 100 ms (a loop may form later,
    // while the client sits still), evidence at the first ICMPv6 error.
    let errors_at_start = to_client.icmp_errors() + to_gateway.icmp_errors();
    let mut regressions = 0;
    while moved.elapsed() < spec.dwell {
        std::thread::sleep(
            Duration::from_millis(100).min(spec.dwell.saturating_sub(moved.elapsed())),
        );
        let mut a = lab.audit(client.address)?;
        if a.loops() == 0 && audit_ok && !a.is_ok(&expect) {
            // babeld changes a route by removing it and adding the new one
            // (kernel_netlink.c, ROUTE_MODIFY: "hope that the window is
            // small enough to be negligible"): a read in that window sees
            // the catch-all for a moment. Only a state that is still there
            // a little later counts.
            std::thread::sleep(Duration::from_millis(30));
            a = lab.audit(client.address)?;
        }
        let bad = a.loops() > 0 || (audit_ok && !a.is_ok(&expect));
        if a.loops() > 0 {
            loops_seen += 1;
        }
        if bad {
            regressions += 1;
            if evidence_text.is_none() {
                evidence_text = Some(evidence(
                    lab,
                    client.address,
                    "route audit failed during the dwell",
                ));
            }
            last = Some(a);
        }
        let errors = to_client.icmp_errors() + to_gateway.icmp_errors();
        if errors > errors_at_start && evidence_text.is_none() {
            evidence_text = Some(evidence(lab, client.address, "ICMPv6 error received"));
        }
    }
    if regressions > 0 {
        audit_ok = false;
    }
    let to_client = to_client.stop(LINGER)?;
    let to_gateway = to_gateway.stop(LINGER)?;
    let outcome = RoamOutcome {
        address: client.address,
        from: client.node.clone(),
        to: spec.to.clone(),
        moved_at,
        move_time: up - moved,
        flowing_before,
        to_client: Direction::measure(&to_client, moved, up),
        to_gateway: Direction::measure(&to_gateway, moved, up),
        resumed,
        audit: last,
        audit_ok,
        loops_seen,
        evidence: evidence_text,
    };
    if let Some(e) = &outcome.evidence {
        save_evidence(lab, e);
    }
    Ok(outcome)
}
