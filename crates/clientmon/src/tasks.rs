//! The event loop: owns the presence state machine, feeds it the sources'
//! events and the clock, and publishes its changes.
//!
//! One task runs the loop; it alone touches [`Presence`], so there are no
//! locks. The sources (netlink, nl80211, snoop sockets) send their events
//! through one bounded channel: when the loop falls behind, they wait, and
//! the kernel's socket buffers drop the excess, so nothing grows without
//! bound. The RPC service asks through a [`Handle`]; a watch takes the
//! snapshot and subscribes to the changes in one step of the loop, so a
//! watcher misses nothing and sees nothing twice.

use std::time::{Duration, Instant};

use l3roamd_daemon::Shutdown;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::presence::{Change, ClientView, Counter, Counters, Event, Presence, Settings};

/// Most often the table-full warning is logged.
const WARN_INTERVAL: Duration = Duration::from_secs(1);
/// Source events waiting for the loop.
const INPUT_QUEUE: usize = 1024;
/// Commands waiting for the loop.
const COMMAND_QUEUE: usize = 64;
/// Changes a watcher may fall behind by before its stream ends.
const CHANGE_QUEUE: usize = 1024;

// ===== the handle used by the RPC service =====

/// A request to the loop.
#[derive(Debug)]
enum Command {
    List {
        reply: oneshot::Sender<Vec<ClientView>>,
    },
    Watch {
        reply: oneshot::Sender<(Vec<ClientView>, broadcast::Receiver<Change>)>,
    },
}

/// The event loop has stopped (the daemon is shutting down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("clientmon's event loop has stopped")]
pub struct Stopped;

/// How the RPC service reaches the event loop.
#[derive(Debug, Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
}

impl Handle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(make(reply)).await.map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }

    /// The attached clients.
    pub async fn list(&self) -> Result<Vec<ClientView>, Stopped> {
        self.ask(|reply| Command::List { reply }).await
    }

    /// The attached clients and a subscription to the changes from now on,
    /// taken together.
    pub async fn watch(&self) -> Result<(Vec<ClientView>, broadcast::Receiver<Change>), Stopped> {
        self.ask(|reply| Command::Watch { reply }).await
    }
}

// ===== the loop =====

/// Starts the loop; returns the handle for the RPC service and the sender
/// for the sources. The loop ends at `shutdown`.
pub fn spawn(settings: Settings, shutdown: Shutdown) -> (Handle, mpsc::Sender<Event>) {
    let (inputs, input_rx) = mpsc::channel(INPUT_QUEUE);
    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    tokio::spawn(run(Presence::new(settings), input_rx, command_rx, shutdown));
    (Handle { commands }, inputs)
}

async fn run(
    mut presence: Presence,
    mut inputs: mpsc::Receiver<Event>,
    mut commands: mpsc::Receiver<Command>,
    shutdown: Shutdown,
) {
    let (changes, _) = broadcast::channel(CHANGE_QUEUE);
    let mut refused = Refused::default();
    loop {
        // The clock is fed when a client times out or a tentative address
        // is due, not every second: an idle node does not wake (issue 13).
        let deadline = presence.next_deadline();
        let tick_at = tokio::time::Instant::from_std(deadline.unwrap_or_else(Instant::now));
        // The clock is read when something happened, not when the wait began.
        let happened = tokio::select! {
            event = inputs.recv() => match event {
                Some(event) => {
                    let now = Instant::now();
                    let changes = presence.handle(now, event);
                    refused.warn(&presence, now);
                    changes
                }
                None => break,
            },
            () = tokio::time::sleep_until(tick_at), if deadline.is_some() => {
                presence.handle(Instant::now(), Event::Tick)
            }
            command = commands.recv() => {
                match command {
                    Some(Command::List { reply }) => {
                        let _ = reply.send(presence.clients(Instant::now()));
                    }
                    Some(Command::Watch { reply }) => {
                        let clients = presence.clients(Instant::now());
                        let _ = reply.send((clients, changes.subscribe()));
                    }
                    None => break,
                }
                continue;
            }
            _ = shutdown.requested() => break,
        };
        for change in happened {
            log(&change);
            // No watcher is no error.
            let _ = changes.send(change);
        }
    }
    log_counters(presence.counters());
}

/// The table-full warning: logged at most once a second, for the clients
/// refused since the last one.
#[derive(Debug, Default)]
struct Refused {
    warned: u64,
    at: Option<Instant>,
}

impl Refused {
    fn warn(&mut self, presence: &Presence, now: Instant) {
        let refused = presence.counters().get(Counter::RefusedFull);
        if refused <= self.warned
            || self
                .at
                .is_some_and(|at| now.saturating_duration_since(at) < WARN_INTERVAL)
        {
            return;
        }
        tracing::warn!(
            refused = refused - self.warned,
            clients = presence.len(),
            "client table full (clientmon.max_clients): new clients refused"
        );
        self.warned = refused;
        self.at = Some(now);
    }
}

fn log_counters(c: &Counters) {
    let line: Vec<String> = c
        .list()
        .iter()
        .map(|(name, v)| format!("{name}={v}"))
        .collect();
    tracing::info!("presence counters: {}", line.join(" "));
}

fn log(change: &Change) {
    match change {
        Change::Appeared(c) => tracing::info!(
            mac = %c.mac,
            interface = %c.interface,
            sources = ?c.sources,
            addresses = ?c.addresses,
            "client appeared"
        ),
        Change::AddressLearned { mac, address } => {
            tracing::info!(%mac, %address, "client address learned")
        }
        Change::Gone { mac, reason } => tracing::info!(%mac, ?reason, "client gone"),
    }
}
