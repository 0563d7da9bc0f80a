//! ICMPv6 "destination unreachable" for packets nobody claimed, as a router
//! sends them (RFC 4443 §3.1, code 3: address unreachable).

use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::held::addresses;

/// ICMPv6 type "destination unreachable".
const DEST_UNREACHABLE: u8 = 1;
/// Code "address unreachable".
const ADDRESS_UNREACHABLE: u8 = 3;
/// An ICMPv6 error must fit the IPv6 minimum MTU (RFC 4443 §2.4 c).
const MIN_MTU: usize = 1280;
/// IPv6 header plus ICMPv6 header.
const HEADERS: usize = 40 + 8;

/// The ICMPv6 error for `packet` and where it goes, or `None` where RFC 4443
/// §2.4 (e) forbids one: the packet is itself an ICMPv6 error, or its
/// source is unspecified or multicast.
pub fn unreachable_message(packet: &[u8]) -> Option<(Ipv6Addr, Vec<u8>)> {
    let (src, dst) = addresses(packet)?;
    if src.is_unspecified() || src.is_multicast() || dst.is_multicast() {
        return None;
    }
    // Next header 58 (ICMPv6) with a type below 128 is an error message.
    if packet.get(6) == Some(&58) && packet.get(40).is_some_and(|t| *t < 128) {
        return None;
    }
    let quoted = packet.len().min(MIN_MTU - HEADERS);
    let mut message = Vec::with_capacity(8 + quoted);
    // Type, code, checksum (the kernel fills it in), 4 unused bytes.
    message.extend_from_slice(&[DEST_UNREACHABLE, ADDRESS_UNREACHABLE, 0, 0, 0, 0, 0, 0]);
    message.extend_from_slice(packet.get(..quoted)?);
    Some((src, message))
}

/// ICMPv6 type "neighbor advertisement".
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// NA flags: router, override (not solicited: nobody asked).
const ROUTER_OVERRIDE: u8 = 0x80 | 0x20;
/// NDP option "target link-layer address".
const TARGET_LLADDR: u8 = 2;

/// An unsolicited neighbor advertisement (RFC 4861 §4.4, §7.2.6) of the
/// next-node router: `target` (the next-node address) is at `mac`, a router,
/// override. A client that lost carrier has flushed its neighbour cache and,
/// if it kept sending, holds an INCOMPLETE entry for its router whose first
/// solicitation went out while it had no link: it retries only after its
/// RetransTimer (1 s), and everything it sends waits in that entry. This
/// advertisement resolves the entry at once (to STALE, which sends the
/// queue).
pub fn next_node_advertisement(target: Ipv6Addr, mac: &l3roamd_types::MacAddr) -> Vec<u8> {
    let mut message = Vec::with_capacity(32);
    // Type, code, checksum (the kernel fills it in), flags, reserved.
    message.extend_from_slice(&[NEIGHBOR_ADVERTISEMENT, 0, 0, 0, ROUTER_OVERRIDE, 0, 0, 0]);
    message.extend_from_slice(&target.octets());
    message.extend_from_slice(&[TARGET_LLADDR, 1]);
    message.extend_from_slice(&mac.0);
    message
}

/// The all-nodes multicast address.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// A raw ICMPv6 socket for sending errors.
#[derive(Debug)]
pub struct IcmpSender {
    fd: OwnedFd,
}

impl IcmpSender {
    /// Opens the socket (needs CAP_NET_RAW).
    pub fn open() -> std::io::Result<IcmpSender> {
        // SAFETY: plain socket(2); the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET6,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::IPPROTO_ICMPV6,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // We never read from it: let nothing queue up.
        let filter = [0xffff_ffffu32; 8];
        // SAFETY: ICMP6_FILTER takes a 32-byte bitmap; all ones blocks every type.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_ICMPV6,
                1, // ICMP6_FILTER
                filter.as_ptr().cast(),
                std::mem::size_of_val(&filter) as libc::socklen_t,
            );
        }
        // Neighbour discovery needs hop limit 255 (RFC 4861 §7.1.2); only
        // the advertisements go to a multicast group.
        l3roamd_net::pktinfo::set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, 255)?;
        // The next-node address lives on another interface (the next-node
        // device on the client bridge) than the one the advertisement
        // leaves by.
        l3roamd_net::pktinfo::set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_FREEBIND, 1)?;
        Ok(IcmpSender { fd })
    }

    /// Sends the ND `message` from `source` (the next-node address) to all
    /// nodes on interface `ifindex`.
    pub fn announce(&self, ifindex: u32, source: Ipv6Addr, message: &[u8]) -> std::io::Result<()> {
        let to = std::net::SocketAddrV6::new(ALL_NODES, 0, 0, ifindex);
        l3roamd_net::pktinfo::send(&self.fd, message, to, Some(source), ifindex).map(|_| ())
    }

    /// Sends `message` to `dst`; the kernel picks the source address and
    /// computes the checksum. Never blocks: a full buffer is an error.
    pub fn send(&self, dst: Ipv6Addr, message: &[u8]) -> std::io::Result<()> {
        // SAFETY: sockaddr_in6 is plain data; zeroed is a valid value.
        let mut addr: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        addr.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        addr.sin6_addr.s6_addr = dst.octets();
        // SAFETY: the buffer and address outlive the call; lengths are exact.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                message.as_ptr().cast(),
                message.len(),
                0,
                (&addr as *const libc::sockaddr_in6).cast(),
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use l3roamd_types::damage::{damaged, xorshift};

    #[test]
    fn next_node_advertisement_is_an_unsolicited_router_override_with_its_mac() {
        let mac: l3roamd_types::MacAddr = "02:4e:4e:00:00:01".parse().unwrap();
        let na = next_node_advertisement("fe80::1".parse().unwrap(), &mac);
        let mut want = vec![136, 0, 0, 0, 0xa0, 0, 0, 0, 0xfe, 0x80];
        want.extend_from_slice(&[0; 13]);
        want.extend_from_slice(&[1, 2, 1, 0x02, 0x4e, 0x4e, 0, 0, 1]);
        assert_eq!(na, want);
    }

    fn packet(src: &str, next: u8, payload: &[u8]) -> Vec<u8> {
        let src: Ipv6Addr = src.parse().unwrap();
        let dst: Ipv6Addr = "fddd:1::100".parse().unwrap();
        let mut p = vec![0x60, 0, 0, 0, 0, payload.len() as u8, next, 64];
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn echo_request_gets_an_error_quoting_it() {
        let p = packet("2001:db8::1", 58, &[128, 0, 0, 0, 0, 1, 0, 1]);
        let (to, msg) = unreachable_message(&p).unwrap();
        assert_eq!(to, "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(&msg[..2], &[1, 3]);
        assert_eq!(&msg[8..], &p[..]);
    }

    #[test]
    fn no_error_about_errors_or_from_nowhere() {
        assert!(unreachable_message(&packet("2001:db8::1", 58, &[1, 3, 0, 0])).is_none());
        assert!(unreachable_message(&packet("::", 17, &[0; 8])).is_none());
        assert!(unreachable_message(&packet("ff02::1", 17, &[0; 8])).is_none());
        assert!(unreachable_message(&[0x60, 0, 0]).is_none());
    }

    #[test]
    fn quote_is_cut_to_the_minimum_mtu() {
        let p = packet("2001:db8::1", 17, &[0; 200]);
        let mut big = p.clone();
        big.extend(std::iter::repeat_n(0u8, 3000));
        let (_, msg) = unreachable_message(&big).unwrap();
        assert_eq!(msg.len() + 40, 1280);
    }

    // ===== property: random and damaged input =====

    #[test]
    fn random_and_damaged_packets_never_panic() {
        let mut next = xorshift(0x5eed_0dd0_0000_0008);
        let seeds = [
            packet("2001:db8::1", 58, &[128, 0, 0, 0, 0, 1, 0, 1]),
            packet("2001:db8::1", 58, &[1, 3, 0, 0, 0, 0, 0, 0]),
            packet("fddd:1::1", 17, &[0; 1400]),
        ];
        for round in 0..5000 {
            let bytes = damaged(&seeds[round % seeds.len()], &mut next);
            let addresses = crate::held::addresses(&bytes);
            if let Some((to, message)) = unreachable_message(&bytes) {
                assert_eq!(addresses.map(|(src, _)| src), Some(to));
                assert!(message.len() <= MIN_MTU - 40);
            }
        }
    }
}
