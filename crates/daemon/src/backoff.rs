//! Exponential backoff between reconnection attempts.

use std::time::Duration;

use crate::Shutdown;

/// Waits that double from `first` up to `max`; [`Backoff::reset`] after a
/// success starts again from `first`.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Reconnecting to another daemon's socket: 100 ms up to 5 s.
    pub const RPC: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

    /// Waits from `first`, doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// The backoff for reconnecting to another daemon ([`Backoff::RPC`]).
    pub fn rpc() -> Backoff {
        Backoff::new(Self::RPC.0, Self::RPC.1)
    }

    /// After a connection that worked: start again from the shortest delay.
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// The delay the next [`Backoff::wait`] waits.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// The current delay; the following one is doubled (up to the cap).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// Waits the current delay and doubles it; false when shutting down.
    pub async fn wait(&mut self, shutdown: &Shutdown) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = shutdown.requested() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::rpc();
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.peek(), Duration::from_millis(100));
        let mut b = Backoff::new(Duration::from_secs(5), Duration::from_secs(60));
        let delays: Vec<u64> = (0..6).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 60, 60]);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_the_delays_and_stops_on_shutdown() {
        let (tx, shutdown) = Shutdown::manual();
        let mut b = Backoff::rpc();
        let start = tokio::time::Instant::now();
        for _ in 0..8 {
            assert!(b.wait(&shutdown).await);
        }
        // 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 3.2 + 5 + 5 seconds.
        assert_eq!(start.elapsed(), Duration::from_millis(16_300));
        let _ = tx.send(true);
        assert!(!b.wait(&shutdown).await);
    }
}
