//! Why a Noise handshake or a Noise-secured connection failed.

use libp2p_identity::PeerId;

/// A Noise failure. Every variant ends the connection: after one, the
/// handshake or transport refuses all later input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoiseError {
    /// The remote proved a different PeerId than the one dialed. Detected
    /// inside the handshake, before we send our own identity.
    #[error("wrong peer id: expected {expected}, remote presented {actual}")]
    WrongPeerId {
        /// The PeerId we dialed.
        expected: PeerId,
        /// The PeerId the remote's identity key gives.
        actual: PeerId,
    },
    /// A handshake message longer than [`MAX_HANDSHAKE_MESSAGE`](super::MAX_HANDSHAKE_MESSAGE).
    #[error("noise handshake message of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A message failed to decrypt or authenticate (corrupt, truncated in
    /// its body, or from someone without the keys).
    #[error("noise message failed to decrypt")]
    Decrypt,
    /// The handshake payload is not a valid `NoiseHandshakePayload`.
    #[error("malformed noise handshake payload")]
    BadPayload,
    /// The payload's identity key cannot be decoded.
    #[error("malformed identity key in the noise handshake")]
    BadIdentityKey,
    /// The identity key's signature over the remote's static key is wrong.
    #[error("bad signature over the noise static key")]
    BadSignature,
    /// The connection ended in the middle of a handshake message or of a
    /// transport frame.
    #[error("connection ended inside a noise message")]
    Truncated,
    /// The Noise state machine refused an operation (a bug, or input in the
    /// wrong order).
    #[error("noise protocol error: {0}")]
    Protocol(String),
    /// Our identity key could not sign.
    #[error("cannot sign the noise static key: {0}")]
    Signing(String),
    /// The handshake or transport failed earlier.
    #[error("noise failed earlier: {0}")]
    Failed(Box<NoiseError>),
}

impl NoiseError {
    pub(super) fn from_snow(e: snow::Error) -> Self {
        match e {
            snow::Error::Decrypt => NoiseError::Decrypt,
            other => NoiseError::Protocol(other.to_string()),
        }
    }
}
