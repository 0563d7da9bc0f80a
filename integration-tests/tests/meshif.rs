//! Mesh interfaces added and removed at runtime (issue 12): a running chain
//! gw - n1 - n2 - n3 gets a direct link n1 <-> n3 (`x-n3` in n1, `x-n1` in
//! n3), as a VPN tunnel or a wired mesh port would come up on a router.
//!
//! 1. Both names are added to core (AddMeshInterface) *before* the link
//!    exists: accepted, listed as absent. Then the link is created and
//!    given to babeld (as netifd does), and our daemons pick it up by
//!    themselves: a seek for an undiscovered client behind n3 crosses it
//!    (SEEK multicast, FOUND and DATA on the data port), and so does the
//!    CLAIM/INFO/ACK of the client's roam from n3 to n1.
//! 2. It is removed from core on both ends (`l3roamd ctl del-meshif`):
//!    ndproxy closes its socket there, and a new seek sends no SEEK on it,
//!    while the client is reached the long way round.
//! 3. It is added again while it exists (`l3roamd ctl add-meshif`): SEEKs
//!    cross it again at once.
//!    A restarted ndproxy gets it back from core.
//! 4. A link whose names match `mesh.mesh_interface_patterns` (`y-*`) is
//!    taken as a mesh interface when it appears, and let go when it vanishes.
//!
//! What crosses the link is read from a tcpdump capture on n1's end of it
//! (the intercom type is the first byte of the UDP payload).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use l3roamd_lab::daemons::BinDir;
use l3roamd_lab::process::ManagedProcess;
use l3roamd_lab::wait::{self, Check};
use l3roamd_lab::{
    cmd, grpc_call, require_root_and_tools, Daemon, Lab, LabOptions, Launch, GATEWAY,
};

/// n1's end of the new link, and n3's.
const X_N1: &str = "x-n3";
const X_N3: &str = "x-n1";

// ===== capture =====

/// tcpdump on one interface: our UDP ports only, with the bytes.
struct Capture {
    process: ManagedProcess,
    log: PathBuf,
}

impl Capture {
    fn start(lab: &Lab, node: &str, iface: &str, tag: &str) -> Capture {
        let n = lab.node(node).unwrap();
        let log = n.dir.join(format!("capture-{tag}.txt"));
        let args: Vec<OsString> = [
            "-i",
            iface,
            "-n",
            "-l",
            "-x",
            "udp and (port 5523 or port 5524)",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let process = ManagedProcess::spawn(
            &format!("{node}/tcpdump"),
            &cmd::tool("ip").unwrap(),
            Some(n.netns.name()),
            &cmd::tool("tcpdump").unwrap(),
            &args,
            &log,
        )
        .unwrap();
        wait::until("tcpdump listening", Duration::from_secs(10), || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            Ok(if text.contains("listening on") {
                Check::Ready(())
            } else {
                Check::Pending(text)
            })
        })
        .unwrap();
        Capture { process, log }
    }

    /// `(port, intercom type)` of every datagram so far.
    fn packets(&self) -> Vec<(u16, u8)> {
        parse_capture(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Waits until every `(port, type)` of `kinds` was seen; the packets.
    fn wait_for(&self, kinds: &[(u16, u8)]) -> Vec<(u16, u8)> {
        let r = wait::until("packets on the new link", Duration::from_secs(10), || {
            let packets = self.packets();
            Ok(if kinds.iter().all(|k| packets.contains(k)) {
                Check::Ready(packets)
            } else {
                Check::Pending(format!("{packets:?}"))
            })
        });
        match r {
            Ok(packets) => packets,
            Err(e) => panic!("{e}"),
        }
    }

    /// Stops tcpdump and returns `(port, intercom type)` of every datagram.
    fn stop(mut self) -> Vec<(u16, u8)> {
        let _ = self.process.stop(Duration::from_secs(2));
        self.packets()
    }
}

/// tcpdump `-n -x` text: a header line per packet (`... > DST.PORT: UDP`),
/// then hex lines of the IPv6 packet; the UDP ports are bytes 40..44 (after
/// the IPv6 header), the intercom type is byte 2 of the payload (protocol.md).
fn parse_capture(text: &str) -> Vec<(u16, u8)> {
    let mut packets: Vec<Vec<u8>> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(hex) = trimmed.strip_prefix("0x") {
            let Some(bytes) = hex.split_once(':').map(|(_, b)| b) else {
                continue;
            };
            let Some(packet) = packets.last_mut() else {
                continue;
            };
            for word in bytes.split_whitespace() {
                for i in (0..word.len()).step_by(2) {
                    if let Some(b) = word
                        .get(i..i + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
                        packet.push(b);
                    }
                }
            }
        } else if line.contains(" IP6 ") {
            packets.push(Vec::new());
        }
    }
    packets
        .iter()
        .filter_map(|p| {
            let port = u16::from_be_bytes([*p.get(42)?, *p.get(43)?]);
            let src = u16::from_be_bytes([*p.get(40)?, *p.get(41)?]);
            Some((port.min(src), *p.get(50)?))
        })
        .collect()
}

fn count(packets: &[(u16, u8)], port: u16, kind: u8) -> usize {
    packets
        .iter()
        .filter(|(p, k)| *p == port && *k == kind)
        .count()
}

// ===== the daemons =====

/// core's ListMeshInterfaces on `node` as `(name, present, configured)`.
fn mesh_interfaces(lab: &Lab, node: &str) -> Vec<(String, bool, bool)> {
    let socket = lab.node(node).unwrap().socket(Daemon::Core);
    let text = grpc_call(&socket, "l3roamd.v1.Core/ListMeshInterfaces", "{}").unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                i["name"].as_str().unwrap_or_default().to_string(),
                i["present"].as_bool().unwrap_or(false),
                i["configured"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

fn add_by_rpc(lab: &Lab, node: &str, name: &str) {
    let socket = lab.node(node).unwrap().socket(Daemon::Core);
    grpc_call(
        &socket,
        "l3roamd.v1.Core/AddMeshInterface",
        &format!("{{\"name\": \"{name}\"}}"),
    )
    .unwrap();
}

/// `l3roamd ctl -s SOCKET ARGS...` as the init script runs it.
fn ctl(lab: &Lab, node: &str, args: &[&str]) -> String {
    let bin = BinDir::locate().unwrap().binary("l3roamd").unwrap();
    let socket = lab.node(node).unwrap().socket(Daemon::Core);
    let out = std::process::Command::new(bin)
        .arg("ctl")
        .arg("-s")
        .arg(&socket)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "l3roamd ctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One of core's counters on `node`.
fn core_counter(lab: &Lab, node: &str, name: &str) -> u64 {
    lab.counter(node, Daemon::Core, name).unwrap()
}

/// ndproxy's mesh interfaces on `node`.
fn ndproxy_interfaces(lab: &Lab, node: &str) -> Vec<String> {
    let socket = lab.node(node).unwrap().socket(Daemon::NdProxy);
    let text = grpc_call(&socket, "l3roamd.v1.NdProxy/GetStatus", "{}").unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["meshInterfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn wait_ndproxy(lab: &Lab, node: &str, name: &str, present: bool) {
    let r = wait::until(
        &format!(
            "ndproxy on {node} {} {name}",
            if present { "uses" } else { "drops" }
        ),
        Duration::from_secs(15),
        || {
            let list = ndproxy_interfaces(lab, node);
            Ok(if list.iter().any(|n| n == name) == present {
                Check::Ready(())
            } else {
                Check::Pending(format!("{list:?}"))
            })
        },
    );
    if let Err(e) = r {
        panic!("{e}\n{}", lab.report());
    }
}

/// Waits until ndproxy on `node` logs that it listens on `iface` at least
/// `times` times (the socket is open).
fn wait_listening(lab: &Lab, node: &str, iface: &str, times: usize) {
    let log = lab.node(node).unwrap().daemon_log(Daemon::NdProxy);
    let r = wait::until(
        &format!("ndproxy on {node} listening on {iface}"),
        Duration::from_secs(15),
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let n = text
                .lines()
                .filter(|l| l.contains("listening for SEEKs") && l.contains(iface))
                .count();
            Ok(if n >= times {
                Check::Ready(())
            } else {
                Check::Pending(format!("{n} times"))
            })
        },
    );
    if let Err(e) = r {
        panic!("{e}\n{}", lab.report());
    }
}

// ===== the link =====

fn create_link(lab: &Lab) {
    let n1 = lab.node("n1").unwrap();
    let n3 = lab.node("n3").unwrap();
    n1.ip(&[
        "link",
        "add",
        X_N1,
        "type",
        "veth",
        "peer",
        "name",
        X_N3,
        "netns",
        n3.netns.name(),
    ])
    .unwrap();
    n1.ip(&["link", "set", X_N1, "up"]).unwrap();
    n3.ip(&["link", "set", X_N3, "up"]).unwrap();
    wait::until(
        "the new link up with link-local addresses",
        Duration::from_secs(10),
        || {
            let ready = [(n1, X_N1), (n3, X_N3)].iter().all(|(n, name)| {
                n.netns
                    .interfaces()
                    .unwrap_or_default()
                    .iter()
                    .any(|i| i.name == *name && i.link_local_ready())
            });
            Ok(if ready {
                Check::Ready(())
            } else {
                Check::Pending("not yet".into())
            })
        },
    )
    .unwrap();
    lab.babel_configure("n1", &format!("interface {X_N1}"))
        .unwrap();
    lab.babel_configure("n3", &format!("interface {X_N3}"))
        .unwrap();
}

/// Waits until n1 and n3 route each other's node address over the new link.
fn wait_direct_route(lab: &Lab) {
    let n1 = lab.node("n1").unwrap();
    let n3 = lab.node("n3").unwrap();
    let r = wait::until(
        "n1 and n3 route each other over the new link",
        Duration::from_secs(30),
        || {
            let mut direct = true;
            for (from, to, dev) in [(n1, n3, X_N1), (n3, n1, X_N3)] {
                let routes = from.routes()?;
                direct &= routes
                    .iter()
                    .any(|r| r.dst == to.address.to_string() && r.dev.as_deref() == Some(dev));
            }
            Ok(if direct {
                Check::Ready(())
            } else {
                Check::Pending("not yet".into())
            })
        },
    );
    if let Err(e) = r {
        panic!("{e}\n{}", lab.report());
    }
}

/// Waits until `node` routes `addr` through `dev`.
fn wait_route_via(lab: &Lab, node: &str, addr: Ipv6Addr, dev: &str) {
    let r = wait::until(
        &format!("{node} routes {addr} via {dev}"),
        Duration::from_secs(30),
        || {
            let routes = lab.host_routes(node, addr)?;
            Ok(if routes.iter().any(|r| r.dev.as_deref() == Some(dev)) {
                Check::Ready(())
            } else {
                Check::Pending(format!("{routes:?}"))
            })
        },
    );
    if let Err(e) = r {
        panic!("{e}\n{}", lab.report());
    }
}

/// Waits until `node` routes `addr` to its client bridge (the lab's route
/// audit knows only the chain's links, not the new one).
fn wait_served_here(lab: &Lab, node: &str, addr: Ipv6Addr) {
    let r = wait::until(
        &format!("{addr} served by {node}"),
        Duration::from_secs(20),
        || {
            let routes = lab.host_routes(node, addr)?;
            Ok(
                if routes.iter().any(|r| r.dev.as_deref() == Some("br-client")) {
                    Check::Ready(())
                } else {
                    Check::Pending(format!("{routes:?}"))
                },
            )
        },
    );
    if let Err(e) = r {
        panic!("{e}\n{}", lab.report());
    }
}

fn reach(lab: &Lab, client: &str, addr: Ipv6Addr) {
    let ping = lab
        .ping(GATEWAY, addr, 10, Duration::from_millis(20))
        .unwrap();
    if !ping.all_received() {
        panic!("{client} ({addr}): {ping}\n{}", lab.report());
    }
}

fn assert_absent(path: &Path) {
    assert!(!path.exists(), "{} exists", path.display());
}

// ===== the test =====

#[test]
fn a_mesh_link_added_at_runtime_carries_our_traffic_and_stops_when_removed() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(LabOptions::chain(3)).expect("build chain");
    let c1 = lab.add_client("c1", "n3").expect("c1").address;
    let c2 = lab.add_client("c2", "n3").expect("c2").address;
    let c3 = lab.add_client("c3", "n3").expect("c3").address;
    lab.start_babel().expect("babeld");
    lab.wait_routes_converged(Duration::from_secs(30))
        .expect("babel converges");
    lab.start_all_daemons_with(
        Launch::MulticallSubcommand,
        &[("mesh", "mesh_interface_patterns", "[\"y-*\"]")],
    )
    .expect("daemons");

    // ----- 1. named before it exists, picked up when it appears -----
    add_by_rpc(&lab, "n1", X_N1);
    add_by_rpc(&lab, "n3", X_N3);
    let listed = mesh_interfaces(&lab, "n1");
    assert_eq!(
        listed,
        vec![
            ("m-gw".to_string(), true, true),
            ("m-n2".to_string(), true, true),
            (X_N1.to_string(), false, false),
        ]
    );
    wait_ndproxy(&lab, "n1", X_N1, true);
    wait_ndproxy(&lab, "n3", X_N3, true);
    assert_absent(&PathBuf::from(format!("/sys/class/net/{X_N1}")));
    create_link(&lab);
    wait_listening(&lab, "n1", X_N1, 1);
    wait_listening(&lab, "n3", X_N3, 1);
    assert!(mesh_interfaces(&lab, "n1").contains(&(X_N1.to_string(), true, false)));
    wait_direct_route(&lab);

    let capture = Capture::start(&lab, "n1", X_N1, "added");
    reach(&lab, "c1", c1);
    wait_served_here(&lab, "n3", c1);
    // The client's node-client address is announced once its first claim
    // has ended; only then can n1 claim it from n3.
    let nca = lab.client("c1").unwrap().node_client_address().unwrap();
    wait_route_via(&lab, "n1", nca, X_N1);
    lab.move_client("c1", "n1").expect("roam c1 to n1");
    wait_served_here(&lab, "n1", c1);
    let (seek, claim, info, ack, found, data) = (0, 1, 2, 3, 4, 5);
    capture.wait_for(&[
        (5523, seek),
        (5523, claim),
        (5523, info),
        (5523, ack),
        (5524, found),
        (5524, data),
    ]);
    let packets = capture.stop();
    eprintln!("on the new link: {packets:?}");
    assert!(count(&packets, 5523, seek) >= 1, "SEEK: {packets:?}");
    assert!(count(&packets, 5523, claim) >= 1, "CLAIM: {packets:?}");
    assert!(count(&packets, 5523, info) >= 1, "INFO: {packets:?}");
    assert!(count(&packets, 5523, ack) >= 1, "ACK: {packets:?}");
    assert!(count(&packets, 5524, found) >= 1, "FOUND: {packets:?}");
    assert!(count(&packets, 5524, data) >= 1, "DATA: {packets:?}");

    // ----- 2. removed: no more SEEKs on it -----
    let after = ctl(&lab, "n1", &["del-meshif", X_N1]);
    assert!(!after.contains(X_N1), "{after}");
    ctl(&lab, "n3", &["del-meshif", X_N3]);
    wait_ndproxy(&lab, "n1", X_N1, false);
    wait_ndproxy(&lab, "n3", X_N3, false);
    let foreign = core_counter(&lab, "n1", "datapath_foreign");
    let capture = Capture::start(&lab, "n1", X_N1, "removed");
    reach(&lab, "c2", c2);
    let packets = capture.stop();
    eprintln!("on the removed link: {packets:?}");
    assert_eq!(count(&packets, 5523, seek), 0, "SEEK: {packets:?}");
    // babel still routes over the link, so n3's FOUND may arrive there:
    // n1's data path refuses it, and so sends no DATA that way.
    assert_eq!(count(&packets, 5524, data), 0, "DATA: {packets:?}");
    if count(&packets, 5524, found) > 0 {
        assert!(core_counter(&lab, "n1", "datapath_foreign") > foreign);
    }

    // ----- 3. added again while it exists: at once -----
    let after = ctl(&lab, "n1", &["add-meshif", X_N1]);
    assert!(
        after.contains(&format!("{X_N1} present runtime")),
        "{after}"
    );
    ctl(&lab, "n3", &["add-meshif", X_N3]);
    wait_listening(&lab, "n1", X_N1, 2);
    wait_listening(&lab, "n3", X_N3, 2);
    let capture = Capture::start(&lab, "n1", X_N1, "again");
    reach(&lab, "c3", c3);
    let packets = capture.stop();
    eprintln!("on the link added again: {packets:?}");
    assert!(count(&packets, 5523, seek) >= 1, "SEEK: {packets:?}");

    // A restarted ndproxy starts from the configured list; core gives it
    // the runtime one back.
    lab.stop_daemon("n1", Daemon::NdProxy)
        .expect("stop ndproxy");
    lab.start_daemon("n1", Daemon::NdProxy, Launch::MulticallSubcommand)
        .expect("start ndproxy");
    wait_ndproxy(&lab, "n1", X_N1, true);

    // ----- 4. followed by name pattern -----
    let n1 = lab.node("n1").unwrap();
    n1.ip(&[
        "link",
        "add",
        "y-n3",
        "type",
        "veth",
        "peer",
        "name",
        "y-n1",
        "netns",
        lab.node("n3").unwrap().netns.name(),
    ])
    .unwrap();
    wait_ndproxy(&lab, "n1", "y-n3", true);
    wait_ndproxy(&lab, "n3", "y-n1", true);
    assert!(mesh_interfaces(&lab, "n1").contains(&("y-n3".to_string(), true, false)));
    n1.ip(&["link", "del", "y-n3"]).unwrap();
    wait_ndproxy(&lab, "n1", "y-n3", false);
    wait_ndproxy(&lab, "n3", "y-n1", false);
    assert!(!mesh_interfaces(&lab, "n1").iter().any(|i| i.0 == "y-n3"));

    // Bad names are refused, naming the field.
    let socket = lab.node("n1").unwrap().socket(Daemon::Core);
    let refused = grpc_call(
        &socket,
        "l3roamd.v1.Core/AddMeshInterface",
        "{\"name\": \"no/such\"}",
    );
    let message = format!("{refused:?}");
    assert!(refused.is_err() && message.contains("name"), "{message}");
    lab.shutdown().expect("shutdown");
}

#[test]
fn capture_text_is_parsed() {
    let text = "\
listening on x-n3, link-type EN10MB
04:10:00.1 IP6 fdff::1.5523 > ff02::5523.5523: UDP, length 40
\t0x0000:  6000 0000 0030 1101 fdff 0000 0000 0000
\t0x0010:  0000 0000 0000 0001 ff02 0000 0000 0000
\t0x0020:  0000 0000 0000 5523 1593 1593 0030 0000
\t0x0030:  00ff 0000
04:10:00.2 IP6 fdff::3.40000 > fdff::1.5524: UDP, length 40
\t0x0000:  6000 0000 0030 1140 fdff 0000 0000 0000
\t0x0010:  0000 0000 0000 0003 fdff 0000 0000 0000
\t0x0020:  0000 0000 0000 0001 9c40 1594 0030 0000
\t0x0030:  0001 0500
";
    assert_eq!(parse_capture(text), vec![(5523, 0), (5524, 5)]);
}
