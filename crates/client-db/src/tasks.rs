//! The event loop: owns the state machine, the store and the socket, feeds
//! the machine events and carries out its actions.
//!
//! One task runs the loop; it alone touches the state machine and the store,
//! so there are no locks. The RPC service reaches it through a [`Handle`] (a
//! bounded command channel with a reply per command); a receive task passes
//! datagrams in through another bounded channel (when the loop falls behind,
//! the kernel's socket buffer drops the excess, so nothing grows without
//! bound). The loop sleeps until the state machine's next deadline (a
//! retransmission, or the expiry sweep when the next record or address
//! expires).
//!
//! Persisting: `Persist` actions only mark a MAC dirty;
//! `client_db.flush_interval_ms` after the first of them, the current
//! records of the dirty MACs (or their removal) go to the store in one
//! transaction (no wake-up while nothing is dirty). Store calls are
//! synchronous: a batch on tmpfs takes well under a millisecond, and a
//! blocking-thread pool would cost more memory than it saves. At a clean
//! stop everything dirty is flushed.

use std::collections::HashSet;
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Duration;

use l3roamd_daemon::{MeshConfig, Shutdown};
use l3roamd_intercom::{AuthError, AuthMode, Authenticator, PacketType};
use l3roamd_net::link_events::LinkWatch;
use l3roamd_types::MacAddr;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::db::{Full, Record};
use crate::events::{
    Action, Arrival, ArrivalInterface, ClaimOutcome, ClientDb, Counter, Event, Now,
};
use crate::mesh::{self, IntercomSocket, Received};
use crate::store::{self, Store, StoreError};
use crate::ClientDbConfig;

/// How often the counters are logged (at debug level, when they changed).
const COUNTER_REPORT: Duration = Duration::from_secs(60);
/// Pause after a receive error, so a persistent one cannot spin the CPU.
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// Receive buffer: an intercom datagram fits in an MTU.
const RECEIVE_BUFFER: usize = 2048;
/// Datagrams waiting for the loop; beyond this the kernel buffers, then drops.
const INPUT_QUEUE: usize = 256;
/// Commands waiting for the loop.
const COMMAND_QUEUE: usize = 64;
/// Events a watcher may fall behind by before its stream ends.
const EVENT_QUEUE: usize = 1024;

// ===== the handle used by the RPC service =====

/// A request to the loop.
#[derive(Debug)]
enum Command {
    Get {
        mac: MacAddr,
        reply: oneshot::Sender<Option<Record>>,
    },
    List {
        reply: oneshot::Sender<Vec<Record>>,
    },
    Claim {
        mac: MacAddr,
        reply: oneshot::Sender<(ClaimOutcome, Record)>,
    },
    Update {
        mac: MacAddr,
        addrs: Vec<Ipv6Addr>,
        reply: oneshot::Sender<Result<Record, Full>>,
    },
    Forget {
        mac: MacAddr,
        reply: oneshot::Sender<Option<Record>>,
    },
    Watch {
        reply: oneshot::Sender<(Vec<Record>, broadcast::Receiver<Event>)>,
    },
    SetMeshInterfaces {
        names: Vec<String>,
        reply: oneshot::Sender<()>,
    },
    Status {
        reply: oneshot::Sender<(usize, Vec<(&'static str, u64)>)>,
    },
    WatcherLagged,
}

/// The event loop has stopped (the daemon is shutting down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("client-db's event loop has stopped")]
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

    /// The record of `mac`.
    pub async fn get(&self, mac: MacAddr) -> Result<Option<Record>, Stopped> {
        self.ask(|reply| Command::Get { mac, reply }).await
    }

    /// Every record.
    pub async fn list(&self) -> Result<Vec<Record>, Stopped> {
        self.ask(|reply| Command::List { reply }).await
    }

    /// Claims `mac` for this node.
    pub async fn claim(&self, mac: MacAddr) -> Result<(ClaimOutcome, Record), Stopped> {
        self.ask(|reply| Command::Claim { mac, reply }).await
    }

    /// Records that `mac` is served here and uses `addrs`.
    pub async fn update(
        &self,
        mac: MacAddr,
        addrs: Vec<Ipv6Addr>,
    ) -> Result<Result<Record, Full>, Stopped> {
        self.ask(|reply| Command::Update { mac, addrs, reply })
            .await
    }

    /// Records that `mac` left this node.
    pub async fn forget(&self, mac: MacAddr) -> Result<Option<Record>, Stopped> {
        self.ask(|reply| Command::Forget { mac, reply }).await
    }

    /// Every record and a subscription to the events from now on, taken
    /// together so that none is missed or seen twice.
    pub async fn watch(&self) -> Result<(Vec<Record>, broadcast::Receiver<Event>), Stopped> {
        self.ask(|reply| Command::Watch { reply }).await
    }

    /// Uses `names` (checked) as the mesh interfaces from now on.
    pub async fn set_mesh_interfaces(&self, names: Vec<String>) -> Result<(), Stopped> {
        self.ask(|reply| Command::SetMeshInterfaces { names, reply })
            .await
    }

    /// The number of records and the counters by name.
    pub async fn status(&self) -> Result<(usize, Vec<(&'static str, u64)>), Stopped> {
        self.ask(|reply| Command::Status { reply }).await
    }

    /// Counts a watcher whose stream was ended because it fell behind.
    pub fn watcher_lagged(&self) {
        let _ = self.commands.try_send(Command::WatcherLagged);
    }
}

// ===== inputs from the receive task =====

/// What the receive task hands to the loop.
#[derive(Debug)]
enum Input {
    /// A datagram.
    Datagram { received: Received, bytes: Vec<u8> },
    /// A receive error, counted.
    Error,
}

// ===== interfaces =====

/// A configured interface and its index, if it exists now.
#[derive(Debug)]
struct Link {
    name: String,
    index: Option<u32>,
}

impl Link {
    fn named(names: &[String]) -> Vec<Link> {
        names
            .iter()
            .map(|name| Link {
                name: name.clone(),
                index: None,
            })
            .collect()
    }
}

/// Logs an error when it differs from the last one, and the recovery, so a
/// persistent failure does not flood the log.
fn note(last_error: &mut Option<String>, what: &str, result: Result<(), String>) {
    match result {
        Ok(()) => {
            if last_error.take().is_some() {
                tracing::info!("{what} works again");
            }
        }
        Err(e) => {
            if last_error.as_deref() != Some(e.as_str()) {
                tracing::warn!(error = %e, "{what} failed");
                *last_error = Some(e);
            } else {
                tracing::debug!(error = %e, "{what} failed");
            }
        }
    }
}

// ===== the loop =====

/// Why the loop cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error("client database ({backend} in {path}): {source}")]
    Store {
        /// `client_db.backend`.
        backend: &'static str,
        /// `client_db.db_path`.
        path: String,
        /// What went wrong.
        #[source]
        source: StoreError,
    },
    /// The mesh key cannot be read.
    #[error(transparent)]
    Config(#[from] l3roamd_daemon::ConfigError),
    /// The intercom socket could not be bound.
    #[error(
        "intercom socket [::]:{port}: {source} (is another l3roamd, e.g. the C one, bound to this port without SO_REUSEADDR?)"
    )]
    Socket {
        /// `mesh.intercom_port`.
        port: u16,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The event loop and everything it owns.
pub struct EventLoop {
    db: ClientDb,
    store: Box<dyn Store>,
    dirty: HashSet<MacAddr>,
    /// When the dirty records are written: `flush_interval` after the
    /// first of them became dirty; none while nothing is.
    flush_at: Option<tokio::time::Instant>,
    flush_interval: Duration,
    socket: Arc<IntercomSocket>,
    node: Ipv6Addr,
    port: u16,
    auth: Authenticator,
    mesh_links: Vec<Link>,
    client_links: Vec<Link>,
    events: broadcast::Sender<Event>,
    commands: mpsc::Receiver<Command>,
    input_tx: mpsc::Sender<Input>,
    input_rx: mpsc::Receiver<Input>,
    send_error: Option<String>,
    store_error: Option<String>,
    reported: Vec<(&'static str, u64)>,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("records", &self.db.len())
            .field("dirty", &self.dirty.len())
            .finish_non_exhaustive()
    }
}

impl EventLoop {
    /// Opens the store, loads the records and binds the socket. Must be
    /// called inside the tokio runtime.
    pub fn new(
        mesh: &MeshConfig,
        config: &ClientDbConfig,
    ) -> Result<(Handle, EventLoop), StartError> {
        let backend = config.backend().unwrap_or(store::Backend::Redb);
        let store_error = |source| StartError::Store {
            backend: backend.name(),
            path: config.db_path.display().to_string(),
            source,
        };
        let mut store = store::open(backend, &config.db_path).map_err(store_error)?;
        let loaded = match store.load_all() {
            Ok(loaded) => loaded,
            Err(e) => {
                // The database only speeds roaming up: start empty rather than not at all.
                tracing::error!(error = %e, "cannot read the client database; starting empty");
                store::Loaded::default()
            }
        };
        if loaded.skipped > 0 {
            tracing::warn!(
                skipped = loaded.skipped,
                "stored records that do not decode were skipped"
            );
        }
        let count = loaded.records.len();
        let (db, actions) = ClientDb::new(config.settings(mesh), loaded.records, Now::system());
        tracing::info!(
            backend = backend.name(),
            path = %config.db_path.display(),
            stored = count,
            kept = db.len(),
            "client database open"
        );
        let auth = mesh.authenticator()?;
        let socket =
            IntercomSocket::open(mesh.intercom_port).map_err(|source| StartError::Socket {
                port: mesh.intercom_port,
                source,
            })?;
        let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE);
        let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        let mut event_loop = EventLoop {
            db,
            store,
            dirty: HashSet::new(),
            flush_at: None,
            flush_interval: config.flush_interval(),
            socket: Arc::new(socket),
            node: mesh.node_address,
            port: mesh.intercom_port,
            auth,
            mesh_links: Link::named(&mesh.mesh_interfaces),
            client_links: Link::named(&mesh.client_interfaces),
            events,
            commands,
            input_tx,
            input_rx,
            send_error: None,
            store_error: None,
            reported: Vec::new(),
        };
        event_loop.execute(actions);
        Ok((
            Handle {
                commands: commands_tx,
            },
            event_loop,
        ))
    }

    /// Runs until `shutdown`, then writes what is not yet stored.
    pub async fn run(mut self, shutdown: Shutdown) {
        let receiver = spawn_receiver(self.socket.clone(), self.input_tx.clone());
        let mut links = LinkWatch::spawn("interfaces");
        self.refresh_links();
        let mut report = tokio::time::interval(COUNTER_REPORT);
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        report.reset();
        loop {
            let deadline = tokio::time::Instant::from_std(self.db.next_deadline());
            // Only while something waits to be written: an idle node does
            // not wake for it (issue 13).
            let flush_at = self.flush_at.unwrap_or(deadline);
            tokio::select! {
                () = shutdown.requested() => break,
                Some(command) = self.commands.recv() => self.command(command),
                Some(input) = self.input_rx.recv() => self.input(input),
                () = tokio::time::sleep_until(deadline) => {
                    let actions = self.db.tick(Now::system());
                    self.execute(actions);
                }
                () = tokio::time::sleep_until(flush_at), if self.flush_at.is_some() => self.flush(),
                () = links.changed() => self.refresh_links(),
                _ = report.tick() => self.report_counters(),
            }
        }
        drop(links);
        receiver.abort();
        self.flush();
        self.report_counters();
    }

    // ===== commands =====

    fn command(&mut self, command: Command) {
        let now = Now::system();
        match command {
            Command::Get { mac, reply } => {
                let _ = reply.send(self.db.get(&mac).cloned());
            }
            Command::List { reply } => {
                let mut records: Vec<Record> = self.db.records().cloned().collect();
                records.sort_by_key(|r| r.mac);
                let _ = reply.send(records);
            }
            Command::Claim { mac, reply } => {
                let (outcome, record, actions) = self.db.claim(mac, now);
                self.execute(actions);
                let _ = reply.send((outcome, record));
            }
            Command::Update { mac, addrs, reply } => {
                let result = self.db.update(mac, &addrs, now).map(|(record, actions)| {
                    self.execute(actions);
                    record
                });
                let _ = reply.send(result);
            }
            Command::Forget { mac, reply } => {
                let result = self.db.forget(mac, now).map(|(record, actions)| {
                    self.execute(actions);
                    record
                });
                let _ = reply.send(result);
            }
            Command::Watch { reply } => {
                let mut records: Vec<Record> = self.db.records().cloned().collect();
                records.sort_by_key(|r| r.mac);
                let _ = reply.send((records, self.events.subscribe()));
            }
            Command::SetMeshInterfaces { names, reply } => {
                let mut old = std::mem::take(&mut self.mesh_links);
                for name in names {
                    if self.mesh_links.iter().any(|l| l.name == name) {
                        continue;
                    }
                    match old.iter().position(|l| l.name == name) {
                        Some(i) => self.mesh_links.push(old.swap_remove(i)),
                        None => {
                            tracing::info!(link = %name, "mesh interface added");
                            self.mesh_links.push(Link { name, index: None });
                        }
                    }
                }
                for gone in old {
                    tracing::info!(link = %gone.name, "mesh interface removed");
                }
                self.refresh_links();
                let _ = reply.send(());
            }
            Command::Status { reply } => {
                let _ = reply.send((self.db.len(), self.db.counters().list()));
            }
            Command::WatcherLagged => self.db.count(Counter::WatchersLagged),
        }
    }

    // ===== received datagrams =====

    fn input(&mut self, input: Input) {
        match input {
            Input::Datagram { received, bytes } => {
                tracing::trace!(len = bytes.len(), source = ?received.source,
                    destination = ?received.destination, ifindex = ?received.ifindex, "datagram");
                if received.truncated {
                    self.db.count(Counter::Malformed);
                    return;
                }
                let arrival = Arrival {
                    interface: self.interface_kind(received.ifindex),
                    destination: received.destination,
                };
                let mut payload = bytes.as_slice();
                if arrival.interface != ArrivalInterface::Client {
                    // (From a client interface it is refused as foreign, keyed or not.)
                    let source = received.source.map_or(Ipv6Addr::UNSPECIFIED, |s| *s.ip());
                    match self.auth.open(&bytes, source, std::time::Instant::now()) {
                        Ok(opened) => {
                            if !opened.verified && self.auth.mode() == AuthMode::Sign {
                                self.db.count(Counter::AuthUnsigned);
                            }
                            payload = opened.bytes;
                        }
                        Err(e) => {
                            tracing::debug!(%source, error = %e, "intercom packet refused");
                            self.db.count(match e {
                                AuthError::Missing => Counter::AuthMissing,
                                AuthError::Bad => Counter::AuthBad,
                                AuthError::Replayed => Counter::AuthReplayed,
                            });
                            return;
                        }
                    }
                }
                let actions = self.db.mesh_received(payload, arrival, Now::system());
                self.execute(actions);
            }
            Input::Error => self.db.count(Counter::ReceiveErrors),
        }
    }

    fn interface_kind(&self, ifindex: Option<u32>) -> ArrivalInterface {
        let is = |links: &[Link]| ifindex.is_some() && links.iter().any(|l| l.index == ifindex);
        if is(&self.client_links) {
            ArrivalInterface::Client
        } else if is(&self.mesh_links) {
            ArrivalInterface::Mesh
        } else {
            ArrivalInterface::Other
        }
    }

    // ===== actions =====

    fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, packet } => {
                    let mut bytes = packet.encode();
                    self.auth.seal(&mut bytes, self.node);
                    let result = self.socket.send(&bytes, to, self.port, self.node);
                    tracing::trace!(%to, kind = %packet.kind(), ok = result.is_ok(), "sent");
                    match result {
                        Err(e) if packet.kind() == PacketType::Claim && is_unroutable(&e) => {
                            // Nobody serves that MAC (no route to its
                            // node-client address): the normal fate of a
                            // claim for a client new to the mesh.
                            self.db.count(Counter::SendErrors);
                            tracing::debug!(%to, error = %e, "CLAIM not sent");
                        }
                        Err(e) => {
                            self.db.count(Counter::SendErrors);
                            tracing::debug!(%to, kind = %packet.kind(), error = %e, "not sent");
                            note(&mut self.send_error, "intercom send", Err(e.to_string()));
                        }
                        Ok(()) => note(&mut self.send_error, "intercom send", Ok(())),
                    }
                }
                Action::Emit(event) => {
                    // No watcher is not an error: the snapshot has it.
                    let _ = self.events.send(event);
                }
                Action::Persist(mac) => {
                    self.dirty.insert(mac);
                    self.flush_at
                        .get_or_insert_with(|| tokio::time::Instant::now() + self.flush_interval);
                    if self.dirty.len() > 2 * self.db.settings().max_records {
                        self.flush();
                    }
                }
            }
        }
    }

    /// Writes the dirty records (or their removal) in one batch.
    fn flush(&mut self) {
        self.flush_at = None;
        if self.dirty.is_empty() {
            return;
        }
        let dirty: Vec<MacAddr> = self.dirty.drain().collect();
        let mut result = Ok(());
        for mac in &dirty {
            let staged = match self.db.get(mac) {
                Some(record) => self.store.put(record),
                None => self.store.remove(mac),
            };
            if let Err(e) = staged {
                result = Err(e);
                break;
            }
        }
        let result = result.and_then(|()| self.store.flush());
        if result.is_err() {
            // Tried again at the next flush.
            self.dirty.extend(dirty);
            self.flush_at = Some(tokio::time::Instant::now() + self.flush_interval);
            self.db.count(Counter::StoreErrors);
        }
        note(
            &mut self.store_error,
            "writing the client database",
            result.map_err(|e| e.to_string()),
        );
    }

    // ===== interfaces and counters =====

    fn refresh_links(&mut self) {
        for (links, kind) in [
            (&mut self.mesh_links, "mesh"),
            (&mut self.client_links, "client"),
        ] {
            for link in links.iter_mut() {
                let index = mesh::index_of(&link.name);
                if index != link.index {
                    match index {
                        Some(i) => {
                            tracing::info!(link = %link.name, ifindex = i, "{kind} interface")
                        }
                        None => {
                            tracing::warn!(link = %link.name, "{kind} interface does not exist (yet)")
                        }
                    }
                    link.index = index;
                }
            }
        }
    }

    fn report_counters(&mut self) {
        let counters = self.db.counters().list();
        if counters != self.reported {
            let line: Vec<String> = counters
                .iter()
                .filter(|(_, v)| *v > 0)
                .map(|(name, v)| format!("{name}={v}"))
                .collect();
            tracing::debug!(records = self.db.len(), "counters: {}", line.join(" "));
            self.reported = counters;
        }
    }
}

/// Whether a send failed for want of a route (rather than, say, because
/// the node address is not assigned).
fn is_unroutable(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENETUNREACH | libc::EHOSTUNREACH)
    )
}

// ===== receive task =====

fn spawn_receiver(socket: Arc<IntercomSocket>, input: mpsc::Sender<Input>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; RECEIVE_BUFFER];
        loop {
            let message = match socket.recv(&mut buf).await {
                Ok(received) => Input::Datagram {
                    received,
                    bytes: buf.get(..received.len).unwrap_or_default().to_vec(),
                },
                Err(e) => {
                    tracing::debug!(error = %e, "intercom receive error");
                    tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
                    Input::Error
                }
            };
            if input.send(message).await.is_err() {
                return;
            }
        }
    })
}
