//! Gossipsub (libp2p-gossipsub 0.50.1, the `gossipsub` feature of libp2p
//! 0.57) on a [`RustPeer`](crate::RustPeer): configuration, the received
//! message type and the background side of the blocking `gossip_*` calls.
//!
//! # libp2p-gossipsub 0.50.1 behaviour an implementation tested against it must match
//!
//! Defaults (`ConfigBuilder::default()`, which [`GossipConfig::default`]
//! mirrors except where noted):
//!
//! * Protocols offered, in order: `/meshsub/1.3.0`, `/meshsub/1.2.0`,
//!   `/meshsub/1.1.0`, `/meshsub/1.0.0` (floodsub only with
//!   `support_floodsub`). A peer offering at most 1.2 negotiates 1.2. The
//!   public API cannot offer 1.2 *alone*: `ConfigBuilder::protocol_id` only
//!   takes `Version::V1_0` / `V1_1`, and the peer kind (which decides whether
//!   IDONTWANT is sent) comes from that version, not from the string. So
//!   [`GossipVersions::V1_1Only`] is `/meshsub/1.1.0` only, and the default
//!   [`GossipVersions::All`] is what gets 1.2 with a peer that tops out there.
//! * D = 6, D_lo = 5, D_hi = 12, D_lazy = 6, gossip factor 0.25,
//!   D_out = 2; heartbeat 1 s after an initial delay of 5 s; fanout TTL
//!   60 s; mcache history 5, gossip 3; seen-cache (`duplicate_cache_time`)
//!   60 s; PRUNE backoff 60 s, unsubscribe backoff 10 s, backoff slack 1
//!   heartbeat; flood publish on; PX off (`prune_peers` 0); opportunistic
//!   graft every 60 heartbeats, 2 peers; max IHAVE messages per heartbeat
//!   10, max IHAVE/IWANT ids per message 5000; IWANT follow-up 3 s;
//!   graft flood threshold 10 s.
//! * Max transmit size 65,536 bytes (the whole RPC, checked on encode and on
//!   decode); at most 500 messages decoded per RPC in the protocol codec;
//!   control messages over 16 KiB are rejected.
//! * Message id: `source.to_base58() + seqno.to_string()` (decimal seqno
//!   appended to the base58 peer id, as UTF-8 bytes). With no source the
//!   placeholder peer id `PeerId::from_bytes([0, 1, 0])` is used and a
//!   missing seqno counts as 0. Not js-libp2p's (key bytes + seqno bytes).
//! * Signing: `MessageAuthenticity::Signed` signs
//!   `"libp2p-pubsub:" + protobuf(Message without signature and key)`; the
//!   seqno is a counter that starts at the Unix time in nanoseconds and goes
//!   up by one per publish (8 bytes big-endian on the wire). `Author` and
//!   `RandomAuthor` send a random seqno and no signature. `Anonymous` sends
//!   neither source nor seqno (the spec's StrictNoSign) and needs
//!   `ValidationMode::Anonymous` on receivers. The `key` field is left out
//!   when the public key can be recovered from the peer id (ed25519).
//! * Received messages are validated (signature, source, seqno) per
//!   `ValidationMode`: Strict (default) drops unsigned messages, Permissive
//!   accepts either, Anonymous drops messages that *carry* source, seqno or
//!   signature, None checks nothing.
//! * A message from ourselves (source = local peer id) is dropped unless
//!   `allow_self_origin`; our own publishes are never delivered to us.
//! * IDONTWANT: sent on first receipt of a message whose *raw protobuf*
//!   length exceeds 1,000 bytes (`idontwant_message_size_threshold`, strictly
//!   greater), *before* the message is validated (an invalid message still
//!   triggers it), one RPC per message id, to the topic's mesh peers and
//!   the peers that promised it via IHAVE, except the one it came from and
//!   the source; only to peers whose negotiated version is 1.2 or later;
//!   never for our own publishes (`idontwant_on_publish` false). There is no
//!   per-heartbeat cap on sending. A received IDONTWANT removes queued
//!   publishes/forwards of those ids and suppresses later ones; the ids are
//!   kept 3 s, at most 10,000 per peer (oldest evicted). libp2p-gossipsub
//!   exposes *receipt* of IDONTWANT only through its metrics (counters
//!   `idontwant_msgs` / `idontwant_msgs_ids`); nothing tells that one was
//!   sent, so a test checks the receiving side
//!   ([`RustPeer::gossip_idontwant_received`](crate::RustPeer::gossip_idontwant_received)).
//! * GRAFT and PRUNE are not reported as `Event`s either; the metrics have
//!   mesh inclusion / churn counters and [`RustPeer::gossip_mesh_peers`](crate::RustPeer::gossip_mesh_peers)
//!   shows the mesh.
//! * Send queue per connection (0.50 is no longer unbounded, unlike the
//!   0.44 that rust-libp2p #4667 was about): Subscribe/Unsubscribe are
//!   unbounded; GRAFT/PRUNE/IDONTWANT share a queue of 20,000; publishes,
//!   forwards, IHAVE and IWANT share a queue of `connection_handler_queue_len`
//!   (5,000) *messages* (not bytes). When it is full a publish to that peer
//!   and forwards are dropped and counted (`Event::SlowPeer` at the next
//!   heartbeat); `publish` fails with `AllQueuesFull` only if no peer took
//!   it. Queued publishes expire after 5 s, forwards after 1 s
//!   (`publish_queue_duration` / `forward_queue_duration`), checked when the
//!   handler gets to them.
//! * `publish` with no peer subscribed to the topic fails with
//!   `NoPeersSubscribedToTopic` (even with flood publish); a second publish
//!   of identical data under the content-hash id fails with `Duplicate`.
//! * Application validation (`validate_messages`): the message is kept in
//!   the mcache and not forwarded until `report_message_validation_result`;
//!   nothing bounds the number pending except the mcache history (messages
//!   are forgotten when they leave the mcache after 5 heartbeats).

use std::{
    sync::{Arc, mpsc as std_mpsc},
    time::Duration,
};

use libp2p::{
    PeerId,
    gossipsub::{
        self, ConfigBuilder, IdentTopic, MessageAcceptance, MessageAuthenticity, MessageId,
        ValidationMode,
    },
    identity::Keypair,
};
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};

use crate::{Node, PeerEvent, lock};

/// Protocol ids a gossipsub node offers (and accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GossipVersions {
    /// libp2p-gossipsub's default list: `/meshsub/1.3.0`, `/meshsub/1.2.0`,
    /// `/meshsub/1.1.0`, `/meshsub/1.0.0`. Against a peer that offers at most
    /// 1.2 this negotiates 1.2 (IDONTWANT on).
    #[default]
    All,
    /// `/meshsub/1.1.0` only (no IDONTWANT either way).
    V1_1Only,
}

/// How this node authors its own messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GossipSigning {
    /// Signed with the host key, source = our peer id, seqno a counter (the
    /// spec's StrictSign; the default everywhere).
    #[default]
    Signed,
    /// Source = our peer id, random seqno, no signature.
    Author,
    /// A random source per message, random seqno, no signature.
    RandomAuthor,
    /// No source, no seqno, no signature: the spec's StrictNoSign (Ethereum).
    /// Receivers must use [`ValidationMode::Anonymous`] (the default derived
    /// for this policy) and a message id that does not depend on source and
    /// seqno ([`GossipMessageIdFn::ContentHash`]).
    Anonymous,
}

/// How message ids are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GossipMessageIdFn {
    /// libp2p-gossipsub's default: base58 source peer id followed by the
    /// decimal seqno (see the module docs).
    #[default]
    SourceSeqno,
    /// The first 20 bytes of SHA-256 over the message data (the shape of
    /// Ethereum's id, without its domain prefix and topic).
    ContentHash,
}

/// The application's verdict on a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GossipAcceptance {
    /// Valid: forward it.
    Accept,
    /// Invalid: drop it and penalise the sender (when scoring is on).
    Reject,
    /// Drop it without penalty.
    Ignore,
}

impl From<GossipAcceptance> for MessageAcceptance {
    fn from(a: GossipAcceptance) -> Self {
        match a {
            GossipAcceptance::Accept => MessageAcceptance::Accept,
            GossipAcceptance::Reject => MessageAcceptance::Reject,
            GossipAcceptance::Ignore => MessageAcceptance::Ignore,
        }
    }
}

/// A callback deciding on each received message, run on the node's thread.
pub type GossipValidator = Arc<dyn Fn(&GossipMessage) -> GossipAcceptance + Send + Sync>;

/// Application validation of received messages.
#[derive(Clone, Default)]
pub enum GossipValidation {
    /// None (libp2p-gossipsub's default): messages are forwarded at once and
    /// all delivered.
    #[default]
    Off,
    /// Every message waits, unforwarded, for
    /// [`RustPeer::gossip_report_validation`](crate::RustPeer::gossip_report_validation);
    /// all are delivered to [`RustPeer::gossip_next_message`](crate::RustPeer::gossip_next_message).
    Manual,
    /// The callback decides on the node's thread as each message arrives;
    /// only accepted messages are delivered to the application.
    Callback(GossipValidator),
}

impl std::fmt::Debug for GossipValidation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GossipValidation::Off => f.write_str("Off"),
            GossipValidation::Manual => f.write_str("Manual"),
            GossipValidation::Callback(_) => f.write_str("Callback(..)"),
        }
    }
}

/// Gossipsub settings of a [`RustPeer`](crate::RustPeer), set through
/// [`PeerConfig::gossipsub`](crate::PeerConfig::gossipsub). Defaults are
/// libp2p-gossipsub's own (see the module docs).
#[derive(Debug, Clone)]
pub struct GossipConfig {
    /// Protocol ids offered. Default [`GossipVersions::All`].
    pub versions: GossipVersions,
    /// Authoring policy. Default [`GossipSigning::Signed`].
    pub signing: GossipSigning,
    /// Checks on received messages' signature / source / seqno; `None`
    /// derives it from [`GossipConfig::signing`]: Signed → Strict,
    /// Author / RandomAuthor → Permissive, Anonymous → Anonymous.
    pub validation_mode: Option<ValidationMode>,
    /// Mesh degree D. Default 6.
    pub mesh_n: usize,
    /// D_lo. Default 5 (libp2p-gossipsub's; the spec says 4).
    pub mesh_n_low: usize,
    /// D_hi. Default 12.
    pub mesh_n_high: usize,
    /// D_out, the outbound peers kept in each mesh; must be below D_lo and
    /// at most D / 2. Default 2.
    pub mesh_outbound_min: usize,
    /// Heartbeat interval. Default 1 s.
    pub heartbeat_interval: Duration,
    /// Delay before the first heartbeat. Default 5 s (lower it in tests so
    /// meshes form quickly).
    pub heartbeat_initial_delay: Duration,
    /// Maximum RPC size in bytes. Default 65,536.
    pub max_transmit_size: usize,
    /// Application validation. Default [`GossipValidation::Off`].
    pub validation: GossipValidation,
    /// Message id function. Default [`GossipMessageIdFn::SourceSeqno`].
    pub message_id: GossipMessageIdFn,
    /// Send our own publishes to every subscribed peer, not only the mesh.
    /// Default `true`.
    pub flood_publish: bool,
    /// Capacity, in messages, of each connection's queue for publishes,
    /// forwards, IHAVE and IWANT. Default 5,000.
    pub queue_len: usize,
    /// IDONTWANT is sent for messages whose raw protobuf is larger than
    /// this. Default 1,000 bytes.
    pub idontwant_threshold: usize,
    /// Record libp2p-gossipsub's prometheus metrics, readable with
    /// [`RustPeer::gossip_metrics`](crate::RustPeer::gossip_metrics) (the only
    /// place IDONTWANT receipt is visible). Default `false`: they cost CPU
    /// per message, which the benchmark should not pay.
    pub metrics: bool,
}

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig {
            versions: GossipVersions::All,
            signing: GossipSigning::Signed,
            validation_mode: None,
            mesh_n: 6,
            mesh_n_low: 5,
            mesh_n_high: 12,
            mesh_outbound_min: 2,
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_initial_delay: Duration::from_secs(5),
            max_transmit_size: 65_536,
            validation: GossipValidation::Off,
            message_id: GossipMessageIdFn::SourceSeqno,
            flood_publish: true,
            queue_len: 5000,
            idontwant_threshold: 1000,
            metrics: false,
        }
    }
}

/// A message received through gossipsub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipMessage {
    /// Topic (the string given to subscribe; `IdentTopic` hashes are the
    /// topic string itself).
    pub topic: String,
    /// Payload.
    pub data: Vec<u8>,
    /// The author, if the message carries one.
    pub source: Option<PeerId>,
    /// The sequence number, if the message carries one.
    pub seqno: Option<u64>,
    /// The peer that forwarded it to us.
    pub propagation_source: PeerId,
    /// Its message id.
    pub id: MessageId,
}

/// A `gossip_*` request from the blocking API.
pub(crate) enum GossipCommand {
    Subscribe(String, std_mpsc::Sender<Result<bool, String>>),
    Unsubscribe(String, std_mpsc::Sender<Result<bool, String>>),
    Publish(String, Vec<u8>, std_mpsc::Sender<Result<MessageId, String>>),
    ReportValidation {
        id: MessageId,
        propagation_source: PeerId,
        acceptance: GossipAcceptance,
        reply: std_mpsc::Sender<Result<bool, String>>,
    },
    MeshPeers(String, std_mpsc::Sender<Vec<PeerId>>),
    AllPeers(std_mpsc::Sender<Vec<(PeerId, Vec<String>)>>),
    PeerProtocols(std_mpsc::Sender<Vec<(PeerId, String)>>),
    Metrics(std_mpsc::Sender<Option<String>>),
}

/// What the node keeps besides the behaviour.
pub(crate) struct GossipState {
    pub(crate) registry: Option<Registry>,
    pub(crate) validator: Option<GossipValidator>,
    pub(crate) messages: std_mpsc::Sender<GossipMessage>,
}

const NOT_ENABLED: &str = "gossipsub is not enabled on this peer";

/// Build the libp2p-gossipsub behaviour for `cfg`; the registry is `Some`
/// when metrics are on.
pub(crate) fn behaviour(
    key: &Keypair,
    cfg: &GossipConfig,
) -> Result<(gossipsub::Behaviour, Option<Registry>), String> {
    let mut b = ConfigBuilder::default();
    if cfg.versions == GossipVersions::V1_1Only {
        b.protocol_id("/meshsub/1.1.0", gossipsub::Version::V1_1);
    }
    let validation_mode = cfg.validation_mode.clone().unwrap_or(match cfg.signing {
        GossipSigning::Signed => ValidationMode::Strict,
        GossipSigning::Author | GossipSigning::RandomAuthor => ValidationMode::Permissive,
        GossipSigning::Anonymous => ValidationMode::Anonymous,
    });
    b.validation_mode(validation_mode)
        .mesh_n(cfg.mesh_n)
        .mesh_n_low(cfg.mesh_n_low)
        .mesh_n_high(cfg.mesh_n_high)
        .mesh_outbound_min(cfg.mesh_outbound_min)
        .heartbeat_interval(cfg.heartbeat_interval)
        .heartbeat_initial_delay(cfg.heartbeat_initial_delay)
        .max_transmit_size(cfg.max_transmit_size)
        .flood_publish(cfg.flood_publish)
        .connection_handler_queue_len(cfg.queue_len)
        .idontwant_message_size_threshold(cfg.idontwant_threshold);
    if !matches!(cfg.validation, GossipValidation::Off) {
        b.validate_messages();
    }
    if cfg.message_id == GossipMessageIdFn::ContentHash {
        b.message_id_fn(|m: &gossipsub::Message| content_hash_id(&m.data));
    }
    let config = b.build().map_err(|e| format!("gossipsub config: {e}"))?;
    let authenticity = match cfg.signing {
        GossipSigning::Signed => MessageAuthenticity::Signed(key.clone()),
        GossipSigning::Author => MessageAuthenticity::Author(key.public().to_peer_id()),
        GossipSigning::RandomAuthor => MessageAuthenticity::RandomAuthor,
        GossipSigning::Anonymous => MessageAuthenticity::Anonymous,
    };
    let mut behaviour = gossipsub::Behaviour::new(authenticity, config)
        .map_err(|e| format!("gossipsub behaviour: {e}"))?;
    let registry = if cfg.metrics {
        let mut registry = Registry::default();
        behaviour = behaviour.with_metrics(&mut registry, gossipsub::MetricsConfig::default());
        Some(registry)
    } else {
        None
    };
    Ok((behaviour, registry))
}

/// [`GossipMessageIdFn::ContentHash`]: SHA-256 of the data, first 20 bytes.
pub fn content_hash_id(data: &[u8]) -> MessageId {
    MessageId::new(&Sha256::digest(data)[..20])
}

/// Sum of the samples of a counter in OpenMetrics text (`name_total ...`
/// lines, any labels); 0 if absent or unparsable.
pub fn metric_total(text: &str, name: &str) -> u64 {
    let total = format!("{name}_total");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let base = key.split('{').next()?;
            (base == total || base == name).then(|| value.parse::<f64>().ok())?
        })
        .map(|v| v as u64)
        .sum()
}

impl Node {
    pub(crate) fn on_gossip_command(&mut self, cmd: GossipCommand) {
        let Some(gs) = self.swarm.behaviour_mut().gossipsub.as_mut() else {
            reply_disabled(cmd);
            return;
        };
        match cmd {
            GossipCommand::Subscribe(topic, reply) => {
                let r = gs
                    .subscribe(&IdentTopic::new(topic))
                    .map_err(|e| format!("subscribe: {e:?}"));
                let _ = reply.send(r);
            }
            GossipCommand::Unsubscribe(topic, reply) => {
                let _ = reply.send(Ok(gs.unsubscribe(&IdentTopic::new(topic))));
            }
            GossipCommand::Publish(topic, data, reply) => {
                let r = gs
                    .publish(IdentTopic::new(topic), data)
                    .map_err(|e| format!("publish: {e:?}"));
                let _ = reply.send(r);
            }
            GossipCommand::ReportValidation {
                id,
                propagation_source,
                acceptance,
                reply,
            } => {
                let found = gs.report_message_validation_result(
                    &id,
                    &propagation_source,
                    acceptance.into(),
                );
                let _ = reply.send(Ok(found));
            }
            GossipCommand::MeshPeers(topic, reply) => {
                let hash = IdentTopic::new(topic).hash();
                let _ = reply.send(gs.mesh_peers(&hash).copied().collect());
            }
            GossipCommand::AllPeers(reply) => {
                let peers = gs
                    .all_peers()
                    .map(|(p, topics)| (*p, topics.iter().map(|t| t.to_string()).collect()))
                    .collect();
                let _ = reply.send(peers);
            }
            GossipCommand::PeerProtocols(reply) => {
                let peers = gs
                    .peer_protocol()
                    .map(|(p, kind)| (*p, kind.to_string()))
                    .collect();
                let _ = reply.send(peers);
            }
            GossipCommand::Metrics(reply) => {
                let text = self
                    .gossip
                    .as_ref()
                    .and_then(|g| g.registry.as_ref())
                    .map(|r| {
                        let mut out = String::new();
                        // Encoding into a String cannot fail for these metric types.
                        let _ = prometheus_client::encoding::text::encode(&mut out, r);
                        out
                    });
                let _ = reply.send(text);
            }
        }
    }

    pub(crate) fn on_gossip_event(&mut self, ev: gossipsub::Event) {
        match ev {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let msg = GossipMessage {
                    topic: message.topic.to_string(),
                    data: message.data,
                    source: message.source,
                    seqno: message.sequence_number,
                    propagation_source,
                    id: message_id,
                };
                let Some(state) = self.gossip.as_ref() else {
                    return;
                };
                if let Some(validator) = state.validator.clone() {
                    let verdict = validator(&msg);
                    if let Some(gs) = self.swarm.behaviour_mut().gossipsub.as_mut() {
                        gs.report_message_validation_result(
                            &msg.id,
                            &propagation_source,
                            verdict.into(),
                        );
                    }
                    if verdict != GossipAcceptance::Accept {
                        return;
                    }
                }
                let _ = state.messages.send(msg);
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                self.emit(PeerEvent::GossipSubscribed {
                    peer: peer_id,
                    topic: topic.to_string(),
                })
            }
            gossipsub::Event::Unsubscribed { peer_id, topic } => {
                self.emit(PeerEvent::GossipUnsubscribed {
                    peer: peer_id,
                    topic: topic.to_string(),
                })
            }
            gossipsub::Event::GossipsubNotSupported { peer_id } => {
                self.emit(PeerEvent::GossipNotSupported { peer: peer_id })
            }
            gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            } => self.emit(PeerEvent::GossipSlowPeer {
                peer: peer_id,
                failed: format!("{failed_messages:?}"),
            }),
        }
    }
}

fn reply_disabled(cmd: GossipCommand) {
    match cmd {
        GossipCommand::Subscribe(_, r) | GossipCommand::Unsubscribe(_, r) => {
            let _ = r.send(Err(NOT_ENABLED.to_string()));
        }
        GossipCommand::Publish(_, _, r) => {
            let _ = r.send(Err(NOT_ENABLED.to_string()));
        }
        GossipCommand::ReportValidation { reply, .. } => {
            let _ = reply.send(Err(NOT_ENABLED.to_string()));
        }
        GossipCommand::MeshPeers(_, r) => {
            let _ = r.send(Vec::new());
        }
        GossipCommand::AllPeers(r) => {
            let _ = r.send(Vec::new());
        }
        GossipCommand::PeerProtocols(r) => {
            let _ = r.send(Vec::new());
        }
        GossipCommand::Metrics(r) => {
            let _ = r.send(None);
        }
    }
}

/// The blocking gossipsub calls of [`RustPeer`](crate::RustPeer).
impl crate::RustPeer {
    /// Subscribe to `topic` (an `IdentTopic`: the hash is the string
    /// itself). `Ok(false)` if already subscribed; `Err` if gossipsub is not
    /// enabled or the node does not answer within 5 s.
    pub fn gossip_subscribe(&self, topic: &str) -> Result<bool, String> {
        self.gossip_call("subscribe", |r| {
            GossipCommand::Subscribe(topic.to_string(), r)
        })
    }

    /// Unsubscribe from `topic`; `Ok(false)` if not subscribed.
    pub fn gossip_unsubscribe(&self, topic: &str) -> Result<bool, String> {
        self.gossip_call("unsubscribe", |r| {
            GossipCommand::Unsubscribe(topic.to_string(), r)
        })
    }

    /// Publish `data` on `topic`; returns the message id. The error is
    /// libp2p-gossipsub's `PublishError` in `Debug` form, e.g.
    /// `publish: NoPeersSubscribedToTopic`, `publish: Duplicate`,
    /// `publish: MessageTooLarge`, `publish: AllQueuesFull(n)`.
    pub fn gossip_publish(&self, topic: &str, data: Vec<u8>) -> Result<MessageId, String> {
        self.gossip_call("publish", |r| {
            GossipCommand::Publish(topic.to_string(), data, r)
        })
    }

    /// The next message received through gossipsub, waiting at most
    /// `timeout`. Messages are queued separately from [`PeerEvent`]s.
    pub fn gossip_next_message(&self, timeout: Duration) -> Option<GossipMessage> {
        lock(&self.gossip_messages).recv_timeout(timeout).ok()
    }

    /// Report the application's verdict on a message received under
    /// [`GossipValidation::Manual`]; `Ok(false)` if libp2p-gossipsub no
    /// longer has it (already reported, or it left the message cache).
    pub fn gossip_report_validation(
        &self,
        id: &MessageId,
        propagation_source: PeerId,
        acceptance: GossipAcceptance,
    ) -> Result<bool, String> {
        self.gossip_call("report_validation", |reply| {
            GossipCommand::ReportValidation {
                id: id.clone(),
                propagation_source,
                acceptance,
                reply,
            }
        })
    }

    /// Our mesh peers for `topic` (empty if gossipsub is disabled or the
    /// node does not answer within 5 s).
    pub fn gossip_mesh_peers(&self, topic: &str) -> Vec<PeerId> {
        self.gossip_query(|r| GossipCommand::MeshPeers(topic.to_string(), r))
            .unwrap_or_default()
    }

    /// Every peer gossipsub knows, with the topics it is subscribed to.
    pub fn gossip_all_peers(&self) -> Vec<(PeerId, Vec<String>)> {
        self.gossip_query(GossipCommand::AllPeers)
            .unwrap_or_default()
    }

    /// The gossipsub version negotiated with each peer, as
    /// libp2p-gossipsub's `PeerKind` displays it (`"Gossipsub v1.2"`,
    /// `"Gossipsub v1.1"`, `"Not Supported"`, ...).
    pub fn gossip_peer_protocols(&self) -> Vec<(PeerId, String)> {
        self.gossip_query(GossipCommand::PeerProtocols)
            .unwrap_or_default()
    }

    /// libp2p-gossipsub's metrics in OpenMetrics text; `None` unless
    /// [`GossipConfig::metrics`] is on.
    pub fn gossip_metrics(&self) -> Option<String> {
        self.gossip_query(GossipCommand::Metrics).flatten()
    }

    /// How many IDONTWANT control messages this node has received (the
    /// `idontwant_msgs` counter); `None` unless [`GossipConfig::metrics`] is
    /// on.
    pub fn gossip_idontwant_received(&self) -> Option<u64> {
        self.gossip_metrics()
            .map(|text| metric_total(&text, "idontwant_msgs"))
    }
}
