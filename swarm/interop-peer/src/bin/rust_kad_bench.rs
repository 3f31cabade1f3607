//! Kademlia lookup benchmark, rust-libp2p side (issue 13): N rust-libp2p 0.57
//! kad nodes in this one process on 127.0.0.1 QUIC, then `--lookups`
//! `get_closest_peers` of random keys from random nodes; prints one JSON line.
//!
//! Run: `cargo run --release -p rust-libp2p-peer --bin rust_kad_bench -- --nodes 100 --lookups 1000 --seed 1`
//! (or `perf/bench/kad_compare.sh`, which runs ours next to it).
//!
//! Set-up (not measured):
//! 1. N nodes, each a `RustPeer` (own thread, current-thread tokio runtime,
//!    its own UDP socket), server mode, identities derived from `--seed`;
//!    stock multistream-select V1, ping every hour (so that ping traffic does
//!    not count), idle connections kept `--idle-timeout-secs`, libp2p-kad's
//!    periodic bootstrap off (so that no bootstrap runs during the lookups).
//! 2. Each node adds `--seeds-per-node` random other nodes to its routing table.
//! 3. Rounds of `bootstrap` on every node at once, until a round adds no
//!    routing table entry anywhere (or `--max-bootstrap-rounds`). The fill
//!    reported is each table's size over the size it would have with every
//!    node known (per bucket, min(k, nodes at that distance)).
//!
//! Measured: the lookups, **sequential** (one at a time, each from a random
//! node to a random 32-byte key, the next starts when it returns), latency
//! per lookup as seen by the blocking caller, CPU time of the whole process
//! (`getrusage(RUSAGE_SELF)`, user + system, all nodes' threads) from the
//! first lookup's start to the last one's end, and wall time of the same
//! span. A lookup is `ok` if it returned at least one peer without error;
//! `latency_ms_*` are nearest-rank percentiles over the ok lookups.
//! `exact` counts lookups whose result is exactly the k closest nodes to the
//! key (by SHA-256 XOR distance, the querying node left out), computed after
//! the measured span. `requests_per_lookup` is the FIND_NODE requests all
//! nodes answered during the lookups, per lookup. `idle_cpu_s_per_s` is the process's CPU use per
//! second while the fully connected network sits idle just before the
//! lookups (QUIC keep-alives, timers): part of `cpu_s` is that, not lookups.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use clap::Parser;
use libp2p::kad::{K_VALUE, KBucketKey};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rust_libp2p_peer::{
    KadConfig, KadMode, MultistreamVersion, PeerConfig, PeerEvent, PeerId, RustPeer, identity,
};

/// Kademlia lookup benchmark: N rust-libp2p 0.57 kad nodes in one process
/// over loopback QUIC, sequential get_closest_peers of random keys; prints
/// one JSON line.
#[derive(Parser, Debug)]
#[command(name = "rust_kad_bench")]
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
    /// Routing-table entries each node starts with (random other nodes).
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
    /// Before the lookups, measure the process's CPU use while idle for this
    /// long (reported as `idle_cpu_s_per_s`); 0 skips it.
    #[arg(long, default_value_t = 3)]
    idle_probe_secs: u64,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("rust_kad_bench: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    if args.nodes < 2 {
        return Err("--nodes must be at least 2".to_string());
    }
    let mut rng = StdRng::seed_from_u64(args.seed);
    let setup_start = Instant::now();

    // 1. Nodes.
    let mut nodes = Vec::with_capacity(args.nodes);
    for _ in 0..args.nodes {
        let mut secret: [u8; 32] = rng.random();
        let keypair =
            identity::Keypair::ed25519_from_bytes(&mut secret).map_err(|e| format!("key: {e}"))?;
        let peer = RustPeer::try_spawn(PeerConfig {
            keypair: Some(keypair),
            ping_interval: Duration::from_secs(3600),
            multistream_version: MultistreamVersion::V1,
            idle_connection_timeout: Duration::from_secs(args.idle_timeout_secs),
            kad: Some(KadConfig {
                mode: Some(KadMode::Server),
                periodic_bootstrap_interval: None,
                ..KadConfig::default()
            }),
            ..PeerConfig::default()
        })?;
        nodes.push(peer);
    }
    let ids: Vec<PeerId> = nodes.iter().map(|n| n.peer_id()).collect();

    // 2. Seeds.
    let seeds = args.seeds_per_node.min(args.nodes - 1);
    for (i, node) in nodes.iter().enumerate() {
        let mut chosen = HashSet::new();
        while chosen.len() < seeds {
            let j = rng.random_range(0..args.nodes);
            if j != i && chosen.insert(j) {
                let addr = nodes[j]
                    .listen_addrs()
                    .into_iter()
                    .next()
                    .ok_or("a node has no listen address")?;
                node.kad_add_address(ids[j], addr)
                    .map_err(|e| format!("add_address: {e}"))?;
            }
        }
    }

    // 3. Bootstrap rounds until the tables stop growing.
    let boot_timeout = Duration::from_secs(60);
    let mut rounds = 0;
    let mut last_total = table_sizes(&nodes).iter().sum::<usize>();
    while rounds < args.max_bootstrap_rounds {
        rounds += 1;
        std::thread::scope(|s| {
            for node in &nodes {
                s.spawn(move || {
                    // A failed round on one node is fine: the next one retries.
                    let _ = node.kad_bootstrap(boot_timeout);
                });
            }
        });
        // Identify exchanges of the new connections finish after the
        // bootstrap queries; give them a moment before counting.
        std::thread::sleep(Duration::from_millis(500));
        let total: usize = table_sizes(&nodes).iter().sum();
        eprintln!("bootstrap round {rounds}: {total} routing table entries in all");
        if total <= last_total {
            break;
        }
        last_total = total;
    }
    let fills = table_fills(&nodes, &ids);
    let fill_min = fills.iter().copied().fold(f64::INFINITY, f64::min);
    let fill_mean = fills.iter().sum::<f64>() / fills.len() as f64;
    for n in &nodes {
        n.drain_events();
    }
    let setup_s = setup_start.elapsed().as_secs_f64();

    // Draw the whole workload before the clock starts.
    let work: Vec<(usize, Vec<u8>)> = (0..args.lookups)
        .map(|_| {
            let origin = rng.random_range(0..args.nodes);
            let key: [u8; 32] = rng.random();
            (origin, key.to_vec())
        })
        .collect();
    let lookup_timeout = Duration::from_secs(args.lookup_timeout_secs);

    // What the idle network costs (QUIC keep-alives of the open connections,
    // timers), so that lookup CPU can be told apart from holding connections.
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
    let mut results = Vec::with_capacity(work.len());
    for (origin, key) in &work {
        let t0 = Instant::now();
        let r = nodes[*origin].kad_get_closest_peers(key.clone(), lookup_timeout);
        results.push((t0.elapsed(), r));
    }
    let wall_s = wall_start.elapsed().as_secs_f64();
    let cpu_s = cpu_seconds()? - cpu_before;

    // FIND_NODE requests the nodes answered during the lookups (events were
    // drained before), i.e. the requests a lookup costs the network.
    let find_node: usize = nodes
        .iter()
        .map(|n| {
            n.drain_events()
                .iter()
                .filter(|e| {
                    matches!(e, PeerEvent::KadInboundRequest { request } if request.starts_with("FindNode"))
                })
                .count()
        })
        .sum();

    // Evaluation, outside the measured span.
    let peer_keys: Vec<KBucketKey<PeerId>> = ids.iter().map(|p| KBucketKey::from(*p)).collect();
    let mut latencies = Vec::new();
    let mut exact = 0usize;
    let mut recall_sum = 0.0;
    for ((origin, key), (latency, r)) in work.iter().zip(&results) {
        let Ok(found) = r else { continue };
        if found.is_empty() {
            continue;
        }
        latencies.push(latency.as_secs_f64() * 1e3);
        let target = KBucketKey::new(key.clone());
        let mut others: Vec<usize> = (0..ids.len()).filter(|i| i != origin).collect();
        others.sort_by_key(|&i| peer_keys[i].distance(&target));
        let want: HashSet<PeerId> = others.iter().take(K_VALUE.get()).map(|&i| ids[i]).collect();
        let got: HashSet<PeerId> = found.iter().map(|p| p.peer).collect();
        let hit = got.intersection(&want).count();
        recall_sum += hit as f64 / want.len() as f64;
        if got == want {
            exact += 1;
        }
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

    // Written by hand to keep the field order (serde_json's map sorts keys);
    // every value is a number, so no escaping is needed.
    let cpu_per_1000 = if args.lookups > 0 {
        cpu_s * 1000.0 / args.lookups as f64
    } else {
        0.0
    };
    let recall_mean = if ok > 0 { recall_sum / ok as f64 } else { 0.0 };
    let line = format!(
        concat!(
            r#"{{"impl":"rust-libp2p","nodes":{},"lookups":{},"ok":{},"#,
            r#""latency_ms_p50":{},"latency_ms_p99":{},"cpu_s":{},"cpu_s_per_1000":{},"#,
            r#""wall_s":{},"concurrency":1,"seed":{},"exact":{},"recall_mean":{},"#,
            r#""requests_per_lookup":{},"idle_cpu_s_per_s":{},"table_fill_min":{},"table_fill_mean":{},"#,
            r#""bootstrap_rounds":{},"setup_s":{}}}"#
        ),
        args.nodes,
        args.lookups,
        ok,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        round3(cpu_s),
        round3(cpu_per_1000),
        round3(wall_s),
        args.seed,
        exact,
        round3(recall_mean),
        round3(find_node as f64 / args.lookups.max(1) as f64),
        round3(idle_cpu_per_s),
        round3(fill_min),
        round3(fill_mean),
        rounds,
        round3(setup_s),
    );
    println!("{line}");
    Ok(())
}

/// Routing-table size of every node.
fn table_sizes(nodes: &[RustPeer]) -> Vec<usize> {
    nodes.iter().map(|n| n.kad_routing_table().len()).collect()
}

/// For each node, its routing-table size over the size it would have if it
/// knew every node: per bucket (index = floor(log2(distance))),
/// min(k, nodes at that distance).
fn table_fills(nodes: &[RustPeer], ids: &[PeerId]) -> Vec<f64> {
    let keys: Vec<KBucketKey<PeerId>> = ids.iter().map(|p| KBucketKey::from(*p)).collect();
    nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let mut per_bucket = [0usize; 256];
            for (j, k) in keys.iter().enumerate() {
                if j != i
                    && let Some(b) = keys[i].distance(k).ilog2()
                {
                    per_bucket[b as usize] += 1;
                }
            }
            let ideal: usize = per_bucket.iter().map(|&n| n.min(K_VALUE.get())).sum();
            node.kad_routing_table().len() as f64 / ideal.max(1) as f64
        })
        .collect()
}

/// Nearest-rank percentile of sorted values, rounded to µs; 0 if empty.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    round3(sorted[rank - 1])
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// User + system CPU time of this whole process (all threads), in seconds.
fn cpu_seconds() -> Result<f64, String> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` points to writable memory of the right type and size;
    // getrusage only writes into it.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return Err(format!("getrusage: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: getrusage returned 0, so it filled the struct (and it was
    // zeroed before, so it is initialised either way).
    let usage = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(secs(usage.ru_utime) + secs(usage.ru_stime))
}
