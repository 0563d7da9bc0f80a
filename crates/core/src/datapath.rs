//! The data path between cores: FOUND notices and encapsulated packets
//! (DATA), on a UDP port of its own (`mesh.data_port`, 5524 by default) that
//! old C nodes never see. Packets use the intercom header (protocol.md,
//! "Extensions"; layouts in the `l3roamd-intercom` crate docs).
//!
//! Only datagrams that arrive on a mesh interface are accepted: a client
//! must not be able to inject packets or FOUND notices. The mesh interfaces
//! may change at runtime (`crate::meshifs`); the check follows at once.

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::{Duration, Instant};

use l3roamd_intercom::{DecodeError, Packet};
use l3roamd_net::interface_name;
use l3roamd_net::pktinfo;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// Largest datagram read: a full-size IPv6 packet plus our header, with room.
const MAX_DATAGRAM: usize = 65_535;
/// How long an interface index → "is a mesh interface" answer is trusted.
const IFINDEX_CACHE: Duration = Duration::from_secs(10);

/// What arrived on the data path.
#[derive(Debug)]
pub enum Received {
    /// A well-formed packet from a mesh interface.
    Packet {
        /// The IPv6 source of the datagram.
        from: Ipv6Addr,
        /// The decoded packet.
        packet: Packet,
    },
    /// A datagram from an interface that is not a mesh interface.
    Foreign,
    /// A datagram that does not decode.
    Malformed(DecodeError),
    /// A datagram larger than any we send.
    Truncated,
}

/// The data-path socket.
#[derive(Debug)]
pub struct DataPath {
    socket: UdpSocket,
    port: u16,
    mesh_interfaces: watch::Receiver<Vec<String>>,
    ifindex_cache: HashMap<u32, (bool, Instant)>,
    buf: Vec<u8>,
}

impl DataPath {
    /// Binds `[::]:port` and asks for the arrival interface of each datagram.
    pub fn bind(
        port: u16,
        mesh_interfaces: watch::Receiver<Vec<String>>,
    ) -> std::io::Result<DataPath> {
        let std_socket =
            std::net::UdpSocket::bind(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0))?;
        std_socket.set_nonblocking(true)?;
        pktinfo::set_int(&std_socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
        Ok(DataPath {
            socket: UdpSocket::from_std(std_socket)?,
            port,
            mesh_interfaces,
            ifindex_cache: HashMap::new(),
            buf: vec![0; MAX_DATAGRAM],
        })
    }

    /// Sends `packet` to `node` on the data port.
    pub async fn send(&self, node: Ipv6Addr, packet: &Packet) -> std::io::Result<()> {
        let bytes = packet.encode();
        self.socket
            .send_to(&bytes, SocketAddrV6::new(node, self.port, 0, 0))
            .await
            .map(|_| ())
    }

    /// Waits for the next datagram.
    pub async fn recv(&mut self) -> std::io::Result<Received> {
        let socket = &self.socket;
        let buf = &mut self.buf;
        let got = socket
            .async_io(Interest::READABLE, || pktinfo::recv(socket, buf))
            .await?;
        if !got.ifindex.is_some_and(|i| self.is_mesh_interface(i)) {
            return Ok(Received::Foreign);
        }
        let from = got.source.map(|s| *s.ip()).unwrap_or(Ipv6Addr::UNSPECIFIED);
        // A datagram cut short by the buffer is not one of ours.
        let bytes = if got.truncated {
            None
        } else {
            self.buf.get(..got.len)
        };
        Ok(match bytes.map(Packet::decode) {
            Some(Ok(packet)) => Received::Packet { from, packet },
            Some(Err(e)) => Received::Malformed(e),
            None => Received::Truncated,
        })
    }

    fn is_mesh_interface(&mut self, ifindex: u32) -> bool {
        if self.mesh_interfaces.has_changed().unwrap_or(false) {
            // Answers for the old list are void, positive and negative.
            self.mesh_interfaces.mark_unchanged();
            self.ifindex_cache.clear();
        }
        let now = Instant::now();
        if let Some((answer, at)) = self.ifindex_cache.get(&ifindex) {
            if now.duration_since(*at) < IFINDEX_CACHE {
                return *answer;
            }
        }
        let answer =
            interface_name(ifindex).is_some_and(|n| self.mesh_interfaces.borrow().contains(&n));
        if self.ifindex_cache.len() > 1024 {
            self.ifindex_cache.clear();
        }
        self.ifindex_cache.insert(ifindex, (answer, now));
        answer
    }
}
