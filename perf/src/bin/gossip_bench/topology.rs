//! The network's shape, drawn from the seed exactly as rust-libp2p's side
//! (`rust_gossip_bench`) draws it, so both implementations run on the same
//! graph for the same seed: a random Hamiltonian cycle (so the graph is
//! connected), then random extra edges between nodes that still have fewer
//! than `degree` neighbours, until fewer than two such nodes are left or
//! the attempt bound runs out. The lower-numbered node of an edge dials.
//!
//! The draws must stay in this order and use the same calls (`shuffle`,
//! then `random_range` twice per attempt) for the graphs to be identical:
//! changing either changes which network is measured.

use std::collections::BTreeSet;

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Undirected edges `(a, b)` with `a < b`, sorted, and each node's degree.
pub struct Topology {
    /// The edges; `a` dials `b`.
    pub edges: Vec<(usize, usize)>,
    /// Neighbours per node.
    pub degree: Vec<usize>,
}

impl Topology {
    /// Draw the graph for `n` nodes aiming at `degree` neighbours each.
    pub fn random(n: usize, degree: usize, rng: &mut StdRng) -> Self {
        let mut graph = Self {
            edges: Vec::new(),
            degree: vec![0; n],
        };
        let mut set = BTreeSet::new();
        let mut connect = |a: usize, b: usize, deg: &mut Vec<usize>| {
            if a != b && set.insert((a.min(b), a.max(b))) {
                deg[a] += 1;
                deg[b] += 1;
            }
        };
        // The cycle through a random order makes the graph connected
        // whatever the fill does (two nodes: one edge).
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(rng);
        match n {
            0 | 1 => {}
            2 => connect(0, 1, &mut graph.degree),
            _ => {
                for i in 0..n {
                    connect(order[i], order[(i + 1) % n], &mut graph.degree);
                }
            }
        }
        // The fill picks both ends among the nodes still short of `degree`;
        // a pick of the same node or of an existing edge is a wasted
        // attempt, so the loop is bounded rather than run to a fixed point.
        for _ in 0..n * degree * 50 {
            let open: Vec<usize> = (0..n).filter(|&i| graph.degree[i] < degree).collect();
            if open.len() < 2 {
                break;
            }
            let a = open[rng.random_range(0..open.len())];
            let b = open[rng.random_range(0..open.len())];
            connect(a, b, &mut graph.degree);
        }
        graph.edges = set.into_iter().collect();
        graph
    }

    /// The smallest degree.
    pub fn degree_min(&self) -> usize {
        self.degree.iter().copied().min().unwrap_or(0)
    }

    /// The mean degree.
    pub fn degree_mean(&self) -> f64 {
        if self.degree.is_empty() {
            return 0.0;
        }
        self.degree.iter().sum::<usize>() as f64 / self.degree.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn graph_is_connected_and_degrees_stay_within_the_target() {
        let mut rng = StdRng::seed_from_u64(1);
        let t = Topology::random(50, 8, &mut rng);
        assert!(t.degree.iter().all(|&d| (2..=8).contains(&d)));
        // Connected: a walk from node 0 reaches everyone.
        let mut seen = [false; 50];
        let mut stack = vec![0];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            for &(a, b) in &t.edges {
                if a == i && !seen[b] {
                    stack.push(b);
                } else if b == i && !seen[a] {
                    stack.push(a);
                }
            }
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn same_seed_gives_the_same_graph() {
        let a = Topology::random(30, 6, &mut StdRng::seed_from_u64(7));
        let b = Topology::random(30, 6, &mut StdRng::seed_from_u64(7));
        assert_eq!(a.edges, b.edges);
    }
}
