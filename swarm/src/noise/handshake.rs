//! The Noise XX handshake as libp2p runs it, without I/O.
//!
//! ```text
//! initiator -> responder: e                      (empty payload)
//! responder -> initiator: e, ee, s, es           (responder's identity payload)
//! initiator -> responder: s, se                  (initiator's identity payload)
//! ```
//! The initiator checks the responder's identity against the PeerId it
//! dialed when message 2 arrives, before it reveals its own identity.

use bytes::{Bytes, BytesMut};
use libp2p_identity::{Keypair, PeerId};
use snow::{Builder, HandshakeState};

use super::error::NoiseError;
use super::framing::{Deframer, MAX_MESSAGE, put_message};
use super::payload::{self, RemoteIdentity};
use super::resolver::Resolver;
use super::transport::NoiseTransport;

/// The Noise protocol libp2p uses.
const PARAMS: &str = "Noise_XX_25519_ChaChaPoly_SHA256";

/// Longest handshake message we accept. The spec allows 65,535; real
/// ones hold two X25519 keys, an identity key (an RSA one is the largest,
/// ~550 bytes) and a signature: 16 KiB leaves room for extensions while
/// keeping what an unauthenticated peer can make us buffer small.
pub const MAX_HANDSHAKE_MESSAGE: usize = 16 * 1024;

/// What [`NoiseHandshake::feed`] reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeProgress {
    /// More messages are needed.
    Pending,
    /// The handshake is complete: take the transport with
    /// [`NoiseHandshake::into_transport`] (after sending what
    /// [`NoiseHandshake::take_outbound`] holds).
    Done,
}

/// Settings for one handshake.
#[derive(Debug, Clone, Default)]
pub struct NoiseConfig {
    /// Muxers listed in our payload's extensions, in our order of
    /// preference. Listing any promises the inline muxer selection of the
    /// spec (a peer that lists them too skips multistream-select for the
    /// muxer); the TCP upgrade lists Yamux and keeps that promise.
    pub stream_muxers: Vec<String>,
}

/// One side of a libp2p Noise XX handshake.
pub struct NoiseHandshake {
    state: HandshakeState,
    keypair: Keypair,
    static_public: Vec<u8>,
    expected: Option<PeerId>,
    config: NoiseConfig,
    deframer: Deframer,
    out: BytesMut,
    remote: Option<RemoteIdentity>,
    failed: Option<NoiseError>,
}

impl NoiseHandshake {
    /// The dialing side. Message 1 is queued at once; the handshake fails
    /// with [`NoiseError::WrongPeerId`] unless the remote proves `expected`
    /// (when given). `seed` feeds the key generation (32 bytes from a
    /// CSPRNG, or a test's seed).
    pub fn initiator(
        keypair: &Keypair,
        expected: Option<PeerId>,
        config: NoiseConfig,
        seed: [u8; 32],
    ) -> Result<Self, NoiseError> {
        let mut this = Self::new(keypair, expected, config, seed, true)?;
        this.write(&[])?;
        Ok(this)
    }

    /// The listening side.
    pub fn responder(
        keypair: &Keypair,
        config: NoiseConfig,
        seed: [u8; 32],
    ) -> Result<Self, NoiseError> {
        Self::new(keypair, None, config, seed, false)
    }

    fn new(
        keypair: &Keypair,
        expected: Option<PeerId>,
        config: NoiseConfig,
        seed: [u8; 32],
        initiator: bool,
    ) -> Result<Self, NoiseError> {
        let params = PARAMS
            .parse()
            .map_err(|e: snow::Error| NoiseError::Protocol(e.to_string()))?;
        let builder = Builder::with_resolver(params, Box::new(Resolver::new(seed)));
        let static_keys = builder.generate_keypair().map_err(NoiseError::from_snow)?;
        let builder = builder
            .local_private_key(&static_keys.private)
            .map_err(NoiseError::from_snow)?;
        let state = if initiator {
            builder.build_initiator()
        } else {
            builder.build_responder()
        }
        .map_err(NoiseError::from_snow)?;
        Ok(Self {
            state,
            keypair: keypair.clone(),
            static_public: static_keys.public,
            expected,
            config,
            deframer: Deframer::default(),
            out: BytesMut::new(),
            remote: None,
            failed: None,
        })
    }

    /// Bytes to send now (empty when none).
    pub fn take_outbound(&mut self) -> Bytes {
        self.out.split().freeze()
    }

    /// Feed received bytes, split anywhere.
    pub fn feed(&mut self, data: &[u8]) -> Result<HandshakeProgress, NoiseError> {
        if let Some(e) = &self.failed {
            return Err(NoiseError::Failed(Box::new(e.clone())));
        }
        self.deframer.extend(data);
        let result = self.run();
        if let Err(e) = &result {
            tracing::debug!(error = %e, "noise handshake failed");
            self.failed = Some(e.clone());
        }
        result
    }

    /// The connection ended: an error unless the handshake finished and no
    /// partial message is held.
    pub fn on_eof(&self) -> Result<(), NoiseError> {
        if self.state.is_handshake_finished() && self.deframer.is_empty() {
            Ok(())
        } else {
            Err(NoiseError::Truncated)
        }
    }

    fn run(&mut self) -> Result<HandshakeProgress, NoiseError> {
        while !self.state.is_handshake_finished() {
            if let Some(len) = self.deframer.next_len()
                && len > MAX_HANDSHAKE_MESSAGE
            {
                return Err(NoiseError::FrameTooLarge {
                    len,
                    max: MAX_HANDSHAKE_MESSAGE,
                });
            }
            let Some(msg) = self.deframer.next_message() else {
                return Ok(HandshakeProgress::Pending);
            };
            let mut payload = vec![0u8; msg.len()];
            let n = self
                .state
                .read_message(&msg, &mut payload)
                .map_err(NoiseError::from_snow)?;
            // Message 1 carries no payload; 2 and 3 carry the sender's identity.
            if let Some(remote_static) = self.state.get_remote_static() {
                let remote = payload::verify(&payload[..n], remote_static)?;
                if let Some(expected) = self.expected {
                    let actual = remote.public_key.to_peer_id();
                    if actual != expected {
                        return Err(NoiseError::WrongPeerId { expected, actual });
                    }
                }
                self.remote = Some(remote);
            }
            if !self.state.is_handshake_finished() {
                let ours = payload::encode(
                    &self.keypair,
                    &self.static_public,
                    &self.config.stream_muxers,
                )?;
                self.write(&ours)?;
            }
        }
        Ok(HandshakeProgress::Done)
    }

    fn write(&mut self, payload: &[u8]) -> Result<(), NoiseError> {
        let mut msg = vec![0u8; MAX_MESSAGE];
        let n = self
            .state
            .write_message(payload, &mut msg)
            .map_err(NoiseError::from_snow)?;
        put_message(&msg[..n], &mut self.out);
        Ok(())
    }

    /// The remote's identity, once proved.
    pub fn remote(&self) -> Option<&RemoteIdentity> {
        self.remote.as_ref()
    }

    /// The secured channel and the remote's identity, once
    /// [`HandshakeProgress::Done`]; bytes received after the last handshake
    /// message are carried over to the transport.
    pub fn into_transport(mut self) -> Result<(NoiseTransport, RemoteIdentity), NoiseError> {
        if let Some(e) = self.failed {
            return Err(NoiseError::Failed(Box::new(e)));
        }
        let remote = self
            .remote
            .take()
            .ok_or_else(|| NoiseError::Protocol("handshake not finished".into()))?;
        if !self.state.is_handshake_finished() {
            return Err(NoiseError::Protocol("handshake not finished".into()));
        }
        // The transport keys, initiator-to-responder first (Noise's
        // Split()); the transport runs them itself (see `transport.rs`).
        let (i_to_r, r_to_i) = self.state.dangerously_get_raw_split();
        let (send, recv) = if self.state.is_initiator() {
            (i_to_r, r_to_i)
        } else {
            (r_to_i, i_to_r)
        };
        let deframer = Deframer::with(std::mem::take(&mut self.deframer).into_inner());
        Ok((NoiseTransport::new(&send, &recv, deframer), remote))
    }
}
