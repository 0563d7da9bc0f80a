//! The event loop: owns the seek state machine and the sockets, feeds it
//! events and carries out its actions.
//!
//! One task runs the loop; it alone touches the state machine, so there are
//! no locks. The RPC service talks to it through a [`Handle`] (a bounded
//! command channel with a reply per command). Each open socket has a
//! receive task that passes datagrams into the loop through another
//! bounded channel: when the loop falls behind, the receive tasks wait and
//! the kernel's socket buffers drop the excess, so nothing grows without
//! bound. Sends are non-blocking and never wait: a full socket buffer is a
//! counted send error. The loop reads the interfaces again whenever the
//! kernel reports a link change (and once a minute in case it missed one,
//! every few seconds without link events: `LinkWatch`) and opens, reopens
//! or closes sockets as they come and go; core may
//! replace the list of mesh interfaces at any time (SetMeshInterfaces).

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use l3roamd_daemon::{ConfigError, MeshConfig, Shutdown};
use l3roamd_intercom::{AuthError, AuthMode, Authenticator};
use l3roamd_types::MacAddr;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::dad::{self, Defence, Verdict};
use crate::icmp::{self, IcmpSocket};
use crate::links;
use crate::mesh::MeshSocket;
use crate::pktinfo::Received;
use crate::seek::{Action, ClientIf, Counter, Found, MeshIf, SeekOutcome, Seeks};
use crate::NdproxyConfig;
use l3roamd_net::link_events::LinkWatch;
use l3roamd_net::packet::PacketSocket;

/// How often expired state is forgotten, while there is any.
const TICK: Duration = Duration::from_secs(1);
/// Pause after a receive error, so a persistent one cannot spin the CPU.
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// Receive buffer: an intercom datagram or an ICMPv6 message fits in an MTU.
const RECEIVE_BUFFER: usize = 2048;
/// Datagrams waiting for the loop; beyond this the kernel buffers, then drops.
const INPUT_QUEUE: usize = 256;
/// Commands waiting for the loop.
const COMMAND_QUEUE: usize = 64;
/// Found neighbours a watcher may fall behind by before its stream ends.
const FOUND_QUEUE: usize = 256;

// ===== the handle used by the RPC service =====

/// A request to the loop.
#[derive(Debug)]
enum Command {
    Seek {
        addr: Ipv6Addr,
        reply: oneshot::Sender<SeekOutcome>,
    },
    Watch {
        reply: oneshot::Sender<(Vec<Found>, broadcast::Receiver<Found>)>,
    },
    Counters {
        reply: oneshot::Sender<Vec<(&'static str, u64)>>,
    },
    SetMeshInterfaces {
        names: Vec<String>,
        reply: oneshot::Sender<()>,
    },
    MeshInterfaces {
        reply: oneshot::Sender<Vec<String>>,
    },
    WatcherLagged,
}

/// The event loop has stopped (the daemon is shutting down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("ndproxy's event loop has stopped")]
pub struct Stopped;

/// How the RPC service reaches the event loop.
#[derive(Debug, Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
}

impl Handle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(make(reply)).await.map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }

    /// Seeks `addr` (already checked to be seekable).
    pub async fn seek(&self, addr: Ipv6Addr) -> Result<SeekOutcome, Stopped> {
        self.ask(|reply| Command::Seek { addr, reply }).await
    }

    /// The recently found neighbours and a subscription to those found from
    /// now on, taken together so that none is missed or seen twice.
    pub async fn watch(&self) -> Result<(Vec<Found>, broadcast::Receiver<Found>), Stopped> {
        self.ask(|reply| Command::Watch { reply }).await
    }

    /// The counters by name.
    pub async fn counters(&self) -> Result<Vec<(&'static str, u64)>, Stopped> {
        self.ask(|reply| Command::Counters { reply }).await
    }

    /// Uses `names` (checked, without duplicates) as the mesh interfaces
    /// from now on; returns once the sockets of those that exist are open.
    pub async fn set_mesh_interfaces(&self, names: Vec<String>) -> Result<(), Stopped> {
        self.ask(|reply| Command::SetMeshInterfaces { names, reply })
            .await
    }

    /// The mesh interfaces in use.
    pub async fn mesh_interfaces(&self) -> Result<Vec<String>, Stopped> {
        self.ask(|reply| Command::MeshInterfaces { reply }).await
    }

    /// Counts a watcher whose stream was ended because it fell behind.
    pub fn watcher_lagged(&self) {
        let _ = self.commands.try_send(Command::WatcherLagged);
    }
}

// ===== inputs from the receive tasks =====

/// What a receive task hands to the loop.
#[derive(Debug)]
enum Input {
    /// A datagram on the mesh socket number `generation` (the link's
    /// position may have changed since: core can replace the list).
    Mesh {
        generation: u64,
        received: Received,
        bytes: Vec<u8>,
    },
    /// An ICMPv6 message on the client links.
    Icmp { received: Received, bytes: Vec<u8> },
    /// A frame on a DAD socket of client link `link`.
    Probe { link: usize, frame: Vec<u8> },
    /// A receive error, counted.
    Error(Counter),
}

// ===== links =====

/// A mesh interface in use and its socket, if it exists.
#[derive(Debug)]
struct MeshLink {
    name: String,
    open: Option<OpenMesh>,
    mac: Option<MacAddr>,
    last_error: Option<String>,
}

impl MeshLink {
    fn named(name: String) -> MeshLink {
        MeshLink {
            name,
            open: None,
            mac: None,
            last_error: None,
        }
    }
}

/// An open mesh socket and its receive task.
#[derive(Debug)]
struct OpenMesh {
    socket: Arc<MeshSocket>,
    generation: u64,
    receiver: JoinHandle<()>,
}

impl Drop for OpenMesh {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

/// A configured client interface as the kernel has it now.
#[derive(Debug)]
struct ClientLink {
    name: String,
    ifindex: Option<u32>,
    mac: Option<MacAddr>,
    /// The link-local address solicitations are sent from.
    source: Option<Ipv6Addr>,
    /// The packet socket solicitations go out of as frames, on `ifindex`.
    frames: Option<(u32, PacketSocket)>,
    last_error: Option<String>,
}

/// Logs a send error when it differs from the last one on that link, and
/// the recovery when a send works again, so a broken link does not flood
/// the log.
fn note_send(last_error: &mut Option<String>, what: &str, link: &str, result: &Result<(), String>) {
    match result {
        Ok(()) => {
            if last_error.take().is_some() {
                tracing::info!(link, "{what} works again");
            }
        }
        Err(e) => {
            if last_error.as_deref() != Some(e.as_str()) {
                tracing::warn!(link, error = %e, "{what} failed");
                *last_error = Some(e.clone());
            } else {
                tracing::debug!(link, error = %e, "{what} failed");
            }
        }
    }
}

use l3roamd_daemon::Nonces;

// ===== the loop =====

/// The event loop and everything it owns.
#[derive(Debug)]
pub struct EventLoop {
    seeks: Seeks,
    node: Ipv6Addr,
    port: u16,
    next_node: Ipv6Addr,
    mesh_links: Vec<MeshLink>,
    client_links: Vec<ClientLink>,
    icmp: Option<Arc<IcmpSocket>>,
    icmp_receiver: Option<JoinHandle<()>>,
    /// The duplicate address defence, if configured.
    defence: Option<Defence>,
    /// One DAD socket per attachment point (bridge port, or the client
    /// interface itself), by interface index: the client link and the
    /// socket's receive task.
    probe_sockets: BTreeMap<u32, (usize, JoinHandle<()>)>,
    /// Ports whose DAD socket could not be opened, warned about once.
    probe_open_failed: std::collections::BTreeSet<u32>,
    nonces: Nonces,
    auth: Authenticator,
    generation: u64,
    found_tx: broadcast::Sender<Found>,
    commands: mpsc::Receiver<Command>,
    input_tx: mpsc::Sender<Input>,
    input_rx: mpsc::Receiver<Input>,
}

/// Why the loop cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The raw ICMPv6 socket could not be opened (`CAP_NET_RAW` missing?).
    #[error("raw ICMPv6 socket for neighbour solicitation (needs CAP_NET_RAW): {0}")]
    Icmp(std::io::Error),
    /// The mesh key cannot be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl EventLoop {
    /// Builds the loop for this node; opens the ICMPv6 socket when there
    /// are client interfaces. Must be called inside the tokio runtime.
    pub fn new(
        mesh: &MeshConfig,
        config: &NdproxyConfig,
    ) -> Result<(Handle, EventLoop), StartError> {
        let seeks = Seeks::new(
            mesh.node_address,
            mesh.mesh_interfaces.len(),
            mesh.client_interfaces.clone(),
            mesh.next_node_mac,
            config.limits(),
        );
        let icmp = if mesh.client_interfaces.is_empty() {
            None
        } else {
            Some(Arc::new(IcmpSocket::open().map_err(StartError::Icmp)?))
        };
        let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE);
        let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
        let (found_tx, _) = broadcast::channel(FOUND_QUEUE);
        let event_loop = EventLoop {
            seeks,
            node: mesh.node_address,
            port: mesh.intercom_port,
            next_node: mesh.next_node_address,
            mesh_links: mesh
                .mesh_interfaces
                .iter()
                .cloned()
                .map(MeshLink::named)
                .collect(),
            client_links: mesh
                .client_interfaces
                .iter()
                .map(|name| ClientLink {
                    name: name.clone(),
                    ifindex: None,
                    mac: None,
                    source: None,
                    frames: None,
                    last_error: None,
                })
                .collect(),
            icmp,
            icmp_receiver: None,
            defence: config
                .dad_defence
                .then(|| Defence::new(config.dad_settings(mesh))),
            probe_sockets: BTreeMap::new(),
            probe_open_failed: std::collections::BTreeSet::new(),
            nonces: Nonces::new(),
            auth: mesh.authenticator()?,
            generation: 0,
            found_tx,
            commands,
            input_tx,
            input_rx,
        };
        Ok((
            Handle {
                commands: commands_tx,
            },
            event_loop,
        ))
    }

    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: Shutdown) {
        if let Some(icmp) = &self.icmp {
            self.icmp_receiver = Some(spawn_icmp_receiver(icmp.clone(), self.input_tx.clone()));
        }
        let mut links = LinkWatch::spawn("mesh interfaces");
        self.refresh_links();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.requested() => break,
                Some(command) = self.commands.recv() => self.command(command),
                Some(input) = self.input_rx.recv() => self.input(input),
                // Only while there is state to expire: an idle node does
                // not wake (issue 13).
                _ = tick.tick(), if !self.seeks.is_idle() => self.seeks.tick(Instant::now()),
                () = links.changed() => self.refresh_links(),
            }
        }
        drop(links);
        if let Some(receiver) = self.icmp_receiver.take() {
            receiver.abort();
        }
        for (_, (_, receiver)) in std::mem::take(&mut self.probe_sockets) {
            receiver.abort();
        }
        for link in &mut self.mesh_links {
            link.open = None;
        }
    }

    // ===== commands =====

    fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Seek { addr, reply } => {
                let nonce = self.nonces.draw();
                let (outcome, actions) = self.seeks.seek_requested(addr, nonce, now);
                self.execute(actions);
                let _ = reply.send(outcome);
            }
            Command::Watch { reply } => {
                let snapshot = self.seeks.found_snapshot(now);
                let _ = reply.send((snapshot, self.found_tx.subscribe()));
            }
            Command::Counters { reply } => {
                let _ = reply.send(self.seeks.counters().list());
            }
            Command::SetMeshInterfaces { names, reply } => {
                self.set_mesh_interfaces(names);
                let _ = reply.send(());
            }
            Command::MeshInterfaces { reply } => {
                let _ = reply.send(self.mesh_links.iter().map(|l| l.name.clone()).collect());
            }
            Command::WatcherLagged => self.seeks.count(Counter::WatchersLagged),
        }
    }

    /// Replaces the mesh interfaces: links kept keep their sockets (a SEEK
    /// on its way is not lost), removed ones close theirs, new ones open
    /// theirs now if they exist, or when they appear.
    fn set_mesh_interfaces(&mut self, names: Vec<String>) {
        let mut old = std::mem::take(&mut self.mesh_links);
        for name in names {
            if self.mesh_links.iter().any(|l| l.name == name) {
                continue;
            }
            let link = match old.iter().position(|l| l.name == name) {
                Some(i) => old.swap_remove(i),
                None => {
                    tracing::info!(link = %name, "mesh interface added");
                    MeshLink::named(name)
                }
            };
            self.mesh_links.push(link);
        }
        for gone in old {
            tracing::info!(link = %gone.name, "mesh interface removed; its socket is closed");
        }
        self.seeks.set_mesh_interfaces(self.mesh_links.len());
        self.refresh_links();
    }

    // ===== received datagrams =====

    fn input(&mut self, input: Input) {
        let now = Instant::now();
        let actions = match input {
            Input::Mesh {
                generation,
                received,
                bytes,
            } => {
                let Some((link, open)) = self.mesh_links.iter().enumerate().find_map(|(i, l)| {
                    l.open
                        .as_ref()
                        .filter(|o| o.generation == generation)
                        .map(|o| (i, o))
                }) else {
                    return; // from a socket closed since
                };
                if received.truncated {
                    self.seeks.count(Counter::MeshMalformed);
                    return;
                }
                let arrival =
                    (received.ifindex == Some(open.socket.ifindex())).then_some(MeshIf(link));
                if arrival.is_none() {
                    // Counted as foreign by the state machine, before any key is tried.
                    self.seeks.mesh_received(arrival, &bytes, now)
                } else {
                    let source = received.source.map_or(Ipv6Addr::UNSPECIFIED, |s| *s.ip());
                    match self.auth.open(&bytes, source, now) {
                        Ok(opened) => {
                            if !opened.verified && self.auth.mode() == AuthMode::Sign {
                                self.seeks.count(Counter::AuthUnsigned);
                            }
                            self.seeks.mesh_received(arrival, opened.bytes, now)
                        }
                        Err(e) => {
                            tracing::debug!(%source, error = %e, "SEEK refused");
                            self.seeks.count(match e {
                                AuthError::Missing => Counter::AuthMissing,
                                AuthError::Bad => Counter::AuthBad,
                                AuthError::Replayed => Counter::AuthReplayed,
                            });
                            return;
                        }
                    }
                }
            }
            Input::Icmp { received, bytes } => {
                if received.truncated {
                    self.seeks.count(Counter::NaMalformed);
                    return;
                }
                let arrival = received.ifindex.and_then(|index| {
                    self.client_links
                        .iter()
                        .position(|l| l.ifindex == Some(index))
                        .map(ClientIf)
                });
                self.seeks
                    .advert_received(arrival, received.hop_limit, &bytes, now)
            }
            Input::Probe { link, frame } => {
                self.dad_probe(link, &frame, now);
                return;
            }
            Input::Error(counter) => {
                self.seeks.count(counter);
                return;
            }
        };
        self.execute(actions);
    }

    // ===== actions =====

    fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::SendSeek { iface, packet } => {
                    // Sealed per copy: every copy has its own counter.
                    let mut bytes = packet.encode();
                    self.auth.seal(&mut bytes, self.node);
                    self.send_seek(iface, &bytes);
                }
                Action::Solicit { iface, target } => self.solicit(iface, &target),
                Action::Found(found) => {
                    // No watcher is not an error: the snapshot has it.
                    let _ = self.found_tx.send(found);
                }
            }
        }
    }

    fn send_seek(&mut self, iface: MeshIf, bytes: &[u8]) {
        let node = self.node;
        let Some(link) = self.mesh_links.get_mut(iface.0) else {
            return;
        };
        let result = match &link.open {
            Some(open) => open.socket.send(bytes, node).map_err(|e| e.to_string()),
            None => Err("no such interface (or its socket could not be opened)".to_string()),
        };
        note_send(&mut link.last_error, "SEEK", &link.name, &result);
        self.seeks.count(match result {
            Ok(()) => Counter::MeshPacketsSent,
            Err(_) => Counter::MeshSendErrors,
        });
    }

    fn solicit(&mut self, iface: ClientIf, target: &Ipv6Addr) {
        let Some(link) = self.client_links.get_mut(iface.0) else {
            return;
        };
        let frames = link
            .frames
            .as_ref()
            .filter(|(index, _)| Some(*index) == link.ifindex);
        let result = match (frames, link.source, link.mac, &self.icmp, link.ifindex) {
            (Some((_, socket)), Some(source), Some(mac), _, _) => {
                icmp::solicit_frame(socket, target, &source, &mac).map_err(|e| e.to_string())
            }
            (_, _, _, Some(icmp), Some(ifindex)) => icmp
                .solicit(target, ifindex, link.source, link.mac.as_ref())
                .map_err(|e| e.to_string()),
            _ => Err("no such interface".to_string()),
        };
        note_send(
            &mut link.last_error,
            "neighbour solicitation",
            &link.name,
            &result,
        );
        self.seeks.count(match result {
            Ok(()) => Counter::NsSent,
            Err(_) => Counter::NsSendErrors,
        });
    }

    // ===== duplicate address defence =====

    /// A frame on a DAD socket of client link `link`: defend its target if
    /// another node serves it for another client.
    fn dad_probe(&mut self, link: usize, frame: &[u8], now: Instant) {
        let Some(defence) = self.defence.as_mut() else {
            return;
        };
        let probe = match dad::decode_probe(frame) {
            Ok(probe) => probe,
            Err(e) => {
                tracing::debug!(error = %e, "not a DAD probe");
                self.seeks.count(Counter::DadMalformed);
                return;
            }
        };
        self.seeks.count(Counter::DadProbes);
        let verdict = defence.probe(&probe, dad::kernel_routes, now);
        tracing::debug!(target = %probe.target, mac = %probe.mac, ?verdict, "DAD probe");
        match verdict {
            Verdict::Free | Verdict::ServedHere => {}
            Verdict::Roaming => self.seeks.count(Counter::DadRoaming),
            Verdict::Suppressed => self.seeks.count(Counter::DadSuppressed),
            Verdict::Defend => {
                let Some(client_link) = self.client_links.get_mut(link) else {
                    return;
                };
                let result = match (&self.icmp, client_link.ifindex) {
                    (Some(icmp), Some(ifindex)) => icmp
                        .defend(
                            &probe.target,
                            ifindex,
                            client_link.source,
                            client_link.mac.as_ref(),
                        )
                        .map_err(|e| e.to_string()),
                    _ => Err("no such interface".to_string()),
                };
                note_send(
                    &mut client_link.last_error,
                    "defending neighbour advertisement",
                    &client_link.name,
                    &result,
                );
                if result.is_ok() {
                    tracing::info!(target = %probe.target, mac = %probe.mac,
                        link = %client_link.name,
                        "defended an address another node serves against a client's DAD");
                }
                self.seeks.count(match result {
                    Ok(()) => Counter::DadDefended,
                    Err(_) => Counter::DadSendErrors,
                });
            }
        }
    }

    /// Opens a DAD socket on every attachment point of the client links
    /// that has none, and closes those of ports that went away.
    fn refresh_probe_sockets(&mut self) {
        if self.defence.is_none() {
            return;
        }
        let mut wanted: BTreeMap<u32, (usize, String)> = BTreeMap::new();
        for (index, link) in self.client_links.iter().enumerate() {
            if link.ifindex.is_none() {
                continue;
            }
            for port in links::attachment_points(&link.name) {
                if let Some(ifindex) = links::index_of(&port) {
                    wanted.insert(ifindex, (index, port));
                }
            }
        }
        self.probe_sockets.retain(|ifindex, (link, task)| {
            let keep = wanted.get(ifindex).is_some_and(|(l, _)| l == link) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        self.probe_open_failed.retain(|i| wanted.contains_key(i));
        for (ifindex, (link, port)) in wanted {
            if self.probe_sockets.contains_key(&ifindex) {
                continue;
            }
            match l3roamd_net::packet::PacketSocket::open(
                ifindex,
                libc::ETH_P_ALL as u16,
                &dad::FILTER,
                tokio::io::Interest::READABLE,
            ) {
                Ok(socket) => {
                    self.probe_open_failed.remove(&ifindex);
                    tracing::debug!(port = %port, ifindex, "watching for DAD probes");
                    let task = spawn_probe_receiver(socket, link, self.input_tx.clone());
                    self.probe_sockets.insert(ifindex, (link, task));
                }
                Err(e) => {
                    if self.probe_open_failed.insert(ifindex) {
                        tracing::warn!(port = %port, error = %e, "cannot open a DAD socket; retrying");
                    } else {
                        tracing::debug!(port = %port, error = %e, "cannot open a DAD socket");
                    }
                }
            }
        }
    }

    // ===== interfaces =====

    /// Reads the interfaces again: (re)opens mesh sockets of interfaces that
    /// appeared or changed index, closes those of vanished ones, and updates
    /// the client links and our own MACs.
    fn refresh_links(&mut self) {
        for index in 0..self.mesh_links.len() {
            self.refresh_mesh_link(index);
        }
        let addrs = links::addresses();
        for link in &mut self.client_links {
            let now = links::lookup(&link.name);
            let ifindex = now.as_ref().map(|l| l.index);
            let mac = now.and_then(|l| l.mac);
            let source = ifindex.and_then(|i| links::solicit_source(&addrs, i, &self.next_node));
            if (ifindex, mac, source) != (link.ifindex, link.mac, link.source) {
                match ifindex {
                    Some(i) => tracing::info!(link = %link.name, ifindex = i, mac = ?mac,
                        source = ?source, "client interface"),
                    None => tracing::warn!(link = %link.name, "client interface does not exist"),
                }
                if ifindex.is_some() && source.is_none() {
                    tracing::warn!(link = %link.name,
                        "client interface has no usable link-local address; the kernel picks the solicitation source");
                }
            }
            link.ifindex = ifindex;
            link.mac = mac;
            link.source = source;
            refresh_frames(link);
        }
        let own: Vec<MacAddr> = self
            .mesh_links
            .iter()
            .filter_map(|l| l.mac)
            .chain(self.client_links.iter().filter_map(|l| l.mac))
            .collect();
        self.seeks.set_own_macs(own);
        self.refresh_probe_sockets();
    }

    fn refresh_mesh_link(&mut self, index: usize) {
        let port = self.port;
        let Some(link) = self.mesh_links.get_mut(index) else {
            return;
        };
        let ifindex = links::index_of(&link.name);
        link.mac = links::mac_of(&link.name);
        let current = link.open.as_ref().map(|o| o.socket.ifindex());
        if current.is_some() && current == ifindex {
            return;
        }
        if current.is_some() {
            tracing::info!(link = %link.name, "mesh interface gone or renumbered; closing its socket");
            link.open = None;
        }
        let Some(ifindex) = ifindex else {
            if link.last_error.is_none() {
                tracing::warn!(link = %link.name, "mesh interface does not exist (yet)");
                link.last_error = Some("missing".to_string());
            }
            return;
        };
        match MeshSocket::open(l3roamd_intercom::MULTICAST_GROUP, port, ifindex) {
            Ok(socket) => {
                self.generation = self.generation.wrapping_add(1);
                let socket = Arc::new(socket);
                let receiver =
                    spawn_mesh_receiver(socket.clone(), self.generation, self.input_tx.clone());
                tracing::info!(link = %link.name, ifindex, port, "listening for SEEKs");
                link.last_error = None;
                link.open = Some(OpenMesh {
                    socket,
                    generation: self.generation,
                    receiver,
                });
            }
            Err(e) => {
                let e = e.to_string();
                if link.last_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!(link = %link.name, error = %e, "cannot open the intercom socket; retrying");
                    link.last_error = Some(e);
                }
            }
        }
    }
}

/// Opens the solicitation packet socket of `link` when it has none on its
/// interface; without one (or without a MAC) solicitations take the ICMPv6
/// socket, which works but costs neighbour entries.
fn refresh_frames(link: &mut ClientLink) {
    let (Some(ifindex), Some(_)) = (link.ifindex, link.mac) else {
        link.frames = None;
        return;
    };
    if link
        .frames
        .as_ref()
        .is_some_and(|(index, _)| *index == ifindex)
    {
        return;
    }
    link.frames = match icmp::open_solicit_socket(ifindex) {
        Ok(socket) => Some((ifindex, socket)),
        Err(e) => {
            tracing::warn!(link = %link.name, error = %e,
                "cannot open a packet socket for solicitations; they take the ICMPv6 socket and a neighbour entry each");
            None
        }
    };
}

// ===== receive tasks =====

fn spawn_mesh_receiver(
    socket: Arc<MeshSocket>,
    generation: u64,
    input: mpsc::Sender<Input>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; RECEIVE_BUFFER];
        loop {
            let message = match socket.recv(&mut buf).await {
                Ok(received) => Input::Mesh {
                    generation,
                    received,
                    bytes: buf.get(..received.len).unwrap_or_default().to_vec(),
                },
                Err(e) => {
                    tracing::debug!(error = %e, "intercom receive error");
                    tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
                    Input::Error(Counter::MeshReceiveErrors)
                }
            };
            if input.send(message).await.is_err() {
                return;
            }
        }
    })
}

fn spawn_probe_receiver(
    socket: l3roamd_net::packet::PacketSocket,
    link: usize,
    input: mpsc::Sender<Input>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; RECEIVE_BUFFER];
        loop {
            let message = match socket.recv(&mut buf, 0).await {
                Ok((len, _outgoing)) => Input::Probe {
                    link,
                    frame: buf.get(..len).unwrap_or_default().to_vec(),
                },
                Err(e) => {
                    tracing::debug!(error = %e, "DAD socket receive error");
                    tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
                    Input::Error(Counter::DadReceiveErrors)
                }
            };
            if input.send(message).await.is_err() {
                return;
            }
        }
    })
}

fn spawn_icmp_receiver(socket: Arc<IcmpSocket>, input: mpsc::Sender<Input>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; RECEIVE_BUFFER];
        loop {
            let message = match socket.recv(&mut buf).await {
                Ok(received) => Input::Icmp {
                    received,
                    bytes: buf.get(..received.len).unwrap_or_default().to_vec(),
                },
                Err(e) => {
                    tracing::debug!(error = %e, "ICMPv6 receive error");
                    tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
                    Input::Error(Counter::IcmpReceiveErrors)
                }
            };
            if input.send(message).await.is_err() {
                return;
            }
        }
    })
}
