//! A mesh that is not a chain, under roaming load (issue 13, the CI-sized
//! version of `l3roamd-bench-mesh`).
//!
//! A 3 × 3 grid (12 links, up to four paths of equal length between two
//! nodes) with the classic gateway at n1, real babeld and our five daemons
//! on every node, 20 clients spread over the nodes. The gateway pings every
//! client at 10 packets/s from one socket while each client roams (carrier
//! loss, carrier on the new node) to a random neighbouring node after a
//! random dwell of 15-45 s, for two minutes, from a fixed seed. The
//! assertion is the route audit at the end: for every client address,
//! exactly one holder (the node it sits on), every member's route leads
//! there, no loop, no handover or parked route left, one route per node.
//! Loss is bounded loosely (the machine is shared), and only so that a
//! mesh that stopped delivering altogether fails.

use std::time::{Duration, Instant};

use l3roamd_lab::mesh_run::{
    audit_clients, build_mesh, execute_roams, measure_roams, wait_all_answer, MeshSpec,
};
use l3roamd_lab::require_root_and_tools;

const RESUME_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn twenty_clients_roaming_in_a_grid_leave_every_route_right() {
    if !require_root_and_tools() {
        return;
    }
    let spec = MeshSpec {
        rows: 3,
        cols: 3,
        clients: 20,
        silent: Vec::new(),
        roam_for: Duration::from_secs(120),
        dwell: (Duration::from_secs(15), Duration::from_secs(45)),
        seed: 13,
        ping_interval: Duration::from_millis(100),
    };
    let mut mesh = build_mesh(&spec).expect("grid lab with daemons");
    let pings = mesh
        .start_pings(spec.ping_interval)
        .expect("pinger on the gateway");
    let warm = wait_all_answer(&pings, spec.clients, Duration::from_secs(60));
    assert!(warm.is_ok(), "warm-up: {warm:?}\n{}", mesh.lab.report());

    let plan = mesh.plan(&spec);
    assert!(
        plan.len() >= spec.clients * 2,
        "the seeded plan has only {} roams",
        plan.len()
    );
    let start = Instant::now();
    let executed = execute_roams(&mut mesh.lab, &mesh.clients, &plan, start, |i, e| {
        if (i + 1) % 20 == 0 {
            eprintln!("roam {} of {} at {:.0?}", i + 1, plan.len(), e.planned.at);
        }
    })
    .expect("roams carried out");

    let audit = audit_clients(
        &mesh.lab,
        &mesh.clients,
        &mesh.addresses,
        Duration::from_secs(60),
    )
    .expect("route tables readable");
    let runs = pings.stop().expect("ping runs");
    let roams = measure_roams(&runs, &executed, RESUME_TIMEOUT);
    let failed = roams.iter().filter(|m| m.failed).count();
    let sent: usize = roams.iter().map(|m| m.sent_after_up).sum();
    let lost: usize = roams.iter().map(|m| m.lost_after_up).sum();
    let mut gaps: Vec<Duration> = roams.iter().filter_map(|m| m.gap).collect();
    gaps.sort();
    eprintln!(
        "{} roams: {failed} failed, {lost} of {sent} requests lost after link-up, \
         gap median {:?} max {:?}; audit {}/{} right after {:.1?}",
        roams.len(),
        gaps.get(gaps.len() / 2),
        gaps.last(),
        audit.passed,
        audit.clients,
        audit.waited
    );

    assert!(
        audit.problems.is_empty(),
        "route audit after {} roams: {} of {} clients wrong ({} loops):\n{}\n{}",
        roams.len(),
        audit.problems.len(),
        audit.clients,
        audit.loops,
        audit.problems.join("\n"),
        mesh.lab.report()
    );
    assert_eq!(roams.len(), plan.len());
    assert!(
        failed * 10 <= roams.len(),
        "{failed} of {} roams got no reply within {RESUME_TIMEOUT:?}",
        roams.len()
    );
    assert!(
        lost * 5 <= sent,
        "{lost} of {sent} requests after link-up lost"
    );
    mesh.lab.shutdown().expect("teardown");
}
