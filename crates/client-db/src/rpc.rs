//! The `l3roamd.v1.ClientDb` service: core's view of the client database.
//!
//! Arguments are checked here (a wrong length, a group MAC, an address that
//! cannot be a client's: `INVALID_ARGUMENT` naming the field); everything
//! else is the event loop's. The watch stream is a snapshot of every record,
//! `SnapshotDone`, then the events as they happen; a watcher that falls more
//! than a thousand events behind gets `ABORTED` at the end of its stream and
//! must watch again to resynchronise. A record that expired (or was evicted)
//! is announced as `updated` with the MAC alone: no addresses, no serving
//! nodes.

use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use l3roamd_daemon::Shutdown;
use l3roamd_rpc::pb;
use l3roamd_types::{Ipv6Prefix, MacAddr};
use tokio::sync::broadcast;
use tonic::{Request, Response, Status};

use crate::db::{self, Record, MAX_ADDRESSES};
use crate::events::{ClaimOutcome, Event};
use crate::tasks::{Handle, Stopped};

/// Serves the client database.
#[derive(Debug)]
pub struct ClientDbService {
    handle: Handle,
    node_client_prefix: Ipv6Prefix,
    shutdown: Shutdown,
}

impl ClientDbService {
    /// A service backed by the event loop behind `handle`; watch streams end
    /// at `shutdown`.
    pub fn new(handle: Handle, node_client_prefix: Ipv6Prefix, shutdown: Shutdown) -> Self {
        ClientDbService {
            handle,
            node_client_prefix,
            shutdown,
        }
    }
}

impl From<Stopped> for Status {
    fn from(e: Stopped) -> Status {
        Status::unavailable(e.to_string())
    }
}

// ===== conversions =====

/// Reads the `mac` field: six bytes, a unicast MAC, not all zero.
fn client_mac(mac: Option<&pb::Mac>) -> Result<MacAddr, Status> {
    let mac = l3roamd_rpc::convert::mac("mac", mac)?;
    if mac.is_multicast() || mac == MacAddr::ZERO {
        return Err(Status::invalid_argument(format!(
            "mac: {mac} is not a client's (group or all-zero address)"
        )));
    }
    Ok(mac)
}

/// The wire form of a record.
pub fn record_to_pb(record: &Record) -> pb::ClientRecord {
    pb::ClientRecord {
        mac: Some(record.mac.into()),
        addresses: record
            .addresses
            .iter()
            .map(|a| pb::ClientAddress {
                address: Some(a.addr.into()),
                last_seen: a.last_seen,
                lifetime: a.lifetime,
            })
            .collect(),
        served_by: record
            .served_by
            .iter()
            .map(|s| pb::ServingNode {
                node_address: Some(s.node.into()),
                since: s.since,
            })
            .collect(),
        multicast_groups: record
            .multicast_groups
            .iter()
            .map(|g| pb::Ip6::from(*g))
            .collect(),
        updated: record.updated,
    }
}

fn event(event: pb::client_db_event::Event) -> pb::ClientDbEvent {
    pb::ClientDbEvent { event: Some(event) }
}

/// The wire form of an event.
pub fn event_to_pb(e: Event) -> pb::ClientDbEvent {
    use pb::client_db_event::Event as E;
    match e {
        Event::Updated(record) => event(E::Updated(record_to_pb(&record))),
        Event::Removed { mac, at } => event(E::Updated(pb::ClientRecord {
            mac: Some(mac.into()),
            updated: at,
            ..pb::ClientRecord::default()
        })),
        Event::Release { mac, claimed_by } => event(E::Release(pb::ReleaseClient {
            mac: Some(mac.into()),
            claimed_by: Some(claimed_by.into()),
        })),
        Event::ClaimDone { mac, answered_by } => event(E::ClaimDone(pb::ClaimDone {
            mac: Some(mac.into()),
            answered: answered_by.is_some(),
            answered_by: answered_by.map(pb::Ip6::from),
        })),
    }
}

type EventStream = l3roamd_rpc::WatchStream<pb::ClientDbEvent>;

/// The live part of a watch: events until the loop stops or the watcher
/// falls behind, which sets `lagged`.
fn live_events(
    rx: broadcast::Receiver<Event>,
    lagged: Arc<AtomicBool>,
) -> impl futures::Stream<Item = pb::ClientDbEvent> + Send + 'static {
    futures::stream::unfold(rx, move |mut rx| {
        let lagged = lagged.clone();
        async move {
            match rx.recv().await {
                Ok(e) => Some((event_to_pb(e), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    lagged.store(true, Ordering::Relaxed);
                    None
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        }
    })
}

// ===== the service =====

#[tonic::async_trait]
impl pb::client_db_server::ClientDb for ClientDbService {
    async fn get_client(
        &self,
        request: Request<pb::GetClientRequest>,
    ) -> Result<Response<pb::ClientRecord>, Status> {
        let mac = client_mac(request.get_ref().mac.as_ref())?;
        match self.handle.get(mac).await? {
            Some(record) => Ok(Response::new(record_to_pb(&record))),
            None => Err(Status::not_found(format!("no record of {mac}"))),
        }
    }

    async fn list_clients(
        &self,
        _request: Request<pb::ListClientRecordsRequest>,
    ) -> Result<Response<pb::ListClientRecordsResponse>, Status> {
        let records = self.handle.list().await?;
        Ok(Response::new(pb::ListClientRecordsResponse {
            clients: records.iter().map(record_to_pb).collect(),
        }))
    }

    async fn claim(
        &self,
        request: Request<pb::ClaimRequest>,
    ) -> Result<Response<pb::ClaimResponse>, Status> {
        let mac = client_mac(request.get_ref().mac.as_ref())?;
        let (outcome, record) = self.handle.claim(mac).await?;
        if outcome == ClaimOutcome::Busy {
            return Err(Status::resource_exhausted(
                "too many claims are running; try again shortly",
            ));
        }
        Ok(Response::new(pb::ClaimResponse {
            record: Some(record_to_pb(&record)),
        }))
    }

    async fn update(
        &self,
        request: Request<pb::UpdateClientRequest>,
    ) -> Result<Response<pb::ClientRecord>, Status> {
        let request = request.get_ref();
        let mac = client_mac(request.mac.as_ref())?;
        if request.addresses.len() > MAX_ADDRESSES {
            return Err(Status::invalid_argument(format!(
                "addresses: {} are more than the {MAX_ADDRESSES} a record keeps",
                request.addresses.len()
            )));
        }
        let mut addrs: Vec<Ipv6Addr> = Vec::with_capacity(request.addresses.len());
        for (i, a) in request.addresses.iter().enumerate() {
            let field = format!("addresses[{i}]");
            let addr = l3roamd_rpc::convert::ip6(&field, Some(a))?;
            if !db::is_recordable_client_address(&addr, &self.node_client_prefix) {
                return Err(Status::invalid_argument(format!(
                    "{field}: {addr} cannot be a client's address \
                     (unspecified, loopback, multicast or a node-client address)"
                )));
            }
            addrs.push(addr);
        }
        match self.handle.update(mac, addrs).await? {
            Ok(record) => Ok(Response::new(record_to_pb(&record))),
            Err(full) => Err(Status::resource_exhausted(full.to_string())),
        }
    }

    async fn forget(
        &self,
        request: Request<pb::ForgetClientRequest>,
    ) -> Result<Response<pb::ClientRecord>, Status> {
        let mac = client_mac(request.get_ref().mac.as_ref())?;
        match self.handle.forget(mac).await? {
            Some(record) => Ok(Response::new(record_to_pb(&record))),
            None => Err(Status::not_found(format!("no record of {mac}"))),
        }
    }

    async fn set_mesh_interfaces(
        &self,
        request: Request<pb::SetMeshInterfacesRequest>,
    ) -> Result<Response<pb::SetMeshInterfacesResponse>, Status> {
        let names = l3roamd_rpc::convert::interface_names("names", &request.into_inner().names)?;
        self.handle.set_mesh_interfaces(names).await?;
        Ok(Response::new(pb::SetMeshInterfacesResponse {}))
    }

    async fn get_status(
        &self,
        _request: Request<pb::ClientDbStatusRequest>,
    ) -> Result<Response<pb::ClientDbStatus>, Status> {
        let (records, counters) = self.handle.status().await?;
        Ok(Response::new(pb::ClientDbStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            records: records as u64,
            counters: counters
                .into_iter()
                .map(|(name, value)| pb::Counter {
                    name: name.to_string(),
                    value,
                })
                .collect(),
        }))
    }

    type WatchStream = EventStream;

    async fn watch(
        &self,
        _request: Request<pb::WatchClientDbRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        use pb::client_db_event::Event as E;
        let (records, rx) = self.handle.watch().await?;
        let mut events: Vec<pb::ClientDbEvent> = records
            .iter()
            .map(|r| event(E::Snapshot(record_to_pb(r))))
            .collect();
        events.push(event(E::SnapshotDone(pb::SnapshotDone {})));
        let lagged = Arc::new(AtomicBool::new(false));
        let shutdown = self.shutdown.clone();
        let stream =
            l3roamd_rpc::watch_stream(events, live_events(rx, lagged.clone()), async move {
                shutdown.requested().await
            });
        // A watcher that fell behind gets an error last, so it knows to
        // watch again and resynchronise from a new snapshot.
        let handle = self.handle.clone();
        let tail = futures::stream::once(async move { lagged.load(Ordering::Relaxed) })
            .filter_map(move |lagged| {
                let handle = handle.clone();
                async move {
                    lagged.then(|| {
                        handle.watcher_lagged();
                        Err(Status::aborted(
                            "watcher fell behind and missed client-db events; watch again to resynchronise",
                        ))
                    })
                }
            });
        Ok(Response::new(Box::pin(stream.chain(tail))))
    }
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_must_be_a_clients() {
        let m = |o: Vec<u8>| client_mac(Some(&pb::Mac { octets: o }));
        assert!(m(vec![2, 0, 0, 0, 1, 0]).is_ok());
        for bad in [vec![1, 0, 0, 0, 0, 1], vec![0; 6], vec![2, 0]] {
            let err = m(bad).unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
            assert!(err.message().starts_with("mac"), "{}", err.message());
        }
        assert!(client_mac(None).is_err());
    }

    #[test]
    fn events_on_the_wire() {
        use pb::client_db_event::Event as E;
        let mac = MacAddr([2, 0, 0, 0, 1, 0]);
        let node: Ipv6Addr = "fdff::2".parse().unwrap();
        let removed = event_to_pb(Event::Removed { mac, at: 5 });
        assert!(matches!(removed.event, Some(E::Updated(r))
            if r.addresses.is_empty() && r.served_by.is_empty() && r.updated == 5));
        let done = event_to_pb(Event::ClaimDone {
            mac,
            answered_by: None,
        });
        assert!(
            matches!(done.event, Some(E::ClaimDone(d)) if !d.answered && d.answered_by.is_none())
        );
        let done = event_to_pb(Event::ClaimDone {
            mac,
            answered_by: Some(node),
        });
        assert!(
            matches!(done.event, Some(E::ClaimDone(d)) if d.answered && d.answered_by.is_some())
        );
        let mut r = Record::new(mac, 10);
        r.merge_addresses([node], 10);
        r.note_served_by(node, 11);
        let wire = record_to_pb(&r);
        assert_eq!(wire.addresses[0].last_seen, 10);
        assert_eq!(wire.served_by[0].since, 11);
        assert_eq!(wire.updated, 11);
    }
}
