//! Neighbour-discovery and MLD frames snooped on client links: pure decoding.
//!
//! The snoop sockets hand over whole Ethernet frames (possibly cut short at
//! the capture length); [`decode_frame`] turns one into a [`Snooped`]
//! message or a typed [`DecodeError`], never a panic, whatever the bytes.
//! Only what tells who is on the link is read: the Ethernet source (the
//! client's MAC), the IPv6 source, and the target of neighbour solicitations
//! and advertisements. The validity checks are those of RFC 4861 §6.1/§7.1
//! (hop limit 255, code 0, lengths, multicast targets) and RFC 3810 §5
//! (hop limit 1), so that a routed or forged packet does not teach us a
//! client. Checksums are not verified: the capture may be truncated, and
//! the frame has passed the link's own frame check already.

use std::net::Ipv6Addr;

use l3roamd_types::MacAddr;

// ===== constants =====

/// Ethernet header: destination, source, EtherType.
pub const ETHERNET_HEADER_LEN: usize = 14;
/// The fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// IPv6 next header: hop-by-hop options (MLD carries a router alert in one).
pub const NEXT_HEADER_HOP_BY_HOP: u8 = 0;
/// IPv6 next header: ICMPv6.
pub const NEXT_HEADER_ICMPV6: u8 = 58;

/// ICMPv6 type: MLDv1 listener report (RFC 2710).
pub const ICMPV6_MLD_REPORT: u8 = 131;
/// ICMPv6 type: MLDv1 listener done (RFC 2710).
pub const ICMPV6_MLD_DONE: u8 = 132;
/// ICMPv6 type: router solicitation (RFC 4861).
pub const ICMPV6_ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 type: neighbour solicitation (RFC 4861).
pub const ICMPV6_NEIGHBOUR_SOLICITATION: u8 = 135;
/// ICMPv6 type: neighbour advertisement (RFC 4861).
pub const ICMPV6_NEIGHBOUR_ADVERTISEMENT: u8 = 136;
/// ICMPv6 type: MLDv2 listener report (RFC 3810).
pub const ICMPV6_MLDV2_REPORT: u8 = 143;

/// The ICMPv6 types the snoop filter lets through.
pub const SNOOPED_TYPES: [u8; 6] = [
    ICMPV6_MLD_REPORT,
    ICMPV6_MLD_DONE,
    ICMPV6_ROUTER_SOLICITATION,
    ICMPV6_NEIGHBOUR_SOLICITATION,
    ICMPV6_NEIGHBOUR_ADVERTISEMENT,
    ICMPV6_MLDV2_REPORT,
];

/// Neighbour discovery packets must arrive with this hop limit (RFC 4861).
const ND_HOP_LIMIT: u8 = 255;
/// MLD packets are sent with this hop limit (RFC 2710, RFC 3810).
const MLD_HOP_LIMIT: u8 = 1;

// ===== decoded messages =====

/// Why a snooped frame was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame ends before the named part.
    #[error("frame too short for the {0}")]
    Truncated(&'static str),
    /// Not an untagged IPv6 frame.
    #[error("EtherType {0:#06x} is not IPv6")]
    NotIpv6(u16),
    /// The IP version field is not 6.
    #[error("IP version {0} in an IPv6 frame")]
    BadVersion(u8),
    /// The packet does not carry ICMPv6 (directly or after hop-by-hop options).
    #[error("next header {0} is not ICMPv6")]
    NotIcmpv6(u8),
    /// An ICMPv6 type that is not snooped.
    #[error("ICMPv6 type {0} is not snooped")]
    UnsupportedType(u8),
    /// The hop limit shows the packet did not originate on this link.
    #[error("ICMPv6 type {icmp_type} with hop limit {hop_limit}")]
    BadHopLimit {
        /// The ICMPv6 type.
        icmp_type: u8,
        /// The hop limit received.
        hop_limit: u8,
    },
    /// A neighbour discovery message with a code other than 0.
    #[error("ICMPv6 type {icmp_type} with code {code}")]
    BadCode {
        /// The ICMPv6 type.
        icmp_type: u8,
        /// The code received.
        code: u8,
    },
    /// A field holds a value the RFCs forbid.
    #[error("invalid message: {0}")]
    Invalid(&'static str),
}

/// The MLD version of a listener report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MldVersion {
    /// RFC 2710 (type 131).
    V1,
    /// RFC 3810 (type 143).
    V2,
}

/// A neighbour discovery or MLD message, reduced to what tells who is on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdMessage {
    /// Router solicitation: a host looking for its router, typically on link-up.
    RouterSolicitation,
    /// Neighbour solicitation for `target` (duplicate address detection when
    /// the IPv6 source is unspecified).
    NeighbourSolicitation {
        /// The address being resolved or tested.
        target: Ipv6Addr,
    },
    /// Neighbour advertisement of `target`.
    NeighbourAdvertisement {
        /// The address advertised.
        target: Ipv6Addr,
        /// The R flag: the sender is a router.
        router: bool,
        /// The S flag: an answer to a solicitation.
        solicited: bool,
        /// The O flag: the advertisement overrides cached link-layer addresses.
        override_flag: bool,
    },
    /// MLD listener report (a host on link-up joins its solicited-node groups).
    MldReport(MldVersion),
    /// MLDv1 listener done.
    MldDone,
}

/// A decoded snooped frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snooped {
    /// Ethernet source: the sender's MAC (always unicast).
    pub source_mac: MacAddr,
    /// IPv6 source; unspecified during duplicate address detection.
    pub source: Ipv6Addr,
    /// IPv6 destination.
    pub destination: Ipv6Addr,
    /// The message.
    pub message: NdMessage,
}

impl Snooped {
    /// The address under duplicate address detection, if this is a DAD
    /// solicitation: the sender wants to use it but does not own it yet.
    pub fn tentative_address(&self) -> Option<Ipv6Addr> {
        match self.message {
            NdMessage::NeighbourSolicitation { target } if self.source.is_unspecified() => {
                Some(target)
            }
            _ => None,
        }
    }

    /// The target of a neighbour advertisement: an address the sender answers for.
    pub fn advertised_address(&self) -> Option<Ipv6Addr> {
        match self.message {
            NdMessage::NeighbourAdvertisement { target, .. } => Some(target),
            _ => None,
        }
    }

    /// Addresses the sender shows it uses: its IPv6 source (when not
    /// unspecified) and the target it advertises.
    pub fn used_addresses(&self) -> impl Iterator<Item = Ipv6Addr> {
        let source = (!self.source.is_unspecified()).then_some(self.source);
        source.into_iter().chain(self.advertised_address())
    }
}

// ===== decoding =====

/// Reads `N` bytes at `at`, or says which part is missing.
fn array<const N: usize>(
    bytes: &[u8],
    at: usize,
    what: &'static str,
) -> Result<[u8; N], DecodeError> {
    bytes
        .get(at..at.saturating_add(N))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(DecodeError::Truncated(what))
}

fn byte(bytes: &[u8], at: usize, what: &'static str) -> Result<u8, DecodeError> {
    bytes.get(at).copied().ok_or(DecodeError::Truncated(what))
}

/// ff02::1:ffXX:XXXX (RFC 4291 §2.7.1).
fn is_solicited_node(addr: &Ipv6Addr) -> bool {
    let o = addr.octets();
    o[..11] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0] && o[11] == 0x01 && o[12] == 0xff
}

/// Decodes one Ethernet frame carrying a neighbour discovery or MLD message.
///
/// `frame` may be cut short by the capture length: every field read must be
/// present, but the IPv6 payload length may exceed what was captured.
/// Ethernet padding after the payload is ignored.
pub fn decode_frame(frame: &[u8]) -> Result<Snooped, DecodeError> {
    let source_mac = MacAddr(array::<6>(frame, 6, "Ethernet header")?);
    let ethertype = u16::from_be_bytes(array::<2>(frame, 12, "Ethernet header")?);
    if ethertype != ETHERTYPE_IPV6 {
        return Err(DecodeError::NotIpv6(ethertype));
    }
    if source_mac.is_multicast() || source_mac == MacAddr::ZERO {
        return Err(DecodeError::Invalid("Ethernet source is not a unicast MAC"));
    }
    let ip = frame
        .get(ETHERNET_HEADER_LEN..)
        .ok_or(DecodeError::Truncated("IPv6 header"))?;
    let version = byte(ip, 0, "IPv6 header")? >> 4;
    if version != 6 {
        return Err(DecodeError::BadVersion(version));
    }
    let payload_len = usize::from(u16::from_be_bytes(array::<2>(ip, 4, "IPv6 header")?));
    let mut next_header = byte(ip, 6, "IPv6 header")?;
    let hop_limit = byte(ip, 7, "IPv6 header")?;
    let source = Ipv6Addr::from(array::<16>(ip, 8, "IPv6 header")?);
    let destination = Ipv6Addr::from(array::<16>(ip, 24, "IPv6 header")?);
    // What was captured of the payload, never more than the header declares
    // (the rest is Ethernet padding).
    let captured = ip.get(IPV6_HEADER_LEN..).unwrap_or_default();
    let mut payload = captured.get(..payload_len).unwrap_or(captured);
    let mut declared = payload_len;

    if next_header == NEXT_HEADER_HOP_BY_HOP {
        let after = byte(payload, 0, "hop-by-hop header")?;
        let length = (usize::from(byte(payload, 1, "hop-by-hop header")?) + 1) * 8;
        if declared < length {
            return Err(DecodeError::Invalid(
                "hop-by-hop header longer than the payload",
            ));
        }
        payload = payload
            .get(length..)
            .ok_or(DecodeError::Truncated("hop-by-hop header"))?;
        declared -= length;
        next_header = after;
    }
    if next_header != NEXT_HEADER_ICMPV6 {
        return Err(DecodeError::NotIcmpv6(next_header));
    }

    let icmp_type = byte(payload, 0, "ICMPv6 header")?;
    let code = byte(payload, 1, "ICMPv6 header")?;
    // Each message's minimum length per its RFC, and the hop limit it must carry.
    let (minimum, required_hop_limit) = match icmp_type {
        ICMPV6_ROUTER_SOLICITATION => (8, ND_HOP_LIMIT),
        ICMPV6_NEIGHBOUR_SOLICITATION | ICMPV6_NEIGHBOUR_ADVERTISEMENT => (24, ND_HOP_LIMIT),
        ICMPV6_MLD_REPORT | ICMPV6_MLD_DONE => (24, MLD_HOP_LIMIT),
        ICMPV6_MLDV2_REPORT => (8, MLD_HOP_LIMIT),
        other => return Err(DecodeError::UnsupportedType(other)),
    };
    if hop_limit != required_hop_limit {
        return Err(DecodeError::BadHopLimit {
            icmp_type,
            hop_limit,
        });
    }
    if declared < minimum {
        return Err(DecodeError::Invalid(
            "ICMPv6 message shorter than its type requires",
        ));
    }
    let is_nd = required_hop_limit == ND_HOP_LIMIT;
    if is_nd && code != 0 {
        return Err(DecodeError::BadCode { icmp_type, code });
    }

    let message = match icmp_type {
        ICMPV6_ROUTER_SOLICITATION => NdMessage::RouterSolicitation,
        ICMPV6_NEIGHBOUR_SOLICITATION => {
            let target = Ipv6Addr::from(array::<16>(payload, 8, "solicitation target")?);
            if target.is_multicast() {
                return Err(DecodeError::Invalid("solicitation for a multicast target"));
            }
            if source.is_unspecified() && !is_solicited_node(&destination) {
                return Err(DecodeError::Invalid(
                    "DAD solicitation not sent to a solicited-node group",
                ));
            }
            NdMessage::NeighbourSolicitation { target }
        }
        ICMPV6_NEIGHBOUR_ADVERTISEMENT => {
            let flags = byte(payload, 4, "advertisement flags")?;
            let target = Ipv6Addr::from(array::<16>(payload, 8, "advertisement target")?);
            let solicited = flags & 0x40 != 0;
            if target.is_multicast() {
                return Err(DecodeError::Invalid("advertisement of a multicast target"));
            }
            if source.is_unspecified() {
                return Err(DecodeError::Invalid(
                    "advertisement from the unspecified address",
                ));
            }
            if solicited && destination.is_multicast() {
                return Err(DecodeError::Invalid(
                    "solicited advertisement sent to a group",
                ));
            }
            NdMessage::NeighbourAdvertisement {
                target,
                router: flags & 0x80 != 0,
                solicited,
                override_flag: flags & 0x20 != 0,
            }
        }
        ICMPV6_MLD_REPORT => NdMessage::MldReport(MldVersion::V1),
        ICMPV6_MLD_DONE => NdMessage::MldDone,
        _ => NdMessage::MldReport(MldVersion::V2),
    };
    if source.is_multicast() {
        return Err(DecodeError::Invalid("multicast IPv6 source"));
    }
    Ok(Snooped {
        source_mac,
        source,
        destination,
        message,
    })
}

// ===== tests =====

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The sender of the test frames.
    pub const CLIENT_MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// The RFC 4443 §2.3 checksum over the IPv6 pseudo-header and `icmp`.
    fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> u16 {
        let mut data = Vec::new();
        data.extend_from_slice(&src.octets());
        data.extend_from_slice(&dst.octets());
        data.extend_from_slice(&u32::try_from(icmp.len()).unwrap().to_be_bytes());
        data.extend_from_slice(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
        data.extend_from_slice(icmp);
        if data.len() % 2 == 1 {
            data.push(0);
        }
        let mut sum: u32 = data
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// The multicast MAC of an IPv6 group (RFC 2464 §7).
    fn group_mac(dst: Ipv6Addr) -> [u8; 6] {
        let o = dst.octets();
        [0x33, 0x33, o[12], o[13], o[14], o[15]]
    }

    /// A whole Ethernet frame: Ethernet header, IPv6 header, optional
    /// hop-by-hop header with a router alert (RFC 2711), ICMPv6 message
    /// with a correct checksum.
    pub fn frame(
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        router_alert: bool,
        mut icmp: Vec<u8>,
    ) -> Vec<u8> {
        let sum = icmpv6_checksum(src, dst, &icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let dst_mac = if dst.is_multicast() {
            group_mac(dst)
        } else {
            [0x02, 0x4e, 0x4e, 0, 0, 1]
        };
        let mut f = Vec::new();
        f.extend_from_slice(&dst_mac);
        f.extend_from_slice(&CLIENT_MAC);
        f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let hbh: &[u8] = if router_alert {
            // next header ICMPv6, length 0 (8 octets), router alert option
            // (type 5, length 2, value 0 = MLD), PadN of 2 octets... as Linux
            // sends it: 3a 00 05 02 00 00 01 00.
            &[NEXT_HEADER_ICMPV6, 0, 5, 2, 0, 0, 1, 0]
        } else {
            &[]
        };
        let payload_len = u16::try_from(hbh.len() + icmp.len()).unwrap();
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&payload_len.to_be_bytes());
        f.push(if router_alert {
            NEXT_HEADER_HOP_BY_HOP
        } else {
            NEXT_HEADER_ICMPV6
        });
        f.push(hop_limit);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(hbh);
        f.extend_from_slice(&icmp);
        f
    }

    /// RFC 4861 §4.3: type, code, checksum, reserved, target, then options.
    pub fn ns(src: Ipv6Addr, dst: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
        let mut icmp = vec![ICMPV6_NEIGHBOUR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&target.octets());
        if !src.is_unspecified() {
            // Source link-layer address option (type 1, length 1).
            icmp.extend_from_slice(&[1, 1]);
            icmp.extend_from_slice(&CLIENT_MAC);
        }
        frame(src, dst, 255, false, icmp)
    }

    /// RFC 4861 §4.4 with the S and O flags and a target link-layer option.
    pub fn na(src: Ipv6Addr, dst: Ipv6Addr, target: Ipv6Addr, solicited: bool) -> Vec<u8> {
        let flags = if solicited { 0x60 } else { 0x20 };
        let mut icmp = vec![ICMPV6_NEIGHBOUR_ADVERTISEMENT, 0, 0, 0, flags, 0, 0, 0];
        icmp.extend_from_slice(&target.octets());
        icmp.extend_from_slice(&[2, 1]);
        icmp.extend_from_slice(&CLIENT_MAC);
        frame(src, dst, 255, false, icmp)
    }

    /// RFC 4861 §4.1, with a source link-layer option unless from `::`.
    pub fn rs(src: Ipv6Addr) -> Vec<u8> {
        let mut icmp = vec![ICMPV6_ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
        if !src.is_unspecified() {
            icmp.extend_from_slice(&[1, 1]);
            icmp.extend_from_slice(&CLIENT_MAC);
        }
        frame(src, ip("ff02::2"), 255, false, icmp)
    }

    /// RFC 3810 §5.2: an MLDv2 report to ff02::16 with one
    /// CHANGE_TO_EXCLUDE record (type 4) per group, as Linux sends on link-up.
    pub fn mldv2_report(src: Ipv6Addr, groups: &[Ipv6Addr]) -> Vec<u8> {
        let mut icmp = vec![ICMPV6_MLDV2_REPORT, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&u16::try_from(groups.len()).unwrap().to_be_bytes());
        for g in groups {
            icmp.extend_from_slice(&[4, 0, 0, 0]);
            icmp.extend_from_slice(&g.octets());
        }
        frame(src, ip("ff02::16"), 1, true, icmp)
    }

    /// RFC 2710 §3: an MLDv1 report for `group`, sent to the group.
    pub fn mldv1_report(src: Ipv6Addr, group: Ipv6Addr) -> Vec<u8> {
        let mut icmp = vec![ICMPV6_MLD_REPORT, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&group.octets());
        frame(src, group, 1, true, icmp)
    }

    /// Frames a Linux 6.18 client (MAC 02:c1:00:00:00:01, fddd:1::100/64)
    /// sent in the lab, captured with tcpdump on its bridge port.
    pub const CAPTURED: [(&str, &str); 5] = [
        (
            "MLDv2 report from :: on link-up, groups ff02::1:ff00:1 and ff02::1:ff00:100",
            "33330000001602c10000000186dd600000000038000100000000000000000000000000000000ff0200000000000000000000000000163a000502000001008f006c6f0000000204000000ff0200000000000000000001ff00000104000000ff0200000000000000000001ff000100",
        ),
        (
            "MLDv2 report from the link-local address (after DAD, or on carrier return)",
            "33330000001602c10000000186dd6000000000380001fe8000000000000000c100fffe000001ff0200000000000000000000000000163a000502000001008f006e2c0000000204000000ff0200000000000000000001ff00000104000000ff0200000000000000000001ff000100",
        ),
        (
            "DAD neighbour solicitation for fddd:1::100 with a nonce option",
            "3333ff00010002c10000000186dd6000000000203aff00000000000000000000000000000000ff0200000000000000000001ff00010087003f2900000000fddd00010000000000000000000001000e01e68495dab137",
        ),
        (
            "router solicitation from the link-local address",
            "33330000000202c10000000186dd6000000000103afffe8000000000000000c100fffe000001ff020000000000000000000000000002850079aa00000000010102c100000001",
        ),
        (
            "solicited neighbour advertisement of fddd:1::100 to the next-node router",
            "024e4e00000102c10000000186dd6000000000203afffddd0001000000000000000000000100fe800000000000000000000000000001880016a260000000fddd0001000000000000000000000100020102c100000001",
        ),
    ];

    /// Decodes a hex string of the test vectors.
    pub fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn frames_captured_from_a_linux_client_decode() {
        let decoded: Vec<Snooped> = CAPTURED
            .iter()
            .map(|(what, h)| decode_frame(&hex(h)).unwrap_or_else(|e| panic!("{what}: {e}")))
            .collect();
        for s in &decoded {
            assert_eq!(s.source_mac, MacAddr([2, 0xc1, 0, 0, 0, 1]));
        }
        assert_eq!(decoded[0].message, NdMessage::MldReport(MldVersion::V2));
        assert!(decoded[0].source.is_unspecified());
        assert_eq!(decoded[1].source, ip("fe80::c1:ff:fe00:1"));
        assert_eq!(decoded[2].tentative_address(), Some(ip("fddd:1::100")));
        assert_eq!(decoded[3].message, NdMessage::RouterSolicitation);
        assert_eq!(
            decoded[4].used_addresses().collect::<Vec<_>>(),
            [ip("fddd:1::100"), ip("fddd:1::100")]
        );
    }

    #[test]
    fn dad_solicitation_gives_mac_and_tentative_address() {
        let f = ns(ip("::"), ip("ff02::1:ff00:100"), ip("fddd:1::100"));
        let s = decode_frame(&f).unwrap();
        assert_eq!(s.source_mac, MacAddr(CLIENT_MAC));
        assert_eq!(s.tentative_address(), Some(ip("fddd:1::100")));
        assert_eq!(s.used_addresses().count(), 0);
    }

    #[test]
    fn address_resolution_solicitation_gives_the_source() {
        let f = ns(ip("fddd:1::100"), ip("ff02::1:ff00:1"), ip("fe80::1"));
        let s = decode_frame(&f).unwrap();
        assert_eq!(s.tentative_address(), None);
        assert_eq!(s.used_addresses().collect::<Vec<_>>(), [ip("fddd:1::100")]);
    }

    #[test]
    fn advertisement_gives_source_and_target() {
        let f = na(ip("fddd:1::100"), ip("fe80::1"), ip("fddd:1::100"), true);
        let s = decode_frame(&f).unwrap();
        assert_eq!(
            s.message,
            NdMessage::NeighbourAdvertisement {
                target: ip("fddd:1::100"),
                router: false,
                solicited: true,
                override_flag: true
            }
        );
        assert_eq!(s.advertised_address(), Some(ip("fddd:1::100")));
        // An unsolicited advertisement to all nodes is fine too.
        let f = na(ip("fe80::2"), ip("ff02::1"), ip("fddd:1::7"), false);
        assert_eq!(
            decode_frame(&f)
                .unwrap()
                .used_addresses()
                .collect::<Vec<_>>(),
            [ip("fe80::2"), ip("fddd:1::7")]
        );
    }

    #[test]
    fn router_solicitation_from_unspecified_and_link_local() {
        let s = decode_frame(&rs(ip("::"))).unwrap();
        assert_eq!(s.message, NdMessage::RouterSolicitation);
        assert_eq!(s.used_addresses().count(), 0);
        let s = decode_frame(&rs(ip("fe80::11:22ff:fe33:4455"))).unwrap();
        assert_eq!(s.source, ip("fe80::11:22ff:fe33:4455"));
    }

    #[test]
    fn mld_reports_behind_router_alert() {
        let groups = [ip("ff02::1:ff00:100"), ip("ff02::1:ff33:4455")];
        let s = decode_frame(&mldv2_report(ip("::"), &groups)).unwrap();
        assert_eq!(s.message, NdMessage::MldReport(MldVersion::V2));
        assert_eq!(s.source_mac, MacAddr(CLIENT_MAC));
        let s = decode_frame(&mldv1_report(ip("fe80::1:2"), groups[0])).unwrap();
        assert_eq!(s.message, NdMessage::MldReport(MldVersion::V1));
        assert_eq!(s.source, ip("fe80::1:2"));
    }

    #[test]
    fn ethernet_padding_and_truncated_tails_are_tolerated() {
        let mut f = rs(ip("::"));
        f.resize(f.len() + 10, 0xee);
        assert!(decode_frame(&f).is_ok());
        // An MLDv2 report cut after its fixed header still names its sender.
        let f = mldv2_report(ip("::"), &[ip("ff02::1:ff00:100")]);
        assert!(decode_frame(&f[..ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + 8 + 8]).is_ok());
    }

    #[test]
    fn forwarded_or_forged_messages_are_refused() {
        let mut f = ns(ip("fddd:1::100"), ip("ff02::1:ff00:1"), ip("fe80::1"));
        f[ETHERNET_HEADER_LEN + 7] = 64;
        assert_eq!(
            decode_frame(&f),
            Err(DecodeError::BadHopLimit {
                icmp_type: 135,
                hop_limit: 64
            })
        );
        let mut f = mldv2_report(ip("::"), &[]);
        f[ETHERNET_HEADER_LEN + 7] = 255;
        assert!(matches!(
            decode_frame(&f),
            Err(DecodeError::BadHopLimit { .. })
        ));
        // DAD to a unicast destination.
        let f = ns(ip("::"), ip("fddd:1::1"), ip("fddd:1::100"));
        assert!(matches!(decode_frame(&f), Err(DecodeError::Invalid(_))));
        // Multicast target.
        let f = ns(ip("fe80::2"), ip("ff02::1:ff00:1"), ip("ff02::1"));
        assert!(matches!(decode_frame(&f), Err(DecodeError::Invalid(_))));
        // Solicited advertisement to a group.
        let f = na(ip("fe80::2"), ip("ff02::1"), ip("fddd:1::7"), true);
        assert!(matches!(decode_frame(&f), Err(DecodeError::Invalid(_))));
        // Code other than 0.
        let mut f = rs(ip("::"));
        f[ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + 1] = 1;
        assert!(matches!(decode_frame(&f), Err(DecodeError::BadCode { .. })));
        // Group source MAC.
        let mut f = rs(ip("::"));
        f[6] = 0x33;
        assert!(matches!(decode_frame(&f), Err(DecodeError::Invalid(_))));
    }

    #[test]
    fn other_traffic_is_refused() {
        let mut f = rs(ip("::"));
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        assert_eq!(decode_frame(&f), Err(DecodeError::NotIpv6(0x0800)));
        let mut f = rs(ip("::"));
        f[ETHERNET_HEADER_LEN + 6] = 17;
        assert_eq!(decode_frame(&f), Err(DecodeError::NotIcmpv6(17)));
        let mut f = rs(ip("::"));
        f[ETHERNET_HEADER_LEN + IPV6_HEADER_LEN] = 128;
        assert_eq!(decode_frame(&f), Err(DecodeError::UnsupportedType(128)));
        let mut f = rs(ip("::"));
        f[ETHERNET_HEADER_LEN] = 0x40;
        assert_eq!(decode_frame(&f), Err(DecodeError::BadVersion(4)));
    }

    #[test]
    fn every_truncation_of_every_message_is_an_error_not_a_panic() {
        let frames = [
            ns(ip("::"), ip("ff02::1:ff00:100"), ip("fddd:1::100")),
            na(ip("fddd:1::100"), ip("fe80::1"), ip("fddd:1::100"), true),
            rs(ip("fe80::1:2")),
            mldv2_report(ip("::"), &[ip("ff02::1:ff00:100")]),
            mldv1_report(ip("fe80::1:2"), ip("ff02::1:ff00:100")),
        ];
        for f in &frames {
            assert!(decode_frame(f).is_ok());
            // Every prefix shorter than the fields read must fail cleanly.
            for len in 0..f.len() {
                let _ = decode_frame(&f[..len]);
            }
        }
        // A declared payload shorter than the message.
        let mut f = frames[0].clone();
        f[ETHERNET_HEADER_LEN + 4..ETHERNET_HEADER_LEN + 6].copy_from_slice(&8u16.to_be_bytes());
        assert!(decode_frame(&f).is_err());
        // A hop-by-hop header claiming more than the payload.
        let mut f = frames[3].clone();
        f[ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + 1] = 200;
        assert!(decode_frame(&f).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic generator: every byte value at every
        // position of a valid frame, and pseudo-random frames.
        let base = ns(ip("::"), ip("ff02::1:ff00:100"), ip("fddd:1::100"));
        for pos in 0..base.len() {
            for value in [0u8, 1, 0x3a, 0x7f, 0x80, 0xff] {
                let mut f = base.clone();
                f[pos] = value;
                let _ = decode_frame(&f);
            }
        }
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let mut f = base.clone();
            for b in f.iter_mut().skip(ETHERNET_HEADER_LEN) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if x.is_multiple_of(7) {
                    *b = x as u8;
                }
            }
            let _ = decode_frame(&f);
        }
    }
}
