//! Why upgrading (or running) a TCP connection failed.

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
    /// The Yamux session broke.
    #[error(transparent)]
    Yamux(#[from] ConnectionError),
    /// The upgrade was used after it failed or finished.
    #[error("the upgrade is over")]
    Over,
}
