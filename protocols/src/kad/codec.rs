//! Framing: each message on a stream is a uvarint length followed by that
//! many bytes of protobuf [`proto::Message`]. A request stream may carry
//! several requests one after the other (go and rust-libp2p reuse streams),
//! each answered before the next is read.
//!
//! Also here: turning the wire's peer entries into typed [`PeerInfo`]s,
//! dropping what does not parse instead of failing the message (a peer
//! that sends one bad address still gives us the others).

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use swarm::{Multiaddr, PeerId};

use super::WireError;
use super::proto;

/// Most addresses we keep of one peer entry, and send for one peer: enough
/// for a host's IPv4/IPv6 × QUIC/TCP addresses, small enough that 20 peers
/// fit a message.
pub const MAX_ADDRS_PER_PEER: usize = 8;

/// A peer and its addresses, as carried in `closerPeers` / `providerPeers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer.
    pub peer: PeerId,
    /// Its addresses (without `/p2p/…`), at most [`MAX_ADDRS_PER_PEER`].
    pub addrs: Vec<Multiaddr>,
}

/// Encode one message with its uvarint length prefix.
pub(crate) fn encode(message: &proto::Message) -> Bytes {
    Bytes::from(message.encode_length_delimited_to_vec())
}

/// Encode one message with its length prefix (for tests playing a peer).
pub fn encode_message(message: &proto::Message) -> Bytes {
    encode(message)
}

/// Reassembles the messages of one stream from chunks, with bounded memory:
/// at most one length prefix plus one message of `max_message_size` bytes
/// is buffered.
pub(crate) struct MessageReader {
    buf: BytesMut,
    max_message_size: usize,
}

impl MessageReader {
    /// A reader that refuses messages over `max_message_size` bytes.
    pub(crate) fn new(max_message_size: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max_message_size,
        }
    }

    /// Take a chunk (chunks may split prefixes and messages anywhere).
    /// A chunk bigger than what a message may still need is kept only up to
    /// the next message's limit check, which [`MessageReader::next`] makes.
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole message, `Ok(None)` if it has not fully arrived.
    pub(crate) fn next(&mut self) -> Result<Option<proto::Message>, WireError> {
        let (len, rest) = match unsigned_varint::decode::usize(&self.buf) {
            Ok(decoded) => decoded,
            // A prefix cut by a chunk boundary: wait for the rest. The
            // decoder fails with `Overflow` past 10 bytes.
            Err(unsigned_varint::decode::Error::Insufficient) => return Ok(None),
            Err(_) => return Err(WireError::InvalidLengthPrefix),
        };
        if len > self.max_message_size {
            return Err(WireError::MessageTooLarge {
                size: len,
                limit: self.max_message_size,
            });
        }
        if rest.len() < len {
            return Ok(None);
        }
        let prefix = self.buf.len() - rest.len();
        let frame = self.buf.split_to(prefix + len);
        Ok(Some(proto::Message::decode(&frame[prefix..])?))
    }

    /// Bytes buffered that are not yet a whole message.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Parse wire peer entries: entries whose id is not a PeerId are dropped,
/// as are unparsable addresses; at most `max` entries and
/// [`MAX_ADDRS_PER_PEER`] addresses each are kept, duplicates dropped.
pub(crate) fn decode_peers(peers: &[proto::Peer], max: usize) -> Vec<PeerInfo> {
    let mut out: Vec<PeerInfo> = Vec::new();
    for entry in peers {
        if out.len() >= max {
            break;
        }
        let Ok(peer) = PeerId::from_bytes(&entry.id) else {
            tracing::trace!("dropping a peer entry with an invalid id");
            continue;
        };
        if out.iter().any(|p| p.peer == peer) {
            continue;
        }
        let mut addrs: Vec<Multiaddr> = Vec::new();
        for raw in &entry.addrs {
            if addrs.len() >= MAX_ADDRS_PER_PEER {
                break;
            }
            if let Ok(mut addr) = Multiaddr::try_from(raw.clone()) {
                if let Some(swarm::multiaddr::Protocol::P2p(id)) = addr.iter().last() {
                    if id != peer {
                        continue;
                    }
                    addr.pop();
                }
                if !addr.is_empty() && !addrs.contains(&addr) {
                    addrs.push(addr);
                }
            }
        }
        out.push(PeerInfo { peer, addrs });
    }
    out
}

/// The wire entry for a peer.
pub(crate) fn encode_peer(info: &PeerInfo, connected: bool) -> proto::Peer {
    proto::Peer {
        id: info.peer.to_bytes(),
        addrs: info
            .addrs
            .iter()
            .take(MAX_ADDRS_PER_PEER)
            .map(|a| a.to_vec())
            .collect(),
        connection: if connected { proto::CONNECTED } else { 0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find_node(key: &[u8]) -> proto::Message {
        proto::Message {
            r#type: proto::FIND_NODE,
            key: key.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn messages_split_at_every_byte_come_out_whole_and_in_order() {
        let mut wire = encode(&find_node(b"a")).to_vec();
        wire.extend_from_slice(&encode(&find_node(b"bb")));
        let mut reader = MessageReader::new(1024);
        let mut got = Vec::new();
        for byte in &wire {
            reader.push(std::slice::from_ref(byte));
            while let Some(m) = reader.next().unwrap() {
                got.push(m.key);
            }
        }
        assert_eq!(got, vec![b"a".to_vec(), b"bb".to_vec()]);
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn an_oversized_prefix_is_refused_before_the_body() {
        let mut reader = MessageReader::new(100);
        let mut buf = unsigned_varint::encode::usize_buffer();
        reader.push(unsigned_varint::encode::usize(101, &mut buf));
        assert_eq!(
            reader.next(),
            Err(WireError::MessageTooLarge {
                size: 101,
                limit: 100
            })
        );
        let mut reader = MessageReader::new(100);
        reader.push(&[0xff; 11]);
        assert_eq!(reader.next(), Err(WireError::InvalidLengthPrefix));
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let mut reader = MessageReader::new(100);
        reader.push(&[3, 0x0f, 0xff, 0xff]);
        assert!(matches!(reader.next(), Err(WireError::Decode(_))));
    }

    #[test]
    fn bad_peer_entries_are_dropped_not_fatal() {
        let good = PeerId::random();
        let other = PeerId::random();
        let addr: Multiaddr = "/ip4/10.0.0.1/udp/1/quic-v1".parse().unwrap();
        let with_other_id = addr.clone().with(swarm::multiaddr::Protocol::P2p(other));
        let entries = vec![
            proto::Peer {
                id: b"not a peer id".to_vec(),
                ..Default::default()
            },
            proto::Peer {
                id: good.to_bytes(),
                addrs: vec![
                    vec![0xff, 0xff],
                    addr.to_vec(),
                    addr.to_vec(),
                    with_other_id.to_vec(),
                ],
                connection: 0,
            },
            proto::Peer {
                id: good.to_bytes(),
                ..Default::default()
            },
        ];
        let peers = decode_peers(&entries, 20);
        assert_eq!(
            peers,
            vec![PeerInfo {
                peer: good,
                addrs: vec![addr]
            }]
        );
        assert!(decode_peers(&entries, 0).is_empty());
    }
}
