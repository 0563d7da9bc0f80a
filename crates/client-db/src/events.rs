//! The client-db state machine: what happens on each RPC from core, on each
//! CLAIM / INFO / ACK from the mesh, and on each timer tick.
//!
//! Events go in with the current time ([`Now`]: a monotonic [`Instant`] for
//! retries, the wall clock for record timestamps); [`Action`]s come out (send
//! this packet to that address, tell the watchers this, persist the record of
//! that MAC). There are no sockets, files or clocks in here, so every
//! behaviour below is tested deterministically, without root and without
//! sleeping.
//!
//! # The exchange (protocol.md, "Behaviour")
//!
//! - **Claim** (core: a client appeared here). The record says this node
//!   serves the client; a CLAIM goes to the MAC's node-client address, and is
//!   sent again every `claim_interval` up to `claim_retries` more times until
//!   an INFO for the MAC arrives. The INFO's addresses are merged into the
//!   record, the answering node is noted, an ACK goes back, and the watchers
//!   get `Updated` and `ClaimDone { answered_by: Some(node) }`. If the retries
//!   run out: `ClaimDone { answered_by: None }`. A Claim while one for the
//!   same MAC runs changes nothing.
//! - **CLAIM from another node**. Ignored when it comes from our own node
//!   address, or when we have no record of the MAC (only a node that knows
//!   the client answers, as in C). Otherwise, if this node serves the client,
//!   it stops (`serving` false) and the watchers get `Release`; in every case
//!   the claimer is noted and an INFO with the client's addresses goes to it,
//!   sent again every `info_interval` up to `info_retries` more times until
//!   its ACK arrives.
//! - **INFO** gets an ACK, always (C nodes retransmit until they get one). Only
//!   an INFO answering a claim of ours changes anything: a repeated INFO, or
//!   one nobody asked for, is acknowledged and otherwise ignored, so a forged
//!   INFO cannot plant addresses in the database.
//! - **ACK** from the claimer stops the INFO retransmission.
//!
//! Every packet sent gets a fresh random nonce, retransmissions included: C
//! nodes drop a packet whose (nonce, type) they have seen (bug D1 makes them
//! remember it long), so a retry with the old nonce would never be read.
//!
//! # No duplicate filter
//!
//! CLAIM/INFO/ACK are unicast and never re-flooded, and every handler above
//! is idempotent (a repeated CLAIM finds its INFO already pending, a repeated
//! INFO finds no claim, a repeated ACK finds nothing to stop), so no
//! [`l3roamd_intercom::SeenCache`] is kept: it would add nothing but the risk
//! of dropping a C node's legitimate repeat (constant nonces, D1).
//!
//! # Bounds
//!
//! Records ([`crate::db::Records`]), claims running and INFOs awaiting an ACK
//! are all capped; a new claim or INFO beyond the cap is refused and counted,
//! never queued.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use l3roamd_intercom::{Body, Info, Packet};
use l3roamd_types::{node_client_addr, Ipv6Prefix, MacAddr};

use crate::db::{self, Record, Records};

// ===== time =====

/// The current time, as the state machine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for retransmissions.
    pub mono: Instant,
    /// Wall-clock time, for the timestamps of records.
    pub wall: SystemTime,
}

impl Now {
    /// The system's clocks now.
    pub fn system() -> Now {
        Now {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// Both clocks moved on by `d` (tests).
    pub fn after(self, d: Duration) -> Now {
        Now {
            mono: self.mono + d,
            wall: self.wall + d,
        }
    }
}

/// Milliseconds since the Unix epoch (0 before it).
fn unix_millis(t: SystemTime) -> i128 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i128)
        .unwrap_or(0)
}

/// Notices steps of the wall clock (an NTP step at boot, an operator's
/// `date -s`) by comparing it with the monotonic clock at every event.
#[derive(Debug, Clone, Copy)]
struct SteadyClock {
    mono: Instant,
    wall_ms: i128,
}

impl SteadyClock {
    /// A difference above this between the two clocks is a step.
    const STEP_MS: i128 = 10_000;

    fn new(now: Now) -> SteadyClock {
        SteadyClock {
            mono: now.mono,
            wall_ms: unix_millis(now.wall),
        }
    }

    /// The wall clock in Unix seconds, and by how many seconds it was
    /// stepped since the last reading, if it was.
    fn read(&mut self, now: Now) -> (u64, Option<i64>) {
        let elapsed = now.mono.saturating_duration_since(self.mono).as_millis() as i128;
        let expected = self.wall_ms + elapsed;
        let wall_ms = unix_millis(now.wall);
        let step = wall_ms - expected;
        self.mono = self.mono.max(now.mono);
        self.wall_ms = wall_ms;
        let secs = u64::try_from(wall_ms / 1000).unwrap_or(0);
        if step.abs() > Self::STEP_MS {
            let step_secs = i64::try_from(step / 1000).unwrap_or(0);
            (secs, Some(step_secs))
        } else {
            (secs, None)
        }
    }
}

// ===== settings =====

/// What the state machine is configured with (from `[mesh]` and `[client_db]`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's address: packets are sent from it, CLAIMs from it ignored.
    pub node: Ipv6Addr,
    /// The /64 of node-client addresses.
    pub node_client_prefix: Ipv6Prefix,
    /// Seconds after its last change that a record (or an address not seen
    /// since) expires.
    pub record_ttl: u64,
    /// Interval between CLAIM transmissions.
    pub claim_interval: Duration,
    /// CLAIM retransmissions after the first (so `claim_retries + 1` sends).
    pub claim_retries: u32,
    /// Interval between INFO transmissions.
    pub info_interval: Duration,
    /// INFO retransmissions after the first.
    pub info_retries: u32,
    /// Most records kept.
    pub max_records: usize,
    /// Most claims running at once, and most INFOs awaiting an ACK.
    pub max_pending: usize,
    /// Most addresses announced in one INFO.
    pub info_max_addresses: usize,
}

impl Settings {
    /// The defaults of `[client_db]` for node `node` (tests, tools).
    pub fn defaults(node: Ipv6Addr) -> Settings {
        Settings {
            node,
            node_client_prefix: Ipv6Prefix::new(Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 64)
                .unwrap_or_else(|_| unreachable!("fec0::/64 is canonical")),
            record_ttl: 900,
            claim_interval: Duration::from_millis(300),
            claim_retries: 15,
            info_interval: Duration::from_millis(500),
            info_retries: 15,
            max_records: 4096,
            max_pending: 256,
            info_max_addresses: l3roamd_intercom::MAX_BASIC_ADDRS,
        }
    }
}

// ===== actions and events =====

/// What the adapters must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `packet` by unicast to `to`, port 5523, from the node address.
    Send {
        /// The destination.
        to: Ipv6Addr,
        /// The packet.
        packet: Packet,
    },
    /// Tell the watchers.
    Emit(Event),
    /// The record of this MAC changed or went: write it (or its removal) at
    /// the next flush.
    Persist(MacAddr),
}

/// What watchers are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A record was created or changed in more than its timestamps.
    Updated(Record),
    /// A record expired (or was evicted); it is gone.
    Removed {
        /// The client.
        mac: MacAddr,
        /// Unix seconds.
        at: u64,
    },
    /// Another node claimed a client this node served: let it go.
    Release {
        /// The client.
        mac: MacAddr,
        /// The claiming node.
        claimed_by: Ipv6Addr,
    },
    /// A claim of ours ended.
    ClaimDone {
        /// The client.
        mac: MacAddr,
        /// The node whose INFO answered, or `None` when the retries ran out.
        answered_by: Option<Ipv6Addr>,
    },
}

/// Where a datagram came from, as the socket told it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// The kind of interface it arrived on.
    pub interface: ArrivalInterface,
    /// The address it was sent to, if known.
    pub destination: Option<Ipv6Addr>,
}

/// The kind of interface a datagram arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrivalInterface {
    /// One of `mesh.mesh_interfaces`.
    Mesh,
    /// One of `mesh.client_interfaces`: never accepted (a client could
    /// otherwise forge CLAIMs at its own node).
    Client,
    /// Anything else (loopback, a VPN babel also runs on) or unknown.
    Other,
}

/// What became of a Claim from core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The first CLAIM went out.
    Started,
    /// A claim for that MAC is running already; nothing was restarted.
    Running,
    /// Too many claims are running; nothing was sent.
    Busy,
}

// ===== counters =====

l3roamd_daemon::counters! {
    "One counter of client-db (logged at debug level).";
    ClaimsRequested => "claims_requested": "Claims core asked for that started.",
    ClaimsRunning => "claims_running": "Claims core asked for while one for that MAC was running.",
    ClaimsBusy => "claims_busy": "Claims refused: too many running.",
    ClaimsSent => "claims_sent": "CLAIM packets sent, retransmissions included.",
    ClaimsAnswered => "claims_answered": "Claims of ours answered by an INFO.",
    ClaimsGivenUp => "claims_given_up": "Claims of ours whose retries ran out.",
    ClaimsReceived => "claims_received": "CLAIMs received from other nodes.",
    ClaimsUnknown => "claims_unknown": "CLAIMs for MACs without a record (not answered).",
    Releases => "releases": "Clients released because another node claimed them.",
    InfosSent => "infos_sent": "INFO packets sent, retransmissions included.",
    InfosBusy => "infos_busy": "CLAIMs not answered: too many INFOs awaiting an ACK.",
    InfosAcked => "infos_acked": "INFOs of ours acknowledged.",
    InfosUnacked => "infos_unacked": "INFOs of ours whose retries ran out.",
    InfosReceived => "infos_received": "INFOs received.",
    InfosUnsolicited => "infos_unsolicited": "INFOs acknowledged but ignored: no claim of ours waited for them (repeats included).",
    InfoAddressesIgnored => "info_addresses_ignored": "Addresses in INFOs that cannot be client addresses.",
    PlatIgnored => "plat_ignored": "INFOs with a NAT64 prefix (not used yet).",
    AcksSent => "acks_sent": "ACK packets sent.",
    AcksReceived => "acks_received": "ACKs received.",
    AcksUnmatched => "acks_unmatched": "ACKs for no INFO of ours awaiting one.",
    OwnPackets => "own_packets": "Packets with our own node address as sender (ignored).",
    OtherTypes => "other_types": "Packets of other types on this socket (ignored).",
    Malformed => "mesh_malformed": "Datagrams that do not decode.",
    Foreign => "mesh_foreign": "Datagrams refused: from a client interface, or not to one of our addresses off the mesh interfaces.",
    AuthMissing => "auth_missing": "CLAIM/INFO/ACK dropped in require mode: no authentication trailer.",
    AuthBad => "auth_bad": "CLAIM/INFO/ACK dropped: the authentication trailer does not verify (forged, or another key).",
    AuthReplayed => "auth_replayed": "CLAIM/INFO/ACK dropped: authenticated, but a replay of one seen before.",
    AuthUnsigned => "auth_unsigned": "Unsigned CLAIM/INFO/ACK accepted in sign mode (nodes not yet signing).",
    SendErrors => "mesh_send_errors": "Packets the kernel refused to send.",
    ReceiveErrors => "mesh_receive_errors": "Errors reading the socket.",
    RecordsCreated => "records_created": "Records created.",
    RecordsExpired => "records_expired": "Records expired.",
    RecordsEvicted => "records_evicted": "Records evicted to make room.",
    RecordsFull => "records_full": "Records not created: the table is full of clients served here.",
    RecordsLoaded => "records_loaded": "Records loaded from the store at start.",
    RecordsDroppedAtLoad => "records_dropped_at_load": "Stored records dropped at start (expired or beyond max_records).",
    ClockSteps => "clock_steps": "Steps of the wall clock noticed (record times moved along).",
    StoreErrors => "store_errors": "Failed store flushes (retried at the next one).",
    WatchersLagged => "watchers_lagged": "Watch streams ended because the watcher fell behind.",
}

// ===== nonces =====

use l3roamd_daemon::Nonces;

// ===== pending exchanges =====

/// A claim of ours awaiting its INFO.
#[derive(Debug, Clone)]
struct PendingClaim {
    /// Retransmissions left.
    sends_left: u32,
    /// When to retransmit, or give up when none are left.
    next: Instant,
}

/// An INFO of ours awaiting its ACK.
#[derive(Debug, Clone)]
struct PendingInfo {
    /// The addresses announced (fixed when the CLAIM arrived).
    addrs: Vec<Ipv6Addr>,
    /// Retransmissions left.
    sends_left: u32,
    /// When to retransmit, or give up when none are left.
    next: Instant,
}

// ===== the state machine =====

/// When the first sweep for expired records and addresses runs after start;
/// later sweeps run when the next of them expires (see [`ClientDb::sweep`]).
const FIRST_SWEEP: Duration = Duration::from_secs(1);

/// The client database and its exchanges on the mesh.
#[derive(Debug)]
pub struct ClientDb {
    settings: Settings,
    records: Records,
    claims: HashMap<MacAddr, PendingClaim>,
    infos: HashMap<(MacAddr, Ipv6Addr), PendingInfo>,
    clock: SteadyClock,
    counters: Counters,
    nonces: Nonces,
    next_sweep: Instant,
}

impl ClientDb {
    /// A database holding the `loaded` records (from the store) that have
    /// not expired by `now`, at most `max_records` of them (served clients
    /// and the most recently updated first). The actions persist the removal
    /// of the records dropped.
    pub fn new(settings: Settings, loaded: Vec<Record>, now: Now) -> (ClientDb, Vec<Action>) {
        let mut clock = SteadyClock::new(now);
        let (unix, _) = clock.read(now);
        let ttl = settings.record_ttl;
        let mut db = ClientDb {
            records: Records::new(settings.max_records),
            claims: HashMap::new(),
            infos: HashMap::new(),
            clock,
            counters: Counters::default(),
            nonces: Nonces::new(),
            next_sweep: now.mono + FIRST_SWEEP,
            settings,
        };
        let mut actions = Vec::new();
        let mut keep: Vec<Record> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for mut record in loaded {
            record.clamp_times(unix);
            record.expire_addresses(unix, ttl);
            if record.is_expired(unix, ttl) || !seen.insert(record.mac) {
                db.counters.count(Counter::RecordsDroppedAtLoad);
                actions.push(Action::Persist(record.mac));
            } else {
                keep.push(record);
            }
        }
        keep.sort_by_key(|r| (!r.serving, std::cmp::Reverse(r.updated), r.mac));
        let max = db.settings.max_records.max(1);
        for record in keep.split_off(max.min(keep.len())) {
            db.counters.count(Counter::RecordsDroppedAtLoad);
            actions.push(Action::Persist(record.mac));
        }
        for record in keep {
            db.counters.count(Counter::RecordsLoaded);
            // Cannot fail: at most max_records distinct MACs.
            let _ = db.records.insert_new(record);
        }
        (db, actions)
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The record of `mac`.
    pub fn get(&self, mac: &MacAddr) -> Option<&Record> {
        self.records.get(mac)
    }

    /// Every record, in no particular order.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.iter()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when there is no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Whether a claim for `mac` is running.
    pub fn is_claiming(&self, mac: &MacAddr) -> bool {
        self.claims.contains_key(mac)
    }

    /// Number of INFOs awaiting an ACK.
    pub fn infos_pending(&self) -> usize {
        self.infos.len()
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Adds one to `counter` (for the adapters' own events).
    pub fn count(&mut self, counter: Counter) {
        self.counters.count(counter);
    }

    /// When [`ClientDb::tick`] must run next.
    pub fn next_deadline(&self) -> Instant {
        self.claims
            .values()
            .map(|c| c.next)
            .chain(self.infos.values().map(|i| i.next))
            .fold(self.next_sweep, Instant::min)
    }

    // ===== RPCs from core =====

    /// Core: a client appeared on this node. Marks it served here and claims
    /// it on the mesh. Returns the record as known now (empty if unknown).
    pub fn claim(&mut self, mac: MacAddr, now: Now) -> (ClaimOutcome, Record, Vec<Action>) {
        let unix = self.wall(now);
        let mut actions = Vec::new();
        if self.claims.contains_key(&mac) {
            self.counters.count(Counter::ClaimsRunning);
            return (ClaimOutcome::Running, self.snapshot(mac, unix), actions);
        }
        if self.claims.len() >= self.settings.max_pending {
            self.counters.count(Counter::ClaimsBusy);
            return (ClaimOutcome::Busy, self.snapshot(mac, unix), actions);
        }
        self.counters.count(Counter::ClaimsRequested);
        let node = self.settings.node;
        self.change(mac, unix, true, &mut actions, |r| {
            r.serving = true;
            r.note_served_by(node, unix);
        });
        self.claims.insert(
            mac,
            PendingClaim {
                sends_left: self.settings.claim_retries,
                next: now.mono + self.settings.claim_interval,
            },
        );
        actions.push(self.claim_packet(mac));
        (ClaimOutcome::Started, self.snapshot(mac, unix), actions)
    }

    /// Core: the client `mac` is served here and uses `addrs` now. Addresses
    /// that cannot be a client's are skipped (the RPC refuses them earlier).
    pub fn update(
        &mut self,
        mac: MacAddr,
        addrs: &[Ipv6Addr],
        now: Now,
    ) -> Result<(Record, Vec<Action>), db::Full> {
        let unix = self.wall(now);
        let mut actions = Vec::new();
        let node = self.settings.node;
        let prefix = self.settings.node_client_prefix;
        let usable = addrs
            .iter()
            .copied()
            .filter(|a| db::is_recordable_client_address(a, &prefix));
        let usable: Vec<Ipv6Addr> = usable.collect();
        let done = self.change(mac, unix, true, &mut actions, |r| {
            r.merge_addresses(usable, unix);
            r.serving = true;
            r.note_served_by(node, unix);
        });
        if !done {
            return Err(db::Full(self.settings.max_records));
        }
        Ok((self.snapshot(mac, unix), actions))
    }

    /// Core: the client `mac` left this node. The record is kept, to answer
    /// a later CLAIM with its addresses. `None` when there is no record.
    pub fn forget(&mut self, mac: MacAddr, now: Now) -> Option<(Record, Vec<Action>)> {
        let unix = self.wall(now);
        self.records.get(&mac)?;
        let mut actions = Vec::new();
        let node = self.settings.node;
        self.change(mac, unix, false, &mut actions, |r| {
            if r.serving {
                r.serving = false;
                r.note_served_by(node, unix);
            }
        });
        Some((self.snapshot(mac, unix), actions))
    }

    // ===== packets from the mesh =====

    /// A datagram arrived on the intercom socket.
    pub fn mesh_received(&mut self, bytes: &[u8], arrival: Arrival, now: Now) -> Vec<Action> {
        if !self.accepts(arrival) {
            self.counters.count(Counter::Foreign);
            return Vec::new();
        }
        let packet = match Packet::decode(bytes) {
            Ok(packet) => packet,
            Err(e) => {
                tracing::debug!(error = %e, "malformed intercom datagram");
                self.counters.count(Counter::Malformed);
                return Vec::new();
            }
        };
        if packet.sender == self.settings.node {
            self.counters.count(Counter::OwnPackets);
            return Vec::new();
        }
        let unix = self.wall(now);
        match packet.body {
            Body::Claim { mac } => self.claim_received(packet.sender, mac, unix, now),
            Body::Info(info) => self.info_received(packet.sender, info, unix),
            Body::Ack { mac } => self.ack_received(packet.sender, mac),
            _ => {
                self.counters.count(Counter::OtherTypes);
                Vec::new()
            }
        }
    }

    /// Whether a datagram from `arrival` is to be read at all: never from a
    /// client interface; from a mesh interface always; from elsewhere only
    /// when sent to our node address or to a node-client address.
    fn accepts(&self, arrival: Arrival) -> bool {
        if arrival.destination.is_some_and(|d| d.is_multicast()) {
            return false;
        }
        match arrival.interface {
            ArrivalInterface::Client => false,
            ArrivalInterface::Mesh => true,
            ArrivalInterface::Other => arrival.destination.is_some_and(|d| {
                d == self.settings.node || self.settings.node_client_prefix.contains(&d)
            }),
        }
    }

    fn claim_received(
        &mut self,
        claimer: Ipv6Addr,
        mac: MacAddr,
        unix: u64,
        now: Now,
    ) -> Vec<Action> {
        self.counters.count(Counter::ClaimsReceived);
        let mut actions = Vec::new();
        let ttl = self.settings.record_ttl;
        let Some(record) = self.records.get_mut(&mac) else {
            self.counters.count(Counter::ClaimsUnknown);
            return actions;
        };
        let before = record.clone();
        if record.serving {
            record.serving = false;
            self.counters.count(Counter::Releases);
            tracing::info!(%mac, %claimer, "client claimed by another node: releasing it");
            actions.push(Action::Emit(Event::Release {
                mac,
                claimed_by: claimer,
            }));
        }
        record.expire_addresses(unix, ttl);
        record.note_served_by(claimer, unix);
        let addrs = record.info_addresses(self.settings.info_max_addresses);
        if record.differs_from(&before) {
            actions.push(Action::Emit(Event::Updated(record.clone())));
        }
        actions.push(Action::Persist(mac));
        let key = (mac, claimer);
        if self.infos.contains_key(&key) {
            // A repeated CLAIM: our INFO is under way and retransmitted.
            return actions;
        }
        if self.infos.len() >= self.settings.max_pending {
            self.counters.count(Counter::InfosBusy);
            return actions;
        }
        tracing::debug!(%mac, %claimer, addresses = addrs.len(), "answering CLAIM with INFO");
        let packet = self.info_packet(mac, claimer, addrs.clone());
        self.infos.insert(
            key,
            PendingInfo {
                addrs,
                sends_left: self.settings.info_retries,
                next: now.mono + self.settings.info_interval,
            },
        );
        actions.push(packet);
        actions
    }

    fn info_received(&mut self, sender: Ipv6Addr, info: Info, unix: u64) -> Vec<Action> {
        self.counters.count(Counter::InfosReceived);
        let mac = info.mac;
        // Always acknowledged, or the sender retransmits for seconds.
        let mut actions = vec![self.ack_packet(mac, sender)];
        if info.plat.and_then(|p| p.nat64_prefix()).is_some() {
            // We do not translate IPv4 clients (yet): a prefix is not adopted.
            self.counters.count(Counter::PlatIgnored);
        }
        if self.claims.remove(&mac).is_none() {
            self.counters.count(Counter::InfosUnsolicited);
            return actions;
        }
        self.counters.count(Counter::ClaimsAnswered);
        let prefix = self.settings.node_client_prefix;
        let (usable, ignored): (Vec<Ipv6Addr>, Vec<Ipv6Addr>) = info
            .addrs
            .iter()
            .partition(|a| db::is_recordable_client_address(a, &prefix));
        self.counters
            .add(Counter::InfoAddressesIgnored, ignored.len() as u64);
        let node = self.settings.node;
        let mut changes = Vec::new();
        let stored = self.change(mac, unix, true, &mut changes, |r| {
            r.merge_addresses(usable, unix);
            r.note_served_by(sender, unix);
            if r.serving {
                // We serve it now: our node stays the most recent.
                r.note_served_by(node, unix);
            }
        });
        // `Updated` is announced even when nothing changed: the claim's answer.
        changes.retain(|a| !matches!(a, Action::Emit(Event::Updated(_))));
        actions.append(&mut changes);
        if stored {
            if let Some(record) = self.records.get(&mac) {
                actions.push(Action::Emit(Event::Updated(record.clone())));
            }
        }
        tracing::info!(%mac, answered_by = %sender, addresses = info.addrs.len(), "claim answered");
        actions.push(Action::Emit(Event::ClaimDone {
            mac,
            answered_by: Some(sender),
        }));
        actions
    }

    fn ack_received(&mut self, sender: Ipv6Addr, mac: MacAddr) -> Vec<Action> {
        self.counters.count(Counter::AcksReceived);
        if self.infos.remove(&(mac, sender)).is_some() {
            self.counters.count(Counter::InfosAcked);
        } else {
            self.counters.count(Counter::AcksUnmatched);
        }
        Vec::new()
    }

    // ===== timers =====

    /// Retransmits what is due, gives up what has no retries left, and
    /// expires old records and addresses.
    pub fn tick(&mut self, now: Now) -> Vec<Action> {
        let unix = self.wall(now);
        let mut actions = Vec::new();

        let mut due: Vec<MacAddr> = self
            .claims
            .iter()
            .filter(|(_, c)| c.next <= now.mono)
            .map(|(mac, _)| *mac)
            .collect();
        due.sort_unstable();
        for mac in due {
            let Some(claim) = self.claims.get_mut(&mac) else {
                continue;
            };
            if claim.sends_left > 0 {
                claim.sends_left -= 1;
                claim.next = now.mono + self.settings.claim_interval;
                actions.push(self.claim_packet(mac));
            } else {
                self.claims.remove(&mac);
                self.counters.count(Counter::ClaimsGivenUp);
                tracing::debug!(%mac, "claim not answered: nobody served the client (or its node is gone)");
                actions.push(Action::Emit(Event::ClaimDone {
                    mac,
                    answered_by: None,
                }));
            }
        }

        let mut due: Vec<(MacAddr, Ipv6Addr)> = self
            .infos
            .iter()
            .filter(|(_, i)| i.next <= now.mono)
            .map(|(key, _)| *key)
            .collect();
        due.sort_unstable();
        for key in due {
            let Some(info) = self.infos.get_mut(&key) else {
                continue;
            };
            if info.sends_left > 0 {
                info.sends_left -= 1;
                info.next = now.mono + self.settings.info_interval;
                let addrs = info.addrs.clone();
                actions.push(self.info_packet(key.0, key.1, addrs));
            } else {
                self.infos.remove(&key);
                self.counters.count(Counter::InfosUnacked);
                tracing::debug!(mac = %key.0, claimer = %key.1, "INFO not acknowledged; giving up");
            }
        }

        if now.mono >= self.next_sweep {
            let next = self.sweep(unix, &mut actions);
            // Whole seconds from now: the wall clock reads `next` then.
            self.next_sweep = now.mono + Duration::from_secs(next.saturating_sub(unix).max(1));
        }
        actions
    }

    /// Removes expired records and addresses; returns when the next of
    /// those left expires (Unix seconds), so the loop sleeps until then
    /// instead of scanning every record every second.
    ///
    /// Nothing that happens in between can expire earlier: every time a
    /// record holds is at most `unix` (times from the future are clamped
    /// at load, a wall-clock step moves them all along), so everything
    /// left expires by `unix + ttl`; a record or address created or
    /// refreshed later gets its time then, and expires no earlier than
    /// `unix + ttl`. With no record left, the next sweep is at `unix + ttl`.
    fn sweep(&mut self, unix: u64, actions: &mut Vec<Action>) -> u64 {
        let ttl = self.settings.record_ttl;
        let mut next = unix.saturating_add(ttl);
        for mac in self.records.expired(unix, ttl) {
            self.records.remove(&mac);
            self.counters.count(Counter::RecordsExpired);
            tracing::debug!(%mac, "record expired");
            actions.push(Action::Emit(Event::Removed { mac, at: unix }));
            actions.push(Action::Persist(mac));
        }
        let mut changed = Vec::new();
        for record in self.records.iter_mut() {
            if record.expire_addresses(unix, ttl) {
                changed.push(record.clone());
            }
            next = next.min(record.next_expiry(ttl));
        }
        changed.sort_by_key(|r| r.mac);
        for record in changed {
            actions.push(Action::Persist(record.mac));
            actions.push(Action::Emit(Event::Updated(record)));
        }
        next
    }

    // ===== helpers =====

    /// The wall clock in Unix seconds; a step of it moves every record's
    /// times along, so their ages (and expiry) stay what they were.
    fn wall(&mut self, now: Now) -> u64 {
        let (unix, step) = self.clock.read(now);
        if let Some(step) = step {
            self.counters.count(Counter::ClockSteps);
            tracing::warn!(
                step_seconds = step,
                "wall clock stepped; record times moved along"
            );
            for record in self.records.iter_mut() {
                record.shift_times(step);
            }
        }
        unix
    }

    /// The record of `mac`, or an empty one.
    fn snapshot(&self, mac: MacAddr, unix: u64) -> Record {
        self.records
            .get(&mac)
            .cloned()
            .unwrap_or_else(|| Record::new(mac, unix))
    }

    /// Applies `f` to the record of `mac`, creating it first if `create`;
    /// pushes `Updated` if watchers see a difference, and `Persist`. Returns
    /// false when the record neither existed nor could be created.
    fn change(
        &mut self,
        mac: MacAddr,
        unix: u64,
        create: bool,
        actions: &mut Vec<Action>,
        f: impl FnOnce(&mut Record),
    ) -> bool {
        let before = self.records.get(&mac).cloned();
        if before.is_none() {
            if !create {
                return false;
            }
            match self.records.insert_new(Record::new(mac, unix)) {
                Ok(evicted) => {
                    self.counters.count(Counter::RecordsCreated);
                    if let Some(gone) = evicted {
                        self.counters.count(Counter::RecordsEvicted);
                        tracing::debug!(mac = %gone, "record evicted: the table is full");
                        actions.push(Action::Emit(Event::Removed {
                            mac: gone,
                            at: unix,
                        }));
                        actions.push(Action::Persist(gone));
                    }
                }
                Err(e) => {
                    self.counters.count(Counter::RecordsFull);
                    tracing::warn!(%mac, "{e}");
                    return false;
                }
            }
        }
        let Some(record) = self.records.get_mut(&mac) else {
            return false;
        };
        f(record);
        record.updated = record.updated.max(unix);
        if before.as_ref().is_none_or(|b| record.differs_from(b)) {
            actions.push(Action::Emit(Event::Updated(record.clone())));
        }
        actions.push(Action::Persist(mac));
        true
    }

    fn claim_packet(&mut self, mac: MacAddr) -> Action {
        self.counters.count(Counter::ClaimsSent);
        Action::Send {
            to: node_client_addr(&self.settings.node_client_prefix, &mac),
            packet: Packet::claim(self.settings.node, self.nonces.draw(), mac),
        }
    }

    fn info_packet(&mut self, mac: MacAddr, to: Ipv6Addr, addrs: Vec<Ipv6Addr>) -> Action {
        self.counters.count(Counter::InfosSent);
        Action::Send {
            to,
            // No PLAT: a C receiver would copy even an all-zero one over its
            // own NAT64 prefix (D2).
            packet: Packet::info(self.settings.node, self.nonces.draw(), mac, addrs),
        }
    }

    fn ack_packet(&mut self, mac: MacAddr, to: Ipv6Addr) -> Action {
        self.counters.count(Counter::AcksSent);
        Action::Send {
            to,
            packet: Packet::ack(self.settings.node, self.nonces.draw(), mac),
        }
    }
}

// ===== tests =====

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
