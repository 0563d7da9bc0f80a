//! Core's side of client-db: claims, updates and forgets out; record
//! updates, releases and claim results in (the Watch stream).

use std::net::Ipv6Addr;
use std::path::PathBuf;

use l3roamd_daemon::Shutdown;
use l3roamd_rpc::convert;
use l3roamd_rpc::pb;
use l3roamd_rpc::pb::client_db_client::ClientDbClient;
use l3roamd_types::MacAddr;
use tokio::sync::mpsc;

use crate::backoff::Backoff;

/// A request to client-db.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbCommand {
    /// CLAIM the client on the mesh.
    Claim(MacAddr),
    /// Record addresses this node saw the client use.
    Update(MacAddr, Vec<Ipv6Addr>),
    /// This node no longer serves the client.
    Forget(MacAddr),
}

/// What client-db tells core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbEvent {
    /// A record lists these addresses now (also every snapshot entry).
    Updated(MacAddr, Vec<Ipv6Addr>),
    /// Another node claimed the client.
    Release {
        /// The client.
        mac: MacAddr,
        /// The node that claimed it.
        claimed_by: Ipv6Addr,
    },
    /// Our claim ended.
    ClaimDone(MacAddr),
    /// The watch stream was (re)established: a snapshot follows.
    SnapshotStart,
    /// The snapshot is complete.
    SnapshotDone,
}

fn record(r: &pb::ClientRecord) -> Option<DbEvent> {
    Some(DbEvent::Updated(
        convert::mac("mac", r.mac.as_ref()).ok()?,
        r.addresses
            .iter()
            .filter_map(|a| convert::ip6("address", a.address.as_ref()).ok())
            .collect(),
    ))
}

fn event(e: &pb::ClientDbEvent) -> Option<DbEvent> {
    use pb::client_db_event::Event;
    match e.event.as_ref()? {
        // The snapshot lists every record, most of them clients served
        // elsewhere; the roaming state ignores records of clients that are
        // not attached here.
        Event::Snapshot(r) | Event::Updated(r) => record(r),
        Event::Release(r) => Some(DbEvent::Release {
            mac: convert::mac("mac", r.mac.as_ref()).ok()?,
            claimed_by: convert::ip6("claimed_by", r.claimed_by.as_ref()).ok()?,
        }),
        Event::ClaimDone(d) => Some(DbEvent::ClaimDone(
            convert::mac("mac", d.mac.as_ref()).ok()?,
        )),
        Event::SnapshotDone(_) => Some(DbEvent::SnapshotDone),
    }
}

/// Runs until shutdown: commands from `commands`, events to `events`.
pub async fn run(
    socket: PathBuf,
    mut commands: mpsc::Receiver<DbCommand>,
    events: mpsc::Sender<DbEvent>,
    shutdown: Shutdown,
) {
    let mut backoff = Backoff::new();
    loop {
        let result = tokio::select! {
            r = follow(&socket, &mut commands, &events, &mut backoff) => r,
            () = shutdown.requested() => return,
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "client-db not reachable");
        }
        // Commands given while client-db is away are dropped: clientmon's
        // snapshot after reconnecting brings every client back.
        while commands.try_recv().is_ok() {}
        if events.is_closed() || !backoff.wait(&shutdown).await {
            return;
        }
    }
}

async fn follow(
    socket: &std::path::Path,
    commands: &mut mpsc::Receiver<DbCommand>,
    events: &mpsc::Sender<DbEvent>,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let channel = l3roamd_rpc::connect(socket)
        .await
        .map_err(|e| e.to_string())?;
    let client = ClientDbClient::new(channel);
    let mut stream = client
        .clone()
        .watch(pb::WatchClientDbRequest {})
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    backoff.reset();
    tracing::info!("following client-db");
    if events.send(DbEvent::SnapshotStart).await.is_err() {
        return Ok(());
    }
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { return Ok(()) };
                let mut client = client.clone();
                tokio::spawn(async move {
                    let result = match &command {
                        DbCommand::Claim(mac) => client
                            .claim(pb::ClaimRequest { mac: Some((*mac).into()) })
                            .await
                            .map(|_| ()),
                        DbCommand::Update(mac, addresses) => client
                            .update(pb::UpdateClientRequest {
                                mac: Some((*mac).into()),
                                addresses: addresses.iter().map(|a| (*a).into()).collect(),
                            })
                            .await
                            .map(|_| ()),
                        DbCommand::Forget(mac) => client
                            .forget(pb::ForgetClientRequest { mac: Some((*mac).into()) })
                            .await
                            .map(|_| ()),
                    };
                    if let Err(e) = result {
                        tracing::warn!(?command, error = %e, "client-db request failed");
                    }
                });
            }
            message = stream.message() => {
                let Some(e) = message.map_err(|e| e.to_string())? else {
                    return Err("client-db closed the stream".to_string());
                };
                if let Some(ev) = event(&e) {
                    if events.send(ev).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}
