//! Reconnect delays for core's connections to the other daemons.

use std::time::Duration;

use l3roamd_daemon::Shutdown;

/// Exponential backoff from 100 ms to 5 s.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    /// A fresh backoff.
    pub fn new() -> Backoff {
        Backoff { next: Self::MIN }
    }

    /// After a connection that worked: start again from the shortest delay.
    pub fn reset(&mut self) {
        self.next = Self::MIN;
    }

    /// Waits the current delay and doubles it; false when shutting down.
    pub async fn wait(&mut self, shutdown: &Shutdown) -> bool {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = shutdown.requested() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn doubles_up_to_the_cap_and_resets() {
        let (_tx, shutdown) = Shutdown::manual();
        let mut b = Backoff::new();
        let start = tokio::time::Instant::now();
        for _ in 0..8 {
            assert!(b.wait(&shutdown).await);
        }
        // 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 3.2 + 5 + 5 seconds.
        assert_eq!(start.elapsed(), Duration::from_millis(16_300));
        b.reset();
        assert_eq!(b.next, Backoff::MIN);
    }
}
