//! `netsim gossipsub`: one topic, every node subscribed, each node dials
//! a few random others; after the meshes form, a few publishers take turns
//! publishing fixed-size messages. Figures: how many (message, node) pairs
//! arrived (`delivery_rate`, 1.0 = every message at every node but its
//! publisher), delivery latency in virtual ms, duplicates per message, and
//! IDONTWANT traffic (`--no-idontwant` turns it off for comparison).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use protocols::gossipsub::{
    GossipCommand, GossipEvent, GossipOutput, GossipRequest, GossipStats, Gossipsub,
    GossipsubConfig, SigningPolicy, content_hash_id,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use swarm::virtual_net::VirtualNet;
use swarm::{Context, Keypair, PluginId, Protocol, ProtocolEvent, SwarmConfig};

use crate::net_args::NetArgs;
use crate::nodes::node_ip;
use crate::report::{Progress, peak_rss_bytes, percentile_ms};

/// The topic every node joins.
const TOPIC: &str = "netsim";

/// The knobs of the gossipsub scenario.
#[derive(Args)]
pub(crate) struct GossipArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Connections each node dials (to distinct random others); a node
    /// ends with about twice as many peers.
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// Nodes that publish (the first ones; nodes are in random order).
    #[arg(long, default_value_t = 10)]
    publishers: usize,
    /// Messages each publisher publishes.
    #[arg(long, default_value_t = 10)]
    messages: usize,
    /// Message size in bytes (IDONTWANT is sent for messages of at least
    /// 1,000 bytes).
    #[arg(long, default_value_t = 2048)]
    size: usize,
    /// Virtual milliseconds between two publishes (publishers take turns).
    #[arg(long, default_value_t = 20.0)]
    interval_ms: f64,
    /// Virtual seconds for the meshes to form before the first publish.
    #[arg(long, default_value_t = 5.0)]
    warmup_s: f64,
    /// Most virtual seconds to wait for deliveries after the last publish.
    #[arg(long, default_value_t = 30.0)]
    drain_s: f64,
    /// Send no IDONTWANT (v1.2) at all, for comparison.
    #[arg(long)]
    no_idontwant: bool,
    /// Each connection's QUIC send window in KiB (0: the swarm's default,
    /// 15 MB). What QUIC holds is beyond IDONTWANT's reach and the queue's
    /// priorities; a small window keeps the backlog in gossipsub's queue.
    #[arg(long, default_value_t = 0)]
    send_window_kib: u64,
    /// StrictNoSign with content-hash ids instead of StrictSign (signing
    /// and verifying cost ~0.1 ms per message per node).
    #[arg(long)]
    unsigned: bool,
}

/// What the recorders saw, shared by all nodes (one thread).
#[derive(Default)]
struct Deliveries {
    /// When message k was published (virtual time), by its index.
    published_at: Vec<Option<Instant>>,
    /// (node, message) pairs delivered.
    seen: HashSet<(u32, u32)>,
    /// Deliveries of a pair already delivered (must stay 0).
    repeated: u64,
    /// Publish-to-delivery latency of every delivery.
    latencies: Vec<Duration>,
}

/// Records every gossipsub message its node delivers: which, and how long
/// after its publish.
struct Recorder {
    node: u32,
    deliveries: Arc<Mutex<Deliveries>>,
}

impl Protocol for Recorder {
    fn name(&self) -> &'static str {
        "netsim-gossip-recorder"
    }

    fn handle_protocol_event(&mut self, ctx: &mut Context<'_>, event: &ProtocolEvent) {
        let Some(GossipEvent::Message { message, .. }) = event.downcast_ref::<GossipEvent>() else {
            return;
        };
        let Some(k) = message
            .data
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as u32)
        else {
            return;
        };
        let now = ctx.now();
        let mut d = self.deliveries.lock().unwrap();
        if !d.seen.insert((self.node, k)) {
            d.repeated += 1;
            return;
        }
        if let Some(Some(at)) = d.published_at.get(k as usize) {
            let latency = now.saturating_duration_since(*at);
            d.latencies.push(latency);
        }
    }
}

/// A node of the scenario: its simulator index and its gossipsub plugin.
struct GossipNode {
    index: usize,
    plugin: PluginId,
}

/// Run a gossipsub command on a node (answered at once on its thread).
fn command(
    net: &mut VirtualNet,
    node: &GossipNode,
    request: GossipRequest,
) -> anyhow::Result<GossipOutput> {
    let (cmd, rx) = GossipCommand::with_channel(request);
    let plugin = node.plugin;
    net.swarm(node.index)
        .with_context(plugin, |ctx| ctx.send_message(plugin, cmd));
    Ok(rx.try_recv()??)
}

fn stats(net: &mut VirtualNet, node: &GossipNode) -> anyhow::Result<GossipStats> {
    match command(net, node, GossipRequest::Stats)? {
        GossipOutput::Stats(s) => Ok(*s),
        other => anyhow::bail!("stats answered {other:?}"),
    }
}

fn add_node(
    net: &mut VirtualNet,
    rng: &mut StdRng,
    i: usize,
    args: &GossipArgs,
    deliveries: &Arc<Mutex<Deliveries>>,
) -> anyhow::Result<GossipNode> {
    let keypair = Keypair::ed25519_from_bytes(rng.random::<[u8; 32]>())?;
    let mut config = SwarmConfig::new(keypair.clone());
    config.seed = Some(rng.random());
    config.idle_connection_timeout = Duration::from_secs(3600);
    if args.send_window_kib > 0 {
        config.send_window = args.send_window_kib * 1024;
    }
    let mut gossip = GossipsubConfig::new(keypair);
    if args.unsigned {
        gossip.signing = SigningPolicy::StrictNoSign;
        gossip.message_id_fn = Arc::new(content_hash_id);
    }
    if args.no_idontwant {
        gossip.idontwant_message_size_threshold = usize::MAX;
    }
    let plugin = Gossipsub::try_new(gossip).map_err(anyhow::Error::msg)?;
    let ip: IpAddr = node_ip(i, args.net.ipv6);
    let mut id = None;
    let index = net.add_swarm_with(config, ip, |s| {
        id = Some(s.add_protocol(Box::new(plugin)));
        s.add_protocol(Box::new(Recorder {
            node: i as u32,
            deliveries: deliveries.clone(),
        }));
    });
    Ok(GossipNode {
        index,
        plugin: id.expect("added"),
    })
}

pub(crate) fn run(args: GossipArgs) -> anyhow::Result<()> {
    let n = args.net.nodes;
    anyhow::ensure!(n > args.conns, "--nodes must exceed --conns");
    anyhow::ensure!(
        (1..=n).contains(&args.publishers),
        "--publishers must be 1..=--nodes"
    );
    anyhow::ensure!(args.size >= 8, "--size must be at least 8 (the index)");
    let mut net = args.net.network();
    let mut rng = StdRng::seed_from_u64(args.net.seed);
    let deliveries = Arc::new(Mutex::new(Deliveries::default()));
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        nodes.push(add_node(&mut net, &mut rng, i, &args, &deliveries)?);
    }
    for node in &nodes {
        command(&mut net, node, GossipRequest::Subscribe(TOPIC.into()))?;
    }
    let mut dials = 0u64;
    for i in 0..n {
        let mut chosen = Vec::with_capacity(args.conns);
        while chosen.len() < args.conns {
            let j = rng.random_range(0..n);
            if j != i && !chosen.contains(&j) {
                chosen.push(j);
            }
        }
        for j in chosen {
            let to = net.dial_addr(nodes[j].index);
            if net.swarm(nodes[i].index).dial(&to, false).is_ok() {
                dials += 1;
            }
        }
    }
    let mut progress = Progress::new();
    net.run_for(Duration::from_secs_f64(args.warmup_s));
    let mut mesh_sizes = Vec::with_capacity(n);
    for node in &nodes {
        if let GossipOutput::Peers(mesh) =
            command(&mut net, node, GossipRequest::MeshPeers(TOPIC.into()))?
        {
            mesh_sizes.push(mesh.len());
        }
    }
    mesh_sizes.sort_unstable();

    // Publish: message k from publisher k mod P, one every interval.
    let total = args.publishers * args.messages;
    deliveries.lock().unwrap().published_at = vec![None; total];
    let step = Duration::from_secs_f64(args.interval_ms / 1000.0);
    let mut published = 0u64;
    let mut publish_failed = 0u64;
    for k in 0..total {
        let node = &nodes[k % args.publishers];
        let mut data = vec![0u8; args.size];
        data[..8].copy_from_slice(&(k as u64).to_le_bytes());
        let at = net.now();
        let request = GossipRequest::Publish {
            topic: TOPIC.into(),
            data,
        };
        match command(&mut net, node, request) {
            Ok(_) => {
                published += 1;
                deliveries.lock().unwrap().published_at[k] = Some(at);
            }
            Err(e) => {
                publish_failed += 1;
                tracing::warn!(message = k, error = %e, "publish failed");
            }
        }
        net.run_for(step);
        progress.tick(&net, || {
            json!({"phase": "publish", "published": published,
                   "deliveries": deliveries.lock().unwrap().seen.len()})
        });
    }
    // Every published message at every node but its publisher.
    let wanted = published as usize * (n - 1);
    let outcome = net.run_until(Duration::from_secs_f64(args.drain_s), |net| {
        let delivered = deliveries.lock().unwrap().seen.len();
        progress.tick(
            net,
            || json!({"phase": "drain", "published": published, "deliveries": delivered}),
        );
        delivered >= wanted
    });

    let mut totals = GossipStats::default();
    for node in &nodes {
        let s = stats(&mut net, node)?;
        totals.duplicates += s.duplicates;
        totals.idontwant_sent += s.idontwant_sent;
        totals.idontwant_honoured += s.idontwant_honoured;
        totals.queue_drops += s.queue_drops;
        totals.forwarded += s.forwarded;
        totals.invalid_messages += s.invalid_messages;
    }
    let mut d = deliveries.lock().unwrap();
    d.latencies.sort_unstable();
    let pct = |p| percentile_ms(&d.latencies, p);
    let per_message = |v: u64| {
        if published == 0 {
            0.0
        } else {
            v as f64 / published as f64
        }
    };
    let mesh_mean = mesh_sizes.iter().sum::<usize>() as f64 / mesh_sizes.len().max(1) as f64;
    println!(
        "{}",
        json!({
            "event": "summary",
            "scenario": "gossipsub",
            "nodes": n,
            "conns_per_node": args.conns,
            "seed": args.net.seed,
            "loss": args.net.loss,
            "idontwant": !args.no_idontwant,
            "signed": !args.unsigned,
            "size": args.size,
            "send_window_kib": args.send_window_kib,
            "finished": outcome.is_done(),
            "virtual_s": net.elapsed().as_secs_f64(),
            "wall_s": progress.wall_s(),
            "peak_rss_bytes": peak_rss_bytes(),
            "trace_hash": format!("{:016x}", net.trace_hash()),
            "replayable": net.replayable(),
            "dials": dials,
            "mesh_min": mesh_sizes.first(),
            "mesh_mean": mesh_mean,
            "mesh_max": mesh_sizes.last(),
            "published": published,
            "publish_failed": publish_failed,
            "deliveries": d.seen.len(),
            "delivery_rate": if wanted == 0 { 0.0 } else { d.seen.len() as f64 / wanted as f64 },
            "repeated_deliveries": d.repeated,
            "latency_p50_ms": pct(0.5),
            "latency_p99_ms": pct(0.99),
            "latency_max_ms": d.latencies.last().map(|l| l.as_secs_f64() * 1000.0),
            "duplicates_per_message": per_message(totals.duplicates),
            "forwards_per_message": per_message(totals.forwarded),
            "idontwant_sent": totals.idontwant_sent,
            "idontwant_honoured": totals.idontwant_honoured,
            "queue_drops": totals.queue_drops,
            "invalid_messages": totals.invalid_messages,
            "datagrams_delivered": net.stats().delivered,
        })
    );
    Ok(())
}
