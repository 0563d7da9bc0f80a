//! The `l3roamd.v1.Core` service.

use std::time::Instant;

use l3roamd_daemon::MeshConfig;
use l3roamd_rpc::pb;
use tonic::{Request, Response, Status};

use crate::engine::SharedStatus;
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
    status: SharedStatus,
    started: Instant,
}

impl CoreService {
    /// A service over core's state.
    pub fn new(
        mesh: MeshConfig,
        config: CoreConfig,
        peers: Peers,
        kernel: Kernel,
        status: SharedStatus,
        started: Instant,
    ) -> Self {
        CoreService {
            mesh,
            config,
            peers,
            kernel,
            status,
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
        let (tun_device, counters) = self
            .status
            .lock()
            .map(|s| {
                let counters = s
                    .counters
                    .iter()
                    .map(|(name, value)| pb::Counter {
                        name: (*name).to_string(),
                        value: *value,
                    })
                    .collect();
                (s.tun_device.clone(), counters)
            })
            .unwrap_or_default();
        Ok(Response::new(pb::CoreStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            node_address: Some(self.mesh.node_address.into()),
            tun_device,
            client_prefixes: self
                .mesh
                .client_prefixes
                .iter()
                .map(|p| (*p).into())
                .collect(),
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
        let clients = self
            .status
            .lock()
            .map(|s| s.local_clients.clone())
            .unwrap_or_default();
        let matches: Vec<(std::net::Ipv6Addr, Option<l3roamd_types::MacAddr>)> = match &request
            .get_ref()
            .key
        {
            Some(Key::Mac(mac)) => {
                let mac = l3roamd_rpc::convert::mac("mac", Some(mac))?;
                clients
                    .iter()
                    .filter(|(_, c)| c.mac == Some(mac))
                    .map(|(a, c)| (*a, c.mac))
                    .collect()
            }
            Some(Key::Address(addr)) => {
                let addr = l3roamd_rpc::convert::ip6("address", Some(addr))?;
                let Some(client) = clients.get(&addr) else {
                    return Err(Status::not_found(format!(
                        "{addr} is not a client of this node"
                    )));
                };
                clients
                    .iter()
                    .filter(|(a, c)| **a == addr || (client.mac.is_some() && c.mac == client.mac))
                    .map(|(a, c)| (*a, c.mac))
                    .collect()
            }
            None => return Err(Status::invalid_argument("give mac or address")),
        };
        let Some(mac) = matches.first().map(|(_, mac)| *mac) else {
            return Err(Status::not_found("no such client on this node"));
        };
        let mut addresses: Vec<_> = matches.iter().map(|(a, _)| *a).collect();
        addresses.sort();
        Ok(Response::new(pb::LookupClientResponse {
            mac: mac.map(Into::into),
            addresses: addresses.into_iter().map(Into::into).collect(),
            local: true,
        }))
    }
}
