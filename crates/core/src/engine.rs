//! The engine: one task that owns the TUN device, the held-packet queue,
//! the data-path socket and core's host routes, and turns events into
//! actions.
//!
//! Events: a packet from the TUN catch-all, a route change from the kernel,
//! a neighbour ndproxy found, presence from clientmon, records and releases
//! from client-db, a FOUND or DATA from another core, a timer tick, a query
//! of the RPC service. The decisions live in two state machines:
//! [`crate::held`] (held packets) and [`crate::roaming`] (which clients this
//! node serves: the only list of them); this module does the I/O they ask
//! for, through the seam of [`crate::kernel`], so that it is tested with the
//! in-memory platform of `crate::mock`.
//!
//! The RPC service reads the engine's state through a [`Handle`]: a query
//! answered by the loop between two events, so it needs no lock and sees a
//! consistent state.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use l3roamd_daemon::{DaemonError, MeshConfig, Shutdown};
use l3roamd_intercom::{AuthError, Body, Packet};
use l3roamd_types::{node_client_addr, Ipv6Prefix, MacAddr};
use netlink_packet_route::route::RouteType;
use tokio::sync::{mpsc, oneshot};

use crate::batch::{self, Batch, Step};
use crate::clientdb::{DbCommand, DbEvent};
use crate::clientmon::PresenceEvent;
use crate::datapath::Received;
use crate::held::{addresses, Action, HeldPackets};
use crate::icmp::unreachable_message;
use crate::kernel::{
    Address, DataLink, IcmpErrors, Kernel, KernelOp, Parts, Platform, Route, RouteChange,
    RouteEvents, TunDevice,
};
use crate::ndproxy::{FoundNeighbour, NeighbourEvent};
use crate::prefixd::{Arrival, PrefixEvent};
use crate::roaming::{self, Phase, Roaming};
use crate::tun;
use crate::CoreConfig;

/// The shortest spacing of the ticks that run both state machines' timers
/// (they run only when one has a deadline).
pub const TICK: Duration = Duration::from_millis(100);

/// Sleeps until `deadline`, or for ever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// Events of one kind (presence from clientmon, records from client-db)
/// taken from their queue at once when they come in a burst, so that
/// their route changes go to the kernel as one batch: clientmon's snapshot
/// of 10,000 clients is 40 batches, not 10,000.
pub const BURST: usize = 256;

/// Data-path, route and roaming counters (the queue counts its own).
mod path_counters {
    l3roamd_daemon::counters! {
        "One of the engine's counters (the held-packet queue counts its own).";
        FoundSent => "found_sent": "FOUND notices sent to seeking nodes.",
        FoundReceived => "found_received": "FOUND notices received from finders.",
        DataDelivered => "data_delivered": "Encapsulated packets received and put on a client link.",
        DataRefused => "data_refused": "Encapsulated packets refused: not for a client (or a node-client address) of this node.",
        ReinjectedLate => "reinjected_late": "Packets read from the TUN device after their client's host route was installed here, sent on through it.",
        NodeClientForwarded => "node_client_forwarded": "Packets for a node-client address in handover sent on to the claiming node.",
        NextNodeAnnounced => "next_node_announced": "Unsolicited neighbor advertisements of the next-node router sent to an arriving client's link.",
        NodeClientDropped => "node_client_dropped": "Packets for a node-client address in handover with no claiming node known.",
        DatapathForeign => "datapath_foreign": "Data-path datagrams from an interface that is not a mesh interface.",
        DatapathMalformed => "datapath_malformed": "Data-path datagrams that did not decode.",
        AuthMissing => "auth_missing": "FOUND/DATA dropped in require mode: no authentication trailer.",
        AuthBad => "auth_bad": "FOUND/DATA dropped: the authentication trailer does not verify (forged, or another key).",
        AuthReplayed => "auth_replayed": "FOUND/DATA dropped: authenticated, but a replay of one seen before.",
        AuthUnsigned => "auth_unsigned": "Unsigned FOUND/DATA accepted in sign mode (nodes not yet signing).",
        HostRoutesInstalled => "host_routes_installed": "Host routes installed.",
        Errors => "errors": "Kernel or socket operations that failed.",
        SeeksDropped => "seeks_dropped": "Seek requests dropped because ndproxy's queue was full.",
        DbCommandsDropped => "db_commands_dropped": "Requests to client-db dropped because its queue was full.",
        HostRoutesRemoved => "host_routes_removed": "Host routes removed (client left or claimed elsewhere).",
        Releases => "releases": "Clients released to another node that claimed them.",
        DuplicateRoutes => "duplicate_routes": "Host routes also announced by another node while the client is here.",
        AddressesRefused => "addresses_refused": "Addresses a client here was seen using while another node serves them for another client: not routed here (the steal rule).",
        SeekRoutes => "seek_routes": "Client addresses babel retracted (unreachable routes) routed into the TUN device to be sought.",
        PrefixesRefused => "prefixes_refused": "Prefixes from prefixd that are not client /64s, ignored.",
        ArrivalsDropped => "arrivals_dropped": "Client arrivals for prefixd dropped because its queue was full.",
        Parked => "parked": "Host routes parked in the TUN device while their client is away.",
        Handovers => "handovers": "Host routes handed over to another node (routed into the TUN device and announced from here for core.handover_ms).",
        Adopted => "adopted": "Host routes of an earlier run adopted at start.",
        RoutesInPlace => "routes_in_place": "Routes of adopted clients found at start as they would be installed, so not installed again.",
        AddressesInPlace => "addresses_in_place": "Node-client addresses of adopted clients found at start as they would be added, so not added again.",
        StaleRemoved => "stale_removed": "Routes and node-client addresses of an earlier run removed at start.",
    }
}
use path_counters::{Counter as C, Counters as PathCounters};

/// The channels between the engine and its followers of the other daemons.
#[derive(Debug)]
pub struct Channels {
    /// Seek requests to ndproxy.
    pub seeks: mpsc::Sender<Ipv6Addr>,
    /// Neighbours ndproxy found.
    pub found: mpsc::Receiver<NeighbourEvent>,
    /// Client presence from clientmon.
    pub presence: mpsc::Receiver<PresenceEvent>,
    /// Requests to client-db.
    pub db_commands: mpsc::Sender<DbCommand>,
    /// Records, releases and claim results from client-db.
    pub db_events: mpsc::Receiver<DbEvent>,
    /// The client prefixes in use, from prefixd.
    pub prefixes: mpsc::Receiver<PrefixEvent>,
    /// Arrivals of clients, to prefixd.
    pub arrivals: mpsc::Sender<Arrival>,
}

// ===== the handle used by the RPC service =====

/// A client this node serves, as the status RPC shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedClient {
    /// Its MAC.
    pub mac: MacAddr,
    /// The client interface its routes point to.
    pub interface: String,
    /// Its addresses with a host route here.
    pub addresses: BTreeSet<Ipv6Addr>,
    /// `claiming`, `serving` or `leaving` (routes parked).
    pub phase: &'static str,
}

/// What the RPC service reads of the engine.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// The TUN device's name.
    pub tun_device: String,
    /// Counters of the held-packet queue, the data path and roaming, by name.
    pub counters: Vec<(&'static str, u64)>,
    /// The clients this node serves.
    pub clients: Vec<ServedClient>,
    /// The client prefixes routed now (configured and from prefixd).
    pub client_prefixes: Vec<Ipv6Prefix>,
}

/// A question for the engine's loop.
#[derive(Debug)]
pub enum Query {
    /// The status, answered between two events.
    Status(oneshot::Sender<Status>),
}

/// The engine's loop has stopped (the daemon is shutting down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("core's engine has stopped")]
pub struct Stopped;

/// How the RPC service reaches the engine.
#[derive(Debug, Clone)]
pub struct Handle {
    queries: mpsc::Sender<Query>,
}

impl Handle {
    /// A handle and the receiver the engine answers from.
    pub fn new() -> (Handle, mpsc::Receiver<Query>) {
        let (queries, rx) = mpsc::channel(QUERY_QUEUE);
        (Handle { queries }, rx)
    }

    /// The engine's status now.
    pub async fn status(&self) -> Result<Status, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.queries
            .send(Query::Status(reply))
            .await
            .map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }
}

/// Queries waiting for the loop.
const QUERY_QUEUE: usize = 16;

// ===== the engine =====

/// The engine and everything it owns.
pub struct Engine<P: Platform> {
    mesh: MeshConfig,
    config: CoreConfig,
    kernel: P::Kernel,
    routes: P::Routes,
    tun: P::Tun,
    tun_index: u32,
    data: P::Data,
    icmp: P::Icmp,
    held: HeldPackets,
    roaming: Roaming,
    channels: Channels,
    queries: mpsc::Receiver<Query>,
    lo_index: u32,
    counters: PathCounters,
    /// The client prefixes routed now: the configured ones and those
    /// prefixd says clients may use.
    prefixes: BTreeSet<Ipv6Prefix>,
    /// prefixd's in-use prefixes: what its last snapshot and changes said.
    learned: BTreeSet<Ipv6Prefix>,
    /// A prefixd snapshot being read.
    snapshot: Option<BTreeSet<Ipv6Prefix>>,
    /// Client addresses babel retracted, routed into the TUN device.
    seek_routes: BTreeSet<Ipv6Addr>,
    /// Kernel requests of the event being handled, sent together at its end.
    batch: Batch,
    /// At start, while the adopted clients are served again: the routes of
    /// core's protocol an earlier run left, by destination. A route asked
    /// for that is there already, the same in every field, is not asked
    /// of the kernel again (see `adopt_earlier_run`).
    in_place: HashMap<Ipv6Addr, Route>,
    /// At start, the same for node-client addresses on `lo`: those there
    /// already with core's flags.
    addresses_in_place: HashSet<Ipv6Addr>,
}

/// babel's route protocol number.
const BABEL_PROTOCOL: u8 = 42;
/// Kernel priority of a seek route: below babel's unreachable routes
/// (`u32::MAX`, its infinite metric reflected), above every real route.
const SEEK_ROUTE_METRIC: u32 = u32::MAX - 1;
/// Seek routes at most (a scan of retracted addresses cannot fill the
/// kernel's table through us).
const MAX_SEEK_ROUTES: usize = 4096;

impl<P: Platform> std::fmt::Debug for Engine<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("tun", &self.tun.name())
            .finish()
    }
}

impl<P: Platform> Engine<P> {
    /// An engine over `parts`; nothing is installed until [`Engine::start`].
    pub fn new(
        mesh: MeshConfig,
        config: CoreConfig,
        parts: Parts<P>,
        channels: Channels,
        queries: mpsc::Receiver<Query>,
    ) -> Result<Engine<P>, DaemonError> {
        let Parts {
            kernel,
            routes,
            tun,
            data,
            icmp,
        } = parts;
        let tun_index = kernel
            .interface_index(tun.name())
            .ok_or_else(|| DaemonError::Fatal(format!("TUN device {} has no index", tun.name())))?;
        let lo_index = kernel
            .interface_index("lo")
            .ok_or_else(|| DaemonError::Fatal("no loopback interface".to_string()))?;
        let held = HeldPackets::new(config.limits(), mesh.client_prefixes.clone());
        let client_prefixes = mesh.client_prefixes.iter().copied().collect();
        let roaming = Roaming::new(roaming::Settings {
            node_address: mesh.node_address,
            client_prefixes: mesh.client_prefixes.clone(),
            node_client_prefix: mesh.node_client_prefix,
            grace: Duration::from_millis(config.gone_grace_ms),
            max_clients: config.max_clients,
            handover: Duration::from_millis(config.handover_ms),
        });
        Ok(Engine {
            mesh,
            config,
            kernel,
            routes,
            tun,
            tun_index,
            data,
            icmp,
            held,
            roaming,
            channels,
            queries,
            lo_index,
            counters: PathCounters::default(),
            prefixes: client_prefixes,
            learned: BTreeSet::new(),
            snapshot: None,
            seek_routes: BTreeSet::new(),
            batch: Batch::default(),
            in_place: HashMap::new(),
            addresses_in_place: HashSet::new(),
        })
    }

    /// Sets up the kernel state: adopts or removes what an earlier run left
    /// and routes every client prefix into the TUN device.
    pub async fn start(&mut self) -> Result<(), DaemonError> {
        self.adopt_earlier_run().await?;
        for prefix in self.mesh.client_prefixes.clone() {
            self.kernel
                .replace_route(&self.catch_all(prefix))
                .await
                .map_err(|e| DaemonError::fatal(format!("catch-all route {prefix}"), e))?;
            tracing::info!(%prefix, tun = self.tun.name(), "catch-all route installed");
        }
        let babel = self
            .kernel
            .routes(self.config.export_table, BABEL_PROTOCOL)
            .await
            .map_err(|e| DaemonError::fatal("route dump", e))?;
        let now = Instant::now();
        for route in babel {
            if route.prefix_len != 128 || !self.is_client(&route.destination) {
                continue;
            }
            if route.kind == RouteType::Unreachable {
                self.add_seek_route(route.destination).await;
            } else {
                // Another node serves it: the steal rule needs to know.
                let (actions, _) = self.roaming.foreign_route(route.destination, now);
                self.execute_roaming(actions).await;
            }
        }
        Ok(())
    }

    /// Whether routes of `protocol` are core's own (host, handover, seek).
    fn is_own_protocol(&self, protocol: u8) -> bool {
        protocol == self.config.route_protocol
            || protocol == self.config.handover_protocol
            || protocol == self.config.seek_protocol
    }

    /// The route of `prefix` into the TUN device.
    fn catch_all(&self, prefix: Ipv6Prefix) -> Route {
        Route {
            destination: prefix.addr(),
            prefix_len: prefix.prefix_len(),
            table: self.config.export_table,
            protocol: self.config.route_protocol,
            oif: Some(self.tun_index),
            gateway: Some(tun::NEXT_HOP),
            metric: None,
            kind: RouteType::Unicast,
        }
    }

    /// Runs until shutdown, then removes what it installed.
    pub async fn run(mut self, shutdown: Shutdown) -> Result<(), DaemonError> {
        // Once at the start, so that the roaming refresh has its baseline.
        let mut last_tick = Instant::now();
        self.tick(last_tick).await;
        loop {
            let wake = self.next_tick(last_tick);
            tokio::select! {
                packet = self.tun.recv() => {
                    let packet = packet.map_err(|e| DaemonError::fatal("TUN read", e))?;
                    self.tun_packet(packet, Instant::now()).await;
                }
                change = self.routes.next() => {
                    let Some(change) = change else {
                        return Err(DaemonError::Fatal("route watch ended".to_string()));
                    };
                    self.route_change(change).await;
                }
                found = self.channels.found.recv() => {
                    if let Some(NeighbourEvent::Found(found)) = found {
                        self.neighbour_found(found).await;
                    }
                }
                presence = self.channels.presence.recv() => {
                    if let Some(event) = presence {
                        let now = Instant::now();
                        let mut actions = self.presence_actions(event, now);
                        for _ in 1..BURST {
                            let Ok(event) = self.channels.presence.try_recv() else {
                                break;
                            };
                            actions.extend(self.presence_actions(event, now));
                        }
                        self.execute_roaming(actions).await;
                    }
                }
                db = self.channels.db_events.recv() => {
                    if let Some(event) = db {
                        let now = Instant::now();
                        let mut actions = self.db_actions(event, now);
                        for _ in 1..BURST {
                            let Ok(event) = self.channels.db_events.try_recv() else {
                                break;
                            };
                            actions.extend(self.db_actions(event, now));
                        }
                        self.execute_roaming(actions).await;
                    }
                }
                prefix = self.channels.prefixes.recv() => {
                    if let Some(event) = prefix {
                        self.prefix_event(event).await;
                    }
                }
                received = self.data.recv() => {
                    match received {
                        Ok(received) => self.data_received(received).await,
                        Err(e) => {
                            self.counters.count(C::Errors);
                            tracing::warn!(error = %e, "data path receive");
                        }
                    }
                }
                query = self.queries.recv() => {
                    if let Some(query) = query {
                        self.answer(query);
                    }
                }
                () = sleep_until(wake) => {
                    last_tick = Instant::now();
                    self.tick(last_tick).await;
                }
                () = shutdown.requested() => break,
            }
        }
        self.clean_up().await;
        Ok(())
    }

    // ===== events =====

    async fn tun_packet(&mut self, packet: Vec<u8>, now: Instant) {
        // A node-client address whose route is handed over: the intercom
        // (CLAIM, INFO, ACK, our own client-db's too) goes on to the node
        // that claimed the client, so it does not depend on babel having
        // spread that node's announcement yet.
        if let Some((_, dst)) = addresses(&packet) {
            if self.mesh.node_client_prefix.contains(&dst) {
                match self.roaming.handover_target(&dst) {
                    Some(node) => {
                        self.counters.count(C::NodeClientForwarded);
                        self.execute(vec![Action::Forward { node, packet }]).await;
                    }
                    None => self.counters.count(C::NodeClientDropped),
                }
                return;
            }
            // A packet that reached the catch-all (or the parked route)
            // before this node installed the client's host route, and that
            // we read only after: the route is there now, so it goes on
            // through it. Held, it would wait for the next seek (1 s or
            // more): the route's arrival, which re-sends held packets, has
            // already happened. (Were the route missing after all, the
            // kernel's hop limit ends the round trip.)
            if self.roaming.on_link(&dst).is_some() {
                self.counters.count(C::ReinjectedLate);
                self.execute(vec![Action::Reinject(packet)]).await;
                return;
            }
        }
        let actions = self.held.packet(packet, now);
        self.execute(actions).await;
    }

    /// When the loop must tick next: at the earliest deadline of the held
    /// packets and the roaming, but not sooner than [`TICK`] after the last
    /// tick, so expiries close together are handled together. `None`: no
    /// deadline at all, and an idle node sleeps until something happens.
    fn next_tick(&self, last_tick: Instant) -> Option<Instant> {
        let due = match (self.held.next_deadline(), self.roaming.next_deadline()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(due.max(last_tick + TICK))
    }

    async fn tick(&mut self, now: Instant) {
        let actions = self.held.tick(now);
        self.execute(actions).await;
        let actions = self.roaming.tick(now);
        self.execute_roaming(actions).await;
    }

    fn answer(&self, query: Query) {
        match query {
            Query::Status(reply) => {
                let _ = reply.send(self.status());
            }
        }
    }

    async fn route_change(&mut self, change: RouteChange) {
        let (route, added) = match change {
            RouteChange::Added(route) => (route, true),
            RouteChange::Removed(route) => (route, false),
        };
        if route.prefix_len != 128
            || route.oif == Some(self.tun_index)
            || route.table != self.config.export_table
            || !self.is_client(&route.destination)
        {
            return;
        }
        // A retracted client address: babeld keeps an unreachable route
        // for it (for minutes), which beats the catch-all, so a client
        // whose node vanished would stay unreachable though it sits on
        // another node, silent. Route it into the TUN device, just better
        // than babel's unreachable route: its packets are held and sought.
        if route.kind == RouteType::Unreachable && route.protocol == BABEL_PROTOCOL {
            if added {
                // Its node is gone: no owner holds the address any more.
                self.roaming
                    .foreign_route_gone(route.destination, Instant::now());
                self.add_seek_route(route.destination).await;
            } else {
                self.remove_seek_route(route.destination).await;
            }
            return;
        }
        if route.protocol == self.config.seek_protocol {
            return;
        }
        if !added {
            if route.kind != RouteType::Unreachable && !self.is_own_protocol(route.protocol) {
                tracing::debug!(client = %route.destination, protocol = route.protocol,
                    "another node's route went");
                self.roaming
                    .foreign_route_gone(route.destination, Instant::now());
            }
            return;
        }
        // A real route: babel's seek route is not needed any more.
        if route.protocol == BABEL_PROTOCOL {
            self.remove_seek_route(route.destination).await;
        }
        if route.protocol != self.config.route_protocol
            && route.protocol != self.config.handover_protocol
            && route.kind != RouteType::Unreachable
        {
            tracing::debug!(client = %route.destination, protocol = route.protocol,
                "another node's route");
            let (actions, duplicate) = self
                .roaming
                .foreign_route(route.destination, Instant::now());
            if let Some(mac) = duplicate {
                self.counters.count(C::DuplicateRoutes);
                tracing::warn!(client = %route.destination, %mac, protocol = route.protocol,
                    "another node announces a client that is attached here; keeping ours");
            }
            self.execute_roaming(actions).await;
        }
        let actions = self.held.route_appeared(route.destination);
        if !actions.is_empty() {
            tracing::debug!(
                dst = %route.destination, protocol = route.protocol, packets = actions.len(),
                "host route appeared: re-sending held packets"
            );
        }
        self.execute(actions).await;
    }

    async fn neighbour_found(&mut self, found: FoundNeighbour) {
        if !self.is_client(&found.address) {
            return;
        }
        let interface = self.client_link(&found.interface);
        let actions = self
            .roaming
            .neighbour_found(found.mac, found.address, interface);
        self.execute_roaming(actions).await;
        if self.roaming.on_link(&found.address).is_none() {
            return;
        }
        // Held here: the route is in place, re-send at once.
        let actions = self.held.route_appeared(found.address);
        self.execute(actions).await;
        // Held elsewhere: tell the seekers directly instead of letting them
        // wait for babel.
        for node in found.sought_by {
            if node == self.mesh.node_address {
                continue;
            }
            let notice = Packet::found(
                self.mesh.node_address,
                rand::random(),
                found.address,
                found.mac,
            );
            match self.data.send(node, &notice).await {
                Ok(()) => self.counters.count(C::FoundSent),
                Err(e) => {
                    self.counters.count(C::Errors);
                    tracing::debug!(%node, error = %e, "cannot send FOUND");
                }
            }
        }
    }

    #[cfg(test)]
    async fn presence(&mut self, event: PresenceEvent, now: Instant) {
        let actions = self.presence_actions(event, now);
        self.execute_roaming(actions).await;
    }

    /// What roaming makes of a presence event; the caller executes the
    /// actions (of one event, or of a burst).
    fn presence_actions(&mut self, event: PresenceEvent, now: Instant) -> Vec<roaming::Action> {
        match event {
            PresenceEvent::Appeared {
                mac,
                interface,
                addresses,
            } => {
                tracing::info!(%mac, interface, "client appeared");
                let interface = self.client_link(&interface);
                self.announce_next_node(&interface);
                let actions = self.roaming.appeared(mac, interface, &addresses);
                self.tell_prefixd(mac, &addresses);
                actions
            }
            PresenceEvent::AddressLearned(mac, addr) => {
                let actions = self.roaming.address_learned(mac, addr);
                self.tell_prefixd(mac, &[addr]);
                actions
            }
            PresenceEvent::Gone(mac) => {
                tracing::info!(%mac, "client gone");
                self.roaming.gone(mac, now)
            }
            PresenceEvent::SnapshotStart => {
                self.roaming.presence_snapshot_started();
                Vec::new()
            }
            PresenceEvent::SnapshotDone => {
                let actions = self.roaming.presence_snapshot_done(now);
                if !actions.is_empty() {
                    tracing::info!(
                        parked = actions.len(),
                        "clients clientmon does not list are gone"
                    );
                }
                actions
            }
        }
    }

    #[cfg(test)]
    async fn db_event(&mut self, event: DbEvent, now: Instant) {
        let actions = self.db_actions(event, now);
        self.execute_roaming(actions).await;
    }

    /// What roaming makes of a client-db event; the caller executes them.
    fn db_actions(&mut self, event: DbEvent, now: Instant) -> Vec<roaming::Action> {
        match event {
            DbEvent::Updated(mac, addresses) => {
                let actions = self.roaming.record_updated(mac, &addresses);
                self.tell_prefixd(mac, &addresses);
                actions
            }
            DbEvent::ClaimDone(mac) => self.roaming.claim_done(mac),
            DbEvent::Release { mac, claimed_by } => {
                let actions = self.roaming.released(mac, claimed_by, now);
                if !actions.is_empty() {
                    self.counters.count(C::Releases);
                    tracing::info!(%mac, node = %claimed_by, "client claimed by another node: released");
                }
                actions
            }
            DbEvent::SnapshotStart => Vec::new(),
            DbEvent::SnapshotDone => self.roaming.db_resynced(),
        }
    }

    async fn data_received(&mut self, received: Received) {
        let (from, packet) = match received {
            Received::Packet {
                from,
                packet,
                unsigned,
            } => {
                if unsigned {
                    self.counters.count(C::AuthUnsigned);
                }
                (from, packet)
            }
            Received::Refused(e) => {
                self.counters.count(match e {
                    AuthError::Missing => C::AuthMissing,
                    AuthError::Bad => C::AuthBad,
                    AuthError::Replayed => C::AuthReplayed,
                });
                tracing::debug!(error = %e, "data-path packet refused");
                return;
            }
            Received::Foreign => {
                self.counters.count(C::DatapathForeign);
                return;
            }
            Received::Malformed(e) => {
                self.counters.count(C::DatapathMalformed);
                tracing::debug!(error = %e, "malformed data-path packet");
                return;
            }
            Received::Truncated => {
                self.counters.count(C::DatapathMalformed);
                return;
            }
        };
        match packet.body {
            Body::Found { addr, .. } => {
                self.counters.count(C::FoundReceived);
                tracing::debug!(client = %addr, finder = %packet.sender, %from, "FOUND");
                let now = Instant::now();
                // A client that left here was found elsewhere: hand it
                // over now, without waiting for that node's CLAIM.
                let actions = self.roaming.found_elsewhere(addr, packet.sender, now);
                self.execute_roaming(actions).await;
                let actions = self.held.found(addr, packet.sender, now);
                self.execute(actions).await;
            }
            Body::Data { payload } => {
                // Anything for a client prefix goes into the TUN device: the
                // kernel routes it to the client, or, if its host route is not
                // installed yet (the client has just arrived and its INFO is
                // on its way, or never comes), back into the catch-all, where
                // it is held and sought on our own links like any packet.
                let dst = addresses(&payload).map(|(_, dst)| dst);
                let Some(dst) = dst.filter(|d| self.is_client(d) || self.roaming.holds(d)) else {
                    self.counters.count(C::DataRefused);
                    return;
                };
                self.held.data_from(dst, packet.sender);
                match self.tun.send(&payload).await {
                    Ok(()) => self.counters.count(C::DataDelivered),
                    Err(e) => {
                        self.counters.count(C::Errors);
                        tracing::debug!(error = %e, "cannot deliver encapsulated packet");
                    }
                }
            }
            _ => self.counters.count(C::DatapathMalformed),
        }
    }

    async fn prefix_event(&mut self, event: PrefixEvent) {
        match event {
            PrefixEvent::SnapshotStart => self.snapshot = Some(BTreeSet::new()),
            PrefixEvent::Prefix(prefix, in_use) => {
                if let Some(snapshot) = self.snapshot.as_mut() {
                    if in_use {
                        snapshot.insert(prefix);
                    }
                } else {
                    let mut learned = self.learned.clone();
                    if in_use {
                        learned.insert(prefix);
                    } else {
                        learned.remove(&prefix);
                    }
                    self.set_learned(learned).await;
                }
            }
            PrefixEvent::Removed(prefix) => {
                let mut learned = self.learned.clone();
                learned.remove(&prefix);
                if let Some(snapshot) = self.snapshot.as_mut() {
                    snapshot.remove(&prefix);
                } else {
                    self.set_learned(learned).await;
                }
            }
            PrefixEvent::SnapshotDone => {
                if let Some(snapshot) = self.snapshot.take() {
                    self.set_learned(snapshot).await;
                }
            }
        }
    }

    /// prefixd's in-use prefixes are `learned` now: the catch-alls, the
    /// held-packet queue and roaming follow them and the configured ones.
    /// Host routes of clients in a prefix that goes stay until the client
    /// leaves (prefixd keeps a prefix in use while clients may use it).
    async fn set_learned(&mut self, learned: BTreeSet<Ipv6Prefix>) {
        let mut accepted = BTreeSet::new();
        for prefix in learned {
            if prefix.prefix_len() == 64 && !prefix.contains(&self.mesh.node_client_prefix.addr()) {
                accepted.insert(prefix);
            } else {
                self.counters.count(C::PrefixesRefused);
                tracing::warn!(%prefix, "prefixd offers a prefix that is not a client /64; ignored");
            }
        }
        let mut wanted: BTreeSet<Ipv6Prefix> = self.mesh.client_prefixes.iter().copied().collect();
        wanted.extend(accepted.iter().copied());
        self.learned = accepted;
        let added: Vec<Ipv6Prefix> = wanted.difference(&self.prefixes).copied().collect();
        let removed: Vec<Ipv6Prefix> = self.prefixes.difference(&wanted).copied().collect();
        if added.is_empty() && removed.is_empty() {
            return;
        }
        for prefix in added {
            match self.kernel.replace_route(&self.catch_all(prefix)).await {
                Ok(()) => {
                    tracing::info!(%prefix, tun = self.tun.name(), "catch-all route installed");
                    self.prefixes.insert(prefix);
                }
                Err(e) => {
                    self.counters.count(C::Errors);
                    tracing::warn!(%prefix, error = %e, "cannot install catch-all route");
                }
            }
        }
        for prefix in removed {
            if let Err(e) = self.kernel.delete_route(&self.catch_all(prefix)).await {
                tracing::debug!(%prefix, error = %e, "catch-all route already gone");
            }
            tracing::info!(%prefix, "catch-all route removed");
            self.prefixes.remove(&prefix);
        }
        let list: Vec<Ipv6Prefix> = self.prefixes.iter().copied().collect();
        self.held.set_prefixes(list.clone());
        let actions = self.roaming.set_prefixes(list);
        self.execute_roaming(actions).await;
    }

    async fn add_seek_route(&mut self, addr: Ipv6Addr) {
        if self.seek_routes.contains(&addr) || self.seek_routes.len() >= MAX_SEEK_ROUTES {
            return;
        }
        match self.kernel.replace_route(&self.seek_route(addr)).await {
            Ok(()) => {
                self.counters.count(C::SeekRoutes);
                tracing::debug!(client = %addr, "retracted by babel: seek route into the TUN device");
                self.seek_routes.insert(addr);
            }
            Err(e) => {
                self.counters.count(C::Errors);
                tracing::warn!(client = %addr, error = %e, "cannot install seek route");
            }
        }
    }

    async fn remove_seek_route(&mut self, addr: Ipv6Addr) {
        if !self.seek_routes.remove(&addr) {
            return;
        }
        if let Err(e) = self.kernel.delete_route(&self.seek_route(addr)).await {
            tracing::debug!(client = %addr, error = %e, "seek route already gone");
        }
    }

    /// The seek route of `addr`: into the TUN device, of the seek protocol,
    /// one better than babel's unreachable route (which reflects babel's
    /// infinite metric: the kernel's highest priority value).
    fn seek_route(&self, addr: Ipv6Addr) -> Route {
        Route {
            destination: addr,
            prefix_len: 128,
            table: self.config.export_table,
            protocol: self.config.seek_protocol,
            oif: Some(self.tun_index),
            gateway: None,
            metric: Some(SEEK_ROUTE_METRIC),
            kind: RouteType::Unicast,
        }
    }

    /// Tells prefixd which addresses an attached client uses, so that it
    /// can deprecate those it does not advertise here.
    /// Addresses outside every prefix in use count too: those are the ones
    /// to deprecate. Only for clients attached here (a record of a client
    /// elsewhere is none of this node's business), and only with addresses.
    fn tell_prefixd(&mut self, mac: MacAddr, addresses: &[Ipv6Addr]) {
        let Some(client) = self.roaming.clients().get(&mac) else {
            return;
        };
        if addresses.is_empty() || matches!(client.phase, Phase::Leaving { .. }) {
            return;
        }
        let arrival = Arrival {
            mac,
            interface: client.interface.clone(),
            addresses: addresses.to_vec(),
        };
        if self.channels.arrivals.try_send(arrival).is_err() {
            self.counters.count(C::ArrivalsDropped);
        }
    }

    // ===== actions =====

    async fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Seek(dst) => {
                    if self.channels.seeks.try_send(dst).is_err() {
                        self.counters.count(C::SeeksDropped);
                    }
                }
                Action::Reinject(packet) => {
                    if let Err(e) = self.tun.send(&packet).await {
                        self.counters.count(C::Errors);
                        tracing::debug!(error = %e, "cannot re-send held packet");
                    }
                }
                Action::Forward { node, packet } => {
                    let data = Packet::data(self.mesh.node_address, rand::random(), packet);
                    if let Err(e) = self.data.send(node, &data).await {
                        self.counters.count(C::Errors);
                        tracing::debug!(%node, error = %e, "cannot forward to finder");
                    }
                }
                Action::Unreachable(packet) => {
                    if let Some((to, message)) = unreachable_message(&packet) {
                        if let Err(e) = self.icmp.send(to, &message) {
                            self.counters.count(C::Errors);
                            tracing::debug!(%to, error = %e, "cannot send ICMPv6 unreachable");
                        }
                    }
                }
            }
        }
    }

    /// Carries out roaming's actions in order; their kernel requests go
    /// into one batch, sent when the actions are done (or before an action
    /// that depends on them having been made).
    async fn execute_roaming(&mut self, actions: Vec<roaming::Action>) {
        use roaming::Action as R;
        for action in actions {
            match action {
                R::Claim(mac) => self.db(DbCommand::Claim(mac)),
                R::Refuse { addr, mac } => {
                    self.counters.count(C::AddressesRefused);
                    tracing::warn!(client = %addr, %mac,
                        "a client here uses an address another node serves for another client; not routed here until that node lets go");
                }
                R::Update(mac, addresses) => self.db(DbCommand::Update(mac, addresses)),
                R::Forget(mac) => self.db(DbCommand::Forget(mac)),
                R::InstallRoute {
                    addr,
                    interface,
                    mac,
                } => {
                    // Replaces whatever route core had for it (parked,
                    // handed over) in one step.
                    let Some(ifindex) = self.kernel.interface_index(&interface) else {
                        self.counters.count(C::Errors);
                        tracing::warn!(interface, %addr, "no such client interface");
                        continue;
                    };
                    let route = self.host_route(addr, self.config.route_protocol, Some(ifindex));
                    if self.already_in_place(&route) {
                        continue;
                    }
                    self.batch.push(
                        KernelOp::ReplaceRoute(route),
                        Step::Install {
                            addr,
                            mac,
                            interface,
                        },
                    );
                }
                R::RemoveRoute(addr) => {
                    let route = self.host_route(addr, self.config.route_protocol, None);
                    self.batch
                        .push(KernelOp::DeleteRoute(route), Step::Remove(addr));
                }
                R::Park(addr) => {
                    // Announced with the handover metric while the client
                    // is away: a node that has it now wins at once, with no
                    // tie against our metric-0 announcement (and nothing of
                    // ours stays behind as a stale metric-0 entry).
                    let route =
                        self.host_route(addr, self.config.handover_protocol, Some(self.tun_index));
                    self.batch
                        .push(KernelOp::ReplaceRoute(route), Step::Park(addr));
                    // The client is not on the link any more: packets the
                    // kernel queued for its resolution go without an
                    // "address unreachable" to their senders.
                    for interface in &self.mesh.client_interfaces {
                        if let Some(ifindex) = self.kernel.interface_index(interface) {
                            self.batch.push(
                                KernelOp::DeleteNeighbour(addr, ifindex),
                                Step::ForgetNeighbour,
                            );
                        }
                    }
                }
                R::HandOver(addr) => {
                    // The host route via the client interface replaced by
                    // one into the TUN device, of the handover protocol, in
                    // one step: babeld goes on announcing the address (with
                    // the handover metric) and never retracts it in
                    // between. (Two kernel routes for one prefix, even for a
                    // moment, confuse babeld: 1.13.1 drops its announcement
                    // when the first of the two is removed. And babeld's
                    // `if` selector cannot tell the TUN device: it is
                    // resolved when babeld starts, before core has created
                    // the device; hence a protocol of its own.)
                    let route =
                        self.host_route(addr, self.config.handover_protocol, Some(self.tun_index));
                    self.batch
                        .push(KernelOp::ReplaceRoute(route), Step::HandOver(addr));
                }
                R::EndHandOver(addr) => {
                    let route =
                        self.host_route(addr, self.config.handover_protocol, Some(self.tun_index));
                    self.batch
                        .push(KernelOp::DeleteRoute(route), Step::EndHandOver(addr));
                }
                R::HoldNodeClientAddr(mac) => {
                    let addr = node_client_addr(&self.mesh.node_client_prefix, &mac);
                    let route =
                        self.host_route(addr, self.config.route_protocol, Some(self.lo_index));
                    if self.addresses_in_place.remove(&addr) {
                        self.counters.count(C::AddressesInPlace);
                    } else {
                        self.batch.push(
                            KernelOp::AddAddress(addr, self.lo_index),
                            Step::HoldAddress(mac),
                        );
                    }
                    if !self.already_in_place(&route) {
                        self.batch
                            .push(KernelOp::ReplaceRoute(route), Step::HoldRoute(mac, addr));
                    }
                }
                R::ReleaseNodeClientAddr(mac) => {
                    let addr = node_client_addr(&self.mesh.node_client_prefix, &mac);
                    self.batch.push(
                        KernelOp::DelAddress(addr, self.lo_index),
                        Step::ReleaseAddress(addr),
                    );
                }
                R::ForwardTo { addr, node } => {
                    // After the handover before it: packets sent on from
                    // here must not find the old route any more.
                    self.send_batch().await;
                    let actions = self.held.found(addr, node, Instant::now());
                    self.execute(actions).await;
                }
            }
        }
        self.send_batch().await;
    }

    /// Sends the waiting kernel requests, in runs that commute
    /// ([`batch::runs`]), and settles each one's result: one failed request
    /// is counted and logged, the others go on.
    async fn send_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let (ops, steps) = self.batch.take();
        let mut results = Vec::with_capacity(ops.len());
        for run in batch::runs(&ops) {
            let Some(run_ops) = ops.get(run) else {
                continue;
            };
            results.extend(self.kernel.apply(run_ops).await);
        }
        let mut failed_holds = Vec::new();
        for (step, result) in steps.into_iter().zip(results) {
            if let Some(mac) = self.settle(step, result).await {
                failed_holds.push(mac);
            }
        }
        // A node-client address that could not be added: its route via
        // `lo` would announce an address nobody answers at.
        for mac in failed_holds {
            let addr = node_client_addr(&self.mesh.node_client_prefix, &mac);
            let route = self.host_route(addr, self.config.route_protocol, Some(self.lo_index));
            if let Err(e) = self.kernel.delete_route(&route).await {
                tracing::debug!(%addr, error = %e, "node-client route already gone");
            }
        }
    }

    /// Counts, logs and follows up the result of one request of a batch,
    /// as the one-by-one code did. Returns the MAC of a node-client address
    /// that could not be added.
    async fn settle(
        &mut self,
        step: Step,
        result: Result<(), crate::kernel::KernelError>,
    ) -> Option<MacAddr> {
        match (step, result) {
            (
                Step::Install {
                    addr,
                    mac,
                    interface,
                },
                Ok(()),
            ) => {
                self.counters.count(C::HostRoutesInstalled);
                tracing::info!(client = %addr, %mac, interface, "host route installed");
                // Packets held while it was parked follow the route now.
                let actions = self.held.route_appeared(addr);
                self.execute(actions).await;
            }
            (Step::Install { addr, .. }, Err(e)) => {
                self.counters.count(C::Errors);
                tracing::warn!(client = %addr, error = %e, "cannot install host route");
            }
            (Step::Remove(addr), Ok(())) => {
                self.counters.count(C::HostRoutesRemoved);
                tracing::info!(client = %addr, "host route removed");
            }
            (Step::Remove(addr), Err(e)) => {
                tracing::debug!(client = %addr, error = %e, "host route already gone");
            }
            (Step::Park(addr), Ok(())) => {
                self.counters.count(C::Parked);
                tracing::debug!(client = %addr, "host route parked in the TUN device");
            }
            (Step::Park(addr), Err(e)) => {
                self.counters.count(C::Errors);
                tracing::warn!(client = %addr, error = %e, "cannot park the host route");
            }
            (Step::ForgetNeighbour | Step::CleanUp, _) => {}
            (Step::HandOver(addr), Ok(())) => {
                self.counters.count(C::Handovers);
                tracing::info!(client = %addr, "host route handed over");
            }
            (Step::HandOver(addr), Err(e)) => {
                self.counters.count(C::Errors);
                tracing::warn!(client = %addr, error = %e, "cannot hand the host route over; removing it");
                let route = self.host_route(addr, self.config.route_protocol, None);
                if let Err(e) = self.kernel.delete_route(&route).await {
                    tracing::debug!(client = %addr, error = %e, "host route already gone");
                }
            }
            (Step::EndHandOver(addr), Ok(())) => tracing::info!(client = %addr, "handover ended"),
            (Step::EndHandOver(addr), Err(e)) => {
                tracing::debug!(client = %addr, error = %e, "handover route already gone")
            }
            (Step::HoldAddress(_), Ok(())) => {}
            (Step::HoldAddress(mac), Err(e)) => {
                self.counters.count(C::Errors);
                tracing::warn!(%mac, error = %e, "cannot hold node-client address");
                return Some(mac);
            }
            (Step::HoldRoute(mac, addr), Ok(())) => {
                tracing::debug!(%mac, %addr, "holding node-client address");
                // Packets for it held meanwhile (a CLAIM on its way here)
                // go on now: the kernel does not tell core of its own
                // routes (`netlink::route_filter`).
                let actions = self.held.route_appeared(addr);
                self.execute(actions).await;
            }
            (Step::HoldRoute(mac, addr), Err(e)) => {
                self.counters.count(C::Errors);
                tracing::warn!(%mac, %addr, error = %e, "cannot hold node-client address");
            }
            (Step::ReleaseAddress(_), Ok(())) => {}
            (Step::ReleaseAddress(addr), Err(e)) => {
                tracing::debug!(%addr, error = %e, "node-client address already gone");
            }
            (Step::Stale(_) | Step::StaleAddress(_), Ok(())) => {
                self.counters.count(C::StaleRemoved);
            }
            (Step::Stale(dst), Err(e)) => {
                tracing::warn!(%dst, error = %e, "cannot remove stale route");
            }
            (Step::StaleAddress(addr), Err(e)) => {
                tracing::warn!(%addr, error = %e, "cannot remove stale address");
            }
        }
        None
    }

    fn db(&mut self, command: DbCommand) {
        if self.channels.db_commands.try_send(command).is_err() {
            self.counters.count(C::DbCommandsDropped);
        }
    }

    /// Tells the clients on `interface` where the next-node router is
    /// (an unsolicited neighbor advertisement), so that a client that has
    /// just come back from a carrier loss does not wait a second for its
    /// own retried solicitation ([`crate::icmp::next_node_advertisement`]).
    fn announce_next_node(&mut self, interface: &str) {
        let Some(mac) = self.mesh.next_node_mac else {
            return;
        };
        let Some(ifindex) = self.kernel.interface_index(interface) else {
            return;
        };
        let source = self.mesh.next_node_address;
        let message = crate::icmp::next_node_advertisement(source, &mac);
        match self.icmp.announce(ifindex, source, &message) {
            Ok(()) => self.counters.count(C::NextNodeAnnounced),
            Err(e) => {
                self.counters.count(C::Errors);
                tracing::debug!(interface, error = %e, "cannot announce the next-node router");
            }
        }
    }

    /// The client interface a route to a client seen on `interface` goes
    /// through: the interface itself if it is a client interface, else the
    /// bridge it is a port of (clientmon names bridge ports).
    fn client_link(&self, interface: &str) -> String {
        let configured = &self.mesh.client_interfaces;
        if configured.iter().any(|c| c == interface) {
            return interface.to_string();
        }
        match self.kernel.bridge_of(interface) {
            Some(m) if configured.contains(&m) => m,
            _ => configured
                .first()
                .cloned()
                .unwrap_or_else(|| interface.to_string()),
        }
    }

    // ===== start and stop =====

    /// At start: what an earlier run of core left in the kernel. Its
    /// handovers are over (nothing forwards for them now): removed. A host
    /// route via a client interface whose neighbour entry is still there,
    /// with a MAC, is adopted: the roaming state serves that client again
    /// until clientmon's snapshot says whether it is here. Every other route
    /// of core's protocol, and node-client addresses of clients not
    /// adopted, are removed.
    async fn adopt_earlier_run(&mut self) -> Result<(), DaemonError> {
        let table = self.config.export_table;
        // Seek routes of an earlier run go; [`Engine::start`] puts back
        // those babel's unreachable routes still call for.
        let seeks = self
            .kernel
            .routes(table, self.config.seek_protocol)
            .await
            .map_err(|e| DaemonError::fatal("route dump", e))?;
        for route in seeks {
            self.batch.push(KernelOp::DeleteRoute(route), Step::CleanUp);
        }
        self.send_batch().await;
        let handovers = self
            .kernel
            .routes(table, self.config.handover_protocol)
            .await
            .map_err(|e| DaemonError::fatal("route dump", e))?;
        let routes = self
            .kernel
            .routes(table, self.config.route_protocol)
            .await
            .map_err(|e| DaemonError::fatal("route dump", e))?;
        let neighbours = self
            .kernel
            .neighbours()
            .await
            .map_err(|e| DaemonError::fatal("neighbour dump", e))?;
        let on_lo = self
            .kernel
            .addresses(self.lo_index)
            .await
            .map_err(|e| DaemonError::fatal("address dump", e))?;
        // By address and interface: 10,000 clients are 30,000 routes and
        // as many neighbour entries, too many to search one by one.
        let neighbours: HashMap<(Ipv6Addr, u32), MacAddr> = neighbours
            .iter()
            .filter(|n| n.usable)
            .filter_map(|n| Some(((n.address, n.ifindex), n.mac?)))
            .collect();
        let mut adopted: BTreeMap<MacAddr, (String, Vec<Ipv6Addr>)> = BTreeMap::new();
        let mut stale = handovers;
        let mut node_client_routes = Vec::new();
        let mut in_place = HashMap::new();
        for route in routes {
            in_place.insert(route.destination, route.clone());
            if route.prefix_len == 128 && self.mesh.node_client_prefix.contains(&route.destination)
            {
                node_client_routes.push(route);
                continue;
            }
            match self.adoptable(&route, &neighbours) {
                Some((mac, interface)) => {
                    tracing::info!(client = %route.destination, %mac, interface,
                        "adopting host route of an earlier run");
                    adopted
                        .entry(mac)
                        .or_insert_with(|| (interface, Vec::new()))
                        .1
                        .push(route.destination);
                }
                None => stale.push(route),
            }
        }
        let held: BTreeSet<Ipv6Addr> = adopted
            .keys()
            .map(|mac| node_client_addr(&self.mesh.node_client_prefix, mac))
            .collect();
        stale.extend(
            node_client_routes
                .into_iter()
                .filter(|r| !held.contains(&r.destination)),
        );
        for route in &stale {
            in_place.remove(&route.destination);
        }
        for route in stale {
            tracing::info!(dst = %route.destination, len = route.prefix_len, protocol = route.protocol,
                "removing route left by an earlier run");
            let dst = route.destination;
            self.batch
                .push(KernelOp::DeleteRoute(route), Step::Stale(dst));
        }
        let mut addresses_in_place = HashSet::new();
        for Address { addr, as_core_adds } in on_lo {
            if !self.mesh.node_client_prefix.contains(&addr) {
                continue;
            }
            if held.contains(&addr) {
                if as_core_adds {
                    addresses_in_place.insert(addr);
                }
            } else {
                tracing::info!(%addr, "removing node-client address left by an earlier run");
                self.batch.push(
                    KernelOp::DelAddress(addr, self.lo_index),
                    Step::StaleAddress(addr),
                );
            }
        }
        self.send_batch().await;
        let mut actions = Vec::new();
        for (mac, (interface, addresses)) in adopted {
            self.counters.add(C::Adopted, addresses.len() as u64);
            actions.extend(self.roaming.adopt(mac, interface, &addresses));
        }
        // The adopted routes and node-client addresses are asserted, but
        // one that is there already, as it would be installed, is left
        // alone: 10,000 clients are 40,000 routes and 10,000 addresses,
        // and each replacement, even one that changes nothing, is a
        // notification that babeld processes (it dumps the kernel's routes
        // again) and, for an address, a walk of every address on `lo`
        // (design notes, "Many clients on one node").
        self.in_place = in_place;
        self.addresses_in_place = addresses_in_place;
        self.execute_roaming(actions).await;
        self.in_place = HashMap::new();
        self.addresses_in_place = HashSet::new();
        Ok(())
    }

    /// Whether `route` is what the kernel has already from an earlier
    /// run (at start only).
    fn already_in_place(&mut self, route: &Route) -> bool {
        let same = self.in_place.get(&route.destination) == Some(route);
        if same {
            self.in_place.remove(&route.destination);
            self.counters.count(C::RoutesInPlace);
        }
        same
    }

    /// The client of a host route of an earlier run, if the route can be
    /// adopted: a /128 in a client prefix via a client interface, whose
    /// address the kernel still has as a neighbour there with a MAC.
    fn adoptable(
        &self,
        route: &Route,
        neighbours: &HashMap<(Ipv6Addr, u32), MacAddr>,
    ) -> Option<(MacAddr, String)> {
        if route.prefix_len != 128 || !self.is_client(&route.destination) {
            return None;
        }
        let oif = route.oif?;
        let mac = *neighbours.get(&(route.destination, oif))?;
        let interface = self.kernel.interface_name(oif)?;
        if !self.mesh.client_interfaces.contains(&interface) {
            return None;
        }
        Some((mac, interface))
    }

    /// Removes the host routes, catch-all routes and node-client addresses
    /// this run installed.
    async fn clean_up(&mut self) {
        let held: Vec<MacAddr> = self
            .roaming
            .clients()
            .iter()
            .filter(|(_, c)| c.holds_node_client_addr)
            .map(|(mac, _)| *mac)
            .collect();
        for mac in held {
            let addr = node_client_addr(&self.mesh.node_client_prefix, &mac);
            self.batch
                .push(KernelOp::DelAddress(addr, self.lo_index), Step::CleanUp);
        }
        for protocol in [
            self.config.route_protocol,
            self.config.handover_protocol,
            self.config.seek_protocol,
        ] {
            match self.kernel.routes(self.config.export_table, protocol).await {
                Ok(routes) => {
                    for route in routes {
                        self.batch.push(KernelOp::DeleteRoute(route), Step::CleanUp);
                    }
                }
                Err(e) => tracing::warn!(protocol, error = %e, "cannot list routes to remove"),
            }
        }
        let requests = self.batch.len();
        self.send_batch().await;
        tracing::info!(requests, "routes removed");
    }

    // ===== helpers =====

    /// The /128 route for `addr` in the export table, as core installs it.
    fn host_route(&self, addr: Ipv6Addr, protocol: u8, oif: Option<u32>) -> Route {
        Route {
            destination: addr,
            prefix_len: 128,
            table: self.config.export_table,
            protocol,
            oif,
            gateway: None,
            metric: Some(self.config.host_route_metric),
            kind: RouteType::Unicast,
        }
    }

    fn is_client(&self, addr: &Ipv6Addr) -> bool {
        self.prefixes.iter().any(|p| p.contains(addr))
    }

    /// The state the status RPC shows.
    fn status(&self) -> Status {
        let mut counters = self.held.counters().list();
        counters.extend([
            ("held_now", self.held.len() as u64),
            ("destinations_sought_now", self.held.destinations() as u64),
            (
                "destinations_found_elsewhere_now",
                self.held.found_destinations() as u64,
            ),
            ("handovers_now", self.roaming.handovers() as u64),
            ("clients_served", self.roaming.clients().len() as u64),
        ]);
        counters.extend(self.counters.list());
        let mut clients: Vec<ServedClient> = self
            .roaming
            .clients()
            .iter()
            .map(|(mac, c)| ServedClient {
                mac: *mac,
                interface: c.interface.clone(),
                addresses: c.addresses.clone(),
                phase: match c.phase {
                    Phase::Claiming => "claiming",
                    Phase::Serving => "serving",
                    Phase::Leaving { .. } => "leaving",
                },
            })
            .collect();
        clients.sort_by_key(|c| c.mac);
        Status {
            tun_device: self.tun.name().to_string(),
            counters,
            clients,
            client_prefixes: self.prefixes.iter().copied().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The engine over the in-memory platform: what it asks of the kernel
    //! and the other daemons for each event, without root and without
    //! waiting (time is passed in).

    use super::*;
    use crate::kernel::Neighbour;
    use crate::mock::{KernelState, Mock, MockKernel, MockParts};

    const NODE: &str = "fdff::2";
    const OTHER: &str = "fdff::3";
    const CLIENT: &str = "fddd:1::100";

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn mac() -> MacAddr {
        "02:c1:00:00:00:01".parse().unwrap()
    }

    struct Lab {
        engine: Engine<Mock>,
        parts: MockParts,
        db: mpsc::Receiver<DbCommand>,
        seeks: mpsc::Receiver<Ipv6Addr>,
        arrivals: mpsc::Receiver<Arrival>,
        // Kept so the engine's receivers stay open.
        _senders: (
            mpsc::Sender<NeighbourEvent>,
            mpsc::Sender<PresenceEvent>,
            mpsc::Sender<DbEvent>,
            mpsc::Sender<PrefixEvent>,
            Handle,
        ),
    }

    fn mesh() -> MeshConfig {
        MeshConfig {
            node_address: a(NODE),
            mesh_interfaces: vec!["mesh0".into()],
            mesh_interface_patterns: Vec::new(),
            client_interfaces: vec!["br-client".into()],
            client_prefixes: vec!["fddd:1::/64".parse().unwrap()],
            node_client_prefix: "fec0::/64".parse().unwrap(),
            next_node_address: a("fe80::1"),
            next_node_mac: Some("02:4e:4e:00:00:01".parse().unwrap()),
            next_node_routable_address: None,
            intercom_port: 5523,
            data_port: 5524,
            intercom_auth: "off".into(),
            intercom_key: None,
            intercom_key_file: None,
        }
    }

    /// An engine on a node with `lo`, `br-client`, `mesh0` and `l3roam0`;
    /// `arrange` prepares the kernel as an earlier run left it.
    fn lab_with(arrange: impl FnOnce(&MockKernel)) -> Lab {
        let kernel = MockKernel::with_links(&["br-client", "mesh0", "l3roam0"]);
        arrange(&kernel);
        let parts = MockParts {
            kernel,
            tun: Default::default(),
            data: Default::default(),
            icmp: Default::default(),
        };
        let (seek_tx, seeks) = mpsc::channel(64);
        let (found_tx, found_rx) = mpsc::channel(64);
        let (presence_tx, presence_rx) = mpsc::channel(64);
        let (db_tx, db) = mpsc::channel(64);
        let (db_event_tx, db_event_rx) = mpsc::channel(64);
        let (prefix_tx, prefix_rx) = mpsc::channel(64);
        let (arrival_tx, arrivals) = mpsc::channel(64);
        let (handle, queries) = Handle::new();
        let channels = Channels {
            seeks: seek_tx,
            found: found_rx,
            presence: presence_rx,
            db_commands: db_tx,
            db_events: db_event_rx,
            prefixes: prefix_rx,
            arrivals: arrival_tx,
        };
        let engine = Engine::new(
            mesh(),
            CoreConfig::default(),
            parts.parts(),
            channels,
            queries,
        )
        .unwrap();
        Lab {
            engine,
            parts,
            db,
            seeks,
            arrivals,
            _senders: (found_tx, presence_tx, db_event_tx, prefix_tx, handle),
        }
    }

    async fn started(arrange: impl FnOnce(&MockKernel)) -> Lab {
        let mut lab = lab_with(arrange);
        lab.engine.start().await.unwrap();
        lab
    }

    impl Lab {
        fn kernel(&self) -> std::cell::Ref<'_, KernelState> {
            self.parts.kernel.state.borrow()
        }

        fn index(&self, name: &str) -> u32 {
            self.parts.kernel.index(name)
        }

        /// `(protocol, interface)` of every route for `addr/128`.
        fn host_routes(&self, addr: &str) -> Vec<(u8, String)> {
            let kernel = self.kernel();
            let mut routes: Vec<(u8, String)> = kernel
                .host_routes(a(addr))
                .into_iter()
                .map(|r| {
                    let name = kernel
                        .links
                        .iter()
                        .find(|(_, i)| Some(**i) == r.oif)
                        .map(|(n, _)| n.clone())
                        .unwrap_or_default();
                    (r.protocol, name)
                })
                .collect();
            routes.sort();
            routes
        }

        fn db_commands(&mut self) -> Vec<DbCommand> {
            let mut out = Vec::new();
            while let Ok(c) = self.db.try_recv() {
                out.push(c);
            }
            out
        }

        fn requests(&self) -> Vec<String> {
            std::mem::take(&mut self.parts.kernel.state.borrow_mut().requests)
        }

        async fn appeared(&mut self, addresses: &[&str], now: Instant) {
            let event = PresenceEvent::Appeared {
                mac: mac(),
                interface: "br-client".into(),
                addresses: addresses.iter().map(|s| a(s)).collect(),
            };
            self.engine.presence(event, now).await;
        }

        /// Another node claimed the client.
        async fn claimed_by_other(&mut self, now: Instant) {
            let release = DbEvent::Release {
                mac: mac(),
                claimed_by: a(OTHER),
            };
            self.engine.db_event(release, now).await;
        }

        async fn serve(&mut self, now: Instant) {
            self.appeared(&[CLIENT], now).await;
            self.engine.db_event(DbEvent::ClaimDone(mac()), now).await;
        }
    }

    /// An IPv6 packet from the gateway to `dst`.
    fn packet_to(dst: &str) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 1, 59, 64];
        p.extend_from_slice(&a("fdff::1").octets());
        p.extend_from_slice(&a(dst).octets());
        p.push(0xab);
        p
    }

    /// The node-client address of `mac` on `lo` and its route, as an
    /// earlier run of core left them.
    fn earlier_node_client_addr(kernel: &MockKernel, mac: MacAddr) -> Ipv6Addr {
        let lo = kernel.index("lo");
        let addr = node_client_addr(&mesh().node_client_prefix, &mac);
        let mut s = kernel.state.borrow_mut();
        s.addresses.push((addr, lo));
        s.routes.push(Route {
            destination: addr,
            prefix_len: 128,
            table: 254,
            protocol: 158,
            oif: Some(lo),
            gateway: None,
            metric: Some(32),
            kind: RouteType::Unicast,
        });
        addr
    }

    fn earlier_run(kernel: &MockKernel, addr: &str, neighbour: Option<MacAddr>) {
        let br = kernel.index("br-client");
        let mut s = kernel.state.borrow_mut();
        s.routes.push(Route {
            destination: a(addr),
            prefix_len: 128,
            table: 254,
            protocol: 158,
            oif: Some(br),
            gateway: None,
            metric: Some(32),
            kind: RouteType::Unicast,
        });
        if let Some(mac) = neighbour {
            s.neighbours.push(Neighbour {
                address: a(addr),
                ifindex: br,
                mac: Some(mac),
                usable: true,
            });
        }
    }

    fn node_client_address() -> Ipv6Addr {
        node_client_addr(&mesh().node_client_prefix, &mac())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn start_routes_the_client_prefixes_into_the_tun_device() {
        let lab = started(|_| {}).await;
        let kernel = lab.kernel();
        let catch_all: Vec<&Route> = kernel
            .routes
            .iter()
            .filter(|r| r.prefix_len == 64)
            .collect();
        assert_eq!(catch_all.len(), 1);
        assert_eq!(catch_all[0].destination, a("fddd:1::"));
        assert_eq!(catch_all[0].oif, Some(lab.index("l3roam0")));
        assert_eq!(catch_all[0].gateway, Some(tun::NEXT_HOP));
        assert_eq!(catch_all[0].protocol, 158);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn start_adopts_routes_of_present_neighbours_and_removes_the_rest() {
        let stale_mac: MacAddr = "02:c1:00:00:00:02".parse().unwrap();
        let lab = started(|k| {
            earlier_run(k, CLIENT, Some(mac()));
            earlier_run(k, "fddd:1::200", None);
            let tun = k.index("l3roam0");
            let mut s = k.state.borrow_mut();
            // A handover of the earlier run, and its node-client addresses.
            s.routes.push(Route {
                destination: a("fddd:1::300"),
                prefix_len: 128,
                table: 254,
                protocol: 159,
                oif: Some(tun),
                gateway: None,
                metric: Some(32),
                kind: RouteType::Unicast,
            });
            drop(s);
            for m in [mac(), stale_mac] {
                earlier_node_client_addr(k, m);
            }
        })
        .await;
        assert_eq!(lab.host_routes(CLIENT), vec![(158, "br-client".into())]);
        assert!(lab.host_routes("fddd:1::200").is_empty(), "no neighbour");
        assert!(lab.host_routes("fddd:1::300").is_empty(), "handover over");
        let stale_nca = node_client_addr(&mesh().node_client_prefix, &stale_mac);
        let kernel = lab.kernel();
        assert!(kernel.host_routes(stale_nca).is_empty());
        assert_eq!(kernel.addresses, vec![(node_client_address(), 1)]);
        assert_eq!(kernel.host_routes(node_client_address()).len(), 1);
        drop(kernel);
        let status = lab.engine.status();
        assert_eq!(status.clients.len(), 1);
        assert_eq!(status.clients[0].mac, mac());
        assert_eq!(status.clients[0].phase, "serving");
    }

    /// Issue 9's restart case: core was killed, the client moved away,
    /// core started again: clientmon's snapshot does not list the client,
    /// so its adopted routes are parked and go after the grace period.
    #[tokio::test(flavor = "current_thread")]
    async fn an_adopted_client_clientmon_does_not_list_is_released() {
        let mut lab = started(|k| {
            earlier_run(k, CLIENT, Some(mac()));
            let lo = k.index("lo");
            k.state
                .borrow_mut()
                .addresses
                .push((node_client_addr(&mesh().node_client_prefix, &mac()), lo));
        })
        .await;
        let t0 = Instant::now();
        lab.engine.presence(PresenceEvent::SnapshotStart, t0).await;
        lab.engine.presence(PresenceEvent::SnapshotDone, t0).await;
        assert_eq!(lab.host_routes(CLIENT), vec![(159, "l3roam0".into())]);
        // After the grace period: handed over (our last announcement has
        // the handover metric), then removed.
        let grace_over = t0 + Duration::from_secs(5);
        lab.engine.tick(grace_over).await;
        assert_eq!(lab.host_routes(CLIENT), vec![(159, "l3roam0".into())]);
        assert!(lab.kernel().addresses.is_empty());
        assert_eq!(lab.db_commands(), vec![DbCommand::Forget(mac())]);
        assert!(lab.engine.status().clients.is_empty());
        lab.engine.tick(grace_over + Duration::from_secs(5)).await;
        assert!(lab.host_routes(CLIENT).is_empty());
        assert!(lab.kernel().host_routes(node_client_address()).is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_adopted_client_clientmon_lists_is_claimed_and_kept() {
        let mut lab = started(|k| earlier_run(k, CLIENT, Some(mac()))).await;
        let t0 = Instant::now();
        lab.engine.presence(PresenceEvent::SnapshotStart, t0).await;
        lab.appeared(&[CLIENT], t0).await;
        lab.engine.presence(PresenceEvent::SnapshotDone, t0).await;
        lab.engine.tick(t0 + Duration::from_secs(10)).await;
        assert_eq!(lab.host_routes(CLIENT), vec![(158, "br-client".into())]);
        assert_eq!(lab.db_commands(), vec![DbCommand::Claim(mac())]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn arrival_claims_routes_and_holds_the_node_client_address_after_the_claim() {
        let mut lab = started(|_| {}).await;
        let t0 = Instant::now();
        lab.appeared(&[CLIENT], t0).await;
        assert_eq!(lab.host_routes(CLIENT), vec![(158, "br-client".into())]);
        assert!(lab.kernel().addresses.is_empty(), "not before the claim");
        assert_eq!(
            lab.db_commands(),
            vec![
                DbCommand::Claim(mac()),
                DbCommand::Update(mac(), vec![a(CLIENT)])
            ]
        );
        lab.engine.db_event(DbEvent::ClaimDone(mac()), t0).await;
        assert_eq!(lab.kernel().addresses, vec![(node_client_address(), 1)]);
        // Its link heard where the next-node router is.
        let announced = lab.parts.icmp.announced.borrow().clone();
        assert_eq!(announced.len(), 1);
        assert_eq!(
            (announced[0].0, announced[0].1),
            (lab.index("br-client"), a("fe80::1"))
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn release_hands_over_in_one_step_and_forwards_what_still_arrives() {
        let mut lab = started(|_| {}).await;
        let t0 = Instant::now();
        lab.serve(t0).await;
        lab.requests();
        lab.claimed_by_other(t0).await;
        // One replace, no delete of the old route first: babeld never sees
        // the address without a route.
        let requests = lab.requests();
        assert_eq!(
            requests
                .iter()
                .filter(|r| r.contains(CLIENT))
                .collect::<Vec<_>>(),
            vec![&format!(
                "replace {CLIENT}/128 proto 159 oif Some({})",
                lab.index("l3roam0")
            )]
        );
        assert_eq!(lab.host_routes(CLIENT), vec![(159, "l3roam0".into())]);
        assert!(
            lab.kernel().addresses.is_empty(),
            "node-client address let go"
        );
        // A packet still routed here goes on to the new node.
        lab.engine.tun_packet(packet_to(CLIENT), t0).await;
        let sent = lab.parts.data.sent.borrow().clone();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, a(OTHER));
        assert!(matches!(&sent[0].1.body, Body::Data { payload } if *payload == packet_to(CLIENT)));
        // The handover ends after core.handover_ms.
        lab.engine.tick(t0 + Duration::from_millis(4_900)).await;
        assert_eq!(lab.host_routes(CLIENT).len(), 1);
        lab.engine.tick(t0 + Duration::from_secs(5)).await;
        assert!(lab.host_routes(CLIENT).is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_intercom_for_a_handed_over_node_client_address_goes_to_the_claimer() {
        let mut lab = started(|_| {}).await;
        let t0 = Instant::now();
        lab.serve(t0).await;
        lab.claimed_by_other(t0).await;
        let nca = node_client_address();
        assert_eq!(lab.kernel().host_routes(nca).len(), 1, "handed over");
        // The client is back here and our client-db claims it: the CLAIM
        // falls into the TUN device (the handover route) and goes on as DATA.
        lab.engine.tun_packet(packet_to(&nca.to_string()), t0).await;
        let sent = lab.parts.data.sent.borrow().clone();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, a(OTHER));
        assert_eq!(lab.engine.counters.get(C::NodeClientForwarded), 1);
        // A node-client address nobody claimed from us: dropped, counted.
        lab.engine.tun_packet(packet_to("fec0::1"), t0).await;
        assert_eq!(lab.parts.data.sent.borrow().len(), 1);
        assert_eq!(lab.engine.counters.get(C::NodeClientDropped), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn data_for_a_node_client_address_is_delivered_only_where_it_is_held() {
        let mut lab = started(|_| {}).await;
        let t0 = Instant::now();
        let nca = node_client_address().to_string();
        let data = |dst: &str| Received::Packet {
            from: a("fe80::3"),
            packet: Packet::data(a(OTHER), 1, packet_to(dst)),
            unsigned: false,
        };
        lab.engine.data_received(data(&nca)).await;
        assert!(lab.parts.tun.sent.borrow().is_empty());
        assert_eq!(lab.engine.counters.get(C::DataRefused), 1);
        lab.serve(t0).await;
        lab.engine.data_received(data(&nca)).await;
        assert_eq!(*lab.parts.tun.sent.borrow(), vec![packet_to(&nca)]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_departed_client_is_parked_and_its_packets_are_sent_on_when_it_returns() {
        let mut lab = started(|_| {}).await;
        let t0 = Instant::now();
        lab.serve(t0).await;
        lab.engine.presence(PresenceEvent::Gone(mac()), t0).await;
        assert_eq!(lab.host_routes(CLIENT), vec![(159, "l3roam0".into())]);
        lab.engine.tun_packet(packet_to(CLIENT), t0).await;
        assert_eq!(
            lab.seeks.try_recv().ok(),
            Some(a(CLIENT)),
            "held and sought"
        );
        assert!(lab.parts.tun.sent.borrow().is_empty());
        lab.appeared(&[CLIENT], t0 + Duration::from_secs(1)).await;
        assert_eq!(lab.host_routes(CLIENT), vec![(158, "br-client".into())]);
        assert_eq!(
            *lab.parts.tun.sent.borrow(),
            vec![packet_to(CLIENT)],
            "re-sent at once through the route, not at the next re-seek"
        );
    }

    fn catch_alls(lab: &Lab) -> Vec<String> {
        let tun = lab.index("l3roam0");
        let mut out: Vec<String> = lab
            .kernel()
            .routes
            .iter()
            .filter(|r| r.prefix_len == 64 && r.oif == Some(tun))
            .map(|r| format!("{}/{}", r.destination, r.prefix_len))
            .collect();
        out.sort();
        out
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_catch_alls_follow_the_prefixes_prefixd_has_in_use() {
        let mut lab = started(|_| {}).await;
        let b: Ipv6Prefix = "2001:db8:b::/64".parse().unwrap();
        let c: Ipv6Prefix = "2001:db8:c::/64".parse().unwrap();
        for e in [
            PrefixEvent::SnapshotStart,
            PrefixEvent::Prefix(b, true),
            PrefixEvent::Prefix(c, false),
            PrefixEvent::SnapshotDone,
        ] {
            lab.engine.prefix_event(e).await;
        }
        assert_eq!(catch_alls(&lab), vec!["2001:db8:b::/64", "fddd:1::/64"]);
        // A client in b gets its route now; one that brings an address of
        // c, not in use, gets its route when c is.
        lab.appeared(&["2001:db8:b::5", "2001:db8:c::5"], Instant::now())
            .await;
        assert_eq!(
            lab.host_routes("2001:db8:b::5"),
            vec![(158, "br-client".into())]
        );
        assert_eq!(lab.host_routes("2001:db8:c::5"), vec![]);
        let arrival = lab.arrivals.try_recv().unwrap();
        assert_eq!(
            arrival.addresses,
            vec![a("2001:db8:b::5"), a("2001:db8:c::5")]
        );
        assert_eq!(arrival.interface, "br-client");
        // c in use, b gone; the configured prefix always stays.
        lab.engine.prefix_event(PrefixEvent::Prefix(c, true)).await;
        assert_eq!(
            lab.host_routes("2001:db8:c::5"),
            vec![(158, "br-client".into())]
        );
        lab.engine.prefix_event(PrefixEvent::Removed(b)).await;
        assert_eq!(catch_alls(&lab), vec!["2001:db8:c::/64", "fddd:1::/64"]);
        // A new snapshot without c (prefixd restarted) ends it; nonsense
        // is refused.
        for e in [
            PrefixEvent::SnapshotStart,
            PrefixEvent::Prefix("::/0".parse().unwrap(), true),
            PrefixEvent::Prefix("fec0::/64".parse().unwrap(), true),
            PrefixEvent::SnapshotDone,
        ] {
            lab.engine.prefix_event(e).await;
        }
        assert_eq!(catch_alls(&lab), vec!["fddd:1::/64"]);
    }

    fn babel_route(addr: &str, kind: RouteType) -> Route {
        Route {
            destination: a(addr),
            prefix_len: 128,
            table: 254,
            protocol: 42,
            oif: None,
            gateway: None,
            metric: Some(u32::MAX),
            kind,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_client_address_babel_retracted_is_sought_not_dropped() {
        let mut lab = started(|_| {}).await;
        let gone = "fddd:1::77";
        lab.engine
            .route_change(RouteChange::Added(babel_route(
                gone,
                RouteType::Unreachable,
            )))
            .await;
        assert_eq!(lab.host_routes(gone), vec![(157, "l3roam0".into())]);
        // Its packets reach the TUN device: held and sought.
        lab.engine.tun_packet(packet_to(gone), Instant::now()).await;
        assert_eq!(lab.seeks.try_recv().ok(), Some(a(gone)));
        // Babel has a real route again (the client's new node): ours goes,
        // and the held packet follows babel's route.
        let mut found = babel_route(gone, RouteType::Unicast);
        found.metric = Some(288);
        found.oif = Some(lab.index("br-client"));
        lab.engine.route_change(RouteChange::Added(found)).await;
        assert_eq!(lab.host_routes(gone), vec![]);
        assert_eq!(*lab.parts.tun.sent.borrow(), vec![packet_to(gone)]);
        // A retraction never passes for another node's route, nor re-sends
        // held packets into it.
        lab.engine.tun_packet(packet_to(gone), Instant::now()).await;
        lab.engine
            .route_change(RouteChange::Added(babel_route(
                gone,
                RouteType::Unreachable,
            )))
            .await;
        assert_eq!(lab.parts.tun.sent.borrow().len(), 1);
        lab.engine
            .route_change(RouteChange::Removed(babel_route(
                gone,
                RouteType::Unreachable,
            )))
            .await;
        assert_eq!(lab.host_routes(gone), vec![]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_address_another_node_serves_is_not_routed_to_a_client_claiming_it() {
        let taken = "fddd:1::78";
        let mut routed = babel_route(taken, RouteType::Unicast);
        routed.metric = Some(288);
        let mut lab = started(|_| {}).await;
        let t0 = Instant::now();
        lab.engine
            .route_change(RouteChange::Added(routed.clone()))
            .await;
        lab.appeared(&[taken], t0).await;
        assert_eq!(lab.host_routes(taken), vec![], "refused");
        assert!(lab
            .engine
            .counters
            .list()
            .contains(&("addresses_refused", 1)));
        assert!(!lab
            .db_commands()
            .iter()
            .any(|c| matches!(c, DbCommand::Update(_, v) if v.contains(&a(taken)))));
        // The owner's node let go: after the settling time it is routed here.
        lab.engine.route_change(RouteChange::Removed(routed)).await;
        lab.engine.tick(t0).await;
        assert_eq!(lab.host_routes(taken), vec![]);
        lab.engine.tick(t0 + Duration::from_secs(2)).await;
        assert_eq!(lab.host_routes(taken), vec![(158, "br-client".into())]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_packet_read_after_its_route_was_installed_follows_the_route() {
        let mut lab = started(|_| {}).await;
        let t0 = Instant::now();
        lab.serve(t0).await;
        lab.engine.presence(PresenceEvent::Gone(mac()), t0).await;
        // Back: the route is installed (and held packets re-sent) before
        // core reads a packet the kernel had put into the TUN device.
        lab.appeared(&[CLIENT], t0 + Duration::from_millis(50))
            .await;
        assert_eq!(lab.host_routes(CLIENT), vec![(158, "br-client".into())]);
        lab.engine
            .tun_packet(packet_to(CLIENT), t0 + Duration::from_millis(51))
            .await;
        assert!(lab.seeks.try_recv().is_err(), "not held for a seek");
        assert_eq!(*lab.parts.tun.sent.borrow(), vec![packet_to(CLIENT)]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_client_back_during_its_handover_gets_its_route_at_once() {
        let mut lab = started(|_| {}).await;
        let t0 = Instant::now();
        lab.serve(t0).await;
        lab.claimed_by_other(t0).await;
        lab.requests();
        // Back 2 s later; clientmon knows no address yet.
        lab.appeared(&[], t0 + Duration::from_secs(2)).await;
        assert_eq!(lab.host_routes(CLIENT), vec![(158, "br-client".into())]);
        let requests = lab.requests();
        assert!(
            !requests.iter().any(|r| r.starts_with("delete")),
            "the handover route is replaced, never removed first: {requests:?}"
        );
        // The end of the old handover does not touch the new route.
        lab.engine.tick(t0 + Duration::from_secs(6)).await;
        assert_eq!(lab.host_routes(CLIENT), vec![(158, "br-client".into())]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_route_from_another_node_for_a_departed_client_ends_ours_by_a_handover() {
        let mut lab = started(|_| {}).await;
        let t0 = Instant::now();
        lab.serve(t0).await;
        lab.engine.presence(PresenceEvent::Gone(mac()), t0).await;
        let babel = Route {
            destination: a(CLIENT),
            prefix_len: 128,
            table: 254,
            protocol: 42,
            oif: Some(lab.index("mesh0")),
            gateway: None,
            metric: Some(1120),
            kind: RouteType::Unicast,
        };
        lab.engine.route_change(RouteChange::Added(babel)).await;
        assert_eq!(lab.host_routes(CLIENT), vec![(159, "l3roam0".into())]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn client_db_resync_claims_again() {
        let mut lab = started(|_| {}).await;
        let t0 = Instant::now();
        lab.appeared(&[CLIENT], t0).await;
        lab.db_commands();
        lab.engine.db_event(DbEvent::SnapshotStart, t0).await;
        lab.engine.db_event(DbEvent::SnapshotDone, t0).await;
        assert_eq!(lab.db_commands(), vec![DbCommand::Claim(mac())]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn stop_removes_everything_core_installed() {
        let mut lab = started(|_| {}).await;
        let t0 = Instant::now();
        lab.serve(t0).await;
        lab.engine.clean_up().await;
        let kernel = lab.kernel();
        assert!(kernel.routes.is_empty(), "{:?}", kernel.routes);
        assert!(kernel.addresses.is_empty());
    }

    // ===== batches =====

    /// `n` clients with three addresses each, as clientmon reports them.
    fn arrivals(n: u16) -> Vec<PresenceEvent> {
        (0..n)
            .map(|i| PresenceEvent::Appeared {
                mac: MacAddr([2, 0xc2, 0, 0, (i >> 8) as u8, i as u8]),
                interface: "br-client".into(),
                addresses: (1..=3)
                    .map(|k| Ipv6Addr::new(0xfddd, 1, 0, 0, 0, k, 0, i))
                    .collect(),
            })
            .collect()
    }

    /// Handles `events` as the run loop handles a burst of them.
    async fn burst(lab: &mut Lab, events: Vec<PresenceEvent>, now: Instant) {
        let mut actions = Vec::new();
        for event in events {
            actions.extend(lab.engine.presence_actions(event, now));
        }
        lab.engine.execute_roaming(actions).await;
    }

    fn installed(lab: &Lab) -> usize {
        let br = lab.index("br-client");
        lab.kernel()
            .routes
            .iter()
            .filter(|r| r.prefix_len == 128 && r.protocol == 158 && r.oif == Some(br))
            .count()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_burst_of_arrivals_goes_to_the_kernel_as_one_batch() {
        let mut lab = started(|_| {}).await;
        lab.parts.kernel.state.borrow_mut().batches.clear();
        burst(&mut lab, arrivals(100), Instant::now()).await;
        assert_eq!(lab.kernel().batches, vec![300]);
        assert_eq!(installed(&lab), 300);
        assert_eq!(lab.engine.counters.get(C::HostRoutesInstalled), 300);
        assert_eq!(lab.engine.counters.get(C::Errors), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_refused_route_fails_alone_and_is_counted() {
        let mut lab = started(|_| {}).await;
        let refused = Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 2, 0, 5);
        lab.parts.kernel.state.borrow_mut().refused.push(refused);
        burst(&mut lab, arrivals(10), Instant::now()).await;
        assert_eq!(installed(&lab), 29);
        assert!(lab.kernel().host_routes(refused).is_empty());
        assert_eq!(lab.engine.counters.get(C::HostRoutesInstalled), 29);
        assert_eq!(lab.engine.counters.get(C::Errors), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn gone_and_back_in_one_burst_ends_on_the_link() {
        let mut lab = started(|_| {}).await;
        let t0 = Instant::now();
        lab.serve(t0).await;
        lab.requests();
        lab.parts.kernel.state.borrow_mut().batches.clear();
        let back = PresenceEvent::Appeared {
            mac: mac(),
            interface: "br-client".into(),
            addresses: vec![a(CLIENT)],
        };
        burst(&mut lab, vec![PresenceEvent::Gone(mac()), back], t0).await;
        assert_eq!(lab.host_routes(CLIENT), vec![(158, "br-client".into())]);
        // Parked, then back: the second request for the address waits for
        // the first (two runs), so the kernel sees them in order.
        assert_eq!(lab.kernel().batches, vec![2, 1]);
        let requests = lab.requests();
        assert!(
            requests[0].starts_with("replace fddd:1::100/128 proto 159"),
            "{requests:?}"
        );
        assert!(
            requests[1].starts_with("replace fddd:1::100/128 proto 158"),
            "{requests:?}"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn adopting_many_clients_takes_a_few_batches() {
        let lab = started(|k| {
            for i in 0..1000u16 {
                let m = MacAddr([2, 0xc2, 0, 0, (i >> 8) as u8, i as u8]);
                for k3 in 1..=3 {
                    let addr = Ipv6Addr::new(0xfddd, 1, 0, 0, 0, k3, 0, i);
                    earlier_run(k, &addr.to_string(), Some(m));
                }
            }
            // Half of them held their node-client address (and its route)
            // already, one of those with an older run's flags.
            for i in 0..500u16 {
                let m = MacAddr([2, 0xc2, 0, 0, (i >> 8) as u8, i as u8]);
                let addr = earlier_node_client_addr(k, m);
                if i == 7 {
                    k.state.borrow_mut().other_flags.insert(addr);
                }
            }
            // One route not as core installs it (through a router).
            k.state.borrow_mut().routes[0].gateway = Some(a("fe80::1"));
        })
        .await;
        assert_eq!(lab.engine.roaming.clients().len(), 1000);
        assert_eq!(lab.engine.counters.get(C::Adopted), 3000);
        let kernel = lab.kernel();
        assert_eq!(kernel.addresses.len(), 1000, "node-client addresses held");
        assert!(kernel.other_flags.is_empty(), "the older one added again");
        // Stale and seek routes (none here), then in one batch what is
        // not there as core makes it: 501 node-client addresses, 500 of
        // their routes, and the one host route through a router.
        assert_eq!(lab.engine.counters.get(C::RoutesInPlace), 2999 + 500);
        assert_eq!(lab.engine.counters.get(C::AddressesInPlace), 499);
        assert_eq!(kernel.address_adds, 501);
        assert!(kernel.batches.contains(&1002), "{:?}", kernel.batches);
        assert!(kernel.batches.len() <= 4, "{:?}", kernel.batches);
        let first = Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 1, 0, 0);
        assert_eq!(kernel.host_routes(first).len(), 1);
        assert_eq!(kernel.host_routes(first)[0].gateway, None, "replaced");
    }
}
