//! Our five daemons run on every node of a real chain and answer on their
//! sockets: server reflection lists health, reflection and their own
//! service, and the health check says SERVING. n1 and n2 run the separate
//! binaries, n3 the multicall binary through symlinks (argv[0]), n4 the
//! multicall binary with the daemon named as first argument.

use std::time::{Duration, Instant};

use l3roamd_lab::{
    grpc_call, health_status, list_services, require_root_and_tools, Daemon, Lab, LabOptions,
    Launch,
};

const HEALTH: &str = "grpc.health.v1.Health";
const REFLECTION: [&str; 2] = [
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Problems with one daemon's answers, empty when it answered as specified.
fn check_daemon(node: &str, daemon: Daemon, socket: &std::path::Path) -> Vec<String> {
    let mut problems = Vec::new();
    match list_services(socket) {
        Ok(services) => {
            for wanted in [HEALTH, daemon.service()] {
                if !services.iter().any(|s| s == wanted) {
                    problems.push(format!(
                        "{node}/{daemon}: `list` lacks {wanted}: {services:?}"
                    ));
                }
            }
            if !services.iter().any(|s| REFLECTION.contains(&s.as_str())) {
                problems.push(format!(
                    "{node}/{daemon}: `list` lacks server reflection: {services:?}"
                ));
            }
        }
        Err(e) => problems.push(format!("{node}/{daemon}: list: {e}")),
    }
    match health_status(socket) {
        Ok(status) if status == "SERVING" => {}
        Ok(status) => problems.push(format!("{node}/{daemon}: health is {status}, not SERVING")),
        Err(e) => problems.push(format!("{node}/{daemon}: health check: {e}")),
    }
    // The health service also knows the daemon's own service by name.
    let request = format!("{{\"service\": \"{}\"}}", daemon.service());
    match grpc_call(socket, "grpc.health.v1.Health/Check", &request) {
        Ok(answer) if answer.contains("\"SERVING\"") => {}
        Ok(answer) => problems.push(format!(
            "{node}/{daemon}: health of {} is {}",
            daemon.service(),
            answer.trim()
        )),
        Err(e) => problems.push(format!(
            "{node}/{daemon}: health of {}: {e}",
            daemon.service()
        )),
    }
    problems
}

#[test]
fn daemons_answer() {
    if !require_root_and_tools() {
        return;
    }
    let started = Instant::now();
    let mut lab = Lab::new(LabOptions::chain(4)).expect("build 4-node chain");
    lab.start_babel().expect("start babeld");
    lab.wait_routes_converged(Duration::from_secs(30))
        .expect("babel routes converge");
    for (node, launch) in [
        ("n1", Launch::Separate),
        ("n2", Launch::Separate),
        ("n3", Launch::MulticallSymlink),
        ("n4", Launch::MulticallSubcommand),
    ] {
        lab.start_daemons(node, launch)
            .unwrap_or_else(|e| panic!("start daemons on {node} ({launch:?}): {e}"));
    }
    eprintln!("daemons up after {:?}", started.elapsed());

    // grpcurl is slow to start; ask the nodes side by side.
    let problems: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = lab
            .nodes()
            .iter()
            .map(|node| {
                s.spawn(move || {
                    Daemon::ALL
                        .iter()
                        .flat_map(|d| check_daemon(&node.name, *d, &node.socket(*d)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec!["a checker panicked".into()])
            })
            .collect()
    });
    assert!(
        problems.is_empty(),
        "daemons misbehave:\n{}",
        problems.join("\n")
    );

    // Answering did not make anyone exit, and the mesh still routes.
    for node in ["n1", "n2", "n3", "n4"] {
        for daemon in Daemon::ALL {
            lab.daemon_process(node, daemon)
                .expect("started")
                .ensure_running()
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    lab.wait_routes_converged(Duration::from_secs(10))
        .expect("routes still converged with daemons running");

    // SIGTERM (as procd sends) ends every daemon cleanly within the grace period.
    for daemon in Daemon::ALL {
        let status = lab.stop_daemon("n1", daemon).expect("stop");
        assert!(status.success(), "n1/{daemon} on SIGTERM: {status}");
    }

    lab.shutdown().expect("clean teardown");
    eprintln!("daemons_answer took {:?}", started.elapsed());
}
