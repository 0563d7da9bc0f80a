//! The authenticated intercom (`mesh.intercom_auth`) in the lab.
//!
//! - A rogue on a mesh link (the classic gateway's namespace, a neighbour
//!   of n1 that runs only babeld) forges a CLAIM for a client n2 serves.
//!   Without authentication n2 releases the client to the forger: the
//!   reason the mode exists. In require mode the forgery (unsigned, and
//!   with a made-up trailer) is refused and counted, and n2 keeps serving.
//! - A real signed CLAIM captured on the wire during a roam and replayed
//!   later, from the very address that sent it, is refused as a replay.
//! - A mixed mesh (n1 off, n2 and n3 sign) seeks a silent client and
//!   roams it across both kinds of node.
//!
//! Each daemon counts what it refuses (`auth_missing`, `auth_bad`,
//! `auth_replayed`) and, in sign mode, the unsigned packets it accepted
//! (`auth_unsigned`), in its `GetStatus`.

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use l3roamd_lab::wait::{self, Check};
use l3roamd_lab::{require_root_and_tools, Daemon, Lab, LabOptions, Launch, GATEWAY};

const PORT: u16 = 5523;
const DATA_PORT: u16 = 5524;
const KEY: &str = "\"6c33726f616d64206c616220696e746572636f6d206b657920666f722074657374\"";
const SETTLE: Duration = Duration::from_secs(30);
/// How long a refused forgery is watched for an effect it must not have.
const WATCH: Duration = Duration::from_secs(3);

// ===== the lab =====

/// gw - n1 - ... - n<nodes>, clients attached, each node's `[mesh]` given
/// `auth(node)` (a TOML value for `intercom_auth`, or none).
fn lab_with(nodes: usize, clients: &[(&str, &str)], auth: impl Fn(&str) -> Option<&str>) -> Lab {
    let mut lab = Lab::new(LabOptions::chain(nodes)).expect("build chain");
    for (name, node) in clients {
        lab.add_client(name, node).expect("add client");
    }
    lab.start_babel().expect("babeld");
    lab.wait_routes_converged(SETTLE).expect("babel converges");
    for i in 1..=nodes {
        let node = format!("n{i}");
        let mut config = lab.daemon_config(&node).expect("config");
        config
            .set_raw("client_db", "claim_interval_ms", "100")
            .set_raw("client_db", "claim_retries", "9")
            .set_raw("core", "gone_grace_ms", "2000");
        if let Some(mode) = auth(&node) {
            config
                .set_raw("mesh", "intercom_auth", &format!("\"{mode}\""))
                .set_raw("mesh", "intercom_key", KEY);
        }
        lab.start_daemons_with(&node, Launch::Separate, &config)
            .expect("daemons");
    }
    lab
}

fn counter(lab: &Lab, node: &str, daemon: Daemon, name: &str) -> u64 {
    lab.counter(node, daemon, name).expect("status")
}

fn wait_reachable(lab: &Lab, addr: Ipv6Addr) {
    wait::until(
        &format!("{addr} reachable from the gateway"),
        SETTLE,
        || {
            let p = lab.ping(GATEWAY, addr, 3, Duration::from_millis(20))?;
            Ok(if p.all_received() {
                Check::Ready(())
            } else {
                Check::Pending(p.to_string())
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.report()));
}

fn wait_served(lab: &Lab, addr: Ipv6Addr, node: &str) {
    if let Err(e) = lab.wait_served_by(&[addr], node, SETTLE) {
        panic!("{e}\n{}", lab.report());
    }
}

fn wait_babel_route(lab: &Lab, node: &str, addr: Ipv6Addr) {
    let n = lab.node(node).expect("node");
    wait::until(&format!("{node}'s babel route to {addr}"), SETTLE, || {
        Ok(if n.has_babel_route(addr)? {
            Check::Ready(())
        } else {
            Check::Pending(String::new())
        })
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.report()));
}

// ===== packets =====

fn mac_octets(mac: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (o, part) in m.iter_mut().zip(mac.split(':')) {
        *o = u8::from_str_radix(part, 16).expect("MAC");
    }
    m
}

/// The node-client address of `mac` in fec0::/64 (modified EUI-64).
fn node_client_addr(mac: &str) -> Ipv6Addr {
    let m = mac_octets(mac);
    Ipv6Addr::new(
        0xfec0,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}

/// A CLAIM as a C node sends it: header, MAC segment.
fn claim(sender: Ipv6Addr, nonce: u32, mac: [u8; 6]) -> Vec<u8> {
    let mut p = vec![0, 1, 1, 0];
    p.extend_from_slice(&nonce.to_be_bytes());
    p.extend_from_slice(&sender.octets());
    p.extend_from_slice(&[0, 8]);
    p.extend_from_slice(&mac);
    p
}

/// Runs `f` on a thread inside the network namespace at `path`.
fn in_netns<T: Send + 'static>(path: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = std::fs::File::open(path).expect("netns");
    std::thread::spawn(move || {
        // SAFETY: setns on a valid fd moves only this thread.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        f()
    })
    .join()
    .expect("netns thread")
}

/// Sends each of `packets` by UDP from `source` (any when unspecified) to `to`.
fn send_from(path: &Path, source: Ipv6Addr, to: Ipv6Addr, packets: Vec<Vec<u8>>) {
    in_netns(path, move || {
        let socket = UdpSocket::bind(SocketAddrV6::new(source, 0, 0, 0)).expect("bind");
        for p in &packets {
            socket
                .send_to(p, SocketAddrV6::new(to, PORT, 0, 0))
                .expect("send");
        }
    });
}

/// Captures, on interface `iface` of the namespace at `path`, the UDP
/// payload of the first intercom packet of `kind` to port 5523, waiting up
/// to `timeout` while `during` runs on this thread.
fn capture_intercom(
    path: &Path,
    iface: &str,
    kind: u8,
    timeout: Duration,
    during: impl FnOnce(),
) -> Option<Vec<u8>> {
    let iface = std::ffi::CString::new(iface).expect("name");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let ns = std::fs::File::open(path).expect("netns");
    let capture = std::thread::spawn(move || -> Option<Vec<u8>> {
        // SAFETY: setns on a valid fd moves only this thread.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        // SAFETY: a valid NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(iface.as_ptr()) };
        assert_ne!(index, 0, "capture interface");
        let protocol = (libc::ETH_P_IPV6 as u16).to_be();
        // SAFETY: plain socket(2); owned at once.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(protocol)) };
        assert!(raw >= 0, "AF_PACKET socket");
        // SAFETY: a fresh descriptor nobody else owns.
        let sock = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: all-zero sockaddr_ll is valid; bound with its own length.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = protocol;
        sll.sll_ifindex = index as i32;
        let rc = unsafe {
            libc::bind(
                sock.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind AF_PACKET");
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        // SAFETY: a timeval option of its own length.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        ready_tx.send(()).expect("ready");
        let end = Instant::now() + timeout;
        let mut buf = [0u8; 2048];
        while Instant::now() < end {
            // SAFETY: a buffer of the length given.
            let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            let Ok(n) = usize::try_from(n) else { continue };
            let p = &buf[..n];
            // IPv6, next header UDP, destination port 5523, intercom type;
            // or the same inside a DATA packet on the data port (a CLAIM
            // that met a handover route on its way).
            if let Some(inner) = intercom_payload(p, PORT, kind) {
                return Some(inner.to_vec());
            }
            if let Some(data) = intercom_payload(p, DATA_PORT, 5) {
                if let Some(inner) = intercom_payload(&data[24..], PORT, kind) {
                    return Some(inner.to_vec());
                }
            }
        }
        None
    });
    ready_rx.recv().expect("capture ready");
    during();
    capture.join().expect("capture thread")
}

/// The UDP payload of IPv6 packet `p` if it goes to `port` (no extension
/// headers) and carries an intercom packet of `kind`.
fn intercom_payload(p: &[u8], port: u16, kind: u8) -> Option<&[u8]> {
    let udp = (p.len() > 48 + 24 && p[0] >> 4 == 6 && p[6] == 17).then(|| &p[40..])?;
    (u16::from_be_bytes([udp[2], udp[3]]) == port && udp[8 + 2] == kind).then(|| &udp[8..])
}

// ===== the tests =====

/// Serves c1 on n2 (of gw - n1 - n2) and forges a CLAIM for it from the
/// gateway; returns the lab and whether n2's core released the client.
fn forge_claim(auth: Option<&'static str>) -> (Lab, bool) {
    let lab = lab_with(2, &[("c1", "n2")], |_| auth);
    let c1 = lab.client("c1").expect("c1").clone();
    wait_reachable(&lab, c1.address);
    wait_served(&lab, c1.address, "n2");
    let before = counter(&lab, "n2", Daemon::Core, "releases");
    let gw = lab.node(GATEWAY).expect("gw").clone();
    let mac = mac_octets(&c1.mac);
    let plain = claim(gw.address, 0x0bad_0001, mac);
    // The same, with a made-up trailer (a guessed key id, counter and MAC).
    let mut trailer = claim(gw.address, 0x0bad_0002, mac);
    trailer.extend_from_slice(&[0xad, 28, 0x42, 0]);
    trailer.extend_from_slice(&u64::MAX.to_be_bytes());
    trailer.extend_from_slice(&[0x5a; 16]);
    // The forger reaches whoever serves the MAC through its node-client
    // address, as a real claimer does, once babel has spread its route.
    let nca = node_client_addr(&c1.mac);
    wait_babel_route(&lab, GATEWAY, nca);
    send_from(
        &gw.netns.path(),
        Ipv6Addr::UNSPECIFIED,
        nca,
        vec![plain, trailer],
    );
    let released = wait::until("n2 releases c1", WATCH, || {
        let now = counter(&lab, "n2", Daemon::Core, "releases");
        Ok(if now > before {
            Check::Ready(())
        } else {
            Check::Pending(format!("releases {now}"))
        })
    })
    .is_ok();
    (lab, released)
}

#[test]
fn without_auth_a_forged_claim_takes_a_client_over() {
    if !require_root_and_tools() {
        return;
    }
    let (lab, released) = forge_claim(None);
    assert!(
        released,
        "n2 kept the client although nothing protects it\n{}",
        lab.report()
    );
}

#[test]
fn in_require_mode_a_forged_claim_is_refused_and_counted() {
    if !require_root_and_tools() {
        return;
    }
    let (lab, released) = forge_claim(Some("require"));
    assert!(!released, "n2 released c1 to a forger\n{}", lab.report());
    let c1 = lab.client("c1").expect("c1").clone();
    wait_served(&lab, c1.address, "n2");
    let got = |name| counter(&lab, "n2", Daemon::ClientDb, name);
    let (missing, bad, releases) = (got("auth_missing"), got("auth_bad"), got("releases"));
    eprintln!("n2 client-db: auth_missing={missing} auth_bad={bad} releases={releases}");
    assert_eq!((missing, bad, releases), (1, 1, 0));
}

#[test]
fn a_replayed_signed_claim_is_refused() {
    if !require_root_and_tools() {
        return;
    }
    // gw - n1 - n2, c1 on n2, every node in require mode.
    let mut lab = lab_with(2, &[("c1", "n2")], |_| Some("require"));
    let c1 = lab.client("c1").expect("c1").clone();
    wait_reachable(&lab, c1.address);
    wait_served(&lab, c1.address, "n2");
    // c1 roams to n1; n2 sees n1's signed CLAIM on its link to n1 (once n1
    // can route to the node-client address: else nobody gets the CLAIM).
    let n2 = lab.node("n2").expect("n2").clone();
    wait_babel_route(&lab, "n1", node_client_addr(&c1.mac));
    let mut moved = Ok(());
    let captured = capture_intercom(&n2.netns.path(), "m-n1", 1, SETTLE, || {
        moved = lab.move_client("c1", "n1");
    });
    moved.expect("move c1 to n1");
    let captured = captured.unwrap_or_else(|| panic!("no CLAIM captured\n{}", lab.report()));
    assert_eq!(captured.len(), 32 + 28, "a signed CLAIM: {captured:02x?}");
    wait_served(&lab, c1.address, "n1");
    // Back to n2; then the old CLAIM again, from n1's own address.
    lab.move_client("c1", "n2").expect("move c1 back");
    wait_served(&lab, c1.address, "n2");
    let before = counter(&lab, "n2", Daemon::Core, "releases");
    let n1 = lab.node("n1").expect("n1").clone();
    send_from(&n1.netns.path(), n1.address, n2.address, vec![captured]);
    let released = wait::until("n2 releases c1", WATCH, || {
        let now = counter(&lab, "n2", Daemon::Core, "releases");
        Ok(if now > before {
            Check::Ready(())
        } else {
            Check::Pending(format!("releases {now}"))
        })
    });
    assert!(
        released.is_err(),
        "a replayed CLAIM took c1 over\n{}",
        lab.report()
    );
    wait_served(&lab, c1.address, "n2");
    let replayed = counter(&lab, "n2", Daemon::ClientDb, "auth_replayed");
    eprintln!("n2 client-db: auth_replayed={replayed}");
    assert_eq!(replayed, 1);
}

#[test]
fn a_mesh_of_signing_and_plain_nodes_seeks_and_roams() {
    if !require_root_and_tools() {
        return;
    }
    // gw - n1 (off) - n2 (sign) - n3 (sign), a silent client on n3.
    let mut lab = lab_with(3, &[("c1", "n3")], |node| (node != "n1").then_some("sign"));
    let c1 = lab.client("c1").expect("c1").clone();
    // The seek: n1 floods a plain SEEK, n2 re-floods it signed to n3, n3's
    // signed FOUND and DATA reach the plain n1.
    wait_reachable(&lab, c1.address);
    wait_served(&lab, c1.address, "n3");
    // Roams between signing nodes, then to the plain node and back.
    for to in ["n2", "n1", "n3"] {
        // (A claim before the node-client address is routed reaches nobody.)
        wait_babel_route(&lab, to, node_client_addr(&c1.mac));
        lab.move_client("c1", to).expect("move c1");
        wait_served(&lab, c1.address, to);
        wait_reachable(&lab, c1.address);
    }
    let mut problems = Vec::new();
    for node in ["n1", "n2", "n3"] {
        for daemon in [Daemon::NdProxy, Daemon::ClientDb, Daemon::Core] {
            for name in ["auth_missing", "auth_bad", "auth_replayed"] {
                let n = counter(&lab, node, daemon, name);
                if n > 0 {
                    problems.push(format!("{daemon} on {node}: {name}={n}"));
                }
            }
        }
    }
    // n2 heard n1's plain SEEK and its plain CLAIM/ACK of the roam to n1.
    for daemon in [Daemon::NdProxy, Daemon::ClientDb] {
        let unsigned = counter(&lab, "n2", daemon, "auth_unsigned");
        eprintln!("{daemon} on n2 accepted {unsigned} unsigned packets from n1");
        if unsigned == 0 {
            problems.push(format!("{daemon} on n2 counted no unsigned packet from n1"));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        lab.report()
    );
}
