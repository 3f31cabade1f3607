//! Peer-scoring parameters (gossipsub v1.1): per-topic weights of P1–P4,
//! the global P5–P7 weights, and the thresholds the router acts on.
//!
//! The defaults turn on what needs no knowledge of the application's
//! traffic (P1, P2, P4, P6, P7). P3 and P3b, the mesh delivery deficit,
//! punish a mesh peer that delivers fewer than `mesh_message_deliveries_threshold`
//! messages (decayed) once it has been in the mesh for the activation
//! time: on a quiet topic every peer would fall short, so their weights
//! default to 0 and must be set together with a threshold calibrated to
//! the topic's message rate, as every deployment of scoring does.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

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
    /// P3 weight (negative; 0 = off), applied to the square of the deficit
    /// below `mesh_message_deliveries_threshold`.
    pub mesh_message_deliveries_weight: f64,
    /// P3 decay per heartbeat.
    pub mesh_message_deliveries_decay: f64,
    /// P3 cap of the counter.
    pub mesh_message_deliveries_cap: f64,
    /// P3: a mesh peer delivering fewer (decayed) messages than this has a
    /// deficit.
    pub mesh_message_deliveries_threshold: f64,
    /// P3: a duplicate from a mesh peer within this time of the first
    /// delivery counts as a delivery (it was sent in time).
    pub mesh_message_deliveries_window: Duration,
    /// P3: time in the mesh before the deficit counts.
    pub mesh_message_deliveries_activation: Duration,
    /// P3b weight (negative; 0 = off): the deficit squared, remembered when
    /// the peer leaves the mesh with one.
    pub mesh_failure_penalty_weight: f64,
    /// P3b decay per heartbeat.
    pub mesh_failure_penalty_decay: f64,
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
            mesh_message_deliveries_weight: 0.0,
            mesh_message_deliveries_decay: 0.5,
            mesh_message_deliveries_cap: 100.0,
            mesh_message_deliveries_threshold: 20.0,
            mesh_message_deliveries_window: Duration::from_millis(10),
            mesh_message_deliveries_activation: Duration::from_secs(5),
            mesh_failure_penalty_weight: 0.0,
            mesh_failure_penalty_decay: 0.5,
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
    /// P6 weight (negative; 0 = off), applied to the square of the number
    /// of peers beyond `ip_colocation_factor_threshold` that share the
    /// peer's IP address: many identities from one host are likely one
    /// attacker.
    pub ip_colocation_factor_weight: f64,
    /// P6: this many peers per IP address are free.
    pub ip_colocation_factor_threshold: f64,
    /// P6: addresses never penalised (a known NAT, a test network).
    pub ip_colocation_factor_whitelist: BTreeSet<IpAddr>,
    /// P7 weight (negative), applied to the square of the excess.
    pub behaviour_penalty_weight: f64,
    /// P7 counts below this are free.
    pub behaviour_penalty_threshold: f64,
    /// P7 decay per heartbeat.
    pub behaviour_penalty_decay: f64,
    /// Counters below this decay to zero.
    pub decay_to_zero: f64,
    /// How long the counters of a peer that left with a score below zero
    /// are kept: reconnecting must not wash a bad score clean.
    pub retain_score: Duration,
    /// Most departed peers whose counters are kept (the oldest go first):
    /// an attacker cycling identities cannot grow this table.
    pub max_retained_peers: usize,
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
            ip_colocation_factor_weight: -5.0,
            ip_colocation_factor_threshold: 10.0,
            ip_colocation_factor_whitelist: BTreeSet::new(),
            behaviour_penalty_weight: -10.0,
            behaviour_penalty_threshold: 0.0,
            behaviour_penalty_decay: 0.9,
            decay_to_zero: 0.01,
            retain_score: Duration::from_secs(3600),
            max_retained_peers: 10_000,
            gossip_threshold: -10.0,
            publish_threshold: -50.0,
            graylist_threshold: -80.0,
            accept_px_threshold: 10.0,
            opportunistic_graft_threshold: 5.0,
        }
    }
}
