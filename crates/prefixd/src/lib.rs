//! prefixd: the client prefixes of the mesh and router advertisements.
//!
//! On a gateway it announces prefixes into babel as source-specific
//! default routes ([`announce`], [`netlink`]); on every node it learns the
//! prefixes from babel ([`babel`], or the kernel's routes: [`learned`]),
//! picks those suitable for its clients ([`selection`]), advertises them
//! on the client links ([`ra`]) and tells core which prefixes clients use
//! ([`rpc`], WatchPrefixes). docs/design-notes.md, "Client prefixes",
//! tells the whole story.

pub mod babel;
mod config;
pub mod ra;
mod rpc;
pub mod selection;
pub mod tasks;

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
    // Subscribe before the first dump, so no change falls in between.
    let events = netlink::watch().map_err(|e| DaemonError::fatal("netlink watch", e))?;
    let kernel = netlink::Netlink::connect().map_err(|e| DaemonError::fatal("netlink", e))?;
    let (babel_tx, babel_rx) = babel::BabelClient::channel();
    let babel = babel::BabelClient::from_config(&config.babel()).map(|c| (c, babel_tx));
    let (published_tx, published_rx) = tokio::sync::watch::channel(Vec::new());
    let (query_tx, query_rx) = tokio::sync::mpsc::channel(64);
    let mut node = tasks::Node::new(
        config,
        ctx.config.mesh.clone(),
        kernel,
        babel_rx,
        published_tx,
        std::time::Instant::now(),
    );
    node.start().await;
    let service = rpc::PrefixService::new(published_rx, query_tx, ctx.shutdown.clone());
    tokio::spawn(tasks::run(
        node,
        events,
        babel,
        query_rx,
        ctx.shutdown.clone(),
    ));
    l3roamd_rpc::serve(
        &ctx.socket,
        ctx.config.runtime.socket_group.as_deref(),
        SERVICE_NAME,
        |router| router.add_service(PrefixDServer::new(service)),
        ctx.shutdown.requested(),
    )
    .await
    .map_err(|e| DaemonError::fatal("gRPC", e))
}
