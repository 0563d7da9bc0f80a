//! Roaming: which clients this node serves, and what to do when one
//! arrives, learns an address, is claimed by another node, or leaves.
//!
//! A plain state machine over MACs, and the one owner of "which clients
//! this node serves": events from clientmon (appeared, address learned,
//! gone, snapshot begun and done), client-db (record updated by an INFO,
//! release, claim done, resynchronised), ndproxy (neighbour found), the
//! host routes an earlier run left behind (adopted at start), and timer
//! ticks, with `now` passed in; [`Action`]s out. The engine does the I/O
//! and keeps no list of clients of its own.
//!
//! Resynchronisation: every watch stream starts with a snapshot. A client
//! that clientmon's snapshot does not list (it left while core or clientmon
//! was down, or was adopted from an earlier run's routes and is not here)
//! is treated as gone: its routes are parked and go after the grace period,
//! as for any departure. After client-db's snapshot, claims that may have
//! been lost while it was away are made again.
//!
//! Addresses in use elsewhere (the steal rule): an address that a client
//! here is seen using (clientmon, or an answer to ndproxy's solicitation)
//! while another node routes it (a reachable `/128` of another protocol,
//! babel's) is *contested*: no host route, no claim in client-db, an
//! [`Action::Refuse`]. A client that merely says it has an address (an
//! unsolicited advertisement, a nodad address) must not pull the traffic
//! of the client that really has it elsewhere. Two things end the
//! contest: the client's own record brings the address (an INFO from the
//! node it roamed from, or client-db's record: the same MAC had it), or
//! the other node's route has been gone for [`CONTEST_SETTLE`] (the owner
//! was released and its node's handover is over, or its node vanished).
//!
//! The order of a client's arrival matters: core claims it through client-db
//! first and holds its node-client address only when the claim is done.
//! While the old node still holds that address, babel routes the CLAIM to
//! it; holding the address earlier would deliver our own CLAIM to ourselves.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use l3roamd_types::{node_client_addr, Ipv6Prefix, MacAddr};

/// What the engine must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask client-db to CLAIM the client on the mesh.
    Claim(MacAddr),
    /// The client was seen using `addr`, which another node serves: no
    /// route, no claim (counted and logged by the engine).
    Refuse {
        /// The address.
        addr: Ipv6Addr,
        /// The client seen using it.
        mac: MacAddr,
    },
    /// Tell client-db the addresses this node saw the client use.
    Update(MacAddr, Vec<Ipv6Addr>),
    /// Tell client-db this node no longer serves the client.
    Forget(MacAddr),
    /// Install the host route `addr/128` via the client interface, replacing
    /// (in one step) a parked or handed-over route of the address.
    InstallRoute {
        /// The client's address.
        addr: Ipv6Addr,
        /// The client interface (bridge) the route points to.
        interface: String,
        /// The client's MAC.
        mac: MacAddr,
    },
    /// Remove core's route for `addr` at once (only without a handover time).
    RemoveRoute(Ipv6Addr),
    /// Hold the client's node-client address (it is served here).
    HoldNodeClientAddr(MacAddr),
    /// Remove the client's node-client address from this node (its route
    /// is handed over or removed by the action before).
    ReleaseNodeClientAddr(MacAddr),
    /// The client left (clientmon): route `addr` into the TUN device (with
    /// the handover protocol, so babeld announces it with the handover
    /// metric), where its packets are held and sought instead of being sent
    /// on a link the client is no longer on; the new node's claim or FOUND,
    /// or the client coming back, lets them go on.
    Park(Ipv6Addr),
    /// Hand the route for `addr` over (a client address or a node-client
    /// address this node stops serving): replace core's route for it, in
    /// one step, by one into the TUN device of the handover protocol, which
    /// babeld announces with a high metric, so the mesh keeps a route here
    /// while the new node's announcement spreads and nobody keeps our
    /// metric-0 announcement.
    HandOver(Ipv6Addr),
    /// The handover of `addr` is over: remove its route into the TUN device.
    EndHandOver(Ipv6Addr),
    /// Send packets for `addr` that still arrive here on to `node`, which
    /// serves the client now, until babel has moved the route.
    ForwardTo {
        /// The client's address.
        addr: Ipv6Addr,
        /// The node that claimed the client.
        node: Ipv6Addr,
    },
}

/// Where a served client stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Attached here; the claim is under way (node-client address not held).
    Claiming,
    /// Attached here and claimed.
    Serving,
    /// clientmon says it left; its routes are parked (into the TUN device,
    /// announced with the handover metric) and go when the grace period
    /// ends.
    Leaving {
        /// When it was reported gone.
        since: Instant,
    },
}

/// A client this node serves.
#[derive(Debug, Clone)]
pub struct Client {
    /// Where it stands.
    pub phase: Phase,
    /// The client interface its routes point to.
    pub interface: String,
    /// Addresses with a host route here.
    pub addresses: BTreeSet<Ipv6Addr>,
    /// Whether the node-client address is held.
    pub holds_node_client_addr: bool,
    /// Whether clientmon has listed it since its current snapshot began
    /// (false for a client adopted from an earlier run's routes until
    /// clientmon says it is here).
    pub confirmed: bool,
    /// Adopted from an earlier run's routes and not yet confirmed by
    /// clientmon.
    pub adopted: bool,
    /// Addresses it uses outside every client prefix in use here (at most
    /// [`MAX_UNROUTED`]): routed as soon as prefixd puts their prefix in
    /// use (a client that brings a prefix from the other end of the mesh).
    pub unrouted: BTreeSet<Ipv6Addr>,
    /// Addresses it was seen using that another node serves (at most
    /// [`MAX_CONTESTED`]), with the time the other node's route went, if
    /// it has: routed here once that is [`CONTEST_SETTLE`] ago.
    pub contested: BTreeMap<Ipv6Addr, Option<Instant>>,
}

/// Unrouted addresses kept per client.
pub const MAX_UNROUTED: usize = 8;

/// Contested addresses kept per client.
pub const MAX_CONTESTED: usize = 8;

/// How long another node's route for a contested address must have been
/// gone before the address is routed here: babeld may replace a route by
/// deleting it and adding the new one, and a moment without it is no
/// release.
pub const CONTEST_SETTLE: Duration = Duration::from_secs(1);

/// Where the knowledge that a client uses an address comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Seen on the link (clientmon, ndproxy): subject to the steal rule.
    Link,
    /// The client's own record (client-db, an INFO, what this node handed
    /// over or an earlier run routed): the address is the client's.
    Record,
}

/// A released client's address still announced from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Handover {
    /// Whose address it is.
    mac: MacAddr,
    /// When the handover ends.
    until: Instant,
    /// The node that claimed the client, when known: packets for a
    /// node-client address in handover (CLAIM, INFO, ACK, also our own)
    /// go there.
    to: Option<Ipv6Addr>,
}

/// What the roaming state is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's address.
    pub node_address: Ipv6Addr,
    /// The client prefixes: only addresses inside get host routes.
    pub client_prefixes: Vec<Ipv6Prefix>,
    /// The prefix of node-client addresses.
    pub node_client_prefix: Ipv6Prefix,
    /// How long a departed client keeps its (parked) routes here.
    pub grace: Duration,
    /// Clients served at once (and handovers, and remembered records).
    pub max_clients: usize,
    /// How long an address this node stops serving stays announced from
    /// here with the handover metric (zero: withdrawn at once).
    pub handover: Duration,
}

/// The roaming state of this node.
#[derive(Debug)]
pub struct Roaming {
    node_address: Ipv6Addr,
    prefixes: Vec<Ipv6Prefix>,
    node_client_prefix: Ipv6Prefix,
    grace: Duration,
    max_clients: usize,
    handover: Duration,
    clients: HashMap<MacAddr, Client>,
    /// Addresses (client addresses and node-client addresses) this node
    /// no longer serves, still announced from here with the handover
    /// metric.
    handovers: HashMap<Ipv6Addr, Handover>,
    /// The addresses client-db knows for clients not served here (at most
    /// max_clients): a client that arrives gets its routes at once, before
    /// the INFO of the node it comes from (which only adds to them).
    records: HashMap<MacAddr, BTreeSet<Ipv6Addr>>,
    /// Client addresses another node routes now (babel's reachable /128s),
    /// at most [`FOREIGN_PER_CLIENT`] times `max_clients`; beyond that an
    /// address is not contested (the rule fails open, as before it).
    foreign: HashSet<Ipv6Addr>,
    last_refresh: Option<Instant>,
}

/// Foreign routes remembered per client this node may serve.
pub const FOREIGN_PER_CLIENT: usize = 4;

/// How often the addresses of every served client are sent to client-db
/// again, so their records (which expire 15 minutes after the last update
/// by default) stay alive while the client is here.
pub const REFRESH: Duration = Duration::from_secs(300);

impl Roaming {
    /// A node with no clients.
    pub fn new(settings: Settings) -> Roaming {
        Roaming {
            node_address: settings.node_address,
            prefixes: settings.client_prefixes,
            node_client_prefix: settings.node_client_prefix,
            grace: settings.grace,
            max_clients: settings.max_clients,
            handover: settings.handover,
            clients: HashMap::new(),
            handovers: HashMap::new(),
            records: HashMap::new(),
            foreign: HashSet::new(),
            last_refresh: None,
        }
    }

    /// Addresses whose handover is under way.
    pub fn handovers(&self) -> usize {
        self.handovers.len()
    }

    /// The client prefixes change (prefixd): only addresses inside get host
    /// routes from now on; routes in place stay until their client leaves.
    /// Addresses of attached clients that are inside now get their routes.
    pub fn set_prefixes(&mut self, prefixes: Vec<Ipv6Prefix>) -> Vec<Action> {
        self.prefixes = prefixes;
        let waiting: Vec<(MacAddr, Vec<Ipv6Addr>)> = self
            .clients
            .iter()
            .filter(|(_, c)| !matches!(c.phase, Phase::Leaving { .. }))
            .map(|(mac, c)| (*mac, c.unrouted.iter().copied().collect()))
            .collect();
        let mut actions = Vec::new();
        for (mac, addresses) in waiting {
            actions.extend(self.learn(mac, &addresses, true, Origin::Link));
        }
        actions
    }

    /// The clients served now.
    pub fn clients(&self) -> &HashMap<MacAddr, Client> {
        &self.clients
    }

    /// The client whose host route for `addr` points to its link here
    /// (attached, not parked).
    pub fn on_link(&self, addr: &Ipv6Addr) -> Option<MacAddr> {
        self.clients
            .iter()
            .find(|(_, c)| !matches!(c.phase, Phase::Leaving { .. }) && c.addresses.contains(addr))
            .map(|(mac, _)| *mac)
    }

    /// Where packets for `addr`, whose route is handed over, go: the node
    /// that claimed its client, if known.
    pub fn handover_target(&self, addr: &Ipv6Addr) -> Option<Ipv6Addr> {
        self.handovers.get(addr).and_then(|h| h.to)
    }

    /// Whether this node holds the node-client address `addr`.
    pub fn holds(&self, addr: &Ipv6Addr) -> bool {
        self.clients.iter().any(|(mac, c)| {
            c.holds_node_client_addr && node_client_addr(&self.node_client_prefix, mac) == *addr
        })
    }

    fn routable(&self, addr: &Ipv6Addr) -> bool {
        self.prefixes.iter().any(|p| p.contains(addr))
    }

    // ===== events =====

    /// clientmon: the client is attached here (first sighting, or snapshot).
    pub fn appeared(
        &mut self,
        mac: MacAddr,
        interface: String,
        addresses: &[Ipv6Addr],
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        match self.clients.get_mut(&mac) {
            Some(client) => {
                client.interface = interface;
                // Adopted from an earlier run and now confirmed: claim it,
                // in case another node took it over while core was down.
                if client.adopted && !matches!(client.phase, Phase::Leaving { .. }) {
                    client.adopted = false;
                    actions.push(Action::Claim(mac));
                }
                // Back within the grace period, or a resync: serve it again,
                // its parked routes back on its link.
                if matches!(client.phase, Phase::Leaving { .. }) {
                    client.phase = if client.holds_node_client_addr {
                        Phase::Serving
                    } else {
                        Phase::Claiming
                    };
                    actions.push(Action::Claim(mac));
                    actions.extend(client.addresses.iter().map(|addr| Action::InstallRoute {
                        addr: *addr,
                        interface: client.interface.clone(),
                        mac,
                    }));
                    // The installs replace parked or handed-over routes.
                    for addr in &client.addresses {
                        self.handovers.remove(addr);
                    }
                }
            }
            None => {
                if self.clients.len() >= self.max_clients {
                    return actions;
                }
                self.clients.insert(
                    mac,
                    Client {
                        phase: Phase::Claiming,
                        interface,
                        addresses: BTreeSet::new(),
                        holds_node_client_addr: false,
                        confirmed: true,
                        adopted: false,
                        unrouted: BTreeSet::new(),
                        contested: BTreeMap::new(),
                    },
                );
                actions.push(Action::Claim(mac));
                // What is known of it already: the addresses it had when it
                // left here (their handover may still run) and client-db's
                // record. Routes for them now, not after the INFO.
                let handed_over: Vec<Ipv6Addr> = self
                    .handovers
                    .iter()
                    .filter(|(_, h)| h.mac == mac)
                    .map(|(addr, _)| *addr)
                    .collect();
                let recorded: Vec<Ipv6Addr> = self
                    .records
                    .remove(&mac)
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                actions.extend(self.learn(mac, &handed_over, true, Origin::Record));
                actions.extend(self.learn(mac, &recorded, false, Origin::Record));
            }
        }
        if let Some(client) = self.clients.get_mut(&mac) {
            client.confirmed = true;
        }
        actions.extend(self.learn(mac, addresses, true, Origin::Link));
        actions
    }

    /// At start: the host routes an earlier run left for `mac` via
    /// `interface`, whose neighbour entry the kernel still has. The client
    /// is served again (routes and node-client address asserted), but only
    /// until clientmon's snapshot says whether it is here: if it is not,
    /// it is gone like any client that left.
    pub fn adopt(
        &mut self,
        mac: MacAddr,
        interface: String,
        addresses: &[Ipv6Addr],
    ) -> Vec<Action> {
        if self.clients.contains_key(&mac) || self.clients.len() >= self.max_clients {
            return Vec::new();
        }
        self.clients.insert(
            mac,
            Client {
                phase: Phase::Serving,
                interface,
                addresses: BTreeSet::new(),
                holds_node_client_addr: true,
                confirmed: false,
                adopted: true,
                unrouted: BTreeSet::new(),
                contested: BTreeMap::new(),
            },
        );
        let mut actions = vec![Action::HoldNodeClientAddr(mac)];
        actions.extend(self.learn(mac, addresses, false, Origin::Record));
        actions
    }

    /// clientmon's watch (re)started: a snapshot of every attached client
    /// follows.
    pub fn presence_snapshot_started(&mut self) {
        for client in self.clients.values_mut() {
            client.confirmed = false;
        }
    }

    /// clientmon's snapshot is complete: a client it did not list is not
    /// here (it left while nobody watched); it goes as any departed client.
    pub fn presence_snapshot_done(&mut self, now: Instant) -> Vec<Action> {
        let missing: Vec<MacAddr> = self
            .clients
            .iter()
            .filter(|(_, c)| !c.confirmed)
            .map(|(mac, _)| *mac)
            .collect();
        let mut actions = Vec::new();
        for mac in missing {
            actions.extend(self.gone(mac, now));
        }
        actions
    }

    /// client-db's watch (re)started and its snapshot is complete: requests
    /// made while it was away were lost. Claim again what is not claimed
    /// yet, and tell it the addresses of every client served.
    pub fn db_resynced(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        for (mac, client) in &self.clients {
            match client.phase {
                Phase::Claiming => actions.push(Action::Claim(*mac)),
                Phase::Serving if !client.addresses.is_empty() => actions.push(Action::Update(
                    *mac,
                    client.addresses.iter().copied().collect(),
                )),
                _ => {}
            }
        }
        actions
    }

    /// clientmon or ndproxy: the client uses `addr`.
    pub fn address_learned(&mut self, mac: MacAddr, addr: Ipv6Addr) -> Vec<Action> {
        self.learn(mac, &[addr], true, Origin::Link)
    }

    /// ndproxy found `addr` at `mac` on `interface` (a client it was asked
    /// to seek): the client is here even if clientmon has not said so yet.
    pub fn neighbour_found(
        &mut self,
        mac: MacAddr,
        addr: Ipv6Addr,
        interface: String,
    ) -> Vec<Action> {
        match self.clients.get(&mac) {
            Some(c) if !matches!(c.phase, Phase::Leaving { .. }) => {
                self.learn(mac, &[addr], true, Origin::Link)
            }
            // New, or it answers after it was reported gone: it is here.
            _ => self.appeared(mac, interface, &[addr]),
        }
    }

    /// client-db: the record of `mac` now lists `addresses` (an INFO from
    /// the node that served it before, or our own update echoed back).
    pub fn record_updated(&mut self, mac: MacAddr, addresses: &[Ipv6Addr]) -> Vec<Action> {
        if !self.clients.contains_key(&mac) {
            self.remember(mac, addresses.iter().copied());
            return Vec::new();
        }
        // Addresses from the record are not news to client-db.
        self.learn(mac, addresses, false, Origin::Record)
    }

    /// Keeps the routable addresses of a client not served here.
    fn remember(&mut self, mac: MacAddr, addresses: impl IntoIterator<Item = Ipv6Addr>) {
        let routable: BTreeSet<Ipv6Addr> =
            addresses.into_iter().filter(|a| self.routable(a)).collect();
        if routable.is_empty() {
            return;
        }
        if !self.records.contains_key(&mac) && self.records.len() >= self.max_clients {
            return;
        }
        self.records.entry(mac).or_default().extend(routable);
    }

    /// client-db: our claim for `mac` ended (answered or not): hold the
    /// node-client address now, so the next node's CLAIM reaches us.
    pub fn claim_done(&mut self, mac: MacAddr) -> Vec<Action> {
        let Some(client) = self.clients.get_mut(&mac) else {
            return Vec::new();
        };
        if client.phase == Phase::Claiming {
            client.phase = Phase::Serving;
        }
        // A client that left while its claim was open: holding its
        // node-client address now would draw the next node's CLAIM here
        // and make two holders.
        if client.holds_node_client_addr || matches!(client.phase, Phase::Leaving { .. }) {
            return Vec::new();
        }
        client.holds_node_client_addr = true;
        // Its route replaces a handover route of the address in one step.
        self.handovers
            .remove(&node_client_addr(&self.node_client_prefix, &mac));
        vec![Action::HoldNodeClientAddr(mac)]
    }

    /// client-db: `node` claimed `mac`. Let go of the client, hand its host
    /// routes over and send what still arrives here on to the new node.
    ///
    /// Why a handover instead of withdrawing the routes at once: babel
    /// retracts a withdrawn route, and a node that had it keeps a retracted
    /// route installed as unreachable until a new route reaches it. If the
    /// new node is farther from the traffic's source than the old one, its
    /// announcement has not reached the nodes in between yet, so every
    /// packet sent meanwhile is dropped by them (measured: 0.6-1 s at hello
    /// 1 s for 2 and 3 hops). Announced from here with a high metric, the
    /// old route stays in place until the new one has spread; the nodes in
    /// between prefer the new one as soon as they hear it, so when the old
    /// one goes, every node has the new one to switch to.
    pub fn released(&mut self, mac: MacAddr, node: Ipv6Addr, now: Instant) -> Vec<Action> {
        if node == self.node_address {
            return Vec::new();
        }
        let Some(client) = self.clients.remove(&mac) else {
            return Vec::new();
        };
        let mut actions: Vec<Action> = Vec::new();
        for addr in &client.addresses {
            actions.push(self.withdraw(mac, *addr, now, Some(node)));
            actions.push(Action::ForwardTo { addr: *addr, node });
        }
        if client.holds_node_client_addr {
            actions.extend(self.release_node_client_addr(mac, now, Some(node)));
        }
        self.remember(mac, client.addresses);
        actions
    }

    /// clientmon: the client left this node. Its routes are parked in the
    /// TUN device for the grace period: what arrives for it meanwhile is
    /// held, then passed on to the node that claims it, or put back on the
    /// link if it comes back.
    pub fn gone(&mut self, mac: MacAddr, now: Instant) -> Vec<Action> {
        let Some(client) = self.clients.get_mut(&mac) else {
            return Vec::new();
        };
        if matches!(client.phase, Phase::Leaving { .. }) {
            return Vec::new();
        }
        client.phase = Phase::Leaving { since: now };
        client.addresses.iter().map(|a| Action::Park(*a)).collect()
    }

    /// A route for `addr` from another node appeared (babel): if we still
    /// announce it for a client that has left, ours goes; if the client is
    /// here, both announce it and we keep ours. Until it goes, a client
    /// here seen using `addr` without a record of it is refused.
    pub fn foreign_route(
        &mut self,
        addr: Ipv6Addr,
        now: Instant,
    ) -> (Vec<Action>, Option<MacAddr>) {
        if self.foreign.len() < FOREIGN_PER_CLIENT.saturating_mul(self.max_clients) {
            self.foreign.insert(addr);
        }
        for client in self.clients.values_mut() {
            if let Some(gone) = client.contested.get_mut(&addr) {
                *gone = None;
            }
        }
        let Some((mac, client)) = self
            .clients
            .iter_mut()
            .find(|(_, c)| c.addresses.contains(&addr))
        else {
            return (Vec::new(), None);
        };
        let mac = *mac;
        if matches!(client.phase, Phase::Leaving { .. }) {
            client.addresses.remove(&addr);
            return (vec![self.withdraw(mac, addr, now, None)], None);
        }
        (Vec::new(), Some(mac))
    }

    /// The route for `addr` from another node went (or babel made it
    /// unreachable): a client here refused `addr` gets it once the route
    /// has stayed away for [`CONTEST_SETTLE`] (see [`Roaming::tick`]).
    pub fn foreign_route_gone(&mut self, addr: Ipv6Addr, now: Instant) {
        self.foreign.remove(&addr);
        for client in self.clients.values_mut() {
            if let Some(gone) = client.contested.get_mut(&addr) {
                gone.get_or_insert(now);
            }
        }
    }

    /// Another core found `addr` on its link (FOUND): if a client that
    /// left here has it, its route is handed over to that node at once.
    pub fn found_elsewhere(&mut self, addr: Ipv6Addr, node: Ipv6Addr, now: Instant) -> Vec<Action> {
        if node == self.node_address {
            return Vec::new();
        }
        let Some(mac) = self
            .clients
            .iter()
            .find(|(_, c)| matches!(c.phase, Phase::Leaving { .. }) && c.addresses.contains(&addr))
            .map(|(mac, _)| *mac)
        else {
            return Vec::new();
        };
        // The address stays the client's: if it comes back here, its route
        // returns to the link with the others.
        vec![
            self.withdraw(mac, addr, now, Some(node)),
            Action::ForwardTo { addr, node },
        ]
    }

    /// When [`Roaming::tick`] has something to do next: a grace period or
    /// a handover ending, a contested address settling, the periodic
    /// refresh of the clients served here. `None` when there is nothing of
    /// that, so an idle node without clients need not wake up for it.
    pub fn next_deadline(&self) -> Option<Instant> {
        let leaving = self.clients.values().filter_map(|c| match c.phase {
            Phase::Leaving { since } => Some(since + self.grace),
            _ => None,
        });
        let contested = self
            .clients
            .values()
            .flat_map(|c| c.contested.values().flatten().map(|t| *t + CONTEST_SETTLE));
        let handovers = self.handovers.values().map(|h| h.until);
        let refresh = match self.last_refresh {
            Some(t) if !self.clients.is_empty() => Some(t + REFRESH),
            _ => None,
        };
        leaving
            .chain(contested)
            .chain(handovers)
            .chain(refresh)
            .min()
    }

    /// Timers: clients whose grace period is over lose their routes and
    /// node-client address; client-db keeps their record.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let left: Vec<MacAddr> = self
            .clients
            .iter()
            .filter(|(_, c)| match c.phase {
                Phase::Leaving { since } => now.saturating_duration_since(since) >= self.grace,
                _ => false,
            })
            .map(|(mac, _)| *mac)
            .collect();
        let mut actions = Vec::new();
        let mut ended: Vec<Ipv6Addr> = self
            .handovers
            .iter()
            .filter(|(_, h)| now >= h.until)
            .map(|(addr, _)| *addr)
            .collect();
        ended.sort();
        for addr in ended {
            self.handovers.remove(&addr);
            actions.push(Action::EndHandOver(addr));
        }
        let refresh = match self.last_refresh {
            None => {
                self.last_refresh = Some(now);
                false
            }
            Some(t) => now.saturating_duration_since(t) >= REFRESH,
        };
        if refresh {
            self.last_refresh = Some(now);
            for (mac, client) in &self.clients {
                if !matches!(client.phase, Phase::Leaving { .. }) && !client.addresses.is_empty() {
                    actions.push(Action::Update(
                        *mac,
                        client.addresses.iter().copied().collect(),
                    ));
                }
            }
        }
        let settled: Vec<(MacAddr, Ipv6Addr)> = self
            .clients
            .iter()
            .filter(|(_, c)| !matches!(c.phase, Phase::Leaving { .. }))
            .flat_map(|(mac, c)| {
                c.contested.iter().filter_map(move |(addr, gone)| {
                    gone.filter(|t| now.saturating_duration_since(*t) >= CONTEST_SETTLE)
                        .map(|_| (*mac, *addr))
                })
            })
            .collect();
        for (mac, addr) in settled {
            if let Some(client) = self.clients.get_mut(&mac) {
                client.contested.remove(&addr);
            }
            // The other node let go: the address is this client's now.
            actions.extend(self.learn(mac, &[addr], true, Origin::Record));
        }
        for mac in left {
            let Some(client) = self.clients.remove(&mac) else {
                continue;
            };
            for addr in &client.addresses {
                actions.push(self.withdraw(mac, *addr, now, None));
            }
            if client.holds_node_client_addr {
                actions.extend(self.release_node_client_addr(mac, now, None));
            }
            actions.push(Action::Forget(mac));
            self.remember(mac, client.addresses);
        }
        actions
    }

    /// Stops announcing `addr` from here. Never by removing the route at
    /// once: its route is handed over (announced with the handover metric)
    /// and removed when the handover ends. A withdrawn route is not always
    /// retracted: babeld sends nothing on an interface whose neighbour it
    /// now routes the prefix through (split horizon), so that neighbour
    /// keeps our last announcement until it expires (3.5 update intervals,
    /// 14 s at hello 1 s); if that announcement had metric 0, it ties with
    /// the new node's and may stay selected, a loop (docs/design-notes.md,
    /// "A client comes back"). After a handover our last word is the
    /// handover metric, which nobody prefers.
    fn withdraw(
        &mut self,
        mac: MacAddr,
        addr: Ipv6Addr,
        now: Instant,
        to: Option<Ipv6Addr>,
    ) -> Action {
        if self.handover.is_zero()
            || (!self.handovers.contains_key(&addr) && self.handovers.len() >= 2 * self.max_clients)
        {
            self.handovers.remove(&addr);
            return Action::RemoveRoute(addr);
        }
        self.handovers.insert(
            addr,
            Handover {
                mac,
                until: now + self.handover,
                to: to.or(self.handovers.get(&addr).and_then(|h| h.to)),
            },
        );
        Action::HandOver(addr)
    }

    /// Lets go of the node-client address of `mac`: its route is handed
    /// over like a client address, then the address itself goes.
    fn release_node_client_addr(
        &mut self,
        mac: MacAddr,
        now: Instant,
        to: Option<Ipv6Addr>,
    ) -> Vec<Action> {
        let addr = node_client_addr(&self.node_client_prefix, &mac);
        vec![
            self.withdraw(mac, addr, now, to),
            Action::ReleaseNodeClientAddr(mac),
        ]
    }

    /// Adds routable addresses to a served client; `tell_db` when client-db
    /// should hear of them. An address seen on the link that another node
    /// routes is contested instead (the steal rule, see the module doc).
    fn learn(
        &mut self,
        mac: MacAddr,
        addresses: &[Ipv6Addr],
        tell_db: bool,
        origin: Origin,
    ) -> Vec<Action> {
        let routable: Vec<Ipv6Addr> = addresses
            .iter()
            .copied()
            .filter(|a| self.routable(a))
            .collect();
        let foreign = &self.foreign;
        let prefixes = &self.prefixes;
        let node_client_prefix = self.node_client_prefix;
        let Some(client) = self.clients.get_mut(&mac) else {
            return Vec::new();
        };
        if matches!(client.phase, Phase::Leaving { .. }) {
            return Vec::new();
        }
        for addr in addresses {
            let inside = prefixes.iter().any(|p| p.contains(addr));
            if inside {
                client.unrouted.remove(addr);
            } else if client.unrouted.len() < MAX_UNROUTED
                && l3roamd_types::addr::is_routable_client_address(addr, Some(&node_client_prefix))
            {
                client.unrouted.insert(*addr);
            }
        }
        let mut actions = Vec::new();
        let mut new = Vec::new();
        for addr in routable {
            if origin == Origin::Record {
                client.contested.remove(&addr);
            } else if !client.addresses.contains(&addr) && foreign.contains(&addr) {
                if !client.contested.contains_key(&addr) && client.contested.len() < MAX_CONTESTED {
                    client.contested.insert(addr, None);
                }
                actions.push(Action::Refuse { addr, mac });
                continue;
            }
            if client.addresses.insert(addr) {
                new.push(addr);
                actions.push(Action::InstallRoute {
                    addr,
                    interface: client.interface.clone(),
                    mac,
                });
                // Back before its handover ended: served from here again.
                // The install replaced the handover route in one step (same
                // destination, table and metric): nothing else to remove.
                self.handovers.remove(&addr);
            }
        }
        if tell_db && !new.is_empty() {
            actions.push(Action::Update(mac, new));
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "fdff::2";
    const OTHER: &str = "fdff::3";

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn mac() -> MacAddr {
        "02:00:00:00:01:00".parse().unwrap()
    }

    const HANDOVER: Duration = Duration::from_secs(3);

    fn settings(max_clients: usize, handover: Duration) -> Settings {
        Settings {
            node_address: a(NODE),
            client_prefixes: vec!["fddd:1::/64".parse().unwrap()],
            node_client_prefix: "fec0::/64".parse().unwrap(),
            grace: Duration::from_secs(5),
            max_clients,
            handover,
        }
    }

    fn nca() -> Ipv6Addr {
        node_client_addr(&"fec0::/64".parse().unwrap(), &mac())
    }

    fn roaming() -> Roaming {
        Roaming::new(settings(16, HANDOVER))
    }

    fn install(addr: &str) -> Action {
        Action::InstallRoute {
            addr: a(addr),
            interface: "br-client".to_string(),
            mac: mac(),
        }
    }

    #[test]
    fn arrival_claims_first_and_holds_the_node_client_address_after() {
        let mut r = roaming();
        let actions = r.appeared(mac(), "br-client".into(), &[a("fddd:1::100"), a("fe80::1")]);
        assert_eq!(
            actions,
            vec![
                Action::Claim(mac()),
                install("fddd:1::100"),
                Action::Update(mac(), vec![a("fddd:1::100")]),
            ]
        );
        // The INFO brings more addresses: routes at once, nothing back to the db.
        let actions = r.record_updated(
            mac(),
            &[a("fddd:1::100"), a("fddd:1::101"), a("fe80::ff:fe00:100")],
        );
        assert_eq!(actions, vec![install("fddd:1::101")]);
        assert_eq!(r.claim_done(mac()), vec![Action::HoldNodeClientAddr(mac())]);
        assert_eq!(r.claim_done(mac()), vec![], "held once");
        assert_eq!(r.clients()[&mac()].phase, Phase::Serving);
    }

    #[test]
    fn deadlines_follow_handovers_and_the_refresh_of_served_clients() {
        let mut r = roaming();
        assert_eq!(r.next_deadline(), None, "no clients: no tick needed");
        let t0 = Instant::now();
        assert!(r.tick(t0).is_empty());
        assert_eq!(r.next_deadline(), None, "still none after the first tick");
        r.appeared(mac(), "br-client".into(), &[a("fddd:1::100")]);
        r.claim_done(mac());
        assert_eq!(r.next_deadline(), Some(t0 + REFRESH), "served: refreshed");
        r.released(mac(), a(OTHER), t0);
        assert_eq!(r.next_deadline(), Some(t0 + HANDOVER), "handovers end");
        r.tick(t0 + HANDOVER);
        assert_eq!(r.next_deadline(), None, "all over: idle again");
    }

    #[test]
    fn release_hands_the_routes_over_and_forwards_in_flight_packets() {
        let mut r = roaming();
        let t0 = Instant::now();
        r.appeared(mac(), "br-client".into(), &[a("fddd:1::100")]);
        r.claim_done(mac());
        let actions = r.released(mac(), a(OTHER), t0);
        assert_eq!(
            actions,
            vec![
                Action::HandOver(a("fddd:1::100")),
                Action::ForwardTo {
                    addr: a("fddd:1::100"),
                    node: a(OTHER)
                },
                Action::HandOver(nca()),
                Action::ReleaseNodeClientAddr(mac()),
            ]
        );
        assert!(r.clients().is_empty());
        assert_eq!(r.handovers(), 2);
        // A release naming ourselves, or for an unknown client, does nothing.
        assert!(r.released(mac(), a(OTHER), t0).is_empty());
        // The handover ends after its time, once.
        assert!(r.tick(t0 + HANDOVER / 2).is_empty());
        assert_eq!(
            r.tick(t0 + HANDOVER),
            vec![
                Action::EndHandOver(a("fddd:1::100")),
                Action::EndHandOver(nca())
            ]
        );
        assert!(r.tick(t0 + HANDOVER * 2).is_empty());
        assert_eq!(r.handovers(), 0);
        r.appeared(mac(), "br-client".into(), &[]);
        assert!(r.released(mac(), a(NODE), t0).is_empty());
    }

    #[test]
    fn a_parked_client_claimed_elsewhere_is_handed_over() {
        let mut r = roaming();
        let t0 = Instant::now();
        r.appeared(mac(), "br-client".into(), &[a("fddd:1::100")]);
        r.claim_done(mac());
        r.gone(mac(), t0);
        let actions = r.released(mac(), a(OTHER), t0);
        assert_eq!(actions[0], Action::HandOver(a("fddd:1::100")));
        // Nothing left for the grace period to remove.
        assert!(!r
            .tick(t0 + Duration::from_secs(10))
            .iter()
            .any(|x| matches!(x, Action::RemoveRoute(_))));
    }

    #[test]
    fn a_client_that_left_during_its_claim_does_not_get_its_node_client_address() {
        let mut r = roaming();
        let t0 = Instant::now();
        r.appeared(mac(), "br-client".into(), &[a("fddd:1::100")]);
        r.gone(mac(), t0);
        assert!(r.claim_done(mac()).is_empty());
        assert!(!r.clients()[&mac()].holds_node_client_addr);
    }

    #[test]
    fn a_departed_client_found_elsewhere_is_handed_over_at_once() {
        let mut r = roaming();
        let t0 = Instant::now();
        r.appeared(mac(), "br-client".into(), &[a("fddd:1::100")]);
        r.claim_done(mac());
        assert!(
            r.found_elsewhere(a("fddd:1::100"), a(OTHER), t0).is_empty(),
            "still here"
        );
        r.gone(mac(), t0);
        assert_eq!(
            r.found_elsewhere(a("fddd:1::100"), a(OTHER), t0),
            vec![
                Action::HandOver(a("fddd:1::100")),
                Action::ForwardTo {
                    addr: a("fddd:1::100"),
                    node: a(OTHER)
                }
            ]
        );
        assert_eq!(r.handover_target(&a("fddd:1::100")), Some(a(OTHER)));
        // Back before the claim: its route returns to the link.
        assert_eq!(
            r.appeared(mac(), "br-client".into(), &[]),
            vec![Action::Claim(mac()), install("fddd:1::100")]
        );
        assert_eq!(r.handover_target(&a("fddd:1::100")), None);
    }

    #[test]
    fn a_neighbour_answering_after_it_was_gone_is_back() {
        let mut r = roaming();
        let t0 = Instant::now();
        r.appeared(mac(), "br-client".into(), &[a("fddd:1::100")]);
        r.claim_done(mac());
        r.gone(mac(), t0);
        let actions = r.neighbour_found(mac(), a("fddd:1::100"), "br-client".into());
        assert_eq!(actions, vec![Action::Claim(mac()), install("fddd:1::100")]);
        assert_eq!(r.clients()[&mac()].phase, Phase::Serving);
    }

    #[test]
    fn without_a_handover_time_the_routes_go_at_once() {
        let mut r = Roaming::new(settings(16, Duration::ZERO));
        r.appeared(mac(), "br-client".into(), &[a("fddd:1::100")]);
        let actions = r.released(mac(), a(OTHER), Instant::now());
        assert_eq!(actions[0], Action::RemoveRoute(a("fddd:1::100")));
        assert_eq!(r.handovers(), 0);
    }

    #[test]
    fn coming_back_during_the_handover_ends_it() {
        let mut r = roaming();
        let t0 = Instant::now();
        r.appeared(mac(), "br-client".into(), &[a("fddd:1::100")]);
        r.claim_done(mac());
        r.released(mac(), a(OTHER), t0);
        // The routes come back from what this node handed over, before
        // clientmon or the INFO name an address; the install replaces the
        // handover route, so there is nothing to end.
        assert_eq!(
            r.appeared(mac(), "br-client".into(), &[]),
            vec![
                Action::Claim(mac()),
                install("fddd:1::100"),
                Action::Update(mac(), vec![a("fddd:1::100")]),
            ]
        );
        // The node-client address is handed over until the claim is done.
        assert_eq!(r.handovers(), 1);
        assert_eq!(r.claim_done(mac()), vec![Action::HoldNodeClientAddr(mac())]);
        assert_eq!(r.handovers(), 0);
        assert!(r.tick(t0 + HANDOVER).is_empty());
        assert_eq!(r.on_link(&a("fddd:1::100")), Some(mac()));
    }

    #[test]
    fn a_client_known_from_its_record_gets_its_routes_on_arrival() {
        let mut r = roaming();
        // client-db's snapshot or an INFO relayed elsewhere: not served here.
        assert!(r
            .record_updated(mac(), &[a("fddd:1::100"), a("2001:db8::1")])
            .is_empty());
        assert_eq!(
            r.appeared(mac(), "br-client".into(), &[a("fddd:1::100")]),
            vec![Action::Claim(mac()), install("fddd:1::100")],
            "routes at once, nothing new for client-db"
        );
    }

    #[test]
    fn adopted_clients_wait_for_clientmon_and_go_if_it_does_not_list_them() {
        let mut r = roaming();
        let t0 = Instant::now();
        let other: MacAddr = "02:00:00:00:02:00".parse().unwrap();
        assert_eq!(
            r.adopt(mac(), "br-client".into(), &[a("fddd:1::100")]),
            vec![Action::HoldNodeClientAddr(mac()), install("fddd:1::100")]
        );
        r.adopt(other, "br-client".into(), &[a("fddd:1::200")]);
        assert!(r.adopt(other, "br-client".into(), &[]).is_empty(), "once");
        r.presence_snapshot_started();
        // clientmon lists the first: it is claimed (another node may have
        // taken it over while core was down); the second is not listed.
        assert_eq!(
            r.appeared(mac(), "br-client".into(), &[a("fddd:1::100")]),
            vec![Action::Claim(mac())]
        );
        assert_eq!(
            r.presence_snapshot_done(t0),
            vec![Action::Park(a("fddd:1::200"))]
        );
        let actions = r.tick(t0 + Duration::from_secs(5));
        let other_nca = node_client_addr(&"fec0::/64".parse().unwrap(), &other);
        assert_eq!(
            actions,
            vec![
                Action::HandOver(a("fddd:1::200")),
                Action::HandOver(other_nca),
                Action::ReleaseNodeClientAddr(other),
                Action::Forget(other),
            ]
        );
        assert_eq!(r.clients().len(), 1);
        // A later resync of clientmon claims nobody again.
        r.presence_snapshot_started();
        assert!(r
            .appeared(mac(), "br-client".into(), &[a("fddd:1::100")])
            .is_empty());
        assert!(r.presence_snapshot_done(t0).is_empty());
    }

    #[test]
    fn a_client_missing_from_a_presence_snapshot_is_gone() {
        let mut r = roaming();
        let t0 = Instant::now();
        r.appeared(mac(), "br-client".into(), &[a("fddd:1::100")]);
        r.claim_done(mac());
        r.presence_snapshot_started();
        assert_eq!(
            r.presence_snapshot_done(t0),
            vec![Action::Park(a("fddd:1::100"))]
        );
        assert_eq!(r.on_link(&a("fddd:1::100")), None);
    }

    #[test]
    fn client_db_resync_claims_again_what_was_not_claimed() {
        let mut r = roaming();
        let other: MacAddr = "02:00:00:00:02:00".parse().unwrap();
        r.appeared(mac(), "br-client".into(), &[a("fddd:1::100")]);
        r.appeared(other, "br-client".into(), &[a("fddd:1::200")]);
        r.claim_done(other);
        let mut actions = r.db_resynced();
        actions.sort_by_key(|a| format!("{a:?}"));
        assert_eq!(
            actions,
            vec![
                Action::Claim(mac()),
                Action::Update(other, vec![a("fddd:1::200")]),
            ]
        );
    }

    #[test]
    fn gone_waits_for_the_grace_period_then_forgets() {
        let mut r = roaming();
        let t0 = Instant::now();
        r.appeared(mac(), "br-client".into(), &[a("fddd:1::100")]);
        r.claim_done(mac());
        assert_eq!(r.gone(mac(), t0), vec![Action::Park(a("fddd:1::100"))]);
        assert!(r.gone(mac(), t0).is_empty(), "parked once");
        assert!(r.tick(t0 + Duration::from_secs(1)).is_empty());
        // Never withdrawn at once: handed over, removed when that ends.
        let actions = r.tick(t0 + Duration::from_secs(5));
        assert_eq!(
            actions,
            vec![
                Action::HandOver(a("fddd:1::100")),
                Action::HandOver(nca()),
                Action::ReleaseNodeClientAddr(mac()),
                Action::Forget(mac()),
            ]
        );
        assert_eq!(
            r.tick(t0 + Duration::from_secs(5) + HANDOVER),
            vec![
                Action::EndHandOver(a("fddd:1::100")),
                Action::EndHandOver(nca())
            ]
        );
    }

    #[test]
    fn served_clients_are_refreshed_in_client_db() {
        let mut r = roaming();
        let t0 = Instant::now();
        r.appeared(mac(), "br-client".into(), &[a("fddd:1::100")]);
        assert!(r.tick(t0).is_empty());
        assert!(r.tick(t0 + REFRESH / 2).is_empty());
        assert_eq!(
            r.tick(t0 + REFRESH),
            vec![Action::Update(mac(), vec![a("fddd:1::100")])]
        );
    }

    #[test]
    fn coming_back_within_the_grace_period_keeps_the_routes_and_claims_again() {
        let mut r = roaming();
        let t0 = Instant::now();
        r.appeared(mac(), "br-client".into(), &[a("fddd:1::100")]);
        r.claim_done(mac());
        r.gone(mac(), t0);
        // Its parked route goes back onto its link.
        assert_eq!(
            r.appeared(mac(), "br-client".into(), &[a("fddd:1::100")]),
            vec![Action::Claim(mac()), install("fddd:1::100")]
        );
        assert!(r.tick(t0 + Duration::from_secs(10)).is_empty());
        assert_eq!(r.clients()[&mac()].phase, Phase::Serving);
    }

    #[test]
    fn back_and_forth_leaves_one_owner() {
        // Node 2 serves, node 3 claims, then the client comes back to node 2.
        let mut r = roaming();
        r.appeared(mac(), "br-client".into(), &[a("fddd:1::100")]);
        r.claim_done(mac());
        r.released(mac(), a(OTHER), Instant::now());
        assert!(r.clients().is_empty());
        let actions = r.appeared(mac(), "br-client".into(), &[]);
        assert_eq!(
            actions,
            vec![
                Action::Claim(mac()),
                install("fddd:1::100"),
                Action::Update(mac(), vec![a("fddd:1::100")]),
            ]
        );
        assert!(r.record_updated(mac(), &[a("fddd:1::100")]).is_empty());
        r.claim_done(mac());
        assert_eq!(r.handovers(), 0);
    }

    #[test]
    fn duplicate_route_from_babel() {
        let mut r = roaming();
        let t0 = Instant::now();
        r.appeared(mac(), "br-client".into(), &[a("fddd:1::100")]);
        // Client here: keep ours, report.
        assert_eq!(r.foreign_route(a("fddd:1::100"), t0), (vec![], Some(mac())));
        // Client gone: ours goes.
        r.gone(mac(), t0);
        assert_eq!(
            r.foreign_route(a("fddd:1::100"), t0),
            (vec![Action::HandOver(a("fddd:1::100"))], None)
        );
        assert_eq!(r.foreign_route(a("fddd:1::999"), t0), (vec![], None));
    }

    // ===== the steal rule =====

    fn other_mac() -> MacAddr {
        "02:00:00:00:02:00".parse().unwrap()
    }

    #[test]
    fn an_address_another_node_serves_is_refused_until_its_route_has_gone() {
        let mut r = roaming();
        let t0 = Instant::now();
        let x = a("fddd:1::101");
        assert_eq!(r.foreign_route(x, t0), (vec![], None));
        // Claimed in an advertisement (clientmon) and in an answer (ndproxy).
        let actions = r.appeared(mac(), "br-client".into(), &[x, a("fddd:1::100")]);
        assert!(actions.contains(&Action::Refuse {
            addr: x,
            mac: mac()
        }));
        assert!(!actions.contains(&install("fddd:1::101")));
        assert!(actions.contains(&install("fddd:1::100")));
        assert!(!actions
            .iter()
            .any(|a| matches!(a, Action::Update(_, v) if v.contains(&x))));
        assert_eq!(
            r.neighbour_found(mac(), x, "br-client".into()),
            vec![Action::Refuse {
                addr: x,
                mac: mac()
            }]
        );
        assert!(
            r.tick(t0 + Duration::from_secs(30)).is_empty(),
            "no release, no route"
        );
        // The route goes for a moment only (babeld replacing it): no release.
        let t1 = t0 + Duration::from_secs(31);
        r.foreign_route_gone(x, t1);
        r.foreign_route(x, t1 + Duration::from_millis(10));
        assert!(r.tick(t1 + Duration::from_secs(2)).is_empty());
        // Gone for good: the client gets it once that has settled.
        let t2 = t1 + Duration::from_secs(3);
        r.foreign_route_gone(x, t2);
        assert!(r.tick(t2 + Duration::from_millis(500)).is_empty());
        let actions = r.tick(t2 + CONTEST_SETTLE);
        assert_eq!(
            actions,
            vec![install("fddd:1::101"), Action::Update(mac(), vec![x])]
        );
        assert!(r.clients()[&mac()].contested.is_empty());
    }

    #[test]
    fn the_clients_own_record_is_no_steal() {
        let mut r = roaming();
        let t0 = Instant::now();
        let x = a("fddd:1::101");
        r.foreign_route(x, t0);
        // Roaming here: seen first, then the old node's INFO says it is its.
        let actions = r.appeared(mac(), "br-client".into(), &[x]);
        assert!(actions.contains(&Action::Refuse {
            addr: x,
            mac: mac()
        }));
        assert_eq!(r.record_updated(mac(), &[x]), vec![install("fddd:1::101")]);
        assert!(r.clients()[&mac()].contested.is_empty());
        // A record known before the arrival routes it at once.
        r.record_updated(other_mac(), &[a("fddd:1::102")]);
        r.foreign_route(a("fddd:1::102"), t0);
        let actions = r.appeared(other_mac(), "br-client".into(), &[a("fddd:1::102")]);
        assert!(actions.contains(&Action::InstallRoute {
            addr: a("fddd:1::102"),
            interface: "br-client".into(),
            mac: other_mac(),
        }));
        assert!(!actions.iter().any(|a| matches!(a, Action::Refuse { .. })));
    }

    #[test]
    fn a_retracted_owner_releases_the_address_and_contests_are_bounded() {
        let mut r = roaming();
        let t0 = Instant::now();
        for i in 0..20u16 {
            r.foreign_route(Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, 0x200 + i), t0);
        }
        r.appeared(mac(), "br-client".into(), &[]);
        for i in 0..20u16 {
            r.address_learned(mac(), Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, 0x200 + i));
        }
        assert_eq!(r.clients()[&mac()].contested.len(), MAX_CONTESTED);
        assert!(r.clients()[&mac()].addresses.is_empty());
        // Its node vanished (babel's unreachable route counts as gone).
        r.foreign_route_gone(a("fddd:1::200"), t0);
        let actions = r.tick(t0 + CONTEST_SETTLE);
        assert!(actions.contains(&install("fddd:1::200")));
        // The foreign table is bounded too.
        let mut small = Roaming::new(settings(1, HANDOVER));
        for i in 0..100u16 {
            small.foreign_route(Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 1, i), t0);
        }
        assert_eq!(small.foreign.len(), FOREIGN_PER_CLIENT);
    }

    #[test]
    fn bounded_and_ignores_unroutable_addresses() {
        let mut r = Roaming::new(settings(1, HANDOVER));
        r.appeared(mac(), "br-client".into(), &[a("2001:db8::1"), a("fec0::1")]);
        assert!(r.clients()[&mac()].addresses.is_empty());
        let other: MacAddr = "02:00:00:00:02:00".parse().unwrap();
        assert!(r.appeared(other, "br-client".into(), &[]).is_empty());
        assert_eq!(r.clients().len(), 1);
        // Learning for an unknown client does nothing.
        assert!(r.address_learned(other, a("fddd:1::5")).is_empty());
    }
}
