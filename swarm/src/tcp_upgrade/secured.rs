//! An upgraded TCP connection: a Yamux session inside a Noise channel.
//!
//! Driving contract: hand received socket bytes to
//! [`SecuredConnection::feed`]; after every call, write
//! [`SecuredConnection::take_outbound`] to the socket; use the streams
//! through [`SecuredConnection::session`]. Plaintext is batched into as
//! few Noise messages as fit, so many small Yamux frames share one.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use libp2p_identity::PeerId;

use super::error::UpgradeError;
use crate::noise::{NoiseTransport, RemoteIdentity};
use crate::yamux::Session;

/// Noise around Yamux, with the remote's proved identity.
pub struct SecuredConnection {
    noise: NoiseTransport,
    session: Session,
    remote: RemoteIdentity,
    plain: BytesMut,
    out: BytesMut,
}

impl SecuredConnection {
    pub(super) fn new(noise: NoiseTransport, session: Session, remote: RemoteIdentity) -> Self {
        Self {
            noise,
            session,
            remote,
            plain: BytesMut::new(),
            out: BytesMut::new(),
        }
    }

    /// Ciphertext the upgrade produced but did not hand out: it goes first.
    pub(super) fn prepend_outbound(&mut self, mut first: BytesMut) {
        first.extend_from_slice(&self.out);
        self.out = first;
    }

    /// The remote's PeerId, as the Noise handshake proved it.
    pub fn remote_peer(&self) -> PeerId {
        self.remote.public_key.to_peer_id()
    }

    /// The remote's identity (key and the muxers it listed).
    pub fn remote_identity(&self) -> &RemoteIdentity {
        &self.remote
    }

    /// The Yamux session: open, accept, read and write streams.
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    /// Bytes received from the socket, split anywhere.
    pub fn feed(&mut self, data: &[u8], now: Instant) -> Result<(), UpgradeError> {
        self.noise.decrypt(data, &mut self.plain)?;
        if !self.plain.is_empty() {
            let plain = self.plain.split();
            self.session.feed(&plain, now)?;
        }
        Ok(())
    }

    /// Ciphertext to write to the socket (empty when nothing is queued).
    pub fn take_outbound(&mut self) -> Result<Bytes, UpgradeError> {
        let plain = self.session.take_outbound();
        self.noise.encrypt(&plain, &mut self.out)?;
        Ok(self.out.split().freeze())
    }

    /// The socket reached end of file: an error if it ended inside a Noise
    /// message.
    pub fn on_eof(&self) -> Result<(), UpgradeError> {
        Ok(self.noise.on_eof()?)
    }
}
