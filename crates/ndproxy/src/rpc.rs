//! The `l3roamd.v1.NdProxy` service: core's way to seek an address and to
//! learn which sought addresses were found on this node's client links.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use l3roamd_daemon::{MeshConfig, Shutdown};
use l3roamd_rpc::pb;
use tokio::sync::broadcast;
use tonic::{Request, Response, Status};

use crate::seek::{self, Found, SeekOutcome};
use crate::tasks::{Handle, Stopped};

/// Serves seeks and found neighbours.
#[derive(Debug)]
pub struct NdProxyService {
    client_interfaces: Vec<String>,
    handle: Handle,
    shutdown: Shutdown,
}

impl NdProxyService {
    /// A service for this node's interfaces, backed by the event loop
    /// behind `handle`; watch streams end at `shutdown`.
    pub fn new(mesh: &MeshConfig, handle: Handle, shutdown: Shutdown) -> Self {
        NdProxyService {
            client_interfaces: mesh.client_interfaces.clone(),
            handle,
            shutdown,
        }
    }
}

impl From<Stopped> for Status {
    fn from(e: Stopped) -> Status {
        Status::unavailable(e.to_string())
    }
}

/// The wire form of a found neighbour.
fn found_to_pb(found: Found) -> pb::FoundNeighbour {
    pb::FoundNeighbour {
        address: Some(found.addr.into()),
        mac: Some(found.mac.into()),
        interface: found.interface,
        sought_by: found.sought_by.into_iter().map(pb::Ip6::from).collect(),
    }
}

fn event(event: pb::neighbour_event::Event) -> pb::NeighbourEvent {
    pb::NeighbourEvent { event: Some(event) }
}

type EventStream = l3roamd_rpc::WatchStream<pb::NeighbourEvent>;

/// The live part of a watch: found neighbours until the loop stops or the
/// watcher falls behind, which sets `lagged`.
fn live_events(
    rx: broadcast::Receiver<Found>,
    lagged: Arc<AtomicBool>,
) -> impl futures::Stream<Item = pb::NeighbourEvent> + Send + 'static {
    futures::stream::unfold(rx, move |mut rx| {
        let lagged = lagged.clone();
        async move {
            match rx.recv().await {
                Ok(found) => Some((
                    event(pb::neighbour_event::Event::Found(found_to_pb(found))),
                    rx,
                )),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    lagged.store(true, Ordering::Relaxed);
                    None
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        }
    })
}

/// The watch stream: `snapshot` as snapshot events, then SnapshotDone,
/// then each neighbour found from `rx`, until `stop`. A watcher that falls
/// behind gets an ABORTED error last (and `on_lag` is called), so it knows
/// to watch again and resynchronise from a new snapshot.
fn watch_events(
    snapshot: Vec<Found>,
    rx: broadcast::Receiver<Found>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    on_lag: impl FnOnce() + Send + 'static,
) -> EventStream {
    let mut events: Vec<pb::NeighbourEvent> = snapshot
        .into_iter()
        .map(|f| event(pb::neighbour_event::Event::Snapshot(found_to_pb(f))))
        .collect();
    events.push(event(pb::neighbour_event::Event::SnapshotDone(
        pb::SnapshotDone {},
    )));
    let lagged = Arc::new(AtomicBool::new(false));
    let stream = l3roamd_rpc::watch_stream(events, live_events(rx, lagged.clone()), stop);
    let tail = futures::stream::once(async move {
        lagged.load(Ordering::Relaxed).then(|| {
            on_lag();
            Err(Status::aborted(
                "watcher fell behind and missed found neighbours; watch again to resynchronise",
            ))
        })
    })
    .filter_map(std::future::ready);
    Box::pin(stream.chain(tail))
}

#[tonic::async_trait]
impl pb::nd_proxy_server::NdProxy for NdProxyService {
    async fn seek(
        &self,
        request: Request<pb::SeekRequest>,
    ) -> Result<Response<pb::SeekResponse>, Status> {
        let addr = l3roamd_rpc::convert::ip6("address", request.get_ref().address.as_ref())?;
        if !seek::is_seekable(&addr) {
            return Err(Status::invalid_argument(format!(
                "address: {addr} cannot be sought (unspecified, loopback, multicast or link-local)"
            )));
        }
        let outcome = self.handle.seek(addr).await?;
        Ok(Response::new(pb::SeekResponse {
            sent: outcome == SeekOutcome::Sent,
        }))
    }

    type WatchNeighboursStream = EventStream;

    async fn watch_neighbours(
        &self,
        _request: Request<pb::WatchNeighboursRequest>,
    ) -> Result<Response<Self::WatchNeighboursStream>, Status> {
        let (snapshot, rx) = self.handle.watch().await?;
        let shutdown = self.shutdown.clone();
        let handle = self.handle.clone();
        Ok(Response::new(watch_events(
            snapshot,
            rx,
            async move { shutdown.requested().await },
            move || handle.watcher_lagged(),
        )))
    }

    async fn get_status(
        &self,
        _request: Request<pb::NdProxyStatusRequest>,
    ) -> Result<Response<pb::NdProxyStatus>, Status> {
        let counters = self.handle.counters().await?;
        let mesh_interfaces = self.handle.mesh_interfaces().await?;
        Ok(Response::new(pb::NdProxyStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            mesh_interfaces,
            client_interfaces: self.client_interfaces.clone(),
            counters: counters
                .into_iter()
                .map(|(name, value)| pb::Counter {
                    name: name.to_string(),
                    value,
                })
                .collect(),
        }))
    }

    async fn set_mesh_interfaces(
        &self,
        request: Request<pb::SetMeshInterfacesRequest>,
    ) -> Result<Response<pb::SetMeshInterfacesResponse>, Status> {
        let names = l3roamd_rpc::convert::interface_names("names", &request.into_inner().names)?;
        self.handle.set_mesh_interfaces(names).await?;
        Ok(Response::new(pb::SetMeshInterfacesResponse {}))
    }
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;
    use std::time::Instant;

    use l3roamd_types::MacAddr;

    fn found(last: u16) -> Found {
        Found {
            addr: Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, last),
            mac: MacAddr([2, 0, 0, 0, 1, 0]),
            interface: "br-client".to_string(),
            sought_by: vec![Ipv6Addr::new(0xfdff, 0, 0, 0, 0, 0, 0, 1)],
            at: Instant::now(),
        }
    }

    fn kind(item: &Result<pb::NeighbourEvent, Status>) -> String {
        use pb::neighbour_event::Event;
        match item {
            Ok(pb::NeighbourEvent {
                event: Some(Event::Snapshot(_)),
            }) => "snapshot".into(),
            Ok(pb::NeighbourEvent {
                event: Some(Event::SnapshotDone(_)),
            }) => "done".into(),
            Ok(pb::NeighbourEvent {
                event: Some(Event::Found(_)),
            }) => "found".into(),
            Ok(pb::NeighbourEvent { event: None }) => "empty".into(),
            Err(status) => format!("{:?}", status.code()),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn snapshot_then_live_then_end() {
        let (tx, rx) = broadcast::channel(4);
        tx.send(found(2)).unwrap();
        tx.send(found(3)).unwrap();
        drop(tx);
        let stream = watch_events(vec![found(1)], rx, std::future::pending(), || {
            panic!("no lag")
        });
        let kinds: Vec<String> = stream.map(|i| kind(&i)).collect().await;
        assert_eq!(kinds, ["snapshot", "done", "found", "found"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_lagging_watcher_gets_an_error() {
        let (tx, rx) = broadcast::channel(2);
        for i in 0..5 {
            tx.send(found(i)).unwrap();
        }
        let lagged = Arc::new(AtomicBool::new(false));
        let flag = lagged.clone();
        let stream = watch_events(Vec::new(), rx, std::future::pending(), move || {
            flag.store(true, Ordering::Relaxed)
        });
        let kinds: Vec<String> = stream.map(|i| kind(&i)).collect().await;
        assert_eq!(kinds, ["done", "Aborted"]);
        assert!(lagged.load(Ordering::Relaxed));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn stop_ends_the_stream_without_error() {
        let (_tx, rx) = broadcast::channel::<Found>(2);
        let stream = watch_events(Vec::new(), rx, async {}, || panic!("no lag"));
        let kinds: Vec<String> = stream.map(|i| kind(&i)).collect().await;
        assert!(kinds.iter().all(|k| k == "done"), "{kinds:?}");
    }
}
