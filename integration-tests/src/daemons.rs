//! Our five daemons: where their binaries are, their configuration, and
//! talking to them with grpcurl.
//!
//! Binaries are taken from `L3ROAMD_BIN_DIR` if set, else from the cargo
//! target directory the running executable lives in (`target/<profile>/` for
//! the demo, `target/<profile>/deps/` for test executables). They can be
//! started as the five separate binaries or through the multicall binary
//! `l3roamd`, either via symlinks named like the daemons (dispatch on argv[0])
//! or with the daemon's name as first argument.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::cmd;
use crate::error::{Error, Result};

/// core's TUN device in the lab (core's default).
pub const TUN_DEVICE: &str = "l3roam0";

/// core.route_protocol in the lab (core's default): host routes and the
/// client prefixes' catch-all routes into the TUN device.
pub const ROUTE_PROTOCOL: u8 = 158;

/// core.handover_protocol in the lab (core's default).
pub const HANDOVER_PROTOCOL: u8 = 159;

/// The environment variable naming the directory with our binaries.
pub const BIN_DIR_ENV: &str = "L3ROAMD_BIN_DIR";

/// The multicall binary that can act as any daemon.
pub const MULTICALL_BINARY: &str = "l3roamd";

/// How long one grpcurl call may take.
pub const GRPCURL_MAX_TIME: Duration = Duration::from_secs(5);

/// One of the five l3roamd daemons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Daemon {
    /// `l3roamd-core`: TUN catch-all, host routes, held packets; client of the others.
    Core,
    /// `clientmon`: who is attached to this node.
    ClientMon,
    /// `client-db`: the client database and CLAIM/INFO/ACK.
    ClientDb,
    /// `ndproxy`: neighbour discovery on client links and SEEK.
    NdProxy,
    /// `prefixd`: client prefixes and router advertisements.
    PrefixD,
}

impl Daemon {
    /// All five, servers first and core (their client) last: the start order.
    pub const ALL: [Daemon; 5] = [
        Daemon::ClientMon,
        Daemon::ClientDb,
        Daemon::NdProxy,
        Daemon::PrefixD,
        Daemon::Core,
    ];

    /// The binary name (also the multicall name).
    pub fn binary(self) -> &'static str {
        match self {
            Daemon::Core => "l3roamd-core",
            Daemon::ClientMon => "clientmon",
            Daemon::ClientDb => "client-db",
            Daemon::NdProxy => "ndproxy",
            Daemon::PrefixD => "prefixd",
        }
    }

    /// The socket file name inside the socket directory.
    pub fn socket_file(self) -> &'static str {
        match self {
            Daemon::Core => "core.sock",
            Daemon::ClientMon => "clientmon.sock",
            Daemon::ClientDb => "client-db.sock",
            Daemon::NdProxy => "ndproxy.sock",
            Daemon::PrefixD => "prefixd.sock",
        }
    }

    /// The fully qualified gRPC service the daemon serves.
    pub fn service(self) -> &'static str {
        match self {
            Daemon::Core => "l3roamd.v1.Core",
            Daemon::ClientMon => "l3roamd.v1.ClientMon",
            Daemon::ClientDb => "l3roamd.v1.ClientDb",
            Daemon::NdProxy => "l3roamd.v1.NdProxy",
            Daemon::PrefixD => "l3roamd.v1.PrefixD",
        }
    }
}

impl std::fmt::Display for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.binary())
    }
}

/// How the daemons of a node are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Launch {
    /// The five separate binaries: `ndproxy -c CONF`.
    #[default]
    Separate,
    /// Symlinks named like the daemons pointing to `l3roamd`: dispatch on argv[0].
    MulticallSymlink,
    /// `l3roamd ndproxy -c CONF`: dispatch on the first argument.
    MulticallSubcommand,
}

/// A node whose daemons are another CPU's build run under a user-mode
/// emulator: `RUNNER MULTICALL <daemon> -c CONF`.
///
/// This is how the lab proves a router build end to end on an x86 machine:
/// the emulator translates every system call, so netlink, TUN, packet
/// sockets and UDP pktinfo of the foreign binary meet the real kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulated {
    /// The emulator, e.g. `qemu-aarch64-static`.
    pub runner: PathBuf,
    /// The multicall `l3roamd` built for the emulated CPU.
    pub multicall: PathBuf,
    /// The daemons that run emulated; the node's others run natively.
    pub daemons: Vec<Daemon>,
}

impl Emulated {
    /// The program and leading arguments that start `daemon` under the emulator.
    pub fn program(&self, daemon: Daemon) -> Result<(PathBuf, Vec<String>)> {
        for path in [&self.runner, &self.multicall] {
            if !cmd::is_executable(path) {
                return Err(Error::Usage(format!(
                    "emulated node: {} is not an executable file (scripts/cross.sh \
                     builds the router binaries; the emulator is Debian's qemu-user-static)",
                    path.display()
                )));
            }
        }
        Ok((
            self.runner.clone(),
            vec![
                self.multicall.display().to_string(),
                daemon.binary().to_string(),
            ],
        ))
    }
}

/// The directory holding our binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinDir {
    dir: PathBuf,
}

impl BinDir {
    /// `L3ROAMD_BIN_DIR` if set, else the cargo profile directory of this executable.
    pub fn locate() -> Result<BinDir> {
        if let Some(dir) = std::env::var_os(BIN_DIR_ENV).filter(|d| !d.is_empty()) {
            return Ok(BinDir { dir: dir.into() });
        }
        let exe =
            std::env::current_exe().map_err(|e| Error::io("finding the running executable", e))?;
        Ok(BinDir {
            dir: profile_dir_of(&exe)?,
        })
    }

    /// A bin dir at an explicit path.
    pub fn at(dir: impl Into<PathBuf>) -> BinDir {
        BinDir { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of binary `name`, or [`Error::MissingBinary`].
    pub fn binary(&self, name: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        if cmd::is_executable(&path) {
            Ok(path)
        } else {
            Err(Error::MissingBinary { path })
        }
    }

    /// The program and leading arguments that start `daemon` with `launch`.
    ///
    /// `links` is the directory of multicall symlinks (see [`make_multicall_links`]).
    pub fn program(
        &self,
        daemon: Daemon,
        launch: Launch,
        links: &Path,
    ) -> Result<(PathBuf, Vec<String>)> {
        match launch {
            Launch::Separate => Ok((self.binary(daemon.binary())?, Vec::new())),
            Launch::MulticallSymlink => {
                self.binary(MULTICALL_BINARY)?;
                Ok((links.join(daemon.binary()), Vec::new()))
            }
            Launch::MulticallSubcommand => Ok((
                self.binary(MULTICALL_BINARY)?,
                vec![daemon.binary().to_string()],
            )),
        }
    }

    /// Creates `links/<daemon>` → `l3roamd` for all five daemons (idempotent).
    pub fn make_multicall_links(&self, links: &Path) -> Result<()> {
        let target = self.binary(MULTICALL_BINARY)?;
        std::fs::create_dir_all(links)
            .map_err(|e| Error::io(format!("creating {}", links.display()), e))?;
        for daemon in Daemon::ALL {
            let link = links.join(daemon.binary());
            if std::fs::symlink_metadata(&link).is_ok() {
                continue;
            }
            std::os::unix::fs::symlink(&target, &link).map_err(|e| {
                Error::io(
                    format!("linking {} -> {}", link.display(), target.display()),
                    e,
                )
            })?;
        }
        Ok(())
    }
}

/// `target/<profile>` from an executable in it or in its `deps/`.
fn profile_dir_of(exe: &Path) -> Result<PathBuf> {
    let parent = exe
        .parent()
        .ok_or_else(|| Error::Usage(format!("executable {} has no parent", exe.display())))?;
    if parent.file_name().is_some_and(|n| n == "deps") {
        parent
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| Error::Usage(format!("{} has no parent", parent.display())))
    } else {
        Ok(parent.to_path_buf())
    }
}

/// The configuration file one node's daemons share.
///
/// Typed fields for the lab's own use; [`DaemonConfig::set_raw`] puts any
/// TOML value (also an invalid one) under any key, for bad-config tests.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Directory of the five sockets.
    pub socket_dir: PathBuf,
    /// `runtime.log_level`.
    pub log_level: String,
    /// This node's address.
    pub node_address: Ipv6Addr,
    /// Interfaces toward other mesh nodes.
    pub mesh_interfaces: Vec<String>,
    /// Client-facing interfaces (the client bridge).
    pub client_interfaces: Vec<String>,
    /// Client prefixes.
    pub client_prefixes: Vec<String>,
    /// Prefix of node-client addresses.
    pub node_client_prefix: String,
    /// The next-node router address.
    pub next_node_address: Ipv6Addr,
    /// The next-node router MAC.
    pub next_node_mac: String,
    /// Name of core's TUN device.
    pub tun_device: String,
    /// Routing table core installs host routes into.
    pub export_table: u32,
    /// Route protocol core tags its routes with.
    pub route_protocol: u8,
    /// Directory of client-db's database.
    pub db_path: PathBuf,
    overrides: Vec<(String, String, String)>,
}

impl DaemonConfig {
    /// A configuration with the lab's defaults for a node whose state lives under `dir`.
    pub fn new(dir: &Path, node_address: Ipv6Addr, mesh_interfaces: Vec<String>) -> DaemonConfig {
        DaemonConfig {
            socket_dir: dir.join("run"),
            log_level: "debug".into(),
            node_address,
            mesh_interfaces,
            client_interfaces: vec![crate::CLIENT_BRIDGE.into()],
            client_prefixes: vec![crate::CLIENT_PREFIX.into()],
            node_client_prefix: crate::NODE_CLIENT_PREFIX.into(),
            next_node_address: crate::NEXT_NODE_ADDRESS,
            next_node_mac: crate::NEXT_NODE_MAC.into(),
            tun_device: TUN_DEVICE.into(),
            export_table: 254,
            route_protocol: ROUTE_PROTOCOL,
            db_path: dir.join("client-db"),
            overrides: Vec::new(),
        }
    }

    /// Sets `section.key` to the raw TOML `value` (e.g. `"\"not-an-address\""`), replacing a typed one.
    pub fn set_raw(&mut self, section: &str, key: &str, value: &str) -> &mut Self {
        self.overrides
            .push((section.to_string(), key.to_string(), value.to_string()));
        self
    }

    /// The socket path of `daemon`.
    pub fn socket(&self, daemon: Daemon) -> PathBuf {
        self.socket_dir.join(daemon.socket_file())
    }

    /// Where core serves the C daemon's control socket on this node.
    pub fn compat_socket(&self) -> PathBuf {
        self.socket_dir.join("l3roamd.sock")
    }

    /// The TOML text.
    pub fn render(&self) -> String {
        let s = |v: &str| toml_string(v);
        let list = |vs: &[String]| {
            format!(
                "[{}]",
                vs.iter()
                    .map(|v| toml_string(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let mut sections: Vec<(&str, Vec<(String, String)>)> = vec![
            (
                "runtime",
                vec![
                    (
                        "socket_dir".into(),
                        s(&self.socket_dir.display().to_string()),
                    ),
                    ("log_level".into(), s(&self.log_level)),
                ],
            ),
            (
                "mesh",
                vec![
                    ("node_address".into(), s(&self.node_address.to_string())),
                    ("mesh_interfaces".into(), list(&self.mesh_interfaces)),
                    ("client_interfaces".into(), list(&self.client_interfaces)),
                    ("client_prefixes".into(), list(&self.client_prefixes)),
                    ("node_client_prefix".into(), s(&self.node_client_prefix)),
                    (
                        "next_node_address".into(),
                        s(&self.next_node_address.to_string()),
                    ),
                    ("next_node_mac".into(), s(&self.next_node_mac)),
                ],
            ),
            (
                "core",
                vec![
                    ("tun_device".into(), s(&self.tun_device)),
                    ("export_table".into(), self.export_table.to_string()),
                    ("route_protocol".into(), self.route_protocol.to_string()),
                    // Per node: the default path is one for the whole machine.
                    (
                        "compat_socket".into(),
                        s(&self.compat_socket().display().to_string()),
                    ),
                ],
            ),
            (
                "client_db",
                vec![("db_path".into(), s(&self.db_path.display().to_string()))],
            ),
        ];
        for (section, key, value) in &self.overrides {
            let idx = match sections.iter().position(|(name, _)| name == section) {
                Some(i) => i,
                None => {
                    sections.push((section.as_str(), Vec::new()));
                    sections.len() - 1
                }
            };
            let entries = &mut sections[idx].1;
            match entries.iter_mut().find(|(k, _)| k == key) {
                Some(entry) => entry.1 = value.clone(),
                None => entries.push((key.clone(), value.clone())),
            }
        }
        let mut out = String::from("# l3roamd configuration (generated by l3roamd-lab)\n");
        for (name, entries) in sections {
            out.push_str(&format!("\n[{name}]\n"));
            for (k, v) in entries {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        out
    }
}

/// A TOML basic string.
pub(crate) fn toml_string(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs a daemon (or any program) to its exit within `timeout`, with the
/// `L3ROAMD_*` environment scrubbed, capturing stdout and stderr apart.
pub fn run_to_exit(program: &Path, args: &[&str], timeout: Duration) -> Result<cmd::Output> {
    let mut command = std::process::Command::new(program);
    command.args(args);
    crate::process::scrub_daemon_env(&mut command);
    cmd::run_command(command, timeout)
}

// ===== grpcurl =====

/// Runs `grpcurl -plaintext -unix -authority localhost -max-time 5 SOCKET args...`.
pub fn grpcurl(socket: &Path, args: &[&str]) -> Result<String> {
    grpcurl_with(socket, &[], args)
}

/// Calls `method` (e.g. `l3roamd.v1.Core/GetStatus`) with the JSON `request`; returns the JSON answer.
pub fn grpc_call(socket: &Path, method: &str, request: &str) -> Result<String> {
    grpcurl_with(socket, &["-d", request], &[method])
}

/// The counters in the `GetStatus` answer of `daemon` at `socket`, by name
/// (proto3 JSON writes uint64 as a string; both shapes are read).
pub fn status_counters(socket: &Path, daemon: Daemon) -> Result<Vec<(String, u64)>> {
    let method = format!("{}/GetStatus", daemon.service());
    let text = grpc_call(socket, &method, "{}")?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::parse(format!("{method} answer"), e.to_string()))?;
    Ok(json["counters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let v = &c["value"];
            let value = v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))?;
            Some((c["name"].as_str()?.to_string(), value))
        })
        .collect())
}

/// Like [`grpcurl`] with extra grpcurl `flags` (e.g. `["-d", "{}"]`), which go before the socket.
pub fn grpcurl_with(socket: &Path, flags: &[&str], args: &[&str]) -> Result<String> {
    if !socket.is_absolute() {
        return Err(Error::Usage(format!(
            "grpcurl needs an absolute socket path, got {}",
            socket.display()
        )));
    }
    let grpcurl = cmd::tool("grpcurl")?;
    let max_time = GRPCURL_MAX_TIME.as_secs().to_string();
    let socket = socket.display().to_string();
    let mut full = vec![
        "-plaintext",
        "-unix",
        "-authority",
        "localhost",
        "-max-time",
        &max_time,
    ];
    full.extend_from_slice(flags);
    full.push(&socket);
    full.extend_from_slice(args);
    cmd::run_status(grpcurl, &full, GRPCURL_MAX_TIME + Duration::from_secs(5))?.success()
}

/// The services a daemon lists through server reflection (`grpcurl ... list`).
pub fn list_services(socket: &Path) -> Result<Vec<String>> {
    Ok(grpcurl(socket, &["list"])?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// The overall health status (`grpc.health.v1.Health/Check`), e.g. `SERVING`.
pub fn health_status(socket: &Path) -> Result<String> {
    let out = grpcurl(socket, &["grpc.health.v1.Health/Check"])?;
    parse_health(&out)
}

fn parse_health(out: &str) -> Result<String> {
    let what = "grpc.health.v1.Health/Check answer";
    let value: Value =
        serde_json::from_str(out).map_err(|e| Error::parse(what, format!("{e}: {out}")))?;
    // proto3 JSON omits default values: an empty object means UNKNOWN (0).
    Ok(value
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("UNKNOWN")
        .to_string())
}

// ----- base64 for the JSON form of bytes fields -----

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `bytes` in base64, as grpcurl writes and reads protobuf `bytes` fields.
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The bytes of base64 `text`; `None` if it is not base64.
pub fn unbase64(text: &str) -> Option<Vec<u8>> {
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = B64.iter().position(|b| *b == c)?;
        bits = (bits << 6) | v as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_dir_from_test_and_bin_locations() {
        let deps = profile_dir_of(Path::new("/w/target/debug/deps/chain-123")).expect("dir");
        assert_eq!(deps, Path::new("/w/target/debug"));
        let bin = profile_dir_of(Path::new("/w/target/debug/l3roamd-demo")).expect("dir");
        assert_eq!(bin, Path::new("/w/target/debug"));
    }

    #[test]
    fn config_renders_spec_keys_and_overrides() {
        let mut c = DaemonConfig::new(
            Path::new("/tmp/l3r-x/n1"),
            "fdff::1".parse().expect("addr"),
            vec!["m-gw".into(), "m-n2".into()],
        );
        let text = c.render();
        for needle in [
            "[runtime]\nsocket_dir = \"/tmp/l3r-x/n1/run\"\nlog_level = \"debug\"\n",
            "node_address = \"fdff::1\"",
            "mesh_interfaces = [\"m-gw\", \"m-n2\"]",
            "client_interfaces = [\"br-client\"]",
            "client_prefixes = [\"fddd:1::/64\"]",
            "node_client_prefix = \"fec0::/64\"",
            "next_node_address = \"fe80::1\"",
            "next_node_mac = \"02:4e:4e:00:00:01\"",
            "[core]\ntun_device = \"l3roam0\"\nexport_table = 254\nroute_protocol = 158\n\
             compat_socket = \"/tmp/l3r-x/n1/run/l3roamd.sock\"\n",
            "[client_db]\ndb_path = \"/tmp/l3r-x/n1/client-db\"",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        c.set_raw("mesh", "node_address", "\"not-an-address\"")
            .set_raw("extra", "k", "1");
        let text = c.render();
        assert!(text.contains("node_address = \"not-an-address\"\n"));
        assert!(!text.contains("fdff::1"));
        assert!(text.ends_with("[extra]\nk = 1\n"));
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("a\"b\\c"), r#""a\"b\\c""#);
    }

    #[test]
    fn health_answers() {
        assert_eq!(
            parse_health("{\n  \"status\": \"SERVING\"\n}").expect("ok"),
            "SERVING"
        );
        assert_eq!(parse_health("{}").expect("ok"), "UNKNOWN");
        assert!(parse_health("Failed to dial").is_err());
    }

    #[test]
    fn multicall_programs() {
        let bins = BinDir::at("/nonexistent");
        let err = bins
            .program(Daemon::NdProxy, Launch::Separate, Path::new("/x"))
            .expect_err("missing");
        assert!(
            err.to_string().contains("cargo build --workspace --bins"),
            "{err}"
        );
    }
}
