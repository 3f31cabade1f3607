//! The simulator's determinism, with a real protocol: seeded swarms that
//! ping each other over a lossy, jittery virtual network give the same
//! event trace (hash) when run twice with one seed, and a different one
//! with another seed.

use std::net::Ipv4Addr;
use std::time::Duration;

use protocols::ping::{Ping, PingConfig};
use swarm::virtual_net::{LinkConfig, VirtualNet};
use swarm::{Keypair, SwarmConfig};

/// Six seeded nodes; each dials two others; 20 virtual seconds of pings.
/// Returns the trace hash and how many ping events were traced.
fn run(seed: u64) -> (u64, usize) {
    let link = LinkConfig {
        loss: 0.05,
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(5),
        ..LinkConfig::clean()
    };
    let mut net = VirtualNet::new(seed, link);
    net.event_trace = Some(Vec::new());
    let nodes: Vec<usize> = (0..6u8)
        .map(|i| {
            // Keys and the swarm's own randomness both come from the seed.
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&seed.to_le_bytes());
            key[8] = i;
            let mut config = SwarmConfig::new(Keypair::ed25519_from_bytes(key).unwrap());
            config.seed = Some(seed.wrapping_mul(31).wrapping_add(u64::from(i)));
            net.add_swarm_with(config, Ipv4Addr::new(10, 0, 0, i + 1), |s| {
                s.add_protocol(Box::new(Ping::new(PingConfig {
                    interval: Duration::from_secs(1),
                    ..PingConfig::default()
                })));
            })
        })
        .collect();
    for (k, &n) in nodes.iter().enumerate() {
        for step in [1, 2] {
            let to = net.dial_addr(nodes[(k + step) % nodes.len()]);
            net.swarm(n).dial(&to, false).expect("dial");
        }
    }
    net.run_for(Duration::from_secs(20));
    let pings = net
        .event_trace
        .as_ref()
        .unwrap()
        .iter()
        .filter(|e| e.event.contains("\"ping\""))
        .count();
    (net.trace_hash(), pings)
}

#[test]
fn one_seed_gives_one_trace_and_another_seed_another() {
    let (first, pings) = run(7);
    assert!(pings > 50, "only {pings} ping events traced");
    let (again, _) = run(7);
    assert_eq!(first, again, "same seed, different traces");
    let (other, _) = run(8);
    assert_ne!(first, other, "different seeds, same trace");
}
