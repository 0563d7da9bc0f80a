//! Deterministic random and damaged input for the property tests of the
//! decoders of outside data (every crate's: one copy instead of one per
//! test module). Not for anything but tests: xorshift64 is no source of
//! secrets.

/// xorshift64 from `seed` (not 0): deterministic random numbers.
pub fn xorshift(mut s: u64) -> impl FnMut() -> u64 {
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

/// `seed` damaged at random: replaced by random bytes, truncated, a few
/// bytes changed, or a few bytes inserted.
pub fn damaged(seed: &[u8], next: &mut impl FnMut() -> u64) -> Vec<u8> {
    let mut buf = seed.to_vec();
    match next() % 4 {
        0 => {
            let len = (next() % 200) as usize;
            buf = (0..len).map(|_| next() as u8).collect();
        }
        1 => buf.truncate((next() as usize) % (seed.len() + 1)),
        2 => {
            for _ in 0..=(next() % 4) {
                if let Some(at) = (next() as usize).checked_rem(buf.len()) {
                    if let Some(b) = buf.get_mut(at) {
                        *b = next() as u8;
                    }
                }
            }
        }
        _ => {
            let at = (next() as usize) % (buf.len() + 1);
            for _ in 0..=(next() % 8) {
                buf.insert(at, next() as u8);
            }
        }
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_every_kind_of_damage() {
        let (mut a, mut b) = (xorshift(7), xorshift(7));
        assert_eq!((a(), a()), (b(), b()));
        let seed = [1u8; 16];
        let mut next = xorshift(0x5eed);
        let lens: Vec<usize> = (0..200).map(|_| damaged(&seed, &mut next).len()).collect();
        assert!(lens.iter().any(|l| *l < 16), "truncated");
        assert!(lens.iter().any(|l| *l > 16), "grown");
        assert!(lens.contains(&16), "changed in place");
    }
}
