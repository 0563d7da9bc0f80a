//! Router advertisements and solicitations on the wire (RFC 4861 §4.1,
//! §4.2, §4.6; RFC 8106 §5.1).
//!
//! Pure encode/decode. Advertisements are built as ICMPv6 messages
//! ([`encode`]) and wrapped into whole Ethernet frames ([`frame`]) with the
//! checksum computed here over the IPv6 pseudo-header (RFC 4443 §2.3): they
//! leave through a packet socket, because their Ethernet and IPv6 sources
//! are the shared next-node router's, not this node's. Solicitations arrive
//! the same way, as whole frames ([`decode_solicitation_frame`]), and are
//! validated as RFC 4861 §6.1.1 asks, checksum included. Decoding returns a
//! typed error for any input and never panics.

use std::net::Ipv6Addr;

use l3roamd_types::{Ipv6Prefix, MacAddr};

// ===== constants =====

/// ICMPv6 type of a router solicitation.
pub const ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 type of a router advertisement.
pub const ROUTER_ADVERTISEMENT: u8 = 134;
/// Hop limit of every ND message; a received one with another value did not
/// come from the link itself (RFC 4861 §6.1.1).
pub const ND_HOP_LIMIT: u8 = 255;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// IPv6 next header value of ICMPv6.
pub const NEXT_HEADER_ICMPV6: u8 = 58;
/// The all-nodes multicast address, where unsolicited advertisements go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// The all-routers multicast address, where hosts send solicitations.
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// Ethernet header length (no VLAN tag: packet sockets see frames untagged).
pub const ETHERNET_HEADER: usize = 14;
/// IPv6 fixed header length.
pub const IPV6_HEADER: usize = 40;

/// Option type: source link-layer address (RFC 4861 §4.6.1).
const OPT_SOURCE_LLADDR: u8 = 1;
/// Option type: prefix information (RFC 4861 §4.6.2).
const OPT_PREFIX_INFO: u8 = 3;
/// Option type: MTU (RFC 4861 §4.6.4).
const OPT_MTU: u8 = 5;
/// Option type: recursive DNS server (RFC 8106 §5.1).
const OPT_RDNSS: u8 = 25;
/// Prefix information flag L: the prefix is on-link.
const FLAG_ON_LINK: u8 = 0x80;
/// Prefix information flag A: hosts may form addresses in it (SLAAC).
const FLAG_AUTONOMOUS: u8 = 0x40;
/// Type, code, checksum, hop limit, flags, router lifetime, reachable
/// time, retrans timer.
const RA_FIXED: usize = 16;
/// Type, code, checksum, reserved.
const RS_FIXED: usize = 8;
/// An option's length counts 8 octets; 255 of them hold 127 servers.
const MAX_RDNSS_SERVERS: usize = 127;

// ===== errors =====

/// Why bytes are not a usable router advertisement or solicitation. One
/// variant per reason, so a caller can count drops by [`DecodeError::reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than an Ethernet and an IPv6 header.
    #[error("{0} bytes are too short for an Ethernet frame carrying IPv6 (54 at least)")]
    FrameTooShort(usize),
    /// Not IPv6 (the socket filter should have kept it away).
    #[error("EtherType {0:#06x} is not IPv6")]
    EtherType(u16),
    /// The IP version nibble is not 6.
    #[error("IP version {0} is not 6")]
    IpVersion(u8),
    /// The IPv6 payload length claims more bytes than the frame holds.
    #[error("IPv6 payload length {claimed} exceeds the {available} bytes received")]
    PayloadLength {
        /// The payload length field.
        claimed: usize,
        /// Bytes after the IPv6 header.
        available: usize,
    },
    /// The IPv6 header is not followed directly by ICMPv6. Extension headers
    /// are rejected: hosts send solicitations without them, and skipping
    /// them would only add attack surface.
    #[error("next header {0} is not ICMPv6 (extension headers are not accepted)")]
    NextHeader(u8),
    /// The hop limit is not 255: the message was forwarded by a router.
    #[error("hop limit {0} (must be 255)")]
    HopLimit(u8),
    /// The source is a multicast address.
    #[error("multicast source address {0}")]
    MulticastSource(Ipv6Addr),
    /// The ICMPv6 message is shorter than its fixed part.
    #[error("{len} bytes are too short for ICMPv6 type {kind}'s fixed part ({needed})")]
    MessageTooShort {
        /// The ICMPv6 type expected.
        kind: u8,
        /// Bytes of the message.
        len: usize,
        /// Bytes of the fixed part.
        needed: usize,
    },
    /// Another ICMPv6 type than expected.
    #[error("ICMPv6 type {got} is not {expected}")]
    IcmpType {
        /// The type asked for.
        expected: u8,
        /// The type received.
        got: u8,
    },
    /// ICMPv6 code other than 0.
    #[error("ICMPv6 code {0} (must be 0)")]
    Code(u8),
    /// The ICMPv6 checksum does not match the pseudo-header and message.
    #[error("ICMPv6 checksum {0:#06x} is wrong")]
    Checksum(u16),
    /// An option with length 0, which RFC 4861 says to drop the message for.
    #[error("option type {kind} at offset {offset} has length 0")]
    ZeroLengthOption {
        /// The option type.
        kind: u8,
        /// Its offset in the ICMPv6 message.
        offset: usize,
    },
    /// An option running past the end of the message.
    #[error("option at offset {offset} runs past the end ({needed} bytes, {left} left)")]
    TruncatedOption {
        /// Its offset in the ICMPv6 message.
        offset: usize,
        /// Bytes the option claims.
        needed: usize,
        /// Bytes left from its offset.
        left: usize,
    },
    /// A known option with a length its format does not allow.
    #[error("option type {kind} with length {units} (in units of 8 octets) is malformed")]
    OptionLength {
        /// The option type.
        kind: u8,
        /// Its length field.
        units: u8,
    },
    /// A solicitation from the unspecified address carries a source
    /// link-layer address option (RFC 4861 §6.1.1).
    #[error("solicitation from :: with a source link-layer address option")]
    LladdrFromUnspecified,
    /// A prefix information option with a prefix length above 128.
    #[error("prefix length {0} exceeds 128")]
    PrefixLength(u8),
}

impl DecodeError {
    /// A short stable name of the reason, for drop counters and logs.
    pub const fn reason(&self) -> &'static str {
        match self {
            DecodeError::FrameTooShort(_) => "frame_too_short",
            DecodeError::EtherType(_) => "ethertype",
            DecodeError::IpVersion(_) => "ip_version",
            DecodeError::PayloadLength { .. } => "payload_length",
            DecodeError::NextHeader(_) => "next_header",
            DecodeError::HopLimit(_) => "hop_limit",
            DecodeError::MulticastSource(_) => "multicast_source",
            DecodeError::MessageTooShort { .. } => "message_too_short",
            DecodeError::IcmpType { .. } => "icmp_type",
            DecodeError::Code(_) => "code",
            DecodeError::Checksum(_) => "checksum",
            DecodeError::ZeroLengthOption { .. } => "zero_length_option",
            DecodeError::TruncatedOption { .. } => "truncated_option",
            DecodeError::OptionLength { .. } => "option_length",
            DecodeError::LladdrFromUnspecified => "lladdr_from_unspecified",
            DecodeError::PrefixLength(_) => "prefix_length",
        }
    }
}

// ===== messages =====

/// A router advertisement (RFC 4861 §4.2) with the options prefixd sends.
/// The M and O flags are always 0: addresses come from SLAAC, and DNS
/// servers from the RDNSS option, never from DHCPv6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterAdvert {
    /// Hop limit hosts should use; 0 leaves it to them.
    pub cur_hop_limit: u8,
    /// Seconds hosts may use us as default router; 0: not a default router.
    pub router_lifetime: u16,
    /// Milliseconds a neighbour counts as reachable; 0: unspecified.
    pub reachable_time: u32,
    /// Milliseconds between neighbour solicitations; 0: unspecified.
    pub retrans_timer: u32,
    /// The router's MAC (the next-node MAC), so hosts need no address
    /// resolution for it.
    pub source_lladdr: Option<MacAddr>,
    /// Link MTU to advertise.
    pub mtu: Option<u32>,
    /// Prefix information options, in this order.
    pub prefixes: Vec<PrefixInfo>,
    /// Recursive DNS servers; left out when it has no server.
    pub rdnss: Option<Rdnss>,
}

/// A prefix information option (RFC 4861 §4.6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixInfo {
    /// The prefix (host bits zero, as the RFC wants them sent).
    pub prefix: Ipv6Prefix,
    /// The L flag: addresses in it are reachable without a router.
    pub on_link: bool,
    /// The A flag: hosts may form addresses in it.
    pub autonomous: bool,
    /// Seconds the prefix stays valid; `u32::MAX` is forever.
    pub valid_lifetime: u32,
    /// Seconds addresses in it stay preferred.
    pub preferred_lifetime: u32,
}

/// A recursive DNS server option (RFC 8106 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rdnss {
    /// Seconds the servers may be used.
    pub lifetime: u32,
    /// The servers; at most 127 fit one option, more are not sent.
    pub servers: Vec<Ipv6Addr>,
}

/// A router solicitation that passed RFC 4861 §6.1.1, with what answering it
/// needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Solicitation {
    /// The Ethernet source of the frame.
    pub src_mac: MacAddr,
    /// The IPv6 source; unspecified for a host without an address yet.
    pub src_ip: Ipv6Addr,
    /// The source link-layer address option, if any.
    pub source_lladdr: Option<MacAddr>,
}

// ===== encoding =====

/// The ICMPv6 message of `ra`, checksum zero ([`frame`] fills it in).
///
/// Options go in the order SLLAO, MTU, prefixes, RDNSS. The caller keeps the
/// prefix list short enough for the link MTU (about 37 prefixes fit 1280).
pub fn encode(ra: &RouterAdvert) -> Vec<u8> {
    let mut out = Vec::with_capacity(RA_FIXED + 8 + 8 + 32 * ra.prefixes.len() + 40);
    out.extend_from_slice(&[ROUTER_ADVERTISEMENT, 0, 0, 0, ra.cur_hop_limit, 0]);
    out.extend_from_slice(&ra.router_lifetime.to_be_bytes());
    out.extend_from_slice(&ra.reachable_time.to_be_bytes());
    out.extend_from_slice(&ra.retrans_timer.to_be_bytes());
    if let Some(mac) = ra.source_lladdr {
        out.extend_from_slice(&[OPT_SOURCE_LLADDR, 1]);
        out.extend_from_slice(&mac.octets());
    }
    if let Some(mtu) = ra.mtu {
        out.extend_from_slice(&[OPT_MTU, 1, 0, 0]);
        out.extend_from_slice(&mtu.to_be_bytes());
    }
    for p in &ra.prefixes {
        let mut flags = 0;
        if p.on_link {
            flags |= FLAG_ON_LINK;
        }
        if p.autonomous {
            flags |= FLAG_AUTONOMOUS;
        }
        out.extend_from_slice(&[OPT_PREFIX_INFO, 4, p.prefix.prefix_len(), flags]);
        out.extend_from_slice(&p.valid_lifetime.to_be_bytes());
        out.extend_from_slice(&p.preferred_lifetime.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&p.prefix.addr().octets());
    }
    if let Some(rdnss) = &ra.rdnss {
        let servers = rdnss
            .servers
            .get(..MAX_RDNSS_SERVERS)
            .unwrap_or(&rdnss.servers);
        if !servers.is_empty() {
            // 1 unit of header and lifetime, 2 per server; at most 255.
            let units = u8::try_from(1 + 2 * servers.len()).unwrap_or(u8::MAX);
            out.extend_from_slice(&[OPT_RDNSS, units, 0, 0]);
            out.extend_from_slice(&rdnss.lifetime.to_be_bytes());
            for s in servers {
                out.extend_from_slice(&s.octets());
            }
        }
    }
    out
}

/// The Ethernet multicast address of an IPv6 group (RFC 2464 §7).
pub fn multicast_mac(group: &Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// A whole Ethernet frame: Ethernet header, IPv6 header with hop limit 255
/// and next header ICMPv6, and `icmp` with its checksum computed over the
/// pseudo-header of `src_ip` and `dst_ip`. The payload length saturates at
/// 65535; messages are built far below that.
pub fn frame(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src_ip: Ipv6Addr,
    dst_ip: Ipv6Addr,
    icmp: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETHERNET_HEADER + IPV6_HEADER + icmp.len());
    f.extend_from_slice(&dst_mac.octets());
    f.extend_from_slice(&src_mac.octets());
    f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    let payload_len = u16::try_from(icmp.len()).unwrap_or(u16::MAX);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&payload_len.to_be_bytes());
    f.extend_from_slice(&[NEXT_HEADER_ICMPV6, ND_HOP_LIMIT]);
    f.extend_from_slice(&src_ip.octets());
    f.extend_from_slice(&dst_ip.octets());
    let start = f.len();
    f.extend_from_slice(icmp);
    if let Some(field) = f.get_mut(start + 2..start + 4) {
        field.copy_from_slice(&[0, 0]);
        let sum = checksum(&src_ip, &dst_ip, f.get(start..).unwrap_or_default());
        if let Some(field) = f.get_mut(start + 2..start + 4) {
            field.copy_from_slice(&sum.to_be_bytes());
        }
    }
    f
}

/// The RFC 4443 §2.3 checksum over the IPv6 pseudo-header and `icmp` as it
/// is: with the checksum field zero, the value to write there; over a
/// received message, zero when its checksum is right.
pub fn checksum(src: &Ipv6Addr, dst: &Ipv6Addr, icmp: &[u8]) -> u16 {
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

// ===== decoding =====

/// One option: its type, its offset in the message and its bytes (type and
/// length included).
struct NdOption<'a> {
    kind: u8,
    units: u8,
    bytes: &'a [u8],
}

/// Walks the options of `message` from `start`, failing on a zero length or
/// one that runs past the end.
fn options(message: &[u8], start: usize) -> Result<Vec<NdOption<'_>>, DecodeError> {
    let mut found = Vec::new();
    let mut offset = start;
    while offset < message.len() {
        let left = message.len() - offset;
        let Some(&[kind, units]) = message.get(offset..offset + 2) else {
            return Err(DecodeError::TruncatedOption {
                offset,
                needed: 2,
                left,
            });
        };
        if units == 0 {
            return Err(DecodeError::ZeroLengthOption { kind, offset });
        }
        let needed = usize::from(units) * 8;
        let bytes = message
            .get(offset..offset + needed)
            .ok_or(DecodeError::TruncatedOption {
                offset,
                needed,
                left,
            })?;
        found.push(NdOption { kind, units, bytes });
        offset += needed;
    }
    Ok(found)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}

fn lladdr(option: &NdOption<'_>) -> Option<MacAddr> {
    option
        .bytes
        .get(2..8)
        .and_then(|m| MacAddr::from_slice(m).ok())
}

/// Decodes a router advertisement (the ICMPv6 message, no IPv6 header; its
/// checksum is not checked, that needs the addresses).
///
/// Unknown options are skipped; of repeated SLLAO, MTU or RDNSS options the
/// first counts. Prefix bits beyond the prefix length are ignored, as RFC
/// 4861 §4.6.2 asks of receivers.
pub fn decode_ra(bytes: &[u8]) -> Result<RouterAdvert, DecodeError> {
    let Some(&[kind, code, _, _, cur_hop_limit, _flags, l0, l1, r0, r1, r2, r3, t0, t1, t2, t3]) =
        bytes.first_chunk::<RA_FIXED>()
    else {
        return Err(DecodeError::MessageTooShort {
            kind: ROUTER_ADVERTISEMENT,
            len: bytes.len(),
            needed: RA_FIXED,
        });
    };
    if kind != ROUTER_ADVERTISEMENT {
        return Err(DecodeError::IcmpType {
            expected: ROUTER_ADVERTISEMENT,
            got: kind,
        });
    }
    if code != 0 {
        return Err(DecodeError::Code(code));
    }
    let mut ra = RouterAdvert {
        cur_hop_limit,
        router_lifetime: u16::from_be_bytes([l0, l1]),
        reachable_time: u32::from_be_bytes([r0, r1, r2, r3]),
        retrans_timer: u32::from_be_bytes([t0, t1, t2, t3]),
        source_lladdr: None,
        mtu: None,
        prefixes: Vec::new(),
        rdnss: None,
    };
    for option in options(bytes, RA_FIXED)? {
        let malformed = DecodeError::OptionLength {
            kind: option.kind,
            units: option.units,
        };
        match option.kind {
            OPT_SOURCE_LLADDR => ra.source_lladdr = ra.source_lladdr.or_else(|| lladdr(&option)),
            OPT_MTU => {
                if option.units != 1 {
                    return Err(malformed);
                }
                ra.mtu.get_or_insert(u32_at(option.bytes, 4));
            }
            OPT_PREFIX_INFO => {
                if option.units != 4 {
                    return Err(malformed);
                }
                ra.prefixes.push(prefix_info(option.bytes)?);
            }
            OPT_RDNSS => {
                if option.units < 3 || option.units % 2 == 0 {
                    return Err(malformed);
                }
                if ra.rdnss.is_none() {
                    let servers = option
                        .bytes
                        .get(8..)
                        .unwrap_or_default()
                        .chunks_exact(16)
                        .filter_map(|c| <[u8; 16]>::try_from(c).ok())
                        .map(Ipv6Addr::from)
                        .collect();
                    ra.rdnss = Some(Rdnss {
                        lifetime: u32_at(option.bytes, 4),
                        servers,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(ra)
}

/// A prefix information option of exactly 32 bytes.
fn prefix_info(bytes: &[u8]) -> Result<PrefixInfo, DecodeError> {
    let Some(&[_, _, len, flags, ..]) = bytes.first_chunk::<4>() else {
        return Err(DecodeError::OptionLength {
            kind: OPT_PREFIX_INFO,
            units: 0,
        });
    };
    if len > 128 {
        return Err(DecodeError::PrefixLength(len));
    }
    let addr = bytes
        .get(16..32)
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .map_or(0, u128::from_be_bytes);
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    let prefix = Ipv6Prefix::new(Ipv6Addr::from(addr & mask), len)
        .map_err(|_| DecodeError::PrefixLength(len))?;
    Ok(PrefixInfo {
        prefix,
        on_link: flags & FLAG_ON_LINK != 0,
        autonomous: flags & FLAG_AUTONOMOUS != 0,
        valid_lifetime: u32_at(bytes, 4),
        preferred_lifetime: u32_at(bytes, 8),
    })
}

/// Decodes and validates a router solicitation in a whole Ethernet frame,
/// as a packet socket delivers it (RFC 4861 §6.1.1). Bytes after the IPv6
/// payload (Ethernet padding) are ignored.
pub fn decode_solicitation_frame(frame: &[u8]) -> Result<Solicitation, DecodeError> {
    let Some((ethernet, rest)) = frame.split_first_chunk::<ETHERNET_HEADER>() else {
        return Err(DecodeError::FrameTooShort(frame.len()));
    };
    let Some((ip, payload)) = rest.split_first_chunk::<IPV6_HEADER>() else {
        return Err(DecodeError::FrameTooShort(frame.len()));
    };
    let &[_, _, _, _, _, _, s0, s1, s2, s3, s4, s5, e0, e1] = ethernet;
    let ethertype = u16::from_be_bytes([e0, e1]);
    if ethertype != ETHERTYPE_IPV6 {
        return Err(DecodeError::EtherType(ethertype));
    }
    let &[v, _, _, _, p0, p1, next_header, hop_limit, ref addrs @ ..] = ip;
    if v >> 4 != 6 {
        return Err(DecodeError::IpVersion(v >> 4));
    }
    let claimed = usize::from(u16::from_be_bytes([p0, p1]));
    let message = payload.get(..claimed).ok_or(DecodeError::PayloadLength {
        claimed,
        available: payload.len(),
    })?;
    if next_header != NEXT_HEADER_ICMPV6 {
        return Err(DecodeError::NextHeader(next_header));
    }
    if hop_limit != ND_HOP_LIMIT {
        return Err(DecodeError::HopLimit(hop_limit));
    }
    let src_ip = Ipv6Addr::from(addrs.first_chunk::<16>().copied().unwrap_or_default());
    let dst_ip = Ipv6Addr::from(addrs.last_chunk::<16>().copied().unwrap_or_default());
    if src_ip.is_multicast() {
        return Err(DecodeError::MulticastSource(src_ip));
    }
    let Some(&[kind, code, ..]) = message.first_chunk::<RS_FIXED>() else {
        return Err(DecodeError::MessageTooShort {
            kind: ROUTER_SOLICITATION,
            len: message.len(),
            needed: RS_FIXED,
        });
    };
    if kind != ROUTER_SOLICITATION {
        return Err(DecodeError::IcmpType {
            expected: ROUTER_SOLICITATION,
            got: kind,
        });
    }
    if code != 0 {
        return Err(DecodeError::Code(code));
    }
    if checksum(&src_ip, &dst_ip, message) != 0 {
        let field = message
            .get(2..4)
            .and_then(|f| <[u8; 2]>::try_from(f).ok())
            .map_or(0, u16::from_be_bytes);
        return Err(DecodeError::Checksum(field));
    }
    let mut source_lladdr = None;
    for option in options(message, RS_FIXED)? {
        if option.kind == OPT_SOURCE_LLADDR {
            if src_ip.is_unspecified() {
                return Err(DecodeError::LladdrFromUnspecified);
            }
            if source_lladdr.is_none() {
                source_lladdr = lladdr(&option);
            }
        }
    }
    Ok(Solicitation {
        src_mac: MacAddr([s0, s1, s2, s3, s4, s5]),
        src_ip,
        source_lladdr,
    })
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;
    use l3roamd_types::damage::xorshift;

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const NEXT_NODE_MAC: MacAddr = MacAddr([0x02, 0x4e, 0x4e, 0, 0, 1]);

    fn known_ra() -> RouterAdvert {
        RouterAdvert {
            cur_hop_limit: 64,
            router_lifetime: 1800,
            reachable_time: 0,
            retrans_timer: 0,
            source_lladdr: Some(NEXT_NODE_MAC),
            mtu: Some(1280),
            prefixes: vec![
                PrefixInfo {
                    prefix: "2001:db8:1::/64".parse().unwrap(),
                    on_link: false,
                    autonomous: true,
                    valid_lifetime: 2_592_000,
                    preferred_lifetime: 604_800,
                },
                PrefixInfo {
                    prefix: "fddd:1::/64".parse().unwrap(),
                    on_link: true,
                    autonomous: true,
                    valid_lifetime: u32::MAX,
                    preferred_lifetime: 0,
                },
            ],
            rdnss: Some(Rdnss {
                lifetime: 1200,
                servers: vec![ip("fddd:1::53")],
            }),
        }
    }

    /// [`known_ra`] written out by hand from RFC 4861 §4.2/§4.6 and RFC 8106.
    const KNOWN_RA_HEX: &str = "
        86 00 0000 40 00 0708 00000000 00000000
        01 01 024e4e000001
        05 01 0000 00000500
        03 04 40 40 00278d00 00093a80 00000000 20010db8000100000000000000000000
        03 04 40 c0 ffffffff 00000000 00000000 fddd0001000000000000000000000000
        19 03 0000 000004b0 fddd0001000000000000000000000053";

    #[test]
    fn a_known_advert_encodes_byte_for_byte() {
        assert_eq!(encode(&known_ra()), hex(KNOWN_RA_HEX));
    }

    #[test]
    fn a_known_advert_decodes_back() {
        assert_eq!(decode_ra(&hex(KNOWN_RA_HEX)).unwrap(), known_ra());
        let bare = RouterAdvert {
            source_lladdr: None,
            mtu: None,
            prefixes: vec![],
            rdnss: None,
            ..known_ra()
        };
        assert_eq!(encode(&bare).len(), 16);
        assert_eq!(decode_ra(&encode(&bare)).unwrap(), bare);
    }

    #[test]
    fn an_empty_rdnss_is_left_out_and_many_servers_are_cut_to_127() {
        let mut ra = known_ra();
        ra.rdnss = Some(Rdnss {
            lifetime: 1,
            servers: vec![],
        });
        assert_eq!(decode_ra(&encode(&ra)).unwrap().rdnss, None);
        ra.rdnss = Some(Rdnss {
            lifetime: 1,
            servers: vec![ip("fddd::53"); 200],
        });
        let decoded = decode_ra(&encode(&ra)).unwrap();
        assert_eq!(decoded.rdnss.unwrap().servers.len(), 127);
    }

    #[test]
    fn an_advert_frame_is_byte_exact_with_a_valid_checksum() {
        let icmp = encode(&RouterAdvert {
            cur_hop_limit: 64,
            router_lifetime: 1800,
            reachable_time: 0,
            retrans_timer: 0,
            source_lladdr: Some(NEXT_NODE_MAC),
            mtu: None,
            prefixes: vec![],
            rdnss: None,
        });
        let f = frame(
            NEXT_NODE_MAC,
            multicast_mac(&ALL_NODES),
            ip("fe80::1"),
            ALL_NODES,
            &icmp,
        );
        // Checksum computed independently (Python): pseudo-header fe80::1 + ff02::1 + length 24 +
        // next header 58, plus the message, folded and inverted.
        let expected = hex("
            333300000001 024e4e000001 86dd
            60000000 0018 3a ff
            fe800000000000000000000000000001
            ff020000000000000000000000000001
            86 00 e3ce 40 00 0708 00000000 00000000
            01 01 024e4e000001");
        assert_eq!(f, expected);
        assert_eq!(checksum(&ip("fe80::1"), &ALL_NODES, &f[54..]), 0);
    }

    #[test]
    fn group_macs_follow_rfc_2464() {
        assert_eq!(multicast_mac(&ALL_NODES), MacAddr([0x33, 0x33, 0, 0, 0, 1]));
        assert_eq!(
            multicast_mac(&ALL_ROUTERS),
            MacAddr([0x33, 0x33, 0, 0, 0, 2])
        );
        assert_eq!(
            multicast_mac(&ip("ff02::1:ff00:100")),
            MacAddr([0x33, 0x33, 0xff, 0, 0x01, 0])
        );
    }

    /// A router solicitation a Linux 6.18 client (02:c1:00:00:00:01) sent in
    /// the lab, captured with tcpdump (the same frame as clientmon's vectors).
    const CAPTURED_RS: &str = "33330000000202c10000000186dd6000000000103afffe8000000000000000c100fffe000001ff020000000000000000000000000002850079aa00000000010102c100000001";

    #[test]
    fn a_captured_solicitation_decodes() {
        let s = decode_solicitation_frame(&hex(CAPTURED_RS)).unwrap();
        let client = MacAddr([0x02, 0xc1, 0, 0, 0, 1]);
        assert_eq!(
            s,
            Solicitation {
                src_mac: client,
                src_ip: ip("fe80::c1:ff:fe00:1"),
                source_lladdr: Some(client),
            }
        );
        // Ethernet padding after the payload does not matter.
        let mut padded = hex(CAPTURED_RS);
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(decode_solicitation_frame(&padded).unwrap(), s);
    }

    /// A solicitation frame from `src`, built with [`frame`].
    fn rs(src: Ipv6Addr, options: &[u8]) -> Vec<u8> {
        let mut icmp = vec![ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(options);
        frame(
            MacAddr([0x02, 0xc1, 0, 0, 0, 1]),
            multicast_mac(&ALL_ROUTERS),
            src,
            ALL_ROUTERS,
            &icmp,
        )
    }

    #[test]
    fn a_solicitation_from_the_unspecified_address_has_no_lladdr() {
        let s = decode_solicitation_frame(&rs(ip("::"), &[])).unwrap();
        assert!(s.src_ip.is_unspecified());
        assert_eq!(s.source_lladdr, None);
        assert_eq!(
            decode_solicitation_frame(&rs(ip("::"), &[1, 1, 2, 0xc1, 0, 0, 0, 1])),
            Err(DecodeError::LladdrFromUnspecified)
        );
    }

    #[test]
    fn invalid_solicitations_are_dropped_for_their_reason() {
        let good = hex(CAPTURED_RS);
        let with = |at: usize, value: u8| {
            let mut f = good.clone();
            f[at] = value;
            f
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..53].to_vec(), "frame_too_short"),
            (with(12, 0x08), "ethertype"),
            (with(14, 0x40), "ip_version"),
            (with(19, 0x11), "payload_length"),
            (with(20, 0), "next_header"),
            (with(21, 64), "hop_limit"),
            (with(54, 135), "icmp_type"),
            (with(55, 1), "code"),
            (with(57, 0xab), "checksum"),
            (with(22, 0xff), "multicast_source"),
            (
                rs(ip("fe80::1"), &[1, 0, 0, 0, 0, 0, 0, 0]),
                "zero_length_option",
            ),
            (
                rs(ip("fe80::1"), &[1, 2, 0, 0, 0, 0, 0, 0]),
                "truncated_option",
            ),
        ];
        for (frame, reason) in cases {
            let err = decode_solicitation_frame(&frame).unwrap_err();
            assert_eq!(err.reason(), reason, "{err}");
        }
        // The payload length cut short: the ICMPv6 message is too short.
        let mut short = good.clone();
        short[18..20].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(
            decode_solicitation_frame(&short).unwrap_err().reason(),
            "message_too_short"
        );
    }

    #[test]
    fn invalid_adverts_are_rejected() {
        let good = hex(KNOWN_RA_HEX);
        let with = |at: usize, value: u8| {
            let mut f = good.clone();
            f[at] = value;
            f
        };
        assert_eq!(
            decode_ra(&good[..15]).unwrap_err().reason(),
            "message_too_short"
        );
        assert_eq!(decode_ra(&with(0, 133)).unwrap_err().reason(), "icmp_type");
        assert_eq!(decode_ra(&with(1, 1)).unwrap_err().reason(), "code");
        // SLLAO with length 0; prefix length 129; the last option cut short.
        assert_eq!(
            decode_ra(&with(17, 0)).unwrap_err().reason(),
            "zero_length_option"
        );
        assert_eq!(
            decode_ra(&with(34, 129)).unwrap_err().reason(),
            "prefix_length"
        );
        assert_eq!(
            decode_ra(&good[..good.len() - 1]).unwrap_err().reason(),
            "truncated_option"
        );
        // Known options with lengths their format forbids: MTU of 2 units,
        // PIO of 3, RDNSS of 2 (even) and 1 (no server).
        for (kind, units) in [(5u8, 2u8), (3, 3), (25, 2), (25, 1)] {
            let mut ra = good[..16].to_vec();
            ra.extend_from_slice(&[kind, units]);
            ra.resize(16 + 8 * usize::from(units), 0);
            assert_eq!(
                decode_ra(&ra),
                Err(DecodeError::OptionLength { kind, units }),
                "{kind}/{units}"
            );
        }
        // An unknown option is skipped.
        let mut ra = good.clone();
        ra.extend_from_slice(&[200, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(decode_ra(&ra).unwrap(), known_ra());
    }

    #[test]
    fn prefix_bits_beyond_the_length_are_ignored() {
        let mut ra = hex(KNOWN_RA_HEX);
        // First PIO: length 64 -> 32 keeps 2001:db8::/32.
        ra[34] = 32;
        let decoded = decode_ra(&ra).unwrap();
        assert_eq!(decoded.prefixes[0].prefix, "2001:db8::/32".parse().unwrap());
    }

    #[test]
    fn no_input_panics_the_decoders() {
        let mut next = xorshift(0x5eed_1234_abcd_0001);
        let seeds = [hex(CAPTURED_RS), hex(KNOWN_RA_HEX), rs(ip("::"), &[])];
        for round in 0..20_000 {
            let seed = &seeds[round % seeds.len()];
            let mut buf = seed.clone();
            match next() % 4 {
                // Random bytes of random length.
                0 => {
                    let len = (next() % 160) as usize;
                    buf = (0..len).map(|_| next() as u8).collect();
                }
                // Truncated.
                1 => buf.truncate((next() as usize) % (seed.len() + 1)),
                // A few bytes flipped.
                _ => {
                    for _ in 0..=(next() % 4) {
                        let at = (next() as usize) % buf.len();
                        buf[at] = next() as u8;
                    }
                }
            }
            let _ = decode_solicitation_frame(&buf);
            let _ = decode_ra(&buf);
            if buf.len() > 54 {
                let _ = decode_ra(&buf[54..]);
            }
        }
    }
}
