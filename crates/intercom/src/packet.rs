//! Encoding and decoding of intercom packets (the layout is in the crate docs).
//!
//! Decoding never panics and always terminates: every read goes through
//! slice patterns or checked splits, and every segment consumes at least its
//! two header bytes or ends the walk with an error.

use std::fmt;
use std::iter::FusedIterator;
use std::net::Ipv6Addr;

use l3roamd_types::MacAddr;

use crate::seen::DedupKey;
use crate::{HEADER_LEN, MAX_BASIC_ADDRS, SEEK_TTL, UNICAST_TTL, VERSION};

// ===== segment type numbers and lengths =====

/// SEEK segment 0: 2 reserved bytes and the sought address.
const SEEK_ADDRESS: u8 = 0;
/// CLAIM segment 0: the client's MAC.
const CLAIM_MAC: u8 = 0;
/// INFO segment 0: NAT64 lease and prefix.
const INFO_PLAT: u8 = 0;
/// INFO segment 1: the client's MAC and addresses.
const INFO_BASIC: u8 = 1;
/// ACK segment 0: the client's MAC.
const ACK_MAC: u8 = 0;
/// FOUND segment 0: laid out like SEEK's ADDRESS.
const FOUND_ADDRESS: u8 = 0;
/// FOUND segment 1: laid out like CLAIM's MAC.
const FOUND_MAC: u8 = 1;

/// Wire length of an ADDRESS segment (SEEK, FOUND).
const ADDRESS_LEN: u8 = 20;
/// Wire length of a MAC segment (CLAIM, ACK, FOUND).
const MAC_LEN: u8 = 8;
/// Wire length of a PLAT segment.
const PLAT_LEN: u8 = 20;
/// Wire length of a BASIC segment without addresses.
const BASIC_HEAD_LEN: u8 = 8;

/// The first packet type number this crate has no variant for.
const FIRST_OTHER_TYPE: u8 = 6;

// ===== packet types =====

/// The packet type byte (header offset 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PacketType {
    /// 0: look for an address on every node's client links (flooded).
    Seek,
    /// 1: "I serve this MAC now", unicast to the MAC's node-client address.
    Claim,
    /// 2: the claimed client's addresses, unicast back to the claimer.
    Info,
    /// 3: stops INFO retransmission.
    Ack,
    /// 4 (extension): "the client you seek is here", unicast to the seeker.
    Found,
    /// 5 (extension): an encapsulated IPv6 packet for the receiver's client link.
    Data,
    /// 6 and up: not known to this crate. Build it with [`PacketType::from_u8`]
    /// so that known numbers get their own variant.
    Other(u8),
}

impl PacketType {
    /// The type for a type byte.
    pub const fn from_u8(n: u8) -> PacketType {
        match n {
            0 => PacketType::Seek,
            1 => PacketType::Claim,
            2 => PacketType::Info,
            3 => PacketType::Ack,
            4 => PacketType::Found,
            5 => PacketType::Data,
            n => PacketType::Other(n),
        }
    }

    /// The type byte.
    pub const fn to_u8(self) -> u8 {
        match self {
            PacketType::Seek => 0,
            PacketType::Claim => 1,
            PacketType::Info => 2,
            PacketType::Ack => 3,
            PacketType::Found => 4,
            PacketType::Data => 5,
            PacketType::Other(n) => n,
        }
    }

    /// Whether C nodes know this type (SEEK, CLAIM, INFO, ACK); they re-flood
    /// the others while the ttl lasts, so those must go unicast with ttl 1.
    pub const fn is_classic(self) -> bool {
        self.to_u8() <= 3
    }
}

impl From<u8> for PacketType {
    fn from(n: u8) -> PacketType {
        PacketType::from_u8(n)
    }
}

impl From<PacketType> for u8 {
    fn from(kind: PacketType) -> u8 {
        kind.to_u8()
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketType::Seek => f.write_str("SEEK"),
            PacketType::Claim => f.write_str("CLAIM"),
            PacketType::Info => f.write_str("INFO"),
            PacketType::Ack => f.write_str("ACK"),
            PacketType::Found => f.write_str("FOUND"),
            PacketType::Data => f.write_str("DATA"),
            PacketType::Other(n) => write!(f, "type {n}"),
        }
    }
}

/// A packet type number of 6 or more, the only ones [`Body::Other`] may carry.
///
/// Keeping 0 to 5 out means an [`Body::Other`] can never smuggle raw bytes
/// into a SEEK/CLAIM/INFO/ACK that a C node would choke on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OtherType(u8);

impl OtherType {
    /// `Some` for 6 and up, `None` for the numbers that have their own variant.
    pub const fn new(n: u8) -> Option<OtherType> {
        if n >= FIRST_OTHER_TYPE {
            Some(OtherType(n))
        } else {
            None
        }
    }

    /// The type byte.
    pub const fn get(self) -> u8 {
        self.0
    }
}

// ===== errors =====

/// Why a datagram is not a well-formed intercom packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the 24-byte header.
    #[error("packet of {len} bytes is shorter than the {HEADER_LEN}-byte header")]
    TooShort {
        /// The datagram's length.
        len: usize,
    },
    /// A format version other than 0: dropped, never forwarded.
    #[error("unsupported intercom format version {0}")]
    BadVersion(u8),
    /// A segment length below 2 (it must count its own two header bytes).
    #[error("segment at offset {offset} has length {len}, less than its 2-byte header")]
    SegmentTooShort {
        /// Offset of the segment from the start of the packet.
        offset: usize,
        /// The length byte.
        len: u8,
    },
    /// A segment (or a lone trailing byte) running past the end of the packet.
    #[error("segment at offset {offset} needs {needed} bytes, only {available} left")]
    SegmentOverrun {
        /// Offset of the segment from the start of the packet.
        offset: usize,
        /// Bytes the segment claims (2 when not even its header fits).
        needed: usize,
        /// Bytes left in the packet from `offset`.
        available: usize,
    },
    /// A known fixed-size segment with another length (e.g. ADDRESS not 20).
    #[error("{packet} segment {segment} has length {len}, expected {expected}")]
    BadSegmentLength {
        /// The packet type the segment was found in.
        packet: PacketType,
        /// The segment type byte.
        segment: u8,
        /// The length byte.
        len: u8,
        /// The only length that segment may have.
        expected: u8,
    },
    /// An INFO BASIC segment whose length is not 8 + 16·n (n ≤ 15 follows
    /// from the one-byte length).
    #[error("INFO BASIC segment has length {len}, not 8 + 16·n")]
    BadBasicLength {
        /// The length byte.
        len: u8,
    },
    /// A mandatory segment is absent (SEEK without ADDRESS, INFO without BASIC...).
    #[error("{packet} packet lacks its {segment} segment")]
    MissingSegment {
        /// The packet type.
        packet: PacketType,
        /// The missing segment's name as in `docs/protocol.md`.
        segment: &'static str,
    },
    /// Two BASIC segments of one INFO name different clients.
    #[error("INFO has BASIC segments for two clients, {first} and {other}")]
    ConflictingBasicMac {
        /// The MAC of the first BASIC segment.
        first: MacAddr,
        /// The differing MAC of a later one.
        other: MacAddr,
    },
}

// ===== header =====

/// The fixed 24-byte packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Always [`VERSION`] (0): decoding refuses others, encoding writes 0.
    pub version: u8,
    /// Hop budget for flooding; 1 on unicast packets.
    pub ttl: u8,
    /// The packet type.
    pub kind: PacketType,
    /// Random per packet (but constant per process on C nodes, bug D1).
    pub nonce: u32,
    /// Node address of the originating node; kept unchanged by re-floods.
    pub sender: Ipv6Addr,
}

impl Header {
    /// Decodes the header at the start of `bytes`, ignoring what follows;
    /// cheap enough to run before deciding whether to decode the whole packet.
    pub fn decode(bytes: &[u8]) -> Result<Header, DecodeError> {
        let Some((head, _)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(DecodeError::TooShort { len: bytes.len() });
        };
        let [version, ttl, kind, _reserved, n0, n1, n2, n3, sender @ ..] = *head;
        if version != VERSION {
            return Err(DecodeError::BadVersion(version));
        }
        Ok(Header {
            version,
            ttl,
            kind: PacketType::from_u8(kind),
            nonce: u32::from_be_bytes([n0, n1, n2, n3]),
            sender: Ipv6Addr::from(sender),
        })
    }

    /// Appends the 24 header bytes to `out` (version 0, reserved byte 0).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[VERSION, self.ttl, self.kind.to_u8(), 0]);
        out.extend_from_slice(&self.nonce.to_be_bytes());
        out.extend_from_slice(&self.sender.octets());
    }

    /// The key flood duplicate suppression starts from.
    pub fn dedup_key(&self) -> DedupKey {
        DedupKey {
            sender: self.sender,
            kind: self.kind,
            nonce: self.nonce,
        }
    }
}

// ===== segments =====

/// One segment of a packet: `type | length | body`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// The segment type byte (its meaning depends on the packet type).
    pub kind: u8,
    /// Offset of the segment from the start of the packet.
    pub offset: usize,
    /// The bytes after the two header bytes.
    pub body: &'a [u8],
}

impl Segment<'_> {
    /// The length byte as on the wire (body plus 2).
    pub fn wire_len(&self) -> u8 {
        // A segment body comes from a one-byte length, so this always fits.
        u8::try_from(self.body.len() + 2).unwrap_or(u8::MAX)
    }
}

/// Iterator over the segments after the header; see [`segments`].
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    rest: &'a [u8],
    offset: usize,
    failed: bool,
}

/// Walks the segments of a packet `payload` (the bytes after the 24-byte
/// header), for extension types kept as [`Body::Other`].
///
/// Yields each segment, unknown types included; the first malformed segment
/// yields an error and ends the walk. Offsets count from the start of the
/// packet, header included.
pub fn segments(payload: &[u8]) -> Segments<'_> {
    Segments {
        rest: payload,
        offset: HEADER_LEN,
        failed: false,
    }
}

impl<'a> Iterator for Segments<'a> {
    type Item = Result<Segment<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let item = self.split_next();
        self.failed = item.is_err();
        Some(item)
    }
}

impl FusedIterator for Segments<'_> {}

impl<'a> Segments<'a> {
    /// Splits off the next segment; on success at least two bytes are consumed.
    fn split_next(&mut self) -> Result<Segment<'a>, DecodeError> {
        let offset = self.offset;
        let available = self.rest.len();
        let [kind, len, tail @ ..] = self.rest else {
            return Err(DecodeError::SegmentOverrun {
                offset,
                needed: 2,
                available,
            });
        };
        let Some(body_len) = usize::from(*len).checked_sub(2) else {
            return Err(DecodeError::SegmentTooShort { offset, len: *len });
        };
        let Some((body, rest)) = tail.split_at_checked(body_len) else {
            return Err(DecodeError::SegmentOverrun {
                offset,
                needed: usize::from(*len),
                available,
            });
        };
        self.rest = rest;
        self.offset += usize::from(*len);
        Ok(Segment {
            kind: *kind,
            offset,
            body,
        })
    }
}

/// The body of a fixed-size segment, or the error naming its wrong length.
fn fixed<'a, const N: usize>(
    packet: PacketType,
    segment: &Segment<'a>,
) -> Result<&'a [u8; N], DecodeError> {
    segment
        .body
        .try_into()
        .map_err(|_| DecodeError::BadSegmentLength {
            packet,
            segment: segment.kind,
            len: segment.wire_len(),
            expected: u8::try_from(N + 2).unwrap_or(u8::MAX),
        })
}

/// An ADDRESS segment's address (the two reserved bytes are ignored).
fn address_segment(packet: PacketType, segment: &Segment<'_>) -> Result<Ipv6Addr, DecodeError> {
    let [_reserved0, _reserved1, addr @ ..] = *fixed::<18>(packet, segment)?;
    Ok(Ipv6Addr::from(addr))
}

/// A MAC segment's MAC.
fn mac_segment(packet: PacketType, segment: &Segment<'_>) -> Result<MacAddr, DecodeError> {
    Ok(MacAddr(*fixed::<6>(packet, segment)?))
}

/// A PLAT segment's lease and prefix.
fn plat_segment(segment: &Segment<'_>) -> Result<Plat, DecodeError> {
    let [l0, l1, prefix @ ..] = *fixed::<18>(PacketType::Info, segment)?;
    Ok(Plat {
        lease: u16::from_be_bytes([l0, l1]),
        prefix: Ipv6Addr::from(prefix),
    })
}

/// A BASIC segment's MAC and addresses.
fn basic_segment(segment: &Segment<'_>) -> Result<(MacAddr, Vec<Ipv6Addr>), DecodeError> {
    let bad = || DecodeError::BadBasicLength {
        len: segment.wire_len(),
    };
    let (mac, addrs) = segment.body.split_first_chunk::<6>().ok_or_else(bad)?;
    let chunks = addrs.chunks_exact(16);
    if !chunks.remainder().is_empty() {
        return Err(bad());
    }
    let addrs = chunks
        .filter_map(|chunk| <[u8; 16]>::try_from(chunk).ok())
        .map(Ipv6Addr::from)
        .collect();
    Ok((MacAddr(*mac), addrs))
}

/// Appends a segment header for a body of `body_len` bytes (at most 253).
fn put_segment_header(out: &mut Vec<u8>, kind: u8, body_len: usize) {
    debug_assert!(body_len <= 253, "segment body too long");
    out.extend_from_slice(&[kind, (body_len + 2) as u8]);
}

/// Appends an ADDRESS segment.
fn put_address(out: &mut Vec<u8>, kind: u8, addr: &Ipv6Addr) {
    put_segment_header(out, kind, usize::from(ADDRESS_LEN) - 2);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&addr.octets());
}

/// Appends a MAC segment.
fn put_mac(out: &mut Vec<u8>, kind: u8, mac: &MacAddr) {
    put_segment_header(out, kind, usize::from(MAC_LEN) - 2);
    out.extend_from_slice(&mac.octets());
}

// ===== packet bodies =====

/// INFO's PLAT segment: NAT64 information for nodes translating IPv4 clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Plat {
    /// Lease time in seconds (the C node always sends 0).
    pub lease: u16,
    /// The NAT64 prefix; `::` means none.
    pub prefix: Ipv6Addr,
}

impl Plat {
    /// The all-zero PLAT a C node sends when it has no NAT64 prefix.
    pub const NONE: Plat = Plat {
        lease: 0,
        prefix: Ipv6Addr::UNSPECIFIED,
    };

    /// The prefix, unless it is `::` ("none": a receiver must not adopt it).
    pub fn nat64_prefix(&self) -> Option<Ipv6Addr> {
        (!self.prefix.is_unspecified()).then_some(self.prefix)
    }
}

/// An INFO body: everything the previous node knew about a client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Info {
    /// The client's MAC (BASIC segment).
    pub mac: MacAddr,
    /// Its addresses in the order learned; may include its link-local one.
    pub addrs: Vec<Ipv6Addr>,
    /// The PLAT segment if present (C nodes always send one, often all-zero).
    pub plat: Option<Plat>,
}

/// What a packet says, by packet type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Body {
    /// SEEK: solicit this address on your client links.
    Seek {
        /// The address sought.
        addr: Ipv6Addr,
    },
    /// CLAIM: the sender serves this client now.
    Claim {
        /// The client's MAC.
        mac: MacAddr,
    },
    /// INFO: the claimed client's addresses.
    Info(Info),
    /// ACK: the INFO for this client arrived.
    Ack {
        /// The client's MAC.
        mac: MacAddr,
    },
    /// FOUND (extension): the sought address is on the sender's client link.
    Found {
        /// The address that was sought.
        addr: Ipv6Addr,
        /// The MAC of the client that has it.
        mac: MacAddr,
    },
    /// DATA (extension): one IPv6 packet, opaque to this crate.
    Data {
        /// The raw IPv6 packet, following the header directly.
        payload: Vec<u8>,
    },
    /// A packet type this crate does not know, kept as raw bytes.
    Other {
        /// Its type number (6 or more).
        kind: OtherType,
        /// Everything after the header (walk it with [`segments`] if segmented).
        payload: Vec<u8>,
    },
}

impl Body {
    /// The packet type this body goes with.
    pub fn kind(&self) -> PacketType {
        match self {
            Body::Seek { .. } => PacketType::Seek,
            Body::Claim { .. } => PacketType::Claim,
            Body::Info(_) => PacketType::Info,
            Body::Ack { .. } => PacketType::Ack,
            Body::Found { .. } => PacketType::Found,
            Body::Data { .. } => PacketType::Data,
            Body::Other { kind, .. } => PacketType::Other(kind.get()),
        }
    }

    /// Decodes the bytes after the header of a packet of type `kind`.
    fn decode(kind: PacketType, payload: &[u8]) -> Result<Body, DecodeError> {
        match kind {
            PacketType::Seek => decode_seek(payload),
            PacketType::Claim => Ok(Body::Claim {
                mac: decode_single_mac(kind, CLAIM_MAC, payload)?,
            }),
            PacketType::Info => decode_info(payload).map(Body::Info),
            PacketType::Ack => Ok(Body::Ack {
                mac: decode_single_mac(kind, ACK_MAC, payload)?,
            }),
            PacketType::Found => decode_found(payload),
            PacketType::Data => Ok(Body::Data {
                payload: payload.to_vec(),
            }),
            PacketType::Other(n) => Ok(match OtherType::new(n) {
                Some(kind) => Body::Other {
                    kind,
                    payload: payload.to_vec(),
                },
                // Unreachable through from_u8; decode such a header as what it names.
                None => return Body::decode(PacketType::from_u8(n), payload),
            }),
        }
    }

    /// Appends the bytes after the header.
    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Body::Seek { addr } => put_address(out, SEEK_ADDRESS, addr),
            Body::Claim { mac } => put_mac(out, CLAIM_MAC, mac),
            Body::Info(info) => encode_info(info, out),
            Body::Ack { mac } => put_mac(out, ACK_MAC, mac),
            Body::Found { addr, mac } => {
                put_address(out, FOUND_ADDRESS, addr);
                put_mac(out, FOUND_MAC, mac);
            }
            Body::Data { payload } | Body::Other { payload, .. } => out.extend_from_slice(payload),
        }
    }

    /// Number of bytes [`Body::encode_into`] appends.
    fn encoded_len(&self) -> usize {
        match self {
            Body::Seek { .. } => usize::from(ADDRESS_LEN),
            Body::Claim { .. } | Body::Ack { .. } => usize::from(MAC_LEN),
            Body::Info(info) => {
                let plat = if info.plat.is_some() {
                    usize::from(PLAT_LEN)
                } else {
                    0
                };
                let basics = info.addrs.len().div_ceil(MAX_BASIC_ADDRS).max(1);
                plat + basics * usize::from(BASIC_HEAD_LEN) + info.addrs.len() * 16
            }
            Body::Found { .. } => usize::from(ADDRESS_LEN) + usize::from(MAC_LEN),
            Body::Data { payload } | Body::Other { payload, .. } => payload.len(),
        }
    }
}

// ===== decoding bodies =====

/// SEEK: the first ADDRESS segment.
fn decode_seek(payload: &[u8]) -> Result<Body, DecodeError> {
    let mut addr = None;
    for segment in segments(payload) {
        let segment = segment?;
        if segment.kind == SEEK_ADDRESS {
            let found = address_segment(PacketType::Seek, &segment)?;
            addr.get_or_insert(found);
        }
    }
    match addr {
        Some(addr) => Ok(Body::Seek { addr }),
        None => Err(DecodeError::MissingSegment {
            packet: PacketType::Seek,
            segment: "ADDRESS",
        }),
    }
}

/// CLAIM and ACK: the first MAC segment.
fn decode_single_mac(
    packet: PacketType,
    mac_kind: u8,
    payload: &[u8],
) -> Result<MacAddr, DecodeError> {
    let mut mac = None;
    for segment in segments(payload) {
        let segment = segment?;
        if segment.kind == mac_kind {
            let found = mac_segment(packet, &segment)?;
            mac.get_or_insert(found);
        }
    }
    mac.ok_or(DecodeError::MissingSegment {
        packet,
        segment: "MAC",
    })
}

/// INFO: the first PLAT, and the addresses of every BASIC (same MAC in all).
fn decode_info(payload: &[u8]) -> Result<Info, DecodeError> {
    let mut plat = None;
    let mut mac: Option<MacAddr> = None;
    let mut addrs = Vec::new();
    for segment in segments(payload) {
        let segment = segment?;
        match segment.kind {
            INFO_PLAT => {
                let found = plat_segment(&segment)?;
                plat.get_or_insert(found);
            }
            INFO_BASIC => {
                let (other, more) = basic_segment(&segment)?;
                match mac {
                    None => mac = Some(other),
                    Some(first) if first != other => {
                        return Err(DecodeError::ConflictingBasicMac { first, other })
                    }
                    Some(_) => {}
                }
                addrs.extend(more);
            }
            _ => {}
        }
    }
    let Some(mac) = mac else {
        return Err(DecodeError::MissingSegment {
            packet: PacketType::Info,
            segment: "BASIC",
        });
    };
    Ok(Info { mac, addrs, plat })
}

/// FOUND: the first ADDRESS and the first MAC segment, both mandatory.
fn decode_found(payload: &[u8]) -> Result<Body, DecodeError> {
    let packet = PacketType::Found;
    let mut addr = None;
    let mut mac = None;
    for segment in segments(payload) {
        let segment = segment?;
        match segment.kind {
            FOUND_ADDRESS => {
                let found = address_segment(packet, &segment)?;
                addr.get_or_insert(found);
            }
            FOUND_MAC => {
                let found = mac_segment(packet, &segment)?;
                mac.get_or_insert(found);
            }
            _ => {}
        }
    }
    let addr = addr.ok_or(DecodeError::MissingSegment {
        packet,
        segment: "ADDRESS",
    })?;
    let mac = mac.ok_or(DecodeError::MissingSegment {
        packet,
        segment: "MAC",
    })?;
    Ok(Body::Found { addr, mac })
}

// ===== encoding bodies =====

/// INFO: PLAT first when present (as the C node does), then BASIC segments of
/// at most 15 addresses each (one, possibly empty, when there are none).
fn encode_info(info: &Info, out: &mut Vec<u8>) {
    if let Some(plat) = &info.plat {
        put_segment_header(out, INFO_PLAT, usize::from(PLAT_LEN) - 2);
        out.extend_from_slice(&plat.lease.to_be_bytes());
        out.extend_from_slice(&plat.prefix.octets());
    }
    let mut chunks = info.addrs.chunks(MAX_BASIC_ADDRS).peekable();
    if chunks.peek().is_none() {
        put_segment_header(out, INFO_BASIC, 6);
        out.extend_from_slice(&info.mac.octets());
    }
    for chunk in chunks {
        put_segment_header(out, INFO_BASIC, 6 + 16 * chunk.len());
        out.extend_from_slice(&info.mac.octets());
        for addr in chunk {
            out.extend_from_slice(&addr.octets());
        }
    }
}

// ===== packets =====

/// A whole intercom packet: the header fields and what the packet says.
///
/// The packet type is not stored twice: it is [`Body::kind`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Packet {
    /// Hop budget; [`SEEK_TTL`] for an originated SEEK, [`UNICAST_TTL`] otherwise.
    pub ttl: u8,
    /// Random per packet.
    pub nonce: u32,
    /// Node address of the originating node.
    pub sender: Ipv6Addr,
    /// Type and contents.
    pub body: Body,
}

impl Packet {
    /// A SEEK for `addr`, ttl 255, to be multicast.
    pub fn seek(sender: Ipv6Addr, nonce: u32, addr: Ipv6Addr) -> Packet {
        Packet::new(SEEK_TTL, sender, nonce, Body::Seek { addr })
    }

    /// A CLAIM for `mac`, ttl 1, to be sent to the MAC's node-client address.
    pub fn claim(sender: Ipv6Addr, nonce: u32, mac: MacAddr) -> Packet {
        Packet::new(UNICAST_TTL, sender, nonce, Body::Claim { mac })
    }

    /// An INFO without PLAT (a C receiver then keeps its own NAT64 prefix), ttl 1.
    pub fn info(sender: Ipv6Addr, nonce: u32, mac: MacAddr, addrs: Vec<Ipv6Addr>) -> Packet {
        let info = Info {
            mac,
            addrs,
            plat: None,
        };
        Packet::new(UNICAST_TTL, sender, nonce, Body::Info(info))
    }

    /// An ACK for `mac`, ttl 1, to be sent to the INFO's sender.
    pub fn ack(sender: Ipv6Addr, nonce: u32, mac: MacAddr) -> Packet {
        Packet::new(UNICAST_TTL, sender, nonce, Body::Ack { mac })
    }

    /// A FOUND for `addr` held by `mac`, ttl 1, to be sent to the SEEK's sender.
    pub fn found(sender: Ipv6Addr, nonce: u32, addr: Ipv6Addr, mac: MacAddr) -> Packet {
        Packet::new(UNICAST_TTL, sender, nonce, Body::Found { addr, mac })
    }

    /// A DATA carrying the IPv6 packet `payload`, ttl 1.
    pub fn data(sender: Ipv6Addr, nonce: u32, payload: Vec<u8>) -> Packet {
        Packet::new(UNICAST_TTL, sender, nonce, Body::Data { payload })
    }

    /// A packet from its parts.
    pub fn new(ttl: u8, sender: Ipv6Addr, nonce: u32, body: Body) -> Packet {
        Packet {
            ttl,
            nonce,
            sender,
            body,
        }
    }

    /// The packet type.
    pub fn kind(&self) -> PacketType {
        self.body.kind()
    }

    /// The header this packet is encoded with.
    pub fn header(&self) -> Header {
        Header {
            version: VERSION,
            ttl: self.ttl,
            kind: self.kind(),
            nonce: self.nonce,
            sender: self.sender,
        }
    }

    /// The (sender, type, nonce) key of flood duplicate suppression.
    pub fn dedup_key(&self) -> DedupKey {
        self.header().dedup_key()
    }

    /// Decodes one datagram.
    pub fn decode(bytes: &[u8]) -> Result<Packet, DecodeError> {
        let header = Header::decode(bytes)?;
        let payload = bytes.get(HEADER_LEN..).unwrap_or_default();
        Ok(Packet {
            ttl: header.ttl,
            nonce: header.nonce,
            sender: header.sender,
            body: Body::decode(header.kind, payload)?,
        })
    }

    /// Encodes the packet into a new buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoded packet to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        self.header().encode_into(out);
        self.body.encode_into(out);
    }

    /// Length of the encoded packet in bytes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body.encoded_len()
    }
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0]);

    #[test]
    fn packet_type_numbers_round_trip() {
        for n in 0..=u8::MAX {
            assert_eq!(PacketType::from_u8(n).to_u8(), n);
            assert_eq!(PacketType::from_u8(n).is_classic(), n <= 3);
        }
        assert_eq!(PacketType::from_u8(4), PacketType::Found);
        assert_eq!(PacketType::from_u8(6), PacketType::Other(6));
        assert_eq!(PacketType::Other(9).to_string(), "type 9");
        assert_eq!(OtherType::new(5), None);
        assert_eq!(OtherType::new(6).map(OtherType::get), Some(6));
    }

    #[test]
    fn header_layout() {
        let packet = Packet::claim(addr("fdff::2"), 0x0102_0304, MAC);
        let bytes = packet.encode();
        assert_eq!(&bytes[..8], &[0, 1, 1, 0, 1, 2, 3, 4]);
        assert_eq!(&bytes[8..24], &addr("fdff::2").octets());
        assert_eq!(Header::decode(&bytes).unwrap(), packet.header());
    }

    #[test]
    fn header_reserved_byte_is_ignored() {
        let mut bytes = Packet::ack(addr("fdff::3"), 7, MAC).encode();
        bytes[3] = 0xaa;
        assert_eq!(
            Packet::decode(&bytes).unwrap(),
            Packet::ack(addr("fdff::3"), 7, MAC)
        );
    }

    #[test]
    fn encoded_len_matches() {
        let many: Vec<Ipv6Addr> = (0..40u16)
            .map(|i| Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, i))
            .collect();
        for n in [0, 1, 15, 16, 30, 31, 40] {
            let mut packet = Packet::info(addr("fdff::1"), 1, MAC, many[..n].to_vec());
            assert_eq!(packet.encode().len(), packet.encoded_len(), "{n} addresses");
            if let Body::Info(info) = &mut packet.body {
                info.plat = Some(Plat::NONE);
            }
            assert_eq!(
                packet.encode().len(),
                packet.encoded_len(),
                "{n} addresses + PLAT"
            );
        }
    }

    #[test]
    fn info_splits_basic_segments_at_fifteen() {
        let addrs: Vec<Ipv6Addr> = (0..16u16)
            .map(|i| Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, i))
            .collect();
        let packet = Packet::info(addr("fdff::1"), 1, MAC, addrs);
        let bytes = packet.encode();
        let segs: Vec<_> = segments(&bytes[HEADER_LEN..]).map(Result::unwrap).collect();
        assert_eq!(segs.len(), 2);
        assert_eq!(
            (segs[0].kind, segs[0].wire_len()),
            (INFO_BASIC, 8 + 16 * 15)
        );
        assert_eq!((segs[1].kind, segs[1].wire_len()), (INFO_BASIC, 8 + 16));
        assert_eq!(Packet::decode(&bytes).unwrap(), packet);
    }

    #[test]
    fn info_without_addresses_has_one_empty_basic() {
        let packet = Packet::info(addr("fdff::1"), 1, MAC, vec![]);
        let bytes = packet.encode();
        assert_eq!(&bytes[HEADER_LEN..], &[1, 8, 2, 0, 0, 0, 1, 0]);
        assert_eq!(Packet::decode(&bytes).unwrap(), packet);
    }

    #[test]
    fn segments_walk_stops_at_first_error() {
        let mut walk = segments(&[9, 3, 0xff, 7]);
        let first = walk.next().unwrap().unwrap();
        assert_eq!((first.kind, first.offset, first.body), (9, 24, &[0xff][..]));
        assert_eq!(
            walk.next(),
            Some(Err(DecodeError::SegmentOverrun {
                offset: 27,
                needed: 2,
                available: 1
            }))
        );
        assert_eq!(walk.next(), None);
        assert_eq!(walk.next(), None);
    }

    #[test]
    fn plat_none_is_not_a_prefix() {
        assert_eq!(Plat::NONE.nat64_prefix(), None);
        let plat = Plat {
            lease: 60,
            prefix: addr("64:ff9b::"),
        };
        assert_eq!(plat.nat64_prefix(), Some(addr("64:ff9b::")));
    }
}
