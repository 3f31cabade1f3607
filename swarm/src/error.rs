//! One error enum per operation: listen, dial, open a stream, use a stream,
//! act on a connection, use a packet flow.

use std::io;
use std::sync::Arc;

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;

use crate::ids::{ConnId, StreamRef};
use crate::limits::ConnectionLimit;
use crate::multistream::MultistreamError;

/// Why listening on an address failed.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Only `/ip4|ip6/<ip>/udp/<port>/quic-v1` and `/ip4|ip6/<ip>/tcp/<port>`
    /// are supported.
    #[error(
        "unsupported listen address {0} (expected /ip4|ip6/…/udp/…/quic-v1 or /ip4|ip6/…/tcp/…)"
    )]
    UnsupportedAddress(Multiaddr),
    /// The UDP socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: Multiaddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// The swarm is shutting down.
    #[error("the swarm is shutting down")]
    ShuttingDown,
}

/// Why a stream could not become a relayed connection's carrier
/// ([`Context::relay_connection`](crate::Context::relay_connection)).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RelayConnectionError {
    /// The stream is unknown, or not the calling plugin's to give.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The stream's protocol is not negotiated yet (wait for
    /// `handle_stream_negotiated` or `accept_inbound_stream`).
    #[error("stream {0} is still negotiating")]
    Negotiating(StreamRef),
    /// A connection limit refused the new connection.
    #[error("connection refused by limit: {0}")]
    Limit(#[from] ConnectionLimit),
    /// The upgrade could not start (e.g. a TLS configuration it cannot take).
    #[error("cannot start the relayed connection: {0}")]
    Start(DialError),
}

/// Why a dial failed. Delivered to the dialing plugin or handle.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DialError {
    /// Only `/ip4|ip6/<ip>/udp/<port>/quic-v1[/p2p/<id>]` and
    /// `/ip4|ip6/<ip>/tcp/<port>[/p2p/<id>]` can be dialed.
    #[error("unsupported dial address {0}")]
    UnsupportedAddress(Multiaddr),
    /// `dial_with_id` found no unexpired address for the peer: none in the
    /// peer store, and the peer router (if one is registered) found none.
    #[error("no known address for peer {0}")]
    NoAddresses(PeerId),
    /// The peer router did not finish its search for the peer within
    /// [`Limits::peer_routing_timeout`](crate::Limits::peer_routing_timeout).
    #[error("peer routing for {0} timed out")]
    PeerRoutingTimeout(PeerId),
    /// The remote proved a different PeerId than the one dialed. Detected
    /// inside the handshake (QUIC's TLS, or TCP's Noise or TLS).
    #[error("wrong peer id: expected {expected}, remote presented {actual}")]
    WrongPeerId {
        /// The PeerId we dialed.
        expected: PeerId,
        /// The PeerId the remote's certificate carries.
        actual: PeerId,
    },
    /// A connection limit refused the dial.
    #[error("connection refused by limit: {0}")]
    Limit(#[from] ConnectionLimit),
    /// The handshake did not finish within the handshake timeout.
    #[error("handshake timed out")]
    Timeout,
    /// The handshake failed (QUIC, TLS, or TCP's upgrade: multistream-select,
    /// Noise, Yamux); the source says how.
    #[error("handshake failed: {0}")]
    Handshake(#[source] Cause),
    /// The transport refused to start the connection (an unusable address,
    /// or a TLS configuration it cannot take), or a TCP connect failed
    /// (e.g. connection refused).
    #[error("cannot start connection: {0}")]
    Connect(#[source] Cause),
    /// No UDP socket of the right address family could be bound.
    #[error("no socket to dial from: {0}")]
    NoSocket(#[source] Arc<io::Error>),
    /// The swarm is shutting down.
    #[error("the swarm is shutting down")]
    ShuttingDown,
}

/// The underlying error of a [`DialError`], kept as a source (cheap to
/// clone, so that one failure can be told to several listeners).
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// Build a [`Cause`] from a message, for failures that have no error value.
pub(crate) fn cause(message: &str) -> Cause {
    Arc::from(Box::<dyn std::error::Error + Send + Sync>::from(message))
}

/// Why an operation on a connection (keep it alive, close it) failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConnectionError {
    /// The connection handle is stale (the connection closed) or was never valid.
    #[error("unknown connection {0}")]
    UnknownConnection(ConnId),
}

/// Why a stream could not be opened.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OpenStreamError {
    /// The connection handle is stale or was never valid.
    #[error("unknown connection {0}")]
    UnknownConnection(ConnId),
    /// The connection exists but its handshake has not finished.
    #[error("connection {0} is still handshaking")]
    NotEstablished(ConnId),
    /// There is no live connection to the peer; dial it first.
    #[error("not connected to {0}")]
    NotConnected(PeerId),
    /// The remote's stream limit is reached.
    #[error("the peer's stream limit is reached")]
    TooManyStreams,
    /// The remote refused the protocol (`na`) or negotiation failed.
    #[error("negotiation failed: {0}")]
    Negotiation(#[from] MultistreamError),
    /// The stream died before negotiation finished (reset, timeout,
    /// connection closed).
    #[error("stream failed during negotiation: {0}")]
    Stream(StreamError),
    /// The swarm is shutting down.
    #[error("the swarm is shutting down")]
    ShuttingDown,
}

/// Why a stream operation failed, or why a stream ended abnormally.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StreamError {
    /// The stream handle is stale: the stream or its connection is gone.
    #[error("unknown stream {0}")]
    UnknownStream(StreamRef),
    /// The stream was handed to a thread; use its handle instead.
    #[error("stream {0} is owned by a thread")]
    Detached(StreamRef),
    /// The stream carries a relayed connection
    /// ([`Context::relay_connection`](crate::Context::relay_connection)):
    /// use that connection's streams instead.
    #[error("stream {0} carries a relayed connection")]
    CarriesConnection(StreamRef),
    /// The stream is a packet flow's control stream, which carries no data:
    /// use the packet flow calls (`send_packet`, `close_packet_flow`).
    #[error("stream {0} is a packet flow's control stream")]
    PacketFlow(StreamRef),
    /// Our send side was already finished or reset.
    #[error("stream is closed for writing")]
    SendClosed,
    /// The remote asked us to stop sending, with this code.
    #[error("remote stopped the stream with code {0}")]
    Stopped(u64),
    /// The remote reset its send side, with this code.
    #[error("remote reset the stream with code {0}")]
    Reset(u64),
    /// multistream-select failed on this stream.
    #[error("negotiation failed: {0}")]
    Negotiation(MultistreamError),
    /// The remote ended the stream before negotiation finished.
    #[error("stream ended during negotiation")]
    EndedDuringNegotiation,
    /// multistream-select took longer than the negotiation timeout.
    #[error("negotiation timed out")]
    NegotiationTimeout,
    /// The connection closed under the stream.
    #[error("connection closed: {0}")]
    ConnectionClosed(String),
}

impl From<StreamError> for io::Error {
    fn from(e: StreamError) -> Self {
        let kind = match e {
            StreamError::Reset(_) | StreamError::Stopped(_) => io::ErrorKind::ConnectionReset,
            StreamError::ConnectionClosed(_) => io::ErrorKind::ConnectionAborted,
            StreamError::NegotiationTimeout => io::ErrorKind::TimedOut,
            StreamError::SendClosed => io::ErrorKind::BrokenPipe,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// Why a packet (QUIC datagram) could not be sent, or a packet flow opened.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PacketError {
    /// The peer did not enable QUIC DATAGRAM frames (RFC 9221).
    /// rust-libp2p does not; go-libp2p does.
    #[error("peer does not support datagrams")]
    PeerUnsupported,
    /// The payload is larger than the current maximum, which follows the
    /// path MTU (and never exceeds `SwarmConfig::max_packet_size`).
    #[error("packet of {size} bytes is too large; the current maximum is {max}")]
    TooLarge {
        /// The payload size asked for.
        size: usize,
        /// The largest payload that fits now.
        max: usize,
    },
    /// Packet flows need QUIC DATAGRAM frames; this connection is TCP
    /// (streams only).
    #[error("packet flows need QUIC; this connection is TCP")]
    NotQuic,
    /// The flow's control stream is closed (or the handle is stale).
    #[error("packet flow is closed")]
    FlowClosed,
    /// The flow could not be opened.
    #[error("cannot open packet flow: {0}")]
    Open(#[from] OpenStreamError),
}
