//! A virtual network: swarm cores (and other sans-I/O nodes) exchanging
//! datagrams through a simulated link on a virtual clock, with no sockets
//! and no threads. Tests, the fuzz targets and simulations drive swarms
//! with it.
//!
//! # Nodes
//!
//! A node is anything that implements [`Node`]: it takes datagrams and
//! timeouts, and produces datagrams. [`Swarm`] implements it here; a test
//! can add its own (say a raw QUIC endpoint that misbehaves). Nodes are
//! addressed by their index (the order they were added in) and each has one
//! UDP address; a datagram is routed to the node whose address is its
//! destination, and is counted as unroutable if there is none.
//!
//! # The driving loop
//!
//! [`VirtualNet::run_until`] repeats one *turn* until the caller's `done`
//! condition holds, the virtual time limit would pass, or nothing is left to
//! happen:
//!
//! 1. **Flush.** Every node, in index order, drains its outgoing datagrams
//!    ([`Node::poll_transmits`]; a swarm is fed a wake-up first, see
//!    below). Each datagram goes through the network's filter, the dark
//!    switch and the [`LinkModel`], which decides whether it is lost and
//!    when each copy arrives.
//! 2. **Check.** `done` is called (after the flush, so it sees what the
//!    nodes did in the last turn and any API call the caller made before).
//! 3. **Jump.** The next event is the earliest of the next arrival and every
//!    node's [`Node::poll_timeout`]. Virtual time jumps straight to it: no
//!    time passes in between, so a run that waits for a 30 s idle timeout
//!    costs one turn, not 30 s.
//! 4. **Deliver.** Every datagram due by then is fed to its node, in arrival
//!    order (ties in the order they were sent).
//! 5. **Fire.** Every node whose timeout is due is fed it.
//!
//! Nothing else advances the clock: between two runs, time stands still, so
//! a caller can call into a node (dial, open a stream) "at" the current
//! virtual time with [`VirtualNet::now`].
//!
//! Every run is bounded in turns ([`VirtualNet::max_turns`]; a node that
//! keeps asking for a timeout in the past would otherwise spin forever) and,
//! if asked, in wall time ([`VirtualNet::wall_limit`]).
//!
//! # Wake-ups
//!
//! Swarms added here get [`NoWake`]: the network cannot learn when a
//! [`crate::SwarmHandle`] command or a detached stream needs the swarm, so
//! step 1 feeds every swarm a wake-up before polling it, every turn.
//!
//! # Determinism
//!
//! The network's part of a run is the same for the same seed, nodes and
//! calls: the link's randomness comes from one seeded RNG, nodes are
//! visited in index order, and nothing reads the real clock after creation
//! (virtual time starts at the real time the network was created; the
//! optional wall-clock guard only ever panics). The swarms draw their own
//! randomness (TLS keys, connection ids), which the network does not
//! control: what the link does to a datagram is reproducible, its bytes may
//! not be.
mod link;
mod node;

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use link::{LinkConfig, LinkModel, LinkStats, LossyLink};
use node::in_node;
pub use node::{Node, VirtualBinder, current_node};

use crate::{Multiaddr, NoWake, PeerId, Swarm, SwarmConfig};

/// The UDP port every swarm added with [`VirtualNet::add_swarm`] listens on.
pub const LISTEN_PORT: u16 = 1000;

/// The default of [`VirtualNet::max_turns`].
pub const DEFAULT_MAX_TURNS: u64 = 20_000_000;

/// What became of one datagram a node sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// No node has the destination address.
    Unroutable,
    /// [`VirtualNet::filter`] refused it.
    Filtered,
    /// [`VirtualNet::dark`] was set.
    Dark,
    /// The link model lost it.
    Lost,
    /// The link model will deliver it (maybe changed, maybe twice).
    Sent,
}

/// One datagram's fate, as recorded in [`VirtualNet::trace`].
#[derive(Clone, Copy, Debug)]
pub struct TraceEntry {
    /// Virtual time since the start when it was sent.
    pub at: Duration,
    /// The sender's address.
    pub from: SocketAddr,
    /// The destination address.
    pub to: SocketAddr,
    /// Its size in bytes.
    pub size: usize,
    /// What became of it.
    pub fate: Fate,
}

/// Decides, before the link model, whether a datagram `from -> to` (by
/// address) with these bytes may pass.
pub type Filter = Box<dyn FnMut(SocketAddr, SocketAddr, &[u8]) -> bool>;

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `done` returned true.
    Done,
    /// The next event lay beyond the virtual time limit; the clock stopped
    /// at the limit.
    VirtualTimeout,
    /// Nothing was in flight and no node had a timeout: nothing will ever
    /// happen without a call from outside. The clock stays at the last
    /// event.
    Quiet,
}

impl Outcome {
    /// Whether `done` held.
    pub fn is_done(self) -> bool {
        self == Outcome::Done
    }
}

/// A datagram on its way: (to node, from address, bytes).
type InFlight = (usize, SocketAddr, Vec<u8>);

/// Nodes on a simulated network with a virtual clock; see the module docs.
pub struct VirtualNet {
    start: Instant,
    now: Instant,
    nodes: Vec<(SocketAddr, Box<dyn Node>)>,
    /// Node index by address, for routing.
    routes: HashMap<SocketAddr, usize>,
    /// Keyed by (arrival, sequence number): delivered in arrival order,
    /// ties in the order they were sent.
    in_flight: BTreeMap<(Instant, u64), InFlight>,
    seq: u64,
    link: Box<dyn LinkModel>,
    stats: LinkStats,
    /// While true, every datagram is lost (the link is dark), before the
    /// link model sees it.
    pub dark: bool,
    /// When set, decides before the link model whether a datagram passes
    /// (a partition, a peer that goes silent after N datagrams).
    pub filter: Option<Filter>,
    /// When set, every datagram's fate is recorded here.
    pub trace: Option<Vec<TraceEntry>>,
    /// Most turns one run may take before the network panics: a node that
    /// spins (asks for a timeout that never moves time on) is a bug.
    pub max_turns: u64,
    /// When set, a run panics once this much wall time has passed since the
    /// network was created: a guard for tests that would spin for real.
    pub wall_limit: Option<Duration>,
    wall_start: Instant,
    /// Scratch space for [`Node::poll_transmits`].
    buf: Vec<u8>,
    /// Reused between flushes: what the nodes sent, and what the link made
    /// of one datagram.
    outgoing: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    sent: Vec<(SocketAddr, Vec<u8>)>,
    deliveries: Vec<(Duration, Vec<u8>)>,
}

impl VirtualNet {
    /// An empty network whose link is a [`LossyLink`] doing what `link`
    /// says, with randomness from `seed`.
    pub fn new(seed: u64, link: LinkConfig) -> Self {
        Self::with_link(Box::new(LossyLink::new(link, seed)))
    }

    /// An empty network with its own link model.
    pub fn with_link(link: Box<dyn LinkModel>) -> Self {
        // Virtual time is an `Instant` (what the swarm takes), starting at
        // the real time of creation and moved on only by the runs.
        let start = Instant::now();
        Self {
            start,
            now: start,
            nodes: Vec::new(),
            routes: HashMap::new(),
            in_flight: BTreeMap::new(),
            seq: 0,
            link,
            stats: LinkStats::default(),
            dark: false,
            filter: None,
            trace: None,
            max_turns: DEFAULT_MAX_TURNS,
            wall_limit: None,
            wall_start: start,
            buf: Vec::with_capacity(64 * 1024),
            outgoing: Vec::new(),
            sent: Vec::new(),
            deliveries: Vec::new(),
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The virtual time the network started at.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// What the network did with datagrams so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Add a node at `addr`; returns its index.
    ///
    /// # Panics
    ///
    /// If another node has `addr`.
    pub fn add_node(&mut self, addr: SocketAddr, node: Box<dyn Node>) -> usize {
        let index = self.nodes.len();
        let previous = self.routes.insert(addr, index);
        assert!(previous.is_none(), "two nodes at {addr}");
        self.nodes.push((addr, node));
        index
    }

    /// Add a swarm listening on `ip`, port [`LISTEN_PORT`]; returns its
    /// index. Plugins can be added afterwards with [`VirtualNet::swarm`].
    pub fn add_swarm(&mut self, config: SwarmConfig, ip: impl Into<IpAddr>) -> usize {
        self.add_swarm_with(config, ip, |_| {})
    }

    /// Add a swarm listening on `ip`, port [`LISTEN_PORT`], after `setup`
    /// ran on it (to add plugins that must see the listen address appear);
    /// returns its index.
    pub fn add_swarm_with(
        &mut self,
        config: SwarmConfig,
        ip: impl Into<IpAddr>,
        setup: impl FnOnce(&mut Swarm),
    ) -> usize {
        let ip = ip.into();
        let binder = VirtualBinder {
            ip,
            next_port: 2000,
        };
        let mut swarm =
            Swarm::new(config, Box::new(binder), Arc::new(NoWake), self.now).expect("swarm");
        setup(&mut swarm);
        let addr = SocketAddr::new(ip, LISTEN_PORT);
        swarm
            .listen(&crate::address::quic_multiaddr(addr))
            .expect("listen");
        self.add_node(addr, Box::new(swarm))
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the network has no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `n`'s address.
    pub fn addr(&self, n: usize) -> SocketAddr {
        self.nodes[n].0
    }

    /// The index of the node at `addr`, if any.
    pub fn node_at(&self, addr: SocketAddr) -> Option<usize> {
        self.routes.get(&addr).copied()
    }

    /// Node `n`'s address as a QUIC multiaddr.
    pub fn multiaddr(&self, n: usize) -> Multiaddr {
        crate::address::quic_multiaddr(self.addr(n))
    }

    /// Swarm `n`'s address as a QUIC multiaddr with `/p2p/<its PeerId>`:
    /// what another swarm dials.
    ///
    /// # Panics
    ///
    /// If node `n` is not a [`Swarm`].
    pub fn dial_addr(&self, n: usize) -> Multiaddr {
        let node: &dyn Any = &*self.nodes[n].1;
        let peer: PeerId = node
            .downcast_ref::<Swarm>()
            .unwrap_or_else(|| panic!("node {n} is not a swarm"))
            .local_peer_id();
        self.multiaddr(n)
            .with(crate::multiaddr::Protocol::P2p(peer))
    }

    /// Node `n` as a `T`, if it is one.
    pub fn node_mut<T: Node>(&mut self, n: usize) -> Option<&mut T> {
        let node: &mut dyn Any = &mut *self.nodes[n].1;
        node.downcast_mut::<T>()
    }

    /// Node `n`'s swarm.
    ///
    /// # Panics
    ///
    /// If node `n` is not a [`Swarm`].
    pub fn swarm(&mut self, n: usize) -> &mut Swarm {
        self.node_mut::<Swarm>(n)
            .unwrap_or_else(|| panic!("node {n} is not a swarm"))
    }

    /// Feed `data` to node `n` now, as if `from` had sent it, bypassing the
    /// filter and the link (it is not counted in the stats).
    pub fn inject(&mut self, n: usize, from: SocketAddr, data: &[u8]) {
        let now = self.now;
        let node = &mut self.nodes[n].1;
        in_node(n, || node.feed_datagram(now, from, data));
    }

    /// Put one datagram on the network: route, filter, dark switch, link.
    fn send(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        let size = data.len();
        let fate = self.route(from, to, data);
        if let Some(trace) = &mut self.trace {
            trace.push(TraceEntry {
                at: self.now - self.start,
                from,
                to,
                size,
                fate,
            });
        }
    }

    fn route(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) -> Fate {
        self.stats.sent += 1;
        let Some(&to_index) = self.routes.get(&to) else {
            self.stats.unroutable += 1;
            return Fate::Unroutable;
        };
        if let Some(filter) = &mut self.filter
            && !filter(from, to, &data)
        {
            self.stats.filtered += 1;
            return Fate::Filtered;
        }
        if self.dark {
            self.stats.dark += 1;
            return Fate::Dark;
        }
        // Every sender is a node (datagrams only come from `flush`).
        let from_index = self.routes[&from];
        let mut deliveries = std::mem::take(&mut self.deliveries);
        self.link.carry(
            self.now,
            from_index,
            to_index,
            data,
            &mut deliveries,
            &mut self.stats,
        );
        let fate = if deliveries.is_empty() {
            Fate::Lost
        } else {
            Fate::Sent
        };
        for (delay, data) in deliveries.drain(..) {
            self.seq += 1;
            self.in_flight
                .insert((self.now + delay, self.seq), (to_index, from, data));
        }
        self.deliveries = deliveries;
        fate
    }

    /// Step 1 of a turn: drain every node's outgoing datagrams onto the
    /// network.
    fn flush(&mut self) {
        let now = self.now;
        let mut out = std::mem::take(&mut self.outgoing);
        // Reused, so that a test counting a node's allocations does not see
        // the network's own buffers grow inside that node's calls.
        let mut sent = std::mem::take(&mut self.sent);
        for (i, (addr, node)) in self.nodes.iter_mut().enumerate() {
            let buf = &mut self.buf;
            in_node(i, || node.poll_transmits(now, buf, &mut sent));
            out.extend(sent.drain(..).map(|(to, data)| (*addr, to, data)));
        }
        for (from, to, data) in out.drain(..) {
            self.send(from, to, data);
        }
        self.outgoing = out;
        self.sent = sent;
    }

    /// The earliest of the next arrival and every node's timeout.
    fn next_event(&mut self) -> Option<Instant> {
        let next_arrival = self.in_flight.keys().next().map(|k| k.0);
        let next_timeout = self
            .nodes
            .iter_mut()
            .filter_map(|(_, n)| n.poll_timeout())
            .min();
        next_arrival.into_iter().chain(next_timeout).min()
    }

    /// Run turns (see the module docs) until `done` holds, at most `limit`
    /// more virtual time.
    ///
    /// # Panics
    ///
    /// After [`VirtualNet::max_turns`] turns, or past the
    /// [`VirtualNet::wall_limit`].
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&mut VirtualNet) -> bool,
    ) -> Outcome {
        let deadline = self.now + limit;
        for _ in 0..self.max_turns {
            self.flush();
            if done(self) {
                return Outcome::Done;
            }
            if let Some(wall) = self.wall_limit {
                let ran = self.wall_start.elapsed();
                assert!(ran < wall, "wall-clock guard: the network ran {ran:?}");
            }
            let Some(next) = self.next_event() else {
                return Outcome::Quiet;
            };
            if next > deadline {
                self.now = self.now.max(deadline);
                return Outcome::VirtualTimeout;
            }
            // `max`: a timeout in the past does not move the clock back.
            self.now = self.now.max(next);
            let now = self.now;
            while let Some(entry) = self.in_flight.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let (to, from, data) = entry.remove();
                self.stats.delivered += 1;
                self.stats.bytes_delivered += data.len() as u64;
                let node = &mut self.nodes[to].1;
                in_node(to, || node.feed_datagram(now, from, &data));
            }
            for (i, (_, node)) in self.nodes.iter_mut().enumerate() {
                in_node(i, || {
                    if node.poll_timeout().is_some_and(|t| t <= now) {
                        node.feed_timeout(now);
                    }
                });
            }
        }
        panic!(
            "the network did not settle in {} turns: a node spins",
            self.max_turns
        );
    }

    /// Let `d` of virtual time pass with the network running; the clock
    /// ends at exactly `d` later.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(d, |net| net.now >= until);
        // A quiet network stops the clock early; the time passes anyway.
        self.now = self.now.max(until);
    }

    /// Shut every swarm down with `code` and run until each is shut down
    /// (its connections closed and drained), at most `limit`.
    pub fn shutdown_swarms(&mut self, code: u32, limit: Duration) -> Outcome {
        let swarms: Vec<usize> = (0..self.len())
            .filter(|&n| self.node_mut::<Swarm>(n).is_some())
            .collect();
        for &n in &swarms {
            self.swarm(n).shutdown(code);
        }
        self.run_until(limit, |net| {
            swarms.iter().all(|&n| net.swarm(n).is_shut_down())
        })
    }
}
