//! Limits: every bound the swarm enforces against a busy or hostile peer.
//!
//! Each field has a documented default. A limit that is hit refuses the one
//! connection or stream that would cross it, with a typed error; the rest of
//! the swarm keeps running.

use std::time::Duration;

/// Bounds on connections, streams and buffers.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Established plus handshaking connections, in and out. Default 1024.
    pub max_connections: usize,
    /// Connections to one PeerId. Default 8.
    pub max_connections_per_peer: usize,
    /// Inbound connections from one IP address. Default 64.
    pub max_connections_per_ip: usize,
    /// Inbound connections still in the QUIC/TLS handshake. Default 128.
    pub max_pending_handshakes: usize,
    /// Bidirectional streams the remote may have open at once on a
    /// connection (the QUIC stream limit). Default 256, as rust-libp2p.
    pub max_inbound_streams: u32,
    /// Streams on one connection still negotiating multistream-select.
    /// Default 32; the next one is reset.
    pub max_negotiating_streams: usize,
    /// Longest a stream may take to finish multistream-select. Default 10 s.
    pub negotiation_timeout: Duration,
    /// Longest a QUIC/TLS handshake may take. Default 30 s: at 30 % loss
    /// about 1 % of handshakes need more than 10 s (exponential backoff of
    /// lost first flights), and a dial should not fail for that.
    pub handshake_timeout: Duration,
    /// Bytes the swarm buffers for a stream handed to another thread before
    /// it stops reading from QUIC (so the remote is flow-controlled).
    /// The same bound applies to bytes queued by the thread for sending.
    /// Default 256 KiB.
    pub threaded_stream_buffer: usize,
    /// Bytes a plugin may have queued with [`Context::send`] on one stream
    /// before the swarm stops reading that stream (reading resumes once the
    /// queue has drained). Default 64 KiB: an echo or relay plugin then
    /// holds at most about this much per stream, and QUIC flow control
    /// holds the remote back.
    ///
    /// [`Context::send`]: crate::Context::send
    pub send_queue_high_water: usize,
    /// Longest a `dial_with_id` waits for the peer router to find an
    /// address (see [`Context::register_peer_router`]). Default 60 s: a
    /// Kademlia lookup that meets unresponsive peers takes a few request
    /// timeouts.
    ///
    /// [`Context::register_peer_router`]: crate::Context::register_peer_router
    pub peer_routing_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_peer: 8,
            max_connections_per_ip: 64,
            max_pending_handshakes: 128,
            max_inbound_streams: 256,
            max_negotiating_streams: 32,
            negotiation_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(30),
            threaded_stream_buffer: 256 * 1024,
            send_queue_high_water: 64 * 1024,
            peer_routing_timeout: Duration::from_secs(60),
        }
    }
}

/// Which connection limit refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionLimit {
    /// [`Limits::max_connections`] was reached.
    #[error("total connection limit ({0}) reached")]
    Total(usize),
    /// [`Limits::max_connections_per_peer`] was reached.
    #[error("per-peer connection limit ({0}) reached")]
    PerPeer(usize),
    /// [`Limits::max_connections_per_ip`] was reached.
    #[error("per-IP connection limit ({0}) reached")]
    PerIp(usize),
    /// [`Limits::max_pending_handshakes`] was reached.
    #[error("pending handshake limit ({0}) reached")]
    PendingHandshakes(usize),
}
