//! The mesh interfaces: those of the configuration and those added or
//! removed at runtime (`AddMeshInterface`, `RemoveMeshInterface`; Gluon calls
//! them from its `interface.*` trigger as links come and go).
//!
//! Core is the one place that knows the list. It lives in a
//! [`watch`](tokio::sync::watch) channel: the RPC service changes it, core's
//! own data path reads it on every datagram (the arrival interface check),
//! and one task per peer ([`push`]) sends the whole list to ndproxy and to
//! client-db (`SetMeshInterfaces`) after every change and again after every
//! reconnect, so a restarted ndproxy or client-db, which starts from the
//! configured list, gets the runtime interfaces back at once. Sending the
//! whole list makes the call idempotent: a push repeated or overtaken
//! changes nothing.
//!
//! Interfaces whose names match `mesh.mesh_interface_patterns` (`wg_*`)
//! are added when they appear and removed when they vanish ([`follow_patterns`],
//! on the kernel's link events).
//!
//! The list is not kept across a restart of core itself: like the C daemon,
//! core starts from the configuration, and the init script that added
//! interfaces adds them again on its next trigger (Gluon's `reload_service`
//! adds every mesh interface that is up and removes the rest;
//! `deploy/openwrt/files/etc/init.d/l3roamd-core` does the same).

use std::collections::BTreeSet;
use std::path::PathBuf;

use l3roamd_daemon::config::MAX_MESH_INTERFACES;
use l3roamd_daemon::Shutdown;
use l3roamd_net::link_events::LinkWatch;
use l3roamd_rpc::pb;
use l3roamd_rpc::pb::client_db_client::ClientDbClient;
use l3roamd_rpc::pb::nd_proxy_client::NdProxyClient;
use l3roamd_rpc::Session;
use tokio::sync::watch;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

// ===== the list =====

/// Why an interface cannot be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddError {
    /// It is one of `mesh.client_interfaces`: a client must never reach the
    /// intercom or the data path as if it were a node.
    #[error("name: {0} is a client interface")]
    ClientInterface(String),
    /// The list is full.
    #[error("name: {MAX_MESH_INTERFACES} mesh interfaces are in use, no more can be added")]
    Full,
}

/// The mesh interfaces in use, shared by the RPC service, the data path and
/// the followers.
#[derive(Debug, Clone)]
pub struct MeshInterfaces {
    configured: Vec<String>,
    client_interfaces: Vec<String>,
    list: watch::Sender<Vec<String>>,
}

impl MeshInterfaces {
    /// Starts from `configured` (`mesh.mesh_interfaces`).
    pub fn new(configured: Vec<String>, client_interfaces: Vec<String>) -> MeshInterfaces {
        let (list, _) = watch::channel(configured.clone());
        MeshInterfaces {
            configured,
            client_interfaces,
            list,
        }
    }

    /// Follows the list: the data path and the followers hold one each.
    pub fn subscribe(&self) -> watch::Receiver<Vec<String>> {
        self.list.subscribe()
    }

    /// The names in use, in the order they were added.
    pub fn names(&self) -> Vec<String> {
        self.list.borrow().clone()
    }

    /// Whether `name` is in the configuration file.
    pub fn is_configured(&self, name: &str) -> bool {
        self.configured.iter().any(|c| c == name)
    }

    /// Adds `name` (checked as an interface name); `Ok(false)` when it was
    /// in use already.
    pub fn add(&self, name: &str) -> Result<bool, AddError> {
        if self.client_interfaces.iter().any(|c| c == name) {
            return Err(AddError::ClientInterface(name.to_string()));
        }
        let mut result = Ok(false);
        self.list.send_if_modified(|list| {
            if list.iter().any(|n| n == name) {
                return false;
            }
            if list.len() >= MAX_MESH_INTERFACES {
                result = Err(AddError::Full);
                return false;
            }
            list.push(name.to_string());
            result = Ok(true);
            true
        });
        result
    }

    /// Removes `name`, configured or not; `false` when it was not in use.
    pub fn remove(&self, name: &str) -> bool {
        self.list.send_if_modified(|list| {
            let before = list.len();
            list.retain(|n| n != name);
            list.len() != before
        })
    }
}

// ===== name patterns =====

/// Whether `name` matches `pattern`: `*` any run of characters (also none),
/// `?` exactly one, anything else itself.
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    // Iterative glob with one backtrack point: linear in practice, never
    // recursive, whatever the input.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == b'?' || Some(c) == n.get(ni) => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|c| *c == b'*'))
}

/// What following the patterns changes: names to add and names to remove.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PatternChanges {
    /// Interfaces that exist and match, not added by the patterns yet.
    pub add: Vec<String>,
    /// Interfaces the patterns added that are gone.
    pub remove: Vec<String>,
}

/// The changes for the interfaces `present` now, given what the patterns
/// `added` before; never an `excluded` name (client interfaces, `lo`, the
/// TUN device), whatever the patterns say.
pub fn pattern_changes(
    patterns: &[String],
    excluded: &[String],
    present: &BTreeSet<String>,
    added: &BTreeSet<String>,
) -> PatternChanges {
    let add = present
        .iter()
        .filter(|name| !added.contains(*name) && !excluded.contains(name))
        .filter(|name| patterns.iter().any(|p| matches(p, name)))
        .cloned()
        .collect();
    let remove = added
        .iter()
        .filter(|name| !present.contains(*name))
        .cloned()
        .collect();
    PatternChanges { add, remove }
}

/// The interfaces the kernel has now, by name (`/sys/class/net`).
fn present_interfaces() -> BTreeSet<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Adds the interfaces matching `patterns` to `list` while they exist and
/// removes them when they vanish, until shutdown. An interface that the
/// operator added too stays when it vanishes (the patterns did not add it).
/// One removed by the operator while it matches comes back on the next link
/// event.
pub async fn follow_patterns(
    list: MeshInterfaces,
    patterns: Vec<String>,
    excluded: Vec<String>,
    shutdown: Shutdown,
) {
    let mut links = LinkWatch::spawn("interface patterns");
    let mut added = BTreeSet::new();
    loop {
        let changes = pattern_changes(&patterns, &excluded, &present_interfaces(), &added);
        for name in changes.add {
            match list.add(&name) {
                Ok(true) => {
                    tracing::info!(link = %name, "mesh interface appeared (pattern)");
                    added.insert(name);
                }
                // The operator's already: not ours to remove.
                Ok(false) => {}
                Err(e) => tracing::warn!(link = %name, error = %e, "matching interface not added"),
            }
        }
        for name in changes.remove {
            if list.remove(&name) {
                tracing::info!(link = %name, "mesh interface vanished (pattern)");
            }
            added.remove(&name);
        }
        tokio::select! {
            () = shutdown.requested() => break,
            () = links.changed() => {}
        }
    }
}

// ===== pushing the list to ndproxy and client-db =====

/// A daemon that takes the mesh interfaces from core.
pub trait Receiver: Send + Sync + 'static {
    /// Its name, for logs.
    const NAME: &'static str;

    /// Calls its `SetMeshInterfaces` with `names`.
    fn set(
        channel: Channel,
        names: Vec<String>,
    ) -> impl std::future::Future<Output = Result<(), tonic::Status>> + Send;
}

/// ndproxy: its SEEK sockets.
pub struct NdProxy;

impl Receiver for NdProxy {
    const NAME: &'static str = "ndproxy";

    async fn set(channel: Channel, names: Vec<String>) -> Result<(), tonic::Status> {
        NdProxyClient::new(channel)
            .set_mesh_interfaces(pb::SetMeshInterfacesRequest { names })
            .await
            .map(|_| ())
    }
}

/// client-db: its arrival check for CLAIM/INFO/ACK.
pub struct ClientDb;

impl Receiver for ClientDb {
    const NAME: &'static str = "client-db";

    async fn set(channel: Channel, names: Vec<String>) -> Result<(), tonic::Status> {
        ClientDbClient::new(channel)
            .set_mesh_interfaces(pb::SetMeshInterfacesRequest { names })
            .await
            .map(|_| ())
    }
}

/// Sends the list to `R` at `socket` on every change and after every
/// (re)connect, until shutdown.
pub async fn push<R: Receiver>(
    socket: PathBuf,
    names: watch::Receiver<Vec<String>>,
    shutdown: Shutdown,
) {
    let session = Push::<R> {
        names,
        receiver: std::marker::PhantomData,
    };
    l3roamd_rpc::follow(R::NAME, socket, session, shutdown).await;
}

/// One connection's worth of pushing; the peer's health stream tells when
/// the connection is gone (the peer restarted and must be told again).
struct Push<R: Receiver> {
    names: watch::Receiver<Vec<String>>,
    receiver: std::marker::PhantomData<R>,
}

impl<R: Receiver> Session for Push<R> {
    type Stream = (Channel, tonic::Streaming<HealthCheckResponse>);

    async fn open(&mut self, channel: Channel) -> Result<Self::Stream, tonic::Status> {
        let health = HealthClient::new(channel.clone())
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await?
            .into_inner();
        Ok((channel, health))
    }

    async fn run(&mut self, (channel, mut health): Self::Stream) -> Result<(), String> {
        loop {
            let names = self.names.borrow_and_update().clone();
            let count = names.len();
            R::set(channel.clone(), names)
                .await
                .map_err(|e| format!("SetMeshInterfaces: {e}"))?;
            tracing::debug!(peer = R::NAME, count, "mesh interfaces sent");
            loop {
                tokio::select! {
                    changed = self.names.changed() => {
                        if changed.is_err() {
                            return Ok(()); // core is stopping
                        }
                        break;
                    }
                    message = health.message() => match message {
                        Ok(Some(_)) => {}
                        Ok(None) => return Err(format!("{} closed its health stream", R::NAME)),
                        Err(e) => return Err(e.to_string()),
                    },
                }
            }
        }
    }
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;

    fn list(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn add_and_remove_change_the_list_once() {
        let m = MeshInterfaces::new(list(&["mesh0"]), list(&["br-client"]));
        let mut rx = m.subscribe();
        assert_eq!(m.add("wg_1"), Ok(true));
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        assert_eq!(m.add("wg_1"), Ok(false));
        assert_eq!(m.add("mesh0"), Ok(false));
        assert!(!rx.has_changed().unwrap(), "adding twice is no change");
        assert_eq!(m.names(), list(&["mesh0", "wg_1"]));
        assert!(m.is_configured("mesh0") && !m.is_configured("wg_1"));
        // A configured interface can be removed and added again.
        assert!(m.remove("mesh0"));
        assert!(!m.remove("mesh0"));
        assert!(!m.remove("nothing"));
        assert_eq!(m.names(), list(&["wg_1"]));
        assert_eq!(m.add("mesh0"), Ok(true));
        assert_eq!(m.names(), list(&["wg_1", "mesh0"]));
    }

    #[test]
    fn globs_match_like_the_shell() {
        for (p, n) in [
            ("wg_*", "wg_peer1"),
            ("wg_*", "wg_"),
            ("mesh-*", "mesh-vpn"),
            ("*", "x"),
            ("m?sh*", "mesh0"),
            ("*-vpn", "mesh-vpn"),
            ("a*b*c", "a-b-b-c"),
            ("mesh0", "mesh0"),
        ] {
            assert!(matches(p, n), "{p} {n}");
        }
        for (p, n) in [
            ("wg_*", "wg"),
            ("wg_*", "xwg_1"),
            ("mesh0", "mesh01"),
            ("?", ""),
            ("a*b*c", "a-b-b-"),
            ("*-vpn", "mesh-vpn0"),
        ] {
            assert!(!matches(p, n), "{p} {n}");
        }
        // Pathological patterns stay cheap.
        assert!(!matches("*a*a*a*a*a*a*a*b", &"a".repeat(15)));
    }

    #[test]
    fn patterns_add_what_appears_and_remove_only_what_they_added() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let patterns = list(&["wg_*", "*"]);
        let excluded = list(&["br-client", "lo", "l3roam0"]);
        let changes = pattern_changes(
            &patterns,
            &excluded,
            &set(&["lo", "br-client", "l3roam0", "wg_1", "eth0"]),
            &set(&[]),
        );
        assert_eq!(changes.add, list(&["eth0", "wg_1"]));
        assert!(changes.remove.is_empty());
        let changes = pattern_changes(
            &list(&["wg_*"]),
            &excluded,
            &set(&["wg_2", "mesh0"]),
            &set(&["wg_1", "wg_2"]),
        );
        assert_eq!(
            changes,
            PatternChanges {
                add: Vec::new(),
                remove: list(&["wg_1"]),
            }
        );
    }

    #[test]
    fn client_interfaces_are_refused_and_the_list_is_bounded() {
        let m = MeshInterfaces::new(Vec::new(), list(&["br-client"]));
        assert_eq!(
            m.add("br-client"),
            Err(AddError::ClientInterface("br-client".into()))
        );
        for i in 0..MAX_MESH_INTERFACES {
            assert_eq!(m.add(&format!("wg_{i}")), Ok(true));
        }
        assert_eq!(m.add("one-more"), Err(AddError::Full));
        assert_eq!(m.add("wg_0"), Ok(false));
        assert_eq!(m.names().len(), MAX_MESH_INTERFACES);
    }
}
