//! A clean stop on SIGTERM (procd) or SIGINT (a terminal). SIGHUP, whose
//! default action would kill the daemon and drop its held packets, is
//! logged and ignored: the configuration is read once, at start, and a
//! change is applied whole by a restart (procd restarts a daemon whose
//! configuration file changed), never half by a reload.

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Resolves when the daemon is asked to stop. Cheap to clone: every task
/// that must stop holds one.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Installs the SIGTERM, SIGINT and SIGHUP handlers.
    pub fn on_signals() -> std::io::Result<Shutdown> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let name = loop {
                tokio::select! {
                    _ = term.recv() => break "SIGTERM",
                    _ = int.recv() => break "SIGINT",
                    _ = hup.recv() => tracing::warn!(
                        "SIGHUP ignored: the configuration is read only at start; \
                         restart the daemon to apply a change"
                    ),
                }
            };
            tracing::info!(signal = name, "stopping");
            let _ = tx.send(true);
        });
        Ok(Shutdown { rx })
    }

    /// A shutdown under the caller's control, for tests: send `true` to stop.
    pub fn manual() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown { rx })
    }

    /// Whether the stop was requested already.
    pub fn is_requested(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits until the stop is requested (or its sender is gone).
    pub async fn requested(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}
