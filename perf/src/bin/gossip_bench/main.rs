//! Gossipsub throughput benchmark, our side (issue 14): N of our swarms in
//! this one process on 127.0.0.1 QUIC, a random connected topology, one
//! topic, a fixed publish rate of fixed-size messages for a fixed time;
//! prints one JSON line. The rust-libp2p side is
//! `swarm/interop-peer/src/bin/rust_gossip_bench.rs`; both run from
//! `perf/bench/gossip_compare.sh`, which builds this binary and runs the
//! two in turns with the same seeds.
//!
//! Run: `cargo run --release -p bandwidth_perf --bin gossip_bench -- --nodes 50 --degree 8 --rate 1000 --size 1024 --duration-s 30 --seed 1`
//!
//! Set-up (not measured), as on the rust-libp2p side:
//! 1. N nodes, each a [`swarm::Runtime`] on its own thread with its own UDP
//!    socket (one swarm per process in a real deployment; here one thread
//!    each, nothing shared between them), identities derived from `--seed`
//!    (the same ed25519 keys as rust-libp2p's side for the same seed), idle
//!    connections kept 10 min. Only the gossipsub plugin, at its defaults:
//!    StrictSign with the host key, D = 6 / 4 / 12, heartbeat 1 s (first
//!    after 100 ms), flood publish, source + seqno ids, no validator,
//!    per-peer queues bounded at 4 MiB / 8,192 frames. No ping or identify
//!    (rust-libp2p's side pings once an hour, i.e. never in the run).
//! 2. Topology (`topology.rs`, drawn exactly as rust-libp2p's side draws
//!    it, so the graph is the same for a seed): a random Hamiltonian
//!    cycle, then random extra edges between nodes with fewer than
//!    `--degree` peers until no such pair is left; the lower-numbered node
//!    of an edge dials.
//! 3. Every node subscribes to one topic; then wait (at most 20 s) until
//!    every mesh has at least min(D_lo, the node's peers) peers.
//!
//! Measured: `--rate` messages per second for `--duration-s` seconds,
//! `--size` bytes each. Message k is published by node k mod N (every node
//! publishes, every publish has N − 1 receivers) at its slot t0 + k / rate,
//! by a publisher thread per node through the blocking
//! [`GossipsubClient::publish`](protocols::gossipsub::GossipsubClient);
//! publishing stops at t0 + duration even when nodes fell behind (then
//! `messages` < rate × duration: the machine could not keep up). A
//! message's first 8 bytes are k (u64 LE), the next 8 the send time in ns
//! since a process-wide `Instant` taken just before the call; the rest is
//! zero. A receiver thread per node reads the plugin's bounded message
//! channel. After the last publish, wait until no delivery happened for
//! 1 s (at most `--drain-s`).
//!
//! * `delivery_rate`: distinct (message, receiver) pairs delivered over
//!   `messages` × (N − 1), `messages` counting successful publishes.
//! * `latency_ms_p50` / `_p99`: nearest-rank over all first deliveries.
//! * `cpu_s`: `getrusage(RUSAGE_SELF)` user + system, all threads, from the
//!   first publish to the end of the drain; `wall_s` the same span.
//! * `peak_rss_bytes`: `ru_maxrss` of the process (set-up included).
//! * Ours only: `channel_drops` (deliveries lost because a receiver thread
//!   fell behind: a harness artefact, 0 in a valid run), `queue_drops`
//!   (frames refused by full peer queues), `duplicates` (seen-cache hits),
//!   `idontwant_sent` / `idontwant_honoured` (ids sent, forwards skipped),
//!   summed over nodes.
//!
//! `--stalled` adds one extra peer in a child process (`stalled.rs`): it
//! dials node 0, subscribes, waits until node 0 is in its mesh, then stops
//! reading its gossipsub streams. Node 0 publishes every message (so all
//! of them are due to the stalled peer) and every `--rss-interval-ms` a
//! line `{"impl":"ours","mode":"stalled","t_s":..,"rss_bytes":..,
//! "published":..,"slow_peer_events":..,"queue_drops":..,
//! "max_peer_queue_bytes":..}` reports this process's RSS
//! (`/proc/self/statm`) and node 0's largest peer queue. The summary line
//! follows with `"stalled":true`, `rss_start_bytes` and `rss_end_bytes`.

mod measure;
mod node;
mod stalled;
mod topology;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use clap::Parser;
use protocols::gossipsub::{GossipEvent, GossipStats, GossipsubClient, ReceivedMessage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use swarm::{Keypair, Multiaddr, SwarmEvent};

use measure::{cpu_seconds, peak_rss_bytes, percentile_ms, round, rss_bytes};
use node::Node;
use topology::Topology;

/// The one topic.
pub const TOPIC: &str = "gossip-bench";
/// Bytes of header in each message: sequence number and send time.
const HEADER: usize = 16;
/// Bound on one call to a swarm (dial, subscribe, publish, stats).
const CALL: Duration = Duration::from_secs(10);
/// Bound on the wait for meshes during set-up.
const MESH_WAIT: Duration = Duration::from_secs(20);

/// Gossipsub benchmark, our side: N of our swarms in one process over
/// loopback QUIC, a random topology with `--degree` peers each, one topic,
/// `--rate` messages/s of `--size` bytes for `--duration-s` seconds;
/// prints one JSON line (the source header says what is measured).
#[derive(Parser, Debug)]
#[command(
    name = "gossip_bench",
    about = "Gossipsub benchmark, our side: N swarms on loopback QUIC, one topic, a fixed publish rate; one JSON line out (delivery_rate, latency p50/p99, cpu_s, peak RSS)"
)]
struct Args {
    /// Number of nodes.
    #[arg(long, default_value_t = 50)]
    nodes: usize,
    /// Connections per node in the random topology.
    #[arg(long, default_value_t = 8)]
    degree: usize,
    /// Messages published per second, over all publishers.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Message size in bytes (at least 16: sequence number and timestamp).
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Publishing time in seconds.
    #[arg(long, default_value_t = 30)]
    duration_s: u64,
    /// Seed of identities and topology (the same graph as rust-libp2p's
    /// side for the same seed).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Upper bound on the wait for late deliveries after the last publish.
    #[arg(long, default_value_t = 10)]
    drain_s: u64,
    /// Add a peer (child process) that subscribes and then stops reading;
    /// node 0 publishes everything; report RSS over time.
    #[arg(long)]
    stalled: bool,
    /// Interval of the RSS lines (stdout in `--stalled` mode, progress on
    /// stderr otherwise).
    #[arg(long, default_value_t = 1000)]
    rss_interval_ms: u64,
    /// Internal: run as the stalled peer, dialing this address.
    #[arg(long, hide = true)]
    stalled_child: Option<Multiaddr>,
}

fn main() {
    // Logs (RUST_LOG) go to stderr with the progress; stdout is JSON only.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let result = match &args.stalled_child {
        Some(addr) => stalled::run_child(addr),
        None => run(&args),
    };
    if let Err(e) = result {
        eprintln!("gossip_bench: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    ensure!(args.nodes >= 2, "--nodes must be at least 2");
    ensure!(args.size >= HEADER, "--size must be at least {HEADER}");
    ensure!(args.rate > 0, "--rate must be positive");
    ensure!(args.duration_s > 0, "--duration-s must be positive");
    let n = args.nodes;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let setup_start = Instant::now();

    // 1. Nodes. All keys are drawn before the topology, as on the other
    //    side, so that the same seed gives the same graph.
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        keys.push(Keypair::ed25519_from_bytes(rng.random::<[u8; 32]>())?);
    }
    let mut nodes: Vec<Node> = keys
        .into_iter()
        .map(|k| Node::start(k, |plugin| Box::new(plugin)))
        .collect::<anyhow::Result<_>>()?;

    // 2. Topology.
    let graph = Topology::random(n, args.degree, &mut rng);
    for &(a, b) in &graph.edges {
        nodes[a]
            .handle
            .dial(&nodes[b].addr, false, CALL)
            .map_err(|e| anyhow::anyhow!("connect {a} -> {b}: {e}"))?;
    }

    // 3. Subscriptions and meshes.
    for node in &nodes {
        node.client.subscribe(TOPIC, CALL)?;
    }
    // D_lo of our defaults, or all of a node's peers when it has fewer.
    let d_lo = node::gossipsub_config(Keypair::generate_ed25519()).mesh_n_low;
    let deadline = Instant::now() + MESH_WAIT;
    let mut mesh_sizes;
    loop {
        mesh_sizes = nodes
            .iter()
            .map(|node| node.client.mesh_peers(TOPIC, CALL).map(|m| m.len()))
            .collect::<Result<Vec<_>, _>>()?;
        let ready = (0..n).all(|i| mesh_sizes[i] >= d_lo.min(graph.degree[i]));
        if ready || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mesh_min = mesh_sizes.iter().copied().min().unwrap_or(0);
    eprintln!(
        "set-up: {n} nodes, {} edges, mesh sizes min {mesh_min} max {}",
        graph.edges.len(),
        mesh_sizes.iter().max().unwrap_or(&0)
    );

    // The stalled peer, in a child process so that its buffers are not in
    // this process's RSS; node 0's events, to count its slow-peer reports.
    let mut child = None;
    let mut node0_events = None;
    if args.stalled {
        child = Some(stalled::start_child(&nodes[0].addr)?);
        node0_events = Some(
            nodes[0]
                .handle
                .subscribe(1024)
                .map_err(|e| anyhow::anyhow!("subscribe to node 0's events: {e}"))?,
        );
        eprintln!("stalled peer is connected, subscribed and paused");
    }
    let setup_s = setup_start.elapsed().as_secs_f64();

    // 4. Measured: publish, receive, drain.
    let total = args.rate * args.duration_s;
    let epoch = Instant::now();
    let stop = AtomicBool::new(false);
    let last_delivery_ns = AtomicU64::new(0);
    let published = Arc::new(AtomicU64::new(0));
    let rss_start = rss_bytes();
    let cpu_before = cpu_seconds()?;
    let t0 = Instant::now();
    let mut slow_peer_events = 0u64;
    let channels: Vec<Receiver<ReceivedMessage>> = nodes
        .iter_mut()
        .map(|node| node.messages.take().context("a node's channel is gone"))
        .collect::<anyhow::Result<_>>()?;

    let (results, publish_errors) = std::thread::scope(|s| {
        let receivers: Vec<_> = channels
            .into_iter()
            .map(|rx| {
                let (stop, last) = (&stop, &last_delivery_ns);
                s.spawn(move || receive(rx, total, epoch, stop, last))
            })
            .collect();
        let publishers: Vec<_> = (0..n)
            .filter(|&i| !args.stalled || i == 0)
            .map(|i| {
                let slots = Slots {
                    first: i as u64,
                    step: if args.stalled { 1 } else { n as u64 },
                    total,
                    rate: args.rate,
                };
                let client = nodes[i].client.clone();
                let published = published.clone();
                s.spawn(move || publish(&client, slots, args.size, t0, epoch, &published))
            })
            .collect();

        // Sample RSS while publishing: JSON lines on stdout in stalled
        // mode, progress on stderr otherwise.
        let interval = Duration::from_millis(args.rss_interval_ms.max(50));
        let end = t0 + Duration::from_secs(args.duration_s);
        let mut next = t0;
        while Instant::now() < end {
            next += interval;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            let mut line = vec![
                ("impl", json!("ours")),
                (
                    "mode",
                    json!(if args.stalled { "stalled" } else { "progress" }),
                ),
                ("t_s", json!(round(t0.elapsed().as_secs_f64(), 3))),
                ("rss_bytes", json!(rss_bytes())),
                ("published", json!(published.load(Ordering::Relaxed))),
            ];
            if let Some(events) = &node0_events {
                slow_peer_events += count_slow_peer(events);
                let stats = nodes[0].client.stats(CALL).unwrap_or_default();
                line.extend([
                    ("slow_peer_events", json!(slow_peer_events)),
                    ("queue_drops", json!(stats.queue_drops)),
                    ("max_peer_queue_bytes", json!(stats.max_peer_queue_bytes)),
                ]);
                println!("{}", json_line(&line));
            } else {
                eprintln!("{}", json_line(&line));
            }
        }

        let publish_errors: Vec<String> = publishers
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec!["publisher panicked".into()])
            })
            .collect();
        // Drain: until 1 s without a delivery, at most --drain-s.
        let drain_end = Instant::now() + Duration::from_secs(args.drain_s);
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let last = Duration::from_nanos(last_delivery_ns.load(Ordering::Relaxed));
            let quiet = epoch.elapsed().saturating_sub(last) >= Duration::from_secs(1);
            if quiet || Instant::now() >= drain_end {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let results: Vec<Received> = receivers
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect();
        (results, publish_errors)
    });
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu_s = cpu_seconds()? - cpu_before;
    let rss_end = rss_bytes();
    if let Some(events) = &node0_events {
        slow_peer_events += count_slow_peer(events);
    }
    if let Some(child) = child {
        stalled::stop_child(child);
    }

    // Evaluation, outside the measured span.
    let stats: Vec<GossipStats> = nodes
        .iter()
        .map(|node| node.client.stats(CALL).unwrap_or_default())
        .collect();
    let messages = published.load(Ordering::Relaxed);
    let mut latencies: Vec<u32> = Vec::new();
    let mut delivered = 0u64;
    for r in &results {
        delivered += r.distinct;
        latencies.extend_from_slice(&r.latency_us);
    }
    latencies.sort_unstable();
    let expected = messages * (n as u64 - 1);
    let delivery_rate = if expected > 0 {
        delivered as f64 / expected as f64
    } else {
        0.0
    };
    if !publish_errors.is_empty() {
        eprintln!(
            "{} publishes failed, e.g. {:?}",
            publish_errors.len(),
            &publish_errors[..publish_errors.len().min(3)]
        );
    }
    let sum = |f: fn(&GossipStats) -> u64| stats.iter().map(f).sum::<u64>();
    let mut summary = vec![
        ("impl", json!("ours")),
        ("nodes", json!(n)),
        ("messages", json!(messages)),
        ("delivery_rate", json!(round(delivery_rate, 6))),
        ("latency_ms_p50", json!(percentile_ms(&latencies, 0.50))),
        ("latency_ms_p99", json!(percentile_ms(&latencies, 0.99))),
        ("cpu_s", json!(round(cpu_s, 3))),
        ("peak_rss_bytes", json!(peak_rss_bytes()?)),
        ("wall_s", json!(round(wall_s, 3))),
        ("degree", json!(args.degree)),
        ("rate", json!(args.rate)),
        ("size", json!(args.size)),
        ("duration_s", json!(args.duration_s)),
        ("seed", json!(args.seed)),
        ("publish_errors", json!(publish_errors.len())),
        (
            "achieved_rate",
            json!(round(messages as f64 / args.duration_s as f64, 3)),
        ),
        ("delivered", json!(delivered)),
        ("degree_min", json!(graph.degree_min())),
        ("degree_mean", json!(round(graph.degree_mean(), 3))),
        ("mesh_min", json!(mesh_min)),
        ("setup_s", json!(round(setup_s, 3))),
    ];
    if args.stalled {
        summary.extend([
            ("stalled", json!(true)),
            ("rss_start_bytes", json!(rss_start)),
            ("rss_end_bytes", json!(rss_end)),
            ("slow_peer_events", json!(slow_peer_events)),
        ]);
    }
    summary.extend([
        ("edges", json!(graph.edges.len())),
        ("channel_drops", json!(sum(|s| s.channel_drops))),
        ("queue_drops", json!(sum(|s| s.queue_drops))),
        ("duplicates", json!(sum(|s| s.duplicates))),
        ("idontwant_sent", json!(sum(|s| s.idontwant_sent))),
        ("idontwant_honoured", json!(sum(|s| s.idontwant_honoured))),
    ]);
    println!("{}", json_line(&summary));
    for node in &mut nodes {
        node.shutdown();
    }
    Ok(())
}

/// One JSON object with the fields in the given order (serde_json's map
/// would sort them, and the order makes the logs easier to compare with
/// rust-libp2p's side).
fn json_line(fields: &[(&str, Value)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::from(*k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// Which messages one publisher sends: `first`, `first + step`, … below
/// `total`, message k at t0 + k / `rate`.
#[derive(Clone, Copy)]
struct Slots {
    first: u64,
    step: u64,
    total: u64,
    rate: u64,
}

/// Publish the slots' messages on time; returns the errors.
fn publish(
    client: &GossipsubClient,
    slots: Slots,
    size: usize,
    t0: Instant,
    epoch: Instant,
    published: &AtomicU64,
) -> Vec<String> {
    let at = |k: u64| t0 + Duration::from_nanos(k * 1_000_000_000 / slots.rate);
    let mut errors = Vec::new();
    let mut data = vec![0u8; size];
    let mut k = slots.first;
    // Stop at the end of the window even if this node fell behind: an
    // overloaded run shows fewer `messages` instead of running on.
    let end = at(slots.total);
    while k < slots.total && Instant::now() < end {
        std::thread::sleep(at(k).saturating_duration_since(Instant::now()));
        data[..8].copy_from_slice(&k.to_le_bytes());
        let sent = epoch.elapsed().as_nanos() as u64;
        data[8..16].copy_from_slice(&sent.to_le_bytes());
        match client.publish(TOPIC, data.clone(), CALL) {
            Ok(_) => {
                published.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => errors.push(e.to_string()),
        }
        k += slots.step;
    }
    errors
}

/// What one receiver saw.
#[derive(Default)]
struct Received {
    distinct: u64,
    latency_us: Vec<u32>,
}

/// Read every message delivered to one node until `stop`.
fn receive(
    rx: Receiver<ReceivedMessage>,
    total: u64,
    epoch: Instant,
    stop: &AtomicBool,
    last: &AtomicU64,
) -> Received {
    let mut seen = vec![false; total as usize];
    let mut out = Received::default();
    while !stop.load(Ordering::Relaxed) {
        let msg = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(msg) => msg,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let now = epoch.elapsed().as_nanos() as u64;
        last.fetch_max(now, Ordering::Relaxed);
        let data = &msg.message.data;
        // Messages without our header are not ours: skip them.
        let (Some(k), Some(sent)) = (le_u64(data, 0), le_u64(data, 8)) else {
            continue;
        };
        let Some(flag) = seen.get_mut(k as usize) else {
            continue;
        };
        if !*flag {
            *flag = true;
            out.distinct += 1;
            let us = now.saturating_sub(sent) / 1000;
            out.latency_us.push(us.min(u64::from(u32::MAX)) as u32);
        }
    }
    out
}

fn le_u64(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

/// Count (and drain) node 0's slow-peer reports.
fn count_slow_peer(events: &Receiver<SwarmEvent>) -> u64 {
    events
        .try_iter()
        .filter(|e| match e {
            SwarmEvent::Protocol(p) => {
                matches!(
                    p.downcast_ref::<GossipEvent>(),
                    Some(GossipEvent::SlowPeer { .. })
                )
            }
            _ => false,
        })
        .count() as u64
}
