//! Value types that cross the swarm's layers: what the swarm tells
//! applications ([`SwarmEvent`]), what plugins tell each other
//! ([`ProtocolEvent`], [`Message`]), and how streams and flows are named
//! ([`StreamTarget`], [`PacketFlow`]).

use std::any::Any;
use std::sync::Arc;

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;

use crate::error::DialError;
use crate::ids::{ConnId, StreamRef};

/// What the swarm tells applications (see [`SwarmHandle::subscribe`](crate::SwarmHandle::subscribe)).
#[derive(Clone, Debug)]
pub enum SwarmEvent {
    /// We listen on this address (resolved; no port 0).
    ListenAddr(Multiaddr),
    /// A plugin (AutoNAT) confirmed that others reach us at this address
    /// ([`Context::add_external_address`](crate::Context::add_external_address)).
    ExternalAddrConfirmed(Multiaddr),
    /// An external address is no longer confirmed (a later probe failed,
    /// or the plugin withdrew it).
    ExternalAddrExpired(Multiaddr),
    /// A connection finished its handshake.
    ConnectionEstablished {
        /// The connection.
        conn: ConnId,
        /// The remote's PeerId, from its certificate.
        peer: PeerId,
        /// The remote's address as we see it.
        remote_addr: Multiaddr,
        /// Whether we dialed it.
        dialer: bool,
    },
    /// An established connection closed.
    ConnectionClosed {
        /// The connection.
        conn: ConnId,
        /// The remote's PeerId.
        peer: PeerId,
        /// Why it closed.
        reason: String,
    },
    /// A dial failed.
    DialFailed {
        /// The connection that was being set up.
        conn: ConnId,
        /// Why.
        error: DialError,
    },
    /// An inbound connection failed before its handshake completed (a bad
    /// certificate, a timeout, a limit).
    IncomingConnectionFailed {
        /// The remote's address.
        remote_addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// An event a plugin emitted (ping RTTs, identify results, …).
    Protocol(ProtocolEvent),
}

/// An event between plugins, or from another thread to the plugins, or from
/// a plugin to the application (see [`SwarmEvent::Protocol`](crate::SwarmEvent)).
#[derive(Clone)]
pub struct ProtocolEvent {
    /// The name of the plugin (or `"handle"`) that emitted it.
    pub source: &'static str,
    /// The event itself; receivers downcast to the types they know.
    pub payload: Arc<dyn Any + Send + Sync>,
}

impl ProtocolEvent {
    /// Wrap a value as an event from `source`.
    pub fn new<T: Any + Send + Sync>(source: &'static str, payload: T) -> Self {
        Self {
            source,
            payload: Arc::new(payload),
        }
    }

    /// The payload as a `T`, if it is one.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.payload.downcast_ref()
    }
}

impl std::fmt::Debug for ProtocolEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtocolEvent")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// A value sent to one plugin with [`Context::send_message`](crate::Context::send_message) or
/// [`SwarmHandle::send_message`](crate::SwarmHandle::send_message); the
/// plugin downcasts it to the types it knows (`message.downcast::<T>()`).
pub type Message = Box<dyn Any + Send>;

/// Where to open a stream: a given connection, or any connection to a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamTarget {
    /// This connection.
    Conn(ConnId),
    /// Any established connection to this peer.
    Peer(PeerId),
}

/// Which side of a relayed connection's upgrade we take (see
/// [`Context::relay_connection`](crate::Context::relay_connection)): the
/// dialer proposes the security protocol and checks the remote's PeerId,
/// the listener answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayedRole {
    /// We reach `expected` through the relay (circuit relay's source side).
    Dialer {
        /// The PeerId the remote must prove in the handshake.
        expected: PeerId,
    },
    /// The remote reaches us through the relay (the target side, after a
    /// relay's STOP).
    Listener,
}

impl From<ConnId> for StreamTarget {
    fn from(c: ConnId) -> Self {
        StreamTarget::Conn(c)
    }
}

impl From<PeerId> for StreamTarget {
    fn from(p: PeerId) -> Self {
        StreamTarget::Peer(p)
    }
}

/// A packet flow: QUIC datagrams for one plugin protocol on one connection,
/// named by its control stream.
///
/// Wire format (the shape of libp2p specs PR #680): the flow's owner opens a
/// bidirectional control stream and negotiates its protocol id with
/// multistream-select. Each datagram's payload is the control stream's id
/// as a QUIC variable-length integer (RFC 9000 §16), then the packet bytes.
/// Datagrams are sent only while the control stream's send side is open;
/// closing the control stream closes the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PacketFlow(pub StreamRef);

impl PacketFlow {
    /// The connection the flow runs on.
    pub fn conn(&self) -> ConnId {
        self.0.conn
    }
}
