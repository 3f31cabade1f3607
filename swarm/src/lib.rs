//! A single-threaded libp2p swarm over QUIC and TCP (Noise or TLS, then
//! Yamux), with protocol plugins.
//!
//! # Threading model
//!
//! One thread (the *swarm thread*) owns everything shared: the UDP sockets,
//! the QUIC endpoints and connections, the stream table, the peer store and
//! the listen addresses. Nothing else touches them. The [`Swarm`] core does
//! no I/O and takes the time as an argument; the [`Runtime`] drives it with
//! mio and real sockets, or a test drives it with a virtual clock.
//!
//! # Plugins
//!
//! A protocol is a value implementing [`Protocol`], registered with
//! [`Runtime::add_protocol`]. The swarm calls it on the swarm thread, one
//! call at a time, with a [`Context`] to call back (listen, dial, open a
//! stream, write, set a timer, emit an event, read the peer store). The swarm
//! runs multistream-select on every stream; a plugin only sees streams for
//! the protocol ids it declared, or streams it opened.
//!
//! Call order: `on_start` once; per connection `handle_new_connection`, then
//! stream callbacks, then `handle_closed_connection` (after the
//! `handle_stream_closed` of each of its streams). Per stream:
//! `accept_inbound_stream` or `handle_stream_negotiated`, then
//! `handle_stream_data` / `handle_stream_writable` (and
//! `handle_stream_stopped` if the remote stops our send side), then
//! `handle_stream_finished` or `handle_stream_closed`.
//!
//! The helpers a protocol needs are built in: [`Context::send`] queues
//! bytes (finishing when drained with [`Context::finish`], and pausing the
//! stream's reads above a high-water mark), [`Context::abort`] ends a
//! stream both ways, and [`Context::send_message`] /
//! [`SwarmHandle::send_message`] hand an owned value to one plugin.
//!
//! # Who owns what
//!
//! A stream belongs to the plugin that accepted or opened it, until the
//! plugin hands it to a thread with [`Context::detach_stream`]. Then a
//! [`DetachedStream`] (`Read + Write`, blocking) owns it; the swarm moves
//! bytes between it and QUIC through a bounded buffer and stops reading
//! QUIC when the buffer is full, so a slow reader flow-controls the remote
//! instead of growing memory. Other threads command the swarm through a
//! [`SwarmHandle`] (`Send + Clone`).
//!
//! # Packet flows
//!
//! Besides streams, a plugin can send and receive QUIC DATAGRAM frames
//! (RFC 9221), authenticated to the remote PeerId by the connection's TLS
//! session. A flow is named by a control stream that negotiates the plugin's
//! protocol id; each datagram starts with that stream's id as a QUIC varint.
//! See [`PacketFlow`] for the wire format, [`Context::open_packet_flow`],
//! [`Context::packet_handler_for`] and [`Protocol::accept_inbound_packet_flow`].
//!
//! # TCP
//!
//! `/ip4|ip6/…/tcp/…` addresses are listened on and dialed beside QUIC, on
//! the same thread: multistream-select picks `/noise` (or `/tls/1.0.0`),
//! then `/yamux/1.0.0` ([`tcp_upgrade`], [`noise`], [`yamux`]), and Yamux
//! streams go through the same stream layer as QUIC's, so a plugin cannot
//! tell them apart. Back-pressure reaches the remote through the Yamux
//! window. Packet flows are QUIC-only ([`PacketError::NotQuic`]).
//!
//! # Relayed connections
//!
//! A plugin can make one of its negotiated streams carry a whole
//! connection ([`Context::relay_connection`]): the stream's bytes are
//! upgraded as a TCP connection's are (Noise or TLS, then Yamux), and the
//! result is a connection like any other, marked relayed
//! ([`Context::connection_is_relayed`]). A circuit relay client builds on
//! this; back-pressure crosses the carrier both ways, and either ending
//! ends the other.
//!
//! # Keep-alive
//!
//! A connection stays open while it has streams, or while a plugin keeps it
//! with [`Context::keep_alive`]. Otherwise it closes after
//! [`SwarmConfig::idle_connection_timeout`]. While open, QUIC PINGs every
//! [`SwarmConfig::keep_alive_interval`] keep NATs and the peer's idle timer
//! from closing it; on TCP connections, Yamux pings do the same.

// Layers, each using only those above it in this list (no import circle):
// 1. value types: ids, errors, events, limits, config, addresses, keys,
//    multistream-select, TLS, Noise, Yamux (sans-I/O), the peer store;
pub mod address;
mod codes;
mod config;
mod error;
mod events;
pub mod identity;
mod ids;
mod limits;
pub mod multistream;
pub mod noise;
pub mod peer_store;
mod quic_varint;
pub mod tls;
mod verified_certificates;
pub mod yamux;
//    and, using multistream-select, Noise, TLS and Yamux, the TCP upgrade;
pub mod tcp_upgrade;
// 2. cross-thread buffers: waking the swarm, streams and flows on threads;
mod detached_packet_flow;
mod detached_stream;
mod wake;
// 3. connection and stream state, and the transport seam;
mod connection;
mod stream;
mod transport;
// 4. the engine (sans-I/O: sockets, connections, streams, deadlines);
mod engine;
// 5. the plugin API (`Protocol`, `Context`);
mod protocol;
// 6. the facade (`Swarm`: feed calls, commands, plugin dispatch);
mod swarm;
// 7. outside callers: `SwarmHandle` from other threads, the mio `Runtime`,
//    and the virtual network that drives swarms on virtual time.
mod handle;
mod runtime;
pub mod virtual_net;

pub use bytes::Bytes;
pub use codes::{CLOSE_CODE_IDLE, CLOSE_CODE_LIMIT, RESET_CODE_NEGOTIATION};
pub use config::{SwarmConfig, TcpSecurity};
pub use detached_packet_flow::DetachedPacketFlow;
pub use detached_stream::DetachedStream;
pub use engine::{ReceivedDatagram, TcpConnect, TcpOutbound};
pub use error::{
    Cause, ConnectionError, DialError, ListenError, OpenStreamError, PacketError,
    RelayConnectionError, StreamError,
};
pub use events::{Message, PacketFlow, ProtocolEvent, RelayedRole, StreamTarget, SwarmEvent};
pub use handle::{HandleError, SwarmHandle};
pub use ids::{ConnId, PluginId, StreamRef, TimerId};
pub use libp2p_identity::{Keypair, PeerId, PublicKey, SigningError};
pub use limits::{ConnectionLimit, Limits};
pub use multiaddr::{self, Multiaddr};
pub use protocol::{Context, Protocol};
pub use runtime::{Runtime, RuntimeError};
pub use swarm::{MAX_DATAGRAMS_PER_TURN, Swarm};
pub use transport::quic::SocketBinder;
pub use verified_certificates::CertificateCache;
pub use wake::{NoWake, Wake};
