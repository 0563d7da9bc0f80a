//! The reconnecting follower: how core keeps a watch stream open to another
//! daemon. It connects to the daemon's socket, opens the session's stream,
//! runs the session until the stream is lost, and reconnects with backoff
//! (100 ms doubling to 5 s, reset once a stream is open) until shutdown.

use std::future::Future;
use std::path::{Path, PathBuf};

use l3roamd_daemon::{Backoff, Shutdown};
use tokio::sync::mpsc;
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

/// Passes a watch stream on: `start` first (the snapshot follows), then
/// every message `convert` understands. `Ok` when `events` is closed,
/// `Err` when the stream is lost; malformed messages are logged and
/// skipped.
pub async fn forward<M, E>(
    peer: &str,
    mut stream: tonic::Streaming<M>,
    start: E,
    events: &mpsc::Sender<E>,
    convert: fn(&M) -> Option<E>,
) -> Result<(), String> {
    if events.send(start).await.is_err() {
        return Ok(());
    }
    while let Some(message) = stream.message().await.map_err(|e| e.to_string())? {
        match convert(&message) {
            Some(event) => {
                if events.send(event).await.is_err() {
                    return Ok(());
                }
            }
            None => tracing::warn!(peer, "malformed event"),
        }
    }
    Err(format!("{peer} closed the stream"))
}

/// Sends the requests from `requests` one after the other, in the order
/// they were given, each once the previous one is answered; `Ok` when the
/// queue is closed. Meant for RPCs the daemon answers at once.
pub async fn send_in_order<R, F, Fut>(
    requests: &mut mpsc::Receiver<R>,
    mut send: F,
) -> Result<(), String>
where
    F: FnMut(R) -> Fut,
    Fut: Future<Output = ()>,
{
    while let Some(request) = requests.recv().await {
        send(request).await;
    }
    Ok(())
}

/// Drops what is queued in `requests` (while the daemon is away).
pub fn drop_queued<R>(requests: &mut mpsc::Receiver<R>) {
    while requests.try_recv().is_ok() {}
}

/// What a [`Follower`] needs to know of the daemon it follows.
pub trait Peer: Send + 'static {
    /// The daemon's name, for logs.
    const NAME: &'static str;
    /// The generated gRPC client.
    type Client: Clone + Send + 'static;
    /// A message of the watch stream.
    type Message: Send + 'static;
    /// What the follower passes on.
    type Event: Send + 'static;
    /// What the follower is asked to send.
    type Request: Send + 'static;

    /// Connects the client on `channel` and opens the watch stream.
    #[allow(clippy::type_complexity)]
    fn open(
        channel: Channel,
    ) -> impl Future<Output = Result<(Self::Client, tonic::Streaming<Self::Message>), tonic::Status>>
           + Send;

    /// The event that precedes every (re)established stream's snapshot.
    fn snapshot_start() -> Self::Event;

    /// The event for `message`; `None` if it is malformed.
    fn convert(message: &Self::Message) -> Option<Self::Event>;

    /// Sends one request (and logs its failure).
    fn send(client: Self::Client, request: Self::Request) -> impl Future<Output = ()> + Send;
}

/// A [`Session`] that passes a watch stream on as events and sends the
/// requests of a bounded queue in order on the same connection; requests
/// queued while the daemon is away are dropped.
pub struct Follower<P: Peer> {
    requests: Option<mpsc::Receiver<P::Request>>,
    events: mpsc::Sender<P::Event>,
}

impl<P: Peer> Follower<P> {
    /// Events to `events`, requests (if any) from `requests`.
    pub fn new(
        requests: Option<mpsc::Receiver<P::Request>>,
        events: mpsc::Sender<P::Event>,
    ) -> Follower<P> {
        Follower { requests, events }
    }

    /// Follows `P` at `socket` until shutdown or until the engine is gone.
    pub async fn run(self, socket: PathBuf, shutdown: Shutdown) {
        follow(P::NAME, socket, self, shutdown).await;
    }
}

impl<P: Peer> Session for Follower<P> {
    type Stream = (P::Client, tonic::Streaming<P::Message>);

    async fn open(&mut self, channel: Channel) -> Result<Self::Stream, tonic::Status> {
        P::open(channel).await
    }

    async fn run(&mut self, (client, stream): Self::Stream) -> Result<(), String> {
        let watch = forward(
            P::NAME,
            stream,
            P::snapshot_start(),
            &self.events,
            P::convert,
        );
        let Some(requests) = self.requests.as_mut() else {
            return watch.await;
        };
        // The stream is read while a request is on its way, and the other
        // way round; either ending ends the connection.
        tokio::select! {
            r = watch => r,
            r = send_in_order(requests, move |r| P::send(client.clone(), r)) => r,
        }
    }

    fn disconnected(&mut self) {
        if let Some(requests) = self.requests.as_mut() {
            drop_queued(requests);
        }
    }
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
    async fn requests_are_sent_in_order() {
        let (tx, mut rx) = mpsc::channel(4);
        for i in 0..4 {
            tx.send(i).await.unwrap();
        }
        drop(tx);
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = sent.clone();
        send_in_order(&mut rx, move |i| {
            let log = log.clone();
            async move {
                // Earlier requests take longer: order must hold anyway.
                tokio::task::yield_now().await;
                log.lock().unwrap().push(i);
            }
        })
        .await
        .unwrap();
        assert_eq!(*sent.lock().unwrap(), [0, 1, 2, 3]);
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
