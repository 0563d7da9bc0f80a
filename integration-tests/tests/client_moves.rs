//! The client side of the lab, without our daemons: a client reaches the
//! next-node router (same MAC and address on every node) on the node it is
//! plugged into, and after `move_client` on the node it moved to, keeping its
//! address and default route like a Wi-Fi station that re-associated.

use std::time::Duration;

use l3roamd_lab::{require_root_and_tools, Lab, LabOptions, NEXT_NODE_ADDRESS, NEXT_NODE_MAC};

/// Ports of `node`'s client bridge.
fn bridge_ports(lab: &Lab, node: &str) -> Vec<String> {
    let out = lab
        .node(node)
        .expect("node")
        .ip(&["-o", "link", "show", "master", "br-client"])
        .expect("list bridge ports");
    out.lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|name| name.trim().split('@').next().unwrap_or("").to_string())
        .collect()
}

/// The client's neighbour entry for the next-node router, e.g. `fe80::1 dev eth0 lladdr ... REACHABLE`.
fn router_neighbour(lab: &Lab, client: &str) -> String {
    lab.client(client)
        .expect("client")
        .ip(&["-6", "neigh", "show", &NEXT_NODE_ADDRESS.to_string()])
        .expect("neighbours")
}

#[test]
fn client_reaches_next_node_before_and_after_moving() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(LabOptions::chain(2)).expect("build chain");
    let c1 = lab.add_client("c1", "n1").expect("add client").clone();
    assert_eq!(bridge_ports(&lab, "n1"), vec!["c-c1"]);
    assert!(bridge_ports(&lab, "n2").is_empty());

    let ping = lab
        .ping_via(
            "c1",
            &c1.iface,
            NEXT_NODE_ADDRESS,
            2,
            Duration::from_millis(100),
        )
        .expect("ping fe80::1");
    assert!(ping.all_received(), "c1 on n1 → next-node router: {ping}");
    assert!(router_neighbour(&lab, "c1").contains(NEXT_NODE_MAC));

    lab.move_client("c1", "n2").expect("move c1 to n2");
    assert_eq!(lab.client("c1").expect("c1").node, "n2");
    assert!(bridge_ports(&lab, "n1").is_empty(), "port left n1");
    assert_eq!(bridge_ports(&lab, "n2"), vec!["c-c1"]);

    // Address and default route survive the link going down and up.
    let addrs = c1
        .ip(&["-6", "addr", "show", "dev", "eth0"])
        .expect("addrs");
    assert!(addrs.contains(&format!("{}/64", c1.address)), "{addrs}");
    let routes = c1.ip(&["-6", "route", "show", "default"]).expect("routes");
    assert!(routes.contains("via fe80::1 dev eth0"), "{routes}");

    let ping = lab
        .ping_via(
            "c1",
            &c1.iface,
            NEXT_NODE_ADDRESS,
            2,
            Duration::from_millis(100),
        )
        .expect("ping fe80::1");
    assert!(ping.all_received(), "c1 on n2 → next-node router: {ping}");
    assert!(router_neighbour(&lab, "c1").contains(NEXT_NODE_MAC));

    // The bridge keeps its own MAC when the client's port joins.
    let n2 = lab.node("n2").expect("n2");
    let link = n2.ip(&["link", "show", "br-client"]).expect("bridge");
    let mac = n2.bridge_mac.as_deref().expect("bridge MAC");
    assert!(link.contains(mac), "{link}");

    assert!(lab.move_client("c1", "n2").is_err(), "already there");
    assert!(
        lab.move_client("c1", "gw").is_err(),
        "no bridge on the gateway"
    );
}

#[test]
fn carrier_move_keeps_the_clients_routes() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(LabOptions::chain(2)).expect("build chain");
    let c1 = lab.add_client("c1", "n1").expect("add client").clone();
    let default_route = |lab: &Lab| {
        lab.client("c1")
            .expect("c1")
            .netns
            .routes()
            .expect("client routes")
            .into_iter()
            .find(|r| r.dst == "default")
    };
    let before = default_route(&lab).expect("default route before the move");
    assert!(!before.is_linkdown(), "{before:?}");

    // Carrier lost: the client's interface stays up, its routes stay, marked linkdown.
    lab.detach_client("c1").expect("detach");
    let link = c1.ip(&["link", "show", "dev", "eth0"]).expect("link");
    assert!(link.contains("NO-CARRIER"), "{link}");
    assert!(link.contains(",UP"), "still admin-up: {link}");
    let during = default_route(&lab).expect("default route kept without carrier");
    assert!(during.is_linkdown(), "{during:?}");
    assert_eq!(during.gateway, Some(NEXT_NODE_ADDRESS));
    let addrs = c1
        .ip(&["-6", "addr", "show", "dev", "eth0"])
        .expect("addrs");
    assert!(addrs.contains(&format!("{}/64", c1.address)), "{addrs}");
    let port = lab
        .node("n1")
        .expect("n1")
        .ip(&["link", "show", "dev", "c-c1"])
        .expect("port");
    assert!(
        port.contains("state DOWN"),
        "the node's end is down: {port}"
    );

    // Carrier back on n2.
    lab.attach_client("c1", "n2").expect("attach");
    assert_eq!(bridge_ports(&lab, "n2"), vec!["c-c1"]);
    let ready = l3roamd_lab::wait::until("carrier back", Duration::from_secs(5), || {
        Ok(match default_route(&lab) {
            Some(r) if !r.is_linkdown() => l3roamd_lab::wait::Check::Ready(()),
            other => l3roamd_lab::wait::Check::Pending(format!("{other:?}")),
        })
    });
    assert!(ready.is_ok(), "{ready:?}");
    let ping = lab
        .ping_via(
            "c1",
            &c1.iface,
            NEXT_NODE_ADDRESS,
            2,
            Duration::from_millis(100),
        )
        .expect("ping fe80::1");
    assert!(ping.all_received(), "c1 on n2 → next-node router: {ping}");
}
