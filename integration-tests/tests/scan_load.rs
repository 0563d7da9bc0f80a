//! Load: a scan of the whole client /64, 10,000 unknown destinations a
//! second for 30 s, first from the gateway side, then from a client on the
//! link, while the gateway pings a known client at 100 packets/s. The
//! scanned node's memory stays bounded, its seeks stay at ndproxy's rate,
//! the known client loses nothing, and all the scan's state is gone within
//! the hold time. The figures (RSS before and after, SEEKs per second,
//! drops by reason) are printed: `cargo test -p l3roamd-lab --test
//! scan_load -- --nocapture`.

use std::time::{Duration, Instant};

use l3roamd_lab::daemons::health_status;
use l3roamd_lab::wait::{self, Check};
use l3roamd_lab::{
    require_root_and_tools, Daemon, Lab, LabOptions, Launch, LivePing, GATEWAY, NEXT_NODE_ADDRESS,
};

/// Packets per second and seconds of each scan.
const RATE: u32 = 10_000;
const SECONDS: u32 = 30;
/// core.hold_time_ms's default, and what may pass after it before idle.
const HOLD: Duration = Duration::from_secs(5);
const IDLE_MARGIN: Duration = Duration::from_secs(5);
/// ndproxy's default seek rate and burst.
const SEEKS_PER_SECOND: u64 = 20;
const SEEK_BURST: u64 = 40;
/// The growth of a daemon's RSS the held-packet and seek bounds allow for.
const RSS_GROWTH_MAX_KIB: u64 = 32 * 1024;

/// All counters of `daemon` on `node`, by name.
fn counters(lab: &Lab, node: &str, daemon: Daemon) -> Vec<(String, u64)> {
    lab.counters(node, daemon).expect("status")
}

fn counter(lab: &Lab, node: &str, daemon: Daemon, name: &str) -> u64 {
    lab.counter(node, daemon, name).expect("status")
}

/// VmRSS of every daemon on `node`, in KiB.
fn rss(lab: &mut Lab, node: &str) -> Vec<(Daemon, u64)> {
    Daemon::ALL
        .iter()
        .map(|d| {
            let pid = lab.daemon_process(node, *d).expect("daemon runs").pid();
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
            let kib = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .expect("VmRSS");
            (*d, kib)
        })
        .collect()
}

/// A Python scanner: `RATE` UDP datagrams a second for `SECONDS` to
/// pseudo-random addresses of fddd:1::/64, paced every 10 ms; prints how
/// many it sent.
fn scanner(seed: u32) -> String {
    format!(
        "import socket, time, random\n\
         random.seed({seed})\n\
         s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
         s.setblocking(False)\n\
         per_tick = {RATE} // 100\n\
         start = time.monotonic()\n\
         sent = 0\n\
         for tick in range({SECONDS} * 100):\n\
         \x20   for _ in range(per_tick):\n\
         \x20       a = 'fddd:1::%x:%x:%x:%x' % tuple(random.getrandbits(16) for _ in range(4))\n\
         \x20       try:\n\
         \x20           s.sendto(b'scan', (a, 9))\n\
         \x20           sent += 1\n\
         \x20       except OSError:\n\
         \x20           pass\n\
         \x20   wait = start + (tick + 1) / 100 - time.monotonic()\n\
         \x20   if wait > 0:\n\
         \x20       time.sleep(wait)\n\
         print(sent)\n"
    )
}

/// What one scan did to `node`.
struct Figures {
    sent: u64,
    seeks_per_second: f64,
    lost: usize,
    pinged: usize,
    rss_before: Vec<(Daemon, u64)>,
    rss_after: Vec<(Daemon, u64)>,
    drops: Vec<(String, u64)>,
    idle_after: Duration,
    /// CPU time each daemon used from the scan's start until idle.
    cpu: Vec<(Daemon, Duration)>,
}

fn cpu(lab: &mut Lab, node: &str) -> Vec<(Daemon, Duration)> {
    Daemon::ALL
        .iter()
        .map(|d| (*d, lab.daemon_cpu(node, *d).expect("cpu")))
        .collect()
}

/// Runs one scan from the namespace `from` into `node` while the gateway
/// pings `known`; returns the figures, or the problems found.
fn scan(
    lab: &mut Lab,
    from: &str,
    node: &str,
    known: std::net::Ipv6Addr,
    seed: u32,
) -> Result<Figures, Vec<String>> {
    let mut problems = Vec::new();
    let rss_before = rss(lab, node);
    let cpu_before = cpu(lab, node);
    let seeks_before = counter(lab, node, Daemon::NdProxy, "seeks_sent");
    let core_before = counters(lab, node, Daemon::Core);
    let gw = lab.node(GATEWAY).expect("gw").netns.path();
    let ping = LivePing::start(&gw, known, Duration::from_millis(10)).expect("ping");
    let started = Instant::now();
    let out = lab
        .netns(from)
        .expect("scanner's namespace")
        .exec_status(
            &["python3", "-c", &scanner(seed)],
            Duration::from_secs(u64::from(SECONDS) * 2),
        )
        .and_then(|o| o.success());
    let scanned_for = started.elapsed();
    let stopped = Instant::now();
    let seeks = counter(lab, node, Daemon::NdProxy, "seeks_sent") - seeks_before;
    let rss_after = rss(lab, node);
    let run = ping.stop(Duration::from_millis(500)).expect("ping");
    let sent = match out.map(|o| o.trim().parse::<u64>()) {
        Ok(Ok(n)) => n,
        other => {
            problems.push(format!("the scanner failed: {other:?}"));
            0
        }
    };
    let lost = run.lost_sent_after(started, Duration::from_millis(500));
    let pinged = run.sent_after(started);
    // Everything the scan left is gone within the hold time.
    let idle = wait::until_every(
        "the scan's state is gone",
        HOLD + IDLE_MARGIN,
        Duration::from_millis(100),
        || {
            let held = counter(lab, node, Daemon::Core, "held_now");
            let sought = counter(lab, node, Daemon::Core, "destinations_sought_now");
            Ok(if held == 0 && sought == 0 {
                Check::Ready(stopped.elapsed())
            } else {
                Check::Pending(format!("held {held}, destinations sought {sought}"))
            })
        },
    );
    let idle_after = idle.unwrap_or_else(|e| {
        problems.push(e.to_string());
        Duration::MAX
    });
    let cpu = cpu(lab, node)
        .into_iter()
        .zip(cpu_before)
        .map(|((d, after), (_, before))| (d, after.saturating_sub(before)))
        .collect();
    let core_after = counters(lab, node, Daemon::Core);
    let drops = core_after
        .iter()
        .filter(|(name, _)| name.contains("dropped") || name.contains("unreachable"))
        .map(|(name, after)| {
            let before = core_before
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, v)| *v);
            (name.clone(), after - before)
        })
        .collect();

    let seconds = scanned_for.as_secs_f64().max(1.0);
    let figures = Figures {
        sent,
        seeks_per_second: seeks as f64 / seconds,
        lost,
        pinged,
        rss_before,
        rss_after,
        drops,
        idle_after,
        cpu,
    };
    // Bounds: the seek rate, memory, the known client, the daemons.
    let seek_cap = SEEK_BURST + SEEKS_PER_SECOND * (scanned_for.as_secs() + 2);
    if seeks > seek_cap {
        problems.push(format!("{seeks} seeks sent, more than the cap {seek_cap}"));
    }
    for ((daemon, before), (_, after)) in figures.rss_before.iter().zip(&figures.rss_after) {
        if after.saturating_sub(*before) > RSS_GROWTH_MAX_KIB {
            problems.push(format!("{daemon}'s RSS grew from {before} to {after} KiB"));
        }
    }
    // The target is none lost; a loaded 2-core machine may drop a
    // handful of 3,000 echo requests in the veths themselves.
    if lost > pinged / 200 {
        problems.push(format!("the known client lost {lost} of {pinged}"));
    }
    if sent < u64::from(RATE) * u64::from(SECONDS) / 2 {
        problems.push(format!("the scanner sent only {sent}"));
    }
    for daemon in Daemon::ALL {
        let socket = lab.node(node).expect("node").socket(daemon);
        match health_status(&socket) {
            Ok(s) if s.contains("SERVING") => {}
            other => problems.push(format!("{daemon} on {node}: {other:?}")),
        }
    }
    if problems.is_empty() {
        Ok(figures)
    } else {
        Err(problems)
    }
}

fn report(what: &str, f: &Figures) {
    eprintln!(
        "{what}: {} datagrams sent; {:.1} SEEKs/s; known client lost {} of {}; idle {:.1} s after the scan",
        f.sent,
        f.seeks_per_second,
        f.lost,
        f.pinged,
        f.idle_after.as_secs_f64()
    );
    for (((daemon, before), (_, after)), (_, cpu)) in
        f.rss_before.iter().zip(&f.rss_after).zip(&f.cpu)
    {
        eprintln!(
            "  {daemon}: RSS {before} KiB -> {after} KiB, CPU {:.2} s",
            cpu.as_secs_f64()
        );
    }
    for (name, n) in &f.drops {
        eprintln!("  core {name}: +{n}");
    }
}

#[test]
fn a_scan_of_the_client_prefix_at_10000_per_second() {
    if !require_root_and_tools() {
        return;
    }
    // gw - n1 - n2: the scan falls into n1's catch-all, the known client is
    // on n2; c2, on n1, scans through its router as a Gluon client does
    // (router advertisements there announce the prefix off-link): its
    // route through the router goes ahead of the lab's on-link /64.
    let mut lab = Lab::new(LabOptions::chain(2)).expect("build chain");
    let known = lab.add_client("c1", "n2").expect("c1").address;
    lab.add_client("c2", "n1").expect("c2");
    lab.start_babel().expect("babeld");
    lab.wait_routes_converged(Duration::from_secs(30))
        .expect("babel converges");
    lab.start_all_daemons(Launch::Separate).expect("daemons");
    lab.netns("c2")
        .expect("c2")
        .ip(&[
            "-6",
            "route",
            "replace",
            "fddd:1::/64",
            "via",
            &NEXT_NODE_ADDRESS.to_string(),
            "dev",
            "eth0",
            "metric",
            "1",
        ])
        .expect("c2 routes the prefix through its router");
    lab.wait_reachable(GATEWAY, known, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.report()));

    let mut problems = Vec::new();
    for (what, from, seed) in [
        ("scan from the gateway side", GATEWAY, 1),
        ("scan from a client on n1", "c2", 2),
    ] {
        match scan(&mut lab, from, "n1", known, seed) {
            Ok(figures) => report(what, &figures),
            Err(p) => problems.extend(p.into_iter().map(|p| format!("{what}: {p}"))),
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        lab.report()
    );
}
