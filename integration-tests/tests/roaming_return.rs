//! Clients that come back (issue 8), and a client that left while core was
//! down (issue 9, point 1).
//!
//! A 4-node chain gw – n1 – n2 – n3 – n4 with real babeld (1 s hellos) and
//! our five daemons on every node (client-db's short claim as in
//! `roaming.rs`, core's own timers: 5 s `gone_grace_ms` and `handover_ms`,
//! so a client coming back after 3 s finds its old node still in grace or
//! handover). The client moves the way a radio does (carrier lost and back,
//! its own routes kept). The gateway pings the client and the client pings
//! the gateway every 10 ms during every move.
//!
//! After every move ([`l3roamd_lab::roam::roam`]): both directions get
//! replies again within 10 s, the route audit of every member passes within
//! 1 s (one holder, the node the client is on; every path ends there or at
//! a handover route forwarding there; no loop) and keeps passing until the
//! next move, no ICMPv6 error ("Time exceeded", "No route", ...) reaches
//! either pinger, the first reply after link-up comes within 500 ms, no
//! request waits longer than 500 ms for its reply (held packets delivered in
//! a burst a re-seek later), and at most 10 requests (100 ms) are lost
//! after link-up in either direction. Every problem of every move is
//! collected, with the routes and babeld's entries at the first sign of
//! trouble (also in `<lab dir>/evidence.txt`, kept with
//! `L3ROAMD_LAB_KEEP=1`), and the test fails at the end listing them.

use std::time::Duration;

use l3roamd_lab::roam::{self, Limits, RoamOutcome, RoamSpec};
use l3roamd_lab::{require_root_and_tools, wait, Daemon, Expect, Lab, LabOptions, Launch, GATEWAY};

/// How long the client stays before the next move.
const DWELL: Duration = Duration::from_secs(3);
/// Bound on the first discovery of the client.
const DISCOVER: Duration = Duration::from_secs(40);

/// The 4-node chain, `c1` on `home`, babel converged, daemons running,
/// the client reachable and served by `home`.
fn return_lab(home: &str) -> Lab {
    let mut lab = Lab::new(LabOptions::chain(4)).expect("build chain");
    lab.add_client("c1", home).expect("add client");
    lab.start_babel().expect("babeld");
    lab.wait_routes_converged(Duration::from_secs(30))
        .expect("babel converges");
    lab.start_all_daemons_with(
        Launch::Separate,
        &[
            ("client_db", "claim_interval_ms", "100"),
            ("client_db", "claim_retries", "9"),
        ],
    )
    .expect("daemons");
    let addr = lab.client("c1").expect("c1").address;
    if let Err(e) = lab.wait_reachable(GATEWAY, addr, DISCOVER) {
        panic!("{e}\n{}", lab.report());
    }
    if let Err(e) = lab.wait_audit(addr, &Expect::holder(home), DISCOVER) {
        panic!("{e}\n{}", lab.report());
    }
    // The first claim is over and its node-client address announced (the
    // gateway routes it), so the next node's CLAIM has somewhere to go. A
    // client that moves on within that first second of its life in the
    // mesh waits for the re-seek (docs/design-notes.md, "A client comes
    // back"); that is not what these tests are about.
    let nca = lab
        .client("c1")
        .expect("c1")
        .node_client_address()
        .expect("c1's node-client address");
    let announced = wait::until(
        "c1's node-client address routed at the gateway",
        DISCOVER,
        || {
            let routes = lab.host_routes(GATEWAY, nca)?;
            Ok(if routes.iter().any(|r| r.is_babel_unicast()) {
                wait::Check::Ready(())
            } else {
                wait::Check::Pending(format!("{routes:?}"))
            })
        },
    );
    if let Err(e) = announced {
        panic!("{e}\n{}", lab.report());
    }
    lab
}

/// Moves c1 along `route` (node names), one measured roam each, and
/// returns every problem found (empty when all went right).
fn roam_along(lab: &mut Lab, route: &[&str]) -> Vec<String> {
    let limits = Limits::default();
    let anchor = roam::anchor();
    let mut problems = Vec::new();
    for (i, to) in route.iter().enumerate() {
        let mut spec = RoamSpec::new("c1", to);
        spec.dwell = DWELL;
        let outcome: RoamOutcome = roam::roam(lab, &spec).expect("roam");
        eprintln!("roam {}: {}", i + 1, outcome.json(anchor));
        let p = outcome.problems(&limits);
        if !p.is_empty() {
            problems.extend(p.into_iter().map(|x| format!("roam {}: {x}", i + 1)));
            if let Some(e) = &outcome.evidence {
                problems.push(e.clone());
            }
        }
    }
    problems
}

/// Fails the test with `problems` and the lab's report, if there are any.
fn assert_no_problems(lab: &Lab, what: &str, problems: &[String]) {
    if !problems.is_empty() {
        panic!(
            "{what}: {} problems\n{}\n{}",
            problems.len(),
            problems.join("\n"),
            lab.report()
        );
    }
}

/// A -> B and back to A, `cycles` times.
fn out_and_back(a: &str, b: &str, cycles: usize) {
    let mut lab = return_lab(a);
    let route: Vec<&str> = (0..cycles).flat_map(|_| [b, a]).collect();
    let problems = roam_along(&mut lab, &route);
    // Settled in the end: the handover routes are gone, one holder, all paths there.
    let addr = lab.client("c1").expect("c1").address;
    let settled = lab.wait_audit(addr, &Expect::holder(a), Duration::from_secs(15));
    let mut problems = problems;
    if let Err(e) = settled {
        problems.push(format!("not settled on {a} after the last move: {e}"));
    }
    assert_no_problems(&lab, &format!("{a} <-> {b}, {cycles} cycles"), &problems);
}

#[test]
fn return_one_hop_n4_n3() {
    if !require_root_and_tools() {
        return;
    }
    out_and_back("n4", "n3", 5);
}

#[test]
fn return_two_hops_n4_n2() {
    if !require_root_and_tools() {
        return;
    }
    out_and_back("n4", "n2", 5);
}

#[test]
fn return_three_hops_n4_n1() {
    if !require_root_and_tools() {
        return;
    }
    out_and_back("n4", "n1", 5);
}

#[test]
fn onward_a_b_c() {
    if !require_root_and_tools() {
        return;
    }
    // Moves of 2, 1, 2, 3 and 1 hops, a few seconds apart.
    let mut lab = return_lab("n4");
    let problems = roam_along(&mut lab, &["n2", "n3", "n1", "n4", "n3"]);
    assert_no_problems(&lab, "n4 -> n2 -> n3 -> n1 -> n4 -> n3", &problems);
}

#[test]
fn client_left_while_core_was_down() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = return_lab("n3");
    let addr = lab.client("c1").expect("c1").address;

    // Power cut of core alone on n3: its routes stay in the kernel.
    let core = lab.daemon_process("n3", Daemon::Core).expect("core on n3");
    core.signal(libc::SIGKILL).expect("SIGKILL core");
    core.wait_exit(Duration::from_secs(5)).expect("core exits");
    let _ = lab.stop_daemon("n3", Daemon::Core);

    // The client walks over to n2 while n3's core is down.
    lab.move_client("c1", "n2").expect("move c1 to n2");
    let reached = wait::until(
        "c1 reachable from the gateway on n2",
        Duration::from_secs(20),
        || {
            let p = lab.ping(GATEWAY, addr, 3, Duration::from_millis(20))?;
            Ok(if p.all_received() {
                wait::Check::Ready(())
            } else {
                wait::Check::Pending(p.to_string())
            })
        },
    );
    eprintln!("c1 reachable on n2 while n3's core is down: {reached:?}");

    lab.start_daemon("n3", Daemon::Core, Launch::Separate)
        .expect("core on n3 again");
    // Within 15 s n3 holds no route of core's for the client, and n2 is
    // the one holder with every path there.
    let n3_clean = wait::until(
        "n3 without a route of core's for c1",
        Duration::from_secs(15),
        || {
            let routes = lab.host_routes("n3", addr)?;
            Ok(
                if routes
                    .iter()
                    .all(|r| r.protocol != "158" && r.dev.as_deref() != Some("br-client"))
                {
                    wait::Check::Ready(())
                } else {
                    wait::Check::Pending(format!("{routes:?}"))
                },
            )
        },
    );
    let mut problems = Vec::new();
    if let Err(e) = n3_clean {
        problems.push(format!("{e}"));
        problems.push(roam::evidence(&lab, addr, "n3 still holds c1"));
    }
    if let Err(e) = lab.wait_audit(addr, &Expect::holder("n2"), Duration::from_secs(15)) {
        problems.push(format!("{e}"));
    }
    let p = lab
        .ping(GATEWAY, addr, 5, Duration::from_millis(10))
        .expect("ping");
    if !p.all_received() {
        problems.push(format!("gateway -> c1 after core's restart: {p}"));
    }
    assert_no_problems(&lab, "core restarted after the client left", &problems);
}
