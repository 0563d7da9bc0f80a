//! Core's side of client-db: claims, updates and forgets out; record
//! updates, releases and claim results in (the Watch stream), whose
//! snapshot after every (re)connect is framed by [`DbEvent::SnapshotStart`]
//! and [`DbEvent::SnapshotDone`].
//!
//! Commands go out one after the other on one task, in the order the
//! engine gave them, so a Claim and an Update for the same MAC cannot
//! overtake each other; client-db answers each at once (a claim's result
//! comes later, on the Watch stream), and the command queue is bounded.

use std::net::Ipv6Addr;
use std::path::PathBuf;

use l3roamd_daemon::Shutdown;
use l3roamd_rpc::convert;
use l3roamd_rpc::pb;
use l3roamd_rpc::pb::client_db_client::ClientDbClient;
use l3roamd_types::MacAddr;
use tokio::sync::mpsc;

use l3roamd_rpc::{Follower, Peer};
use tonic::transport::Channel;

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
    /// A Watch stream was (re)established: the snapshot follows.
    SnapshotStart,
    /// The snapshot is complete.
    SnapshotDone,
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

/// The engine's event for client-db's `e`; `None` if it is malformed.
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
    commands: mpsc::Receiver<DbCommand>,
    events: mpsc::Sender<DbEvent>,
    shutdown: Shutdown,
) {
    // Commands given while client-db is away are dropped: clientmon's
    // snapshot after reconnecting brings every client back.
    Follower::<ClientDb>::new(Some(commands), events)
        .run(socket, shutdown)
        .await;
}

/// client-db's Watch stream and the commands core sends it.
struct ClientDb;

impl Peer for ClientDb {
    const NAME: &'static str = "client-db";
    type Client = ClientDbClient<Channel>;
    type Message = pb::ClientDbEvent;
    type Event = DbEvent;
    type Request = DbCommand;

    async fn open(
        channel: Channel,
    ) -> Result<(Self::Client, tonic::Streaming<pb::ClientDbEvent>), tonic::Status> {
        let mut client = ClientDbClient::new(channel);
        let stream = client
            .watch(pb::WatchClientDbRequest {})
            .await?
            .into_inner();
        Ok((client, stream))
    }

    fn snapshot_start() -> DbEvent {
        DbEvent::SnapshotStart
    }

    fn convert(message: &pb::ClientDbEvent) -> Option<DbEvent> {
        event(message)
    }

    async fn send(client: Self::Client, command: DbCommand) {
        send(client, command).await;
    }
}

/// Pause before a claim client-db was too busy for is asked again.
const CLAIM_BUSY_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

/// Sends one command; client-db answers at once (a claim's result comes
/// later, on the Watch stream). A claim it is too busy for (it runs 256 at
/// a time, each up to 4.8 s for a client new to the mesh) is asked again
/// until it is taken: 10,000 arriving clients would otherwise lose all but
/// the first 256 claims, and their node-client addresses with them. The
/// commands behind it wait (the queue has room for every client's), so a
/// later update cannot overtake it.
async fn send(mut client: ClientDbClient<Channel>, command: DbCommand) {
    let result = match &command {
        DbCommand::Claim(mac) => loop {
            let answer = client
                .claim(pb::ClaimRequest {
                    mac: Some((*mac).into()),
                })
                .await;
            match answer {
                Err(e) if e.code() == tonic::Code::ResourceExhausted => {
                    tracing::debug!(%mac, "client-db busy with claims; asking again");
                    tokio::time::sleep(CLAIM_BUSY_PAUSE).await;
                }
                other => break other.map(|_| ()),
            }
        },
        DbCommand::Update(mac, addresses) => client
            .update(pb::UpdateClientRequest {
                mac: Some((*mac).into()),
                addresses: addresses.iter().map(|a| (*a).into()).collect(),
            })
            .await
            .map(|_| ()),
        DbCommand::Forget(mac) => client
            .forget(pb::ForgetClientRequest {
                mac: Some((*mac).into()),
            })
            .await
            .map(|_| ()),
    };
    if let Err(e) = result {
        tracing::warn!(?command, error = %e, "client-db request failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::client_db_event::Event;

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    fn ev(e: Event) -> pb::ClientDbEvent {
        pb::ClientDbEvent { event: Some(e) }
    }

    #[test]
    fn snapshot_done_is_passed_on() {
        assert_eq!(
            event(&ev(Event::SnapshotDone(pb::SnapshotDone {}))),
            Some(DbEvent::SnapshotDone)
        );
    }

    #[test]
    fn releases_and_claim_results_convert() {
        let node: Ipv6Addr = "fdff::2".parse().unwrap();
        assert_eq!(
            event(&ev(Event::Release(pb::ReleaseClient {
                mac: Some(MAC.into()),
                claimed_by: Some(node.into()),
            }))),
            Some(DbEvent::Release {
                mac: MAC,
                claimed_by: node
            })
        );
        assert_eq!(
            event(&ev(Event::Release(pb::ReleaseClient {
                mac: Some(MAC.into()),
                claimed_by: None,
            }))),
            None
        );
        assert_eq!(event(&pb::ClientDbEvent { event: None }), None);
    }
}
