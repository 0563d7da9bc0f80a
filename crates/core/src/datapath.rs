//! The data path between cores: FOUND notices and encapsulated packets
//! (DATA), on a UDP port of its own (`mesh.data_port`, 5524 by default) that
//! old C nodes never see. Packets use the intercom header (protocol.md,
//! "Extensions"; layouts in the `l3roamd-intercom` crate docs).
//!
//! Only datagrams that arrive on a mesh interface are accepted: a client
//! must not be able to inject packets or FOUND notices. The mesh interfaces
//! may change at runtime (`crate::meshifs`); the check follows at once. With
//! `mesh.intercom_auth` on, every datagram is sealed on send (and then sent
//! from the node address, the source the trailer's MAC covers) and opened on
//! receipt; a mesh interface alone no longer vouches for the sender.

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use l3roamd_intercom::{AuthError, AuthMode, Authenticator, DecodeError, Packet};
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
        /// It carried no trailer and was accepted in sign mode.
        unsigned: bool,
    },
    /// A datagram the authentication refused.
    Refused(AuthError),
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
    /// Locked only around a seal or an open, never across an await; a
    /// mutex because sending takes `&self` (`kernel::DataLink`).
    auth: Mutex<Authenticator>,
    node: Ipv6Addr,
}

impl DataPath {
    /// Binds `[::]:port` and asks for the arrival interface of each datagram;
    /// `auth` seals what is sent from `node` and opens what arrives.
    pub fn bind(
        port: u16,
        mesh_interfaces: watch::Receiver<Vec<String>>,
        auth: Authenticator,
        node: Ipv6Addr,
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
            auth: Mutex::new(auth),
            node,
        })
    }

    /// Sends `packet` to `node` on the data port.
    pub async fn send(&self, node: Ipv6Addr, packet: &Packet) -> std::io::Result<()> {
        let mut bytes = packet.encode();
        let to = SocketAddrV6::new(node, self.port, 0, 0);
        let source = self.node;
        let signed = {
            let mut auth = self.auth();
            auth.seal(&mut bytes, source);
            auth.mode() != AuthMode::Off
        };
        if !signed {
            return self.socket.send_to(&bytes, to).await.map(|_| ());
        }
        // Signed: from the node address, which the MAC covers (the kernel's
        // own choice of source might be a mesh interface's address).
        let socket = &self.socket;
        socket
            .async_io(Interest::WRITABLE, || {
                pktinfo::send(socket, &bytes, to, Some(source), 0)
            })
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
        let now = Instant::now();
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
        let Some(bytes) = bytes else {
            return Ok(Received::Truncated);
        };
        let mut auth = self.auth();
        let opened = match auth.open(bytes, from, now) {
            Ok(opened) => opened,
            Err(e) => return Ok(Received::Refused(e)),
        };
        let unsigned = !opened.verified && auth.mode() == AuthMode::Sign;
        drop(auth);
        Ok(match Packet::decode(opened.bytes) {
            Ok(packet) => Received::Packet {
                from,
                packet,
                unsigned,
            },
            Err(e) => Received::Malformed(e),
        })
    }

    fn auth(&self) -> std::sync::MutexGuard<'_, Authenticator> {
        // A panic while sealing cannot leave the counter inconsistent.
        self.auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
