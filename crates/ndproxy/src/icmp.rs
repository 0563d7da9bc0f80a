//! The raw ICMPv6 socket on the client links: neighbour solicitations out,
//! neighbour advertisements in.
//!
//! One socket serves every client interface: solicitations name their
//! interface in the destination's scope and in `IPV6_PKTINFO`, and
//! `IPV6_RECVPKTINFO` tells which interface an advertisement arrived on.
//! An `ICMP6_FILTER` lets only advertisements through, so the socket does
//! not see the rest of the ICMPv6 traffic. `IPV6_RECVHOPLIMIT` lets the
//! state machine drop advertisements that did not originate on the link
//! (hop limit below 255). Opening it needs `CAP_NET_RAW`.

use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};

use l3roamd_net::bpf::{stmt, BPF_K, BPF_RET};
use l3roamd_net::packet::PacketSocket;
use l3roamd_net::PktinfoSocket;
use l3roamd_types::MacAddr;
use socket2::{Domain, Protocol, Socket, Type};

use crate::nd;
use crate::pktinfo::{self, Received};

/// `ICMP6_FILTER` (linux/icmpv6.h `ICMPV6_FILTER`), at level `IPPROTO_ICMPV6`.
const ICMP6_FILTER: libc::c_int = 1;

/// All nodes on the link (RFC 4291 section 2.7.1).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Passes nothing: the solicitation sockets only send.
pub const SEND_ONLY: [libc::sock_filter; 1] = [stmt(BPF_RET | BPF_K, 0)];

/// The packet socket a client link's solicitations go out of as whole
/// frames, so that the kernel takes no neighbour entry for the
/// solicited-node group (one per sought address otherwise, filling the
/// table that babeld needs too). Bound to IPv6 so the frames carry that
/// protocol through bridges; its filter keeps the receive queue empty.
pub fn open_solicit_socket(ifindex: u32) -> io::Result<PacketSocket> {
    PacketSocket::open(
        ifindex,
        libc::ETH_P_IPV6 as u16,
        &SEND_ONLY,
        tokio::io::Interest::WRITABLE,
    )
}

/// Sends the frame of a solicitation for `target` from `source` and `mac`.
pub fn solicit_frame(
    socket: &PacketSocket,
    target: &Ipv6Addr,
    source: &Ipv6Addr,
    mac: &MacAddr,
) -> io::Result<()> {
    let frame = nd::solicitation_frame(target, source, mac);
    let sent = socket.send(&frame)?;
    if sent == frame.len() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "sent {sent} of {} bytes",
            frame.len()
        )))
    }
}

/// The kernel's `struct icmp6_filter`: one bit per ICMPv6 type, set = blocked.
fn pass_only(kind: u8) -> [u32; 8] {
    let mut filter = [u32::MAX; 8];
    if let Some(word) = filter.get_mut(usize::from(kind >> 5)) {
        *word &= !(1u32 << (kind & 31));
    }
    filter
}

/// The ICMPv6 socket of the client links.
#[derive(Debug)]
pub struct IcmpSocket {
    socket: PktinfoSocket<Socket>,
}

impl IcmpSocket {
    /// Opens the raw socket. Must be called inside the tokio runtime.
    pub fn open() -> io::Result<IcmpSocket> {
        let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
        socket.set_nonblocking(true)?;
        pktinfo::set_raw(
            &socket,
            libc::IPPROTO_ICMPV6,
            ICMP6_FILTER,
            &pass_only(nd::NEIGHBOUR_ADVERTISEMENT),
        )?;
        pktinfo::set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
        pktinfo::set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
        let hops = u32::from(nd::ND_HOP_LIMIT);
        socket.set_multicast_hops_v6(hops)?;
        socket.set_unicast_hops_v6(hops)?;
        socket.set_multicast_loop_v6(false)?;
        Ok(IcmpSocket {
            socket: PktinfoSocket::new(socket)?,
        })
    }

    /// Sends a neighbour solicitation for `target` to its solicited-node
    /// address on interface `ifindex`, from `source` (`None`: the kernel
    /// chooses) with `mac` in the source link-layer address option. Only
    /// where no frame can be built (no MAC, no link-local, no packet
    /// socket): this way costs a neighbour entry per group.
    pub fn solicit(
        &self,
        target: &Ipv6Addr,
        ifindex: u32,
        source: Option<Ipv6Addr>,
        mac: Option<&MacAddr>,
    ) -> io::Result<()> {
        let message = nd::encode_solicitation(target, mac);
        let destination = SocketAddrV6::new(nd::solicited_node(target), 0, 0, ifindex);
        self.socket.send(&message, destination, source, ifindex)
    }

    /// Sends the advertisement defending `target` to all nodes on interface
    /// `ifindex`, from `source`, with `mac` as the target link-layer address.
    pub fn defend(
        &self,
        target: &Ipv6Addr,
        ifindex: u32,
        source: Option<Ipv6Addr>,
        mac: Option<&MacAddr>,
    ) -> io::Result<()> {
        let message = nd::encode_defence(target, mac);
        let destination = SocketAddrV6::new(ALL_NODES, 0, 0, ifindex);
        self.socket.send(&message, destination, source, ifindex)
    }

    /// Waits for the next ICMPv6 message the filter lets through.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        self.socket.recv(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_passes_only_advertisements() {
        let filter = pass_only(136);
        for kind in 0..=255u8 {
            let blocked = filter[usize::from(kind >> 5)] & (1 << (kind & 31)) != 0;
            assert_eq!(blocked, kind != 136, "type {kind}");
        }
    }
}
