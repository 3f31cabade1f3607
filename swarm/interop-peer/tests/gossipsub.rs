//! The gossipsub support of `RustPeer`, proven between rust-libp2p nodes
//! only: three peers in a line A — B — C on 127.0.0.1 (port 0), messages from
//! A reach C through B. Every wait is bounded.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rust_libp2p_peer::{
    GossipAcceptance, GossipConfig, GossipMessageIdFn, GossipSigning, GossipValidation,
    GossipVersions, PeerConfig, PeerId, RustPeer, content_hash_id,
};

const TOPIC: &str = "interop-test";
const WAIT: Duration = Duration::from_secs(10);

/// Gossipsub settings that form meshes quickly (first heartbeat after
/// 100 ms instead of 5 s).
fn fast(cfg: GossipConfig) -> PeerConfig {
    PeerConfig {
        gossipsub: Some(GossipConfig {
            heartbeat_initial_delay: Duration::from_millis(100),
            heartbeat_interval: Duration::from_millis(200),
            ..cfg
        }),
        ..PeerConfig::default()
    }
}

/// Poll `f` every 50 ms until it is true or `WAIT` passes.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// Start A, B, C with the given configs, connect A→B and C→B, subscribe all
/// three to `TOPIC` and wait until B has both in its mesh and A and C have B.
fn line(a: GossipConfig, b: GossipConfig, c: GossipConfig) -> (RustPeer, RustPeer, RustPeer) {
    let (a, b, c) = (
        RustPeer::spawn(fast(a)),
        RustPeer::spawn(fast(b)),
        RustPeer::spawn(fast(c)),
    );
    let b_addr = b.dial_addr().expect("B listens");
    a.connect(b_addr.clone(), WAIT).expect("A connects to B");
    c.connect(b_addr, WAIT).expect("C connects to B");
    for p in [&a, &b, &c] {
        assert_eq!(p.gossip_subscribe(TOPIC), Ok(true));
    }
    let (ida, idb, idc) = (a.peer_id(), b.peer_id(), c.peer_id());
    eventually("the meshes A-B and B-C", || {
        let mesh_b = b.gossip_mesh_peers(TOPIC);
        mesh_b.contains(&ida)
            && mesh_b.contains(&idc)
            && a.gossip_mesh_peers(TOPIC) == vec![idb]
            && c.gossip_mesh_peers(TOPIC) == vec![idb]
    });
    (a, b, c)
}

fn protocol_with(p: &RustPeer, peer: PeerId) -> Option<String> {
    p.gossip_peer_protocols()
        .into_iter()
        .find_map(|(q, kind)| (q == peer).then_some(kind))
}

#[test]
fn signed_message_from_a_reaches_c_through_b() {
    let (a, b, c) = line(
        GossipConfig::default(),
        GossipConfig::default(),
        GossipConfig::default(),
    );
    let id = a
        .gossip_publish(TOPIC, b"hello from A".to_vec())
        .expect("publish");
    let got = c.gossip_next_message(WAIT).expect("C receives A's message");
    assert_eq!(got.topic, TOPIC);
    assert_eq!(got.data, b"hello from A");
    assert_eq!(got.source, Some(a.peer_id()));
    assert_eq!(got.propagation_source, b.peer_id(), "forwarded by B");
    assert_eq!(got.id, id, "same message id at both ends");
    assert!(got.seqno.is_some(), "signed messages carry a seqno");
    // libp2p-gossipsub's default id: base58 source + decimal seqno.
    let expected = format!(
        "{}{}",
        a.peer_id().to_base58(),
        got.seqno.unwrap_or_default()
    );
    assert_eq!(got.id.0, expected.into_bytes());
    // B got it too, from A directly; A never gets its own message back.
    let at_b = b.gossip_next_message(WAIT).expect("B receives it");
    assert_eq!(at_b.propagation_source, a.peer_id());
    assert!(a.gossip_next_message(Duration::from_millis(300)).is_none());
    // rust-libp2p 0.57 against itself negotiates /meshsub/1.3.0.
    assert_eq!(
        protocol_with(&b, c.peer_id()).as_deref(),
        Some("Gossipsub v1.3")
    );
}

#[test]
fn idontwant_is_sent_for_large_messages_to_v1_2_peers_only() {
    let metrics = GossipConfig {
        metrics: true,
        ..GossipConfig::default()
    };
    let v11 = GossipConfig {
        versions: GossipVersions::V1_1Only,
        ..metrics.clone()
    };
    // C speaks only /meshsub/1.1.0: B must not send it IDONTWANT.
    let (a, b, c) = line(metrics.clone(), metrics.clone(), v11);
    assert_eq!(
        protocol_with(&b, c.peer_id()).as_deref(),
        Some("Gossipsub v1.1")
    );
    a.gossip_publish(TOPIC, vec![7u8; 2048]).expect("publish");
    assert!(c.gossip_next_message(WAIT).is_some());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.gossip_idontwant_received(), Some(0));
    drop((a, b, c));

    // All at the default versions: B forwards to C and sends C an
    // IDONTWANT for the 2 KiB message (raw size > 1,000 bytes), C sends
    // none back to B for it (B is the propagation source), and none is sent
    // for a small message.
    let (a, _b, c) = line(metrics.clone(), metrics.clone(), metrics);
    a.gossip_publish(TOPIC, vec![1u8; 100])
        .expect("small publish");
    assert!(c.gossip_next_message(WAIT).is_some());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.gossip_idontwant_received(), Some(0), "small: none");
    a.gossip_publish(TOPIC, vec![2u8; 2048])
        .expect("large publish");
    assert!(c.gossip_next_message(WAIT).is_some());
    eventually("C receiving B's IDONTWANT", || {
        c.gossip_idontwant_received() == Some(1)
    });
    // B leaves A out: A is both where the message came from and its source
    // (and nobody sends IDONTWANT for its own publish).
    assert_eq!(a.gossip_idontwant_received(), Some(0));
}

#[test]
fn message_rejected_by_b_is_not_forwarded_to_c() {
    let reject_bad: GossipValidation = GossipValidation::Callback(Arc::new(|m| {
        if m.data.starts_with(b"bad") {
            GossipAcceptance::Reject
        } else {
            GossipAcceptance::Accept
        }
    }));
    let validating = GossipConfig {
        validation: reject_bad,
        ..GossipConfig::default()
    };
    let (a, _b, c) = line(GossipConfig::default(), validating, GossipConfig::default());
    a.gossip_publish(TOPIC, b"bad one".to_vec())
        .expect("publish");
    a.gossip_publish(TOPIC, b"good one".to_vec())
        .expect("publish");
    let got = c.gossip_next_message(WAIT).expect("the good message");
    assert_eq!(got.data, b"good one");
    assert!(c.gossip_next_message(Duration::from_millis(500)).is_none());
}

#[test]
fn manual_validation_holds_the_message_until_accepted() {
    let manual = GossipConfig {
        validation: GossipValidation::Manual,
        ..GossipConfig::default()
    };
    let (a, b, c) = line(GossipConfig::default(), manual, GossipConfig::default());
    a.gossip_publish(TOPIC, b"wait for it".to_vec())
        .expect("publish");
    let at_b = b.gossip_next_message(WAIT).expect("B receives it");
    assert!(
        c.gossip_next_message(Duration::from_millis(500)).is_none(),
        "not forwarded before validation"
    );
    assert_eq!(
        b.gossip_report_validation(&at_b.id, at_b.propagation_source, GossipAcceptance::Accept),
        Ok(true)
    );
    let got = c.gossip_next_message(WAIT).expect("forwarded after Accept");
    assert_eq!(got.data, b"wait for it");
}

#[test]
fn anonymous_messages_with_content_hash_ids_cross_b() {
    let anon = GossipConfig {
        signing: GossipSigning::Anonymous,
        message_id: GossipMessageIdFn::ContentHash,
        ..GossipConfig::default()
    };
    let (a, _b, c) = line(anon.clone(), anon.clone(), anon);
    let id = a
        .gossip_publish(TOPIC, b"no author".to_vec())
        .expect("publish");
    assert_eq!(id, content_hash_id(b"no author"));
    let got = c.gossip_next_message(WAIT).expect("C receives it");
    assert_eq!((got.source, got.seqno), (None, None));
    assert_eq!(got.id, id);
    // The same data again has the same id: a duplicate.
    let again = a.gossip_publish(TOPIC, b"no author".to_vec());
    assert!(again.is_err_and(|e| e.contains("Duplicate")));
}

#[test]
fn gossip_calls_fail_cleanly_when_gossipsub_is_disabled() {
    let p = RustPeer::spawn(PeerConfig::default());
    assert!(p.gossip_subscribe(TOPIC).is_err());
    assert!(p.gossip_publish(TOPIC, vec![1]).is_err());
    assert!(p.gossip_mesh_peers(TOPIC).is_empty());
    assert_eq!(p.gossip_metrics(), None);
}
