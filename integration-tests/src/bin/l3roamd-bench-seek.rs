//! `l3roamd-bench-seek`: how fast an undiscovered client is reached, and at
//! what cost on the mesh.
//!
//! In a chain `gw – n1 – n2 – n3 – n4` with real babeld and our five daemons
//! on every node, the gateway (which routes the client prefix to n1, so n1 is
//! the seeker) pings fresh, silent clients on n2, n3 and n4: 1, 2 and 3 hops
//! from the seeker. For every client it records the time from the first
//! echo request to its reply, the requests lost, whether that reply came
//! before babel had brought the client's host route to n1 (then it came
//! through our FOUND/DATA path), and the intercom traffic of the seek from
//! the daemons' counters. Separately it times how long babel needs to bring
//! a brand-new `/128` from n2, n3 or n4 to n1, which is the delay without
//! l3roamd's shortcut. Both are done with each babeld hello interval asked
//! for (default 1 s and babeld's own 4 s), one lab per interval.
//!
//! Output: one JSON object per line on stdout (`"kind"`: `lab`, `spread`,
//! `seek`, `error`, then one `summary`), followed unless `--json-only` by a
//! human-readable table whose lines start with `#`. Progress goes to stderr.
//! Nothing is asserted about timings; the exit status only says whether the
//! measurements could be taken. Needs root, iproute2, babeld, grpcurl and
//! the daemon binaries (`cargo build --workspace --bins`).

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use l3roamd_lab::bench::{count_stats, duration_stats as stats, emit, ms};

use l3roamd_lab::{
    grpc_call, wait, Daemon, Lab, LabOptions, Launch, Node, Result, CLIENT_BRIDGE, GATEWAY,
};

const USAGE: &str = "\
Usage: l3roamd-bench-seek [--runs N] [--spread-runs N] [--hello S[,S...]] [--json-only]

  --runs N          fresh clients per hop count and hello interval (default 10, at most 85)
  --spread-runs N   new babel routes timed per hop count and hello interval (default 5)
  --hello S,S       babeld hello intervals in seconds, one lab each (default 1,4)
  --json-only       print only the JSON lines on stdout, no table";

/// Echo requests per client and their spacing.
const PING_COUNT: u32 = 20;
const PING_INTERVAL: Duration = Duration::from_millis(10);
/// How often n1's routing table is looked at while waiting for a babel route.
const ROUTE_POLL: Duration = Duration::from_millis(10);
/// Bound on one wait for a babel route to spread.
const SPREAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a new route reached every member, before the next one.
const SETTLE_MAX: Duration = Duration::from_millis(1500);
/// Bound on the initial babel convergence of a lab.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Hop counts from the seeker n1: a client on n(h+1) is h hops away.
const HOPS: [usize; 3] = [1, 2, 3];
/// Chain length: gw – n1 – n2 – n3 – n4.
const NODES: usize = 4;
/// The seeker: the gateway routes the client prefix to it.
const SEEKER: &str = "n1";

/// Wire sizes (IPv6 + UDP + intercom) of our intercom packets.
const SEEK_PACKET_BYTES: u64 = 40 + 8 + 24 + 20;
const FOUND_PACKET_BYTES: u64 = 40 + 8 + 24 + 20 + 8;
/// Added to every packet the seeker forwards to the finder in DATA.
const DATA_OVERHEAD_BYTES: u64 = 40 + 8 + 24;
/// What the C l3roamd sends for one seek in this chain.
const C_SEEK_PACKETS: u64 = 6;
const C_SEEK_BYTES: u64 = 552;

/// Command-line settings.
struct Args {
    runs: usize,
    spread_runs: usize,
    hellos: Vec<Duration>,
    json_only: bool,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut args = Args {
        runs: 10,
        spread_runs: 5,
        hellos: vec![Duration::from_secs(1), Duration::from_secs(4)],
        json_only: false,
    };
    let number =
        |flag: &str, v: Option<String>, max: usize| -> std::result::Result<usize, String> {
            let v = v.ok_or(format!("{flag} needs a number"))?;
            let n: usize = v
                .parse()
                .map_err(|_| format!("{flag}: not a number: {v:?}"))?;
            if n == 0 || n > max {
                return Err(format!("{flag}: {n} is not in 1..={max}"));
            }
            Ok(n)
        };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            // 255 clients per lab at most, three hop counts each.
            "--runs" => args.runs = number("--runs", it.next(), 85)?,
            "--spread-runs" => args.spread_runs = number("--spread-runs", it.next(), 255)?,
            "--hello" => {
                let v = it.next().ok_or("--hello needs seconds, e.g. 1,4")?;
                args.hellos = v
                    .split(',')
                    .map(|s| {
                        let secs: f64 = s
                            .trim()
                            .parse()
                            .map_err(|_| format!("--hello: not a number: {s:?}"))?;
                        if !(0.05..=60.0).contains(&secs) {
                            return Err(format!("--hello: {secs} s is out of range"));
                        }
                        Ok(Duration::from_secs_f64(secs))
                    })
                    .collect::<std::result::Result<_, String>>()?;
            }
            "--json-only" => args.json_only = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match l3roamd_lab::bench::start("l3roamd-bench-seek", USAGE, parse_args) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let started = Instant::now();
    let mut all = Results::default();
    let mut failed = false;
    for &hello in &args.hellos {
        progress(&format!("lab with babeld hello interval {hello:?}"));
        let lab_started = Instant::now();
        if let Err(e) = bench_lab(hello, &args, &mut all) {
            failed = true;
            emit(&json!({
                "kind": "error",
                "hello_s": hello.as_secs_f64(),
                "error": e.to_string(),
            }));
            progress(&format!("FAILED: {e}"));
        }
        progress(&format!(
            "lab with hello {hello:?} done in {:.1?}",
            lab_started.elapsed()
        ));
    }
    let summary = all.summary(&args, started.elapsed());
    l3roamd_lab::bench::finish(&summary, args.json_only, print_table, failed)
}

fn progress(text: &str) {
    eprintln!("l3roamd-bench-seek: {text}");
}

// ===== one lab =====

/// Builds the chain for one hello interval and takes all its measurements.
fn bench_lab(hello: Duration, args: &Args, all: &mut Results) -> Result<()> {
    let build = Instant::now();
    let mut lab = Lab::new(LabOptions {
        nodes: NODES,
        hello_interval: hello,
        ..LabOptions::default()
    })?;
    // Every client is plugged in before babeld and the daemons start, and
    // never sends from its address before it is pinged: nothing knows it.
    // Hop counts alternate, so a drift over time touches them alike.
    let mut plan = Vec::new();
    for run in 0..args.runs {
        for hops in HOPS {
            let name = format!("h{hops}r{run}");
            let node = format!("n{}", hops + 1);
            let address = lab.add_client(&name, &node)?.address;
            plan.push(Planned {
                run,
                hops,
                node,
                address,
            });
        }
    }
    lab.start_babel()?;
    let converged = lab.wait_routes_converged(CONVERGE_TIMEOUT)?;
    emit(&json!({
        "kind": "lab",
        "hello_s": hello.as_secs_f64(),
        "lab": lab.id(),
        "nodes": NODES,
        "clients": plan.len(),
        "built_and_converged_ms": ms(build.elapsed()),
        "babel_converged_ms": ms(converged),
    }));
    progress(&format!(
        "lab {} converged after {converged:.1?}; timing new babel routes",
        lab.id()
    ));

    // Babel alone, before our daemons run (core owns protocol 158 routes).
    spread_routes(&lab, hello, args.spread_runs, all)?;

    let t = Instant::now();
    lab.start_all_daemons(Launch::Separate)?;
    progress(&format!(
        "daemons up after {:.1?}; seeking {} clients",
        t.elapsed(),
        plan.len()
    ));
    for (i, p) in plan.iter().enumerate() {
        let record = seek_one(&lab, hello, p)?;
        progress(&format!(
            "[hello {hello:?}] seek {}/{}: {} hops, {}: first reply {}, lost {}, {}",
            i + 1,
            plan.len(),
            p.hops,
            p.address,
            record
                .first_reply
                .map(|d| format!("{:.1} ms", ms(d)))
                .unwrap_or_else(|| "none".into()),
            record.lost,
            if record.before_route {
                "before the babel route"
            } else {
                "with the babel route there"
            }
        ));
        emit(&record.json);
        all.seeks.push(record);
    }
    lab.shutdown()
}

/// A client to seek.
struct Planned {
    run: usize,
    hops: usize,
    node: String,
    address: Ipv6Addr,
}

// ===== babel alone =====

/// Installs new `/128`s with our route protocol on n2, n3, n4 one at a time
/// and times each until n1 has a babel route to it; removes them afterwards.
fn spread_routes(lab: &Lab, hello: Duration, repeats: usize, all: &mut Results) -> Result<()> {
    let seeker = lab.node(SEEKER)?;
    let mut installed: Vec<(String, Ipv6Addr)> = Vec::new();
    let mut outcome = Ok(());
    'outer: for rep in 0..repeats {
        for hops in HOPS {
            let node = format!("n{}", hops + 1);
            let addr = Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0xbeef, hops as u16, rep as u16);
            let far = lab.node(&node)?;
            let dst = format!("{addr}/128");
            let start = Instant::now();
            if let Err(e) = far.ip(&[
                "-6",
                "route",
                "add",
                &dst,
                "dev",
                CLIENT_BRIDGE,
                "proto",
                "158",
            ]) {
                outcome = Err(e);
                break 'outer;
            }
            installed.push((node.clone(), addr));
            let waited = wait::until_every(
                &format!("a babel route to {addr} on {SEEKER}"),
                SPREAD_TIMEOUT,
                ROUTE_POLL,
                || {
                    Ok(if seeker.has_babel_route(addr)? {
                        wait::Check::Ready(start.elapsed())
                    } else {
                        wait::Check::Pending("no babel route yet".into())
                    })
                },
            );
            let took = match waited {
                Ok(d) => Some(d),
                Err(l3roamd_lab::Error::Timeout { .. }) => None,
                Err(e) => {
                    outcome = Err(e);
                    break 'outer;
                }
            };
            // Let this route settle everywhere before the next one, so that
            // the next does not ride on a flush this one scheduled.
            if let Err(e) = settle(lab, &node, addr, hello) {
                outcome = Err(e);
                break 'outer;
            }
            progress(&format!(
                "[hello {hello:?}] new route on {node} ({hops} hops): on {SEEKER} after {}",
                took.map(|d| format!("{:.0} ms", ms(d)))
                    .unwrap_or_else(|| format!("more than {SPREAD_TIMEOUT:?}"))
            ));
            emit(&json!({
                "kind": "spread",
                "hello_s": hello.as_secs_f64(),
                "hops": hops,
                "run": rep,
                "from": node,
                "address": addr.to_string(),
                "ms": took.map(ms),
                "timeout_ms": ms(SPREAD_TIMEOUT),
            }));
            all.spreads.push(Spread { hello, hops, took });
        }
    }
    for (node, addr) in installed {
        let dst = format!("{addr}/128");
        let removed = lab.node(&node)?.ip(&[
            "-6",
            "route",
            "del",
            &dst,
            "dev",
            CLIENT_BRIDGE,
            "proto",
            "158",
        ]);
        if let Err(e) = removed {
            outcome = outcome.and(Err(e));
        }
    }
    outcome
}

/// Waits (bounded) until every member but `origin` has a babel route to
/// `addr`, then lets babeld's update flush jitter (at most about a second,
/// shorter with short hello intervals) pass.
fn settle(lab: &Lab, origin: &str, addr: Ipv6Addr, hello: Duration) -> Result<()> {
    let others: Vec<&Node> = lab.members().iter().filter(|m| m.name != origin).collect();
    let everywhere = wait::until(
        &format!("a babel route to {addr} on every member"),
        SPREAD_TIMEOUT,
        || {
            let mut missing = Vec::new();
            for m in &others {
                if !m.has_babel_route(addr)? {
                    missing.push(m.name.clone());
                }
            }
            Ok(if missing.is_empty() {
                wait::Check::Ready(())
            } else {
                wait::Check::Pending(format!("missing on {}", missing.join(", ")))
            })
        },
    );
    match everywhere {
        Ok(()) | Err(l3roamd_lab::Error::Timeout { .. }) => {}
        Err(e) => return Err(e),
    }
    std::thread::sleep(hello.min(SETTLE_MAX));
    Ok(())
}

/// One timed spread of a new babel route.
struct Spread {
    hello: Duration,
    hops: usize,
    took: Option<Duration>,
}

// ===== seeking =====

/// The counters of interest on every node at one moment.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    /// node → ndproxy `mesh_packets_sent`.
    seek_packets: BTreeMap<String, u64>,
    /// node → core `found_sent`.
    found_sent: BTreeMap<String, u64>,
    /// node → core `forwarded_to_finder`.
    forwarded: BTreeMap<String, u64>,
    /// node → core `found_received`.
    found_received: BTreeMap<String, u64>,
}

/// Reads the ndproxy and core counters of every node, all calls at once.
fn snapshot(nodes: &[Node]) -> Result<Snapshot> {
    let calls: Vec<(String, Daemon, std::path::PathBuf)> = nodes
        .iter()
        .flat_map(|n| {
            [Daemon::NdProxy, Daemon::Core]
                .into_iter()
                .map(move |d| (n.name.clone(), d, n.socket(d)))
        })
        .collect();
    let answers: Vec<Result<(String, Daemon, Value)>> = std::thread::scope(|s| {
        let handles: Vec<_> = calls
            .iter()
            .map(|(node, daemon, socket)| {
                s.spawn(move || -> Result<(String, Daemon, Value)> {
                    let method = format!("{}/GetStatus", daemon.service());
                    let text = grpc_call(socket, &method, "{}")?;
                    let value: Value = serde_json::from_str(&text).map_err(|e| {
                        l3roamd_lab::Error::parse(
                            format!("{node}/{daemon} status"),
                            format!("{e}: {text}"),
                        )
                    })?;
                    Ok((node.clone(), *daemon, value))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(l3roamd_lab::Error::Usage("status thread panicked".into()))
                })
            })
            .collect()
    });
    let mut snap = Snapshot::default();
    for answer in answers {
        let (node, daemon, status) = answer?;
        match daemon {
            Daemon::NdProxy => {
                snap.seek_packets
                    .insert(node, counter(&status, "mesh_packets_sent"));
            }
            _ => {
                snap.found_sent
                    .insert(node.clone(), counter(&status, "found_sent"));
                snap.forwarded
                    .insert(node.clone(), counter(&status, "forwarded_to_finder"));
                snap.found_received
                    .insert(node, counter(&status, "found_received"));
            }
        }
    }
    Ok(snap)
}

/// A counter from a `GetStatus` answer (uint64 comes as a JSON string).
fn counter(status: &Value, name: &str) -> u64 {
    status["counters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .and_then(|c| {
            c["value"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .or(c["value"].as_u64())
        })
        .unwrap_or(0)
}

/// `after - before` per node, and the total.
fn delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> (BTreeMap<String, u64>, u64) {
    let per: BTreeMap<String, u64> = after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.saturating_sub(before.get(k).copied().unwrap_or(0)),
            )
        })
        .collect();
    let total = per.values().sum();
    (per, total)
}

/// What n1's routing table showed while the ping ran.
#[derive(Debug, Clone, Copy, Default)]
struct RouteWatch {
    /// Last look (its start, from the ping's start) that found no babel route.
    absent_until: Option<Duration>,
    /// First look (its end) that found one.
    seen_at: Option<Duration>,
}

/// One measured seek.
struct SeekRecord {
    hello: Duration,
    hops: usize,
    valid: bool,
    first_reply: Option<Duration>,
    transmitted: u32,
    lost: u32,
    before_route: bool,
    no_route_after_ping: bool,
    seek_packets: u64,
    found_packets: u64,
    data_packets: u64,
    json: Value,
}

fn seek_one(lab: &Lab, hello: Duration, p: &Planned) -> Result<SeekRecord> {
    let nodes = lab.nodes();
    let seeker = lab.node(SEEKER)?.clone();
    // Really undiscovered: no node has any route to the client's address.
    let mut known_on = Vec::new();
    for n in nodes {
        if n.routes()?.iter().any(|r| r.is_host(p.address)) {
            known_on.push(n.name.clone());
        }
    }
    let before = snapshot(nodes)?;

    let done = AtomicBool::new(false);
    let start = Instant::now();
    let (ping, watch) = std::thread::scope(|s| {
        let watcher = s.spawn(|| -> Result<RouteWatch> {
            let mut w = RouteWatch::default();
            // Bounded by the ping's own bound and a hard cap.
            let cap = PING_INTERVAL * PING_COUNT + Duration::from_secs(5);
            while !done.load(Ordering::Relaxed) && start.elapsed() < cap {
                let look = start.elapsed();
                if seeker.has_babel_route(p.address)? {
                    w.seen_at = Some(start.elapsed());
                    break;
                }
                w.absent_until = Some(look);
                std::thread::sleep(ROUTE_POLL);
            }
            Ok(w)
        });
        let ping = lab.ping(GATEWAY, p.address, PING_COUNT, PING_INTERVAL);
        done.store(true, Ordering::Relaxed);
        let watch = watcher
            .join()
            .unwrap_or_else(|_| Err(l3roamd_lab::Error::Usage("route watcher panicked".into())));
        (ping, watch)
    });
    let ping = ping?;
    let watch = watch?;
    let route_after_ping = seeker.has_babel_route(p.address)?;
    let after = snapshot(nodes)?;

    let (seek_per_node, seek_packets) = delta(&before.seek_packets, &after.seek_packets);
    let (_, found_packets) = delta(&before.found_sent, &after.found_sent);
    let (_, data_packets) = delta(&before.forwarded, &after.forwarded);
    let (_, found_received) = delta(&before.found_received, &after.found_received);

    let first_reply = ping.rtts.first().copied().flatten();
    // Approximate: request i leaves i intervals after the first.
    let first_arrival = ping
        .rtts
        .iter()
        .enumerate()
        .filter_map(|(i, rtt)| rtt.map(|r| PING_INTERVAL * i as u32 + r))
        .min();
    let lost = ping.transmitted.saturating_sub(ping.received);
    // Before the route for sure: a look at n1's table that began after the
    // reply was in (1 ms margin for the ping thread's start) found no babel route.
    let before_route = first_reply.is_some_and(|r| {
        watch
            .absent_until
            .is_some_and(|a| r + Duration::from_millis(1) <= a)
    });
    let hops = p.hops as u64;
    let sent_bytes = seek_packets * SEEK_PACKET_BYTES
        + found_packets * FOUND_PACKET_BYTES
        + data_packets * DATA_OVERHEAD_BYTES;
    let json = json!({
        "kind": "seek",
        "hello_s": hello.as_secs_f64(),
        "hops": p.hops,
        "run": p.run,
        "client": p.address.to_string(),
        "client_node": p.node,
        "undiscovered_before": known_on.is_empty(),
        "known_before_on": known_on,
        "first_reply_ms": first_reply.map(ms),
        "first_arrival_ms": first_arrival.map(ms),
        "transmitted": ping.transmitted,
        "received": ping.received,
        "lost": lost,
        "send_errors": ping.send_errors,
        "unreachable_errors": ping.unreachable.len(),
        "mean_rtt_ms": ping.mean_rtt().map(ms),
        "route_on_n1_right_after_ping": route_after_ping,
        "route_absent_on_n1_until_ms": watch.absent_until.map(ms),
        "route_seen_on_n1_at_ms": watch.seen_at.map(ms),
        "first_reply_before_babel_route": before_route,
        "intercom": {
            "seek_packets": seek_packets,
            "seek_packets_per_node": seek_per_node,
            "seek_bytes": seek_packets * SEEK_PACKET_BYTES,
            "found_packets": found_packets,
            "found_received": found_received,
            "found_bytes": found_packets * FOUND_PACKET_BYTES,
            "data_packets": data_packets,
            "data_overhead_bytes": data_packets * DATA_OVERHEAD_BYTES,
            "packets_sent": seek_packets + found_packets + data_packets,
            "bytes_sent": sent_bytes,
            // Unicast FOUND and DATA cross every link between finder and seeker.
            "link_bytes": seek_packets * SEEK_PACKET_BYTES
                + hops * (found_packets * FOUND_PACKET_BYTES + data_packets * DATA_OVERHEAD_BYTES),
        },
    });
    Ok(SeekRecord {
        hello,
        hops: p.hops,
        valid: known_on.is_empty(),
        first_reply,
        transmitted: ping.transmitted,
        lost,
        before_route,
        no_route_after_ping: !route_after_ping,
        seek_packets,
        found_packets,
        data_packets,
        json,
    })
}

// ===== summary =====

#[derive(Default)]
struct Results {
    seeks: Vec<SeekRecord>,
    spreads: Vec<Spread>,
}

impl Results {
    fn summary(&self, args: &Args, wall: Duration) -> Value {
        let mut seek = Vec::new();
        let mut spread = Vec::new();
        for &hello in &args.hellos {
            for hops in HOPS {
                let runs: Vec<&SeekRecord> = self
                    .seeks
                    .iter()
                    .filter(|r| r.hello == hello && r.hops == hops)
                    .collect();
                let valid: Vec<&&SeekRecord> = runs.iter().filter(|r| r.valid).collect();
                let firsts: Vec<Duration> = valid.iter().filter_map(|r| r.first_reply).collect();
                let seeks: Vec<u64> = valid.iter().map(|r| r.seek_packets).collect();
                let founds: Vec<u64> = valid.iter().map(|r| r.found_packets).collect();
                let datas: Vec<u64> = valid.iter().map(|r| r.data_packets).collect();
                let bytes: Vec<u64> = valid
                    .iter()
                    .map(|r| {
                        r.seek_packets * SEEK_PACKET_BYTES
                            + r.found_packets * FOUND_PACKET_BYTES
                            + r.data_packets * DATA_OVERHEAD_BYTES
                    })
                    .collect();
                let seek_bytes: Vec<u64> = seeks.iter().map(|p| p * SEEK_PACKET_BYTES).collect();
                let signalling: Vec<u64> = valid
                    .iter()
                    .map(|r| {
                        r.seek_packets * SEEK_PACKET_BYTES + r.found_packets * FOUND_PACKET_BYTES
                    })
                    .collect();
                let spreads: Vec<&Spread> = self
                    .spreads
                    .iter()
                    .filter(|s| s.hello == hello && s.hops == hops)
                    .collect();
                let spread_times: Vec<Duration> = spreads.iter().filter_map(|s| s.took).collect();
                seek.push(json!({
                    "hello_s": hello.as_secs_f64(),
                    "hops": hops,
                    "runs": runs.len(),
                    "undiscovered_runs": valid.len(),
                    "first_reply_ms": stats(&firsts),
                    "first_request_unanswered": valid.len() - firsts.len(),
                    "transmitted_total": valid.iter().map(|r| u64::from(r.transmitted)).sum::<u64>(),
                    "lost_total": valid.iter().map(|r| u64::from(r.lost)).sum::<u64>(),
                    "first_reply_before_babel_route": valid.iter().filter(|r| r.before_route).count(),
                    "no_babel_route_on_n1_right_after_ping": valid.iter().filter(|r| r.no_route_after_ping).count(),
                    "per_seek": {
                        "seek_packets": count_stats(&seeks),
                        "seek_bytes": count_stats(&seek_bytes),
                        "found_packets": count_stats(&founds),
                        "data_packets": count_stats(&datas),
                        "signalling_bytes": count_stats(&signalling),
                        "bytes_sent": count_stats(&bytes),
                    },
                }));
                spread.push(json!({
                    "hello_s": hello.as_secs_f64(),
                    "hops": hops,
                    "samples": spreads.len(),
                    "timeouts": spreads.len() - spread_times.len(),
                    "ms": stats(&spread_times),
                }));
            }
        }
        json!({
            "kind": "summary",
            "runs": args.runs,
            "spread_runs": args.spread_runs,
            "hello_s": args.hellos.iter().map(|h| h.as_secs_f64()).collect::<Vec<_>>(),
            "ping": {"count": PING_COUNT, "interval_ms": ms(PING_INTERVAL)},
            "packet_bytes": {
                "seek": SEEK_PACKET_BYTES,
                "found": FOUND_PACKET_BYTES,
                "data_overhead": DATA_OVERHEAD_BYTES,
            },
            "c_reference_per_seek": {"packets": C_SEEK_PACKETS, "bytes": C_SEEK_BYTES},
            "seek": seek,
            "babel_route_spread": spread,
            "wall_s": (wall.as_secs_f64() * 10.0).round() / 10.0,
        })
    }
}

fn print_table(summary: &Value) {
    let f = |v: &Value, prec: usize| match v.as_f64() {
        Some(x) => format!("{x:.prec$}"),
        None => "-".into(),
    };
    let row = |c: &[String]| {
        format!(
            "# {:>5} {:>4} {:>4} | {:>7} {:>7} {:>7} | {:>4} | {:>12} | {:>5} {:>5} {:>5} {:>10} {:>6} | {:>6} {:>6} {:>6} {}",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12], c[13],
            c[14], c[15], c[16]
        )
        .trim_end()
        .to_string()
    };
    let spreads = summary["babel_route_spread"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    println!("#");
    println!(
        "# An undiscovered client pinged from the gateway ({PING_COUNT} requests every {} ms; n1 seeks):",
        PING_INTERVAL.as_millis()
    );
    println!(
        "# first reply in ms; lost requests; first replies before the babel route reached n1; \
         packets and bytes per seek; a new babel route's time to reach n1 in ms"
    );
    let head = |c: &[&str]| row(&c.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    println!(
        "{}",
        head(&[
            "hello", "hops", "runs", "first", "reply", "", "", "before", "", "", "", "SEEK+",
            "all", "babel", "route", "", ""
        ])
    );
    println!(
        "{}",
        head(&[
            "s", "", "", "min", "median", "max", "lost", "route", "SEEK", "FOUND", "DATA",
            "FOUND B", "B", "min", "median", "max", ""
        ])
    );
    for s in summary["seek"].as_array().into_iter().flatten() {
        let spread = spreads
            .iter()
            .find(|x| x["hello_s"] == s["hello_s"] && x["hops"] == s["hops"])
            .cloned()
            .unwrap_or(Value::Null);
        let fr = &s["first_reply_ms"];
        let per = &s["per_seek"];
        let timeouts = match spread["timeouts"].as_u64() {
            Some(0) | None => String::new(),
            Some(n) => format!("({n} timed out)"),
        };
        println!(
            "{}",
            row(&[
                f(&s["hello_s"], 1),
                f(&s["hops"], 0),
                f(&s["undiscovered_runs"], 0),
                f(&fr["min"], 1),
                f(&fr["median"], 1),
                f(&fr["max"], 1),
                f(&s["lost_total"], 0),
                format!(
                    "{}/{}",
                    f(&s["first_reply_before_babel_route"], 0),
                    f(&s["undiscovered_runs"], 0)
                ),
                f(&per["seek_packets"]["mean"], 1),
                f(&per["found_packets"]["mean"], 1),
                f(&per["data_packets"]["mean"], 1),
                f(&per["signalling_bytes"]["mean"], 0),
                f(&per["bytes_sent"]["mean"], 0),
                f(&spread["ms"]["min"], 0),
                f(&spread["ms"]["median"], 0),
                f(&spread["ms"]["max"], 0),
                timeouts,
            ])
        );
    }
    println!(
        "# per-seek figures are means; SEEK {SEEK_PACKET_BYTES} B, FOUND {FOUND_PACKET_BYTES} B, \
         DATA +{DATA_OVERHEAD_BYTES} B per forwarded packet (IPv6 packets as sent)"
    );
    println!(
        "# the C l3roamd sends {C_SEEK_PACKETS} SEEK packets, {C_SEEK_BYTES} B per seek in this chain"
    );
}
