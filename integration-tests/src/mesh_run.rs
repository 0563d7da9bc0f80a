//! A grid mesh under roaming load, shared by `l3roamd-bench-mesh` and the
//! `mesh_scale` test.
//!
//! [`build_mesh`] builds a grid with the classic gateway at n1, spreads the
//! clients over the nodes round robin (client k on n((k-1) mod N + 1)) and
//! starts babeld and our daemons everywhere. The gateway pings every client
//! from one [`MultiPing`]; [`execute_roams`] carries out a seeded
//! [`plan_roams`] schedule (radio-like moves to a neighbouring node);
//! [`measure_roams`] turns the ping runs into one [`RoamMeasure`] per roam;
//! [`audit_clients`] waits (bounded) until every client address passes the
//! route audit on every member and says what is still wrong if not.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use crate::audit::{Audit, Expect};
use crate::daemons::Launch;
use crate::error::Result;
use crate::lab::{Lab, LabOptions};
use crate::ping::{MultiPing, PingRun};
use crate::roam_plan::{plan_roams, PlannedRoam};

/// Requests sent this close to the end of a roam's window are not counted
/// as lost (their replies may still be on the way).
pub const TAIL: Duration = Duration::from_millis(300);

/// What mesh to build and how to roam in it.
#[derive(Debug, Clone)]
pub struct MeshSpec {
    /// Grid rows.
    pub rows: usize,
    /// Grid columns.
    pub cols: usize,
    /// Roaming clients (`c1`..), spread over the nodes round robin.
    pub clients: usize,
    /// Silent clients `(name, node)` plugged in before anything starts,
    /// pinged by nobody: targets for seeks later.
    pub silent: Vec<(String, String)>,
    /// How long clients roam.
    pub roam_for: Duration,
    /// Dwell time range on a node between two roams.
    pub dwell: (Duration, Duration),
    /// Seed of the roam schedule.
    pub seed: u64,
    /// Ping interval per client.
    pub ping_interval: Duration,
}

/// A built mesh: the lab, its roaming clients and where each starts.
#[derive(Debug)]
pub struct Mesh {
    /// The lab.
    pub lab: Lab,
    /// Names of the roaming clients, `c1`, ...
    pub clients: Vec<String>,
    /// Their addresses, in the same order.
    pub addresses: Vec<Ipv6Addr>,
    /// The node number each starts on.
    pub placement: Vec<usize>,
    /// Time babel took to converge.
    pub converged_in: Duration,
    /// Time from nothing to daemons up everywhere.
    pub built_in: Duration,
}

impl Mesh {
    /// The seeded schedule of this mesh's roams.
    pub fn plan(&self, spec: &MeshSpec) -> Vec<PlannedRoam> {
        plan_roams(
            &self.lab.node_links(),
            &self.placement,
            spec.dwell,
            spec.roam_for,
            spec.seed,
        )
    }

    /// Starts the gateway's pinger to every roaming client.
    pub fn start_pings(&self, interval: Duration) -> Result<MultiPing> {
        MultiPing::start(&self.lab.gateway().netns.path(), &self.addresses, interval)
    }
}

/// Builds the grid of `spec`, its clients, babeld and the daemons (multicall symlinks).
pub fn build_mesh(spec: &MeshSpec) -> Result<Mesh> {
    let start = Instant::now();
    let mut lab = Lab::new(LabOptions::grid(spec.rows, spec.cols))?;
    let nodes = spec.rows * spec.cols;
    let mut clients = Vec::new();
    let mut addresses = Vec::new();
    let mut placement = Vec::new();
    for k in 0..spec.clients {
        let name = format!("c{}", k + 1);
        let node = k % nodes + 1;
        addresses.push(lab.add_client(&name, &format!("n{node}"))?.address);
        clients.push(name);
        placement.push(node);
    }
    for (name, node) in &spec.silent {
        lab.add_client(name, node)?;
    }
    lab.start_babel()?;
    // babeld needs a few hellos per hop; a 20-node grid is 8 hops across.
    let converge_timeout = Duration::from_secs(60) + Duration::from_secs(3) * nodes as u32;
    let converged_in = lab.wait_routes_converged(converge_timeout)?;
    lab.start_all_daemons(Launch::MulticallSymlink)?;
    Ok(Mesh {
        lab,
        clients,
        addresses,
        placement,
        converged_in,
        built_in: start.elapsed(),
    })
}

/// Waits (bounded by `timeout`) until every destination of `ping` has had
/// a reply; returns how long that took, or the destinations still silent.
pub fn wait_all_answer(
    ping: &MultiPing,
    count: usize,
    timeout: Duration,
) -> std::result::Result<Duration, String> {
    let start = Instant::now();
    // Bounded by `timeout`; polls the pinger's shared reply list.
    loop {
        let answered = ping.answered();
        if answered >= count {
            return Ok(start.elapsed());
        }
        if let Some(e) = ping.error() {
            return Err(format!("pinger failed: {e}"));
        }
        if start.elapsed() >= timeout {
            return Err(format!(
                "{answered} of {count} clients answered within {timeout:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One roam as it was carried out.
#[derive(Debug, Clone, Copy)]
pub struct ExecutedRoam {
    /// What was planned.
    pub planned: PlannedRoam,
    /// When the client lost carrier.
    pub moved: Instant,
    /// When it had carrier again on the new node (link-up).
    pub up: Instant,
    /// How late against the plan the move started.
    pub late: Duration,
}

/// Carries out `plan` from `start`, each move when it is due (late ones at
/// once, with their lateness recorded); `progress` hears every roam done.
pub fn execute_roams(
    lab: &mut Lab,
    clients: &[String],
    plan: &[PlannedRoam],
    start: Instant,
    mut progress: impl FnMut(usize, &ExecutedRoam),
) -> Result<Vec<ExecutedRoam>> {
    let mut done = Vec::with_capacity(plan.len());
    for (i, r) in plan.iter().enumerate() {
        let due = start + r.at;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let moved = Instant::now();
        let name = clients.get(r.client).ok_or_else(|| {
            crate::error::Error::Usage(format!("no client {} in the plan", r.client))
        })?;
        lab.move_client(name, &format!("n{}", r.to))?;
        let e = ExecutedRoam {
            planned: *r,
            moved,
            up: Instant::now(),
            late: moved.saturating_duration_since(due),
        };
        progress(i, &e);
        done.push(e);
    }
    Ok(done)
}

/// What one roam did to its client's traffic (gateway → client).
#[derive(Debug, Clone, PartialEq)]
pub struct RoamMeasure {
    /// Index of the client.
    pub client: usize,
    /// Node number left.
    pub from: usize,
    /// Node number reached.
    pub to: usize,
    /// When it was planned, from the start of the run.
    pub at: Duration,
    /// Last reply before link-up to the first after it (`None`: no reply
    /// after link-up before the next roam or the end).
    pub gap: Option<Duration>,
    /// Link-up to the first reply after it.
    pub first_after_up: Option<Duration>,
    /// Requests sent after link-up (until the next roam, [`TAIL`] left out) without a reply.
    pub lost_after_up: usize,
    /// Requests sent in that window.
    pub sent_after_up: usize,
    /// ICMPv6 errors in that window (unreachable, time exceeded).
    pub errors_after_up: usize,
    /// No reply within `resume_timeout` of link-up.
    pub failed: bool,
}

/// One [`RoamMeasure`] per executed roam; `runs[k]` is client k's ping run.
///
/// A roam's window runs from its link-up to its client's next move (or
/// the last request sent), so roams of one client never share a request.
pub fn measure_roams(
    runs: &[PingRun],
    roams: &[ExecutedRoam],
    resume_timeout: Duration,
) -> Vec<RoamMeasure> {
    let mut out = Vec::with_capacity(roams.len());
    for (i, r) in roams.iter().enumerate() {
        let client = r.planned.client;
        let Some(run) = runs.get(client) else {
            continue;
        };
        let last_sent = run.sent.iter().flatten().max().copied();
        let next_move = roams
            .iter()
            .skip(i + 1)
            .find(|n| n.planned.client == client)
            .map(|n| n.moved);
        let end = next_move.or(last_sent).unwrap_or(r.up);
        let first = run
            .received
            .iter()
            .flatten()
            .filter(|t| **t >= r.up && **t < end)
            .min()
            .copied();
        let last_before = run.last_reply_before(r.up);
        let gap = match (last_before, first) {
            (Some(a), Some(b)) => Some(b.saturating_duration_since(a)),
            _ => None,
        };
        let first_after_up = first.map(|f| f.saturating_duration_since(r.up));
        let counted_end = end.checked_sub(TAIL).unwrap_or(end);
        let in_window = |s: &Option<Instant>| s.is_some_and(|s| s >= r.up && s < counted_end);
        let sent_after_up = run.sent.iter().filter(|s| in_window(s)).count();
        let lost_after_up = run
            .sent
            .iter()
            .zip(&run.received)
            .filter(|(s, rcv)| in_window(s) && rcv.is_none())
            .count();
        let errors_after_up = run
            .errors
            .iter()
            .filter(|e| e.at >= r.up && e.at < end)
            .count();
        out.push(RoamMeasure {
            client,
            from: r.planned.from,
            to: r.planned.to,
            at: r.planned.at,
            gap,
            first_after_up,
            lost_after_up,
            sent_after_up,
            errors_after_up,
            failed: first_after_up.is_none_or(|f| f > resume_timeout),
        });
    }
    out
}

/// The route audit of every roaming client at one moment.
#[derive(Debug, Clone, Default)]
pub struct MeshAudit {
    /// Client addresses audited.
    pub clients: usize,
    /// Those that passed.
    pub passed: usize,
    /// Paths that ended in a loop, over all clients.
    pub loops: usize,
    /// What is wrong (empty when all passed).
    pub problems: Vec<String>,
    /// How long the wait took.
    pub waited: Duration,
}

/// Waits up to `timeout` until every client `names[k]` (address
/// `addresses[k]`) is held by the node it sits on alone, every member's
/// path for it ends there (no loop, no handover or parked route on the
/// way) and every member running our daemons has exactly one route to it
/// (nothing stale beside it). Returns the last audit either way.
pub fn audit_clients(
    lab: &Lab,
    names: &[String],
    addresses: &[Ipv6Addr],
    timeout: Duration,
) -> Result<MeshAudit> {
    let start = Instant::now();
    // Bounded by `timeout`; each round reads every member's table once.
    loop {
        let tables = lab.route_tables()?;
        let classic = lab.gateway().name.clone();
        let mut audit = MeshAudit {
            clients: names.len(),
            ..MeshAudit::default()
        };
        for (name, addr) in names.iter().zip(addresses) {
            let holder = lab.client(name)?.node.clone();
            let expect = Expect::holder(&holder);
            let a = Audit::new(*addr, tables.clone());
            let mut wrong = a.problems(&expect);
            audit.loops += a.loops();
            for t in tables.iter().filter(|t| t.node != classic) {
                let n = t
                    .routes
                    .iter()
                    .filter(|r| r.kind == "unicast" && r.is_host(*addr))
                    .count();
                if n != 1 {
                    wrong.push(format!("{} has {n} routes to {addr}", t.node));
                }
            }
            if wrong.is_empty() {
                audit.passed += 1;
            } else {
                audit
                    .problems
                    .push(format!("{name} ({addr}) on {holder}: {}", wrong.join("; ")));
            }
        }
        audit.waited = start.elapsed();
        if audit.problems.is_empty() || start.elapsed() >= timeout {
            return Ok(audit);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ping::IcmpError;

    /// A run of requests every 100 ms from `t0` for `n` requests; replies
    /// 1 ms later except for the indexes in `lost`.
    fn run(t0: Instant, n: usize, lost: std::ops::Range<usize>) -> PingRun {
        let step = Duration::from_millis(100);
        let sent: Vec<Option<Instant>> = (0..n).map(|i| Some(t0 + step * i as u32)).collect();
        let received = sent
            .iter()
            .enumerate()
            .map(|(i, s)| (!lost.contains(&i)).then(|| s.map(|s| s + Duration::from_millis(1)))?)
            .collect();
        PingRun {
            sent,
            received,
            ..PingRun::default()
        }
    }

    fn roam(client: usize, at_ms: u64, t0: Instant) -> ExecutedRoam {
        let moved = t0 + Duration::from_millis(at_ms);
        ExecutedRoam {
            planned: PlannedRoam {
                at: Duration::from_millis(at_ms),
                client,
                from: 1,
                to: 2,
            },
            moved,
            up: moved + Duration::from_millis(10),
            late: Duration::ZERO,
        }
    }

    #[test]
    fn a_roam_is_measured_in_its_own_window() {
        let t0 = Instant::now();
        // Requests 20..=24 (2.0-2.4 s) lost around the roam at 2.0 s; the
        // client roams again at 6.0 s and loses 61.. after that.
        let mut r = run(t0, 100, 20..25);
        for slot in r.received.iter_mut().skip(61) {
            *slot = None;
        }
        r.errors.push(IcmpError {
            at: t0 + Duration::from_millis(2100),
            icmp_type: 1,
            code: 3,
            from: Ipv6Addr::LOCALHOST,
        });
        let roams = [roam(0, 2000, t0), roam(0, 6000, t0)];
        let m = measure_roams(&[r], &roams, Duration::from_secs(2));
        assert_eq!(m.len(), 2);
        // Last reply 1.901 s, first after link-up 2.501 s.
        assert_eq!(m[0].gap, Some(Duration::from_millis(600)));
        assert_eq!(m[0].first_after_up, Some(Duration::from_millis(491)));
        // Sent after link-up (2.01 s) until 5.7 s: 2.1 .. 5.6 = 36, lost 2.1-2.4 = 4.
        assert_eq!(m[0].sent_after_up, 36);
        assert_eq!(m[0].lost_after_up, 4);
        assert_eq!(m[0].errors_after_up, 1);
        assert!(!m[0].failed);
        // The second roam never gets a reply: failed, no gap.
        assert_eq!(m[1].gap, None);
        assert!(m[1].failed);
        assert!(m[1].lost_after_up > 0);
    }

    #[test]
    fn a_slow_resumption_fails_the_roam() {
        let t0 = Instant::now();
        let r = run(t0, 100, 10..50);
        let m = measure_roams(&[r], &[roam(0, 1000, t0)], Duration::from_secs(2));
        assert_eq!(m[0].gap, Some(Duration::from_millis(4100)));
        assert!(m[0].failed);
        // A roam of a client without a run is left out.
        assert!(measure_roams(&[], &[roam(3, 1000, t0)], Duration::from_secs(2)).is_empty());
    }
}
