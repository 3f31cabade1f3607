//! Framing of identify streams: each message is a uvarint length followed by
//! that many bytes of protobuf. A stream carries one or more messages and
//! ends with EOF; go-libp2p splits large answers, so the reader merges every
//! message it gets until the stream ends.

use bytes::{Bytes, BytesMut};
use prost::Message;

use super::IdentifyError;
use super::proto;

/// Encode one message with its uvarint length prefix.
pub(crate) fn encode(message: &proto::Identify) -> Bytes {
    Bytes::from(message.encode_length_delimited_to_vec())
}

/// Collects and merges the messages of one inbound identify stream, with
/// bounded memory: at most one length prefix plus one message is buffered.
pub(crate) struct MessageReader {
    buf: BytesMut,
    merged: Option<proto::Identify>,
    messages: usize,
    max_message_size: usize,
    max_messages: usize,
}

impl MessageReader {
    /// A reader that refuses messages over `max_message_size` bytes and
    /// streams with more than `max_messages` messages.
    pub(crate) fn new(max_message_size: usize, max_messages: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            merged: None,
            messages: 0,
            max_message_size,
            max_messages,
        }
    }

    /// Take a chunk of the stream (chunks may split prefixes and messages
    /// anywhere) and decode every message it completes.
    pub(crate) fn push(&mut self, data: &[u8]) -> Result<(), IdentifyError> {
        self.buf.extend_from_slice(data);
        loop {
            let (len, rest) = match unsigned_varint::decode::usize(&self.buf) {
                Ok(decoded) => decoded,
                // A prefix cut by a chunk boundary: wait for the rest. The
                // decoder fails with `Overflow` past 10 bytes, so this cannot
                // buffer more than a prefix.
                Err(unsigned_varint::decode::Error::Insufficient) => return Ok(()),
                Err(_) => return Err(IdentifyError::InvalidLengthPrefix),
            };
            if len > self.max_message_size {
                return Err(IdentifyError::MessageTooLarge {
                    size: len,
                    limit: self.max_message_size,
                });
            }
            if self.messages >= self.max_messages {
                return Err(IdentifyError::TooManyMessages(self.max_messages));
            }
            if rest.len() < len {
                return Ok(());
            }
            let prefix = self.buf.len() - rest.len();
            let frame = self.buf.split_to(prefix + len);
            self.merged
                .get_or_insert_with(proto::Identify::default)
                .merge(&frame[prefix..])?;
            self.messages += 1;
        }
    }

    /// The stream ended: the merged message, or why there is none.
    pub(crate) fn finish(self) -> Result<proto::Identify, IdentifyError> {
        if !self.buf.is_empty() {
            return Err(IdentifyError::Truncated);
        }
        self.merged.ok_or(IdentifyError::Empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(agent: &str, protocols: &[&str]) -> proto::Identify {
        proto::Identify {
            agent_version: Some(agent.into()),
            protocols: protocols.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn messages_split_at_every_byte_are_merged() {
        let mut wire = encode(&message("a", &["/x"])).to_vec();
        wire.extend_from_slice(&encode(&message("b", &["/y"])));
        let mut reader = MessageReader::new(8192, 10);
        for byte in &wire {
            reader.push(std::slice::from_ref(byte)).unwrap();
        }
        let merged = reader.finish().unwrap();
        // Later scalars win, repeated fields append.
        assert_eq!(merged.agent_version.as_deref(), Some("b"));
        assert_eq!(merged.protocols, vec!["/x", "/y"]);
    }

    #[test]
    fn over_limit_length_is_refused_before_the_body_arrives() {
        let mut reader = MessageReader::new(100, 10);
        let mut prefix = unsigned_varint::encode::usize_buffer();
        let prefix = unsigned_varint::encode::usize(101, &mut prefix);
        assert_eq!(
            reader.push(prefix),
            Err(IdentifyError::MessageTooLarge {
                size: 101,
                limit: 100
            })
        );
    }

    #[test]
    fn too_many_messages_are_refused() {
        let wire = encode(&message("a", &[]));
        let mut reader = MessageReader::new(8192, 2);
        reader.push(&wire).unwrap();
        reader.push(&wire).unwrap();
        assert_eq!(reader.push(&wire), Err(IdentifyError::TooManyMessages(2)));
    }

    #[test]
    fn eof_inside_a_message_or_before_any_is_an_error() {
        let wire = encode(&message("a", &[]));
        let mut reader = MessageReader::new(8192, 10);
        reader.push(&wire[..wire.len() - 1]).unwrap();
        assert_eq!(reader.finish(), Err(IdentifyError::Truncated));
        assert_eq!(
            MessageReader::new(8192, 10).finish(),
            Err(IdentifyError::Empty)
        );
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let mut reader = MessageReader::new(8192, 10);
        // Length 3, then an invalid wire type (7) for field 1.
        let r = reader.push(&[3, 0x0f, 0xff, 0xff]);
        assert!(matches!(r, Err(IdentifyError::Decode(_))), "{r:?}");
    }
}
