//! The steps from a raw TCP connection to a [`SecuredConnection`].
//!
//! ```text
//! raw:    multistream-select  /noise
//! raw:    Noise XX handshake  (PeerId checked against the dialed one)
//! noise:  multistream-select  /yamux/1.0.0
//! noise:  Yamux
//! ```
//! The dialer proposes, the listener answers. Bytes that arrive right
//! after a step's last message (a lazy dialer's proposal, early Yamux
//! frames) are handed to the next step.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use libp2p_identity::{Keypair, PeerId};

use super::error::UpgradeError;
use super::secured::SecuredConnection;
use crate::multistream::{MultistreamLimits, Negotiation, Progress};
use crate::noise::{
    HandshakeProgress, NoiseConfig, NoiseHandshake, NoiseTransport, RemoteIdentity,
};
use crate::yamux::{Mode, Session, YamuxConfig};

/// The security protocol id.
pub const NOISE_PROTOCOL: &str = "/noise";
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

enum Stage {
    SelectSecurity(Negotiation),
    Handshake(Box<NoiseHandshake>),
    SelectMuxer(Box<MuxerSelection>),
    Done(Box<SecuredConnection>),
    Over,
}

/// The muxer's multistream-select, inside the Noise channel.
struct MuxerSelection {
    noise: NoiseTransport,
    remote: RemoteIdentity,
    select: Negotiation,
}

/// An upgrade under way, dialer or listener.
pub struct TcpUpgrade {
    dialer: bool,
    keypair: Keypair,
    expected: Option<PeerId>,
    seed: [u8; 32],
    yamux: YamuxConfig,
    stage: Stage,
    out: BytesMut,
}

impl TcpUpgrade {
    /// The dialing side; fails in the handshake unless the remote proves
    /// `expected` (when given). `seed` feeds the Noise keys.
    pub fn dialer(
        keypair: &Keypair,
        expected: Option<PeerId>,
        yamux: YamuxConfig,
        seed: [u8; 32],
    ) -> Self {
        let mut select = Negotiation::dialer(NOISE_PROTOCOL, MultistreamLimits::default());
        let mut out = BytesMut::new();
        out.extend_from_slice(&select.take_outbound());
        Self {
            dialer: true,
            keypair: keypair.clone(),
            expected,
            seed,
            yamux,
            stage: Stage::SelectSecurity(select),
            out,
        }
    }

    /// The listening side.
    pub fn listener(keypair: &Keypair, yamux: YamuxConfig, seed: [u8; 32]) -> Self {
        let mut select = Negotiation::listener(MultistreamLimits::default());
        let mut out = BytesMut::new();
        out.extend_from_slice(&select.take_outbound());
        Self {
            dialer: false,
            keypair: keypair.clone(),
            expected: None,
            seed,
            yamux,
            stage: Stage::SelectSecurity(select),
            out,
        }
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
    /// [`SecuredConnection::take_outbound`] (Noise nonces are in order).
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
                Stage::SelectSecurity(mut select) => {
                    let progress = select.feed(data, &|p| p == NOISE_PROTOCOL)?;
                    self.out.extend_from_slice(&select.take_outbound());
                    let Progress::Done { remainder, .. } = progress else {
                        self.stage = Stage::SelectSecurity(select);
                        return Ok(UpgradeProgress::Pending);
                    };
                    let handshake = if self.dialer {
                        NoiseHandshake::initiator(
                            &self.keypair,
                            self.expected,
                            NoiseConfig::default(),
                            self.seed,
                        )?
                    } else {
                        NoiseHandshake::responder(&self.keypair, NoiseConfig::default(), self.seed)?
                    };
                    self.stage = Stage::Handshake(Box::new(handshake));
                    data = remainder;
                }
                Stage::Handshake(mut handshake) => {
                    let progress = handshake.feed(&data)?;
                    self.out.extend_from_slice(&handshake.take_outbound());
                    if progress == HandshakeProgress::Pending {
                        self.stage = Stage::Handshake(handshake);
                        return Ok(UpgradeProgress::Pending);
                    }
                    let (mut noise, remote) = handshake.into_transport()?;
                    let mut select = if self.dialer {
                        Negotiation::dialer(MUXER_PROTOCOL, MultistreamLimits::default())
                    } else {
                        Negotiation::listener(MultistreamLimits::default())
                    };
                    noise.encrypt(&select.take_outbound(), &mut self.out)?;
                    self.stage = Stage::SelectMuxer(Box::new(MuxerSelection {
                        noise,
                        remote,
                        select,
                    }));
                    // Bytes after the last handshake message were carried
                    // over into the transport: the next stage decrypts them.
                    data = Bytes::new();
                }
                Stage::SelectMuxer(mut m) => {
                    let mut plain = BytesMut::new();
                    m.noise.decrypt(&data, &mut plain)?;
                    let progress = m.select.feed(plain.freeze(), &|p| p == MUXER_PROTOCOL)?;
                    let echo = m.select.take_outbound();
                    m.noise.encrypt(&echo, &mut self.out)?;
                    let Progress::Done { remainder, .. } = progress else {
                        self.stage = Stage::SelectMuxer(m);
                        return Ok(UpgradeProgress::Pending);
                    };
                    let MuxerSelection { noise, remote, .. } = *m;
                    let mode = if self.dialer {
                        Mode::Client
                    } else {
                        Mode::Server
                    };
                    let mut session = Session::new(mode, self.yamux);
                    session.feed(&remainder, now)?;
                    // A first RTT sample lets windows grow from the start.
                    session.ping(now);
                    self.stage =
                        Stage::Done(Box::new(SecuredConnection::new(noise, session, remote)));
                    return Ok(UpgradeProgress::Done);
                }
                Stage::Done(c) => {
                    // Data for the finished connection: pass it on.
                    let mut c = c;
                    c.feed(&data, now)?;
                    self.stage = Stage::Done(c);
                    return Ok(UpgradeProgress::Done);
                }
                Stage::Over => return Err(UpgradeError::Over),
            }
        }
    }
}
