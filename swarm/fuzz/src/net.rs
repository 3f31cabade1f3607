//! A virtual network for the plugin targets: swarm cores exchange datagrams
//! through a lossless link with a fixed delay, on a virtual clock, with no
//! sockets (the idea of `swarm/tests/virtual_clock.rs`). Every loop is
//! bounded, so a swarm that spins is a finding, not a hang.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use swarm::{Keypair, Multiaddr, NoWake, PeerId, SocketBinder, Swarm, SwarmConfig};

/// One-way delay of the link.
pub const LATENCY: Duration = Duration::from_millis(5);

/// Most turns one `run_until` may take before we call the swarm stuck.
const MAX_TURNS: u64 = 2_000_000;

/// Hands out a fixed IP and made-up ports without binding anything.
struct VirtualBinder {
    ip: [u8; 4],
    next_port: u16,
}

impl SocketBinder for VirtualBinder {
    fn bind(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let port = if addr.port() == 0 {
            self.next_port += 1;
            self.next_port
        } else {
            addr.port()
        };
        Ok(SocketAddr::from((self.ip, port)))
    }
}

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

/// Swarms on a lossless link with a virtual clock.
pub struct Net {
    /// The virtual time the network started at.
    pub start: Instant,
    /// The current virtual time.
    pub now: Instant,
    nodes: Vec<(SocketAddr, Swarm)>,
    /// (arrival, sequence) -> (to node, from address, bytes)
    in_flight: BTreeMap<(Instant, u64), (usize, SocketAddr, Vec<u8>)>,
    seq: u64,
    buf: Vec<u8>,
    /// Datagrams delivered so far.
    pub delivered: u64,
}

impl Default for Net {
    fn default() -> Self {
        Self::new()
    }
}

impl Net {
    /// An empty network.
    pub fn new() -> Self {
        let start = Instant::now();
        Self {
            start,
            now: start,
            nodes: Vec::new(),
            in_flight: BTreeMap::new(),
            seq: 0,
            buf: Vec::with_capacity(64 * 1024),
            delivered: 0,
        }
    }

    /// Add a swarm listening on 10.0.0.<index + 1>, port 1000, with its
    /// plugins added by `setup` before it listens; returns its index.
    pub fn add_swarm(&mut self, config: SwarmConfig, setup: impl FnOnce(&mut Swarm)) -> usize {
        let index = self.nodes.len();
        let ip = [10, 0, 0, index as u8 + 1];
        let binder = VirtualBinder {
            ip,
            next_port: 2000,
        };
        let mut swarm =
            Swarm::new(config, Box::new(binder), Arc::new(NoWake), self.now).expect("swarm");
        setup(&mut swarm);
        let addr = SocketAddr::from((ip, 1000));
        let listen = quic_multiaddr(addr);
        swarm.listen(&listen).expect("listen");
        self.nodes.push((addr, swarm));
        index
    }

    /// The listen address of node `n`, with `/p2p/<its id>`.
    pub fn dial_addr(&self, n: usize) -> Multiaddr {
        let peer = self.nodes[n].1.local_peer_id();
        quic_multiaddr(self.nodes[n].0).with(swarm::multiaddr::Protocol::P2p(peer))
    }

    /// The listen address of node `n`, without a PeerId.
    pub fn addr(&self, n: usize) -> Multiaddr {
        quic_multiaddr(self.nodes[n].0)
    }

    /// Node `n`'s swarm.
    pub fn swarm(&mut self, n: usize) -> &mut Swarm {
        &mut self.nodes[n].1
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the network has no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Drain every node's outgoing datagrams onto the link.
    fn flush(&mut self) {
        let now = self.now;
        let mut out = Vec::new();
        for (addr, swarm) in &mut self.nodes {
            swarm.feed_wakeup(now);
            while let Some((_, t)) = swarm.poll_transmit(now, 1, &mut self.buf) {
                out.push((*addr, t.destination, self.buf[..t.size].to_vec()));
            }
        }
        for (from, to, data) in out {
            // Unroutable datagrams (a dial to nowhere) are dropped.
            if let Some(index) = self.nodes.iter().position(|(a, _)| *a == to) {
                self.seq += 1;
                self.in_flight
                    .insert((now + LATENCY, self.seq), (index, from, data));
            }
        }
    }

    fn next_event(&self) -> Option<Instant> {
        let next_packet = self.in_flight.keys().next().map(|k| k.0);
        let next_timer = self
            .nodes
            .iter()
            .filter_map(|(_, s)| s.poll_timeout())
            .min();
        [next_packet, next_timer].into_iter().flatten().min()
    }

    /// Run until `done` holds or `limit` of virtual time passed; returns
    /// whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Net) -> bool) -> bool {
        let deadline = self.now + limit;
        for _ in 0..MAX_TURNS {
            self.flush();
            if done(self) {
                return true;
            }
            let Some(next) = self.next_event() else {
                self.now = self.now.max(deadline);
                return false;
            };
            if next > deadline {
                self.now = self.now.max(deadline);
                return false;
            }
            self.now = self.now.max(next);
            let now = self.now;
            while let Some(entry) = self.in_flight.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let (to, from, data) = entry.remove();
                self.delivered += 1;
                let swarm = &mut self.nodes[to].1;
                swarm.feed_datagram(now, 0, from, None, None, BytesMut::from(&data[..]));
            }
            for (_, swarm) in &mut self.nodes {
                if swarm.poll_timeout().is_some_and(|t| t <= now) {
                    swarm.feed_timeout(now);
                }
            }
        }
        panic!("the network did not settle in {MAX_TURNS} turns: a swarm spins");
    }

    /// Let `d` of virtual time pass with the network running.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(d, |_| false);
    }

    /// Shut every swarm down and run until all connections are gone
    /// (bounded); then the tables must be empty.
    pub fn shutdown_and_check_empty(&mut self) {
        for (_, swarm) in &mut self.nodes {
            swarm.shutdown(0);
        }
        let drained = self.run_until(Duration::from_secs(120), |net| {
            net.nodes.iter().all(|(_, s)| s.is_shut_down())
        });
        for (i, (_, swarm)) in self.nodes.iter().enumerate() {
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
}

/// `/ip4/<ip>/udp/<port>/quic-v1`.
pub fn quic_multiaddr(addr: SocketAddr) -> Multiaddr {
    format!("/ip4/{}/udp/{}/quic-v1", addr.ip(), addr.port())
        .parse()
        .expect("multiaddr")
}
