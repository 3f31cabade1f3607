//! Length-prefixed protobuf framing, as most libp2p protocols use it: each
//! message is a uvarint byte count, then that many bytes of protobuf.
//!
//! [`FrameReader`] reassembles messages from stream chunks cut anywhere,
//! with bounded memory: it refuses a length over its limit as soon as the
//! prefix arrives, so at most one prefix and one message are buffered.

use bytes::{Bytes, BytesMut};

/// What can be wrong with a framed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is not a valid uvarint.
    #[error("invalid length prefix")]
    InvalidLengthPrefix,
    /// The announced length is over the limit.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The announced length.
        size: usize,
        /// The reader's limit.
        limit: usize,
    },
    /// The bytes are not the expected protobuf message.
    #[error("undecodable message: {0}")]
    Decode(String),
}

/// Encode `message` with its length prefix.
pub fn encode<M: prost::Message>(message: &M) -> Bytes {
    Bytes::from(message.encode_length_delimited_to_vec())
}

/// Reassembles length-prefixed messages from chunks.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: BytesMut,
    max_size: usize,
}

impl FrameReader {
    /// A reader refusing messages over `max_size` bytes.
    pub fn new(max_size: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max_size,
        }
    }

    /// Take a chunk (it may cut prefixes and messages anywhere).
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole message, `Ok(None)` until it has fully arrived. After
    /// an error the framing is lost: drop the stream.
    pub fn next_message<M: prost::Message + Default>(&mut self) -> Result<Option<M>, FrameError> {
        let (len, rest) = match unsigned_varint::decode::usize(&self.buf) {
            Ok(decoded) => decoded,
            // A prefix cut by a chunk boundary; past 10 bytes the decoder
            // fails with `Overflow`, so only a prefix waits here.
            Err(unsigned_varint::decode::Error::Insufficient) => return Ok(None),
            Err(_) => return Err(FrameError::InvalidLengthPrefix),
        };
        if len > self.max_size {
            return Err(FrameError::TooLarge {
                size: len,
                limit: self.max_size,
            });
        }
        if rest.len() < len {
            return Ok(None);
        }
        let prefix = self.buf.len() - rest.len();
        let frame = self.buf.split_to(prefix + len);
        M::decode(&frame[prefix..])
            .map(Some)
            .map_err(|e| FrameError::Decode(e.to_string()))
    }

    /// Bytes received but not yet returned as a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Take the bytes received past the last message (when the stream
    /// turns into something else after it, e.g. a relayed connection).
    pub fn take_rest(&mut self) -> Bytes {
        self.buf.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, PartialEq, prost::Message)]
    struct Msg {
        #[prost(bytes = "vec", tag = "1")]
        data: Vec<u8>,
    }

    #[test]
    fn messages_cut_at_every_byte_come_out_whole_and_in_order() {
        let mut wire = encode(&Msg { data: vec![1; 300] }).to_vec();
        wire.extend_from_slice(&encode(&Msg { data: vec![2] }));
        let mut reader = FrameReader::new(1024);
        let mut out = Vec::new();
        for byte in &wire {
            reader.push(std::slice::from_ref(byte));
            while let Some(m) = reader.next_message::<Msg>().unwrap() {
                out.push(m);
            }
        }
        assert_eq!(out, vec![Msg { data: vec![1; 300] }, Msg { data: vec![2] }]);
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn an_oversized_length_is_refused_from_its_prefix() {
        let mut reader = FrameReader::new(100);
        reader.push(&[101]);
        assert_eq!(
            reader.next_message::<Msg>(),
            Err(FrameError::TooLarge {
                size: 101,
                limit: 100
            })
        );
    }

    #[test]
    fn garbage_is_a_decode_error_and_a_bad_prefix_is_refused() {
        let mut reader = FrameReader::new(100);
        reader.push(&[3, 0x0f, 0xff, 0xff]);
        assert!(matches!(
            reader.next_message::<Msg>(),
            Err(FrameError::Decode(_))
        ));
        let mut reader = FrameReader::new(100);
        reader.push(&[0xff; 11]);
        assert_eq!(
            reader.next_message::<Msg>(),
            Err(FrameError::InvalidLengthPrefix)
        );
    }
}
