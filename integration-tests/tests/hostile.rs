//! Hostile input: a neighbour on a mesh link floods a running node's
//! intercom port with malformed packets (unknown segment type, zero-length
//! segment, a segment running past the end, a truncated header, random
//! bytes, random bytes after a valid header), by multicast to the SEEK
//! group and by unicast to the node address. Every daemon stays alive and
//! idle, the drops are counted, and a fresh seek still works.

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use l3roamd_lab::daemons::health_status;
use l3roamd_lab::wait::{self, Check};
use l3roamd_lab::{require_root_and_tools, Daemon, Lab, LabOptions, Launch, GATEWAY};

/// A SEEK captured from the C daemon (crates/intercom/tests/data).
const SEEK_HEX: &str =
    "00ff0000000055d1fdff000000000000000000000000000100140000fddd0001000000000000000000000100";
const PORT: u16 = 5523;
const GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x5523);
/// Packets of each kind, and the pace (2,000 per second).
const EACH: usize = 500;
const GAP: Duration = Duration::from_micros(500);

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The malformed packets: name and bytes (`round` varies the random ones).
fn malformed(round: usize) -> Vec<(&'static str, Vec<u8>)> {
    let seek = unhex(SEEK_HEX);
    let mut r = xorshift(round as u64 + 1);
    let random =
        |n: usize, r: &mut dyn FnMut() -> u64| (0..n).map(|_| r() as u8).collect::<Vec<u8>>();
    let mut unknown = seek.clone();
    unknown[24] = 0x7f;
    let mut zero = seek.clone();
    zero[25] = 0;
    let mut past = seek.clone();
    past[25] = 0xff;
    let mut after_header = seek[..24].to_vec();
    after_header.extend(random(40, &mut r));
    vec![
        ("unknown segment type", unknown),
        ("zero-length segment", zero),
        ("segment past the end", past),
        ("truncated header", seek[..10].to_vec()),
        ("random bytes", random(64, &mut r)),
        ("random after a valid header", after_header),
    ]
}

/// xorshift64 (the lab does not depend on the daemons' crates).
fn xorshift(mut s: u64) -> impl FnMut() -> u64 {
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

fn counter(lab: &Lab, node: &str, daemon: Daemon, name: &str) -> u64 {
    lab.counter(node, daemon, name).expect("status")
}

#[test]
fn a_flood_of_malformed_intercom_packets_hurts_nobody() {
    if !require_root_and_tools() {
        return;
    }
    // gw - n1 - n2, a silent client on n2 that nobody has sought yet.
    let mut lab = Lab::new(LabOptions::chain(2)).expect("build chain");
    lab.add_client("c1", "n2").expect("add c1");
    lab.start_babel().expect("babeld");
    lab.wait_routes_converged(Duration::from_secs(30))
        .expect("babel converges");
    lab.start_all_daemons(Launch::Separate).expect("daemons");
    let n1_address = lab.node("n1").expect("n1").address;
    let cpu_before: Vec<Duration> = Daemon::ALL
        .iter()
        .map(|d| lab.daemon_cpu("n1", *d).expect("cpu"))
        .collect();
    // (client-db counts its drops too, in its own GetStatus.)
    let before = counter(&lab, "n1", Daemon::NdProxy, "mesh_malformed");

    // The flood, from the gateway's namespace, on its link to n1.
    let gw = std::fs::File::open(lab.node(GATEWAY).expect("gw").netns.path()).expect("netns");
    let sent = std::thread::spawn(move || -> usize {
        // SAFETY: setns on a valid fd moves only this thread.
        assert_eq!(
            unsafe { libc::setns(gw.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let ifindex = {
            let name = std::ffi::CString::new("m-n1").expect("name");
            // SAFETY: a valid NUL-terminated string.
            unsafe { libc::if_nametoindex(name.as_ptr()) }
        };
        assert_ne!(ifindex, 0, "gw has m-n1");
        let socket = UdpSocket::bind("[::]:0").expect("bind");
        let group = SocketAddrV6::new(GROUP, PORT, 0, ifindex);
        let unicast = SocketAddrV6::new(n1_address, PORT, 0, 0);
        let mut sent = 0;
        for round in 0..EACH {
            for (_, bytes) in malformed(round) {
                for to in [group, unicast] {
                    if socket.send_to(&bytes, to).is_ok() {
                        sent += 1;
                    }
                }
                std::thread::sleep(GAP);
            }
        }
        sent
    })
    .join()
    .expect("flood");
    eprintln!("sent {sent} malformed intercom packets to n1");
    assert!(sent >= EACH * 6, "the flood went out: {sent}");

    let mut problems = Vec::new();
    for (i, daemon) in Daemon::ALL.iter().enumerate() {
        let socket = lab.node("n1").expect("n1").socket(*daemon);
        match health_status(&socket) {
            Ok(s) if s.contains("SERVING") => {}
            other => problems.push(format!("{daemon} on n1: {other:?}")),
        }
        let used = lab.daemon_cpu("n1", *daemon).expect("cpu") - cpu_before[i];
        eprintln!("{daemon} on n1 used {used:?} of CPU during the flood");
        if used > Duration::from_secs(2) {
            problems.push(format!("{daemon} on n1 used {used:?} of CPU"));
        }
    }
    let after = counter(&lab, "n1", Daemon::NdProxy, "mesh_malformed");
    eprintln!("malformed SEEKs counted by ndproxy: {before} -> {after}");
    if after <= before {
        problems.push("ndproxy counted no malformed SEEK".into());
    }
    // A fresh seek still works: the gateway reaches the silent client.
    let addr = lab.client("c1").expect("c1").address;
    let start = Instant::now();
    let reached = wait::until(
        "c1 reachable from the gateway",
        Duration::from_secs(20),
        || {
            let p = lab.ping(GATEWAY, addr, 1, Duration::from_millis(10))?;
            Ok(if p.received > 0 {
                Check::Ready(())
            } else {
                Check::Pending(p.to_string())
            })
        },
    );
    match reached {
        Ok(()) => eprintln!("fresh seek answered after {:?}", start.elapsed()),
        Err(e) => problems.push(e.to_string()),
    }
    assert!(
        problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        lab.report()
    );
}
