//! The steps from a raw TCP connection to a [`SecuredConnection`].
//!
//! ```text
//! raw:     multistream-select  /noise (or /tls/1.0.0)
//! raw:     Noise XX or TLS 1.3 handshake (PeerId checked against the dialed one)
//! secured: multistream-select  /yamux/1.0.0   (skipped when Noise chose it)
//! secured: Yamux
//! ```
//! The dialer proposes, the listener answers. Bytes that arrive right
//! after a step's last message (a lazy dialer's proposal, early Yamux
//! frames) are handed to the next step.
//!
//! Over Noise both sides list their muxers in the handshake payload
//! (libp2p/specs `connections/inlined-muxer-negotiation.md`): when the
//! remote lists any, the muxer is the first of the initiator's list both
//! support, chosen without a round trip of multistream-select, and no
//! common muxer fails the handshake. A remote that lists none (rust-libp2p
//! 0.57 does not) gets multistream-select as before.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use libp2p_identity::{Keypair, PeerId};

use super::channel::Channel;
use super::error::UpgradeError;
use super::secured::SecuredConnection;
use super::tls_channel::TlsChannel;
use crate::multistream::{MultistreamLimits, Negotiation, Progress};
use crate::noise::{HandshakeProgress, NoiseConfig, NoiseHandshake, RemoteIdentity};
use crate::tls::ObservedPeer;
use crate::yamux::{Mode, Session, YamuxConfig};

/// The Noise security protocol id.
pub const NOISE_PROTOCOL: &str = "/noise";
/// The TLS security protocol id.
pub const TLS_PROTOCOL: &str = "/tls/1.0.0";
/// The muxer protocol id.
pub const MUXER_PROTOCOL: &str = "/yamux/1.0.0";

/// What a step of the upgrade reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeProgress {
    /// More bytes are needed.
    Pending,
    /// The connection is upgraded: take it with [`TcpUpgrade::finish`]
    /// (what the upgrade has not sent yet goes with it).
    Done,
}

/// The security protocol a dialer proposes.
pub enum DialSecurity {
    /// Noise XX (`/noise`), what every libp2p implementation speaks.
    Noise,
    /// TLS 1.3 (`/tls/1.0.0`) with a config from
    /// [`TlsIdentity::client_config`](crate::tls::TlsIdentity::client_config)
    /// and the [`ObservedPeer`] that came with it.
    Tls {
        /// The client config (checks the expected PeerId).
        config: Arc<rustls::ClientConfig>,
        /// Where the verifier records the server's PeerId.
        observed: ObservedPeer,
    },
}

enum Stage {
    SelectSecurity(Negotiation, Option<DialSecurity>),
    Noise(Box<NoiseHandshake>),
    Tls(Box<TlsChannel>),
    SelectMuxer(Box<MuxerSelection>),
    Done(Box<SecuredConnection>),
    Over,
}

/// The muxer's multistream-select, inside the secured channel.
struct MuxerSelection {
    channel: Channel,
    remote: PeerId,
    noise_identity: Option<RemoteIdentity>,
    select: Negotiation,
    /// Plaintext that arrived with the end of the handshake.
    plain: BytesMut,
}

/// An upgrade under way, dialer or listener.
pub struct TcpUpgrade {
    dialer: bool,
    keypair: Keypair,
    expected: Option<PeerId>,
    seed: [u8; 32],
    yamux: YamuxConfig,
    tls_server: Option<Arc<rustls::ServerConfig>>,
    /// List our muxers in the Noise payload (and honour the remote's).
    inline_muxer: bool,
    stage: Stage,
    out: BytesMut,
}

impl TcpUpgrade {
    /// The dialing side, proposing `security`; fails in the handshake
    /// unless the remote proves `expected` (when given). `seed` feeds the
    /// Noise keys.
    pub fn dialer(
        keypair: &Keypair,
        expected: Option<PeerId>,
        security: DialSecurity,
        yamux: YamuxConfig,
        seed: [u8; 32],
    ) -> Self {
        let protocol = match security {
            DialSecurity::Noise => NOISE_PROTOCOL,
            DialSecurity::Tls { .. } => TLS_PROTOCOL,
        };
        let select = Negotiation::dialer(protocol, MultistreamLimits::default());
        Self::new(
            true,
            keypair,
            expected,
            yamux,
            seed,
            None,
            select,
            Some(security),
        )
    }

    /// The listening side: accepts `/noise`, and `/tls/1.0.0` when given a
    /// server config (from
    /// [`TlsIdentity::server_config`](crate::tls::TlsIdentity::server_config)).
    pub fn listener(
        keypair: &Keypair,
        tls: Option<Arc<rustls::ServerConfig>>,
        yamux: YamuxConfig,
        seed: [u8; 32],
    ) -> Self {
        let select = Negotiation::listener(MultistreamLimits::default());
        Self::new(false, keypair, None, yamux, seed, tls, select, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        dialer: bool,
        keypair: &Keypair,
        expected: Option<PeerId>,
        yamux: YamuxConfig,
        seed: [u8; 32],
        tls_server: Option<Arc<rustls::ServerConfig>>,
        mut select: Negotiation,
        security: Option<DialSecurity>,
    ) -> Self {
        let mut out = BytesMut::new();
        out.extend_from_slice(&select.take_outbound());
        Self {
            dialer,
            keypair: keypair.clone(),
            expected,
            seed,
            yamux,
            tls_server,
            inline_muxer: true,
            stage: Stage::SelectSecurity(select, security),
            out,
        }
    }

    /// Do not list our muxers in the Noise handshake, so the muxer is
    /// always chosen by multistream-select after it (as before inline
    /// negotiation existed). For a peer that lists muxers in its payload
    /// but then runs multistream-select anyway, which the spec forbids.
    pub fn without_inline_muxer(mut self) -> Self {
        self.inline_muxer = false;
        self
    }

    /// Bytes to write to the socket now.
    pub fn take_outbound(&mut self) -> Bytes {
        self.out.split().freeze()
    }

    /// Bytes received from the socket, split anywhere.
    pub fn feed(&mut self, data: &[u8], now: Instant) -> Result<UpgradeProgress, UpgradeError> {
        let result = self.step(Bytes::copy_from_slice(data), now);
        if result.is_err() {
            self.stage = Stage::Over;
        }
        result
    }

    /// The upgraded connection, once [`UpgradeProgress::Done`]. Bytes the
    /// upgrade did not hand out yet lead its
    /// [`SecuredConnection::take_outbound`] (ciphertext stays in order).
    pub fn finish(self) -> Result<SecuredConnection, UpgradeError> {
        match self.stage {
            Stage::Done(mut c) => {
                c.prepend_outbound(self.out);
                Ok(*c)
            }
            _ => Err(UpgradeError::Over),
        }
    }

    fn step(&mut self, mut data: Bytes, now: Instant) -> Result<UpgradeProgress, UpgradeError> {
        loop {
            match std::mem::replace(&mut self.stage, Stage::Over) {
                Stage::SelectSecurity(mut select, security) => {
                    let tls_ok = self.tls_server.is_some();
                    let progress = select.feed(data, &|p| {
                        p == NOISE_PROTOCOL || (tls_ok && p == TLS_PROTOCOL)
                    })?;
                    self.out.extend_from_slice(&select.take_outbound());
                    let Progress::Done {
                        protocol,
                        remainder,
                    } = progress
                    else {
                        self.stage = Stage::SelectSecurity(select, security);
                        return Ok(UpgradeProgress::Pending);
                    };
                    self.stage = self.start_security(&protocol, security)?;
                    data = remainder;
                }
                Stage::Noise(mut handshake) => {
                    let progress = handshake.feed(&data)?;
                    self.out.extend_from_slice(&handshake.take_outbound());
                    if progress == HandshakeProgress::Pending {
                        self.stage = Stage::Noise(handshake);
                        return Ok(UpgradeProgress::Pending);
                    }
                    let (noise, remote) = handshake.into_transport()?;
                    let peer = remote.public_key.to_peer_id();
                    let channel = Channel::Noise(Box::new(noise));
                    if self.inline_muxer && !remote.stream_muxers.is_empty() {
                        // Ours is one muxer, so the first of the initiator's
                        // list that both support is Yamux or nothing.
                        if !remote.stream_muxers.iter().any(|m| m == MUXER_PROTOCOL) {
                            return Err(UpgradeError::NoCommonMuxer {
                                offered: remote.stream_muxers,
                            });
                        }
                        tracing::debug!(%peer, "yamux chosen in the noise handshake");
                        // Yamux frames that came right behind the last
                        // handshake message stay in the channel, decrypted
                        // at the connection's first feed.
                        let connection =
                            self.start_session(channel, peer, Some(remote), &[], now)?;
                        self.stage = Stage::Done(connection);
                        return Ok(UpgradeProgress::Done);
                    }
                    // Bytes after the last handshake message were carried
                    // over into the transport: the next stage decrypts them.
                    self.stage = self.select_muxer(channel, peer, Some(remote), BytesMut::new())?;
                    data = Bytes::new();
                }
                Stage::Tls(mut tls) => {
                    let mut plain = BytesMut::new();
                    tls.feed(&data, &mut plain)?;
                    tls.encrypt(&[], &mut self.out)?;
                    if tls.is_handshaking() {
                        self.stage = Stage::Tls(tls);
                        return Ok(UpgradeProgress::Pending);
                    }
                    let peer = tls.remote_peer()?;
                    if let Some(expected) = self.expected
                        && expected != peer
                    {
                        return Err(UpgradeError::WrongPeerId {
                            expected,
                            actual: peer,
                        });
                    }
                    self.stage = self.select_muxer(Channel::Tls(tls), peer, None, plain)?;
                    data = Bytes::new();
                }
                Stage::SelectMuxer(mut m) => {
                    m.channel.decrypt(&data, &mut m.plain)?;
                    let plain = m.plain.split().freeze();
                    let progress = m.select.feed(plain, &|p| p == MUXER_PROTOCOL)?;
                    let answer = m.select.take_outbound();
                    m.channel.encrypt(&answer, &mut self.out)?;
                    let Progress::Done { remainder, .. } = progress else {
                        self.stage = Stage::SelectMuxer(m);
                        return Ok(UpgradeProgress::Pending);
                    };
                    let MuxerSelection {
                        channel,
                        remote,
                        noise_identity,
                        ..
                    } = *m;
                    let connection =
                        self.start_session(channel, remote, noise_identity, &remainder, now)?;
                    self.stage = Stage::Done(connection);
                    return Ok(UpgradeProgress::Done);
                }
                Stage::Done(mut c) => {
                    // Data for the finished connection: pass it on.
                    c.feed(&data, now)?;
                    self.stage = Stage::Done(c);
                    return Ok(UpgradeProgress::Done);
                }
                Stage::Over => return Err(UpgradeError::Over),
            }
        }
    }

    /// Yamux over `channel`, with the plaintext that came with the muxer's
    /// selection to read once the connection is established.
    fn start_session(
        &self,
        channel: Channel,
        remote: PeerId,
        noise_identity: Option<RemoteIdentity>,
        first: &[u8],
        now: Instant,
    ) -> Result<Box<SecuredConnection>, UpgradeError> {
        let mode = if self.dialer {
            Mode::Client
        } else {
            Mode::Server
        };
        let mut session = Session::new(mode, self.yamux);
        // A first RTT sample lets windows grow from the start.
        session.ping(now);
        Ok(Box::new(SecuredConnection::new(
            channel,
            session,
            remote,
            noise_identity,
            first,
        )))
    }

    /// The handshake for the negotiated security `protocol`.
    fn start_security(
        &mut self,
        protocol: &str,
        security: Option<DialSecurity>,
    ) -> Result<Stage, UpgradeError> {
        if protocol == TLS_PROTOCOL {
            let mut tls = match (security, &self.tls_server) {
                (Some(DialSecurity::Tls { config, observed }), _) => {
                    TlsChannel::client(config, self.expected, observed)?
                }
                (None, Some(server)) => TlsChannel::server(server.clone())?,
                _ => return Err(UpgradeError::Tls("no TLS config".into())),
            };
            // The dialer's ClientHello goes out at once.
            tls.encrypt(&[], &mut self.out)?;
            return Ok(Stage::Tls(Box::new(tls)));
        }
        let config = NoiseConfig {
            stream_muxers: if self.inline_muxer {
                vec![MUXER_PROTOCOL.to_string()]
            } else {
                Vec::new()
            },
        };
        let mut handshake = if self.dialer {
            NoiseHandshake::initiator(&self.keypair, self.expected, config, self.seed)?
        } else {
            NoiseHandshake::responder(&self.keypair, config, self.seed)?
        };
        self.out.extend_from_slice(&handshake.take_outbound());
        Ok(Stage::Noise(Box::new(handshake)))
    }

    /// Start the muxer's selection inside `channel`.
    fn select_muxer(
        &mut self,
        mut channel: Channel,
        remote: PeerId,
        noise_identity: Option<RemoteIdentity>,
        plain: BytesMut,
    ) -> Result<Stage, UpgradeError> {
        let mut select = if self.dialer {
            Negotiation::dialer(MUXER_PROTOCOL, MultistreamLimits::default())
        } else {
            Negotiation::listener(MultistreamLimits::default())
        };
        channel.encrypt(&select.take_outbound(), &mut self.out)?;
        Ok(Stage::SelectMuxer(Box::new(MuxerSelection {
            channel,
            remote,
            noise_identity,
            select,
            plain,
        })))
    }
}
