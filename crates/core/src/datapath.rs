//! The data path between cores: FOUND notices and encapsulated packets
//! (DATA), on a UDP port of its own (`mesh.data_port`, 5524 by default) that
//! old C nodes never see. Packets use the intercom header (protocol.md,
//! "Extensions"; layouts in the `l3roamd-intercom` crate docs).
//!
//! Only datagrams that arrive on a configured mesh interface are accepted:
//! a client must not be able to inject packets or FOUND notices.

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use l3roamd_intercom::{DecodeError, Packet};
use tokio::io::Interest;
use tokio::net::UdpSocket;

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
}

/// The data-path socket.
#[derive(Debug)]
pub struct DataPath {
    socket: UdpSocket,
    port: u16,
    mesh_interfaces: Vec<String>,
    ifindex_cache: HashMap<u32, (bool, Instant)>,
    buf: Vec<u8>,
}

impl DataPath {
    /// Binds `[::]:port` and asks for the arrival interface of each datagram.
    pub fn bind(port: u16, mesh_interfaces: Vec<String>) -> std::io::Result<DataPath> {
        let std_socket =
            std::net::UdpSocket::bind(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0))?;
        std_socket.set_nonblocking(true)?;
        set_int_option(&std_socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
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
        let fd = self.socket.as_raw_fd();
        let buf = &mut self.buf;
        let (len, from, ifindex) = self
            .socket
            .async_io(Interest::READABLE, || recv_with_ifindex(fd, buf))
            .await?;
        if !self.is_mesh_interface(ifindex) {
            return Ok(Received::Foreign);
        }
        let Some(bytes) = self.buf.get(..len) else {
            return Ok(Received::Foreign);
        };
        Ok(match Packet::decode(bytes) {
            Ok(packet) => Received::Packet { from, packet },
            Err(e) => Received::Malformed(e),
        })
    }

    fn is_mesh_interface(&mut self, ifindex: u32) -> bool {
        let now = Instant::now();
        if let Some((answer, at)) = self.ifindex_cache.get(&ifindex) {
            if now.duration_since(*at) < IFINDEX_CACHE {
                return *answer;
            }
        }
        let answer = interface_name(ifindex).is_some_and(|n| self.mesh_interfaces.contains(&n));
        if self.ifindex_cache.len() > 1024 {
            self.ifindex_cache.clear();
        }
        self.ifindex_cache.insert(ifindex, (answer, now));
        answer
    }
}

/// The name of interface `index`, if it exists.
pub fn interface_name(index: u32) -> Option<String> {
    let mut name = [0u8; libc::IF_NAMESIZE];
    // SAFETY: the buffer has IF_NAMESIZE bytes as if_indextoname requires.
    let ptr = unsafe { libc::if_indextoname(index, name.as_mut_ptr().cast()) };
    if ptr.is_null() {
        return None;
    }
    let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
    String::from_utf8(name.get(..end)?.to_vec()).ok()
}

/// The index of interface `name`, if it exists.
pub fn interface_index(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

fn set_int_option(
    socket: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> std::io::Result<()> {
    // SAFETY: an int option with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// recvmsg(2) returning the length, the source address and the arrival
/// interface (from IPV6_PKTINFO).
fn recv_with_ifindex(fd: i32, buf: &mut [u8]) -> std::io::Result<(usize, Ipv6Addr, u32)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: plain data, zeroed is valid.
    let mut from: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut control = [0u64; 16]; // aligned room for an in6_pktinfo cmsg
                                  // SAFETY: plain data, zeroed is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_in6).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: every pointer in msg points into live buffers of the given sizes.
    let len = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if len < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut ifindex = 0;
    // SAFETY: walking the control buffer the kernel filled, with the libc macros.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::IPPROTO_IPV6 && (*cmsg).cmsg_type == libc::IPV6_PKTINFO {
                let info: libc::in6_pktinfo =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                ifindex = info.ipi6_ifindex;
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    // A truncated datagram is not one we sent: treat it as malformed upstream.
    let len = if msg.msg_flags & libc::MSG_TRUNC != 0 {
        0
    } else {
        len as usize
    };
    Ok((len, Ipv6Addr::from(from.sin6_addr.s6_addr), ifindex))
}
