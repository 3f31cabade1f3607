//! The plugin targets' network: `swarm::virtual_net` with a lossless link
//! (5 ms each way), swarms at 10.0.0.<index + 1> with fixed host keys (so
//! that corpora can hold keys and PeerIds), and a tighter turn bound, so
//! that a swarm that spins is a finding quickly, not a hang.

use std::time::Duration;

pub use swarm::address::quic_multiaddr;
use swarm::virtual_net::{LinkConfig, VirtualNet};
use swarm::{Keypair, PeerId, Swarm, SwarmConfig};

/// The network the targets run on.
pub type Net = VirtualNet;

/// Most turns one run may take before we call the swarm stuck.
const MAX_TURNS: u64 = 2_000_000;

/// A config for node `n`: a fixed host key (so corpora can hold keys and
/// PeerIds), and `configure` for the rest.
pub fn config(n: u8) -> SwarmConfig {
    SwarmConfig::new(keypair(n))
}

/// The fixed host key of node `n`.
pub fn keypair(n: u8) -> Keypair {
    Keypair::ed25519_from_bytes([n + 1; 32]).expect("ed25519 key")
}

/// The PeerId of node `n`.
pub fn peer_id(n: u8) -> PeerId {
    keypair(n).public().to_peer_id()
}

/// An empty network with a lossless link (it uses no randomness, so the
/// seed does not matter).
pub fn new() -> Net {
    let mut net = Net::new(0, LinkConfig::clean());
    net.max_turns = MAX_TURNS;
    net
}

/// Add a swarm listening on 10.0.0.<index + 1>, port 1000, with its plugins
/// added by `setup` before it listens; returns its index.
pub fn add_swarm(net: &mut Net, config: SwarmConfig, setup: impl FnOnce(&mut Swarm)) -> usize {
    let ip = [10, 0, 0, net.len() as u8 + 1];
    net.add_swarm_with(config, ip, setup)
}

/// Shut every swarm down and run until all connections are gone
/// (bounded); then the tables must be empty.
pub fn shutdown_and_check_empty(net: &mut Net) {
    let drained = net.shutdown_swarms(0, Duration::from_secs(120)).is_done();
    for i in 0..net.len() {
        let swarm = net.swarm(i);
        assert!(
            drained,
            "node {i}: connections did not drain after shutdown ({} left)",
            swarm.connection_count()
        );
        assert_eq!(swarm.connection_count(), 0, "node {i}: connection table");
        assert_eq!(swarm.stream_count(), 0, "node {i}: stream table");
        assert_eq!(
            swarm.threaded_buffered_bytes(),
            0,
            "node {i}: thread buffers"
        );
    }
}
