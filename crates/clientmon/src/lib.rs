//! clientmon: knows which clients are attached to this node now.
//!
//! Its sources (nl80211 station events, the bridge FDB, the IPv6 neighbour
//! table, neighbour-discovery snooping) and its presence timeouts arrive with
//! the roaming work; today it serves its RPC API and says so honestly.

mod config;
mod rpc;

use std::ffi::OsString;
use std::process::ExitCode;

use l3roamd_daemon::{Context, DaemonError, DaemonInfo};
use l3roamd_rpc::pb::client_mon_server::{ClientMonServer, SERVICE_NAME};

pub use config::ClientmonConfig;

/// This daemon's name, configuration section and description.
pub const INFO: DaemonInfo = DaemonInfo {
    name: "clientmon",
    section: "clientmon",
    about: "clientmon: which clients are attached to this node",
};

/// Runs clientmon with command-line `args` (`args[0]` is the program name).
pub fn main(args: Vec<OsString>) -> ExitCode {
    l3roamd_daemon::start(INFO, args, run)
}

/// The daemon, once configuration and logging are set up.
pub async fn run(ctx: Context) -> Result<(), DaemonError> {
    let _config: ClientmonConfig = ctx.config.section(INFO.section)?;
    let service = rpc::ClientMonService;
    l3roamd_rpc::serve(
        &ctx.socket,
        SERVICE_NAME,
        |router| router.add_service(ClientMonServer::new(service)),
        ctx.shutdown.requested(),
    )
    .await
    .map_err(|e| DaemonError::fatal("gRPC", e))
}
