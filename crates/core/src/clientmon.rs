//! Core's side of clientmon: follows WatchClients and hands each event to
//! the engine. The snapshot after every (re)connect re-synchronises core;
//! it is framed by [`PresenceEvent::SnapshotStart`] and
//! [`PresenceEvent::SnapshotDone`].

use std::net::Ipv6Addr;
use std::path::PathBuf;

use l3roamd_daemon::Shutdown;
use l3roamd_rpc::convert;
use l3roamd_rpc::pb;
use l3roamd_rpc::pb::client_mon_client::ClientMonClient;
use l3roamd_rpc::{Follower, Peer};
use l3roamd_types::MacAddr;
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// A change of the clients attached to this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceEvent {
    /// A WatchClients stream was (re)established: the snapshot follows.
    SnapshotStart,
    /// Attached (also every snapshot entry).
    Appeared {
        /// The client.
        mac: MacAddr,
        /// Where clientmon saw it (a bridge port or a wireless interface).
        interface: String,
        /// Addresses known so far.
        addresses: Vec<Ipv6Addr>,
    },
    /// The snapshot is complete: clients it did not list are not attached.
    SnapshotDone,
    /// A new address of an attached client.
    AddressLearned(MacAddr, Ipv6Addr),
    /// The client left.
    Gone(MacAddr),
}

fn appeared(c: &pb::AttachedClient) -> Option<PresenceEvent> {
    Some(PresenceEvent::Appeared {
        mac: convert::mac("mac", c.mac.as_ref()).ok()?,
        interface: c.interface.clone(),
        addresses: c
            .addresses
            .iter()
            .filter_map(|a| convert::ip6("address", Some(a)).ok())
            .collect(),
    })
}

/// The engine's event for clientmon's `e`; `None` if it is malformed.
fn event(e: &pb::ClientEvent) -> Option<PresenceEvent> {
    use pb::client_event::Event;
    match e.event.as_ref()? {
        Event::Snapshot(c) | Event::Appeared(c) => appeared(c),
        Event::AddressLearned(l) => Some(PresenceEvent::AddressLearned(
            convert::mac("mac", l.mac.as_ref()).ok()?,
            convert::ip6("address", l.address.as_ref()).ok()?,
        )),
        Event::Gone(g) => Some(PresenceEvent::Gone(
            convert::mac("mac", g.mac.as_ref()).ok()?,
        )),
        Event::SnapshotDone(_) => Some(PresenceEvent::SnapshotDone),
    }
}

/// Runs until shutdown, sending presence events to `events`.
pub async fn run(socket: PathBuf, events: mpsc::Sender<PresenceEvent>, shutdown: Shutdown) {
    Follower::<Clientmon>::new(None, events)
        .run(socket, shutdown)
        .await;
}

/// clientmon's WatchClients stream; core sends it nothing.
struct Clientmon;

impl Peer for Clientmon {
    const NAME: &'static str = "clientmon";
    type Client = ClientMonClient<Channel>;
    type Message = pb::ClientEvent;
    type Event = PresenceEvent;
    type Request = std::convert::Infallible;

    async fn open(
        channel: Channel,
    ) -> Result<(Self::Client, tonic::Streaming<pb::ClientEvent>), tonic::Status> {
        let mut client = ClientMonClient::new(channel);
        let stream = client
            .watch_clients(pb::WatchClientsRequest {})
            .await?
            .into_inner();
        Ok((client, stream))
    }

    fn snapshot_start() -> PresenceEvent {
        PresenceEvent::SnapshotStart
    }

    fn convert(message: &pb::ClientEvent) -> Option<PresenceEvent> {
        event(message)
    }

    async fn send(_client: Self::Client, request: Self::Request) {
        match request {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::client_event::Event;

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    fn ev(e: Event) -> pb::ClientEvent {
        pb::ClientEvent { event: Some(e) }
    }

    #[test]
    fn snapshot_done_is_passed_on() {
        assert_eq!(
            event(&ev(Event::SnapshotDone(pb::SnapshotDone {}))),
            Some(PresenceEvent::SnapshotDone)
        );
    }

    #[test]
    fn entries_and_changes_convert() {
        let client = pb::AttachedClient {
            mac: Some(MAC.into()),
            interface: "br-client".to_string(),
            addresses: vec!["2001:db8::1".parse::<Ipv6Addr>().unwrap().into()],
            ..Default::default()
        };
        let appeared = Some(PresenceEvent::Appeared {
            mac: MAC,
            interface: "br-client".to_string(),
            addresses: vec!["2001:db8::1".parse().unwrap()],
        });
        assert_eq!(event(&ev(Event::Snapshot(client.clone()))), appeared);
        assert_eq!(event(&ev(Event::Appeared(client))), appeared);
        assert_eq!(
            event(&ev(Event::Gone(pb::ClientGone {
                mac: Some(MAC.into()),
            }))),
            Some(PresenceEvent::Gone(MAC))
        );
        assert_eq!(event(&pb::ClientEvent { event: None }), None);
        assert_eq!(
            event(&ev(Event::Gone(pb::ClientGone::default()))),
            None,
            "no MAC"
        );
    }
}
