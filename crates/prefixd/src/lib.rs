//! prefixd: the set of client prefixes and, later, router advertisements.
//!
//! Today the prefixes are the configured `[mesh] client_prefixes`; gateway
//! announcements through babel and router advertisements arrive later.

pub mod babel;
mod config;
pub mod ra;
mod rpc;
pub mod selection;

pub mod announce;
pub mod kernel;
pub mod learned;
pub mod netlink;
pub mod uplink;

use std::ffi::OsString;
use std::process::ExitCode;

use l3roamd_daemon::{Context, DaemonError, DaemonInfo};
use l3roamd_rpc::pb::prefix_d_server::{PrefixDServer, SERVICE_NAME};

pub use config::PrefixdConfig;

/// This daemon's name, configuration section and description.
pub const INFO: DaemonInfo = DaemonInfo {
    name: "prefixd",
    section: "prefixd",
    about: "prefixd: client prefixes and router advertisements",
};

/// Runs prefixd with command-line `args` (`args[0]` is the program name).
pub fn main(args: Vec<OsString>) -> ExitCode {
    l3roamd_daemon::start(INFO, args, run)
}

/// The daemon, once configuration and logging are set up.
pub async fn run(ctx: Context) -> Result<(), DaemonError> {
    let config: PrefixdConfig = ctx.config.section(INFO.section)?;
    config.validate()?;
    let service = rpc::PrefixService::new(
        ctx.config.mesh.client_prefixes.clone(),
        config,
        ctx.shutdown.clone(),
    );
    l3roamd_rpc::serve(
        &ctx.socket,
        SERVICE_NAME,
        |router| router.add_service(PrefixDServer::new(service)),
        ctx.shutdown.requested(),
    )
    .await
    .map_err(|e| DaemonError::fatal("gRPC", e))
}
