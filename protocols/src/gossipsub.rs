//! Gossipsub v1.0 / v1.1 / v1.2 (`/meshsub/1.2.0`, `/meshsub/1.1.0`,
//! `/meshsub/1.0.0`) with `/floodsub/1.0.0` for peers that only have that,
//! as a plugin, with bounded memory under slow peers.
//!
//! # Pieces, one file each
//!
//! - Wire (`proto.rs`, `codec.rs`): uvarint length-prefixed RPC protobuf;
//!   one long-lived outbound stream per peer (protocols tried newest
//!   first), inbound streams read until EOF; RPCs over
//!   [`GossipsubConfig::max_transmit_size`] end that stream with a
//!   [`WireError`], counted; the node keeps serving.
//! - [`GossipMessage`], [`MessageId`], signing and verification
//!   (`message.rs`): StrictSign (default), StrictNoSign, Anonymous.
//! - [`Router`] (`router.rs`, `heartbeat.rs`): subscriptions, meshes,
//!   fanout, GRAFT / PRUNE with backoff and PX, IHAVE / IWANT from the
//!   message cache (`mcache.rs`), the seen-cache (`seen.rs`), IDONTWANT,
//!   validation (sync, or async with a bound on what waits). No I/O: tests
//!   drive it on a virtual clock.
//! - [`OutboundQueue`] (`queue.rs`): each peer's bounded two-lane queue;
//!   the plugin hands the swarm bytes only as the stream takes them.
//! - Scoring (`score.rs`, `score_params.rs`, `promises.rs`): v1.1's P1–P7
//!   with IHAVE promises, off by default.
//! - [`Gossipsub`] (`plugin.rs`): streams, timers, commands; and
//!   [`GossipsubClient`] (`client.rs`): the plugin from any thread.
//!
//! ```no_run
//! use std::time::Duration;
//! use protocols::gossipsub::{Gossipsub, GossipsubClient, GossipsubConfig};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = swarm::Keypair::generate_ed25519();
//! let mut runtime = swarm::Runtime::new(swarm::SwarmConfig::new(key.clone()))?;
//! let (plugin, messages) = Gossipsub::with_message_channel(GossipsubConfig::new(key), 1024);
//! let gossip = runtime.add_protocol(Box::new(plugin));
//! let (handle, _thread) = runtime.spawn()?;
//! let client = GossipsubClient::new(handle, gossip);
//! client.subscribe("chat", Duration::from_secs(5))?;
//! let _ = client.publish("chat", b"hello".to_vec(), Duration::from_secs(5));
//! let _received = messages.recv_timeout(Duration::from_secs(1));
//! # Ok(())
//! # }
//! ```

mod api;
mod client;
mod codec;
mod config;
mod control;
mod error;
mod heartbeat;
mod mcache;
mod message;
mod peer;
mod plugin;
mod promises;
pub mod proto;
mod queue;
mod router;
mod score;
mod score_params;
mod seen;

pub use api::{
    GossipCommand, GossipEvent, GossipOutput, GossipRequest, GossipResult, GossipStats, Reply,
};
pub use client::{ClientError, GossipsubClient};
pub use codec::{RpcReader, encode};
pub use config::{GossipsubConfig, MessageIdFn, QueueLimits, ValidatorFn};
pub use error::{InvalidMessage, PublishError, WireError};
pub use message::{
    GossipMessage, MessageId, SigningPolicy, Validation, content_hash_id, source_seqno_id,
};
pub use peer::PeerKind;
pub use plugin::{Gossipsub, ReceivedMessage};
pub use queue::{Frame, OutboundQueue, Priority};
pub use router::Router;
pub use score_params::{ScoreParams, TopicScoreParams};

/// Gossipsub v1.2 (IDONTWANT).
pub const MESHSUB_1_2: &str = "/meshsub/1.2.0";
/// Gossipsub v1.1.
pub const MESHSUB_1_1: &str = "/meshsub/1.1.0";
/// Gossipsub v1.0.
pub const MESHSUB_1_0: &str = "/meshsub/1.0.0";
/// Floodsub.
pub const FLOODSUB: &str = "/floodsub/1.0.0";
/// What we offer, newest first.
pub const PROTOCOLS: [&str; 4] = [MESHSUB_1_2, MESHSUB_1_1, MESHSUB_1_0, FLOODSUB];
