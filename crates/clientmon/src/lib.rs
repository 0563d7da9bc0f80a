//! clientmon: knows which clients are attached to this node now.
//!
//! Four sources watch the client links, each through its own adapter:
//! nl80211 station events and dumps on the wireless client interfaces
//! ([`nl80211`]), the client bridge's forwarding database and the IPv6
//! neighbour table through rtnetlink ([`netlink`]), and neighbour-discovery
//! and MLD frames snooped on every port (`snoop`, decoded by [`packet`]).
//! Their events feed one state machine ([`presence`]) with its own presence
//! timeout, run by one loop (`tasks`); core follows the result through
//! the `l3roamd.v1.ClientMon` watch stream (`rpc`).

pub mod config;
pub mod links;
pub mod netlink;
pub mod nl80211;
pub mod packet;
pub mod presence;
mod rpc;
mod snoop;
mod tasks;

use std::ffi::OsString;
use std::process::ExitCode;

use l3roamd_daemon::{Context, DaemonError, DaemonInfo};
use l3roamd_rpc::pb::client_mon_server::{ClientMonServer, SERVICE_NAME};
use tokio::sync::watch;

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
    let config: ClientmonConfig = ctx.config.section(INFO.section)?;
    config.validate()?;
    let mesh = &ctx.config.mesh;
    if mesh.client_interfaces.is_empty() && config.wireless_interfaces.is_empty() {
        tracing::warn!(
            "no client interfaces (mesh.client_interfaces, clientmon.wireless_interfaces): no client will ever be seen"
        );
    }
    tracing::info!(
        client_interfaces = ?mesh.client_interfaces,
        wireless_interfaces = ?config.wireless_interfaces,
        presence_timeout_secs = config.presence_timeout_secs,
        snoop = config.snoop,
        "watching client links"
    );

    let (handle, inputs) = tasks::spawn(config.presence_settings(mesh), ctx.shutdown.clone());
    let links = links::Links::new(
        mesh.client_interfaces.clone(),
        config.wireless_interfaces.clone(),
    );
    let (published, links_rx) = watch::channel(links.clone());
    tokio::spawn(netlink::run(
        links,
        published,
        inputs.clone(),
        config.resync_interval(),
        ctx.shutdown.clone(),
    ));
    if config.snoop {
        tokio::spawn(snoop::run(
            links_rx.clone(),
            inputs.clone(),
            ctx.shutdown.clone(),
        ));
    }
    if !config.wireless_interfaces.is_empty() {
        tokio::spawn(nl80211::run(
            config.wireless_interfaces.clone(),
            links_rx,
            inputs,
            config.resync_interval(),
            ctx.shutdown.clone(),
        ));
    }

    let service = rpc::ClientMonService::new(handle, ctx.shutdown.clone());
    l3roamd_rpc::serve(
        &ctx.socket,
        ctx.config.runtime.socket_group.as_deref(),
        SERVICE_NAME,
        |router| router.add_service(ClientMonServer::new(service)),
        ctx.shutdown.requested(),
    )
    .await
    .map_err(|e| DaemonError::fatal("gRPC", e))
}
