//! l3roamd-core: host routes, the TUN catch-all and the queue of held
//! packets; the only gRPC client of the other four daemons.

mod config;
mod netlink;
mod peers;
mod rpc;

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Instant;

use l3roamd_daemon::{Context, DaemonError, DaemonInfo};
use l3roamd_rpc::pb::core_server::{CoreServer, SERVICE_NAME};

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
    let kernel = netlink::Kernel::connect().map_err(|e| DaemonError::fatal("netlink", e))?;
    let peers = peers::Peers::start(peer_sockets, ctx.shutdown.clone());
    let service = rpc::CoreService::new(
        ctx.config.mesh.clone(),
        config,
        peers,
        kernel,
        started,
    );
    l3roamd_rpc::serve(
        &ctx.socket,
        SERVICE_NAME,
        |router| router.add_service(CoreServer::new(service)),
        ctx.shutdown.requested(),
    )
    .await
    .map_err(|e| DaemonError::fatal("gRPC", e))
}
