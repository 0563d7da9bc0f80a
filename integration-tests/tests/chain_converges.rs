//! A chain of nodes with real babeld converges: every node has a babel route
//! to every other node address, packets cross three hops, and babeld
//! announces exactly what the lab's redistribution filters say.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use l3roamd_lab::{node_address, require_root_and_tools, Lab, LabOptions, INTERNET_ADDRESS};

const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn chain_converges() {
    if !require_root_and_tools() {
        return;
    }
    let started = Instant::now();
    let mut lab = Lab::new(LabOptions::chain(4)).expect("build 4-node chain");
    lab.start_babel().expect("start babeld");
    let took = lab
        .wait_routes_converged(CONVERGE_TIMEOUT)
        .expect("babel routes converge");
    eprintln!("chain of 4 converged in {took:?}");

    // Every node has a usable `proto babel` host route to every other node and the gateway.
    for node in lab.members() {
        let routes = node.routes().expect("read routes");
        for other in lab.members().iter().filter(|o| o.name != node.name) {
            for addr in other.announced_addresses() {
                let route = routes
                    .iter()
                    .find(|r| r.is_host(addr))
                    .unwrap_or_else(|| panic!("{} has no route to {addr}: {routes:?}", node.name));
                assert_eq!(route.protocol, "babel", "{} → {addr}: {route:?}", node.name);
                assert_eq!(route.kind, "unicast", "{} → {addr}: {route:?}", node.name);
                assert!(
                    route.dev.as_deref().is_some_and(|d| d.starts_with("m-")),
                    "{} → {addr} not via a mesh link: {route:?}",
                    node.name
                );
            }
        }
        // Nobody announces what does not exist.
        assert!(!node.has_babel_route(node_address(99)).expect("routes"));
    }

    // n1 → n4 is three hops; the first hop out of n1 is toward n2.
    let n1 = lab.node("n1").expect("n1");
    let to_n4 = n1
        .routes()
        .expect("routes")
        .into_iter()
        .find(|r| r.is_host(node_address(4)))
        .expect("route n1 → n4");
    assert_eq!(to_n4.dev.as_deref(), Some("m-n2"), "{to_n4:?}");
    let ping = lab
        .ping("n1", node_address(4), 3, Duration::from_millis(200))
        .expect("ping n1 → fdff::4");
    eprintln!("ping {ping}");
    assert!(ping.all_received(), "ping over 3 hops: {ping}");

    // The "internet" reaches the far end of the chain (4 hops) and back.
    let ping = lab
        .ping("gw", node_address(4), 3, Duration::from_millis(200))
        .expect("ping gw → fdff::4");
    assert!(ping.all_received(), "ping gw → n4: {ping}");
    let ping = lab
        .ping("n4", INTERNET_ADDRESS, 2, Duration::from_millis(200))
        .expect("ping n4 → internet");
    assert!(ping.all_received(), "ping n4 → 2001:db8::1: {ping}");

    // An address nobody has is not reachable: the check can fail.
    let ping = lab
        .ping(
            "n1",
            "fdff::99".parse::<Ipv6Addr>().expect("addr"),
            1,
            Duration::from_millis(100),
        )
        .expect("ping runs");
    assert_eq!(ping.received, 0, "{ping}");

    lab.shutdown().expect("clean teardown");
    eprintln!("chain_converges took {:?}", started.elapsed());
}

/// babeld exports client host routes (whatever their route protocol) but
/// never the client prefix itself, which is every node's local catch-all.
#[test]
fn redistribution_filters() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(LabOptions::chain(2)).expect("build 2-node chain");
    lab.start_babel().expect("start babeld");
    lab.wait_routes_converged(CONVERGE_TIMEOUT)
        .expect("converge");

    let n2 = lab.node("n2").expect("n2").clone();
    let host: Ipv6Addr = "fddd:1::5".parse().expect("addr");
    // What l3roamd-core installs: a host route and the catch-all, both proto 158.
    n2.ip(&[
        "-6",
        "route",
        "add",
        "fddd:1::5/128",
        "dev",
        "br-client",
        "proto",
        "158",
    ])
    .expect("add host route");
    n2.ip(&[
        "-6",
        "route",
        "add",
        "fddd:1::/64",
        "dev",
        "br-client",
        "proto",
        "158",
    ])
    .expect("add catch-all");
    // And a route outside every allowed prefix.
    n2.ip(&[
        "-6",
        "route",
        "add",
        "fd00:bad::/64",
        "dev",
        "br-client",
        "proto",
        "158",
    ])
    .expect("add other route");

    lab.wait_babel_route("n1", host, Duration::from_secs(15))
        .expect("host route reaches n1");
    lab.wait_babel_route("gw", host, Duration::from_secs(15))
        .expect("host route reaches gw");

    // babeld's own table of exported routes is the authority on what it announces.
    let exported = lab.babel_dump("n2").expect("dump n2").xroutes();
    assert!(
        exported.contains(&"fddd:1::5/128".to_string()),
        "{exported:?}"
    );
    assert!(
        exported.contains(&"fdff::2/128".to_string()),
        "{exported:?}"
    );
    assert_eq!(
        exported.len(),
        2,
        "n2 exports only its node address and the host route: {exported:?}"
    );

    let gw_exported = lab.babel_dump("gw").expect("dump gw").xroutes();
    let mut gw_exported_sorted = gw_exported.clone();
    gw_exported_sorted.sort();
    assert_eq!(
        gw_exported_sorted,
        vec!["2001:db8::1/128", "fdff::ff/128"],
        "{gw_exported:?}"
    );

    // (The gateway routes fddd:1::/64 to n1 statically, as an upstream
    // would: only a babel-learned /64 is wrong.)
    for node in ["n1", "gw"] {
        let routes = lab.node(node).expect("node").routes().expect("routes");
        assert!(
            !routes
                .iter()
                .any(|r| r.protocol == "babel"
                    && (r.dst == "fddd:1::/64" || r.dst == "fd00:bad::/64")),
            "{node} learned a prefix that must stay local: {routes:?}"
        );
    }
}
