//! l3roamd-core: host routes, the TUN catch-all and the queue of held
//! packets; the only gRPC client of the other four daemons.

mod batch;
mod clientdb;
mod clientmon;
mod compat;
mod config;
pub mod ctl;
mod datapath;
mod engine;
mod held;
mod icmp;
mod kernel;
mod meshifs;
#[cfg(test)]
mod mock;
mod ndproxy;
mod netlink;
mod peers;
mod prefixd;
mod roaming;
mod rpc;
mod tun;

// Public for the fuzz targets (`fuzz/`): they read bytes from the TUN
// device, the data port and the kernel.
pub use held::addresses;
pub use icmp::unreachable_message;
pub use kernel::{Neighbour, Route};
pub use netlink::{neighbour_from, route_from};

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use l3roamd_daemon::{Context, DaemonError, DaemonInfo};
use l3roamd_rpc::pb::core_server::{CoreServer, SERVICE_NAME};
use tokio::sync::mpsc;

pub use config::CoreConfig;

/// This daemon's name, configuration section and description.
pub const INFO: DaemonInfo = DaemonInfo {
    name: "l3roamd-core",
    section: "core",
    about: "l3roamd-core: host routes, the TUN catch-all and the queue of held packets",
};

/// The daemons core is a client of, with their sections.
pub const PEERS: [DaemonInfo; 4] = [
    DaemonInfo {
        name: "clientmon",
        section: "clientmon",
        about: "",
    },
    DaemonInfo {
        name: "client-db",
        section: "client_db",
        about: "",
    },
    DaemonInfo {
        name: "ndproxy",
        section: "ndproxy",
        about: "",
    },
    DaemonInfo {
        name: "prefixd",
        section: "prefixd",
        about: "",
    },
];

/// Runs l3roamd-core with command-line `args` (`args[0]` is the program name).
pub fn main(args: Vec<OsString>) -> ExitCode {
    l3roamd_daemon::start(INFO, args, run)
}

/// The daemon, once configuration and logging are set up.
pub async fn run(ctx: Context) -> Result<(), DaemonError> {
    let started = Instant::now();
    let config: CoreConfig = ctx.config.section(INFO.section)?;
    config.validate()?;
    let mut peer_sockets = Vec::new();
    for peer in PEERS {
        peer_sockets.push((peer.name, ctx.config.socket_of(peer)?));
    }
    let clientmon_socket = ctx.config.socket_of(PEERS[0])?;
    let clientdb_socket = ctx.config.socket_of(PEERS[1])?;
    let ndproxy_socket = ctx.config.socket_of(PEERS[2])?;
    let prefixd_socket = ctx.config.socket_of(PEERS[3])?;
    // Subscribe to route changes before anything reads the tables, so that
    // no change falls between the dump and the first event.
    let routes = netlink::watch_routes(&netlink::route_filter(&config))
        .map_err(|e| DaemonError::fatal("route watch", e))?;
    let kernel = netlink::Netlink::connect(config.route_batch)
        .map_err(|e| DaemonError::fatal("netlink", e))?;
    let tun = tun::Tun::create(&config.tun_device)
        .map_err(|e| DaemonError::fatal(format!("TUN device {}", config.tun_device), e))?;
    let mesh_interfaces = meshifs::MeshInterfaces::new(
        ctx.config.mesh.mesh_interfaces.clone(),
        ctx.config.mesh.client_interfaces.clone(),
    );
    let auth = ctx
        .config
        .mesh
        .authenticator()
        .map_err(|e| DaemonError::fatal("mesh key", e))?;
    let data = datapath::DataPath::bind(
        ctx.config.mesh.data_port,
        mesh_interfaces.subscribe(),
        auth,
        ctx.config.mesh.node_address,
    )
    .map_err(|e| DaemonError::fatal("data path socket", e))?;
    let icmp = icmp::IcmpSender::open().map_err(|e| DaemonError::fatal("ICMPv6 socket", e))?;
    // Bound before the engine starts, so that a socket in the way stops
    // the daemon before it has changed the kernel's routes.
    let control_listener = match config.compat_socket() {
        Some(path) => Some((
            path.to_path_buf(),
            l3roamd_rpc::bind(path, ctx.config.runtime.socket_group.as_deref())
                .map_err(|e| DaemonError::fatal("core.compat_socket", e))?,
        )),
        None => None,
    };
    let parts = kernel::Parts::<kernel::Host> {
        kernel: kernel.clone(),
        routes,
        tun,
        data,
        icmp,
    };
    let (handle, queries) = engine::Handle::new();
    let (seek_tx, seek_rx) = mpsc::channel(QUEUE);
    let probes = seek_tx.clone();
    let (found_tx, found_rx) = mpsc::channel(QUEUE);
    let (presence_tx, presence_rx) = mpsc::channel(QUEUE);
    // A burst of arrivals (clientmon's snapshot, a restart) asks client-db
    // for a claim and a few updates per client, and prefixd for an arrival
    // per address, faster than one request at a time reaches them: room
    // for every client's, so that none is dropped. (tokio allocates a
    // channel's slots as they fill, 32 at a time.)
    let burst = QUEUE + PER_CLIENT * config.max_clients;
    let (db_command_tx, db_command_rx) = mpsc::channel(burst);
    let (db_event_tx, db_event_rx) = mpsc::channel(QUEUE);
    let (prefix_tx, prefix_rx) = mpsc::channel(QUEUE);
    let (arrival_tx, arrival_rx) = mpsc::channel(burst);
    let channels = engine::Channels {
        seeks: seek_tx,
        found: found_rx,
        presence: presence_rx,
        db_commands: db_command_tx,
        db_events: db_event_rx,
        prefixes: prefix_rx,
        arrivals: arrival_tx,
    };
    let mut engine = engine::Engine::new(
        ctx.config.mesh.clone(),
        config.clone(),
        parts,
        channels,
        queries,
    )?;
    engine.start().await?;
    let shutdown = &ctx.shutdown;
    tokio::spawn(ndproxy::run(
        ndproxy_socket.clone(),
        seek_rx,
        found_tx,
        shutdown.clone(),
    ));
    tokio::spawn(clientmon::run(
        clientmon_socket,
        presence_tx,
        shutdown.clone(),
    ));
    tokio::spawn(meshifs::push::<meshifs::NdProxy>(
        ndproxy_socket,
        mesh_interfaces.subscribe(),
        shutdown.clone(),
    ));
    tokio::spawn(meshifs::push::<meshifs::ClientDb>(
        clientdb_socket.clone(),
        mesh_interfaces.subscribe(),
        shutdown.clone(),
    ));
    let patterns = ctx.config.mesh.mesh_interface_patterns.clone();
    if !patterns.is_empty() {
        let mut excluded = ctx.config.mesh.client_interfaces.clone();
        excluded.extend(["lo".to_string(), config.tun_device.clone()]);
        tokio::spawn(meshifs::follow_patterns(
            mesh_interfaces.clone(),
            patterns,
            excluded,
            shutdown.clone(),
        ));
    }
    tokio::spawn(clientdb::run(
        clientdb_socket,
        db_command_rx,
        db_event_tx,
        shutdown.clone(),
    ));
    tokio::spawn(prefixd::run(
        prefixd_socket,
        arrival_rx,
        prefix_tx,
        shutdown.clone(),
    ));
    let peers = peers::Peers::start(peer_sockets, ctx.shutdown.clone());
    let compat_counters: l3roamd_compat::SharedCounters =
        Arc::new(Mutex::new(l3roamd_compat::Counters::default()));
    let service = Arc::new(
        rpc::CoreService::new(
            ctx.config.mesh.clone(),
            config,
            peers,
            kernel,
            handle.clone(),
            mesh_interfaces,
            started,
        )
        .with_compat_counters(compat_counters.clone()),
    );
    // The C control socket answers through the same service, in process.
    let control = control_listener.map(|(path, listener)| {
        let socket = compat::ControlSocket::new(service.clone(), handle, probes);
        compat::run(
            path,
            listener,
            socket,
            compat_counters,
            ctx.shutdown.clone(),
        )
    });
    let control = async move {
        if let Some(control) = control {
            control.await;
        }
    };
    let socket = ctx.socket.clone();
    let group = ctx.config.runtime.socket_group.clone();
    let shutdown = ctx.shutdown.clone();
    let server = async move {
        l3roamd_rpc::serve(
            &socket,
            group.as_deref(),
            SERVICE_NAME,
            |router| router.add_service(CoreServer::from_arc(service)),
            shutdown.requested(),
        )
        .await
        .map_err(|e| DaemonError::fatal("gRPC", e))
    };
    // All end on shutdown; the engine removes its routes before returning.
    let (served, ran, ()) = tokio::join!(server, engine.run(ctx.shutdown.clone()), control);
    served.and(ran)
}

/// Depth of each queue between the engine and its followers. A full queue
/// of requests drops (and counts) the request: seeks are repeated by the
/// held-packet timers and clientmon's snapshot brings every client back.
const QUEUE: usize = 256;

/// Requests to client-db (a claim and updates) and arrivals for prefixd
/// one client's arrival makes: room for them in the queues to both.
const PER_CLIENT: usize = 4;
