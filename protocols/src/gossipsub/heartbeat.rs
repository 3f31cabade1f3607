//! The heartbeat: mesh maintenance (graft below D_lo, prune above D_hi,
//! keep D_out outbound peers, opportunistic grafting with scoring),
//! fanout expiry and top-up, IHAVE gossip to D_lazy peers, cache shifts,
//! per-heartbeat limit resets and slow-peer reports.

use std::collections::BTreeSet;
use std::time::Instant;

use rand::RngCore;
use rand::seq::SliceRandom;
use swarm::PeerId;

use super::api::GossipEvent;
use super::proto::{self, ControlMessage};
use super::router::Router;

impl Router {
    /// Run one heartbeat.
    pub fn heartbeat(&mut self, now: Instant, rng: &mut dyn RngCore) {
        self.heartbeat_ticks += 1;
        self.stats.heartbeats += 1;
        self.seen.expire(now);
        self.backoff.retain(|_, until| *until > now);
        if let Some(scores) = &mut self.scores {
            for (peer, broken) in self.promises.take_broken(now) {
                self.stats.broken_promises += broken as u64;
                scores.behaviour_penalty(&peer, broken as f64);
            }
            scores.refresh(now);
        }
        let history = self.config.history_length as u64;
        let tick = self.heartbeat_ticks;
        for p in self.peers.values_mut() {
            p.ihave_this_heartbeat = 0;
            p.ihave_ids_this_heartbeat = 0;
            p.idontwant_this_heartbeat = 0;
            p.dont_send.retain(|_, at| *at + history > tick);
        }
        let topics: Vec<String> = self.mesh.keys().cloned().collect();
        for topic in &topics {
            self.maintain_mesh(topic, now, rng);
        }
        self.maintain_fanout(now, rng);
        self.emit_gossip(rng);
        self.mcache.shift();
        self.report_slow_peers();
    }

    fn maintain_mesh(&mut self, topic: &str, now: Instant, rng: &mut dyn RngCore) {
        let d = self.config.mesh_n;
        let d_lo = self.config.mesh_n_low;
        let d_hi = self.config.mesh_n_high;
        let d_out = self.config.mesh_outbound_min;
        let mut mesh = self.mesh.remove(topic).unwrap_or_default();
        // Drop peers that left the topic, or score below zero.
        let stale: Vec<PeerId> = mesh
            .iter()
            .copied()
            .filter(|p| {
                !self
                    .peers
                    .get(p)
                    .is_some_and(|s| s.kind.is_gossipsub() && s.topics.contains(topic))
                    || self.peer_score(p) < 0.0
            })
            .collect();
        for p in stale {
            mesh.remove(&p);
            if self.peers.contains_key(&p) {
                self.prune(p, topic, self.config.prune_backoff, false, now, rng);
            }
        }
        // Too few: graft up to D.
        if mesh.len() < d_lo {
            let mut candidates: Vec<PeerId> = self
                .mesh_candidates(topic, now)
                .into_iter()
                .filter(|p| !mesh.contains(p))
                .collect();
            candidates.shuffle(rng);
            for p in candidates.into_iter().take(d - mesh.len()) {
                mesh.insert(p);
                self.graft(p, topic, now);
            }
        }
        // Too many: keep D, preferring D_score best-scored and D_out outbound.
        if mesh.len() > d_hi {
            let mut members: Vec<PeerId> = mesh.iter().copied().collect();
            members.shuffle(rng);
            if self.scores.is_some() {
                members.sort_by(|a, b| self.peer_score(b).total_cmp(&self.peer_score(a)));
                let keep_scored = self.config.mesh_n_score.min(members.len());
                members[keep_scored..].shuffle(rng);
            }
            let is_out = |p: &PeerId| self.peers.get(p).is_some_and(|s| s.outbound);
            let mut keep: Vec<PeerId> =
                members[..self.config.mesh_n_score.min(members.len())].to_vec();
            let outbound_kept = keep.iter().filter(|p| is_out(p)).count();
            let outbound_left = members[keep.len()..].iter().filter(|p| is_out(p)).count();
            // Reserve room only for outbound peers that exist.
            let mut need_out = d_out.saturating_sub(outbound_kept).min(outbound_left);
            for p in &members[keep.len()..] {
                if keep.len() >= d {
                    break;
                }
                if need_out > 0 && !is_out(p) && d - keep.len() <= need_out {
                    continue;
                }
                if is_out(p) {
                    need_out = need_out.saturating_sub(1);
                }
                keep.push(*p);
            }
            let keep: BTreeSet<PeerId> = keep.into_iter().collect();
            let removed: Vec<PeerId> = mesh.difference(&keep).copied().collect();
            for p in removed {
                self.prune(p, topic, self.config.prune_backoff, true, now, rng);
            }
            mesh = keep;
        }
        // Enough, but too few outbound: graft outbound peers.
        if mesh.len() >= d_lo {
            let outbound = mesh
                .iter()
                .filter(|p| self.peers.get(p).is_some_and(|s| s.outbound))
                .count();
            if outbound < d_out {
                let mut candidates: Vec<PeerId> = self
                    .mesh_candidates(topic, now)
                    .into_iter()
                    .filter(|p| !mesh.contains(p) && self.peers.get(p).is_some_and(|s| s.outbound))
                    .collect();
                candidates.shuffle(rng);
                for p in candidates.into_iter().take(d_out - outbound) {
                    mesh.insert(p);
                    self.graft(p, topic, now);
                }
            }
        }
        // Opportunistic grafting: only meaningful with scores.
        if let Some(threshold) = self
            .scores
            .as_ref()
            .map(|s| s.params().opportunistic_graft_threshold)
            && self.config.opportunistic_graft_ticks > 0
            && self
                .heartbeat_ticks
                .is_multiple_of(self.config.opportunistic_graft_ticks)
            && mesh.len() > 1
        {
            let mut scores: Vec<f64> = mesh.iter().map(|p| self.peer_score(p)).collect();
            scores.sort_by(f64::total_cmp);
            let median = scores[scores.len() / 2];
            if median < threshold {
                let mut candidates: Vec<PeerId> = self
                    .mesh_candidates(topic, now)
                    .into_iter()
                    .filter(|p| !mesh.contains(p) && self.peer_score(p) > median)
                    .collect();
                candidates.shuffle(rng);
                for p in candidates
                    .into_iter()
                    .take(self.config.opportunistic_graft_peers)
                {
                    mesh.insert(p);
                    self.graft(p, topic, now);
                }
            }
        }
        self.mesh.insert(topic.to_owned(), mesh);
    }

    fn maintain_fanout(&mut self, now: Instant, rng: &mut dyn RngCore) {
        let ttl = self.config.fanout_ttl;
        let expired: Vec<String> = self
            .fanout_last_publish
            .iter()
            .filter(|(_, at)| **at + ttl <= now)
            .map(|(t, _)| t.clone())
            .collect();
        for topic in expired {
            self.fanout_last_publish.remove(&topic);
            self.fanout.remove(&topic);
        }
        let topics: Vec<String> = self.fanout.keys().cloned().collect();
        for topic in topics {
            let mut set = self.fanout.remove(&topic).unwrap_or_default();
            set.retain(|p| self.peers.get(p).is_some_and(|s| s.topics.contains(&topic)));
            if set.len() < self.config.mesh_n {
                let mut candidates: Vec<PeerId> = self
                    .peers
                    .iter()
                    .filter(|(id, s)| {
                        s.kind.is_gossipsub() && s.topics.contains(&topic) && !set.contains(id)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                candidates.shuffle(rng);
                let room = self.config.mesh_n - set.len();
                set.extend(candidates.into_iter().take(room));
            }
            self.fanout.insert(topic, set);
        }
    }

    /// IHAVE the gossip windows' ids to D_lazy (or gossip_factor of the)
    /// non-mesh peers of each mesh and fanout topic.
    fn emit_gossip(&mut self, rng: &mut dyn RngCore) {
        let topics: Vec<String> = self
            .mesh
            .keys()
            .chain(self.fanout.keys())
            .cloned()
            .collect();
        for topic in topics {
            let mut ids = self.mcache.gossip_ids(&topic);
            if ids.is_empty() {
                continue;
            }
            let exclude: BTreeSet<PeerId> = self
                .mesh
                .get(&topic)
                .into_iter()
                .chain(self.fanout.get(&topic))
                .flatten()
                .copied()
                .collect();
            let mut candidates: Vec<PeerId> = self
                .peers
                .iter()
                .filter(|(id, s)| {
                    s.kind.is_gossipsub()
                        && s.topics.contains(&topic)
                        && !exclude.contains(id)
                        && self
                            .scores
                            .as_ref()
                            .is_none_or(|sc| sc.score(id) >= sc.params().gossip_threshold)
                })
                .map(|(id, _)| *id)
                .collect();
            let count = self
                .config
                .gossip_lazy
                .max((self.config.gossip_factor * candidates.len() as f64) as usize);
            candidates.shuffle(rng);
            candidates.truncate(count);
            if ids.len() > self.config.max_ihave_length {
                ids.shuffle(rng);
                ids.truncate(self.config.max_ihave_length);
            }
            let ihave = proto::ControlIHave {
                topic_id: Some(topic.clone()),
                message_ids: ids.into_iter().map(|id| id.0).collect(),
            };
            for p in candidates {
                let rpc = proto::Rpc {
                    control: Some(ControlMessage {
                        ihave: vec![ihave.clone()],
                        ..ControlMessage::default()
                    }),
                    ..proto::Rpc::default()
                };
                self.send(p, &rpc, super::queue::Priority::Low);
            }
        }
    }

    fn report_slow_peers(&mut self) {
        for (peer, p) in &mut self.peers {
            if p.queue.dropped > p.drops_reported {
                let dropped = p.queue.dropped - p.drops_reported;
                p.drops_reported = p.queue.dropped;
                self.events.push(GossipEvent::SlowPeer {
                    peer: *peer,
                    dropped,
                    queued_bytes: p.queue.bytes(),
                });
            }
        }
    }
}
