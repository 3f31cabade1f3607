//! The application-facing behaviour: validation (synchronous, and
//! asynchronous with forwarding only after Accept and a bound on what
//! waits), Ethereum's profile, scoring, and the blocking client on real
//! loopback swarms.

mod gossipsub_harness;

use std::sync::Arc;
use std::time::Duration;

use gossipsub_harness::{RouterNet, SEC, TOPIC, keypair, signed, unsigned};
use protocols::gossipsub::{
    GossipEvent, Gossipsub, GossipsubClient, GossipsubConfig, PublishError, ScoreParams,
    SigningPolicy, Validation,
};
use swarm::{Runtime, SwarmConfig};

/// A line 0 - 1 - 2: what node 1 does decides what node 2 sees.
fn line(config: impl Fn(usize) -> GossipsubConfig) -> RouterNet {
    let mut net = RouterNet::new(3, 31, config);
    net.connect(0, 1);
    net.connect(1, 2);
    net.deliver();
    for i in 0..3 {
        net.subscribe(i);
    }
    net.deliver();
    net.tick(SEC);
    net
}

#[test]
fn a_message_rejected_by_the_synchronous_validator_is_not_forwarded() {
    let mut net = line(|i| {
        let mut c = signed(i);
        if i == 1 {
            c.validator = Some(Arc::new(|m| {
                if m.data.starts_with(b"bad") {
                    Validation::Reject
                } else {
                    Validation::Accept
                }
            }));
        }
        c
    });
    net.publish(0, b"bad one").unwrap();
    net.publish(0, b"good one").unwrap();
    net.deliver();
    assert_eq!(net.received(1), vec![b"good one".to_vec()]);
    assert_eq!(net.received(2), vec![b"good one".to_vec()]);
    assert_eq!(net.r(1).stats().rejected, 1);
}

#[test]
fn asynchronous_validation_forwards_only_after_accept_and_is_bounded() {
    let mut net = line(|i| {
        let mut c = signed(i);
        if i == 1 {
            c.validate_asynchronously = true;
            c.max_pending_validations = 2;
        }
        c
    });
    for text in ["first", "second", "third"] {
        net.publish(0, text.as_bytes()).unwrap();
    }
    net.deliver();
    // Node 1 reports the first two and holds them; the third is over the
    // bound and dropped, counted.
    let pending: Vec<_> = net.events[1]
        .iter()
        .filter_map(|e| match e {
            GossipEvent::Message {
                propagation_source,
                id,
                ..
            } => Some((id.clone(), *propagation_source)),
            _ => None,
        })
        .collect();
    assert_eq!(pending.len(), 2);
    assert_eq!(net.r(1).stats().validations_dropped, 1);
    assert!(net.received(2).is_empty(), "forwarded before validation");
    let now = net.now;
    let (accept, reject) = (&pending[0], &pending[1]);
    assert!(
        net.r(1)
            .report_validation(&accept.0, accept.1, Validation::Accept, now)
    );
    assert!(
        net.r(1)
            .report_validation(&reject.0, reject.1, Validation::Reject, now)
    );
    // A second answer for the same id is ignored.
    assert!(
        !net.r(1)
            .report_validation(&accept.0, accept.1, Validation::Accept, now)
    );
    net.deliver();
    assert_eq!(net.received(2), vec![b"first".to_vec()]);
    assert_eq!(net.r(1).stats().pending_validations, 0);
}

#[test]
fn ethereum_profile_uses_no_signatures_content_ids_and_degree_eight() {
    let config = GossipsubConfig::ethereum();
    assert_eq!(
        (config.mesh_n, config.mesh_n_low, config.mesh_n_high),
        (8, 6, 12)
    );
    assert_eq!(config.heartbeat_interval, Duration::from_millis(700));
    assert_eq!(config.signing, SigningPolicy::StrictNoSign);
    config.validate().unwrap();
    let mut net = RouterNet::new(12, 32, |_| GossipsubConfig::ethereum());
    for a in 0..12 {
        for b in a + 1..12 {
            net.connect(a, b);
        }
    }
    net.deliver();
    for i in 0..12 {
        net.subscribe(i);
    }
    net.deliver();
    for _ in 0..3 {
        net.tick(Duration::from_millis(700));
    }
    for i in 0..12 {
        let mesh = net.r(i).mesh_peers(TOPIC).len();
        assert!((6..=11).contains(&mesh), "node {i} mesh {mesh}");
    }
    net.publish(0, b"block").unwrap();
    // The same content is the same id: a second publish is a duplicate.
    assert_eq!(net.publish(0, b"block"), Err(PublishError::Duplicate));
    net.deliver();
    for i in 1..12 {
        assert_eq!(net.received(i), vec![b"block".to_vec()], "node {i}");
    }
}

#[test]
fn oversized_publish_is_refused_with_a_typed_error() {
    let mut net = line(|i| {
        let mut c = unsigned(i);
        c.max_transmit_size = 1000;
        c
    });
    let err = net.publish(0, &[0; 2000]).unwrap_err();
    assert!(
        matches!(err, PublishError::MessageTooLarge { limit: 1000, .. }),
        "{err:?}"
    );
}

#[test]
fn scoring_when_on_rewards_deliveries_punishes_forgeries_and_prunes_below_zero() {
    let mut net = line(|i| {
        let mut c = signed(i);
        c.scoring = Some(ScoreParams::default());
        c
    });
    let peer0 = net.ids[0];
    assert_eq!(net.r(1).peer_score(&peer0), 0.0);
    // Deliveries raise the score (P2); a forged message lowers it (P4).
    net.publish(0, b"fine").unwrap();
    net.deliver();
    assert!(net.r(1).peer_score(&peer0) > 0.0);
    net.stalled.insert(0);
    net.publish(0, b"x").unwrap();
    let to1 = net.ids[1];
    let frame = net.r(0).pop_frame(&to1).unwrap();
    net.stalled.clear();
    let mut rpc = gossipsub_harness::decode(&frame).remove(0);
    rpc.publish[0].data = Some(b"forged".to_vec());
    let now = net.now;
    let mut rng: rand::rngs::StdRng = rand::SeedableRng::seed_from_u64(1);
    net.r(1).handle_rpc(peer0, rpc, now, &mut rng);
    assert!(net.r(1).peer_score(&peer0) < 0.0, "forgery not scored");
    // Below zero it is pruned from the mesh at the next heartbeat.
    net.tick(SEC);
    assert!(!net.r(1).mesh_peers(TOPIC).contains(&peer0));
    // Scores decay back toward zero over time.
    for _ in 0..30 {
        net.tick(SEC);
    }
    assert!(net.r(1).peer_score(&peer0) > -1.0);
    // Off by default.
    assert!(signed(0).scoring.is_none());
}

#[test]
fn blocking_client_subscribes_publishes_and_inspects_over_loopback() {
    let timeout = Duration::from_secs(20);
    let mut nodes = Vec::new();
    for i in 0..2 {
        let key = keypair(100 + i);
        let mut runtime = Runtime::new(SwarmConfig::new(key.clone())).unwrap();
        let mut config = GossipsubConfig::new(key);
        config.heartbeat_interval = Duration::from_millis(200);
        let (plugin, messages) = Gossipsub::with_message_channel(config, 64);
        let id = runtime.add_protocol(Box::new(plugin));
        let addr = runtime
            .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
            .unwrap();
        let (handle, thread) = runtime.spawn().unwrap();
        let client = GossipsubClient::new(handle.clone(), id);
        nodes.push((client, handle, thread, messages, addr));
    }
    for (client, ..) in &nodes {
        assert!(client.subscribe(TOPIC, timeout).unwrap());
        assert!(
            !client.subscribe(TOPIC, timeout).unwrap(),
            "second subscribe is a no-op"
        );
    }
    let addr1 = nodes[1].4.clone();
    nodes[0].1.dial(&addr1, false, timeout).unwrap();
    // Wait (bounded) until the mesh forms.
    let deadline = std::time::Instant::now() + timeout;
    while nodes[0].0.mesh_peers(TOPIC, timeout).unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no mesh");
        std::thread::sleep(Duration::from_millis(50));
    }
    nodes[0]
        .0
        .publish(TOPIC, b"over loopback".to_vec(), timeout)
        .unwrap();
    let received = nodes[1].3.recv_timeout(timeout).expect("message");
    assert_eq!(received.message.data, b"over loopback");
    assert_eq!(received.message.topic, TOPIC);
    let stats = nodes[0].0.stats(timeout).unwrap();
    assert_eq!(stats.published, 1);
    let peer1 = nodes[0].0.mesh_peers(TOPIC, timeout).unwrap()[0];
    assert_eq!(nodes[0].0.peer_score(peer1, timeout).unwrap(), 0.0);
    for (_, handle, thread, ..) in nodes {
        handle.shutdown(0).unwrap();
        thread.join().unwrap().unwrap();
    }
}
