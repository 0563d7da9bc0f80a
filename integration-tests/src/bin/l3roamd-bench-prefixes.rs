//! `l3roamd-bench-prefixes`: how fast client prefixes flow, from a gateway
//! to a client three hops away, and what router advertisements cost.
//!
//! The two-gateway lab (`gw` beside n1, `gw2` beside n3, real babeld, our
//! five daemons everywhere, no configured site prefix) with a SLAAC client
//! on n3, three hops from `gw`. Each trial, without waiting for anything to
//! settle in between:
//!
//! - `gw` announces a new prefix C at runtime (`PrefixD/Announce`): time
//!   until the client holds a preferred address in C, and until that
//!   address reaches the internet host (through `gw`, the only way back);
//! - `gw` withdraws C (`PrefixD/Withdraw`): time until the client's address
//!   in C is deprecated.
//!
//! The steps are `--pause` apart (default 4 s), so that each change gets
//! its own multicast RA (RFC 4861 allows one every 3 s at most).
//!
//! Then: router solicitations from the client answered (RS to RA, as the
//! client sees it), and the RAs one client link carries per minute when
//! nothing changes. Output: one JSON object per line on stdout (`kind`:
//! `trial`, `solicitation`, `idle`, `error`, then `summary`), then unless
//! `--json-only` a table whose lines start with `#`. Nothing is asserted;
//! the exit status says whether the measurements could be taken. Needs
//! root, iproute2, babeld, grpcurl and the daemon binaries.

use std::net::Ipv6Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use l3roamd_lab::bench::{duration_stats as stats, emit, ms};
use l3roamd_lab::daemons::base64;
use l3roamd_lab::{
    grpc_call, Daemon, Ipv6Prefix, Lab, LabOptions, Launch, Result, GATEWAY, INET, INTERNET_HOST,
};

const USAGE: &str = "\
Usage: l3roamd-bench-prefixes [--trials N] [--pause S] [--solicitations N] [--idle S] [--json-only]

  --trials N         announce/withdraw cycles (default 10, at most 100)
  --pause S          seconds between an announcement's end and the withdrawal and
                     between trials (default 4; multicast RAs come at most every
                     3 s, RFC 4861 MIN_DELAY_BETWEEN_RAS: with 0 that limit shows)
  --solicitations N  router solicitations timed (default 20, at most 1000)
  --idle S           seconds of RAs counted on an idle link (default 300, at most 3600;
                     unsolicited RAs come every 198 to 600 s by default)
  --json-only        print only the JSON lines on stdout, no table";

/// The prefix announced and withdrawn.
const PREFIX_C: &str = "2001:db8:c::/64";
/// The client, three hops from gw.
const CLIENT: &str = "c1";
const CLIENT_NODE: &str = "n3";
/// Bound on each wait of a trial.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the client's addresses are read.
const POLL: Duration = Duration::from_millis(10);
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Between two router solicitations.
const RS_SPACING: Duration = Duration::from_millis(1100);

struct Args {
    trials: usize,
    pause: Duration,
    solicitations: usize,
    idle: Duration,
    json_only: bool,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut args = Args {
        trials: 10,
        pause: Duration::from_secs(4),
        solicitations: 20,
        idle: Duration::from_secs(300),
        json_only: false,
    };
    let number = |flag: &str, v: Option<String>, max: u64| -> std::result::Result<u64, String> {
        let zero_ok = flag == "--pause";
        let v = v.ok_or(format!("{flag} needs a number"))?;
        let n: u64 = v
            .parse()
            .map_err(|_| format!("{flag}: not a number: {v:?}"))?;
        if (n == 0 && !zero_ok) || n > max {
            return Err(format!("{flag}: {n} is not in 1..={max}"));
        }
        Ok(n)
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--trials" => args.trials = number("--trials", it.next(), 100)? as usize,
            "--pause" => args.pause = Duration::from_secs(number("--pause", it.next(), 60)?),
            "--solicitations" => {
                args.solicitations = number("--solicitations", it.next(), 1000)? as usize
            }
            "--idle" => args.idle = Duration::from_secs(number("--idle", it.next(), 3600)?),
            "--json-only" => args.json_only = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match l3roamd_lab::bench::start("l3roamd-bench-prefixes", USAGE, parse_args) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let mut results = Results::default();
    let failed = match bench(&args, &mut results) {
        Ok(()) => false,
        Err(e) => {
            emit(&json!({"kind": "error", "error": e.to_string()}));
            progress(&format!("FAILED: {e}"));
            true
        }
    };
    let summary = results.summary();
    l3roamd_lab::bench::finish(&summary, args.json_only, print_table, failed)
}

fn progress(text: &str) {
    eprintln!("l3roamd-bench-prefixes: {text}");
}

#[derive(Default)]
struct Results {
    preferred: Vec<Duration>,
    reachable: Vec<Duration>,
    deprecated: Vec<Duration>,
    failed_trials: usize,
    rs_to_ra: Vec<Duration>,
    unanswered: usize,
    idle: Option<(Duration, usize, usize)>,
}

impl Results {
    fn summary(&self) -> Value {
        let idle = self.idle.map(|(d, count, bytes)| {
            let per_min = 60.0 / d.as_secs_f64();
            json!({
                "seconds": d.as_secs_f64(),
                "ras": count,
                "bytes": bytes,
                "ras_per_minute": (count as f64 * per_min * 100.0).round() / 100.0,
                "bytes_per_minute": (bytes as f64 * per_min).round(),
            })
        });
        json!({
            "kind": "summary",
            "announce_to_preferred_ms": stats(&self.preferred),
            "announce_to_internet_ms": stats(&self.reachable),
            "withdraw_to_deprecated_ms": stats(&self.deprecated),
            "failed_trials": self.failed_trials,
            "rs_to_ra_ms": stats(&self.rs_to_ra),
            "rs_unanswered": self.unanswered,
            "idle_link": idle,
        })
    }
}

/// The JSON form of a `Prefix` message.
fn prefix_json(prefix: Ipv6Prefix) -> String {
    let addr: Ipv6Addr = prefix.network();
    format!(
        r#"{{"address":{{"octets":"{}"}},"length":{}}}"#,
        base64(&addr.octets()),
        prefix.prefix_len()
    )
}

fn bench(args: &Args, results: &mut Results) -> Result<()> {
    let c_prefix: Ipv6Prefix = PREFIX_C
        .parse()
        .map_err(|e| l3roamd_lab::Error::Usage(format!("{PREFIX_C}: {e}")))?;
    progress("building the lab");
    let mut lab = Lab::new(LabOptions::two_gateways(3))?;
    lab.start_babel()?;
    lab.wait_routes_converged(CONVERGE_TIMEOUT)?;
    // Room for C besides A and B, so its selection is not a matter of
    // metrics.
    lab.start_all_daemons_with(
        Launch::Separate,
        &[
            ("mesh", "client_prefixes", "[]"),
            ("prefixd", "max_prefixes", "3"),
        ],
    )?;
    // The internet routes C back through gw, like its own prefix.
    let gw_iface = format!("u-{GATEWAY}");
    lab.netns(INET)?.ip(&[
        "-6",
        "route",
        "add",
        PREFIX_C,
        "via",
        &l3roamd_lab::UPLINK_GATEWAY_ADDRESS.to_string(),
        "dev",
        &gw_iface,
    ])?;
    lab.add_slaac_client(CLIENT, CLIENT_NODE)?;
    let client = lab.client(CLIENT)?.clone();
    let c_addr = client.slaac_address(c_prefix);
    let gw_socket = lab.node(GATEWAY)?.socket(Daemon::PrefixD);
    let announce = format!(r#"{{"prefix":{},"metric":0}}"#, prefix_json(c_prefix));
    let withdraw = format!(r#"{{"prefix":{}}}"#, prefix_json(c_prefix));

    for trial in 0..args.trials {
        progress(&format!("trial {}/{}", trial + 1, args.trials));
        let t0 = Instant::now();
        grpc_call(&gw_socket, "l3roamd.v1.PrefixD/Announce", &announce)?;
        let preferred = wait_for(STEP_TIMEOUT, || {
            Ok(client
                .addresses()?
                .iter()
                .any(|a| a.addr == c_addr && a.is_preferred()))
        })?;
        let reachable = preferred.and_then(|_| {
            wait_for(STEP_TIMEOUT, || {
                let ping = lab.ping_from(CLIENT, c_addr, INTERNET_HOST, 1, POLL)?;
                Ok(ping.received > 0)
            })
            .ok()
            .flatten()
        });
        std::thread::sleep(args.pause);
        let t1 = Instant::now();
        grpc_call(&gw_socket, "l3roamd.v1.PrefixD/Withdraw", &withdraw)?;
        let deprecated = wait_for(STEP_TIMEOUT, || {
            Ok(client
                .addresses()?
                .iter()
                .any(|a| a.addr == c_addr && a.deprecated))
        })?;
        let failed = preferred.is_none() || reachable.is_none() || deprecated.is_none();
        emit(&json!({
            "kind": "trial",
            "trial": trial,
            "announce_to_preferred_ms": preferred.map(|t| ms(t - t0)),
            "announce_to_internet_ms": reachable.map(|t| ms(t - t0)),
            "withdraw_to_deprecated_ms": deprecated.map(|t| ms(t - t1)),
            "failed": failed,
        }));
        if failed {
            results.failed_trials += 1;
        }
        results.preferred.extend(preferred.map(|t| t - t0));
        results.reachable.extend(reachable.map(|t| t - t0));
        results.deprecated.extend(deprecated.map(|t| t - t1));
        std::thread::sleep(args.pause);
    }

    progress("router solicitations");
    for i in 0..args.solicitations {
        // prefixd answers one client at most once a second (more
        // solicitations within the second share the answer): one RS per
        // 1.1 s times single answers.
        std::thread::sleep(RS_SPACING);
        match client.solicit_router(Duration::from_secs(2))? {
            Some((delay, ra)) => {
                emit(
                    &json!({"kind": "solicitation", "n": i, "rs_to_ra_ms": ms(delay), "bytes": ra.icmp.len()}),
                );
                results.rs_to_ra.push(delay);
            }
            None => {
                emit(&json!({"kind": "solicitation", "n": i, "rs_to_ra_ms": null}));
                results.unanswered += 1;
            }
        }
    }

    progress(&format!("counting RAs on an idle link for {:?}", args.idle));
    let ras = client.capture_ras(args.idle)?;
    // Our own solicitations above may still be answered at the start.
    let bytes: usize = ras.iter().map(|r| r.icmp.len()).sum();
    emit(
        &json!({"kind": "idle", "seconds": args.idle.as_secs_f64(), "ras": ras.len(), "icmp_bytes": bytes}),
    );
    results.idle = Some((args.idle, ras.len(), bytes));
    Ok(())
}

/// Polls `ready` every [`POLL`] until it says yes (the moment), or `None`
/// after `timeout`.
fn wait_for(timeout: Duration, mut ready: impl FnMut() -> Result<bool>) -> Result<Option<Instant>> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ready()? {
            return Ok(Some(Instant::now()));
        }
        std::thread::sleep(POLL);
    }
    Ok(None)
}

fn print_table(summary: &Value) {
    let f = |v: &Value| match v.as_f64() {
        Some(x) => format!("{x:.1}"),
        None => "-".into(),
    };
    let row = |name: &str, s: &Value| {
        println!(
            "# {name:<28} {:>4} {:>9} {:>9} {:>9} {:>9}",
            s["n"].as_u64().unwrap_or(0),
            f(&s["min"]),
            f(&s["median"]),
            f(&s["p95"]),
            f(&s["max"])
        );
    };
    println!("#");
    println!(
        "# Client prefixes: gw announces and withdraws a prefix; the client sits 3 hops away (ms)"
    );
    println!(
        "# {:<28} {:>4} {:>9} {:>9} {:>9} {:>9}",
        "", "n", "min", "median", "p95", "max"
    );
    row(
        "announce -> preferred addr",
        &summary["announce_to_preferred_ms"],
    );
    row(
        "announce -> internet reached",
        &summary["announce_to_internet_ms"],
    );
    row(
        "withdraw -> deprecated",
        &summary["withdraw_to_deprecated_ms"],
    );
    row("RS -> RA", &summary["rs_to_ra_ms"]);
    println!(
        "# failed trials {}, unanswered solicitations {}",
        summary["failed_trials"], summary["rs_unanswered"]
    );
    let idle = &summary["idle_link"];
    if idle.is_object() {
        println!(
            "# idle client link: {} RAs, {} ICMPv6 bytes in {} s = {} RAs, {} bytes per minute",
            idle["ras"],
            idle["bytes"],
            idle["seconds"],
            idle["ras_per_minute"],
            idle["bytes_per_minute"]
        );
    }
}
