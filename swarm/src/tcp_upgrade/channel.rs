//! The security layer under the muxer: Noise or TLS, one interface.

use bytes::BytesMut;

use super::error::UpgradeError;
use super::tls_channel::TlsChannel;
use crate::noise::NoiseTransport;

/// A secured byte stream after its handshake.
pub(super) enum Channel {
    /// `/noise`.
    Noise(Box<NoiseTransport>),
    /// `/tls/1.0.0`.
    Tls(Box<TlsChannel>),
}

impl Channel {
    /// Ciphertext in (split anywhere), plaintext appended to `plain`.
    pub(super) fn decrypt(
        &mut self,
        data: &[u8],
        plain: &mut BytesMut,
    ) -> Result<(), UpgradeError> {
        match self {
            Channel::Noise(n) => Ok(n.decrypt(data, plain)?),
            Channel::Tls(t) => t.feed(data, plain),
        }
    }

    /// Plaintext in, ciphertext appended to `out` (nothing for nothing).
    pub(super) fn encrypt(&mut self, plain: &[u8], out: &mut BytesMut) -> Result<(), UpgradeError> {
        match self {
            Channel::Noise(n) => Ok(n.encrypt(plain, out)?),
            Channel::Tls(t) => t.encrypt(plain, out),
        }
    }

    /// The socket ended: an error if it ended inside a message.
    pub(super) fn on_eof(&self) -> Result<(), UpgradeError> {
        match self {
            Channel::Noise(n) => Ok(n.on_eof()?),
            // rustls reports a truncated record as an error on the next read.
            Channel::Tls(_) => Ok(()),
        }
    }
}
