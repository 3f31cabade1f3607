//! Configuration: mesh degrees, timing, caches, limits, signing and
//! validation. [`GossipsubConfig::new`] gives the spec's defaults;
//! [`GossipsubConfig::ethereum`] Ethereum consensus' profile.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use swarm::Keypair;

use super::message::{
    GossipMessage, MessageId, SigningPolicy, Validation, content_hash_id, source_seqno_id,
};

/// Computes a message's id. Must be deterministic and cheap.
pub type MessageIdFn = Arc<dyn Fn(&GossipMessage) -> MessageId + Send + Sync>;

/// A synchronous validator, called on the swarm thread for every new
/// message that passed signature checks.
pub type ValidatorFn = Arc<dyn Fn(&GossipMessage) -> Validation + Send + Sync>;

/// Bounds of one peer's outbound queue (see the `queue` module).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most bytes (framed RPCs) waiting for one peer. Default 4 MiB: four
    /// maximum-size RPCs, or ~4,000 1 KiB messages, about 4 s of a busy
    /// topic, after which a peer that does not read is not worth more RAM.
    pub max_bytes: usize,
    /// Most RPCs waiting for one peer. Default 8,192.
    pub max_frames: usize,
    /// Share of `max_bytes` / `max_frames` that forwards and gossip may
    /// fill, in percent; the rest stays free for control and our own
    /// publishes. Default 75.
    pub low_priority_percent: u8,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            max_bytes: 4 * 1024 * 1024,
            max_frames: 8192,
            low_priority_percent: 75,
        }
    }
}

/// How the gossipsub plugin behaves.
#[derive(Clone)]
pub struct GossipsubConfig {
    /// The host keypair, needed to sign under [`SigningPolicy::StrictSign`]
    /// (the plugin API gives only the PeerId). Must be the swarm's.
    pub keypair: Option<Keypair>,
    /// Signing policy. Default StrictSign.
    pub signing: SigningPolicy,
    /// Message id from a message. Default source + seqno
    /// ([`source_seqno_id`]); [`content_hash_id`] for Ethereum-style ids.
    pub message_id_fn: MessageIdFn,
    /// Target mesh degree D. Default 6.
    pub mesh_n: usize,
    /// D_lo: graft below this. Default 4.
    pub mesh_n_low: usize,
    /// D_hi: prune above this. Default 12.
    pub mesh_n_high: usize,
    /// D_score: peers kept by score when pruning. Default 4.
    pub mesh_n_score: usize,
    /// D_out: outbound peers kept in the mesh. Default 2.
    pub mesh_outbound_min: usize,
    /// D_lazy: peers that get IHAVE gossip. Default 6.
    pub gossip_lazy: usize,
    /// Share of non-mesh peers that get gossip when more than D_lazy.
    /// Default 0.25.
    pub gossip_factor: f64,
    /// Heartbeat period. Default 1 s (Ethereum 0.7 s).
    pub heartbeat_interval: Duration,
    /// Delay before the first heartbeat. Default 100 ms.
    pub heartbeat_initial_delay: Duration,
    /// How long a fanout topic lives after our last publish. Default 60 s.
    pub fanout_ttl: Duration,
    /// Backoff after a PRUNE. Default 60 s.
    pub prune_backoff: Duration,
    /// Backoff announced when we leave a topic. Default 10 s.
    pub unsubscribe_backoff: Duration,
    /// Message cache windows kept (heartbeats). Default 5.
    pub history_length: usize,
    /// Windows advertised in IHAVE. Default 3.
    pub history_gossip: usize,
    /// How long a message id is remembered as seen. Default 120 s.
    pub seen_ttl: Duration,
    /// Largest RPC we send or accept, framed. Default 1 MiB: go-libp2p's
    /// default, so a message a go peer accepts fits; rust-libp2p's 64 KiB
    /// refuses ordinary blobs, and Ethereum (10 MiB) is one field away.
    pub max_transmit_size: usize,
    /// Most message ids in IHAVE we accept from one peer per heartbeat, and
    /// send in one IHAVE. Default 5,000.
    pub max_ihave_length: usize,
    /// Most IHAVE messages we handle from one peer per heartbeat. Default 10.
    pub max_ihave_messages: usize,
    /// Most times we answer IWANT for one message id to one peer. Default 3.
    pub gossip_retransmission: u32,
    /// How long a peer has to deliver a message it advertised (IHAVE) and
    /// we asked for (IWANT) before the promise counts as broken (P7, with
    /// scoring on). Default 3 s.
    pub iwant_followup_time: Duration,
    /// Publish to every subscribed peer, not just the mesh. Default true.
    pub flood_publish: bool,
    /// Heartbeats between opportunistic grafting rounds. Default 60.
    pub opportunistic_graft_ticks: u64,
    /// Peers grafted per opportunistic round. Default 2.
    pub opportunistic_graft_peers: usize,
    /// Send IDONTWANT to mesh peers for received messages of at least this
    /// size. Default 1,000 bytes.
    pub idontwant_message_size_threshold: usize,
    /// Most IDONTWANT ids we record per peer per heartbeat; further ones
    /// are ignored. Default 1,000.
    pub max_idontwant_per_heartbeat: usize,
    /// Most peers in a PRUNE's peer exchange. Default 16.
    pub prune_peers: usize,
    /// Send peer exchange in PRUNE. Default true.
    pub do_px: bool,
    /// Outbound queue bounds per peer.
    pub queue: QueueLimits,
    /// Synchronous validator; `None` accepts (after signature checks).
    pub validator: Option<ValidatorFn>,
    /// Hold every new message until the application answers with
    /// [`GossipRequest::ReportValidation`](super::GossipRequest). Default false.
    pub validate_asynchronously: bool,
    /// Most messages awaiting an asynchronous answer; more are ignored and
    /// counted. Default 1,024.
    pub max_pending_validations: usize,
    /// Most topics one peer may subscribe to (a remote grows our tables).
    /// Default 1,024.
    pub max_topics_per_peer: usize,
    /// Most messages per RPC we handle. Default 1,024.
    pub max_messages_per_rpc: usize,
    /// Peer scoring (v1.1). `None` (default) turns it off.
    pub scoring: Option<super::score_params::ScoreParams>,
}

impl fmt::Debug for GossipsubConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GossipsubConfig")
            .field("signing", &self.signing)
            .field("mesh_n", &self.mesh_n)
            .field("mesh_n_low", &self.mesh_n_low)
            .field("mesh_n_high", &self.mesh_n_high)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("max_transmit_size", &self.max_transmit_size)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl GossipsubConfig {
    /// The spec's defaults, signing with `keypair` (StrictSign).
    pub fn new(keypair: Keypair) -> Self {
        Self::defaults(Some(keypair))
    }

    fn defaults(keypair: Option<Keypair>) -> Self {
        Self {
            keypair,
            signing: SigningPolicy::StrictSign,
            message_id_fn: Arc::new(source_seqno_id),
            mesh_n: 6,
            mesh_n_low: 4,
            mesh_n_high: 12,
            mesh_n_score: 4,
            mesh_outbound_min: 2,
            gossip_lazy: 6,
            gossip_factor: 0.25,
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_initial_delay: Duration::from_millis(100),
            fanout_ttl: Duration::from_secs(60),
            prune_backoff: Duration::from_secs(60),
            unsubscribe_backoff: Duration::from_secs(10),
            history_length: 5,
            history_gossip: 3,
            seen_ttl: Duration::from_secs(120),
            max_transmit_size: 1024 * 1024,
            max_ihave_length: 5000,
            max_ihave_messages: 10,
            gossip_retransmission: 3,
            iwant_followup_time: Duration::from_secs(3),
            flood_publish: true,
            opportunistic_graft_ticks: 60,
            opportunistic_graft_peers: 2,
            idontwant_message_size_threshold: 1000,
            max_idontwant_per_heartbeat: 1000,
            prune_peers: 16,
            do_px: true,
            queue: QueueLimits::default(),
            validator: None,
            validate_asynchronously: false,
            max_pending_validations: 1024,
            max_topics_per_peer: 1024,
            max_messages_per_rpc: 1024,
            scoring: None,
        }
    }

    /// Ethereum consensus' profile: StrictNoSign, content-hash ids
    /// (SHA-256 of the data, first 20 bytes), D = 8 / 6 / 12, heartbeat
    /// 0.7 s, 10 MiB transmit size.
    pub fn ethereum() -> Self {
        Self {
            keypair: None,
            signing: SigningPolicy::StrictNoSign,
            message_id_fn: Arc::new(content_hash_id),
            mesh_n: 8,
            mesh_n_low: 6,
            mesh_n_high: 12,
            heartbeat_interval: Duration::from_millis(700),
            max_transmit_size: 10 * 1024 * 1024,
            ..Self::defaults(None)
        }
    }

    /// Check the degrees make sense (D_lo <= D <= D_hi, D_out < D_lo,
    /// gossip windows within history).
    pub fn validate(&self) -> Result<(), String> {
        if !(self.mesh_n_low <= self.mesh_n && self.mesh_n <= self.mesh_n_high) {
            return Err("need mesh_n_low <= mesh_n <= mesh_n_high".into());
        }
        if self.mesh_outbound_min > self.mesh_n_low || self.mesh_outbound_min * 2 > self.mesh_n {
            return Err("need mesh_outbound_min <= mesh_n_low and <= mesh_n / 2".into());
        }
        if self.history_gossip > self.history_length {
            return Err("need history_gossip <= history_length".into());
        }
        if self.signing == SigningPolicy::StrictSign && self.keypair.is_none() {
            return Err("StrictSign needs a keypair".into());
        }
        Ok(())
    }
}
