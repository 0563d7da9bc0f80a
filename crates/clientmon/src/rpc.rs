//! The `l3roamd.v1.ClientMon` service: the attached clients, and a watch
//! stream of their arrivals, addresses and departures.
//!
//! A watch starts with one `snapshot` event per attached client and a
//! `snapshot_done`, then sends `appeared`, `address_learned` and `gone` as
//! they happen. A watcher that falls more than a queue's worth behind gets
//! an `ABORTED` error as the last item of its stream and must watch again
//! to resynchronise from a new snapshot; when the daemon stops, the stream
//! simply ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use l3roamd_daemon::Shutdown;
use l3roamd_rpc::pb;
use tokio::sync::broadcast;
use tonic::{Request, Response, Status};

use crate::presence::{Change, ClientView, Source};
use crate::tasks::{Handle, Stopped};

/// Serves the attached clients.
#[derive(Debug)]
pub struct ClientMonService {
    handle: Handle,
    shutdown: Shutdown,
}

impl ClientMonService {
    /// A service backed by the event loop behind `handle`; watch streams end at `shutdown`.
    pub fn new(handle: Handle, shutdown: Shutdown) -> Self {
        ClientMonService { handle, shutdown }
    }
}

impl From<Stopped> for Status {
    fn from(e: Stopped) -> Status {
        Status::unavailable(e.to_string())
    }
}

// ===== wire forms =====

fn source_to_pb(source: Source) -> pb::PresenceSource {
    match source {
        Source::Station => pb::PresenceSource::Nl80211,
        Source::Fdb => pb::PresenceSource::BridgeFdb,
        Source::Neighbour => pb::PresenceSource::Neighbour,
        Source::Snoop => pb::PresenceSource::NdSnoop,
    }
}

/// The wire form of an attached client.
pub fn client_to_pb(client: ClientView) -> pb::AttachedClient {
    pb::AttachedClient {
        mac: Some(client.mac.into()),
        interface: client.interface,
        addresses: client.addresses.into_iter().map(pb::Ip6::from).collect(),
        sources: client
            .sources
            .into_iter()
            .map(|s| source_to_pb(s) as i32)
            .collect(),
        idle_seconds: u32::try_from(client.idle.as_secs()).unwrap_or(u32::MAX),
    }
}

fn event(event: pb::client_event::Event) -> pb::ClientEvent {
    pb::ClientEvent { event: Some(event) }
}

/// The wire form of a change.
pub fn change_to_pb(change: Change) -> pb::ClientEvent {
    use pb::client_event::Event;
    event(match change {
        Change::Appeared(client) => Event::Appeared(client_to_pb(client)),
        Change::AddressLearned { mac, address } => Event::AddressLearned(pb::AddressLearned {
            mac: Some(mac.into()),
            address: Some(address.into()),
        }),
        Change::Gone { mac, .. } => Event::Gone(pb::ClientGone {
            mac: Some(mac.into()),
        }),
    })
}

/// The first events of a watch: the snapshot and its end.
pub fn snapshot_events(clients: Vec<ClientView>) -> Vec<pb::ClientEvent> {
    use pb::client_event::Event;
    let mut events: Vec<pb::ClientEvent> = clients
        .into_iter()
        .map(|c| event(Event::Snapshot(client_to_pb(c))))
        .collect();
    events.push(event(Event::SnapshotDone(pb::SnapshotDone {})));
    events
}

// ===== the service =====

type EventStream = l3roamd_rpc::WatchStream<pb::ClientEvent>;

/// The live part of a watch: changes until the loop stops or the watcher
/// falls behind, which sets `lagged`.
fn live_events(
    rx: broadcast::Receiver<Change>,
    lagged: Arc<AtomicBool>,
) -> impl futures::Stream<Item = pb::ClientEvent> + Send + 'static {
    futures::stream::unfold(rx, move |mut rx| {
        let lagged = lagged.clone();
        async move {
            match rx.recv().await {
                Ok(change) => Some((change_to_pb(change), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    lagged.store(true, Ordering::Relaxed);
                    None
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        }
    })
}

#[tonic::async_trait]
impl pb::client_mon_server::ClientMon for ClientMonService {
    async fn list_clients(
        &self,
        _request: Request<pb::ListClientsRequest>,
    ) -> Result<Response<pb::ListClientsResponse>, Status> {
        let clients = self.handle.list().await?;
        Ok(Response::new(pb::ListClientsResponse {
            clients: clients.into_iter().map(client_to_pb).collect(),
        }))
    }

    type WatchClientsStream = EventStream;

    async fn watch_clients(
        &self,
        _request: Request<pb::WatchClientsRequest>,
    ) -> Result<Response<Self::WatchClientsStream>, Status> {
        let (clients, rx) = self.handle.watch().await?;
        let lagged = Arc::new(AtomicBool::new(false));
        let shutdown = self.shutdown.clone();
        let stream = l3roamd_rpc::watch_stream(
            snapshot_events(clients),
            live_events(rx, lagged.clone()),
            async move { shutdown.requested().await },
        );
        // A watcher that fell behind gets an error last, so it knows to
        // watch again and resynchronise from a new snapshot.
        let tail = futures::stream::once(async move { lagged.load(Ordering::Relaxed) }).filter_map(
            |lagged| async move {
                lagged.then(|| {
                    tracing::warn!("a watcher fell behind; its stream ends so it resynchronises");
                    Err(Status::aborted(
                        "watcher fell behind and missed client changes; watch again to resynchronise",
                    ))
                })
            },
        );
        Ok(Response::new(Box::pin(stream.chain(tail))))
    }
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::{GoneReason, Settings};
    use l3roamd_daemon::Shutdown;
    use l3roamd_types::MacAddr;
    use std::time::{Duration, Instant};

    fn view() -> ClientView {
        ClientView {
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            interface: "veth-c1".into(),
            addresses: vec!["fddd:1::100".parse().unwrap()],
            sources: vec![Source::Fdb, Source::Snoop],
            idle: Duration::from_millis(2500),
        }
    }

    #[test]
    fn wire_forms() {
        let c = client_to_pb(view());
        assert_eq!(c.mac.unwrap().octets, vec![2, 0, 0, 0, 0, 1]);
        assert_eq!(c.sources, vec![2, 4]);
        assert_eq!(c.idle_seconds, 2);
        let events = snapshot_events(vec![view()]);
        assert!(matches!(
            events[0].event,
            Some(pb::client_event::Event::Snapshot(_))
        ));
        assert!(matches!(
            events[1].event,
            Some(pb::client_event::Event::SnapshotDone(_))
        ));
        assert_eq!(snapshot_events(Vec::new()).len(), 1);
        let gone = change_to_pb(Change::Gone {
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            reason: GoneReason::Timeout,
        });
        assert!(matches!(gone.event, Some(pb::client_event::Event::Gone(_))));
    }

    #[tokio::test]
    async fn a_watch_gets_snapshot_then_changes_and_a_lagging_one_an_error() {
        use pb::client_mon_server::ClientMon;
        let (_stop, shutdown) = Shutdown::manual();
        let settings = Settings {
            presence_timeout: Duration::from_secs(150),
            dad_wait: Duration::from_secs(1),
            max_clients: 10_000,
            max_addresses: 4,
            next_node_mac: None,
            node_client_prefix: None,
        };
        let (handle, inputs) = crate::tasks::spawn(settings, shutdown.clone());
        let service = ClientMonService::new(handle, shutdown);
        let sighting = |n: u16| {
            crate::presence::Event::Sighting(crate::presence::Sighting {
                mac: MacAddr([2, 0, 0, 0, (n >> 8) as u8, n as u8]),
                source: Source::Fdb,
                interface: "veth-c1".into(),
                seen_at: Instant::now(),
                address: None,
            })
        };
        // The loop takes inputs and commands in any order: ask until it has
        // caught up (a bounded number of times).
        let settle = |n: usize| {
            let service = &service;
            async move {
                for _ in 0..10_000 {
                    let list = service
                        .list_clients(Request::new(pb::ListClientsRequest {}))
                        .await
                        .unwrap()
                        .into_inner();
                    if list.clients.len() == n {
                        return;
                    }
                    tokio::task::yield_now().await;
                }
                panic!("the loop never saw {n} clients");
            }
        };
        inputs.send(sighting(1)).await.unwrap();
        settle(1).await;

        let mut watch = service
            .watch_clients(Request::new(pb::WatchClientsRequest {}))
            .await
            .unwrap()
            .into_inner();
        let first = watch.next().await.unwrap().unwrap();
        assert!(matches!(
            first.event,
            Some(pb::client_event::Event::Snapshot(_))
        ));
        let done = watch.next().await.unwrap().unwrap();
        assert!(matches!(
            done.event,
            Some(pb::client_event::Event::SnapshotDone(_))
        ));
        inputs.send(sighting(2)).await.unwrap();
        let appeared = watch.next().await.unwrap().unwrap();
        assert!(matches!(
            appeared.event,
            Some(pb::client_event::Event::Appeared(_))
        ));

        // Far more changes than the queue holds, unread: the stream ends in ABORTED.
        for n in 3..3000 {
            inputs.send(sighting(n)).await.unwrap();
        }
        settle(2999).await;
        let mut last = None;
        while let Some(item) = watch.next().await {
            last = Some(item);
        }
        let status = last.unwrap().unwrap_err();
        assert_eq!(status.code(), tonic::Code::Aborted);
    }
}
