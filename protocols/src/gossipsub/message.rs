//! Messages: the decoded form handed to applications, message ids,
//! validation outcomes, and signing / verification (libp2p pubsub:
//! the signature covers `libp2p-pubsub:` followed by the protobuf message
//! without its `signature` and `key` fields).

use prost::Message as _;
use swarm::{Keypair, PeerId, PublicKey};

use super::error::InvalidMessage;
use super::proto;

/// How our messages are authored and how received ones are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningPolicy {
    /// We sign with the host key (author, 8-byte seqno, signature, and the
    /// key if the PeerId does not inline it); received messages must carry
    /// a valid signature. The spec's default.
    StrictSign,
    /// No author, seqno, signature or key, sent or accepted (Ethereum);
    /// pair it with a content-hash message id.
    StrictNoSign,
    /// Like StrictNoSign on the way out; received messages are accepted
    /// with whatever fields they carry (unchecked).
    Anonymous,
}

/// The prefix of the signed bytes.
const SIGNING_PREFIX: &[u8] = b"libp2p-pubsub:";
/// Multihash code of an identity hash (a PeerId that inlines its key).
const IDENTITY_MULTIHASH: u64 = 0;

/// A message id, as the configured id function computes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub Vec<u8>);

/// A received or published message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipMessage {
    /// The author (absent unless signed / attributed).
    pub source: Option<PeerId>,
    /// The payload.
    pub data: Vec<u8>,
    /// The author's sequence number (8 bytes big-endian on the wire).
    pub sequence_number: Option<u64>,
    /// The topic.
    pub topic: String,
}

/// What validation says about a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validation {
    /// Deliver and forward.
    Accept,
    /// Invalid: drop, and count against the peer that sent it.
    Reject,
    /// Drop without penalty (e.g. not interesting now).
    Ignore,
}

/// The default id: source PeerId bytes followed by the decimal seqno (as
/// go-libp2p and rust-libp2p do); the data's hash for unattributed
/// messages.
pub fn source_seqno_id(message: &GossipMessage) -> MessageId {
    match (&message.source, message.sequence_number) {
        (Some(source), Some(seqno)) => {
            let mut id = source.to_base58().into_bytes();
            id.extend_from_slice(seqno.to_string().as_bytes());
            MessageId(id)
        }
        _ => content_hash_id(message),
    }
}

/// A content id: the first 20 bytes of SHA-256 over the topic and data
/// (Ethereum hashes a domain and the decompressed data; pass your own
/// function for that).
pub fn content_hash_id(message: &GossipMessage) -> MessageId {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(message.topic.as_bytes());
    ctx.update(&[0]);
    ctx.update(&message.data);
    MessageId(ctx.finish().as_ref()[..20].to_vec())
}

/// Build the wire message for our own publish under `policy`.
pub(crate) fn author(
    policy: SigningPolicy,
    keypair: Option<&Keypair>,
    topic: &str,
    data: Vec<u8>,
    seqno: u64,
) -> Result<proto::Message, String> {
    match policy {
        SigningPolicy::StrictNoSign | SigningPolicy::Anonymous => Ok(proto::Message {
            from: None,
            data: Some(data),
            seqno: None,
            topic: topic.to_owned(),
            signature: None,
            key: None,
        }),
        SigningPolicy::StrictSign => {
            let keypair = keypair.ok_or("StrictSign without a keypair")?;
            let public = keypair.public();
            let peer = public.to_peer_id();
            let mut message = proto::Message {
                from: Some(peer.to_bytes()),
                data: Some(data),
                seqno: Some(seqno.to_be_bytes().to_vec()),
                topic: topic.to_owned(),
                signature: None,
                key: None,
            };
            let mut signed = SIGNING_PREFIX.to_vec();
            message.encode(&mut signed).map_err(|e| e.to_string())?;
            message.signature = Some(keypair.sign(&signed).map_err(|e| e.to_string())?);
            if inlined_key(&peer).is_none() {
                message.key = Some(public.encode_protobuf());
            }
            Ok(message)
        }
    }
}

/// The public key a PeerId inlines (ed25519, secp256k1), if any.
fn inlined_key(peer: &PeerId) -> Option<PublicKey> {
    let hash = peer.as_ref();
    if hash.code() != IDENTITY_MULTIHASH {
        return None;
    }
    PublicKey::try_decode_protobuf(hash.digest()).ok()
}

/// Decode a received message's fields (seqno, author) without checking
/// its signature: enough to compute its id and drop a duplicate before
/// paying for verification.
pub(crate) fn decode(message: &proto::Message) -> Result<GossipMessage, InvalidMessage> {
    let sequence_number = match &message.seqno {
        None => None,
        Some(bytes) => Some(u64::from_be_bytes(
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| InvalidMessage::InvalidSeqno)?,
        )),
    };
    let source = match &message.from {
        None => None,
        Some(bytes) => Some(PeerId::from_bytes(bytes).map_err(|_| InvalidMessage::InvalidAuthor)?),
    };
    Ok(GossipMessage {
        source,
        data: message.data.clone().unwrap_or_default(),
        sequence_number,
        topic: message.topic.clone(),
    })
}

/// Check a decoded received message against `policy`.
pub(crate) fn verify(
    policy: SigningPolicy,
    message: &proto::Message,
    decoded: &GossipMessage,
) -> Result<(), InvalidMessage> {
    match policy {
        SigningPolicy::Anonymous => Ok(()),
        SigningPolicy::StrictNoSign => {
            if message.from.is_some()
                || message.seqno.is_some()
                || message.signature.is_some()
                || message.key.is_some()
            {
                return Err(InvalidMessage::UnexpectedFields);
            }
            Ok(())
        }
        SigningPolicy::StrictSign => {
            let source = decoded.source.ok_or(InvalidMessage::InvalidAuthor)?;
            if decoded.sequence_number.is_none() {
                return Err(InvalidMessage::InvalidSeqno);
            }
            let signature = message
                .signature
                .as_ref()
                .ok_or(InvalidMessage::MissingSignature)?;
            let key = match &message.key {
                Some(bytes) => PublicKey::try_decode_protobuf(bytes)
                    .map_err(|_| InvalidMessage::InvalidAuthor)?,
                None => inlined_key(&source).ok_or(InvalidMessage::InvalidAuthor)?,
            };
            if key.to_peer_id() != source {
                return Err(InvalidMessage::InvalidAuthor);
            }
            let unsigned = proto::Message {
                signature: None,
                key: None,
                ..message.clone()
            };
            let mut signed = SIGNING_PREFIX.to_vec();
            unsigned
                .encode(&mut signed)
                .map_err(|_| InvalidMessage::InvalidSignature)?;
            if !key.verify(&signed, signature) {
                return Err(InvalidMessage::InvalidSignature);
            }
            Ok(())
        }
    }
}
