//! TLS 1.3 over TCP (`/tls/1.0.0`, libp2p/specs `tls/tls.md`): the same
//! certificates and verifiers as QUIC ([`crate::tls`]), on rustls'
//! sans-I/O connection.

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use libp2p_identity::PeerId;
use rustls::pki_types::ServerName;

use super::error::UpgradeError;
use crate::tls::{ObservedPeer, peer_id_from_chain};

/// One side of a TLS session over a byte stream.
pub(super) struct TlsChannel {
    conn: rustls::Connection,
    /// Dialer: the PeerId dialed, and what the server's certificate named.
    expected: Option<(PeerId, ObservedPeer)>,
}

impl TlsChannel {
    /// The dialing side; `observed` comes with `config` from
    /// `TlsIdentity::client_config(expected)`.
    pub(super) fn client(
        config: Arc<rustls::ClientConfig>,
        expected: Option<PeerId>,
        observed: ObservedPeer,
    ) -> Result<Self, UpgradeError> {
        // No SNI is sent (the config disables it); rustls still wants a name.
        let name = ServerName::try_from("l").map_err(|e| UpgradeError::Tls(e.to_string()))?;
        let mut conn = rustls::ClientConnection::new(config, name)
            .map_err(|e| UpgradeError::Tls(e.to_string()))?;
        // Our own buffers are bounded (the Yamux session's); rustls' limit
        // would only turn a big write into a short one.
        conn.set_buffer_limit(None);
        Ok(Self {
            conn: conn.into(),
            expected: expected.map(|e| (e, observed)),
        })
    }

    /// The listening side.
    pub(super) fn server(config: Arc<rustls::ServerConfig>) -> Result<Self, UpgradeError> {
        let mut conn =
            rustls::ServerConnection::new(config).map_err(|e| UpgradeError::Tls(e.to_string()))?;
        conn.set_buffer_limit(None);
        Ok(Self {
            conn: conn.into(),
            expected: None,
        })
    }

    /// Whether the handshake is still under way.
    pub(super) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The remote's PeerId from its verified certificate.
    pub(super) fn remote_peer(&self) -> Result<PeerId, UpgradeError> {
        let chain = self
            .conn
            .peer_certificates()
            .ok_or_else(|| UpgradeError::Tls("no peer certificate".into()))?;
        peer_id_from_chain(chain).map_err(|e| UpgradeError::Tls(e.to_string()))
    }

    /// Ciphertext received: plaintext is appended to `plain`.
    pub(super) fn feed(
        &mut self,
        mut data: &[u8],
        plain: &mut BytesMut,
    ) -> Result<(), UpgradeError> {
        while !data.is_empty() {
            let n = self
                .conn
                .read_tls(&mut data)
                .map_err(|e| UpgradeError::Tls(e.to_string()))?;
            if n == 0 {
                break;
            }
            if let Err(e) = self.conn.process_new_packets() {
                return Err(self.handshake_error(e));
            }
            self.drain_plaintext(plain)?;
        }
        Ok(())
    }

    fn drain_plaintext(&mut self, plain: &mut BytesMut) -> Result<(), UpgradeError> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.conn.reader().read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => plain.put_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                // The remote closed its side: no more plaintext.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(UpgradeError::Tls(e.to_string())),
            }
        }
    }

    /// A failed handshake, as a `WrongPeerId` when the server proved
    /// another PeerId than the one dialed.
    fn handshake_error(&self, e: rustls::Error) -> UpgradeError {
        if let Some((expected, observed)) = &self.expected
            && let Some(actual) = observed.get()
            && actual != *expected
        {
            return UpgradeError::WrongPeerId {
                expected: *expected,
                actual,
            };
        }
        UpgradeError::Tls(e.to_string())
    }

    /// Encrypt `plain` (nothing for an empty slice) and append all pending
    /// TLS records (handshake included) to `out`.
    pub(super) fn encrypt(&mut self, plain: &[u8], out: &mut BytesMut) -> Result<(), UpgradeError> {
        if !plain.is_empty() {
            self.conn
                .writer()
                .write_all(plain)
                .map_err(|e| UpgradeError::Tls(e.to_string()))?;
        }
        let mut w = out.writer();
        while self.conn.wants_write() {
            self.conn
                .write_tls(&mut w)
                .map_err(|e| UpgradeError::Tls(e.to_string()))?;
        }
        Ok(())
    }
}
