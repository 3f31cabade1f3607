//! An upgraded TCP connection: a Yamux session inside a Noise or TLS
//! channel.
//!
//! Driving contract: hand received socket bytes to
//! [`SecuredConnection::feed`]; after every call, write
//! [`SecuredConnection::take_outbound`] to the socket; use the streams
//! through [`SecuredConnection::session`]. Plaintext is batched into as
//! few Noise messages as fit, so many small Yamux frames share one.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use libp2p_identity::PeerId;

use super::channel::Channel;
use super::error::UpgradeError;
use crate::noise::RemoteIdentity;
use crate::yamux::Session;

/// Noise (or TLS) around Yamux, with the remote's proved identity.
pub struct SecuredConnection {
    channel: Channel,
    session: Session,
    remote_peer: PeerId,
    noise_identity: Option<RemoteIdentity>,
    plain: BytesMut,
    out: BytesMut,
}

impl SecuredConnection {
    /// A connection whose first `early` plaintext bytes (Yamux frames that
    /// came right behind the upgrade's last message) the session reads at
    /// the next [`SecuredConnection::feed`], once the connection is
    /// established: what they do wrong then ends an established connection,
    /// with Yamux's go-away, rather than failing the handshake.
    pub(super) fn new(
        channel: Channel,
        session: Session,
        remote_peer: PeerId,
        noise_identity: Option<RemoteIdentity>,
        early: &[u8],
    ) -> Self {
        Self {
            channel,
            session,
            remote_peer,
            noise_identity,
            plain: BytesMut::from(early),
            out: BytesMut::new(),
        }
    }

    /// Ciphertext the upgrade produced but did not hand out: it goes first.
    pub(super) fn prepend_outbound(&mut self, mut first: BytesMut) {
        first.extend_from_slice(&self.out);
        self.out = first;
    }

    /// The remote's PeerId, as the Noise or TLS handshake proved it.
    pub fn remote_peer(&self) -> PeerId {
        self.remote_peer
    }

    /// The remote's Noise identity (key and the muxers it listed); `None`
    /// over TLS.
    pub fn noise_identity(&self) -> Option<&RemoteIdentity> {
        self.noise_identity.as_ref()
    }

    /// Whether the connection is secured by TLS rather than Noise.
    pub fn is_tls(&self) -> bool {
        matches!(self.channel, Channel::Tls(_))
    }

    /// The Yamux session: open, accept, read and write streams.
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    /// Bytes received from the socket, split anywhere.
    pub fn feed(&mut self, data: &[u8], now: Instant) -> Result<(), UpgradeError> {
        self.channel.decrypt(data, &mut self.plain)?;
        if !self.plain.is_empty() {
            let plain = self.plain.split().freeze();
            self.session.feed_bytes(plain, now)?;
        }
        Ok(())
    }

    /// Ciphertext to write to the socket (empty when nothing is queued).
    pub fn take_outbound(&mut self) -> Result<Bytes, UpgradeError> {
        let plain = self.session.take_outbound();
        self.channel.encrypt(&plain, &mut self.out)?;
        Ok(self.out.split().freeze())
    }

    /// The socket reached end of file: an error if it ended inside a Noise
    /// message.
    pub fn on_eof(&self) -> Result<(), UpgradeError> {
        self.channel.on_eof()
    }
}
