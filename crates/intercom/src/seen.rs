//! Duplicate suppression for flooded packets.
//!
//! A node drops a packet it has already seen recently, including its own
//! echoes, so a flood dies out. `docs/protocol.md` ("Flooding") keys this on
//! (sender, type, nonce); deployed C nodes use one constant nonce for every
//! packet they send (bug D1 there, seen in the captured vectors), so that key
//! alone would make us drop a C node's second SEEK for another address just
//! as C nodes do. [`SeenCache`] therefore also keys on a hash of the packet
//! body (the segments, not the ttl, which re-floods change) and forgets
//! entries after a short window.
//! Time is an argument, so the cache is deterministic in tests.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use crate::packet::{Packet, PacketType};

// ===== keys =====

/// What identifies a packet in `docs/protocol.md`: (sender, type, nonce).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DedupKey {
    /// The header's sender (the originator, unchanged by re-floods).
    pub sender: Ipv6Addr,
    /// The packet type.
    pub kind: PacketType,
    /// The header's nonce.
    pub nonce: u32,
}

/// The cache's key: the protocol key plus a digest of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SeenKey {
    key: DedupKey,
    body: u64,
}

// ===== cache =====

/// Packets seen within the last `window`, at most `capacity` of them.
///
/// When full, the oldest entry is forgotten first. An entry's window starts at
/// its first sighting and is not extended by repeats, so a C node's identical
/// retry (same nonce, same body) gets through once the window has passed.
#[derive(Debug, Clone)]
pub struct SeenCache {
    window: Duration,
    capacity: usize,
    hasher: RandomState,
    /// Key to (first sighting, sequence number of its `order` entry).
    entries: HashMap<SeenKey, (Instant, u64)>,
    /// Insertion order; may hold stale entries superseded in `entries`.
    order: VecDeque<(SeenKey, u64, Instant)>,
    next_seq: u64,
}

impl SeenCache {
    /// A flood crosses a mesh in well under a second, and C nodes retry a
    /// SEEK every 3 s with identical bytes: the window lies between the two.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(2);

    /// Far more packets than a mesh floods in [`Self::DEFAULT_WINDOW`].
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// An empty cache; a `capacity` of 0 is taken as 1.
    pub fn new(window: Duration, capacity: usize) -> SeenCache {
        SeenCache {
            window,
            capacity: capacity.max(1),
            hasher: RandomState::new(),
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
        }
    }

    /// Records `packet` as seen at `now`; true if it had not been seen within
    /// the window (handle it), false for a duplicate (drop it).
    pub fn insert(&mut self, packet: &Packet, now: Instant) -> bool {
        self.purge(now);
        let key = self.key_of(packet);
        if self.is_fresh(&key, now) {
            return false;
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.entries.insert(key, (now, seq));
        self.order.push_back((key, seq, now));
        while self.order.len() > self.capacity {
            self.pop_oldest();
        }
        true
    }

    /// Whether `packet` was seen within the window before `now`.
    pub fn contains(&self, packet: &Packet, now: Instant) -> bool {
        self.is_fresh(&self.key_of(packet), now)
    }

    /// Forgets the entries whose window has passed at `now`.
    pub fn purge(&mut self, now: Instant) {
        while let Some(&(_, _, seen)) = self.order.front() {
            if !self.expired(seen, now) {
                break;
            }
            self.pop_oldest();
        }
    }

    /// Number of entries held (expired ones count until the next purge).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The key of `packet`, the ttl left out.
    fn key_of(&self, packet: &Packet) -> SeenKey {
        SeenKey {
            key: packet.dedup_key(),
            body: self.hasher.hash_one(&packet.body),
        }
    }

    /// Whether `key` is held and its window still open at `now`.
    fn is_fresh(&self, key: &SeenKey, now: Instant) -> bool {
        self.entries
            .get(key)
            .is_some_and(|&(seen, _)| !self.expired(seen, now))
    }

    /// Whether an entry first seen at `seen` has expired at `now`.
    fn expired(&self, seen: Instant, now: Instant) -> bool {
        now.saturating_duration_since(seen) >= self.window
    }

    /// Drops the oldest `order` entry, and its map entry unless superseded.
    fn pop_oldest(&mut self) {
        if let Some((key, seq, _)) = self.order.pop_front() {
            if self.entries.get(&key).is_some_and(|&(_, s)| s == seq) {
                self.entries.remove(&key);
            }
        }
    }
}

impl Default for SeenCache {
    /// [`SeenCache::DEFAULT_WINDOW`] and [`SeenCache::DEFAULT_CAPACITY`].
    fn default() -> SeenCache {
        SeenCache::new(Self::DEFAULT_WINDOW, Self::DEFAULT_CAPACITY)
    }
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;

    fn seek(nonce: u32, last: u16) -> Packet {
        Packet::seek(
            Ipv6Addr::new(0xfdff, 0, 0, 0, 0, 0, 0, 1),
            nonce,
            Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, last),
        )
    }

    #[test]
    fn echo_is_dropped_whatever_its_ttl() {
        let t0 = Instant::now();
        let mut cache = SeenCache::default();
        let original = seek(0x55d1, 0x100);
        assert!(cache.insert(&original, t0));
        let mut echo = original.clone();
        echo.ttl -= 1;
        assert!(!cache.insert(&echo, t0 + Duration::from_millis(5)));
        assert!(cache.contains(&echo, t0 + Duration::from_millis(5)));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn constant_nonce_seek_for_another_address_passes() {
        // Vectors 1 and 10: n1 seeks ::100, then ::101 with the same nonce.
        let t0 = Instant::now();
        let mut cache = SeenCache::default();
        assert!(cache.insert(&seek(0x55d1, 0x100), t0));
        assert!(cache.insert(&seek(0x55d1, 0x101), t0 + Duration::from_secs(1)));
    }

    #[test]
    fn sender_and_type_are_part_of_the_key() {
        let t0 = Instant::now();
        let mut cache = SeenCache::default();
        let a = seek(1, 1);
        let mut b = a.clone();
        b.sender = Ipv6Addr::new(0xfdff, 0, 0, 0, 0, 0, 0, 2);
        assert!(cache.insert(&a, t0));
        assert!(cache.insert(&b, t0));
        let mac = l3roamd_types::MacAddr([2, 0, 0, 0, 1, 0]);
        let claim = Packet::claim(a.sender, 1, mac);
        let ack = Packet::ack(a.sender, 1, mac);
        assert!(cache.insert(&claim, t0));
        assert!(cache.insert(&ack, t0));
    }

    #[test]
    fn identical_retry_passes_after_the_window() {
        let t0 = Instant::now();
        let window = Duration::from_secs(2);
        let mut cache = SeenCache::new(window, 16);
        let p = seek(0x55d1, 0x101);
        assert!(cache.insert(&p, t0));
        // A repeat inside the window does not extend it.
        assert!(!cache.insert(&p, t0 + Duration::from_millis(1999)));
        assert!(!cache.contains(&p, t0 + window));
        assert!(cache.insert(&p, t0 + window));
        assert!(!cache.insert(&p, t0 + window + Duration::from_millis(1)));
    }

    #[test]
    fn bounded_in_count_oldest_forgotten_first() {
        let t0 = Instant::now();
        let mut cache = SeenCache::new(Duration::from_secs(60), 3);
        for i in 0..5u16 {
            assert!(cache.insert(&seek(u32::from(i), i), t0));
            assert!(cache.len() <= 3);
        }
        assert!(!cache.contains(&seek(0, 0), t0));
        assert!(!cache.contains(&seek(1, 1), t0));
        assert!(cache.contains(&seek(4, 4), t0));
        assert!(cache.contains(&seek(2, 2), t0));
    }

    #[test]
    fn purge_empties_after_the_window() {
        let t0 = Instant::now();
        let mut cache = SeenCache::new(Duration::from_secs(1), 8);
        assert!(cache.insert(&seek(1, 1), t0));
        assert!(cache.insert(&seek(2, 2), t0 + Duration::from_millis(500)));
        cache.purge(t0 + Duration::from_millis(1200));
        assert_eq!(cache.len(), 1);
        cache.purge(t0 + Duration::from_secs(2));
        assert!(cache.is_empty());
    }

    #[test]
    fn reinsertion_after_expiry_survives_its_stale_entry() {
        // A clock going backwards keeps an unexpired entry in front, so an
        // expired one for `p` stays queued behind it while `p` is inserted
        // anew; dropping the stale one later must not forget the fresh one.
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut cache = SeenCache::new(Duration::from_secs(1), 3);
        let p = seek(1, 1);
        assert!(cache.insert(&seek(9, 9), t0 + ms(10_000)));
        assert!(cache.insert(&p, t0));
        assert!(cache.insert(&p, t0 + ms(1500)));
        assert!(cache.insert(&seek(2, 2), t0 + ms(1600)));
        assert!(cache.insert(&seek(3, 3), t0 + ms(1700)));
        assert!(cache.contains(&p, t0 + ms(1700)));
        assert!(!cache.insert(&p, t0 + ms(1700)));
        assert!(cache.len() <= 3);
    }

    #[test]
    fn zero_capacity_is_one() {
        let t0 = Instant::now();
        let mut cache = SeenCache::new(Duration::from_secs(1), 0);
        assert!(cache.insert(&seek(1, 1), t0));
        assert!(!cache.insert(&seek(1, 1), t0));
        assert_eq!(cache.len(), 1);
    }
}
