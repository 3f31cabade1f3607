//! The connection table's entries: a connection's transport plus what the
//! swarm knows about it (its peer, its streams, who keeps it alive).

use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::time::Instant;

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use quinn_proto::ConnectionHandle;

use crate::ids::{PluginId, StreamId};
use crate::stream::Stream;
use crate::tls::ObservedPeer;
use crate::transport::Transport;

/// Index of a socket/endpoint pair in the swarm's socket list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SocketIndex(pub(crate) usize);

/// Who started a connection, and what they expect.
pub(crate) enum Origin {
    /// We dialed. `expected` is the PeerId from `/p2p/…` or `dial_with_id`.
    Dialed {
        expected: Option<PeerId>,
        observed: ObservedPeer,
        requester: Requester,
    },
    /// The remote dialed us.
    Accepted,
}

/// Whom to tell about a dial's outcome.
#[derive(Clone)]
pub(crate) enum Requester {
    /// A plugin called `dial`.
    Plugin(PluginId),
    /// A plugin's `dial_with_id` that waited for peer routing: a failure
    /// is reported under the id the plugin got back then.
    PluginAs(PluginId, crate::ConnId),
    /// A `SwarmHandle` called `dial`; the reply channel waits.
    Handle(std::sync::mpsc::Sender<Result<crate::ConnId, crate::DialError>>),
    /// The swarm itself (e.g. opening a stream to a peer after dialing).
    Internal,
}

/// One connection owned by the swarm.
pub(crate) struct Connection {
    /// Distinguishes this connection from earlier ones in the same slab slot.
    pub(crate) generation: u32,
    /// What carries the streams (QUIC today).
    pub(crate) transport: Transport,
    /// quinn-proto's handle for the connection within its endpoint.
    pub(crate) quic_handle: ConnectionHandle,
    pub(crate) socket: SocketIndex,
    pub(crate) origin: Origin,
    /// Known once the handshake completes.
    pub(crate) peer: Option<PeerId>,
    pub(crate) remote: SocketAddr,
    /// The remote address as a multiaddr (`/ip4/…/udp/…/quic-v1`).
    pub(crate) remote_addr: Multiaddr,
    pub(crate) established: bool,
    pub(crate) streams: FxHashMap<StreamId, Stream>,
    /// Plugins that asked to keep the connection open without streams.
    pub(crate) kept_by: Vec<PluginId>,
    /// Since when the connection has had no streams and no keeper.
    pub(crate) idle_since: Option<Instant>,
    /// We are closing it; callbacks already ran. Handles to it are stale.
    pub(crate) closing: bool,
    /// quinn-proto's next timeout, as last queued in the deadline heap.
    pub(crate) quic_deadline: Option<Instant>,
    /// Queued for a `poll_transmit` pass.
    pub(crate) queued_for_transmit: bool,
    /// A `Deadline::Idle` entry for this connection is in the heap.
    pub(crate) idle_deadline_queued: bool,
    /// The instant of the `Deadline::Negotiation` entry in the heap, if any.
    /// One entry per connection covers all its negotiating streams, so a
    /// peer churning streams cannot grow the heap.
    pub(crate) negotiation_deadline_queued: Option<Instant>,
    /// Packet flows to open once the handshake completes.
    pub(crate) pending_flows: Vec<(crate::ids::PluginId, String)>,
    /// For a relayed connection: the stream (of another connection) that
    /// carries its bytes. `None` for a direct QUIC or TCP connection.
    pub(crate) carrier: Option<crate::ids::StreamRef>,
}

impl Connection {
    pub(crate) fn negotiating_streams(&self) -> usize {
        self.streams.values().filter(|s| s.is_negotiating()).count()
    }

    /// Whether the idle timer should run: no stream that counts for
    /// keep-alive, nobody keeping it.
    pub(crate) fn is_idle(&self) -> bool {
        self.established && self.kept_by.is_empty() && !self.streams.values().any(|s| s.keeps_alive)
    }
}
