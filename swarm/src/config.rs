//! Swarm configuration: identity, transport tuning (QUIC, Yamux) and limits.

use std::time::Duration;

use libp2p_identity::Keypair;

use crate::limits::Limits;
use crate::multistream::MultistreamLimits;
use crate::verified_certificates::CertificateCache;
use crate::yamux::YamuxConfig;

/// Everything a swarm needs to start. `SwarmConfig::new(keypair)` gives
/// defaults that interoperate with rust-libp2p and go-libp2p.
#[derive(Clone)]
pub struct SwarmConfig {
    /// The host key; the PeerId derives from it.
    pub keypair: Keypair,
    /// Connection, stream and buffer limits.
    pub limits: Limits,
    /// Frame size and round limits for multistream-select.
    pub multistream: MultistreamLimits,
    /// QUIC idle timeout: a connection that hears nothing for this long is
    /// dead. The peers' smaller value applies, so against rust-libp2p this is
    /// its 10 s. Default 30 s: it also bounds the handshake, and at 30 %
    /// loss a handshake's backed-off retransmissions can be 10 s apart.
    /// Keep-alive PINGs keep a healthy connection well inside it.
    pub quic_idle_timeout: Duration,
    /// QUIC keep-alive PING interval while a connection is kept. Default 5 s.
    pub keep_alive_interval: Duration,
    /// A connection with no streams and no plugin keeping it closes after
    /// this long. Default 10 s.
    pub idle_connection_timeout: Duration,
    /// Per-stream receive window. Default 10 MB (rust-libp2p's).
    pub stream_receive_window: u32,
    /// Per-connection receive window. Default 15 MB (rust-libp2p's); quinn's
    /// own default is unbounded, which would let one peer take all memory.
    pub connection_receive_window: u32,
    /// Per-connection send window. Default 15 MB.
    pub send_window: u64,
    /// Bytes of received QUIC datagrams buffered per connection; `None`
    /// disables DATAGRAM support (as rust-libp2p does by default).
    /// Default 1 MiB.
    pub datagram_receive_buffer: Option<usize>,
    /// Largest packet payload a plugin may send, before the path MTU
    /// lowers it further. Default 1200 bytes.
    pub max_packet_size: usize,
    /// Where the swarm's randomness comes from. `None` (the default): the
    /// operating system. `Some(seed)`: everything random the swarm draws
    /// that can change what happens on the wire comes from the seed — QUIC
    /// connection ids and the endpoints' own randomness, the TLS
    /// certificate key (Ed25519, whose signatures are deterministic and of
    /// fixed size, so message sizes do not vary) and its serial number, and
    /// the plugins' [`Context::rng`](crate::Context::rng). A simulator gives
    /// each node its own seed so that a run can be replayed. What stays
    /// with the OS: the TLS handshake's own randoms and key shares (fixed
    /// sizes, so they cannot change timing or the packets' fate), and
    /// stateless-reset and token keys. Not for production: a seeded node's
    /// keys are only as secret as its seed.
    pub seed: Option<u64>,
    /// A table of verified peer certificates shared with other swarms of
    /// this process. `None` (the default): the swarm keeps its own. The
    /// simulator gives all its swarms one, so that each node's certificate
    /// is verified once per run rather than once per connection.
    pub certificate_cache: Option<CertificateCache>,
    /// Yamux on TCP connections: stream limits, how far windows may grow,
    /// the connection's receive budget, the write buffer. Default:
    /// [`YamuxConfig::default`] (512 streams, 256 KiB windows growing to
    /// 16 MiB, 64 MiB per connection).
    pub yamux: YamuxConfig,
    /// What our TCP dials propose: Noise (the default; every libp2p
    /// implementation has it) or TLS 1.3. Listeners accept both.
    pub tcp_security: TcpSecurity,
    /// Whether TCP dials leave from our TCP listen port (the listener and
    /// the dialing socket both set `SO_REUSEPORT`), as rust-libp2p's do by
    /// default: the remote then observes, and a NAT maps, the port we
    /// listen on, which identify's observed addresses and DCUtR's TCP hole
    /// punch rely on. A dial for which that port cannot be used (a second
    /// connection to the same address, say) leaves from another port.
    /// Default: `true`.
    pub tcp_port_reuse: bool,
}

/// The security protocol a TCP dial proposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpSecurity {
    /// `/noise` (Noise XX).
    #[default]
    Noise,
    /// `/tls/1.0.0` (libp2p TLS 1.3, the QUIC certificates).
    Tls,
}

impl SwarmConfig {
    /// Defaults for the given host key.
    pub fn new(keypair: Keypair) -> Self {
        Self {
            keypair,
            limits: Limits::default(),
            multistream: MultistreamLimits::default(),
            quic_idle_timeout: Duration::from_secs(30),
            keep_alive_interval: Duration::from_secs(5),
            idle_connection_timeout: Duration::from_secs(10),
            stream_receive_window: 10_000_000,
            connection_receive_window: 15_000_000,
            send_window: 15_000_000,
            datagram_receive_buffer: Some(1 << 20),
            max_packet_size: 1200,
            seed: None,
            certificate_cache: None,
            yamux: YamuxConfig::default(),
            tcp_security: TcpSecurity::Noise,
            tcp_port_reuse: true,
        }
    }
}
