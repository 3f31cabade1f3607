//! The Kademlia wire message, written by hand from libp2p's `dht.proto`
//! (proto3, package `dht.pb`) and encoded by prost:
//!
//! ```proto
//! message Record {
//!   bytes key = 1;
//!   bytes value = 2;
//!   string timeReceived = 5;
//!   bytes publisher = 666;   // rust-libp2p only
//!   uint32 ttl = 777;        // rust-libp2p only
//! }
//! message Message {
//!   enum MessageType { PUT_VALUE = 0; GET_VALUE = 1; ADD_PROVIDER = 2;
//!                      GET_PROVIDERS = 3; FIND_NODE = 4; PING = 5; }
//!   enum ConnectionType { NOT_CONNECTED = 0; CONNECTED = 1;
//!                         CAN_CONNECT = 2; CANNOT_CONNECT = 3; }
//!   message Peer { bytes id = 1; repeated bytes addrs = 2; ConnectionType connection = 3; }
//!   MessageType type = 1;
//!   int32 clusterLevelRaw = 10;
//!   bytes key = 2;
//!   Record record = 3;
//!   repeated Peer closerPeers = 8;
//!   repeated Peer providerPeers = 9;
//! }
//! ```
//!
//! The enums are kept as raw `i32` so that an unknown value decodes (and is
//! refused by us with a typed error) instead of failing the whole message.

/// `MessageType.PUT_VALUE`.
pub const PUT_VALUE: i32 = 0;
/// `MessageType.GET_VALUE`.
pub const GET_VALUE: i32 = 1;
/// `MessageType.ADD_PROVIDER`.
pub const ADD_PROVIDER: i32 = 2;
/// `MessageType.GET_PROVIDERS`.
pub const GET_PROVIDERS: i32 = 3;
/// `MessageType.FIND_NODE`.
pub const FIND_NODE: i32 = 4;
/// `MessageType.PING` (deprecated by the spec; we still answer it).
pub const PING: i32 = 5;

/// `ConnectionType.CONNECTED`: the sender has a live connection to the peer.
pub const CONNECTED: i32 = 1;

/// A key/value record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Record {
    /// The key the record is stored under.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// The value.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
    /// When the receiver got it (RFC 3339 text); informational only.
    #[prost(string, tag = "5")]
    pub time_received: String,
    /// The original publisher's PeerId bytes (rust-libp2p extension).
    #[prost(bytes = "vec", tag = "666")]
    pub publisher: Vec<u8>,
    /// Remaining lifetime in seconds, 0 = unknown (rust-libp2p extension).
    #[prost(uint32, tag = "777")]
    pub ttl: u32,
}

/// A peer entry in `closerPeers` or `providerPeers`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Peer {
    /// The PeerId's bytes (a multihash).
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// Its addresses, as multiaddr bytes.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub addrs: Vec<Vec<u8>>,
    /// Whether the sender is connected to it (`ConnectionType`).
    #[prost(int32, tag = "3")]
    pub connection: i32,
}

/// One request or response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// `MessageType`.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// Unused by every implementation; declared so it is skipped as known.
    #[prost(int32, tag = "10")]
    pub cluster_level_raw: i32,
    /// The key the message is about (a PeerId for FIND_NODE).
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
    /// The record of a PUT_VALUE or a GET_VALUE answer.
    #[prost(message, optional, tag = "3")]
    pub record: Option<Record>,
    /// Peers closer to the key that the sender knows.
    #[prost(message, repeated, tag = "8")]
    pub closer_peers: Vec<Peer>,
    /// Providers of the key (GET_PROVIDERS answers, ADD_PROVIDER requests).
    #[prost(message, repeated, tag = "9")]
    pub provider_peers: Vec<Peer>,
}
