//! prefixd's loop: what babel, the kernel and the RPCs say goes into the
//! prefix selection; what it selects goes out in router advertisements on
//! every client link and to core through WatchPrefixes.
//!
//! ```text
//!  babeld local interface ─┐                        ┌─> RAs (each client link)
//!  kernel routes, links ───┼─> observations ─> PrefixSet ─┤
//!  Announce / Withdraw ────┘     (gateways,         └─> WatchPrefixes (core)
//!                                 metrics, routes)
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use l3roamd_daemon::{Backoff, MeshConfig, Shutdown};
use l3roamd_rpc::pb;
use l3roamd_types::{Ipv6Prefix, MacAddr};
use tokio::sync::{mpsc, oneshot, watch};

use crate::announce::{Action as KernelAction, AnnounceError, Announcements, NotAnnounced};
use crate::babel::{BabelClient, BabelStatus};
use crate::kernel::{GatewayRoute, Kernel, KernelEvent, KernelEvents};
use crate::learned::LearnedRoutes;
use crate::ra::{self, ClientLink, Destination, PrefixInfo, Rdnss, RouterAdvert, Schedule};
use crate::selection::{Observation, Origin, PrefixSet, State};
use crate::uplink::Uplinks;
use crate::PrefixdConfig;

l3roamd_daemon::counters! {
    "One of prefixd's counters.";
    AdvertsSent => "adverts_sent": "Router advertisements sent (multicast and unicast).",
    UnicastAdverts => "unicast_adverts": "Router advertisements sent to one client.",
    Solicitations => "solicitations": "Router solicitations received.",
    SolicitationsMalformed => "solicitations_malformed": "Frames on a client link that were not valid router solicitations.",
    SendErrors => "send_errors": "Router advertisements the link refused.",
    KernelErrors => "kernel_errors": "Gateway route requests the kernel refused.",
    Retractions => "retractions": "Gateway routes announced with the retraction metric before they went.",
    Resyncs => "resyncs": "Dumps of the kernel's links and routes after a lost event or a failed request.",
    ClientsDeprecated => "clients_deprecated": "Clients sent a router advertisement deprecating prefixes they brought from elsewhere.",
    ArrivalsRefused => "arrivals_refused": "ClientArrived calls for unknown interfaces or without a valid MAC.",
}

/// A question or order for the loop, from the RPC service.
#[derive(Debug)]
pub enum Query {
    /// Announce a prefix (gateway).
    Announce {
        /// The prefix.
        prefix: Ipv6Prefix,
        /// Its metric.
        metric: u32,
        /// Its uplink, if not the default.
        uplink: Option<String>,
        /// The answer: the class metric and protocol.
        reply: oneshot::Sender<Result<(u16, u8), AnnounceError>>,
    },
    /// Withdraw a prefix.
    Withdraw {
        /// The prefix.
        prefix: Ipv6Prefix,
        /// The answer.
        reply: oneshot::Sender<Result<(), NotAnnounced>>,
    },
    /// A client arrived on `interface`.
    Arrived {
        /// The client.
        mac: MacAddr,
        /// Its client interface (a bridge port is fine: RAs go out on the
        /// RA interface it belongs to, or on all of them).
        interface: String,
        /// Its addresses.
        addresses: Vec<Ipv6Addr>,
        /// The prefixes deprecated for it.
        reply: oneshot::Sender<Vec<Ipv6Prefix>>,
    },
    /// The status.
    Status(oneshot::Sender<pb::PrefixdStatus>),
}

/// One client link we advertise on.
struct RaLink {
    link: Option<Arc<ClientLink>>,
    schedule: Schedule,
    sent: u64,
    solicitations: u64,
}

/// What the per-link reader tasks report.
enum LinkEvent {
    Opened(String, Arc<ClientLink>),
    Closed(String),
    Solicited(String, ra::Solicitation),
    Malformed,
}

/// A client's prefixes from elsewhere, deprecated for it until they run out.
struct ForeignPrefixes {
    prefixes: Vec<Ipv6Prefix>,
    until: Instant,
}

/// The daemon's state.
pub struct Node<K: Kernel> {
    config: PrefixdConfig,
    mesh: MeshConfig,
    kernel: K,
    set: PrefixSet,
    announcements: Announcements,
    uplinks: Uplinks,
    learned: LearnedRoutes,
    babel: watch::Receiver<BabelStatus>,
    babel_configured: bool,
    links: BTreeMap<String, RaLink>,
    clients: HashMap<MacAddr, ForeignPrefixes>,
    rdnss: Option<Rdnss>,
    published: watch::Sender<Vec<pb::ClientPrefixInfo>>,
    counters: Counters,
    /// Prefix options of the last advertisement, to notice changes.
    last_content: Option<(Vec<PrefixInfo>, u16)>,
    /// Gateway routes babeld is retracting, and when they go.
    retracting: Vec<(GatewayRoute, Instant)>,
}

/// How long a withdrawn prefix is announced with the retraction metric
/// before its route goes: babeld sends the change at once; this covers a
/// lost update until the next periodic one (every 16 s with babeld's
/// default hello interval of 4 s).
pub const RETRACT_HOLD: Duration = Duration::from_secs(16);

impl<K: Kernel> Node<K> {
    /// The state before anything was read.
    pub fn new(
        config: PrefixdConfig,
        mesh: MeshConfig,
        kernel: K,
        babel: watch::Receiver<BabelStatus>,
        published: watch::Sender<Vec<pb::ClientPrefixInfo>>,
        now: Instant,
    ) -> Node<K> {
        let gateway = config.gateway();
        let announcements = Announcements::new(&gateway);
        let uplinks = Uplinks::new(announcements.block());
        let names = config
            .ra_interfaces
            .clone()
            .unwrap_or_else(|| mesh.client_interfaces.clone());
        let settings = config.ra();
        let links = names
            .into_iter()
            .map(|name| {
                let schedule = Schedule::new(&settings, now, Box::new(rand::random::<u64>));
                (
                    name,
                    RaLink {
                        link: None,
                        schedule,
                        sent: 0,
                        solicitations: 0,
                    },
                )
            })
            .collect();
        let servers = config
            .dns_servers
            .clone()
            .unwrap_or_else(|| mesh.next_node_routable_address.into_iter().collect());
        let rdnss = (!servers.is_empty()).then(|| Rdnss {
            lifetime: config.dns_lifetime(),
            servers,
        });
        Node {
            set: PrefixSet::new(config.selection()),
            babel_configured: config.babel().source().is_some(),
            config,
            mesh,
            kernel,
            announcements,
            uplinks,
            learned: LearnedRoutes::new(),
            babel,
            links,
            clients: HashMap::new(),
            rdnss,
            published,
            counters: Counters::default(),
            last_content: None,
            retracting: Vec::new(),
        }
    }

    /// Reads the kernel's links and routes and publishes the first prefix
    /// set: done before the socket is served, so that the first watcher's
    /// snapshot is the node's state, not an empty set.
    pub async fn start(&mut self) {
        self.resync().await;
        self.reselect(Instant::now());
    }

    /// The RA link names.
    pub fn link_names(&self) -> Vec<String> {
        self.links.keys().cloned().collect()
    }

    // ===== kernel =====

    /// Reads links and routes and brings every state machine in line.
    async fn resync(&mut self) {
        self.counters.count(Counter::Resyncs);
        let links = match self.kernel.dump_links().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot dump links");
                return;
            }
        };
        let routes = match self.kernel.dump_routes().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot dump routes");
                return;
            }
        };
        let mut actions = Vec::new();
        for (name, egress) in self.uplinks.resync(&links, &routes) {
            actions.extend(self.announcements.uplink_changed(&name, egress));
        }
        actions.extend(self.announcements.resync(&routes));
        self.learned.resync(&routes);
        // Retraction routes of an earlier run (or lost track of): they
        // have had their time.
        let retract = self.announcements.block().retract();
        let pending: Vec<GatewayRoute> = self.retracting.iter().map(|(r, _)| *r).collect();
        for route in &routes {
            let leftover = route.protocol == retract
                && route.dst.is_default()
                && route.table == crate::kernel::MAIN_TABLE;
            if let (true, Some(source), Some(ifindex)) = (leftover, route.src, route.ifindex) {
                let g = GatewayRoute {
                    source,
                    via: route.via,
                    ifindex,
                    protocol: retract,
                };
                if !pending.contains(&g) {
                    if let Err(e) = self.kernel.delete_gateway_route(&g).await {
                        tracing::debug!(error = %e, "cannot remove a leftover retraction route");
                    }
                }
            }
        }
        self.apply(actions).await;
    }

    async fn kernel_event(&mut self, event: KernelEvent) {
        if event == KernelEvent::Overrun {
            self.resync().await;
            return;
        }
        let mut actions = Vec::new();
        for (name, egress) in self.uplinks.on_event(&event) {
            tracing::info!(uplink = name, usable = egress.is_some(), "uplink changed");
            actions.extend(self.announcements.uplink_changed(&name, egress));
        }
        actions.extend(self.announcements.on_event(&event));
        self.learned.on_event(&event);
        self.apply(actions).await;
    }

    async fn apply(&mut self, actions: Vec<KernelAction>) {
        let mut failed = false;
        for action in actions {
            let result = match &action {
                KernelAction::Replace(route) => {
                    tracing::info!(prefix = %route.source, protocol = route.protocol, "gateway route installed");
                    self.kernel.replace_gateway_route(route).await
                }
                KernelAction::Delete(route) => {
                    // Not removed at once: babeld would not retract it
                    // (RETRACT_METRIC). Announced as unreachable first,
                    // removed after RETRACT_HOLD, unless announced again
                    // meanwhile (that replaces the route in place).
                    let retracting = GatewayRoute {
                        protocol: self.announcements.block().retract(),
                        ..*route
                    };
                    tracing::info!(prefix = %route.source, "gateway route retracted");
                    self.counters.count(Counter::Retractions);
                    let until = Instant::now() + RETRACT_HOLD;
                    self.retracting.retain(|(r, _)| r.source != route.source);
                    match self.kernel.replace_gateway_route(&retracting).await {
                        Ok(()) => {
                            self.retracting.push((retracting, until));
                            Ok(())
                        }
                        // The uplink is gone altogether: the route goes
                        // now, babeld's retraction or not.
                        Err(e) => {
                            tracing::debug!(error = %e, "cannot retract, removing at once");
                            self.kernel.delete_gateway_route(route).await
                        }
                    }
                }
            };
            if let Err(e) = result {
                self.counters.count(Counter::KernelErrors);
                tracing::warn!(error = %e, "gateway route request failed");
                failed = true;
            }
        }
        if failed {
            // The state machine assumed success: read what the kernel has.
            Box::pin(self.resync()).await;
        }
    }

    // ===== the prefix set =====

    /// What is known now about each prefix, by priority of origin: our own
    /// announcements, then the configured site prefixes, then babel (or,
    /// without babel's local interface, the kernel's routes).
    fn observations(&self) -> Vec<Observation> {
        let mut out: Vec<Observation> = Vec::new();
        for a in self.announcements.announced() {
            out.push(Observation {
                prefix: a.announcement.prefix,
                origin: Origin::Announced,
                gateways: vec![("self".to_string(), u32::from(a.class_metric))],
                metric: Some(u32::from(a.class_metric)),
                // Without a route of its own (no uplink, or the uplink is
                // down), routable if another gateway announces the prefix:
                // babel installed a route for it.
                routable: a.route.is_some()
                    || self
                        .learned
                        .learned()
                        .iter()
                        .any(|(source, _, _)| *source == a.announcement.prefix),
            });
        }
        for p in &self.mesh.client_prefixes {
            out.push(Observation {
                prefix: *p,
                origin: Origin::Configured,
                gateways: Vec::new(),
                metric: None,
                routable: self.learned.has_default_for(p),
            });
        }
        let babel = self.babel.borrow();
        if babel.connected && babel.synced {
            for heard in &babel.prefixes {
                if heard.own {
                    continue;
                }
                out.push(Observation {
                    prefix: heard.source,
                    origin: Origin::Learned,
                    gateways: heard
                        .gateways
                        .iter()
                        .map(|g| (g.router_id.to_string(), u32::from(g.metric)))
                        .collect(),
                    metric: Some(u32::from(heard.best_metric)),
                    routable: heard.installed || self.learned.has_default_for(&heard.source),
                });
            }
        } else {
            for (prefix, _, _) in self.learned.learned() {
                out.push(Observation {
                    prefix,
                    origin: Origin::Learned,
                    gateways: Vec::new(),
                    metric: None,
                    routable: true,
                });
            }
        }
        out
    }

    /// Re-evaluates the selection with what is known now.
    fn reselect(&mut self, now: Instant) {
        let observed = self.observations();
        for change in self.set.update(observed, now) {
            log_change(&change);
        }
        self.after_change(now);
    }

    fn tick(&mut self, now: Instant) {
        for change in self.set.tick(now) {
            log_change(&change);
        }
        self.clients.retain(|_, c| c.until > now);
        self.after_change(now);
    }

    /// Removes the retraction routes whose time is up (a route announced
    /// again in between is no longer the retraction route: the kernel
    /// deletes only an exact match).
    async fn end_retractions(&mut self, now: Instant) {
        let due: Vec<GatewayRoute> = self
            .retracting
            .iter()
            .filter(|(_, until)| *until <= now)
            .map(|(r, _)| *r)
            .collect();
        self.retracting.retain(|(_, until)| *until > now);
        for route in due {
            tracing::info!(prefix = %route.source, "gateway route removed");
            if let Err(e) = self.kernel.delete_gateway_route(&route).await {
                self.counters.count(Counter::KernelErrors);
                tracing::warn!(error = %e, "cannot remove a retracted gateway route");
            }
        }
    }

    /// Publishes the set and, if the advertisement changed, sends it soon
    /// on every link.
    fn after_change(&mut self, now: Instant) {
        let infos = self.infos(now);
        self.published.send_if_modified(|current| {
            if *current == infos {
                false
            } else {
                *current = infos;
                true
            }
        });
        let content = (self.prefix_options(now, true), self.router_lifetime());
        if self.last_content.as_ref() != Some(&content) {
            self.last_content = Some(content);
            for link in self.links.values_mut() {
                link.schedule.content_changed(now);
            }
        }
    }

    /// Prefix options as advertised now. With `coarse`, lifetimes of
    /// deprecated prefixes are left out (they count down every second; a
    /// countdown is no reason to advertise again).
    fn prefix_options(&self, now: Instant, coarse: bool) -> Vec<PrefixInfo> {
        self.set
            .advertised(now)
            .into_iter()
            .map(|a| PrefixInfo {
                prefix: a.prefix,
                on_link: self.config.on_link,
                autonomous: true,
                valid_lifetime: if coarse && a.preferred_lifetime == 0 {
                    0
                } else {
                    a.valid_lifetime
                },
                preferred_lifetime: a.preferred_lifetime,
            })
            .collect()
    }

    fn router_lifetime(&self) -> u16 {
        if self.set.has_default_route() {
            self.config.ra().router_lifetime()
        } else {
            0
        }
    }

    /// The advertisement for everybody, or for one client (`mac`): then
    /// with its prefixes from elsewhere deprecated.
    fn advert(&self, mac: MacAddr, client: Option<&MacAddr>, now: Instant) -> RouterAdvert {
        let mut prefixes = self.prefix_options(now, false);
        if let Some(c) = client.and_then(|m| self.clients.get(m)) {
            for p in &c.prefixes {
                if !prefixes.iter().any(|o| o.prefix == *p) {
                    // Preferred 0 deprecates; valid 0 never extends what
                    // the client has (RFC 4862 §5.5.3 e keeps at least the
                    // remaining lifetime up to two hours).
                    prefixes.push(PrefixInfo {
                        prefix: *p,
                        on_link: false,
                        autonomous: true,
                        valid_lifetime: 0,
                        preferred_lifetime: 0,
                    });
                }
            }
        }
        let mut advert = ra::advert(&self.config.ra(), mac, prefixes, self.rdnss.clone());
        advert.router_lifetime = self.router_lifetime();
        advert
    }

    /// Prefixes deprecated for some client of this node: routed here as long
    /// as that lasts, whatever the selection says of them.
    fn client_prefixes(&self) -> Vec<Ipv6Prefix> {
        let mut out: Vec<Ipv6Prefix> = self
            .clients
            .values()
            .flat_map(|c| c.prefixes.iter().copied())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn infos(&self, now: Instant) -> Vec<pb::ClientPrefixInfo> {
        let advertised = self.set.advertised(now);
        let for_clients = self.client_prefixes();
        let wall = SystemTime::now();
        let mut infos: Vec<pb::ClientPrefixInfo> = self
            .set
            .entries()
            .map(|e| {
                let lifetimes = advertised.iter().find(|a| a.prefix == e.prefix);
                let origin = match e.origin() {
                    Some(Origin::Configured) => pb::PrefixOrigin::Configured,
                    Some(Origin::Announced) => pb::PrefixOrigin::Announced,
                    Some(Origin::Learned) => pb::PrefixOrigin::Learned,
                    None => pb::PrefixOrigin::Unspecified,
                };
                let state = match e.state {
                    State::Selected => pb::PrefixState::Selected,
                    State::Deprecated { .. } => pb::PrefixState::Deprecated,
                    State::Known if for_clients.contains(&e.prefix) => pb::PrefixState::Deprecated,
                    State::Known => pb::PrefixState::Known,
                };
                let since = wall
                    .checked_sub(now.saturating_duration_since(e.since))
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_millis() as u64);
                pb::ClientPrefixInfo {
                    prefix: Some(e.prefix.into()),
                    origin: origin.into(),
                    // Whole minutes, so the published set changes with
                    // the state, not every second of a countdown.
                    valid_lifetime: lifetimes.map_or(0, |l| l.valid_lifetime / 60 * 60),
                    preferred_lifetime: lifetimes.map_or(0, |l| l.preferred_lifetime),
                    state: state.into(),
                    gateways: e
                        .observed
                        .iter()
                        .flat_map(|o| o.gateways.iter())
                        .map(|(id, metric)| pb::PrefixGateway {
                            router_id: id.clone(),
                            metric: *metric,
                        })
                        .collect(),
                    metric: e.observed.as_ref().and_then(|o| o.metric),
                    routable: e.observed.as_ref().is_some_and(|o| o.routable),
                    since_unix_ms: since,
                }
            })
            .collect();
        // Brought by clients from elsewhere, unknown here: deprecated for
        // them, routed for them.
        for p in for_clients {
            if self.set.get(&p).is_none() {
                infos.push(pb::ClientPrefixInfo {
                    prefix: Some(p.into()),
                    state: pb::PrefixState::Deprecated.into(),
                    ..Default::default()
                });
            }
        }
        infos
    }

    // ===== router advertisements =====

    fn next_deadline(&self) -> Option<Instant> {
        let links = self
            .links
            .values()
            .filter(|l| l.link.is_some())
            .filter_map(|l| l.schedule.next_deadline());
        let clients = self.clients.values().map(|c| c.until);
        let retracting = self.retracting.iter().map(|(_, until)| *until);
        links
            .chain(self.set.next_deadline())
            .chain(clients)
            .chain(retracting)
            .min()
    }

    fn send_due(&mut self, now: Instant) {
        let names: Vec<String> = self.links.keys().cloned().collect();
        for name in names {
            let Some(l) = self.links.get_mut(&name) else {
                continue;
            };
            let Some(link) = l.link.clone() else {
                continue;
            };
            let due = l.schedule.due(now);
            if due.is_empty() {
                continue;
            }
            let router_mac = match ra::router_mac(self.mesh.next_node_mac, &link) {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(link = name, error = %e, "no MAC for router advertisements");
                    continue;
                }
            };
            for to in due {
                let client = match &to {
                    Destination::Unicast { mac, .. } => Some(*mac),
                    Destination::Multicast => None,
                };
                let icmp = ra::encode(&self.advert(router_mac, client.as_ref(), now));
                let frame = ra::advert_frame(&icmp, router_mac, self.mesh.next_node_address, to);
                match link.send_frame(&frame) {
                    Ok(()) => {
                        self.counters.count(Counter::AdvertsSent);
                        if client.is_some() {
                            self.counters.count(Counter::UnicastAdverts);
                        }
                        if let Some(l) = self.links.get_mut(&name) {
                            l.sent += 1;
                        }
                    }
                    Err(e) => {
                        self.counters.count(Counter::SendErrors);
                        tracing::debug!(link = name, error = %e, "cannot send router advertisement");
                    }
                }
            }
        }
    }

    fn link_event(&mut self, event: LinkEvent, now: Instant) {
        match event {
            LinkEvent::Opened(name, link) => {
                tracing::info!(link = name, "sending router advertisements");
                if let Some(l) = self.links.get_mut(&name) {
                    l.link = Some(link);
                    l.schedule.content_changed(now);
                }
            }
            LinkEvent::Closed(name) => {
                if let Some(l) = self.links.get_mut(&name) {
                    l.link = None;
                }
            }
            LinkEvent::Solicited(name, solicitation) => {
                self.counters.count(Counter::Solicitations);
                if let Some(l) = self.links.get_mut(&name) {
                    l.solicitations += 1;
                    l.schedule.solicited(now, &solicitation);
                }
            }
            LinkEvent::Malformed => self.counters.count(Counter::SolicitationsMalformed),
        }
    }

    /// A client arrived: if it brings addresses of prefixes this node does
    /// not advertise as preferred, tell it at once, by unicast.
    fn arrived(
        &mut self,
        mac: MacAddr,
        interface: &str,
        addresses: &[Ipv6Addr],
        now: Instant,
    ) -> Vec<Ipv6Prefix> {
        if mac.is_multicast() || mac == MacAddr::ZERO {
            self.counters.count(Counter::ArrivalsRefused);
            return Vec::new();
        }
        let foreign: Vec<Ipv6Prefix> = self
            .set
            .foreign_prefixes(addresses)
            .into_iter()
            .filter(|p| !p.contains(&self.mesh.node_client_prefix.addr()))
            .collect();
        if foreign.is_empty() {
            return foreign;
        }
        let entry = self.clients.entry(mac).or_insert(ForeignPrefixes {
            prefixes: Vec::new(),
            until: now,
        });
        let before = entry.prefixes.len();
        for p in &foreign {
            if !entry.prefixes.contains(p) {
                entry.prefixes.push(*p);
            }
        }
        entry.until = now + Duration::from_secs(u64::from(self.config.valid_lifetime));
        if entry.prefixes.len() == before {
            return foreign;
        }
        self.counters.count(Counter::ClientsDeprecated);
        tracing::info!(%mac, interface, prefixes = ?foreign, "deprecating a client's prefixes from elsewhere");
        // The interface core names may be a bridge port: send on the link
        // it belongs to, or, not knowing, on every link.
        let target: Vec<String> = if self.links.contains_key(interface) {
            vec![interface.to_string()]
        } else {
            self.links.keys().cloned().collect()
        };
        let ip = mac.link_local();
        for name in target {
            if let Some(l) = self.links.get_mut(&name) {
                l.schedule.unicast_now(now, ip, mac);
            }
        }
        foreign
    }

    fn status(&self) -> pb::PrefixdStatus {
        let babel = self.babel.borrow();
        let babel_ok = babel.connected && babel.synced;
        let mut counters: Vec<pb::Counter> = self
            .counters
            .list()
            .into_iter()
            .chain(babel.counters.list())
            .map(|(name, value)| pb::Counter {
                name: name.to_string(),
                value,
            })
            .collect();
        counters.push(pb::Counter {
            name: "clients_with_deprecations_now".into(),
            value: self.clients.len() as u64,
        });
        let uplink_usable = self
            .config
            .uplink
            .as_ref()
            .map(|u| self.uplinks.egress(u).is_some());
        pb::PrefixdStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            babel_connected: babel_ok,
            learned_from: if babel_ok { "babel" } else { "kernel" }.to_string(),
            links: self
                .links
                .iter()
                .map(|(name, l)| pb::RaLink {
                    interface: name.clone(),
                    open: l.link.is_some(),
                    adverts_sent: l.sent,
                    solicitations: l.solicitations,
                })
                .collect(),
            counters,
            uplink_usable,
        }
    }

    async fn query(&mut self, query: Query, now: Instant) {
        match query {
            Query::Announce {
                prefix,
                metric,
                uplink,
                reply,
            } => {
                let result = self.announcements.announce(prefix, metric, uplink);
                let answer = match result {
                    Ok(actions) => {
                        tracing::info!(%prefix, metric, "prefix announced");
                        self.apply(actions).await;
                        let class = crate::announce::metric_class(metric);
                        let (offset, class_metric) = class.unwrap_or((0, 0));
                        Ok((class_metric, self.announcements.block().base() + offset))
                    }
                    Err(e) => Err(e),
                };
                let _ = reply.send(answer);
                self.reselect(now);
            }
            Query::Withdraw { prefix, reply } => {
                let result = self.announcements.withdraw(prefix);
                let answer = match result {
                    Ok(actions) => {
                        tracing::info!(%prefix, "prefix withdrawn");
                        self.apply(actions).await;
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                let _ = reply.send(answer);
                self.reselect(now);
            }
            Query::Arrived {
                mac,
                interface,
                addresses,
                reply,
            } => {
                let deprecated = self.arrived(mac, &interface, &addresses, now);
                let _ = reply.send(deprecated);
                self.after_change(now);
            }
            Query::Status(reply) => {
                let _ = reply.send(self.status());
            }
        }
    }
}

/// Runs prefixd until shutdown (after [`Node::start`]).
pub async fn run<K: Kernel, E: KernelEvents>(
    mut node: Node<K>,
    mut events: E,
    babel: Option<(BabelClient, watch::Sender<BabelStatus>)>,
    mut queries: mpsc::Receiver<Query>,
    shutdown: Shutdown,
) {
    if let Some((client, status)) = babel {
        tokio::spawn(client.run(status, shutdown.clone()));
    } else if node.babel_configured {
        tracing::warn!("babel's local interface is not usable: prefixes from kernel routes only");
    }
    let (link_tx, mut link_rx) = mpsc::channel(64);
    for name in node.link_names() {
        tokio::spawn(follow_link(name, link_tx.clone(), shutdown.clone()));
    }
    let mut babel_rx = node.babel.clone();
    // Without babel's local interface (or once its task has ended) nobody
    // sends on the channel: its branch is off, or `changed` would return
    // at once, for ever.
    let mut babel_alive = babel_rx.has_changed().is_ok();
    loop {
        let deadline = node
            .next_deadline()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(60));
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else {
                    tracing::error!("kernel event stream ended");
                    return;
                };
                node.kernel_event(event).await;
                node.reselect(Instant::now());
            }
            changed = babel_rx.changed(), if babel_alive => {
                if changed.is_err() {
                    babel_alive = false;
                }
                node.reselect(Instant::now());
            }
            event = link_rx.recv() => {
                if let Some(event) = event {
                    node.link_event(event, Instant::now());
                }
            }
            query = queries.recv() => {
                let Some(query) = query else { return };
                node.query(query, Instant::now()).await;
            }
            () = tokio::time::sleep_until(deadline) => {}
            () = shutdown.requested() => return,
        }
        let now = Instant::now();
        node.end_retractions(now).await;
        node.tick(now);
        node.send_due(now);
    }
}

fn log_change(change: &crate::selection::Change) {
    let name = |s: Option<State>| s.map_or("none", |s| s.name());
    tracing::info!(prefix = %change.prefix, from = name(change.from), to = name(change.to), "prefix state");
}

/// Opens the client link `name`, reports its solicitations, and reopens it
/// (with backoff) when it goes away or does not exist yet.
async fn follow_link(name: String, events: mpsc::Sender<LinkEvent>, shutdown: Shutdown) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        match ClientLink::open(&name) {
            Ok(link) => {
                let link = Arc::new(link);
                if events
                    .send(LinkEvent::Opened(name.clone(), link.clone()))
                    .await
                    .is_err()
                {
                    return;
                }
                backoff.reset();
                loop {
                    tokio::select! {
                        received = link.recv_solicitation() => match received {
                            Ok(Ok(s)) => {
                                if events.send(LinkEvent::Solicited(name.clone(), s)).await.is_err() {
                                    return;
                                }
                            }
                            Ok(Err(_)) => {
                                let _ = events.try_send(LinkEvent::Malformed);
                            }
                            Err(e) => {
                                tracing::info!(link = name, error = %e, "client link lost");
                                break;
                            }
                        },
                        () = shutdown.requested() => return,
                    }
                }
                if events.send(LinkEvent::Closed(name.clone())).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::debug!(link = name, error = %e, "cannot open client link yet"),
        }
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::babel::{HeardGateway, HeardPrefix};
    use crate::kernel::memory::MemoryKernel;
    use crate::kernel::{KernelRoute, LinkState, MAIN_TABLE};

    const UPLINK: u32 = 5;

    fn p(s: &str) -> Ipv6Prefix {
        s.parse().unwrap()
    }

    fn mesh() -> MeshConfig {
        let text = "[mesh]\nnode_address = \"fdff::1\"\nclient_prefixes = [\"fddd:1::/64\"]\nnext_node_routable_address = \"2001:db8:ff::53\"\n";
        l3roamd_daemon::Config::from_toml(text).unwrap().mesh
    }

    fn uplink_default() -> KernelRoute {
        KernelRoute {
            dst: p("::/0"),
            src: None,
            via: Some("fe80::1".parse().unwrap()),
            ifindex: Some(UPLINK),
            protocol: 4,
            priority: 1024,
            table: MAIN_TABLE,
        }
    }

    struct Lab {
        node: Node<MemoryKernel>,
        babel: watch::Sender<BabelStatus>,
        published: watch::Receiver<Vec<pb::ClientPrefixInfo>>,
    }

    fn lab(config: PrefixdConfig) -> Lab {
        let kernel = MemoryKernel::default();
        kernel.links.borrow_mut().push(LinkState {
            ifindex: UPLINK,
            name: "up0".into(),
            up: true,
        });
        kernel.add(uplink_default());
        let (babel, babel_rx) = watch::channel(BabelStatus::default());
        let (published_tx, published) = watch::channel(Vec::new());
        let node = Node::new(
            config,
            mesh(),
            kernel,
            babel_rx,
            published_tx,
            Instant::now(),
        );
        Lab {
            node,
            babel,
            published,
        }
    }

    fn gateway_config() -> PrefixdConfig {
        let text = "[mesh]\nnode_address = \"fdff::1\"\n[prefixd]\nuplink = \"up0\"\nannounce = [{ prefix = \"2001:db8:a::/64\", metric = 100 }]\n";
        let c: PrefixdConfig = l3roamd_daemon::Config::from_toml(text)
            .unwrap()
            .section("prefixd")
            .unwrap();
        c.validate().unwrap();
        c
    }

    fn state(lab: &Lab, prefix: &str) -> Option<pb::PrefixState> {
        let key: pb::Prefix = p(prefix).into();
        lab.published
            .borrow()
            .iter()
            .find(|i| i.prefix.as_ref() == Some(&key))
            .and_then(|i| pb::PrefixState::try_from(i.state).ok())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_gateway_announces_through_its_uplink_and_deprecates_when_it_goes() {
        let mut lab = lab(gateway_config());
        lab.node.resync().await;
        let t0 = Instant::now();
        lab.node.reselect(t0);
        let routes = lab.node.kernel.from_source(p("2001:db8:a::/64"));
        assert_eq!(routes.len(), 1);
        // Metric 100: class 128, the third protocol of the block.
        assert_eq!(routes[0].protocol, 162);
        assert_eq!(routes[0].ifindex, Some(UPLINK));
        assert_eq!(
            state(&lab, "2001:db8:a::/64"),
            Some(pb::PrefixState::Selected)
        );
        assert_eq!(state(&lab, "fddd:1::/64"), Some(pb::PrefixState::Selected));
        let ra = lab.node.advert(MacAddr([2, 0, 0, 0, 0, 1]), None, t0);
        assert_eq!(ra.router_lifetime, 1800);
        assert_eq!(ra.prefixes.len(), 2);
        assert_eq!(
            ra.rdnss.map(|r| r.servers),
            Some(vec!["2001:db8:ff::53".parse::<Ipv6Addr>().unwrap()])
        );

        // Carrier lost on the uplink: the route goes, the prefix is
        // deprecated at once (its gateway is this node).
        lab.node
            .kernel_event(KernelEvent::Link(LinkState {
                ifindex: UPLINK,
                name: "up0".into(),
                up: false,
            }))
            .await;
        lab.node.reselect(t0 + Duration::from_secs(1));
        // babeld retracts it (the retraction metric) before it goes.
        let routes = lab.node.kernel.from_source(p("2001:db8:a::/64"));
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].protocol, 168);
        lab.node
            .end_retractions(Instant::now() + RETRACT_HOLD)
            .await;
        assert!(lab.node.kernel.from_source(p("2001:db8:a::/64")).is_empty());
        assert_eq!(
            state(&lab, "2001:db8:a::/64"),
            Some(pb::PrefixState::Deprecated)
        );
        let ra = lab.node.advert(
            MacAddr([2, 0, 0, 0, 0, 1]),
            None,
            t0 + Duration::from_secs(1),
        );
        let a = ra
            .prefixes
            .iter()
            .find(|i| i.prefix == p("2001:db8:a::/64"))
            .unwrap();
        assert_eq!(a.preferred_lifetime, 0);
        assert!(a.valid_lifetime > 5300);

        // Back: one route again, selected again.
        lab.node
            .kernel_event(KernelEvent::Link(LinkState {
                ifindex: UPLINK,
                name: "up0".into(),
                up: true,
            }))
            .await;
        lab.node.reselect(t0 + Duration::from_secs(2));
        assert_eq!(lab.node.kernel.from_source(p("2001:db8:a::/64")).len(), 1);
        assert_eq!(
            state(&lab, "2001:db8:a::/64"),
            Some(pb::PrefixState::Selected)
        );
    }

    fn heard(prefix: &str, gateways: &[(u8, u16)]) -> HeardPrefix {
        HeardPrefix {
            source: p(prefix),
            gateways: gateways
                .iter()
                .map(|(id, metric)| HeardGateway {
                    router_id: format!("02:00:00:00:00:00:00:{id:02x}").parse().unwrap(),
                    metric: *metric,
                    installed: true,
                    own: false,
                })
                .collect(),
            best_metric: gateways.iter().map(|g| g.1).min().unwrap_or(0),
            installed: true,
            own: false,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_node_selects_what_babel_hears_and_falls_back_to_the_kernel() {
        let config = PrefixdConfig {
            max_prefixes: 1,
            babel_socket: Some("/run/babeld.sock".into()),
            ..PrefixdConfig::default()
        };
        let mut lab = lab(config);
        lab.node.resync().await;
        let babel = BabelStatus {
            connected: true,
            synced: true,
            prefixes: vec![
                heard("2001:db8:a::/64", &[(1, 96)]),
                heard("2001:db8:b::/64", &[(2, 288), (3, 300)]),
            ],
            ..BabelStatus::default()
        };
        lab.babel.send(babel).unwrap();
        let t0 = Instant::now();
        lab.node.reselect(t0);
        assert_eq!(
            state(&lab, "2001:db8:a::/64"),
            Some(pb::PrefixState::Selected)
        );
        assert_eq!(state(&lab, "2001:db8:b::/64"), Some(pb::PrefixState::Known));
        {
            let published = lab.published.borrow();
            let b = published
                .iter()
                .find(|i| i.prefix == Some(p("2001:db8:b::/64").into()))
                .unwrap();
            assert_eq!(b.gateways.len(), 2);
            assert_eq!(b.metric, Some(288));
        }
        assert_eq!(lab.node.status().learned_from, "babel");

        // babeld gone: what the kernel shows (a babel route from b).
        lab.babel.send(BabelStatus::default()).unwrap();
        lab.node
            .kernel_event(KernelEvent::RouteAdded(KernelRoute {
                src: Some(p("2001:db8:b::/64")),
                protocol: crate::kernel::BABEL_PROTOCOL,
                ..uplink_default()
            }))
            .await;
        lab.node.reselect(t0 + Duration::from_secs(1));
        assert_eq!(
            state(&lab, "2001:db8:a::/64"),
            Some(pb::PrefixState::Deprecated)
        );
        assert_eq!(
            state(&lab, "2001:db8:b::/64"),
            Some(pb::PrefixState::Selected)
        );
        assert_eq!(lab.node.status().learned_from, "kernel");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_client_from_elsewhere_gets_its_prefixes_deprecated() {
        let mut lab = lab(PrefixdConfig::default());
        lab.node.resync().await;
        let t0 = Instant::now();
        lab.node.reselect(t0);
        let mac = MacAddr([2, 0xc1, 0, 0, 0, 1]);
        let addrs: Vec<Ipv6Addr> = ["fddd:1::5", "2001:db8:c::5"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let deprecated = lab.node.arrived(mac, "br-client", &addrs, t0);
        assert_eq!(deprecated, vec![p("2001:db8:c::/64")]);
        let ra = lab.node.advert(MacAddr([2, 0, 0, 0, 0, 1]), Some(&mac), t0);
        let c = ra
            .prefixes
            .iter()
            .find(|i| i.prefix == p("2001:db8:c::/64"))
            .unwrap();
        assert_eq!((c.preferred_lifetime, c.valid_lifetime), (0, 0));
        // Everybody else's advertisement does not carry it; but it is in
        // use (routed) for that client.
        let ra = lab.node.advert(MacAddr([2, 0, 0, 0, 0, 1]), None, t0);
        assert!(ra.prefixes.iter().all(|i| i.prefix != p("2001:db8:c::/64")));
        lab.node.after_change(t0);
        assert_eq!(
            state(&lab, "2001:db8:c::/64"),
            Some(pb::PrefixState::Deprecated)
        );
        // Nothing to deprecate: nothing sent.
        let other = MacAddr([2, 0xc1, 0, 0, 0, 2]);
        assert!(lab
            .node
            .arrived(other, "br-client", &addrs[..1], t0)
            .is_empty());
    }
}
