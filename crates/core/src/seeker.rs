//! Core's side of ndproxy: seek requests out, found neighbours in.
//!
//! One task keeps a connection to ndproxy (reconnecting with backoff),
//! forwards seek requests from the engine and follows the WatchNeighbours
//! stream, whose snapshot re-synchronises core after either side restarts.

use std::net::Ipv6Addr;
use std::path::PathBuf;

use l3roamd_daemon::Shutdown;
use l3roamd_rpc::pb;
use l3roamd_rpc::pb::nd_proxy_client::NdProxyClient;
use l3roamd_types::MacAddr;
use tokio::sync::mpsc;

use crate::backoff::Backoff;

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

/// Runs until shutdown: seeks from `seeks`, found neighbours to `found`.
pub async fn run(
    socket: PathBuf,
    mut seeks: mpsc::Receiver<Ipv6Addr>,
    found: mpsc::Sender<FoundNeighbour>,
    shutdown: Shutdown,
) {
    let mut backoff = Backoff::new();
    loop {
        let result = tokio::select! {
            r = follow(&socket, &mut seeks, &found, &mut backoff) => r,
            () = shutdown.requested() => return,
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "ndproxy not reachable");
        }
        // Seeks asked for while ndproxy is away are dropped: the held-packet
        // queue asks again on its next tick.
        while seeks.try_recv().is_ok() {}
        if found.is_closed() || !backoff.wait(&shutdown).await {
            return;
        }
    }
}

/// One connection's life.
async fn follow(
    socket: &std::path::Path,
    seeks: &mut mpsc::Receiver<Ipv6Addr>,
    found: &mpsc::Sender<FoundNeighbour>,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let channel = l3roamd_rpc::connect(socket)
        .await
        .map_err(|e| e.to_string())?;
    let mut client = NdProxyClient::new(channel);
    let mut stream = client
        .watch_neighbours(pb::WatchNeighboursRequest {})
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    backoff.reset();
    tracing::info!("following ndproxy's neighbours");
    loop {
        tokio::select! {
            seek = seeks.recv() => {
                let Some(address) = seek else { return Ok(()) };
                let mut client = client.clone();
                // Seeks must not wait for each other or for the stream.
                tokio::spawn(async move {
                    let request = pb::SeekRequest { address: Some(address.into()) };
                    if let Err(e) = client.seek(request).await {
                        tracing::debug!(%address, error = %e, "seek failed");
                    }
                });
            }
            event = stream.message() => {
                let Some(event) = event.map_err(|e| e.to_string())? else {
                    return Err("ndproxy closed the neighbour stream".to_string());
                };
                use pb::neighbour_event::Event;
                let neighbour = match &event.event {
                    Some(Event::Snapshot(n)) | Some(Event::Found(n)) => n,
                    _ => continue,
                };
                match FoundNeighbour::from_pb(neighbour) {
                    Some(n) => {
                        if found.send(n).await.is_err() {
                            return Ok(());
                        }
                    }
                    None => tracing::warn!("ndproxy sent a malformed neighbour"),
                }
            }
        }
    }
}
