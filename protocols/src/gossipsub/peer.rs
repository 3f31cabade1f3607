//! What the router knows about one connected peer.

use std::collections::{BTreeSet, HashMap};

use super::config::QueueLimits;
use super::message::MessageId;
use super::queue::OutboundQueue;

/// Which pubsub protocol a peer speaks (what our outbound stream, or
/// failing that its inbound stream, negotiated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerKind {
    /// Not known yet (no stream negotiated).
    Unknown,
    /// `/floodsub/1.0.0`: no mesh, no control; gets every message.
    Floodsub,
    /// `/meshsub/1.0.0`.
    Gossipsub10,
    /// `/meshsub/1.1.0`: PRUNE backoff and peer exchange.
    Gossipsub11,
    /// `/meshsub/1.2.0`: IDONTWANT.
    Gossipsub12,
}

impl PeerKind {
    /// The kind a protocol id means.
    pub fn from_protocol(protocol: &str) -> Self {
        match protocol {
            super::MESHSUB_1_2 => Self::Gossipsub12,
            super::MESHSUB_1_1 => Self::Gossipsub11,
            super::MESHSUB_1_0 => Self::Gossipsub10,
            super::FLOODSUB => Self::Floodsub,
            _ => Self::Unknown,
        }
    }

    /// Whether the peer takes part in meshes and control.
    pub fn is_gossipsub(self) -> bool {
        self >= Self::Gossipsub10
    }
}

/// A connected peer.
pub(crate) struct PeerState {
    pub(crate) kind: PeerKind,
    /// Whether we dialed it (D_out counts these).
    pub(crate) outbound: bool,
    /// Topics it announced.
    pub(crate) topics: BTreeSet<String>,
    /// What waits to be sent to it.
    pub(crate) queue: OutboundQueue,
    /// Ids it told us (IDONTWANT) it does not want, with the heartbeat
    /// they came in, forgotten after the message cache's history.
    pub(crate) dont_send: HashMap<MessageId, u64>,
    /// IDONTWANT ids taken this heartbeat.
    pub(crate) idontwant_this_heartbeat: usize,
    /// IHAVE messages and ids taken this heartbeat.
    pub(crate) ihave_this_heartbeat: usize,
    pub(crate) ihave_ids_this_heartbeat: usize,
    /// Queue drops already reported as slow.
    pub(crate) drops_reported: u64,
}

impl PeerState {
    pub(crate) fn new(outbound: bool, limits: QueueLimits) -> Self {
        Self {
            kind: PeerKind::Unknown,
            outbound,
            topics: BTreeSet::new(),
            queue: OutboundQueue::new(limits),
            dont_send: HashMap::new(),
            idontwant_this_heartbeat: 0,
            ihave_this_heartbeat: 0,
            ihave_ids_this_heartbeat: 0,
            drops_reported: 0,
        }
    }
}
