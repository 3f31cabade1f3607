//! `netsim churn`: nodes leave with no goodbye and new ones join and dial,
//! at a fixed rate, while everyone pings.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use swarm::virtual_net::VirtualNet;
use swarm::{PeerId, PluginId};

use crate::net_args::NetArgs;
use crate::nodes::{Seen, add_node};
use crate::report::{Progress, peak_rss_bytes};

#[derive(Args)]
pub(crate) struct ChurnArgs {
    #[command(flatten)]
    pub(crate) net: NetArgs,
    /// Connections each joining node dials.
    #[arg(long, default_value_t = 4)]
    pub(crate) conns: usize,
    /// Virtual seconds between one leave + one join.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) churn_interval_s: f64,
    /// Virtual seconds of churn.
    #[arg(long, default_value_t = 60.0)]
    pub(crate) duration_s: f64,
}

/// How often churn nodes ping each connection.
const PING_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) fn run(args: ChurnArgs) -> anyhow::Result<()> {
    let net_args = args.net;
    anyhow::ensure!(net_args.nodes > args.conns, "--nodes must exceed --conns");
    let mut progress = Progress::new();
    let mut net = net_args.network();
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
    // Every node, first or joining, gets the next address.
    let ipv6 = net_args.ipv6;
    let mut new_node = |net: &mut VirtualNet, rng: &mut StdRng| {
        let node = add_node(net, rng, next_ip, &seen, PING_INTERVAL, ipv6);
        next_ip += 1;
        node
    };
    for _ in 0..net_args.nodes {
        let node = new_node(&mut net, &mut rng)?;
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
        progress.tick(&net, || {
            let seen = seen.lock().unwrap();
            json!({"joins": joins, "leaves": leaves, "pings": seen.rtts.len()})
        });
        let gone = live.swap_remove(rng.random_range(0..live.len()));
        left.push(net.swarm(gone.0).local_peer_id());
        net.remove_node(gone.0);
        leaves += 1;
        let node = new_node(&mut net, &mut rng)?;
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
            "wall_s": progress.wall_s(),
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
