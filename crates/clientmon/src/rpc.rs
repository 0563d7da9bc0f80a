//! The `l3roamd.v1.ClientMon` service.

use l3roamd_rpc::pb;
use tonic::{Request, Response, Status};

/// Client presence is not tracked yet: the sources arrive with roaming.
const NOT_YET: &str =
    "clientmon does not track client presence yet (nl80211, FDB and neighbour sources come with roaming support)";

/// Serves the attached clients.
#[derive(Debug, Default)]
pub struct ClientMonService;

type EventStream = l3roamd_rpc::WatchStream<pb::ClientEvent>;

#[tonic::async_trait]
impl pb::client_mon_server::ClientMon for ClientMonService {
    async fn list_clients(
        &self,
        _request: Request<pb::ListClientsRequest>,
    ) -> Result<Response<pb::ListClientsResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }

    type WatchClientsStream = EventStream;

    async fn watch_clients(
        &self,
        _request: Request<pb::WatchClientsRequest>,
    ) -> Result<Response<Self::WatchClientsStream>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }
}
