//! The C daemon's control socket, served by real core on a real node, asked
//! the way Gluon's scripts ask it: a line through socat, the answer read to
//! the end. `get_clients` lists the one client the node serves with its MAC
//! and address (respondd's count), `get_meshifs` the mesh interfaces, a
//! malformed or unknown line gets an error line, and core serves on.

use std::net::Ipv6Addr;
use std::path::Path;
use std::time::Duration;

use l3roamd_lab::daemons::base64;
use l3roamd_lab::wait::{self, Check};
use l3roamd_lab::{
    cmd, grpc_call, require_root_and_tools, Daemon, Lab, LabOptions, Launch, GATEWAY,
};

const SETTLE: Duration = Duration::from_secs(30);

/// `line` through `socat` to `socket`, as `echo LINE | socat - UNIX-CONNECT:SOCKET`.
fn ask(socket: &Path, line: &str) -> String {
    let mut command = std::process::Command::new("sh");
    command.args([
        "-c",
        "printf '%s\\n' \"$1\" | socat -t 5 -T 10 - UNIX-CONNECT:\"$2\"",
        "sh",
        line,
        &socket.display().to_string(),
    ]);
    let out = cmd::run_command(command, Duration::from_secs(20)).expect("run socat");
    assert!(out.status.success(), "socat failed: {out:?}");
    out.stdout
}

/// socat is needed here only; with CI=true its absence is a failure.
fn have_socat() -> bool {
    if cmd::find_tool("socat").is_some() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("lab prerequisite missing on CI: `socat` (scripts/install-deps.sh)");
    }
    eprintln!("SKIP: the compat socket test needs socat");
    false
}

/// Waits until `node`'s core serves `addr` (claimed, not just claiming),
/// as gRPC's LookupClient and then the control socket's `get_clients`
/// show it; returns the last `get_clients` answer.
fn wait_served(lab: &Lab, node: &str, addr: Ipv6Addr) -> String {
    let n = lab.node(node).expect("node");
    let core = n.socket(Daemon::Core);
    let lookup = format!(r#"{{"address":{{"octets":"{}"}}}}"#, base64(&addr.octets()));
    wait::until(&format!("{node}'s core serving {addr}"), SETTLE, || {
        // Traffic makes the silent client known.
        lab.ping(GATEWAY, addr, 1, Duration::from_millis(20))?;
        let found = match grpc_call(&core, "l3roamd.v1.Core/LookupClient", &lookup) {
            Ok(found) if found.contains("\"local\": true") => found,
            Ok(found) => return Ok(Check::Pending(found)),
            Err(e) => return Ok(Check::Pending(e.to_string())),
        };
        let answer = ask(&n.compat_socket(), "get_clients");
        let served = serde_json::from_str::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| {
                v["clientlist"]
                    .as_object()?
                    .values()
                    .find_map(|c| c["addresses"][addr.to_string()]["state"].as_u64())
            });
        Ok(if served == Some(1) {
            Check::Ready(answer)
        } else {
            Check::Pending(format!("{found}; get_clients: {answer}"))
        })
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.report()))
}

#[test]
fn the_c_control_socket_answers_gluons_commands() {
    if !require_root_and_tools() || !have_socat() {
        return;
    }
    // gw - n1 - n2, the client on n1.
    let mut lab = Lab::new(LabOptions::chain(2)).expect("build chain");
    lab.add_client("c1", "n1").expect("add c1");
    lab.start_babel().expect("babeld");
    lab.wait_routes_converged(SETTLE).expect("babel converges");
    lab.start_all_daemons(Launch::MulticallSubcommand)
        .expect("daemons");
    let c1 = lab.client("c1").expect("c1").clone();
    let n1 = lab.node("n1").expect("n1").clone();
    let socket = n1.compat_socket();
    let answer = wait_served(&lab, "n1", c1.address);

    // The socket is there for the operators' group, like the others.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660, "mode of {}", socket.display());

    // get_clients (asked while waiting): respondd reads `clients`; the
    // list has c1 by its MAC, on the client bridge, with its address.
    let v: serde_json::Value = serde_json::from_str(&answer)
        .unwrap_or_else(|e| panic!("get_clients answered {answer:?}: {e}"));
    assert_eq!(v["clients"], 1, "{answer}");
    let entry = &v["clientlist"][c1.mac.as_str()];
    assert_eq!(entry["interface"], l3roamd_lab::CLIENT_BRIDGE, "{answer}");
    assert_eq!(
        entry["addresses"][c1.address.to_string()]["state"],
        1,
        "{answer}"
    );
    assert!(
        answer.starts_with("{ \"clients\": 1, \"clientlist\": { "),
        "{answer}"
    );

    // get_meshifs: the mesh interfaces core uses (the configured ones).
    let answer = ask(&socket, "get_meshifs");
    let v: serde_json::Value = serde_json::from_str(&answer)
        .unwrap_or_else(|e| panic!("get_meshifs answered {answer:?}: {e}"));
    let want: Vec<String> = lab.daemon_config("n1").expect("config").mesh_interfaces;
    let got: Vec<String> = v["mesh_interfaces"]
        .as_array()
        .expect("an array")
        .iter()
        .map(|s| s.as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(got, want, "{answer}");

    // add_meshif / del_meshif, as Gluon's reload_service sends them: a
    // link that does not exist yet is taken (and listed), then dropped.
    let meshifs = |socket: &std::path::Path| -> Vec<String> {
        let answer = ask(socket, "get_meshifs");
        serde_json::from_str::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| {
                v["mesh_interfaces"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_else(|| panic!("get_meshifs answered {answer:?}"))
    };
    assert_eq!(ask(&socket, "add_meshif wg_peer1"), "");
    let listed = meshifs(&socket);
    assert!(listed.contains(&"wg_peer1".to_string()), "{listed:?}");
    let answer = ask(&socket, "add_meshif bad/name");
    assert!(answer.starts_with("error: "), "{answer}");
    assert_eq!(ask(&socket, "del_meshif wg_peer1"), "");
    assert_eq!(meshifs(&socket), want);

    // has_route, the C daemon's debugging command.
    assert_eq!(
        ask(&socket, &format!("has_route {}", c1.address)),
        format!("found route {}/128: YES\n", c1.address)
    );

    // What the C daemon crashed on, and what it never knew.
    for (line, want) in [
        ("probe fddd:1::99", "error: probe: missing mac\n"),
        ("verbosity", "error: verbosity: missing level\n"),
        (
            "get_clientsXYZ",
            "error: unknown command \"get_clientsXYZ\"\n",
        ),
        ("bogus", "error: unknown command \"bogus\"\n"),
    ] {
        assert_eq!(ask(&socket, line), want, "{line}");
    }
    let answer = ask(&socket, "add_prefix fddd:9::/64");
    assert!(
        answer.starts_with("error: add_prefix: not supported"),
        "{answer}"
    );
    // verbosity maps onto core's log level; the C daemon said nothing.
    assert_eq!(ask(&socket, "verbosity debug"), "");
    assert_eq!(ask(&socket, "verbosity none"), "");

    // Core serves on: the socket answers, gRPC answers and counts them.
    let answer = ask(&socket, "get_clients");
    assert!(answer.starts_with("{ \"clients\": 1"), "{answer}");
    let status = grpc_call(&n1.socket(Daemon::Core), "l3roamd.v1.Core/GetStatus", "{}")
        .expect("core status");
    let status: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    let counter = |name: &str| {
        status["counters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == name)
            .and_then(|c| {
                // proto3 JSON writes uint64 as a string.
                let v = &c["value"];
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(0)
    };
    assert_eq!(counter("compat_malformed"), 5, "{status}");
    assert!(counter("compat_commands") >= 10, "{status}");
    lab.daemon_process("n1", Daemon::Core)
        .expect("started")
        .ensure_running()
        .unwrap_or_else(|e| panic!("{e}"));
}
