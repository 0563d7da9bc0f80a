//! Presence: which clients are attached to this node, as a state machine.
//!
//! Every source reports what it saw as an [`Event`]: an nl80211 station, a
//! bridge FDB entry, an IPv6 neighbour entry, a snooped neighbour-discovery
//! or MLD frame, a link that vanished, a clock tick. [`Presence::handle`]
//! applies it and returns the [`Change`]s watchers must hear about. There are
//! no sockets and no clock in here: the caller passes `now`, so every rule is
//! tested deterministically.
//!
//! The rules, and why:
//!
//! - A client **appears** on its first sighting by any source, unless that
//!   sighting is itself older than the presence timeout (a station idle for
//!   minutes, an FDB entry about to age out): old news is no presence.
//! - Neighbour entries in STALE, DELAY or PROBE are not sightings (the
//!   kernel keeps STALE entries for hours); they only teach the addresses of
//!   clients present already. FAILED and INCOMPLETE entries mean nothing.
//! - A client is **gone** when no source has seen it for the presence
//!   timeout — our own timeout, not mac80211's or the bridge's, which wait
//!   300 s and more. It is gone at once when nl80211 reports DEL_STATION on
//!   the interface it was last seen on (a disassociation is definitive), and
//!   when that interface vanished, left the client bridge or lost its
//!   carrier: nothing reaches the client through it any more.
//! - An FDB entry that ages out is no departure: the bridge's 300 s ageing
//!   says less than our own timeout.
//! - This node's own MACs, the next-node MAC and group MACs are never clients.
//! - An address is learned once per client and reported once, until the
//!   client is gone. A duplicate address detection target is only
//!   *tentative* for [`Settings::dad_wait`]: if anyone defends the address
//!   (a neighbour advertisement for it from another MAC, which includes this
//!   node answering for a client elsewhere in the mesh) it is dropped, so a
//!   client testing an address in use elsewhere does not pull that
//!   address's traffic here.
//! - Everything is bounded: at most [`Settings::max_clients`] clients (a new
//!   MAC beyond is refused and counted, so a flood of forged MACs cannot
//!   push real clients out) and [`Settings::max_addresses`] addresses per
//!   client (the least recently seen is forgotten first).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use l3roamd_types::{Ipv6Prefix, MacAddr};

use crate::packet::Snooped;

// ===== inputs =====

/// Where a sighting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// An nl80211 station on a wireless client interface.
    Station,
    /// A learned entry of the client bridge's forwarding database.
    Fdb,
    /// The kernel's IPv6 neighbour table (a REACHABLE entry).
    Neighbour,
    /// A snooped neighbour-discovery or MLD frame.
    Snoop,
}

impl Source {
    /// Every source, in the order they are listed.
    pub const ALL: [Source; 4] = [
        Source::Station,
        Source::Fdb,
        Source::Neighbour,
        Source::Snoop,
    ];

    fn index(self) -> usize {
        match self {
            Source::Station => 0,
            Source::Fdb => 1,
            Source::Neighbour => 2,
            Source::Snoop => 3,
        }
    }

    /// Whether the source knows the port the client is attached through
    /// (the neighbour table knows only the client interface).
    fn knows_port(self) -> bool {
        self != Source::Neighbour
    }
}

/// A source saw a MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    /// The client's MAC.
    pub mac: MacAddr,
    /// Who saw it.
    pub source: Source,
    /// Where: the bridge port or wireless interface, or for the neighbour
    /// table the client interface.
    pub interface: String,
    /// When the source last saw it (an FDB entry or a station may report
    /// an activity some time ago).
    pub seen_at: Instant,
    /// An address it was seen using, if the source tells one.
    pub address: Option<Ipv6Addr>,
}

/// Something a source observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A station associated or was dumped, an FDB entry was learned or
    /// dumped, a neighbour entry became REACHABLE.
    Sighting(Sighting),
    /// A neighbour entry in STALE, DELAY or PROBE: `mac` has `address`,
    /// but nothing says it is here now.
    AddressHint {
        /// The entry's link-layer address.
        mac: MacAddr,
        /// The entry's IPv6 address.
        address: Ipv6Addr,
    },
    /// A neighbour-discovery or MLD frame on a client link.
    Snooped {
        /// The port or interface it was captured on.
        interface: String,
        /// The decoded frame.
        frame: Snooped,
        /// Sent by this node (only advertisements are passed this way, to
        /// see this node defend addresses).
        outgoing: bool,
    },
    /// nl80211 DEL_STATION: `mac` left wireless interface `interface`.
    StationGone {
        /// The station.
        mac: MacAddr,
        /// The wireless interface.
        interface: String,
    },
    /// An FDB entry was deleted (aged out or flushed).
    FdbGone {
        /// The entry's MAC.
        mac: MacAddr,
        /// The port it pointed to.
        port: String,
    },
    /// A port or client interface vanished, left the client bridge or lost
    /// its carrier.
    LinkLost {
        /// Its name.
        interface: String,
    },
    /// The MACs of all of this node's interfaces (replaces the previous set).
    OwnMacs(BTreeSet<MacAddr>),
    /// Time passed: expire clients, confirm tentative addresses.
    Tick,
}

// ===== outputs =====

/// Why a client is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneReason {
    /// No source saw it for the presence timeout.
    Timeout,
    /// nl80211 DEL_STATION on the interface it was attached through.
    Disassociated,
    /// The port or interface it was attached through is gone or down.
    LinkLost,
    /// Its MAC turned out to be one of this node's own.
    Local,
}

/// An attached client as watchers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientView {
    /// Its MAC.
    pub mac: MacAddr,
    /// The port or interface it was last seen on.
    pub interface: String,
    /// Its learned addresses, oldest first.
    pub addresses: Vec<Ipv6Addr>,
    /// The sources that see it now (within the presence timeout, or a
    /// station association or FDB entry that still stands).
    pub sources: Vec<Source>,
    /// Time since any source last saw it.
    pub idle: Duration,
}

/// What watchers must hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A client is attached now (with the addresses known so far).
    Appeared(ClientView),
    /// A present client uses one more address.
    AddressLearned {
        /// The client.
        mac: MacAddr,
        /// The address.
        address: Ipv6Addr,
    },
    /// A client is no longer attached.
    Gone {
        /// The client.
        mac: MacAddr,
        /// Why.
        reason: GoneReason,
    },
}

/// The tunables, from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A client no source has seen for this long is gone.
    pub presence_timeout: Duration,
    /// How long a duplicate address detection target stays tentative.
    pub dad_wait: Duration,
    /// Most clients tracked at once.
    pub max_clients: usize,
    /// Most addresses remembered per client.
    pub max_addresses: usize,
    /// The next-node router's MAC, never a client.
    pub next_node_mac: Option<MacAddr>,
    /// Node-client addresses belong to nodes, never to clients.
    pub node_client_prefix: Option<Ipv6Prefix>,
}

l3roamd_daemon::counters! {
    "One counter of clientmon's presence state (logged at info level).";
    Appeared => "appeared": "Clients that appeared.",
    GoneTimeout => "gone_timeout": "Clients gone by timeout.",
    GoneDisassociated => "gone_disassociated": "Clients gone by DEL_STATION.",
    GoneLinkLost => "gone_link_lost": "Clients gone because their link was lost.",
    GoneLocal => "gone_local": "Clients gone because their MAC became one of this node's.",
    IgnoredLocal => "ignored_local": "Sightings of own, next-node or group MACs, ignored.",
    IgnoredStale => "ignored_stale": "Sightings too old to make a client appear.",
    IgnoredBeforeDeparture => "ignored_before_departure": "Sightings of a client that left, made before it left (a neighbour entry confirmed while it was still here, say).",
    RefusedFull => "refused_full": "New clients refused because the table was full.",
    AddressesLearned => "addresses_learned": "Addresses learned.",
    AddressesEvicted => "addresses_evicted": "Addresses forgotten to make room for newer ones.",
    TentativeDefended => "tentative_defended": "Tentative addresses dropped because another MAC defended them.",
}

// ===== state =====

/// What is known of one client.
#[derive(Debug, Clone)]
struct Client {
    interface: String,
    /// Whether `interface` came from a source that knows ports.
    interface_is_port: bool,
    /// When `interface` was last set.
    interface_at: Instant,
    /// Learned addresses with when each was last seen, in learning order.
    addresses: Vec<(Ipv6Addr, Instant)>,
    /// Duplicate address detection targets with when each was first seen.
    tentative: Vec<(Ipv6Addr, Instant)>,
    /// When each source last saw it, by [`Source::index`].
    seen: [Option<Instant>; 4],
    /// Wireless interfaces it is associated with.
    stations: Vec<String>,
    /// The port of its FDB entry, while the entry stands.
    fdb_port: Option<String>,
}

impl Client {
    fn new(interface: &str, source: Source, at: Instant) -> Client {
        Client {
            interface: interface.to_string(),
            interface_is_port: source.knows_port(),
            interface_at: at,
            addresses: Vec::new(),
            tentative: Vec::new(),
            seen: [None; 4],
            stations: Vec::new(),
            fdb_port: None,
        }
    }

    /// The last time any source saw it.
    fn last_seen(&self) -> Option<Instant> {
        self.seen.iter().flatten().max().copied()
    }

    fn mark_seen(&mut self, source: Source, at: Instant) {
        let slot = &mut self.seen[source.index()];
        if slot.is_none_or(|t| t < at) {
            *slot = Some(at);
        }
    }

    /// A sighting on `interface`: a port-level source moves the client
    /// there if it is the latest news.
    fn seen_on(&mut self, interface: &str, source: Source, at: Instant) {
        let better = if source.knows_port() {
            !self.interface_is_port || at >= self.interface_at
        } else {
            !self.interface_is_port && at >= self.interface_at
        };
        if better {
            if self.interface != interface {
                self.interface = interface.to_string();
            }
            self.interface_is_port = source.knows_port();
            self.interface_at = at;
        }
    }

    fn view(&self, mac: MacAddr, now: Instant, timeout: Duration) -> ClientView {
        let sources = Source::ALL
            .into_iter()
            .filter(|s| {
                let recent = self.seen[s.index()]
                    .is_some_and(|t| now.saturating_duration_since(t) < timeout);
                let standing = match s {
                    Source::Station => !self.stations.is_empty(),
                    Source::Fdb => self.fdb_port.is_some(),
                    _ => false,
                };
                recent || standing
            })
            .collect();
        ClientView {
            mac,
            interface: self.interface.clone(),
            addresses: self.addresses.iter().map(|(a, _)| *a).collect(),
            sources,
            idle: self
                .last_seen()
                .map(|t| now.saturating_duration_since(t))
                .unwrap_or_default(),
        }
    }
}

pub use l3roamd_types::addr::is_routable_client_address;

/// The attached clients and the rules that change them.
#[derive(Debug)]
pub struct Presence {
    settings: Settings,
    clients: BTreeMap<MacAddr, Client>,
    /// Clients that left, with when: a sighting from before that time does
    /// not bring them back. Kept for the presence timeout (older sightings
    /// are ignored anyway), at most `max_clients`.
    departed: BTreeMap<MacAddr, Instant>,
    /// The time of the event being handled.
    now: Instant,
    own: BTreeSet<MacAddr>,
    /// Tentative addresses over all clients, so defences cost nothing when
    /// there are none.
    tentative_count: usize,
    /// When the next client times out or tentative address is due: the
    /// loop sleeps until then, not a tick every second (issue 13).
    next_tick: Option<Instant>,
    counters: Counters,
}

impl Presence {
    /// An empty table.
    pub fn new(settings: Settings) -> Presence {
        Presence {
            settings,
            clients: BTreeMap::new(),
            departed: BTreeMap::new(),
            now: Instant::now(),
            own: BTreeSet::new(),
            tentative_count: 0,
            next_tick: None,
            counters: Counters::default(),
        }
    }

    /// When [`Event::Tick`] has something to do next; `None` while nothing
    /// can time out (no client).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_tick
    }

    /// The counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// How many clients are attached.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether no client is attached.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The attached clients, by MAC.
    pub fn clients(&self, now: Instant) -> Vec<ClientView> {
        self.clients
            .iter()
            .map(|(mac, c)| c.view(*mac, now, self.settings.presence_timeout))
            .collect()
    }

    /// Whether `mac` can never be a client.
    fn is_local(&self, mac: &MacAddr) -> bool {
        mac.is_multicast()
            || *mac == MacAddr::ZERO
            || self.settings.next_node_mac == Some(*mac)
            || self.own.contains(mac)
    }

    /// Applies `event` at time `now`; returns what watchers must hear.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Change> {
        self.now = now;
        let mut changes = Vec::new();
        match event {
            Event::Sighting(s) => self.sighting(now, s, &[], None, &mut changes),
            Event::AddressHint { mac, address } => {
                if let Some(client) = self.clients.get_mut(&mac) {
                    learn(
                        &self.settings,
                        &mut self.counters,
                        &mut self.tentative_count,
                        mac,
                        client,
                        address,
                        now,
                        &mut changes,
                    );
                }
            }
            Event::Snooped {
                interface,
                frame,
                outgoing,
            } => self.snooped(now, interface, frame, outgoing, &mut changes),
            Event::StationGone { mac, interface } => {
                self.station_gone(mac, &interface, &mut changes)
            }
            Event::FdbGone { mac, port } => {
                if let Some(client) = self.clients.get_mut(&mac) {
                    if client.fdb_port.as_deref() == Some(port.as_str()) {
                        client.fdb_port = None;
                    }
                }
            }
            Event::LinkLost { interface } => self.link_lost(&interface, &mut changes),
            Event::OwnMacs(own) => {
                self.own = own;
                let local: Vec<MacAddr> = self
                    .clients
                    .keys()
                    .filter(|m| self.own.contains(m))
                    .copied()
                    .collect();
                for mac in local {
                    self.remove(mac, GoneReason::Local, &mut changes);
                }
            }
            Event::Tick => self.tick(now, &mut changes),
        }
        changes
    }

    // ===== sightings =====

    fn sighting(
        &mut self,
        now: Instant,
        s: Sighting,
        used: &[Ipv6Addr],
        tentative: Option<Ipv6Addr>,
        changes: &mut Vec<Change>,
    ) {
        if self.is_local(&s.mac) {
            self.counters.count(Counter::IgnoredLocal);
            return;
        }
        let at = s.seen_at.min(now);
        let addresses = s.address.iter().chain(used).copied();
        if let Some(client) = self.clients.get_mut(&s.mac) {
            client.mark_seen(s.source, at);
            client.seen_on(&s.interface, s.source, at);
            match s.source {
                Source::Station if !client.stations.contains(&s.interface) => {
                    client.stations.push(s.interface.clone())
                }
                Source::Fdb => client.fdb_port = Some(s.interface.clone()),
                _ => {}
            }
            for address in addresses {
                learn(
                    &self.settings,
                    &mut self.counters,
                    &mut self.tentative_count,
                    s.mac,
                    client,
                    address,
                    at,
                    changes,
                );
            }
            if let Some(t) = tentative {
                if add_tentative(&self.settings, &mut self.tentative_count, client, t, at) {
                    due_by(&mut self.next_tick, at + self.settings.dad_wait);
                }
            }
            return;
        }
        if now.saturating_duration_since(at) >= self.settings.presence_timeout {
            self.counters.count(Counter::IgnoredStale);
            return;
        }
        if let Some(left) = self.departed.get(&s.mac) {
            if at <= *left {
                self.counters.count(Counter::IgnoredBeforeDeparture);
                return;
            }
            self.departed.remove(&s.mac);
        }
        if self.clients.len() >= self.settings.max_clients {
            self.counters.count(Counter::RefusedFull);
            return;
        }
        let mut client = Client::new(&s.interface, s.source, at);
        client.mark_seen(s.source, at);
        match s.source {
            Source::Station => client.stations.push(s.interface.clone()),
            Source::Fdb => client.fdb_port = Some(s.interface.clone()),
            _ => {}
        }
        // Addresses known at appearance travel in the appearance itself.
        let mut silent = Vec::new();
        for address in addresses {
            learn(
                &self.settings,
                &mut self.counters,
                &mut self.tentative_count,
                s.mac,
                &mut client,
                address,
                at,
                &mut silent,
            );
        }
        if let Some(t) = tentative {
            if add_tentative(
                &self.settings,
                &mut self.tentative_count,
                &mut client,
                t,
                at,
            ) {
                due_by(&mut self.next_tick, at + self.settings.dad_wait);
            }
        }
        // Sightings only move a client's last sighting later, so its
        // timeout is due no earlier than this.
        due_by(&mut self.next_tick, at + self.settings.presence_timeout);
        self.counters.count(Counter::Appeared);
        changes.push(Change::Appeared(client.view(
            s.mac,
            now,
            self.settings.presence_timeout,
        )));
        self.clients.insert(s.mac, client);
    }

    fn snooped(
        &mut self,
        now: Instant,
        interface: String,
        frame: Snooped,
        outgoing: bool,
        changes: &mut Vec<Change>,
    ) {
        // Whoever advertises an address defends it against every other MAC
        // testing it, this node included.
        if let Some(target) = frame.advertised_address() {
            self.defend(target, frame.source_mac);
        }
        if outgoing {
            return;
        }
        let used: Vec<Ipv6Addr> = frame.used_addresses().collect();
        self.sighting(
            now,
            Sighting {
                mac: frame.source_mac,
                source: Source::Snoop,
                interface,
                seen_at: now,
                address: None,
            },
            &used,
            frame.tentative_address(),
            changes,
        );
    }

    /// Drops tentative `address` from every client but `owner`.
    fn defend(&mut self, address: Ipv6Addr, owner: MacAddr) {
        if self.tentative_count == 0 {
            return;
        }
        for (mac, client) in self.clients.iter_mut() {
            if *mac == owner {
                continue;
            }
            let before = client.tentative.len();
            client.tentative.retain(|(a, _)| *a != address);
            let dropped = before - client.tentative.len();
            self.tentative_count -= dropped;
            self.counters
                .add(Counter::TentativeDefended, dropped as u64);
        }
    }

    // ===== departures =====

    fn station_gone(&mut self, mac: MacAddr, interface: &str, changes: &mut Vec<Change>) {
        let Some(client) = self.clients.get_mut(&mac) else {
            return;
        };
        client.stations.retain(|s| s != interface);
        if client.interface != interface {
            // Seen elsewhere since (another radio of this node, a cable):
            // this association's end is not the client's.
            return;
        }
        match client.stations.first() {
            Some(other) => {
                client.interface = other.clone();
                client.interface_is_port = true;
            }
            None => self.remove(mac, GoneReason::Disassociated, changes),
        }
    }

    fn link_lost(&mut self, interface: &str, changes: &mut Vec<Change>) {
        let mut lost = Vec::new();
        for (mac, client) in self.clients.iter_mut() {
            client.stations.retain(|s| s != interface);
            if client.fdb_port.as_deref() == Some(interface) {
                client.fdb_port = None;
            }
            if client.interface != interface {
                continue;
            }
            match client.stations.first() {
                Some(other) => {
                    client.interface = other.clone();
                    client.interface_is_port = true;
                }
                None => lost.push(*mac),
            }
        }
        for mac in lost {
            self.remove(mac, GoneReason::LinkLost, changes);
        }
    }

    /// Times clients out and learns tentative addresses whose wait is
    /// over; notes when the next of those is due. (Departed clients are
    /// pruned here too; they need no deadline of their own: their table is
    /// bounded by `max_clients`.)
    fn tick(&mut self, now: Instant, changes: &mut Vec<Change>) {
        let timeout = self.settings.presence_timeout;
        self.departed
            .retain(|_, left| now.saturating_duration_since(*left) < timeout);
        let mut expired = Vec::new();
        let mut next = None;
        for (mac, client) in self.clients.iter_mut() {
            let Some(last) = client
                .last_seen()
                .filter(|t| now.saturating_duration_since(*t) < timeout)
            else {
                expired.push(*mac);
                continue;
            };
            due_by(&mut next, last + timeout);
            if client.tentative.is_empty() {
                continue;
            }
            let wait = self.settings.dad_wait;
            let (due, waiting): (Vec<_>, Vec<_>) = client
                .tentative
                .iter()
                .partition(|(_, since)| now.saturating_duration_since(*since) >= wait);
            for (_, since) in &waiting {
                due_by(&mut next, *since + wait);
            }
            client.tentative = waiting;
            self.tentative_count -= due.len();
            for (address, _) in due {
                learn(
                    &self.settings,
                    &mut self.counters,
                    &mut self.tentative_count,
                    *mac,
                    client,
                    address,
                    now,
                    changes,
                );
            }
        }
        for mac in expired {
            self.remove(mac, GoneReason::Timeout, changes);
        }
        self.next_tick = next;
    }

    fn remove(&mut self, mac: MacAddr, reason: GoneReason, changes: &mut Vec<Change>) {
        let Some(client) = self.clients.remove(&mac) else {
            return;
        };
        self.tentative_count -= client.tentative.len();
        // When it left: for a timeout its latest sighting (anything seen
        // after that is news); for a departure (disassociation, link lost)
        // now, as a neighbour entry confirmed a moment before it left is
        // no sign it is back.
        let left = match reason {
            GoneReason::Timeout => client.last_seen(),
            _ => Some(self.now),
        };
        if let Some(left) = left {
            if self.departed.len() >= self.settings.max_clients {
                if let Some(oldest) = self
                    .departed
                    .iter()
                    .min_by_key(|(_, t)| **t)
                    .map(|(m, _)| *m)
                {
                    self.departed.remove(&oldest);
                }
            }
            self.departed.insert(mac, left);
        }
        match reason {
            GoneReason::Timeout => self.counters.count(Counter::GoneTimeout),
            GoneReason::Disassociated => self.counters.count(Counter::GoneDisassociated),
            GoneReason::LinkLost => self.counters.count(Counter::GoneLinkLost),
            GoneReason::Local => self.counters.count(Counter::GoneLocal),
        }
        changes.push(Change::Gone { mac, reason });
    }
}

// ===== addresses =====

/// Learns `address` for `client`: reported once, refreshed afterwards; the
/// least recently seen address makes room when the client has too many.
#[allow(clippy::too_many_arguments)]
fn learn(
    settings: &Settings,
    counters: &mut Counters,
    tentative_count: &mut usize,
    mac: MacAddr,
    client: &mut Client,
    address: Ipv6Addr,
    at: Instant,
    changes: &mut Vec<Change>,
) {
    if !is_routable_client_address(&address, settings.node_client_prefix.as_ref()) {
        return;
    }
    if let Some(known) = client.addresses.iter_mut().find(|(a, _)| *a == address) {
        known.1 = known.1.max(at);
        return;
    }
    let before = client.tentative.len();
    client.tentative.retain(|(a, _)| *a != address);
    *tentative_count -= before - client.tentative.len();
    if client.addresses.len() >= settings.max_addresses.max(1) {
        if let Some(oldest) = client
            .addresses
            .iter()
            .enumerate()
            .min_by_key(|(_, (_, t))| *t)
            .map(|(i, _)| i)
        {
            client.addresses.remove(oldest);
            counters.count(Counter::AddressesEvicted);
        }
    }
    client.addresses.push((address, at));
    counters.count(Counter::AddressesLearned);
    changes.push(Change::AddressLearned { mac, address });
}

/// Notes a duplicate address detection target, unless already known;
/// true if it was new.
fn add_tentative(
    settings: &Settings,
    tentative_count: &mut usize,
    client: &mut Client,
    address: Ipv6Addr,
    at: Instant,
) -> bool {
    if !is_routable_client_address(&address, settings.node_client_prefix.as_ref())
        || client.addresses.iter().any(|(a, _)| *a == address)
        || client.tentative.iter().any(|(a, _)| *a == address)
    {
        return false;
    }
    if client.tentative.len() >= settings.max_addresses.max(1) {
        client.tentative.remove(0);
        *tentative_count -= 1;
    }
    client.tentative.push((address, at));
    *tentative_count += 1;
    true
}

/// Brings the deadline `next` forward to `at` if that is earlier.
fn due_by(next: &mut Option<Instant>, at: Instant) {
    *next = Some(next.map_or(at, |n| n.min(at)));
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{MldVersion, NdMessage};

    const TIMEOUT: Duration = Duration::from_secs(150);

    fn settings() -> Settings {
        Settings {
            presence_timeout: TIMEOUT,
            dad_wait: Duration::from_secs(2),
            max_clients: 3,
            max_addresses: 2,
            next_node_mac: Some(mac(0xff)),
            node_client_prefix: Some("fec0::/64".parse().unwrap()),
        }
    }

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x02, 0, 0, 0, 0, n])
    }

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn seen(m: MacAddr, source: Source, interface: &str, at: Instant) -> Event {
        Event::Sighting(Sighting {
            mac: m,
            source,
            interface: interface.into(),
            seen_at: at,
            address: None,
        })
    }

    fn snooped(m: MacAddr, source: &str, message: NdMessage) -> Event {
        Event::Snooped {
            interface: "veth-c1".into(),
            frame: Snooped {
                source_mac: m,
                source: ip(source),
                destination: ip("ff02::16"),
                message,
            },
            outgoing: false,
        }
    }

    /// The bookkeeping of tentative addresses matches the clients.
    fn check_tentative(p: &Presence) {
        let sum: usize = p.clients.values().map(|c| c.tentative.len()).sum();
        assert_eq!(p.tentative_count, sum);
    }

    fn appeared(changes: &[Change]) -> Vec<ClientView> {
        changes
            .iter()
            .filter_map(|c| match c {
                Change::Appeared(v) => Some(v.clone()),
                _ => None,
            })
            .collect()
    }

    fn learned(changes: &[Change]) -> Vec<Ipv6Addr> {
        changes
            .iter()
            .filter_map(|c| match c {
                Change::AddressLearned { address, .. } => Some(*address),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn first_sighting_from_any_source_makes_a_client_appear_once() {
        for source in Source::ALL {
            let t0 = Instant::now();
            let mut p = Presence::new(settings());
            let c = p.handle(t0, seen(mac(1), source, "veth-c1", t0));
            let views = appeared(&c);
            assert_eq!(views.len(), 1, "{source:?}");
            assert_eq!(views[0].mac, mac(1));
            assert_eq!(views[0].interface, "veth-c1");
            assert_eq!(views[0].sources, vec![source]);
            // Seen again: no new appearance.
            assert!(p
                .handle(t0 + secs(1), seen(mac(1), source, "veth-c1", t0 + secs(1)))
                .is_empty());
            assert_eq!(p.len(), 1);
        }
    }

    #[test]
    fn an_mld_report_from_the_unspecified_address_is_enough_to_appear() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        let c = p.handle(
            t0,
            snooped(mac(1), "::", NdMessage::MldReport(MldVersion::V2)),
        );
        let views = appeared(&c);
        assert_eq!(views.len(), 1);
        assert!(views[0].addresses.is_empty());
        assert_eq!(views[0].sources, vec![Source::Snoop]);
    }

    #[test]
    fn each_address_is_learned_once() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        let ns = NdMessage::NeighbourSolicitation {
            target: ip("fe80::1"),
        };
        let c = p.handle(t0, snooped(mac(1), "fddd:1::100", ns));
        // Known at appearance: carried by it, not learned separately.
        assert_eq!(appeared(&c)[0].addresses, vec![ip("fddd:1::100")]);
        assert!(learned(&c).is_empty());
        assert!(p
            .handle(t0 + secs(1), snooped(mac(1), "fddd:1::100", ns))
            .is_empty());
        let c = p.handle(
            t0 + secs(2),
            Event::AddressHint {
                mac: mac(1),
                address: ip("fddd:1::200"),
            },
        );
        assert_eq!(learned(&c), vec![ip("fddd:1::200")]);
        let c = p.handle(
            t0 + secs(3),
            Event::AddressHint {
                mac: mac(1),
                address: ip("fddd:1::200"),
            },
        );
        assert!(c.is_empty());
    }

    #[test]
    fn link_local_node_client_and_multicast_addresses_are_not_client_addresses() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        let rs = NdMessage::RouterSolicitation;
        let c = p.handle(t0, snooped(mac(1), "fe80::1:2", rs));
        assert!(appeared(&c)[0].addresses.is_empty());
        for a in ["fec0::5", "::ffff:10.0.0.1", "::1"] {
            let c = p.handle(
                t0,
                Event::AddressHint {
                    mac: mac(1),
                    address: ip(a),
                },
            );
            assert!(c.is_empty(), "{a}");
        }
    }

    #[test]
    fn addresses_are_bounded_least_recently_seen_forgotten_first() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        p.handle(t0, seen(mac(1), Source::Fdb, "veth-c1", t0));
        for (i, a) in ["fddd:1::1", "fddd:1::2", "fddd:1::1", "fddd:1::3"]
            .iter()
            .enumerate()
        {
            let at = t0 + secs(i as u64);
            p.handle(
                at,
                Event::Sighting(Sighting {
                    mac: mac(1),
                    source: Source::Neighbour,
                    interface: "br-client".into(),
                    seen_at: at,
                    address: Some(ip(a)),
                }),
            );
        }
        let view = &p.clients(t0 + secs(4))[0];
        assert_eq!(view.addresses, vec![ip("fddd:1::1"), ip("fddd:1::3")]);
        assert_eq!(p.counters().get(Counter::AddressesEvicted), 1);
        // A neighbour sighting does not move the client off its port.
        assert_eq!(view.interface, "veth-c1");
    }

    #[test]
    fn stale_neighbour_entries_are_no_departure_and_no_arrival() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        // A STALE entry of an unknown MAC does not make it appear.
        let hint = Event::AddressHint {
            mac: mac(1),
            address: ip("fddd:1::100"),
        };
        assert!(p.handle(t0, hint.clone()).is_empty());
        assert!(p.is_empty());
        // A present client whose entry goes STALE stays, and its address is learned.
        p.handle(t0, seen(mac(1), Source::Snoop, "veth-c1", t0));
        assert_eq!(
            learned(&p.handle(t0 + secs(40), hint.clone())),
            vec![ip("fddd:1::100")]
        );
        assert!(p.handle(t0 + secs(100), Event::Tick).is_empty());
        assert_eq!(p.len(), 1);
        // Hints are not sightings: the timeout runs from the last real one.
        p.handle(t0 + secs(149), hint);
        let c = p.handle(t0 + TIMEOUT, Event::Tick);
        assert_eq!(
            c,
            vec![Change::Gone {
                mac: mac(1),
                reason: GoneReason::Timeout
            }]
        );
    }

    #[test]
    fn silence_for_the_presence_timeout_means_gone() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        p.handle(t0, seen(mac(1), Source::Snoop, "veth-c1", t0));
        p.handle(
            t0 + secs(100),
            seen(mac(1), Source::Fdb, "veth-c1", t0 + secs(90)),
        );
        assert!(p.handle(t0 + secs(239), Event::Tick).is_empty());
        assert_eq!(p.clients(t0 + secs(239))[0].idle, secs(149));
        let c = p.handle(t0 + secs(240), Event::Tick);
        assert_eq!(
            c,
            vec![Change::Gone {
                mac: mac(1),
                reason: GoneReason::Timeout
            }]
        );
        assert_eq!(p.counters().get(Counter::GoneTimeout), 1);
    }

    #[test]
    fn an_fdb_entry_ageing_out_is_no_departure() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        p.handle(t0, seen(mac(1), Source::Fdb, "veth-c1", t0));
        assert_eq!(p.clients(t0)[0].sources, vec![Source::Fdb]);
        let c = p.handle(
            t0 + secs(10),
            Event::FdbGone {
                mac: mac(1),
                port: "veth-c1".into(),
            },
        );
        assert!(c.is_empty());
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn old_sightings_do_not_make_a_client_appear() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        let now = t0 + secs(500);
        // A station idle for 200 s, an FDB entry last updated 160 s ago.
        assert!(p
            .handle(
                now,
                seen(mac(1), Source::Station, "client0", now - secs(200))
            )
            .is_empty());
        assert!(p
            .handle(now, seen(mac(2), Source::Fdb, "veth-c1", now - secs(160)))
            .is_empty());
        assert_eq!(p.counters().get(Counter::IgnoredStale), 2);
        let c = p.handle(now, seen(mac(2), Source::Fdb, "veth-c1", now - secs(20)));
        assert_eq!(appeared(&c)[0].idle, secs(20));
    }

    #[test]
    fn del_station_means_gone_at_once() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        p.handle(t0, seen(mac(1), Source::Station, "client0", t0));
        p.handle(t0, seen(mac(1), Source::Fdb, "client0", t0));
        let c = p.handle(
            t0 + secs(1),
            Event::StationGone {
                mac: mac(1),
                interface: "client0".into(),
            },
        );
        assert_eq!(
            c,
            vec![Change::Gone {
                mac: mac(1),
                reason: GoneReason::Disassociated
            }]
        );
        assert!(p.is_empty());
    }

    #[test]
    fn del_station_after_moving_to_the_other_radio_is_not_a_departure() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        p.handle(t0, seen(mac(1), Source::Station, "client0", t0));
        // Band steering: NEW on the 5 GHz radio, then DEL on the 2.4 GHz one.
        p.handle(
            t0 + secs(1),
            seen(mac(1), Source::Station, "client1", t0 + secs(1)),
        );
        let c = p.handle(
            t0 + secs(1),
            Event::StationGone {
                mac: mac(1),
                interface: "client0".into(),
            },
        );
        assert!(c.is_empty());
        assert_eq!(p.clients(t0 + secs(1))[0].interface, "client1");
        // The last association's end is the client's.
        let c = p.handle(
            t0 + secs(2),
            Event::StationGone {
                mac: mac(1),
                interface: "client1".into(),
            },
        );
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn losing_the_link_means_gone_at_once_only_for_its_clients() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        p.handle(t0, seen(mac(1), Source::Fdb, "veth-c1", t0));
        p.handle(t0, seen(mac(2), Source::Snoop, "veth-c2", t0));
        let c = p.handle(
            t0 + secs(1),
            Event::LinkLost {
                interface: "veth-c1".into(),
            },
        );
        assert_eq!(
            c,
            vec![Change::Gone {
                mac: mac(1),
                reason: GoneReason::LinkLost
            }]
        );
        assert_eq!(p.clients(t0 + secs(1))[0].mac, mac(2));
    }

    #[test]
    fn own_and_next_node_and_group_macs_are_never_clients() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        p.handle(t0, Event::OwnMacs([mac(9)].into()));
        for m in [
            mac(9),
            mac(0xff),
            MacAddr([0x33, 0x33, 0, 0, 0, 1]),
            MacAddr::ZERO,
        ] {
            assert!(p.handle(t0, seen(m, Source::Fdb, "veth-c1", t0)).is_empty());
            assert!(p
                .handle(t0, snooped(m, "::", NdMessage::MldReport(MldVersion::V2)))
                .is_empty());
        }
        assert!(p.is_empty());
        // A client whose MAC becomes one of ours (an interface was created
        // with it) is gone.
        p.handle(t0, seen(mac(3), Source::Fdb, "veth-c1", t0));
        let c = p.handle(t0, Event::OwnMacs([mac(9), mac(3)].into()));
        assert_eq!(
            c,
            vec![Change::Gone {
                mac: mac(3),
                reason: GoneReason::Local
            }]
        );
    }

    #[test]
    fn a_gone_client_that_comes_back_appears_again() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        let report = NdMessage::MldReport(MldVersion::V2);
        p.handle(t0, snooped(mac(1), "fddd:1::100", report));
        p.handle(t0 + TIMEOUT, Event::Tick);
        assert!(p.is_empty());
        let c = p.handle(
            t0 + TIMEOUT + secs(1),
            snooped(mac(1), "fddd:1::100", report),
        );
        let views = appeared(&c);
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].addresses, vec![ip("fddd:1::100")]);
        assert_eq!(p.counters().get(Counter::Appeared), 2);
    }

    #[test]
    fn a_neighbour_entry_confirmed_before_the_departure_does_not_bring_it_back() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        p.handle(t0, seen(mac(1), Source::Fdb, "veth-c1", t0));
        // Its port is lost at t0 + 10 s: gone at once.
        let c = p.handle(
            t0 + secs(10),
            Event::LinkLost {
                interface: "veth-c1".into(),
            },
        );
        assert!(matches!(c[..], [Change::Gone { .. }]));
        // The kernel reports the neighbour entry it confirmed at t0 + 9 s.
        let old = p.handle(
            t0 + secs(11),
            seen(mac(1), Source::Neighbour, "br-client", t0 + secs(9)),
        );
        assert!(old.is_empty(), "{old:?}");
        assert_eq!(p.counters().get(Counter::IgnoredBeforeDeparture), 1);
        // A frame it sends after leaving is news: it is back.
        let report = NdMessage::MldReport(MldVersion::V2);
        p.handle(t0 + secs(12), Event::Tick);
        let back = p.handle(t0 + secs(12), snooped(mac(1), "fddd:1::100", report));
        assert_eq!(appeared(&back).len(), 1);
        // The departure is forgotten once it is back.
        assert!(p.departed.is_empty());
    }

    #[test]
    fn departures_are_remembered_for_the_presence_timeout_only() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        p.handle(t0, seen(mac(1), Source::Fdb, "veth-c1", t0));
        p.handle(
            t0,
            Event::LinkLost {
                interface: "veth-c1".into(),
            },
        );
        assert_eq!(p.departed.len(), 1);
        p.handle(t0 + TIMEOUT, Event::Tick);
        assert!(p.departed.is_empty());
    }

    #[test]
    fn the_table_is_bounded_and_refuses_newcomers_when_full() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        for n in 1..=5 {
            p.handle(t0, seen(mac(n), Source::Fdb, "veth-c1", t0));
        }
        assert_eq!(p.len(), 3);
        assert_eq!(p.counters().get(Counter::RefusedFull), 2);
        // Known clients are still refreshed.
        p.handle(
            t0 + secs(100),
            seen(mac(1), Source::Fdb, "veth-c1", t0 + secs(100)),
        );
        let c = p.handle(t0 + TIMEOUT, Event::Tick);
        assert_eq!(c.len(), 2);
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn the_clock_is_needed_only_when_something_is_due() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        assert_eq!(p.next_deadline(), None);
        // A client seen 10 s ago (an FDB entry's age) times out 140 s from now.
        p.handle(t0 + secs(10), seen(mac(1), Source::Fdb, "veth-c1", t0));
        assert_eq!(p.next_deadline(), Some(t0 + TIMEOUT));
        // Its DAD target is due after the wait, before that.
        let dad = NdMessage::NeighbourSolicitation {
            target: ip("fddd:1::100"),
        };
        p.handle(t0 + secs(20), snooped(mac(1), "::", dad));
        assert_eq!(p.next_deadline(), Some(t0 + secs(22)));
        assert_eq!(learned(&p.handle(t0 + secs(22), Event::Tick)).len(), 1);
        // Seen again (the snoop at 20 s): the timeout moved on with it.
        assert_eq!(p.next_deadline(), Some(t0 + secs(20) + TIMEOUT));
        let gone = p.handle(t0 + secs(20) + TIMEOUT, Event::Tick);
        assert!(matches!(
            gone[..],
            [Change::Gone {
                reason: GoneReason::Timeout,
                ..
            }]
        ));
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn a_dad_target_is_learned_after_the_wait_unless_defended() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        let dad = |target: &str| NdMessage::NeighbourSolicitation { target: ip(target) };
        let c = p.handle(t0, snooped(mac(1), "::", dad("fddd:1::100")));
        assert!(appeared(&c)[0].addresses.is_empty());
        assert!(learned(&p.handle(t0 + secs(1), Event::Tick)).is_empty());
        assert_eq!(
            learned(&p.handle(t0 + secs(2), Event::Tick)),
            vec![ip("fddd:1::100")]
        );
        assert!(learned(&p.handle(t0 + secs(3), Event::Tick)).is_empty());

        // Another client tests an address this node defends for a client
        // elsewhere in the mesh: it is never learned.
        p.handle(t0 + secs(3), snooped(mac(2), "::", dad("fddd:1::7")));
        p.handle(
            t0 + secs(3),
            Event::Snooped {
                interface: "veth-c2".into(),
                frame: Snooped {
                    source_mac: mac(0xff),
                    source: ip("fe80::1"),
                    destination: ip("ff02::1"),
                    message: NdMessage::NeighbourAdvertisement {
                        target: ip("fddd:1::7"),
                        router: true,
                        solicited: false,
                        override_flag: false,
                    },
                },
                outgoing: true,
            },
        );
        assert!(learned(&p.handle(t0 + secs(10), Event::Tick)).is_empty());
        assert_eq!(p.counters().get(Counter::TentativeDefended), 1);

        // Using a tentative address as a source (optimistic DAD) makes it learned at once.
        p.handle(t0 + secs(10), snooped(mac(2), "::", dad("fddd:1::8")));
        let c = p.handle(
            t0 + secs(10),
            snooped(mac(2), "fddd:1::8", NdMessage::RouterSolicitation),
        );
        assert_eq!(learned(&c), vec![ip("fddd:1::8")]);
        check_tentative(&p);
        assert!(learned(&p.handle(t0 + secs(20), Event::Tick)).is_empty());
        // A client gone with tentative addresses takes them along.
        p.handle(t0 + secs(20), snooped(mac(3), "::", dad("fddd:1::9")));
        check_tentative(&p);
        p.handle(t0 + secs(200), Event::Tick);
        assert!(p.is_empty());
        check_tentative(&p);
    }

    #[test]
    fn outgoing_frames_are_no_sightings() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        let c = p.handle(
            t0,
            Event::Snooped {
                interface: "veth-c1".into(),
                frame: Snooped {
                    source_mac: mac(5),
                    source: ip("fddd:1::5"),
                    destination: ip("ff02::1"),
                    message: NdMessage::NeighbourAdvertisement {
                        target: ip("fddd:1::5"),
                        router: false,
                        solicited: false,
                        override_flag: true,
                    },
                },
                outgoing: true,
            },
        );
        assert!(c.is_empty());
        assert!(p.is_empty());
    }

    #[test]
    fn the_latest_port_wins_and_sources_are_listed() {
        let t0 = Instant::now();
        let mut p = Presence::new(settings());
        p.handle(t0, seen(mac(1), Source::Neighbour, "br-client", t0));
        assert_eq!(p.clients(t0)[0].interface, "br-client");
        p.handle(
            t0 + secs(1),
            seen(mac(1), Source::Fdb, "veth-c1", t0 + secs(1)),
        );
        assert_eq!(p.clients(t0 + secs(1))[0].interface, "veth-c1");
        // An older FDB report does not move it back.
        p.handle(
            t0 + secs(2),
            seen(mac(1), Source::Snoop, "veth-c2", t0 + secs(2)),
        );
        p.handle(
            t0 + secs(3),
            seen(mac(1), Source::Fdb, "veth-c1", t0 + secs(1)),
        );
        let view = &p.clients(t0 + secs(3))[0];
        assert_eq!(view.interface, "veth-c2");
        assert_eq!(
            view.sources,
            vec![Source::Fdb, Source::Neighbour, Source::Snoop]
        );
        // Past the timeout of the neighbour sighting, only standing and recent sources remain.
        let view = &p.clients(t0 + secs(151))[0];
        assert_eq!(view.sources, vec![Source::Fdb, Source::Snoop]);
    }
}
