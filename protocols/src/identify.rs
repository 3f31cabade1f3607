//! identify (`/ipfs/id/1.0.0`) and identify push (`/ipfs/id/push/1.0.0`).
//!
//! On every new connection both sides ask the other who it is: the asker
//! opens an `/ipfs/id/1.0.0` stream and finishes its side at once; the
//! answerer writes one message with all six fields (public key, listen
//! addresses, protocols, the address it sees for the asker, protocol and
//! agent version) and finishes. The asker reads until EOF, merging every
//! message (go-libp2p splits large answers), checks that the public key
//! belongs to the connection's PeerId, records what it learned in the peer
//! store and emits [`IdentifyEvent::Received`].
//!
//! When our listen addresses or protocols change (or on an [`IdentifyPush`]
//! event), we open `/ipfs/id/push/1.0.0` to every connection and send the
//! same message; pushes we receive are merged into what we knew.
//!
//! Every exchange is bounded: a message size limit, a message count limit
//! and a timeout. A stream that breaks one is reset and an
//! [`IdentifyEvent::Error`] is emitted; the connection stays up.
//!
//! ```no_run
//! use protocols::identify::{Identify, IdentifyConfig};
//! # let keypair = swarm::Keypair::generate_ed25519();
//! # let mut runtime = swarm::Runtime::new(swarm::SwarmConfig::new(keypair.clone())).unwrap();
//! let mut config = IdentifyConfig::new(keypair.public());
//! config.agent_version = "my-app/1.0".into();
//! runtime.add_protocol(Box::new(Identify::new(config)));
//! ```

mod codec;
mod info;
mod plugin;
mod proto;

use std::time::Duration;

use swarm::{ConnId, Multiaddr, OpenStreamError, PeerId, PublicKey, StreamError};

pub use info::IdentifyInfo;
pub use plugin::Identify;

/// The identify protocol id.
pub const PROTOCOL: &str = "/ipfs/id/1.0.0";
/// The identify push protocol id.
pub const PUSH_PROTOCOL: &str = "/ipfs/id/push/1.0.0";
/// The protocol version we announce unless configured otherwise.
pub const DEFAULT_PROTOCOL_VERSION: &str = "/ipfs/0.1.0";
/// The default limit on one message's size.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 8 * 1024;

/// How the identify plugin behaves.
#[derive(Clone, Debug)]
pub struct IdentifyConfig {
    /// Our host public key (its PeerId must be the swarm's). The plugin API
    /// exposes only the PeerId, which does not always contain the key.
    pub public_key: PublicKey,
    /// The protocol version we announce. Default [`DEFAULT_PROTOCOL_VERSION`].
    pub protocol_version: String,
    /// The agent version we announce. Default `swarm-protocols/<version>`.
    pub agent_version: String,
    /// Largest message we accept, in bytes (not counting its length
    /// prefix). Default [`DEFAULT_MAX_MESSAGE_SIZE`] (8 KiB).
    pub max_message_size: usize,
    /// Most messages we merge from one stream. Default 10 (go-libp2p's).
    pub max_messages: usize,
    /// Longest an exchange (request, answer or push) may take. Default 30 s.
    pub timeout: Duration,
    /// How long listen addresses learned from a peer stay in the peer store.
    /// Default 1 h.
    pub listen_addr_ttl: Duration,
    /// Push to connected peers when we start listening on a new address.
    /// Default `true`.
    pub push_listen_addr_updates: bool,
    /// Addresses to announce besides our listen addresses (e.g. a public
    /// address in front of a NAT). Listen addresses on an unspecified IP
    /// (`0.0.0.0`, `::`) are not announced, since no peer can dial them.
    pub external_addrs: Vec<Multiaddr>,
}

impl IdentifyConfig {
    /// Defaults for a host with this public key.
    pub fn new(public_key: PublicKey) -> Self {
        Self {
            public_key,
            protocol_version: DEFAULT_PROTOCOL_VERSION.into(),
            agent_version: concat!("swarm-protocols/", env!("CARGO_PKG_VERSION")).into(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_messages: 10,
            timeout: Duration::from_secs(30),
            listen_addr_ttl: Duration::from_secs(3600),
            push_listen_addr_updates: true,
            external_addrs: Vec::new(),
        }
    }
}

/// What the identify plugin reports (see
/// [`Context::emit`](swarm::Context::emit); applications get it as
/// `SwarmEvent::Protocol` and downcast).
// Events are built once and moved behind the swarm's `Arc`; boxing the big
// variant would only cost an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum IdentifyEvent {
    /// We learned (or, by a push, updated) a peer's information, and
    /// recorded it in the peer store.
    Received {
        /// The peer.
        peer: PeerId,
        /// The connection it came on.
        conn: ConnId,
        /// Everything we know, with a push merged into the earlier answer.
        info: IdentifyInfo,
        /// Whether it came by push rather than as an answer.
        pushed: bool,
    },
    /// We answered a peer's request.
    Sent {
        /// The peer.
        peer: PeerId,
        /// The connection.
        conn: ConnId,
    },
    /// We pushed our information to a peer.
    Pushed {
        /// The peer.
        peer: PeerId,
        /// The connection.
        conn: ConnId,
    },
    /// An exchange failed; its stream was reset, the connection is kept.
    Error {
        /// The peer.
        peer: PeerId,
        /// The connection.
        conn: ConnId,
        /// Why.
        error: IdentifyError,
    },
}

/// Ask the identify plugin to push our information to every connected
/// peer: send it with
/// [`SwarmHandle::send_event`](swarm::SwarmHandle::send_event) or
/// [`Context::emit`](swarm::Context::emit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdentifyPush;

/// Why an identify exchange failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentifyError {
    /// A length prefix announced a message over the limit.
    #[error("identify message of {size} bytes exceeds the limit of {limit}")]
    MessageTooLarge {
        /// The announced size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The stream carried more messages than the limit.
    #[error("more than {0} identify messages on one stream")]
    TooManyMessages(usize),
    /// A length prefix was not a valid uvarint.
    #[error("malformed length prefix")]
    InvalidLengthPrefix,
    /// A message was not valid protobuf for the identify schema.
    #[error("undecodable identify message: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The stream ended in the middle of a message.
    #[error("stream ended inside a message")]
    Truncated,
    /// The stream ended before any message.
    #[error("stream ended without a message")]
    Empty,
    /// An answer did not carry the public key.
    #[error("the message has no public key")]
    MissingPublicKey,
    /// The public key could not be decoded.
    #[error("invalid public key: {0}")]
    InvalidPublicKey(String),
    /// The public key belongs to another peer than the connection's (the
    /// event's `peer`).
    #[error("the public key belongs to {actual}, not to the connection's peer")]
    WrongPeerId {
        /// The PeerId of the key in the message.
        actual: PeerId,
    },
    /// The exchange did not finish within the timeout.
    #[error("identify exchange timed out after {0:?}")]
    Timeout(Duration),
    /// The stream could not be opened.
    #[error("cannot open stream: {0}")]
    OpenStream(#[from] OpenStreamError),
    /// The stream failed (reset, stopped, protocol refused).
    #[error("stream failed: {0}")]
    Stream(#[from] StreamError),
}
