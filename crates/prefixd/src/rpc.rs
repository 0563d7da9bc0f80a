//! The `l3roamd.v1.PrefixD` service: reads the published prefix set, and
//! passes orders to the loop ([`crate::tasks`]).

use std::collections::BTreeMap;

use l3roamd_daemon::Shutdown;
use l3roamd_rpc::{convert, pb};
use tokio::sync::{mpsc, oneshot, watch};
use tonic::{Request, Response, Status};

use crate::announce::AnnounceError;
use crate::tasks::Query;

/// Serves the client prefixes.
#[derive(Debug)]
pub struct PrefixService {
    published: watch::Receiver<Vec<pb::ClientPrefixInfo>>,
    queries: mpsc::Sender<Query>,
    shutdown: Shutdown,
}

impl PrefixService {
    /// A service over the loop's published set and its query queue.
    pub fn new(
        published: watch::Receiver<Vec<pb::ClientPrefixInfo>>,
        queries: mpsc::Sender<Query>,
        shutdown: Shutdown,
    ) -> Self {
        PrefixService {
            published,
            queries,
            shutdown,
        }
    }

    async fn ask<T>(&self, query: impl FnOnce(oneshot::Sender<T>) -> Query) -> Result<T, Status> {
        let (tx, rx) = oneshot::channel();
        self.queries
            .send(query(tx))
            .await
            .map_err(|_| Status::unavailable("prefixd is stopping"))?;
        rx.await
            .map_err(|_| Status::unavailable("prefixd is stopping"))
    }
}

type EventStream = l3roamd_rpc::WatchStream<pb::PrefixEvent>;

fn key(info: &pb::ClientPrefixInfo) -> Option<(Vec<u8>, u32)> {
    let p = info.prefix.as_ref()?;
    Some((p.address.as_ref()?.octets.to_vec(), p.length))
}

/// The events that turn `old` into `new`.
fn diff(old: &[pb::ClientPrefixInfo], new: &[pb::ClientPrefixInfo]) -> Vec<pb::PrefixEvent> {
    use pb::prefix_event::Event;
    let old: BTreeMap<_, _> = old.iter().filter_map(|i| Some((key(i)?, i))).collect();
    let new_map: BTreeMap<_, _> = new.iter().filter_map(|i| Some((key(i)?, i))).collect();
    let mut out = Vec::new();
    for (k, i) in &old {
        if !new_map.contains_key(k) {
            if let Some(p) = i.prefix.clone() {
                out.push(Event::Removed(p));
            }
        }
    }
    for (k, i) in &new_map {
        if old.get(k) != Some(i) {
            out.push(Event::Added((*i).clone()));
        }
    }
    out.into_iter()
        .map(|event| pb::PrefixEvent { event: Some(event) })
        .collect()
}

#[tonic::async_trait]
impl pb::prefix_d_server::PrefixD for PrefixService {
    async fn list_prefixes(
        &self,
        _request: Request<pb::ListPrefixesRequest>,
    ) -> Result<Response<pb::ListPrefixesResponse>, Status> {
        Ok(Response::new(pb::ListPrefixesResponse {
            prefixes: self.published.borrow().clone(),
        }))
    }

    type WatchPrefixesStream = EventStream;

    async fn watch_prefixes(
        &self,
        _request: Request<pb::WatchPrefixesRequest>,
    ) -> Result<Response<Self::WatchPrefixesStream>, Status> {
        use pb::prefix_event::Event;
        let mut rx = self.published.clone();
        let current = rx.borrow_and_update().clone();
        let snapshot: Vec<pb::PrefixEvent> = current
            .iter()
            .cloned()
            .map(Event::Snapshot)
            .chain(std::iter::once(Event::SnapshotDone(pb::SnapshotDone {})))
            .map(|event| pb::PrefixEvent { event: Some(event) })
            .collect();
        // Every change of the published set, as the events between the
        // last set this watcher saw and the new one.
        let live = futures::stream::unfold((rx, current), |(mut rx, last)| async move {
            rx.changed().await.ok()?;
            let now = rx.borrow_and_update().clone();
            let events = diff(&last, &now);
            Some((futures::stream::iter(events), (rx, now)))
        });
        let shutdown = self.shutdown.clone();
        Ok(Response::new(l3roamd_rpc::watch_stream(
            snapshot,
            futures::StreamExt::flatten(live),
            async move { shutdown.requested().await },
        )))
    }

    async fn announce(
        &self,
        request: Request<pb::AnnounceRequest>,
    ) -> Result<Response<pb::AnnounceResponse>, Status> {
        let r = request.into_inner();
        let prefix = convert::prefix("prefix", r.prefix.as_ref())?;
        let uplink = (!r.uplink.is_empty()).then_some(r.uplink);
        let metric = r.metric;
        let answer = self
            .ask(|reply| Query::Announce {
                prefix,
                metric,
                uplink,
                reply,
            })
            .await?;
        match answer {
            Ok((metric, protocol)) => Ok(Response::new(pb::AnnounceResponse {
                metric: u32::from(metric),
                route_protocol: u32::from(protocol),
            })),
            Err(AnnounceError::Full) => {
                Err(Status::resource_exhausted(AnnounceError::Full.to_string()))
            }
            Err(e @ AnnounceError::NotSlash64(_)) => {
                Err(Status::invalid_argument(format!("prefix: {e}")))
            }
            Err(e @ AnnounceError::Metric(_)) => {
                Err(Status::invalid_argument(format!("metric: {e}")))
            }
            Err(e @ AnnounceError::Uplink(_)) => {
                Err(Status::invalid_argument(format!("uplink: {e}")))
            }
        }
    }

    async fn withdraw(
        &self,
        request: Request<pb::WithdrawRequest>,
    ) -> Result<Response<pb::WithdrawResponse>, Status> {
        let prefix = convert::prefix("prefix", request.get_ref().prefix.as_ref())?;
        self.ask(|reply| Query::Withdraw { prefix, reply })
            .await?
            .map_err(|e| Status::not_found(format!("prefix: {e}")))?;
        Ok(Response::new(pb::WithdrawResponse {}))
    }

    async fn client_arrived(
        &self,
        request: Request<pb::ClientArrivedRequest>,
    ) -> Result<Response<pb::ClientArrivedResponse>, Status> {
        let r = request.into_inner();
        let mac = convert::mac("mac", r.mac.as_ref())?;
        let mut addresses = Vec::with_capacity(r.addresses.len());
        if r.addresses.len() > 64 {
            return Err(Status::invalid_argument("addresses: more than 64"));
        }
        for (i, a) in r.addresses.iter().enumerate() {
            addresses.push(convert::ip6(&format!("addresses[{i}]"), Some(a))?);
        }
        let interface = r.interface;
        let deprecated = self
            .ask(|reply| Query::Arrived {
                mac,
                interface,
                addresses,
                reply,
            })
            .await?;
        Ok(Response::new(pb::ClientArrivedResponse {
            deprecated: deprecated.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_status(
        &self,
        _request: Request<pb::PrefixdStatusRequest>,
    ) -> Result<Response<pb::PrefixdStatus>, Status> {
        Ok(Response::new(self.ask(Query::Status).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::prefix_event::Event;

    fn info(p: &str, state: pb::PrefixState) -> pb::ClientPrefixInfo {
        let prefix: l3roamd_types::Ipv6Prefix = p.parse().unwrap();
        pb::ClientPrefixInfo {
            prefix: Some(prefix.into()),
            state: state.into(),
            ..Default::default()
        }
    }

    #[test]
    fn watchers_get_what_changed() {
        let a = info("2001:db8:a::/64", pb::PrefixState::Selected);
        let b = info("2001:db8:b::/64", pb::PrefixState::Selected);
        let b2 = info("2001:db8:b::/64", pb::PrefixState::Deprecated);
        let events = diff(&[a.clone(), b], std::slice::from_ref(&b2));
        let events: Vec<Event> = events.into_iter().filter_map(|e| e.event).collect();
        assert_eq!(
            events,
            vec![Event::Removed(a.prefix.clone().unwrap()), Event::Added(b2)]
        );
        let same = std::slice::from_ref(&a);
        assert!(diff(same, same).is_empty());
    }
}
