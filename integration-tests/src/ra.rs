//! Router solicitations and advertisements on a client link.
//!
//! Neighbour-discovery messages are captured with an `AF_PACKET` socket on
//! an interface rather than a raw ICMPv6 socket: it sees every message on
//! the link whatever its destination, and it tells the Ethernet source MAC,
//! which shows which node's next-node router answered. Messages are sent
//! through a raw ICMPv6 socket (the kernel fills in the checksum) with hop
//! limit 255, as RFC 4861 demands of every ND message.
//!
//! Like [`crate::ping`], sockets are opened by a short-lived thread that
//! entered the namespace with `setns(2)`; a socket stays in the namespace
//! it was opened in, so an [`NdCapture`] opened before a solicitation is
//! sent misses nothing, whichever thread reads it.

use std::fs::File;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::ping::{bind_to, raw_icmpv6_socket, sockaddr};
use crate::prefix::Ipv6Prefix;

/// ICMPv6 router solicitation (RFC 4861 §4.1).
pub const ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 router advertisement (RFC 4861 §4.2).
pub const ROUTER_ADVERTISEMENT: u8 = 134;
/// All-nodes multicast address, where unsolicited advertisements go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// All-routers multicast address, where solicitations go.
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

const ETH_P_IPV6: u16 = 0x86dd;
const IPV6_HEADER_LEN: usize = 40;
const NEXT_HEADER_ICMPV6: u8 = 58;
const OPTION_SOURCE_LINK_LAYER: u8 = 1;
const OPTION_PREFIX_INFORMATION: u8 = 3;

/// One neighbour-discovery message seen on a link (an RA, an RS, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NdMessage {
    /// When it arrived.
    pub at: Instant,
    /// The ICMPv6 message (its type first), as on the wire.
    pub icmp: Vec<u8>,
    /// IPv6 source (of an RA: the advertising router's link-local address).
    pub source: Ipv6Addr,
    /// IPv6 destination (of an RA: `ff02::1` or the soliciting client).
    pub destination: Ipv6Addr,
    /// IPv6 hop limit (255 unless something forwarded it).
    pub hop_limit: u8,
    /// Ethernet source MAC of the frame.
    pub mac: [u8; 6],
}

/// A prefix information option of an RA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixInformation {
    /// The prefix.
    pub prefix: Ipv6Prefix,
    /// On-link flag (L).
    pub on_link: bool,
    /// Autonomous address-configuration flag (A): SLAAC may use it.
    pub autonomous: bool,
    /// Valid lifetime in seconds (`u32::MAX`: forever).
    pub valid_lifetime: u32,
    /// Preferred lifetime in seconds (`u32::MAX`: forever; 0: deprecated).
    pub preferred_lifetime: u32,
}

impl NdMessage {
    /// The ICMPv6 type (133 RS, 134 RA, ...).
    pub fn icmp_type(&self) -> u8 {
        self.icmp.first().copied().unwrap_or(0)
    }

    /// The router lifetime of an RA in seconds (0: not a default router).
    pub fn router_lifetime(&self) -> Option<u16> {
        if self.icmp_type() != ROUTER_ADVERTISEMENT {
            return None;
        }
        let b = self.icmp.get(6..8)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }

    /// The options as (type, body without type and length) pairs; stops at a malformed one.
    pub fn options(&self) -> Vec<(u8, &[u8])> {
        let mut out = Vec::new();
        let start = match self.icmp_type() {
            ROUTER_SOLICITATION => 8,
            ROUTER_ADVERTISEMENT => 16,
            // Neighbour solicitation and advertisement: a target address first.
            135 | 136 => 24,
            // Redirect: target and destination.
            137 => 40,
            _ => return out,
        };
        let mut rest = self.icmp.get(start..).unwrap_or(&[]);
        while let (Some(&kind), Some(&len)) = (rest.first(), rest.get(1)) {
            let bytes = usize::from(len) * 8;
            let (Some(body), false) = (rest.get(2..bytes), len == 0) else {
                break;
            };
            out.push((kind, body));
            rest = rest.get(bytes..).unwrap_or(&[]);
        }
        out
    }

    /// The MAC the source link-layer address option names, if any.
    pub fn source_link_layer(&self) -> Option<[u8; 6]> {
        self.options()
            .into_iter()
            .find(|(k, _)| *k == OPTION_SOURCE_LINK_LAYER)
            .and_then(|(_, body)| body.get(..6)?.try_into().ok())
    }

    /// The prefix information options.
    pub fn prefixes(&self) -> Vec<PrefixInformation> {
        self.options()
            .into_iter()
            .filter(|(k, _)| *k == OPTION_PREFIX_INFORMATION)
            .filter_map(|(_, body)| {
                let u32_at = |at: usize| -> Option<u32> {
                    Some(u32::from_be_bytes(body.get(at..at + 4)?.try_into().ok()?))
                };
                let len = *body.first()?;
                let flags = *body.get(1)?;
                let network: [u8; 16] = body.get(14..30)?.try_into().ok()?;
                Some(PrefixInformation {
                    prefix: Ipv6Prefix::new(Ipv6Addr::from(network), len),
                    on_link: flags & 0x80 != 0,
                    autonomous: flags & 0x40 != 0,
                    valid_lifetime: u32_at(2)?,
                    preferred_lifetime: u32_at(6)?,
                })
            })
            .collect()
    }
}

/// A router solicitation with a source link-layer address option for `mac`.
pub fn router_solicitation(mac: [u8; 6]) -> [u8; 16] {
    let mut rs = [0u8; 16];
    rs[0] = ROUTER_SOLICITATION;
    // Checksum (2..4) is the kernel's; 4..8 reserved.
    rs[8] = OPTION_SOURCE_LINK_LAYER;
    rs[9] = 1;
    rs[10..].copy_from_slice(&mac);
    rs
}

/// A router advertisement from `mac` with router lifetime `router_lifetime`
/// (0: not a default router) and `prefixes`, as prefixd will send one.
pub fn router_advertisement(
    router_lifetime: u16,
    mac: [u8; 6],
    prefixes: &[PrefixInformation],
) -> Vec<u8> {
    let mut ra = vec![ROUTER_ADVERTISEMENT, 0, 0, 0, 64, 0];
    ra.extend_from_slice(&router_lifetime.to_be_bytes());
    // Reachable time and retransmission timer: unspecified.
    ra.extend_from_slice(&[0; 8]);
    ra.extend_from_slice(&[OPTION_SOURCE_LINK_LAYER, 1]);
    ra.extend_from_slice(&mac);
    for p in prefixes {
        let flags = if p.on_link { 0x80 } else { 0 } | if p.autonomous { 0x40 } else { 0 };
        ra.extend_from_slice(&[OPTION_PREFIX_INFORMATION, 4, p.prefix.prefix_len(), flags]);
        ra.extend_from_slice(&p.valid_lifetime.to_be_bytes());
        ra.extend_from_slice(&p.preferred_lifetime.to_be_bytes());
        ra.extend_from_slice(&[0; 4]);
        ra.extend_from_slice(&p.prefix.network().octets());
    }
    ra
}

/// The ND message of type `icmp_type` in `packet`, an IPv6 packet (no
/// Ethernet header) from `mac`, if it is one.
pub fn parse_nd(packet: &[u8], icmp_type: u8, mac: [u8; 6], at: Instant) -> Option<NdMessage> {
    if packet.first()? >> 4 != 6 || *packet.get(6)? != NEXT_HEADER_ICMPV6 {
        return None;
    }
    let payload_len = usize::from(u16::from_be_bytes([*packet.get(4)?, *packet.get(5)?]));
    let icmp = packet.get(IPV6_HEADER_LEN..IPV6_HEADER_LEN + payload_len)?;
    if icmp.first() != Some(&icmp_type) || icmp.len() < 8 {
        return None;
    }
    let source: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
    let destination: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
    Some(NdMessage {
        at,
        icmp: icmp.to_vec(),
        source: Ipv6Addr::from(source),
        destination: Ipv6Addr::from(destination),
        hop_limit: *packet.get(7)?,
        mac,
    })
}

/// A capture of one ND message type on one interface, from when it was opened.
#[derive(Debug)]
pub struct NdCapture {
    sock: OwnedFd,
    icmp_type: u8,
}

impl NdCapture {
    /// Starts capturing messages of `icmp_type` arriving on `iface` of the namespace at `netns_path`.
    pub fn open(netns_path: &Path, iface: &str, icmp_type: u8) -> Result<NdCapture> {
        let sock = in_netns(netns_path, iface, packet_socket)?;
        Ok(NdCapture { sock, icmp_type })
    }

    /// The next message within `timeout`, or `None`.
    pub fn next(&self, timeout: Duration) -> Result<Option<NdMessage>> {
        let deadline = Instant::now() + timeout;
        // Each turn waits at most until the deadline.
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            if let Some(m) = receive_nd(&self.sock, self.icmp_type, deadline - now)? {
                return Ok(Some(m));
            }
        }
    }

    /// Every message arriving within `duration` (and those queued before).
    pub fn collect(&self, duration: Duration) -> Result<Vec<NdMessage>> {
        let deadline = Instant::now() + duration;
        let mut out = Vec::new();
        // Each turn waits at most until the deadline.
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(out);
            }
            if let Some(m) = receive_nd(&self.sock, self.icmp_type, deadline - now)? {
                out.push(m);
            }
        }
    }
}

/// Sends ND messages from one address out of one interface, hop limit 255.
#[derive(Debug)]
pub struct NdSender {
    sock: OwnedFd,
    index: u32,
}

impl NdSender {
    /// A sender from `source` (which must have passed DAD) on `iface` of the namespace at `netns_path`.
    pub fn open(netns_path: &Path, iface: &str, source: Ipv6Addr) -> Result<NdSender> {
        in_netns(netns_path, iface, move |index| {
            let sock = raw_icmpv6_socket()?;
            set_int_option(&sock, libc::IPV6_MULTICAST_HOPS, 255, "IPV6_MULTICAST_HOPS")?;
            set_int_option(&sock, libc::IPV6_UNICAST_HOPS, 255, "IPV6_UNICAST_HOPS")?;
            let index_int = libc::c_int::try_from(index).unwrap_or(0);
            set_int_option(
                &sock,
                libc::IPV6_MULTICAST_IF,
                index_int,
                "IPV6_MULTICAST_IF",
            )?;
            bind_to(&sock, source, index)?;
            Ok(NdSender { sock, index })
        })
    }

    /// Sends `message` (an ICMPv6 message, checksum left to the kernel) to `destination`.
    pub fn send(&self, destination: Ipv6Addr, message: &[u8]) -> Result<()> {
        let dst = sockaddr(destination, self.index);
        // SAFETY: buffer and address are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                self.sock.as_raw_fd(),
                message.as_ptr().cast(),
                message.len(),
                0,
                (&dst as *const libc::sockaddr_in6).cast(),
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(Error::io(
                format!("sending ICMPv6 type {:?} to {destination}", message.first()),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }
}

/// Sends one router solicitation from `source` (the client's link-local
/// address, which must have passed DAD) on `iface` of the namespace at
/// `netns_path` and waits up to `timeout` for the first RA on that
/// interface; returns how long it took and the RA, or `None` if none came.
pub fn solicit_router(
    netns_path: &Path,
    iface: &str,
    mac: [u8; 6],
    source: Ipv6Addr,
    timeout: Duration,
) -> Result<Option<(Duration, NdMessage)>> {
    let capture = NdCapture::open(netns_path, iface, ROUTER_ADVERTISEMENT)?;
    let sender = NdSender::open(netns_path, iface, source)?;
    let sent = Instant::now();
    sender.send(ALL_ROUTERS, &router_solicitation(mac))?;
    Ok(capture
        .next(timeout)?
        .map(|ra| (ra.at.saturating_duration_since(sent), ra)))
}

/// Records every RA arriving on `iface` of the namespace at `netns_path` for `duration`.
pub fn capture_ras(netns_path: &Path, iface: &str, duration: Duration) -> Result<Vec<NdMessage>> {
    NdCapture::open(netns_path, iface, ROUTER_ADVERTISEMENT)?.collect(duration)
}

/// Runs `f` with the index of `iface` on a thread inside the namespace at `netns_path`.
fn in_netns<T: Send + 'static>(
    netns_path: &Path,
    iface: &str,
    f: impl FnOnce(u32) -> Result<T> + Send + 'static,
) -> Result<T> {
    let name = std::ffi::CString::new(iface)
        .map_err(|_| Error::Usage(format!("bad interface name {iface:?}")))?;
    let ns = File::open(netns_path)
        .map_err(|e| Error::io(format!("opening namespace {}", netns_path.display()), e))?;
    let where_ = format!("{iface} in {}", netns_path.display());
    thread::Builder::new()
        .name("lab-nd".into())
        .spawn(move || -> Result<T> {
            // SAFETY: setns on a valid open fd; it changes only this thread's namespace.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(Error::io(
                    "setns(CLONE_NEWNET)",
                    std::io::Error::last_os_error(),
                ));
            }
            // SAFETY: a valid NUL-terminated string.
            let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
            if index == 0 {
                return Err(Error::io(
                    format!("no interface {where_}"),
                    std::io::Error::last_os_error(),
                ));
            }
            f(index)
        })
        .map_err(|e| Error::io("spawning ND thread", e))?
        .join()
        .map_err(|_| Error::Usage("ND thread panicked".into()))?
}

/// An `AF_PACKET` datagram socket receiving every frame of interface `index`.
///
/// `ETH_P_ALL`, not `ETH_P_IPV6`: on a bridge port the bridge consumes a
/// frame before protocol-specific packet sockets see it; only taps for all
/// protocols come before it. [`receive_nd`] keeps the IPv6 ones.
fn packet_socket(index: u32) -> Result<OwnedFd> {
    let protocol = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::c_int::from(protocol),
        )
    };
    if raw < 0 {
        return Err(Error::io(
            "opening AF_PACKET socket (needs root)",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: `raw` is a fresh, valid descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as libc::c_ushort;
    sll.sll_protocol = protocol;
    sll.sll_ifindex = libc::c_int::try_from(index).unwrap_or(0);
    // SAFETY: a valid sockaddr_ll of the length given.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(Error::io(
            "binding AF_PACKET socket",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(sock)
}

fn set_int_option(
    sock: &OwnedFd,
    option: libc::c_int,
    value: libc::c_int,
    name: &str,
) -> Result<()> {
    // SAFETY: a c_int option value of the length given.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IPV6,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(Error::io(
            format!("setting {name}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Waits up to `wait` for one incoming packet; the ND message of `icmp_type` it carries, if any.
fn receive_nd(sock: &OwnedFd, icmp_type: u8, wait: Duration) -> Result<Option<NdMessage>> {
    if !crate::ping::readable(sock, wait, "poll on AF_PACKET socket")? {
        return Ok(None);
    }
    let mut buf = [0u8; 2048];
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: buffer and address storage are valid for the lengths given.
    let n = unsafe {
        libc::recvfrom(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
            (&mut from as *mut libc::sockaddr_ll).cast(),
            &mut from_len,
        )
    };
    let at = Instant::now();
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        ) {
            return Ok(None);
        }
        return Err(Error::io("receiving on AF_PACKET socket", e));
    }
    // Our own solicitations (and anything else we send) show up as outgoing.
    if from.sll_pkttype == libc::PACKET_OUTGOING || from.sll_protocol != ETH_P_IPV6.to_be() {
        return Ok(None);
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&from.sll_addr[..6]);
    let len = usize::try_from(n).unwrap_or(0);
    Ok(parse_nd(buf.get(..len).unwrap_or(&[]), icmp_type, mac, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ra_packet(icmp: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
        p.extend_from_slice(&[NEXT_HEADER_ICMPV6, 255]);
        p.extend_from_slice(&"fe80::1".parse::<Ipv6Addr>().expect("addr").octets());
        p.extend_from_slice(&"ff02::1".parse::<Ipv6Addr>().expect("addr").octets());
        p.extend_from_slice(icmp);
        p
    }

    fn ra_icmp() -> Vec<u8> {
        let mut icmp = vec![ROUTER_ADVERTISEMENT, 0, 0, 0, 64, 0, 0x07, 0x08];
        icmp.extend_from_slice(&[0; 8]);
        // SLLAO.
        icmp.extend_from_slice(&[1, 1, 0x02, 0x4e, 0x4e, 0, 0, 1]);
        // Prefix information: 2001:db8:a::/64, L and A, valid 600, preferred 300.
        icmp.extend_from_slice(&[3, 4, 64, 0xc0]);
        icmp.extend_from_slice(&600u32.to_be_bytes());
        icmp.extend_from_slice(&300u32.to_be_bytes());
        icmp.extend_from_slice(&[0; 4]);
        icmp.extend_from_slice(&"2001:db8:a::".parse::<Ipv6Addr>().expect("addr").octets());
        icmp
    }

    #[test]
    fn ras_are_parsed_with_their_options() {
        let now = Instant::now();
        let mac = [2, 0x4e, 0x42, 0, 0, 1];
        let ra = parse_nd(&ra_packet(&ra_icmp()), ROUTER_ADVERTISEMENT, mac, now).expect("an RA");
        assert_eq!(ra.source, "fe80::1".parse::<Ipv6Addr>().expect("addr"));
        assert_eq!(ra.destination, "ff02::1".parse::<Ipv6Addr>().expect("addr"));
        assert_eq!(ra.hop_limit, 255);
        assert_eq!(ra.mac, mac);
        assert_eq!(ra.router_lifetime(), Some(0x0708));
        assert_eq!(ra.source_link_layer(), Some([0x02, 0x4e, 0x4e, 0, 0, 1]));
        let prefixes = ra.prefixes();
        assert_eq!(prefixes.len(), 1);
        assert_eq!(prefixes[0].prefix.to_string(), "2001:db8:a::/64");
        assert!(prefixes[0].on_link && prefixes[0].autonomous);
        assert_eq!(
            (prefixes[0].valid_lifetime, prefixes[0].preferred_lifetime),
            (600, 300)
        );
    }

    #[test]
    fn non_ras_and_truncated_packets_are_not_ras() {
        let now = Instant::now();
        let mut rs = ra_icmp();
        rs[0] = ROUTER_SOLICITATION;
        assert!(parse_nd(&ra_packet(&rs), ROUTER_ADVERTISEMENT, [0; 6], now).is_none());
        let full = ra_packet(&ra_icmp());
        for cut in [0, 7, 39, 50] {
            assert!(
                parse_nd(&full[..cut], ROUTER_ADVERTISEMENT, [0; 6], now).is_none(),
                "cut at {cut}"
            );
        }
        // A zero-length option ends the option walk instead of looping.
        let mut icmp = ra_icmp();
        icmp[17] = 0;
        let ra = parse_nd(&ra_packet(&icmp), ROUTER_ADVERTISEMENT, [0; 6], now).expect("an RA");
        assert!(ra.options().is_empty());
    }

    #[test]
    fn solicitation_carries_the_mac() {
        let rs = router_solicitation([2, 0xc1, 0, 0, 0, 1]);
        assert_eq!(rs[0], ROUTER_SOLICITATION);
        assert_eq!(&rs[8..], &[1, 1, 2, 0xc1, 0, 0, 0, 1]);
        let m =
            parse_nd(&ra_packet(&rs), ROUTER_SOLICITATION, [0; 6], Instant::now()).expect("an RS");
        assert_eq!(m.source_link_layer(), Some([2, 0xc1, 0, 0, 0, 1]));
        assert_eq!(m.router_lifetime(), None);
    }

    #[test]
    fn built_advertisements_parse_back() {
        let info = PrefixInformation {
            prefix: "2001:db8:a::/64".parse().expect("prefix"),
            on_link: true,
            autonomous: true,
            valid_lifetime: 600,
            preferred_lifetime: 300,
        };
        let icmp = router_advertisement(1800, [2, 0x4e, 0x4e, 0, 0, 1], &[info]);
        // The hand-written RA of the other tests has router lifetime 0x0708 = 1800.
        assert_eq!(icmp, ra_icmp());
        let ra = parse_nd(
            &ra_packet(&icmp),
            ROUTER_ADVERTISEMENT,
            [0; 6],
            Instant::now(),
        )
        .expect("an RA");
        assert_eq!(ra.router_lifetime(), Some(1800));
        assert_eq!(ra.prefixes(), vec![info]);
    }
}
