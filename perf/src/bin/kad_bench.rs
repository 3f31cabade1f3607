//! Kademlia lookup benchmark, our side (issue 13): N of our nodes in this
//! one process on 127.0.0.1 QUIC, then `--lookups` `get_closest_peers` of
//! random keys from random nodes; prints one JSON line. The rust-libp2p
//! side is `swarm/interop-peer/src/bin/rust_kad_bench.rs`; both run from
//! `perf/bench/kad_compare.sh` (`OURS_BIN=target/release/kad_bench`).
//!
//! Set-up (not measured), as on the rust-libp2p side:
//! 1. N nodes, each a [`Runtime`] on its own thread with its own UDP
//!    socket, identify and Kademlia in server mode, identities derived from
//!    `--seed`; idle connections kept `--idle-timeout-secs`; no periodic
//!    bootstrap (so none runs during the lookups).
//! 2. Each node adds `--seeds-per-node` random other nodes to its table.
//! 3. Rounds of `bootstrap` on every node at once, until a round adds no
//!    routing table entry anywhere (or `--max-bootstrap-rounds`).
//!
//! Measured: the lookups, **sequential** (each from a random node to a
//! random 32-byte key; the next starts when it returns), latency per
//! lookup as seen by the blocking caller, the whole process's CPU time
//! (user + system, all threads, from `/proc/self/stat`) from the first
//! lookup's start to the last one's end, and the wall time of that span.
//! A lookup is `ok` if it returned at least one peer; `exact` counts those
//! whose result is exactly the k closest nodes to the key (SHA-256 XOR
//! distance, the asking node left out). `idle_cpu_s_per_s` is the CPU the
//! idle, connected network uses per second just before the lookups.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use clap::Parser;
use protocols::identify::{Identify, IdentifyConfig};
use protocols::kad::{KadClient, KadConfig, Kademlia, Key};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use swarm::{Keypair, Multiaddr, PeerId, Runtime, SwarmConfig, SwarmHandle};

/// Kademlia lookup benchmark: N of our nodes in one process over loopback
/// QUIC, sequential get_closest_peers of random keys; prints one JSON line.
#[derive(Parser, Debug)]
#[command(name = "kad_bench")]
struct Args {
    /// Number of nodes.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Number of get_closest_peers lookups to time.
    #[arg(long, default_value_t = 1000)]
    lookups: usize,
    /// Seed of node identities, seed choices, lookup origins and keys.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Random other nodes each node starts with.
    #[arg(long, default_value_t = 3)]
    seeds_per_node: usize,
    /// Upper bound on bootstrap rounds during set-up.
    #[arg(long, default_value_t = 10)]
    max_bootstrap_rounds: usize,
    /// Bound on one lookup (a lookup that takes longer counts as failed).
    #[arg(long, default_value_t = 10)]
    lookup_timeout_secs: u64,
    /// Idle connections are closed after this long (kept for the whole run
    /// by default, so that lookups measure the DHT, not handshakes).
    #[arg(long, default_value_t = 600)]
    idle_timeout_secs: u64,
    /// Before the lookups, measure the process's CPU use while idle for
    /// this many seconds.
    #[arg(long, default_value_t = 3)]
    idle_probe_secs: u64,
}

/// One running node.
struct Node {
    peer: PeerId,
    addr: Multiaddr,
    client: KadClient,
    handle: SwarmHandle,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("kad_bench: {e}");
        std::process::exit(1);
    }
}

fn start_node(args: &Args, rng: &mut StdRng) -> anyhow::Result<Node> {
    let keypair = Keypair::ed25519_from_bytes(rng.random::<[u8; 32]>())?;
    let public_key = keypair.public();
    let mut config = SwarmConfig::new(keypair);
    config.idle_connection_timeout = Duration::from_secs(args.idle_timeout_secs);
    let mut runtime = Runtime::new(config)?;
    runtime.add_protocol(Box::new(Identify::new(IdentifyConfig::new(public_key))));
    let kad = runtime.add_protocol(Box::new(Kademlia::new(KadConfig {
        bootstrap_interval: None,
        ..KadConfig::default()
    })));
    let addr = runtime.listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse()?)?;
    let peer = runtime.swarm().local_peer_id();
    let (handle, _thread) = runtime.spawn()?;
    Ok(Node {
        peer,
        addr,
        client: KadClient::new(handle.clone(), kad),
        handle,
    })
}

fn table_total(nodes: &[Node]) -> usize {
    nodes
        .iter()
        .filter_map(|n| n.client.stats(Duration::from_secs(10)).ok())
        .map(|s| s.routing_table)
        .sum()
}

fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.nodes >= 2, "--nodes must be at least 2");
    let mut rng = StdRng::seed_from_u64(args.seed);
    let setup_start = Instant::now();

    // 1. Nodes.
    let nodes: Vec<Node> = (0..args.nodes)
        .map(|_| start_node(args, &mut rng))
        .collect::<anyhow::Result<_>>()?;

    // 2. Seeds.
    let seeds = args.seeds_per_node.min(args.nodes - 1);
    for (i, node) in nodes.iter().enumerate() {
        let mut chosen = HashSet::new();
        while chosen.len() < seeds {
            let j = rng.random_range(0..args.nodes);
            if j != i && chosen.insert(j) {
                node.client.add_peer(
                    nodes[j].peer,
                    vec![nodes[j].addr.clone()],
                    Duration::from_secs(10),
                )?;
            }
        }
    }

    // 3. Bootstrap rounds until the tables stop growing.
    let mut rounds = 0;
    let mut last_total = table_total(&nodes);
    while rounds < args.max_bootstrap_rounds {
        rounds += 1;
        std::thread::scope(|s| {
            for node in &nodes {
                // A failed round on one node is fine: the next one retries.
                s.spawn(move || node.client.bootstrap(Duration::from_secs(60)));
            }
        });
        // Identify exchanges of the new connections finish after the
        // bootstrap queries; give them a moment before counting.
        std::thread::sleep(Duration::from_millis(500));
        let total = table_total(&nodes);
        eprintln!("bootstrap round {rounds}: {total} routing table entries in all");
        if total <= last_total {
            break;
        }
        last_total = total;
    }
    let setup_s = setup_start.elapsed().as_secs_f64();

    // Draw the whole workload before the clock starts.
    let work: Vec<(usize, [u8; 32])> = (0..args.lookups)
        .map(|_| (rng.random_range(0..args.nodes), rng.random()))
        .collect();
    let timeout = Duration::from_secs(args.lookup_timeout_secs);

    let idle_cpu_per_s = if args.idle_probe_secs > 0 {
        let before = cpu_seconds()?;
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(args.idle_probe_secs));
        (cpu_seconds()? - before) / t0.elapsed().as_secs_f64()
    } else {
        0.0
    };

    // 4. Measured: sequential lookups.
    let cpu_before = cpu_seconds()?;
    let wall_start = Instant::now();
    let results: Vec<_> = work
        .iter()
        .map(|(origin, key)| {
            let t0 = Instant::now();
            let r = nodes[*origin].client.get_closest_peers(key, timeout);
            (t0.elapsed(), r)
        })
        .collect();
    let wall_s = wall_start.elapsed().as_secs_f64();
    let cpu_s = cpu_seconds()? - cpu_before;

    // Evaluation, outside the measured span.
    let keys: Vec<Key> = nodes.iter().map(|n| Key::from_peer(&n.peer)).collect();
    let mut latencies = Vec::new();
    let (mut exact, mut recall_sum) = (0usize, 0.0);
    for ((origin, key), (latency, r)) in work.iter().zip(&results) {
        let Ok(found) = r else { continue };
        if found.is_empty() {
            continue;
        }
        latencies.push(latency.as_secs_f64() * 1e3);
        let target = Key::from_bytes(key);
        let mut others: Vec<usize> = (0..nodes.len()).filter(|i| i != origin).collect();
        others.sort_by_key(|&i| keys[i].distance(&target));
        let want: HashSet<PeerId> = others.iter().take(20).map(|&i| nodes[i].peer).collect();
        let got: HashSet<PeerId> = found.iter().copied().collect();
        recall_sum += got.intersection(&want).count() as f64 / want.len() as f64;
        exact += usize::from(got == want);
    }
    let ok = latencies.len();
    latencies.sort_by(f64::total_cmp);
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err().map(|e| e.to_string()))
        .take(3)
        .collect();
    if !failed.is_empty() {
        eprintln!("some lookups failed, e.g. {failed:?}");
    }
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
    };
    println!(
        "{}",
        json!({
            "impl": "ours",
            "nodes": args.nodes,
            "lookups": args.lookups,
            "ok": ok,
            "latency_ms_p50": pct(0.5),
            "latency_ms_p99": pct(0.99),
            "cpu_s": cpu_s,
            "cpu_s_per_1000": cpu_s * 1000.0 / args.lookups.max(1) as f64,
            "wall_s": wall_s,
            "concurrency": 1,
            "seed": args.seed,
            "exact": exact,
            "recall_mean": if ok > 0 { recall_sum / ok as f64 } else { 0.0 },
            "idle_cpu_s_per_s": idle_cpu_per_s,
            "bootstrap_rounds": rounds,
            "setup_s": setup_s,
        })
    );
    for node in &nodes {
        let _ = node.handle.shutdown(0);
    }
    Ok(())
}

/// User + system CPU time of the whole process, in seconds, from
/// `/proc/self/stat` (fields 14 and 15, in clock ticks of 1/100 s: Linux's
/// USER_HZ on every architecture this runs on).
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name (field 2) may hold spaces; count from after it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/self/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so fields 14 and 15 are at 11 and 12.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("short /proc/self/stat"))?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}
