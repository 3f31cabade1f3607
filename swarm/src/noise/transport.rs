//! The Noise-secured channel after the handshake: plaintext in, framed
//! ciphertext out, and back.

use bytes::BytesMut;
use snow::TransportState;

use super::error::NoiseError;
use super::framing::{Deframer, MAX_MESSAGE};

/// ChaChaPoly's authentication tag.
const TAG_LEN: usize = 16;

/// The most plaintext one Noise message carries (65,535 - 16).
pub const MAX_PLAINTEXT: usize = MAX_MESSAGE - TAG_LEN;

/// A Noise transport: encrypts and frames outbound bytes, deframes and
/// decrypts inbound ones.
pub struct NoiseTransport {
    state: TransportState,
    deframer: Deframer,
    failed: Option<NoiseError>,
}

impl NoiseTransport {
    pub(super) fn new(state: TransportState, deframer: Deframer) -> Self {
        Self {
            state,
            deframer,
            failed: None,
        }
    }

    /// Encrypt `plaintext` into as few messages as fit (each at most
    /// [`MAX_PLAINTEXT`]) appended to `out`. An empty `plaintext` sends
    /// nothing: an empty Noise message makes some peers reset the connection.
    pub fn encrypt(&mut self, plaintext: &[u8], out: &mut BytesMut) -> Result<(), NoiseError> {
        for chunk in plaintext.chunks(MAX_PLAINTEXT) {
            let start = out.len();
            let len = chunk.len() + TAG_LEN;
            out.resize(start + 2 + len, 0);
            out[start..start + 2].copy_from_slice(&(len as u16).to_be_bytes());
            let n = self
                .state
                .write_message(chunk, &mut out[start + 2..])
                .map_err(NoiseError::from_snow)?;
            debug_assert_eq!(n, len);
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
        out.resize(start + msg.len(), 0);
        match self.state.read_message(msg, &mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(NoiseError::from_snow(e))
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
