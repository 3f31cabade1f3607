//! Peer scoring (v1.1) on a virtual clock: the mesh delivery deficit (P3)
//! and the penalty that outlives the mesh (P3b), IP colocation (P6),
//! broken IHAVE promises (P7), and bad scores kept across a reconnect.

mod gossipsub_harness;

use std::net::{IpAddr, Ipv4Addr};

use gossipsub_harness::{RouterNet, SEC, TOPIC, decode, signed};
use protocols::gossipsub::proto::{ControlIHave, ControlMessage, Rpc};
use protocols::gossipsub::{GossipsubConfig, ScoreParams};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Node `i`'s configuration with scoring on, tuned by `tune`.
fn scored(i: usize, tune: impl Fn(&mut ScoreParams)) -> GossipsubConfig {
    let mut c = signed(i);
    let mut params = ScoreParams::default();
    tune(&mut params);
    c.scoring = Some(params);
    c
}

/// Two nodes in each other's mesh; node 1 scores node 0 (node 0 does not
/// score, so it never prunes node 1 on its own).
fn pair(tune: impl Fn(&mut ScoreParams)) -> RouterNet {
    let mut net = RouterNet::new(2, 3, |i| if i == 1 { scored(i, &tune) } else { signed(i) });
    net.connect(0, 1);
    net.subscribe(0);
    net.subscribe(1);
    net.deliver();
    net.tick(SEC);
    let id0 = net.ids[0];
    assert!(net.r(1).mesh_peers(TOPIC).contains(&id0), "no mesh");
    net
}

/// An RPC carrying a message of node `from`'s with its data changed after
/// signing: its signature no longer verifies (P4 at the receiver).
fn forged(net: &mut RouterNet, from: usize, to: usize) -> Rpc {
    net.stalled.insert(from);
    net.publish(from, b"to be forged").expect("publish");
    let to_id = net.ids[to];
    let frame = net.r(from).pop_frame(&to_id).expect("queued");
    while net.r(from).pop_frame(&to_id).is_some() {}
    net.stalled.clear();
    let mut rpc = decode(&frame).remove(0);
    rpc.publish[0].data = Some(b"forged".to_vec());
    rpc
}

#[test]
fn a_silent_mesh_peer_falls_below_zero_after_activation_and_its_deficit_outlives_the_mesh() {
    let mut net = pair(|p| {
        p.default_topic.mesh_message_deliveries_weight = -1.0;
        p.default_topic.mesh_message_deliveries_threshold = 4.0;
        p.default_topic.mesh_message_deliveries_activation = 3 * SEC;
        p.default_topic.mesh_failure_penalty_weight = -1.0;
        p.default_topic.mesh_failure_penalty_decay = 0.9;
        // Isolate P3 / P3b from the rewards.
        p.default_topic.time_in_mesh_weight = 0.0;
        p.default_topic.first_message_deliveries_weight = 0.0;
    });
    let id0 = net.ids[0];
    // Delivering enough keeps the score at zero through the activation
    // (the count halves every heartbeat).
    for round in 0..3 {
        for k in 0..8 {
            net.publish(0, format!("{round}-{k}").as_bytes()).unwrap();
        }
        net.deliver();
        net.tick(SEC);
        assert_eq!(net.r(1).peer_score(&id0), 0.0, "round {round}");
        assert!(net.r(1).mesh_peers(TOPIC).contains(&id0), "round {round}");
    }
    // Then silence: the count falls below the threshold, the score below
    // zero, and the peer leaves the mesh at that heartbeat.
    net.tick(SEC);
    assert!(!net.r(1).mesh_peers(TOPIC).contains(&id0), "not pruned");
    // Out of the mesh, P3 no longer counts but the deficit stays as P3b.
    let after_prune = net.r(1).peer_score(&id0);
    assert!(after_prune < 0.0, "P3b gone with the mesh: {after_prune}");
    // And decays.
    for _ in 0..60 {
        net.tick(SEC);
    }
    let later = net.r(1).peer_score(&id0);
    assert!(later > after_prune, "{later} vs {after_prune}");
}

#[test]
fn p3_is_off_by_default_so_a_quiet_topic_costs_nothing() {
    let mut net = pair(|_| {});
    let id0 = net.ids[0];
    for _ in 0..20 {
        net.tick(SEC);
    }
    assert!(net.r(1).peer_score(&id0) >= 0.0);
    assert!(net.r(1).mesh_peers(TOPIC).contains(&id0));
}

#[test]
fn ip_colocation_penalises_peers_beyond_the_threshold_and_spares_the_whitelist() {
    let shared: IpAddr = Ipv4Addr::new(10, 9, 9, 9).into();
    let whitelisted: IpAddr = Ipv4Addr::new(10, 8, 8, 8).into();
    let mut net = RouterNet::new(7, 4, |i| {
        scored(i, |p| {
            p.ip_colocation_factor_threshold = 2.0;
            p.ip_colocation_factor_weight = -5.0;
            p.ip_colocation_factor_whitelist.insert(whitelisted);
        })
    });
    for i in 1..7 {
        net.connect(0, i);
    }
    let ids = net.ids.clone();
    for id in &ids[1..5] {
        net.r(0).set_peer_ip(id, shared);
    }
    net.r(0).set_peer_ip(&ids[5], whitelisted);
    net.r(0).set_peer_ip(&ids[6], whitelisted);
    // Four peers share an address, two are free: (4 - 2)^2 * -5.
    for id in &ids[1..5] {
        assert_eq!(net.r(0).peer_score(id), -20.0);
    }
    assert_eq!(net.r(0).peer_score(&ids[5]), 0.0, "whitelisted");
    // One leaves: (3 - 2)^2 * -5 for the rest.
    net.disconnect(0, 4);
    for id in &ids[1..4] {
        assert_eq!(net.r(0).peer_score(id), -5.0);
    }
}

#[test]
fn an_ihave_promise_kept_costs_nothing_and_one_broken_costs_a_behaviour_penalty() {
    let mut net = pair(|p| p.default_topic.first_message_deliveries_weight = 0.0);
    let (id0, id1) = (net.ids[0], net.ids[1]);
    let ihave = |id: Vec<u8>| Rpc {
        control: Some(ControlMessage {
            ihave: vec![ControlIHave {
                topic_id: Some(TOPIC.into()),
                message_ids: vec![id],
            }],
            ..ControlMessage::default()
        }),
        ..Rpc::default()
    };
    let mut rng = StdRng::seed_from_u64(9);
    // Kept: node 0 advertises a message node 1 lacks, then delivers it.
    net.stalled.insert(0);
    let real = net.publish(0, b"advertised").unwrap();
    let frame = net.r(0).pop_frame(&id1).expect("queued");
    net.stalled.clear();
    let now = net.now;
    net.r(1)
        .handle_rpc(id0, ihave(real.0.clone()), now, &mut rng);
    assert_eq!(net.r(1).stats().open_promises, 1, "IWANT not watched");
    let delivery = decode(&frame).remove(0);
    net.r(1).handle_rpc(id0, delivery, now, &mut rng);
    assert_eq!(net.r(1).stats().open_promises, 0, "delivery not seen");
    for _ in 0..5 {
        net.tick(SEC);
    }
    assert_eq!(net.r(1).stats().broken_promises, 0);
    let before = net.r(1).peer_score(&id0);
    assert!(before >= 0.0, "{before}");
    // Broken: an id that never comes.
    let now = net.now;
    net.r(1)
        .handle_rpc(id0, ihave(b"never sent".to_vec()), now, &mut rng);
    net.tick(SEC);
    net.tick(SEC);
    assert_eq!(net.r(1).stats().broken_promises, 0, "broken too early");
    net.tick(SEC);
    net.tick(SEC);
    assert_eq!(net.r(1).stats().broken_promises, 1);
    assert!(net.r(1).peer_score(&id0) < before, "no penalty");
}

#[test]
fn a_bad_score_survives_a_reconnect_and_the_retained_table_is_bounded() {
    let mut net = RouterNet::new(3, 5, |i| scored(i, |p| p.max_retained_peers = 1));
    net.connect(0, 1);
    net.connect(2, 1);
    for i in 0..3 {
        net.subscribe(i);
    }
    net.deliver();
    net.tick(SEC);
    let (id0, id2) = (net.ids[0], net.ids[2]);
    let rpc = forged(&mut net, 0, 1);
    let now = net.now;
    let mut rng = StdRng::seed_from_u64(1);
    net.r(1).handle_rpc(id0, rpc, now, &mut rng);
    let bad = net.r(1).peer_score(&id0);
    assert!(bad < 0.0, "forgery not scored: {bad}");
    net.disconnect(0, 1);
    assert_eq!(net.r(1).stats().retained_scores, 1);
    net.connect(0, 1);
    assert!(
        net.r(1).peer_score(&id0) < 0.0,
        "reconnecting washed the score clean"
    );
    // A peer that leaves with a good score is not kept.
    net.publish(2, b"good").unwrap();
    net.deliver();
    assert!(net.r(1).peer_score(&id2) > 0.0);
    net.disconnect(2, 1);
    net.connect(2, 1);
    assert_eq!(net.r(1).peer_score(&id2), 0.0, "a good score was kept");
    net.deliver();
    // Two bad peers leave; the table holds one.
    let rpc = forged(&mut net, 2, 1);
    let now = net.now;
    net.r(1).handle_rpc(id2, rpc, now, &mut rng);
    net.disconnect(0, 1);
    net.disconnect(2, 1);
    assert_eq!(net.r(1).stats().retained_scores, 1);
}
