//! The libp2p Noise framing: every Noise message is preceded by its length
//! as a 2-byte big-endian integer, so no message exceeds 65,535 bytes.

use bytes::{Buf, Bytes, BytesMut};

/// The largest Noise message (the spec's and the framing's limit).
pub const MAX_MESSAGE: usize = 65_535;

/// Collects received bytes and cuts them into whole messages.
#[derive(Debug, Default)]
pub(super) struct Deframer {
    buf: BytesMut,
}

impl Deframer {
    /// Append received bytes.
    pub(super) fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The length the next message announces, once its prefix is here.
    pub(super) fn next_len(&self) -> Option<usize> {
        (self.buf.len() >= 2).then(|| usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]])))
    }

    /// The next whole message, if it has arrived.
    pub(super) fn next_message(&mut self) -> Option<Bytes> {
        let len = self.next_len()?;
        if self.buf.len() < 2 + len {
            return None;
        }
        self.buf.advance(2);
        Some(self.buf.split_to(len).freeze())
    }

    /// Whether bytes of an unfinished message are held.
    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Hand over whatever is buffered (e.g. to the transport after the
    /// handshake).
    pub(super) fn into_inner(self) -> BytesMut {
        self.buf
    }

    /// A deframer holding `buf` already.
    pub(super) fn with(buf: BytesMut) -> Self {
        Self { buf }
    }
}

/// Append `msg` with its length prefix; `msg` must be at most
/// [`MAX_MESSAGE`] bytes (callers split before).
pub(super) fn put_message(msg: &[u8], out: &mut BytesMut) {
    debug_assert!(msg.len() <= MAX_MESSAGE);
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
}
