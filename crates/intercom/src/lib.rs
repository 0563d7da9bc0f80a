//! Wire codec of the mesh intercom protocol: the UDP packets l3roamd daemons
//! exchange to find and hand over roaming clients.
//!
//! This crate turns bytes into [`Packet`]s and back, byte for byte compatible
//! with the C l3roamd (wire format 0, `docs/protocol.md`), and keeps the
//! small amount of state that belongs to the wire format itself: the
//! duplicate filter for flooded packets ([`SeenCache`]). It does no I/O: no
//! sockets, no clocks (time is passed in as [`std::time::Instant`]), no async.
//! Every other crate speaks in these structs, never in bytes.
//!
//! ```
//! use l3roamd_intercom::{Body, Packet};
//!
//! // CLAIM for 02:00:00:00:01:00 from fdff::2, as captured from a C node.
//! let bytes = [
//!     0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x56, 0x0f, // version, ttl, type, reserved, nonce
//!     0xfd, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // sender
//!     0x00, 0x08, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, // MAC segment
//! ];
//! let packet = Packet::decode(&bytes)?;
//! assert_eq!(packet.sender, "fdff::2".parse::<std::net::Ipv6Addr>()?);
//! assert!(matches!(packet.body, Body::Claim { mac } if mac.to_string() == "02:00:00:00:01:00"));
//! assert_eq!(packet.encode(), bytes);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Wire format
//!
//! All integers are big-endian. A packet is a 24-byte header:
//!
//! ```text
//!  0        1        2        3        4                 8                       24
//! +--------+--------+--------+--------+-----------------+-----------------------+
//! |version |  ttl   |  type  |reserved|      nonce      |  sender (IPv6, 16 B)  |
//! +--------+--------+--------+--------+-----------------+-----------------------+
//! ```
//!
//! followed, for every packet type except DATA, by segments
//! `type (1) | length (1) | body`, where the length counts the whole segment
//! including its two header bytes (so it is at least 2 and at most 255).
//! Segment type numbers are scoped by the packet type.
//!
//! | packet | type | segments (in the order we encode them) |
//! |---|---|---|
//! | SEEK  | 0 | ADDRESS: seg 0, len 20 = 2 reserved zero bytes + 16-byte address |
//! | CLAIM | 1 | MAC: seg 0, len 8 = 6-byte MAC |
//! | INFO  | 2 | PLAT (optional): seg 0, len 20 = u16 lease + 16-byte NAT64 prefix; then BASIC: seg 1, len 8 + 16·n = 6-byte MAC + n addresses, n ≤ 15 |
//! | ACK   | 3 | MAC: seg 0, len 8 = 6-byte MAC |
//! | FOUND | 4 | extension, see below |
//! | DATA  | 5 | extension, see below |
//!
//! ## Extension packet types
//!
//! New packet types are ignored by C nodes as long as they are sent unicast
//! with ttl 1 (a C node re-floods an unknown type while its ttl lasts, and
//! never parses its body). Both extensions below are therefore unicast-only,
//! ttl 1, between our own daemons.
//!
//! **FOUND (type 4)**: "the client you seek is here". Sent by the node that
//! found a sought address on its client link, unicast to the SEEK's header
//! sender, so the seeking node can hand its held packets over without waiting
//! for the host route to converge.
//!
//! ```text
//! header (24 bytes, type 4, ttl 1)
//! segment 0 ADDRESS, length 20: 00 14 | 00 00 (reserved) | address (16 bytes)
//! segment 1 MAC,     length 8:  01 08 | client MAC (6 bytes)
//! ```
//!
//! Both segments are mandatory; they are encoded in that order; unknown
//! segments are skipped as in every segmented packet.
//!
//! **DATA (type 5)**: one encapsulated IPv6 packet for the receiver to put on
//! its client link (held packets carried to the node that now serves the
//! client). A segment length is one byte, so an IPv6 packet cannot fit in a
//! segment: DATA has **no segments**. The raw IPv6 packet follows the 24-byte
//! header directly and runs to the end of the UDP payload:
//!
//! ```text
//! header (24 bytes, type 5, ttl 1) | IPv6 packet (rest of the datagram)
//! ```
//!
//! The codec treats the payload as opaque bytes (it may even be empty); the
//! receiver validates it as IPv6 before putting it on a link. A 1500-byte
//! client packet becomes a 1524-byte UDP payload, which IPv6 fragments at the
//! source when the mesh MTU is smaller.
//!
//! Any other type (6 and up) decodes to [`Body::Other`] with its payload kept
//! as raw bytes, which [`segments`] can walk if the type is segmented.
//!
//! # Decisions the protocol leaves open
//!
//! - **Unknown segments** are skipped by their length on receipt and are not
//!   kept: re-encoding a decoded packet drops them. Our types cannot express a
//!   segment a C node does not know inside SEEK/CLAIM/INFO/ACK, so this crate
//!   can never emit one of the segments that hang a C node (its parser loops
//!   forever on an unknown segment type).
//! - **Duplicate single-valued segments** (a second ADDRESS, MAC or PLAT):
//!   the first one wins, the others are skipped. (The C node takes the last
//!   MAC/PLAT and solicits every ADDRESS; no node sends duplicates.)
//! - **Several BASIC segments** in one INFO: their addresses are collected in
//!   order into one list; they must all name the same MAC, otherwise the
//!   packet is refused ([`DecodeError::ConflictingBasicMac`]). The encoder
//!   splits more than 15 addresses into several BASIC segments of at most 15
//!   (which the C parser also appends). But C nodes are reported to crash on
//!   INFOs of about 5 addresses and more: a daemon that may talk to C nodes
//!   should cap what it announces ([`C_SAFE_INFO_ADDRS`]).
//! - **PLAT**: the C node always sends it first, all zeros when it has no
//!   NAT64 prefix, and a C receiver copies it over its own prefix for every
//!   INFO. We keep it as [`Info::plat`] (`Some` even when all-zero, so C
//!   packets re-encode byte for byte); [`Plat::nat64_prefix`] says whether it
//!   carries a usable prefix. Our constructors leave it out by default, which
//!   keeps a C receiver's prefix intact.
//! - **Unknown packet types** are not an error: they decode to
//!   [`Body::Other`] so a daemon can count them, drop them or re-flood them.
//! - **Reserved bytes** (header byte 3, the two bytes before a SEEK/FOUND
//!   address) are written as zero and ignored on receipt.
//! - **Truncation**: the format has no total length, so an INFO cut exactly
//!   between two BASIC segments still decodes (with fewer addresses); any other
//!   cut of a SEEK/CLAIM/INFO/ACK/FOUND is an error. UDP delivers whole
//!   datagrams, so this does not arise on the wire.

// The decoder reads untrusted bytes: no indexing that could panic, only slice
// patterns and `get` (tests may index, clippy.toml).
#![deny(clippy::indexing_slicing)]

pub mod auth;
mod packet;
mod seen;

use std::net::Ipv6Addr;

pub use auth::{AuthError, Authenticator, Key, Mode as AuthMode, Opened};
pub use packet::{
    segments, Body, DecodeError, Header, Info, OtherType, Packet, PacketType, Plat, Segment,
    Segments,
};
pub use seen::{DedupKey, SeenCache};

/// Re-exported because packets carry client MACs.
pub use l3roamd_types::MacAddr;

// ===== protocol constants =====

/// UDP port of the intercom, used as both source and destination.
pub const PORT: u16 = 5523;

/// Link-local multicast group joined on every mesh interface (`ff02::5523`).
pub const MULTICAST_GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x5523);

/// The wire format version this crate speaks; other versions are refused.
pub const VERSION: u8 = 0;

/// Header ttl of an originated (multicast, flooded) SEEK.
pub const SEEK_TTL: u8 = 255;

/// Header ttl of every unicast packet, so that nobody re-floods it.
pub const UNICAST_TTL: u8 = 1;

/// Length of the fixed packet header in bytes.
pub const HEADER_LEN: usize = 24;

/// Most addresses one BASIC segment can carry (8 + 16·15 = 248 ≤ 255).
pub const MAX_BASIC_ADDRS: usize = 15;

/// Most addresses an INFO should carry when C nodes may receive it; the C
/// daemon is reported to crash at about 5 addresses.
pub const C_SAFE_INFO_ADDRS: usize = 4;
