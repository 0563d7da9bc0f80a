//! Notice that interfaces changed, as it happens.
//!
//! A route-netlink socket in the link group (`RTMGRP_LINK`): the kernel
//! writes a message to it whenever an interface appears, vanishes,
//! changes its name or its state. The daemons that follow interfaces by
//! name (ndproxy's mesh sockets, client-db's arrival check) read their
//! interfaces again on any such message, so the messages themselves are
//! never decoded: nothing from the kernel is parsed here, and an overrun
//! socket buffer (`ENOBUFS`) means "something changed" as well. The
//! daemons keep their slow periodic re-read in case this socket cannot be
//! opened (no netlink in a container) or misses something.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// `RTMGRP_LINK`: the multicast group of link messages.
const RTMGRP_LINK: u32 = 1;
/// Receive buffer; the content is discarded, its size only bounds a read.
const DRAIN_BUFFER: usize = 8192;

/// A subscription to the kernel's link changes.
#[derive(Debug)]
pub struct LinkEvents {
    fd: AsyncFd<OwnedFd>,
}

impl LinkEvents {
    /// Opens and binds the socket. Must be called inside the tokio runtime.
    pub fn open() -> io::Result<LinkEvents> {
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: all-zero is a valid sockaddr_nl.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = RTMGRP_LINK;
        // SAFETY: `addr` is a sockaddr_nl of the size given.
        let bound = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::addr_of!(addr).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if bound < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the `OwnedFd` holds its descriptor open for as long as it
        // lives, and nothing else can close or replace it while the
        // `AsyncFd` owns it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
        Ok(LinkEvents { fd })
    }

    /// Waits until some interface changed, then reads everything queued so
    /// that a burst of messages (a bridge with ten ports coming up) is one
    /// change. An error other than an overrun is returned (the caller
    /// stops following and keeps its periodic re-read).
    pub async fn changed(&self) -> io::Result<()> {
        let mut buf = vec![0u8; DRAIN_BUFFER];
        let mut guard = self.fd.readable().await?;
        loop {
            // SAFETY: `buf` is writable for its length.
            let n = unsafe {
                libc::recv(
                    self.fd.get_ref().as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                )
            };
            if n >= 0 {
                continue;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => {
                    guard.clear_ready();
                    return Ok(());
                }
                Some(libc::ENOBUFS) | Some(libc::EINTR) => continue,
                _ => return Err(e),
            }
        }
    }
}

/// Wakes `changed` on every link change until the socket fails (or cannot
/// be opened); the error is what the caller logs before it falls back to
/// its periodic re-read.
pub async fn notify_changes(changed: &tokio::sync::Notify) -> io::Error {
    let events = match LinkEvents::open() {
        Ok(events) => events,
        Err(e) => return e,
    };
    loop {
        if let Err(e) = events.changed().await {
            return e;
        }
        changed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn opens_without_privileges() {
        // Joining RTMGRP_LINK needs no capability.
        LinkEvents::open().unwrap();
    }
}
