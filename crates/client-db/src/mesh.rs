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

pub use l3roamd_net::pktinfo::Received;
use l3roamd_net::pktinfo::{recv, send, set_int};
use libc::c_int;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// `IPV6_MULTICAST_ALL` (linux/in6.h), not in every libc binding.
const IPV6_MULTICAST_ALL: c_int = 29;

// ===== the socket =====

/// The intercom socket for unicast CLAIM/INFO/ACK.
#[derive(Debug)]
pub struct IntercomSocket {
    fd: AsyncFd<Socket>,
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
        // SAFETY: a `Socket` owns its file descriptor, which stays open and
        // unchanged until the `AsyncFd` drops it.
        let fd = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }?;
        Ok(IntercomSocket { fd })
    }

    /// Sends `bytes` to `[to]:port` from `source` without waiting: a full
    /// socket buffer is an error like any other.
    pub fn send(&self, bytes: &[u8], to: Ipv6Addr, port: u16, source: Ipv6Addr) -> io::Result<()> {
        let sent = send(
            self.fd.get_ref(),
            bytes,
            SocketAddrV6::new(to, port, 0, 0),
            Some(source),
            0,
        )?;
        if sent == bytes.len() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "datagram cut short",
            ))
        }
    }

    /// Waits for the next datagram.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| recv(fd.get_ref(), buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

// ===== interfaces =====

pub use l3roamd_net::interface_index as index_of;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn loopback_round_trip_with_packet_info() {
        // Plain UDP on ::1 needs no privileges.
        let Ok(rx) = UdpSocket::bind("[::1]:0") else {
            return; // no IPv6 on this machine
        };
        set_int(&rx, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1).unwrap();
        let tx = UdpSocket::bind("[::1]:0").unwrap();
        let std::net::SocketAddr::V6(to) = rx.local_addr().unwrap() else {
            panic!("not IPv6");
        };
        assert_eq!(
            send(&tx, b"hello", to, Some(Ipv6Addr::LOCALHOST), 0).unwrap(),
            5
        );
        let mut buf = [0u8; 3];
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        // MSG_DONTWAIT: wait for the datagram with a blocking peek first.
        rx.peek_from(&mut [0u8; 1]).unwrap();
        let got = recv(&rx, &mut buf).unwrap();
        assert_eq!(&buf, b"hel");
        assert!(got.truncated);
        assert_eq!(got.ifindex, index_of("lo"));
        assert_eq!(got.destination, Some(Ipv6Addr::LOCALHOST));
        assert_eq!(got.source.map(|s| *s.ip()), Some(Ipv6Addr::LOCALHOST));
        assert!(matches!(recv(&rx, &mut buf), Err(e) if e.kind() == io::ErrorKind::WouldBlock));
    }

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
