//! Interop with rust-libp2p 0.57's gossipsub (libp2p-gossipsub 0.50.1,
//! through `rust-libp2p-peer`) over QUIC on loopback: lines rust — ours —
//! rust (our node forwards) and ours — rust — ours (theirs forwards), with
//! signatures verified both ways, v1.2 negotiated and IDONTWANT exchanged.

use std::time::{Duration, Instant};

use protocols::gossipsub::Validation;
use protocols::gossipsub::{Gossipsub, GossipsubClient, GossipsubConfig, ReceivedMessage};
use protocols::identify::{Identify, IdentifyConfig};
use rust_libp2p_peer::{GossipConfig, GossipVersions, PeerConfig, RustPeer};
use std::sync::Arc;
use swarm::{Keypair, Multiaddr, PeerId, Runtime, SwarmConfig, SwarmHandle};

const TOPIC: &str = "interop-test";
const WAIT: Duration = Duration::from_secs(15);

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

fn rust_peer() -> RustPeer {
    rust_peer_with(GossipConfig::default())
}

fn rust_peer_with(config: GossipConfig) -> RustPeer {
    RustPeer::spawn(PeerConfig {
        gossipsub: Some(GossipConfig {
            heartbeat_initial_delay: Duration::from_millis(100),
            heartbeat_interval: Duration::from_millis(200),
            metrics: true,
            ..config
        }),
        ..PeerConfig::default()
    })
}

struct OurNode {
    client: GossipsubClient,
    handle: SwarmHandle,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    messages: std::sync::mpsc::Receiver<ReceivedMessage>,
    addr: Multiaddr,
    peer: PeerId,
}

impl Drop for OurNode {
    fn drop(&mut self) {
        let _ = self.handle.shutdown(0);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn our_node(seed: u8) -> OurNode {
    our_node_with(seed, |_| {})
}

fn our_node_with(seed: u8, tune: impl FnOnce(&mut GossipsubConfig)) -> OurNode {
    let key = Keypair::ed25519_from_bytes([seed; 32]).unwrap();
    let peer = key.public().to_peer_id();
    let mut runtime = Runtime::new(SwarmConfig::new(key.clone())).unwrap();
    runtime.add_protocol(Box::new(Identify::new(IdentifyConfig::new(key.public()))));
    let mut config = GossipsubConfig::new(key);
    config.heartbeat_interval = Duration::from_millis(200);
    // rust-libp2p refuses RPCs over 64 KiB; stay within it.
    config.max_transmit_size = 65_536;
    tune(&mut config);
    let (plugin, messages) = Gossipsub::with_message_channel(config, 256);
    let id = runtime.add_protocol(Box::new(plugin));
    let addr = runtime
        .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
        .unwrap();
    let (handle, thread) = runtime.spawn().unwrap();
    OurNode {
        client: GossipsubClient::new(handle.clone(), id),
        handle,
        thread: Some(thread),
        messages,
        addr: format!("{addr}/p2p/{peer}").parse().unwrap(),
        peer,
    }
}

#[test]
fn rust_ours_rust_line_our_node_forwards_signed_messages_both_ways() {
    let ours = our_node(61);
    let (a, c) = (rust_peer(), rust_peer());
    a.connect(ours.addr.clone(), WAIT).expect("A dials us");
    c.connect(ours.addr.clone(), WAIT).expect("C dials us");
    ours.client.subscribe(TOPIC, WAIT).unwrap();
    for p in [&a, &c] {
        assert_eq!(p.gossip_subscribe(TOPIC), Ok(true));
    }
    eventually("meshes A-ours-C", || {
        let mesh = ours.client.mesh_peers(TOPIC, WAIT).unwrap();
        mesh.contains(&a.peer_id())
            && mesh.contains(&c.peer_id())
            && a.gossip_mesh_peers(TOPIC).contains(&ours.peer)
            && c.gossip_mesh_peers(TOPIC).contains(&ours.peer)
    });
    let kind = a
        .gossip_peer_protocols()
        .into_iter()
        .find_map(|(p, k)| (p == ours.peer).then_some(k));
    assert_eq!(kind.as_deref(), Some("Gossipsub v1.2"));
    // A publishes: we verify its signature, deliver, and forward to C.
    a.gossip_publish(TOPIC, b"from A".to_vec()).unwrap();
    let got = ours
        .messages
        .recv_timeout(WAIT)
        .expect("we receive A's message");
    assert_eq!(got.message.data, b"from A");
    assert_eq!(got.message.source, Some(a.peer_id()));
    let at_c = c
        .gossip_next_message(WAIT)
        .expect("C receives it through us");
    assert_eq!(at_c.data, b"from A");
    assert_eq!(at_c.source, Some(a.peer_id()));
    assert_eq!(at_c.propagation_source, ours.peer);
    // Same message id on both sides (source + decimal seqno).
    assert_eq!(at_c.id.0, got.id.0);
    // We publish: both verify our signature.
    ours.client
        .publish(TOPIC, b"from ours".to_vec(), WAIT)
        .unwrap();
    for p in [&a, &c] {
        let m = p.gossip_next_message(WAIT).expect("our message arrives");
        assert_eq!(m.data, b"from ours");
        assert_eq!(m.source, Some(ours.peer));
    }
    // A large message from A: we send IDONTWANT to C (our v1.2 mesh peer).
    a.gossip_publish(TOPIC, vec![7u8; 4000]).unwrap();
    let big = ours.messages.recv_timeout(WAIT).expect("the large message");
    assert_eq!(big.message.data.len(), 4000);
    eventually("C hears IDONTWANT from us", || {
        c.gossip_idontwant_received().unwrap_or(0) > 0
    });
    let stats = ours.client.stats(WAIT).unwrap();
    assert!(stats.idontwant_sent >= 1);
    assert_eq!(stats.invalid_messages, 0);
}

#[test]
fn ours_rust_ours_line_their_node_forwards_our_messages() {
    let (x, y) = (our_node(71), our_node(72));
    let b = rust_peer();
    let b_addr = b.dial_addr().expect("B listens");
    for node in [&x, &y] {
        node.client.subscribe(TOPIC, WAIT).unwrap();
        node.handle.dial(&b_addr, false, WAIT).expect("dial B");
    }
    assert_eq!(b.gossip_subscribe(TOPIC), Ok(true));
    eventually("meshes X-B-Y", || {
        let mesh = b.gossip_mesh_peers(TOPIC);
        mesh.contains(&x.peer)
            && mesh.contains(&y.peer)
            && !x.client.mesh_peers(TOPIC, WAIT).unwrap().is_empty()
    });
    x.client.publish(TOPIC, b"X via B".to_vec(), WAIT).unwrap();
    let at_y = y
        .messages
        .recv_timeout(WAIT)
        .expect("Y receives X's message through B");
    assert_eq!(at_y.message.data, b"X via B");
    assert_eq!(at_y.message.source, Some(x.peer));
    assert_eq!(at_y.propagation_source, b.peer_id());
    let at_b = b.gossip_next_message(WAIT).expect("B delivers it too");
    assert_eq!(at_b.source, Some(x.peer));
}

/// Our node between two rust-libp2p peers, meshes formed.
fn rust_ours_rust(ours: &OurNode, a: &RustPeer, c: &RustPeer) {
    a.connect(ours.addr.clone(), WAIT).expect("A dials us");
    c.connect(ours.addr.clone(), WAIT).expect("C dials us");
    ours.client.subscribe(TOPIC, WAIT).unwrap();
    for p in [a, c] {
        assert_eq!(p.gossip_subscribe(TOPIC), Ok(true));
    }
    eventually("meshes A-ours-C", || {
        let mesh = ours.client.mesh_peers(TOPIC, WAIT).unwrap();
        mesh.contains(&a.peer_id())
            && mesh.contains(&c.peer_id())
            && a.gossip_mesh_peers(TOPIC).contains(&ours.peer)
            && c.gossip_mesh_peers(TOPIC).contains(&ours.peer)
    });
}

#[test]
fn a_v1_1_only_rust_peer_negotiates_meshsub_1_1_and_gets_messages() {
    let ours = our_node(81);
    let old = GossipConfig {
        versions: GossipVersions::V1_1Only,
        ..GossipConfig::default()
    };
    let (a, c) = (rust_peer_with(old), rust_peer());
    rust_ours_rust(&ours, &a, &c);
    let kind = |p: &RustPeer| {
        p.gossip_peer_protocols()
            .into_iter()
            .find_map(|(q, k)| (q == ours.peer).then_some(k))
    };
    assert_eq!(kind(&a).as_deref(), Some("Gossipsub v1.1"));
    assert_eq!(kind(&c).as_deref(), Some("Gossipsub v1.2"));
    c.gossip_publish(TOPIC, b"to the old one".to_vec()).unwrap();
    let m = a
        .gossip_next_message(WAIT)
        .expect("A (v1.1) receives through us");
    assert_eq!(m.data, b"to the old one");
    assert_eq!(m.source, Some(c.peer_id()));
}

#[test]
fn a_message_we_reject_in_validation_is_not_forwarded_to_rust_peers() {
    let ours = our_node_with(91, |c| {
        c.validator = Some(Arc::new(|m| {
            if m.data.starts_with(b"bad") {
                Validation::Reject
            } else {
                Validation::Accept
            }
        }));
    });
    let (a, c) = (rust_peer(), rust_peer());
    rust_ours_rust(&ours, &a, &c);
    a.gossip_publish(TOPIC, b"bad apple".to_vec()).unwrap();
    a.gossip_publish(TOPIC, b"good apple".to_vec()).unwrap();
    let m = c.gossip_next_message(WAIT).expect("the good one");
    assert_eq!(m.data, b"good apple");
    assert!(c.gossip_next_message(Duration::from_millis(500)).is_none());
    let got = ours
        .messages
        .recv_timeout(WAIT)
        .expect("we deliver the good one");
    assert_eq!(got.message.data, b"good apple");
    assert_eq!(ours.client.stats(WAIT).unwrap().rejected, 1);
}
