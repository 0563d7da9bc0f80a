//! The intercom multicast socket of one mesh interface: SEEKs in and out.
//!
//! One UDP socket per mesh interface, bound to `[ff02::5523%IF]:5523` with
//! `SO_REUSEADDR`. Binding to the group address means the socket matches
//! only datagrams sent to the group, so the unicast CLAIM/INFO/ACK on the
//! same port go to client-db's `[::]:5523` socket and never here. A
//! link-local multicast address cannot be bound without an interface, hence
//! one socket per interface; the kernel then also delivers to it only what
//! arrived on that interface (the arrival interface is still checked with
//! `IPV6_RECVPKTINFO`). The same socket sends: source port 5523 from the
//! bind, source address (the node address) and interface with
//! `IPV6_PKTINFO`, hop limit 1, no loopback of our own packets.

use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};

use l3roamd_net::PktinfoSocket;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::pktinfo::{self, Received};

/// The intercom socket of one mesh interface.
#[derive(Debug)]
pub struct MeshSocket {
    socket: PktinfoSocket<Socket>,
    ifindex: u32,
    group: SocketAddrV6,
}

impl MeshSocket {
    /// Binds `[group%ifindex]:port`, joins `group` on `ifindex` and sets the
    /// options for sending SEEKs. Must be called inside the tokio runtime.
    pub fn open(group: Ipv6Addr, port: u16, ifindex: u32) -> io::Result<MeshSocket> {
        let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_only_v6(true)?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        let group = SocketAddrV6::new(group, port, 0, ifindex);
        socket.bind(&SockAddr::from(group))?;
        socket.join_multicast_v6(group.ip(), ifindex)?;
        socket.set_multicast_if_v6(ifindex)?;
        socket.set_multicast_hops_v6(1)?;
        socket.set_multicast_loop_v6(false)?;
        pktinfo::set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
        Ok(MeshSocket {
            socket: PktinfoSocket::new(socket)?,
            ifindex,
            group,
        })
    }

    /// The interface this socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Multicasts `bytes` to the group on this interface from `source`.
    pub fn send(&self, bytes: &[u8], source: Ipv6Addr) -> io::Result<()> {
        self.socket
            .send(bytes, self.group, Some(source), self.ifindex)
    }

    /// Waits for the next datagram.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        self.socket.recv(buf).await
    }
}
