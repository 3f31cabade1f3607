//! The Noise-secured channel after the handshake: plaintext in, framed
//! ciphertext out, and back.
//!
//! After the handshake Noise is ChaChaPoly with a counter nonce per
//! direction (the spec's transport phase). This runs it on ring directly,
//! sealing and opening in place in the output buffer: one copy of the
//! bytes, and no zero-filling of a buffer that the cipher then overwrites
//! (what a `snow` transport state needs, about 5 % of the CPU time of a
//! TCP transfer).

use bytes::BytesMut;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

use super::error::NoiseError;
use super::framing::{Deframer, MAX_MESSAGE};

/// ChaChaPoly's authentication tag.
const TAG_LEN: usize = 16;

/// The most plaintext one Noise message carries (65,535 - 16).
pub const MAX_PLAINTEXT: usize = MAX_MESSAGE - TAG_LEN;

/// One direction's cipher state: the key and the next nonce.
struct CipherState {
    key: LessSafeKey,
    nonce: u64,
}

impl CipherState {
    fn new(key: &[u8; 32]) -> Self {
        Self {
            key: LessSafeKey::new(
                UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte ChaChaPoly key"),
            ),
            nonce: 0,
        }
    }

    /// The nonce for the next message: 32 zero bits, then the counter
    /// little-endian (Noise's ChaChaPoly). The spec reserves 2^64 - 1.
    fn next_nonce(&mut self) -> Result<Nonce, NoiseError> {
        if self.nonce == u64::MAX {
            return Err(NoiseError::Protocol("noise nonce exhausted".into()));
        }
        let mut bytes = [0u8; 12];
        bytes[4..].copy_from_slice(&self.nonce.to_le_bytes());
        self.nonce += 1;
        Ok(Nonce::assume_unique_for_key(bytes))
    }
}

/// A Noise transport: encrypts and frames outbound bytes, deframes and
/// decrypts inbound ones.
pub struct NoiseTransport {
    send: CipherState,
    recv: CipherState,
    deframer: Deframer,
    failed: Option<NoiseError>,
}

impl NoiseTransport {
    /// The transport for the keys the handshake split into: `send` for
    /// our messages, `recv` for the remote's.
    pub(super) fn new(send: &[u8; 32], recv: &[u8; 32], deframer: Deframer) -> Self {
        Self {
            send: CipherState::new(send),
            recv: CipherState::new(recv),
            deframer,
            failed: None,
        }
    }

    /// Encrypt `plaintext` into as few messages as fit (each at most
    /// [`MAX_PLAINTEXT`]) appended to `out`. An empty `plaintext` sends
    /// nothing: an empty Noise message makes some peers reset the connection.
    pub fn encrypt(&mut self, plaintext: &[u8], out: &mut BytesMut) -> Result<(), NoiseError> {
        out.reserve(plaintext.len() + plaintext.len().div_ceil(MAX_PLAINTEXT) * (2 + TAG_LEN));
        for chunk in plaintext.chunks(MAX_PLAINTEXT) {
            let len = chunk.len() + TAG_LEN;
            out.extend_from_slice(&(len as u16).to_be_bytes());
            let start = out.len();
            out.extend_from_slice(chunk);
            let nonce = self.send.next_nonce()?;
            let tag = self
                .send
                .key
                .seal_in_place_separate_tag(nonce, Aad::empty(), &mut out[start..])
                .map_err(|_| NoiseError::Protocol("noise encryption failed".into()))?;
            out.extend_from_slice(tag.as_ref());
        }
        Ok(())
    }

    /// Decrypt what `data` completes (split anywhere), appending plaintext
    /// to `out`. A message that fails to authenticate ends the transport.
    pub fn decrypt(&mut self, data: &[u8], out: &mut BytesMut) -> Result<(), NoiseError> {
        if let Some(e) = &self.failed {
            return Err(NoiseError::Failed(Box::new(e.clone())));
        }
        let result = if self.deframer.is_empty() {
            self.decrypt_direct(data, out)
                .map(|rest| self.deframer.extend(rest))
        } else {
            self.deframer.extend(data);
            self.decrypt_buffered(out)
        };
        if let Err(e) = &result {
            tracing::debug!(error = %e, "noise transport failed");
            self.failed = Some(e.clone());
        }
        result
    }

    fn decrypt_buffered(&mut self, out: &mut BytesMut) -> Result<(), NoiseError> {
        while let Some(msg) = self.deframer.next_message() {
            self.decrypt_one(&msg, out)?;
        }
        Ok(())
    }

    /// Decrypt one whole message straight into `out`.
    fn decrypt_one(&mut self, msg: &[u8], out: &mut BytesMut) -> Result<(), NoiseError> {
        if msg.len() < TAG_LEN {
            return Err(NoiseError::Decrypt);
        }
        let start = out.len();
        out.extend_from_slice(msg);
        let nonce = self.recv.next_nonce()?;
        match self
            .recv
            .key
            .open_in_place(nonce, Aad::empty(), &mut out[start..])
        {
            Ok(plain) => {
                let n = plain.len();
                out.truncate(start + n);
                Ok(())
            }
            Err(_) => {
                out.truncate(start);
                Err(NoiseError::Decrypt)
            }
        }
    }

    /// Decrypt the whole messages at the front of `data` in place of
    /// buffering them (the common case: the deframer holds nothing);
    /// returns what is left, a partial message.
    fn decrypt_direct<'a>(
        &mut self,
        mut data: &'a [u8],
        out: &mut BytesMut,
    ) -> Result<&'a [u8], NoiseError> {
        while data.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
            if data.len() < 2 + len {
                break;
            }
            self.decrypt_one(&data[2..2 + len], out)?;
            data = &data[2 + len..];
        }
        Ok(data)
    }

    /// The connection ended: an error if it ended inside a message.
    pub fn on_eof(&self) -> Result<(), NoiseError> {
        if self.deframer.is_empty() {
            Ok(())
        } else {
            Err(NoiseError::Truncated)
        }
    }
}
