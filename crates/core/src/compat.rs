//! Core's side of the C daemon's control socket (`core.compat_socket`):
//! the commands of `l3roamd_compat` answered from the engine and from
//! core's own gRPC service, in process.
//!
//! Core hosts it because it is the daemon the C socket's commands are
//! about (the clients it serves, the mesh interfaces it applies to its
//! peers, the prefixes it routes) and already holds a client of each peer.
//! The mesh-interface commands go through the `l3roamd.v1.Core` methods
//! themselves, so they behave exactly as over gRPC.

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::sync::Arc;

use l3roamd_compat::{AddressState, Backend, BackendError, Client, SharedCounters, Verbosity};
use l3roamd_daemon::Shutdown;
use l3roamd_rpc::pb;
use l3roamd_rpc::pb::core_server::Core as _;
use l3roamd_types::{Ipv6Prefix, MacAddr};
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use tonic::{Code, Request};

use crate::engine::Handle;
use crate::rpc::CoreService;

/// The control socket's view of core.
pub struct ControlSocket {
    service: Arc<CoreService>,
    engine: Handle,
    seeks: mpsc::Sender<Ipv6Addr>,
}

impl ControlSocket {
    /// Answers from `service` and `engine`; probes go out as seeks on
    /// `seeks`.
    pub fn new(service: Arc<CoreService>, engine: Handle, seeks: mpsc::Sender<Ipv6Addr>) -> Self {
        ControlSocket {
            service,
            engine,
            seeks,
        }
    }
}

/// The state the C daemon would show for an address of a client in
/// `phase` (the engine's `ServedClient::phase`).
fn state_of(phase: &str) -> AddressState {
    match phase {
        "serving" => AddressState::Active,
        "claiming" => AddressState::Tentative,
        _ => AddressState::Inactive,
    }
}

/// A gRPC error as the control socket reports it.
fn from_status(status: &tonic::Status) -> BackendError {
    let message = status.message().to_string();
    match status.code() {
        Code::InvalidArgument => BackendError::Invalid(message),
        Code::Unimplemented => BackendError::NotSupported(message),
        _ => BackendError::Unavailable(message),
    }
}

impl Backend for ControlSocket {
    async fn clients(&self) -> Result<Vec<Client>, BackendError> {
        let status = self
            .engine
            .status()
            .await
            .map_err(|e| BackendError::Unavailable(e.to_string()))?;
        Ok(status
            .clients
            .into_iter()
            .map(|c| {
                let state = state_of(c.phase);
                Client {
                    mac: c.mac,
                    interface: c.interface,
                    addresses: c.addresses.into_iter().map(|a| (a, state)).collect(),
                }
            })
            .collect())
    }

    async fn mesh_interfaces(&self) -> Result<Vec<String>, BackendError> {
        let request = Request::new(pb::ListMeshInterfacesRequest {});
        match self.service.list_mesh_interfaces(request).await {
            Ok(answer) => Ok(answer
                .into_inner()
                .interfaces
                .into_iter()
                .map(|i| i.name)
                .collect()),
            Err(status) => Err(from_status(&status)),
        }
    }

    async fn add_mesh_interface(&self, name: &str) -> Result<(), BackendError> {
        let request = Request::new(pb::MeshInterfaceRequest {
            name: name.to_string(),
        });
        self.service
            .add_mesh_interface(request)
            .await
            .map(|_| ())
            .map_err(|s| from_status(&s))
    }

    async fn remove_mesh_interface(&self, name: &str) -> Result<(), BackendError> {
        let request = Request::new(pb::MeshInterfaceRequest {
            name: name.to_string(),
        });
        self.service
            .remove_mesh_interface(request)
            .await
            .map(|_| ())
            .map_err(|s| from_status(&s))
    }

    async fn prefixes(&self) -> Result<Vec<Ipv6Prefix>, BackendError> {
        let status = self
            .engine
            .status()
            .await
            .map_err(|e| BackendError::Unavailable(e.to_string()))?;
        Ok(status.client_prefixes)
    }

    async fn probe(&self, addr: Ipv6Addr, _mac: MacAddr) -> Result<(), BackendError> {
        // The C daemon solicited the address on its client link; a seek
        // does that on every node's client links (ndproxy), and whoever
        // finds the client takes it from there.
        self.seeks
            .try_send(addr)
            .map_err(|_| BackendError::Unavailable("the seek queue is full".into()))
    }

    fn set_verbosity(&self, verbosity: Verbosity) -> Result<(), BackendError> {
        l3roamd_daemon::logging::set_level(verbosity.level())
            .map_err(|e| BackendError::Unavailable(e.to_string()))
    }
}

/// Serves the control socket `listener` (bound at `path`) until shutdown,
/// then removes it.
pub async fn run(
    path: PathBuf,
    listener: UnixListener,
    socket: ControlSocket,
    counters: SharedCounters,
    shutdown: Shutdown,
) {
    tracing::info!(socket = %path.display(), "serving the C control socket");
    l3roamd_compat::serve(
        listener,
        Arc::new(socket),
        l3roamd_compat::Limits::default(),
        counters,
        shutdown.requested(),
    )
    .await;
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(socket = %path.display(), error = %e, "cannot remove socket");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_map_to_the_c_states_and_statuses_to_errors() {
        assert_eq!(state_of("serving"), AddressState::Active);
        assert_eq!(state_of("claiming"), AddressState::Tentative);
        assert_eq!(state_of("leaving"), AddressState::Inactive);
        assert_eq!(
            from_status(&tonic::Status::invalid_argument("name: too long")),
            BackendError::Invalid("name: too long".into())
        );
        assert!(matches!(
            from_status(&tonic::Status::unimplemented("not yet")),
            BackendError::NotSupported(_)
        ));
        assert!(matches!(
            from_status(&tonic::Status::unavailable("down")),
            BackendError::Unavailable(_)
        ));
    }
}
