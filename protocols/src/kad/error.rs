//! Typed errors: [`WireError`] for one stream's exchange, [`KadError`] for
//! one query, [`StoreError`] for the record and provider store.

use std::time::Duration;

use swarm::{OpenStreamError, PeerId, StreamError};

/// Why one Kademlia stream (a request we sent or one we answered) failed.
/// The stream is reset; the connection and the node carry on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A length prefix announced a message over the limit.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    MessageTooLarge {
        /// The announced size.
        size: usize,
        /// The configured limit ([`KadConfig::max_message_size`](super::KadConfig::max_message_size)).
        limit: usize,
    },
    /// A length prefix was not a valid uvarint.
    #[error("malformed length prefix")]
    InvalidLengthPrefix,
    /// The bytes were not a protobuf `Message`.
    #[error("undecodable message: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The message type is not one we know (or not a request / answer
    /// where one was expected).
    #[error("unexpected message type {0}")]
    UnexpectedType(i32),
    /// The message lacks something its type needs (a record, a key).
    #[error("invalid message: {0}")]
    Invalid(&'static str),
    /// We refused what the message asked us to store.
    #[error("refused: {0}")]
    Refused(#[from] StoreError),
    /// The stream ended inside a message, or before the answer.
    #[error("stream ended before a whole message")]
    Truncated,
    /// The peer has too many of our inbound streams open at once.
    #[error("too many inbound requests from one peer (limit {0})")]
    TooManyInbound(usize),
    /// A stream carried more requests than we answer on one stream.
    #[error("too many requests on one stream (limit {0})")]
    TooManyRequests(usize),
    /// No answer (or no whole request) within the request timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The peer could not be reached: no address, or every dial failed.
    #[error("cannot reach the peer: {0}")]
    Unreachable(String),
    /// The stream could not be opened.
    #[error("cannot open stream: {0}")]
    OpenStream(#[from] OpenStreamError),
    /// The stream failed (reset, stopped, protocol refused, connection lost).
    #[error("stream failed: {0}")]
    Stream(#[from] StreamError),
}

/// Why a query (lookup, put, get, provide) failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KadError {
    /// The routing table is empty: there is nobody to ask. Bootstrap first.
    #[error("no known peers to query")]
    NoKnownPeers,
    /// The lookup ended and found nothing (no record, no provider, no
    /// address for the peer).
    #[error("not found")]
    NotFound,
    /// The query did not finish within its timeout.
    #[error("query timed out after {0:?}")]
    Timeout(Duration),
    /// Fewer peers than the quorum stored (or returned) the record.
    #[error("quorum of {quorum} not reached: {reached}")]
    QuorumFailed {
        /// How many we needed.
        quorum: usize,
        /// How many we got.
        reached: usize,
    },
    /// The record or key was refused locally (too large, invalid for its
    /// namespace, store full).
    #[error("refused: {0}")]
    Store(#[from] StoreError),
    /// Too many queries are running; try again later.
    #[error("too many queries running (limit {0})")]
    TooManyQueries(usize),
    /// The Kademlia plugin is gone (the swarm stopped) or never answered.
    #[error("the Kademlia plugin did not answer: {0}")]
    Unavailable(String),
}

/// Why the store refused a record or provider.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The record (key + value) is over [`KadConfig::max_record_size`](super::KadConfig::max_record_size).
    #[error("record of {size} bytes exceeds the limit of {limit}")]
    RecordTooLarge {
        /// Key plus value length.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The store holds the maximum number of records.
    #[error("record store full ({0} records)")]
    RecordsFull(usize),
    /// The key has the maximum number of providers.
    #[error("key has the maximum of {0} providers")]
    ProvidersPerKeyFull(usize),
    /// The store holds provider records for the maximum number of keys.
    #[error("provider store full ({0} keys)")]
    ProviderKeysFull(usize),
    /// A key is empty or longer than the limit.
    #[error("invalid key length {0}")]
    InvalidKey(usize),
    /// The namespace's validator refused the record.
    #[error("invalid record: {0}")]
    Invalid(String),
    /// An ADD_PROVIDER announced a provider other than its sender.
    #[error("provider {claimed} announced by another peer {sender}")]
    ForeignProvider {
        /// The provider the message named.
        claimed: PeerId,
        /// Who sent it.
        sender: PeerId,
    },
}
