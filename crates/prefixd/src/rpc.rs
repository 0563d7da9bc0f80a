//! The `l3roamd.v1.PrefixD` service.

use l3roamd_daemon::Shutdown;
use l3roamd_rpc::pb;
use l3roamd_types::Ipv6Prefix;
use tonic::{Request, Response, Status};

use crate::PrefixdConfig;

/// Serves the client prefixes.
#[derive(Debug)]
pub struct PrefixService {
    prefixes: Vec<pb::ClientPrefixInfo>,
    shutdown: Shutdown,
}

impl PrefixService {
    /// A service for the configured `prefixes`.
    pub fn new(prefixes: Vec<Ipv6Prefix>, config: PrefixdConfig, shutdown: Shutdown) -> Self {
        let prefixes = prefixes
            .into_iter()
            .map(|p| pb::ClientPrefixInfo {
                prefix: Some(p.into()),
                origin: pb::PrefixOrigin::Configured.into(),
                valid_lifetime: config.valid_lifetime,
                preferred_lifetime: config.preferred_lifetime,
                state: pb::PrefixState::Selected.into(),
                ..Default::default()
            })
            .collect();
        PrefixService { prefixes, shutdown }
    }
}

type EventStream = l3roamd_rpc::WatchStream<pb::PrefixEvent>;

#[tonic::async_trait]
impl pb::prefix_d_server::PrefixD for PrefixService {
    async fn list_prefixes(
        &self,
        _request: Request<pb::ListPrefixesRequest>,
    ) -> Result<Response<pb::ListPrefixesResponse>, Status> {
        Ok(Response::new(pb::ListPrefixesResponse {
            prefixes: self.prefixes.clone(),
        }))
    }

    type WatchPrefixesStream = EventStream;

    async fn watch_prefixes(
        &self,
        _request: Request<pb::WatchPrefixesRequest>,
    ) -> Result<Response<Self::WatchPrefixesStream>, Status> {
        use pb::prefix_event::Event;
        let snapshot: Vec<pb::PrefixEvent> = self
            .prefixes
            .iter()
            .cloned()
            .map(Event::Snapshot)
            .chain(std::iter::once(Event::SnapshotDone(pb::SnapshotDone {})))
            .map(|event| pb::PrefixEvent { event: Some(event) })
            .collect();
        // The configured set does not change while the daemon runs: after
        // the snapshot the stream stays open (so a watcher sees a restart as
        // the stream ending) until the daemon stops.
        let shutdown = self.shutdown.clone();
        Ok(Response::new(l3roamd_rpc::watch_stream(
            snapshot,
            futures::stream::pending(),
            async move { shutdown.requested().await },
        )))
    }

    async fn announce(
        &self,
        request: Request<pb::AnnounceRequest>,
    ) -> Result<Response<pb::AnnounceResponse>, Status> {
        l3roamd_rpc::convert::prefix("prefix", request.get_ref().prefix.as_ref())?;
        Err(Status::unimplemented(
            "prefix announcement by gateways is not implemented yet",
        ))
    }

    async fn client_arrived(
        &self,
        _request: Request<pb::ClientArrivedRequest>,
    ) -> Result<Response<pb::ClientArrivedResponse>, Status> {
        Ok(Response::new(pb::ClientArrivedResponse::default()))
    }

    async fn get_status(
        &self,
        _request: Request<pb::PrefixdStatusRequest>,
    ) -> Result<Response<pb::PrefixdStatus>, Status> {
        Err(Status::unimplemented("not yet"))
    }

    async fn withdraw(
        &self,
        request: Request<pb::WithdrawRequest>,
    ) -> Result<Response<pb::WithdrawResponse>, Status> {
        l3roamd_rpc::convert::prefix("prefix", request.get_ref().prefix.as_ref())?;
        Err(Status::unimplemented(
            "prefix announcement by gateways is not implemented yet",
        ))
    }
}
