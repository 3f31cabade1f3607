//! What the engine has queued: plugin calls for the facade to make, and
//! deadlines for the deadline heap.

use bytes::Bytes;
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;

use crate::error::{DialError, PacketError, StreamError};
use crate::events::{Message, PacketFlow, ProtocolEvent};
use crate::ids::{ConnId, PluginId, StreamRef};

/// A plugin call waiting to be made. The engine queues these while it
/// works; the facade ([`Swarm`](crate::Swarm)) makes the calls, in order,
/// once the engine has returned, so a plugin never runs inside the engine.
pub(crate) enum Callback {
    Start(PluginId),
    ListenAddr(Multiaddr),
    NewConnection(ConnId, PeerId),
    ClosedConnection(ConnId, PeerId),
    DialFailure(PluginId, ConnId, DialError),
    FindPeer(PluginId, PeerId),
    DialCircuit(PluginId, ConnId, Multiaddr),
    ListenCircuit(PluginId, Multiaddr),
    LocalProtocolsChanged,
    Inbound(PluginId, StreamRef, String),
    Negotiated(PluginId, StreamRef, String),
    Data(PluginId, StreamRef, Bytes),
    Writable(PluginId, StreamRef),
    Finished(PluginId, StreamRef),
    Closed(PluginId, StreamRef, StreamError),
    Stopped(PluginId, StreamRef, u64),
    Timer(PluginId, u64),
    Event(Option<PluginId>, ProtocolEvent),
    Message(PluginId, Message),
    InboundFlow(PluginId, PacketFlow, String),
    FlowReady(PluginId, PacketFlow, String),
    PacketData(PluginId, PacketFlow, Bytes),
    FlowClosed(PluginId, ConnId, Option<PacketFlow>, PacketError),
}

/// Something due at an instant. Entries are checked when popped, so stale
/// ones (a connection gone, a timer cancelled) are simply skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Deadline {
    Quic(ConnId),
    Timer(u64),
    Negotiation(ConnId),
    Handshake(ConnId),
    Idle(ConnId),
    /// A peer-routing search (by serial) runs out of time.
    PeerRouting(u64),
    /// A TCP connection's Yamux keep-alive ping is due (QUIC pings itself).
    TcpKeepAlive(ConnId),
    /// A dial through a relay (by placeholder) ran out of time.
    CircuitDial(ConnId),
}
