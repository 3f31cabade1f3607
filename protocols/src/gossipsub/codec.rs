//! Framing: every RPC is a uvarint length followed by that many bytes of
//! protobuf. The outbound stream is long-lived; an inbound stream is read
//! until EOF, decoding RPCs as they complete, with at most one length
//! prefix plus one RPC of [`max_transmit_size`](super::GossipsubConfig)
//! buffered.

use bytes::{Bytes, BytesMut};
use prost::Message as _;

use super::error::WireError;
use super::proto::Rpc;

/// Encode one RPC with its length prefix.
pub fn encode(rpc: &Rpc) -> Bytes {
    Bytes::from(rpc.encode_length_delimited_to_vec())
}

/// Splits an inbound stream into RPCs, refusing oversized or undecodable
/// ones. After an error the stream is unusable (framing is lost).
#[derive(Debug, Default)]
pub struct RpcReader {
    buf: BytesMut,
    max_size: usize,
}

impl RpcReader {
    /// A reader that refuses RPCs over `max_size` bytes.
    pub fn new(max_size: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max_size,
        }
    }

    /// Take a chunk (chunks may cut prefixes and RPCs anywhere); push every
    /// RPC it completes onto `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<Rpc>) -> Result<(), WireError> {
        self.buf.extend_from_slice(data);
        loop {
            let (len, rest) = match unsigned_varint::decode::usize(&self.buf) {
                Ok(decoded) => decoded,
                // A prefix cut by a chunk boundary; `Overflow` comes past
                // 10 bytes, so at most a prefix is buffered here.
                Err(unsigned_varint::decode::Error::Insufficient) => return Ok(()),
                Err(_) => return Err(WireError::InvalidLengthPrefix),
            };
            if len > self.max_size {
                return Err(WireError::TooLarge {
                    size: len,
                    limit: self.max_size,
                });
            }
            if rest.len() < len {
                return Ok(());
            }
            let prefix = self.buf.len() - rest.len();
            let frame = self.buf.split_to(prefix + len);
            out.push(Rpc::decode(&frame[prefix..])?);
        }
    }

    /// Whether the stream ended cleanly (between RPCs).
    pub fn is_between_rpcs(&self) -> bool {
        self.buf.is_empty()
    }
}
