//! The virtual network as a simulator: its link model does what its
//! configuration says, partitions stop traffic until healed, and a node
//! that vanishes leaves no connection or stream behind on its peers.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use swarm::virtual_net::{LinkConfig, LinkModel, LinkStats, LossyLink, Outcome, VirtualNet};
use swarm::{Keypair, PluginId, SwarmConfig};

fn config(i: u8) -> SwarmConfig {
    let mut config = SwarmConfig::new(Keypair::ed25519_from_bytes([i; 32]).unwrap());
    config.seed = Some(u64::from(i));
    config
}

/// 10,000 datagrams through a link configured for 10 % loss, 20 ms ± 10 ms
/// and 2 % duplication: the measured rates and delays match.
#[test]
fn loss_latency_and_duplication_match_the_configuration() {
    let config = LinkConfig {
        loss: 0.10,
        duplicate: 0.02,
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(10),
        ..LinkConfig::clean()
    };
    let mut link = LossyLink::new(config, 42);
    let mut stats = LinkStats::default();
    let mut deliver = Vec::new();
    let now = Instant::now();
    let (mut lost, mut copies) = (0u32, 0u32);
    for _ in 0..10_000 {
        link.carry(now, 0, 1, vec![0; 100], &mut deliver, &mut stats);
        if deliver.is_empty() {
            lost += 1;
        }
        for (delay, _) in deliver.drain(..) {
            copies += 1;
            assert!(
                delay >= Duration::from_millis(20) && delay < Duration::from_millis(30),
                "delay {delay:?} outside 20 ms + [0, 10 ms)"
            );
        }
    }
    let loss = f64::from(lost) / 10_000.0;
    assert!((0.085..0.115).contains(&loss), "measured loss {loss}");
    let extra = f64::from(copies - (10_000 - lost)) / f64::from(10_000 - lost);
    assert!(
        (0.01..0.03).contains(&extra),
        "measured duplication {extra}"
    );
    assert_eq!(u64::from(lost), stats.dropped);
}

/// Two swarms on two sides of a partition cannot connect; once healed, the
/// same dial succeeds.
#[test]
fn a_partition_stops_traffic_and_healing_restores_it() {
    let mut net = VirtualNet::new(1, LinkConfig::clean());
    let a = net.add_swarm(config(1), Ipv4Addr::new(10, 0, 0, 1));
    let b = net.add_swarm(config(2), Ipv4Addr::new(10, 0, 0, 2));
    net.isolate(&[b]);
    let to_b = net.dial_addr(b);
    net.swarm(a).dial(&to_b, false).expect("dial");
    let peer_b = peer(&mut net, b);
    let outcome = net.run_until(Duration::from_secs(5), |net| {
        !net.swarm(a).connections_to(&peer_b).is_empty()
    });
    assert_eq!(
        outcome,
        Outcome::VirtualTimeout,
        "connected across a partition"
    );
    assert!(
        net.stats().partitioned > 0,
        "nothing was stopped by the partition"
    );
    assert_eq!(net.stats().delivered, 0);
    net.heal();
    // The dial made under the partition has timed out by now or will; a
    // new one goes through.
    net.run_for(Duration::from_secs(60));
    net.swarm(a).dial(&to_b, true).expect("dial");
    let outcome = net.run_until(Duration::from_secs(5), |net| {
        !net.swarm(a).connections_to(&peer_b).is_empty()
    });
    assert_eq!(outcome, Outcome::Done, "no connection after healing");
}

/// Churn: a node that vanishes without a goodbye leaves nothing behind on
/// its peers once their idle timeouts have run.
#[test]
fn a_removed_node_leaves_no_connection_or_stream_behind() {
    let mut net = VirtualNet::new(3, LinkConfig::clean());
    let nodes: Vec<usize> = (1..=4)
        .map(|i| net.add_swarm(config(i), Ipv4Addr::new(10, 0, 0, i)))
        .collect();
    for &n in &nodes[1..] {
        let to = net.dial_addr(n);
        net.swarm(nodes[0]).dial(&to, false).expect("dial");
    }
    let peers: Vec<_> = nodes.iter().map(|&n| peer(&mut net, n)).collect();
    let outcome = net.run_until(Duration::from_secs(5), |net| {
        peers[1..]
            .iter()
            .all(|p| !net.swarm(nodes[0]).connections_to(p).is_empty())
    });
    assert_eq!(outcome, Outcome::Done);
    // The listeners finish their side of the handshakes a moment later.
    net.run_for(Duration::from_secs(1));
    // Every node keeps its connections open, so only the vanished peer's
    // can go, and only by QUIC's idle timeout (30 s): nobody says goodbye.
    let gone = peer(&mut net, nodes[1]);
    for &n in &nodes {
        let conns: Vec<_> = peers
            .iter()
            .flat_map(|p| net.swarm(n).connections_to(p))
            .collect();
        net.swarm(n).with_context(PluginId::external(), |ctx| {
            for c in conns {
                ctx.keep_alive(c, true).expect("keep alive");
            }
        });
    }
    net.remove_node(nodes[1]);
    assert!(!net.contains(nodes[1]));
    net.run_for(Duration::from_secs(90));
    let zero = net.swarm(nodes[0]);
    assert!(
        zero.connections_to(&gone).is_empty(),
        "a connection to the vanished node leaked"
    );
    assert_eq!(zero.connection_count(), 2, "the live connections must stay");
    assert_eq!(zero.stream_count(), 0);
    for &n in &nodes[2..] {
        assert_eq!(net.swarm(n).connection_count(), 1, "node {n}");
        assert_eq!(net.swarm(n).stream_count(), 0, "node {n} kept a stream");
    }
}

fn peer(net: &mut VirtualNet, n: usize) -> swarm::PeerId {
    net.swarm(n).local_peer_id()
}

/// An uplink of 1 MB/s with a 10 kB queue: a burst of 100 datagrams of
/// 1,000 bytes sent at once leaves one per millisecond, and what does not
/// fit the queue is dropped, as a router drops.
#[test]
fn a_bandwidth_limit_serializes_and_its_queue_drops_the_excess() {
    let config = LinkConfig {
        latency: Duration::from_millis(10),
        bandwidth: Some(1_000_000),
        queue: 10_000,
        ..LinkConfig::clean()
    };
    let mut link = LossyLink::new(config, 1);
    let mut stats = LinkStats::default();
    let mut deliver = Vec::new();
    let now = Instant::now();
    let mut delays = Vec::new();
    for _ in 0..100 {
        link.carry(now, 0, 1, vec![0; 1000], &mut deliver, &mut stats);
        delays.extend(deliver.drain(..).map(|(d, _)| d));
    }
    assert_eq!(delays.len(), 10, "the queue holds 10 datagrams");
    assert_eq!(stats.queue_dropped, 90);
    for (k, d) in delays.iter().enumerate() {
        let expected = Duration::from_millis(10 + k as u64 + 1);
        let diff = d.abs_diff(expected);
        assert!(diff < Duration::from_micros(10), "datagram {k}: {d:?}");
    }
    // Once the uplink has drained, it takes datagrams again.
    link.carry(
        now + Duration::from_millis(20),
        0,
        1,
        vec![0; 1000],
        &mut deliver,
        &mut stats,
    );
    assert_eq!(deliver.len(), 1);
}

/// Per-pair latency: each pair gets its own fixed delay within the spread,
/// the same both ways, and the same for the same seed.
#[test]
fn pairs_get_their_own_latency_within_the_spread() {
    let config = LinkConfig {
        latency: Duration::from_millis(10),
        latency_spread: Duration::from_millis(100),
        ..LinkConfig::clean()
    };
    let delay = |seed: u64, from: usize, to: usize| {
        let mut link = LossyLink::new(config.clone(), seed);
        let mut deliver = Vec::new();
        let mut stats = LinkStats::default();
        link.carry(
            Instant::now(),
            from,
            to,
            vec![0; 10],
            &mut deliver,
            &mut stats,
        );
        deliver[0].0
    };
    let mut distinct = std::collections::BTreeSet::new();
    for to in 1..20 {
        let d = delay(9, 0, to);
        assert!(
            d >= Duration::from_millis(10) && d < Duration::from_millis(110),
            "{d:?}"
        );
        assert_eq!(d, delay(9, to, 0), "not symmetric");
        assert_eq!(d, delay(9, 0, to), "not reproducible");
        distinct.insert(d);
    }
    assert!(distinct.len() > 15, "pairs share delays: {distinct:?}");
}

/// Accepts streams of one protocol and does nothing with them.
struct Sink;

impl swarm::Protocol for Sink {
    fn name(&self) -> &'static str {
        "sink"
    }
    fn protocol_ids(&self) -> Vec<String> {
        vec!["/test/sink/1".into()]
    }
}

/// A stream handed to a thread makes the run unreplayable, and the network
/// says so instead of hashing a trace that may not repeat.
#[test]
fn a_stream_handed_to_a_thread_marks_the_run_not_replayable() {
    let mut net = VirtualNet::new(4, LinkConfig::clean());
    let a = net.add_swarm(config(1), Ipv4Addr::new(10, 0, 0, 1));
    let b = net.add_swarm_with(config(2), Ipv4Addr::new(10, 0, 0, 2), |s| {
        s.add_protocol(Box::new(Sink));
    });
    let to_b = net.dial_addr(b);
    let peer_b = peer(&mut net, b);
    let conn = net.swarm(a).dial(&to_b, false).expect("dial");
    let outcome = net.run_until(Duration::from_secs(5), |net| {
        !net.swarm(a).connections_to(&peer_b).is_empty()
    });
    assert_eq!(outcome, Outcome::Done);
    let stream = net.swarm(a).with_context(PluginId::external(), |ctx| {
        ctx.open_stream(conn, "/test/sink/1").expect("open")
    });
    net.run_for(Duration::from_secs(1));
    assert!(net.replayable(), "nothing was handed to a thread yet");
    let detached = net
        .swarm(a)
        .with_context(PluginId::external(), |ctx| ctx.detach_stream(stream))
        .expect("detach");
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.swarm(a).handed_to_threads(), 1);
    assert!(!net.replayable(), "a thread's stream went unnoticed");
    drop(detached);
}

/// 40 swarms that dial 4 others each over a lossy, jittery link: the run's
/// trace hash, datagram counters and connections after `threads` (0:
/// sequential turns), driven by `drive`.
fn dialing_network(threads: usize, drive: fn(&mut VirtualNet)) -> (u64, u64, u64, usize) {
    let link = LinkConfig {
        loss: 0.02,
        latency: Duration::from_millis(10),
        jitter: Duration::from_millis(4),
        ..LinkConfig::clean()
    };
    let mut net = VirtualNet::new(7, link);
    net.set_threads(threads);
    let nodes: Vec<usize> = (1..=40)
        .map(|i| net.add_swarm(config(i), Ipv4Addr::new(10, 0, 1, i)))
        .collect();
    for (i, &n) in nodes.iter().enumerate() {
        for step in [1, 3, 7, 13] {
            let to = net.dial_addr(nodes[(i + step) % nodes.len()]);
            net.swarm(n).dial(&to, false).expect("dial");
        }
    }
    drive(&mut net);
    let connections = nodes.iter().map(|&n| net.swarm(n).connection_count()).sum();
    let stats = net.stats();
    (net.trace_hash(), stats.sent, stats.dropped, connections)
}

/// Lookahead windows run nodes on threads without changing what happens:
/// a network run for a fixed time gives the same trace hash and counters
/// in sequential turns as in windows on 1 and 4 threads, and one run until
/// a condition holds gives the same on 1 and 4 threads (only how often the
/// condition is checked differs from sequential turns).
#[test]
fn lookahead_windows_on_threads_replay_the_sequential_run() {
    let for_a_while: fn(&mut VirtualNet) = |net| net.run_for(Duration::from_secs(3));
    let sequential = dialing_network(0, for_a_while);
    assert!(sequential.1 > 1_000, "too quiet to tell: {sequential:?}");
    assert!(sequential.2 > 0, "the link lost nothing: {sequential:?}");
    assert!(sequential.3 > 100, "few connections: {sequential:?}");
    assert_eq!(dialing_network(1, for_a_while), sequential);
    assert_eq!(dialing_network(4, for_a_while), sequential);

    let until_connected: fn(&mut VirtualNet) = |net| {
        let outcome = net.run_until(Duration::from_secs(10), |net| {
            (0..net.len()).all(|n| net.swarm(n).connection_count() >= 8)
        });
        assert_eq!(outcome, Outcome::Done);
    };
    let one = dialing_network(1, until_connected);
    assert_eq!(dialing_network(4, until_connected), one);
}
