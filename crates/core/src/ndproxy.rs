//! Core's side of ndproxy: seek requests out, found neighbours in.
//!
//! One task keeps a connection to ndproxy (reconnecting with backoff),
//! forwards seek requests from the engine, one after the other, and follows
//! the WatchNeighbours stream, whose snapshot re-synchronises core after
//! either side restarts; it is framed by [`NeighbourEvent::SnapshotStart`]
//! and [`NeighbourEvent::SnapshotDone`].

use std::net::Ipv6Addr;
use std::path::PathBuf;

use l3roamd_daemon::Shutdown;
use l3roamd_rpc::pb;
use l3roamd_rpc::pb::nd_proxy_client::NdProxyClient;
use l3roamd_types::MacAddr;
use tokio::sync::mpsc;

use l3roamd_rpc::{Follower, Peer};
use tonic::transport::Channel;

/// What ndproxy tells core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NeighbourEvent {
    /// A WatchNeighbours stream was (re)established: the snapshot follows.
    SnapshotStart,
    /// A neighbour found just now.
    Found(FoundNeighbour),
    /// A snapshot entry: a neighbour ndproxy found some time ago. Not a
    /// sign of presence (the client may have left since, while core was
    /// down; clientmon says who is here), so the engine does not act on it.
    Listed(FoundNeighbour),
    /// The snapshot is complete.
    SnapshotDone,
}

/// The engine's event for ndproxy's `e`; `None` if it is malformed.
fn event(e: &pb::NeighbourEvent) -> Option<NeighbourEvent> {
    use pb::neighbour_event::Event;
    match e.event.as_ref()? {
        Event::Snapshot(n) => FoundNeighbour::from_pb(n).map(NeighbourEvent::Listed),
        Event::Found(n) => FoundNeighbour::from_pb(n).map(NeighbourEvent::Found),
        Event::SnapshotDone(_) => Some(NeighbourEvent::SnapshotDone),
    }
}

/// A neighbour ndproxy found on one of this node's client links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundNeighbour {
    /// The client's address.
    pub address: Ipv6Addr,
    /// Its MAC.
    pub mac: MacAddr,
    /// The client interface it answered on.
    pub interface: String,
    /// Nodes that sought it and are waiting for a FOUND.
    pub sought_by: Vec<Ipv6Addr>,
}

impl FoundNeighbour {
    fn from_pb(n: &pb::FoundNeighbour) -> Option<FoundNeighbour> {
        use l3roamd_rpc::convert;
        Some(FoundNeighbour {
            address: convert::ip6("address", n.address.as_ref()).ok()?,
            mac: convert::mac("mac", n.mac.as_ref()).ok()?,
            interface: n.interface.clone(),
            sought_by: n
                .sought_by
                .iter()
                .filter_map(|a| convert::ip6("sought_by", Some(a)).ok())
                .collect(),
        })
    }
}

/// Runs until shutdown: seeks from `seeks`, neighbour events to `events`.
pub async fn run(
    socket: PathBuf,
    seeks: mpsc::Receiver<Ipv6Addr>,
    events: mpsc::Sender<NeighbourEvent>,
    shutdown: Shutdown,
) {
    // Seeks asked for while ndproxy is away are dropped: the held-packet
    // queue asks again on its next tick.
    Follower::<NdProxy>::new(Some(seeks), events)
        .run(socket, shutdown)
        .await;
}

/// ndproxy's WatchNeighbours stream and the seeks core asks for.
struct NdProxy;

impl Peer for NdProxy {
    const NAME: &'static str = "ndproxy";
    type Client = NdProxyClient<Channel>;
    type Message = pb::NeighbourEvent;
    type Event = NeighbourEvent;
    type Request = Ipv6Addr;

    async fn open(
        channel: Channel,
    ) -> Result<(Self::Client, tonic::Streaming<pb::NeighbourEvent>), tonic::Status> {
        let mut client = NdProxyClient::new(channel);
        let stream = client
            .watch_neighbours(pb::WatchNeighboursRequest {})
            .await?
            .into_inner();
        Ok((client, stream))
    }

    fn snapshot_start() -> NeighbourEvent {
        NeighbourEvent::SnapshotStart
    }

    fn convert(message: &pb::NeighbourEvent) -> Option<NeighbourEvent> {
        event(message)
    }

    async fn send(client: Self::Client, address: Ipv6Addr) {
        seek(client, address).await;
    }
}

/// Asks ndproxy to seek `address`; it answers at once (what it finds comes
/// on the stream).
async fn seek(mut client: NdProxyClient<Channel>, address: Ipv6Addr) {
    let request = pb::SeekRequest {
        address: Some(address.into()),
    };
    if let Err(e) = client.seek(request).await {
        tracing::debug!(%address, error = %e, "seek failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::neighbour_event::Event;

    fn ev(e: Event) -> pb::NeighbourEvent {
        pb::NeighbourEvent { event: Some(e) }
    }

    #[test]
    fn events_convert() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let address: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let seeker: Ipv6Addr = "fdff::2".parse().unwrap();
        let n = pb::FoundNeighbour {
            address: Some(address.into()),
            mac: Some(mac.into()),
            interface: "br-client".to_string(),
            sought_by: vec![seeker.into()],
        };
        let neighbour = FoundNeighbour {
            address,
            mac,
            interface: "br-client".to_string(),
            sought_by: vec![seeker],
        };
        assert_eq!(
            event(&ev(Event::Snapshot(n.clone()))),
            Some(NeighbourEvent::Listed(neighbour.clone()))
        );
        assert_eq!(
            event(&ev(Event::Found(n))),
            Some(NeighbourEvent::Found(neighbour))
        );
        assert_eq!(
            event(&ev(Event::SnapshotDone(pb::SnapshotDone {}))),
            Some(NeighbourEvent::SnapshotDone)
        );
        assert_eq!(
            event(&ev(Event::Found(pb::FoundNeighbour::default()))),
            None
        );
    }
}
