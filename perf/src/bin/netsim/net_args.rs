//! The knobs every scenario shares: size, seed, and the link.

use std::time::Duration;

use clap::Args;
use swarm::virtual_net::{LinkConfig, VirtualNet};

/// The network every scenario runs on.
#[derive(Args, Clone)]
pub(crate) struct NetArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 100)]
    pub(crate) nodes: usize,
    /// Seed of everything random: keys, the swarms' randomness, the link,
    /// the choice of peers.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// One-way latency in milliseconds.
    #[arg(long, default_value_t = 20.0)]
    pub(crate) latency_ms: f64,
    /// Extra random one-way delay in [0, jitter) milliseconds.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) jitter_ms: f64,
    /// Probability that a datagram is lost.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) loss: f64,
    /// Per pair of nodes, an extra fixed one-way delay drawn in
    /// [0, spread) milliseconds (near and far nodes).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) latency_spread_ms: f64,
    /// Each node's uplink in kilobytes per second (0: unlimited).
    #[arg(long, default_value_t = 0)]
    pub(crate) bandwidth_kbps: u64,
    /// Bytes that may queue for a node's uplink before datagrams drop.
    #[arg(long, default_value_t = 65536)]
    pub(crate) queue_bytes: usize,
    /// Give the nodes IPv6 addresses (fd00::/64) instead of IPv4 (10/8).
    #[arg(long)]
    pub(crate) ipv6: bool,
    /// Give up after this much virtual time, in seconds.
    #[arg(long, default_value_t = 600.0)]
    pub(crate) max_virtual_s: f64,
    /// Threads that run the nodes (0: one, in sequential turns). With 1 or
    /// more the network runs in lookahead windows as long as the latency:
    /// the same trace for any number of threads; it differs from 0's only
    /// in when a phase notices it is done.
    #[arg(long, default_value_t = 0)]
    pub(crate) threads: usize,
}

impl NetArgs {
    /// The network these arguments describe, with no nodes yet.
    pub(crate) fn network(&self) -> VirtualNet {
        let mut net = VirtualNet::new(self.seed, self.link());
        net.set_threads(self.threads);
        net
    }

    /// The link these arguments describe.
    pub(crate) fn link(&self) -> LinkConfig {
        LinkConfig {
            loss: self.loss,
            latency: Duration::from_secs_f64(self.latency_ms / 1000.0),
            jitter: Duration::from_secs_f64(self.jitter_ms / 1000.0),
            latency_spread: Duration::from_secs_f64(self.latency_spread_ms / 1000.0),
            bandwidth: (self.bandwidth_kbps > 0).then_some(self.bandwidth_kbps * 1000),
            queue: self.queue_bytes,
            ..LinkConfig::clean()
        }
    }
}
