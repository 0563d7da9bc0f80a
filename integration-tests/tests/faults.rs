//! Faults: every daemon on the node that serves a client killed (SIGKILL)
//! and restarted 2 s later, as procd's respawn does, while the gateway
//! pings the client 100 times a second.
//!
//! The data path of a served client is the kernel's own (its host route via
//! the client bridge): no daemon is in it, so the client must lose nothing,
//! and every restarted daemon must find its way back (watch snapshots,
//! core's adoption of its own routes) without leaving or losing a route.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use l3roamd_lab::daemons::{base64, health_status};
use l3roamd_lab::wait::{self, Check};
use l3roamd_lab::{
    grpc_call, require_root_and_tools, Daemon, Expect, Lab, LabOptions, Launch, LivePing, GATEWAY,
};

/// procd's respawn waits this long before a restart here.
const RESPAWN: Duration = Duration::from_secs(2);
const SETTLE: Duration = Duration::from_secs(30);

/// gw - n1 - n2 - n3 with real babeld and the daemons, client c1 on n2.
fn chain_with_c1_on_n2() -> Lab {
    let mut lab = Lab::new(LabOptions::chain(3)).expect("build chain");
    lab.add_client("c1", "n2").expect("add c1");
    lab.start_babel().expect("babeld");
    lab.wait_routes_converged(Duration::from_secs(30))
        .expect("babel converges");
    lab.start_all_daemons(Launch::Separate).expect("daemons");
    lab
}

/// Waits until n2's core serves c1 (`addr`) and is connected to its four
/// peers.
fn wait_resynced(lab: &Lab, addr: Ipv6Addr) -> l3roamd_lab::Result<()> {
    let core = lab.node("n2").expect("n2").socket(Daemon::Core);
    let lookup = format!(r#"{{"address":{{"octets":"{}"}}}}"#, base64(&addr.octets()));
    wait::until(
        "n2's core serving c1 and connected to its peers",
        SETTLE,
        || {
            let found = grpc_call(&core, "l3roamd.v1.Core/LookupClient", &lookup)?;
            let status = grpc_call(&core, "l3roamd.v1.Core/GetStatus", "{}")?;
            let status: serde_json::Value = serde_json::from_str(&status)
                .map_err(|e| l3roamd_lab::Error::parse("core status", e.to_string()))?;
            let peers = status["peers"].as_array().cloned().unwrap_or_default();
            let connected = peers
                .iter()
                .filter(|p| p["state"] == "PEER_STATE_CONNECTED")
                .count();
            Ok(if found.contains("\"local\": true") && connected == 4 {
                Check::Ready(())
            } else {
                Check::Pending(format!("{found} / {connected} of 4 peers connected"))
            })
        },
    )
}

fn served_routes(lab: &Lab, node: &str, addr: Ipv6Addr) -> Vec<String> {
    lab.node(node)
        .expect("node")
        .routes()
        .expect("routes")
        .iter()
        .filter(|r| r.is_host(addr) && r.protocol == "158")
        .map(|r| format!("{} dev {:?}", r.dst, r.dev))
        .collect()
}

#[test]
fn every_daemon_killed_and_restarted_under_traffic_loses_nothing() {
    if !require_root_and_tools() {
        return;
    }
    // gw - n1 - n2 - n3, the client on n2.
    let mut lab = chain_with_c1_on_n2();
    let c1 = lab.client("c1").expect("c1").clone();
    let addr = c1.address;
    let nca = c1.node_client_address().expect("c1's node-client address");
    let served = wait::until(
        "c1 served by n2 and its node-client address routed",
        SETTLE,
        || {
            let p = lab.ping(GATEWAY, addr, 3, Duration::from_millis(20))?;
            let nca_routed = lab
                .host_routes(GATEWAY, nca)?
                .iter()
                .any(|r| r.is_babel_unicast());
            Ok(if p.all_received() && nca_routed {
                Check::Ready(())
            } else {
                Check::Pending(format!("{p}; node-client address routed: {nca_routed}"))
            })
        },
    );
    if let Err(e) = served {
        panic!("{e}\n{}", lab.report());
    }
    let routes_before = served_routes(&lab, "n2", addr);
    assert_eq!(routes_before.len(), 1, "{routes_before:?}");

    let gw = lab.node(GATEWAY).expect("gw").netns.path();
    let ping = LivePing::start(&gw, addr, Duration::from_millis(10)).expect("ping");
    let mut windows = Vec::new();
    for daemon in [
        Daemon::ClientMon,
        Daemon::ClientDb,
        Daemon::NdProxy,
        Daemon::PrefixD,
        Daemon::Core,
    ] {
        let start = Instant::now();
        let process = lab.daemon_process("n2", daemon).expect("daemon runs");
        process.signal(libc::SIGKILL).expect("SIGKILL");
        process.wait_exit(Duration::from_secs(5)).expect("it exits");
        let _ = lab.stop_daemon("n2", daemon);
        std::thread::sleep(RESPAWN);
        lab.start_daemon("n2", daemon, Launch::Separate)
            .unwrap_or_else(|e| panic!("{daemon} restarts: {e}\n{}", lab.report()));
        // Resynchronised before the next one: core serves c1 and follows
        // all four others again.
        wait_resynced(&lab, addr)
            .unwrap_or_else(|e| panic!("after {daemon}'s restart: {e}\n{}", lab.report()));
        windows.push((daemon, start, Instant::now()));
    }
    let run = ping.stop(Duration::from_millis(500)).expect("ping");

    let mut problems = Vec::new();
    for (daemon, from, to) in &windows {
        let lost = run.lost_sent_after(*from, Duration::from_millis(500))
            - run.lost_sent_after(*to, Duration::from_millis(500));
        let sent = run.sent_after(*from) - run.sent_after(*to);
        eprintln!("{daemon} killed and restarted: {lost} of {sent} echo requests lost");
        if lost > 0 {
            problems.push(format!("{daemon}: {lost} of {sent} lost"));
        }
    }
    // Nothing leaked or missing afterwards: the daemons answer, one route
    // of core's for the client, every path ends at n2, the node-client
    // address is held once.
    for daemon in Daemon::ALL {
        let socket = lab.node("n2").expect("n2").socket(daemon);
        match health_status(&socket) {
            Ok(s) if s.contains("SERVING") => {}
            other => problems.push(format!("{daemon} after its restart: {other:?}")),
        }
    }
    // Core (itself restarted last) serves c1 again and is connected to the
    // four others, each restarted once.
    if let Err(e) = wait_resynced(&lab, addr) {
        problems.push(format!("core after the restarts: {e}"));
    }
    // The restarted core found c1's host route, its node-client address
    // and that address's route as it makes them, and left them alone.
    for (counter, expected) in [("routes_in_place", 2), ("addresses_in_place", 1)] {
        match lab.counter("n2", Daemon::Core, counter) {
            Ok(n) if n == expected => {}
            other => problems.push(format!("core's {counter} after its restart: {other:?}")),
        }
    }
    let routes_after = served_routes(&lab, "n2", addr);
    if routes_after != routes_before {
        problems.push(format!(
            "core's routes for c1: {routes_before:?} -> {routes_after:?}"
        ));
    }
    if let Err(e) = lab.wait_audit(addr, &Expect::holder("n2"), SETTLE) {
        problems.push(format!("audit: {e}"));
    }
    let on_lo = lab
        .node("n2")
        .expect("n2")
        .ip(&["-6", "addr", "show", "dev", "lo"])
        .expect("addresses");
    let held = on_lo.matches(&nca.to_string()).count();
    if held != 1 {
        problems.push(format!("node-client address {nca} on n2's lo {held} times"));
    }
    let tun = lab
        .node("n2")
        .expect("n2")
        .ip(&["link", "show", "dev", "l3roam0"]);
    if tun.is_err() {
        problems.push("no TUN device after core's restart".into());
    }
    assert!(
        problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        lab.report()
    );
}

/// prefixd on `node` is connected to babeld's control socket again.
fn prefixd_follows_babel(lab: &Lab, node: &str) -> Result<(), String> {
    let socket = lab.node(node).expect("node").socket(Daemon::PrefixD);
    let status =
        grpc_call(&socket, "l3roamd.v1.PrefixD/GetStatus", "{}").map_err(|e| e.to_string())?;
    if status.contains("\"babelConnected\": true") {
        Ok(())
    } else {
        Err(status)
    }
}

#[test]
fn babeld_restarted_on_the_serving_node_and_on_a_middle_node() {
    if !require_root_and_tools() {
        return;
    }
    // n2 serves the client, n1 is on the way.
    let mut lab = chain_with_c1_on_n2();
    let addr = lab.client("c1").expect("c1").address;
    // Found (a silent client is served once sought).
    let reached = wait::until("c1 reachable from the gateway", SETTLE, || {
        let p = lab.ping(GATEWAY, addr, 3, Duration::from_millis(20))?;
        Ok(if p.all_received() {
            Check::Ready(())
        } else {
            Check::Pending(p.to_string())
        })
    });
    if let Err(e) = reached.and_then(|()| {
        lab.wait_audit(addr, &Expect::holder("n2"), SETTLE)
            .map(|_| ())
    }) {
        panic!("{e}\n{}", lab.report());
    }
    let gw = lab.node(GATEWAY).expect("gw").netns.path();
    let mut problems = Vec::new();
    for node in ["n2", "n1"] {
        let ping = LivePing::start(&gw, addr, Duration::from_millis(10)).expect("ping");
        std::thread::sleep(Duration::from_millis(500));
        let start = Instant::now();
        lab.restart_babel(node, RESPAWN)
            .unwrap_or_else(|e| panic!("babeld on {node} restarts: {e}"));
        let back = wait::until(
            &format!("c1 reachable after babeld's restart on {node}"),
            SETTLE,
            || {
                Ok(if ping.replies_since(start + RESPAWN) >= 10 {
                    Check::Ready(())
                } else {
                    Check::Pending(format!(
                        "{} replies since the restart",
                        ping.replies_since(start + RESPAWN)
                    ))
                })
            },
        );
        let run = ping.stop(Duration::from_millis(500)).expect("ping");
        let lost = run.lost_sent_after(start, Duration::from_millis(500));
        let resumed = run.first_reply_after(start + RESPAWN).map(|t| t - start);
        eprintln!(
            "babeld restarted on {node} ({RESPAWN:?} down): {lost} of {} sent lost, {} not sent (no route: {:?}), replies again {resumed:?} after the stop",
            run.sent_after(start),
            run.send_errors,
            run.first_error
        );
        if let Err(e) = back {
            problems.push(e.to_string());
        }
        if let Err(e) = lab.wait_audit(addr, &Expect::holder("n2"), SETTLE) {
            problems.push(format!("after babeld's restart on {node}: {e}"));
        }
        // prefixd follows babeld's control socket across the restart.
        let followed = wait::until(
            &format!("prefixd on {node} following babel again"),
            SETTLE,
            || {
                Ok(match prefixd_follows_babel(&lab, node) {
                    Ok(()) => Check::Ready(()),
                    Err(status) => Check::Pending(status),
                })
            },
        );
        if let Err(e) = followed {
            problems.push(e.to_string());
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        lab.report()
    );
}
