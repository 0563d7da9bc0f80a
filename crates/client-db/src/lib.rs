//! client-db: the client database (MAC → addresses, serving nodes) and the
//! mesh protocol CLAIM / INFO / ACK.
//!
//! The store and the mesh protocol arrive with the roaming work; today it
//! serves its RPC API and says so honestly.

mod config;
mod rpc;

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
    let service = rpc::ClientDbService;
    l3roamd_rpc::serve(
        &ctx.socket,
        SERVICE_NAME,
        |router| router.add_service(ClientDbServer::new(service)),
        ctx.shutdown.requested(),
    )
    .await
    .map_err(|e| DaemonError::fatal("gRPC", e))
}
