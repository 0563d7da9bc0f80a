//! The lab: a chain (or a grid, [`LabOptions::grid`]) of mesh nodes in network namespaces.
//!
//! ```text
//!   gw ──── n1 ──── n2 ──── ... ──── nN        (veth, babeld on every m-* link)
//!           │       │                │
//!       br-client br-client      br-client     (+ local-node macvlan, fe80::1)
//!           │
//!           c1                                  (client namespace, fddd:1::/64)
//! ```
//!
//! A grid ([`Topology::Grid`]) links each node to its right and lower
//! neighbours instead, the classic gateway still to n1 (a corner):
//!
//! ```text
//!   gw ── n1 ── n2 ── n3
//!          │     │     │
//!         n4 ── n5 ── n6
//! ```
//!
//! That classic gateway runs babeld only and stands for the internet
//! itself (`2001:db8::1` on its `lo`). For client-prefix tests
//! ([`LabOptions::two_gateways`], or any [`LabOptions::gateways`]) the
//! gateways are nodes like the others (client bridge, babeld, our five
//! daemons) with an uplink `up0` to the `inet` namespace, as a Gluon node
//! with a WAN port is; each owns one client prefix, which `inet` routes to it:
//!
//! ```text
//!            inet (2001:db8:ff::1 on lo; 2001:db8:a::/64 → gw, 2001:db8:b::/64 → gw2)
//!           u-gw│                     │u-gw2
//!            up0│                     │up0
//!             gw ──── n1 ── ... ── nN ──── gw2
//! ```
//!
//! Every namespace is named `l3r-<id>-<name>` with a per-lab random id, so
//! two labs can run side by side; all files live in `/tmp/l3r-<id>/<name>/`.
//! The [`Lab`] remembers every namespace and process it created and removes
//! exactly those when dropped, also while a failing test unwinds (it then
//! prints routes and log tails first).

use std::collections::hash_map::RandomState;
use std::ffi::OsString;
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv6Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::audit::{Audit, Expect, Neighbour, NodeTable};
use crate::babel::{self, BabelConfig, BabelDump, BabelMonitor, BabelRole};
use crate::cmd;
use crate::daemons::{BinDir, Daemon, DaemonConfig, Emulated, Launch};
use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::netns::{self as netns_mod, ClientAddress};
use crate::ping::{self, PingResult};
use crate::prefix::{eui64_interface_id, Ipv6Prefix};
use crate::process::{tail_file_filtered, ManagedProcess, ProcessUsage, STOP_GRACE};
use crate::ra::{self, NdCapture, NdMessage, NdSender, PrefixInformation};
use crate::routes::Route;
use crate::topology::{self, Topology};
use crate::wait::{self, Check};
use crate::{
    CLIENT_BRIDGE, CLIENT_PREFIX, GATEWAY, GATEWAY2, GATEWAY_NODE_ADDRESS, INET, INTERNET_ADDRESS,
    INTERNET_HOST, KEEP_ENV, NEXT_NODE_ADDRESS, NEXT_NODE_IFACE, NEXT_NODE_MAC,
    NODE_ADDRESS_PREFIX, PREFIX_A, PREFIX_B, PREFIX_PROTOCOL_FIRST, UPLINK_GATEWAY_ADDRESS,
    UPLINK_IFACE, UPLINK_INET_ADDRESS,
};

/// How long a daemon may take from start until its socket accepts connections.
pub const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long mesh links may take to come up with link-local addresses.
pub const LINK_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest chain the address plan allows (node addresses `fdff::1`..; the gateway is `fdff::ff`).
pub const MAX_NODES: usize = 200;

/// Log lines left out of failure reports: HTTP/2 frame traces drown the daemons' own lines.
const REPORT_SKIP: &[&str] = &["frame=", "Connection{peer="];

/// Environment variable with extra babeld lines (see [`LabOptions::babel_extra`]).
pub const BABEL_EXTRA_ENV: &str = "L3ROAMD_LAB_BABEL_EXTRA";

/// Interface name of a client inside its own namespace.
pub const CLIENT_IFACE: &str = "eth0";

/// What kind of lab to build.
#[derive(Debug, Clone, PartialEq)]
pub struct LabOptions {
    /// Number of mesh nodes (besides the gateway).
    pub nodes: usize,
    /// How the nodes are linked ([`Topology::Chain`] by default); the
    /// classic gateway is always linked to n1.
    pub topology: Topology,
    /// babeld hello interval on every mesh link (babeld's default is 4 s).
    pub hello_interval: Duration,
    /// babeld debug level (`-d`); 0 for quiet logs.
    pub babel_debug: u8,
    /// Keep `/tmp/l3r-<id>` after teardown (default: env `L3ROAMD_LAB_KEEP=1`).
    pub keep_dir: bool,
    /// Extra babeld configuration lines for every member, after the
    /// interface defaults (default: env `L3ROAMD_LAB_BABEL_EXTRA`, lines
    /// separated by `;`, e.g. `default split-horizon false`). For experiments.
    pub babel_extra: Vec<String>,
    /// Uplink gateways. Empty: the classic chain with the babeld-only
    /// gateway `gw` before n1. Otherwise no classic gateway, but these
    /// gateways, each linked to one chain node and by its uplink to `inet`.
    pub gateways: Vec<GatewayAttachment>,
}

/// An uplink gateway of a lab: a node with an uplink to `inet` owning one client prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayAttachment {
    /// Lab name (≤ 13 characters), e.g. `gw`.
    pub name: String,
    /// The chain node it has its mesh link to: 1 for n1, ...
    pub attach_to: usize,
    /// The client prefix `inet` routes to it.
    pub prefix: Ipv6Prefix,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            nodes: 4,
            topology: Topology::Chain,
            hello_interval: Duration::from_secs(1),
            babel_debug: 0,
            keep_dir: std::env::var(KEEP_ENV).is_ok_and(|v| v == "1"),
            babel_extra: std::env::var(BABEL_EXTRA_ENV)
                .map(|v| {
                    v.split(';')
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            gateways: Vec::new(),
        }
    }
}

impl LabOptions {
    /// A chain of `nodes` nodes with the default options.
    pub fn chain(nodes: usize) -> Self {
        LabOptions {
            nodes,
            ..LabOptions::default()
        }
    }

    /// A `rows` × `cols` grid of nodes (see [`Topology::Grid`]) with the
    /// classic gateway linked to n1 (a corner): many paths between nodes.
    pub fn grid(rows: usize, cols: usize) -> Self {
        LabOptions {
            nodes: rows * cols,
            topology: Topology::Grid { rows, cols },
            ..LabOptions::default()
        }
    }

    /// The prefix lab: a chain of `nodes` nodes with gateway `gw` (prefix
    /// A, [`PREFIX_A`]) beside n1 and `gw2` (prefix B, [`PREFIX_B`]) beside nN.
    pub fn two_gateways(nodes: usize) -> Self {
        LabOptions {
            nodes,
            gateways: vec![
                GatewayAttachment {
                    name: GATEWAY.into(),
                    attach_to: 1,
                    prefix: PREFIX_A,
                },
                GatewayAttachment {
                    name: GATEWAY2.into(),
                    attach_to: nodes,
                    prefix: PREFIX_B,
                },
            ],
            ..LabOptions::default()
        }
    }
}

/// What a member of the mesh is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeRole {
    /// The classic gateway before n1: babeld only, the internet address on `lo`.
    ClassicGateway,
    /// A mesh node of the chain.
    Node,
    /// A node with an uplink `up0` to `inet`, owning `prefix`.
    UplinkGateway {
        /// The client prefix `inet` routes to this gateway.
        prefix: Ipv6Prefix,
        /// The uplink's other end, in the `inet` namespace (`u-<name>`).
        inet_iface: String,
    },
}

/// A mesh node or the gateway: one namespace with babeld.
#[derive(Debug, Clone)]
pub struct Node {
    /// Lab name: `gw`, `n1`, `n2`, ...
    pub name: String,
    /// Its namespace.
    pub netns: Netns,
    /// Its node address (on `lo`).
    pub address: Ipv6Addr,
    /// Its mesh interfaces, e.g. `["m-gw", "m-n2"]`.
    pub mesh_interfaces: Vec<String>,
    /// Its directory of configuration, logs and sockets.
    pub dir: PathBuf,
    /// MAC of its client bridge (`None` on the classic gateway, which has none).
    pub bridge_mac: Option<String>,
    /// What it is.
    pub role: NodeRole,
}

impl Node {
    /// True for the classic gateway (babeld only, no clients, no daemons);
    /// false for an uplink gateway, which is a node like the others.
    pub fn is_gateway(&self) -> bool {
        self.role == NodeRole::ClassicGateway
    }

    /// True for a gateway with an uplink to `inet`.
    pub fn is_uplink_gateway(&self) -> bool {
        matches!(self.role, NodeRole::UplinkGateway { .. })
    }

    /// The client prefix an uplink gateway owns.
    pub fn uplink_prefix(&self) -> Option<Ipv6Prefix> {
        match &self.role {
            NodeRole::UplinkGateway { prefix, .. } => Some(*prefix),
            _ => None,
        }
    }

    /// Addresses this node announces into babel.
    pub fn announced_addresses(&self) -> Vec<Ipv6Addr> {
        if self.is_gateway() {
            vec![self.address, INTERNET_ADDRESS]
        } else {
            vec![self.address]
        }
    }

    /// Runs `args` inside the node's namespace; stdout, or an error with context.
    pub fn exec(&self, args: &[&str]) -> Result<String> {
        self.netns.exec(args)
    }

    /// Runs `ip -n NS args...`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        self.netns.ip(args)
    }

    /// IPv6 routes of the main table.
    pub fn routes(&self) -> Result<Vec<Route>> {
        self.netns.routes()
    }

    /// True if the main table has a usable babel route to host `addr`.
    pub fn has_babel_route(&self, addr: Ipv6Addr) -> Result<bool> {
        Ok(self
            .routes()?
            .iter()
            .any(|r| r.is_babel_unicast() && r.is_host(addr)))
    }

    /// Where the daemons' shared configuration file is written.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("l3roamd.toml")
    }

    /// Socket of `daemon` on this node.
    pub fn socket(&self, daemon: Daemon) -> PathBuf {
        self.dir.join("run").join(daemon.socket_file())
    }

    /// Where core serves the C daemon's control socket on this node.
    pub fn compat_socket(&self) -> PathBuf {
        self.dir.join("run").join("l3roamd.sock")
    }

    /// Log file of `daemon` on this node.
    pub fn daemon_log(&self, daemon: Daemon) -> PathBuf {
        self.dir.join(format!("{}.log", daemon.binary()))
    }

    /// babeld's control socket (`local-path`, a UNIX stream socket,
    /// `/tmp/l3r-<id>/<node>/babel.sock`): the socket prefixd is given.
    pub fn babel_socket(&self) -> PathBuf {
        self.dir.join("babel.sock")
    }
}

/// A client: one namespace with one interface plugged into a node's client bridge.
#[derive(Debug, Clone)]
pub struct Client {
    /// Lab name: `c1`, ...
    pub name: String,
    /// Its namespace.
    pub netns: Netns,
    /// Its interface inside its namespace ([`CLIENT_IFACE`]).
    pub iface: String,
    /// The peer interface, a port of some node's client bridge (`c-<name>`).
    pub node_iface: String,
    /// Its MAC address (fixed, so the client is recognisable after roaming).
    pub mac: String,
    /// Its static address from the client prefix; `::` for a SLAAC client,
    /// whose addresses come from RAs ([`Client::slaac_address`], [`Client::addresses`]).
    pub address: Ipv6Addr,
    /// The node it is attached to now.
    pub node: String,
    /// How it got its addresses.
    pub addressing: ClientAddressing,
    mac_octets: [u8; 6],
}

/// How a client configures its addresses and default route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAddressing {
    /// A static address from the client prefix, a static default route via
    /// `fe80::1`, no DAD, no RAs accepted ([`Lab::add_client`]).
    Static,
    /// Everything from RAs: SLAAC (EUI-64), DAD, RA-learned default routes ([`Lab::add_slaac_client`]).
    Slaac,
}

impl Client {
    /// The client's node-client address in `fec0::/64` (modified EUI-64 of
    /// its MAC), held by the node serving it; CLAIMs are sent there.
    pub fn node_client_address(&self) -> Option<Ipv6Addr> {
        Some(self.slaac_address(Ipv6Prefix::new(
            Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
            64,
        )))
    }

    /// The address SLAAC forms in the /64 `prefix`: the modified EUI-64 of the MAC.
    pub fn slaac_address(&self, prefix: Ipv6Prefix) -> Ipv6Addr {
        prefix.with_interface_id(eui64_interface_id(self.mac_octets))
    }

    /// The client's link-local address (`fe80::` + EUI-64 of its MAC).
    pub fn link_local(&self) -> Ipv6Addr {
        self.slaac_address(Ipv6Prefix::new(
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
            64,
        ))
    }

    /// The MAC as octets.
    pub fn mac_octets(&self) -> [u8; 6] {
        self.mac_octets
    }

    /// The IPv6 addresses of its interface with lifetimes and DAD state.
    pub fn addresses(&self) -> Result<Vec<ClientAddress>> {
        let json = self.ip(&["-j", "-6", "addr", "show", "dev", &self.iface])?;
        netns_mod::parse_addresses(&json, &self.iface)
    }

    /// Its default routes (for a SLAAC client those learned from RAs, `proto ra`).
    pub fn default_routes(&self) -> Result<Vec<Route>> {
        Ok(self
            .netns
            .routes()?
            .into_iter()
            .filter(|r| r.dst == "default")
            .collect())
    }

    /// Waits until the client has an address in `prefix` that passed DAD
    /// and, if `preferred`, is preferred (not deprecated); returns it.
    pub fn wait_for_address(
        &self,
        prefix: Ipv6Prefix,
        preferred: bool,
        timeout: Duration,
    ) -> Result<ClientAddress> {
        let what = if preferred { "a preferred" } else { "an" };
        wait::until(
            &format!("{what} address in {prefix} on {}", self.name),
            timeout,
            || {
                let addrs = self.addresses()?;
                let found = addrs.iter().find(|a| {
                    prefix.contains(a.addr)
                        && !a.tentative
                        && !a.dad_failed
                        && (!preferred || a.is_preferred())
                });
                Ok(match found {
                    Some(a) => Check::Ready(a.clone()),
                    None => Check::Pending(format!("addresses: {addrs:?}")),
                })
            },
        )
    }

    /// Sends a router solicitation from its link-local address and waits up
    /// to `timeout` for the first RA on its interface: how long it took and
    /// the RA, or `None` if no router answered (or advertised) in time.
    pub fn solicit_router(&self, timeout: Duration) -> Result<Option<(Duration, NdMessage)>> {
        ra::solicit_router(
            &self.netns.path(),
            &self.iface,
            self.mac_octets,
            self.link_local(),
            timeout,
        )
    }

    /// Every RA arriving on its interface during `duration` (solicited or not).
    pub fn capture_ras(&self, duration: Duration) -> Result<Vec<NdMessage>> {
        ra::capture_ras(&self.netns.path(), &self.iface, duration)
    }

    /// Runs `args` inside the client's namespace.
    pub fn exec(&self, args: &[&str]) -> Result<String> {
        self.netns.exec(args)
    }

    /// Runs `ip -n NS args...`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        self.netns.ip(args)
    }
}

/// A daemon process of one node.
#[derive(Debug)]
struct RunningDaemon {
    node: String,
    daemon: Daemon,
    process: ManagedProcess,
}

/// A running lab; everything it created goes away when it is dropped.
#[derive(Debug)]
pub struct Lab {
    id: String,
    dir: PathBuf,
    ip: PathBuf,
    options: LabOptions,
    /// The classic gateway (if any), then n1..nN, then the uplink gateways.
    members: Vec<Node>,
    /// The internet of a lab with uplink gateways.
    inet: Option<Netns>,
    clients: Vec<Client>,
    created: Vec<Netns>,
    babeld: Vec<ManagedProcess>,
    daemons: Vec<RunningDaemon>,
    /// The configuration each node's daemons were last started with.
    configs: Vec<(String, DaemonConfig)>,
    bin_dir: Option<BinDir>,
    /// Nodes whose daemons run under an emulator (see [`Lab::emulate_node`]).
    emulated: Vec<(String, Emulated)>,
    torn_down: bool,
}

impl Lab {
    /// Builds the chain topology (namespaces, links, addresses, bridges); starts no process.
    pub fn new(options: LabOptions) -> Result<Lab> {
        if options.nodes == 0 || options.nodes > MAX_NODES {
            return Err(Error::Usage(format!(
                "a chain needs 1 to {MAX_NODES} nodes, not {}",
                options.nodes
            )));
        }
        check_gateways(&options)?;
        if let Some(n) = options
            .topology
            .fixed_nodes()
            .filter(|n| *n != options.nodes)
        {
            return Err(Error::Usage(format!(
                "{:?} has {n} nodes, but the options ask for {}",
                options.topology, options.nodes
            )));
        }
        let ip = cmd::tool("ip")?;
        let (id, dir) = claim_lab_dir()?;
        let mut lab = Lab {
            id,
            dir,
            ip,
            options,
            members: Vec::new(),
            inet: None,
            clients: Vec::new(),
            created: Vec::new(),
            babeld: Vec::new(),
            daemons: Vec::new(),
            configs: Vec::new(),
            bin_dir: None,
            emulated: Vec::new(),
            torn_down: false,
        };
        // On error, dropping `lab` removes whatever was created so far.
        lab.build_chain()?;
        Ok(lab)
    }

    /// A chain of `nodes` nodes with default options and babeld already running.
    pub fn chain_with_babel(nodes: usize) -> Result<Lab> {
        let mut lab = Lab::new(LabOptions::chain(nodes))?;
        lab.start_babel()?;
        Ok(lab)
    }

    /// The lab's short random id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The lab's directory (`/tmp/l3r-<id>`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options the lab was built with.
    pub fn options(&self) -> &LabOptions {
        &self.options
    }

    /// The classic gateway; in a lab with uplink gateways the first of those.
    pub fn gateway(&self) -> &Node {
        self.members
            .iter()
            .find(|m| m.is_gateway())
            .or_else(|| self.gateways().first())
            .unwrap_or(&self.members[0])
    }

    /// The mesh nodes n1..nN (no gateway).
    pub fn nodes(&self) -> &[Node] {
        self.members_where(|m| m.role == NodeRole::Node)
    }

    /// The uplink gateways, in the order of [`LabOptions::gateways`].
    pub fn gateways(&self) -> &[Node] {
        self.members_where(Node::is_uplink_gateway)
    }

    /// The `inet` namespace of a lab with uplink gateways.
    pub fn inet(&self) -> Option<&Netns> {
        self.inet.as_ref()
    }

    /// The members that run our daemons: every node and uplink gateway.
    fn daemon_members(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| !m.is_gateway())
            .map(|m| m.name.clone())
            .collect()
    }

    /// The (contiguous: members are kept grouped by role) members matching `f`.
    fn members_where(&self, f: impl Fn(&Node) -> bool) -> &[Node] {
        let first = self.members.iter().position(&f);
        let last = self.members.iter().rposition(&f);
        match (first, last) {
            (Some(a), Some(b)) => &self.members[a..=b],
            _ => &[],
        }
    }

    /// The gateway and all nodes.
    pub fn members(&self) -> &[Node] {
        &self.members
    }

    /// The clients.
    pub fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// A node (or `gw`) by lab name.
    pub fn node(&self, name: &str) -> Result<&Node> {
        self.members
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| Error::Usage(format!("no node {name} in lab {}", self.id)))
    }

    /// The mesh links between nodes n1..nN as pairs of node numbers (the
    /// classic gateway's link to n1 and uplink gateways' links left out).
    pub fn node_links(&self) -> Vec<(usize, usize)> {
        self.options.topology.links(self.options.nodes)
    }

    /// The nodes `node` (`nI`) has a mesh link to, gateways left out: where
    /// a client of `node` can roam in one step.
    pub fn neighbours(&self, node: &str) -> Result<Vec<String>> {
        let i = node_number(node)?;
        Ok(topology::neighbours(&self.node_links(), i)
            .into_iter()
            .map(|n| format!("n{n}"))
            .collect())
    }

    /// Mesh hops between nodes `from` and `to` (`nI`), over node links only.
    pub fn hops(&self, from: &str, to: &str) -> Result<usize> {
        let (a, b) = (node_number(from)?, node_number(to)?);
        topology::hops_from(&self.node_links(), self.options.nodes, a)
            .get(b)
            .copied()
            .flatten()
            .ok_or_else(|| Error::Usage(format!("no path from {from} to {to}")))
    }

    /// A client by lab name.
    pub fn client(&self, name: &str) -> Result<&Client> {
        self.clients
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::Usage(format!("no client {name} in lab {}", self.id)))
    }

    /// The namespace of a node, a gateway, a client or `inet`, by lab name.
    pub fn netns(&self, name: &str) -> Result<&Netns> {
        if let Ok(node) = self.node(name) {
            return Ok(&node.netns);
        }
        if let (INET, Some(inet)) = (name, &self.inet) {
            return Ok(inet);
        }
        self.client(name).map(|c| &c.netns)
    }

    /// Uses the binaries in `bins` instead of locating them.
    pub fn set_bin_dir(&mut self, bins: BinDir) {
        self.bin_dir = Some(bins);
    }

    /// Runs `emulated.daemons` of `node` as another CPU's multicall binary
    /// under a user-mode emulator from their next start on, whatever
    /// [`Launch`] they are started with; all else stays native.
    pub fn emulate_node(&mut self, node: &str, emulated: Emulated) -> Result<()> {
        self.node(node)?;
        self.emulated.retain(|(name, _)| name != node);
        self.emulated.push((node.to_string(), emulated));
        Ok(())
    }

    // ===== topology =====

    fn ns_name(&self, name: &str) -> String {
        format!("l3r-{}-{name}", self.id)
    }

    fn create_netns(&mut self, name: &str) -> Result<Netns> {
        let ns = Netns::create(&self.ns_name(name), &self.ip)?;
        self.created.push(ns.clone());
        Ok(ns)
    }

    fn build_chain(&mut self) -> Result<()> {
        let classic = self.options.gateways.is_empty();
        let mut plan: Vec<(String, Ipv6Addr, NodeRole)> = Vec::new();
        if classic {
            plan.push((
                GATEWAY.to_string(),
                GATEWAY_NODE_ADDRESS,
                NodeRole::ClassicGateway,
            ));
        }
        for i in 1..=self.options.nodes {
            plan.push((format!("n{i}"), crate::node_address(i), NodeRole::Node));
        }
        for (k, g) in self.options.gateways.iter().enumerate() {
            plan.push((
                g.name.clone(),
                crate::gateway_node_address(k),
                NodeRole::UplinkGateway {
                    prefix: g.prefix,
                    inet_iface: format!("u-{}", g.name),
                },
            ));
        }
        for (name, address, role) in plan {
            let netns = self.create_netns(&name)?;
            netns.sysctls(&[
                ("net.ipv6.conf.all.forwarding", "1"),
                ("net.ipv6.conf.all.accept_dad", "0"),
                ("net.ipv6.conf.default.accept_dad", "0"),
            ])?;
            let dir = self.dir.join(&name);
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            self.members.push(Node {
                name,
                netns,
                address,
                mesh_interfaces: Vec::new(),
                dir,
                bridge_mac: None,
                role,
            });
        }
        let node_index = |lab: &Lab, i: usize| {
            lab.members
                .iter()
                .position(|m| m.name == format!("n{i}"))
                .ok_or_else(|| Error::Usage(format!("no node n{i}")))
        };
        if classic {
            let (gw, first) = (0, node_index(self, 1)?);
            self.link_mesh(gw, first)?;
        }
        for (i, j) in self.options.topology.links(self.options.nodes) {
            let (a, b) = (node_index(self, i)?, node_index(self, j)?);
            self.link_mesh(a, b)?;
        }
        if !classic {
            for g in self.options.gateways.clone() {
                let gw = self
                    .members
                    .iter()
                    .position(|m| m.name == g.name)
                    .ok_or_else(|| Error::Usage(format!("no gateway {}", g.name)))?;
                let node = node_index(self, g.attach_to)?;
                self.link_mesh(gw, node)?;
            }
        }
        for i in 0..self.members.len() {
            let node = &self.members[i];
            for addr in node.announced_addresses() {
                node.ip(&["-6", "addr", "add", &format!("{addr}/128"), "dev", "lo"])?;
            }
            if !node.is_gateway() {
                // n<i> keeps the MAC of the classic chain; gateways count down from ff.
                let octet = node.address.octets()[15];
                let mac = format!("02:4e:42:00:00:{octet:02x}");
                add_client_bridge(node, &mac)?;
                self.members[i].bridge_mac = Some(mac);
            }
        }
        if !classic {
            self.build_inet()?;
        }
        self.wait_mesh_links_ready(LINK_READY_TIMEOUT)
    }

    /// The `inet` namespace with the internet host on `lo` and an uplink
    /// to every uplink gateway, which routes its prefix there.
    fn build_inet(&mut self) -> Result<()> {
        let inet = self.create_netns(INET)?;
        self.inet = Some(inet.clone());
        inet.sysctls(&[
            ("net.ipv6.conf.all.forwarding", "1"),
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
        ])?;
        inet.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{INTERNET_HOST}/128"),
            "dev",
            "lo",
        ])?;
        for gw in self.gateways().to_vec() {
            let NodeRole::UplinkGateway { prefix, inet_iface } = &gw.role else {
                continue;
            };
            check_ifname(inet_iface)?;
            cmd::run(
                &self.ip,
                &[
                    "link",
                    "add",
                    UPLINK_IFACE,
                    "netns",
                    gw.netns.name(),
                    "type",
                    "veth",
                    "peer",
                    "name",
                    inet_iface,
                    "netns",
                    inet.name(),
                ],
            )?;
            for (ns, iface, addr) in [
                (&gw.netns, UPLINK_IFACE, UPLINK_GATEWAY_ADDRESS),
                (&inet, inet_iface.as_str(), UPLINK_INET_ADDRESS),
            ] {
                ns.ip(&[
                    "-6",
                    "addr",
                    "add",
                    &format!("{addr}/64"),
                    "dev",
                    iface,
                    "nodad",
                ])?;
                ns.ip(&["link", "set", iface, "up"])?;
            }
            gw.ip(&[
                "-6",
                "route",
                "add",
                "default",
                "via",
                &UPLINK_INET_ADDRESS.to_string(),
                "dev",
                UPLINK_IFACE,
            ])?;
            inet.ip(&[
                "-6",
                "route",
                "add",
                &prefix.to_string(),
                "via",
                &UPLINK_GATEWAY_ADDRESS.to_string(),
                "dev",
                inet_iface,
            ])?;
        }
        Ok(())
    }

    /// Waits until every mesh interface is operationally up with a link-local address.
    ///
    /// The kernel may report a veth's carrier late (linkwatch batches events
    /// for up to a second), and babeld ignores an interface without a
    /// link-local address until it looks again, which at a 4 s hello interval
    /// delayed first convergence by some 20 s.
    fn wait_mesh_links_ready(&self, timeout: Duration) -> Result<()> {
        wait::until("mesh links up with link-local addresses", timeout, || {
            let mut missing = Vec::new();
            for node in &self.members {
                let ifaces = node.netns.interfaces()?;
                for name in &node.mesh_interfaces {
                    if !ifaces
                        .iter()
                        .any(|i| &i.name == name && i.link_local_ready())
                    {
                        missing.push(format!("{}/{name}", node.name));
                    }
                }
            }
            Ok(if missing.is_empty() {
                Check::Ready(())
            } else {
                Check::Pending(format!("not ready: {}", missing.join(", ")))
            })
        })
    }

    /// A veth between members `a` and `b`: `m-<b>` in a, `m-<a>` in b.
    fn link_mesh(&mut self, a: usize, b: usize) -> Result<()> {
        let (na, nb) = (&self.members[a], &self.members[b]);
        let (ia, ib) = (format!("m-{}", nb.name), format!("m-{}", na.name));
        check_ifname(&ia)?;
        check_ifname(&ib)?;
        cmd::run(
            &self.ip,
            &[
                "link",
                "add",
                &ia,
                "netns",
                na.netns.name(),
                "type",
                "veth",
                "peer",
                "name",
                &ib,
                "netns",
                nb.netns.name(),
            ],
        )?;
        na.ip(&["link", "set", &ia, "up"])?;
        nb.ip(&["link", "set", &ib, "up"])?;
        self.members[a].mesh_interfaces.push(ia);
        self.members[b].mesh_interfaces.push(ib);
        Ok(())
    }

    /// Adds client `name` (≤ 13 characters) plugged into `node`'s client bridge.
    ///
    /// The k-th client gets MAC `02:c1:00:00:00:<k>` and address
    /// `fddd:1::<100+k>` (hex), a default route via `fe80::1`, no DAD, and
    /// keeps its address when its link goes down (like a Wi-Fi station).
    pub fn add_client(&mut self, name: &str, node: &str) -> Result<&Client> {
        self.plug_client(name, node, ClientAddressing::Static)
    }

    /// Adds client `name` (≤ 13 characters) plugged into `node`'s client
    /// bridge that configures itself from router advertisements, as a phone
    /// does: no static address or route; RAs accepted (forwarding off),
    /// SLAAC with EUI-64 interface identifiers (`addr_gen_mode` 0, so
    /// [`Client::slaac_address`] predicts its addresses), DAD on, addresses
    /// kept when the link goes down (like a Wi-Fi station). Returns once its
    /// link-local address has passed DAD, so it can solicit routers.
    pub fn add_slaac_client(&mut self, name: &str, node: &str) -> Result<&Client> {
        self.plug_client(name, node, ClientAddressing::Slaac)?;
        let c = self.client(name)?.clone();
        let link_local = c.link_local();
        wait::until(
            &format!("{name}'s link-local address {link_local} through DAD"),
            LINK_READY_TIMEOUT,
            || {
                let addrs = c.addresses()?;
                Ok(
                    match addrs.iter().find(|a| a.addr == link_local && !a.tentative) {
                        Some(a) if a.dad_failed => {
                            return Err(Error::Usage(format!("DAD failed for {link_local}")))
                        }
                        Some(_) => Check::Ready(()),
                        None => Check::Pending(format!("addresses: {addrs:?}")),
                    },
                )
            },
        )?;
        self.client(name)
    }

    fn plug_client(
        &mut self,
        name: &str,
        node: &str,
        addressing: ClientAddressing,
    ) -> Result<&Client> {
        if self.clients.iter().any(|c| c.name == name) || self.node(name).is_ok() || name == INET {
            return Err(Error::Usage(format!("name {name} already used in the lab")));
        }
        let node_ns = self.node(node)?.netns.clone();
        if self.node(node)?.is_gateway() {
            return Err(Error::Usage(
                "clients attach to nodes, not to the gateway".into(),
            ));
        }
        let k = self.clients.len() + 1;
        if k > 0xff {
            return Err(Error::Usage("at most 255 clients".into()));
        }
        let node_iface = format!("c-{name}");
        check_ifname(&node_iface)?;
        let netns = self.create_netns(name)?;
        // `default` applies to eth0, which is created below.
        let dad = match addressing {
            ClientAddressing::Static => "0",
            ClientAddressing::Slaac => "1",
        };
        netns.sysctls(&[
            ("net.ipv6.conf.all.accept_dad", dad),
            ("net.ipv6.conf.default.accept_dad", dad),
            ("net.ipv6.conf.all.keep_addr_on_down", "1"),
            ("net.ipv6.conf.default.keep_addr_on_down", "1"),
        ])?;
        if addressing == ClientAddressing::Static {
            // Configured by hand: the RAs prefixd sends on every node must
            // not give it a second, SLAAC address (or a default route).
            netns.sysctls(&[
                ("net.ipv6.conf.all.accept_ra", "0"),
                ("net.ipv6.conf.default.accept_ra", "0"),
            ])?;
        }
        if addressing == ClientAddressing::Slaac {
            netns.sysctls(&[
                ("net.ipv6.conf.all.forwarding", "0"),
                ("net.ipv6.conf.default.forwarding", "0"),
                ("net.ipv6.conf.default.accept_ra", "1"),
                ("net.ipv6.conf.default.autoconf", "1"),
                ("net.ipv6.conf.default.addr_gen_mode", "0"),
            ])?;
        }
        let mac_octets = [0x02, 0xc1, 0, 0, 0, k as u8];
        let mac = format!("02:c1:00:00:00:{k:02x}");
        cmd::run(
            &self.ip,
            &[
                "link",
                "add",
                CLIENT_IFACE,
                "netns",
                netns.name(),
                "address",
                &mac,
                "type",
                "veth",
                "peer",
                "name",
                &node_iface,
                "netns",
                node_ns.name(),
            ],
        )?;
        attach_bridge_port(&node_ns, &node_iface)?;
        let address = match addressing {
            ClientAddressing::Static => Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, 0x100 + k as u16),
            ClientAddressing::Slaac => {
                let conf = |key: &str| format!("net.ipv6.conf.{CLIENT_IFACE}.{key}");
                netns.sysctls(&[
                    (&conf("forwarding"), "0"),
                    (&conf("accept_ra"), "1"),
                    (&conf("autoconf"), "1"),
                    (&conf("addr_gen_mode"), "0"),
                    (&conf("accept_dad"), "1"),
                    (&conf("keep_addr_on_down"), "1"),
                ])?;
                Ipv6Addr::UNSPECIFIED
            }
        };
        netns.ip(&["link", "set", CLIENT_IFACE, "up"])?;
        if addressing == ClientAddressing::Static {
            netns.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{address}/64"),
                "dev",
                CLIENT_IFACE,
                "nodad",
            ])?;
            set_client_default_route(&netns)?;
        }
        self.clients.push(Client {
            name: name.to_string(),
            netns,
            iface: CLIENT_IFACE.into(),
            node_iface,
            mac,
            address,
            node: node.to_string(),
            addressing,
            mac_octets,
        });
        self.client(name)
    }

    /// Roams `client` to `to_node` the way a radio does: the client loses
    /// carrier and gets it back on the other node ([`Lab::detach_client`],
    /// then [`Lab::attach_client`]). The client's own interface stays
    /// administratively up with its addresses and routes (the default route
    /// via `fe80::1`, the same router on every node, is only marked
    /// `linkdown` meanwhile); nothing in the client's namespace is touched.
    pub fn move_client(&mut self, client: &str, to_node: &str) -> Result<()> {
        self.check_move(client, to_node)?;
        self.detach_client(client)?;
        self.attach_client(client, to_node)
    }

    fn check_move(&self, client: &str, to_node: &str) -> Result<()> {
        let to = self.node(to_node)?;
        if to.is_gateway() {
            return Err(Error::Usage(
                "clients attach to nodes, not to the gateway".into(),
            ));
        }
        let c = self.client(client)?;
        if c.node == to_node {
            return Err(Error::Usage(format!("{client} is already on {to_node}")));
        }
        Ok(())
    }

    /// First half of a radio-style move: the node-side end of `client`'s
    /// link goes down in its node's namespace, so the client sees
    /// NO-CARRIER (its routes through the link stay, marked `linkdown`) and
    /// the node's bridge loses the port's carrier. The port stays in the
    /// old node's namespace until [`Lab::attach_client`].
    pub fn detach_client(&mut self, client: &str) -> Result<()> {
        let c = self.client(client)?.clone();
        let from_ns = self.node(&c.node)?.netns.clone();
        from_ns
            .ip(&["link", "set", &c.node_iface, "down"])
            .map(|_| ())
    }

    /// Second half of a radio-style move: the (down) node-side end of
    /// `client`'s link moves from the node it was on into `to_node`'s
    /// namespace, is enslaved to its client bridge and set up: the client
    /// gets carrier back.
    pub fn attach_client(&mut self, client: &str, to_node: &str) -> Result<()> {
        self.check_move(client, to_node)?;
        let to_ns = self.node(to_node)?.netns.clone();
        let c = self.client(client)?.clone();
        let from_ns = self.node(&c.node)?.netns.clone();
        // Moving a device to another namespace takes it out of its bridge.
        from_ns.ip(&["link", "set", &c.node_iface, "netns", to_ns.name()])?;
        attach_bridge_port(&to_ns, &c.node_iface)?;
        if let Some(entry) = self.clients.iter_mut().find(|x| x.name == client) {
            entry.node = to_node.to_string();
        }
        Ok(())
    }

    /// The old way to roam `client`: its own interface goes administratively
    /// down (which flushes its routes), its bridge port moves to the other
    /// node's client bridge, the interface comes up again and gets its
    /// default route back. Kept for comparison; [`Lab::move_client`] is what
    /// a radio does.
    pub fn move_client_admin_down(&mut self, client: &str, to_node: &str) -> Result<()> {
        self.check_move(client, to_node)?;
        let to_ns = self.node(to_node)?.netns.clone();
        let c = self.client(client)?.clone();
        let from_ns = self.node(&c.node)?.netns.clone();
        c.ip(&["link", "set", &c.iface, "down"])?;
        // Moving a device to another namespace takes it out of its bridge.
        from_ns.ip(&["link", "set", &c.node_iface, "netns", to_ns.name()])?;
        attach_bridge_port(&to_ns, &c.node_iface)?;
        c.ip(&["link", "set", &c.iface, "up"])?;
        if c.addressing == ClientAddressing::Slaac {
            // Routes come back with the next RA.
            if let Some(entry) = self.clients.iter_mut().find(|x| x.name == client) {
                entry.node = to_node.to_string();
            }
            return Ok(());
        }
        // keep_addr_on_down keeps the address; routes through the link are
        // flushed on down, so the default route is set again.
        let addrs = c.ip(&["-6", "addr", "show", "dev", &c.iface, "scope", "global"])?;
        if !addrs.contains(&format!("{}/64", c.address)) {
            c.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{}/64", c.address),
                "dev",
                &c.iface,
                "nodad",
            ])?;
        }
        set_client_default_route(&c.netns)?;
        if let Some(entry) = self.clients.iter_mut().find(|x| x.name == client) {
            entry.node = to_node.to_string();
        }
        Ok(())
    }

    // ===== babeld =====

    /// Starts babeld on every member (gateways and nodes).
    pub fn start_babel(&mut self) -> Result<()> {
        for i in 0..self.members.len() {
            let process = self.spawn_babel(i)?;
            self.babeld.push(process);
        }
        self.route_client_prefix_from_gateway()
    }

    /// Restarts babeld on `node` as an init script does: SIGTERM (babeld
    /// removes its routes and retracts what it announced), `down` later a
    /// new babeld with the same configuration and state file.
    pub fn restart_babel(&mut self, node: &str, down: Duration) -> Result<()> {
        let i = self
            .members
            .iter()
            .position(|m| m.name == node)
            .ok_or_else(|| Error::Usage(format!("no member {node}")))?;
        let name = format!("{node}/babeld");
        let at = self
            .babeld
            .iter()
            .position(|p| p.name() == name)
            .ok_or_else(|| Error::Usage(format!("babeld does not run on {node}")))?;
        let mut old = self.babeld.remove(at);
        old.stop(STOP_GRACE)?;
        std::thread::sleep(down);
        let process = self.spawn_babel(i)?;
        self.babeld.push(process);
        Ok(())
    }

    /// Writes the configuration of member `i`'s babeld and starts it.
    fn spawn_babel(&self, i: usize) -> Result<ManagedProcess> {
        let babeld = cmd::tool("babeld")?;
        {
            let node = &self.members[i];
            let config = BabelConfig {
                node: node.name.clone(),
                role: if node.is_gateway() {
                    BabelRole::Gateway {
                        internet: INTERNET_ADDRESS,
                    }
                } else {
                    BabelRole::Node
                },
                interfaces: node.mesh_interfaces.clone(),
                hello_interval: self.options.hello_interval,
                route_protocol: crate::daemons::ROUTE_PROTOCOL,
                handover_protocol: crate::daemons::HANDOVER_PROTOCOL,
                node_address_prefix: NODE_ADDRESS_PREFIX.into(),
                local_path: node.babel_socket(),
                router_id: Some(self.router_id(i)),
                extra: self.options.babel_extra.clone(),
            };
            let conf = node.dir.join("babeld.conf");
            write_file(&conf, &config.render())?;
            let args: Vec<OsString> = babel::babeld_args(
                &conf,
                &node.dir.join("babeld.pid"),
                &node.dir.join("babeld.state"),
                self.options.babel_debug,
            )
            .into_iter()
            .map(OsString::from)
            .collect();
            ManagedProcess::spawn(
                &format!("{}/babeld", node.name),
                &self.ip,
                Some(node.netns.name()),
                &babeld,
                &args,
                &node.dir.join("babeld.log"),
            )
        }
    }

    /// Routes the client prefix from the gateway ("the internet") to the
    /// first node, as an upstream routes a mesh's prefix to its gateway
    /// node: babel never carries the catch-all /64 itself.
    /// Nothing to do in a lab with uplink gateways.
    pub fn route_client_prefix_from_gateway(&self) -> Result<()> {
        let Some(gateway) = self.members.iter().find(|m| m.is_gateway()) else {
            return Ok(());
        };
        let Some(first) = self.members.iter().find(|m| !m.is_gateway()) else {
            return Ok(());
        };
        let toward_gateway = format!("m-{}", gateway.name);
        let toward_first = format!("m-{}", first.name);
        let out = first.ip(&[
            "-6",
            "-o",
            "addr",
            "show",
            "dev",
            &toward_gateway,
            "scope",
            "link",
        ])?;
        let link_local = out
            .split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{} has no link-local address on {toward_gateway}",
                    first.name
                ))
            })?
            .to_string();
        gateway
            .ip(&[
                "-6",
                "route",
                "replace",
                CLIENT_PREFIX,
                "via",
                &link_local,
                "dev",
                &toward_first,
            ])
            .map(|_| ())
    }

    /// babeld router-id of member `index`: `02:<lab id>:00:<index>`, unique across labs.
    fn router_id(&self, index: usize) -> String {
        let id = &self.id;
        format!(
            "02:{}:{}:{}:00:{index:02x}",
            &id[0..2],
            &id[2..4],
            &id[4..6]
        )
    }

    /// Waits until every member has a babel route to every other member's
    /// announced addresses; returns how long that took.
    pub fn wait_routes_converged(&mut self, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        let babeld = &mut self.babeld;
        let members = &self.members;
        wait::until("babel routes between all nodes", timeout, || {
            for p in babeld.iter_mut() {
                p.ensure_running()?;
            }
            let mut missing = Vec::new();
            for node in members {
                let routes = node.routes()?;
                for other in members.iter().filter(|o| o.name != node.name) {
                    for addr in other.announced_addresses() {
                        if !routes
                            .iter()
                            .any(|r| r.is_babel_unicast() && r.is_host(addr))
                        {
                            missing.push(format!("{}→{addr}", node.name));
                        }
                    }
                }
            }
            Ok(if missing.is_empty() {
                Check::Ready(())
            } else {
                Check::Pending(format!(
                    "{} routes missing: {}",
                    missing.len(),
                    missing.join(", ")
                ))
            })
        })?;
        Ok(start.elapsed())
    }

    /// Waits until `node` has a babel route to host `addr`; returns how long that took.
    pub fn wait_babel_route(
        &self,
        node: &str,
        addr: Ipv6Addr,
        timeout: Duration,
    ) -> Result<Duration> {
        let start = Instant::now();
        let n = self.node(node)?;
        wait::until(
            &format!("a babel route to {addr} on {node}"),
            timeout,
            || {
                Ok(if n.has_babel_route(addr)? {
                    Check::Ready(())
                } else {
                    Check::Pending("no such route".into())
                })
            },
        )?;
        Ok(start.elapsed())
    }

    /// Starts recording babeld's `monitor` stream of `node` (lines containing
    /// `filter`, if given) into `<node dir>/babel-monitor.log`, UTC-stamped.
    pub fn babel_monitor(&self, node: &str, filter: Option<String>) -> Result<BabelMonitor> {
        let n = self.node(node)?;
        BabelMonitor::start(&n.babel_socket(), &n.dir.join("babel-monitor.log"), filter)
    }

    /// Sends configuration `command` to babeld on `node` (`interface X`,
    /// `flush interface X`), as netifd does when a mesh link comes or goes.
    pub fn babel_configure(&self, node: &str, command: &str) -> Result<()> {
        babel::configure(
            &self.node(node)?.babel_socket(),
            Duration::from_secs(5),
            command,
        )
    }

    /// babeld's `dump` on `node` (interfaces, neighbours, exported and learned routes).
    pub fn babel_dump(&self, node: &str) -> Result<BabelDump> {
        babel::dump(&self.node(node)?.babel_socket(), Duration::from_secs(5))
    }

    // ===== our daemons =====

    fn bins(&mut self) -> Result<BinDir> {
        if self.bin_dir.is_none() {
            self.bin_dir = Some(BinDir::locate()?);
        }
        self.bin_dir
            .clone()
            .ok_or_else(|| Error::Usage("no bin dir".into()))
    }

    /// The daemon configuration the lab would give `node`.
    pub fn daemon_config(&self, node: &str) -> Result<DaemonConfig> {
        let n = self.node(node)?;
        if n.is_gateway() {
            return Err(Error::Usage("the classic gateway runs babeld only".into()));
        }
        let mut config = DaemonConfig::new(&n.dir, n.address, n.mesh_interfaces.clone());
        // prefixd follows babel through babeld's control socket; an uplink
        // gateway announces its prefix through its uplink.
        config.set_raw(
            "prefixd",
            "babel_socket",
            &crate::daemons::toml_string(&n.babel_socket().display().to_string()),
        );
        if let Some(prefix) = n.uplink_prefix() {
            config.set_raw(
                "prefixd",
                "uplink",
                &crate::daemons::toml_string(UPLINK_IFACE),
            );
            config.set_raw(
                "prefixd",
                "announce",
                &format!(
                    "[{{ prefix = {}, metric = 0 }}]",
                    crate::daemons::toml_string(&prefix.to_string())
                ),
            );
        }
        Ok(config)
    }

    /// Starts the five daemons on `node` and waits until each socket accepts connections.
    pub fn start_daemons(&mut self, node: &str, launch: Launch) -> Result<()> {
        let config = self.daemon_config(node)?;
        self.start_daemons_with(node, launch, &config)
    }

    /// Starts the five daemons on every node and uplink gateway (not on the classic gateway).
    pub fn start_all_daemons(&mut self, launch: Launch) -> Result<()> {
        let names = self.daemon_members();
        for name in names {
            self.start_daemons(&name, launch)?;
        }
        Ok(())
    }

    /// Starts the five daemons on every node and uplink gateway with the lab's
    /// configuration changed by `settings` (`(section, key, value)`, values in TOML).
    pub fn start_all_daemons_with(
        &mut self,
        launch: Launch,
        settings: &[(&str, &str, &str)],
    ) -> Result<()> {
        let names = self.daemon_members();
        for name in names {
            let mut config = self.daemon_config(&name)?;
            for (section, key, value) in settings {
                config.set_raw(section, key, value);
            }
            self.start_daemons_with(&name, launch, &config)?;
        }
        Ok(())
    }

    /// Starts the five daemons on `node` with an explicit configuration.
    pub fn start_daemons_with(
        &mut self,
        node: &str,
        launch: Launch,
        config: &DaemonConfig,
    ) -> Result<()> {
        self.start_some_with(node, &Daemon::ALL, launch, config)
    }

    /// Starts one `daemon` on `node` again (e.g. after [`Lab::stop_daemon`]),
    /// with the configuration the node's daemons were last started with (the
    /// lab's default one if none was), and waits until its socket accepts
    /// connections.
    pub fn start_daemon(&mut self, node: &str, daemon: Daemon, launch: Launch) -> Result<()> {
        let config = match self.configs.iter().find(|(n, _)| n == node) {
            Some((_, c)) => c.clone(),
            None => self.daemon_config(node)?,
        };
        self.start_some_with(node, &[daemon], launch, &config)
    }

    /// Starts one `daemon` on `node` again with `config` (which the node's
    /// daemons are started with from now on), and waits up to `timeout`
    /// until its socket accepts connections: a restart with one setting
    /// changed, or one that takes long (core adopting 10,000 clients).
    pub fn start_daemon_with(
        &mut self,
        node: &str,
        daemon: Daemon,
        launch: Launch,
        config: &DaemonConfig,
        timeout: Duration,
    ) -> Result<()> {
        self.start_some_within(node, &[daemon], launch, config, timeout)
    }

    /// Starts `daemons` (in that order) on `node` with `config`.
    fn start_some_with(
        &mut self,
        node: &str,
        daemons: &[Daemon],
        launch: Launch,
        config: &DaemonConfig,
    ) -> Result<()> {
        self.start_some_within(node, daemons, launch, config, DAEMON_START_TIMEOUT)
    }

    /// [`Lab::start_some_with`], waiting up to `timeout` for each socket.
    fn start_some_within(
        &mut self,
        node: &str,
        daemons: &[Daemon],
        launch: Launch,
        config: &DaemonConfig,
        timeout: Duration,
    ) -> Result<()> {
        let bins = self.bins()?;
        let links = self.dir.join("multicall-bin");
        if launch == Launch::MulticallSymlink {
            bins.make_multicall_links(&links)?;
        }
        // Resolve all programs first, so a missing binary starts nothing.
        let emulated = self
            .emulated
            .iter()
            .find(|(name, _)| name == node)
            .map(|(_, e)| e.clone());
        let emulated = |daemon: Daemon| emulated.as_ref().filter(|e| e.daemons.contains(&daemon));
        let programs = daemons
            .iter()
            .map(|d| {
                match emulated(*d) {
                    Some(e) => e.program(*d),
                    None => bins.program(*d, launch, &links),
                }
                .map(|p| (*d, p))
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(running) = daemons.iter().find(|daemon| {
            self.daemons
                .iter()
                .any(|d| d.node == node && d.daemon == **daemon)
        }) {
            return Err(Error::Usage(format!("{running} already runs on {node}")));
        }
        let n = self.node(node)?.clone();
        let conf = n.config_path();
        write_file(&conf, &config.render())?;
        std::fs::create_dir_all(&config.socket_dir)
            .map_err(|e| Error::io(format!("creating {}", config.socket_dir.display()), e))?;
        self.configs.retain(|(name, _)| name != node);
        self.configs.push((node.to_string(), config.clone()));
        for (daemon, (program, lead)) in programs {
            let mut args: Vec<OsString> = lead.into_iter().map(OsString::from).collect();
            args.push("-c".into());
            args.push(conf.clone().into_os_string());
            let process = ManagedProcess::spawn(
                &format!("{node}/{daemon}"),
                &self.ip,
                Some(n.netns.name()),
                &program,
                &args,
                &n.daemon_log(daemon),
            )?;
            self.daemons.push(RunningDaemon {
                node: node.to_string(),
                daemon,
                process,
            });
        }
        for daemon in daemons {
            self.wait_daemon_up(node, *daemon, &config.socket(*daemon), timeout)?;
        }
        Ok(())
    }

    /// Waits until `daemon` on `node` accepts connections on `socket`, failing fast if it exits.
    fn wait_daemon_up(
        &mut self,
        node: &str,
        daemon: Daemon,
        socket: &Path,
        timeout: Duration,
    ) -> Result<()> {
        let entry = self
            .daemons
            .iter_mut()
            .find(|d| d.node == node && d.daemon == daemon)
            .ok_or_else(|| Error::Usage(format!("{daemon} was not started on {node}")))?;
        wait::until(
            &format!(
                "{node}/{daemon} to accept connections on {}",
                socket.display()
            ),
            timeout,
            || {
                entry.process.ensure_running()?;
                Ok(match UnixStream::connect(socket) {
                    Ok(_) => Check::Ready(()),
                    Err(e) => Check::Pending(format!("connect: {e}")),
                })
            },
        )
    }

    /// The process of `daemon` on `node`, if the lab started it.
    pub fn daemon_process(&mut self, node: &str, daemon: Daemon) -> Option<&mut ManagedProcess> {
        self.daemons
            .iter_mut()
            .find(|d| d.node == node && d.daemon == daemon)
            .map(|d| &mut d.process)
    }

    /// Waits up to `timeout` until three echo requests from `from` to `addr`
    /// are all answered.
    pub fn wait_reachable(&self, from: &str, addr: Ipv6Addr, timeout: Duration) -> Result<()> {
        wait::until(&format!("{addr} reachable from {from}"), timeout, || {
            let p = self.ping(from, addr, 3, Duration::from_millis(20))?;
            Ok(if p.all_received() {
                Check::Ready(())
            } else {
                Check::Pending(p.to_string())
            })
        })
    }

    /// Every counter of `daemon`'s status on `node`, by name.
    pub fn counters(&self, node: &str, daemon: Daemon) -> Result<Vec<(String, u64)>> {
        crate::daemons::status_counters(&self.node(node)?.socket(daemon), daemon)
    }

    /// Counter `name` of `daemon`'s status on `node`; 0 when it has none of
    /// that name (a counter is listed once it exists).
    pub fn counter(&self, node: &str, daemon: Daemon, name: &str) -> Result<u64> {
        Ok(self
            .counters(node, daemon)?
            .into_iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| v))
    }

    /// CPU time (user and system) `daemon` on `node` has used so far, from
    /// `/proc/<pid>/stat`.
    pub fn daemon_cpu(&mut self, node: &str, daemon: Daemon) -> Result<Duration> {
        self.daemon_process(node, daemon)
            .ok_or_else(|| Error::Usage(format!("{daemon} does not run on {node}")))?
            .usage()
            .map(|u| u.cpu)
    }

    /// What the processes of `node` (its daemons and babeld) have cost so
    /// far, together and each by name (`core`, ..., `babeld`).
    pub fn node_usage(&self, node: &str) -> Result<Vec<(String, ProcessUsage)>> {
        let babeld_name = format!("{node}/babeld");
        let mut out = Vec::new();
        for d in self.daemons.iter().filter(|d| d.node == node) {
            out.push((d.daemon.to_string(), d.process.usage()?));
        }
        for p in self.babeld.iter().filter(|p| p.name() == babeld_name) {
            out.push(("babeld".to_string(), p.usage()?));
        }
        Ok(out)
    }

    /// Stops `daemon` on `node` (SIGTERM, then SIGKILL) and forgets it.
    pub fn stop_daemon(&mut self, node: &str, daemon: Daemon) -> Result<std::process::ExitStatus> {
        let idx = self
            .daemons
            .iter()
            .position(|d| d.node == node && d.daemon == daemon)
            .ok_or_else(|| Error::Usage(format!("{daemon} does not run on {node}")))?;
        let mut entry = self.daemons.remove(idx);
        entry.process.stop(STOP_GRACE)
    }

    /// Kills every process of `node` (its daemons and babeld) with SIGKILL,
    /// as a power cut would: nothing is cleaned up or retracted. The
    /// namespace and its links stay until [`Lab::remove_node`].
    pub fn kill_node(&mut self, node: &str) -> Result<()> {
        let n = self.node(node)?;
        if n.is_gateway() {
            return Err(Error::Usage("the classic gateway cannot be killed".into()));
        }
        let babeld_name = format!("{node}/babeld");
        let mut first_error = None;
        let daemons = self.daemons.iter_mut().filter(|d| d.node == node);
        let processes = daemons
            .map(|d| &mut d.process)
            .chain(self.babeld.iter_mut().filter(|p| p.name() == babeld_name));
        for p in processes {
            let result = p
                .signal(libc::SIGKILL)
                .and_then(|()| p.wait_exit(Duration::from_secs(5)).map(|_| ()));
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        self.daemons.retain(|d| d.node != node);
        self.babeld.retain(|p| p.name() != babeld_name);
        first_error.map_or(Ok(()), Err)
    }

    /// Takes `node` out of the mesh for good: kills its processes (see
    /// [`Lab::kill_node`]) and deletes its namespace, so every link to it
    /// vanishes (a client still plugged into it loses its interface). The
    /// node is forgotten: it is no longer in [`Lab::nodes`], and teardown
    /// does not touch it again. Its directory (logs) stays with the lab's.
    /// Its neighbours' configurations still name their link to it: remove
    /// a node only after their daemons started.
    pub fn remove_node(&mut self, node: &str) -> Result<()> {
        self.kill_node(node)?;
        let idx = self
            .members
            .iter()
            .position(|m| m.name == node)
            .ok_or_else(|| Error::Usage(format!("no node {node} in lab {}", self.id)))?;
        // Deleted first: if that fails, teardown tries again.
        self.members[idx].netns.delete()?;
        let removed = self.members.remove(idx);
        self.configs.retain(|(name, _)| name != node);
        self.created.retain(|ns| ns.name() != removed.netns.name());
        Ok(())
    }

    // ===== observation =====

    /// Pings `addr` from the namespace `from` (node, gateway or client name).
    pub fn ping(
        &self,
        from: &str,
        addr: Ipv6Addr,
        count: u32,
        interval: Duration,
    ) -> Result<PingResult> {
        self.ping_in(from, addr, None, None, count, interval)
    }

    /// Pings `addr` from `from` out of interface `iface` (for link-local addresses).
    pub fn ping_via(
        &self,
        from: &str,
        iface: &str,
        addr: Ipv6Addr,
        count: u32,
        interval: Duration,
    ) -> Result<PingResult> {
        self.ping_in(from, addr, Some(iface), None, count, interval)
    }

    /// Pings `addr` from the namespace `from` with requests from its address
    /// `source` (a client's A or B address picks the gateway).
    pub fn ping_from(
        &self,
        from: &str,
        source: Ipv6Addr,
        addr: Ipv6Addr,
        count: u32,
        interval: Duration,
    ) -> Result<PingResult> {
        self.ping_in(from, addr, None, Some(source), count, interval)
    }

    fn ping_in(
        &self,
        from: &str,
        addr: Ipv6Addr,
        iface: Option<&str>,
        source: Option<Ipv6Addr>,
        count: u32,
        interval: Duration,
    ) -> Result<PingResult> {
        if count > u32::from(u16::MAX) {
            return Err(Error::Usage("at most 65535 echo requests per ping".into()));
        }
        let ns = self.netns(from)?;
        ping::ping_in(
            &ns.path(),
            addr,
            iface,
            source,
            count,
            interval,
            Duration::from_secs(1),
        )
    }

    // ===== router advertisements by hand =====

    /// A sender of ND messages from `node`'s next-node router (`fe80::1`
    /// on `local-node`, MAC [`NEXT_NODE_MAC`]), where the node's RAs come from.
    pub fn next_node_sender(&self, node: &str) -> Result<NdSender> {
        let n = self.node(node)?;
        if n.bridge_mac.is_none() {
            return Err(Error::Usage(format!("{node} has no client bridge")));
        }
        NdSender::open(&n.netns.path(), NEXT_NODE_IFACE, NEXT_NODE_ADDRESS)
    }

    /// Sends one unsolicited RA to `ff02::1` from `node`'s next-node router
    /// with `router_lifetime` and `prefixes`: what prefixd will do, by hand.
    pub fn advertise_by_hand(
        &self,
        node: &str,
        router_lifetime: u16,
        prefixes: &[PrefixInformation],
    ) -> Result<()> {
        let mac = crate::prefix::parse_mac(NEXT_NODE_MAC)
            .ok_or_else(|| Error::Usage(format!("bad MAC {NEXT_NODE_MAC}")))?;
        self.next_node_sender(node)?.send(
            ra::ALL_NODES,
            &ra::router_advertisement(router_lifetime, mac, prefixes),
        )
    }

    /// Starts capturing the router solicitations `client` sends, at the
    /// node end of its link (its bridge port on the node it is attached to).
    pub fn capture_solicitations(&self, client: &str) -> Result<NdCapture> {
        let c = self.client(client)?;
        let n = self.node(&c.node)?;
        NdCapture::open(&n.netns.path(), &c.node_iface, ra::ROUTER_SOLICITATION)
    }

    // ===== uplinks =====

    /// The uplink gateway `gw` with its uplink's `inet` end and `inet`.
    fn uplink(&self, gw: &str) -> Result<(&Node, &str, &Netns)> {
        let node = self.node(gw)?;
        let NodeRole::UplinkGateway { inet_iface, .. } = &node.role else {
            return Err(Error::Usage(format!("{gw} is not an uplink gateway")));
        };
        let inet = self
            .inet
            .as_ref()
            .ok_or_else(|| Error::Usage(format!("lab {} has no inet", self.id)))?;
        Ok((node, inet_iface, inet))
    }

    /// What prefixd on gateway `gw` will do for its prefix, by hand:
    /// `ip -6 route add default from PREFIX via <inet> dev up0 proto 160`.
    pub fn install_gateway_route_by_hand(&self, gw: &str, prefix: Ipv6Prefix) -> Result<()> {
        self.gateway_route_by_hand("add", gw, prefix)
    }

    /// Takes the route of [`Lab::install_gateway_route_by_hand`] away again.
    pub fn remove_gateway_route_by_hand(&self, gw: &str, prefix: Ipv6Prefix) -> Result<()> {
        self.gateway_route_by_hand("del", gw, prefix)
    }

    fn gateway_route_by_hand(&self, verb: &str, gw: &str, prefix: Ipv6Prefix) -> Result<()> {
        let (node, _, _) = self.uplink(gw)?;
        node.ip(&[
            "-6",
            "route",
            verb,
            "default",
            "from",
            &prefix.to_string(),
            "via",
            &UPLINK_INET_ADDRESS.to_string(),
            "dev",
            UPLINK_IFACE,
            "proto",
            &PREFIX_PROTOCOL_FIRST.to_string(),
        ])
        .map(|_| ())
    }

    /// Gives gateway `gw`'s uplink carrier (`up`) or takes it away as a
    /// failing link does: the `inet` end goes down, so `up0` stays
    /// administratively up with its addresses and routes but sees NO-CARRIER.
    pub fn uplink_carrier(&self, gw: &str, up: bool) -> Result<()> {
        let (_, inet_iface, inet) = self.uplink(gw)?;
        inet.ip(&["link", "set", inet_iface, if up { "up" } else { "down" }])
            .map(|_| ())
    }

    /// Packet and byte counters of gateway `gw`'s uplink, at its `inet` end:
    /// `rx` is what came from the gateway (toward the internet).
    pub fn uplink_counters(&self, gw: &str) -> Result<UplinkCounters> {
        let (_, inet_iface, inet) = self.uplink(gw)?;
        let json = inet.ip(&["-j", "-s", "link", "show", "dev", inet_iface])?;
        parse_link_counters(&json)
    }

    /// Packets that reached `inet` from gateway `gw` (see [`Lab::uplink_counters`]).
    pub fn uplink_rx_packets(&self, gw: &str) -> Result<u64> {
        Ok(self.uplink_counters(gw)?.rx_packets)
    }

    /// The unicast routes of `node` to `addr/128`, of any protocol.
    pub fn host_routes(&self, node: &str, addr: Ipv6Addr) -> Result<Vec<Route>> {
        let want = addr.to_string();
        Ok(self
            .node(node)?
            .routes()?
            .into_iter()
            .filter(|r| r.dst == want && r.kind == "unicast")
            .collect())
    }

    /// The main routing table and mesh neighbours (with their link-local
    /// addresses on the shared link) of every member, gateway included.
    pub fn route_tables(&self) -> Result<Vec<NodeTable>> {
        let mut interfaces = Vec::new();
        for m in &self.members {
            interfaces.push((m.name.clone(), m.netns.interfaces()?));
        }
        let mut tables = Vec::new();
        for m in &self.members {
            let mut neighbours = Vec::new();
            for dev in &m.mesh_interfaces {
                let Some(peer) = dev.strip_prefix("m-") else {
                    continue;
                };
                let back = format!("m-{}", m.name);
                let link_locals = interfaces
                    .iter()
                    .filter(|(name, _)| name == peer)
                    .flat_map(|(_, ifaces)| ifaces.iter().filter(|i| i.name == back))
                    .flat_map(|i| i.addresses.iter().filter(|a| a.is_unicast_link_local()))
                    .copied()
                    .collect();
                neighbours.push(Neighbour {
                    dev: dev.clone(),
                    link_locals,
                    node: peer.to_string(),
                });
            }
            tables.push(NodeTable {
                node: m.name.clone(),
                routes: m.routes()?,
                neighbours,
            });
        }
        Ok(tables)
    }

    /// Audits the routes of every member for `addr` (see [`crate::audit`]).
    pub fn audit(&self, addr: Ipv6Addr) -> Result<Audit> {
        Ok(Audit::new(addr, self.route_tables()?))
    }

    /// Waits until the audit of `addr` finds nothing wrong against
    /// `expect`; returns how long that took and the passing audit. On
    /// timeout the error carries the last audit's report.
    pub fn wait_audit(
        &self,
        addr: Ipv6Addr,
        expect: &Expect,
        timeout: Duration,
    ) -> Result<(Duration, Audit)> {
        let start = Instant::now();
        let audit = wait::until(
            &format!("{addr} held by {} alone, every path there", expect.holder),
            timeout,
            || {
                let audit = self.audit(addr)?;
                Ok(if audit.is_ok(expect) {
                    Check::Ready(audit)
                } else {
                    Check::Pending(format!(
                        "{}\n{}",
                        audit.problems(expect).join("; "),
                        audit.report()
                    ))
                })
            },
        )?;
        Ok((start.elapsed(), audit))
    }

    /// Waits until each of `addrs` passes the route audit with `serving` as
    /// its one holder (every member's path ends there, no handover route
    /// left) and every member has exactly one route to it; returns how
    /// long that took.
    pub fn wait_served_by(
        &self,
        addrs: &[Ipv6Addr],
        serving: &str,
        timeout: Duration,
    ) -> Result<Duration> {
        let start = Instant::now();
        let expect = Expect::holder(serving);
        wait::until(&format!("{addrs:?} served by {serving}"), timeout, || {
            let tables = self.route_tables()?;
            let mut wrong = Vec::new();
            let classic: Vec<&str> = self
                .members
                .iter()
                .filter(|m| m.is_gateway())
                .map(|m| m.name.as_str())
                .collect();
            for addr in addrs {
                let audit = Audit::new(*addr, tables.clone());
                wrong.extend(audit.problems(&expect));
                for t in tables
                    .iter()
                    .filter(|t| !classic.contains(&t.node.as_str()))
                {
                    let n = t
                        .routes
                        .iter()
                        .filter(|r| r.kind == "unicast" && r.is_host(*addr))
                        .count();
                    if n != 1 {
                        wrong.push(format!("{} has {n} routes to {addr}", t.node));
                    }
                }
            }
            Ok(if wrong.is_empty() {
                wait::Check::Ready(())
            } else {
                wait::Check::Pending(wrong.join("; "))
            })
        })?;
        Ok(start.elapsed())
    }

    /// Routes, babeld and daemon log tails of every namespace, for failure reports.
    pub fn report(&self) -> String {
        let mut out = format!("===== lab {} ({}) =====\n", self.id, self.dir.display());
        for node in &self.members {
            out.push_str(&format!(
                "--- {} ({}) ip -6 route:\n",
                node.name,
                node.netns.name()
            ));
            match node.ip(&["-6", "route", "show"]) {
                Ok(routes) => out.push_str(&routes),
                Err(e) => out.push_str(&format!("(cannot list routes: {e})\n")),
            }
        }
        if let Some(inet) = &self.inet {
            out.push_str(&format!("--- {INET} ({}) ip -6 route:\n", inet.name()));
            match inet.ip(&["-6", "route", "show"]) {
                Ok(routes) => out.push_str(&routes),
                Err(e) => out.push_str(&format!("(cannot list routes: {e})\n")),
            }
        }
        let processes = self
            .babeld
            .iter()
            .chain(self.daemons.iter().map(|d| &d.process));
        for p in processes {
            out.push_str(&format!(
                "--- {} log tail ({}, without HTTP/2 frame lines):\n{}\n",
                p.name(),
                p.log().display(),
                tail_file_filtered(p.log(), 15, REPORT_SKIP)
            ));
        }
        for c in &self.clients {
            let address = match c.addressing {
                ClientAddressing::Static => c.address.to_string(),
                ClientAddressing::Slaac => "SLAAC".into(),
            };
            out.push_str(&format!(
                "--- client {} on {} ({address}, {})\n",
                c.name, c.node, c.mac
            ));
        }
        out
    }

    // ===== teardown =====

    /// Stops every process, deletes every namespace the lab created and (unless
    /// kept) its directory; reports the first error but always does all steps.
    pub fn shutdown(&mut self) -> Result<()> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let mut first_error: Option<Error> = None;
        let mut note = |r: Result<()>| {
            if let Err(e) = r {
                eprintln!("lab {}: teardown: {e}", self.id);
                first_error.get_or_insert(e);
            }
        };
        // Core first (it is the client of the others), then the rest, then babeld.
        self.daemons.sort_by_key(|d| d.daemon != Daemon::Core);
        for mut d in self.daemons.drain(..) {
            note(d.process.stop(STOP_GRACE).map(|_| ()));
        }
        for mut p in self.babeld.drain(..) {
            note(p.stop(STOP_GRACE).map(|_| ()));
        }
        for ns in self.created.drain(..).rev() {
            note(ns.delete());
        }
        if self.options.keep_dir {
            eprintln!(
                "lab {}: keeping {} ({KEEP_ENV}=1)",
                self.id,
                self.dir.display()
            );
        } else if self.dir.exists() {
            note(
                std::fs::remove_dir_all(&self.dir)
                    .map_err(|e| Error::io(format!("removing {}", self.dir.display()), e)),
            );
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.torn_down {
            eprintln!("{}", self.report());
        }
        let _ = self.shutdown();
    }
}

// ===== helpers =====

/// Picks a fresh id and creates `/tmp/l3r-<id>`, retrying on collision.
fn claim_lab_dir() -> Result<(String, PathBuf)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut last_err = None;
    for _ in 0..16 {
        let mut h = RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        let id = format!("{:06x}", h.finish() & 0xff_ffff);
        let dir = PathBuf::from(format!("/tmp/l3r-{id}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((id, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) => return Err(Error::io(format!("creating {}", dir.display()), e)),
        }
    }
    Err(Error::io(
        "finding a free /tmp/l3r-<id>",
        last_err.unwrap_or_else(|| std::io::Error::other("no attempt made")),
    ))
}

/// The client bridge with a fixed MAC and the next-node macvlan on top of it.
fn add_client_bridge(node: &Node, mac: &str) -> Result<()> {
    // A fixed MAC: a bridge otherwise takes its first port's MAC, which would look like a new client.
    node.ip(&[
        "link",
        "add",
        CLIENT_BRIDGE,
        "address",
        mac,
        "type",
        "bridge",
        "mcast_snooping",
        "0",
    ])?;
    node.ip(&["link", "set", CLIENT_BRIDGE, "up"])?;
    node.ip(&[
        "link",
        "add",
        NEXT_NODE_IFACE,
        "link",
        CLIENT_BRIDGE,
        "address",
        NEXT_NODE_MAC,
        "type",
        "macvlan",
        "mode",
        "bridge",
    ])?;
    node.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{NEXT_NODE_ADDRESS}/64"),
        "dev",
        NEXT_NODE_IFACE,
        "nodad",
    ])?;
    node.ip(&["link", "set", NEXT_NODE_IFACE, "up"])?;
    Ok(())
}

/// Enslaves `port` to the client bridge and brings it up, without an IPv6
/// address of its own (a bridge port must not send RS/MLD/ND with its own MAC).
fn attach_bridge_port(netns: &Netns, port: &str) -> Result<()> {
    netns.sysctls(&[(&format!("net.ipv6.conf.{port}.disable_ipv6"), "1")])?;
    netns
        .ip(&["link", "set", port, "master", CLIENT_BRIDGE, "up"])
        .map(|_| ())
}

fn set_client_default_route(netns: &Netns) -> Result<()> {
    netns
        .ip(&[
            "-6",
            "route",
            "replace",
            "default",
            "via",
            &NEXT_NODE_ADDRESS.to_string(),
            "dev",
            CLIENT_IFACE,
        ])
        .map(|_| ())
}

/// Packet and byte counters of one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UplinkCounters {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
}

/// The counters of the one interface in `ip -j -s link show dev X` output.
fn parse_link_counters(json: &str) -> Result<UplinkCounters> {
    let what = "`ip -j -s link` output";
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| Error::parse(what, format!("{e}: {json}")))?;
    let stats = value
        .get(0)
        .and_then(|l| l.get("stats64").or_else(|| l.get("stats")))
        .ok_or_else(|| Error::parse(what, format!("no stats64 in {json}")))?;
    let n = |dir: &str, key: &str| {
        stats
            .get(dir)
            .and_then(|d| d.get(key))
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| Error::parse(what, format!("no {dir}.{key} in {json}")))
    };
    Ok(UplinkCounters {
        rx_packets: n("rx", "packets")?,
        tx_packets: n("tx", "packets")?,
        rx_bytes: n("rx", "bytes")?,
        tx_bytes: n("tx", "bytes")?,
    })
}

/// The number of node `nI`.
fn node_number(node: &str) -> Result<usize> {
    node.strip_prefix('n')
        .and_then(|i| i.parse::<usize>().ok())
        .filter(|i| *i > 0)
        .ok_or_else(|| Error::Usage(format!("{node} is not a mesh node (n1, n2, ...)")))
}

/// Refuses gateway attachments the lab cannot build.
fn check_gateways(options: &LabOptions) -> Result<()> {
    let mut names: Vec<&str> = Vec::new();
    for g in &options.gateways {
        let taken = names.contains(&g.name.as_str())
            || g.name == INET
            || g.name
                .strip_prefix('n')
                .is_some_and(|i| i.parse::<usize>().is_ok());
        if taken {
            return Err(Error::Usage(format!("gateway name {} is taken", g.name)));
        }
        check_ifname(&format!("m-{}", g.name))?;
        check_ifname(&format!("u-{}", g.name))?;
        if g.attach_to == 0 || g.attach_to > options.nodes {
            return Err(Error::Usage(format!(
                "gateway {} attaches to n{}, but the chain has n1..n{}",
                g.name, g.attach_to, options.nodes
            )));
        }
        names.push(&g.name);
    }
    if options.gateways.len() > 32 {
        return Err(Error::Usage("at most 32 uplink gateways".into()));
    }
    Ok(())
}

fn check_ifname(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 15 {
        return Err(Error::Usage(format!(
            "interface name {name:?} must have 1 to 15 characters"
        )));
    }
    Ok(())
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_counters_are_read_from_stats64() {
        let json = r#"[{"ifindex":3,"ifname":"u-gw","stats64":{"rx":{"bytes":426,"packets":5,"errors":0},"tx":{"bytes":516,"packets":6,"errors":0}}}]"#;
        let c = parse_link_counters(json).expect("counters");
        assert_eq!(
            c,
            UplinkCounters {
                rx_packets: 5,
                tx_packets: 6,
                rx_bytes: 426,
                tx_bytes: 516
            }
        );
        assert!(parse_link_counters("[]").is_err());
        assert!(parse_link_counters(r#"[{"stats64":{"rx":{}}}]"#).is_err());
    }

    #[test]
    fn gateway_attachments_are_checked() {
        let ok = LabOptions::two_gateways(3);
        assert!(check_gateways(&ok).is_ok());
        assert_eq!(ok.gateways[1].attach_to, 3);
        assert_eq!(ok.gateways[0].prefix, PREFIX_A);
        let mut far = ok.clone();
        far.gateways[1].attach_to = 4;
        assert!(check_gateways(&far).is_err());
        let mut twice = ok.clone();
        twice.gateways[1].name = GATEWAY.into();
        assert!(check_gateways(&twice).is_err());
        let mut node_name = ok.clone();
        node_name.gateways[0].name = "n2".into();
        assert!(check_gateways(&node_name).is_err());
        let mut long = ok;
        long.gateways[0].name = "a-very-long-name".into();
        assert!(check_gateways(&long).is_err());
        assert!(check_gateways(&LabOptions::chain(2)).is_ok());
    }
}
