//! The `l3roamd.v1.Core` service.

use std::time::Instant;

use l3roamd_daemon::MeshConfig;
use l3roamd_rpc::pb;
use tonic::{Request, Response, Status};

use crate::netlink::Kernel;
use crate::peers::Peers;
use crate::CoreConfig;

/// Serves core's state to operators.
#[derive(Debug)]
pub struct CoreService {
    mesh: MeshConfig,
    config: CoreConfig,
    peers: Peers,
    kernel: Kernel,
    started: Instant,
}

impl CoreService {
    /// A service over core's state.
    pub fn new(
        mesh: MeshConfig,
        config: CoreConfig,
        peers: Peers,
        kernel: Kernel,
        started: Instant,
    ) -> Self {
        CoreService {
            mesh,
            config,
            peers,
            kernel,
            started,
        }
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
        Ok(Response::new(pb::CoreStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            node_address: Some(self.mesh.node_address.into()),
            tun_device: String::new(),
            client_prefixes: self.mesh.client_prefixes.iter().map(|p| (*p).into()).collect(),
            export_table: self.config.export_table,
            route_protocol: u32::from(self.config.route_protocol),
            peers,
            counters: Vec::new(),
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
        match &request.get_ref().key {
            Some(pb::lookup_client_request::Key::Mac(mac)) => {
                l3roamd_rpc::convert::mac("mac", Some(mac))?;
            }
            Some(pb::lookup_client_request::Key::Address(addr)) => {
                l3roamd_rpc::convert::ip6("address", Some(addr))?;
            }
            None => return Err(Status::invalid_argument("give mac or address")),
        }
        Err(Status::unimplemented(
            "client lookup is not implemented yet (it comes with client tracking)",
        ))
    }
}
