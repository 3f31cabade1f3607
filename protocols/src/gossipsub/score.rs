//! Peer scoring (gossipsub v1.1), a faithful subset: P1 (time in mesh),
//! P2 (first message deliveries), P4 (invalid messages), P5 (application
//! score) and P7 (behaviour penalty), with per-topic weights, decay each
//! heartbeat, and the gossip / publish / graylist / accept-PX /
//! opportunistic-graft thresholds. Not implemented: P3 / P3b (mesh
//! message delivery deficit) and P6 (IP colocation; the plugin API does
//! not group peers by IP). Off unless [`GossipsubConfig::scoring`] is set.
//!
//! [`GossipsubConfig::scoring`]: super::GossipsubConfig::scoring

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use swarm::PeerId;

/// Score parameters of one topic.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicScoreParams {
    /// Weight of the topic's sum.
    pub topic_weight: f64,
    /// P1 weight (positive), per `time_in_mesh_quantum` in the mesh.
    pub time_in_mesh_weight: f64,
    /// P1 quantum.
    pub time_in_mesh_quantum: Duration,
    /// P1 cap.
    pub time_in_mesh_cap: f64,
    /// P2 weight (positive).
    pub first_message_deliveries_weight: f64,
    /// P2 decay per heartbeat.
    pub first_message_deliveries_decay: f64,
    /// P2 cap.
    pub first_message_deliveries_cap: f64,
    /// P4 weight (negative), applied to the square of the counter.
    pub invalid_message_deliveries_weight: f64,
    /// P4 decay per heartbeat.
    pub invalid_message_deliveries_decay: f64,
}

impl Default for TopicScoreParams {
    fn default() -> Self {
        Self {
            topic_weight: 1.0,
            time_in_mesh_weight: 0.01,
            time_in_mesh_quantum: Duration::from_secs(1),
            time_in_mesh_cap: 3600.0,
            first_message_deliveries_weight: 1.0,
            first_message_deliveries_decay: 0.5,
            first_message_deliveries_cap: 2000.0,
            invalid_message_deliveries_weight: -100.0,
            invalid_message_deliveries_decay: 0.3,
        }
    }
}

/// Scoring parameters and thresholds.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreParams {
    /// Per-topic parameters; topics not listed use `default_topic`.
    pub topics: BTreeMap<String, TopicScoreParams>,
    /// Parameters of topics not in `topics`.
    pub default_topic: TopicScoreParams,
    /// Cap of the summed positive topic contributions (0 = none).
    pub topic_score_cap: f64,
    /// P5 weight.
    pub app_specific_weight: f64,
    /// P7 weight (negative), applied to the square of the excess.
    pub behaviour_penalty_weight: f64,
    /// P7 counts below this are free.
    pub behaviour_penalty_threshold: f64,
    /// P7 decay per heartbeat.
    pub behaviour_penalty_decay: f64,
    /// Counters below this decay to zero.
    pub decay_to_zero: f64,
    /// Below this, no gossip to or from the peer.
    pub gossip_threshold: f64,
    /// Below this, we do not flood-publish to the peer.
    pub publish_threshold: f64,
    /// Below this, the peer's RPCs are ignored.
    pub graylist_threshold: f64,
    /// At or above this, PX from the peer is followed.
    pub accept_px_threshold: f64,
    /// Mesh median below this triggers opportunistic grafting.
    pub opportunistic_graft_threshold: f64,
}

impl Default for ScoreParams {
    fn default() -> Self {
        Self {
            topics: BTreeMap::new(),
            default_topic: TopicScoreParams::default(),
            topic_score_cap: 0.0,
            app_specific_weight: 1.0,
            behaviour_penalty_weight: -10.0,
            behaviour_penalty_threshold: 0.0,
            behaviour_penalty_decay: 0.9,
            decay_to_zero: 0.01,
            gossip_threshold: -10.0,
            publish_threshold: -50.0,
            graylist_threshold: -80.0,
            accept_px_threshold: 10.0,
            opportunistic_graft_threshold: 5.0,
        }
    }
}

#[derive(Default)]
struct TopicStats {
    grafted_at: Option<Instant>,
    time_in_mesh: Duration,
    first_deliveries: f64,
    invalid_deliveries: f64,
}

#[derive(Default)]
struct PeerStats {
    topics: HashMap<String, TopicStats>,
    behaviour_penalty: f64,
    app_score: f64,
}

/// Every connected peer's score counters.
pub(crate) struct PeerScores {
    params: ScoreParams,
    peers: HashMap<PeerId, PeerStats>,
}

impl PeerScores {
    pub(crate) fn new(params: ScoreParams) -> Self {
        Self {
            params,
            peers: HashMap::new(),
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

    pub(crate) fn add_peer(&mut self, peer: PeerId) {
        self.peers.entry(peer).or_default();
    }

    pub(crate) fn remove_peer(&mut self, peer: &PeerId) {
        // The spec keeps a departed peer's counters for a while so that
        // reconnecting does not clear a bad score; we keep nothing (a
        // noted simplification), but P7 / P4 still bite while connected.
        self.peers.remove(peer);
    }

    /// The peer's score now.
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
            let p4 = t.invalid_deliveries * t.invalid_deliveries;
            topics_sum += p.topic_weight
                * (p1 * p.time_in_mesh_weight
                    + p2 * p.first_message_deliveries_weight
                    + p4 * p.invalid_message_deliveries_weight);
        }
        if self.params.topic_score_cap > 0.0 {
            topics_sum = topics_sum.min(self.params.topic_score_cap);
        }
        let excess = (stats.behaviour_penalty - self.params.behaviour_penalty_threshold).max(0.0);
        topics_sum
            + stats.app_score * self.params.app_specific_weight
            + excess * excess * self.params.behaviour_penalty_weight
    }

    pub(crate) fn first_delivery(&mut self, peer: &PeerId, topic: &str) {
        let cap = self.topic_params(topic).first_message_deliveries_cap;
        if let Some(s) = self.peers.get_mut(peer) {
            let t = s.topics.entry(topic.to_owned()).or_default();
            t.first_deliveries = (t.first_deliveries + 1.0).min(cap);
        }
    }

    pub(crate) fn invalid_message(&mut self, peer: &PeerId, topic: &str) {
        if let Some(s) = self.peers.get_mut(peer) {
            s.topics
                .entry(topic.to_owned())
                .or_default()
                .invalid_deliveries += 1.0;
        }
    }

    pub(crate) fn behaviour_penalty(&mut self, peer: &PeerId, count: f64) {
        if let Some(s) = self.peers.get_mut(peer) {
            s.behaviour_penalty += count;
        }
    }

    pub(crate) fn set_app_score(&mut self, peer: &PeerId, score: f64) {
        if let Some(s) = self.peers.get_mut(peer) {
            s.app_score = score;
        }
    }

    pub(crate) fn grafted(&mut self, peer: &PeerId, topic: &str, now: Instant) {
        if let Some(s) = self.peers.get_mut(peer) {
            s.topics.entry(topic.to_owned()).or_default().grafted_at = Some(now);
        }
    }

    pub(crate) fn pruned(&mut self, peer: &PeerId, topic: &str) {
        if let Some(s) = self.peers.get_mut(peer)
            && let Some(t) = s.topics.get_mut(topic)
        {
            t.grafted_at = None;
            t.time_in_mesh = Duration::ZERO;
        }
    }

    /// Heartbeat: update time in mesh and decay the counters.
    pub(crate) fn refresh(&mut self, now: Instant) {
        let zero = self.params.decay_to_zero;
        let decay = |v: &mut f64, factor: f64| {
            *v *= factor;
            if *v < zero {
                *v = 0.0;
            }
        };
        let params = &self.params;
        for s in self.peers.values_mut() {
            for (topic, t) in &mut s.topics {
                let p = params.topics.get(topic).unwrap_or(&params.default_topic);
                if let Some(at) = t.grafted_at {
                    t.time_in_mesh = now.saturating_duration_since(at);
                }
                decay(&mut t.first_deliveries, p.first_message_deliveries_decay);
                decay(
                    &mut t.invalid_deliveries,
                    p.invalid_message_deliveries_decay,
                );
            }
            decay(&mut s.behaviour_penalty, params.behaviour_penalty_decay);
        }
    }
}
