//! Authenticated intercom (opt-in): a keyed MAC trailer on every packet we
//! send, checked on every packet we receive.
//!
//! The contract: a daemon owns one [`Authenticator`] per socket family it
//! speaks (ndproxy SEEK, client-db CLAIM/INFO/ACK, core FOUND/DATA), calls
//! [`Authenticator::seal`] on the encoded bytes just before a send and
//! [`Authenticator::open`] on the received bytes before decoding them. Time
//! comes in as [`Instant`] (for the bounded replay table) and, once at
//! construction, as the sender's starting counter (wall-clock microseconds,
//! chosen by the caller), so this module has no clock of its own.
//!
//! # The trailer (`docs/protocol.md`, "Authentication trailer")
//!
//! One segment appended after all other segments (for DATA, after the IPv6
//! packet), 28 bytes:
//!
//! ```text
//! 0xad | 28 | key id (1) | 0 (reserved) | counter (u64, big-endian) | MAC (16)
//! ```
//!
//! MAC = the first 16 bytes of HMAC-SHA-256(key, IPv6 source (16 bytes) ||
//! the packet up to and including the counter). The IPv6 source address is
//! the pseudo-header: a packet captured on one link and re-sent from another
//! address does not verify. The MAC covers ttl, so a forwarder of a flooded
//! SEEK seals its copy anew (it sends it from its own address anyway).
//!
//! # Replay protection
//!
//! The counter starts, when the daemon starts, at the wall clock in
//! microseconds since 1970 and goes up by one per packet. A receiver keeps,
//! per (IPv6 source, packet type), the highest counter accepted and a
//! 64-packet window below it (as IPsec/ESP): a counter at or below the
//! window, or seen within it, is a replay. A restarted sender starts above
//! everything it sent before (its clock has moved on by more microseconds
//! than it sent packets), so it is not locked out; that needs a clock that
//! does not run backwards across a restart (NTP, or OpenWrt's sysfixtime,
//! which sets the clock at boot to the newest file in /etc). A restarted
//! receiver has no state and accepts the first packet of each sender and
//! type once (trust on first use): the price of needing no persistent state
//! and no challenge exchange (RFC 8967 uses a challenge here).

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv6Addr;
use std::time::Instant;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::packet::segments;
use crate::{PacketType, HEADER_LEN};

/// Segment type of the trailer, the same in every packet type.
pub const TRAILER_SEGMENT: u8 = 0xad;
/// Length of the trailer on the wire, its two header bytes included.
pub const TRAILER_LEN: usize = 28;
/// Bytes of the truncated HMAC-SHA-256 (128 bits, as RFC 4868 truncates).
pub const MAC_LEN: usize = 16;
/// Shortest key accepted: 256 bits, the HMAC-SHA-256 output size.
pub const MIN_KEY_LEN: usize = 32;
/// Packets below the highest counter of a sender that may still arrive late.
pub const REPLAY_WINDOW: u64 = 64;
/// Most (source, type) pairs whose counters are remembered; beyond this the
/// least recently heard is forgotten. Only verified packets make entries,
/// so only key holders can fill the table.
pub const MAX_SENDERS: usize = 4096;

type HmacSha256 = Hmac<Sha256>;

// ===== configuration =====

/// What a daemon does with the trailer (`mesh.intercom_auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Send plain packets (safe with C nodes), accept everything: an
    /// unverified trailer is skipped as an unknown segment.
    #[default]
    Off,
    /// Send signed packets, accept unsigned ones (counted); drop signed
    /// ones that fail. The migration step once no C node remains.
    Sign,
    /// Send signed packets, drop unsigned, bad and replayed ones.
    Require,
}

impl Mode {
    /// The mode for its configuration word.
    pub fn parse(word: &str) -> Option<Mode> {
        match word {
            "off" => Some(Mode::Off),
            "sign" => Some(Mode::Sign),
            "require" => Some(Mode::Require),
            _ => None,
        }
    }

    /// Its configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Sign => "sign",
            Mode::Require => "require",
        }
    }
}

/// The shared mesh key. Its bytes are never printed.
#[derive(Clone)]
pub struct Key {
    bytes: Vec<u8>,
    id: u8,
    /// HMAC keyed once: cloning it saves hashing the padded key twice per
    /// packet.
    keyed: HmacSha256,
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Key {}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Key(id {}, {} bytes, redacted)",
            self.id,
            self.bytes.len()
        )
    }
}

/// A key shorter than [`MIN_KEY_LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a key must have at least {MIN_KEY_LEN} bytes, this one has {0}")]
pub struct KeyTooShort(pub usize);

impl Key {
    /// A key from its raw bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Key, KeyTooShort> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyTooShort(bytes.len()));
        }
        // The id tells "another key" apart from "a forged packet" in the
        // counters and lets a receiver skip the HMAC for a foreign key.
        let digest = Sha256::new()
            .chain_update(b"l3roamd intercom key id")
            .chain_update(&bytes)
            .finalize();
        let id = digest.first().copied().unwrap_or(0);
        // HMAC takes keys of any length, so this cannot fail.
        let keyed = <HmacSha256 as Mac>::new_from_slice(&bytes)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        Ok(Key { bytes, id, keyed })
    }

    /// The one-byte key id carried in the trailer (derived from the key).
    pub fn id(&self) -> u8 {
        self.id
    }

    fn mac(&self, source: Ipv6Addr, covered: &[u8]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(&source.octets());
        mac.update(covered);
        mac
    }
}

// ===== results =====

/// Why a received packet is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No trailer, in require mode.
    #[error("packet carries no authentication trailer")]
    Missing,
    /// A trailer whose key id or MAC does not match our key.
    #[error("authentication trailer does not verify")]
    Bad,
    /// A verified packet whose counter was seen or is too old.
    #[error("authenticated packet is a replay")]
    Replayed,
}

impl AuthError {
    /// The counter name each daemon shows for it in its status.
    pub fn counter_name(self) -> &'static str {
        match self {
            AuthError::Missing => "auth_missing",
            AuthError::Bad => "auth_bad",
            AuthError::Replayed => "auth_replayed",
        }
    }
}

/// A packet [`Authenticator::open`] accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened<'a> {
    /// The packet without its trailer (all of it when unsigned or in off mode).
    pub bytes: &'a [u8],
    /// It carried a trailer that verified.
    pub verified: bool,
}

// ===== the authenticator =====

/// Replay state of one (source, packet type).
#[derive(Debug, Clone, Copy)]
struct Window {
    highest: u64,
    /// Bit i set: counter `highest - i` was accepted.
    seen: u64,
    heard: Instant,
}

impl Window {
    /// Accepts `counter` unless it is a replay.
    fn accept(&mut self, counter: u64, now: Instant) -> bool {
        if counter > self.highest {
            let shift = counter - self.highest;
            self.seen = if shift >= REPLAY_WINDOW {
                1
            } else {
                (self.seen << shift) | 1
            };
            self.highest = counter;
        } else {
            let back = self.highest - counter;
            if back >= REPLAY_WINDOW || self.seen & (1 << back) != 0 {
                return false;
            }
            self.seen |= 1 << back;
        }
        self.heard = now;
        true
    }
}

/// Seals what a daemon sends and opens what it receives.
#[derive(Debug)]
pub struct Authenticator {
    mode: Mode,
    key: Option<Key>,
    counter: u64,
    windows: HashMap<(Ipv6Addr, u8), Window>,
}

impl Authenticator {
    /// Off mode: nothing sealed, nothing checked.
    pub fn off() -> Authenticator {
        Authenticator {
            mode: Mode::Off,
            key: None,
            counter: 0,
            windows: HashMap::new(),
        }
    }

    /// An authenticator in `mode` with `key` (none needed for off mode; a
    /// signing mode without a key falls back to off, which configuration
    /// checking prevents). `start_counter` is the first counter sent: the
    /// wall clock in microseconds since 1970 at start (see the module
    /// documentation for why).
    pub fn new(mode: Mode, key: Option<Key>, start_counter: u64) -> Authenticator {
        let mode = if key.is_none() { Mode::Off } else { mode };
        Authenticator {
            mode,
            key,
            counter: start_counter,
            windows: HashMap::new(),
        }
    }

    /// The mode in force.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Appends the trailer to `packet` (an encoded packet to be sent from
    /// `source`), in sign and require mode; leaves it alone in off mode.
    pub fn seal(&mut self, packet: &mut Vec<u8>, source: Ipv6Addr) {
        let Some(key) = self.key.as_ref().filter(|_| self.mode != Mode::Off) else {
            return;
        };
        let counter = self.counter;
        self.counter = self.counter.wrapping_add(1);
        packet.extend_from_slice(&[TRAILER_SEGMENT, TRAILER_LEN as u8, key.id, 0]);
        packet.extend_from_slice(&counter.to_be_bytes());
        let tag = key.mac(source, packet).finalize().into_bytes();
        packet.extend_from_slice(tag.get(..MAC_LEN).unwrap_or_default());
    }

    /// Checks a packet received from IPv6 source `source` at `now`.
    ///
    /// Off mode accepts everything as it is (our decoder skips a trailer as
    /// an unknown segment; after a DATA packet the kernel trims it as bytes
    /// beyond the IPv6 payload length). Sign mode accepts unsigned packets
    /// (`verified: false`) and refuses signed ones that fail; require mode
    /// refuses unsigned ones too.
    pub fn open<'a>(
        &mut self,
        bytes: &'a [u8],
        source: Ipv6Addr,
        now: Instant,
    ) -> Result<Opened<'a>, AuthError> {
        let Some(key) = self.key.as_ref().filter(|_| self.mode != Mode::Off) else {
            return Ok(Opened {
                bytes,
                verified: false,
            });
        };
        let Some(at) = trailer_offset(bytes) else {
            return match self.mode {
                Mode::Require => Err(AuthError::Missing),
                Mode::Off | Mode::Sign => Ok(Opened {
                    bytes,
                    verified: false,
                }),
            };
        };
        let (packet, trailer) = bytes.split_at(at);
        let [_, _, key_id, _, c0, c1, c2, c3, c4, c5, c6, c7, tag @ ..] = trailer else {
            return Err(AuthError::Bad);
        };
        if *key_id != key.id {
            return Err(AuthError::Bad);
        }
        let covered = bytes
            .get(..at + TRAILER_LEN - MAC_LEN)
            .ok_or(AuthError::Bad)?;
        key.mac(source, covered)
            .verify_truncated_left(tag)
            .map_err(|_| AuthError::Bad)?;
        let counter = u64::from_be_bytes([*c0, *c1, *c2, *c3, *c4, *c5, *c6, *c7]);
        let kind = bytes.get(2).copied().unwrap_or(0);
        self.check_replay((source, kind), counter, now)?;
        Ok(Opened {
            bytes: packet,
            verified: true,
        })
    }

    fn check_replay(
        &mut self,
        sender: (Ipv6Addr, u8),
        counter: u64,
        now: Instant,
    ) -> Result<(), AuthError> {
        if let Some(window) = self.windows.get_mut(&sender) {
            return if window.accept(counter, now) {
                Ok(())
            } else {
                Err(AuthError::Replayed)
            };
        }
        if self.windows.len() >= MAX_SENDERS {
            let oldest = self
                .windows
                .iter()
                .min_by_key(|(_, w)| w.heard)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.windows.remove(&oldest);
            }
        }
        self.windows.insert(
            sender,
            Window {
                highest: counter,
                seen: 1,
                heard: now,
            },
        );
        Ok(())
    }
}

/// Where the trailer starts, if `bytes` ends with one: the last segment of
/// a segmented packet, or for DATA the 28 bytes after the IPv6 packet (by
/// its payload length), so that a plain packet is never mistaken for a
/// signed one by a chance byte pattern.
pub fn trailer_offset(bytes: &[u8]) -> Option<usize> {
    let at = bytes.len().checked_sub(TRAILER_LEN)?;
    if at < HEADER_LEN {
        return None;
    }
    let [TRAILER_SEGMENT, len, ..] = bytes.get(at..)? else {
        return None;
    };
    if usize::from(*len) != TRAILER_LEN {
        return None;
    }
    let payload = bytes.get(HEADER_LEN..)?;
    if bytes.get(2).map(|t| PacketType::from_u8(*t)) == Some(PacketType::Data) {
        // IPv6 payload length (bytes 4-5 of the IPv6 header) + 40.
        let [_, _, _, _, hi, lo, ..] = payload else {
            return None;
        };
        let ipv6_len = usize::from(u16::from_be_bytes([*hi, *lo])) + 40;
        return (HEADER_LEN + ipv6_len == at).then_some(at);
    }
    let last = segments(payload).last()?.ok()?;
    (last.offset == at && last.kind == TRAILER_SEGMENT).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Body, Packet};
    use l3roamd_types::MacAddr;
    use std::time::Duration;

    const START: u64 = 1_700_000_000_000_000;

    fn key(fill: u8) -> Key {
        Key::new(vec![fill; 32]).unwrap()
    }

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn claim() -> Vec<u8> {
        Packet::claim(
            a("fdff::2"),
            0x1234,
            "02:00:00:00:01:00".parse::<MacAddr>().unwrap(),
        )
        .encode()
    }

    fn pair(mode: Mode) -> (Authenticator, Authenticator) {
        (
            Authenticator::new(mode, Some(key(7)), START),
            Authenticator::new(mode, Some(key(7)), 0),
        )
    }

    #[test]
    fn short_keys_are_refused_and_keys_never_print() {
        assert_eq!(Key::new(vec![1; 31]), Err(KeyTooShort(31)));
        let k = key(0x41);
        assert!(!format!("{k:?}").contains("65"), "{k:?}");
        assert!(!format!("{k:?}").contains("AAAA"));
    }

    #[test]
    fn a_sealed_packet_opens_and_still_decodes_with_the_trailer() {
        let (mut tx, mut rx) = pair(Mode::Require);
        let plain = claim();
        let mut bytes = plain.clone();
        tx.seal(&mut bytes, a("fdff::2"));
        assert_eq!(bytes.len(), plain.len() + TRAILER_LEN);
        assert_eq!(trailer_offset(&bytes), Some(plain.len()));
        // Our decoder (and an off-mode node) skips the trailer as unknown.
        let decoded = Packet::decode(&bytes).unwrap();
        assert!(matches!(decoded.body, Body::Claim { .. }));
        let now = Instant::now();
        let opened = rx.open(&bytes, a("fdff::2"), now).unwrap();
        assert_eq!(
            opened,
            Opened {
                bytes: &plain,
                verified: true
            }
        );
    }

    #[test]
    fn the_trailer_layout_is_as_documented() {
        let (mut tx, _) = pair(Mode::Sign);
        let mut bytes = claim();
        tx.seal(&mut bytes, a("fdff::2"));
        let t = &bytes[bytes.len() - TRAILER_LEN..];
        assert_eq!(&t[..4], &[0xad, 28, key(7).id(), 0]);
        assert_eq!(&t[4..12], &START.to_be_bytes());
        let mut mac = HmacSha256::new_from_slice(&[7; 32]).unwrap();
        mac.update(&a("fdff::2").octets());
        mac.update(&bytes[..bytes.len() - MAC_LEN]);
        assert_eq!(&t[12..], &mac.finalize().into_bytes()[..16]);
    }

    #[test]
    fn forgeries_other_sources_and_other_keys_are_bad() {
        let (mut tx, mut rx) = pair(Mode::Require);
        let now = Instant::now();
        let mut bytes = claim();
        tx.seal(&mut bytes, a("fdff::2"));
        // The same bytes from another address (the pseudo-header).
        assert_eq!(rx.open(&bytes, a("fdff::66"), now), Err(AuthError::Bad));
        // Any flipped bit.
        for i in 0..bytes.len() {
            let mut forged = bytes.clone();
            forged[i] ^= 0x01;
            let got = rx.open(&forged, a("fdff::2"), now);
            assert!(
                matches!(got, Err(AuthError::Bad | AuthError::Missing)),
                "byte {i}: {got:?}"
            );
        }
        let mut other = Authenticator::new(Mode::Require, Some(key(8)), START);
        let mut bytes = claim();
        other.seal(&mut bytes, a("fdff::2"));
        assert_eq!(rx.open(&bytes, a("fdff::2"), now), Err(AuthError::Bad));
        // Still accepted afterwards: failures leave no replay state.
        let mut good = claim();
        tx.seal(&mut good, a("fdff::2"));
        assert!(rx.open(&good, a("fdff::2"), now).unwrap().verified);
    }

    #[test]
    fn modes_decide_about_unsigned_packets() {
        let now = Instant::now();
        let plain = claim();
        let (_, mut require) = pair(Mode::Require);
        assert_eq!(
            require.open(&plain, a("fdff::2"), now),
            Err(AuthError::Missing)
        );
        let (_, mut sign) = pair(Mode::Sign);
        assert_eq!(
            sign.open(&plain, a("fdff::2"), now),
            Ok(Opened {
                bytes: &plain,
                verified: false
            })
        );
        let mut off = Authenticator::off();
        let mut sealed = plain.clone();
        off.seal(&mut sealed, a("fdff::2"));
        assert_eq!(sealed, plain, "off mode sends plain");
        // A signing mode without a key cannot sign: it is off.
        assert_eq!(Authenticator::new(Mode::Require, None, 0).mode(), Mode::Off);
        // Off and sign mode take a signed packet from a peer with another key.
        let mut other = Authenticator::new(Mode::Sign, Some(key(9)), START);
        let mut signed = plain.clone();
        other.seal(&mut signed, a("fdff::2"));
        assert!(off.open(&signed, a("fdff::2"), now).is_ok());
        assert_eq!(sign.open(&signed, a("fdff::2"), now), Err(AuthError::Bad));
    }

    #[test]
    fn replays_are_refused_and_late_packets_within_the_window_accepted() {
        let (mut tx, mut rx) = pair(Mode::Require);
        let now = Instant::now();
        let sealed: Vec<Vec<u8>> = (0..100)
            .map(|_| {
                let mut b = claim();
                tx.seal(&mut b, a("fdff::2"));
                b
            })
            .collect();
        // 0, then 99, then 40..99 late (inside the window), then 30 (outside).
        assert!(rx.open(&sealed[0], a("fdff::2"), now).is_ok());
        assert!(rx.open(&sealed[99], a("fdff::2"), now).is_ok());
        for b in &sealed[40..99] {
            assert!(rx.open(b, a("fdff::2"), now).is_ok());
        }
        for b in [&sealed[0], &sealed[99], &sealed[50], &sealed[30]] {
            assert_eq!(rx.open(b, a("fdff::2"), now), Err(AuthError::Replayed));
        }
    }

    #[test]
    fn counters_are_per_source_and_type_and_a_restarted_sender_gets_through() {
        let now = Instant::now();
        let mut rx = Authenticator::new(Mode::Require, Some(key(7)), 0);
        let mut tx = Authenticator::new(Mode::Require, Some(key(7)), START);
        let mut claim1 = claim();
        tx.seal(&mut claim1, a("fdff::2"));
        let mut ack = Packet::ack(a("fdff::2"), 1, MacAddr::ZERO).encode();
        tx.seal(&mut ack, a("fdff::2"));
        // The ACK arrives first; the CLAIM (lower counter, other type) still counts.
        assert!(rx.open(&ack, a("fdff::2"), now).is_ok());
        assert!(rx.open(&claim1, a("fdff::2"), now).is_ok());
        // The sender restarts one second later: its counter starts higher.
        let mut restarted = Authenticator::new(Mode::Require, Some(key(7)), START + 1_000_000);
        let mut claim2 = claim();
        restarted.seal(&mut claim2, a("fdff::2"));
        assert!(rx.open(&claim2, a("fdff::2"), now).is_ok());
        assert_eq!(
            rx.open(&claim1, a("fdff::2"), now),
            Err(AuthError::Replayed)
        );
    }

    #[test]
    fn the_replay_table_is_bounded_and_forgets_the_least_recently_heard() {
        let t0 = Instant::now();
        let mut tx = Authenticator::new(Mode::Require, Some(key(7)), START);
        let mut rx = Authenticator::new(Mode::Require, Some(key(7)), 0);
        for i in 0..=MAX_SENDERS {
            let src = Ipv6Addr::from(0xfdff_0000_0000_0000_0000_0000_0001_0000u128 + i as u128);
            let mut b = claim();
            tx.seal(&mut b, src);
            assert!(rx
                .open(&b, src, t0 + Duration::from_millis(i as u64))
                .is_ok());
        }
        assert_eq!(rx.windows.len(), MAX_SENDERS);
        let first = Ipv6Addr::from(0xfdff_0000_0000_0000_0000_0000_0001_0000u128);
        assert!(!rx.windows.contains_key(&(first, 1)));
    }

    #[test]
    fn data_trailers_are_found_by_the_ipv6_length_only() {
        // An IPv6 packet with payload length 4, then a trailer.
        let mut ipv6 = vec![0x60, 0, 0, 0, 0, 4, 17, 64];
        ipv6.extend_from_slice(&[0; 32]);
        ipv6.extend_from_slice(&[1, 2, 3, 4]);
        let plain = Packet {
            ttl: 1,
            nonce: 5,
            sender: a("fdff::2"),
            body: Body::Data {
                payload: ipv6.clone(),
            },
        }
        .encode();
        let (mut tx, mut rx) = pair(Mode::Require);
        let mut signed = plain.clone();
        tx.seal(&mut signed, a("fdff::2"));
        assert_eq!(trailer_offset(&signed), Some(plain.len()));
        let opened = rx.open(&signed, a("fdff::2"), Instant::now()).unwrap();
        assert_eq!(opened.bytes, &plain[..]);
        // A plain DATA whose IPv6 packet ends in bytes that look like a
        // trailer is still plain: its IPv6 length covers them.
        let mut lookalike = vec![0x60, 0, 0, 0, 0, 32, 17, 64];
        lookalike.extend_from_slice(&[0; 32]);
        lookalike.extend_from_slice(&[0; 4]);
        lookalike.extend_from_slice(&[0xad, 28]);
        lookalike.extend_from_slice(&[0; 26]);
        let plain = Packet {
            ttl: 1,
            nonce: 5,
            sender: a("fdff::2"),
            body: Body::Data { payload: lookalike },
        }
        .encode();
        assert_eq!(trailer_offset(&plain), None);
    }

    #[test]
    fn damaged_input_never_panics() {
        let (mut tx, mut rx) = pair(Mode::Require);
        let mut signed = claim();
        tx.seal(&mut signed, a("fdff::2"));
        let now = Instant::now();
        for cut in 0..signed.len() {
            let _ = rx.open(&signed[..cut], a("fdff::2"), now);
        }
        let mut state = 0x1234_5678u32;
        for _ in 0..2000 {
            let len = (state % 80) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (state >> 16) as u8
                })
                .collect();
            let _ = rx.open(&bytes, a("fdff::2"), now);
            let _ = trailer_offset(&bytes);
        }
    }
}
