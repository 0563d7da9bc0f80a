//! Core's side of clientmon: follows WatchClients and hands each event to
//! the engine. The snapshot after every (re)connect re-synchronises core.

use std::net::Ipv6Addr;
use std::path::PathBuf;

use l3roamd_daemon::Shutdown;
use l3roamd_rpc::convert;
use l3roamd_rpc::pb;
use l3roamd_rpc::pb::client_mon_client::ClientMonClient;
use l3roamd_types::MacAddr;
use tokio::sync::mpsc;

use crate::backoff::Backoff;

/// A change of the clients attached to this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceEvent {
    /// Attached (also every snapshot entry).
    Appeared {
        /// The client.
        mac: MacAddr,
        /// Where clientmon saw it (a bridge port or a wireless interface).
        interface: String,
        /// Addresses known so far.
        addresses: Vec<Ipv6Addr>,
    },
    /// A new address of an attached client.
    AddressLearned(MacAddr, Ipv6Addr),
    /// The client left.
    Gone(MacAddr),
    /// The watch stream was (re)established: a snapshot follows.
    SnapshotStart,
    /// The snapshot is complete.
    SnapshotDone,
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
    let mut backoff = Backoff::new();
    loop {
        let result = tokio::select! {
            r = follow(&socket, &events, &mut backoff) => r,
            () = shutdown.requested() => return,
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "clientmon not followed");
        }
        if events.is_closed() || !backoff.wait(&shutdown).await {
            return;
        }
    }
}

async fn follow(
    socket: &std::path::Path,
    events: &mpsc::Sender<PresenceEvent>,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let channel = l3roamd_rpc::connect(socket)
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = ClientMonClient::new(channel)
        .watch_clients(pb::WatchClientsRequest {})
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    backoff.reset();
    tracing::info!("following clientmon's clients");
    if events.send(PresenceEvent::SnapshotStart).await.is_err() {
        return Ok(());
    }
    while let Some(e) = stream.message().await.map_err(|e| e.to_string())? {
        match event(&e) {
            Some(ev) => {
                if events.send(ev).await.is_err() {
                    return Ok(());
                }
            }
            None => tracing::warn!("clientmon sent a malformed event"),
        }
    }
    Err("clientmon closed the stream".to_string())
}
