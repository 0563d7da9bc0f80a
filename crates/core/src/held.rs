//! The queue of held packets: packets that fell into the TUN catch-all
//! because no node has a host route for their destination yet.
//!
//! A plain state machine: events in (a packet from the TUN, a host route
//! appearing, a FOUND notice from the node that found the client, a timer
//! tick), [`Action`]s out. It owns no socket and reads no clock: every event
//! carries `now`, so tests drive time themselves.
//!
//! Bounds: packets per destination, packets and bytes in total, and the
//! number of destinations are all capped; what does not fit is dropped and
//! counted by reason. A destination nobody answers for within the hold time
//! is given up: its packets are dropped and their senders told, as a router
//! would, with ICMPv6 "address unreachable" (rate-limited).

use std::collections::{HashMap, VecDeque};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use l3roamd_daemon::TokenBucket;
use l3roamd_types::Ipv6Prefix;

/// The limits and timers of the queue.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Packets held for one destination; more are dropped.
    pub per_destination: usize,
    /// Packets held in total.
    pub total_packets: usize,
    /// Bytes held in total.
    pub total_bytes: usize,
    /// Destinations sought at the same time.
    pub destinations: usize,
    /// How long a destination may go unanswered before its packets are dropped.
    pub hold_time: Duration,
    /// How often a destination still unanswered is sought again.
    pub reseek_interval: Duration,
    /// How long packets for a found destination go to the finder directly,
    /// while babel spreads the host route.
    pub found_time: Duration,
    /// ICMPv6 errors per second at most.
    pub unreachable_per_second: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_destination: 64,
            total_packets: 1024,
            total_bytes: 1024 * 1024,
            destinations: 256,
            hold_time: Duration::from_secs(5),
            reseek_interval: Duration::from_secs(1),
            found_time: Duration::from_secs(30),
            unreachable_per_second: 10,
        }
    }
}

/// What the adapters must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask ndproxy to seek this address (mesh SEEK and local solicitation).
    Seek(Ipv6Addr),
    /// A route exists now: write the packet back into the TUN device, the
    /// kernel routes it.
    Reinject(Vec<u8>),
    /// Send the packet, encapsulated, to the node that found its destination.
    Forward {
        /// The finder's node address.
        node: Ipv6Addr,
        /// The IPv6 packet.
        packet: Vec<u8>,
    },
    /// Tell the packet's sender that its destination is unreachable.
    Unreachable(Vec<u8>),
}

l3roamd_daemon::counters! {
    "Why packets were dropped, and what else happened, for the status RPC.";
    Received => "tun_received": "Packets read from the TUN device.",
    Held => "held": "Packets held (queued).",
    Reinjected => "reinjected": "Packets re-sent through a new host route.",
    Forwarded => "forwarded_to_finder": "Packets sent to a finder, encapsulated.",
    DroppedMalformed => "dropped_malformed": "Not an IPv6 packet, or too short.",
    DroppedNotClient => "dropped_not_client": "Destination outside the client prefixes.",
    DroppedDestinationFull => "dropped_destination_full": "The destination's queue was full.",
    DroppedQueueFull => "dropped_queue_full": "The whole queue was full (packets or bytes).",
    DroppedTooManyDestinations => "dropped_too_many_destinations": "Too many destinations sought at once.",
    DroppedExpired => "dropped_expired": "Nobody answered within the hold time.",
    UnreachableSent => "unreachable_sent": "ICMPv6 unreachable errors sent.",
    UnreachableSuppressed => "unreachable_suppressed": "ICMPv6 unreachable errors not sent because of the rate limit.",
    Seeks => "seeks": "Seeks requested.",
}

/// The source and destination of an IPv6 packet, `None` if it is not one.
pub fn addresses(packet: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr)> {
    if packet.first()? >> 4 != 6 {
        return None;
    }
    let src: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
    let dst: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
    Some((Ipv6Addr::from(src), Ipv6Addr::from(dst)))
}

#[derive(Debug)]
struct Waiting {
    packets: VecDeque<Vec<u8>>,
    since: Instant,
    last_seek: Instant,
}

#[derive(Debug)]
struct Found {
    node: Ipv6Addr,
    until: Instant,
}

/// The held packets of all destinations.
#[derive(Debug)]
pub struct HeldPackets {
    limits: Limits,
    prefixes: Vec<Ipv6Prefix>,
    waiting: HashMap<Ipv6Addr, Waiting>,
    found: HashMap<Ipv6Addr, Found>,
    total_packets: usize,
    total_bytes: usize,
    unreachable: TokenBucket,
    counters: Counters,
}

impl HeldPackets {
    /// An empty queue for destinations in the client `prefixes`.
    pub fn new(limits: Limits, prefixes: Vec<Ipv6Prefix>) -> HeldPackets {
        // At most `unreachable_per_second` in any second, none saved up beyond.
        let unreachable =
            TokenBucket::new(limits.unreachable_per_second, limits.unreachable_per_second);
        HeldPackets {
            limits,
            prefixes,
            waiting: HashMap::new(),
            found: HashMap::new(),
            total_packets: 0,
            total_bytes: 0,
            unreachable,
            counters: Counters::default(),
        }
    }

    /// The client prefixes change (prefixd): destinations outside them are
    /// no longer held. Packets already held stay until they are sent on or
    /// expire.
    pub fn set_prefixes(&mut self, prefixes: Vec<Ipv6Prefix>) {
        self.prefixes = prefixes;
    }

    /// The counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Packets held now.
    pub fn len(&self) -> usize {
        self.total_packets
    }

    /// Destinations sought now.
    pub fn destinations(&self) -> usize {
        self.waiting.len()
    }

    /// Destinations whose finder is known (packets go there directly).
    pub fn found_destinations(&self) -> usize {
        self.found.len()
    }

    // ===== events =====

    /// A packet fell into the catch-all.
    pub fn packet(&mut self, packet: Vec<u8>, now: Instant) -> Vec<Action> {
        self.counters.count(Counter::Received);
        let Some((_, dst)) = addresses(&packet) else {
            self.counters.count(Counter::DroppedMalformed);
            return Vec::new();
        };
        if !self.prefixes.iter().any(|p| p.contains(&dst)) {
            self.counters.count(Counter::DroppedNotClient);
            return Vec::new();
        }
        if let Some(found) = self.found.get(&dst) {
            if found.until > now {
                self.counters.count(Counter::Forwarded);
                return vec![Action::Forward {
                    node: found.node,
                    packet,
                }];
            }
            self.found.remove(&dst);
        }
        let mut actions = Vec::new();
        if !self.waiting.contains_key(&dst) {
            if self.waiting.len() >= self.limits.destinations {
                self.counters.count(Counter::DroppedTooManyDestinations);
                return Vec::new();
            }
            self.waiting.insert(
                dst,
                Waiting {
                    packets: VecDeque::new(),
                    since: now,
                    last_seek: now,
                },
            );
            self.counters.count(Counter::Seeks);
            actions.push(Action::Seek(dst));
        }
        if self.total_packets >= self.limits.total_packets
            || self.total_bytes + packet.len() > self.limits.total_bytes
        {
            self.counters.count(Counter::DroppedQueueFull);
            return actions;
        }
        let Some(waiting) = self.waiting.get_mut(&dst) else {
            return actions;
        };
        if waiting.packets.len() >= self.limits.per_destination {
            self.counters.count(Counter::DroppedDestinationFull);
            return actions;
        }
        self.total_packets += 1;
        self.total_bytes += packet.len();
        self.counters.count(Counter::Held);
        waiting.packets.push_back(packet);
        actions
    }

    /// A host route for `dst` appeared (from babel or installed here): the
    /// packets held for it can follow the route now, in their order.
    pub fn route_appeared(&mut self, dst: Ipv6Addr) -> Vec<Action> {
        self.found.remove(&dst);
        let packets = self.take(&dst);
        self.counters.add(Counter::Reinjected, packets.len() as u64);
        packets.into_iter().map(Action::Reinject).collect()
    }

    /// The node `node` found the client `dst`: its packets go there directly
    /// until the host route arrives.
    pub fn found(&mut self, dst: Ipv6Addr, node: Ipv6Addr, now: Instant) -> Vec<Action> {
        if !self.prefixes.iter().any(|p| p.contains(&dst)) {
            return Vec::new();
        }
        if !self.found.contains_key(&dst) && self.found.len() >= self.limits.destinations {
            // Full: the packets keep waiting for the route instead.
            return Vec::new();
        }
        // The configuration bounds found_time; an Instant that cannot be
        // represented means no direct forwarding rather than a panic.
        let Some(until) = now.checked_add(self.limits.found_time) else {
            return Vec::new();
        };
        self.found.insert(dst, Found { node, until });
        let packets = self.take(&dst);
        self.counters.add(Counter::Forwarded, packets.len() as u64);
        packets
            .into_iter()
            .map(|packet| Action::Forward { node, packet })
            .collect()
    }

    /// An encapsulated packet for `dst` arrived from `node`. If we were
    /// sending `dst`'s packets to that very node, it no longer has the client
    /// (it roamed back here, and our route is not installed yet): stop, or
    /// the two nodes would bounce the packets between them until their hop
    /// limit runs out. They are held here instead, until the route appears.
    pub fn data_from(&mut self, dst: Ipv6Addr, node: Ipv6Addr) {
        if self.found.get(&dst).is_some_and(|f| f.node == node) {
            self.found.remove(&dst);
        }
    }

    /// Timers: give up on destinations held too long, seek again those
    /// still waiting, forget finders whose time is up.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let expired: Vec<Ipv6Addr> = self
            .waiting
            .iter()
            .filter(|(_, w)| now.saturating_duration_since(w.since) >= self.limits.hold_time)
            .map(|(dst, _)| *dst)
            .collect();
        for dst in expired {
            for packet in self.take(&dst) {
                self.counters.count(Counter::DroppedExpired);
                if self.unreachable.take(now) {
                    self.counters.count(Counter::UnreachableSent);
                    actions.push(Action::Unreachable(packet));
                } else {
                    self.counters.count(Counter::UnreachableSuppressed);
                }
            }
        }
        for (dst, waiting) in &mut self.waiting {
            if now.saturating_duration_since(waiting.last_seek) >= self.limits.reseek_interval {
                waiting.last_seek = now;
                self.counters.count(Counter::Seeks);
                actions.push(Action::Seek(*dst));
            }
        }
        self.found.retain(|_, f| f.until > now);
        actions
    }

    /// When [`HeldPackets::tick`] has something to do next (a hold time
    /// ending, a re-seek, a found node to forget); `None`: nothing is held
    /// or remembered, so an idle node need not wake up for it.
    pub fn next_deadline(&self) -> Option<Instant> {
        let waiting = self.waiting.values().map(|w| {
            (w.since + self.limits.hold_time).min(w.last_seek + self.limits.reseek_interval)
        });
        let found = self.found.values().map(|f| f.until);
        waiting.chain(found).min()
    }

    /// Removes a destination and returns its packets in order.
    fn take(&mut self, dst: &Ipv6Addr) -> Vec<Vec<u8>> {
        let Some(waiting) = self.waiting.remove(dst) else {
            return Vec::new();
        };
        self.total_packets -= waiting.packets.len();
        self.total_bytes -= waiting.packets.iter().map(Vec::len).sum::<usize>();
        waiting.packets.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// A minimal IPv6 packet from `src` to `dst` whose payload byte is `tag`.
    fn packet(src: &str, dst: &str, tag: u8) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 1, 58, 64];
        p.extend_from_slice(&addr(src).octets());
        p.extend_from_slice(&addr(dst).octets());
        p.push(tag);
        p
    }

    fn queue(limits: Limits) -> HeldPackets {
        HeldPackets::new(limits, vec!["fddd:1::/64".parse().unwrap()])
    }

    const GW: &str = "2001:db8::1";
    const C1: &str = "fddd:1::100";

    #[test]
    fn first_packet_seeks_and_route_reinjects_in_order() {
        let mut q = queue(Limits::default());
        let t0 = Instant::now();
        assert_eq!(
            q.packet(packet(GW, C1, 1), t0),
            vec![Action::Seek(addr(C1))]
        );
        assert_eq!(q.packet(packet(GW, C1, 2), t0), vec![]);
        assert_eq!(q.packet(packet(GW, C1, 3), t0), vec![]);
        assert_eq!(q.len(), 3);
        let actions = q.route_appeared(addr(C1));
        assert_eq!(
            actions,
            (1..=3)
                .map(|t| Action::Reinject(packet(GW, C1, t)))
                .collect::<Vec<_>>()
        );
        assert_eq!(q.len(), 0);
        assert_eq!(q.destinations(), 0);
        // A route for something not held changes nothing.
        assert!(q.route_appeared(addr("fddd:1::200")).is_empty());
    }

    #[test]
    fn found_forwards_held_then_new_packets_until_route() {
        let mut q = queue(Limits::default());
        let t0 = Instant::now();
        let finder = addr("fdff::4");
        q.packet(packet(GW, C1, 1), t0);
        q.packet(packet(GW, C1, 2), t0);
        let actions = q.found(addr(C1), finder, t0);
        assert_eq!(
            actions,
            vec![
                Action::Forward {
                    node: finder,
                    packet: packet(GW, C1, 1)
                },
                Action::Forward {
                    node: finder,
                    packet: packet(GW, C1, 2)
                },
            ]
        );
        // Later packets go straight to the finder, no new seek.
        assert_eq!(
            q.packet(packet(GW, C1, 3), t0),
            vec![Action::Forward {
                node: finder,
                packet: packet(GW, C1, 3)
            }]
        );
        // Once the route is here, a packet that still falls in seeks anew.
        q.route_appeared(addr(C1));
        assert_eq!(
            q.packet(packet(GW, C1, 4), t0),
            vec![Action::Seek(addr(C1))]
        );
    }

    #[test]
    fn data_from_the_finder_stops_forwarding_back_to_it() {
        // n5 released the client to n2 (found → n2); the client came back to
        // n5, and n2 now sends n5 the packets it still gets.
        let mut q = queue(Limits::default());
        let t0 = Instant::now();
        let n2 = addr("fdff::2");
        q.found(addr(C1), n2, t0);
        q.data_from(addr(C1), addr("fdff::9"));
        assert_eq!(
            q.found_destinations(),
            1,
            "another node's DATA changes nothing"
        );
        q.data_from(addr(C1), n2);
        assert_eq!(q.found_destinations(), 0);
        // The packet written to the TUN device falls back into the catch-all:
        // held and sought here, not sent back to n2.
        assert_eq!(
            q.packet(packet(GW, C1, 1), t0),
            vec![Action::Seek(addr(C1))]
        );
    }

    #[test]
    fn deadlines_only_while_something_is_held_or_remembered() {
        let limits = Limits::default();
        let (reseek, hold, found_time) =
            (limits.reseek_interval, limits.hold_time, limits.found_time);
        let mut q = queue(limits);
        assert_eq!(q.next_deadline(), None, "an idle queue needs no tick");
        let t0 = Instant::now();
        q.packet(packet(GW, C1, 1), t0);
        assert_eq!(q.next_deadline(), Some(t0 + reseek.min(hold)));
        q.tick(t0 + reseek);
        assert_eq!(q.next_deadline(), Some((t0 + reseek * 2).min(t0 + hold)));
        q.tick(t0 + hold);
        assert_eq!(q.next_deadline(), None, "expired: nothing left");
        q.found(addr(C1), addr("fdff::4"), t0 + hold);
        assert_eq!(q.next_deadline(), Some(t0 + hold + found_time));
        q.tick(t0 + hold + found_time);
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn found_expires() {
        let limits = Limits {
            found_time: Duration::from_secs(2),
            ..Limits::default()
        };
        let mut q = queue(limits);
        let t0 = Instant::now();
        q.found(addr(C1), addr("fdff::4"), t0);
        assert_eq!(q.found_destinations(), 1);
        q.tick(t0 + Duration::from_secs(3));
        assert_eq!(q.found_destinations(), 0);
        assert_eq!(
            q.packet(packet(GW, C1, 1), t0 + Duration::from_secs(3)),
            vec![Action::Seek(addr(C1))]
        );
    }

    #[test]
    fn unanswered_destination_expires_with_rate_limited_unreachables() {
        let limits = Limits {
            unreachable_per_second: 2,
            ..Limits::default()
        };
        let hold = limits.hold_time;
        let mut q = queue(limits);
        let t0 = Instant::now();
        for tag in 0..5 {
            q.packet(packet(GW, C1, tag), t0);
        }
        // Before the hold time: only re-seeks.
        let actions = q.tick(t0 + Duration::from_secs(1));
        assert_eq!(actions, vec![Action::Seek(addr(C1))]);
        let actions = q.tick(t0 + hold);
        assert_eq!(
            actions,
            vec![
                Action::Unreachable(packet(GW, C1, 0)),
                Action::Unreachable(packet(GW, C1, 1)),
            ]
        );
        let c = q.counters();
        assert_eq!(
            (
                c.get(Counter::DroppedExpired),
                c.get(Counter::UnreachableSent),
                c.get(Counter::UnreachableSuppressed)
            ),
            (5, 2, 3)
        );
        assert_eq!(q.len(), 0);
        assert_eq!(q.destinations(), 0, "no state is left behind");
    }

    #[test]
    fn bounds_hold() {
        let limits = Limits {
            per_destination: 2,
            total_packets: 3,
            destinations: 2,
            ..Limits::default()
        };
        let mut q = queue(limits);
        let t0 = Instant::now();
        for tag in 0..4 {
            q.packet(packet(GW, C1, tag), t0);
        }
        assert_eq!(q.len(), 2);
        assert_eq!(q.counters().get(Counter::DroppedDestinationFull), 2);
        q.packet(packet(GW, "fddd:1::2", 0), t0);
        q.packet(packet(GW, "fddd:1::2", 1), t0);
        assert_eq!(q.len(), 3);
        assert_eq!(q.counters().get(Counter::DroppedQueueFull), 1);
        assert_eq!(q.packet(packet(GW, "fddd:1::3", 0), t0), vec![]);
        assert_eq!(q.counters().get(Counter::DroppedTooManyDestinations), 1);
        assert_eq!(q.destinations(), 2);
    }

    #[test]
    fn garbage_is_counted_not_held() {
        let mut q = queue(Limits::default());
        let t0 = Instant::now();
        for bad in [vec![], vec![0x45; 60], vec![0x60; 39]] {
            assert!(q.packet(bad, t0).is_empty());
        }
        assert!(q.packet(packet(GW, "2001:db8::9", 0), t0).is_empty());
        let c = q.counters();
        assert_eq!(
            (
                c.get(Counter::DroppedMalformed),
                c.get(Counter::DroppedNotClient)
            ),
            (3, 1)
        );
        assert_eq!(q.len(), 0);
    }
}
