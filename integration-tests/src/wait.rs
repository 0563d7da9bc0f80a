//! Bounded waiting by observation.
//!
//! The lab never sleeps a fixed time hoping that babeld or a daemon is ready:
//! it polls the state it needs (a route, a socket) at a short interval up to a
//! deadline, and on timeout says what it was still missing.

use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How often [`until`] looks again by default.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// One observation: the awaited state, or why it is not reached yet.
#[derive(Debug)]
pub enum Check<T> {
    /// Reached, with whatever the check found.
    Ready(T),
    /// Not reached; the text says what is missing (used in the timeout error).
    Pending(String),
}

/// Polls `check` every [`POLL_INTERVAL`] until it is ready or `timeout` passed.
///
/// An `Err` from `check` aborts the wait at once (e.g. a daemon exited).
pub fn until<T>(
    what: &str,
    timeout: Duration,
    check: impl FnMut() -> Result<Check<T>>,
) -> Result<T> {
    until_every(what, timeout, POLL_INTERVAL, check)
}

/// Like [`until`] with an explicit polling interval.
pub fn until_every<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Result<Check<T>>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        let last = match check()? {
            Check::Ready(value) => return Ok(value),
            Check::Pending(why) => why,
        };
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(Error::Timeout {
                what: what.to_string(),
                waited,
                last,
            });
        }
        thread::sleep(interval.min(timeout - waited));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_after_some_polls() {
        let mut n = 0;
        let v = until("n to reach 3", Duration::from_secs(2), || {
            n += 1;
            Ok(if n >= 3 {
                Check::Ready(n)
            } else {
                Check::Pending(format!("n={n}"))
            })
        })
        .expect("reached");
        assert_eq!(v, 3);
    }

    #[test]
    fn timeout_names_what_was_missing() {
        let err = until::<()>("the impossible", Duration::from_millis(120), || {
            Ok(Check::Pending("still impossible".into()))
        })
        .expect_err("times out");
        let msg = err.to_string();
        assert!(
            msg.contains("the impossible") && msg.contains("still impossible"),
            "{msg}"
        );
    }
}
