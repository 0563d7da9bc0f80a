//! Which mesh nodes are linked: a chain or a grid.
//!
//! A chain has one path between any two nodes; a roam there always moves a
//! client along the one path the traffic takes. A grid has many equal-cost
//! paths, so babel has choices, a SEEK arrives at most nodes over several
//! links (the duplicate filter earns its keep), and a roam to a neighbour may
//! move the client across the traffic's path instead of along it. Nodes are
//! numbered from 1 (`n1`), a grid row by row; the classic gateway is always
//! linked to n1. Pure functions, so the lab's topologies are unit-tested.

use std::collections::VecDeque;

/// How the lab links its nodes n1..nN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// n1 – n2 – ... – nN.
    Chain,
    /// `rows` × `cols` nodes, each linked to the one right of it and below it:
    /// node (r, c) (from 0) is n(r·cols + c + 1).
    Grid {
        /// Number of rows.
        rows: usize,
        /// Number of columns.
        cols: usize,
    },
}

impl Topology {
    /// The mesh links between nodes as pairs of node numbers (from 1), in
    /// the order the lab creates them.
    pub fn links(&self, nodes: usize) -> Vec<(usize, usize)> {
        match *self {
            Topology::Chain => (1..nodes).map(|i| (i, i + 1)).collect(),
            Topology::Grid { rows, cols } => {
                let mut links = Vec::new();
                for r in 0..rows {
                    for c in 0..cols {
                        let n = r * cols + c + 1;
                        if c + 1 < cols {
                            links.push((n, n + 1));
                        }
                        if r + 1 < rows {
                            links.push((n, n + cols));
                        }
                    }
                }
                links
            }
        }
    }

    /// The number of nodes it has, if it fixes one (a grid does).
    pub fn fixed_nodes(&self) -> Option<usize> {
        match *self {
            Topology::Chain => None,
            Topology::Grid { rows, cols } => Some(rows * cols),
        }
    }
}

/// The nodes linked to `node` by `links`, in ascending order.
pub fn neighbours(links: &[(usize, usize)], node: usize) -> Vec<usize> {
    let mut out: Vec<usize> = links
        .iter()
        .filter_map(|&(a, b)| match (a == node, b == node) {
            (true, _) => Some(b),
            (_, true) => Some(a),
            _ => None,
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Hop counts from node `from` to every node 1..=`nodes` (index 0 unused;
/// `None`: unreachable), by breadth-first search.
pub fn hops_from(links: &[(usize, usize)], nodes: usize, from: usize) -> Vec<Option<usize>> {
    let mut hops = vec![None; nodes + 1];
    let Some(slot) = hops.get_mut(from) else {
        return hops;
    };
    *slot = Some(0);
    let mut queue = VecDeque::from([from]);
    // Each node enters the queue at most once: the loop is bounded by `nodes`.
    while let Some(n) = queue.pop_front() {
        let d = hops.get(n).copied().flatten().unwrap_or(0);
        for m in neighbours(links, n) {
            if let Some(h) = hops.get_mut(m) {
                if h.is_none() {
                    *h = Some(d + 1);
                    queue.push_back(m);
                }
            }
        }
    }
    hops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_links_each_node_to_the_next() {
        assert_eq!(Topology::Chain.links(4), [(1, 2), (2, 3), (3, 4)]);
        assert!(Topology::Chain.links(1).is_empty());
        assert_eq!(Topology::Chain.fixed_nodes(), None);
    }

    #[test]
    fn a_grid_links_right_and_down() {
        let g = Topology::Grid { rows: 3, cols: 3 };
        let links = g.links(9);
        // 3 rows of 2 horizontal links, 2 rows of 3 vertical ones.
        assert_eq!(links.len(), 12);
        assert_eq!(g.fixed_nodes(), Some(9));
        assert_eq!(neighbours(&links, 1), [2, 4]);
        assert_eq!(neighbours(&links, 5), [2, 4, 6, 8]);
        assert_eq!(neighbours(&links, 9), [6, 8]);
        let big = Topology::Grid { rows: 4, cols: 5 }.links(20);
        assert_eq!(big.len(), 4 * 4 + 3 * 5);
        assert_eq!(neighbours(&big, 7), [2, 6, 8, 12]);
    }

    #[test]
    fn hops_are_grid_distances() {
        let links = Topology::Grid { rows: 4, cols: 5 }.links(20);
        let hops = hops_from(&links, 20, 1);
        assert_eq!(hops[1], Some(0));
        assert_eq!(hops[2], Some(1));
        assert_eq!(hops[7], Some(2));
        assert_eq!(hops[20], Some(7));
        let max = hops.iter().flatten().max().copied();
        assert_eq!(max, Some(7));
        // An unlinked node is unreachable; a node out of range gives nothing.
        assert_eq!(hops_from(&[(1, 2)], 3, 1)[3], None);
        assert!(hops_from(&[], 2, 5).iter().all(Option::is_none));
    }
}
