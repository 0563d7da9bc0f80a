//! Seamless roaming: a client with several addresses moves from the last
//! node of a 4-node chain to the second while the gateway pings it every
//! 10 ms. The new node claims it, the old one lets go (no route, no
//! node-client address left), traffic resumes, and every node ends with
//! exactly one route per client address, pointing the right way.

use std::net::Ipv6Addr;
use std::time::Duration;

use l3roamd_lab::{ping, require_root_and_tools, wait, Lab, LabOptions, Launch, Route, GATEWAY};

/// Unicast routes of `node` to `addr/128`.
fn host_routes(lab: &Lab, node: &str, addr: Ipv6Addr) -> Vec<Route> {
    let want = addr.to_string();
    lab.node(node)
        .expect("node")
        .routes()
        .expect("routes")
        .into_iter()
        .filter(|r| r.dst == want && r.kind == "unicast")
        .collect()
}

/// Waits until every node has exactly one route to each of `addrs`: the
/// serving node through its client bridge (protocol 158), the others
/// through babel.
fn wait_served_by(lab: &Lab, addrs: &[Ipv6Addr], serving: &str, timeout: Duration) {
    let nodes: Vec<String> = lab.nodes().iter().map(|n| n.name.clone()).collect();
    let result = wait::until(&format!("{addrs:?} served by {serving}"), timeout, || {
        let mut wrong = Vec::new();
        for node in &nodes {
            for addr in addrs {
                let routes = host_routes(lab, node, *addr);
                let ok = match routes.as_slice() {
                    [r] if node == serving => {
                        r.protocol == "158" && r.dev.as_deref() == Some("br-client")
                    }
                    [r] => {
                        r.protocol == "babel"
                            && r.dev.as_deref().is_some_and(|d| d.starts_with("m-"))
                    }
                    _ => false,
                };
                if !ok {
                    wrong.push(format!("{node} {addr}: {routes:?}"));
                }
            }
        }
        Ok(if wrong.is_empty() {
            wait::Check::Ready(())
        } else {
            wait::Check::Pending(wrong.join("; "))
        })
    });
    if let Err(e) = result {
        panic!("{e}\n{}", lab.report());
    }
}

/// The node-client address of `mac` in fec0::/64 (modified EUI-64), as text.
fn node_client_address(mac: &str) -> String {
    let m: Vec<u8> = mac
        .split(':')
        .map(|o| u8::from_str_radix(o, 16).expect("MAC octet"))
        .collect();
    let addr = Ipv6Addr::new(
        0xfec0,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    );
    addr.to_string()
}

/// Whether `node` holds `addr` on its loopback.
fn holds(lab: &Lab, node: &str, addr: &str) -> bool {
    let out = lab
        .node(node)
        .expect("node")
        .ip(&["-6", "-o", "addr", "show", "dev", "lo"])
        .expect("addresses");
    out.split_whitespace()
        .any(|w| w.split('/').next() == Some(addr))
}

#[test]
fn client_with_several_addresses_roams_under_traffic() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(LabOptions::chain(4)).expect("build chain");
    let client = lab.add_client("c1", "n4").expect("c1").clone();
    let extra: Vec<Ipv6Addr> = ["fddd:1::a1", "fddd:1::a2"]
        .iter()
        .map(|a| a.parse().expect("addr"))
        .collect();
    for a in &extra {
        client
            .ip(&[
                "-6",
                "addr",
                "add",
                &format!("{a}/64"),
                "dev",
                &client.iface,
                "nodad",
            ])
            .expect("extra address");
    }
    let mut addrs = vec![client.address];
    addrs.extend(&extra);
    lab.start_babel().expect("babeld");
    lab.wait_routes_converged(Duration::from_secs(30))
        .expect("babel converges");
    lab.start_all_daemons(Launch::Separate).expect("daemons");

    // Discover every address on n4 (seek), then wait for the claim to end
    // there, so n4 holds the client's node-client address.
    for a in &addrs {
        let p = lab
            .ping(GATEWAY, *a, 3, Duration::from_millis(20))
            .expect("ping");
        assert!(p.all_received(), "before roaming: {p}");
    }
    wait_served_by(&lab, &addrs, "n4", Duration::from_secs(20));
    let nca = node_client_address(&client.mac);
    wait::until(
        "n4 holds the node-client address",
        Duration::from_secs(15),
        || {
            Ok(if holds(&lab, "n4", &nca) {
                wait::Check::Ready(())
            } else {
                wait::Check::Pending(format!("{nca} not on n4's lo yet"))
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.report()));

    // 10 ms pings for 4 s; the client moves after about 1 s.
    let gw = lab.netns(GATEWAY).expect("gw").path();
    let target = client.address;
    let pinger = std::thread::spawn(move || {
        ping::ping(
            &gw,
            target,
            None,
            400,
            Duration::from_millis(10),
            Duration::from_secs(1),
        )
    });
    std::thread::sleep(Duration::from_secs(1));
    lab.move_client("c1", "n2").expect("move c1 to n2");
    let result = pinger.join().expect("pinger").expect("ping");
    let lost: usize = result.rtts.iter().filter(|r| r.is_none()).count();
    eprintln!("roam n4 -> n2 under 10 ms pings: {result}, {lost} lost");
    let tail = &result.rtts[result.rtts.len() - 100..];
    assert!(
        tail.iter().all(Option::is_some),
        "traffic did not resume after the roam: {result}\n{}",
        lab.report()
    );

    wait_served_by(&lab, &addrs, "n2", Duration::from_secs(20));
    assert!(!holds(&lab, "n4", &nca), "n4 still holds {nca}");
    wait::until(
        "n2 holds the node-client address",
        Duration::from_secs(15),
        || {
            Ok(if holds(&lab, "n2", &nca) {
                wait::Check::Ready(())
            } else {
                wait::Check::Pending(format!("{nca} not on n2's lo yet"))
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.report()));
    for a in &addrs {
        let p = lab
            .ping(GATEWAY, *a, 5, Duration::from_millis(10))
            .expect("ping");
        assert!(p.all_received(), "after roaming: {p}");
    }
}
