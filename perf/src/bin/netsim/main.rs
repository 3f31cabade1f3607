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

mod churn;
mod net_args;
mod nodes;
mod ping;
mod report;

use clap::{Parser, Subcommand};

use churn::ChurnArgs;
use ping::PingArgs;

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

fn main() -> anyhow::Result<()> {
    match Cli::parse().scenario {
        Scenario::Ping(args) => ping::run(args),
        Scenario::Churn(args) => churn::run(args),
    }
}
