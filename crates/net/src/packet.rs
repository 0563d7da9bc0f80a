//! Packet sockets (AF_PACKET, whole Ethernet frames) bound to one
//! interface behind a classic BPF filter: clientmon's neighbour discovery
//! snooping and prefixd's router solicitations and advertisements.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// `sll_pkttype` of a frame this host sent (linux/if_packet.h).
const PACKET_OUTGOING: u32 = 4;

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A packet socket on one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: AsyncFd<OwnedFd>,
    interest: Interest,
}

impl PacketSocket {
    /// Opens a socket for frames of EtherType `protocol` (host order; e.g.
    /// `libc::ETH_P_ALL`) on interface `ifindex`, passing only what
    /// `filter` accepts, woken for `interest` (needs CAP_NET_RAW).
    pub fn open(
        ifindex: u32,
        protocol: u16,
        filter: &'static [libc::sock_filter],
        interest: Interest,
    ) -> io::Result<PacketSocket> {
        let ifindex =
            i32::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // Protocol 0: the socket receives nothing until it is bound, so no
        // unfiltered frame is queued before the filter is attached.
        // SAFETY: plain system call with constant arguments.
        let fd = check(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        })?;
        // SAFETY: `fd` was just returned by socket() and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        crate::bpf::attach(fd.as_fd(), filter)?;
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as libc::c_ushort;
        address.sll_protocol = protocol.to_be();
        address.sll_ifindex = ifindex;
        // SAFETY: `address` is a valid sockaddr_ll of the size passed.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&address as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        // SAFETY: `fd` is an open socket owned by the `AsyncFd` from now on,
        // which alone closes it (by dropping the `OwnedFd`).
        let fd = unsafe { AsyncFd::register_with_interest(fd, interest) }?;
        Ok(PacketSocket { fd, interest })
    }

    /// Receives frames sent to the multicast MAC `group` on `ifindex` too
    /// (so they reach us even where a bridge snoops multicast).
    pub fn join(&self, ifindex: u32, group: [u8; 6]) -> io::Result<()> {
        let ifindex =
            i32::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut address = [0u8; 8];
        for (to, from) in address.iter_mut().zip(group) {
            *to = from;
        }
        let membership = libc::packet_mreq {
            mr_ifindex: ifindex,
            mr_type: libc::PACKET_MR_MULTICAST as libc::c_ushort,
            mr_alen: 6,
            mr_address: address,
        };
        // SAFETY: `membership` is a valid packet_mreq of the size passed.
        check(unsafe {
            libc::setsockopt(
                self.fd.get_ref().as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&membership as *const libc::packet_mreq).cast(),
                size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        })
        .map(|_| ())
    }

    /// Receives one frame into `buf` with `recvfrom` `flags` (e.g.
    /// `MSG_TRUNC`, which reports a longer frame's full length): its
    /// length and whether this host sent it.
    pub async fn recv(&self, buf: &mut [u8], flags: libc::c_int) -> io::Result<(usize, bool)> {
        loop {
            let mut guard = self.fd.ready(self.interest).await?;
            let result = guard.try_io(|fd| {
                // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
                let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut from_len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                // SAFETY: `buf` and `from` are valid for the lengths passed.
                let n = unsafe {
                    libc::recvfrom(
                        fd.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        flags,
                        (&mut from as *mut libc::sockaddr_ll).cast(),
                        &mut from_len,
                    )
                };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                let outgoing = u32::from(from.sll_pkttype) == PACKET_OUTGOING;
                Ok((n as usize, outgoing))
            });
            match result {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends one whole frame out of the interface it is bound to; never
    /// blocks (a full send buffer is `WouldBlock`). Returns the bytes sent.
    pub fn send(&self, frame: &[u8]) -> io::Result<usize> {
        // SAFETY: `frame` is valid for its length; the socket is bound, so
        // send() uses its interface and protocol.
        let n = unsafe {
            libc::send(
                self.fd.get_ref().as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// The descriptor, for ioctls on its interface.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.get_ref().as_raw_fd()
    }
}
