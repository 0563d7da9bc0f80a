//! A clean stop on SIGTERM (procd) or SIGINT (a terminal).

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Resolves when the daemon is asked to stop. Cheap to clone: every task
/// that must stop holds one.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Installs the SIGTERM and SIGINT handlers.
    pub fn on_signals() -> std::io::Result<Shutdown> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
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
