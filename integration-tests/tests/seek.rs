//! Reaching undiscovered clients: in a 4-node chain with the gateway behind
//! n1, clients behind n3 and n4 that no node knows are pinged from the
//! gateway. The first packet falls into n1's TUN catch-all, n1 seeks, the
//! finder installs the host route and tells n1 at once, and the held
//! packets arrive. No request may be lost, for every client, and every
//! node ends up with exactly one route to each client, pointing the right
//! way. An address no client uses gets ICMPv6 address unreachable and
//! leaves nothing behind.

use std::net::Ipv6Addr;
use std::time::Duration;

use l3roamd_lab::{
    grpc_call, require_root_and_tools, wait, Daemon, Lab, LabOptions, Launch, GATEWAY,
};

/// One of core's counters on `node`.
fn core_counter(lab: &Lab, node: &str, name: &str) -> u64 {
    lab.counter(node, Daemon::Core, name).expect("core status")
}

#[test]
fn undiscovered_clients_are_reached_without_loss() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(LabOptions::chain(4)).expect("build chain");
    let c1 = lab.add_client("c1", "n4").expect("c1").address;
    let c2 = lab.add_client("c2", "n4").expect("c2").address;
    let c3 = lab.add_client("c3", "n3").expect("c3").address;
    lab.start_babel().expect("babeld");
    lab.wait_routes_converged(Duration::from_secs(30))
        .expect("babel converges");
    lab.start_all_daemons(Launch::Separate).expect("daemons");

    for (client, addr, serving) in [("c1", c1, "n4"), ("c2", c2, "n4"), ("c3", c3, "n3")] {
        assert!(
            lab.host_routes("n1", addr).expect("routes").is_empty(),
            "{client} must be undiscovered before the ping"
        );
        let ping = lab
            .ping(GATEWAY, addr, 10, Duration::from_millis(20))
            .expect("ping");
        if !ping.all_received() {
            panic!("{client} ({addr}): {ping}\n{}", lab.report());
        }
        eprintln!(
            "{client} {addr} behind {serving}: first reply after {:?}",
            ping.rtts[0].unwrap_or_default()
        );
        if let Err(e) = lab.wait_served_by(&[addr], serving, Duration::from_secs(20)) {
            panic!("{e}\n{}", lab.report());
        }
        // Traffic keeps flowing once the route is everywhere.
        let ping = lab
            .ping(GATEWAY, addr, 20, Duration::from_millis(10))
            .expect("ping");
        assert!(ping.all_received(), "{client} after convergence: {ping}");
    }
    assert!(
        core_counter(&lab, "n4", "found_sent") >= 1,
        "n4 told the seeker directly"
    );
    assert!(
        core_counter(&lab, "n1", "found_received") >= 1,
        "n1 heard FOUND"
    );
    assert_eq!(core_counter(&lab, "n1", "held_now"), 0);
}

#[test]
fn unused_address_is_unreachable_and_leaves_nothing_behind() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(LabOptions::chain(2)).expect("build chain");
    lab.add_client("c1", "n2").expect("c1");
    lab.start_babel().expect("babeld");
    lab.wait_routes_converged(Duration::from_secs(30))
        .expect("babel converges");
    lab.start_all_daemons(Launch::Separate).expect("daemons");
    let nobody: Ipv6Addr = "fddd:1::dead".parse().expect("addr");
    // Three requests, then wait out the hold time (5 s) plus margin.
    let ping = lab
        .ping(GATEWAY, nobody, 3, Duration::from_millis(100))
        .expect("ping");
    assert_eq!(ping.received, 0, "{ping}");
    let errors = wait::until(
        "ICMPv6 address unreachable at the sender",
        Duration::from_secs(10),
        || {
            let p = lab.ping(GATEWAY, nobody, 1, Duration::from_millis(100))?;
            Ok(if p.unreachable.iter().any(|(code, _)| *code == 3) {
                wait::Check::Ready(p.unreachable)
            } else {
                wait::Check::Pending(format!("{p}, errors {:?}", p.unreachable))
            })
        },
    );
    let errors = match errors {
        Ok(e) => e,
        Err(e) => panic!("{e}\n{}", lab.report()),
    };
    assert!(errors.iter().all(|(code, _)| *code == 3), "{errors:?}");
    // Nothing left: no held packets, no sought destinations, no route.
    let clean = wait::until(
        "no state left for the unused address",
        Duration::from_secs(10),
        || {
            let held = core_counter(&lab, "n1", "held_now");
            let sought = core_counter(&lab, "n1", "destinations_sought_now");
            let routes: usize = ["n1", "n2"]
                .iter()
                .map(|n| lab.host_routes(n, nobody).expect("routes").len())
                .sum();
            Ok(if held == 0 && sought == 0 && routes == 0 {
                wait::Check::Ready(())
            } else {
                wait::Check::Pending(format!("held {held}, sought {sought}, routes {routes}"))
            })
        },
    );
    if let Err(e) = clean {
        panic!("{e}\n{}", lab.report());
    }
    assert!(core_counter(&lab, "n1", "unreachable_sent") >= 1);
}

/// Sends one UDP datagram from the gateway to each of `count` unknown
/// client addresses, as a scan of the client /64 would.
fn scan_from_gateway(lab: &Lab, count: u32) {
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
         for i in range({count}):\n\
         \x20   s.sendto(b'scan', ('fddd:1::f:%x' % (i + 1), 9))\n"
    );
    lab.gateway()
        .exec(&["python3", "-c", &script])
        .expect("scan from the gateway");
}

#[test]
fn a_scan_of_the_prefix_stays_within_bounds() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(LabOptions::chain(2)).expect("build chain");
    lab.add_client("c1", "n2").expect("c1");
    lab.start_babel().expect("babeld");
    lab.wait_routes_converged(Duration::from_secs(30))
        .expect("babel converges");
    lab.start_all_daemons(Launch::Separate).expect("daemons");
    scan_from_gateway(&lab, 600);
    // The queue's default bound is 256 destinations at once. The TUN
    // device's own queue (500 packets) may drop part of such a burst before
    // core reads it: wait until core has read what it will read.
    let mut last = 0;
    let peak = wait::until_every(
        "the scan reached n1",
        Duration::from_secs(5),
        Duration::from_millis(250),
        || {
            let received = core_counter(&lab, "n1", "tun_received");
            let settled = received > 256 && received == last;
            last = received;
            Ok(if settled {
                wait::Check::Ready(core_counter(&lab, "n1", "destinations_sought_now"))
            } else {
                wait::Check::Pending(format!("{received} packets read from the TUN device"))
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.report()));
    let dropped = core_counter(&lab, "n1", "dropped_too_many_destinations");
    assert_eq!(
        peak, 256,
        "the bound of 256 destinations is reached, not exceeded (read {last})"
    );
    assert!(
        dropped > 0,
        "destinations beyond the bound are dropped and counted (read {last})"
    );
    // ndproxy caps the seeks it floods (burst 40, then 20 per second).
    let ndproxy = lab.node("n1").expect("n1").socket(Daemon::NdProxy);
    let status: serde_json::Value = serde_json::from_str(
        &grpc_call(&ndproxy, "l3roamd.v1.NdProxy/GetStatus", "{}").expect("ndproxy status"),
    )
    .expect("JSON");
    let counter = |name: &str| -> u64 {
        status["counters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == name)
            .and_then(|c| c["value"].as_str().and_then(|v| v.parse().ok()))
            .unwrap_or(0)
    };
    assert!(
        counter("seeks_sent") < 256,
        "seeks sent: {}",
        counter("seeks_sent")
    );
    assert!(counter("seeks_suppressed_rate") > 0);
    // After the hold time nothing is left.
    wait::until("the scan's state is gone", Duration::from_secs(15), || {
        let held = core_counter(&lab, "n1", "held_now");
        let sought = core_counter(&lab, "n1", "destinations_sought_now");
        Ok(if held == 0 && sought == 0 {
            wait::Check::Ready(())
        } else {
            wait::Check::Pending(format!("held {held}, sought {sought}"))
        })
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.report()));
}

#[test]
fn core_stopped_while_holding_packets_leaves_nothing_behind() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(LabOptions::chain(2)).expect("build chain");
    lab.add_client("c1", "n2").expect("c1");
    lab.start_babel().expect("babeld");
    lab.wait_routes_converged(Duration::from_secs(30))
        .expect("babel converges");
    lab.start_all_daemons(Launch::Separate).expect("daemons");
    // Reach c1 once, so n2 holds a host route of its own.
    let c1 = lab.client("c1").expect("c1").address;
    let ping = lab
        .ping(GATEWAY, c1, 3, Duration::from_millis(20))
        .expect("ping");
    assert!(ping.all_received(), "{ping}");
    // Hold packets on n1 for an address nobody has.
    scan_from_gateway(&lab, 5);
    wait::until("n1 holds packets", Duration::from_secs(5), || {
        let held = core_counter(&lab, "n1", "held_now");
        Ok(if held > 0 {
            wait::Check::Ready(())
        } else {
            wait::Check::Pending("nothing held yet".to_string())
        })
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.report()));
    for node in ["n1", "n2"] {
        let status = lab.stop_daemon(node, Daemon::Core).expect("stop core");
        assert!(status.success(), "{node}: core exited with {status}");
        let n = lab.node(node).expect("node");
        let links = n.ip(&["-o", "link", "show"]).expect("links");
        assert!(!links.contains("l3roam0"), "{node}: TUN device left behind");
        let routes = n
            .ip(&["-6", "route", "show", "table", "all", "proto", "158"])
            .expect("routes");
        assert!(
            routes.trim().is_empty(),
            "{node}: routes left behind: {routes}"
        );
    }
}

/// One of ndproxy's counters on `node`.
fn ndproxy_counter(lab: &Lab, node: &str, name: &str) -> u64 {
    lab.counter(node, Daemon::NdProxy, name)
        .expect("ndproxy status")
}

/// Entries of every state (NOARP multicast ones included, which plain
/// `ip -6 neigh show` hides) in `node`'s IPv6 neighbour table.
fn neighbour_entries(lab: &Lab, node: &str) -> usize {
    lab.node(node)
        .expect("node")
        .ip(&["-6", "neigh", "show", "nud", "all"])
        .expect("neighbour table")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

#[test]
fn seeks_take_no_neighbour_entries() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(LabOptions::chain(2)).expect("build chain");
    lab.add_client("c1", "n2").expect("c1");
    lab.start_babel().expect("babeld");
    lab.wait_routes_converged(Duration::from_secs(30))
        .expect("babel converges");
    lab.start_all_daemons(Launch::Separate).expect("daemons");
    let before: Vec<usize> = ["n1", "n2"]
        .iter()
        .map(|n| neighbour_entries(&lab, n))
        .collect();
    // 30 distinct unknown addresses: within ndproxy's seek burst (40), so
    // n1 seeks each and n2 (with a client link) solicits each.
    const SOUGHT: u64 = 30;
    scan_from_gateway(&lab, SOUGHT as u32);
    wait::until_every(
        "n2 solicited every address",
        Duration::from_secs(10),
        Duration::from_millis(250),
        || {
            let sent = ndproxy_counter(&lab, "n2", "ns_sent");
            Ok(if sent >= SOUGHT {
                wait::Check::Ready(())
            } else {
                wait::Check::Pending(format!("{sent} solicitations sent on n2"))
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.report()));
    assert_eq!(
        ndproxy_counter(&lab, "n2", "ns_send_errors"),
        0,
        "n2: solicitations refused"
    );
    let mut grown = Vec::new();
    for (node, before) in ["n1", "n2"].iter().zip(before) {
        let after = neighbour_entries(&lab, node);
        // Babel, the clients and the gateway may add a few entries; one per
        // sought address (a NOARP entry per solicited-node group, or per
        // destination routed into the TUN device) is the defect this
        // guards against.
        if after >= before + 10 {
            grown.push(format!(
                "{node}: neighbour table grew from {before} to {after} entries for {SOUGHT} seeks:\n{}",
                lab.node(node)
                    .expect("node")
                    .ip(&["-6", "neigh", "show", "nud", "all"])
                    .unwrap_or_default()
            ));
        }
    }
    assert!(grown.is_empty(), "{}", grown.join("\n"));
}
