//! A seeded schedule of random roams to neighbouring nodes.
//!
//! Every client dwells on its node for a random time in the dwell range,
//! then moves to a random neighbour of that node in the topology, until the
//! run's duration is over. The schedule is computed before the run from a
//! seed, so a failing run can be replayed roam for roam, and a test is
//! deterministic in what it asks the lab to do (not in what the lab's timing
//! makes of it). Nothing here touches the lab.

use std::time::Duration;

use crate::topology::neighbours;

/// SplitMix64: small, fast, and the same sequence on every machine for a seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// A duration in `lo..=hi`, in whole milliseconds.
    pub fn duration(&mut self, lo: Duration, hi: Duration) -> Duration {
        let (lo_ms, hi_ms) = (lo.as_millis() as u64, hi.as_millis() as u64);
        let span = hi_ms.saturating_sub(lo_ms) + 1;
        Duration::from_millis(lo_ms + self.next_u64() % span)
    }
}

/// One planned roam.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedRoam {
    /// When, from the start of the run.
    pub at: Duration,
    /// Index of the client (into the placement given to [`plan_roams`]).
    pub client: usize,
    /// The node it leaves (number from 1).
    pub from: usize,
    /// The neighbouring node it moves to.
    pub to: usize,
}

/// The roams of every client during `duration`, ordered by time.
///
/// `placement[k]` is the node client k starts on. A client whose node has
/// no neighbour never roams.
pub fn plan_roams(
    links: &[(usize, usize)],
    placement: &[usize],
    dwell: (Duration, Duration),
    duration: Duration,
    seed: u64,
) -> Vec<PlannedRoam> {
    let mut rng = SplitMix64::new(seed);
    let mut roams = Vec::new();
    for (client, &start) in placement.iter().enumerate() {
        let mut node = start;
        let mut at = rng.duration(dwell.0, dwell.1);
        // Bounded: every step adds at least the minimum dwell (≥ 1 ms).
        let step_floor = dwell.0.max(Duration::from_millis(1));
        while at < duration {
            let choices = neighbours(links, node);
            if choices.is_empty() {
                break;
            }
            let to = choices[rng.below(choices.len())];
            roams.push(PlannedRoam {
                at,
                client,
                from: node,
                to,
            });
            node = to;
            at += rng.duration(dwell.0, dwell.1).max(step_floor);
        }
    }
    roams.sort_by_key(|r| (r.at, r.client));
    roams
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Topology;

    #[test]
    fn the_generator_is_repeatable() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(SplitMix64::new(8).next_u64(), xs[0]);
        assert_eq!(a.below(0), 0);
        let d = a.duration(Duration::from_secs(20), Duration::from_secs(60));
        assert!((Duration::from_secs(20)..=Duration::from_secs(60)).contains(&d));
    }

    #[test]
    fn roams_go_to_neighbours_within_the_run() {
        let links = Topology::Grid { rows: 3, cols: 3 }.links(9);
        let placement: Vec<usize> = (0..20).map(|k| k % 9 + 1).collect();
        let dwell = (Duration::from_secs(20), Duration::from_secs(60));
        let duration = Duration::from_secs(120);
        let roams = plan_roams(&links, &placement, dwell, duration, 42);
        assert_eq!(roams, plan_roams(&links, &placement, dwell, duration, 42));
        assert_ne!(roams, plan_roams(&links, &placement, dwell, duration, 43));
        // Every client roams at least once in 120 s with dwells of at most 60 s.
        for k in 0..placement.len() {
            assert!(roams.iter().any(|r| r.client == k), "client {k}");
        }
        let mut at_node = placement.clone();
        let mut last = vec![Duration::ZERO; placement.len()];
        for r in &roams {
            assert!(r.at < duration);
            assert_eq!(r.from, at_node[r.client], "{r:?}");
            assert!(neighbours(&links, r.from).contains(&r.to), "{r:?}");
            assert!(r.at >= last[r.client] + dwell.0, "{r:?}");
            at_node[r.client] = r.to;
            last[r.client] = r.at;
        }
        assert!(roams.windows(2).all(|w| w[0].at <= w[1].at));
    }

    #[test]
    fn a_lonely_node_keeps_its_clients() {
        let roams = plan_roams(
            &[],
            &[1, 1],
            (Duration::from_secs(1), Duration::from_secs(2)),
            Duration::from_secs(60),
            1,
        );
        assert!(roams.is_empty());
    }
}
