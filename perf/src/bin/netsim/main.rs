//! `netsim`: named scenarios on the deterministic network simulator
//! (`swarm::virtual_net`): thousands of complete swarms on virtual time,
//! on one thread or (`--threads`) in lookahead windows on several.
//!
//! Prints one JSON object per line: `{"event":"progress",...}` every few
//! seconds of wall time, then `{"event":"summary",...}` with the scenario's
//! figures, the virtual and wall time, the peak memory and the hash of the
//! event trace (the same seed and arguments give the same hash).
//!
//! ```sh
//! cargo run --release -p bandwidth_perf --bin netsim -- ping --nodes 1000 --conns 8 --pings 10
//! cargo run --release -p bandwidth_perf --bin netsim -- gossipsub --nodes 1000 --publishers 10 --loss 0.01
//! ```

mod churn;
mod gossipsub;
mod kad;
mod net_args;
mod nodes;
mod ping;
mod report;

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;

use churn::ChurnArgs;
use gossipsub::GossipArgs;
use kad::KadArgs;
use ping::PingArgs;

/// Per-connection state of thousands of swarms comes and goes all run
/// long, freed on another thread than it was allocated on under
/// `--threads`: mimalloc costs about half of glibc's malloc here.
#[global_allocator]
static ALLOCATOR: MiMalloc = MiMalloc;

/// Scenarios on the deterministic network simulator.
#[derive(Parser)]
#[command(
    version,
    about = "Named scenarios on the deterministic network simulator: thousands of swarms on virtual time, on one or more threads; JSON lines out"
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
    /// A Kademlia network: nodes join through a few seeds one after
    /// another, put records, then look up live peers and get the records
    /// while a fraction of the nodes leaves. Figures: success rates
    /// (lookup_success_rate, get_success_rate, 1.0 = all) and virtual-time
    /// latency percentiles.
    Kad(KadArgs),
    /// Gossipsub: every node joins one topic and dials K random others;
    /// once the meshes formed, P publishers take turns publishing. Figures:
    /// delivery_rate (1.0 = every message at every node but its
    /// publisher), latency p50/p99 (virtual ms), duplicates and forwards
    /// per message, IDONTWANT sent and honoured.
    Gossipsub(GossipArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().scenario {
        Scenario::Ping(args) => ping::run(args),
        Scenario::Churn(args) => churn::run(args),
        Scenario::Kad(args) => kad::run(args),
        Scenario::Gossipsub(args) => gossipsub::run(args),
    }
}
