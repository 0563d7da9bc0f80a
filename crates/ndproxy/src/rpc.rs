//! The `l3roamd.v1.NdProxy` service.

use l3roamd_daemon::MeshConfig;
use l3roamd_rpc::pb;
use tonic::{Request, Response, Status};

const NOT_YET: &str = "seeking is not implemented yet (mesh SEEK and neighbour solicitation)";

/// Serves seeks and found neighbours.
#[derive(Debug)]
pub struct NdProxyService {
    mesh_interfaces: Vec<String>,
    client_interfaces: Vec<String>,
}

impl NdProxyService {
    /// A service for this node's interfaces.
    pub fn new(mesh: &MeshConfig) -> Self {
        NdProxyService {
            mesh_interfaces: mesh.mesh_interfaces.clone(),
            client_interfaces: mesh.client_interfaces.clone(),
        }
    }
}

type EventStream = l3roamd_rpc::WatchStream<pb::NeighbourEvent>;

#[tonic::async_trait]
impl pb::nd_proxy_server::NdProxy for NdProxyService {
    async fn seek(
        &self,
        request: Request<pb::SeekRequest>,
    ) -> Result<Response<pb::SeekResponse>, Status> {
        l3roamd_rpc::convert::ip6("address", request.get_ref().address.as_ref())?;
        Err(Status::unimplemented(NOT_YET))
    }

    type WatchNeighboursStream = EventStream;

    async fn watch_neighbours(
        &self,
        _request: Request<pb::WatchNeighboursRequest>,
    ) -> Result<Response<Self::WatchNeighboursStream>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }

    async fn get_status(
        &self,
        _request: Request<pb::NdProxyStatusRequest>,
    ) -> Result<Response<pb::NdProxyStatus>, Status> {
        Ok(Response::new(pb::NdProxyStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            mesh_interfaces: self.mesh_interfaces.clone(),
            client_interfaces: self.client_interfaces.clone(),
            counters: Vec::new(),
        }))
    }
}
