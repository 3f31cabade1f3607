//! `netsim ping`: N nodes, each dials K random others and pings every
//! connection P times each way.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::net_args::NetArgs;
use crate::nodes::{Seen, add_node};
use crate::report::{Progress, peak_rss_bytes, percentile_ms};

#[derive(Args)]
pub(crate) struct PingArgs {
    #[command(flatten)]
    pub(crate) net: NetArgs,
    /// Connections each node dials (to distinct random others).
    #[arg(long, default_value_t = 8)]
    pub(crate) conns: usize,
    /// Pings per connection and direction before the scenario ends.
    #[arg(long, default_value_t = 10)]
    pub(crate) pings: usize,
    /// Seconds between pings on a connection.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) interval_s: f64,
}

pub(crate) fn run(args: PingArgs) -> anyhow::Result<()> {
    let net_args = args.net.clone();
    anyhow::ensure!(net_args.nodes > args.conns, "--nodes must exceed --conns");
    let mut net = net_args.network();
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
    let mut progress = Progress::new();
    let outcome = net.run_until(Duration::from_secs_f64(net_args.max_virtual_s), |net| {
        let seen = seen.lock().unwrap();
        progress.tick(
            net,
            || json!({"connections": seen.connections, "pings": seen.rtts.len()}),
        );
        seen.rtts.len() as u64 + seen.ping_failures >= wanted
    });
    let mut seen = seen.lock().unwrap();
    seen.rtts.sort_unstable();
    let seen = &*seen;
    let pct = |p| percentile_ms(&seen.rtts, p);
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
            "wall_s": progress.wall_s(),
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
