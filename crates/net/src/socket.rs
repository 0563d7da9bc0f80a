//! A non-blocking datagram socket in tokio's reactor that sends and
//! receives with packet information ([`crate::pktinfo`]).

use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::pktinfo::{self, Received};

/// A socket (set non-blocking by whoever opened it) registered with tokio
/// for reading; sending never waits.
#[derive(Debug)]
pub struct PktinfoSocket<T: AsFd + AsRawFd> {
    fd: AsyncFd<T>,
}

impl<T: AsFd + AsRawFd> PktinfoSocket<T> {
    /// Hands `socket` to tokio's reactor. Must be called inside the tokio
    /// runtime.
    pub fn new(socket: T) -> io::Result<PktinfoSocket<T>> {
        // SAFETY: an `AsFd` value holds its descriptor open for as long as
        // it lives, and nothing else can close or replace it while the
        // `AsyncFd` owns the value.
        let fd = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }?;
        Ok(PktinfoSocket { fd })
    }

    /// The socket itself.
    pub fn get_ref(&self) -> &T {
        self.fd.get_ref()
    }

    /// Sends all of `bytes` to `destination` from `source` (`None`: the
    /// kernel chooses) on interface `ifindex` (0: routed) without waiting:
    /// a full socket buffer is an error like any other, and so is a
    /// datagram the kernel cut short.
    pub fn send(
        &self,
        bytes: &[u8],
        destination: SocketAddrV6,
        source: Option<Ipv6Addr>,
        ifindex: u32,
    ) -> io::Result<()> {
        let sent = pktinfo::send(self.fd.get_ref(), bytes, destination, source, ifindex)?;
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
            match guard.try_io(|fd| pktinfo::recv(fd.get_ref(), buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[tokio::test(flavor = "current_thread")]
    async fn loopback_round_trip() {
        let Ok(rx) = UdpSocket::bind("[::1]:0") else {
            return; // no IPv6 on this machine
        };
        rx.set_nonblocking(true).unwrap();
        pktinfo::set_int(&rx, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1).unwrap();
        let std::net::SocketAddr::V6(to) = rx.local_addr().unwrap() else {
            panic!("not IPv6");
        };
        let rx = PktinfoSocket::new(rx).unwrap();
        let tx = UdpSocket::bind("[::1]:0").unwrap();
        tx.set_nonblocking(true).unwrap();
        let tx = PktinfoSocket::new(tx).unwrap();
        tx.send(b"hello", to, Some(Ipv6Addr::LOCALHOST), 0).unwrap();
        let mut buf = [0u8; 16];
        let got = rx.recv(&mut buf).await.unwrap();
        assert_eq!(buf.get(..got.len), Some(&b"hello"[..]));
        assert_eq!(got.destination, Some(Ipv6Addr::LOCALHOST));
    }
}
