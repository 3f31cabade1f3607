//! Control messages from a peer: IHAVE (ask for what we have not seen,
//! within the per-heartbeat limits), IWANT (answer from the message cache),
//! GRAFT and PRUNE (mesh membership, backoff, peer exchange) and IDONTWANT
//! (what not to forward to that peer).

use std::time::{Duration, Instant};

use rand::RngCore;
use swarm::PeerId;
use tracing::debug;

use super::api::GossipEvent;
use super::message::MessageId;
use super::peer::PeerKind;
use super::proto::{self, ControlMessage, Rpc};
use super::queue::Priority;
use super::router::Router;

impl Router {
    /// Handle the control part of an RPC from `peer`.
    pub(crate) fn handle_control(
        &mut self,
        peer: PeerId,
        control: ControlMessage,
        now: Instant,
        rng: &mut dyn RngCore,
    ) {
        let is_gossipsub = self.peers.get(&peer).is_some_and(|p| p.kind.is_gossipsub());
        if !is_gossipsub
            && self
                .peers
                .get(&peer)
                .is_some_and(|p| p.kind != PeerKind::Unknown)
        {
            return;
        }
        let below_gossip = self
            .scores
            .as_ref()
            .is_some_and(|s| s.score(&peer) < s.params().gossip_threshold);
        if !below_gossip {
            self.handle_ihave(peer, control.ihave, now, rng);
            self.handle_iwant(peer, control.iwant);
        }
        for graft in control.graft {
            if let Some(topic) = graft.topic_id {
                self.handle_graft(peer, topic, now, rng);
            }
        }
        for prune in control.prune {
            self.handle_prune(peer, prune, now);
        }
        self.handle_idontwant(peer, control.idontwant);
    }

    fn handle_ihave(
        &mut self,
        peer: PeerId,
        ihaves: Vec<proto::ControlIHave>,
        now: Instant,
        rng: &mut dyn RngCore,
    ) {
        if ihaves.is_empty() {
            return;
        }
        let mut wanted: Vec<Vec<u8>> = Vec::new();
        let max_ids = self.config.max_ihave_length;
        let max_messages = self.config.max_ihave_messages;
        for ihave in ihaves {
            let Some(p) = self.peers.get_mut(&peer) else {
                return;
            };
            p.ihave_this_heartbeat += 1;
            if p.ihave_this_heartbeat > max_messages {
                self.stats.ihave_ignored += 1;
                continue;
            }
            let subscribed = ihave
                .topic_id
                .as_ref()
                .is_some_and(|t| self.subscriptions.contains(t));
            if !subscribed {
                continue;
            }
            for raw in ihave.message_ids {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return;
                };
                if p.ihave_ids_this_heartbeat >= max_ids {
                    self.stats.ihave_ignored += 1;
                    break;
                }
                let id = MessageId(raw);
                if self.seen.contains(&id) || wanted.contains(&id.0) {
                    continue;
                }
                p.ihave_ids_this_heartbeat += 1;
                wanted.push(id.0);
            }
        }
        if !wanted.is_empty() {
            if self.scores.is_some() {
                // One id of the IWANT, chosen at random, is watched.
                let watched = wanted[rng.next_u32() as usize % wanted.len()].clone();
                let deadline = now + self.config.iwant_followup_time;
                self.promises.add(peer, MessageId(watched), deadline);
            }
            self.send_control(
                peer,
                ControlMessage {
                    iwant: vec![proto::ControlIWant {
                        message_ids: wanted,
                    }],
                    ..ControlMessage::default()
                },
            );
        }
    }

    fn handle_iwant(&mut self, peer: PeerId, iwants: Vec<proto::ControlIWant>) {
        let limit = self.config.gossip_retransmission;
        let mut budget = self.config.max_ihave_length;
        for raw in iwants.into_iter().flat_map(|w| w.message_ids) {
            if budget == 0 {
                self.stats.iwant_over_limit += 1;
                break;
            }
            budget -= 1;
            let id = MessageId(raw);
            if !self.mcache.contains(&id) {
                self.stats.iwant_unknown += 1;
                continue;
            }
            let Some(message) = self.mcache.get_for(&id, peer, limit).cloned() else {
                self.stats.iwant_over_limit += 1;
                continue;
            };
            let rpc = Rpc {
                publish: vec![message],
                ..Rpc::default()
            };
            self.send(peer, &rpc, Priority::Low);
        }
    }

    fn handle_graft(&mut self, peer: PeerId, topic: String, now: Instant, rng: &mut dyn RngCore) {
        if !self.subscriptions.contains(&topic) {
            // Spec: PRUNE (no PX) a GRAFT for a topic we are not in.
            self.prune(peer, &topic, self.config.prune_backoff, false, now, rng);
            return;
        }
        if self.mesh.get(&topic).is_some_and(|m| m.contains(&peer)) {
            return;
        }
        if self.in_backoff(&topic, peer, now) {
            debug!(%peer, topic, "GRAFT during backoff");
            self.stats.graft_during_backoff += 1;
            if let Some(scores) = &mut self.scores {
                scores.behaviour_penalty(&peer, 1.0);
            }
            // Spec: refuse and extend the backoff.
            self.prune(peer, &topic, self.config.prune_backoff, false, now, rng);
            return;
        }
        if self.peer_score(&peer) < 0.0 {
            self.prune(peer, &topic, self.config.prune_backoff, false, now, rng);
            return;
        }
        let outbound = self.peers.get(&peer).is_some_and(|p| p.outbound);
        let full = self
            .mesh
            .get(&topic)
            .is_some_and(|m| m.len() >= self.config.mesh_n_high);
        if full && !outbound {
            self.prune(peer, &topic, self.config.prune_backoff, true, now, rng);
            return;
        }
        self.mesh.entry(topic.clone()).or_default().insert(peer);
        if let Some(scores) = &mut self.scores {
            scores.grafted(&peer, &topic, now);
        }
    }

    fn handle_prune(&mut self, peer: PeerId, prune: proto::ControlPrune, now: Instant) {
        let Some(topic) = prune.topic_id else {
            return;
        };
        if let Some(mesh) = self.mesh.get_mut(&topic)
            && mesh.remove(&peer)
            && let Some(scores) = &mut self.scores
        {
            scores.pruned(&peer, &topic);
        }
        // Cap what a peer may ask: a backoff of days would lock us out.
        let backoff = prune
            .backoff
            .map(|s| Duration::from_secs(s.min(3600)))
            .unwrap_or(self.config.prune_backoff);
        self.set_backoff(&topic, peer, now + backoff);
        let peers: Vec<PeerId> = prune
            .peers
            .iter()
            .take(self.config.prune_peers)
            .filter_map(|p| p.peer_id.as_ref())
            .filter_map(|b| PeerId::from_bytes(b).ok())
            .filter(|p| *p != self.local && !self.peers.contains_key(p))
            .collect();
        let accept_px = self
            .scores
            .as_ref()
            .is_none_or(|s| s.score(&peer) >= s.params().accept_px_threshold);
        if !peers.is_empty() && accept_px {
            self.events
                .push(GossipEvent::PeerExchange { peer, topic, peers });
        }
    }

    fn handle_idontwant(&mut self, peer: PeerId, idontwants: Vec<proto::ControlIDontWant>) {
        let cap = self.config.max_idontwant_per_heartbeat;
        let tick = self.heartbeat_ticks;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        for raw in idontwants.into_iter().flat_map(|w| w.message_ids) {
            if p.idontwant_this_heartbeat >= cap {
                self.stats.idontwant_ignored += 1;
                continue;
            }
            p.idontwant_this_heartbeat += 1;
            p.dont_send.insert(MessageId(raw), tick);
        }
    }
}
