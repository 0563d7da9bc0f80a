//! Neighbour discovery messages (RFC 4861) as ndproxy speaks them: the
//! neighbour solicitation it sends for a sought address and the neighbour
//! advertisement that answers it.
//!
//! Pure encode/decode of ICMPv6 message bodies (what a raw ICMPv6 socket
//! sends and receives, without the IPv6 header). The checksum field is
//! written as zero: for raw ICMPv6 sockets the kernel computes it on send and
//! verifies it on receipt (RFC 3542 section 3.1). Decoding returns a typed
//! error for any input and never panics.
//!
//! The solicitation also exists as a whole Ethernet frame
//! ([`solicitation_frame`]) for a packet socket: sent through the IPv6
//! stack, every solicited-node group would take a NOARP entry in the
//! kernel's neighbour table (see docs/design-notes.md, "Solicitations
//! without neighbour entries"), so here the checksum is ours to compute.

use std::net::Ipv6Addr;

use l3roamd_types::MacAddr;

// ===== constants =====

/// ICMPv6 type of a neighbour solicitation.
pub const NEIGHBOUR_SOLICITATION: u8 = 135;
/// ICMPv6 type of a neighbour advertisement.
pub const NEIGHBOUR_ADVERTISEMENT: u8 = 136;
/// Hop limit of every ND message; a received one with another value did not
/// come from the link itself and is dropped (RFC 4861 section 7.1).
pub const ND_HOP_LIMIT: u8 = 255;

/// EtherType of IPv6.
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// IPv6 next header of ICMPv6.
const NEXT_HEADER_ICMPV6: u8 = 58;
/// Ethernet header + IPv6 header.
const HEADERS_LEN: usize = 14 + 40;

/// Option type: source link-layer address.
const OPT_SOURCE_LLADDR: u8 = 1;
/// Option type: target link-layer address.
const OPT_TARGET_LLADDR: u8 = 2;
/// ICMPv6 header + reserved/flags + target address.
const FIXED_LEN: usize = 24;

// ===== errors =====

/// Why an ICMPv6 message is not a usable neighbour advertisement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the 24 fixed bytes.
    #[error("{0} bytes are too short for a neighbour advertisement (24 at least)")]
    TooShort(usize),
    /// Another ICMPv6 type (the socket filter should have kept it away).
    #[error("ICMPv6 type {0} is not a neighbour advertisement")]
    NotAdvertisement(u8),
    /// ICMPv6 code other than 0.
    #[error("neighbour advertisement with code {0} (must be 0)")]
    Code(u8),
    /// The target is a multicast address (RFC 4861 section 7.1.2).
    #[error("neighbour advertisement for multicast target {0}")]
    MulticastTarget(Ipv6Addr),
    /// An option with length 0, which RFC 4861 says to drop the message for.
    #[error("option type {kind} at offset {offset} has length 0")]
    ZeroLengthOption {
        /// The option type.
        kind: u8,
        /// Its offset in the message.
        offset: usize,
    },
    /// An option running past the end of the message.
    #[error("option at offset {offset} runs past the end ({needed} bytes, {left} left)")]
    TruncatedOption {
        /// Its offset in the message.
        offset: usize,
        /// Bytes the option claims.
        needed: usize,
        /// Bytes left from its offset.
        left: usize,
    },
}

// ===== messages =====

/// A received neighbour advertisement, reduced to what ndproxy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighbourAdvert {
    /// The address advertised.
    pub target: Ipv6Addr,
    /// The target link-layer address option, when present (it must be for
    /// an answer to a multicast solicitation).
    pub target_mac: Option<MacAddr>,
    /// The S flag: an answer to a solicitation.
    pub solicited: bool,
    /// The O flag: overrides a cached link-layer address.
    pub override_flag: bool,
    /// The R flag: the sender is a router.
    pub router: bool,
}

/// The solicited-node multicast address of `target`: `ff02::1:ff` followed
/// by its last 24 bits (RFC 4291 section 2.7.1).
pub fn solicited_node(target: &Ipv6Addr) -> Ipv6Addr {
    let t = target.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, t[13], t[14], t[15],
    ])
}

/// A neighbour solicitation for `target` with a source link-layer address
/// option carrying `source_mac` (32 bytes, checksum left to the kernel).
/// Without a MAC (a link without link-layer addresses) the option is left
/// out, as RFC 4861 section 4.3 allows only there.
pub fn encode_solicitation(target: &Ipv6Addr, source_mac: Option<&MacAddr>) -> Vec<u8> {
    let mut out = Vec::with_capacity(FIXED_LEN + 8);
    out.extend_from_slice(&[NEIGHBOUR_SOLICITATION, 0, 0, 0]); // type, code, checksum
    out.extend_from_slice(&[0; 4]); // reserved
    out.extend_from_slice(&target.octets());
    if let Some(mac) = source_mac {
        out.extend_from_slice(&[OPT_SOURCE_LLADDR, 1]); // length in units of 8 bytes
        out.extend_from_slice(&mac.octets());
    }
    out
}

/// The Ethernet group a packet to IPv6 multicast `group` goes to:
/// `33:33` and its last 32 bits (RFC 2464 section 7).
pub fn multicast_mac(group: &Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The whole Ethernet frame of a neighbour solicitation for `target` from
/// `source` (our link-local on the link) and `source_mac` (in the Ethernet
/// header and the source link-layer address option), to the target's
/// solicited-node group, hop limit 255, with its ICMPv6 checksum. A packet
/// socket sends it as it is: no route lookup, no neighbour entry.
pub fn solicitation_frame(target: &Ipv6Addr, source: &Ipv6Addr, source_mac: &MacAddr) -> Vec<u8> {
    let group = solicited_node(target);
    let mut message = encode_solicitation(target, Some(source_mac));
    let sum = checksum(source, &group, &message);
    if let Some(field) = message.get_mut(2..4) {
        field.copy_from_slice(&sum.to_be_bytes());
    }
    let mut f = Vec::with_capacity(HEADERS_LEN + message.len());
    f.extend_from_slice(&multicast_mac(&group).octets());
    f.extend_from_slice(&source_mac.octets());
    f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, no traffic class or flow
                                           // The message is 32 bytes; the conversion cannot fail.
    let payload_len = u16::try_from(message.len()).unwrap_or(u16::MAX);
    f.extend_from_slice(&payload_len.to_be_bytes());
    f.extend_from_slice(&[NEXT_HEADER_ICMPV6, ND_HOP_LIMIT]);
    f.extend_from_slice(&source.octets());
    f.extend_from_slice(&group.octets());
    f.extend_from_slice(&message);
    f
}

/// The ICMPv6 checksum (RFC 4443 section 2.3) of `icmp`, its checksum
/// field zero, over the pseudo-header of `src` and `dst`.
fn checksum(src: &Ipv6Addr, dst: &Ipv6Addr, icmp: &[u8]) -> u16 {
    fn add(sum: u64, bytes: &[u8]) -> u64 {
        let mut sum = sum;
        let mut pairs = bytes.chunks_exact(2);
        for pair in &mut pairs {
            if let &[hi, lo] = pair {
                sum += u64::from(u16::from_be_bytes([hi, lo]));
            }
        }
        if let &[last] = pairs.remainder() {
            sum += u64::from(u16::from_be_bytes([last, 0]));
        }
        sum
    }
    let len = u32::try_from(icmp.len()).unwrap_or(u32::MAX);
    let mut sum = add(0, &src.octets());
    sum = add(sum, &dst.octets());
    sum = add(sum, &len.to_be_bytes());
    sum = add(sum, &[0, 0, 0, NEXT_HEADER_ICMPV6]);
    sum = add(sum, icmp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The neighbour advertisement that defends `target` against a client's
/// duplicate address detection: to all nodes, so S=0 (RFC 4861 section
/// 7.2.4, the probe came from `::`), O=0 because we answer as a proxy for
/// a client elsewhere (7.2.4: a proxy should not override), R=0 (the owner
/// is a host), with a target link-layer address option carrying `mac`, the
/// client link's own MAC, where packets for the target are routed on.
/// A Linux client fails DAD on any advertisement for its tentative address
/// whatever the flags (RFC 4862 section 5.4.4).
pub fn encode_defence(target: &Ipv6Addr, mac: Option<&MacAddr>) -> Vec<u8> {
    let mut out = Vec::with_capacity(FIXED_LEN + 8);
    out.extend_from_slice(&[NEIGHBOUR_ADVERTISEMENT, 0, 0, 0]); // type, code, checksum
    out.extend_from_slice(&[0; 4]); // flags R=S=O=0, reserved
    out.extend_from_slice(&target.octets());
    if let Some(mac) = mac {
        out.extend_from_slice(&[OPT_TARGET_LLADDR, 1]);
        out.extend_from_slice(&mac.octets());
    }
    out
}

/// Decodes a neighbour advertisement (the ICMPv6 message, no IPv6 header).
///
/// Unknown options are skipped; the first target link-layer address option
/// of at least six bytes gives the MAC.
pub fn decode_advertisement(bytes: &[u8]) -> Result<NeighbourAdvert, DecodeError> {
    let Some(&[kind, code, _, _, flags, _, _, _, ref target @ ..]) =
        bytes.first_chunk::<FIXED_LEN>()
    else {
        return Err(DecodeError::TooShort(bytes.len()));
    };
    if kind != NEIGHBOUR_ADVERTISEMENT {
        return Err(DecodeError::NotAdvertisement(kind));
    }
    if code != 0 {
        return Err(DecodeError::Code(code));
    }
    let target = Ipv6Addr::from(*target);
    if target.is_multicast() {
        return Err(DecodeError::MulticastTarget(target));
    }
    let mut target_mac = None;
    let mut offset = FIXED_LEN;
    while offset < bytes.len() {
        let left = bytes.len() - offset;
        let (kind, units) = match bytes.get(offset..offset + 2) {
            Some(&[kind, units]) => (kind, units),
            _ => {
                return Err(DecodeError::TruncatedOption {
                    offset,
                    needed: 2,
                    left,
                })
            }
        };
        if units == 0 {
            return Err(DecodeError::ZeroLengthOption { kind, offset });
        }
        let needed = usize::from(units) * 8;
        let option = bytes
            .get(offset..offset + needed)
            .ok_or(DecodeError::TruncatedOption {
                offset,
                needed,
                left,
            })?;
        if kind == OPT_TARGET_LLADDR && target_mac.is_none() {
            target_mac = option.get(2..8).and_then(|m| MacAddr::from_slice(m).ok());
        }
        offset += needed;
    }
    Ok(NeighbourAdvert {
        target,
        target_mac,
        router: flags & 0x80 != 0,
        solicited: flags & 0x40 != 0,
        override_flag: flags & 0x20 != 0,
    })
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;
    use l3roamd_types::damage::{damaged, xorshift};

    const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, 0x100);
    const MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0x01, 0]);

    /// A solicited NA for fddd:1::100 from 02:00:00:00:01:00 as Linux sends it.
    fn linux_na() -> Vec<u8> {
        let mut na = vec![136, 0, 0x12, 0x34, 0x60, 0, 0, 0];
        na.extend_from_slice(&CLIENT.octets());
        na.extend_from_slice(&[2, 1, 0x02, 0, 0, 0, 0x01, 0]);
        na
    }

    #[test]
    fn solicited_node_address() {
        assert_eq!(
            solicited_node(&CLIENT),
            "ff02::1:ff00:100".parse::<Ipv6Addr>().unwrap()
        );
        let a: Ipv6Addr = "2001:db8::abcd:ef12:3456".parse().unwrap();
        assert_eq!(
            solicited_node(&a),
            "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn solicitation_bytes() {
        let mac = MacAddr([0x02, 0x4e, 0x4e, 0, 0, 0x02]);
        let ns = encode_solicitation(&CLIENT, Some(&mac));
        let mut expected = vec![135, 0, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(&CLIENT.octets());
        assert_eq!(encode_solicitation(&CLIENT, None), expected);
        expected.extend_from_slice(&[1, 1, 0x02, 0x4e, 0x4e, 0, 0, 0x02]);
        assert_eq!(ns, expected);
    }

    /// Sums a frame's pseudo-header and ICMPv6 message as 32-bit big-endian
    /// words (another grouping than `checksum`'s): a right checksum folds
    /// the total to 0xffff.
    fn frame_checksum_holds(frame: &[u8]) -> bool {
        let ip = &frame[14..54];
        let icmp = &frame[54..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&ip[8..40]);
        pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        pseudo.extend_from_slice(icmp);
        while pseudo.len() % 4 != 0 {
            pseudo.push(0);
        }
        let mut sum: u64 = pseudo
            .chunks(4)
            .map(|w| u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum == 0xffff
    }

    #[test]
    fn solicitation_frame_bytes() {
        let mac = MacAddr([0x02, 0x4e, 0x4e, 0, 0, 0x02]);
        let source: Ipv6Addr = "fe80::4e:4eff:fe00:2".parse().unwrap();
        let frame = solicitation_frame(&CLIENT, &source, &mac);
        assert_eq!(frame.len(), 14 + 40 + 32);
        assert_eq!(&frame[0..6], &[0x33, 0x33, 0xff, 0x00, 0x01, 0x00]);
        assert_eq!(&frame[6..12], &mac.octets());
        assert_eq!(&frame[12..14], &[0x86, 0xdd]);
        assert_eq!(&frame[14..22], &[0x60, 0, 0, 0, 0, 32, 58, 255]);
        assert_eq!(&frame[22..38], &source.octets());
        assert_eq!(
            &frame[38..54],
            &"ff02::1:ff00:100".parse::<Ipv6Addr>().unwrap().octets()
        );
        // Checksum as Python's independent computation gives it.
        assert_eq!(&frame[56..58], &[0xdd, 0x9e]);
        let mut message = frame[54..].to_vec();
        message[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(message, encode_solicitation(&CLIENT, Some(&mac)));
        assert!(frame_checksum_holds(&frame));
    }

    #[test]
    fn solicitation_frame_checksums_hold_for_many_targets() {
        let mut next = xorshift(0x5eed_0dd0_0000_0002);
        let mac = MacAddr([0x02, 0, 0, 0, 0, 0x09]);
        for _ in 0..1000 {
            let target = Ipv6Addr::from(u128::from(next()) << 64 | u128::from(next()));
            let source = Ipv6Addr::from(0xfe80u128 << 112 | u128::from(next()));
            let frame = solicitation_frame(&target, &source, &mac);
            assert!(frame_checksum_holds(&frame), "{target} from {source}");
            assert_eq!(
                &frame[2..6],
                &[
                    0xff,
                    target.octets()[13],
                    target.octets()[14],
                    target.octets()[15]
                ]
            );
            let mut broken = frame.clone();
            broken[70] ^= 1;
            assert!(!frame_checksum_holds(&broken));
        }
    }

    #[test]
    fn defence_bytes_decode_as_an_unsolicited_advertisement() {
        let mac = MacAddr([0x02, 0x4e, 0x4e, 0, 0, 0x03]);
        let na = encode_defence(&CLIENT, Some(&mac));
        assert_eq!(na.len(), 32);
        let decoded = decode_advertisement(&na).unwrap();
        assert_eq!(decoded.target, CLIENT);
        assert_eq!(decoded.target_mac, Some(mac));
        assert!(!decoded.solicited && !decoded.override_flag && !decoded.router);
        assert_eq!(encode_defence(&CLIENT, None).len(), 24);
    }

    #[test]
    fn advertisement_decodes() {
        let na = decode_advertisement(&linux_na()).unwrap();
        assert_eq!(na.target, CLIENT);
        assert_eq!(na.target_mac, Some(MAC));
        assert!(na.solicited && na.override_flag && !na.router);
    }

    #[test]
    fn unknown_options_are_skipped_first_mac_wins() {
        let mut bytes = linux_na();
        bytes.truncate(FIXED_LEN);
        bytes.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]); // nonce option
        bytes.extend_from_slice(&[2, 2, 0x02, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[2, 1, 0x06, 6, 6, 6, 6, 6]);
        assert_eq!(decode_advertisement(&bytes).unwrap().target_mac, Some(MAC));
    }

    #[test]
    fn advertisement_without_mac() {
        let mut bytes = linux_na();
        bytes.truncate(FIXED_LEN);
        let na = decode_advertisement(&bytes).unwrap();
        assert_eq!(na.target_mac, None);
    }

    #[test]
    fn malformed_advertisements() {
        let good = linux_na();
        assert_eq!(decode_advertisement(&[]), Err(DecodeError::TooShort(0)));
        assert_eq!(
            decode_advertisement(&good[..23]),
            Err(DecodeError::TooShort(23))
        );
        let mut ns = good.clone();
        ns[0] = 135;
        assert_eq!(
            decode_advertisement(&ns),
            Err(DecodeError::NotAdvertisement(135))
        );
        let mut code = good.clone();
        code[1] = 1;
        assert_eq!(decode_advertisement(&code), Err(DecodeError::Code(1)));
        let mut zero = good.clone();
        zero[25] = 0;
        assert!(matches!(
            decode_advertisement(&zero),
            Err(DecodeError::ZeroLengthOption {
                kind: 2,
                offset: 24
            })
        ));
        let mut long = good.clone();
        long[25] = 2;
        assert!(matches!(
            decode_advertisement(&long),
            Err(DecodeError::TruncatedOption {
                offset: 24,
                needed: 16,
                left: 8
            })
        ));
        let mut lone = good.clone();
        lone.push(2);
        assert!(matches!(
            decode_advertisement(&lone),
            Err(DecodeError::TruncatedOption {
                offset: 32,
                needed: 2,
                left: 1
            })
        ));
        let mut multicast = good;
        multicast[8] = 0xff;
        assert!(matches!(
            decode_advertisement(&multicast),
            Err(DecodeError::MulticastTarget(_))
        ));
    }

    #[test]
    fn no_input_panics() {
        // Every prefix of a valid message and every single-byte corruption.
        let good = linux_na();
        for len in 0..=good.len() {
            let _ = decode_advertisement(&good[..len]);
        }
        for i in 0..good.len() {
            for v in [0u8, 1, 2, 0x7f, 0xff] {
                let mut bytes = good.clone();
                bytes[i] = v;
                let _ = decode_advertisement(&bytes);
            }
        }
        let _ = decode_advertisement(&[
            136, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
        ]);
    }

    // ===== property: random and damaged input =====

    #[test]
    fn random_and_damaged_advertisements_never_panic() {
        let mut next = xorshift(0x5eed_0dd0_0000_0001);
        let good = linux_na();
        let mut decoded = 0;
        for _ in 0..5000 {
            decoded += usize::from(decode_advertisement(&damaged(&good, &mut next)).is_ok());
        }
        assert!(decoded > 0, "some damage leaves an advertisement");
    }
}
