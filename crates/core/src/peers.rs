//! Core's connections to the four other daemons.
//!
//! Each peer gets a supervisor task that connects to its socket, follows its
//! `grpc.health.v1` watch stream (the stream ends when the peer goes away)
//! and reconnects with exponential backoff. Core keeps serving what it
//! knows while a peer is down; the peer table shows each peer's state.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use l3roamd_daemon::Shutdown;
use l3roamd_rpc::pb::PeerState;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use l3roamd_daemon::Backoff;

/// One peer's state as shown by the status RPC.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Its name, e.g. `ndproxy`.
    pub name: &'static str,
    /// Its socket.
    pub socket: PathBuf,
    /// Connection state.
    pub state: PeerState,
    /// Successful connections so far.
    pub connects: u64,
    /// The last error, if any.
    pub last_error: String,
}

/// The table of peers, shared by the supervisors and the RPC service.
#[derive(Debug, Clone)]
pub struct Peers {
    table: Arc<Mutex<Vec<PeerInfo>>>,
}

impl Peers {
    /// Starts one supervisor per `(name, socket)`.
    pub fn start(sockets: Vec<(&'static str, PathBuf)>, shutdown: Shutdown) -> Peers {
        let table: Vec<PeerInfo> = sockets
            .into_iter()
            .map(|(name, socket)| PeerInfo {
                name,
                socket,
                state: PeerState::Disconnected,
                connects: 0,
                last_error: String::new(),
            })
            .collect();
        let peers = Peers {
            table: Arc::new(Mutex::new(table.clone())),
        };
        for (index, info) in table.into_iter().enumerate() {
            let peers = peers.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { peers.supervise(index, info.socket, shutdown).await });
        }
        peers
    }

    /// A copy of the table.
    pub fn snapshot(&self) -> Vec<PeerInfo> {
        self.table.lock().map(|t| t.clone()).unwrap_or_default()
    }

    fn update(&self, index: usize, f: impl FnOnce(&mut PeerInfo)) {
        if let Ok(mut table) = self.table.lock() {
            if let Some(info) = table.get_mut(index) {
                f(info);
            }
        }
    }

    /// Connects, follows the health stream, and reconnects until shutdown.
    async fn supervise(&self, index: usize, socket: PathBuf, shutdown: Shutdown) {
        let mut backoff = Backoff::rpc();
        loop {
            self.update(index, |p| p.state = PeerState::Connecting);
            let result = tokio::select! {
                r = self.follow(index, &socket, &mut backoff) => r,
                () = shutdown.requested() => return,
            };
            let error = match result {
                Ok(()) => "connection closed".to_string(),
                Err(e) => e,
            };
            self.update(index, |p| {
                if p.state == PeerState::Connected {
                    tracing::warn!(peer = p.name, error = %error, "peer lost");
                }
                p.state = PeerState::Disconnected;
                p.last_error = error;
            });
            if !backoff.wait(&shutdown).await {
                return;
            }
        }
    }

    /// One connection: returns when it ends.
    async fn follow(
        &self,
        index: usize,
        socket: &std::path::Path,
        backoff: &mut Backoff,
    ) -> Result<(), String> {
        let channel = l3roamd_rpc::connect(socket)
            .await
            .map_err(|e| e.to_string())?;
        let mut health = HealthClient::new(channel);
        let mut stream = health
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        backoff.reset();
        self.update(index, |p| {
            p.state = PeerState::Connected;
            p.connects += 1;
            p.last_error.clear();
            tracing::info!(peer = p.name, "peer connected");
        });
        while let Some(status) = stream.message().await.map_err(|e| e.to_string())? {
            tracing::trace!(status = status.status, "peer health");
        }
        Ok(())
    }
}
