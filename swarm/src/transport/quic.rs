//! QUIC v1 for libp2p: a UDP socket with its quinn-proto endpoint, the
//! transport parameters, and the TLS configs from [`crate::tls`] wrapped
//! for quinn-proto.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use libp2p_identity::PeerId;
use quinn_proto::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn_proto::{
    ClientConfig, Dir, Endpoint, FinishError, IdleTimeout, ReadableError, ServerConfig,
    TransportConfig, VarInt, WriteError,
};

use super::outcomes::{ReadUnavailable, SendError, StreamReader};
use crate::ids::StreamId;

use crate::config::SwarmConfig;
use crate::tls::{ObservedPeer, TlsError, TlsIdentity};

/// Transport parameters shared by every connection: finite windows (quinn's
/// connection window defaults to unbounded), the idle timeout, keep-alive
/// PINGs, and the stream limits libp2p uses (bidirectional only).
pub(crate) fn transport_config(config: &SwarmConfig) -> TransportConfig {
    let mut t = TransportConfig::default();
    t.max_concurrent_bidi_streams(VarInt::from_u32(config.limits.max_inbound_streams))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .stream_receive_window(VarInt::from_u32(config.stream_receive_window))
        .receive_window(VarInt::from_u32(config.connection_receive_window))
        .send_window(config.send_window)
        .keep_alive_interval(Some(config.keep_alive_interval))
        .allow_spin(false)
        .datagram_receive_buffer_size(config.datagram_receive_buffer);
    // An idle timeout above QUIC's varint limit is not representable; such a
    // configuration means "as long as possible".
    let idle = IdleTimeout::try_from(config.quic_idle_timeout)
        .unwrap_or_else(|_| IdleTimeout::from(VarInt::MAX));
    t.max_idle_timeout(Some(idle));
    t
}

/// The server side: our certificate, client certificates required.
pub(crate) fn server_config(
    tls: &TlsIdentity,
    transport: Arc<TransportConfig>,
) -> Result<ServerConfig, TlsError> {
    let crypto = QuicServerConfig::try_from(tls.server_config()?)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut server = ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(transport);
    // libp2p peers do not migrate; refusing keeps a peer's address stable.
    server.migration(false);
    Ok(server)
}

/// The client side for one dial; `expected` makes the handshake fail unless
/// the server proves that PeerId.
pub(crate) fn client_config(
    tls: &TlsIdentity,
    expected: Option<PeerId>,
    transport: Arc<TransportConfig>,
) -> Result<(ClientConfig, ObservedPeer), TlsError> {
    let (rustls_config, observed) = tls.client_config(expected)?;
    let crypto =
        QuicClientConfig::try_from(rustls_config).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut client = ClientConfig::new(Arc::new(crypto));
    client.transport_config(transport);
    Ok((client, observed))
}

/// Binds UDP sockets for the swarm. The mio runtime binds real sockets; a
/// test driver may hand out virtual addresses.
pub trait SocketBinder: Send {
    /// Bind a UDP socket to `addr` and return the bound address (the real
    /// port when `addr`'s port is 0). Sockets are numbered in bind order
    /// from 0; [`Swarm::poll_transmit`](crate::Swarm::poll_transmit) names them by that number.
    fn bind(&mut self, addr: SocketAddr) -> io::Result<SocketAddr>;

    /// Whether the driver connects and accepts TCP sockets (see the TCP
    /// step of the swarm's driving contract). Without it, a `/tcp/` dial
    /// fails at once with `DialError::UnsupportedAddress`. Default: no.
    fn tcp_supported(&self) -> bool {
        false
    }

    /// Bind a TCP listener to `addr` and return the bound address. The
    /// driver accepts its connections and feeds them to the swarm
    /// ([`Swarm::feed_tcp_accepted`](crate::Swarm::feed_tcp_accepted)).
    /// By default TCP is unsupported (the virtual network has none).
    fn bind_tcp(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("this driver has no TCP (asked for {addr})"),
        ))
    }
}

/// One UDP socket and its QUIC endpoint.
pub(crate) struct Socket {
    pub(crate) endpoint: Endpoint,
    pub(crate) local: SocketAddr,
    pub(crate) listening: bool,
}

// ----- the stream side of the seam (see `transport/mod.rs`) -----

/// quinn-proto's id for one of our stream ids. Ids come from quinn-proto
/// or from a QUIC varint, so they fit; an impossible one names no stream.
fn quic_id(id: StreamId) -> quinn_proto::StreamId {
    quinn_proto::StreamId::from(VarInt::from_u64(id.0).unwrap_or(VarInt::MAX))
}

/// Our id for a quinn-proto stream id.
pub(crate) fn our_id(id: quinn_proto::StreamId) -> StreamId {
    StreamId(id.into())
}

fn code(code: u64) -> VarInt {
    VarInt::from_u64(code).unwrap_or(VarInt::MAX)
}

fn send_error(e: WriteError) -> SendError {
    match e {
        WriteError::Blocked => SendError::Blocked,
        WriteError::Stopped(code) => SendError::Stopped(code.into_inner()),
        WriteError::ClosedStream => SendError::Closed,
    }
}

pub(crate) fn open_stream(q: &mut quinn_proto::Connection) -> Option<StreamId> {
    q.streams().open(Dir::Bi).map(our_id)
}

pub(crate) fn accept_stream(q: &mut quinn_proto::Connection) -> Option<StreamId> {
    q.streams().accept(Dir::Bi).map(our_id)
}

pub(crate) fn read<R>(
    q: &mut quinn_proto::Connection,
    id: StreamId,
    f: impl FnOnce(&mut StreamReader<'_>) -> R,
) -> Result<R, ReadUnavailable> {
    let mut recv = q.recv_stream(quic_id(id));
    let chunks = recv.read(true).map_err(|e| match e {
        ReadableError::ClosedStream => ReadUnavailable::Closed,
        ReadableError::IllegalOrderedRead => ReadUnavailable::NotNow,
    })?;
    let mut reader = StreamReader::Quic(chunks);
    let r = f(&mut reader);
    if let StreamReader::Quic(chunks) = reader {
        // Gives the remote flow-control credit for what was read.
        let _ = chunks.finalize();
    }
    Ok(r)
}

// Writes go on until quinn says `Blocked`: only a refused write registers
// the stream for a `Writable` event; a partial one does not, and the
// stream would never be woken.

pub(crate) fn write(
    q: &mut quinn_proto::Connection,
    id: StreamId,
    data: &[u8],
) -> Result<usize, SendError> {
    let mut send = q.send_stream(quic_id(id));
    let mut written = 0;
    while written < data.len() {
        match send.write(&data[written..]) {
            Ok(n) => written += n,
            Err(WriteError::Blocked) => break,
            Err(e) => return Err(send_error(e)),
        }
    }
    Ok(written)
}

pub(crate) fn write_bytes(
    q: &mut quinn_proto::Connection,
    id: StreamId,
    data: &mut Bytes,
) -> Result<usize, SendError> {
    let mut send = q.send_stream(quic_id(id));
    let before = data.len();
    while !data.is_empty() {
        match send.write_chunks(std::slice::from_mut(data)) {
            Ok(_) => {}
            Err(WriteError::Blocked) => break,
            Err(e) => return Err(send_error(e)),
        }
    }
    Ok(before - data.len())
}

pub(crate) fn finish(q: &mut quinn_proto::Connection, id: StreamId) -> Result<(), SendError> {
    q.send_stream(quic_id(id)).finish().map_err(|e| match e {
        FinishError::Stopped(code) => SendError::Stopped(code.into_inner()),
        FinishError::ClosedStream => SendError::Closed,
    })
}

pub(crate) fn reset(q: &mut quinn_proto::Connection, id: StreamId, c: u64) {
    let _ = q.send_stream(quic_id(id)).reset(code(c));
}

pub(crate) fn stop(q: &mut quinn_proto::Connection, id: StreamId, c: u64) {
    let _ = q.recv_stream(quic_id(id)).stop(code(c));
}
