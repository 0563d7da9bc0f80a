//! Random packet nonces without a system call per packet.

use std::hash::{BuildHasher, RandomState};

/// Random nonces: SipHash under a random per-process key over a counter,
/// so every packet gets its own unpredictable nonce without a system call
/// that could fail or block.
#[derive(Debug, Clone)]
pub struct Nonces {
    key: RandomState,
    counter: u64,
}

impl Default for Nonces {
    fn default() -> Self {
        Nonces::new()
    }
}

impl Nonces {
    /// Nonces under a fresh random key.
    pub fn new() -> Nonces {
        Nonces {
            key: RandomState::new(),
            counter: 0,
        }
    }

    /// The next nonce.
    pub fn draw(&mut self) -> u32 {
        self.counter = self.counter.wrapping_add(1);
        // Truncation keeps the low 32 of 64 pseudo-random bits.
        self.key.hash_one(self.counter) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_do_not_repeat_in_a_short_run() {
        let mut nonces = Nonces::new();
        let drawn: Vec<u32> = (0..1000).map(|_| nonces.draw()).collect();
        let mut unique = drawn.clone();
        unique.sort_unstable();
        unique.dedup();
        // 1000 draws of 32 bits collide with a chance of about 1e-4.
        assert!(unique.len() >= 999, "{} unique", unique.len());
    }

    #[test]
    fn two_generators_differ() {
        let a: Vec<u32> = {
            let mut n = Nonces::new();
            (0..4).map(|_| n.draw()).collect()
        };
        let b: Vec<u32> = {
            let mut n = Nonces::new();
            (0..4).map(|_| n.draw()).collect()
        };
        assert_ne!(a, b);
    }
}
