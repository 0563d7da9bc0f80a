//! The lab for client prefixes, before prefixd exists: two uplink gateways
//! with their source-specific default routes installed by hand, as prefixd
//! will install them, carried through the mesh by babeld's protocol rules;
//! and a SLAAC client, first without any router, then with router
//! advertisements sent by hand from the next-node router.

use std::net::Ipv6Addr;
use std::os::unix::fs::FileTypeExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use l3roamd_lab::prefix::parse_mac;
use l3roamd_lab::ra::{router_advertisement, ALL_NODES};

use l3roamd_lab::wait::{self, Check};
use l3roamd_lab::{
    require_root_and_tools, Daemon, Ipv6Prefix, Lab, LabOptions, Launch, PrefixInformation,
    GATEWAY, GATEWAY2, INTERNET_HOST, NEXT_NODE_ADDRESS, NEXT_NODE_MAC, PREFIX_A, PREFIX_B,
    UPLINK_IFACE,
};

const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);
const ROUTE_TIMEOUT: Duration = Duration::from_secs(20);

/// Members (but `except`) lacking a usable babel route `default from prefix`.
fn missing_default_from(lab: &Lab, prefix: Ipv6Prefix, except: &str) -> Vec<String> {
    let from = prefix.to_string();
    lab.members()
        .iter()
        .filter(|m| m.name != except)
        .filter(|m| {
            !m.routes()
                .expect("routes")
                .iter()
                .any(|r| r.is_default_from(&from) && r.is_babel_unicast())
        })
        .map(|m| m.name.clone())
        .collect()
}

fn wait_default_from(lab: &Lab, prefix: Ipv6Prefix, owner: &str, present: bool) {
    let what = format!(
        "`default from {prefix}` {} on every member but {owner}",
        if present { "installed" } else { "gone" }
    );
    let result = wait::until(&what, ROUTE_TIMEOUT, || {
        let missing = missing_default_from(lab, prefix, owner);
        let others = lab.members().len() - 1;
        Ok(match (present, missing.len()) {
            (true, 0) => Check::Ready(()),
            (false, n) if n == others => Check::Ready(()),
            (true, _) => Check::Pending(format!("missing on {missing:?}")),
            (false, _) => Check::Pending(format!("only gone from {missing:?}")),
        })
    });
    if let Err(e) = result {
        panic!("{e}\n{}", lab.report());
    }
}

/// Pings the internet host 100 times from `source` (on `node`'s lo) and
/// returns how many packets each gateway's uplink carried meanwhile.
fn ping_internet_from(lab: &Lab, node: &str, source: Ipv6Addr) -> (u64, u64) {
    let before = (
        lab.uplink_rx_packets(GATEWAY).expect("gw counter"),
        lab.uplink_rx_packets(GATEWAY2).expect("gw2 counter"),
    );
    let ping = lab
        .ping_from(node, source, INTERNET_HOST, 100, Duration::from_millis(5))
        .expect("ping");
    assert!(ping.all_received(), "{source} → {INTERNET_HOST}: {ping}");
    (
        lab.uplink_rx_packets(GATEWAY).expect("gw counter") - before.0,
        lab.uplink_rx_packets(GATEWAY2).expect("gw2 counter") - before.1,
    )
}

#[test]
fn gateway_routes_spread_and_go_with_the_uplink() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(LabOptions::two_gateways(3)).expect("build the prefix lab");
    assert_eq!(
        lab.gateways()
            .iter()
            .map(|g| (g.name.as_str(), g.uplink_prefix()))
            .collect::<Vec<_>>(),
        vec![(GATEWAY, Some(PREFIX_A)), (GATEWAY2, Some(PREFIX_B))]
    );
    assert_eq!(lab.nodes().len(), 3);
    lab.start_babel().expect("start babeld");
    lab.wait_routes_converged(CONVERGE_TIMEOUT)
        .expect("babel converges");
    for m in lab.members() {
        let socket = m.babel_socket();
        let kind = std::fs::metadata(&socket)
            .expect("babel socket")
            .file_type();
        assert!(kind.is_socket(), "{} is a UNIX socket", socket.display());
    }

    // Nothing source-specific before the gateways announce their prefixes.
    assert_eq!(missing_default_from(&lab, PREFIX_A, GATEWAY).len(), 4);
    lab.install_gateway_route_by_hand(GATEWAY, PREFIX_A)
        .expect("route A on gw");
    lab.install_gateway_route_by_hand(GATEWAY2, PREFIX_B)
        .expect("route B on gw2");
    wait_default_from(&lab, PREFIX_A, GATEWAY, true);
    wait_default_from(&lab, PREFIX_B, GATEWAY2, true);

    // A packet from an A address leaves through gw, from a B address through
    // gw2. The sources stand for clients: /128s on n2's lo with core's route
    // protocol, which babeld announces by protocol, so the replies find them.
    let n2 = lab.node("n2").expect("n2");
    let from_a = PREFIX_A.with_interface_id([0, 0, 0, 0, 0, 0, 0, 2]);
    let from_b = PREFIX_B.with_interface_id([0, 0, 0, 0, 0, 0, 0, 2]);
    for addr in [from_a, from_b] {
        n2.ip(&["-6", "addr", "add", &format!("{addr}/128"), "dev", "lo"])
            .expect("address on lo");
        n2.ip(&[
            "-6",
            "route",
            "add",
            &format!("{addr}/128"),
            "dev",
            "lo",
            "proto",
            "158",
            "metric",
            "128",
        ])
        .expect("core-like host route");
        lab.wait_babel_route(GATEWAY, addr, ROUTE_TIMEOUT)
            .expect("host route reaches gw");
        lab.wait_babel_route(GATEWAY2, addr, ROUTE_TIMEOUT)
            .expect("host route reaches gw2");
    }
    let (via_gw, via_gw2) = ping_internet_from(&lab, "n2", from_a);
    assert!(
        via_gw >= 100 && via_gw2 < 10,
        "A: gw {via_gw}, gw2 {via_gw2}"
    );
    let (via_gw, via_gw2) = ping_internet_from(&lab, "n2", from_b);
    assert!(
        via_gw < 10 && via_gw2 >= 100,
        "B: gw {via_gw}, gw2 {via_gw2}"
    );

    // gw's uplink fails: carrier loss, then its route goes, as prefixd would take it away.
    lab.uplink_carrier(GATEWAY, false).expect("carrier off");
    let gw = lab.node(GATEWAY).expect("gw");
    let link = wait::until("NO-CARRIER on gw's up0", ROUTE_TIMEOUT, || {
        let link = gw.ip(&["link", "show", "dev", UPLINK_IFACE]).expect("link");
        Ok(if link.contains("NO-CARRIER") {
            Check::Ready(link)
        } else {
            Check::Pending(link)
        })
    })
    .expect("carrier lost");
    assert!(
        link.contains(",UP"),
        "up0 stays administratively up: {link}"
    );
    lab.remove_gateway_route_by_hand(GATEWAY, PREFIX_A)
        .expect("route A off gw");
    wait_default_from(&lab, PREFIX_A, GATEWAY, false);
    assert!(
        missing_default_from(&lab, PREFIX_B, GATEWAY2).is_empty(),
        "B stays"
    );

    // Carrier back, route back: A is announced again.
    lab.uplink_carrier(GATEWAY, true).expect("carrier on");
    lab.install_gateway_route_by_hand(GATEWAY, PREFIX_A)
        .expect("route A on gw again");
    wait_default_from(&lab, PREFIX_A, GATEWAY, true);
}

#[test]
fn slaac_client_without_and_with_router_advertisements() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(LabOptions::chain(1)).expect("build chain");
    let c = lab
        .add_slaac_client("c1", "n1")
        .expect("add client")
        .clone();
    let addrs = c.addresses().expect("addresses");
    let link_local = addrs
        .iter()
        .find(|a| a.addr == c.link_local())
        .unwrap_or_else(|| panic!("EUI-64 link-local {} in {addrs:?}", c.link_local()));
    assert!(!link_local.tentative && link_local.valid_lft.is_none());
    assert!(
        addrs.iter().all(|a| a.addr.is_unicast_link_local()),
        "no RA, no global address: {addrs:?}"
    );
    assert!(c.default_routes().expect("routes").is_empty());
    assert_eq!(
        c.slaac_address(PREFIX_A),
        "2001:db8:a:0:c1:ff:fe00:1"
            .parse::<Ipv6Addr>()
            .expect("addr")
    );

    // Nobody sends RAs (no prefixd): the probe answers None in time.
    let answer = c.solicit_router(Duration::from_secs(1)).expect("solicit");
    assert!(answer.is_none(), "{answer:?}");
    assert!(c
        .capture_ras(Duration::from_millis(300))
        .expect("capture")
        .is_empty());
    assert!(c
        .wait_for_address(PREFIX_A, false, Duration::from_millis(300))
        .is_err());

    // A router by hand on n1 (what prefixd will be): it answers every
    // solicitation (the kernel's own ones too) until told to stop.
    let info = |preferred_lifetime| PrefixInformation {
        prefix: PREFIX_A,
        on_link: true,
        autonomous: true,
        valid_lifetime: 600,
        preferred_lifetime,
    };
    let mac = parse_mac(NEXT_NODE_MAC).expect("mac");
    let solicitations = lab.capture_solicitations("c1").expect("RS capture");
    let sender = lab.next_node_sender("n1").expect("RA sender");
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let ra = router_advertisement(1800, mac, &[info(300)]);
    let responder = std::thread::spawn(move || {
        let mut heard = Vec::new();
        // Bounded by the caller's stop, or 10 s.
        for _ in 0..100 {
            if stopped.load(Ordering::Relaxed) {
                break;
            }
            if let Some(rs) = solicitations
                .next(Duration::from_millis(100))
                .expect("capture RS")
            {
                sender.send(ALL_NODES, &ra).expect("send RA");
                heard.push(rs);
            }
        }
        heard
    });
    let answer = c.solicit_router(Duration::from_secs(2)).expect("solicit");
    stop.store(true, Ordering::Relaxed);
    let heard = responder.join().expect("responder");
    let (delay, ra) = answer.expect("an RA answers the RS");
    eprintln!("RA after {delay:?}, {} bytes", ra.icmp.len());
    assert!(delay < Duration::from_secs(1), "{delay:?}");
    let rs = heard.first().expect("the RS reached n1");
    assert_eq!((rs.source, rs.hop_limit), (c.link_local(), 255), "{rs:?}");
    assert_eq!(rs.source_link_layer(), Some(c.mac_octets()));
    assert_eq!(rs.mac, c.mac_octets());
    assert_eq!(ra.source, NEXT_NODE_ADDRESS);
    assert_eq!((ra.mac, ra.hop_limit), (mac, 255));
    assert_eq!(ra.router_lifetime(), Some(1800));
    assert_eq!(ra.prefixes(), vec![info(300)]);

    // SLAAC from the RA: the EUI-64 address, preferred, and a default route via fe80::1.
    let a = c
        .wait_for_address(PREFIX_A, true, Duration::from_secs(10))
        .expect("SLAAC address");
    assert_eq!(a.addr, c.slaac_address(PREFIX_A));
    assert!(a.dynamic && a.valid_lft.is_some_and(|v| v <= 600), "{a:?}");
    let routes = c.default_routes().expect("routes");
    let default = routes
        .iter()
        .find(|r| r.protocol == "ra")
        .unwrap_or_else(|| panic!("an RA default route: {routes:?}"));
    assert_eq!(default.gateway, Some(NEXT_NODE_ADDRESS));
    assert!(default.expires.is_some_and(|e| e <= 1800), "{default:?}");

    // Preferred lifetime 0: the address is deprecated but stays.
    lab.advertise_by_hand("n1", 1800, &[info(0)])
        .expect("deprecating RA");
    let deprecated = wait::until("A deprecated", Duration::from_secs(5), || {
        let addrs = c.addresses()?;
        Ok(match addrs.iter().find(|x| x.addr == a.addr) {
            Some(x) if x.deprecated => Check::Ready(x.clone()),
            other => Check::Pending(format!("{other:?}")),
        })
    })
    .expect("deprecated");
    assert!(!deprecated.is_preferred());
    assert!(c
        .wait_for_address(PREFIX_A, true, Duration::from_millis(200))
        .is_err());
}

#[test]
fn gateways_run_the_daemons_like_nodes() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(LabOptions::two_gateways(1)).expect("build the prefix lab");
    lab.start_babel().expect("start babeld");
    lab.start_all_daemons(Launch::Separate)
        .expect("daemons start on n1, gw and gw2");
    for member in ["n1", GATEWAY, GATEWAY2] {
        for daemon in Daemon::ALL {
            assert!(
                lab.daemon_process(member, daemon).is_some(),
                "{daemon} runs on {member}"
            );
        }
    }
    // The gateways' daemons serve their client bridges, not the uplink.
    let config = lab.daemon_config(GATEWAY).expect("gw's configuration");
    assert!(!config.mesh_interfaces.iter().any(|i| i == UPLINK_IFACE));
    assert_eq!(config.mesh_interfaces, vec!["m-n1".to_string()]);
    lab.wait_routes_converged(CONVERGE_TIMEOUT)
        .expect("babel converges with the daemons running");
}
