//! The reconnecting follower: how core keeps a watch stream open to another
//! daemon. It connects to the daemon's socket, opens the session's stream,
//! runs the session until the stream is lost, and reconnects with backoff
//! (100 ms doubling to 5 s, reset once a stream is open) until shutdown.

use std::future::Future;
use std::path::{Path, PathBuf};

use l3roamd_daemon::{Backoff, Shutdown};
use tonic::transport::Channel;

/// What one connection to a daemon does; [`follow`] reconnects it.
pub trait Session: Send {
    /// The open watch stream (and whatever else a connection holds).
    type Stream: Send;

    /// Opens the watch on a fresh `channel`; an error is retried after the
    /// backoff.
    fn open(
        &mut self,
        channel: Channel,
    ) -> impl Future<Output = Result<Self::Stream, tonic::Status>> + Send;

    /// Follows an open stream. `Err` when the stream is lost (reconnect);
    /// `Ok` when whoever receives the events is gone (stop).
    fn run(&mut self, stream: Self::Stream) -> impl Future<Output = Result<(), String>> + Send;

    /// Called after every failed or lost connection, before the backoff:
    /// drop what cannot be delivered meanwhile.
    fn disconnected(&mut self) {}
}

/// Follows the daemon `peer` at `socket` with `session` until shutdown or
/// until the session stops.
pub async fn follow<S: Session>(peer: &str, socket: PathBuf, mut session: S, shutdown: Shutdown) {
    let mut backoff = Backoff::rpc();
    loop {
        let result = tokio::select! {
            r = connect_and_run(peer, &socket, &mut session, &mut backoff) => r,
            () = shutdown.requested() => return,
        };
        match result {
            Ok(()) => return,
            Err(e) => tracing::debug!(peer, error = %e, "not followed"),
        }
        session.disconnected();
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}

async fn connect_and_run<S: Session>(
    peer: &str,
    socket: &Path,
    session: &mut S,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let channel = crate::connect(socket).await.map_err(|e| e.to_string())?;
    let stream = session.open(channel).await.map_err(|e| e.to_string())?;
    backoff.reset();
    tracing::info!(peer, "following");
    session.run(stream).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Counts the attempts; never connects (the socket does not exist).
    struct Never(Arc<AtomicUsize>);

    impl Session for Never {
        type Stream = ();
        async fn open(&mut self, _channel: Channel) -> Result<(), tonic::Status> {
            Ok(())
        }
        async fn run(&mut self, (): ()) -> Result<(), String> {
            Ok(())
        }
        fn disconnected(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn retries_until_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let attempts = Arc::new(AtomicUsize::new(0));
        let (tx, shutdown) = Shutdown::manual();
        let task = tokio::spawn(follow(
            "nobody",
            dir.path().join("missing.sock"),
            Never(attempts.clone()),
            shutdown,
        ));
        // 100 + 200 ms of backoff: at least three attempts.
        tokio::time::sleep(std::time::Duration::from_millis(450)).await;
        let _ = tx.send(true);
        task.await.unwrap();
        assert!(attempts.load(Ordering::Relaxed) >= 3);
    }
}
