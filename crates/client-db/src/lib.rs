//! client-db: the client database (MAC → addresses with their last-seen
//! times, the nodes that served the client and when, multicast groups) and
//! the mesh protocol CLAIM / INFO / ACK that hands a roaming client's
//! addresses from the node it left to the node it joined.
//!
//! # Modules
//!
//! - [`db`]: the records and the rules for merging, capping and expiring them.
//! - [`events`]: the state machine (events in, actions out, time passed in):
//!   claims and their retries, answers to CLAIMs, releases, expiry.
//! - [`store`]: persistence behind a small trait (redb, sled, in memory).
//! - `mesh`: the UDP socket; `tasks`: the event loop; `rpc`: the
//!   `l3roamd.v1.ClientDb` service; [`config`]: `[client_db]`.
//!
//! # What core does with it
//!
//! 1. A client appears on this node: `Claim(mac)` **before** this node holds
//!    the client's node-client address. The CLAIM travels to that address;
//!    while this node holds it, the kernel delivers it to ourselves, where a
//!    CLAIM from our own node address is ignored, and the old node never
//!    hears of it. So core adds the node-client address on `ClaimDone`
//!    (answered or not), as the C daemon does. Claim also marks the client
//!    as served here. With the defaults an unanswered claim (a client new to
//!    the mesh) ends 4.8 s later (1 + 15 CLAIMs, 300 ms apart, then one more
//!    interval); core installs host routes for what it sees meanwhile, it
//!    only holds back the node-client address.
//! 2. `ClaimDone { answered: true }` comes after an `updated` carrying the old
//!    node's addresses: core installs host routes for the routable ones (never
//!    for `fe80::/10`; those only tell the MAC's link-local address).
//! 3. While it serves the client, core calls `Update(mac, addresses seen)`
//!    when it learns an address, **and at least every `record_ttl_secs / 2`**
//!    as a refresh: a record (and each address in it) expires
//!    `record_ttl_secs` after its last update, and a client without a record
//!    is not released when another node claims it.
//! 4. `release { mac, claimed_by }` on the watch stream: another node claimed
//!    a client served here. Core removes its host routes and its node-client
//!    address. The INFO answer is client-db's business.
//! 5. The client left (clientmon's timeout): `Forget(mac)`. The record stays,
//!    to answer a later CLAIM with the client's addresses.
//!
//! # Sharing UDP port 5523 with ndproxy
//!
//! ndproxy binds `[ff02::5523%IF]:5523` per mesh interface and gets the
//! flooded SEEKs; client-db binds `[::]:5523` with `IPV6_MULTICAST_ALL` off
//! and gets the unicast CLAIM/INFO/ACK to the node address and node-client
//! addresses; both set `SO_REUSEADDR`. Each datagram reaches exactly one of
//! them (details in `mesh.rs`). Datagrams from a client interface are
//! refused; off the mesh interfaces only those sent to our node address or a
//! node-client address are read. Packets are sent from the node address
//! (`IPV6_PKTINFO`), source port 5523, header ttl 1, a fresh random nonce
//! each (retransmissions too), and never re-flooded.
//!
//! # INFO size and C nodes
//!
//! An INFO carries at most `client_db.info_max_addresses` addresses (default
//! 15: one BASIC segment, the C daemon's own `INFO_MAX`); when a client has
//! more, the routable ones seen most recently are chosen. C nodes are
//! reported to crash on INFOs of about 5 addresses (the C daemon sends up to
//! 15 itself, so a C-only mesh has the same exposure): a mesh that still has C
//! nodes should set 4 ([`l3roamd_intercom::C_SAFE_INFO_ADDRS`]). We send no
//! PLAT segment (a C receiver would overwrite its NAT64 prefix with it).
//!
//! # Storage: redb, not sled
//!
//! The design card chose sled, but client-db must stay within 4 MB RSS with
//! 1,000 clients on a 64 MB router, and sled 0.34.7 cannot. Measured on
//! x86_64 (glibc, release profile), 1,000 records of three addresses each,
//! written, flushed and read back; RSS is `/proc/self/status` VmRSS:
//!
//! | store | RSS added | of it at open | threads added | file |
//! |---|---|---|---|---|
//! | in memory (our encoding alone, for reference) | 0.65 MB | 0 | 0 | none |
//! | redb 4.5, 256 KiB cache | 1.3 MB | 0.65 MB | 0 | 390 KiB |
//! | sled 0.34.7, defaults | 24 MB | 21.8 MB | 8 | 425 KiB |
//! | sled 0.34.7, 64 KiB cache, `Mode::LowSpace`, `flush_every_ms(None)` | 24 MB | 21.9 MB | 7 | 425 KiB |
//!
//! ```text
//! cargo run --release -p client-db --features sled --example store_footprint
//! ```
//!
//! And the whole daemon with 1,000 clients filled in by `Update` (the
//! standalone `client-db` binary, 3 MB; `scripts/memory-budget.sh`, which
//! uses `examples/fill_clients.rs`):
//!
//! | backend | VmRSS | private (RssAnon) | file-backed (RssFile) | threads |
//! |---|---|---|---|---|
//! | redb, no client yet | 4.8 MB | 0.8 MB | 4.0 MB | 1 |
//! | redb | 5.6 MB | 1.6 MB | 4.0 MB | 1 |
//! | memory | 5.4 MB | 1.6 MB | 3.9 MB | 1 |
//! | sled | 28.6 MB | 24.3 MB | 4.3 MB | 8 |
//!
//! The file-backed part is the binary's and libc's pages, shared with every
//! process mapping them (on a router the five daemons run one multicall
//! binary); what client-db itself costs is the private part: 1.6 MB with
//! 1,000 clients on redb (0.8 KB per client), 24 MB on sled. sled's cost is
//! there as soon as a database is opened, whatever its `cache_capacity`,
//! mode or flush setting: its threads (a flusher and an I/O pool) with their
//! allocator arenas, and its in-memory page table. So redb is the default
//! backend; sled remains as the cargo feature `sled`
//! (`client_db.backend = "sled"`, refused naming the key in builds without
//! it). On tmpfs (which is RAM) the redb file holds about 200 KB per 1,000
//! clients after its compaction at start and levels off at about 520 KB under
//! constant rewriting.
//!
//! Writes are batched: changed records are written every
//! `client_db.flush_interval_ms` (default 1 s) in one transaction, so a crash
//! loses at most that much and a burst of packets costs one fsync.
//!
//! # Checking it
//!
//! `cargo test -p client-db` runs the state machine's tests (time in the
//! test's hands, C vectors byte for byte), the stores' (including damaged
//! redb files) and the daemon's gRPC service over a UNIX socket, all without
//! root. As root, `scripts/two-node-lab.sh` runs two daemons in two network
//! namespaces: a real CLAIM / INFO / ACK compared with the C vectors 7-9, the
//! watch streams, a restart, an unanswered claim and the port sharing with a
//! stand-in for ndproxy; `scripts/memory-budget.sh` measures the daemon with
//! N clients per backend.
//!

pub mod config;
pub mod db;
pub mod events;
mod mesh;
mod rpc;
pub mod store;
mod tasks;

use std::ffi::OsString;
use std::process::ExitCode;

use l3roamd_daemon::{Context, DaemonError, DaemonInfo};
use l3roamd_rpc::pb::client_db_server::{ClientDbServer, SERVICE_NAME};

pub use config::ClientDbConfig;

/// This daemon's name, configuration section and description.
pub const INFO: DaemonInfo = DaemonInfo {
    name: "client-db",
    section: "client_db",
    about: "client-db: the distributed client database and the mesh CLAIM/INFO/ACK",
};

/// Runs client-db with command-line `args` (`args[0]` is the program name).
pub fn main(args: Vec<OsString>) -> ExitCode {
    l3roamd_daemon::start(INFO, args, run)
}

/// The daemon, once configuration and logging are set up.
pub async fn run(ctx: Context) -> Result<(), DaemonError> {
    let config: ClientDbConfig = ctx.config.section(INFO.section)?;
    config.validate()?;
    let mesh = &ctx.config.mesh;
    if mesh.mesh_interfaces.is_empty() {
        tracing::warn!("mesh.mesh_interfaces is empty: only packets to our own addresses are read");
    }
    let (handle, event_loop) =
        tasks::EventLoop::new(mesh, &config).map_err(|e| DaemonError::fatal("client-db", e))?;
    let event_loop = tokio::spawn(event_loop.run(ctx.shutdown.clone()));
    let service = rpc::ClientDbService::new(handle, mesh.node_client_prefix, ctx.shutdown.clone());
    let served = l3roamd_rpc::serve(
        &ctx.socket,
        ctx.config.runtime.socket_group.as_deref(),
        SERVICE_NAME,
        |router| router.add_service(ClientDbServer::new(service)),
        ctx.shutdown.requested(),
    )
    .await
    .map_err(|e| DaemonError::fatal("gRPC", e));
    if served.is_err() {
        // Without its socket nobody can reach the loop (this fails at start).
        event_loop.abort();
    }
    let _ = event_loop.await;
    served
}
