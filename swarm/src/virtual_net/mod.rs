//! A virtual network: swarm cores (and other sans-I/O nodes) exchanging
//! datagrams through a simulated link on a virtual clock, with no sockets.
//! Tests, the fuzz targets and simulations drive swarms with it.
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
//! With [`VirtualNet::set_threads`], steps 4, 5 and 1 of all the turns
//! within the link's smallest delay run node by node on several threads
//! (a *lookahead window*: nothing sent in it can arrive in it); what the
//! nodes sent is then put on the network in the order the turns would have
//! sent it, so the run is the same, except that `done` is checked once per
//! window.
//!
//! Nothing else advances the clock: between two runs, time stands still, so
//! a caller can call into a node (dial, open a stream) "at" the current
//! virtual time with [`VirtualNet::now`].
//!
//! Every run is bounded in turns ([`VirtualNet::max_turns`]; a node that
//! keeps asking for a timeout in the past would otherwise spin forever) and,
//! if asked, in wall time ([`VirtualNet::wall_limit`]).
//!
//! # Which nodes are polled
//!
//! Only nodes with something to do: those that got a datagram, whose
//! timeout is due (a heap of timeouts), that the caller reached through
//! [`VirtualNet::swarm`] / [`VirtualNet::node_mut`], or that another thread
//! woke (each swarm's waker marks its node: a [`crate::SwarmHandle`]
//! command, a detached stream). A turn therefore costs what happens in it,
//! not the number of nodes.
//!
//! # Partitions, dark nodes, churn
//!
//! [`VirtualNet::isolate`] cuts a set of nodes off from the rest until
//! [`VirtualNet::heal`]; [`VirtualNet::set_node_dark`] silences one node;
//! [`VirtualNet::remove_node`] drops a node with no goodbye, and nodes may
//! be added at any time.
//!
//! # Determinism
//!
//! The network's part of a run is the same for the same seed, nodes and
//! calls: the link's randomness comes from one seeded RNG, nodes are
//! visited in index order, and nothing reads the real clock after creation
//! (virtual time starts at the real time the network was created; the
//! optional wall-clock guard only ever panics). Give each swarm a seed
//! ([`SwarmConfig::seed`]) and a key derived from it, and the swarms'
//! own randomness (connection ids, certificate, plugins' `Context::rng`)
//! replays too; what stays with the OS inside TLS has fixed sizes and
//! cannot change a datagram's fate or timing. Then the same program gives
//! the same [`VirtualNet::trace_hash`] over every swarm event (which node,
//! what, at what virtual time). (One real-clock read remains inside TLS:
//! the validity dates of a peer's certificate are checked against the
//! system time; libp2p certificates are valid for years, so it cannot
//! change a run.)
//!
//! # What the simulator caches
//!
//! Every connection runs the real QUIC and TLS handshake: key exchange,
//! the CertificateVerify signature over that handshake's transcript, the
//! PeerId check. The one thing shared between swarms is the verification
//! of a certificate's own signatures (its self-signature and the host
//! key's signature over it), which depends only on the certificate's
//! bytes: all swarms of a network share one [`CertificateCache`], so each
//! node's certificate is verified once per run instead of once per
//! connection. A swarm added with its own
//! [`SwarmConfig::certificate_cache`] keeps it.
//!
//! One thing cannot be replayed: a stream or packet flow handed to a
//! thread (`Context::detach_stream`, `SwarmHandle::open_stream`,
//! `Context::detach_packet_flow`). It works here (its waker marks the
//! node), but when the thread reads and writes depends on the real
//! scheduler, so a run that uses one is not deterministic. The network
//! says so: the first time a node does it, a warning is logged and
//! [`VirtualNet::replayable`] turns false for the rest of the run (the
//! `netsim` summary carries it).
mod link;
mod node;
mod run;
mod window;

use std::any::Any;
use std::cmp::Reverse;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hash::Hasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use link::{LinkConfig, LinkModel, LinkStats, LossyLink};
use node::in_node;
pub use node::{Node, VirtualBinder, current_node};

use crate::{CertificateCache, Multiaddr, PeerId, Swarm, SwarmConfig, SwarmEvent, Wake};

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
    /// [`VirtualNet::dark`] was set, or the sender or receiver is dark
    /// ([`VirtualNet::set_node_dark`]).
    Dark,
    /// Sender and receiver are on different sides of a partition
    /// ([`VirtualNet::isolate`]).
    Partitioned,
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

/// Nodes that other threads woke (a [`crate::SwarmHandle`] command, a
/// detached stream): polled on the next turn.
type Woken = Arc<Mutex<Vec<usize>>>;

/// The waker a swarm on the network gets: it marks the node for polling.
struct MarkWoken {
    node: usize,
    woken: Woken,
}

impl Wake for MarkWoken {
    fn wake(&self) {
        self.woken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(self.node);
    }
}

/// Feeds formatted text to a hasher as it is written. SipHash hashes a
/// byte stream, so text written in pieces hashes as the whole would.
struct HashWriter<'a>(&'a mut DefaultHasher);

impl std::fmt::Write for HashWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}

/// One node's place on the network.
struct Slot {
    addr: SocketAddr,
    node: Box<dyn Node>,
    /// The node's timeout as last read (the heap may hold older entries).
    timeout: Option<Instant>,
    /// Marked for polling this turn.
    dirty: bool,
    /// Every datagram to or from it is lost.
    dark: bool,
    /// Its side of a partition: datagrams pass only within a side.
    side: u32,
}

/// One entry of the event trace ([`VirtualNet::event_trace`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracedEvent {
    /// Virtual time since the start.
    pub at: Duration,
    /// The node whose swarm published it.
    pub node: usize,
    /// The event, as its `Debug` text.
    pub event: String,
}

/// Nodes on a simulated network with a virtual clock; see the module docs.
pub struct VirtualNet {
    start: Instant,
    now: Instant,
    /// By index; a removed node leaves `None` (indices stay stable).
    slots: Vec<Option<Slot>>,
    /// Node index by address, for routing.
    routes: HashMap<SocketAddr, usize>,
    /// Keyed by (arrival, sequence number): delivered in arrival order,
    /// ties in the order they were sent.
    in_flight: BTreeMap<(Instant, u64), InFlight>,
    seq: u64,
    link: Box<dyn LinkModel>,
    stats: LinkStats,
    /// Nodes' timeouts, earliest first; an entry is current only while it
    /// equals its node's `timeout`.
    timeouts: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Nodes marked for polling, in the order they were marked.
    dirty: Vec<usize>,
    woken: Woken,
    next_side: u32,
    /// Hash over every traced event so far (see [`VirtualNet::trace_hash`]).
    hasher: DefaultHasher,
    /// While true, every datagram is lost (the link is dark), before the
    /// link model sees it.
    pub dark: bool,
    /// When set, decides before the link model whether a datagram passes
    /// (a partition, a peer that goes silent after N datagrams).
    pub filter: Option<Filter>,
    /// When set, every datagram's fate is recorded here.
    pub trace: Option<Vec<TraceEntry>>,
    /// When set, every swarm event is recorded here (the hash covers them
    /// either way).
    pub event_trace: Option<Vec<TracedEvent>>,
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
    events: Vec<SwarmEvent>,
    deliveries: Vec<(Duration, Vec<u8>)>,
    candidates: Vec<usize>,
    /// Verified peer certificates, shared by every swarm added here.
    certificates: CertificateCache,
    /// Some node handed work to a thread (see [`VirtualNet::replayable`]).
    uses_threads: bool,
    /// Threads that run lookahead windows (0: sequential turns; see
    /// [`VirtualNet::set_threads`]).
    threads: usize,
}

/// How many certificates the swarms of one network share (see
/// [`CertificateCache`]): one per node for networks far bigger than any
/// run so far, at about half a KiB each.
const SHARED_CERTIFICATES: usize = 1 << 17;

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
            slots: Vec::new(),
            routes: HashMap::new(),
            in_flight: BTreeMap::new(),
            seq: 0,
            link,
            stats: LinkStats::default(),
            timeouts: BinaryHeap::new(),
            dirty: Vec::new(),
            woken: Woken::default(),
            next_side: 1,
            hasher: DefaultHasher::new(),
            dark: false,
            filter: None,
            trace: None,
            event_trace: None,
            max_turns: DEFAULT_MAX_TURNS,
            wall_limit: None,
            wall_start: start,
            buf: Vec::with_capacity(64 * 1024),
            outgoing: Vec::new(),
            sent: Vec::new(),
            events: Vec::new(),
            deliveries: Vec::new(),
            candidates: Vec::new(),
            certificates: CertificateCache::new(SHARED_CERTIFICATES),
            uses_threads: false,
            threads: 0,
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

    /// Whether this run can be replayed: false once any node handed a
    /// stream or packet flow to a thread (see the module docs), whose
    /// timing comes from the real scheduler.
    pub fn replayable(&self) -> bool {
        !self.uses_threads
    }

    /// A hash over every swarm event so far: which node, what, at what
    /// virtual time. Two runs of the same program with the same seeds
    /// (network and swarms, see [`SwarmConfig::seed`]) give the same hash,
    /// as long as the run is [`replayable`](VirtualNet::replayable).
    pub fn trace_hash(&self) -> u64 {
        self.hasher.finish()
    }

    /// Add a node at `addr`; returns its index.
    ///
    /// # Panics
    ///
    /// If another node has `addr`.
    pub fn add_node(&mut self, addr: SocketAddr, node: Box<dyn Node>) -> usize {
        self.add_slot(addr, node)
    }

    fn add_slot(&mut self, addr: SocketAddr, node: Box<dyn Node>) -> usize {
        let index = self.slots.len();
        let previous = self.routes.insert(addr, index);
        assert!(previous.is_none(), "two nodes at {addr}");
        self.slots.push(Some(Slot {
            addr,
            node,
            timeout: None,
            dirty: false,
            dark: false,
            side: 0,
        }));
        self.mark(index);
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
        mut config: SwarmConfig,
        ip: impl Into<IpAddr>,
        setup: impl FnOnce(&mut Swarm),
    ) -> usize {
        let ip = ip.into();
        config
            .certificate_cache
            .get_or_insert_with(|| self.certificates.clone());
        let binder = VirtualBinder {
            ip,
            next_port: 2000,
        };
        let waker = Arc::new(MarkWoken {
            node: self.slots.len(),
            woken: self.woken.clone(),
        });
        let mut swarm = Swarm::new(config, Box::new(binder), waker, self.now).expect("swarm");
        // Recording from the start, so the trace sees the listen address
        // too; drained at every flush of the node.
        swarm.record_events();
        // Started now, so that plugins added by `setup` start at once.
        swarm.feed_wakeup(self.now);
        setup(&mut swarm);
        let addr = SocketAddr::new(ip, LISTEN_PORT);
        swarm
            .listen(&crate::address::quic_multiaddr(addr))
            .expect("listen");
        self.add_slot(addr, Box::new(swarm))
    }

    /// Remove node `n` (churn): it is dropped at once, with no goodbye, as a
    /// host that lost power; datagrams to its address are unroutable from
    /// now on. Its index is not reused.
    pub fn remove_node(&mut self, n: usize) {
        if let Some(slot) = self.slots.get_mut(n).and_then(Option::take) {
            self.routes.remove(&slot.addr);
        }
    }

    /// Whether node `n` is on the network (added and not removed).
    pub fn contains(&self, n: usize) -> bool {
        self.slots.get(n).is_some_and(Option::is_some)
    }

    /// Make node `n` dark (every datagram to or from it is lost) or light.
    pub fn set_node_dark(&mut self, n: usize, dark: bool) {
        self.slot_mut(n).dark = dark;
    }

    /// Cut `nodes` off from every other node: datagrams pass only among
    /// them, and among the rest. Each call makes a new side.
    pub fn isolate(&mut self, nodes: &[usize]) {
        let side = self.next_side;
        self.next_side += 1;
        for &n in nodes {
            self.slot_mut(n).side = side;
        }
    }

    /// End every partition made with [`VirtualNet::isolate`].
    pub fn heal(&mut self) {
        for slot in self.slots.iter_mut().flatten() {
            slot.side = 0;
        }
    }

    /// Number of node indices handed out (removed nodes included).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the network never had a node.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn slot(&self, n: usize) -> &Slot {
        self.slots[n]
            .as_ref()
            .unwrap_or_else(|| panic!("node {n} was removed"))
    }

    fn slot_mut(&mut self, n: usize) -> &mut Slot {
        self.slots[n]
            .as_mut()
            .unwrap_or_else(|| panic!("node {n} was removed"))
    }

    /// Node `n`'s address.
    pub fn addr(&self, n: usize) -> SocketAddr {
        self.slot(n).addr
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
        let node: &dyn Any = &*self.slot(n).node;
        let peer: PeerId = node
            .downcast_ref::<Swarm>()
            .unwrap_or_else(|| panic!("node {n} is not a swarm"))
            .local_peer_id();
        self.multiaddr(n)
            .with(crate::multiaddr::Protocol::P2p(peer))
    }

    /// Node `n` as a `T`, if it is one. The node is polled on the next
    /// turn, since the caller may act on it.
    pub fn node_mut<T: Node>(&mut self, n: usize) -> Option<&mut T> {
        self.mark(n);
        let node: &mut dyn Any = &mut *self.slot_mut(n).node;
        node.downcast_mut::<T>()
    }

    /// Node `n`'s swarm (polled on the next turn, as for
    /// [`VirtualNet::node_mut`]), with its clock brought to the current
    /// virtual time: what the caller does through it (a publish, a timer,
    /// a query's start) happens now, not when the node last had work.
    ///
    /// # Panics
    ///
    /// If node `n` is not a [`Swarm`].
    pub fn swarm(&mut self, n: usize) -> &mut Swarm {
        let now = self.now;
        let swarm = self
            .node_mut::<Swarm>(n)
            .unwrap_or_else(|| panic!("node {n} is not a swarm"));
        in_node(n, || swarm.feed_timeout(now));
        swarm
    }

    /// Node `n`'s swarm, read-only, if it is on the network and is a
    /// swarm. Unlike [`VirtualNet::swarm`] it neither marks the node for
    /// polling nor moves its clock, so looking (a count for a progress
    /// line) does not change the run.
    pub fn swarm_ref(&self, n: usize) -> Option<&Swarm> {
        let slot = self.slots.get(n)?.as_ref()?;
        let node: &dyn Any = &*slot.node;
        node.downcast_ref::<Swarm>()
    }

    /// Feed `data` to node `n` now, as if `from` had sent it, bypassing the
    /// filter and the link (it is not counted in the stats).
    pub fn inject(&mut self, n: usize, from: SocketAddr, data: &[u8]) {
        let now = self.now;
        let node = &mut self.slot_mut(n).node;
        in_node(n, || node.feed_datagram(now, from, data));
        self.mark(n);
    }

    /// Mark node `n` for polling on this turn's flush.
    fn mark(&mut self, n: usize) {
        if let Some(Some(slot)) = self.slots.get_mut(n)
            && !slot.dirty
        {
            slot.dirty = true;
            self.dirty.push(n);
        }
    }
}
