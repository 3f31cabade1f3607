//! A simulated network under the sans-I/O cores: swarms and raw quinn-proto
//! peers exchange datagrams through a link that can lose (in bursts),
//! delay, reorder, duplicate and corrupt them, all on a virtual clock with
//! a seeded RNG. Every loop is bounded in iterations, virtual time and wall
//! time.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use swarm::{Multiaddr, NoWake, SocketBinder, Swarm, SwarmConfig};

use super::raw::RawPeer;

thread_local! {
    /// The node the harness is calling into on this thread (`usize::MAX`:
    /// the harness itself), for tests that attribute allocations.
    static CURRENT_NODE: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// The node being called on this thread, if any (see `CURRENT_NODE`).
pub fn current_node() -> Option<usize> {
    CURRENT_NODE
        .try_with(|c| c.get())
        .ok()
        .filter(|n| *n != usize::MAX)
}

fn in_node<R>(node: usize, f: impl FnOnce() -> R) -> R {
    let _ = CURRENT_NODE.try_with(|c| c.set(node));
    let r = f();
    let _ = CURRENT_NODE.try_with(|c| c.set(usize::MAX));
    r
}

/// Hands out a fixed IP and made-up ports without binding anything.
pub struct VirtualBinder {
    pub ip: [u8; 4],
    pub next_port: u16,
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

/// What the link does to each datagram, in both directions.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// Probability that a datagram starts a loss event.
    pub loss: f64,
    /// Datagrams dropped per loss event (the first one included), on the
    /// same direction of the same pair of nodes. 1 means independent loss.
    pub burst: u32,
    /// Probability that a delivered datagram is delivered twice (the copy
    /// with its own delay).
    pub duplicate: f64,
    /// Probability that a delivered datagram has one byte flipped.
    pub corrupt: f64,
    /// One-way delay.
    pub latency: Duration,
    /// Extra random delay in `[0, jitter)`: reorders datagrams.
    pub jitter: Duration,
}

impl LinkConfig {
    /// No loss, 5 ms each way, no jitter.
    pub fn clean() -> Self {
        Self {
            loss: 0.0,
            burst: 1,
            duplicate: 0.0,
            corrupt: 0.0,
            latency: Duration::from_millis(5),
            jitter: Duration::ZERO,
        }
    }
}

/// Counters of what the link did.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinkStats {
    pub sent: u64,
    pub dropped: u64,
    pub filtered: u64,
    pub dark: u64,
    pub duplicated: u64,
    pub corrupted: u64,
    pub delivered: u64,
    pub unroutable: u64,
    pub bytes_delivered: u64,
}

/// A node on the network.
pub enum Node {
    Swarm(Box<Swarm>),
    Raw(Box<RawPeer>),
}

/// Decides, before the link model, whether a datagram `from -> to` passes.
pub type Filter = Box<dyn FnMut(SocketAddr, SocketAddr, &[u8]) -> bool>;

/// One datagram's fate: (virtual time, from, to, size, fate).
pub type TraceEntry = (Duration, SocketAddr, SocketAddr, usize, &'static str);

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `done` returned true.
    Done,
    /// The virtual time limit passed first.
    VirtualTimeout,
    /// Nothing was in flight and no node had a timer.
    Quiet,
}

pub struct Net {
    pub start: Instant,
    pub now: Instant,
    nodes: Vec<(SocketAddr, Node)>,
    /// (arrival, sequence) -> (to node, from address, bytes)
    in_flight: BTreeMap<(Instant, u64), (usize, SocketAddr, Vec<u8>)>,
    seq: u64,
    rng: StdRng,
    pub link: LinkConfig,
    pub stats: LinkStats,
    burst_left: HashMap<(SocketAddr, SocketAddr), u32>,
    /// While true, every datagram is lost (the link is dark).
    pub dark: bool,
    pub filter: Option<Filter>,
    /// When set, every datagram's fate is recorded: (virtual time, from,
    /// to, size, fate).
    pub trace: Option<Vec<TraceEntry>>,
    /// Wall-clock guard against a test that would spin for real.
    wall_limit: Duration,
    wall_start: std::time::Instant,
    buf: Vec<u8>,
}

impl Net {
    pub fn new(seed: u64, link: LinkConfig) -> Self {
        let start = Instant::now();
        Self {
            start,
            now: start,
            nodes: Vec::new(),
            in_flight: BTreeMap::new(),
            seq: 0,
            rng: StdRng::seed_from_u64(seed),
            link,
            stats: LinkStats::default(),
            burst_left: HashMap::new(),
            dark: false,
            filter: None,
            trace: None,
            wall_limit: Duration::from_secs(240),
            wall_start: std::time::Instant::now(),
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Add a swarm listening on `ip`, port 1000; returns its node index.
    pub fn add_swarm(&mut self, config: SwarmConfig, ip: [u8; 4]) -> usize {
        let swarm = Swarm::new(
            config,
            Box::new(VirtualBinder {
                ip,
                next_port: 2000,
            }),
            Arc::new(NoWake),
            self.now,
        )
        .expect("swarm");
        let mut swarm = Box::new(swarm);
        let addr = format!(
            "/ip4/{}.{}.{}.{}/udp/1000/quic-v1",
            ip[0], ip[1], ip[2], ip[3]
        );
        swarm.listen(&addr.parse().unwrap()).expect("listen");
        self.nodes
            .push((SocketAddr::from((ip, 1000)), Node::Swarm(swarm)));
        self.nodes.len() - 1
    }

    /// Add a raw quinn-proto peer at `addr`; returns its node index.
    pub fn add_raw(&mut self, peer: RawPeer) -> usize {
        self.nodes.push((peer.addr, Node::Raw(Box::new(peer))));
        self.nodes.len() - 1
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn addr(&self, node: usize) -> SocketAddr {
        self.nodes[node].0
    }

    /// The node's listen address as a multiaddr.
    pub fn multiaddr(&self, node: usize) -> Multiaddr {
        let a = self.addr(node);
        format!("/ip4/{}/udp/{}/quic-v1", a.ip(), a.port())
            .parse()
            .unwrap()
    }

    pub fn swarm(&mut self, node: usize) -> &mut Swarm {
        match &mut self.nodes[node].1 {
            Node::Swarm(s) => s,
            Node::Raw(_) => panic!("node {node} is not a swarm"),
        }
    }

    pub fn raw(&mut self, node: usize) -> &mut RawPeer {
        match &mut self.nodes[node].1 {
            Node::Raw(r) => r,
            Node::Swarm(_) => panic!("node {node} is not a raw peer"),
        }
    }

    /// Deliver `data` to `node` as if `from` had sent it (no link model).
    pub fn inject(&mut self, node: usize, from: SocketAddr, data: &[u8]) {
        let now = self.now;
        in_node(node, || match &mut self.nodes[node].1 {
            Node::Swarm(s) => s.feed_datagram(now, 0, from, None, None, BytesMut::from(data)),
            Node::Raw(r) => r.handle_datagram(now, from, data),
        })
    }

    fn note(&mut self, from: SocketAddr, to: SocketAddr, size: usize, fate: &'static str) {
        let at = self.now - self.start;
        if let Some(t) = &mut self.trace {
            t.push((at, from, to, size, fate));
        }
    }

    /// Put one datagram on the link.
    fn send(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        let size = data.len();
        let fate = self.link_model(from, to, data);
        if self.trace.is_some() {
            self.note(from, to, size, fate);
        }
    }

    fn link_model(&mut self, from: SocketAddr, to: SocketAddr, mut data: Vec<u8>) -> &'static str {
        self.stats.sent += 1;
        let Some(index) = self.nodes.iter().position(|(a, _)| *a == to) else {
            self.stats.unroutable += 1;
            return "unroutable";
        };
        if let Some(filter) = &mut self.filter
            && !filter(from, to, &data)
        {
            self.stats.filtered += 1;
            return "filtered";
        }
        if self.dark {
            self.stats.dark += 1;
            return "dark";
        }
        let left = self.burst_left.entry((from, to)).or_insert(0);
        if *left > 0 {
            *left -= 1;
            self.stats.dropped += 1;
            return "lost";
        }
        if self.link.loss > 0.0 && self.rng.random::<f64>() < self.link.loss {
            *left = self.link.burst.saturating_sub(1);
            self.stats.dropped += 1;
            return "lost";
        }
        if self.link.corrupt > 0.0
            && self.rng.random::<f64>() < self.link.corrupt
            && !data.is_empty()
        {
            let at = self.rng.random_range(0..data.len());
            let flip = self.rng.random_range(1..=255u8);
            data[at] ^= flip;
            self.stats.corrupted += 1;
        }
        let copies = if self.link.duplicate > 0.0 && self.rng.random::<f64>() < self.link.duplicate
        {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for copy in 0..copies {
            let jitter = if self.link.jitter.is_zero() {
                Duration::ZERO
            } else {
                self.link.jitter.mul_f64(self.rng.random::<f64>())
            };
            self.seq += 1;
            let payload = if copy + 1 == copies {
                std::mem::take(&mut data)
            } else {
                data.clone()
            };
            self.in_flight.insert(
                (self.now + self.link.latency + jitter, self.seq),
                (index, from, payload),
            );
        }
        "sent"
    }

    /// Drain every node's outgoing datagrams onto the link.
    fn flush(&mut self) {
        let now = self.now;
        let mut out: Vec<(SocketAddr, SocketAddr, Vec<u8>)> = Vec::new();
        for (i, (addr, node)) in self.nodes.iter_mut().enumerate() {
            let buf = &mut self.buf;
            in_node(i, || match node {
                Node::Swarm(s) => {
                    s.feed_wakeup(now);
                    while let Some((_, t)) = s.poll_transmit(now, 1, buf) {
                        out.push((*addr, t.destination, buf[..t.size].to_vec()));
                    }
                }
                Node::Raw(r) => {
                    for (to, data) in r.poll_transmit(now) {
                        out.push((*addr, to, data));
                    }
                }
            });
        }
        for (from, to, data) in out {
            self.send(from, to, data);
        }
    }

    fn next_event(&mut self) -> Option<Instant> {
        let next_packet = self.in_flight.keys().next().map(|k| k.0);
        let next_timer = self
            .nodes
            .iter_mut()
            .filter_map(|(_, n)| match n {
                Node::Swarm(s) => s.poll_timeout(),
                Node::Raw(r) => r.poll_timeout(),
            })
            .min();
        [next_packet, next_timer].into_iter().flatten().min()
    }

    /// Run until `done` holds, at most `limit` more virtual time.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&mut Net) -> bool,
    ) -> Outcome {
        let deadline = self.now + limit;
        for _ in 0..20_000_000u64 {
            self.flush();
            if done(self) {
                return Outcome::Done;
            }
            assert!(
                self.wall_start.elapsed() < self.wall_limit,
                "wall-clock guard: test ran {:?}",
                self.wall_start.elapsed()
            );
            let Some(next) = self.next_event() else {
                return Outcome::Quiet;
            };
            if next > deadline {
                self.now = self.now.max(deadline);
                return Outcome::VirtualTimeout;
            }
            self.now = self.now.max(next);
            let now = self.now;
            while let Some(entry) = self.in_flight.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let (to, from, data) = entry.remove();
                self.stats.delivered += 1;
                self.stats.bytes_delivered += data.len() as u64;
                in_node(to, || match &mut self.nodes[to].1 {
                    Node::Swarm(s) => {
                        s.feed_datagram(now, 0, from, None, None, BytesMut::from(&data[..]))
                    }
                    Node::Raw(r) => r.handle_datagram(now, from, &data),
                });
            }
            for (i, (_, node)) in self.nodes.iter_mut().enumerate() {
                in_node(i, || match node {
                    Node::Swarm(s) => {
                        if s.poll_timeout().is_some_and(|t| t <= now) {
                            s.feed_timeout(now);
                        }
                    }
                    Node::Raw(r) => {
                        if r.poll_timeout().is_some_and(|t| t <= now) {
                            r.handle_timeout(now);
                        }
                    }
                });
            }
        }
        panic!("run_until: iteration bound reached");
    }

    /// Let `d` of virtual time pass with the network running.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        let outcome = self.run_until(d, |net| net.now >= until);
        if outcome == Outcome::Quiet {
            self.now = until;
        }
    }
}
