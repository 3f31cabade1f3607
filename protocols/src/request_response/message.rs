//! The wire message: `uvarint(length) ‖ bytes`, reassembled from chunks
//! within a size limit.

use bytes::{Bytes, BytesMut};

use super::MAX_PREFIX_LEN;
use super::error::RequestError;

/// `uvarint(len)`, the prefix of a message of `len` bytes.
pub(super) fn length_prefix(len: usize) -> Vec<u8> {
    let mut buf = unsigned_varint::encode::u64_buffer();
    unsigned_varint::encode::u64(len as u64, &mut buf).to_vec()
}

/// `Ok` if a message of `len` bytes fits `limit`.
pub(super) fn check_size(len: usize, limit: usize) -> Result<(), RequestError> {
    if len > limit {
        return Err(RequestError::TooLarge {
            len: len as u64,
            limit,
        });
    }
    Ok(())
}

/// Reassembles one length-prefixed message from chunks, never buffering
/// more than the limit (plus the prefix).
#[derive(Debug)]
pub(super) struct MessageReader {
    limit: usize,
    buf: BytesMut,
    /// The message's length, once its prefix has arrived.
    len: Option<usize>,
}

impl MessageReader {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            limit,
            buf: BytesMut::new(),
            len: None,
        }
    }

    /// Add received bytes; the message once it is complete. Bytes after
    /// the message are an error.
    pub(super) fn push(&mut self, data: &[u8]) -> Result<Option<Bytes>, RequestError> {
        let mut data = data;
        if self.len.is_none() {
            // Take prefix bytes one at a time: a prefix is at most 10 bytes.
            while self.len.is_none() {
                let Some((&byte, rest)) = data.split_first() else {
                    return Ok(None);
                };
                data = rest;
                self.buf.extend_from_slice(&[byte]);
                match unsigned_varint::decode::u64(&self.buf) {
                    Ok((len, _)) => {
                        if len > self.limit as u64 {
                            let limit = self.limit;
                            return Err(RequestError::TooLarge { len, limit });
                        }
                        self.buf.clear();
                        self.len = Some(len as usize);
                    }
                    Err(unsigned_varint::decode::Error::Insufficient)
                        if self.buf.len() < MAX_PREFIX_LEN => {}
                    Err(e) => return Err(RequestError::Malformed(format!("length prefix: {e}"))),
                }
            }
        }
        let len = self.len.unwrap_or(0);
        if self.buf.len() + data.len() > len {
            return Err(RequestError::Malformed("bytes after the message".into()));
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() < len {
            return Ok(None);
        }
        Ok(Some(self.buf.split().freeze()))
    }
}
