//! Mesh-wide duplicate address defence: in a 3-node chain with the gateway
//! behind n1, client `a` on n1 uses X, and client `b` (another MAC) on n3
//! wants X too.
//!
//! - With DAD on, b's probe for X is answered by n3's ndproxy with a
//!   defending advertisement: X ends `dadfailed` at b, while an address
//!   nobody uses passes DAD there.
//! - Configured without DAD and announced by an unsolicited advertisement,
//!   X is refused by n3's core (the steal rule): the host route stays with
//!   n1, the gateway's packets still reach a. When a leaves, n1 lets go of
//!   X (parked, handed over, withdrawn), and then b gets it.
//! - A client that roams (down and up, which makes Linux test its kept
//!   addresses again) is not refused on its new node.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv6Addr;
use std::time::Duration;

use l3roamd_lab::ra::{NdSender, ALL_NODES};
use l3roamd_lab::{require_root_and_tools, wait, Daemon, Expect, Lab, LabOptions, Launch, GATEWAY};

const DISCOVER: Duration = Duration::from_secs(30);

/// Counter `name` of `daemon`'s GetStatus on `node`.
fn counter(lab: &Lab, node: &str, daemon: Daemon, name: &str) -> u64 {
    lab.counter(node, daemon, name).expect("status")
}

fn ndproxy_counter(lab: &Lab, node: &str, name: &str) -> u64 {
    counter(lab, node, Daemon::NdProxy, name)
}

fn core_counter(lab: &Lab, node: &str, name: &str) -> u64 {
    counter(lab, node, Daemon::Core, name)
}

/// The chain with `a` on n1 served and reachable from the gateway, and `b`
/// on n3 (with its own address); returns the lab and a's address.
fn lab_with_owner() -> (Lab, Ipv6Addr) {
    let mut lab = Lab::new(LabOptions::chain(3)).expect("build chain");
    let x = lab.add_client("a", "n1").expect("a").address;
    lab.add_client("b", "n3").expect("b");
    lab.start_babel().expect("babeld");
    lab.wait_routes_converged(Duration::from_secs(30))
        .expect("babel converges");
    lab.start_all_daemons(Launch::Separate).expect("daemons");
    if let Err(e) = lab.wait_reachable(GATEWAY, x, DISCOVER) {
        panic!("{e}\n{}", lab.report());
    }
    // n3 must know the owner's route before b asks for X.
    if let Err(e) = lab.wait_audit(x, &Expect::holder("n1"), DISCOVER) {
        panic!("{e}\n{}", lab.report());
    }
    (lab, x)
}

/// Whether `addr` on b's eth0 passed (`Some(false)`) or failed
/// (`Some(true)`) DAD; `None` while tentative.
fn dad_failed(lab: &Lab, addr: Ipv6Addr) -> wait::Check<bool> {
    let addrs = lab.client("b").expect("b").addresses().expect("addresses");
    match addrs.iter().find(|a| a.addr == addr) {
        Some(a) if a.dad_failed => wait::Check::Ready(true),
        Some(a) if !a.tentative => wait::Check::Ready(false),
        _ => wait::Check::Pending(format!("{addrs:?}")),
    }
}

/// Turns DAD on for b's eth0 (the lab's static clients have it off).
fn dad_on(lab: &Lab) {
    let b = lab.client("b").expect("b");
    b.netns
        .sysctls(&[
            ("net.ipv6.conf.eth0.accept_dad", "1"),
            ("net.ipv6.conf.eth0.dad_transmits", "1"),
        ])
        .expect("DAD on");
}

#[test]
fn dad_for_an_address_in_use_elsewhere_is_defended() {
    if !require_root_and_tools() {
        return;
    }
    let (lab, x) = lab_with_owner();
    dad_on(&lab);
    let b = lab.client("b").expect("b").clone();

    // An address nobody uses: DAD passes (the defence answers only for
    // addresses in use elsewhere).
    let free = Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, 0x1ff);
    b.ip(&["-6", "addr", "add", &format!("{free}/64"), "dev", "eth0"])
        .expect("add free address");
    let failed = wait::until("DAD of a free address", Duration::from_secs(10), || {
        Ok(dad_failed(&lab, free))
    })
    .expect("DAD ends");
    assert!(!failed, "a free address must pass DAD\n{}", lab.report());
    assert_eq!(ndproxy_counter(&lab, "n3", "dad_defended"), 0);

    // X, which a uses on n1: defended.
    b.ip(&["-6", "addr", "add", &format!("{x}/64"), "dev", "eth0"])
        .expect("add X");
    let failed = wait::until("DAD of X", Duration::from_secs(10), || {
        Ok(dad_failed(&lab, x))
    })
    .expect("DAD ends");
    if !failed {
        panic!(
            "b took {x}, which a uses on n1: dad_probes {} dad_defended {}\n{}",
            ndproxy_counter(&lab, "n3", "dad_probes"),
            ndproxy_counter(&lab, "n3", "dad_defended"),
            lab.report()
        );
    }
    assert!(ndproxy_counter(&lab, "n3", "dad_defended") >= 1);
    assert!(ndproxy_counter(&lab, "n3", "dad_probes") >= 2);

    // a keeps its address and its traffic.
    let audit = lab.audit(x).expect("audit");
    assert!(audit.is_ok(&Expect::holder("n1")), "{}", audit.report());
    let p = lab
        .ping(GATEWAY, x, 5, Duration::from_millis(20))
        .expect("ping");
    assert!(p.all_received(), "gateway -> a after b's DAD: {p}");
}

#[test]
fn an_advertised_address_does_not_steal_the_owners_route_until_it_leaves() {
    if !require_root_and_tools() {
        return;
    }
    let (mut lab, x) = lab_with_owner();
    let b = lab.client("b").expect("b").clone();
    b.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{x}/64"),
        "dev",
        "eth0",
        "nodad",
    ])
    .expect("add X nodad");
    // b says it has X: an unsolicited, overriding advertisement to all nodes.
    let mut na = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
    na.extend_from_slice(&x.octets());
    na.extend_from_slice(&[2, 1]);
    na.extend_from_slice(&b.mac_octets());
    let sender = NdSender::open(&b.netns.path(), "eth0", x).expect("sender");
    let refused = wait::until("n3's core refuses X for b", DISCOVER, || {
        sender.send(ALL_NODES, &na)?;
        let n = core_counter(&lab, "n3", "addresses_refused");
        Ok(if n >= 1 {
            wait::Check::Ready(())
        } else {
            wait::Check::Pending(format!("addresses_refused {n}"))
        })
    });
    if let Err(e) = refused {
        panic!("{e}\n{}", lab.report());
    }
    // For a while: n1 alone holds X, n3 has no route of its own for it,
    // and the gateway's packets reach a.
    for _ in 0..3 {
        let audit = lab.audit(x).expect("audit");
        assert!(
            audit.is_ok(&Expect::holder("n1")),
            "{}\n{}",
            audit.report(),
            lab.report()
        );
        let own = lab
            .host_routes("n3", x)
            .expect("routes")
            .into_iter()
            .filter(|r| r.protocol_number() == Some(158))
            .count();
        assert_eq!(own, 0, "n3 routes X to b\n{}", lab.report());
        let p = lab
            .ping(GATEWAY, x, 5, Duration::from_millis(100))
            .expect("ping");
        assert!(p.all_received(), "gateway -> a: {p}");
        sender.send(ALL_NODES, &na).expect("advertise again");
    }

    // a leaves: once n1 has let go of X (grace period, handover), b gets it.
    lab.detach_client("a").expect("detach a");
    let left = std::time::Instant::now();
    let taken = wait::until("b serves X on n3", Duration::from_secs(45), || {
        let own = lab
            .host_routes("n3", x)
            .expect("routes")
            .into_iter()
            .any(|r| r.protocol_number() == Some(158));
        Ok(if own {
            wait::Check::Ready(())
        } else {
            wait::Check::Pending(format!("n3 routes: {:?}", lab.host_routes("n3", x)))
        })
    });
    if let Err(e) = taken {
        panic!("{e}\n{}", lab.report());
    }
    eprintln!(
        "owner left -> b's route for X on n3: {:.1} s (addresses_refused {})",
        left.elapsed().as_secs_f64(),
        core_counter(&lab, "n3", "addresses_refused")
    );
    if let Err(e) = lab.wait_audit(x, &Expect::holder("n3"), DISCOVER) {
        panic!("{e}\n{}", lab.report());
    }
    if let Err(e) = lab.wait_reachable(GATEWAY, x, DISCOVER) {
        panic!("{e}\n{}", lab.report());
    }
}

#[test]
fn a_roaming_client_rerunning_dad_on_its_new_node_keeps_its_address() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(LabOptions::chain(3)).expect("build chain");
    lab.add_client("c", "n1").expect("c");
    lab.start_babel().expect("babeld");
    lab.wait_routes_converged(Duration::from_secs(30))
        .expect("babel converges");
    lab.start_all_daemons(Launch::Separate).expect("daemons");
    let c = lab.client("c").expect("c").clone();
    c.netns
        .sysctls(&[
            ("net.ipv6.conf.eth0.accept_dad", "1"),
            // Three probes a second apart: the port is new on n3 (a veth
            // moved there), and ndproxy opens its socket within a second.
            ("net.ipv6.conf.eth0.dad_transmits", "3"),
        ])
        .expect("DAD on");
    // An address with DAD (the lab's own is nodad): it passes on n1.
    let y = Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, 0x1c1);
    c.ip(&["-6", "addr", "add", &format!("{y}/64"), "dev", "eth0"])
        .expect("add Y");
    let tested = |lab: &Lab| -> wait::Check<bool> {
        let addrs = lab.client("c").expect("c").addresses().expect("addresses");
        match addrs.iter().find(|a| a.addr == y) {
            Some(a) if a.dad_failed => wait::Check::Ready(true),
            Some(a) if !a.tentative => wait::Check::Ready(false),
            _ => wait::Check::Pending(format!("{addrs:?}")),
        }
    };
    let failed = wait::until("DAD of Y on n1", Duration::from_secs(15), || {
        Ok(tested(&lab))
    })
    .expect("DAD ends");
    assert!(!failed, "Y is free on n1");
    if let Err(e) = lab.wait_reachable(GATEWAY, y, DISCOVER) {
        panic!("{e}\n{}", lab.report());
    }
    // n3 knows Y and c's node-client address through babel: the state in
    // which a different client's probe would be defended.
    let nca = c.node_client_address().expect("node-client address");
    let known = wait::until(
        "n3 routes Y and c's node-client address to n1",
        DISCOVER,
        || {
            let n3 = lab.node("n3")?;
            Ok(if n3.has_babel_route(y)? && n3.has_babel_route(nca)? {
                wait::Check::Ready(())
            } else {
                wait::Check::Pending(format!("{:?}", n3.routes()?))
            })
        },
    );
    if let Err(e) = known {
        panic!("{e}\n{}", lab.report());
    }
    // Down and up on the other node: the kernel tests its kept addresses again.
    lab.move_client_admin_down("c", "n3").expect("move c");
    let failed = wait::until("DAD of Y on n3", Duration::from_secs(15), || {
        Ok(tested(&lab))
    })
    .expect("DAD ends");
    if failed {
        panic!(
            "c lost Y by roaming: dad_probes {} dad_roaming {} dad_defended {}\n{}",
            ndproxy_counter(&lab, "n3", "dad_probes"),
            ndproxy_counter(&lab, "n3", "dad_roaming"),
            ndproxy_counter(&lab, "n3", "dad_defended"),
            lab.report()
        );
    }
    assert_eq!(ndproxy_counter(&lab, "n3", "dad_defended"), 0);
    assert!(
        ndproxy_counter(&lab, "n3", "dad_probes") >= 1,
        "c tested Y again on n3"
    );
    if let Err(e) = lab.wait_audit(y, &Expect::holder("n3"), DISCOVER) {
        panic!("{e}\n{}", lab.report());
    }
    eprintln!(
        "n3: dad_probes {} dad_roaming {}",
        ndproxy_counter(&lab, "n3", "dad_probes"),
        ndproxy_counter(&lab, "n3", "dad_roaming")
    );
}
