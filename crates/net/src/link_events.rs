//! Notice that interfaces changed, as it happens.
//!
//! A route-netlink socket in the link group (`RTMGRP_LINK`): the kernel
//! writes a message to it whenever an interface appears, vanishes,
//! changes its name or its state. The daemons that follow interfaces by
//! name (ndproxy's mesh sockets, client-db's arrival check) read their
//! interfaces again on any such message, so the messages themselves are
//! never decoded: nothing from the kernel is parsed here, and an overrun
//! socket buffer (`ENOBUFS`) means "something changed" as well. The
//! daemons keep a periodic re-read ([`LinkWatch`]): once a minute while
//! the messages come (a safety net: netlink reports an overrun, it does
//! not lose messages silently), every few seconds when this socket cannot
//! be opened (no netlink in a container) or fails, so an idle daemon does
//! not wake every few seconds for nothing (issue 13).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often interfaces are read again while link events arrive.
pub const RECHECK: Duration = Duration::from_secs(60);
/// How often without link events.
pub const FALLBACK: Duration = Duration::from_secs(5);

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
async fn notify_changes(changed: &tokio::sync::Notify) -> io::Error {
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

/// When a daemon's loop reads its interfaces again: on every link change,
/// and every [`RECHECK`], or every [`FALLBACK`] once link events failed.
#[derive(Debug)]
pub struct LinkWatch {
    changed: Arc<Notify>,
    task: JoinHandle<()>,
    next: Instant,
}

impl LinkWatch {
    /// Starts following link events; `what` names the daemon's interfaces
    /// in the warning logged if that fails. Must be called inside the
    /// tokio runtime.
    pub fn spawn(what: &'static str) -> LinkWatch {
        let changed = Arc::new(Notify::new());
        let notify = changed.clone();
        let task = tokio::spawn(async move {
            let e = notify_changes(&notify).await;
            tracing::warn!(error = %e, "no link events; {what} are read every few seconds only");
            // Wakes the loop so that it re-reads now and from now on
            // every FALLBACK.
            notify.notify_one();
        });
        LinkWatch {
            changed,
            task,
            next: Instant::now() + RECHECK,
        }
    }

    /// Waits for a link change or the periodic re-read, whichever comes
    /// first. Cancel-safe: a `select!` that drops it loses nothing.
    pub async fn changed(&mut self) {
        tokio::select! {
            () = self.changed.notified() => {}
            () = tokio::time::sleep_until(self.next) => {}
        }
        let every = if self.task.is_finished() {
            FALLBACK
        } else {
            RECHECK
        };
        self.next = Instant::now() + every;
    }
}

impl Drop for LinkWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_periodic_re_read_is_once_a_minute_with_link_events() {
        let mut watch = LinkWatch::spawn("test interfaces");
        let start = Instant::now();
        watch.changed().await;
        assert!(
            !watch.task.is_finished(),
            "link events could not be followed"
        );
        assert_eq!(start.elapsed(), RECHECK);
        // A link change wakes it at once.
        watch.changed.notify_one();
        let before = Instant::now();
        watch.changed().await;
        assert_eq!(before.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn without_link_events_the_re_read_is_every_few_seconds() {
        let mut watch = LinkWatch::spawn("test interfaces");
        // As if the netlink socket had failed: the task ends and wakes us.
        watch.task.abort();
        tokio::task::yield_now().await;
        watch.changed.notify_one();
        watch.changed().await;
        let start = Instant::now();
        watch.changed().await;
        assert_eq!(start.elapsed(), FALLBACK);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn opens_without_privileges() {
        // Joining RTMGRP_LINK needs no capability.
        LinkEvents::open().unwrap();
    }
}
