//! The `l3roamd.v1.ClientDb` service.

use l3roamd_rpc::pb;
use tonic::{Request, Response, Status};

const NOT_YET: &str =
    "client-db has no client records yet (the store and CLAIM/INFO/ACK come with roaming support)";

/// Serves the client database.
#[derive(Debug, Default)]
pub struct ClientDbService;

type EventStream = l3roamd_rpc::WatchStream<pb::ClientDbEvent>;

#[tonic::async_trait]
impl pb::client_db_server::ClientDb for ClientDbService {
    async fn get_client(
        &self,
        request: Request<pb::GetClientRequest>,
    ) -> Result<Response<pb::ClientRecord>, Status> {
        l3roamd_rpc::convert::mac("mac", request.get_ref().mac.as_ref())?;
        Err(Status::unimplemented(NOT_YET))
    }

    async fn list_clients(
        &self,
        _request: Request<pb::ListClientRecordsRequest>,
    ) -> Result<Response<pb::ListClientRecordsResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }

    async fn claim(
        &self,
        request: Request<pb::ClaimRequest>,
    ) -> Result<Response<pb::ClaimResponse>, Status> {
        l3roamd_rpc::convert::mac("mac", request.get_ref().mac.as_ref())?;
        Err(Status::unimplemented(NOT_YET))
    }

    async fn update(
        &self,
        request: Request<pb::UpdateClientRequest>,
    ) -> Result<Response<pb::ClientRecord>, Status> {
        l3roamd_rpc::convert::mac("mac", request.get_ref().mac.as_ref())?;
        Err(Status::unimplemented(NOT_YET))
    }

    async fn forget(
        &self,
        request: Request<pb::ForgetClientRequest>,
    ) -> Result<Response<pb::ClientRecord>, Status> {
        l3roamd_rpc::convert::mac("mac", request.get_ref().mac.as_ref())?;
        Err(Status::unimplemented(NOT_YET))
    }

    type WatchStream = EventStream;

    async fn watch(
        &self,
        _request: Request<pb::WatchClientDbRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }
}
