//! The engine: one task that owns the TUN device, the held-packet queue,
//! the data-path socket and core's host routes, and turns events into
//! actions.
//!
//! Events: a packet from the TUN catch-all, a route change from the kernel,
//! a neighbour ndproxy found, a FOUND or DATA from another core, a timer
//! tick. The decisions about held packets live in [`crate::held`]; this
//! module does the I/O they ask for.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use l3roamd_daemon::{DaemonError, MeshConfig, Shutdown};
use l3roamd_intercom::{Body, Packet};
use l3roamd_types::{node_client_addr, MacAddr};
use tokio::sync::mpsc;

use crate::clientdb::{DbCommand, DbEvent};
use crate::clientmon::PresenceEvent;
use crate::datapath::{interface_index, DataPath, Received};
use crate::held::{addresses, Action, HeldPackets};
use crate::icmp::{unreachable_message, IcmpSender};
use crate::ndproxy::{FoundNeighbour, NeighbourEvent};
use crate::netlink::{Kernel, Route, RouteChange, RouteWatch};
use crate::roaming::{self, Roaming};
use crate::tun::Tun;
use crate::CoreConfig;

/// How often the held-packet timers run.
const TICK: Duration = Duration::from_millis(100);

/// A client this node serves: found here, with a host route installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalClient {
    /// Its MAC.
    pub mac: Option<MacAddr>,
    /// The client interface its host route points to.
    pub interface: String,
}

/// Data-path and route counters (the queue counts its own).
#[derive(Debug, Clone, Default)]
pub struct PathCounters {
    /// FOUND notices sent to seeking nodes.
    pub found_sent: u64,
    /// FOUND notices received from finders.
    pub found_received: u64,
    /// Encapsulated packets received and put on a client link.
    pub data_delivered: u64,
    /// Encapsulated packets refused: not for a client of this node.
    pub data_refused: u64,
    /// Data-path datagrams from an interface that is not a mesh interface.
    pub datapath_foreign: u64,
    /// Data-path datagrams that did not decode.
    pub datapath_malformed: u64,
    /// Host routes installed.
    pub host_routes_installed: u64,
    /// Kernel or socket operations that failed.
    pub errors: u64,
    /// Seek requests dropped because ndproxy's queue was full.
    pub seeks_dropped: u64,
    /// Requests to client-db dropped because its queue was full.
    pub db_commands_dropped: u64,
    /// Host routes removed (client left or claimed elsewhere).
    pub host_routes_removed: u64,
    /// Clients released to another node that claimed them.
    pub releases: u64,
    /// Host routes also announced by another node while the client is here.
    pub duplicate_routes: u64,
    /// Host routes parked in the TUN device while their client is away.
    pub parked: u64,
    /// Host routes handed over to another node (routed into the TUN device
    /// and announced from here for core.handover_ms).
    pub handovers: u64,
}

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
}

/// What the RPC service reads of the engine.
#[derive(Debug, Default)]
pub struct Status {
    /// The TUN device's name, once it exists.
    pub tun_device: String,
    /// Counters of the held-packet queue and the data path, by name.
    pub counters: Vec<(&'static str, u64)>,
    /// The clients this node serves, by address.
    pub local_clients: HashMap<Ipv6Addr, LocalClient>,
}

/// Shared view of the engine's state.
pub type SharedStatus = Arc<Mutex<Status>>;

/// The engine and everything it owns.
pub struct Engine {
    mesh: MeshConfig,
    config: CoreConfig,
    kernel: Kernel,
    routes: RouteWatch,
    tun: Tun,
    tun_index: u32,
    data: DataPath,
    icmp: IcmpSender,
    held: HeldPackets,
    roaming: Roaming,
    channels: Channels,
    lo_index: u32,
    local: HashMap<Ipv6Addr, LocalClient>,
    counters: PathCounters,
    status: SharedStatus,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("tun", &self.tun).finish()
    }
}

fn fatal(context: &str) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |e| DaemonError::fatal(context, e)
}

impl Engine {
    /// Sets up the kernel state: adopts or removes routes left by an earlier
    /// run, creates the TUN device and routes every client prefix into it.
    pub async fn start(
        mesh: MeshConfig,
        config: CoreConfig,
        kernel: Kernel,
        channels: Channels,
        status: SharedStatus,
    ) -> Result<Engine, DaemonError> {
        // Subscribe before reading the tables, so no change is missed.
        let routes = crate::netlink::watch_routes().map_err(fatal("route watch"))?;
        let local = reconcile(&kernel, &mesh, &config).await?;
        let tun = Tun::create(&config.tun_device)
            .map_err(|e| DaemonError::fatal(format!("TUN device {}", config.tun_device), e))?;
        let tun_index = interface_index(tun.name())
            .ok_or_else(|| DaemonError::Fatal(format!("TUN device {} has no index", tun.name())))?;
        for prefix in &mesh.client_prefixes {
            kernel
                .add_route(
                    prefix.addr(),
                    prefix.prefix_len(),
                    tun_index,
                    config.export_table,
                    config.route_protocol,
                    None,
                )
                .await
                .map_err(|e| DaemonError::fatal(format!("catch-all route {prefix}"), e))?;
            tracing::info!(%prefix, tun = tun.name(), "catch-all route installed");
        }
        let data = DataPath::bind(mesh.data_port, mesh.mesh_interfaces.clone())
            .map_err(fatal("data path socket"))?;
        let icmp = IcmpSender::open().map_err(fatal("ICMPv6 socket"))?;
        let held = HeldPackets::new(config.limits(), mesh.client_prefixes.clone());
        let roaming = Roaming::new(
            mesh.node_address,
            mesh.client_prefixes.clone(),
            Duration::from_millis(config.gone_grace_ms),
            config.max_clients,
            Duration::from_millis(config.handover_ms),
        );
        let lo_index = interface_index("lo")
            .ok_or_else(|| DaemonError::Fatal("no loopback interface".to_string()))?;
        if let Ok(mut s) = status.lock() {
            s.tun_device = tun.name().to_string();
        }
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
            lo_index,
            local,
            counters: PathCounters::default(),
            status,
        })
    }

    /// Runs until shutdown, then removes what it installed.
    pub async fn run(mut self, shutdown: Shutdown) -> Result<(), DaemonError> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                packet = self.tun.recv() => {
                    let packet = packet.map_err(fatal("TUN read"))?;
                    let actions = self.held.packet(packet, Instant::now());
                    self.execute(actions).await;
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
                        self.presence(event).await;
                    }
                }
                db = self.channels.db_events.recv() => {
                    if let Some(event) = db {
                        self.db_event(event).await;
                    }
                }
                received = self.data.recv() => {
                    match received {
                        Ok(received) => self.data_received(received).await,
                        Err(e) => {
                            self.counters.errors += 1;
                            tracing::warn!(error = %e, "data path receive");
                        }
                    }
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    let actions = self.held.tick(now);
                    self.execute(actions).await;
                    let actions = self.roaming.tick(now);
                    self.execute_roaming(actions).await;
                    self.publish();
                }
                () = shutdown.requested() => break,
            }
        }
        self.clean_up().await;
        Ok(())
    }

    // ===== events =====

    async fn route_change(&mut self, change: RouteChange) {
        let RouteChange::Added(route) = change else {
            return;
        };
        if route.prefix_len != 128
            || route.oif == Some(self.tun_index)
            || !self.is_client(&route.destination)
        {
            return;
        }
        if route.protocol != self.config.route_protocol {
            let (actions, duplicate) = self.roaming.foreign_route(route.destination);
            if let Some(mac) = duplicate {
                self.counters.duplicate_routes += 1;
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
        let actions =
            self.roaming
                .neighbour_found(found.mac, found.address, found.interface.clone());
        self.execute_roaming(actions).await;
        if !self.local.contains_key(&found.address) {
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
                Ok(()) => self.counters.found_sent += 1,
                Err(e) => {
                    self.counters.errors += 1;
                    tracing::debug!(%node, error = %e, "cannot send FOUND");
                }
            }
        }
    }

    async fn presence(&mut self, event: PresenceEvent) {
        let actions = match event {
            PresenceEvent::Appeared {
                mac,
                interface,
                addresses,
            } => {
                tracing::info!(%mac, interface, "client appeared");
                let interface = self.client_link(&interface);
                self.roaming.appeared(mac, interface, &addresses)
            }
            PresenceEvent::AddressLearned(mac, addr) => self.roaming.address_learned(mac, addr),
            PresenceEvent::Gone(mac) => {
                tracing::info!(%mac, "client gone");
                self.roaming.gone(mac, Instant::now())
            }
            PresenceEvent::SnapshotStart | PresenceEvent::SnapshotDone => Vec::new(),
        };
        self.execute_roaming(actions).await;
    }

    async fn db_event(&mut self, event: DbEvent) {
        let actions = match event {
            DbEvent::Updated(mac, addresses) => self.roaming.record_updated(mac, &addresses),
            DbEvent::ClaimDone(mac) => self.roaming.claim_done(mac),
            DbEvent::Release { mac, claimed_by } => {
                let actions = self.roaming.released(mac, claimed_by, Instant::now());
                if !actions.is_empty() {
                    self.counters.releases += 1;
                    tracing::info!(%mac, node = %claimed_by, "client claimed by another node: released");
                }
                actions
            }
            DbEvent::SnapshotStart | DbEvent::SnapshotDone => Vec::new(),
        };
        self.execute_roaming(actions).await;
    }

    async fn data_received(&mut self, received: Received) {
        let (from, packet) = match received {
            Received::Packet { from, packet } => (from, packet),
            Received::Foreign => {
                self.counters.datapath_foreign += 1;
                return;
            }
            Received::Malformed(e) => {
                self.counters.datapath_malformed += 1;
                tracing::debug!(error = %e, "malformed data-path packet");
                return;
            }
            Received::Truncated => {
                self.counters.datapath_malformed += 1;
                return;
            }
        };
        match packet.body {
            Body::Found { addr, .. } => {
                self.counters.found_received += 1;
                tracing::debug!(client = %addr, finder = %packet.sender, %from, "FOUND");
                let actions = self.held.found(addr, packet.sender, Instant::now());
                self.execute(actions).await;
            }
            Body::Data { payload } => {
                // Anything for a client prefix goes into the TUN device: the
                // kernel routes it to the client, or, if its host route is not
                // installed yet (the client has just arrived and its INFO is
                // on its way, or never comes), back into the catch-all, where
                // it is held and sought on our own links like any packet.
                let dst = addresses(&payload).map(|(_, dst)| dst);
                let Some(dst) = dst.filter(|d| self.is_client(d)) else {
                    self.counters.data_refused += 1;
                    return;
                };
                self.held.data_from(dst, packet.sender);
                match self.tun.send(&payload).await {
                    Ok(()) => self.counters.data_delivered += 1,
                    Err(e) => {
                        self.counters.errors += 1;
                        tracing::debug!(error = %e, "cannot deliver encapsulated packet");
                    }
                }
            }
            _ => self.counters.datapath_malformed += 1,
        }
    }

    // ===== actions =====

    async fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Seek(dst) => {
                    if self.channels.seeks.try_send(dst).is_err() {
                        self.counters.seeks_dropped += 1;
                    }
                }
                Action::Reinject(packet) => {
                    if let Err(e) = self.tun.send(&packet).await {
                        self.counters.errors += 1;
                        tracing::debug!(error = %e, "cannot re-send held packet");
                    }
                }
                Action::Forward { node, packet } => {
                    let data = Packet::data(self.mesh.node_address, rand::random(), packet);
                    if let Err(e) = self.data.send(node, &data).await {
                        self.counters.errors += 1;
                        tracing::debug!(%node, error = %e, "cannot forward to finder");
                    }
                }
                Action::Unreachable(packet) => {
                    if let Some((to, message)) = unreachable_message(&packet) {
                        if let Err(e) = self.icmp.send(to, &message) {
                            self.counters.errors += 1;
                            tracing::debug!(%to, error = %e, "cannot send ICMPv6 unreachable");
                        }
                    }
                }
            }
        }
    }

    async fn execute_roaming(&mut self, actions: Vec<roaming::Action>) {
        use roaming::Action as R;
        for action in actions {
            match action {
                R::Claim(mac) => self.db(DbCommand::Claim(mac)),
                R::Update(mac, addresses) => self.db(DbCommand::Update(mac, addresses)),
                R::Forget(mac) => self.db(DbCommand::Forget(mac)),
                R::InstallRoute {
                    addr,
                    interface,
                    mac,
                } => self.install_route(addr, interface, mac).await,
                R::RemoveRoute(addr) => self.remove_route(addr).await,
                R::HandOver(addr) => self.hand_over(addr).await,
                R::Park(addr) => self.park(addr).await,
                R::EndHandOver(addr) => {
                    let route =
                        self.host_route(addr, self.config.handover_protocol, Some(self.tun_index));
                    match self.kernel.del_route(&route).await {
                        Ok(()) => tracing::info!(client = %addr, "handover ended"),
                        Err(e) => {
                            tracing::debug!(client = %addr, error = %e, "handover route already gone")
                        }
                    }
                }
                R::HoldNodeClientAddr(mac) => {
                    let addr = node_client_addr(&self.mesh.node_client_prefix, &mac);
                    let result = match self.kernel.add_address(addr, self.lo_index).await {
                        Ok(()) => {
                            self.kernel
                                .add_host_route(
                                    addr,
                                    self.lo_index,
                                    self.config.export_table,
                                    self.config.route_protocol,
                                    self.config.host_route_metric,
                                )
                                .await
                        }
                        Err(e) => Err(e),
                    };
                    match result {
                        Ok(()) => tracing::debug!(%mac, %addr, "holding node-client address"),
                        Err(e) => {
                            self.counters.errors += 1;
                            tracing::warn!(%mac, %addr, error = %e, "cannot hold node-client address");
                        }
                    }
                }
                R::ReleaseNodeClientAddr(mac) => {
                    let addr = node_client_addr(&self.mesh.node_client_prefix, &mac);
                    let route =
                        self.host_route(addr, self.config.route_protocol, Some(self.lo_index));
                    if let Err(e) = self.kernel.del_route(&route).await {
                        tracing::debug!(%addr, error = %e, "node-client route already gone");
                    }
                    if let Err(e) = self.kernel.del_address(addr, self.lo_index).await {
                        tracing::debug!(%addr, error = %e, "node-client address already gone");
                    }
                }
                R::ForwardTo { addr, node } => {
                    let actions = self.held.found(addr, node, Instant::now());
                    self.execute(actions).await;
                }
            }
        }
    }

    fn db(&mut self, command: DbCommand) {
        if self.channels.db_commands.try_send(command).is_err() {
            self.counters.db_commands_dropped += 1;
        }
    }

    async fn install_route(&mut self, addr: Ipv6Addr, interface: String, mac: MacAddr) {
        let Some(ifindex) = interface_index(&interface) else {
            tracing::warn!(interface, %addr, "no such client interface");
            return;
        };
        let fresh = !self.local.contains_key(&addr);
        match self
            .kernel
            .add_host_route(
                addr,
                ifindex,
                self.config.export_table,
                self.config.route_protocol,
                self.config.host_route_metric,
            )
            .await
        {
            Ok(()) => {
                if fresh {
                    self.counters.host_routes_installed += 1;
                    tracing::info!(client = %addr, %mac, interface, "host route installed");
                }
                self.local.insert(
                    addr,
                    LocalClient {
                        mac: Some(mac),
                        interface,
                    },
                );
            }
            Err(e) => {
                self.counters.errors += 1;
                tracing::warn!(client = %addr, error = %e, "cannot install host route");
            }
        }
    }

    /// Replaces the host route of `addr` via the client interface with one
    /// into the TUN device (same protocol and metric: babel sees no change),
    /// so that its packets are held while the client is away.
    async fn park(&mut self, addr: Ipv6Addr) {
        if !self.local.contains_key(&addr) {
            return;
        }
        let result = self
            .kernel
            .add_host_route(
                addr,
                self.tun_index,
                self.config.export_table,
                self.config.route_protocol,
                self.config.host_route_metric,
            )
            .await;
        match result {
            Ok(()) => {
                if let Some(client) = self.local.get_mut(&addr) {
                    client.interface = self.tun.name().to_string();
                }
                self.counters.parked += 1;
                tracing::debug!(client = %addr, "host route parked in the TUN device");
            }
            Err(e) => {
                self.counters.errors += 1;
                tracing::warn!(client = %addr, error = %e, "cannot park the host route");
            }
        }
    }

    /// Replaces the host route of `addr` via the client interface with one
    /// into the TUN device, of the handover protocol, in one step: babeld
    /// goes on announcing the address (with the handover metric) and never
    /// retracts it in between. (Two kernel routes for one prefix, even for
    /// a moment, confuse babeld: 1.13.1 drops its announcement when the
    /// first of the two is removed. And babeld's `if` selector cannot tell
    /// the TUN device: it is resolved when babeld starts, before core has
    /// created the device; hence a protocol of its own.)
    async fn hand_over(&mut self, addr: Ipv6Addr) {
        if !self.local.contains_key(&addr) {
            return;
        }
        match self
            .kernel
            .add_host_route(
                addr,
                self.tun_index,
                self.config.export_table,
                self.config.handover_protocol,
                self.config.host_route_metric,
            )
            .await
        {
            Ok(()) => {
                self.local.remove(&addr);
                self.counters.handovers += 1;
                tracing::info!(client = %addr, "host route handed over");
            }
            Err(e) => {
                self.counters.errors += 1;
                tracing::warn!(client = %addr, error = %e, "cannot hand the host route over; removing it");
                self.remove_route(addr).await;
            }
        }
    }

    async fn remove_route(&mut self, addr: Ipv6Addr) {
        let Some(client) = self.local.remove(&addr) else {
            return;
        };
        let route = self.host_route(
            addr,
            self.config.route_protocol,
            interface_index(&client.interface),
        );
        match self.kernel.del_route(&route).await {
            Ok(()) => {
                self.counters.host_routes_removed += 1;
                tracing::info!(client = %addr, "host route removed");
            }
            Err(e) => tracing::debug!(client = %addr, error = %e, "host route already gone"),
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
        let master = std::fs::read_link(format!("/sys/class/net/{interface}/master"))
            .ok()
            .and_then(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string));
        match master {
            Some(m) if configured.contains(&m) => m,
            _ => configured
                .first()
                .cloned()
                .unwrap_or_else(|| interface.to_string()),
        }
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
            kind: netlink_packet_route::route::RouteType::Unicast,
        }
    }

    fn is_client(&self, addr: &Ipv6Addr) -> bool {
        self.mesh.client_prefixes.iter().any(|p| p.contains(addr))
    }

    fn publish(&self) {
        let mut counters = self.held.counters().list();
        let c = &self.counters;
        counters.extend([
            ("held_now", self.held.len() as u64),
            ("destinations_sought_now", self.held.destinations() as u64),
            (
                "destinations_found_elsewhere_now",
                self.held.found_destinations() as u64,
            ),
            ("found_sent", c.found_sent),
            ("found_received", c.found_received),
            ("data_delivered", c.data_delivered),
            ("data_refused", c.data_refused),
            ("datapath_foreign", c.datapath_foreign),
            ("datapath_malformed", c.datapath_malformed),
            ("host_routes_installed", c.host_routes_installed),
            ("seeks_dropped", c.seeks_dropped),
            ("db_commands_dropped", c.db_commands_dropped),
            ("host_routes_removed", c.host_routes_removed),
            ("releases", c.releases),
            ("duplicate_routes", c.duplicate_routes),
            ("handovers", c.handovers),
            ("parked", c.parked),
            ("handovers_now", self.roaming.handovers() as u64),
            ("clients_served", self.roaming.clients().len() as u64),
            ("errors", c.errors),
        ]);
        if let Ok(mut s) = self.status.lock() {
            s.counters = counters;
            s.local_clients = self.local.clone();
        }
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
            if let Err(e) = self.kernel.del_address(addr, self.lo_index).await {
                tracing::debug!(%addr, error = %e, "node-client address already gone");
            }
        }
        for protocol in [self.config.route_protocol, self.config.handover_protocol] {
            match self.kernel.routes(self.config.export_table, protocol).await {
                Ok(routes) => {
                    for route in routes {
                        if let Err(e) = self.kernel.del_route(&route).await {
                            tracing::warn!(dst = %route.destination, error = %e, "cannot remove route");
                        }
                    }
                }
                Err(e) => tracing::warn!(protocol, error = %e, "cannot list routes to remove"),
            }
        }
        tracing::info!("routes removed");
        if let Ok(mut s) = self.status.lock() {
            s.tun_device.clear();
        }
    }
}

/// At start: keeps host routes of an earlier run whose client the kernel
/// still sees as a neighbour on the route's interface, removes the rest.
async fn reconcile(
    kernel: &Kernel,
    mesh: &MeshConfig,
    config: &CoreConfig,
) -> Result<HashMap<Ipv6Addr, LocalClient>, DaemonError> {
    let routes = kernel
        .routes(config.export_table, config.route_protocol)
        .await
        .map_err(|e| DaemonError::fatal("route dump", e))?;
    let neighbours = kernel
        .neighbours()
        .await
        .map_err(|e| DaemonError::fatal("neighbour dump", e))?;
    // Handovers of an earlier run are over: nothing forwards for them now.
    let handovers = kernel
        .routes(config.export_table, config.handover_protocol)
        .await
        .map_err(|e| DaemonError::fatal("route dump", e))?;
    for route in handovers {
        tracing::info!(dst = %route.destination, "removing handover route left by an earlier run");
        if let Err(e) = kernel.del_route(&route).await {
            tracing::warn!(dst = %route.destination, error = %e, "cannot remove stale route");
        }
    }
    let mut local = HashMap::new();
    for route in routes {
        let keep = adoptable(&route, mesh, &neighbours);
        match keep {
            Some(client) => {
                tracing::info!(client = %route.destination, interface = client.interface, "adopted host route of an earlier run");
                local.insert(route.destination, client);
            }
            None => {
                tracing::info!(dst = %route.destination, len = route.prefix_len, "removing route left by an earlier run");
                if let Err(e) = kernel.del_route(&route).await {
                    tracing::warn!(dst = %route.destination, error = %e, "cannot remove stale route");
                }
            }
        }
    }
    Ok(local)
}

fn adoptable(
    route: &Route,
    mesh: &MeshConfig,
    neighbours: &[crate::netlink::Neighbour],
) -> Option<LocalClient> {
    if route.prefix_len != 128
        || !mesh
            .client_prefixes
            .iter()
            .any(|p| p.contains(&route.destination))
    {
        return None;
    }
    let oif = route.oif?;
    let interface = crate::datapath::interface_name(oif)?;
    if !mesh.client_interfaces.contains(&interface) {
        return None;
    }
    let neighbour = neighbours
        .iter()
        .find(|n| n.address == route.destination && n.ifindex == oif && n.usable)?;
    Some(LocalClient {
        mac: neighbour.mac,
        interface,
    })
}
