//! Rate limits: a token bucket that reads no clock (every call carries
//! `now`), so tests drive time themselves.

use std::time::Instant;

/// A token bucket: `rate` tokens per second, at most `burst` saved up. It
/// starts full at the first [`TokenBucket::take`].
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// `rate` tokens per second, at most `burst` at once. A bucket with
    /// `burst` 0 never gives a token.
    pub fn new(rate: u32, burst: u32) -> TokenBucket {
        let burst = f64::from(burst);
        TokenBucket {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// Takes a token if one is there at `now`.
    pub fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        }
        if self.last.is_none_or(|last| now > last) {
            self.last = Some(now);
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn refills_at_the_rate_up_to_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2, 3);
        assert_eq!((0..5).filter(|_| b.take(t0)).count(), 3);
        // Half a second: one token.
        let t1 = t0 + Duration::from_millis(500);
        assert!(b.take(t1));
        assert!(!b.take(t1));
        // Ten seconds saved up: no more than the burst.
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!((0..5).filter(|_| b.take(t2)).count(), 3);
        // A clock that goes backwards gives nothing.
        assert!(!b.take(t0));
    }

    #[test]
    fn burst_zero_never_gives() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0, 0);
        assert!(!b.take(t0));
        assert!(!b.take(t0 + Duration::from_secs(5)));
    }
}
