//! Kademlia DHT (libp2p `kad-dht`, `/ipfs/kad/1.0.0` by default) as a
//! plugin: peer routing (behind the swarm's `dial_with_id`), records and
//! providers.
//!
//! # Pieces, one file each
//!
//! - Wire (`proto.rs`, `codec.rs`): one stream per request, uvarint
//!   length-prefixed protobuf `Message`, at most
//!   [`KadConfig::max_message_size`]. Every type is answered (FIND_NODE,
//!   GET_VALUE, PUT_VALUE, ADD_PROVIDER, GET_PROVIDERS, and PING), several
//!   requests per inbound stream, within per-peer stream limits
//!   (`serve.rs`); our requests go out one per stream (`rpc.rs`).
//! - [`Key`] / [`Distance`]: SHA-256 keys, XOR distance.
//! - [`RoutingTable`] of 256 [`KBucket`]s (k = 20): a full bucket keeps its
//!   live entries (its oldest is asked a FIND_NODE before a newcomer may
//!   replace it), with per-/24 and /48 limits. Peers enter only when
//!   identify says they speak the protocol (or when added explicitly with
//!   [`KadRequest::AddPeer`] or [`KadConfig::bootstrap_peers`]); a node in
//!   [`Mode::Client`] does not advertise it, so it is never added.
//! - [`Lookup`]: the iterative lookup state machine (α = 3, done when the
//!   k closest have answered, so small networks work); `queries.rs` builds
//!   every query on it.
//! - [`RecordStore`]: bounded, expiring records and providers, with a
//!   [`Validator`] per key namespace (`/pk/` by default).
//! - [`Kademlia`] (`plugin.rs`): the plugin. Queries come as
//!   [`KadCommand`] messages: from a plugin with [`start_query`], answered
//!   by [`KadEvent::QueryFinished`]; from a thread with [`KadClient`],
//!   blocking with a timeout. It is the swarm's peer router unless
//!   [`KadConfig::peer_routing`] is off.
//!
//! Randomness (bucket refresh keys) comes from the swarm's seeded RNG and
//! time only from the swarm's clock and timers, so a seeded simulation
//! replays.
//!
//! ```no_run
//! use std::time::Duration;
//! use protocols::identify::{Identify, IdentifyConfig};
//! use protocols::kad::{KadClient, KadConfig, Kademlia, Record};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = swarm::Keypair::generate_ed25519();
//! let mut runtime = swarm::Runtime::new(swarm::SwarmConfig::new(key.clone()))?;
//! runtime.add_protocol(Box::new(Identify::new(IdentifyConfig::new(key.public()))));
//! let mut config = KadConfig::default();
//! config.bootstrap_peers = vec!["/ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooWLRPJAA5o6m5ELFY5ZQoYyhDW5gNdFtzdxUmeNSigCwpv".parse()?];
//! let kad = runtime.add_protocol(Box::new(Kademlia::new(config)));
//! runtime.listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse()?)?;
//! let (handle, _thread) = runtime.spawn()?;
//! let dht = KadClient::new(handle, kad);
//! let stored = dht.put_value(Record::new(*b"hello", *b"world"), Duration::from_secs(30))?;
//! println!("stored on {stored} peers");
//! # Ok(())
//! # }
//! ```

mod api;
mod blocking;
mod codec;
mod config;
mod error;
pub mod kbucket;
mod key;
mod plugin;
mod proto;
mod queries;
pub mod query;
pub mod routing_table;
mod rpc;
mod serve;
pub mod store;

pub use api::{
    KadCommand, KadEvent, KadOutput, KadRequest, KadResult, KadStats, QueryId, Reply, start_query,
};
pub use blocking::KadClient;
pub use codec::{MAX_ADDRS_PER_PEER, PeerInfo};
pub use config::{DEFAULT_PROTOCOL, IpLimits, KadConfig, Mode};
pub use error::{KadError, StoreError, WireError};
pub use kbucket::KBucket;
pub use key::{Distance, Key};
pub use plugin::Kademlia;
pub use query::Lookup;
pub use routing_table::RoutingTable;
pub use serve::RESET_REFUSED;
pub use store::{Provider, PublicKeyValidator, Record, RecordStore, Validator};

/// Protobuf wire types, for tests that play a hostile peer.
#[doc(hidden)]
pub mod wire {
    pub use super::codec::encode_message;
    pub use super::proto::*;
}
