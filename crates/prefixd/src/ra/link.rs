//! The packet socket of one client link: router solicitations in, router
//! advertisements out, as whole Ethernet frames (AF_PACKET).
//!
//! A packet socket, not a raw ICMPv6 one, because the advertisements must
//! come from the shared next-node router: IPv6 source `mesh.next_node_address`
//! and Ethernet source `mesh.next_node_mac`, the same on every node, so a
//! roaming client sees one router everywhere. The kernel would put this
//! node's own MAC on the frame.
//!
//! The socket is bound to one interface (the client bridge, or a client
//! interface that is not bridged) for `ETH_P_IPV6`. It joins the
//! all-routers group's MAC 33:33:00:00:00:02 (`PACKET_ADD_MEMBERSHIP`), so
//! the interface's receive filter passes solicitations even when nothing
//! else joined ff02::2 there. A bridge with multicast snooping decides on
//! its own what reaches the bridge device: without a querier it floods
//! ff02::2 (checked in a namespace, forwarding on and off); behind an
//! active querier it relies on the host's MLD membership, which IPv6
//! forwarding on the bridge provides (Linux joins all-routers then). A
//! classic BPF filter passes only ICMPv6 router solicitations directly after
//! the IPv6 header, and none this node sent, so the kernel does not wake us
//! for the rest of the client traffic.
//!
//! Errors are plain `io::Error`s. An interface that does not exist yet gives
//! `NotFound` at [`ClientLink::open`]. One that goes down makes the next
//! receive fail once with `ENETDOWN` (the socket works again after it comes
//! back up); one that is deleted gives `ENETDOWN` on receive and `ENXIO` on
//! send, and the socket stays deaf for good even if an interface of the same
//! name appears. So on any error [`is_link_gone`] accepts, the caller drops
//! the link and reopens it by name with backoff.

use l3roamd_net::bpf::{
    jump, stmt, BPF_ABS, BPF_B, BPF_H, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W,
    LOAD_PKTTYPE, PACKET_OUTGOING,
};
use l3roamd_net::packet::PacketSocket;
use l3roamd_types::MacAddr;
use std::ffi::CString;
use std::io;
use tokio::io::Interest;

use super::packet::{
    self, DecodeError, Solicitation, ETHERNET_HEADER, ETHERTYPE_IPV6, NEXT_HEADER_ICMPV6,
    ROUTER_SOLICITATION,
};

// ===== the filter =====

/// Bytes of a frame passed to userspace: a whole solicitation, options and
/// all, on any Ethernet link (the checksum covers every byte).
pub const CAPTURE_LEN: u32 = 2048;

/// Offset of the IPv6 next header field in an Ethernet frame.
const AT_NEXT_HEADER: u32 = ETHERNET_HEADER as u32 + 6;
/// Offset of the ICMPv6 type when it follows the IPv6 header directly.
const AT_ICMP_TYPE: u32 = ETHERNET_HEADER as u32 + 40;

/// The program. Jumps count instructions to skip; the tests run it in an
/// interpreter.
#[rustfmt::skip]
pub const FILTER: [libc::sock_filter; 10] = [
    /* 0 */ stmt(BPF_LD | BPF_H | BPF_ABS, 12),                               // EtherType
    /* 1 */ jump(BPF_JMP | BPF_JEQ | BPF_K, ETHERTYPE_IPV6 as u32, 0, 7),      // else DROP
    /* 2 */ stmt(BPF_LD | BPF_B | BPF_ABS, AT_NEXT_HEADER),
    /* 3 */ jump(BPF_JMP | BPF_JEQ | BPF_K, NEXT_HEADER_ICMPV6 as u32, 0, 5),  // else DROP
    /* 4 */ stmt(BPF_LD | BPF_B | BPF_ABS, AT_ICMP_TYPE),
    /* 5 */ jump(BPF_JMP | BPF_JEQ | BPF_K, ROUTER_SOLICITATION as u32, 0, 3), // else DROP
    /* 6 */ stmt(BPF_LD | BPF_W | BPF_ABS, LOAD_PKTTYPE),
    /* 7 */ jump(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OUTGOING, 1, 0),            // DROP
    /* 8 ACCEPT */ stmt(BPF_RET | BPF_K, CAPTURE_LEN),
    /* 9 DROP */ stmt(BPF_RET | BPF_K, 0),
];

/// The all-routers group's MAC (RFC 2464 §7), joined so solicitations pass
/// the interface's receive filter.
const ALL_ROUTERS_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 2];

// ===== the socket =====

/// Readable, and also the socket error the kernel sets when the interface
/// goes down or away (`ENETDOWN`): epoll reports it as an error event only,
/// and waiting for readability alone would never see the link go.
const WAKE_ON: Interest = Interest::READABLE.add(Interest::ERROR);

/// A packet socket on one client interface, filtered by [`FILTER`].
#[derive(Debug)]
pub struct ClientLink {
    socket: PacketSocket,
    name: String,
    index: u32,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Whether `err` says the interface went down or away, so the link should
/// be reopened (with backoff) rather than retried as it is.
pub fn is_link_gone(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ENETDOWN | libc::ENODEV | libc::ENXIO)
    ) || err.kind() == io::ErrorKind::NotFound
}

impl ClientLink {
    /// Opens the socket on interface `name` (needs CAP_NET_RAW).
    pub fn open(name: &str) -> io::Result<ClientLink> {
        let index = l3roamd_net::interface_index(name).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("client interface {name} does not exist"),
            )
        })?;
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{name}: {e}"));
        Self::open_index(name, index).map_err(named)
    }

    fn open_index(name: &str, index: u32) -> io::Result<ClientLink> {
        let socket = PacketSocket::open(index, ETHERTYPE_IPV6, &FILTER, WAKE_ON)?;
        socket.join(index, ALL_ROUTERS_MAC)?;
        Ok(ClientLink {
            socket,
            name: name.to_string(),
            index,
        })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The interface's own MAC (SIOCGIFHWADDR), the Ethernet source of
    /// advertisements when no `mesh.next_node_mac` is configured. Fails with
    /// `InvalidData` for an interface without an Ethernet address.
    pub fn hardware_address(&self) -> io::Result<MacAddr> {
        let name = CString::new(self.name.as_str())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let bytes = name.as_bytes_with_nul();
        // SAFETY: ifreq is plain data; all-zero is a valid value.
        let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
        if bytes.len() > request.ifr_name.len() {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        for (to, from) in request.ifr_name.iter_mut().zip(bytes) {
            *to = *from as libc::c_char;
        }
        // SAFETY: SIOCGIFHWADDR reads the name from and writes the address
        // into `request`, a valid ifreq.
        check(unsafe {
            libc::ioctl(
                self.socket.raw_fd(),
                // Ioctl: c_ulong with glibc, c_int with musl (the router build).
                libc::SIOCGIFHWADDR as libc::Ioctl,
                &mut request as *mut libc::ifreq,
            )
        })?;
        // SAFETY: after SIOCGIFHWADDR succeeded the union holds a sockaddr.
        let hwaddr = unsafe { request.ifr_ifru.ifru_hwaddr };
        if hwaddr.sa_family != libc::ARPHRD_ETHER {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} has no Ethernet address", self.name),
            ));
        }
        let mut mac = [0u8; 6];
        for (to, from) in mac.iter_mut().zip(hwaddr.sa_data.iter()) {
            *to = *from as u8;
        }
        Ok(MacAddr(mac))
    }

    /// Receives the next router solicitation: an I/O error for the socket,
    /// or the frame's verdict (a [`DecodeError`] to count as a drop).
    /// Frames this node sent are skipped (the filter drops them already).
    pub async fn recv_solicitation(&self) -> io::Result<Result<Solicitation, DecodeError>> {
        let mut buf = [0u8; CAPTURE_LEN as usize];
        loop {
            let (len, outgoing) = self.recv(&mut buf).await?;
            if outgoing {
                continue;
            }
            // A frame longer than the buffer is reported at its full length
            // (MSG_TRUNC); the decoder then sees the payload cut short.
            let frame = buf.get(..len.min(buf.len())).unwrap_or_default();
            return Ok(packet::decode_solicitation_frame(frame));
        }
    }

    /// One frame into `buf`: its length on the wire and whether this host
    /// sent it.
    async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, bool)> {
        self.socket.recv(buf, libc::MSG_TRUNC).await
    }

    /// Sends one whole Ethernet frame out of the interface. Never blocks: a
    /// full send buffer is a `WouldBlock` error (an advertisement is
    /// repeated anyway).
    pub fn send_frame(&self, frame: &[u8]) -> io::Result<()> {
        let n = self.socket.send(frame)?;
        if n != frame.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("{}: sent {n} of {} bytes", self.name, frame.len()),
            ));
        }
        Ok(())
    }
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ra::packet::{frame, multicast_mac, ALL_ROUTERS};
    use std::net::Ipv6Addr;

    fn run_filter(program: &[libc::sock_filter], packet: &[u8], pkttype: u32) -> u32 {
        l3roamd_net::bpf::interpret(program, packet, pkttype).unwrap()
    }

    const HOST: u32 = 0;
    const MULTICAST: u32 = 2;
    const CLIENT: MacAddr = MacAddr([0x02, 0xc1, 0, 0, 0, 1]);

    fn icmp_frame(src: &str, kind: u8) -> Vec<u8> {
        let src: Ipv6Addr = src.parse().unwrap();
        frame(
            CLIENT,
            multicast_mac(&ALL_ROUTERS),
            src,
            ALL_ROUTERS,
            &[kind, 0, 0, 0, 0, 0, 0, 0],
        )
    }

    #[test]
    fn the_filter_accepts_solicitations_from_the_link() {
        for src in ["::", "fe80::c1:ff:fe00:1"] {
            let rs = icmp_frame(src, ROUTER_SOLICITATION);
            assert_eq!(run_filter(&FILTER, &rs, MULTICAST), CAPTURE_LEN);
            assert_eq!(run_filter(&FILTER, &rs, HOST), CAPTURE_LEN);
        }
    }

    #[test]
    fn the_filter_drops_everything_else() {
        let rs = icmp_frame("fe80::2", ROUTER_SOLICITATION);
        // Our own (or any outgoing) frames.
        assert_eq!(run_filter(&FILTER, &rs, PACKET_OUTGOING), 0);
        // Other ICMPv6: advertisements, neighbour discovery, echo.
        for kind in [134, 135, 136, 128] {
            assert_eq!(
                run_filter(&FILTER, &icmp_frame("fe80::2", kind), HOST),
                0,
                "{kind}"
            );
        }
        // Not IPv6; not ICMPv6 (UDP); ICMPv6 behind a hop-by-hop header.
        let mut ipv4 = rs.clone();
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(run_filter(&FILTER, &ipv4, HOST), 0);
        let mut udp = rs.clone();
        udp[20] = 17;
        assert_eq!(run_filter(&FILTER, &udp, HOST), 0);
        let mut hop_by_hop = rs.clone();
        hop_by_hop[20] = 0;
        assert_eq!(run_filter(&FILTER, &hop_by_hop, HOST), 0);
        // Too short to hold the ICMPv6 type.
        assert_eq!(run_filter(&FILTER, &rs[..54], HOST), 0);
        assert_eq!(run_filter(&FILTER, &[], HOST), 0);
    }

    #[test]
    fn every_jump_of_the_filter_stays_inside_it() {
        for (at, i) in FILTER.iter().enumerate() {
            if i.code == BPF_JMP | BPF_JEQ | BPF_K {
                assert!(at + 1 + usize::from(i.jt.max(i.jf)) < FILTER.len(), "{at}");
            }
        }
        assert_eq!(FILTER.last().unwrap().code, BPF_RET | BPF_K);
        assert_eq!(FILTER.last().unwrap().k, 0);
    }

    #[test]
    fn a_missing_interface_is_a_clear_not_found() {
        let err = ClientLink::open("no-such-if0").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("no-such-if0"), "{err}");
        assert!(is_link_gone(&err));
        assert!(is_link_gone(&io::Error::from_raw_os_error(libc::ENETDOWN)));
        assert!(!is_link_gone(&io::Error::from_raw_os_error(libc::EAGAIN)));
    }
}
