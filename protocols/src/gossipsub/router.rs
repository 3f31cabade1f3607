//! The router: subscriptions, meshes, fanout, message handling and
//! forwarding, publish (control messages are `control.rs`'s, the
//! heartbeat `heartbeat.rs`'s). It does no I/O: the
//! plugin feeds it RPCs, time and randomness, and drains each peer's
//! [`OutboundQueue`] into the peer's stream and its events into the swarm.
//! Tests drive it directly on a virtual clock.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::RngCore;
use rand::seq::SliceRandom;
use swarm::PeerId;
use tracing::{debug, trace};

use super::api::{GossipEvent, GossipStats};
use super::codec;
use super::config::GossipsubConfig;
use super::error::{InvalidMessage, PublishError};
use super::mcache::MessageCache;
use super::message::{self, GossipMessage, MessageId, SigningPolicy, Validation};
use super::peer::{PeerKind, PeerState};
use super::promises::GossipPromises;
use super::proto::{self, ControlMessage, Rpc};
use super::queue::{Frame, OutboundQueue, Priority};
use super::score::PeerScores;
use super::seen::SeenCache;

/// A message held until the application validates it.
struct PendingValidation {
    propagation_source: PeerId,
    message: proto::Message,
    size: usize,
}

/// The gossipsub router state of one node.
pub struct Router {
    pub(crate) config: GossipsubConfig,
    pub(crate) local: PeerId,
    pub(crate) peers: BTreeMap<PeerId, PeerState>,
    pub(crate) subscriptions: BTreeSet<String>,
    pub(crate) mesh: BTreeMap<String, BTreeSet<PeerId>>,
    pub(crate) fanout: BTreeMap<String, BTreeSet<PeerId>>,
    pub(crate) fanout_last_publish: BTreeMap<String, Instant>,
    /// (topic, peer) -> until when the peer may not be grafted.
    pub(crate) backoff: BTreeMap<(String, PeerId), Instant>,
    pub(crate) mcache: MessageCache,
    pub(crate) seen: SeenCache,
    pending: BTreeMap<MessageId, PendingValidation>,
    /// Next seqno; starts from the clock-free seed the plugin gives.
    seqno: u64,
    pub(crate) heartbeat_ticks: u64,
    pub(crate) events: Vec<GossipEvent>,
    pub(crate) stats: GossipStats,
    pub(crate) scores: Option<PeerScores>,
    /// IHAVE promises we hold peers to (scoring on only).
    pub(crate) promises: GossipPromises,
}

impl Router {
    /// A router for `local` with this configuration; seqnos start at
    /// `first_seqno` (draw it at random so a restarted node does not reuse
    /// ids).
    pub fn new(config: GossipsubConfig, local: PeerId, first_seqno: u64) -> Self {
        let scores = config.scoring.clone().map(PeerScores::new);
        Self {
            mcache: MessageCache::new(config.history_length, config.history_gossip),
            seen: SeenCache::new(config.seen_ttl),
            config,
            local,
            peers: BTreeMap::new(),
            subscriptions: BTreeSet::new(),
            mesh: BTreeMap::new(),
            fanout: BTreeMap::new(),
            fanout_last_publish: BTreeMap::new(),
            backoff: BTreeMap::new(),
            pending: BTreeMap::new(),
            seqno: first_seqno,
            heartbeat_ticks: 0,
            events: Vec::new(),
            stats: GossipStats::default(),
            scores,
            promises: GossipPromises::default(),
        }
    }

    /// Our PeerId.
    pub fn local_peer_id(&self) -> PeerId {
        self.local
    }

    /// The configuration.
    pub fn config(&self) -> &GossipsubConfig {
        &self.config
    }

    // ----- peers -----------------------------------------------------------

    /// A peer connected; we announce our subscriptions to it.
    pub fn add_peer(&mut self, peer: PeerId, outbound: bool) {
        if self.peers.contains_key(&peer) {
            return;
        }
        self.peers
            .insert(peer, PeerState::new(outbound, self.config.queue));
        if let Some(scores) = &mut self.scores {
            scores.add_peer(peer);
        }
        if !self.subscriptions.is_empty() {
            let rpc = Rpc {
                subscriptions: self
                    .subscriptions
                    .iter()
                    .map(|t| proto::SubOpts {
                        subscribe: Some(true),
                        topic_id: Some(t.clone()),
                    })
                    .collect(),
                ..Rpc::default()
            };
            self.send(peer, &rpc, Priority::High);
        }
    }

    /// The protocol our outbound stream to a peer negotiated: what we
    /// speak to it from now on.
    pub fn set_peer_kind(&mut self, peer: PeerId, kind: PeerKind) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.kind = kind;
        }
    }

    /// The protocol of a peer's inbound stream: a first guess, until our
    /// outbound stream negotiates.
    pub fn note_inbound_kind(&mut self, peer: PeerId, kind: PeerKind) {
        if let Some(p) = self.peers.get_mut(&peer)
            && p.kind == PeerKind::Unknown
        {
            p.kind = kind;
        }
    }

    /// What a peer speaks, as far as we know.
    pub fn peer_kind(&self, peer: &PeerId) -> Option<PeerKind> {
        self.peers.get(peer).map(|p| p.kind)
    }

    /// A peer disconnected: forget it everywhere (backoffs stay).
    pub fn remove_peer(&mut self, peer: &PeerId) {
        if self.peers.remove(peer).is_none() {
            return;
        }
        for set in self.mesh.values_mut().chain(self.fanout.values_mut()) {
            set.remove(peer);
        }
        if let Some(scores) = &mut self.scores {
            scores.remove_peer(peer);
        }
        self.promises.remove_peer(peer);
    }

    /// The IP address a peer connected from (P6, IP colocation).
    pub fn set_peer_ip(&mut self, peer: &PeerId, ip: IpAddr) {
        if let Some(scores) = &mut self.scores {
            scores.set_ip(peer, ip);
        }
    }

    /// The next frame for `peer`, skipping forwards of messages the peer
    /// said (IDONTWANT) it does not want since they were queued.
    pub fn pop_frame(&mut self, peer: &PeerId) -> Option<Bytes> {
        let p = self.peers.get_mut(peer)?;
        loop {
            let frame = p.queue.pop()?;
            match &frame.message_id {
                Some(id) if p.dont_send.contains_key(id) => {
                    self.stats.idontwant_honoured += 1;
                }
                _ => return Some(frame.bytes),
            }
        }
    }

    /// A peer's outbound queue.
    pub fn queue_mut(&mut self, peer: &PeerId) -> Option<&mut OutboundQueue> {
        self.peers.get_mut(peer).map(|p| &mut p.queue)
    }

    /// A peer's outbound queue.
    pub fn queue(&self, peer: &PeerId) -> Option<&OutboundQueue> {
        self.peers.get(peer).map(|p| &p.queue)
    }

    /// Connected peers.
    pub fn peers(&self) -> impl Iterator<Item = &PeerId> {
        self.peers.keys()
    }

    /// Our mesh for `topic`.
    pub fn mesh_peers(&self, topic: &str) -> Vec<PeerId> {
        self.mesh
            .get(topic)
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Peers that announced `topic`.
    pub fn topic_peers(&self, topic: &str) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| p.topics.contains(topic))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Our fanout peers for `topic`.
    pub fn fanout_peers(&self, topic: &str) -> Vec<PeerId> {
        self.fanout
            .get(topic)
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default()
    }

    /// A peer's score (0 with scoring off).
    pub fn peer_score(&self, peer: &PeerId) -> f64 {
        self.scores.as_ref().map_or(0.0, |s| s.score(peer))
    }

    /// Topics we subscribe to.
    pub fn subscriptions(&self) -> impl Iterator<Item = &String> {
        self.subscriptions.iter()
    }

    /// Counters, with the queue figures filled in.
    pub fn stats(&self) -> GossipStats {
        let mut stats = self.stats.clone();
        stats.queued_bytes = self.peers.values().map(|p| p.queue.bytes()).sum();
        stats.queued_frames = self.peers.values().map(|p| p.queue.len()).sum();
        stats.max_peer_queue_bytes = self
            .peers
            .values()
            .map(|p| p.queue.bytes())
            .max()
            .unwrap_or(0);
        stats.mcache_len = self.mcache.len();
        stats.seen_len = self.seen.len();
        stats.pending_validations = self.pending.len();
        stats.open_promises = self.promises.len();
        stats.retained_scores = self.scores.as_ref().map_or(0, PeerScores::retained_len);
        stats
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<GossipEvent> {
        std::mem::take(&mut self.events)
    }

    // ----- sending ---------------------------------------------------------

    /// Frame and queue an RPC for one peer; `false` if its queue refused.
    pub(crate) fn send(&mut self, peer: PeerId, rpc: &Rpc, priority: Priority) -> bool {
        let bytes = codec::encode(rpc);
        self.send_frame(
            peer,
            Frame {
                bytes,
                message_id: None,
            },
            priority,
        )
    }

    fn send_frame(&mut self, peer: PeerId, frame: Frame, priority: Priority) -> bool {
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        let ok = p.queue.push(frame, priority);
        if !ok {
            self.stats.queue_drops += 1;
            trace!(%peer, "queue full, frame dropped");
        }
        ok
    }

    pub(crate) fn send_control(&mut self, peer: PeerId, control: ControlMessage) {
        let kind = self.peers.get(&peer).map(|p| p.kind);
        if !kind.is_some_and(|k| k.is_gossipsub() || k == PeerKind::Unknown) {
            return;
        }
        let rpc = Rpc {
            control: Some(control),
            ..Rpc::default()
        };
        self.send(peer, &rpc, Priority::High);
    }

    pub(crate) fn graft(&mut self, peer: PeerId, topic: &str, now: Instant) {
        // Its time in our mesh (P1, P3) counts from now.
        if let Some(scores) = &mut self.scores {
            scores.grafted(&peer, topic, now);
        }
        self.send_control(
            peer,
            ControlMessage {
                graft: vec![proto::ControlGraft {
                    topic_id: Some(topic.to_owned()),
                }],
                ..ControlMessage::default()
            },
        );
    }

    /// Send PRUNE with `backoff`, and peer exchange if enabled and the peer
    /// speaks v1.1; record the backoff on our side too.
    pub(crate) fn prune(
        &mut self,
        peer: PeerId,
        topic: &str,
        backoff: Duration,
        px: bool,
        now: Instant,
        rng: &mut dyn RngCore,
    ) {
        // Out of our mesh: P1 stops, a delivery deficit becomes P3b.
        if let Some(scores) = &mut self.scores {
            scores.pruned(&peer, topic);
        }
        self.set_backoff(topic, peer, now + backoff);
        let v11 = self
            .peers
            .get(&peer)
            .is_some_and(|p| p.kind >= PeerKind::Gossipsub11);
        let mut peers = Vec::new();
        if px && v11 && self.config.do_px {
            let mut candidates: Vec<PeerId> = self
                .topic_peers(topic)
                .into_iter()
                .filter(|p| *p != peer)
                .collect();
            candidates.shuffle(rng);
            candidates.truncate(self.config.prune_peers);
            peers = candidates
                .into_iter()
                .map(|p| proto::PeerInfo {
                    peer_id: Some(p.to_bytes()),
                    signed_peer_record: None,
                })
                .collect();
        }
        self.send_control(
            peer,
            ControlMessage {
                prune: vec![proto::ControlPrune {
                    topic_id: Some(topic.to_owned()),
                    peers,
                    backoff: v11.then_some(backoff.as_secs()),
                }],
                ..ControlMessage::default()
            },
        );
    }

    pub(crate) fn set_backoff(&mut self, topic: &str, peer: PeerId, until: Instant) {
        let entry = self
            .backoff
            .entry((topic.to_owned(), peer))
            .or_insert(until);
        *entry = (*entry).max(until);
    }

    pub(crate) fn in_backoff(&self, topic: &str, peer: PeerId, now: Instant) -> bool {
        self.backoff
            .get(&(topic.to_owned(), peer))
            .is_some_and(|until| *until > now)
    }

    // ----- subscriptions ---------------------------------------------------

    /// Join `topic`: announce it and graft up to D peers (fanout first).
    /// `false` if already subscribed.
    pub fn subscribe(&mut self, topic: &str, now: Instant, rng: &mut dyn RngCore) -> bool {
        if !self.subscriptions.insert(topic.to_owned()) {
            return false;
        }
        self.announce(topic, true);
        let mut mesh: BTreeSet<PeerId> = self.fanout.remove(topic).unwrap_or_default();
        self.fanout_last_publish.remove(topic);
        let mut candidates: Vec<PeerId> = self
            .mesh_candidates(topic, now)
            .into_iter()
            .filter(|p| !mesh.contains(p))
            .collect();
        candidates.shuffle(rng);
        for p in candidates {
            if mesh.len() >= self.config.mesh_n {
                break;
            }
            mesh.insert(p);
        }
        for p in mesh.clone() {
            self.graft(p, topic, now);
        }
        debug!(topic, mesh = mesh.len(), "subscribed");
        self.mesh.insert(topic.to_owned(), mesh);
        true
    }

    /// Leave `topic`: announce it and PRUNE the mesh with the unsubscribe
    /// backoff. `false` if not subscribed.
    pub fn unsubscribe(&mut self, topic: &str, now: Instant, rng: &mut dyn RngCore) -> bool {
        if !self.subscriptions.remove(topic) {
            return false;
        }
        self.announce(topic, false);
        for p in self.mesh.remove(topic).unwrap_or_default() {
            self.prune(p, topic, self.config.unsubscribe_backoff, true, now, rng);
        }
        true
    }

    fn announce(&mut self, topic: &str, subscribe: bool) {
        let rpc = Rpc {
            subscriptions: vec![proto::SubOpts {
                subscribe: Some(subscribe),
                topic_id: Some(topic.to_owned()),
            }],
            ..Rpc::default()
        };
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for p in peers {
            self.send(p, &rpc, Priority::High);
        }
    }

    /// Gossipsub peers on `topic` that may join our mesh (not in backoff,
    /// not below the graylist... score threshold when scoring).
    pub(crate) fn mesh_candidates(&self, topic: &str, now: Instant) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(id, p)| {
                p.kind.is_gossipsub()
                    && p.topics.contains(topic)
                    && !self.in_backoff(topic, **id, now)
                    && self.peer_score(id) >= 0.0
            })
            .map(|(id, _)| *id)
            .collect()
    }

    // ----- publish ---------------------------------------------------------

    /// Publish `data` on `topic`: to every subscribed peer with flood
    /// publishing, else to the mesh (or fanout). Our publishes go in the
    /// high-priority lane.
    pub fn publish(
        &mut self,
        topic: &str,
        data: Vec<u8>,
        now: Instant,
        rng: &mut dyn RngCore,
    ) -> Result<MessageId, PublishError> {
        let seqno = self.seqno;
        let wire = message::author(
            self.config.signing,
            self.config.keypair.as_ref(),
            topic,
            data,
            seqno,
        )
        .map_err(PublishError::Signing)?;
        let rpc = Rpc {
            publish: vec![wire.clone()],
            ..Rpc::default()
        };
        let bytes = codec::encode(&rpc);
        if bytes.len() > self.config.max_transmit_size {
            return Err(PublishError::MessageTooLarge {
                size: bytes.len(),
                limit: self.config.max_transmit_size,
            });
        }
        let decoded = GossipMessage {
            source: wire.from.as_ref().and_then(|b| PeerId::from_bytes(b).ok()),
            data: wire.data.clone().unwrap_or_default(),
            sequence_number: wire.seqno.as_ref().map(|_| seqno),
            topic: topic.to_owned(),
        };
        let id = (self.config.message_id_fn)(&decoded);
        if self.seen.contains(&id) {
            return Err(PublishError::Duplicate);
        }
        let frame = Frame {
            bytes,
            message_id: None,
        };
        let targets = self.publish_targets(topic, now, rng);
        if targets.is_empty() {
            return Err(PublishError::InsufficientPeers);
        }
        let mut taken = 0;
        for p in &targets {
            if self.send_frame(*p, frame.clone(), Priority::High) {
                taken += 1;
            }
        }
        if taken == 0 {
            return Err(PublishError::AllQueuesFull(targets.len()));
        }
        self.seqno = self.seqno.wrapping_add(1);
        self.seen.insert(id.clone(), now);
        self.mcache.put(id.clone(), wire);
        self.stats.published += 1;
        Ok(id)
    }

    fn above_publish_threshold(&self, peer: &PeerId) -> bool {
        self.scores
            .as_ref()
            .is_none_or(|s| s.score(peer) >= s.params().publish_threshold)
    }

    fn publish_targets(&mut self, topic: &str, now: Instant, rng: &mut dyn RngCore) -> Vec<PeerId> {
        let mut targets: BTreeSet<PeerId> = BTreeSet::new();
        // Floodsub peers get everything on their topics.
        for (id, p) in &self.peers {
            if p.topics.contains(topic)
                && (p.kind == PeerKind::Floodsub
                    || (self.config.flood_publish && self.above_publish_threshold(id)))
            {
                targets.insert(*id);
            }
        }
        if self.subscriptions.contains(topic) {
            targets.extend(self.mesh.get(topic).into_iter().flatten().copied());
        } else {
            self.fanout_last_publish.insert(topic.to_owned(), now);
            let fanout = self.fanout.entry(topic.to_owned()).or_default();
            if fanout.is_empty() {
                let mut candidates: Vec<PeerId> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.kind.is_gossipsub() && p.topics.contains(topic))
                    .map(|(id, _)| *id)
                    .collect();
                candidates.shuffle(rng);
                candidates.truncate(self.config.mesh_n);
                let fanout = self.fanout.entry(topic.to_owned()).or_default();
                fanout.extend(candidates);
            }
            targets.extend(self.fanout.get(topic).into_iter().flatten().copied());
        }
        targets.into_iter().collect()
    }

    // ----- receiving -------------------------------------------------------

    /// Handle one RPC from `peer`.
    pub fn handle_rpc(&mut self, peer: PeerId, rpc: Rpc, now: Instant, rng: &mut dyn RngCore) {
        if !self.peers.contains_key(&peer) {
            return;
        }
        if let Some(scores) = &self.scores
            && scores.score(&peer) < scores.params().graylist_threshold
        {
            self.stats.graylisted_rpcs += 1;
            return;
        }
        for sub in rpc.subscriptions {
            self.handle_subscription(peer, sub);
        }
        for message in rpc
            .publish
            .into_iter()
            .take(self.config.max_messages_per_rpc)
        {
            self.handle_message(peer, message, now);
        }
        if let Some(control) = rpc.control {
            self.handle_control(peer, control, now, rng);
        }
    }

    fn handle_subscription(&mut self, peer: PeerId, sub: proto::SubOpts) {
        let Some(topic) = sub.topic_id else {
            return;
        };
        let max = self.config.max_topics_per_peer;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if sub.subscribe.unwrap_or(false) {
            if p.topics.contains(&topic) {
                return;
            }
            if p.topics.len() >= max {
                self.stats.subscriptions_refused += 1;
                return;
            }
            p.topics.insert(topic.clone());
            self.events.push(GossipEvent::Subscribed { peer, topic });
        } else if p.topics.remove(&topic) {
            if let Some(mesh) = self.mesh.get_mut(&topic) {
                mesh.remove(&peer);
            }
            if let Some(fanout) = self.fanout.get_mut(&topic) {
                fanout.remove(&peer);
            }
            self.events.push(GossipEvent::Unsubscribed { peer, topic });
        }
    }

    fn handle_message(&mut self, peer: PeerId, message: proto::Message, now: Instant) {
        let decoded = match message::decode(&message) {
            Ok(decoded) => decoded,
            Err(error) => return self.invalid(peer, &message.topic, error),
        };
        if decoded.source == Some(self.local) {
            // Our own message coming back (after the seen-cache forgot it,
            // or a replay): never delivered to ourselves.
            self.stats.own_messages += 1;
            return;
        }
        let id = (self.config.message_id_fn)(&decoded);
        // A duplicate is dropped before its signature is checked: only
        // verified messages enter the seen-cache, so a forgery cannot
        // shadow the genuine message, and verification is paid once.
        if self.seen.contains(&id) {
            self.stats.duplicates += 1;
            if let Some(scores) = &mut self.scores {
                scores.duplicate_delivered(&peer, &decoded.topic, &id, now);
            }
            return;
        }
        if let Err(error) = message::verify(self.config.signing, &message, &decoded) {
            return self.invalid(peer, &message.topic, error);
        }
        self.seen.insert(id.clone(), now);
        self.promises.delivered(&id);
        if let Some(scores) = &mut self.scores {
            scores.message_delivered(&peer, &decoded.topic, &id, now);
        }
        if !self.subscriptions.contains(&decoded.topic) {
            self.stats.unsubscribed_topic += 1;
            return;
        }
        let size = prost::Message::encoded_len(&message);
        if size >= self.config.idontwant_message_size_threshold {
            self.send_idontwant(peer, &decoded.topic, &id);
        }
        if let Some(validator) = &self.config.validator {
            match validator(&decoded) {
                Validation::Accept => {}
                verdict => {
                    self.refuse(peer, &decoded.topic, verdict);
                    return;
                }
            }
        }
        if self.config.validate_asynchronously {
            if self.pending.len() >= self.config.max_pending_validations {
                self.stats.validations_dropped += 1;
                return;
            }
            self.pending.insert(
                id.clone(),
                PendingValidation {
                    propagation_source: peer,
                    message,
                    size,
                },
            );
            self.deliver(peer, id, decoded);
            return;
        }
        self.deliver(peer, id.clone(), decoded);
        self.accept(peer, id, message, now);
    }

    fn invalid(&mut self, peer: PeerId, topic: &str, error: InvalidMessage) {
        debug!(%peer, %error, "invalid message");
        self.stats.invalid_messages += 1;
        if let Some(scores) = &mut self.scores {
            scores.invalid_message(&peer, topic);
        }
    }

    fn refuse(&mut self, peer: PeerId, topic: &str, verdict: Validation) {
        if verdict == Validation::Reject {
            self.stats.rejected += 1;
            if let Some(scores) = &mut self.scores {
                scores.invalid_message(&peer, topic);
            }
        } else {
            self.stats.ignored += 1;
        }
    }

    fn deliver(&mut self, peer: PeerId, id: MessageId, message: GossipMessage) {
        self.stats.delivered += 1;
        self.events.push(GossipEvent::Message {
            propagation_source: peer,
            id,
            message,
        });
    }

    /// A message passed validation: cache it and forward it to the mesh
    /// (and floodsub peers), except its source and author, and peers that
    /// said IDONTWANT.
    fn accept(&mut self, source: PeerId, id: MessageId, message: proto::Message, now: Instant) {
        let _ = now;
        let topic = message.topic.clone();
        let author = message
            .from
            .as_ref()
            .and_then(|b| PeerId::from_bytes(b).ok());
        self.mcache.put(id.clone(), message.clone());
        let mut targets: BTreeSet<PeerId> = self
            .mesh
            .get(&topic)
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default();
        for (pid, p) in &self.peers {
            if p.kind == PeerKind::Floodsub && p.topics.contains(&topic) {
                targets.insert(*pid);
            }
        }
        targets.remove(&source);
        if let Some(author) = author {
            targets.remove(&author);
        }
        let frame = Frame {
            bytes: codec::encode(&Rpc {
                publish: vec![message],
                ..Rpc::default()
            }),
            message_id: Some(id.clone()),
        };
        for p in targets {
            let skip = self
                .peers
                .get(&p)
                .is_some_and(|s| s.dont_send.contains_key(&id));
            if skip {
                self.stats.idontwant_honoured += 1;
                continue;
            }
            if self.send_frame(p, frame.clone(), Priority::Low) {
                self.stats.forwarded += 1;
            }
        }
    }

    /// Answer an asynchronous validation: forward on Accept, drop
    /// otherwise. Unknown ids (answered twice, or dropped) are ignored.
    pub fn report_validation(
        &mut self,
        id: &MessageId,
        propagation_source: PeerId,
        validation: Validation,
        now: Instant,
    ) -> bool {
        let Some(pending) = self.pending.remove(id) else {
            return false;
        };
        let _ = (propagation_source, pending.size);
        match validation {
            Validation::Accept => {
                self.accept(pending.propagation_source, id.clone(), pending.message, now)
            }
            verdict => {
                let topic = pending.message.topic.clone();
                self.refuse(pending.propagation_source, &topic, verdict)
            }
        }
        true
    }

    fn send_idontwant(&mut self, source: PeerId, topic: &str, id: &MessageId) {
        let targets: Vec<PeerId> = self
            .mesh
            .get(topic)
            .into_iter()
            .flatten()
            .copied()
            .filter(|p| {
                *p != source
                    && self
                        .peers
                        .get(p)
                        .is_some_and(|s| s.kind == PeerKind::Gossipsub12)
            })
            .collect();
        for p in targets {
            self.stats.idontwant_sent += 1;
            self.send_control(
                p,
                ControlMessage {
                    idontwant: vec![proto::ControlIDontWant {
                        message_ids: vec![id.0.clone()],
                    }],
                    ..ControlMessage::default()
                },
            );
        }
    }

    /// Set a peer's application-specific score (P5).
    pub fn set_application_score(&mut self, peer: &PeerId, score: f64) {
        if let Some(scores) = &mut self.scores {
            scores.set_app_score(peer, score);
        }
    }

    /// Whether `policy` is the configured one (for tests).
    pub fn signing_policy(&self) -> SigningPolicy {
        self.config.signing
    }
}
