//! The configuration: one TOML file shared by the five daemons, merged with
//! `L3ROAMD_`-prefixed environment variables and command-line flags.
//!
//! The file has a `[runtime]` section (sockets, logging), a `[mesh]` section
//! that describes this node's place in the mesh, and a section per daemon
//! (`[core]`, `[clientmon]`, `[client_db]`, `[ndproxy]`, `[prefixd]`), each
//! read only by its own daemon. Environment variables use `__` between
//! section and key: `L3ROAMD_MESH__NODE_ADDRESS=fdff::1`.
//!
//! Every error names the key it is about, so an operator knows which line to
//! fix: `mesh.node_address: invalid value: string "x", expected an IPv6 address`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use l3roamd_intercom::{AuthMode, Authenticator, Key};
use l3roamd_types::{Ipv6Prefix, MacAddr};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::{DaemonArgs, DaemonInfo};

/// The configuration file read when `-c` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/l3roamd/l3roamd.toml";
/// The top-level sections a configuration file may have.
pub const SECTIONS: &[&str] = &[
    "runtime",
    "mesh",
    "core",
    "clientmon",
    "client_db",
    "ndproxy",
    "prefixd",
];

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file given with `-c` does not exist or cannot be read.
    #[error("cannot read configuration file {path}: {reason}")]
    File {
        /// The path given.
        path: PathBuf,
        /// Why it cannot be read.
        reason: String,
    },
    /// A key holds a value that is malformed or out of range.
    #[error("{key}: {reason}{origin}")]
    Invalid {
        /// The dotted key, e.g. `mesh.node_address`.
        key: String,
        /// What is wrong and what was expected.
        reason: String,
        /// Where the value came from (file or environment), if known.
        origin: Origin,
    },
}

/// Where a bad value came from, printed after the reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin(Option<String>);

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(origin) => write!(f, " (from {origin})"),
            None => Ok(()),
        }
    }
}

impl ConfigError {
    /// A semantic error about `key`.
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            reason: reason.into(),
            origin: Origin(None),
        }
    }

    /// The key this error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::File { .. } => None,
        }
    }

    /// Turns figment's error into one naming the dotted key under `section`.
    fn from_figment(section: Option<&str>, err: figment::Error) -> ConfigError {
        // figment reports the path relative to where extraction started and
        // appends the extracted key at the end; put the section first, once.
        let mut inner: Vec<String> = err.path.clone();
        if let Some(section) = section {
            if inner.last().map(String::as_str) == Some(section) {
                inner.pop();
            }
            if inner.first().map(String::as_str) == Some(section) {
                inner.remove(0);
            }
        }
        let mut path: Vec<String> = section.map(str::to_string).into_iter().collect();
        path.extend(inner);
        let reason = match &err.kind {
            figment::error::Kind::MissingField(field) => {
                push_once(&mut path, field);
                "is required but missing".to_string()
            }
            figment::error::Kind::UnknownField(field, _) => {
                push_once(&mut path, field);
                "is not a known key (a typo?)".to_string()
            }
            kind => kind.to_string(),
        };
        let origin = err.metadata.as_ref().map(|m| match &m.source {
            Some(source) => format!("{} {}", m.name, source),
            None => m.name.to_string(),
        });
        ConfigError::Invalid {
            key: dotted(&path),
            reason,
            origin: Origin(origin),
        }
    }
}

/// Joins a key path as operators write it: `mesh.client_prefixes[0]`.
fn dotted(path: &[String]) -> String {
    let mut key = String::new();
    for part in path {
        if part.parse::<usize>().is_ok() {
            key.push_str(&format!("[{part}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(part);
        }
    }
    if key.is_empty() {
        key.push_str("(top level)");
    }
    key
}

/// Appends `field` to `path` unless it is its last element already.
fn push_once(path: &mut Vec<String>, field: &str) {
    if path.last().map(String::as_str) != Some(field) {
        path.push(field.to_string());
    }
}

// ===== sections =====

/// `[runtime]`: where sockets live and how much to log.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Directory of the daemons' UNIX sockets (`<name>.sock`).
    pub socket_dir: PathBuf,
    /// error, warn, info, debug or trace.
    pub log_level: String,
    /// The group the sockets belong to (mode 0660), if not the daemon's.
    pub socket_group: Option<String>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            socket_dir: PathBuf::from("/var/run/l3roamd"),
            log_level: "info".to_string(),
            socket_group: None,
        }
    }
}

/// `[mesh]`: this node's place in the mesh, shared by all daemons.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshConfig {
    /// The node's own address, announced by babel; intercom is sent from it.
    pub node_address: Ipv6Addr,
    /// Interfaces babel and the intercom run on.
    #[serde(default)]
    pub mesh_interfaces: Vec<String>,
    /// Name patterns (`*` any run of characters, `?` one) of interfaces
    /// that are mesh interfaces while they exist, e.g. `wg_*` for a
    /// broker's WireGuard interface per peer; core follows them.
    #[serde(default)]
    pub mesh_interface_patterns: Vec<String>,
    /// Interfaces clients attach to (the client bridge).
    #[serde(default)]
    pub client_interfaces: Vec<String>,
    /// The /64s clients take addresses from.
    #[serde(default)]
    pub client_prefixes: Vec<Ipv6Prefix>,
    /// The /64 of node-client addresses.
    #[serde(default = "default_node_client_prefix")]
    pub node_client_prefix: Ipv6Prefix,
    /// The next-node router's address on client links.
    #[serde(default = "default_next_node_address")]
    pub next_node_address: Ipv6Addr,
    /// The next-node router's MAC on client links, never a client.
    #[serde(default)]
    pub next_node_mac: Option<MacAddr>,
    /// The next node's routable address, the same on every node (Gluon's
    /// `next_node.ip6`), if there is one: prefixd's default DNS server.
    #[serde(default)]
    pub next_node_routable_address: Option<Ipv6Addr>,
    /// UDP port of the intercom (SEEK, CLAIM, INFO, ACK).
    #[serde(default = "default_intercom_port")]
    pub intercom_port: u16,
    /// UDP port of the data path between cores (found notices, encapsulated
    /// packets); old C nodes never see it.
    #[serde(default = "default_data_port")]
    pub data_port: u16,
    /// Authentication of the intercom and the data path: `off` (plain, safe
    /// with C nodes), `sign` (send signed, accept unsigned) or `require`
    /// (drop unsigned, forged and replayed packets).
    #[serde(default = "default_intercom_auth")]
    pub intercom_auth: String,
    /// The mesh key as hex (at least 64 hex digits, 32 bytes), the same on
    /// every node; or `intercom_key_file`.
    #[serde(default)]
    pub intercom_key: Option<Secret>,
    /// A file holding the mesh key as hex (white space ignored), so the key
    /// need not sit in the configuration file.
    #[serde(default)]
    pub intercom_key_file: Option<PathBuf>,
}

/// A configuration value that is never printed (`Debug` shows a mark).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

impl Secret {
    /// The secret text, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn default_intercom_auth() -> String {
    "off".to_string()
}

/// Decodes a hex key; the error never repeats the text.
fn parse_hex_key(key: &str, text: &str) -> Result<Key, ConfigError> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let value = |d: u8| char::from(d).to_digit(16);
    if !digits.len().is_multiple_of(2) || digits.iter().any(|d| value(*d).is_none()) {
        return Err(ConfigError::invalid(
            key,
            "must be hex digits (an even number of 0-9, a-f), e.g. from `openssl rand -hex 32`",
        ));
    }
    let bytes = digits
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => value(*hi).unwrap_or(0) * 16 + value(*lo).unwrap_or(0),
            _ => 0,
        })
        .map(|b| u8::try_from(b).unwrap_or(0))
        .collect();
    Key::new(bytes).map_err(|e| ConfigError::invalid(key, e.to_string()))
}

fn default_node_client_prefix() -> Ipv6Prefix {
    Ipv6Prefix::new(Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 64)
        .unwrap_or_else(|_| unreachable!("fec0::/64 is canonical"))
}

fn default_next_node_address() -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)
}

fn default_intercom_port() -> u16 {
    5523
}

fn default_data_port() -> u16 {
    5524
}

/// Most mesh interfaces a node uses at once (configured plus added at
/// runtime): each costs ndproxy a socket and a task, and a broker with a
/// WireGuard interface per peer should still fit.
pub const MAX_MESH_INTERFACES: usize = 512;

/// Checks a kernel interface name: 1 to 15 bytes, no '/', no white space.
pub fn check_interface_name(key: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("{name:?} is not a valid interface name (1 to 15 characters, no '/', ':' or spaces)"),
        ))
    }
}

impl MeshConfig {
    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let a = self.node_address;
        if a.is_unspecified() || a.is_loopback() || a.is_multicast() || is_link_local(&a) {
            return Err(ConfigError::invalid(
                "mesh.node_address",
                format!("{a} cannot be a node address (it must be a routable unicast address)"),
            ));
        }
        for (list, key) in [
            (&self.mesh_interfaces, "mesh.mesh_interfaces"),
            (&self.client_interfaces, "mesh.client_interfaces"),
            (
                &self.mesh_interface_patterns,
                "mesh.mesh_interface_patterns",
            ),
        ] {
            for (i, name) in list.iter().enumerate() {
                check_interface_name(&format!("{key}[{i}]"), name)?;
            }
        }
        if let Some(name) = self
            .mesh_interfaces
            .iter()
            .find(|m| self.client_interfaces.contains(m))
        {
            return Err(ConfigError::invalid(
                "mesh.client_interfaces",
                format!("{name} is also a mesh interface"),
            ));
        }
        for (i, p) in self.client_prefixes.iter().enumerate() {
            if p.prefix_len() != 64 {
                return Err(ConfigError::invalid(
                    format!("mesh.client_prefixes[{i}]"),
                    format!("{p} is not a /64 (clients configure addresses by SLAAC)"),
                ));
            }
            if p.contains(&self.node_client_prefix.addr()) {
                return Err(ConfigError::invalid(
                    format!("mesh.client_prefixes[{i}]"),
                    format!("{p} overlaps mesh.node_client_prefix"),
                ));
            }
        }
        if self.node_client_prefix.prefix_len() != 64 {
            return Err(ConfigError::invalid(
                "mesh.node_client_prefix",
                format!("{} is not a /64", self.node_client_prefix),
            ));
        }
        if !is_link_local(&self.next_node_address) {
            return Err(ConfigError::invalid(
                "mesh.next_node_address",
                format!("{} is not a link-local address", self.next_node_address),
            ));
        }
        if self
            .next_node_mac
            .is_some_and(|m| m.is_multicast() || m == MacAddr::ZERO)
        {
            return Err(ConfigError::invalid(
                "mesh.next_node_mac",
                "must be a unicast MAC address",
            ));
        }
        for (port, key) in [
            (self.intercom_port, "mesh.intercom_port"),
            (self.data_port, "mesh.data_port"),
        ] {
            if port == 0 {
                return Err(ConfigError::invalid(key, "port 0 is not a port"));
            }
        }
        self.intercom_key()?;
        if self.intercom_port == self.data_port {
            return Err(ConfigError::invalid(
                "mesh.data_port",
                "must differ from mesh.intercom_port",
            ));
        }
        Ok(())
    }
}

pub use l3roamd_types::addr::is_link_local;

impl MeshConfig {
    /// The authentication mode and, unless it is off, the mesh key (read
    /// from `intercom_key_file` if that is where it is).
    pub fn intercom_key(&self) -> Result<(AuthMode, Option<Key>), ConfigError> {
        let mode = AuthMode::parse(&self.intercom_auth).ok_or_else(|| {
            ConfigError::invalid(
                "mesh.intercom_auth",
                format!("{:?} is not one of off, sign, require", self.intercom_auth),
            )
        })?;
        let key = match (&self.intercom_key, &self.intercom_key_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    "mesh.intercom_key_file",
                    "give mesh.intercom_key or mesh.intercom_key_file, not both",
                ))
            }
            (Some(text), None) => Some(parse_hex_key("mesh.intercom_key", text.expose())?),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::invalid(
                        "mesh.intercom_key_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                Some(parse_hex_key("mesh.intercom_key_file", &text)?)
            }
            (None, None) => None,
        };
        if mode != AuthMode::Off && key.is_none() {
            return Err(ConfigError::invalid(
                "mesh.intercom_key",
                format!(
                    "is required when mesh.intercom_auth is {:?} (or mesh.intercom_key_file)",
                    mode.as_str()
                ),
            ));
        }
        Ok((mode, key))
    }

    /// The authenticator a daemon seals and opens its mesh packets with.
    /// Its counter starts at the wall clock in microseconds, so that a
    /// restarted daemon starts above what it sent before
    /// (`l3roamd_intercom::auth`).
    pub fn authenticator(&self) -> Result<Authenticator, ConfigError> {
        let (mode, key) = self.intercom_key()?;
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Ok(Authenticator::new(mode, key, start))
    }
}

impl RuntimeConfig {
    /// Checks the log level.
    pub fn validate(&self) -> Result<(), ConfigError> {
        const LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];
        if !LEVELS.contains(&self.log_level.as_str()) {
            return Err(ConfigError::invalid(
                "runtime.log_level",
                format!("{:?} is not one of {}", self.log_level, LEVELS.join(", ")),
            ));
        }
        if self.socket_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                "runtime.socket_dir",
                "must not be empty",
            ));
        }
        Ok(())
    }
}

// ===== loading =====

/// The merged, checked configuration of one daemon.
#[derive(Clone)]
pub struct Config {
    figment: Figment,
    /// `[runtime]`.
    pub runtime: RuntimeConfig,
    /// `[mesh]`.
    pub mesh: MeshConfig,
    socket_flag: Option<PathBuf>,
}

// By hand: figment's own Debug would print every raw value, the mesh key too.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("runtime", &self.runtime)
            .field("mesh", &self.mesh)
            .field("socket_flag", &self.socket_flag)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Loads the file named by `-c` (or the default file if it exists), the
    /// environment and the flags, then checks `[runtime]`, `[mesh]` and the
    /// set of sections.
    pub fn load(info: DaemonInfo, args: &DaemonArgs) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        match &args.config {
            Some(path) => {
                check_readable(path)?;
                figment = figment.merge(Toml::file_exact(path));
            }
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_PATH));
            }
            None => {}
        }
        // Only L3ROAMD_<SECTION>__<KEY>: other L3ROAMD_* variables (a tool's
        // own, like L3ROAMD_BIN_DIR) are not configuration.
        figment = figment.merge(
            Env::prefixed("L3ROAMD_")
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        );
        let mut config = Config::from_figment(figment)?;
        config.socket_flag = args.socket.clone();
        let _ = info;
        Ok(config)
    }

    /// Builds and checks a configuration from any figment (tests use a string).
    pub fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let top: BTreeMap<String, figment::value::Value> = figment
            .extract()
            .map_err(|e| ConfigError::from_figment(None, e))?;
        if let Some(unknown) = top.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
            return Err(ConfigError::invalid(
                unknown.clone(),
                format!("is not a known section (known: {})", SECTIONS.join(", ")),
            ));
        }
        let runtime: RuntimeConfig = extract_section(&figment, "runtime")?.unwrap_or_default();
        runtime.validate()?;
        let mesh: MeshConfig = extract_section(&figment, "mesh")?
            .ok_or_else(|| ConfigError::invalid("mesh.node_address", "is required but missing"))?;
        mesh.validate()?;
        Ok(Config {
            figment,
            runtime,
            mesh,
            socket_flag: None,
        })
    }

    /// A configuration from TOML text, for tests and tools.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Config::from_figment(Figment::from(Toml::string(text)))
    }

    /// Extracts the section `name` (e.g. `core`) as `T`; a missing section
    /// gives `T::default()`.
    pub fn section<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T, ConfigError> {
        Ok(extract_section(&self.figment, name)?.unwrap_or_default())
    }

    /// The socket of daemon `info`: the `--socket` flag when it is this
    /// daemon's own, else `<section>.socket`, else `<runtime.socket_dir>/<name>.sock`.
    pub fn socket_of(&self, info: DaemonInfo) -> Result<PathBuf, ConfigError> {
        let key = format!("{}.socket", info.section);
        let configured: Option<PathBuf> = match self.figment.find_value(&key) {
            Ok(_) => Some(
                self.figment
                    .extract_inner(&key)
                    .map_err(|e| ConfigError::from_figment(None, e))?,
            ),
            Err(_) => None,
        };
        let socket = configured.unwrap_or_else(|| info.default_socket(&self.runtime));
        if socket.as_os_str().is_empty() {
            return Err(ConfigError::invalid(key, "must not be empty"));
        }
        Ok(socket)
    }

    /// The socket this daemon serves: the `--socket` flag wins.
    pub fn own_socket(&self, info: DaemonInfo) -> Result<PathBuf, ConfigError> {
        match &self.socket_flag {
            Some(path) => Ok(path.clone()),
            None => self.socket_of(info),
        }
    }
}

fn check_readable(path: &Path) -> Result<(), ConfigError> {
    std::fs::metadata(path)
        .and_then(|m| {
            if m.is_file() {
                Ok(())
            } else {
                Err(std::io::Error::other("not a regular file"))
            }
        })
        .map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

fn extract_section<T: DeserializeOwned>(
    figment: &Figment,
    name: &str,
) -> Result<Option<T>, ConfigError> {
    if figment.find_value(name).is_err() {
        return Ok(None);
    }
    figment
        .extract_inner(name)
        .map(Some)
        .map_err(|e| ConfigError::from_figment(Some(name), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [runtime]
        socket_dir = "/tmp/x"
        [mesh]
        node_address = "fdff::1"
        mesh_interfaces = ["m-n2"]
        client_interfaces = ["br-client"]
        client_prefixes = ["fddd:1::/64"]
        next_node_mac = "02:4e:4e:00:00:01"
    "#;

    fn key_of(text: &str) -> String {
        let err = Config::from_toml(text).expect_err("must fail");
        err.key().map(str::to_string).unwrap_or_default()
    }

    #[test]
    fn good_config_loads_with_defaults() {
        let c = Config::from_toml(GOOD).unwrap();
        assert_eq!(c.mesh.node_address, "fdff::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(c.mesh.node_client_prefix.to_string(), "fec0::/64");
        assert_eq!(c.mesh.intercom_port, 5523);
        assert_eq!(c.runtime.log_level, "info");
        let info = DaemonInfo {
            name: "client-db",
            section: "client_db",
            about: "",
        };
        assert_eq!(
            c.socket_of(info).unwrap(),
            PathBuf::from("/tmp/x/client-db.sock")
        );
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(
            key_of(&GOOD.replace("\"fdff::1\"", "\"not-an-address\"")),
            "mesh.node_address"
        );
        assert_eq!(
            key_of(&GOOD.replace("fddd:1::/64", "fddd:1::1/64")),
            "mesh.client_prefixes[0]"
        );
        assert_eq!(
            key_of(&GOOD.replace("fddd:1::/64", "fddd:1::/56")),
            "mesh.client_prefixes[0]"
        );
        assert_eq!(
            key_of(&GOOD.replace("node_address", "node_adress")),
            "mesh.node_adress"
        );
        assert_eq!(
            key_of(&GOOD.replace("[runtime]", "[runtime]\nlog_level = \"loud\"")),
            "runtime.log_level"
        );
        assert_eq!(key_of(&GOOD.replace("[mesh]", "[mesg]")), "mesg");
        assert_eq!(
            key_of(&GOOD.replace("\"m-n2\"", "\"this-name-is-too-long\"")),
            "mesh.mesh_interfaces[0]"
        );
        assert_eq!(
            key_of(&GOOD.replace(
                "[mesh]",
                "[mesh]\nmesh_interface_patterns = [\"wg_*\", \"bad/*\"]"
            )),
            "mesh.mesh_interface_patterns[1]"
        );
        assert_eq!(key_of("[runtime]\n"), "mesh.node_address");
        assert_eq!(
            key_of(&GOOD.replace("fdff::1", "fe80::1")),
            "mesh.node_address"
        );
    }

    #[test]
    fn intercom_auth_checks_mode_and_key_and_never_shows_the_key() {
        let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let c = Config::from_toml(GOOD).unwrap();
        assert_eq!(c.mesh.intercom_key().unwrap(), (AuthMode::Off, None));
        let with = |extra: &str| GOOD.replace("[mesh]", &format!("[mesh]\n{extra}"));
        let c = Config::from_toml(&with(&format!(
            "intercom_auth = \"require\"\nintercom_key = \"{key}\""
        )))
        .unwrap();
        let (mode, k) = c.mesh.intercom_key().unwrap();
        assert_eq!(mode, AuthMode::Require);
        let expected: Vec<u8> = (0..32).map(|i| ((i % 16) * 0x11) as u8).collect();
        assert_eq!(k.unwrap(), Key::new(expected).unwrap());
        assert!(!format!("{c:?}").contains("aabbcc"), "the key is printed");
        assert_eq!(c.mesh.authenticator().unwrap().mode(), AuthMode::Require);
        assert_eq!(
            key_of(&with("intercom_auth = \"on\"")),
            "mesh.intercom_auth"
        );
        assert_eq!(
            key_of(&with("intercom_auth = \"sign\"")),
            "mesh.intercom_key"
        );
        assert_eq!(
            key_of(&with("intercom_key = \"0011\"")),
            "mesh.intercom_key"
        );
        assert_eq!(
            key_of(&with(&format!("intercom_key = \"{key}x\""))),
            "mesh.intercom_key"
        );
        let err =
            Config::from_toml(&with(&format!("intercom_key = \"{}zz\"", &key[..62]))).unwrap_err();
        assert!(!err.to_string().contains("aabb"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, format!("{key}\n")).unwrap();
        let c = Config::from_toml(&with(&format!(
            "intercom_auth = \"sign\"\nintercom_key_file = \"{}\"",
            file.display()
        )))
        .unwrap();
        assert_eq!(c.mesh.intercom_key().unwrap().0, AuthMode::Sign);
        assert_eq!(
            key_of(&with(
                "intercom_auth = \"sign\"\nintercom_key_file = \"/nonexistent/k\""
            )),
            "mesh.intercom_key_file"
        );
        assert_eq!(
            key_of(&with(&format!(
                "intercom_key = \"{key}\"\nintercom_key_file = \"{}\"",
                file.display()
            ))),
            "mesh.intercom_key_file"
        );
    }

    #[test]
    fn daemon_sections_name_their_keys() {
        #[derive(Debug, Default, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct Core {
            export_table: u32,
        }
        let c = Config::from_toml(&format!("{GOOD}\n[core]\nexport_table = \"main\"\n")).unwrap();
        let err = c.section::<Core>("core").unwrap_err();
        assert_eq!(err.key(), Some("core.export_table"), "{err}");
        let c = Config::from_toml(&format!("{GOOD}\n[core]\nexport_tabel = 1\n")).unwrap();
        assert_eq!(
            c.section::<Core>("core").unwrap_err().key(),
            Some("core.export_tabel")
        );
    }

    #[test]
    fn missing_file_is_reported() {
        let info = DaemonInfo {
            name: "x",
            section: "x",
            about: "",
        };
        let args = DaemonArgs {
            config: Some(PathBuf::from("/nonexistent/l3roamd.toml")),
            ..DaemonArgs::default()
        };
        assert!(matches!(
            Config::load(info, &args),
            Err(ConfigError::File { .. })
        ));
    }

    /// A daemon reads its file once: its sections come from that one
    /// reading, so a file rewritten (or half written) while it runs changes
    /// nothing until the restart, and a section read late cannot mix old
    /// and new values.
    #[test]
    fn sections_come_from_the_file_as_it_was_read() {
        #[derive(Debug, Default, Deserialize)]
        struct Core {
            export_table: u32,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l3roamd.toml");
        std::fs::write(&path, format!("{GOOD}\n[core]\nexport_table = 11\n")).unwrap();
        let info = DaemonInfo {
            name: "x",
            section: "core",
            about: "",
        };
        let args = DaemonArgs {
            config: Some(path.clone()),
            ..DaemonArgs::default()
        };
        let c = Config::load(info, &args).unwrap();
        // Rewritten, then cut short mid-line, as a non-atomic writer would.
        std::fs::write(
            &path,
            "[mesh]\nnode_address = \"fdff::2\"\n[core]\nexport_tab",
        )
        .unwrap();
        assert_eq!(c.section::<Core>("core").unwrap().export_table, 11);
        assert_eq!(c.mesh.node_address, "fdff::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(c.mesh.mesh_interfaces, vec!["m-n2".to_string()]);
        // The next start sees the broken file and names where it broke.
        let err = Config::load(info, &args).unwrap_err();
        assert!(err.to_string().contains("l3roamd.toml"), "{err}");
    }
}
