//! `netsim`: named scenarios on the deterministic network simulator
//! (`swarm::virtual_net`): thousands of complete swarms on one thread and
//! virtual time.
//!
//! Prints one JSON object per line: `{"event":"progress",...}` every few
//! seconds of wall time, then `{"event":"summary",...}` with the scenario's
//! figures, the virtual and wall time, the peak memory and the hash of the
//! event trace (the same seed and arguments give the same hash).
//!
//! ```sh
//! cargo run --release -p bandwidth_perf --bin netsim -- ping --nodes 1000 --conns 8 --pings 10
//! ```

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use protocols::ping::{Ping, PingConfig, PingEvent};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use swarm::virtual_net::{LinkConfig, VirtualNet};
use swarm::{
    ConnId, Context, DialError, Keypair, PeerId, PluginId, Protocol, ProtocolEvent, SwarmConfig,
};

/// Scenarios on the deterministic network simulator.
#[derive(Parser)]
#[command(
    version,
    about = "Named scenarios on the deterministic network simulator: thousands of swarms on one thread and virtual time; JSON lines out"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// N nodes; each dials K random others and pings each connection P
    /// times. Figures: connections made, handshakes failed, RTT p50/p99
    /// (virtual ms).
    Ping(PingArgs),
    /// N nodes ping their peers while nodes leave (dropped with no
    /// goodbye) and new ones join and dial K live nodes, at a fixed rate.
    /// Figures: joins, leaves, failed dials, and leaked connections (to
    /// nodes that left, still open 60 virtual s after the churn stopped:
    /// must be 0).
    Churn(ChurnArgs),
}

#[derive(Args)]
struct ChurnArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Connections each joining node dials.
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// Virtual seconds between one leave + one join.
    #[arg(long, default_value_t = 1.0)]
    churn_interval_s: f64,
    /// Virtual seconds of churn.
    #[arg(long, default_value_t = 60.0)]
    duration_s: f64,
}

/// The network every scenario runs on.
#[derive(Args, Clone)]
struct NetArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Seed of everything random: keys, the swarms' randomness, the link,
    /// the choice of peers.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One-way latency in milliseconds.
    #[arg(long, default_value_t = 20.0)]
    latency_ms: f64,
    /// Extra random one-way delay in [0, jitter) milliseconds.
    #[arg(long, default_value_t = 5.0)]
    jitter_ms: f64,
    /// Probability that a datagram is lost.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Per pair of nodes, an extra fixed one-way delay drawn in
    /// [0, spread) milliseconds (near and far nodes).
    #[arg(long, default_value_t = 0.0)]
    latency_spread_ms: f64,
    /// Each node's uplink in kilobytes per second (0: unlimited).
    #[arg(long, default_value_t = 0)]
    bandwidth_kbps: u64,
    /// Bytes that may queue for a node's uplink before datagrams drop.
    #[arg(long, default_value_t = 65536)]
    queue_bytes: usize,
    /// Give the nodes IPv6 addresses (fd00::/64) instead of IPv4 (10/8).
    #[arg(long)]
    ipv6: bool,
    /// Give up after this much virtual time, in seconds.
    #[arg(long, default_value_t = 600.0)]
    max_virtual_s: f64,
}

impl NetArgs {
    /// The link these arguments describe.
    fn link(&self) -> LinkConfig {
        LinkConfig {
            loss: self.loss,
            latency: Duration::from_secs_f64(self.latency_ms / 1000.0),
            jitter: Duration::from_secs_f64(self.jitter_ms / 1000.0),
            latency_spread: Duration::from_secs_f64(self.latency_spread_ms / 1000.0),
            bandwidth: (self.bandwidth_kbps > 0).then_some(self.bandwidth_kbps * 1000),
            queue: self.queue_bytes,
            ..LinkConfig::clean()
        }
    }
}

#[derive(Args)]
struct PingArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Connections each node dials (to distinct random others).
    #[arg(long, default_value_t = 8)]
    conns: usize,
    /// Pings per connection and direction before the scenario ends.
    #[arg(long, default_value_t = 10)]
    pings: usize,
    /// Seconds between pings on a connection.
    #[arg(long, default_value_t = 1.0)]
    interval_s: f64,
}

/// What the recorder plugins saw, shared by all nodes (one thread).
#[derive(Default)]
struct Seen {
    connections: u64,
    dial_failures: u64,
    rtts: Vec<Duration>,
    ping_failures: u64,
}

/// Counts connections, dial failures and ping results on one node.
struct Recorder(Arc<Mutex<Seen>>);

impl Protocol for Recorder {
    fn name(&self) -> &'static str {
        "netsim-recorder"
    }

    fn handle_new_connection(&mut self, _: &mut Context<'_>, _: ConnId, _: PeerId) {
        self.0.lock().unwrap().connections += 1;
    }

    fn handle_dial_failure(&mut self, _: &mut Context<'_>, _: ConnId, _: &DialError) {
        self.0.lock().unwrap().dial_failures += 1;
    }

    fn handle_protocol_event(&mut self, _: &mut Context<'_>, event: &ProtocolEvent) {
        if let Some(ping) = event.downcast_ref::<PingEvent>() {
            let mut seen = self.0.lock().unwrap();
            match ping.result {
                Ok(rtt) => seen.rtts.push(rtt),
                Err(_) => seen.ping_failures += 1,
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().scenario {
        Scenario::Ping(args) => ping(args),
        Scenario::Churn(args) => churn(args),
    }
}

/// Node `i`'s address: 10.x.y.z (unique up to 16 million nodes), or
/// fd00::i with `ipv6`.
fn node_ip(i: usize, ipv6: bool) -> IpAddr {
    let i = i as u32 + 1;
    if ipv6 {
        Ipv6Addr::from(0xfd00_u128 << 112 | u128::from(i)).into()
    } else {
        Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8).into()
    }
}

fn ping(args: PingArgs) -> anyhow::Result<()> {
    let net_args = args.net.clone();
    anyhow::ensure!(net_args.nodes > args.conns, "--nodes must exceed --conns");
    let wall = Instant::now();
    let link = net_args.link();
    let mut net = VirtualNet::new(net_args.seed, link);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut rng = StdRng::seed_from_u64(net_args.seed);
    let mut peers = Vec::with_capacity(net_args.nodes);
    let interval = Duration::from_secs_f64(args.interval_s);
    for i in 0..net_args.nodes {
        peers.push(add_node(&mut net, &mut rng, i, &seen, interval, net_args.ipv6)?.0);
    }
    let mut dials = 0u64;
    for i in 0..net_args.nodes {
        let mut chosen = Vec::with_capacity(args.conns);
        while chosen.len() < args.conns {
            let j = rng.random_range(0..net_args.nodes);
            if j != i && !chosen.contains(&j) {
                chosen.push(j);
            }
        }
        for j in chosen {
            let to = net.dial_addr(peers[j]);
            if net.swarm(peers[i]).dial(&to, true).is_ok() {
                dials += 1;
            }
        }
    }
    // Each connection pings both ways: `pings` each way.
    let wanted = dials * args.pings as u64 * 2;
    let progress = Rc::new(RefCell::new(Instant::now()));
    let outcome = net.run_until(Duration::from_secs_f64(net_args.max_virtual_s), |net| {
        let seen = seen.lock().unwrap();
        let done = seen.rtts.len() as u64 + seen.ping_failures >= wanted;
        let mut last = progress.borrow_mut();
        if last.elapsed() >= Duration::from_secs(3) {
            *last = Instant::now();
            println!(
                "{}",
                json!({
                    "event": "progress",
                    "virtual_s": net.elapsed().as_secs_f64(),
                    "wall_s": wall.elapsed().as_secs_f64(),
                    "connections": seen.connections,
                    "pings": seen.rtts.len(),
                })
            );
        }
        done
    });
    let mut seen = seen.lock().unwrap();
    seen.rtts.sort_unstable();
    let seen = &*seen;
    let pct = |p: f64| {
        seen.rtts
            .get(((seen.rtts.len() as f64 * p) as usize).min(seen.rtts.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
    };
    // Each established connection is counted on both sides.
    let made = seen.connections / 2;
    let failed = dials.saturating_sub(made);
    println!(
        "{}",
        json!({
            "event": "summary",
            "scenario": "ping",
            "nodes": net_args.nodes,
            "conns_per_node": args.conns,
            "seed": net_args.seed,
            "finished": outcome.is_done(),
            "virtual_s": net.elapsed().as_secs_f64(),
            "wall_s": wall.elapsed().as_secs_f64(),
            "peak_rss_bytes": peak_rss_bytes(),
            "trace_hash": format!("{:016x}", net.trace_hash()),
            "replayable": net.replayable(),
            "dials": dials,
            "connections_made": made,
            "handshakes_failed": failed,
            "pings": seen.rtts.len(),
            "pings_failed": seen.ping_failures,
            "rtt_p50_ms": pct(0.5),
            "rtt_p99_ms": pct(0.99),
            "datagrams_delivered": net.stats().delivered,
        })
    );
    Ok(())
}

/// How often churn nodes ping each connection.
const PING_INTERVAL: Duration = Duration::from_secs(1);

/// A seeded node with ping and a recorder; returns its index and the
/// recorder's plugin id (dials made through it report their failures).
fn add_node(
    net: &mut VirtualNet,
    rng: &mut StdRng,
    i: usize,
    seen: &Arc<Mutex<Seen>>,
    interval: Duration,
    ipv6: bool,
) -> anyhow::Result<(usize, PluginId)> {
    let mut config = SwarmConfig::new(Keypair::ed25519_from_bytes(rng.random::<[u8; 32]>())?);
    config.seed = Some(rng.random());
    // Pinged connections stay busy; a long idle timeout keeps the rest.
    config.idle_connection_timeout = Duration::from_secs(3600);
    let mut recorder = None;
    let n = net.add_swarm_with(config, node_ip(i, ipv6), |s| {
        s.add_protocol(Box::new(Ping::new(PingConfig {
            interval,
            ..PingConfig::default()
        })));
        recorder = Some(s.add_protocol(Box::new(Recorder(seen.clone()))));
    });
    Ok((n, recorder.expect("added")))
}

fn churn(args: ChurnArgs) -> anyhow::Result<()> {
    let net_args = args.net;
    anyhow::ensure!(net_args.nodes > args.conns, "--nodes must exceed --conns");
    let wall = Instant::now();
    let link = net_args.link();
    let mut net = VirtualNet::new(net_args.seed, link);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut rng = StdRng::seed_from_u64(net_args.seed);
    let mut live: Vec<(usize, PluginId)> = Vec::new();
    let mut next_ip = 0;
    let mut dials = 0u64;
    let mut dial = |net: &mut VirtualNet,
                    rng: &mut StdRng,
                    live: &[(usize, PluginId)],
                    from: (usize, PluginId)| {
        let others: Vec<usize> = live.iter().map(|l| l.0).filter(|&n| n != from.0).collect();
        for _ in 0..args.conns.min(others.len()) {
            let to = net.dial_addr(others[rng.random_range(0..others.len())]);
            let ok = net
                .swarm(from.0)
                .with_context(from.1, |ctx| ctx.dial(&to, false))
                .is_ok();
            dials += u64::from(ok);
        }
    };
    for _ in 0..net_args.nodes {
        let node = add_node(
            &mut net,
            &mut rng,
            next_ip,
            &seen,
            PING_INTERVAL,
            net_args.ipv6,
        )?;
        next_ip += 1;
        live.push(node);
    }
    for i in 0..live.len() {
        dial(&mut net, &mut rng, &live, live[i]);
    }
    let (mut joins, mut leaves) = (0u64, 0u64);
    let mut left: Vec<PeerId> = Vec::new();
    let step = Duration::from_secs_f64(args.churn_interval_s);
    let steps = (args.duration_s / args.churn_interval_s) as u64;
    for _ in 0..steps {
        net.run_for(step);
        let gone = live.swap_remove(rng.random_range(0..live.len()));
        left.push(net.swarm(gone.0).local_peer_id());
        net.remove_node(gone.0);
        leaves += 1;
        let node = add_node(
            &mut net,
            &mut rng,
            next_ip,
            &seen,
            PING_INTERVAL,
            net_args.ipv6,
        )?;
        next_ip += 1;
        dial(&mut net, &mut rng, &live, node);
        live.push(node);
        joins += 1;
    }
    // Churn stops; QUIC's idle timeout (30 s) must end every connection
    // to a node that left.
    net.run_for(Duration::from_secs(60));
    let leaked: usize = live
        .iter()
        .map(|&(n, _)| {
            let swarm = net.swarm(n);
            left.iter()
                .map(|p| swarm.connections_to(p).len())
                .sum::<usize>()
        })
        .sum();
    let seen = seen.lock().unwrap();
    println!(
        "{}",
        json!({
            "event": "summary",
            "scenario": "churn",
            "nodes": net_args.nodes,
            "seed": net_args.seed,
            "virtual_s": net.elapsed().as_secs_f64(),
            "wall_s": wall.elapsed().as_secs_f64(),
            "peak_rss_bytes": peak_rss_bytes(),
            "trace_hash": format!("{:016x}", net.trace_hash()),
            "replayable": net.replayable(),
            "joins": joins,
            "leaves": leaves,
            "dials": dials,
            "failed_dials": seen.dial_failures,
            "leaked_connections": leaked,
            "pings": seen.rtts.len(),
            "pings_failed": seen.ping_failures,
        })
    );
    Ok(())
}

/// The process's peak resident memory (Linux `VmHWM`), if readable.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
