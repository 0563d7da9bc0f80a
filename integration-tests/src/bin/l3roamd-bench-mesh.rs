//! `l3roamd-bench-mesh`: a 20-node grid mesh with 100 roaming clients, then
//! the same mesh idle, then what seeks cost as the mesh grows.
//!
//! The lab is a `rows` × `cols` grid (default 4 × 5: 20 nodes, 31 links,
//! many paths between nodes) with the classic gateway linked to n1, real
//! babeld and our five daemons on every node. Clients are spread over the
//! nodes round robin; the gateway pings every one of them at 10 packets/s
//! from one socket. Each client roams (radio-like: carrier loss, then
//! carrier on the new node) to a random neighbouring node after a random
//! dwell of 20-60 s, from a seeded schedule, for `--minutes`.
//!
//! Reported: per-roam gap (median, p95, max), requests lost after link-up,
//! failed roams (no reply within 10 s of link-up), the route audit of every
//! client address on every member at the end, intercom packets and bytes per
//! second on all mesh links (counted by the kernel per link, see
//! `l3roamd_lab::meter`), CPU and RSS (and its private part) per node, and
//! the fill of the kernel's IPv6 neighbour table, which all namespaces share
//! (when it is full, sends fail with EINVAL everywhere). Then
//! `--idle-minutes` without pings or roams: intercom packets and CPU. Then
//! seeks of silent clients 1..8 hops from the gateway (0..7 from the seeker
//! n1) in this mesh and in every `--seek-grids` grid: time to the first
//! reply, SEEK packets and bytes per seek against the number of nodes and
//! links.
//!
//! Output: one JSON object per line on stdout (`"kind"`: `lab`, `roam`,
//! `phase`, `node`, `audit`, `neighbour_table`, `seek`, `error`, then one
//! `summary`), then, unless `--json-only`, a table whose lines start with
//! `#`. Progress goes to stderr. The exit status says whether the
//! measurements could be taken and the final audit passed; timings are
//! reported, not judged. Needs root,
//! iproute2, babeld, grpcurl and the multicall binary (`cargo build -p l3roamd`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use l3roamd_lab::bench::{emit, ms, percentile, sorted, stats, Flags};
use l3roamd_lab::mesh_run::{
    audit_clients, build_mesh, execute_roams, measure_roams, wait_all_answer, Mesh, MeshAudit,
    MeshSpec, RoamMeasure,
};
use l3roamd_lab::topology::hops_from;
use l3roamd_lab::{IntercomMeter, Lab, MeterCounts, ProcessUsage, Result, WireKind, GATEWAY};

const USAGE: &str = "\
Usage: l3roamd-bench-mesh [--rows R] [--cols C] [--clients N] [--minutes M]
                          [--idle-minutes M] [--seed S] [--dwell MIN,MAX]
                          [--seek-grids RxC[,RxC...]] [--json-only]

  --rows R, --cols C   grid size (default 4 x 5: 20 nodes)
  --clients N          roaming clients (default 100, at most 200)
  --minutes M          roaming time (default 10; 0 skips roaming)
  --idle-minutes M     idle time afterwards (default 5; 0 skips it)
  --seed S             seed of the roam schedule (default 1)
  --dwell MIN,MAX      seconds on a node between roams (default 20,60)
  --seek-grids LIST    further grids to measure seeks in, e.g. 2x2,3x3 (default none)
  --json-only          print only the JSON lines on stdout, no table";

/// How long after link-up a roam may take to get its first reply before it counts as failed.
const RESUME_TIMEOUT: Duration = Duration::from_secs(10);
/// Ping interval per client: 10 packets/s.
const PING_INTERVAL: Duration = Duration::from_millis(100);
/// Bound on every client answering its first pings (each is sought once).
const WARMUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Quiet time after the warm-up seeks and after the roaming, before a phase is measured.
const SETTLE: Duration = Duration::from_secs(15);
/// Bound on the final route audit (handovers last 5 s; babel needs a few hellos).
const AUDIT_TIMEOUT: Duration = Duration::from_secs(90);
/// Echo requests per seek and their spacing.
const SEEK_PINGS: u32 = 20;
const SEEK_PING_INTERVAL: Duration = Duration::from_millis(10);
/// Time for a flood and its FOUND to finish after a seek's pings.
const SEEK_TAIL: Duration = Duration::from_secs(2);

struct Args {
    rows: usize,
    cols: usize,
    clients: usize,
    roam_for: Duration,
    idle_for: Duration,
    seed: u64,
    dwell: (Duration, Duration),
    seek_grids: Vec<(usize, usize)>,
    json_only: bool,
}

fn parse_grid(flag: &str, v: &str) -> std::result::Result<(usize, usize), String> {
    let (r, c) = v
        .split_once('x')
        .ok_or(format!("{flag}: {v:?} is not RxC"))?;
    let n = |s: &str| -> std::result::Result<usize, String> {
        s.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10).contains(n))
            .ok_or(format!("{flag}: {s:?} is not 1..=10"))
    };
    let (r, c) = (n(r)?, n(c)?);
    if r * c < 2 {
        return Err(format!("{flag}: {v} has fewer than 2 nodes"));
    }
    Ok((r, c))
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut a = Args {
        rows: 4,
        cols: 5,
        clients: 100,
        roam_for: Duration::from_secs(600),
        idle_for: Duration::from_secs(300),
        seed: 1,
        dwell: (Duration::from_secs(20), Duration::from_secs(60)),
        seek_grids: Vec::new(),
        json_only: false,
    };
    let mut f = Flags::from_env();
    while let Some(flag) = f.next() {
        match flag.as_str() {
            "--rows" => a.rows = f.number(&flag, 1..=10)?,
            "--cols" => a.cols = f.number(&flag, 1..=10)?,
            "--clients" => a.clients = f.number(&flag, 1..=200)?,
            "--minutes" => a.roam_for = f.seconds(&flag, 0.0..=600.0)? * 60,
            "--idle-minutes" => a.idle_for = f.seconds(&flag, 0.0..=600.0)? * 60,
            "--seed" => a.seed = f.number(&flag, 0..=usize::MAX)? as u64,
            "--dwell" => {
                let d = f.seconds_list(&flag, 1.0..=3600.0)?;
                match d[..] {
                    [lo, hi] if lo <= hi => a.dwell = (lo, hi),
                    _ => return Err(format!("{flag} needs MIN,MAX with MIN <= MAX")),
                }
            }
            "--seek-grids" => {
                let v = f.text(&flag)?;
                a.seek_grids = v
                    .split(',')
                    .map(|g| parse_grid(&flag, g))
                    .collect::<std::result::Result<_, _>>()?;
            }
            "--json-only" => a.json_only = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.rows * a.cols < 2 {
        return Err("the grid needs at least 2 nodes".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match l3roamd_lab::bench::start("l3roamd-bench-mesh", USAGE, parse_args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let started = Instant::now();
    let mut summary = json!({"kind": "summary"});
    let mut failed = false;
    match bench_mesh(&args, &mut summary) {
        Ok(audit_ok) => failed |= !audit_ok,
        Err(e) => {
            failed = true;
            emit(&json!({"kind": "error", "lab": "main", "error": e.to_string()}));
            progress(&format!("FAILED: {e}"));
        }
    }
    let mut grids = Vec::new();
    for &(rows, cols) in &args.seek_grids {
        match seek_grid(rows, cols) {
            Ok(v) => grids.push(v),
            Err(e) => {
                failed = true;
                emit(
                    &json!({"kind": "error", "lab": format!("{rows}x{cols}"), "error": e.to_string()}),
                );
                progress(&format!("FAILED: {e}"));
            }
        }
    }
    summary["seek_grids"] = Value::Array(grids);
    summary["wall_s"] = json!(started.elapsed().as_secs_f64());
    l3roamd_lab::bench::finish(&summary, args.json_only, print_table, failed)
}

fn progress(text: &str) {
    eprintln!("l3roamd-bench-mesh: {text}");
}

// ===== the main mesh =====

/// Silent seek targets: the lowest-numbered node at each distance from n1.
fn seek_targets(rows: usize, cols: usize) -> Vec<(String, String, usize)> {
    let nodes = rows * cols;
    let links = l3roamd_lab::Topology::Grid { rows, cols }.links(nodes);
    let hops = hops_from(&links, nodes, 1);
    let max = hops.iter().flatten().max().copied().unwrap_or(0);
    (0..=max)
        .filter_map(|d| {
            let node = (1..=nodes).find(|n| hops.get(*n).copied().flatten() == Some(d))?;
            Some((format!("s{d}"), format!("n{node}"), d))
        })
        .collect()
}

/// Everything about the main mesh; true if the final audit passed.
fn bench_mesh(args: &Args, summary: &mut Value) -> Result<bool> {
    let targets = seek_targets(args.rows, args.cols);
    let spec = MeshSpec {
        rows: args.rows,
        cols: args.cols,
        clients: args.clients,
        silent: targets
            .iter()
            .map(|(c, n, _)| (c.clone(), n.clone()))
            .collect(),
        roam_for: args.roam_for,
        dwell: args.dwell,
        seed: args.seed,
        ping_interval: PING_INTERVAL,
    };
    progress(&format!(
        "building a {}x{} grid with {} clients",
        args.rows, args.cols, args.clients
    ));
    let mut mesh = build_mesh(&spec)?;
    let links = mesh.lab.node_links().len() + 1;
    emit(&json!({
        "kind": "lab",
        "lab": mesh.lab.id(),
        "rows": args.rows,
        "cols": args.cols,
        "nodes": args.rows * args.cols,
        "links": links,
        "clients": args.clients,
        "seed": args.seed,
        "babel_converged_ms": ms(mesh.converged_in),
        "built_ms": ms(mesh.built_in),
    }));
    summary["lab"] = json!({
        "rows": args.rows, "cols": args.cols, "nodes": args.rows * args.cols,
        "links_with_gateway": links, "clients": args.clients, "seed": args.seed,
        "minutes": args.roam_for.as_secs_f64() / 60.0,
        "idle_minutes": args.idle_for.as_secs_f64() / 60.0,
    });
    progress(&format!(
        "lab {} up in {:.1?} (babel converged in {:.1?})",
        mesh.lab.id(),
        mesh.built_in,
        mesh.converged_in
    ));
    let meter = IntercomMeter::start(mesh.lab.members())?;

    // ----- roaming -----
    let pings = mesh.start_pings(PING_INTERVAL)?;
    let warm =
        wait_all_answer(&pings, args.clients, WARMUP_TIMEOUT).map_err(l3roamd_lab::Error::Usage)?;
    progress(&format!(
        "all {} clients answer after {warm:.1?}",
        args.clients
    ));
    summary["warmup_ms"] = json!(ms(warm));
    std::thread::sleep(SETTLE);
    let plan = mesh.plan(&spec);
    progress(&format!(
        "roaming for {:.0?}: {} roams planned",
        args.roam_for,
        plan.len()
    ));
    let before = Phase::begin(&mesh.lab, &meter)?;
    let neigh_before = NeighbourTable::read();
    let mut neigh_max = neigh_before.entries;
    let start = Instant::now();
    let total = plan.len();
    let executed = execute_roams(&mut mesh.lab, &mesh.clients, &plan, start, |i, e| {
        neigh_max = neigh_max.max(NeighbourTable::read().entries);
        if (i + 1) % 50 == 0 || i + 1 == total {
            progress(&format!(
                "roam {}/{total} at {:.0?} (late {:.0?})",
                i + 1,
                e.planned.at,
                e.late
            ));
        }
    })?;
    // The phase lasts the planned time, not until the last roam.
    let end = start + args.roam_for;
    if let Some(rest) = end.checked_duration_since(Instant::now()) {
        std::thread::sleep(rest);
    }
    let roaming = before.end(&mesh.lab, &meter)?;
    let neigh_after = NeighbourTable::read();
    summary["kernel_neighbour_table"] = json!({
        "limit_gc_thresh3": NeighbourTable::limit(),
        "entries_max_seen_while_roaming": neigh_max,
        "table_full_events_while_roaming": neigh_after.table_fulls.saturating_sub(neigh_before.table_fulls),
        "note": "one table for the whole kernel: every lab on the machine counts",
    });
    emit(&json!({"kind": "neighbour_table", "table": summary["kernel_neighbour_table"].clone()}));
    progress("roaming over; auditing every client on every node");
    let audit = audit_clients(&mesh.lab, &mesh.clients, &mesh.addresses, AUDIT_TIMEOUT)?;
    let runs = pings.stop()?;
    let roams = measure_roams(&runs, &executed, RESUME_TIMEOUT);
    for m in &roams {
        emit(&roam_json(&mesh, m));
    }
    let late: Vec<f64> = executed.iter().map(|e| ms(e.late)).collect();
    summary["roaming"] = roam_summary(&roams, &roaming, &late);
    summary["audit"] = audit_json(&audit, "after_roaming");
    emit(&phase_json("roaming", &roaming));
    let audit_ok = audit.problems.is_empty();
    progress(&format!(
        "audit: {}/{} clients right after {:.1?}{}",
        audit.passed,
        audit.clients,
        audit.waited,
        audit
            .problems
            .first()
            .map(|p| format!("; first problem: {p}"))
            .unwrap_or_default()
    ));

    // ----- idle -----
    if !args.idle_for.is_zero() {
        std::thread::sleep(SETTLE);
        progress(&format!("idle for {:.0?}", args.idle_for));
        let before = Phase::begin(&mesh.lab, &meter)?;
        std::thread::sleep(args.idle_for);
        let idle = before.end(&mesh.lab, &meter)?;
        emit(&phase_json("idle", &idle));
        summary["idle"] = phase_summary(&idle);
        let held = audit_clients(&mesh.lab, &mesh.clients, &mesh.addresses, Duration::ZERO)?;
        summary["audit_after_idle"] = audit_json(&held, "after_idle");
    }

    // ----- seeks -----
    let seeks = seek_all(&mesh.lab, &meter, &targets, args.rows, args.cols)?;
    summary["seeks"] = seeks;
    mesh.lab.shutdown()?;
    Ok(audit_ok)
}

/// Seeks in a grid of its own, with only the silent seek targets as clients.
fn seek_grid(rows: usize, cols: usize) -> Result<Value> {
    let targets = seek_targets(rows, cols);
    let spec = MeshSpec {
        rows,
        cols,
        clients: 0,
        silent: targets
            .iter()
            .map(|(c, n, _)| (c.clone(), n.clone()))
            .collect(),
        roam_for: Duration::ZERO,
        dwell: (Duration::from_secs(1), Duration::from_secs(1)),
        seed: 0,
        ping_interval: PING_INTERVAL,
    };
    progress(&format!("seek grid {rows}x{cols}"));
    let mesh = build_mesh(&spec)?;
    let meter = IntercomMeter::start(mesh.lab.members())?;
    std::thread::sleep(Duration::from_secs(3));
    let v = seek_all(&mesh.lab, &meter, &targets, rows, cols)?;
    let mut lab = mesh.lab;
    lab.shutdown()?;
    Ok(v)
}

/// Seeks every silent target once from the gateway; per-seek records and a summary.
fn seek_all(
    lab: &Lab,
    meter: &IntercomMeter,
    targets: &[(String, String, usize)],
    rows: usize,
    cols: usize,
) -> Result<Value> {
    let nodes = rows * cols;
    // Mesh links (grid plus the gateway's): a flood crosses each once per direction at most.
    let links = lab.node_links().len() + 1;
    let mut per = Vec::new();
    for (client, node, d) in targets {
        let addr = lab.client(client)?.address;
        // Really undiscovered: no member has any route to the client's address.
        let mut known_on = Vec::new();
        for m in lab.members() {
            if m.routes()?.iter().any(|r| r.is_host(addr)) {
                known_on.push(m.name.clone());
            }
        }
        let before = meter.snapshot()?;
        let ping = lab.ping(GATEWAY, addr, SEEK_PINGS, SEEK_PING_INTERVAL)?;
        std::thread::sleep(SEEK_TAIL);
        let delta = meter.snapshot()?.since(&before);
        let first_arrival = ping
            .rtts
            .iter()
            .enumerate()
            .filter_map(|(i, rtt)| rtt.map(|r| SEEK_PING_INTERVAL * i as u32 + r))
            .min();
        let (sp, sb) = delta.kind(WireKind::Seek);
        let (fp, fb) = delta.kind(WireKind::Found);
        let (dp, db) = delta.kind(WireKind::Data);
        let seekers: Vec<String> = delta
            .by_member
            .iter()
            .filter(|((_, k), _)| *k == WireKind::Seek)
            .map(|((m, _), (p, _))| format!("{m}:{p}"))
            .collect();
        let rec = json!({
            "kind": "seek",
            "grid": format!("{rows}x{cols}"),
            "nodes": nodes,
            "links": links,
            "client": client,
            "client_node": node,
            "hops_from_seeker": d,
            "undiscovered_before": known_on.is_empty(),
            "known_before_on": known_on,
            "hops_from_gateway": d + 1,
            "first_reply_ms": ping.rtts.first().copied().flatten().map(ms),
            "first_arrival_ms": first_arrival.map(ms),
            "received": ping.received,
            "transmitted": ping.transmitted,
            "seek_packets": sp,
            "seek_bytes": sb,
            "seek_packets_by_member": seekers,
            "found_packets": fp,
            "found_bytes": fb,
            "data_packets": dp,
            "data_bytes": db,
            "all_packets": delta.total().0,
            "all_bytes": delta.total().1,
        });
        progress(&format!(
            "seek {client} on {node} ({} hops from gw): first arrival {}, {sp} SEEK packets ({sb} B), {fp} FOUND, {dp} DATA",
            d + 1,
            first_arrival
                .map(|a| format!("{:.1} ms", ms(a)))
                .unwrap_or_else(|| "none".into())
        ));
        emit(&rec);
        per.push(rec);
    }
    let seek_packets: Vec<f64> = per
        .iter()
        .filter_map(|r| r["seek_packets"].as_f64())
        .collect();
    Ok(json!({
        "grid": format!("{rows}x{cols}"),
        "nodes": nodes,
        "links": links,
        "seek_packets_per_seek": stats(seek_packets),
        "per_seek": per,
    }))
}

// ===== the kernel's neighbour table =====

/// The IPv6 neighbour cache of the whole kernel (`/proc/net/stat/ndisc_cache`):
/// entries now and how often it was full. It is one table for all network
/// namespaces, bounded by `net.ipv6.neigh.default.gc_thresh3`; when it is
/// full, every send that needs a new entry (also a multicast one) fails
/// with EINVAL, in every namespace: babeld's hellos, ndproxy's SEEKs.
#[derive(Debug, Clone, Copy, Default)]
struct NeighbourTable {
    entries: u64,
    table_fulls: u64,
}

impl NeighbourTable {
    fn read() -> NeighbourTable {
        let text = std::fs::read_to_string("/proc/net/stat/ndisc_cache").unwrap_or_default();
        let mut t = NeighbourTable::default();
        // One line per CPU after the header; `entries` is the same on every line.
        for line in text.lines().skip(1) {
            let fields: Vec<u64> = line
                .split_whitespace()
                .filter_map(|f| u64::from_str_radix(f, 16).ok())
                .collect();
            t.entries = fields.first().copied().unwrap_or(t.entries);
            t.table_fulls += fields.get(12).copied().unwrap_or(0);
        }
        t
    }

    fn limit() -> Option<u64> {
        std::fs::read_to_string("/proc/sys/net/ipv6/neigh/default/gc_thresh3")
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }
}

// ===== phases =====

/// Meter and process usage at the start of a phase.
struct Phase {
    at: Instant,
    counts: MeterCounts,
    usage: MemberUsage,
}

/// Per member, the usage of each of its processes by name.
type MemberUsage = Vec<(String, Vec<(String, ProcessUsage)>)>;

/// What a phase cost.
struct PhaseCost {
    secs: f64,
    counts: MeterCounts,
    /// Per member: CPU used in the phase and RSS and its private part at
    /// its end, with the per-process breakdown.
    nodes: Vec<NodeCost>,
}

/// One member's cost in a phase: the sum, then per process (name, CPU, RSS, private RSS).
/// One process's share of a phase: CPU time and wake-ups in it, memory at its end.
struct ProcCost {
    name: String,
    cpu: Duration,
    wakes: u64,
    rss: u64,
    anon: u64,
}

struct NodeCost {
    member: String,
    cpu: Duration,
    rss: u64,
    anon: u64,
    per: Vec<ProcCost>,
}

fn usage_all(lab: &Lab) -> Result<MemberUsage> {
    lab.members()
        .iter()
        .map(|m| Ok((m.name.clone(), lab.node_usage(&m.name)?)))
        .collect()
}

impl Phase {
    fn begin(lab: &Lab, meter: &IntercomMeter) -> Result<Phase> {
        Ok(Phase {
            at: Instant::now(),
            counts: meter.snapshot()?,
            usage: usage_all(lab)?,
        })
    }

    fn end(self, lab: &Lab, meter: &IntercomMeter) -> Result<PhaseCost> {
        let counts = meter.snapshot()?.since(&self.counts);
        let secs = self.at.elapsed().as_secs_f64();
        let now = usage_all(lab)?;
        let mut nodes = Vec::new();
        for (member, procs) in now {
            let earlier = self.usage.iter().find(|(m, _)| *m == member);
            let mut per = Vec::new();
            for (name, u) in procs {
                let u0 = earlier
                    .and_then(|(_, ps)| ps.iter().find(|(n, _)| *n == name))
                    .map(|(_, u)| (u.cpu, u.wakes))
                    .unwrap_or_default();
                per.push(ProcCost {
                    cpu: u.cpu.saturating_sub(u0.0),
                    wakes: u.wakes.saturating_sub(u0.1),
                    rss: u.rss_bytes,
                    anon: u.anon_bytes,
                    name,
                });
            }
            nodes.push(NodeCost {
                member,
                cpu: per.iter().map(|p| p.cpu).sum(),
                rss: per.iter().map(|p| p.rss).sum(),
                anon: per.iter().map(|p| p.anon).sum(),
                per,
            });
        }
        Ok(PhaseCost {
            secs,
            counts,
            nodes,
        })
    }
}

fn phase_json(name: &str, p: &PhaseCost) -> Value {
    for n in &p.nodes {
        let procs: Vec<Value> = n
            .per
            .iter()
            .map(|c| {
                json!({"process": c.name, "cpu_ms": ms(c.cpu), "wakes": c.wakes,
                    "wakes_per_minute": c.wakes as f64 / p.secs * 60.0,
                    "rss_kib": c.rss / 1024, "private_kib": c.anon / 1024})
            })
            .collect();
        let (pk, by) = p.counts.member(&n.member);
        emit(&json!({
            "kind": "node",
            "phase": name,
            "node": n.member,
            "cpu_percent": n.cpu.as_secs_f64() / p.secs * 100.0,
            "rss_kib": n.rss / 1024,
            "private_kib": n.anon / 1024,
            "intercom_packets_sent": pk,
            "intercom_bytes_sent": by,
            "processes": procs,
        }));
    }
    let mut j = phase_summary(p);
    j["kind"] = json!("phase");
    j["phase"] = json!(name);
    j
}

fn phase_summary(p: &PhaseCost) -> Value {
    let mut by_kind = serde_json::Map::new();
    for k in WireKind::ALL {
        let (pk, by) = p.counts.kind(k);
        by_kind.insert(
            k.name().into(),
            json!({"packets": pk, "bytes": by, "packets_per_s": pk as f64 / p.secs, "bytes_per_s": by as f64 / p.secs}),
        );
    }
    let (ip, ib) = p.counts.intercom();
    let (tp, tb) = p.counts.total();
    // The gateway runs babeld only: its figures are babeld's.
    let daemon_nodes: Vec<&NodeCost> = p.nodes.iter().filter(|n| n.member != GATEWAY).collect();
    let cpu: Vec<f64> = daemon_nodes
        .iter()
        .map(|n| n.cpu.as_secs_f64() / p.secs * 100.0)
        .collect();
    let rss: Vec<f64> = daemon_nodes.iter().map(|n| n.rss as f64 / 1024.0).collect();
    let private: Vec<f64> = daemon_nodes
        .iter()
        .map(|n| n.anon as f64 / 1024.0)
        .collect();
    let ours = |f: &dyn Fn(&ProcCost) -> f64| -> Vec<f64> {
        daemon_nodes
            .iter()
            .map(|n| {
                n.per
                    .iter()
                    .filter(|c| c.name != "babeld")
                    .map(f)
                    .sum::<f64>()
            })
            .collect()
    };
    let ours_cpu = ours(&|c| c.cpu.as_secs_f64() / p.secs * 100.0);
    let ours_wakes = ours(&|c| c.wakes as f64 / p.secs * 60.0);
    json!({
        "seconds": p.secs,
        "intercom_5523_packets": ip,
        "intercom_5523_bytes": ib,
        "intercom_5523_bytes_per_s": ib as f64 / p.secs,
        "intercom_5523_packets_per_s": ip as f64 / p.secs,
        "all_5523_5524_packets": tp,
        "all_5523_5524_bytes": tb,
        "all_5523_5524_bytes_per_s": tb as f64 / p.secs,
        "by_kind": by_kind,
        "cpu_percent_per_node": stats(cpu),
        "our_daemons_cpu_percent_per_node": stats(ours_cpu),
        "our_daemons_wakes_per_minute_per_node": stats(ours_wakes),
        "rss_kib_per_node": stats(rss),
        "private_kib_per_node": stats(private),
    })
}

// ===== roams =====

fn roam_json(mesh: &Mesh, m: &RoamMeasure) -> Value {
    json!({
        "kind": "roam",
        "client": mesh.clients.get(m.client),
        "from": format!("n{}", m.from),
        "to": format!("n{}", m.to),
        "at_s": m.at.as_secs_f64(),
        "gap_ms": m.gap.map(ms),
        "first_reply_after_link_up_ms": m.first_after_up.map(ms),
        "lost_after_link_up": m.lost_after_up,
        "sent_after_link_up": m.sent_after_up,
        "icmp_errors_after_link_up": m.errors_after_up,
        "failed": m.failed,
    })
}

fn roam_summary(roams: &[RoamMeasure], cost: &PhaseCost, late: &[f64]) -> Value {
    let gaps = sorted(roams.iter().filter_map(|m| m.gap.map(ms)).collect());
    let lost: u64 = roams.iter().map(|m| m.lost_after_up as u64).sum();
    let sent: u64 = roams.iter().map(|m| m.sent_after_up as u64).sum();
    let failed = roams.iter().filter(|m| m.failed).count();
    let lossy = roams.iter().filter(|m| m.lost_after_up > 0).count();
    let errors: u64 = roams.iter().map(|m| m.errors_after_up as u64).sum();
    let n = roams.len().max(1) as f64;
    let per_roam = |k: WireKind| {
        let (p, b) = cost.counts.kind(k);
        json!({"packets": p as f64 / n, "bytes": b as f64 / n})
    };
    let mut phase = phase_summary(cost);
    phase["per_roam"] = json!({
        "claim": per_roam(WireKind::Claim),
        "info": per_roam(WireKind::Info),
        "ack": per_roam(WireKind::Ack),
        "seek": per_roam(WireKind::Seek),
        "found": per_roam(WireKind::Found),
        "data": per_roam(WireKind::Data),
    });
    json!({
        "roams": roams.len(),
        "gap_ms": stats(gaps.clone()),
        "gap_p95_ms": percentile(&gaps, 95.0),
        "lost_after_link_up": lost,
        "sent_after_link_up": sent,
        "roams_with_loss": lossy,
        "failed_roams": failed,
        "icmp_errors_after_link_up": errors,
        "move_lateness_ms": stats(late.to_vec()),
        "cost": phase,
    })
}

fn audit_json(a: &MeshAudit, when: &str) -> Value {
    let v = json!({
        "kind": "audit",
        "when": when,
        "clients": a.clients,
        "passed": a.passed,
        "loops": a.loops,
        "waited_ms": ms(a.waited),
        "problems": a.problems.iter().take(20).collect::<Vec<_>>(),
        "problem_count": a.problems.len(),
    });
    emit(&v);
    v
}

// ===== table =====

fn print_table(s: &Value) {
    let f = |v: &Value| match v.as_f64() {
        Some(x) => format!("{x:.1}"),
        None => "-".into(),
    };
    println!("# l3roamd-bench-mesh: {}", s["lab"]);
    let r = &s["roaming"];
    if !r.is_null() {
        println!(
            "# roams {}  gap ms median {} p95 {} max {}  lost after link-up {} of {} ({} roams)  failed {}  ICMP errors {}",
            r["roams"],
            f(&r["gap_ms"]["median"]),
            f(&r["gap_p95_ms"]),
            f(&r["gap_ms"]["max"]),
            r["lost_after_link_up"],
            r["sent_after_link_up"],
            r["roams_with_loss"],
            r["failed_roams"],
            r["icmp_errors_after_link_up"],
        );
        let c = &r["cost"];
        println!(
            "# roaming: intercom (5523) {} B/s, {} pkt/s mesh-wide on all links; with FOUND/DATA (5524) {} B/s",
            f(&c["intercom_5523_bytes_per_s"]),
            f(&c["intercom_5523_packets_per_s"]),
            f(&c["all_5523_5524_bytes_per_s"]),
        );
        for k in ["claim", "info", "ack", "seek", "found", "data"] {
            println!(
                "#   per roam {k:<5} {} packets {} bytes (link crossings)",
                f(&c["per_roam"][k]["packets"]),
                f(&c["per_roam"][k]["bytes"])
            );
        }
        println!(
            "# roaming: CPU % per node (all six processes) median {} max {}; ours only median {} max {}; RSS KiB per node median {} max {} (private median {} max {})",
            f(&c["cpu_percent_per_node"]["median"]),
            f(&c["cpu_percent_per_node"]["max"]),
            f(&c["our_daemons_cpu_percent_per_node"]["median"]),
            f(&c["our_daemons_cpu_percent_per_node"]["max"]),
            f(&c["rss_kib_per_node"]["median"]),
            f(&c["rss_kib_per_node"]["max"]),
            f(&c["private_kib_per_node"]["median"]),
            f(&c["private_kib_per_node"]["max"]),
        );
    }
    let k = &s["kernel_neighbour_table"];
    if !k.is_null() {
        println!(
            "# kernel IPv6 neighbour table (all namespaces): max {} entries of {} while roaming, full {} times",
            k["entries_max_seen_while_roaming"], k["limit_gc_thresh3"], k["table_full_events_while_roaming"]
        );
    }
    let a = &s["audit"];
    if !a.is_null() {
        println!(
            "# audit after roaming: {}/{} clients right, {} loops, after {} ms",
            a["passed"],
            a["clients"],
            a["loops"],
            f(&a["waited_ms"])
        );
    }
    let i = &s["idle"];
    if !i.is_null() {
        println!(
            "# idle {} s: intercom {} packets ({} B), with 5524 {} packets; CPU % per node median {} max {} (ours median {} max {}); our wake-ups per minute per node median {} max {}",
            f(&i["seconds"]),
            i["intercom_5523_packets"],
            i["intercom_5523_bytes"],
            i["all_5523_5524_packets"],
            f(&i["cpu_percent_per_node"]["median"]),
            f(&i["cpu_percent_per_node"]["max"]),
            f(&i["our_daemons_cpu_percent_per_node"]["median"]),
            f(&i["our_daemons_cpu_percent_per_node"]["max"]),
            f(&i["our_daemons_wakes_per_minute_per_node"]["median"]),
            f(&i["our_daemons_wakes_per_minute_per_node"]["max"]),
        );
        let h = &s["audit_after_idle"];
        println!(
            "# after idle: {}/{} clients still held as before",
            h["passed"], h["clients"]
        );
    }
    let mut grids: Vec<&Value> = s["seeks"]
        .as_object()
        .map(|_| &s["seeks"])
        .into_iter()
        .collect();
    if let Some(more) = s["seek_grids"].as_array() {
        grids.extend(more.iter());
    }
    for g in grids {
        println!(
            "# seeks in {} ({} nodes, {} links incl. gateway):",
            g["grid"].as_str().unwrap_or("?"),
            g["nodes"],
            g["links"]
        );
        for p in g["per_seek"].as_array().into_iter().flatten() {
            println!(
                "#   {} hops from gw: first arrival {} ms, SEEK {} packets {} B, FOUND {}, DATA {}",
                p["hops_from_gateway"],
                f(&p["first_arrival_ms"]),
                p["seek_packets"],
                p["seek_bytes"],
                p["found_packets"],
                p["data_packets"],
            );
        }
    }
}
