//! What takes part in a [`VirtualNet`](super::VirtualNet): the [`Node`]
//! trait (implemented here for [`Swarm`]), the binder that hands swarms
//! virtual addresses, and which node is being called on this thread.

use std::any::Any;
use std::cell::Cell;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::BytesMut;

use crate::{SocketBinder, Swarm, SwarmEvent};

thread_local! {
    /// The node the network is calling into on this thread (`usize::MAX`:
    /// none), so that a test can attribute allocations or logs to a node.
    static CURRENT_NODE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The index of the node a [`VirtualNet`](super::VirtualNet) is calling into on this thread,
/// if any. A counting allocator can use it to see what one node holds.
pub fn current_node() -> Option<usize> {
    CURRENT_NODE
        .try_with(Cell::get)
        .ok()
        .filter(|n| *n != usize::MAX)
}

/// Run `f` with [`current_node`] returning `node`.
pub(crate) fn in_node<R>(node: usize, f: impl FnOnce() -> R) -> R {
    // `try_with`: this may run while thread-locals are being destroyed.
    let _ = CURRENT_NODE.try_with(|c| c.set(node));
    let r = f();
    let _ = CURRENT_NODE.try_with(|c| c.set(usize::MAX));
    r
}

/// A participant in a [`VirtualNet`](super::VirtualNet): a sans-I/O state machine that takes
/// datagrams and timeouts and produces datagrams.
///
/// `Any` so that the network can hand a node back as its concrete type
/// ([`VirtualNet::node_mut`](super::VirtualNet::node_mut)); `Send` so that
/// it can run its turns of a lookahead window on another thread
/// ([`VirtualNet::set_threads`](super::VirtualNet::set_threads)).
pub trait Node: Any + Send {
    /// Take one datagram `from` that arrived at `now`.
    fn feed_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]);

    /// Push every datagram the node wants to send now onto `out`, as
    /// (destination, bytes). `scratch` is a buffer the network reuses
    /// between calls, for nodes that write datagrams into one.
    fn poll_transmits(
        &mut self,
        now: Instant,
        scratch: &mut Vec<u8>,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    );

    /// When the node next needs [`Node::feed_timeout`], if ever.
    fn poll_timeout(&mut self) -> Option<Instant>;

    /// Move the swarm events the node recorded since the last call onto
    /// `out`, for the trace. Default: a node without events.
    fn take_events(&mut self, out: &mut Vec<SwarmEvent>) {
        let _ = out;
    }

    /// Whether the node handed work to a thread of its own, whose timing
    /// the network cannot replay (a swarm: a stream or packet flow handed
    /// to a thread). Default: never.
    fn uses_threads(&self) -> bool {
        false
    }

    /// The time is `now`, and a timeout the node asked for is due.
    fn feed_timeout(&mut self, now: Instant);
}

impl Node for Swarm {
    fn feed_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        Swarm::feed_datagram(self, now, 0, from, None, None, BytesMut::from(data));
    }

    fn poll_transmits(
        &mut self,
        now: Instant,
        scratch: &mut Vec<u8>,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) {
        // The swarm has `NoWake` (see the module docs): run whatever other
        // threads queued before asking what to send.
        self.feed_wakeup(now);
        // One datagram per call: the network has no GSO to model.
        while let Some((_, t)) = self.poll_transmit(now, 1, scratch) {
            out.push((t.destination, scratch[..t.size].to_vec()));
        }
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        Swarm::poll_timeout(self)
    }

    fn uses_threads(&self) -> bool {
        self.handed_to_threads() > 0
    }

    fn take_events(&mut self, out: &mut Vec<SwarmEvent>) {
        self.take_recorded_events(out);
    }

    fn feed_timeout(&mut self, now: Instant) {
        Swarm::feed_timeout(self, now);
    }
}

/// A [`SocketBinder`] that binds nothing: it hands out a fixed IP and the
/// port asked for, or made-up ports counting up from `next_port` for port 0.
pub struct VirtualBinder {
    /// The IP of every address handed out.
    pub ip: IpAddr,
    /// The last port handed out for port 0 (the next one is one higher).
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
        Ok(SocketAddr::new(self.ip, port))
    }
}
