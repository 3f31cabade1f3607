//! Typed errors: what a publish can fail with, and what is wrong with a
//! peer's bytes or messages.

/// Why [`publish`](super::GossipRequest::Publish) failed. A publish succeeds
/// when at least one peer's queue took the message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// No peer subscribed to the topic (or in its fanout) to send to.
    #[error("no peers to publish to")]
    InsufficientPeers,
    /// The message, framed, is larger than the maximum transmit size.
    #[error("message of {size} bytes exceeds the transmit limit of {limit}")]
    MessageTooLarge {
        /// Encoded size.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// A message with the same id was already seen (published or received).
    #[error("duplicate message")]
    Duplicate,
    /// Every peer we would send to had a full queue.
    #[error("all {0} target peers' queues are full")]
    AllQueuesFull(usize),
    /// Signing failed, or StrictSign is configured without a keypair.
    #[error("cannot sign: {0}")]
    Signing(String),
}

/// What was wrong with bytes a peer sent on a gossipsub stream. The stream
/// is dropped and the error counted; the node keeps serving.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A length prefix was not a valid uvarint.
    #[error("malformed length prefix")]
    InvalidLengthPrefix,
    /// A length prefix announced an RPC over the limit.
    #[error("RPC of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Announced size.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// The RPC was not valid protobuf for the schema.
    #[error("undecodable RPC: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The stream ended in the middle of an RPC.
    #[error("stream ended inside an RPC")]
    Truncated,
}

/// Why a received message was refused before validation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMessage {
    /// StrictSign requires a signature and there is none.
    #[error("missing signature")]
    MissingSignature,
    /// The signature does not verify.
    #[error("invalid signature")]
    InvalidSignature,
    /// `from` is not a valid PeerId, or the key does not match it.
    #[error("invalid author")]
    InvalidAuthor,
    /// The sequence number is missing or not 8 bytes (StrictSign).
    #[error("invalid sequence number")]
    InvalidSeqno,
    /// StrictNoSign / Anonymous forbid author, seqno, signature and key.
    #[error("message carries fields the policy forbids")]
    UnexpectedFields,
    /// The application's validator rejected it.
    #[error("rejected by validation")]
    Rejected,
}
