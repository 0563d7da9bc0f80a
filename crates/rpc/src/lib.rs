//! The local RPC fabric of l3roamd.
//!
//! Every daemon serves one gRPC service of package `l3roamd.v1` on a UNIX
//! socket, together with server reflection (v1 and v1alpha, because grpcurl
//! 1.8 only speaks v1alpha) and the standard `grpc.health.v1` service, so an
//! operator can inspect any daemon with grpcurl. `l3roamd-core` is the only
//! client of the others (a star, no cycles); it connects with [`connect`].

pub mod convert;
pub mod follow;
mod server;

pub use follow::{drop_queued, follow, forward, send_in_order, Follower, Peer, Session};
pub use server::{bind, serve, ServeError};

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

/// Generated types and services of package `l3roamd.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/l3roamd.v1.rs"));
}

/// The encoded file descriptor set of `proto/`, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/l3roamd_v1_descriptor.bin"));

/// Why a connection to a daemon's socket failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to {path}: {source}")]
pub struct ConnectError {
    /// The socket path.
    pub path: PathBuf,
    /// What went wrong.
    #[source]
    pub source: tonic::transport::Error,
}

/// Opens a gRPC channel to the daemon listening on the UNIX socket `path`.
///
/// The connection is established before this returns, so a daemon that is
/// down is reported at once; a channel that later loses its daemon fails its
/// calls and reconnects on the next one.
pub async fn connect(path: &Path) -> Result<Channel, ConnectError> {
    let socket = path.to_path_buf();
    // The URI is required by tonic but never resolved: the connector below
    // always dials the socket.
    let endpoint = Endpoint::from_static("http://localhost");
    endpoint
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move { UnixStream::connect(socket).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|source| ConnectError {
            path: path.to_path_buf(),
            source,
        })
}

/// The stream type of every watch RPC.
pub type WatchStream<T> =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send>>;

/// A watch stream: the `snapshot` events, then the `live` ones, until `live`
/// ends or `stop` resolves (the daemon is stopping), which ends the stream so
/// the watcher knows to resynchronise.
pub fn watch_stream<T: Send + 'static>(
    snapshot: Vec<T>,
    live: impl futures::Stream<Item = T> + Send + 'static,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> WatchStream<T> {
    use futures::StreamExt;
    Box::pin(
        futures::stream::iter(snapshot)
            .chain(live)
            .take_until(stop)
            .map(Ok),
    )
}
