//! The `l3roamd.v1.Core` service.

use std::time::Instant;

use l3roamd_daemon::MeshConfig;
use l3roamd_rpc::pb;
use tonic::{Request, Response, Status};

use crate::engine::Handle;
use crate::kernel::Kernel;
use crate::meshifs::MeshInterfaces;
use crate::netlink::Netlink;
use crate::peers::Peers;
use crate::CoreConfig;

/// Serves core's state to operators.
#[derive(Debug)]
pub struct CoreService {
    mesh: MeshConfig,
    config: CoreConfig,
    peers: Peers,
    kernel: Netlink,
    engine: Handle,
    mesh_interfaces: MeshInterfaces,
    started: Instant,
    compat: Option<l3roamd_compat::SharedCounters>,
}

impl CoreService {
    /// A service over core's state.
    pub fn new(
        mesh: MeshConfig,
        config: CoreConfig,
        peers: Peers,
        kernel: Netlink,
        engine: Handle,
        mesh_interfaces: MeshInterfaces,
        started: Instant,
    ) -> Self {
        CoreService {
            mesh,
            config,
            peers,
            kernel,
            engine,
            mesh_interfaces,
            started,
            compat: None,
        }
    }

    /// Shows the C control socket's counters in GetStatus too.
    pub fn with_compat_counters(mut self, counters: l3roamd_compat::SharedCounters) -> Self {
        self.compat = Some(counters);
        self
    }
}

#[tonic::async_trait]
impl pb::core_server::Core for CoreService {
    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::CoreStatus>, Status> {
        let peers = self
            .peers
            .snapshot()
            .into_iter()
            .map(|p| pb::PeerStatus {
                name: p.name.to_string(),
                socket: p.socket.display().to_string(),
                state: p.state.into(),
                connects: p.connects,
                last_error: p.last_error,
            })
            .collect();
        let status = self
            .engine
            .status()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let mut counters = status.counters.clone();
        if let Some(compat) = &self.compat {
            // A poisoned lock still holds usable numbers.
            counters.extend(compat.lock().unwrap_or_else(|e| e.into_inner()).list());
        }
        let counters = counters
            .iter()
            .map(|(name, value)| pb::Counter {
                name: (*name).to_string(),
                value: *value,
            })
            .collect();
        let tun_device = status.tun_device;
        Ok(Response::new(pb::CoreStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            node_address: Some(self.mesh.node_address.into()),
            tun_device,
            client_prefixes: status.client_prefixes.iter().map(|p| (*p).into()).collect(),
            export_table: self.config.export_table,
            route_protocol: u32::from(self.config.route_protocol),
            peers,
            counters,
            uptime_seconds: self.started.elapsed().as_secs(),
        }))
    }

    async fn list_host_routes(
        &self,
        _request: Request<pb::ListHostRoutesRequest>,
    ) -> Result<Response<pb::ListHostRoutesResponse>, Status> {
        let routes = self
            .kernel
            .routes(self.config.export_table, self.config.route_protocol)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let names = self
            .kernel
            .interface_names()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let routes = routes
            .into_iter()
            .filter(|r| r.prefix_len == 128)
            .map(|r| pb::HostRoute {
                destination: Some(r.destination.into()),
                interface: r
                    .oif
                    .and_then(|i| names.get(&i).cloned())
                    .unwrap_or_default(),
                table: r.table,
                protocol: u32::from(r.protocol),
            })
            .collect();
        Ok(Response::new(pb::ListHostRoutesResponse { routes }))
    }

    async fn lookup_client(
        &self,
        request: Request<pb::LookupClientRequest>,
    ) -> Result<Response<pb::LookupClientResponse>, Status> {
        use pb::lookup_client_request::Key;
        let status = self
            .engine
            .status()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let client = match &request.get_ref().key {
            Some(Key::Mac(mac)) => {
                let mac = l3roamd_rpc::convert::mac("mac", Some(mac))?;
                status.clients.into_iter().find(|c| c.mac == mac)
            }
            Some(Key::Address(addr)) => {
                let addr = l3roamd_rpc::convert::ip6("address", Some(addr))?;
                let client = status
                    .clients
                    .into_iter()
                    .find(|c| c.addresses.contains(&addr));
                if client.is_none() {
                    return Err(Status::not_found(format!(
                        "{addr} is not a client of this node"
                    )));
                }
                client
            }
            None => return Err(Status::invalid_argument("give mac or address")),
        };
        let Some(client) = client else {
            return Err(Status::not_found("no such client on this node"));
        };
        Ok(Response::new(pb::LookupClientResponse {
            mac: Some(client.mac.into()),
            addresses: client.addresses.into_iter().map(Into::into).collect(),
            local: true,
        }))
    }

    async fn list_mesh_interfaces(
        &self,
        _request: Request<pb::ListMeshInterfacesRequest>,
    ) -> Result<Response<pb::MeshInterfaces>, Status> {
        Ok(Response::new(self.mesh_interfaces_pb()))
    }

    async fn add_mesh_interface(
        &self,
        request: Request<pb::MeshInterfaceRequest>,
    ) -> Result<Response<pb::MeshInterfaces>, Status> {
        let name = interface_name(request.get_ref())?;
        match self.mesh_interfaces.add(name) {
            Ok(true) => tracing::info!(link = name, "mesh interface added"),
            Ok(false) => tracing::debug!(link = name, "mesh interface in use already"),
            Err(e) => return Err(Status::invalid_argument(e.to_string())),
        }
        Ok(Response::new(self.mesh_interfaces_pb()))
    }

    async fn remove_mesh_interface(
        &self,
        request: Request<pb::MeshInterfaceRequest>,
    ) -> Result<Response<pb::MeshInterfaces>, Status> {
        let name = interface_name(request.get_ref())?;
        if self.mesh_interfaces.remove(name) {
            tracing::info!(link = name, "mesh interface removed");
        }
        Ok(Response::new(self.mesh_interfaces_pb()))
    }
}

impl CoreService {
    /// The list as ListMeshInterfaces and the changes answer it.
    fn mesh_interfaces_pb(&self) -> pb::MeshInterfaces {
        let interfaces = self
            .mesh_interfaces
            .names()
            .into_iter()
            .map(|name| pb::MeshInterface {
                present: l3roamd_net::interface_index(&name).is_some(),
                configured: self.mesh_interfaces.is_configured(&name),
                name,
            })
            .collect();
        pb::MeshInterfaces { interfaces }
    }
}

/// The `name` field, checked as a kernel interface name.
fn interface_name(request: &pb::MeshInterfaceRequest) -> Result<&str, Status> {
    l3roamd_daemon::config::check_interface_name("name", &request.name)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok(&request.name)
}
