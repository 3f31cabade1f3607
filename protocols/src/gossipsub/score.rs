//! Peer scoring (gossipsub v1.1): the counters behind P1–P7 and the score
//! they give. P1 time in mesh, P2 first message deliveries, P3 / P3b mesh
//! message delivery deficit and mesh failure penalty, P4 invalid
//! messages, P5 the application's score, P6 IP colocation, P7 behaviour
//! penalty (GRAFT during backoff, broken IHAVE promises). Counters decay
//! each heartbeat; a peer that leaves with a score below zero keeps its
//! counters for [`ScoreParams::retain_score`]. Off unless
//! [`GossipsubConfig::scoring`] is set.
//!
//! [`GossipsubConfig::scoring`]: super::GossipsubConfig::scoring

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use swarm::PeerId;

use super::message::MessageId;
use super::score_params::{ScoreParams, TopicScoreParams};

#[derive(Default)]
struct TopicStats {
    /// When the peer joined our mesh, while it is in it.
    grafted_at: Option<Instant>,
    time_in_mesh: Duration,
    first_deliveries: f64,
    mesh_deliveries: f64,
    /// In the mesh for longer than the activation time: P3 counts.
    mesh_deliveries_active: bool,
    mesh_failure_penalty: f64,
    invalid_deliveries: f64,
}

#[derive(Default)]
struct PeerStats {
    topics: HashMap<String, TopicStats>,
    behaviour_penalty: f64,
    app_score: f64,
    /// The address of its first connection (P6).
    ip: Option<IpAddr>,
}

/// A message delivered recently: when first, and which peers counted for
/// it (a peer counts once per message for P3).
struct RecentDelivery {
    first: Instant,
    peers: Vec<PeerId>,
}

/// Every connected peer's score counters, and those of departed peers
/// with a bad score.
pub(crate) struct PeerScores {
    params: ScoreParams,
    peers: HashMap<PeerId, PeerStats>,
    /// Departed peers with a score below zero, until the time given.
    retained: HashMap<PeerId, (PeerStats, Instant)>,
    /// Retention order (expiries grow with insertion): the oldest goes
    /// first when the table is full or expired.
    retained_order: VecDeque<(PeerId, Instant)>,
    /// Connected peers per IP address (P6).
    peers_per_ip: HashMap<IpAddr, usize>,
    /// First deliveries within the widest P3 window.
    recent: HashMap<MessageId, RecentDelivery>,
    /// The widest P3 window of any topic: how long `recent` keeps entries.
    widest_window: Duration,
    /// The latest time we were told (heartbeats and deliveries).
    now: Option<Instant>,
}

impl PeerScores {
    pub(crate) fn new(params: ScoreParams) -> Self {
        let widest_window = params
            .topics
            .values()
            .chain(std::iter::once(&params.default_topic))
            .map(|t| t.mesh_message_deliveries_window)
            .max()
            .unwrap_or_default();
        Self {
            params,
            peers: HashMap::new(),
            retained: HashMap::new(),
            retained_order: VecDeque::new(),
            peers_per_ip: HashMap::new(),
            recent: HashMap::new(),
            widest_window,
            now: None,
        }
    }

    pub(crate) fn params(&self) -> &ScoreParams {
        &self.params
    }

    fn topic_params(&self, topic: &str) -> &TopicScoreParams {
        self.params
            .topics
            .get(topic)
            .unwrap_or(&self.params.default_topic)
    }

    /// A peer connected: its counters start at zero, or where they were
    /// when it left with a bad score.
    pub(crate) fn add_peer(&mut self, peer: PeerId) {
        if self.peers.contains_key(&peer) {
            return;
        }
        let stats = match self.retained.remove(&peer) {
            Some((stats, _)) => stats,
            None => PeerStats::default(),
        };
        self.peers.insert(peer, stats);
    }

    /// A peer disconnected. Leaving a mesh with a delivery deficit costs
    /// P3b as a prune does; a score below zero is remembered.
    pub(crate) fn remove_peer(&mut self, peer: &PeerId) {
        let topics: Vec<String> = match self.peers.get(peer) {
            Some(s) => s
                .topics
                .iter()
                .filter(|(_, t)| t.grafted_at.is_some())
                .map(|(topic, _)| topic.clone())
                .collect(),
            None => return,
        };
        for topic in topics {
            self.pruned(peer, &topic);
        }
        let score = self.score(peer);
        let Some(mut stats) = self.peers.remove(peer) else {
            return;
        };
        if let Some(ip) = stats.ip.take() {
            self.forget_ip(ip);
        }
        let Some(now) = self.now else {
            return;
        };
        if score >= 0.0 || self.params.max_retained_peers == 0 {
            return;
        }
        let until = now + self.params.retain_score;
        self.retained.insert(*peer, (stats, until));
        self.retained_order.push_back((*peer, until));
        while self.retained.len() > self.params.max_retained_peers {
            self.drop_oldest_retained();
        }
    }

    fn drop_oldest_retained(&mut self) {
        if let Some((peer, until)) = self.retained_order.pop_front()
            && self.retained.get(&peer).is_some_and(|(_, u)| *u == until)
        {
            self.retained.remove(&peer);
        }
    }

    /// The IP address of the peer's connection (P6).
    pub(crate) fn set_ip(&mut self, peer: &PeerId, ip: IpAddr) {
        let Some(stats) = self.peers.get_mut(peer) else {
            return;
        };
        if stats.ip == Some(ip) {
            return;
        }
        let old = stats.ip.replace(ip);
        *self.peers_per_ip.entry(ip).or_default() += 1;
        if let Some(old) = old {
            self.forget_ip(old);
        }
    }

    fn forget_ip(&mut self, ip: IpAddr) {
        if let Some(n) = self.peers_per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.peers_per_ip.remove(&ip);
            }
        }
    }

    /// Departed peers whose counters are kept.
    pub(crate) fn retained_len(&self) -> usize {
        self.retained.len()
    }

    /// The peer's score now (0 for a peer we know nothing of).
    pub(crate) fn score(&self, peer: &PeerId) -> f64 {
        let Some(stats) = self.peers.get(peer) else {
            return 0.0;
        };
        let mut topics_sum = 0.0;
        for (topic, t) in &stats.topics {
            let p = self.topic_params(topic);
            let p1 = (t.time_in_mesh.as_secs_f64()
                / p.time_in_mesh_quantum.as_secs_f64().max(1e-9))
            .min(p.time_in_mesh_cap);
            let p2 = t.first_deliveries.min(p.first_message_deliveries_cap);
            let p3 = if t.mesh_deliveries_active
                && t.mesh_deliveries < p.mesh_message_deliveries_threshold
            {
                let deficit = p.mesh_message_deliveries_threshold - t.mesh_deliveries;
                deficit * deficit
            } else {
                0.0
            };
            let p3b = t.mesh_failure_penalty;
            let p4 = t.invalid_deliveries * t.invalid_deliveries;
            topics_sum += p.topic_weight
                * (p1 * p.time_in_mesh_weight
                    + p2 * p.first_message_deliveries_weight
                    + p3 * p.mesh_message_deliveries_weight
                    + p3b * p.mesh_failure_penalty_weight
                    + p4 * p.invalid_message_deliveries_weight);
        }
        if self.params.topic_score_cap > 0.0 {
            topics_sum = topics_sum.min(self.params.topic_score_cap);
        }
        let p6 = self.colocation_surplus(stats.ip);
        let excess = (stats.behaviour_penalty - self.params.behaviour_penalty_threshold).max(0.0);
        topics_sum
            + stats.app_score * self.params.app_specific_weight
            + p6 * p6 * self.params.ip_colocation_factor_weight
            + excess * excess * self.params.behaviour_penalty_weight
    }

    /// P6: peers beyond the threshold that share `ip` with this one.
    fn colocation_surplus(&self, ip: Option<IpAddr>) -> f64 {
        let Some(ip) = ip else {
            return 0.0;
        };
        if self.params.ip_colocation_factor_whitelist.contains(&ip) {
            return 0.0;
        }
        let sharing = self.peers_per_ip.get(&ip).copied().unwrap_or(0) as f64;
        (sharing - self.params.ip_colocation_factor_threshold).max(0.0)
    }

    /// `peer` was the first to deliver a valid message (P2; P3 if it is in
    /// our mesh for the topic).
    pub(crate) fn message_delivered(
        &mut self,
        peer: &PeerId,
        topic: &str,
        id: &MessageId,
        now: Instant,
    ) {
        self.now = Some(now);
        let p = self.topic_params(topic);
        let (p2_cap, p3_cap) = (
            p.first_message_deliveries_cap,
            p.mesh_message_deliveries_cap,
        );
        let Some(s) = self.peers.get_mut(peer) else {
            return;
        };
        let t = s.topics.entry(topic.to_owned()).or_default();
        t.first_deliveries = (t.first_deliveries + 1.0).min(p2_cap);
        if t.grafted_at.is_some() {
            t.mesh_deliveries = (t.mesh_deliveries + 1.0).min(p3_cap);
        }
        self.recent.insert(
            id.clone(),
            RecentDelivery {
                first: now,
                peers: vec![*peer],
            },
        );
    }

    /// `peer` delivered a message we already had: within the topic's P3
    /// window after the first delivery it still counts for a mesh peer,
    /// once per message.
    pub(crate) fn duplicate_delivered(
        &mut self,
        peer: &PeerId,
        topic: &str,
        id: &MessageId,
        now: Instant,
    ) {
        let p = self.topic_params(topic);
        let (window, cap) = (
            p.mesh_message_deliveries_window,
            p.mesh_message_deliveries_cap,
        );
        let Some(recent) = self.recent.get_mut(id) else {
            return;
        };
        if now.saturating_duration_since(recent.first) > window || recent.peers.contains(peer) {
            return;
        }
        recent.peers.push(*peer);
        if let Some(t) = self
            .peers
            .get_mut(peer)
            .and_then(|s| s.topics.get_mut(topic))
            .filter(|t| t.grafted_at.is_some())
        {
            t.mesh_deliveries = (t.mesh_deliveries + 1.0).min(cap);
        }
    }

    /// P4: `peer` sent an invalid message (bad signature, rejected).
    pub(crate) fn invalid_message(&mut self, peer: &PeerId, topic: &str) {
        if let Some(s) = self.peers.get_mut(peer) {
            s.topics
                .entry(topic.to_owned())
                .or_default()
                .invalid_deliveries += 1.0;
        }
    }

    /// P7: `count` misbehaviours (GRAFT during backoff, broken promises).
    pub(crate) fn behaviour_penalty(&mut self, peer: &PeerId, count: f64) {
        if let Some(s) = self.peers.get_mut(peer) {
            s.behaviour_penalty += count;
        }
    }

    /// P5.
    pub(crate) fn set_app_score(&mut self, peer: &PeerId, score: f64) {
        if let Some(s) = self.peers.get_mut(peer) {
            s.app_score = score;
        }
    }

    /// The peer joined our mesh for `topic`: P1 counts from now, P3 after
    /// the activation time.
    pub(crate) fn grafted(&mut self, peer: &PeerId, topic: &str, now: Instant) {
        self.now = Some(now);
        if let Some(s) = self.peers.get_mut(peer) {
            let t = s.topics.entry(topic.to_owned()).or_default();
            t.grafted_at = Some(now);
            t.time_in_mesh = Duration::ZERO;
            t.mesh_deliveries_active = false;
        }
    }

    /// The peer left our mesh for `topic`: a delivery deficit at that
    /// moment is remembered as P3b.
    pub(crate) fn pruned(&mut self, peer: &PeerId, topic: &str) {
        let threshold = self.topic_params(topic).mesh_message_deliveries_threshold;
        if let Some(s) = self.peers.get_mut(peer)
            && let Some(t) = s.topics.get_mut(topic)
        {
            if t.mesh_deliveries_active && t.mesh_deliveries < threshold {
                let deficit = threshold - t.mesh_deliveries;
                t.mesh_failure_penalty += deficit * deficit;
            }
            t.grafted_at = None;
            t.time_in_mesh = Duration::ZERO;
            t.mesh_deliveries_active = false;
        }
    }

    /// Heartbeat: update time in mesh, activate P3, decay the counters
    /// (of departed peers too), forget what expired.
    pub(crate) fn refresh(&mut self, now: Instant) {
        self.now = Some(now);
        let params = &self.params;
        let decay = |v: &mut f64, factor: f64| {
            *v *= factor;
            if *v < params.decay_to_zero {
                *v = 0.0;
            }
        };
        let stats = self
            .peers
            .values_mut()
            .chain(self.retained.values_mut().map(|(s, _)| s));
        for s in stats {
            for (topic, t) in &mut s.topics {
                let p = params.topics.get(topic).unwrap_or(&params.default_topic);
                if let Some(at) = t.grafted_at {
                    t.time_in_mesh = now.saturating_duration_since(at);
                    if t.time_in_mesh >= p.mesh_message_deliveries_activation {
                        t.mesh_deliveries_active = true;
                    }
                }
                decay(&mut t.first_deliveries, p.first_message_deliveries_decay);
                decay(&mut t.mesh_deliveries, p.mesh_message_deliveries_decay);
                decay(&mut t.mesh_failure_penalty, p.mesh_failure_penalty_decay);
                decay(
                    &mut t.invalid_deliveries,
                    p.invalid_message_deliveries_decay,
                );
            }
            decay(&mut s.behaviour_penalty, params.behaviour_penalty_decay);
        }
        while self
            .retained_order
            .front()
            .is_some_and(|(_, until)| *until <= now)
        {
            self.drop_oldest_retained();
        }
        let window = self.widest_window;
        self.recent
            .retain(|_, r| now.saturating_duration_since(r.first) <= window);
    }
}
