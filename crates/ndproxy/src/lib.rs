//! ndproxy: neighbour discovery on client links and the mesh SEEK.
//!
//! On a seek from core it floods a SEEK on the mesh and solicits the address
//! on this node's client links; on a SEEK from the mesh it re-floods it and
//! solicits locally. Clients that answer are reported on the watch stream.

mod config;
mod rpc;

use std::ffi::OsString;
use std::process::ExitCode;

use l3roamd_daemon::{Context, DaemonError, DaemonInfo};
use l3roamd_rpc::pb::nd_proxy_server::{NdProxyServer, SERVICE_NAME};

pub use config::NdproxyConfig;

/// This daemon's name, configuration section and description.
pub const INFO: DaemonInfo = DaemonInfo {
    name: "ndproxy",
    section: "ndproxy",
    about: "ndproxy: neighbour discovery on client links and the mesh SEEK",
};

/// Runs ndproxy with command-line `args` (`args[0]` is the program name).
pub fn main(args: Vec<OsString>) -> ExitCode {
    l3roamd_daemon::start(INFO, args, run)
}

/// The daemon, once configuration and logging are set up.
pub async fn run(ctx: Context) -> Result<(), DaemonError> {
    let _config: NdproxyConfig = ctx.config.section(INFO.section)?;
    let service = rpc::NdProxyService::new(&ctx.config.mesh);
    l3roamd_rpc::serve(
        &ctx.socket,
        SERVICE_NAME,
        |router| router.add_service(NdProxyServer::new(service)),
        ctx.shutdown.requested(),
    )
    .await
    .map_err(|e| DaemonError::fatal("gRPC", e))
}
