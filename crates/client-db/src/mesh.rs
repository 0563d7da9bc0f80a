//! The intercom unicast socket: CLAIM, INFO and ACK in and out.
//!
//! One UDP socket bound to `[::]:5523` with `SO_REUSEADDR`, so it shares the
//! port with ndproxy's sockets bound to `[ff02::5523%IF]:5523` (which also
//! set it). `IPV6_MULTICAST_ALL` is turned off: by default Linux delivers a
//! multicast datagram to every socket bound to the wildcard address on its
//! port, whether or not that socket joined the group, so without this the
//! SEEKs meant for ndproxy would arrive here too. With it off, and since this
//! socket joins no group, the kernel's UDP lookup gives it the unicast
//! datagrams (to the node address and to node-client addresses) and nothing
//! else, and gives ndproxy's group-bound sockets (which cannot match a
//! unicast destination) the SEEKs and nothing else: each datagram reaches
//! exactly one owner.
//!
//! `IPV6_RECVPKTINFO` tells, for each datagram, the interface it arrived on
//! and the address it was sent to; the state machine refuses what comes from
//! a client interface and, off the mesh interfaces, what is not sent to one
//! of our addresses. Packets are sent with `sendmsg` and an `IPV6_PKTINFO`
//! naming the node address as source (protocol.md: unicast leaves from the
//! node address), from the bound port 5523, routed by the kernel (default
//! hop limit, several hops, as C nodes send them, D7). Neither std nor
//! socket2 reads or writes this ancillary data: `l3roamd_net::pktinfo` does.

use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};

use l3roamd_net::pktinfo::set_int;
pub use l3roamd_net::pktinfo::Received;
use l3roamd_net::PktinfoSocket;
use libc::c_int;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// `IPV6_MULTICAST_ALL` (linux/in6.h), not in every libc binding.
const IPV6_MULTICAST_ALL: c_int = 29;

// ===== the socket =====

/// The intercom socket for unicast CLAIM/INFO/ACK.
#[derive(Debug)]
pub struct IntercomSocket {
    socket: PktinfoSocket<Socket>,
}

impl IntercomSocket {
    /// Binds `[::]:port` as described above. Must be called inside the
    /// tokio runtime.
    pub fn open(port: u16) -> io::Result<IntercomSocket> {
        let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_only_v6(true)?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        set_int(&socket, libc::IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)?;
        set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
        let any = SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0);
        socket.bind(&SockAddr::from(any))?;
        Ok(IntercomSocket {
            socket: PktinfoSocket::new(socket)?,
        })
    }

    /// Sends `bytes` to `[to]:port` from `source` without waiting: a full
    /// socket buffer is an error like any other.
    pub fn send(&self, bytes: &[u8], to: Ipv6Addr, port: u16, source: Ipv6Addr) -> io::Result<()> {
        self.socket
            .send(bytes, SocketAddrV6::new(to, port, 0, 0), Some(source), 0)
    }

    /// Waits for the next datagram.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        self.socket.recv(buf).await
    }
}

// ===== interfaces =====

pub use l3roamd_net::interface_index as index_of;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    // The round trip with packet information is tested in l3roamd-net.

    #[test]
    fn missing_interfaces_are_none() {
        assert_eq!(index_of("no-such-if0"), None);
        assert_eq!(index_of("bad\0name"), None);
        assert!(index_of("lo").is_some());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn socket_opens_beside_another_on_the_same_port() {
        // Two wildcard sockets with SO_REUSEADDR may share an unprivileged
        // port; what matters here is that every option is accepted.
        let Ok(probe) = UdpSocket::bind("[::1]:0") else {
            return;
        };
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let a = IntercomSocket::open(port).unwrap();
        let b = IntercomSocket::open(port).unwrap();
        drop((a, b));
    }
}
