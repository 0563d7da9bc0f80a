//! IPv6 datagrams with their packet information: the interface a datagram
//! arrived on and its hop limit (`IPV6_RECVPKTINFO`, `IPV6_RECVHOPLIMIT`),
//! and the source address and interface to send one from (`IPV6_PKTINFO`).
//!
//! Neither std nor socket2 reads or writes this ancillary data, so this is
//! the one module with `recvmsg`/`sendmsg` and the `CMSG_*` macros. Both
//! calls are non-blocking (`MSG_DONTWAIT`); the event loop waits for
//! readiness with tokio's `AsyncFd`.

use std::io;
use std::mem::{size_of, size_of_val};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::ptr;

use libc::{c_int, c_void};

// ===== socket options =====

/// Sets an integer socket option.
pub fn set_int(fd: &impl AsRawFd, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
    set_raw(fd, level, name, &value)
}

/// Sets a socket option to the bytes of `value`.
pub fn set_raw<T>(fd: &impl AsRawFd, level: c_int, name: c_int, value: &T) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `value` points to `len` readable bytes for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            ptr::from_ref(value).cast::<c_void>(),
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
    /// Its IPv6 hop limit (`IPV6_HOPLIMIT`).
    pub hop_limit: Option<u8>,
}

/// Room for a packet-info and a hop-limit message, 8-byte aligned.
type ControlBuffer = [u64; 16];

/// Receives one datagram into `buf` without blocking (`WouldBlock` when none
/// is queued). Turn on `IPV6_RECVPKTINFO`/`IPV6_RECVHOPLIMIT` to get them.
pub fn recv(fd: &impl AsRawFd, buf: &mut [u8]) -> io::Result<Received> {
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
        hop_limit: None,
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
    // msg_controllen, and each payload is read only when cmsg_len covers it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let header = &*cmsg;
            let room = header.cmsg_len as usize;
            if header.cmsg_level == libc::IPPROTO_IPV6 {
                let data = libc::CMSG_DATA(cmsg);
                match header.cmsg_type {
                    libc::IPV6_PKTINFO if room >= cmsg_len::<libc::in6_pktinfo>() => {
                        let info = ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                        received.ifindex = Some(info.ipi6_ifindex);
                        received.destination = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                    }
                    libc::IPV6_HOPLIMIT if room >= cmsg_len::<c_int>() => {
                        let hops = ptr::read_unaligned(data.cast::<c_int>());
                        received.hop_limit = u8::try_from(hops).ok();
                    }
                    _ => {}
                }
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
/// the kernel chooses) out of interface `ifindex`, both given with
/// `IPV6_PKTINFO`. The kernel refuses a source that is not one of this
/// host's addresses.
pub fn send(
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
        set_int(&rx, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1).unwrap();
        let tx = UdpSocket::bind("[::1]:0").unwrap();
        let std::net::SocketAddr::V6(to) = rx.local_addr().unwrap() else {
            panic!("not IPv6");
        };
        let lo = crate::interface_index("lo").unwrap();
        assert_eq!(
            send(&tx, b"hello", to, Some(Ipv6Addr::LOCALHOST), lo).unwrap(),
            5
        );
        let mut buf = [0u8; 3];
        rx.set_nonblocking(false).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        // MSG_DONTWAIT: wait for the datagram with a blocking peek first.
        rx.peek_from(&mut [0u8; 1]).unwrap();
        let got = recv(&rx, &mut buf).unwrap();
        assert_eq!(&buf, b"hel");
        assert!(got.truncated);
        assert_eq!(got.ifindex, Some(lo));
        assert_eq!(got.destination, Some(Ipv6Addr::LOCALHOST));
        assert!(got.hop_limit.is_some_and(|h| h > 0));
        assert_eq!(got.source.map(|s| *s.ip()), Some(Ipv6Addr::LOCALHOST));
        assert!(matches!(recv(&rx, &mut buf), Err(e) if e.kind() == io::ErrorKind::WouldBlock));
    }
}
