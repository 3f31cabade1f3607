//! Why upgrading (or running) a TCP connection failed.

use libp2p_identity::PeerId;

use crate::multistream::MultistreamError;
use crate::noise::NoiseError;
use crate::yamux::ConnectionError;

/// A failed TCP upgrade or secured connection; the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    /// Selecting the security protocol or the muxer failed (e.g. the
    /// remote refused `/noise` or `/yamux/1.0.0`).
    #[error("protocol selection failed: {0}")]
    Select(#[from] MultistreamError),
    /// The Noise handshake or channel failed (including a wrong PeerId).
    #[error(transparent)]
    Noise(#[from] NoiseError),
    /// The TLS handshake or channel failed.
    #[error("tls: {0}")]
    Tls(String),
    /// Over TLS: the server's certificate named another PeerId than the
    /// one dialed (detected in the handshake). Over Noise the same failure
    /// is [`NoiseError::WrongPeerId`]; [`UpgradeError::wrong_peer_id`]
    /// answers for both.
    #[error("wrong peer id: expected {expected}, remote presented {actual}")]
    WrongPeerId {
        /// The PeerId we dialed.
        expected: PeerId,
        /// The PeerId the remote proved.
        actual: PeerId,
    },
    /// Both sides listed muxers in the Noise handshake and none is common
    /// (the spec fails the handshake then).
    #[error("no common muxer: the remote offered {offered:?}")]
    NoCommonMuxer {
        /// The muxers the remote listed.
        offered: Vec<String>,
    },
    /// The Yamux session broke.
    #[error(transparent)]
    Yamux(#[from] ConnectionError),
    /// The upgrade was used after it failed or finished.
    #[error("the upgrade is over")]
    Over,
}

impl UpgradeError {
    /// `(expected, actual)` when the remote proved another PeerId than the
    /// one dialed, over Noise or TLS.
    pub fn wrong_peer_id(&self) -> Option<(PeerId, PeerId)> {
        match self {
            UpgradeError::WrongPeerId { expected, actual }
            | UpgradeError::Noise(NoiseError::WrongPeerId { expected, actual }) => {
                Some((*expected, *actual))
            }
            _ => None,
        }
    }
}
