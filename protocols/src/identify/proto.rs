//! The identify wire message, written by hand from libp2p's `identify.proto`
//! (proto2, package `identify.pb`) and encoded by prost:
//!
//! ```proto
//! message Identify {
//!   optional string protocolVersion = 5;
//!   optional string agentVersion = 6;
//!   optional bytes publicKey = 1;
//!   repeated bytes listenAddrs = 2;
//!   optional bytes observedAddr = 4;
//!   repeated string protocols = 3;
//!   optional bytes signedPeerRecord = 8;
//! }
//! ```
//!
//! Optional fields stay `Option` so that a push can leave a field out and
//! the receiver can tell "absent" from "empty".

/// One identify message. Several concatenated messages merge field by
/// field (later scalars win, repeated fields append), which is exactly what
/// [`prost::Message::merge`] does.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Identify {
    /// Protocol family and version, e.g. `/ipfs/0.1.0`.
    #[prost(string, optional, tag = "5")]
    pub protocol_version: Option<String>,
    /// Implementation name and version, like an HTTP User-Agent.
    #[prost(string, optional, tag = "6")]
    pub agent_version: Option<String>,
    /// The sender's host public key, protobuf-encoded (libp2p-identity).
    #[prost(bytes = "vec", optional, tag = "1")]
    pub public_key: Option<Vec<u8>>,
    /// Addresses the sender listens on, as multiaddr bytes.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub listen_addrs: Vec<Vec<u8>>,
    /// The receiver's address as the sender sees it, as multiaddr bytes.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub observed_addr: Option<Vec<u8>>,
    /// Protocol ids the sender accepts.
    #[prost(string, repeated, tag = "3")]
    pub protocols: Vec<String>,
    /// A signed envelope with a peer record. We neither send nor check it;
    /// it is declared so that it is skipped as a known field.
    #[prost(bytes = "vec", optional, tag = "8")]
    pub signed_peer_record: Option<Vec<u8>>,
}
