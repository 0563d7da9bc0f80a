//! Snooping neighbour discovery and MLD on client links (AF_PACKET).
//!
//! A client that says nothing after it moved still announces itself on
//! link-up: MLD reports for its solicited-node groups, duplicate address
//! detection, router solicitations. Those frames tell its MAC (the Ethernet
//! source) and often its addresses before any table of the kernel knows it.
//!
//! One packet socket is bound to each attachment point: each port of a
//! client bridge and each client interface that is not a bridge. Not the
//! bridge itself: with multicast snooping on (the default), the bridge
//! hands MLD reports and DAD probes only to the ports that listen, and a
//! socket on the bridge device would miss them; a socket for `ETH_P_ALL`
//! on a port sees every frame that port receives before the bridge does.
//! A classic BPF filter in the kernel keeps only ICMPv6 neighbour
//! discovery and MLD messages (directly after the IPv6 header or after a
//! hop-by-hop header, where MLD's router alert lives) received from the
//! link, plus neighbour advertisements this node sends (to see it defend
//! an address a client tests); everything else never reaches userspace.
//! The sockets follow the link table: a port that appears gets one, a port
//! that goes away loses its own.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use l3roamd_daemon::Shutdown;
use l3roamd_net::bpf::{
    jump, stmt, BPF_ABS, BPF_ADD, BPF_ALU, BPF_B, BPF_H, BPF_IND, BPF_JA, BPF_JEQ, BPF_JMP, BPF_K,
    BPF_LD, BPF_LSH, BPF_MISC, BPF_RET, BPF_TAX, BPF_TXA, BPF_W, LOAD_PKTTYPE, PACKET_OUTGOING,
};
use l3roamd_net::packet::PacketSocket;
use tokio::io::Interest;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::links::Links;
use crate::packet::{
    self, ETHERTYPE_IPV6, ICMPV6_MLDV2_REPORT, ICMPV6_MLD_DONE, ICMPV6_MLD_REPORT,
    ICMPV6_NEIGHBOUR_ADVERTISEMENT, ICMPV6_NEIGHBOUR_SOLICITATION, ICMPV6_ROUTER_SOLICITATION,
    NEXT_HEADER_HOP_BY_HOP, NEXT_HEADER_ICMPV6,
};
use crate::presence::Event;

// ===== the filter =====

/// Bytes of a frame passed to userspace: the headers and an ND target fit.
pub const CAPTURE_LEN: u32 = 256;

/// Offset of the IPv6 next header field in an Ethernet frame.
const AT_NEXT_HEADER: u32 = 14 + 6;
/// Offset of the first byte after the IPv6 header.
const AT_PAYLOAD: u32 = 14 + 40;

/// The program. Jumps count instructions to skip; the labels in the
/// comments are checked by the interpreter in the tests.
#[rustfmt::skip]
pub const FILTER: [libc::sock_filter; 26] = [
    /*  0 */ stmt(BPF_LD | BPF_H | BPF_ABS, 12),                      // EtherType
    /*  1 */ jump(BPF_JMP | BPF_JEQ | BPF_K, ETHERTYPE_IPV6 as u32, 0, 23), // else DROP
    /*  2 */ stmt(BPF_LD | BPF_B | BPF_ABS, AT_NEXT_HEADER),
    /*  3 */ jump(BPF_JMP | BPF_JEQ | BPF_K, NEXT_HEADER_ICMPV6 as u32, 0, 2), // else 6
    /*  4 */ stmt(BPF_LD | BPF_B | BPF_ABS, AT_PAYLOAD),             // ICMPv6 type
    /*  5 */ jump(BPF_JMP | BPF_JA, 8, 0, 0),                          // to TYPE (14)
    /*  6 */ jump(BPF_JMP | BPF_JEQ | BPF_K, NEXT_HEADER_HOP_BY_HOP as u32, 0, 18), // else DROP
    /*  7 */ stmt(BPF_LD | BPF_B | BPF_ABS, AT_PAYLOAD),             // its next header
    /*  8 */ jump(BPF_JMP | BPF_JEQ | BPF_K, NEXT_HEADER_ICMPV6 as u32, 0, 16), // else DROP
    /*  9 */ stmt(BPF_LD | BPF_B | BPF_ABS, AT_PAYLOAD + 1),         // its length - 1, in 8 octets
    /* 10 */ stmt(BPF_ALU | BPF_ADD | BPF_K, 1),
    /* 11 */ stmt(BPF_ALU | BPF_LSH | BPF_K, 3),
    /* 12 */ stmt(BPF_MISC | BPF_TAX, 0),                            // X = its length
    /* 13 */ stmt(BPF_LD | BPF_B | BPF_IND, AT_PAYLOAD),             // ICMPv6 type
    /* TYPE: A = ICMPv6 type */
    /* 14 */ jump(BPF_JMP | BPF_JEQ | BPF_K, ICMPV6_NEIGHBOUR_ADVERTISEMENT as u32, 9, 0), // ACCEPT
    /* 15 */ stmt(BPF_MISC | BPF_TAX, 0),
    /* 16 */ stmt(BPF_LD | BPF_W | BPF_ABS, LOAD_PKTTYPE),
    /* 17 */ jump(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OUTGOING, 7, 0),    // DROP
    /* 18 */ stmt(BPF_MISC | BPF_TXA, 0),
    /* 19 */ jump(BPF_JMP | BPF_JEQ | BPF_K, ICMPV6_MLD_REPORT as u32, 4, 0), // ACCEPT
    /* 20 */ jump(BPF_JMP | BPF_JEQ | BPF_K, ICMPV6_MLD_DONE as u32, 3, 0),
    /* 21 */ jump(BPF_JMP | BPF_JEQ | BPF_K, ICMPV6_ROUTER_SOLICITATION as u32, 2, 0),
    /* 22 */ jump(BPF_JMP | BPF_JEQ | BPF_K, ICMPV6_NEIGHBOUR_SOLICITATION as u32, 1, 0),
    /* 23 */ jump(BPF_JMP | BPF_JEQ | BPF_K, ICMPV6_MLDV2_REPORT as u32, 0, 1),
    /* 24 ACCEPT */ stmt(BPF_RET | BPF_K, CAPTURE_LEN),
    /* 25 DROP */ stmt(BPF_RET | BPF_K, 0),
];

// ===== the socket =====

/// A packet socket bound to one interface, filtered by [`FILTER`].
#[derive(Debug)]
pub struct SnoopSocket {
    socket: PacketSocket,
}

impl SnoopSocket {
    /// Opens the socket on interface `ifindex` (needs CAP_NET_RAW).
    pub fn open(ifindex: u32) -> io::Result<SnoopSocket> {
        let socket =
            PacketSocket::open(ifindex, libc::ETH_P_ALL as u16, &FILTER, Interest::READABLE)?;
        Ok(SnoopSocket { socket })
    }

    /// Receives one frame into `buf`: its captured length and whether this
    /// node sent it.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, bool)> {
        self.socket.recv(buf, 0).await
    }
}

// ===== the adapter =====

/// How often sockets that failed to open, or whose task ended, are retried.
const RETRY: Duration = Duration::from_secs(5);
/// Pause after a receive error, so a persistent one cannot spin the CPU.
const ERROR_PAUSE: Duration = Duration::from_millis(200);

/// Keeps one snoop socket per attachment point of `links` until shutdown.
pub async fn run(
    mut links: watch::Receiver<Links>,
    inputs: mpsc::Sender<Event>,
    shutdown: Shutdown,
) {
    let mut open: BTreeMap<u32, (String, JoinHandle<()>)> = BTreeMap::new();
    loop {
        let points = links.borrow_and_update().snoop_points();
        open.retain(|index, (name, task)| {
            let keep = points.get(index) == Some(name) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (index, name) in points {
            if open.contains_key(&index) {
                continue;
            }
            match SnoopSocket::open(index) {
                Ok(socket) => {
                    tracing::debug!(interface = %name, "snooping neighbour discovery");
                    let task = tokio::spawn(receive(socket, name.clone(), inputs.clone()));
                    open.insert(index, (name, task));
                }
                Err(e) => {
                    tracing::warn!(interface = %name, error = %e, "cannot snoop neighbour discovery; retrying")
                }
            }
        }
        tokio::select! {
            changed = links.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep(RETRY) => {}
            _ = shutdown.requested() => break,
        }
    }
    for (_, (_, task)) in open {
        task.abort();
    }
}

/// Receives frames on one socket and passes the decoded ones on.
async fn receive(socket: SnoopSocket, interface: String, inputs: mpsc::Sender<Event>) {
    let mut buf = [0u8; CAPTURE_LEN as usize];
    loop {
        let (len, outgoing) = match socket.recv(&mut buf).await {
            Ok(received) => received,
            Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => continue,
            Err(e) => {
                tracing::debug!(%interface, error = %e, "snoop receive error");
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        let frame = match packet::decode_frame(buf.get(..len).unwrap_or_default()) {
            Ok(frame) => frame,
            Err(e) => {
                tracing::trace!(%interface, error = %e, "snooped frame ignored");
                continue;
            }
        };
        tracing::trace!(%interface, ?frame, outgoing, "snooped");
        let event = Event::Snooped {
            interface: interface.clone(),
            frame,
            outgoing,
        };
        if inputs.send(event).await.is_err() {
            return;
        }
    }
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::tests::{mldv1_report, mldv2_report, na, ns, rs};

    fn run_filter(program: &[libc::sock_filter], packet: &[u8], pkttype: u32) -> u32 {
        l3roamd_net::bpf::interpret(program, packet, pkttype).unwrap()
    }

    const HOST: u32 = 0;
    const MULTICAST: u32 = 2;

    fn ip(s: &str) -> std::net::Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn the_filter_accepts_nd_and_mld_from_the_link() {
        let frames = [
            ns(ip("::"), ip("ff02::1:ff00:100"), ip("fddd:1::100")),
            ns(ip("fddd:1::100"), ip("ff02::1:ff00:1"), ip("fe80::1")),
            na(ip("fddd:1::100"), ip("fe80::1"), ip("fddd:1::100"), true),
            rs(ip("::")),
            mldv2_report(ip("::"), &[ip("ff02::1:ff00:100")]),
            mldv1_report(ip("fe80::1:2"), ip("ff02::1:ff00:100")),
        ];
        for f in &frames {
            assert_eq!(run_filter(&FILTER, f, MULTICAST), CAPTURE_LEN, "{f:02x?}");
            assert_eq!(run_filter(&FILTER, f, HOST), CAPTURE_LEN);
        }
    }

    #[test]
    fn the_filter_accepts_frames_captured_from_a_linux_client() {
        for (what, h) in crate::packet::tests::CAPTURED {
            let f = crate::packet::tests::hex(h);
            assert_eq!(run_filter(&FILTER, &f, MULTICAST), CAPTURE_LEN, "{what}");
        }
    }

    #[test]
    fn outgoing_frames_pass_only_as_advertisements() {
        let advert = na(ip("fe80::1"), ip("ff02::1"), ip("fddd:1::7"), false);
        assert_eq!(run_filter(&FILTER, &advert, PACKET_OUTGOING), CAPTURE_LEN);
        let report = mldv2_report(ip("fe80::1"), &[ip("ff02::1:ff00:1")]);
        assert_eq!(run_filter(&FILTER, &report, PACKET_OUTGOING), 0);
        let solicit = ns(ip("fe80::1"), ip("ff02::1:ff00:100"), ip("fddd:1::100"));
        assert_eq!(run_filter(&FILTER, &solicit, PACKET_OUTGOING), 0);
    }

    #[test]
    fn the_filter_drops_everything_else() {
        let mut ipv4 = rs(ip("::"));
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(run_filter(&FILTER, &ipv4, HOST), 0);
        let mut udp = rs(ip("::"));
        udp[20] = 17;
        assert_eq!(run_filter(&FILTER, &udp, HOST), 0);
        let mut echo = rs(ip("::"));
        echo[54] = 128;
        assert_eq!(run_filter(&FILTER, &echo, HOST), 0);
        // Hop-by-hop followed by something else than ICMPv6.
        let mut hbh_udp = mldv2_report(ip("::"), &[]);
        hbh_udp[54] = 17;
        assert_eq!(run_filter(&FILTER, &hbh_udp, HOST), 0);
        // A router advertisement (a rogue router is not snooped).
        let mut ra = rs(ip("fe80::9"));
        ra[54] = 134;
        assert_eq!(run_filter(&FILTER, &ra, HOST), 0);
        // Frames too short for the fields read are dropped, not read past.
        for len in 0..60 {
            let f = mldv2_report(ip("::"), &[]);
            let _ = run_filter(&FILTER, &f[..len.min(f.len())], HOST);
        }
        let f = mldv2_report(ip("::"), &[]);
        assert_eq!(run_filter(&FILTER, &f[..56], HOST), 0);
    }

    #[test]
    fn every_jump_stays_inside_the_program() {
        for (pc, i) in FILTER.iter().enumerate() {
            let class = i.code & 0x07;
            if class == BPF_JMP {
                let targets = if i.code == BPF_JMP | BPF_JA {
                    vec![pc + 1 + i.k as usize]
                } else {
                    vec![pc + 1 + usize::from(i.jt), pc + 1 + usize::from(i.jf)]
                };
                assert!(
                    targets.iter().all(|t| *t < FILTER.len()),
                    "instruction {pc}"
                );
            }
        }
        assert_eq!(FILTER.last().map(|i| i.code), Some(BPF_RET | BPF_K));
    }
}
