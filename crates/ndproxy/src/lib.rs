//! ndproxy: neighbour discovery on client links and the mesh SEEK.
//!
//! On a seek from core it floods a SEEK on the mesh and solicits the address
//! on this node's client links at the same time; on a SEEK from the mesh it
//! solicits locally and re-floods it. A client that answers a solicitation
//! for an address somebody sought recently is reported on the watch stream,
//! with the node addresses that sought it (`sought_by`), so core can install
//! the host route and tell those nodes directly.
//!
//! # Modules
//!
//! - [`seek`]: the state machine (events in, actions out, time passed in):
//!   duplicate suppression, rate limits and backoff, re-flooding, answers.
//! - [`nd`]: neighbour solicitation/advertisement encode and decode.
//! - [`dad`]: mesh-wide duplicate address defence (probe decoding, the
//!   kernel's host routes as evidence, the decision and its rate limits).
//! - `mesh`, `icmp`, `pktinfo`, `links`: the adapters (UDP multicast
//!   socket, raw ICMPv6 socket, ancillary data, interface lookup).
//! - `tasks`: the event loop that owns the state machine and the sockets.
//! - `rpc`: the `l3roamd.v1.NdProxy` gRPC service; [`config`]: `[ndproxy]`.
//!
//! # Sharing UDP port 5523 with client-db
//!
//! SEEKs arrive by multicast to `ff02::5523`, CLAIM/INFO/ACK by unicast, all
//! on port 5523. ndproxy opens one UDP socket per mesh interface bound to
//! `[ff02::5523%IF]:5523` with `SO_REUSEADDR` and joins the group on that
//! interface. A socket bound to the group address only matches datagrams
//! addressed to the group, so it never sees the unicast packets. (Linux
//! refuses to bind a link-local multicast address without an interface,
//! hence one socket per mesh interface, each receiving only what arrived on
//! its own interface.) client-db binds `[::]:5523`, also with
//! `SO_REUSEADDR`, and sets `IPV6_MULTICAST_ALL` to 0 so that the multicast
//! groups joined by ndproxy's sockets are not delivered to it; it thus gets
//! the unicast packets only, and every datagram reaches exactly one owner.
//! Both sockets need `SO_REUSEADDR`, or the second bind fails with
//! `EADDRINUSE`. ndproxy sends its SEEKs from the same group-bound sockets
//! (so the source port is 5523) with `sendmsg` and `IPV6_PKTINFO` naming
//! the node address as source and the mesh interface, with IPv6 hop limit 1
//! and multicast loopback off; this is what C nodes send too (vectors 1-6).
//! The node address must be assigned to a local interface (as babel
//! requires anyway), or the kernel refuses the source and the send is
//! counted in `mesh_send_errors`.

pub mod config;
pub mod dad;
mod icmp;
mod links;
mod mesh;
pub mod nd;
use l3roamd_net::pktinfo;
mod rpc;
pub mod seek;
mod tasks;

/// Public for the fuzz targets (`fuzz/`): it reads text from /proc.
pub use links::{parse_if_inet6, IfAddr};

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
    let config: NdproxyConfig = ctx.config.section(INFO.section)?;
    config.validate()?;
    let mesh = &ctx.config.mesh;
    if mesh.mesh_interfaces.is_empty() {
        tracing::warn!("mesh.mesh_interfaces is empty: SEEKs are neither sent nor received");
    }
    if mesh.client_interfaces.is_empty() {
        tracing::warn!("mesh.client_interfaces is empty: nothing is solicited");
    }
    let (handle, event_loop) =
        tasks::EventLoop::new(mesh, &config).map_err(|e| DaemonError::fatal("ndproxy", e))?;
    let event_loop = tokio::spawn(event_loop.run(ctx.shutdown.clone()));
    let service = rpc::NdProxyService::new(mesh, handle, ctx.shutdown.clone());
    let served = l3roamd_rpc::serve(
        &ctx.socket,
        ctx.config.runtime.socket_group.as_deref(),
        SERVICE_NAME,
        |router| router.add_service(NdProxyServer::new(service)),
        ctx.shutdown.requested(),
    )
    .await
    .map_err(|e| DaemonError::fatal("gRPC", e));
    if served.is_err() {
        event_loop.abort();
    }
    let _ = event_loop.await;
    served
}
