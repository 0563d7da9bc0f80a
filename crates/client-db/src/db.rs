//! The client records: what this node knows about each client MAC (its
//! addresses with the time each was last seen, the nodes that served it and
//! when, its multicast groups) and the rules for merging what it learns.
//!
//! Times in a record are Unix seconds, because records outlive the process
//! (they are persisted) and are shown to operators. The state machine keeps
//! them steady when the wall clock is stepped (see `events::SteadyClock`), so
//! an NTP step at boot neither expires every record nor keeps them forever.
//!
//! Everything is bounded: addresses per record ([`MAX_ADDRESSES`]), serving
//! nodes per record ([`MAX_SERVED_BY`]) and records ([`Records`] capacity).

use std::collections::HashMap;
use std::net::Ipv6Addr;

use l3roamd_types::MacAddr;

// ===== limits =====

/// Most addresses kept per client; the least recently seen goes first. A
/// client with two prefixes and privacy extensions has well under ten.
pub const MAX_ADDRESSES: usize = 32;

/// Most serving nodes kept per client, most recent first.
pub const MAX_SERVED_BY: usize = 8;

// ===== one record =====

/// An address a client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress {
    /// The address (may be link-local: it tells the MAC's link-local one).
    pub addr: Ipv6Addr,
    /// Unix seconds when it was last seen in use (or learned from an INFO).
    pub last_seen: u64,
    /// Seconds of valid lifetime left when last seen, 0 when unknown.
    pub lifetime: u32,
}

/// A node that served a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServingNode {
    /// Its node address.
    pub node: Ipv6Addr,
    /// Unix seconds when it was last known to serve the client.
    pub since: u64,
}

/// Everything this node knows about one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The client's MAC, the record's key.
    pub mac: MacAddr,
    /// Its addresses, in the order learned (C nodes announce them so, D4).
    pub addresses: Vec<ClientAddress>,
    /// Nodes that served it, most recent first.
    pub served_by: Vec<ServingNode>,
    /// Multicast groups it joined (none are learned yet).
    pub multicast_groups: Vec<Ipv6Addr>,
    /// This node serves it now: core said so (Claim, Update) and neither a
    /// Forget nor another node's CLAIM has ended it since.
    pub serving: bool,
    /// Unix seconds of the last change; the record expires a TTL after it.
    pub updated: u64,
}

/// What watchers see of a record; a change in it is announced, a change of
/// timestamps alone is not.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    addresses: Vec<Ipv6Addr>,
    served_by: Vec<Ipv6Addr>,
    multicast_groups: Vec<Ipv6Addr>,
    serving: bool,
}

impl Record {
    /// An empty record for `mac`, created at `now` (Unix seconds).
    pub fn new(mac: MacAddr, now: u64) -> Record {
        Record {
            mac,
            addresses: Vec::new(),
            served_by: Vec::new(),
            multicast_groups: Vec::new(),
            serving: false,
            updated: now,
        }
    }

    /// The addresses alone, in the order learned.
    pub fn addrs(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.addresses.iter().map(|a| a.addr)
    }

    /// Marks `addrs` as seen at `now`: known ones are refreshed in place,
    /// new ones appended. Returns whether the set of addresses changed.
    pub fn merge_addresses(&mut self, addrs: impl IntoIterator<Item = Ipv6Addr>, now: u64) -> bool {
        let mut changed = false;
        for addr in addrs {
            match self.addresses.iter_mut().find(|a| a.addr == addr) {
                Some(known) => known.last_seen = known.last_seen.max(now),
                None => {
                    self.addresses.push(ClientAddress {
                        addr,
                        last_seen: now,
                        lifetime: 0,
                    });
                    changed = true;
                }
            }
        }
        while self.addresses.len() > MAX_ADDRESSES {
            // The least recently seen goes; among equals the earliest learned.
            let oldest = self
                .addresses
                .iter()
                .enumerate()
                .min_by_key(|(i, a)| (a.last_seen, *i))
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                self.addresses.remove(i);
            }
        }
        self.updated = self.updated.max(now);
        changed
    }

    /// Notes that `node` served the client at `now`, moving it to the front.
    /// Returns whether the list of nodes (not just a time) changed.
    pub fn note_served_by(&mut self, node: Ipv6Addr, now: u64) -> bool {
        let before: Vec<Ipv6Addr> = self.served_by.iter().map(|s| s.node).collect();
        self.served_by.retain(|s| s.node != node);
        self.served_by.insert(0, ServingNode { node, since: now });
        self.served_by.truncate(MAX_SERVED_BY);
        self.updated = self.updated.max(now);
        !self.served_by.iter().map(|s| s.node).eq(before)
    }

    /// Whether the record has expired at `now`: `ttl` seconds after its last change.
    pub fn is_expired(&self, now: u64, ttl: u64) -> bool {
        self.updated.saturating_add(ttl) <= now
    }

    /// When the record or one of its addresses expires next (Unix seconds):
    /// `ttl` after the oldest of its last change and its addresses' last
    /// sightings.
    pub fn next_expiry(&self, ttl: u64) -> u64 {
        self.addresses
            .iter()
            .map(|a| a.last_seen)
            .fold(self.updated, u64::min)
            .saturating_add(ttl)
    }

    /// Drops the addresses not seen for `ttl` seconds; true if any went.
    pub fn expire_addresses(&mut self, now: u64, ttl: u64) -> bool {
        let before = self.addresses.len();
        self.addresses
            .retain(|a| a.last_seen.saturating_add(ttl) > now);
        before != self.addresses.len()
    }

    /// The addresses to announce in an INFO, at most `max`, in the order
    /// learned. When there are more, routable addresses seen most recently
    /// win over older ones and over link-local ones (which route nothing).
    pub fn info_addresses(&self, max: usize) -> Vec<Ipv6Addr> {
        if self.addresses.len() <= max {
            return self.addrs().collect();
        }
        let mut ranked: Vec<(usize, &ClientAddress)> = self.addresses.iter().enumerate().collect();
        ranked.sort_by_key(|(i, a)| (is_link_local(&a.addr), std::cmp::Reverse(a.last_seen), *i));
        let mut chosen: Vec<usize> = ranked.into_iter().take(max).map(|(i, _)| i).collect();
        chosen.sort_unstable();
        chosen
            .into_iter()
            .filter_map(|i| self.addresses.get(i).map(|a| a.addr))
            .collect()
    }

    /// Moves every timestamp by `delta` seconds (the wall clock was stepped).
    pub fn shift_times(&mut self, delta: i64) {
        self.updated = self.updated.saturating_add_signed(delta);
        for a in &mut self.addresses {
            a.last_seen = a.last_seen.saturating_add_signed(delta);
        }
        for s in &mut self.served_by {
            s.since = s.since.saturating_add_signed(delta);
        }
    }

    /// Brings timestamps from the future back to `now` (a record written
    /// while the clock was ahead), so they cannot outlive their TTL.
    pub fn clamp_times(&mut self, now: u64) {
        self.updated = self.updated.min(now);
        for a in &mut self.addresses {
            a.last_seen = a.last_seen.min(now);
        }
        for s in &mut self.served_by {
            s.since = s.since.min(now);
        }
    }

    /// What a watcher is told about.
    fn shape(&self) -> Shape {
        Shape {
            addresses: self.addrs().collect(),
            served_by: self.served_by.iter().map(|s| s.node).collect(),
            multicast_groups: self.multicast_groups.clone(),
            serving: self.serving,
        }
    }

    /// Whether `self` differs from `before` in more than timestamps.
    pub fn differs_from(&self, before: &Record) -> bool {
        self.shape() != before.shape()
    }
}

// ===== addresses =====

pub use l3roamd_types::addr::{is_link_local, is_recordable_client_address};

// ===== the table =====

/// The table is full and every record in it is of a client this node serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client database is full ({0} records, all of clients served here)")]
pub struct Full(pub usize);

/// All records, at most `capacity` of them.
#[derive(Debug, Clone)]
pub struct Records {
    map: HashMap<MacAddr, Record>,
    capacity: usize,
}

impl Records {
    /// An empty table for at most `capacity` records (0 is taken as 1).
    pub fn new(capacity: usize) -> Records {
        Records {
            map: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The record of `mac`.
    pub fn get(&self, mac: &MacAddr) -> Option<&Record> {
        self.map.get(mac)
    }

    /// The record of `mac`, to change it.
    pub fn get_mut(&mut self, mac: &MacAddr) -> Option<&mut Record> {
        self.map.get_mut(mac)
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there is no record.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every record, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Record> {
        self.map.values()
    }

    /// Every record, to change them.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Record> {
        self.map.values_mut()
    }

    /// Adds `record` (its MAC must be new). When the table is full, the
    /// least recently updated record of a client not served here makes room
    /// and its MAC is returned; if every record is of a served client, the
    /// new one is refused.
    pub fn insert_new(&mut self, record: Record) -> Result<Option<MacAddr>, Full> {
        let mut evicted = None;
        if self.map.len() >= self.capacity && !self.map.contains_key(&record.mac) {
            let victim = self
                .map
                .values()
                .filter(|r| !r.serving)
                .min_by_key(|r| (r.updated, r.mac))
                .map(|r| r.mac)
                .ok_or(Full(self.capacity))?;
            self.map.remove(&victim);
            evicted = Some(victim);
        }
        self.map.insert(record.mac, record);
        Ok(evicted)
    }

    /// Removes the record of `mac`.
    pub fn remove(&mut self, mac: &MacAddr) -> Option<Record> {
        self.map.remove(mac)
    }

    /// The MACs of the records expired at `now`.
    pub fn expired(&self, now: u64, ttl: u64) -> Vec<MacAddr> {
        self.map
            .values()
            .filter(|r| r.is_expired(now, ttl))
            .map(|r| r.mac)
            .collect()
    }
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;

    fn a(last: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, last)
    }

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0]);

    #[test]
    fn merge_keeps_learned_order_and_refreshes() {
        let mut r = Record::new(MAC, 100);
        assert!(r.merge_addresses([a(0x101), a(0x102)], 100));
        assert!(!r.merge_addresses([a(0x101)], 150));
        assert!(r.merge_addresses([a(0x100)], 160));
        assert_eq!(
            r.addrs().collect::<Vec<_>>(),
            [a(0x101), a(0x102), a(0x100)]
        );
        assert_eq!(r.addresses[0].last_seen, 150);
        assert_eq!(r.addresses[1].last_seen, 100);
        assert_eq!(r.updated, 160);
    }

    #[test]
    fn addresses_are_bounded_least_recent_first() {
        let mut r = Record::new(MAC, 0);
        for i in 0..(MAX_ADDRESSES as u16 + 3) {
            r.merge_addresses([a(i)], u64::from(i));
        }
        assert_eq!(r.addresses.len(), MAX_ADDRESSES);
        assert_eq!(r.addresses[0].addr, a(3));
    }

    #[test]
    fn served_by_most_recent_first_and_bounded() {
        let mut r = Record::new(MAC, 0);
        let n = |i: u16| Ipv6Addr::new(0xfdff, 0, 0, 0, 0, 0, 0, i);
        assert!(r.note_served_by(n(1), 10));
        assert!(r.note_served_by(n(2), 20));
        assert!(!r.note_served_by(n(2), 30));
        assert!(r.note_served_by(n(1), 40));
        assert_eq!(
            r.served_by[0],
            ServingNode {
                node: n(1),
                since: 40
            }
        );
        for i in 3..20 {
            r.note_served_by(n(i), 50);
        }
        assert_eq!(r.served_by.len(), MAX_SERVED_BY);
    }

    #[test]
    fn info_addresses_prefer_recent_routable_ones() {
        let mut r = Record::new(MAC, 0);
        r.merge_addresses([MAC.link_local()], 100);
        r.merge_addresses([a(1)], 10);
        r.merge_addresses([a(2)], 50);
        r.merge_addresses([a(3)], 40);
        assert_eq!(r.info_addresses(15).len(), 4);
        // Learned order kept: a(2) and a(3) are the two most recent routable.
        assert_eq!(r.info_addresses(2), [a(2), a(3)]);
        assert_eq!(r.info_addresses(4)[0], MAC.link_local());
    }

    #[test]
    fn expiry_and_clock_steps() {
        let mut r = Record::new(MAC, 100);
        r.merge_addresses([a(1)], 100);
        r.merge_addresses([a(2)], 500);
        assert!(!r.is_expired(1399, 900));
        assert!(r.expire_addresses(1000, 900));
        assert_eq!(r.addrs().collect::<Vec<_>>(), [a(2)]);
        assert!(r.is_expired(1400, 900));
        r.shift_times(1_000_000);
        assert_eq!(r.updated, 1_000_500);
        r.clamp_times(600);
        assert_eq!(r.addresses[0].last_seen, 600);
        r.shift_times(-10_000_000);
        assert_eq!(r.updated, 0);
    }

    #[test]
    fn client_addresses() {
        let ncp: l3roamd_types::Ipv6Prefix = "fec0::/64".parse().unwrap();
        assert!(is_recordable_client_address(&a(1), &ncp));
        assert!(is_recordable_client_address(&MAC.link_local(), &ncp));
        assert!(!is_recordable_client_address(&Ipv6Addr::UNSPECIFIED, &ncp));
        assert!(!is_recordable_client_address(&Ipv6Addr::LOCALHOST, &ncp));
        assert!(!is_recordable_client_address(
            &"ff02::1".parse().unwrap(),
            &ncp
        ));
        assert!(!is_recordable_client_address(
            &"fec0::ff:fe00:100".parse().unwrap(),
            &ncp
        ));
    }

    #[test]
    fn full_table_evicts_oldest_unserved_or_refuses() {
        let mut t = Records::new(2);
        let m = |i: u8| MacAddr([2, 0, 0, 0, 0, i]);
        let mut served = Record::new(m(1), 10);
        served.serving = true;
        t.insert_new(served).unwrap();
        t.insert_new(Record::new(m(2), 20)).unwrap();
        assert_eq!(t.insert_new(Record::new(m(3), 30)), Ok(Some(m(2))));
        let mut served3 = Record::new(m(4), 40);
        served3.serving = true;
        t.get_mut(&m(3)).unwrap().serving = true;
        assert_eq!(t.insert_new(served3), Err(Full(2)));
        assert_eq!(t.len(), 2);
    }
}
