//! Gossipsub throughput benchmark, rust-libp2p side (issue 14): N rust-libp2p
//! 0.57 gossipsub nodes in this one process on 127.0.0.1 QUIC, a random
//! connected topology, one topic, a fixed publish rate of fixed-size
//! messages for a fixed time; prints one JSON line.
//!
//! Run: `cargo run --release -p rust-libp2p-peer --bin rust_gossip_bench -- --nodes 50 --degree 8 --rate 1000 --size 1024 --duration-s 30 --seed 1`
//! (or `perf/bench/gossip_compare.sh`, which runs ours next to it).
//!
//! Set-up (not measured):
//! 1. N nodes, each a `RustPeer` (own thread, current-thread tokio runtime,
//!    its own UDP socket), identities derived from `--seed`, stock
//!    multistream-select V1, ping every hour (so that ping traffic does not
//!    count), idle timeout 10 min. Gossipsub at libp2p-gossipsub's defaults
//!    (StrictSign with the host key, D = 6 / 5 / 12, heartbeat 1 s, flood
//!    publish, source+seqno ids, no application validation, queue 5,000)
//!    except the first heartbeat after 1 s instead of 5 s.
//! 2. Topology: a random Hamiltonian cycle (so the graph is connected), then
//!    random extra edges between nodes with fewer than `--degree` peers until
//!    no such pair is left; the lower-numbered node of an edge dials. Every
//!    node ends with `--degree` peers (or one fewer when N × degree is odd or
//!    the random fill gets stuck; `degree_min` / `degree_mean` say).
//! 3. Every node subscribes to one topic; then wait (at most 20 s) until every
//!    mesh has at least min(D_lo, the node's peers) peers.
//!
//! Measured: `--rate` messages per second for `--duration-s` seconds,
//! `--size` bytes each. Publishers rotate: message k is published by node
//! k mod N, so every node publishes and every publish has N − 1 receivers.
//! Each node has its own publisher thread that sleeps until its messages'
//! slots (t0 + k / rate), so a busy node delays only its own publishes; the
//! publish is the blocking `gossip_publish` call. A message's first 8 bytes
//! are k (u64 LE), the next 8 the send time in ns since a process-wide
//! `Instant` taken just before the call (same clock at every receiver); the
//! rest is zero. A receiver thread per node reads every delivered message.
//! After the last publish, wait until no delivery happened for 1 s (at most
//! `--drain-s`).
//!
//! * `delivery_rate`: distinct (message, receiver) pairs delivered over
//!   `messages` × (N − 1), where `messages` counts successful publishes.
//! * `latency_ms_p50` / `_p99`: nearest-rank over all deliveries.
//! * `cpu_s`: `getrusage(RUSAGE_SELF)` user + system, all threads, from the
//!   first publish to the end of the drain; `wall_s` the same span.
//! * `peak_rss_bytes`: `ru_maxrss` of the process (set-up included).
//!
//! `--stalled` adds one extra peer in a child process (this binary with
//! `--stalled-child`): it dials node 0, subscribes, waits until node 0 has it
//! in its mesh, then stops polling its swarm (`RustPeer::pause_swarm`): the
//! connection stays up and QUIC keeps acknowledging, but nothing reads the
//! gossipsub stream once the small per-connection buffers are full, so flow
//! control stops node 0's writes to it. In this mode node 0 publishes every
//! message (so all of them are due to the stalled peer) and every
//! `--rss-interval-ms` a JSON line `{"impl":"rust-libp2p","mode":"stalled",
//! "t_s":..,"rss_bytes":..,"published":..,"slow_peer_events":..}` reports
//! this process's RSS (`/proc/self/statm`; the stalled peer's own buffers
//! are in the child and not counted). The summary line follows with
//! `"stalled":true`, `rss_start_bytes` and `rss_end_bytes`.

use std::{
    collections::HashSet,
    io::{BufRead, BufReader, Read, Write},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use rust_libp2p_peer::{
    GossipConfig, Multiaddr, MultistreamVersion, PeerConfig, PeerEvent, RustPeer, identity,
};

const TOPIC: &str = "gossip-bench";
/// Bytes of header in each message: sequence number and send time.
const HEADER: usize = 16;

/// Gossipsub benchmark: N rust-libp2p 0.57 gossipsub nodes in one process
/// over loopback QUIC, a random topology with `--degree` peers each, one
/// topic, `--rate` messages/s of `--size` bytes for `--duration-s` seconds;
/// prints one JSON line (see the source header for what is measured).
#[derive(Parser, Debug)]
#[command(name = "rust_gossip_bench")]
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
    /// Seed of identities and topology.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Upper bound on the wait for late deliveries after the last publish.
    #[arg(long, default_value_t = 10)]
    drain_s: u64,
    /// Add a peer (child process) that subscribes and then stops reading;
    /// node 0 publishes everything; report RSS over time.
    #[arg(long)]
    stalled: bool,
    /// Interval of the RSS lines in `--stalled` mode.
    #[arg(long, default_value_t = 1000)]
    rss_interval_ms: u64,
    /// Internal: run as the stalled peer, dialing this address.
    #[arg(long, hide = true)]
    stalled_child: Option<Multiaddr>,
}

fn main() {
    let args = Args::parse();
    let r = match &args.stalled_child {
        Some(addr) => stalled_child(addr),
        None => run(&args),
    };
    if let Err(e) = r {
        eprintln!("rust_gossip_bench: {e}");
        std::process::exit(1);
    }
}

fn gossip_config() -> GossipConfig {
    GossipConfig {
        // Only the first heartbeat is earlier than libp2p-gossipsub's
        // default, to shorten set-up; nothing else differs.
        heartbeat_initial_delay: Duration::from_secs(1),
        ..GossipConfig::default()
    }
}

fn peer_config(keypair: identity::Keypair) -> PeerConfig {
    PeerConfig {
        keypair: Some(keypair),
        ping_interval: Duration::from_secs(3600),
        multistream_version: MultistreamVersion::V1,
        idle_connection_timeout: Duration::from_secs(600),
        gossipsub: Some(gossip_config()),
        ..PeerConfig::default()
    }
}

/// Edges of a random connected graph in which every node has `degree`
/// neighbours where possible (see the header).
fn topology(n: usize, degree: usize, rng: &mut StdRng) -> Vec<(usize, usize)> {
    fn add(a: usize, b: usize, edges: &mut HashSet<(usize, usize)>, deg: &mut [usize]) {
        if a != b && edges.insert((a.min(b), a.max(b))) {
            deg[a] += 1;
            deg[b] += 1;
        }
    }
    let mut edges = HashSet::new();
    let mut deg = vec![0usize; n];
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    if n > 2 {
        for i in 0..n {
            add(order[i], order[(i + 1) % n], &mut edges, &mut deg);
        }
    } else if n == 2 {
        add(0, 1, &mut edges, &mut deg);
    }
    // Random fill; bounded so that an unlucky end state cannot loop forever.
    for _ in 0..n * degree * 50 {
        let open: Vec<usize> = (0..n).filter(|&i| deg[i] < degree).collect();
        if open.len() < 2 {
            break;
        }
        let a = open[rng.random_range(0..open.len())];
        let b = open[rng.random_range(0..open.len())];
        add(a, b, &mut edges, &mut deg);
    }
    let mut edges: Vec<_> = edges.into_iter().collect();
    edges.sort_unstable();
    edges
}

fn run(args: &Args) -> Result<(), String> {
    if args.nodes < 2 {
        return Err("--nodes must be at least 2".to_string());
    }
    if args.size < HEADER {
        return Err(format!("--size must be at least {HEADER}"));
    }
    if args.rate == 0 {
        return Err("--rate must be positive".to_string());
    }
    let n = args.nodes;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let setup_start = Instant::now();

    // 1. Nodes.
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        let mut secret: [u8; 32] = rng.random();
        let keypair =
            identity::Keypair::ed25519_from_bytes(&mut secret).map_err(|e| format!("key: {e}"))?;
        nodes.push(RustPeer::try_spawn(peer_config(keypair))?);
    }
    let addrs: Vec<Multiaddr> = nodes
        .iter()
        .map(|p| p.dial_addr().ok_or("a node has no listen address"))
        .collect::<Result<_, _>>()?;

    // 2. Topology.
    let edges = topology(n, args.degree, &mut rng);
    let mut deg = vec![0usize; n];
    for &(a, b) in &edges {
        nodes[a]
            .connect(addrs[b].clone(), Duration::from_secs(10))
            .map_err(|e| format!("connect {a} -> {b}: {e}"))?;
        deg[a] += 1;
        deg[b] += 1;
    }

    // 3. Subscriptions and meshes.
    for p in &nodes {
        p.gossip_subscribe(TOPIC)?;
    }
    // D_lo, or all of a node's peers when it has fewer.
    let want_mesh = |i: usize| 5.min(deg[i]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut mesh_sizes;
    loop {
        mesh_sizes = nodes
            .iter()
            .map(|p| p.gossip_mesh_peers(TOPIC).len())
            .collect::<Vec<_>>();
        let ready = mesh_sizes
            .iter()
            .enumerate()
            .all(|(i, &m)| m >= want_mesh(i));
        if ready || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "set-up: {} nodes, {} edges, mesh sizes min {} max {}",
        n,
        edges.len(),
        mesh_sizes.iter().min().unwrap_or(&0),
        mesh_sizes.iter().max().unwrap_or(&0)
    );

    // The stalled peer, in a child process so that its buffers are not in
    // this process's RSS.
    let mut child = None;
    if args.stalled {
        child = Some(start_stalled_child(&addrs[0])?);
        eprintln!("stalled peer is connected, subscribed and paused");
    }
    for p in &nodes {
        p.drain_events();
    }
    let setup_s = setup_start.elapsed().as_secs_f64();

    // 4. Measured: publish, receive, drain.
    let total = args.rate * args.duration_s;
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let last_delivery_ns = Arc::new(AtomicU64::new(0));
    let published = Arc::new(AtomicU64::new(0));
    let rss_start = rss_bytes();
    let cpu_before = cpu_seconds()?;
    let t0 = Instant::now();
    let mut slow_peer_events = 0u64;

    let (results, publish_errors, rss_lines) = std::thread::scope(|s| {
        let receivers: Vec<_> = nodes
            .iter()
            .map(|node| {
                let stop = stop.clone();
                let last = last_delivery_ns.clone();
                s.spawn(move || receive(node, total, epoch, &stop, &last))
            })
            .collect();
        let publishers: Vec<_> = (0..n)
            .filter(|&i| !args.stalled || i == 0)
            .map(|i| {
                let node = &nodes[i];
                let published = published.clone();
                let step = if args.stalled { 1 } else { n as u64 };
                s.spawn(move || {
                    publish_slots(
                        node, i as u64, step, total, args.rate, args.size, t0, epoch, &published,
                    )
                })
            })
            .collect();

        // Stalled mode: sample RSS while publishing.
        let mut rss_lines = Vec::new();
        if args.stalled {
            let interval = Duration::from_millis(args.rss_interval_ms.max(50));
            let end = t0 + Duration::from_secs(args.duration_s);
            let mut next = t0;
            while Instant::now() < end {
                next += interval;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                slow_peer_events += count_slow_peer(&nodes[0]);
                let line = format!(
                    r#"{{"impl":"rust-libp2p","mode":"stalled","t_s":{},"rss_bytes":{},"published":{},"slow_peer_events":{}}}"#,
                    round3(t0.elapsed().as_secs_f64()),
                    rss_bytes(),
                    published.load(Ordering::Relaxed),
                    slow_peer_events
                );
                println!("{line}");
                rss_lines.push(line);
            }
        }

        let publish_errors: Vec<String> = publishers
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
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
        (results, publish_errors, rss_lines)
    });
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu_s = cpu_seconds()? - cpu_before;
    let rss_end = rss_bytes();
    if args.stalled {
        slow_peer_events += count_slow_peer(&nodes[0]);
    }
    if let Some(mut child) = child {
        // Closing its stdin ends it; kill is the fallback.
        drop(child.stdin.take());
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = rss_lines;

    // Evaluation.
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
    let deg_min = deg.iter().min().copied().unwrap_or(0);
    let deg_mean = deg.iter().sum::<usize>() as f64 / n as f64;
    let stalled_fields = if args.stalled {
        format!(
            r#","stalled":true,"rss_start_bytes":{rss_start},"rss_end_bytes":{rss_end},"slow_peer_events":{slow_peer_events}"#
        )
    } else {
        String::new()
    };
    // Written by hand to keep the field order; all values are numbers.
    println!(
        concat!(
            r#"{{"impl":"rust-libp2p","nodes":{},"messages":{},"delivery_rate":{},"#,
            r#""latency_ms_p50":{},"latency_ms_p99":{},"cpu_s":{},"peak_rss_bytes":{},"wall_s":{},"#,
            r#""degree":{},"rate":{},"size":{},"duration_s":{},"seed":{},"publish_errors":{},"#,
            r#""achieved_rate":{},"delivered":{},"degree_min":{},"degree_mean":{},"mesh_min":{},"setup_s":{}{}}}"#
        ),
        n,
        messages,
        round6(delivery_rate),
        percentile_ms(&latencies, 0.50),
        percentile_ms(&latencies, 0.99),
        round3(cpu_s),
        peak_rss_bytes()?,
        round3(wall_s),
        args.degree,
        args.rate,
        args.size,
        args.duration_s,
        args.seed,
        publish_errors.len(),
        round3(messages as f64 / args.duration_s.max(1) as f64),
        delivered,
        deg_min,
        round3(deg_mean),
        mesh_sizes.iter().min().unwrap_or(&0),
        round3(setup_s),
        stalled_fields,
    );
    Ok(())
}

/// Publish messages `first`, `first + step`, ... below `total`, each at its
/// slot `t0 + k / rate`. Returns the errors.
#[allow(clippy::too_many_arguments)]
fn publish_slots(
    node: &RustPeer,
    first: u64,
    step: u64,
    total: u64,
    rate: u64,
    size: usize,
    t0: Instant,
    epoch: Instant,
    published: &AtomicU64,
) -> Vec<String> {
    let mut errors = Vec::new();
    let mut data = vec![0u8; size];
    let mut k = first;
    while k < total {
        let slot = t0 + Duration::from_nanos(k * 1_000_000_000 / rate);
        std::thread::sleep(slot.saturating_duration_since(Instant::now()));
        data[..8].copy_from_slice(&k.to_le_bytes());
        let sent = epoch.elapsed().as_nanos() as u64;
        data[8..16].copy_from_slice(&sent.to_le_bytes());
        match node.gossip_publish(TOPIC, data.clone()) {
            Ok(_) => {
                published.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => errors.push(e),
        }
        k += step;
    }
    errors
}

/// What one receiver saw.
#[derive(Default)]
struct Received {
    distinct: u64,
    latency_us: Vec<u32>,
}

/// Read every message delivered to `node` until `stop`.
fn receive(
    node: &RustPeer,
    total: u64,
    epoch: Instant,
    stop: &AtomicBool,
    last: &AtomicU64,
) -> Received {
    let mut seen = vec![false; total as usize];
    let mut out = Received::default();
    while !stop.load(Ordering::Relaxed) {
        let Some(msg) = node.gossip_next_message(Duration::from_millis(100)) else {
            continue;
        };
        let now = epoch.elapsed().as_nanos() as u64;
        last.fetch_max(now, Ordering::Relaxed);
        // Messages that do not carry our header are someone else's: skip.
        let (Some(k), Some(sent)) = (le_u64(&msg.data, 0), le_u64(&msg.data, 8)) else {
            continue;
        };
        let Some(flag) = seen.get_mut(k as usize) else {
            continue;
        };
        if !*flag {
            *flag = true;
            out.distinct += 1;
            let us = now.saturating_sub(sent) / 1000;
            out.latency_us.push(us.min(u32::MAX as u64) as u32);
        }
    }
    out
}

fn le_u64(data: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = data.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Drain `node`'s events and count the `GossipSlowPeer` ones.
fn count_slow_peer(node: &RustPeer) -> u64 {
    node.drain_events()
        .iter()
        .filter(|e| matches!(e, PeerEvent::GossipSlowPeer { .. }))
        .count() as u64
}

/// Start this binary as the stalled peer and wait until it says it paused.
fn start_stalled_child(target: &Multiaddr) -> Result<std::process::Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .arg("--stalled-child")
        .arg(target.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn the stalled peer: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout of the stalled peer")?;
    // The child bounds its own set-up (20 s) and exits on failure, which
    // ends this read.
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    if line.trim() != "paused" {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("the stalled peer did not start: {line:?}"));
    }
    Ok(child)
}

/// The stalled peer: dial `target`, subscribe, wait until in its mesh,
/// pause the swarm, say "paused", then sit until stdin closes.
fn stalled_child(target: &Multiaddr) -> Result<(), String> {
    let peer = RustPeer::try_spawn(PeerConfig {
        ping_interval: Duration::from_secs(3600),
        multistream_version: MultistreamVersion::V1,
        idle_connection_timeout: Duration::from_secs(600),
        gossipsub: Some(gossip_config()),
        ..PeerConfig::default()
    })?;
    let remote = peer.connect(target.clone(), Duration::from_secs(10))?;
    peer.gossip_subscribe(TOPIC)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !peer.gossip_mesh_peers(TOPIC).contains(&remote) {
        if Instant::now() > deadline {
            return Err("node 0 never joined the stalled peer's mesh".to_string());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    peer.pause_swarm();
    println!("paused");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    // Parent gone or done: stdin reaches EOF.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    Ok(())
}

/// Nearest-rank percentile of sorted µs values, in ms; 0 if empty.
fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    round3(sorted[rank - 1] as f64 / 1000.0)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Resident set size of this process now (`/proc/self/statm`), 0 if unknown.
fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(0) as u64
}

fn rusage() -> Result<libc::rusage, String> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` points to writable memory of the right type and size;
    // getrusage only writes into it.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return Err(format!("getrusage: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: getrusage returned 0, so it filled the struct (and it was
    // zeroed before, so it is initialised either way).
    Ok(unsafe { usage.assume_init() })
}

/// User + system CPU time of this whole process (all threads), in seconds.
fn cpu_seconds() -> Result<f64, String> {
    let usage = rusage()?;
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(secs(usage.ru_utime) + secs(usage.ru_stime))
}

/// Peak resident set size of this process (Linux reports `ru_maxrss` in KiB).
fn peak_rss_bytes() -> Result<u64, String> {
    Ok(rusage()?.ru_maxrss.max(0) as u64 * 1024)
}
