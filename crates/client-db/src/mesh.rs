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
//! socket2 reads or writes this ancillary data, hence the `CMSG_*` code below
//! (the same as ndproxy's `pktinfo.rs`; it belongs in a shared crate).

use std::ffi::CString;
use std::io;
use std::mem::{size_of, size_of_val};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::ptr;

use libc::{c_int, c_void};
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

/// The index of interface `name`, if it exists.
pub fn index_of(name: &str) -> Option<u32> {
    let c_name = CString::new(name).ok()?;
    // SAFETY: `c_name` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    (index != 0).then_some(index)
}

// ===== socket options =====

/// Sets an integer socket option.
fn set_int(fd: &impl AsRawFd, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<c_int>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `value` points to `len` readable bytes for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            ptr::from_ref(&value).cast::<c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

// ===== receiving =====

/// What the kernel said about a received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes written to the buffer.
    pub len: usize,
    /// The datagram was longer than the buffer and was cut.
    pub truncated: bool,
    /// Where it came from.
    pub source: Option<SocketAddrV6>,
    /// The interface it arrived on (`IPV6_PKTINFO`).
    pub ifindex: Option<u32>,
    /// The address it was sent to (`IPV6_PKTINFO`).
    pub destination: Option<Ipv6Addr>,
}

/// Room for a packet-info message, 8-byte aligned.
type ControlBuffer = [u64; 16];

/// Receives one datagram into `buf` without blocking (`WouldBlock` when none
/// is queued).
fn recv(fd: &impl AsRawFd, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: all-zero is a valid sockaddr_in6 and msghdr.
    let mut name: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut control: ControlBuffer = [0; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast::<c_void>(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = ptr::from_mut(&mut name).cast::<c_void>();
    msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast::<c_void>();
    // size_t on glibc, socklen_t on musl.
    msg.msg_controllen = size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` refers to a live buffer of the stated length.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    let len = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;

    let mut received = Received {
        len: len.min(buf.len()),
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        source: None,
        ifindex: None,
        destination: None,
    };
    if msg.msg_namelen as usize >= size_of::<libc::sockaddr_in6>()
        && c_int::from(name.sin6_family) == libc::AF_INET6
    {
        received.source = Some(SocketAddrV6::new(
            Ipv6Addr::from(name.sin6_addr.s6_addr),
            u16::from_be(name.sin6_port),
            name.sin6_flowinfo,
            name.sin6_scope_id,
        ));
    }
    // SAFETY: `msg` was filled by recvmsg; the CMSG macros stay within
    // msg_controllen, and the payload is read only when cmsg_len covers it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let header = &*cmsg;
            if header.cmsg_level == libc::IPPROTO_IPV6
                && header.cmsg_type == libc::IPV6_PKTINFO
                && header.cmsg_len as usize >= cmsg_len::<libc::in6_pktinfo>()
            {
                let info = ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in6_pktinfo>());
                received.ifindex = Some(info.ipi6_ifindex);
                received.destination = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(received)
}

/// `CMSG_LEN` of a `T`.
fn cmsg_len<T>() -> usize {
    // SAFETY: CMSG_LEN only computes a length.
    unsafe { libc::CMSG_LEN(size_of::<T>() as libc::c_uint) as usize }
}

// ===== sending =====

/// Sends `buf` to `destination` without blocking, from `source` (`None`:
/// the kernel chooses) out of interface `ifindex` (0: routed), both given
/// with `IPV6_PKTINFO`. The kernel refuses a source that is not one of this
/// host's addresses.
fn send(
    fd: &impl AsRawFd,
    buf: &[u8],
    destination: SocketAddrV6,
    source: Option<Ipv6Addr>,
    ifindex: u32,
) -> io::Result<usize> {
    // SAFETY: all-zero is a valid sockaddr_in6 and msghdr.
    let mut name: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    name.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    name.sin6_port = destination.port().to_be();
    name.sin6_addr.s6_addr = destination.ip().octets();
    name.sin6_scope_id = destination.scope_id();
    let mut control: ControlBuffer = [0; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr().cast_mut().cast::<c_void>(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = ptr::from_mut(&mut name).cast::<c_void>();
    msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast::<c_void>();
    // SAFETY: CMSG_SPACE only computes a length (40 bytes, within the buffer).
    let space = unsafe { libc::CMSG_SPACE(size_of::<libc::in6_pktinfo>() as libc::c_uint) };
    msg.msg_controllen = space as _;
    let info = libc::in6_pktinfo {
        ipi6_addr: libc::in6_addr {
            s6_addr: source.unwrap_or(Ipv6Addr::UNSPECIFIED).octets(),
        },
        ipi6_ifindex: ifindex,
    };
    // SAFETY: msg_controllen leaves room for one header and an in6_pktinfo,
    // so CMSG_FIRSTHDR is not null and CMSG_DATA points into `control`; the
    // kernel only reads `buf`.
    let n = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        (*cmsg).cmsg_level = libc::IPPROTO_IPV6;
        (*cmsg).cmsg_type = libc::IPV6_PKTINFO;
        (*cmsg).cmsg_len = cmsg_len::<libc::in6_pktinfo>() as _;
        ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in6_pktinfo>(), info);
        libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT)
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

// ===== tests =====

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
