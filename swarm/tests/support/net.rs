//! The hardening tests' network: `swarm::virtual_net` with the tests'
//! guards, and raw quinn-proto peers (`super::raw`) as nodes next to the
//! swarms.

use std::time::Duration;

use swarm::virtual_net::{LinkConfig, VirtualNet as Net};

use super::raw::RawPeer;

/// A network with randomness from `seed` and a link doing what `link`
/// says, that panics if a test runs for four minutes of wall time (a test
/// that spins for real must fail, not hang the suite).
pub fn new(seed: u64, link: LinkConfig) -> Net {
    let mut net = Net::new(seed, link);
    net.wall_limit = Some(Duration::from_secs(240));
    net
}

/// Raw peers on a [`Net`].
pub trait RawNodes {
    /// Add a raw quinn-proto peer at its address; returns its node index.
    fn add_raw(&mut self, peer: RawPeer) -> usize;
    /// Node `n`'s raw peer (panics if it is not one).
    fn raw(&mut self, n: usize) -> &mut RawPeer;
}

impl RawNodes for Net {
    fn add_raw(&mut self, peer: RawPeer) -> usize {
        self.add_node(peer.addr, Box::new(peer))
    }

    fn raw(&mut self, n: usize) -> &mut RawPeer {
        self.node_mut::<RawPeer>(n)
            .unwrap_or_else(|| panic!("node {n} is not a raw peer"))
    }
}
