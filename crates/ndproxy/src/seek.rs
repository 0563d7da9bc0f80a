//! The seek state machine: what ndproxy does when core asks for an address,
//! when a SEEK arrives from the mesh, and when a client answers a
//! solicitation.
//!
//! Events go in (a seek request, a datagram from the mesh, an ICMPv6 message
//! from a client link, a timer tick), each with the current [`Instant`];
//! [`Action`]s come out (send this SEEK on that mesh interface, solicit that
//! address on that client interface, report a found neighbour). There are no
//! sockets and no clocks in here, so every behaviour (duplicates, rate limits,
//! backoff, ttl, answers) is tested deterministically below.
//!
//! Everything that can grow is bounded: the duplicate filter
//! ([`SeenCache`]), the table of addresses being sought and the table of found
//! neighbours all have a capacity and forget old entries. What goes out is
//! bounded by token buckets: one for seeks requested by core, one for
//! solicitations caused by mesh SEEKs, one for re-flooded SEEKs. Each
//! address also has its own backoff, so a client that never answers does not
//! cost more than one seek every few seconds however often core asks.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use l3roamd_intercom::{Body, Packet, SeenCache};
use l3roamd_types::MacAddr;

use crate::nd;

// ===== interfaces, limits, actions =====

/// A mesh interface, by its position in `mesh.mesh_interfaces`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MeshIf(pub usize);

/// A client interface, by its position in `mesh.client_interfaces`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIf(pub usize);

/// How much the state machine may send and remember (from `[ndproxy]`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Seeks requested by core sent per second (all addresses).
    pub seeks_per_second: u32,
    /// Burst of seeks requested by core.
    pub seek_burst: u32,
    /// First interval of the per-address backoff, and the shortest time
    /// between two solicitations of one address.
    pub seek_min_interval: Duration,
    /// Longest interval of the per-address backoff.
    pub seek_max_interval: Duration,
    /// Solicitations caused by mesh SEEKs per second.
    pub mesh_solicits_per_second: u32,
    /// Burst of solicitations caused by mesh SEEKs.
    pub mesh_solicit_burst: u32,
    /// Re-flooded SEEKs per second.
    pub mesh_forwards_per_second: u32,
    /// Burst of re-flooded SEEKs.
    pub mesh_forward_burst: u32,
    /// Duplicate suppression window of flooded SEEKs.
    pub seen_window: Duration,
    /// Most SEEKs remembered for duplicate suppression.
    pub seen_capacity: usize,
    /// How long a seek waits for an answer (and names its seeker).
    pub answer_window: Duration,
    /// Most addresses being sought at once.
    pub max_sought: usize,
    /// How long a found neighbour stays in the snapshot.
    pub found_keep: Duration,
    /// Most found neighbours kept.
    pub max_found: usize,
}

/// What the adapters must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Multicast `packet` to the intercom group on `iface`, from the node address.
    SendSeek {
        /// The mesh interface.
        iface: MeshIf,
        /// The SEEK (originated, or re-flooded with its ttl already lowered).
        packet: Packet,
    },
    /// Send a neighbour solicitation for `target` on `iface`.
    Solicit {
        /// The client interface.
        iface: ClientIf,
        /// The address sought.
        target: Ipv6Addr,
    },
    /// A sought address answered: tell the watchers.
    Found(Found),
}

/// A client that answered a solicitation for an address somebody sought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The address it answered for.
    pub addr: Ipv6Addr,
    /// Its MAC (the advertisement's target link-layer address).
    pub mac: MacAddr,
    /// The client interface it answered on.
    pub interface: String,
    /// Node addresses that sought it within the answer window, earliest
    /// first; ours when core asked.
    pub sought_by: Vec<Ipv6Addr>,
    /// When it answered.
    pub at: Instant,
}

/// What became of a seek requested by core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekOutcome {
    /// Flooded on the mesh and solicited locally.
    Sent,
    /// The same address was sought too recently (per-address backoff).
    SuppressedBackoff,
    /// Too many seeks per second overall.
    SuppressedRate,
}

pub use l3roamd_types::addr::is_seekable;

// ===== counters =====

l3roamd_daemon::counters! {
    "One counter of ndproxy, shown by `GetStatus`.";
    SeeksRequested => "seeks_requested": "Seeks core asked for (valid addresses).",
    SeeksSent => "seeks_sent": "Seeks core asked for that were flooded and solicited.",
    SeeksSuppressedBackoff => "seeks_suppressed_backoff": "Seeks suppressed: same address sought too recently.",
    SeeksSuppressedRate => "seeks_suppressed_rate": "Seeks suppressed: global seek rate reached.",
    MeshPacketsSent => "mesh_packets_sent": "SEEK datagrams sent on mesh interfaces (originated and re-flooded).",
    MeshSendErrors => "mesh_send_errors": "SEEK datagrams the kernel refused or that had no socket.",
    MeshReceiveErrors => "mesh_receive_errors": "Errors reading a mesh socket.",
    MeshSeeksReceived => "mesh_seeks_received": "New SEEKs received from the mesh.",
    MeshSeeksForwarded => "mesh_seeks_forwarded": "SEEKs from the mesh re-flooded.",
    MeshSeeksTtlExpired => "mesh_seeks_ttl_expired": "SEEKs from the mesh not re-flooded: ttl exhausted.",
    MeshForwardsSuppressed => "mesh_forwards_suppressed": "SEEKs from the mesh not re-flooded: forward rate reached.",
    MeshSeeksDuplicate => "mesh_seeks_duplicate": "SEEKs from the mesh dropped as seen recently.",
    MeshSeeksOwn => "mesh_seeks_own": "SEEKs from the mesh dropped: our own node address as sender.",
    MeshSeeksBadTarget => "mesh_seeks_bad_target": "SEEKs from the mesh dropped: the address cannot be sought.",
    MeshMalformed => "mesh_malformed": "Datagrams on the intercom group that do not decode.",
    MeshNotSeek => "mesh_not_seek": "Packets on the intercom group that are not SEEKs.",
    MeshForeignInterface => "mesh_foreign_interface": "Datagrams that arrived on an interface that is not a mesh interface.",
    AuthMissing => "auth_missing": "SEEKs dropped in require mode: no authentication trailer.",
    AuthBad => "auth_bad": "SEEKs dropped: the authentication trailer does not verify (forged, or another key).",
    AuthReplayed => "auth_replayed": "SEEKs dropped: authenticated, but a replay of one seen before.",
    AuthUnsigned => "auth_unsigned": "Unsigned SEEKs accepted in sign mode (nodes not yet signing).",
    MeshSolicitsSuppressed => "mesh_solicits_suppressed": "Solicitations for mesh SEEKs suppressed: mesh solicit rate reached.",
    NsSuppressed => "ns_suppressed": "Solicitations suppressed: same address solicited too recently.",
    NsSent => "ns_sent": "Neighbour solicitations sent on client interfaces.",
    NsSendErrors => "ns_send_errors": "Neighbour solicitations the kernel refused or that had no interface.",
    IcmpReceiveErrors => "icmp_receive_errors": "Errors reading the ICMPv6 socket.",
    NaReceived => "na_received": "Valid neighbour advertisements received on client interfaces.",
    NaMalformed => "na_malformed": "ICMPv6 messages that are not valid neighbour advertisements.",
    NaBadHopLimit => "na_bad_hop_limit": "Neighbour advertisements dropped: hop limit not 255.",
    NaForeignInterface => "na_foreign_interface": "Neighbour advertisements from an interface that is not a client interface.",
    NaWithoutMac => "na_without_mac": "Neighbour advertisements without a target link-layer address.",
    NaIgnoredMac => "na_ignored_mac": "Neighbour advertisements from the next-node MAC or our own MACs.",
    NaUnsought => "na_unsought": "Neighbour advertisements for addresses nobody sought recently.",
    NeighboursFound => "neighbours_found": "Sought addresses found on a client link.",
    SoughtEvicted => "sought_evicted": "Sought addresses forgotten early because the table was full.",
    FoundEvicted => "found_evicted": "Found neighbours forgotten early because the table was full.",
    WatchersLagged => "watchers_lagged": "Watch streams ended because the watcher fell behind.",
    DadProbes => "dad_probes": "Duplicate address detection probes of clients seen on client links.",
    DadDefended => "dad_defended": "Probes answered with a defending advertisement: another node serves the address for another client.",
    DadRoaming => "dad_roaming": "Probes for an address served elsewhere not defended: the client is served elsewhere itself (roaming here).",
    DadSuppressed => "dad_suppressed": "Probes not defended because of the defence rate limits.",
    DadMalformed => "dad_malformed": "Frames on the DAD sockets that are not DAD probes.",
    DadSendErrors => "dad_send_errors": "Defending advertisements the kernel refused or that had no interface.",
    DadReceiveErrors => "dad_receive_errors": "Errors reading a DAD socket.",
}

// ===== rate limiting =====

use l3roamd_daemon::TokenBucket;

/// The per-address backoff of seeks requested by core.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    /// The interval that followed the last seek sent.
    interval: Duration,
    /// No seek before this.
    next_allowed: Instant,
    /// The last request, sent or not; a quiet address starts afresh.
    last_request: Instant,
}

/// Most seeking nodes remembered per address; the oldest makes room.
const MAX_SEEKERS: usize = 16;

/// One address being sought.
#[derive(Debug, Clone)]
struct Sought {
    /// Nodes that sought it (SEEK header sender, or us) and when, last time each.
    seekers: Vec<(Ipv6Addr, Instant)>,
    /// Core's requests for it, if any.
    backoff: Option<Backoff>,
    /// The last solicitation on our client links.
    last_solicit: Option<Instant>,
    /// The last thing that happened to it.
    last_activity: Instant,
}

impl Sought {
    fn new(now: Instant) -> Sought {
        Sought {
            seekers: Vec::new(),
            backoff: None,
            last_solicit: None,
            last_activity: now,
        }
    }

    fn add_seeker(&mut self, node: Ipv6Addr, now: Instant) {
        self.last_activity = now;
        if let Some(seeker) = self.seekers.iter_mut().find(|(n, _)| *n == node) {
            seeker.1 = now;
            return;
        }
        if self.seekers.len() >= MAX_SEEKERS {
            if let Some(oldest) = self
                .seekers
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(i, _)| i)
            {
                self.seekers.swap_remove(oldest);
            }
        }
        self.seekers.push((node, now));
    }
}

// ===== the state machine =====

/// Addresses being sought, found neighbours, and the duplicate filter.
#[derive(Debug)]
pub struct Seeks {
    node: Ipv6Addr,
    mesh_ifaces: usize,
    client_ifaces: Vec<String>,
    next_node_mac: Option<MacAddr>,
    own_macs: Vec<MacAddr>,
    limits: Limits,
    seen: SeenCache,
    seek_bucket: TokenBucket,
    solicit_bucket: TokenBucket,
    forward_bucket: TokenBucket,
    sought: HashMap<Ipv6Addr, Sought>,
    found: HashMap<Ipv6Addr, Found>,
    counters: Counters,
}

impl Seeks {
    /// A state machine for node `node` with `mesh_ifaces` mesh interfaces and
    /// the named client interfaces.
    pub fn new(
        node: Ipv6Addr,
        mesh_ifaces: usize,
        client_ifaces: Vec<String>,
        next_node_mac: Option<MacAddr>,
        limits: Limits,
    ) -> Seeks {
        Seeks {
            node,
            mesh_ifaces,
            client_ifaces,
            next_node_mac,
            own_macs: Vec::new(),
            seen: SeenCache::new(limits.seen_window, limits.seen_capacity),
            seek_bucket: TokenBucket::new(limits.seeks_per_second, limits.seek_burst.max(1)),
            solicit_bucket: TokenBucket::new(
                limits.mesh_solicits_per_second,
                limits.mesh_solicit_burst.max(1),
            ),
            forward_bucket: TokenBucket::new(
                limits.mesh_forwards_per_second,
                limits.mesh_forward_burst.max(1),
            ),
            limits,
            sought: HashMap::new(),
            found: HashMap::new(),
            counters: Counters::default(),
        }
    }

    /// The number of mesh interfaces from now on (core changed them at
    /// runtime). Floods go out on `0..count`; what is remembered of earlier
    /// SEEKs does not name interfaces, so nothing else changes.
    pub fn set_mesh_interfaces(&mut self, count: usize) {
        self.mesh_ifaces = count;
    }

    /// The MACs of this node's own interfaces: advertisements carrying them
    /// are our own and never a client.
    pub fn set_own_macs(&mut self, macs: Vec<MacAddr>) {
        self.own_macs = macs;
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Counts something the adapters saw (send and receive errors, sends).
    pub fn count(&mut self, counter: Counter) {
        self.counters.count(counter);
    }

    /// The name of client interface `iface`.
    pub fn client_name(&self, iface: ClientIf) -> Option<&str> {
        self.client_ifaces.get(iface.0).map(String::as_str)
    }

    // ===== event: core asks for an address =====

    /// Core asks for `addr` (a seekable address, see [`is_seekable`]): flood
    /// a SEEK with `nonce` on every mesh interface and solicit the address
    /// on every client interface, unless backoff or the rate limit says no.
    pub fn seek_requested(
        &mut self,
        addr: Ipv6Addr,
        nonce: u32,
        now: Instant,
    ) -> (SeekOutcome, Vec<Action>) {
        self.counters.count(Counter::SeeksRequested);
        let reset_after = self.limits.seek_max_interval.saturating_mul(2);
        let mut interval = self.limits.seek_min_interval;
        if let Some(entry) = self.sought.get_mut(&addr) {
            if let Some(backoff) = entry.backoff.as_mut() {
                if now.saturating_duration_since(backoff.last_request) < reset_after {
                    if now < backoff.next_allowed {
                        backoff.last_request = now;
                        entry.last_activity = now;
                        self.counters.count(Counter::SeeksSuppressedBackoff);
                        return (SeekOutcome::SuppressedBackoff, Vec::new());
                    }
                    interval = backoff
                        .interval
                        .saturating_mul(2)
                        .min(self.limits.seek_max_interval);
                }
            }
        }
        if !self.seek_bucket.take(now) {
            self.counters.count(Counter::SeeksSuppressedRate);
            return (SeekOutcome::SuppressedRate, Vec::new());
        }
        let node = self.node;
        let entry = self.sought_entry(addr, now);
        entry.backoff = Some(Backoff {
            interval,
            next_allowed: now + interval,
            last_request: now,
        });
        entry.add_seeker(node, now);
        let packet = Packet::seek(self.node, nonce, addr);
        // Our own echoes come back (C nodes re-flood on the arrival interface).
        self.seen.insert(&packet, now);
        let mut actions = self.flood(&packet);
        self.solicit(addr, now, &mut actions);
        self.counters.count(Counter::SeeksSent);
        tracing::debug!(%addr, nonce, ?interval, "seek sent");
        (SeekOutcome::Sent, actions)
    }

    // ===== event: a datagram on the intercom group =====

    /// A datagram arrived on the intercom multicast group; `arrival` is the
    /// mesh interface it came in on, `None` if it is not one.
    pub fn mesh_received(
        &mut self,
        arrival: Option<MeshIf>,
        bytes: &[u8],
        now: Instant,
    ) -> Vec<Action> {
        if arrival.is_none_or(|i| i.0 >= self.mesh_ifaces) {
            self.counters.count(Counter::MeshForeignInterface);
            return Vec::new();
        }
        let mut packet = match Packet::decode(bytes) {
            Ok(packet) => packet,
            Err(e) => {
                tracing::debug!(error = %e, len = bytes.len(), "malformed intercom datagram");
                self.counters.count(Counter::MeshMalformed);
                return Vec::new();
            }
        };
        let Body::Seek { addr } = packet.body else {
            self.counters.count(Counter::MeshNotSeek);
            return Vec::new();
        };
        if packet.sender == self.node {
            self.counters.count(Counter::MeshSeeksOwn);
            return Vec::new();
        }
        if !self.seen.insert(&packet, now) {
            self.counters.count(Counter::MeshSeeksDuplicate);
            return Vec::new();
        }
        if !is_seekable(&addr) {
            self.counters.count(Counter::MeshSeeksBadTarget);
            return Vec::new();
        }
        self.counters.count(Counter::MeshSeeksReceived);
        tracing::debug!(%addr, sender = %packet.sender, ttl = packet.ttl, "SEEK from the mesh");
        let mut actions = Vec::new();
        self.sought_entry(addr, now).add_seeker(packet.sender, now);
        if self.solicit_bucket.take(now) {
            self.solicit(addr, now, &mut actions);
        } else {
            self.counters.count(Counter::MeshSolicitsSuppressed);
        }
        packet.ttl = packet.ttl.saturating_sub(1);
        if packet.ttl == 0 {
            self.counters.count(Counter::MeshSeeksTtlExpired);
        } else if self.forward_bucket.take(now) {
            // Also back out of the arrival interface, like C nodes: on a
            // shared medium (ad-hoc Wi-Fi, a switch) nodes behind us may
            // hear us but not the originator.
            actions.extend(self.flood(&packet));
            self.counters.count(Counter::MeshSeeksForwarded);
        } else {
            self.counters.count(Counter::MeshForwardsSuppressed);
        }
        actions
    }

    // ===== event: an ICMPv6 message on a client link =====

    /// An ICMPv6 message (a neighbour advertisement, if the socket filter
    /// did its job) arrived on client interface `arrival` (`None` if it is
    /// not one) with IPv6 hop limit `hop_limit`.
    pub fn advert_received(
        &mut self,
        arrival: Option<ClientIf>,
        hop_limit: Option<u8>,
        bytes: &[u8],
        now: Instant,
    ) -> Vec<Action> {
        let Some(interface) = arrival.and_then(|i| self.client_ifaces.get(i.0)).cloned() else {
            self.counters.count(Counter::NaForeignInterface);
            return Vec::new();
        };
        if hop_limit != Some(nd::ND_HOP_LIMIT) {
            self.counters.count(Counter::NaBadHopLimit);
            return Vec::new();
        }
        let advert = match nd::decode_advertisement(bytes) {
            Ok(advert) => advert,
            Err(e) => {
                tracing::debug!(error = %e, "malformed neighbour advertisement");
                self.counters.count(Counter::NaMalformed);
                return Vec::new();
            }
        };
        self.counters.count(Counter::NaReceived);
        let Some(mac) = advert.target_mac else {
            self.counters.count(Counter::NaWithoutMac);
            return Vec::new();
        };
        if mac.is_multicast()
            || mac == MacAddr::ZERO
            || Some(mac) == self.next_node_mac
            || self.own_macs.contains(&mac)
        {
            self.counters.count(Counter::NaIgnoredMac);
            return Vec::new();
        }
        let window = self.limits.answer_window;
        let Some(entry) = self.sought.get_mut(&advert.target) else {
            self.counters.count(Counter::NaUnsought);
            return Vec::new();
        };
        let mut seekers: Vec<(Ipv6Addr, Instant)> = entry
            .seekers
            .iter()
            .copied()
            .filter(|(_, t)| now.saturating_duration_since(*t) < window)
            .collect();
        if seekers.is_empty() {
            self.counters.count(Counter::NaUnsought);
            return Vec::new();
        }
        // Answered: later advertisements (the client answering several
        // solicitations) are not reported again until somebody seeks anew.
        entry.seekers.clear();
        entry.last_activity = now;
        seekers.sort_by_key(|(_, t)| *t);
        let found = Found {
            addr: advert.target,
            mac,
            interface,
            sought_by: seekers.into_iter().map(|(node, _)| node).collect(),
            at: now,
        };
        tracing::info!(addr = %found.addr, %mac, interface = %found.interface,
            sought_by = ?found.sought_by, "neighbour found");
        self.remember_found(found.clone(), now);
        self.counters.count(Counter::NeighboursFound);
        vec![Action::Found(found)]
    }

    // ===== event: timer =====

    /// Forgets what has expired at `now`; call about once a second while
    /// not [`Seeks::is_idle`].
    pub fn tick(&mut self, now: Instant) {
        self.seen.purge(now);
        let keep = self.sought_keep();
        self.sought
            .retain(|_, s| now.saturating_duration_since(s.last_activity) < keep);
        let found_keep = self.limits.found_keep;
        self.found
            .retain(|_, f| now.saturating_duration_since(f.at) < found_keep);
    }

    // ===== queries =====

    /// Nothing is kept that a [`Seeks::tick`] would forget: an idle node
    /// need not wake for it.
    pub fn is_idle(&self) -> bool {
        self.seen.is_empty() && self.sought.is_empty() && self.found.is_empty()
    }

    /// The neighbours found within the keep time, earliest first.
    pub fn found_snapshot(&self, now: Instant) -> Vec<Found> {
        let mut found: Vec<Found> = self
            .found
            .values()
            .filter(|f| now.saturating_duration_since(f.at) < self.limits.found_keep)
            .cloned()
            .collect();
        found.sort_by_key(|f| f.at);
        found
    }

    /// Number of addresses being sought (expired ones count until the next tick).
    pub fn sought_len(&self) -> usize {
        self.sought.len()
    }

    // ===== helpers =====

    /// How long a sought address is kept after its last activity: as long as
    /// an answer counts, and as long as its backoff matters.
    fn sought_keep(&self) -> Duration {
        self.limits
            .answer_window
            .max(self.limits.seek_max_interval.saturating_mul(2))
    }

    /// The entry of `addr`, made (within the table's bound) if new.
    fn sought_entry(&mut self, addr: Ipv6Addr, now: Instant) -> &mut Sought {
        if !self.sought.contains_key(&addr) && self.sought.len() >= self.limits.max_sought {
            let keep = self.sought_keep();
            self.sought
                .retain(|_, s| now.saturating_duration_since(s.last_activity) < keep);
            while self.sought.len() >= self.limits.max_sought {
                let Some(oldest) = self
                    .sought
                    .iter()
                    .min_by_key(|(_, s)| s.last_activity)
                    .map(|(a, _)| *a)
                else {
                    break;
                };
                self.sought.remove(&oldest);
                self.counters.count(Counter::SoughtEvicted);
            }
        }
        self.sought.entry(addr).or_insert_with(|| Sought::new(now))
    }

    /// Keeps `found` for the snapshot, within the table's bound.
    fn remember_found(&mut self, found: Found, now: Instant) {
        if !self.found.contains_key(&found.addr) && self.found.len() >= self.limits.max_found {
            let keep = self.limits.found_keep;
            self.found
                .retain(|_, f| now.saturating_duration_since(f.at) < keep);
            while self.found.len() >= self.limits.max_found {
                let Some(oldest) = self.found.values().min_by_key(|f| f.at).map(|f| f.addr) else {
                    break;
                };
                self.found.remove(&oldest);
                self.counters.count(Counter::FoundEvicted);
            }
        }
        self.found.insert(found.addr, found);
    }

    /// `packet` on every mesh interface.
    fn flood(&self, packet: &Packet) -> Vec<Action> {
        (0..self.mesh_ifaces)
            .map(|i| Action::SendSeek {
                iface: MeshIf(i),
                packet: packet.clone(),
            })
            .collect()
    }

    /// Solicits `addr` on every client interface unless it was solicited
    /// less than the minimum seek interval ago. The entry must exist.
    fn solicit(&mut self, addr: Ipv6Addr, now: Instant, actions: &mut Vec<Action>) {
        let min = self.limits.seek_min_interval;
        let Some(entry) = self.sought.get_mut(&addr) else {
            return;
        };
        if entry
            .last_solicit
            .is_some_and(|t| now.saturating_duration_since(t) < min)
        {
            self.counters.count(Counter::NsSuppressed);
            return;
        }
        entry.last_solicit = Some(now);
        entry.last_activity = now;
        actions.extend((0..self.client_ifaces.len()).map(|i| Action::Solicit {
            iface: ClientIf(i),
            target: addr,
        }));
    }
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: Ipv6Addr = Ipv6Addr::new(0xfdff, 0, 0, 0, 0, 0, 0, 1);
    const N2: Ipv6Addr = Ipv6Addr::new(0xfdff, 0, 0, 0, 0, 0, 0, 2);
    const N3: Ipv6Addr = Ipv6Addr::new(0xfdff, 0, 0, 0, 0, 0, 0, 3);
    const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, 0x100);
    const CLIENT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0x01, 0]);
    const NEXT_NODE_MAC: MacAddr = MacAddr([0x02, 0x4e, 0x4e, 0, 0, 0x01]);
    const OWN_MAC: MacAddr = MacAddr([0x02, 0xaa, 0, 0, 0, 0x01]);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn limits() -> Limits {
        crate::NdproxyConfig::default().limits()
    }

    /// Two mesh interfaces, one client interface.
    fn machine(limits: Limits, _t0: Instant) -> Seeks {
        let mut seeks = Seeks::new(
            NODE,
            2,
            vec!["br-client".to_string()],
            Some(NEXT_NODE_MAC),
            limits,
        );
        seeks.set_own_macs(vec![OWN_MAC]);
        seeks
    }

    fn seek_bytes(sender: Ipv6Addr, ttl: u8, nonce: u32, addr: Ipv6Addr) -> Vec<u8> {
        let mut p = Packet::seek(sender, nonce, addr);
        p.ttl = ttl;
        p.encode()
    }

    fn advert(target: Ipv6Addr, mac: Option<MacAddr>) -> Vec<u8> {
        let mut na = vec![136, 0, 0, 0, 0x60, 0, 0, 0];
        na.extend_from_slice(&target.octets());
        if let Some(mac) = mac {
            na.extend_from_slice(&[2, 1]);
            na.extend_from_slice(&mac.octets());
        }
        na
    }

    fn sent_seeks(actions: &[Action]) -> Vec<(usize, Packet)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::SendSeek { iface, packet } => Some((iface.0, packet.clone())),
                _ => None,
            })
            .collect()
    }

    fn solicits(actions: &[Action]) -> Vec<(usize, Ipv6Addr)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Solicit { iface, target } => Some((iface.0, *target)),
                _ => None,
            })
            .collect()
    }

    fn found(actions: &[Action]) -> Vec<Found> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Found(f) => Some(f.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn seek_floods_and_solicits_at_once() {
        let t0 = Instant::now();
        let mut m = machine(limits(), t0);
        let (outcome, actions) = m.seek_requested(CLIENT, 0xdead_beef, t0);
        assert_eq!(outcome, SeekOutcome::Sent);
        let seeks = sent_seeks(&actions);
        assert_eq!(seeks.len(), 2);
        for (i, (iface, packet)) in seeks.iter().enumerate() {
            assert_eq!(*iface, i);
            assert_eq!(packet, &Packet::seek(NODE, 0xdead_beef, CLIENT));
            assert_eq!(packet.ttl, 255);
        }
        assert_eq!(solicits(&actions), vec![(0, CLIENT)]);
        assert_eq!(m.counters().get(Counter::SeeksSent), 1);
    }

    #[test]
    fn mesh_interfaces_changed_at_runtime_change_floods_and_arrivals() {
        let t0 = Instant::now();
        let mut m = machine(limits(), t0);
        m.set_mesh_interfaces(3);
        let seeks = sent_seeks(&m.seek_requested(CLIENT, 1, t0).1);
        assert_eq!(seeks.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 1, 2]);
        let other = Ipv6Addr::from(u128::from(CLIENT) + 1);
        assert!(!m
            .mesh_received(Some(MeshIf(2)), &seek_bytes(N2, 9, 2, other), t0)
            .is_empty());
        m.set_mesh_interfaces(1);
        let third = Ipv6Addr::from(u128::from(CLIENT) + 2);
        assert!(m
            .mesh_received(Some(MeshIf(2)), &seek_bytes(N2, 9, 3, third), t0)
            .is_empty());
        assert_eq!(m.counters().get(Counter::MeshForeignInterface), 1);
        let seeks = sent_seeks(&m.seek_requested(third, 4, t0 + ms(10)).1);
        assert_eq!(seeks.iter().map(|s| s.0).collect::<Vec<_>>(), [0]);
        m.set_mesh_interfaces(0);
        assert!(sent_seeks(&m.seek_requested(other, 5, t0 + ms(20)).1).is_empty());
    }

    #[test]
    fn own_seek_wire_format_matches_c_vector() {
        // Vector 1 with our nonce: only the nonce differs from a C node's SEEK.
        let t0 = Instant::now();
        let mut m = machine(limits(), t0);
        let (_, actions) = m.seek_requested(CLIENT, 0x0000_55d1, t0);
        let c_vector = "00ff0000000055d1fdff000000000000000000000000000100140000fddd0001000000000000000000000100";
        let hex: String = sent_seeks(&actions)[0]
            .1
            .encode()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, c_vector);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_and_resets_when_quiet() {
        let t0 = Instant::now();
        let mut m = machine(limits(), t0);
        let mut sent_at = Vec::new();
        // Core asks every 50 ms for 10 s.
        for i in 0..200u64 {
            let now = t0 + ms(50 * i);
            if m.seek_requested(CLIENT, 1, now).0 == SeekOutcome::Sent {
                sent_at.push(50 * i);
            }
        }
        assert_eq!(sent_at, vec![0, 250, 750, 1750, 3750, 6750, 9750]);
        assert_eq!(m.counters().get(Counter::SeeksSuppressedBackoff), 193);
        // After a quiet spell longer than twice the maximum, back to 250 ms.
        let later = t0 + ms(9950 + 6000);
        assert_eq!(m.seek_requested(CLIENT, 1, later).0, SeekOutcome::Sent);
        assert_eq!(
            m.seek_requested(CLIENT, 1, later + ms(200)).0,
            SeekOutcome::SuppressedBackoff
        );
        assert_eq!(
            m.seek_requested(CLIENT, 1, later + ms(250)).0,
            SeekOutcome::Sent
        );
    }

    #[test]
    fn global_rate_limit_stops_a_scan() {
        let t0 = Instant::now();
        let mut lim = limits();
        lim.seeks_per_second = 10;
        lim.seek_burst = 5;
        lim.max_sought = 64;
        let mut m = machine(lim, t0);
        let mut sent = 0;
        // A scan of 10 000 addresses within one second.
        for i in 0..10_000u32 {
            let addr = Ipv6Addr::from(u128::from(CLIENT) + u128::from(i));
            let now = t0 + Duration::from_micros(u64::from(i) * 100);
            let (outcome, actions) = m.seek_requested(addr, i, now);
            if outcome == SeekOutcome::Sent {
                sent += 1;
            } else {
                assert!(actions.is_empty());
            }
        }
        // The burst of 5 plus 10 per second for (almost) one second.
        assert_eq!(sent, 14);
        assert_eq!(m.counters().get(Counter::SeeksSuppressedRate), 10_000 - 14);
        assert!(m.sought_len() <= 64);
        // Tokens come back with time.
        assert_eq!(
            m.seek_requested(CLIENT, 1, t0 + Duration::from_secs(2)).0,
            SeekOutcome::Sent
        );
    }

    #[test]
    fn sought_table_is_bounded() {
        let t0 = Instant::now();
        let mut lim = limits();
        lim.seeks_per_second = 1_000_000;
        lim.seek_burst = 1_000_000;
        lim.mesh_solicits_per_second = 1_000_000;
        lim.mesh_solicit_burst = 1_000_000;
        lim.max_sought = 100;
        let mut m = machine(lim, t0);
        for i in 0..1000u32 {
            let addr = Ipv6Addr::from(u128::from(CLIENT) + u128::from(i));
            let now = t0 + ms(u64::from(i));
            m.seek_requested(addr, i, now);
            m.mesh_received(Some(MeshIf(0)), &seek_bytes(N2, 255, i, addr), now);
            assert!(m.sought_len() <= 100);
        }
        assert!(m.counters().get(Counter::SoughtEvicted) >= 900);
        // Everything is forgotten once quiet.
        m.tick(t0 + Duration::from_secs(30));
        assert_eq!(m.sought_len(), 0);
    }

    #[test]
    fn mesh_seek_is_solicited_and_reflooded_with_lower_ttl() {
        let t0 = Instant::now();
        let mut m = machine(limits(), t0);
        let bytes = seek_bytes(N2, 254, 0x55d1, CLIENT);
        let actions = m.mesh_received(Some(MeshIf(1)), &bytes, t0);
        assert_eq!(solicits(&actions), vec![(0, CLIENT)]);
        let seeks = sent_seeks(&actions);
        // On every mesh interface, the arrival interface (1) included.
        assert_eq!(
            seeks.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![0, 1]
        );
        for (_, p) in &seeks {
            assert_eq!(p.ttl, 253);
            assert_eq!(p.sender, N2, "the header sender is kept");
            assert_eq!(p.nonce, 0x55d1, "the nonce is kept");
        }
        assert_eq!(m.counters().get(Counter::MeshSeeksReceived), 1);
        assert_eq!(m.counters().get(Counter::MeshSeeksForwarded), 1);
    }

    #[test]
    fn ttl_one_is_solicited_but_not_reflooded() {
        let t0 = Instant::now();
        let mut m = machine(limits(), t0);
        let actions = m.mesh_received(Some(MeshIf(0)), &seek_bytes(N2, 1, 7, CLIENT), t0);
        assert_eq!(solicits(&actions).len(), 1);
        assert!(sent_seeks(&actions).is_empty());
        // ttl 0 (nobody should send it) is handled the same way, without underflow.
        let actions = m.mesh_received(Some(MeshIf(0)), &seek_bytes(N3, 0, 7, CLIENT), t0 + ms(300));
        assert!(sent_seeks(&actions).is_empty());
        assert_eq!(m.counters().get(Counter::MeshSeeksTtlExpired), 2);
    }

    #[test]
    fn duplicates_are_dropped_within_the_window_only() {
        let t0 = Instant::now();
        let mut m = machine(limits(), t0);
        let first = seek_bytes(N2, 255, 0x55d1, CLIENT);
        assert!(!m.mesh_received(Some(MeshIf(0)), &first, t0).is_empty());
        // The same SEEK via another path, one hop longer.
        let echo = seek_bytes(N2, 253, 0x55d1, CLIENT);
        assert!(m
            .mesh_received(Some(MeshIf(1)), &echo, t0 + ms(10))
            .is_empty());
        assert_eq!(m.counters().get(Counter::MeshSeeksDuplicate), 1);
        // A C node's next SEEK for another address with the same nonce (D1).
        let other = Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, 0x101);
        let actions = m.mesh_received(
            Some(MeshIf(0)),
            &seek_bytes(N2, 255, 0x55d1, other),
            t0 + ms(20),
        );
        assert_eq!(solicits(&actions), vec![(0, other)]);
        // Its identical retry 3 s later passes the 2 s window.
        let actions = m.mesh_received(Some(MeshIf(0)), &first, t0 + ms(3000));
        assert_eq!(sent_seeks(&actions).len(), 2);
    }

    #[test]
    fn own_seeks_and_their_echoes_are_dropped() {
        let t0 = Instant::now();
        let mut m = machine(limits(), t0);
        let (_, actions) = m.seek_requested(CLIENT, 42, t0);
        let (_, ours) = sent_seeks(&actions)[0].clone();
        let mut echo = ours;
        echo.ttl = 254;
        assert!(m
            .mesh_received(Some(MeshIf(0)), &echo.encode(), t0 + ms(5))
            .is_empty());
        // Even a SEEK claiming to be from us that we never sent.
        let forged = seek_bytes(NODE, 255, 99, CLIENT);
        assert!(m
            .mesh_received(Some(MeshIf(0)), &forged, t0 + ms(6))
            .is_empty());
        assert_eq!(m.counters().get(Counter::MeshSeeksOwn), 2);
    }

    #[test]
    fn foreign_interface_malformed_and_other_types_are_counted() {
        let t0 = Instant::now();
        let mut m = machine(limits(), t0);
        let good = seek_bytes(N2, 255, 1, CLIENT);
        assert!(m.mesh_received(None, &good, t0).is_empty());
        assert!(m.mesh_received(Some(MeshIf(7)), &good, t0).is_empty());
        assert_eq!(m.counters().get(Counter::MeshForeignInterface), 2);
        // Truncated, zero-length segment, other version, nothing at all.
        let mut zero_seg = good[..24].to_vec();
        zero_seg.extend_from_slice(&[0x05, 0x00]);
        let mut version = good.clone();
        version[0] = 1;
        for bad in [&good[..30], &zero_seg[..], &version[..], &[][..]] {
            assert!(m.mesh_received(Some(MeshIf(0)), bad, t0).is_empty());
        }
        assert_eq!(m.counters().get(Counter::MeshMalformed), 4);
        let claim = Packet::claim(N2, 1, CLIENT_MAC).encode();
        assert!(m.mesh_received(Some(MeshIf(0)), &claim, t0).is_empty());
        assert_eq!(m.counters().get(Counter::MeshNotSeek), 1);
        let link_local = seek_bytes(N2, 255, 1, "fe80::1".parse().unwrap());
        assert!(m.mesh_received(Some(MeshIf(0)), &link_local, t0).is_empty());
        assert_eq!(m.counters().get(Counter::MeshSeeksBadTarget), 1);
        // None of it made the address sought.
        assert_eq!(m.sought_len(), 0);
    }

    #[test]
    fn no_datagram_panics() {
        let t0 = Instant::now();
        let mut m = machine(limits(), t0);
        let good = seek_bytes(N2, 255, 1, CLIENT);
        for len in 0..=good.len() {
            m.mesh_received(Some(MeshIf(0)), &good[..len], t0);
        }
        for i in 0..good.len() {
            for v in [0u8, 1, 2, 0x13, 0x14, 0xff] {
                let mut bytes = good.clone();
                bytes[i] = v;
                m.mesh_received(Some(MeshIf(0)), &bytes, t0);
                m.advert_received(Some(ClientIf(0)), Some(255), &bytes, t0);
            }
        }
    }

    #[test]
    fn mesh_solicits_and_forwards_have_their_own_caps() {
        let t0 = Instant::now();
        let mut lim = limits();
        lim.mesh_solicits_per_second = 1;
        lim.mesh_solicit_burst = 2;
        lim.mesh_forwards_per_second = 1;
        lim.mesh_forward_burst = 3;
        let mut m = machine(lim, t0);
        let mut ns = 0;
        let mut fwd = 0;
        for i in 0..10u32 {
            let addr = Ipv6Addr::from(u128::from(CLIENT) + u128::from(i));
            let actions = m.mesh_received(Some(MeshIf(0)), &seek_bytes(N2, 255, i, addr), t0);
            ns += solicits(&actions).len();
            fwd += usize::from(!sent_seeks(&actions).is_empty());
        }
        assert_eq!((ns, fwd), (2, 3));
        assert_eq!(m.counters().get(Counter::MeshSolicitsSuppressed), 8);
        assert_eq!(m.counters().get(Counter::MeshForwardsSuppressed), 7);
        // Core's seeks are not affected by the mesh caps.
        assert_eq!(m.seek_requested(N3, 1, t0).0, SeekOutcome::Sent);
    }

    #[test]
    fn an_address_is_solicited_at_most_every_minimum_interval() {
        let t0 = Instant::now();
        let mut m = machine(limits(), t0);
        let a = m.mesh_received(Some(MeshIf(0)), &seek_bytes(N2, 255, 1, CLIENT), t0);
        assert_eq!(solicits(&a).len(), 1);
        // Core asks 100 ms later: the SEEK goes out, the solicitation was just made.
        let (outcome, b) = m.seek_requested(CLIENT, 2, t0 + ms(100));
        assert_eq!(outcome, SeekOutcome::Sent);
        assert_eq!(sent_seeks(&b).len(), 2);
        assert!(solicits(&b).is_empty());
        assert_eq!(m.counters().get(Counter::NsSuppressed), 1);
    }

    #[test]
    fn found_names_every_recent_seeker() {
        let t0 = Instant::now();
        let mut m = machine(limits(), t0);
        m.mesh_received(Some(MeshIf(0)), &seek_bytes(N2, 255, 1, CLIENT), t0);
        m.mesh_received(
            Some(MeshIf(1)),
            &seek_bytes(N3, 250, 9, CLIENT),
            t0 + ms(300),
        );
        m.seek_requested(CLIENT, 5, t0 + ms(600));
        let actions = m.advert_received(
            Some(ClientIf(0)),
            Some(255),
            &advert(CLIENT, Some(CLIENT_MAC)),
            t0 + ms(601),
        );
        let f = found(&actions);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].addr, CLIENT);
        assert_eq!(f[0].mac, CLIENT_MAC);
        assert_eq!(f[0].interface, "br-client");
        assert_eq!(f[0].sought_by, vec![N2, N3, NODE]);
        assert_eq!(m.counters().get(Counter::NeighboursFound), 1);
        // A second answer is not reported again...
        let again = m.advert_received(
            Some(ClientIf(0)),
            Some(255),
            &advert(CLIENT, Some(CLIENT_MAC)),
            t0 + ms(602),
        );
        assert!(again.is_empty());
        assert_eq!(m.counters().get(Counter::NaUnsought), 1);
        // ...until somebody seeks it anew.
        m.mesh_received(
            Some(MeshIf(0)),
            &seek_bytes(N2, 255, 2, CLIENT),
            t0 + ms(5000),
        );
        let f = found(&m.advert_received(
            Some(ClientIf(0)),
            Some(255),
            &advert(CLIENT, Some(CLIENT_MAC)),
            t0 + ms(5001),
        ));
        assert_eq!(f[0].sought_by, vec![N2]);
        // The snapshot holds the latest.
        let snapshot = m.found_snapshot(t0 + ms(5002));
        assert_eq!(snapshot.len(), 1);
        assert_eq!(snapshot[0].sought_by, vec![N2]);
    }

    #[test]
    fn seekers_outside_the_answer_window_are_left_out() {
        let t0 = Instant::now();
        let mut m = machine(limits(), t0);
        m.mesh_received(Some(MeshIf(0)), &seek_bytes(N2, 255, 1, CLIENT), t0);
        m.mesh_received(
            Some(MeshIf(0)),
            &seek_bytes(N3, 255, 1, CLIENT),
            t0 + ms(9000),
        );
        let f = found(&m.advert_received(
            Some(ClientIf(0)),
            Some(255),
            &advert(CLIENT, Some(CLIENT_MAC)),
            t0 + ms(10_500),
        ));
        assert_eq!(f[0].sought_by, vec![N3]);
        // Nobody within the window: not an answer.
        m.mesh_received(
            Some(MeshIf(0)),
            &seek_bytes(N2, 255, 3, CLIENT),
            t0 + ms(20_000),
        );
        let late = m.advert_received(
            Some(ClientIf(0)),
            Some(255),
            &advert(CLIENT, Some(CLIENT_MAC)),
            t0 + ms(30_000),
        );
        assert!(late.is_empty());
    }

    #[test]
    fn adverts_that_do_not_count() {
        let t0 = Instant::now();
        let mut m = machine(limits(), t0);
        m.seek_requested(CLIENT, 1, t0);
        let good = advert(CLIENT, Some(CLIENT_MAC));
        let now = t0 + ms(1);
        assert!(m.advert_received(None, Some(255), &good, now).is_empty());
        assert!(m
            .advert_received(Some(ClientIf(3)), Some(255), &good, now)
            .is_empty());
        assert_eq!(m.counters().get(Counter::NaForeignInterface), 2);
        assert!(m
            .advert_received(Some(ClientIf(0)), Some(254), &good, now)
            .is_empty());
        assert!(m
            .advert_received(Some(ClientIf(0)), None, &good, now)
            .is_empty());
        assert_eq!(m.counters().get(Counter::NaBadHopLimit), 2);
        assert!(m
            .advert_received(Some(ClientIf(0)), Some(255), &good[..20], now)
            .is_empty());
        assert_eq!(m.counters().get(Counter::NaMalformed), 1);
        assert!(m
            .advert_received(Some(ClientIf(0)), Some(255), &advert(CLIENT, None), now)
            .is_empty());
        assert_eq!(m.counters().get(Counter::NaWithoutMac), 1);
        for mac in [
            NEXT_NODE_MAC,
            OWN_MAC,
            MacAddr::ZERO,
            MacAddr([0x33, 0x33, 0, 0, 0, 1]),
        ] {
            assert!(m
                .advert_received(
                    Some(ClientIf(0)),
                    Some(255),
                    &advert(CLIENT, Some(mac)),
                    now
                )
                .is_empty());
        }
        assert_eq!(m.counters().get(Counter::NaIgnoredMac), 4);
        let stranger = Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, 0x999);
        assert!(m
            .advert_received(
                Some(ClientIf(0)),
                Some(255),
                &advert(stranger, Some(CLIENT_MAC)),
                now
            )
            .is_empty());
        assert_eq!(m.counters().get(Counter::NaUnsought), 1);
        // The real answer still counts after all that.
        assert_eq!(
            found(&m.advert_received(Some(ClientIf(0)), Some(255), &good, now)).len(),
            1
        );
        assert_eq!(m.counters().get(Counter::NaReceived), 7);
    }

    #[test]
    fn found_table_expires_and_is_bounded() {
        let t0 = Instant::now();
        let mut lim = limits();
        lim.max_found = 3;
        lim.found_keep = Duration::from_secs(60);
        let mut m = machine(lim, t0);
        for i in 0..5u32 {
            let addr = Ipv6Addr::from(u128::from(CLIENT) + u128::from(i));
            let now = t0 + Duration::from_secs(u64::from(i));
            m.seek_requested(addr, i, now);
            m.advert_received(
                Some(ClientIf(0)),
                Some(255),
                &advert(addr, Some(CLIENT_MAC)),
                now,
            );
        }
        let snapshot = m.found_snapshot(t0 + Duration::from_secs(5));
        assert_eq!(snapshot.len(), 3);
        assert_eq!(snapshot[0].addr, Ipv6Addr::from(u128::from(CLIENT) + 2));
        assert_eq!(m.counters().get(Counter::FoundEvicted), 2);
        assert!(m.found_snapshot(t0 + Duration::from_secs(65)).is_empty());
        m.tick(t0 + Duration::from_secs(65));
        assert!(m.found_snapshot(t0 + Duration::from_secs(65)).is_empty());
    }

    #[test]
    fn counters_are_listed_by_name() {
        let m = machine(limits(), Instant::now());
        let list = m.counters().list();
        assert_eq!(list.len(), Counter::ALL.len());
        assert!(list
            .iter()
            .any(|(n, v)| *n == "mesh_seeks_duplicate" && *v == 0));
        let mut names: Vec<&str> = list.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Counter::ALL.len(), "names are unique");
    }
}
