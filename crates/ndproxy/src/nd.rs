//! Neighbour discovery messages (RFC 4861) as ndproxy speaks them: the
//! neighbour solicitation it sends for a sought address and the neighbour
//! advertisement that answers it.
//!
//! Pure encode/decode of ICMPv6 message bodies (what a raw ICMPv6 socket
//! sends and receives, without the IPv6 header). The checksum field is
//! written as zero: for raw ICMPv6 sockets the kernel computes it on send and
//! verifies it on receipt (RFC 3542 section 3.1). Decoding returns a typed
//! error for any input and never panics.

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
