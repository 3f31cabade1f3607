//! QUIC v1 for libp2p: a UDP socket with its quinn-proto endpoint, the
//! transport parameters, and the TLS configs from [`crate::tls`] wrapped
//! for quinn-proto.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use libp2p_identity::PeerId;
use quinn_proto::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn_proto::{ClientConfig, Endpoint, IdleTimeout, ServerConfig, TransportConfig, VarInt};

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
}

/// One UDP socket and its QUIC endpoint.
pub(crate) struct Socket {
    pub(crate) endpoint: Endpoint,
    pub(crate) local: SocketAddr,
    pub(crate) listening: bool,
}
