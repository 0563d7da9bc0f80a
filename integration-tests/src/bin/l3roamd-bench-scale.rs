//! `l3roamd-bench-scale`: many clients on one node (issue 13).
//!
//! One node (`n1`, behind the lab's gateway, real babeld, our five daemons)
//! and one real client for the bridge's carrier. The clients are neighbour
//! entries on the client bridge (`ip -batch`, REACHABLE, with a reachable
//! time of an hour so that none goes stale during the run): clientmon sees
//! them as it sees real clients, core claims them through client-db and
//! installs three host routes each. Measured, in order:
//!
//! - memory (RSS and PSS from `/proc/PID/smaps_rollup`) of each daemon and
//!   of all five, with 0 clients and after each step of `--clients`;
//! - arrival: time from the neighbour entries' creation until every client
//!   address has its host route (and until every node-client address is
//!   held), with core's counters;
//! - adoption: core killed (SIGKILL, its routes stay) and restarted, with
//!   `core.route_batch` 128 (pipelined) and 1 (one round trip per request):
//!   time until it serves its socket (adoption is done by then) and until
//!   its status lists every client;
//! - client-db restarted with every record: time until it serves;
//! - for reference, the kernel's own pace: `ip -batch` replacing as many
//!   host routes in a table babel does not read (one request, one
//!   acknowledgement, in turn).
//!
//! Output: one JSON object per line on stdout (`kind`: `memory`,
//! `arrival`, `adoption`, `client_db_start`, `ip_batch`, `error`, then
//! `summary`), then unless `--json-only` a table whose lines start with
//! `#`. Nothing is asserted. For figures of a release build:
//! `L3ROAMD_BIN_DIR=target/release`. Needs root, iproute2, babeld, grpcurl.

use std::fmt::Write as _;
use std::net::Ipv6Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use l3roamd_lab::bench::emit;
use l3roamd_lab::wait::{self, Check};
use l3roamd_lab::{grpc_call, Daemon, Error, Lab, LabOptions, Launch, Result, CLIENT_BRIDGE};

const USAGE: &str = "\
Usage: l3roamd-bench-scale [--clients N,N,...] [--launch multicall|separate] [--memory-only] [--hold S] [--json-only]

  --clients N,...  client counts to reach, in steps (default 1000,10000; at most 60000)
  --launch L       multicall: the five daemons as links to the multicall binary
                   (default, as on a router); separate: the five binaries
  --memory-only    arrival and memory only: no restarts, no ip -batch reference
  --hold S         with --memory-only: keep the daemons running S seconds after
                   the last reading, to look at them (/proc/PID/smaps, gdb)
  --json-only      print only the JSON lines on stdout, no table";

const NODE: &str = "n1";
/// Bound on every wait.
const TIMEOUT: Duration = Duration::from_secs(300);
/// Between a step's end and its memory reading: timers and queues settle,
/// and the daemons trim their heaps (every 5 s, `l3roamd_daemon` heap.rs).
const SETTLE: Duration = Duration::from_secs(6);
/// How often the route table (tens of thousands of lines) is read.
const POLL: Duration = Duration::from_millis(50);
/// The addresses of client `i` are `fddd:1::a1:i` to `fddd:1::a3:i`.
const ADDRESSES: [u16; 3] = [0xa1, 0xa2, 0xa3];

struct Args {
    clients: Vec<usize>,
    launch: Launch,
    memory_only: bool,
    hold: Duration,
    json_only: bool,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut args = Args {
        clients: vec![1000, 10_000],
        launch: Launch::MulticallSymlink,
        memory_only: false,
        hold: Duration::ZERO,
        json_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--clients" => {
                let v = it.next().ok_or("--clients needs a value")?;
                let mut steps = Vec::new();
                for n in v.split(',') {
                    let n: usize = n.parse().map_err(|_| format!("--clients: {n}"))?;
                    if n == 0 || n > 60_000 || steps.last().is_some_and(|l| *l >= n) {
                        return Err(format!("--clients: {v}: rising counts, 1 to 60000"));
                    }
                    steps.push(n);
                }
                args.clients = steps;
            }
            "--launch" => {
                args.launch = match it.next().as_deref() {
                    Some("multicall") => Launch::MulticallSymlink,
                    Some("separate") => Launch::Separate,
                    other => return Err(format!("--launch: {other:?}")),
                }
            }
            "--memory-only" => args.memory_only = true,
            "--hold" => {
                let v = it.next().ok_or("--hold needs a value")?;
                let s: u64 = v.parse().map_err(|_| format!("--hold: {v}"))?;
                args.hold = Duration::from_secs(s);
            }
            "--json-only" => args.json_only = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn progress(text: &str) {
    eprintln!("l3roamd-bench-scale: {text}");
}

fn main() -> ExitCode {
    let args = match l3roamd_lab::bench::start("l3roamd-bench-scale", USAGE, parse_args) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let mut results = Vec::new();
    let failed = match run(&args, &mut results) {
        Ok(()) => false,
        Err(e) => {
            progress(&format!("FAILED: {e}"));
            let error = json!({"kind": "error", "error": e.to_string()});
            emit(&error);
            results.push(error);
            true
        }
    };
    let summary = json!({"kind": "summary", "results": results});
    l3roamd_lab::bench::finish(&summary, args.json_only, print_table, failed)
}

fn record(results: &mut Vec<Value>, value: Value) {
    emit(&value);
    results.push(value);
}

fn run(args: &Args, results: &mut Vec<Value>) -> Result<()> {
    let mut lab = Lab::new(LabOptions::chain(1))?;
    lab.add_client("c1", NODE)?;
    // REACHABLE for an hour (clientmon takes a REACHABLE entry for a
    // sighting, a STALE one not), and not collected for an hour.
    for setting in ["base_reachable_time_ms=3600000", "gc_stale_time=3600"] {
        lab.node(NODE)?.exec(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.neigh.{CLIENT_BRIDGE}.{setting}"),
        ])?;
    }
    let most = args.clients.last().copied().unwrap_or(0) + 100;
    let _table = NeighbourTable::make_room(3 * most)?;
    lab.start_babel()?;
    let limit = most.to_string();
    let records = (2 * most).to_string();
    let mut config = lab.daemon_config(NODE)?;
    config
        .set_raw("clientmon", "max_clients", &limit)
        .set_raw("core", "max_clients", &limit)
        .set_raw("client_db", "max_records", &records);
    lab.start_daemons_with(NODE, args.launch, &config)?;
    std::thread::sleep(SETTLE);
    record(results, memory(&mut lab, 0)?);

    let mut have = 0;
    for &step in &args.clients {
        progress(&format!("{step} clients"));
        let cpu_before = cpu(&mut lab)?;
        add_clients(&lab, have, step)?;
        let t0 = Instant::now();
        let (took, node_client) = wait_routes(&lab, 3 * step, t0)?;
        let new = step - have;
        have = step;
        let counters = core_counters(&lab)?;
        let seconds = took.as_secs_f64();
        record(
            results,
            json!({
                "kind": "arrival",
                "clients": step,
                "new_clients": new,
                "host_routes": 3 * step,
                "seconds_to_host_routes": seconds,
                "host_routes_per_second": (3 * new) as f64 / seconds.max(1e-6),
                "node_client_addresses_by_then": node_client,
                "cpu_seconds": cpu_since(&mut lab, &cpu_before)?,
                "core_counters": counters,
            }),
        );
        std::thread::sleep(SETTLE);
        record(results, memory(&mut lab, step)?);
    }
    if args.memory_only {
        if !args.hold.is_zero() {
            progress(&format!("holding for {} s", args.hold.as_secs()));
            std::thread::sleep(args.hold);
        }
        lab.shutdown()?;
        return Ok(());
    }

    for batch in [128usize, 1] {
        progress(&format!("core restarted with route_batch {batch}"));
        let core = lab
            .daemon_process(NODE, Daemon::Core)
            .ok_or_else(|| Error::Usage("core does not run".into()))?;
        core.signal(libc::SIGKILL)?;
        core.wait_exit(Duration::from_secs(10))?;
        let _ = lab.stop_daemon(NODE, Daemon::Core);
        let mut restart = config.clone();
        restart.set_raw("core", "route_batch", &batch.to_string());
        let t0 = Instant::now();
        let cpu_before = cpu(&mut lab)?;
        lab.start_daemon_with(NODE, Daemon::Core, args.launch, &restart, TIMEOUT)?;
        let to_socket = t0.elapsed();
        let served = wait::until("core to serve every client again", TIMEOUT, || {
            // A core busy with 10,000 arrivals may miss the RPC deadline.
            Ok(match served_clients(&lab) {
                Ok(n) if n >= have => Check::Ready(t0.elapsed()),
                Ok(n) => Check::Pending(format!("{n} of {have} served")),
                Err(e) => Check::Pending(e.to_string()),
            })
        })?;
        let adopted = core_counters(&lab)?
            .get("adopted")
            .cloned()
            .unwrap_or(Value::Null);
        record(
            results,
            json!({
                "kind": "adoption",
                "clients": have,
                "route_batch": batch,
                "adopted": adopted,
                "seconds_to_socket": to_socket.as_secs_f64(),
                "seconds_to_all_served": served.as_secs_f64(),
                "cpu_seconds": cpu_since(&mut lab, &cpu_before)?,
            }),
        );
    }

    progress("client-db restarted");
    lab.stop_daemon(NODE, Daemon::ClientDb)?;
    let t0 = Instant::now();
    lab.start_daemon(NODE, Daemon::ClientDb, args.launch)?;
    let to_socket = t0.elapsed();
    let socket = lab.node(NODE)?.socket(Daemon::ClientDb);
    let list = grpc_call(
        &socket,
        &format!("{}/ListClients", Daemon::ClientDb.service()),
        "{}",
    )?;
    let stored = serde_json::from_str::<Value>(&list)
        .ok()
        .and_then(|v| v["clients"].as_array().map(Vec::len))
        .unwrap_or(0);
    record(
        results,
        json!({
            "kind": "client_db_start",
            "records": stored,
            "seconds_to_socket": to_socket.as_secs_f64(),
        }),
    );
    std::thread::sleep(SETTLE);
    record(results, memory(&mut lab, have)?);

    record(results, ip_batch(&lab, 3 * have)?);
    lab.shutdown()?;
    Ok(())
}

// ===== clients and routes =====

/// The kernel's IPv6 neighbour table is one for all namespaces, its limits
/// (`gc_thresh2`, `gc_thresh3`: 512 and 1024 by default) settable only in
/// the initial namespace: raised for the run so that `entries` more fit,
/// and put back as they were when it ends.
struct NeighbourTable {
    before: Vec<(&'static str, u64)>,
}

const THRESHOLDS: [&str; 2] = [
    "/proc/sys/net/ipv6/neigh/default/gc_thresh3",
    "/proc/sys/net/ipv6/neigh/default/gc_thresh2",
];

impl NeighbourTable {
    fn make_room(entries: usize) -> Result<NeighbourTable> {
        let mut table = NeighbourTable { before: Vec::new() };
        for path in THRESHOLDS {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::io(format!("reading {path}"), e))?;
            let old: u64 = text
                .trim()
                .parse()
                .map_err(|_| Error::parse(path, text.clone()))?;
            let new = old + entries as u64;
            std::fs::write(path, new.to_string())
                .map_err(|e| Error::io(format!("writing {path}"), e))?;
            table.before.push((path, old));
        }
        Ok(table)
    }
}

impl Drop for NeighbourTable {
    fn drop(&mut self) {
        // gc_thresh3 last: it may not go below gc_thresh2.
        for (path, old) in self.before.iter().rev() {
            if let Err(e) = std::fs::write(path, old.to_string()) {
                progress(&format!("cannot put {path} back to {old}: {e}"));
            }
        }
    }
}

fn client_address(i: usize, k: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, k, i as u16)
}

/// Neighbour entries for clients `from..to` on the client bridge.
fn add_clients(lab: &Lab, from: usize, to: usize) -> Result<()> {
    let mut batch = String::new();
    for i in from..to {
        let mac = format!(
            "02:5c:{:02x}:{:02x}:{:02x}:01",
            i >> 16,
            (i >> 8) & 0xff,
            i & 0xff
        );
        for k in ADDRESSES {
            let _ = writeln!(
                batch,
                "neigh replace {} lladdr {mac} dev {CLIENT_BRIDGE} nud reachable",
                client_address(i, k)
            );
        }
    }
    let file = lab.dir().join(format!("neigh-{from}-{to}.batch"));
    std::fs::write(&file, batch)
        .map_err(|e| Error::io(format!("writing {}", file.display()), e))?;
    lab.node(NODE)?
        .ip(&["-6", "-batch", &file.display().to_string()])?;
    Ok(())
}

/// `(host routes via the bridge, node-client routes via lo)` of core.
fn count_routes(lab: &Lab) -> Result<(usize, usize)> {
    let text = lab
        .node(NODE)?
        .ip(&["-6", "route", "show", "table", "254", "proto", "158"])?;
    let mut host = 0;
    let mut node_client = 0;
    for line in text.lines() {
        if line.starts_with("fddd:1::") && line.contains(&format!("dev {CLIENT_BRIDGE}")) {
            host += 1;
        } else if line.starts_with("fec0::") && line.contains("dev lo") {
            node_client += 1;
        }
    }
    Ok((host, node_client))
}

/// Waits for `host` host routes; the time since `t0`, and the node-client
/// addresses held by then (each waits for its client's claim, which for a
/// client new to the mesh goes unanswered for `client_db.claim_retries`
/// times `claim_interval_ms`, 4.8 s, with at most 256 claims under way).
fn wait_routes(lab: &Lab, host: usize, t0: Instant) -> Result<(Duration, usize)> {
    wait::until_every("core to route every client", TIMEOUT, POLL, || {
        let (h, n) = count_routes(lab)?;
        Ok(if h >= host {
            Check::Ready((t0.elapsed(), n))
        } else {
            Check::Pending(format!("{h} of {host} host routes"))
        })
    })
}

fn core_status(lab: &Lab) -> Result<Value> {
    let socket = lab.node(NODE)?.socket(Daemon::Core);
    let text = grpc_call(
        &socket,
        &format!("{}/GetStatus", Daemon::Core.service()),
        "{}",
    )?;
    serde_json::from_str(&text).map_err(|_| Error::parse("core status", text))
}

/// Core's counters that are not zero, by name.
fn core_counters(lab: &Lab) -> Result<serde_json::Map<String, Value>> {
    let status = core_status(lab)?;
    let mut out = serde_json::Map::new();
    for c in status["counters"].as_array().into_iter().flatten() {
        let (Some(name), Some(value)) = (
            c["name"].as_str(),
            c["value"].as_str().and_then(|v| v.parse::<u64>().ok()),
        ) else {
            continue;
        };
        if value != 0 {
            out.insert(name.to_string(), json!(value));
        }
    }
    Ok(out)
}

fn served_clients(lab: &Lab) -> Result<usize> {
    Ok(core_counters(lab)?
        .get("clients_served")
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize)
}

// ===== CPU and memory =====

/// CPU time of each daemon so far (core's restarted one counts from 0),
/// and of the node's babeld (which redistributes every host route).
fn cpu(lab: &mut Lab) -> Result<Vec<(&'static str, Duration)>> {
    let mut out = Vec::new();
    for daemon in Daemon::ALL {
        if lab.daemon_process(NODE, daemon).is_some() {
            out.push((daemon.binary(), lab.daemon_cpu(NODE, daemon)?));
        }
    }
    let netns = lab.node(NODE)?.netns.name().to_string();
    let pids = l3roamd_lab::cmd::run("ip", &["netns", "pids", &netns]).unwrap_or_default();
    for pid in pids.split_whitespace() {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "babeld" {
            out.push(("babeld", process_cpu(pid).unwrap_or_default()));
        }
    }
    Ok(out)
}

/// User and system time of `pid`, from `/proc/PID/stat`.
fn process_cpu(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|h| *h > 0)?;
    Some(Duration::from_millis(
        (fields.get(11)? + fields.get(12)?) * 1000 / hz,
    ))
}

/// CPU seconds each daemon used since `before`.
fn cpu_since(lab: &mut Lab, before: &[(&'static str, Duration)]) -> Result<Value> {
    let mut out = serde_json::Map::new();
    for (name, now) in cpu(lab)? {
        let was = before
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .unwrap_or_default();
        out.insert(
            name.to_string(),
            json!(now.saturating_sub(was).as_secs_f64()),
        );
    }
    Ok(Value::Object(out))
}

/// What `pid` costs: the kB fields of `/proc/PID/smaps_rollup` the
/// figures need (`Pss_Anon` is its own heap and stacks, `Pss_File` its share
/// of the binary's pages), and its number of threads (each has a stack and,
/// with glibc, may have a malloc arena of its own).
fn process_memory(pid: i32) -> Result<Value> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text =
        std::fs::read_to_string(&path).map_err(|e| Error::io(format!("reading {path}"), e))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0);
    Ok(json!({
        "rss_kb": field("Rss:"),
        "pss_kb": field("Pss:"),
        "pss_anon_kb": field("Pss_Anon:"),
        "pss_file_kb": field("Pss_File:"),
        "threads": threads,
    }))
}

fn memory(lab: &mut Lab, clients: usize) -> Result<Value> {
    let mut daemons = serde_json::Map::new();
    let (mut rss, mut pss, mut anon) = (0, 0, 0);
    for daemon in Daemon::ALL {
        let pid = lab
            .daemon_process(NODE, daemon)
            .map(|p| p.pid())
            .ok_or_else(|| Error::Usage(format!("{daemon} does not run")))?;
        let m = process_memory(pid)?;
        rss += m["rss_kb"].as_u64().unwrap_or(0);
        pss += m["pss_kb"].as_u64().unwrap_or(0);
        anon += m["pss_anon_kb"].as_u64().unwrap_or(0);
        daemons.insert(daemon.binary().to_string(), m);
    }
    Ok(json!({
        "kind": "memory",
        "clients": clients,
        "daemons": daemons,
        "all_rss_kb": rss,
        "all_pss_kb": pss,
        "all_pss_anon_kb": anon,
    }))
}

// ===== the kernel's own pace =====

/// `n` host routes replaced by `ip -batch` in table 200 (babeld does not
/// read it), then flushed.
fn ip_batch(lab: &Lab, n: usize) -> Result<Value> {
    let mut batch = String::new();
    for i in 0..n {
        let addr = Ipv6Addr::new(0xfddd, 9, 0, 0, 0, 0, (i >> 16) as u16, i as u16);
        let _ = writeln!(
            batch,
            "route replace {addr}/128 dev {CLIENT_BRIDGE} table 200 proto 200"
        );
    }
    let file = lab.dir().join("routes.batch");
    std::fs::write(&file, batch)
        .map_err(|e| Error::io(format!("writing {}", file.display()), e))?;
    let node = lab.node(NODE)?;
    let t0 = Instant::now();
    node.ip(&["-6", "-batch", &file.display().to_string()])?;
    let seconds = t0.elapsed().as_secs_f64();
    node.ip(&["-6", "route", "flush", "table", "200"])?;
    Ok(json!({
        "kind": "ip_batch",
        "routes": n,
        "seconds": seconds,
        "routes_per_second": n as f64 / seconds.max(1e-6),
    }))
}

// ===== the table =====

fn print_table(summary: &Value) {
    let results = summary["results"].as_array().cloned().unwrap_or_default();
    println!(
        "# memory (kB)          clients      RSS      PSS  PSS anon  (per daemon PSS/anon/threads)"
    );
    for r in results.iter().filter(|r| r["kind"] == "memory") {
        let per: Vec<String> = r["daemons"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(name, v)| {
                        format!(
                            "{name} {}/{}/{}",
                            v["pss_kb"], v["pss_anon_kb"], v["threads"]
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "#   all five        {:>9} {:>8} {:>8} {:>9}  ({})",
            r["clients"],
            r["all_rss_kb"],
            r["all_pss_kb"],
            r["all_pss_anon_kb"],
            per.join(", ")
        );
    }
    for r in results.iter().filter(|r| r["kind"] == "arrival") {
        println!(
            "# arrival: {} clients ({} new): every host route after {:.2} s ({:.0} routes/s), {} node-client addresses held by then",
            r["clients"],
            r["new_clients"],
            r["seconds_to_host_routes"].as_f64().unwrap_or(f64::NAN),
            r["host_routes_per_second"].as_f64().unwrap_or(f64::NAN),
            r["node_client_addresses_by_then"],
        );
    }
    for r in results.iter().filter(|r| r["kind"] == "adoption") {
        println!(
            "# adoption of {} clients, route_batch {:>3}: serving after {:.2} s, every client listed after {:.2} s",
            r["clients"],
            r["route_batch"],
            r["seconds_to_socket"].as_f64().unwrap_or(f64::NAN),
            r["seconds_to_all_served"].as_f64().unwrap_or(f64::NAN),
        );
    }
    for r in results.iter().filter(|r| r["kind"] == "client_db_start") {
        println!(
            "# client-db start with {} records: serving after {:.2} s",
            r["records"],
            r["seconds_to_socket"].as_f64().unwrap_or(f64::NAN),
        );
    }
    for r in results.iter().filter(|r| r["kind"] == "ip_batch") {
        println!(
            "# reference, ip -batch: {} routes in {:.2} s ({:.0}/s)",
            r["routes"],
            r["seconds"].as_f64().unwrap_or(f64::NAN),
            r["routes_per_second"].as_f64().unwrap_or(f64::NAN),
        );
    }
    for r in results.iter().filter(|r| r["kind"] == "error") {
        println!("# error: {}", r["error"]);
    }
}
