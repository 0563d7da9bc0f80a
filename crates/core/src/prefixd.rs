//! Core's side of prefixd: follows WatchPrefixes (the client prefixes in
//! use on this node, which core routes: catch-alls into the TUN device,
//! host routes of clients) and tells prefixd of arriving clients, so it can
//! deprecate prefixes they bring from elsewhere.
//!
//! The snapshot after every (re)connect re-synchronises core; while prefixd
//! is away core keeps the prefixes it has (and always the configured
//! `mesh.client_prefixes`).

use std::net::Ipv6Addr;
use std::path::PathBuf;

use l3roamd_daemon::Shutdown;
use l3roamd_rpc::convert;
use l3roamd_rpc::pb;
use l3roamd_rpc::pb::prefix_d_client::PrefixDClient;
use l3roamd_rpc::{Follower, Peer};
use l3roamd_types::{Ipv6Prefix, MacAddr};
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// A change of the prefixes prefixd has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrefixEvent {
    /// A WatchPrefixes stream was (re)established: the snapshot follows.
    SnapshotStart,
    /// A prefix and whether clients may use it (selected or deprecated).
    Prefix(Ipv6Prefix, bool),
    /// The snapshot is complete: prefixes it did not list are gone.
    SnapshotDone,
    /// A prefix is gone.
    Removed(Ipv6Prefix),
}

/// A client that arrived here, for prefixd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// The client.
    pub mac: MacAddr,
    /// Its client interface.
    pub interface: String,
    /// Its addresses.
    pub addresses: Vec<Ipv6Addr>,
}

fn info(i: &pb::ClientPrefixInfo) -> Option<PrefixEvent> {
    let prefix = convert::prefix("prefix", i.prefix.as_ref()).ok()?;
    let in_use = matches!(
        pb::PrefixState::try_from(i.state),
        Ok(pb::PrefixState::Selected | pb::PrefixState::Deprecated)
    );
    Some(PrefixEvent::Prefix(prefix, in_use))
}

/// The engine's event for prefixd's `e`; `None` if it is malformed.
fn event(e: &pb::PrefixEvent) -> Option<PrefixEvent> {
    use pb::prefix_event::Event;
    match e.event.as_ref()? {
        Event::Snapshot(i) | Event::Added(i) => info(i),
        Event::Removed(p) => Some(PrefixEvent::Removed(
            convert::prefix("removed", Some(p)).ok()?,
        )),
        Event::SnapshotDone(_) => Some(PrefixEvent::SnapshotDone),
    }
}

/// Runs until shutdown: prefix events to `events`, arrivals from `arrivals`.
pub async fn run(
    socket: PathBuf,
    arrivals: mpsc::Receiver<Arrival>,
    events: mpsc::Sender<PrefixEvent>,
    shutdown: Shutdown,
) {
    // Arrivals while prefixd is away are dropped: it answers the client's
    // next router solicitation with its own prefixes anyway.
    Follower::<Prefixd>::new(Some(arrivals), events)
        .run(socket, shutdown)
        .await;
}

/// prefixd's WatchPrefixes stream and the arrivals core reports.
struct Prefixd;

impl Peer for Prefixd {
    const NAME: &'static str = "prefixd";
    type Client = PrefixDClient<Channel>;
    type Message = pb::PrefixEvent;
    type Event = PrefixEvent;
    type Request = Arrival;

    async fn open(
        channel: Channel,
    ) -> Result<(Self::Client, tonic::Streaming<pb::PrefixEvent>), tonic::Status> {
        let mut client = PrefixDClient::new(channel);
        let stream = client
            .watch_prefixes(pb::WatchPrefixesRequest {})
            .await?
            .into_inner();
        Ok((client, stream))
    }

    fn snapshot_start() -> PrefixEvent {
        PrefixEvent::SnapshotStart
    }

    fn convert(message: &pb::PrefixEvent) -> Option<PrefixEvent> {
        event(message)
    }

    async fn send(mut client: Self::Client, arrival: Arrival) {
        let request = pb::ClientArrivedRequest {
            mac: Some(arrival.mac.into()),
            interface: arrival.interface,
            addresses: arrival.addresses.into_iter().map(Into::into).collect(),
        };
        if let Err(e) = client.client_arrived(request).await {
            tracing::debug!(mac = %arrival.mac, error = %e, "cannot tell prefixd of an arrival");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::prefix_event::Event;

    fn ev(e: Event) -> pb::PrefixEvent {
        pb::PrefixEvent { event: Some(e) }
    }

    #[test]
    fn events_convert() {
        let prefix: Ipv6Prefix = "2001:db8:a::/64".parse().unwrap();
        let mut i = pb::ClientPrefixInfo {
            prefix: Some(prefix.into()),
            state: pb::PrefixState::Deprecated.into(),
            ..Default::default()
        };
        assert_eq!(
            event(&ev(Event::Snapshot(i.clone()))),
            Some(PrefixEvent::Prefix(prefix, true))
        );
        i.state = pb::PrefixState::Known.into();
        assert_eq!(
            event(&ev(Event::Added(i))),
            Some(PrefixEvent::Prefix(prefix, false))
        );
        assert_eq!(
            event(&ev(Event::Removed(prefix.into()))),
            Some(PrefixEvent::Removed(prefix))
        );
        assert_eq!(
            event(&ev(Event::Added(pb::ClientPrefixInfo::default()))),
            None
        );
    }
}
