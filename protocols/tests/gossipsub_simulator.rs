//! The gossipsub plugin on the simulator: 50 seeded nodes on a virtual
//! network deliver every message to every subscriber; a peer that sends
//! garbage loses its stream while the node keeps serving; a peer that
//! stops reading costs its queue bound, no more.

use std::net::Ipv4Addr;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use bytes::Bytes;
use protocols::gossipsub::proto::{Rpc, SubOpts};
use protocols::gossipsub::{
    GossipCommand, GossipOutput, GossipRequest, GossipStats, Gossipsub, GossipsubConfig,
    MESHSUB_1_2, QueueLimits, ReceivedMessage, Reply, SigningPolicy, content_hash_id, encode,
};
use swarm::virtual_net::{LinkConfig, VirtualNet};
use swarm::{ConnId, Context, Keypair, PeerId, PluginId, Protocol, StreamRef, SwarmConfig};

const TOPIC: &str = "sim";

struct SimNode {
    index: usize,
    plugin: PluginId,
    messages: Receiver<ReceivedMessage>,
}

fn key(seed: u64, i: usize) -> Keypair {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    Keypair::ed25519_from_bytes(bytes).unwrap()
}

/// Unsigned messages with content ids: ed25519 in a debug build costs
/// milliseconds per signature, and signing is tested in the router tests.
fn unsigned(config: &mut GossipsubConfig) {
    config.signing = SigningPolicy::StrictNoSign;
    config.message_id_fn = std::sync::Arc::new(content_hash_id);
}

fn swarm_config(seed: u64, i: usize, keypair: Keypair) -> SwarmConfig {
    let mut config = SwarmConfig::new(keypair);
    config.seed = Some(seed.wrapping_mul(1000).wrapping_add(i as u64));
    config
}

fn add_gossip_node(
    net: &mut VirtualNet,
    seed: u64,
    i: usize,
    tune: impl FnOnce(&mut GossipsubConfig),
) -> SimNode {
    let keypair = key(seed, i);
    let mut config = GossipsubConfig::new(keypair.clone());
    tune(&mut config);
    let (plugin, messages) = Gossipsub::with_message_channel(config, 4096);
    let mut id = None;
    let index = net.add_swarm_with(
        swarm_config(seed, i, keypair),
        Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250 + 1) as u8),
        |s| id = Some(s.add_protocol(Box::new(plugin))),
    );
    SimNode {
        index,
        plugin: id.unwrap(),
        messages,
    }
}

/// Run a command on a node's plugin and take its answer.
fn command(net: &mut VirtualNet, node: &SimNode, request: GossipRequest) -> GossipOutput {
    let (cmd, rx) = GossipCommand::with_channel(request);
    let plugin = node.plugin;
    net.swarm(node.index)
        .with_context(plugin, |ctx| ctx.send_message(plugin, cmd));
    rx.try_recv()
        .expect("the plugin answers at once")
        .expect("command succeeded")
}

fn stats(net: &mut VirtualNet, node: &SimNode) -> GossipStats {
    match command(net, node, GossipRequest::Stats) {
        GossipOutput::Stats(s) => *s,
        other => panic!("{other:?}"),
    }
}

#[test]
fn fifty_nodes_deliver_every_message_to_every_subscriber() {
    let seed = 5;
    let link = LinkConfig {
        latency: Duration::from_millis(10),
        jitter: Duration::from_millis(2),
        ..LinkConfig::clean()
    };
    let mut net = VirtualNet::new(seed, link);
    let n = 50;
    let nodes: Vec<SimNode> = (0..n)
        .map(|i| add_gossip_node(&mut net, seed, i, unsigned))
        .collect();
    for node in &nodes {
        command(&mut net, node, GossipRequest::Subscribe(TOPIC.into()));
    }
    // A ring plus chords: connected, 6 links per node on average.
    for i in 0..n {
        for step in [1, 7, 19] {
            let to = net.dial_addr(nodes[(i + step) % n].index);
            net.swarm(nodes[i].index).dial(&to, false).expect("dial");
        }
    }
    net.run_for(Duration::from_secs(5));
    for node in &nodes {
        let GossipOutput::Peers(mesh) =
            command(&mut net, node, GossipRequest::MeshPeers(TOPIC.into()))
        else {
            panic!("not peers");
        };
        assert!(
            (4..=12).contains(&mesh.len()),
            "node {} mesh {}",
            node.index,
            mesh.len()
        );
    }
    let publishers = [0, 11, 23, 37, 49];
    let per_publisher = 10;
    for round in 0..per_publisher {
        for &p in &publishers {
            let data = format!("{p}-{round}").into_bytes();
            let request = GossipRequest::Publish {
                topic: TOPIC.into(),
                data,
            };
            command(&mut net, &nodes[p], request);
        }
        net.run_for(Duration::from_millis(100));
    }
    net.run_for(Duration::from_secs(3));
    let total = publishers.len() * per_publisher;
    let mut duplicates = 0;
    for (i, node) in nodes.iter().enumerate() {
        let got: std::collections::BTreeSet<Vec<u8>> =
            node.messages.try_iter().map(|m| m.message.data).collect();
        let own = if publishers.contains(&i) {
            per_publisher
        } else {
            0
        };
        assert_eq!(
            got.len(),
            total - own,
            "node {i} got {} messages",
            got.len()
        );
        duplicates += stats(&mut net, node).duplicates;
    }
    // Meshes of degree ~6 send each message about 5 times per node.
    assert!(duplicates > 0);
}

/// A hostile peer: opens a gossipsub stream on every connection and sends
/// `payload`.
struct Hostile {
    payload: Bytes,
}

impl Protocol for Hostile {
    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, _peer: PeerId) {
        let _ = ctx.open_stream(conn, MESHSUB_1_2);
    }

    fn handle_stream_negotiated(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _: &str) {
        let _ = ctx.send(stream, self.payload.clone());
    }
}

/// A peer that subscribes, then never reads what it is sent.
struct StalledReader;

impl Protocol for StalledReader {
    fn protocol_ids(&self) -> Vec<String> {
        vec![MESHSUB_1_2.into()]
    }

    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, _peer: PeerId) {
        let _ = ctx.open_stream(conn, MESHSUB_1_2);
    }

    fn handle_stream_negotiated(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _: &str) {
        let subscribe = encode(&Rpc {
            subscriptions: vec![SubOpts {
                subscribe: Some(true),
                topic_id: Some(TOPIC.into()),
            }],
            ..Rpc::default()
        });
        let _ = ctx.send(stream, subscribe);
    }

    fn accept_inbound_stream(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _: &str) {
        let _ = ctx.set_reading(stream, false);
    }
}

#[test]
fn garbage_from_one_peer_drops_its_stream_and_the_node_keeps_serving() {
    let seed = 6;
    let mut net = VirtualNet::new(seed, LinkConfig::clean());
    let a = add_gossip_node(&mut net, seed, 0, |_| {});
    let b = add_gossip_node(&mut net, seed, 1, |_| {});
    let mut garbage = vec![200, 1];
    garbage.extend_from_slice(&[0xff; 200]);
    let mut oversized = unsigned_varint::encode::usize_buffer();
    let oversized = unsigned_varint::encode::usize(64 * 1024 * 1024, &mut oversized).to_vec();
    let mut hostiles = Vec::new();
    for (k, payload) in [garbage, oversized].into_iter().enumerate() {
        let keypair = key(seed, 10 + k);
        let h = net.add_swarm_with(
            swarm_config(seed, 10 + k, keypair),
            Ipv4Addr::new(10, 0, 1, 10 + k as u8),
            |s| {
                s.add_protocol(Box::new(Hostile {
                    payload: Bytes::from(payload),
                }));
            },
        );
        hostiles.push(h);
    }
    for node in [&a, &b] {
        command(&mut net, node, GossipRequest::Subscribe(TOPIC.into()));
    }
    let to_a = net.dial_addr(a.index);
    net.swarm(b.index).dial(&to_a, false).unwrap();
    for &h in &hostiles {
        net.swarm(h).dial(&to_a, false).unwrap();
    }
    net.run_for(Duration::from_secs(3));
    assert_eq!(stats(&mut net, &a).wire_errors, 2);
    command(
        &mut net,
        &b,
        GossipRequest::Publish {
            topic: TOPIC.into(),
            data: b"still served".to_vec(),
        },
    );
    net.run_for(Duration::from_secs(1));
    let got: Vec<Vec<u8>> = a.messages.try_iter().map(|m| m.message.data).collect();
    assert_eq!(got, vec![b"still served".to_vec()]);
}

#[test]
fn a_peer_that_stops_reading_costs_its_queue_bound_and_no_more() {
    let seed = 7;
    let mut net = VirtualNet::new(seed, LinkConfig::clean());
    let limits = QueueLimits {
        max_bytes: 128 * 1024,
        max_frames: 1024,
        low_priority_percent: 75,
    };
    let publisher = add_gossip_node(&mut net, seed, 0, |c| {
        unsigned(c);
        c.queue = limits;
    });
    let reader = add_gossip_node(&mut net, seed, 1, unsigned);
    // A small receive window, so QUIC flow control stops our writes soon
    // (with the default 10 MB the stall would first fill QUIC's buffers).
    let mut stalled_config = swarm_config(seed, 2, key(seed, 2));
    stalled_config.stream_receive_window = 64 * 1024;
    let stalled = net.add_swarm_with(stalled_config, Ipv4Addr::new(10, 0, 1, 2), |s| {
        s.add_protocol(Box::new(StalledReader));
    });
    for node in [&publisher, &reader] {
        command(&mut net, node, GossipRequest::Subscribe(TOPIC.into()));
    }
    let to_pub = net.dial_addr(publisher.index);
    net.swarm(reader.index).dial(&to_pub, false).unwrap();
    net.swarm(stalled).dial(&to_pub, false).unwrap();
    net.run_for(Duration::from_secs(2));
    let messages = 3000;
    let mut max_queued = 0;
    for k in 0..messages {
        let (cmd, rx) = GossipCommand::with_channel(GossipRequest::Publish {
            topic: TOPIC.into(),
            data: format!("{k:04}").repeat(256).into_bytes(),
        });
        let plugin = publisher.plugin;
        net.swarm(publisher.index)
            .with_context(plugin, |ctx| ctx.send_message(plugin, cmd));
        rx.try_recv()
            .unwrap()
            .expect("publish never fails: the reader takes it");
        if k % 50 == 0 {
            net.run_for(Duration::from_millis(20));
            let s = stats(&mut net, &publisher);
            max_queued = max_queued.max(s.max_peer_queue_bytes);
            assert!(s.max_peer_queue_bytes <= limits.max_bytes);
        }
    }
    net.run_for(Duration::from_secs(3));
    let got = reader.messages.try_iter().count();
    assert_eq!(got, messages, "the healthy reader missed messages");
    let s = stats(&mut net, &publisher);
    assert!(
        s.queue_drops > 0,
        "the stalled peer's drops were not counted"
    );
    assert!(
        max_queued > limits.max_bytes / 2,
        "the stall never filled the queue"
    );
    let _ = Reply::None;
}

/// Ten nodes gossiping for a few virtual seconds; the trace hash.
fn gossip_trace(seed: u64) -> u64 {
    let link = LinkConfig {
        loss: 0.02,
        latency: Duration::from_millis(15),
        jitter: Duration::from_millis(5),
        ..LinkConfig::clean()
    };
    let mut net = VirtualNet::new(seed, link);
    let nodes: Vec<SimNode> = (0..10)
        .map(|i| add_gossip_node(&mut net, seed, i, unsigned))
        .collect();
    for node in &nodes {
        command(&mut net, node, GossipRequest::Subscribe(TOPIC.into()));
    }
    for i in 0..10 {
        for step in [1, 3] {
            let to = net.dial_addr(nodes[(i + step) % 10].index);
            net.swarm(nodes[i].index).dial(&to, false).expect("dial");
        }
    }
    net.run_for(Duration::from_secs(3));
    for k in 0..10 {
        let request = GossipRequest::Publish {
            topic: TOPIC.into(),
            data: format!("m{k}").into_bytes(),
        };
        command(&mut net, &nodes[k % 10], request);
        net.run_for(Duration::from_millis(50));
    }
    net.run_for(Duration::from_secs(2));
    assert!(net.replayable());
    net.trace_hash()
}

#[test]
fn one_seed_replays_the_same_gossip_and_another_seed_differs() {
    let first = gossip_trace(41);
    assert_eq!(first, gossip_trace(41), "same seed, different traces");
    assert_ne!(first, gossip_trace(42), "different seeds, same trace");
}
