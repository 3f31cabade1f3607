//! The command line and the output of the bench programs in `perf/bench/`,
//! shaped like `bandwidth_perf`'s so that `compare.sh` drives them all the
//! same way:
//!
//! - server: `--run-server --server-address IP:PORT`; prints
//!   `Listening on …` on stderr once it listens;
//! - client: `--server-address IP:PORT --transport quic-v1
//!   [--upload-bytes N] [--download-bytes N]`, printing a final JSON line
//!   `{"type":"final","timeSeconds":…,"uploadBytes":…,"downloadBytes":…}`
//!   timed from before dialing;
//! - client, `--mode latency|connections|requests [--iterations N]`:
//!   the same measurements as `bandwidth_perf` (see `ENVIRONMENT` in its
//!   `--help`), with the same JSON lines.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde_json::json;

/// The perf protocol id.
pub const PERF_PROTOCOL: &str = "/perf/1.0.0";

/// Size of the static zero buffer both sides send from.
pub const CHUNK: usize = 256 * 1024;
/// The payload: zeros, sent without copying where the API allows.
pub static ZEROS: [u8; CHUNK] = [0; CHUNK];

/// Most iterations a measuring mode runs.
const MAX_ITERATIONS: u32 = 1_000_000;

const MODES_HELP: &str = "\
Modes (client):
  transfer     one perf run: --upload-bytes up, --download-bytes down
  latency      per iteration a fresh connection and a 1-byte perf run on
               it, timed from the dial to the byte (default 100)
  connections  sequential handshakes: dial, established, close (default 1000)
  requests     sequential 1-byte perf runs, each on a new stream of one
               connection (default 10000)
A 1-byte perf run sends the 8-byte header asking for 1 byte and closes its
side; the server answers with 1 byte and closes. Percentiles are by nearest
rank.";

/// A perf server and client for perf/bench/compare.sh.
#[derive(Debug, Parser)]
#[command(after_help = MODES_HELP)]
pub struct Cli {
    /// Run as a server on --server-address.
    #[arg(long)]
    pub run_server: bool,
    /// The address to listen on (server) or to connect to (client).
    #[arg(long, value_name = "IP:PORT")]
    pub server_address: SocketAddr,
    /// The transport: quic-v1 (tcp where the implementation has it).
    #[arg(long, default_value = "quic-v1")]
    pub transport: String,
    /// Bytes to upload (transfer mode).
    #[arg(long, default_value_t = 0)]
    pub upload_bytes: u64,
    /// Bytes to download (transfer mode).
    #[arg(long, default_value_t = 0)]
    pub download_bytes: u64,
    /// What the client measures.
    #[arg(long, value_enum, default_value_t = Mode::Transfer)]
    pub mode: Mode,
    /// Repetitions of the mode (defaults: see below).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_ITERATIONS as i64))]
    pub iterations: Option<u32>,
}

/// What the client measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// One perf run.
    Transfer,
    /// Fresh connection + 1-byte perf run, per iteration.
    Latency,
    /// Sequential handshakes.
    Connections,
    /// Sequential 1-byte perf runs on one connection.
    Requests,
}

impl Mode {
    /// The mode's name, as the JSON lines print it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Transfer => "transfer",
            Mode::Latency => "latency",
            Mode::Connections => "connections",
            Mode::Requests => "requests",
        }
    }
}

impl Cli {
    /// Parse the command line and check the transport (quic-v1 only).
    pub fn get() -> Self {
        Self::get_with(&["quic-v1"])
    }

    /// Parse the command line; the transport must be one of `supported`.
    pub fn get_with(supported: &[&str]) -> Self {
        let cli = Self::parse();
        if !supported.contains(&cli.transport.as_str()) {
            eprintln!(
                "error: transport {:?} is not supported: use one of {supported:?}",
                cli.transport
            );
            std::process::exit(2);
        }
        cli
    }

    /// Whether the client dials TCP.
    pub fn is_tcp(&self) -> bool {
        self.transport == "tcp"
    }

    /// Iterations of the mode: given, or the mode's default.
    pub fn iterations(&self) -> u32 {
        self.iterations.unwrap_or(match self.mode {
            Mode::Transfer => 1,
            Mode::Latency => 100,
            Mode::Connections => 1000,
            Mode::Requests => 10_000,
        })
    }
}

fn print_line(value: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// The transfer's final line (and the Zig tool's summary on stderr).
pub fn print_final(time: Duration, upload: u64, download: u64) {
    let secs = time.as_secs_f64();
    eprintln!("Transfer took {} nanoseconds", time.as_nanos());
    eprintln!(
        "Speed {:.2} MiB/s",
        (upload + download) as f64 / secs / (1024.0 * 1024.0)
    );
    print_line(json!({
        "type": "final",
        "timeSeconds": secs,
        "uploadBytes": upload,
        "downloadBytes": download,
    }));
}

/// The latency line: nearest-rank median and p99, min and max.
pub fn print_latency(samples: &mut [Duration]) {
    samples.sort_unstable();
    let rank = |p: usize| samples[(p * samples.len()).div_ceil(100).max(1) - 1];
    let (median, p99) = (rank(50), rank(99));
    let (min, max) = (samples[0], samples[samples.len() - 1]);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    eprintln!(
        "Connect + 1-byte round trip over {} connections: median {:.1} µs, p99 {:.1} µs (min {:.1}, max {:.1})",
        samples.len(),
        us(median),
        us(p99),
        us(min),
        us(max)
    );
    print_line(json!({
        "type": "latency",
        "iterations": samples.len(),
        "medianSeconds": median.as_secs_f64(),
        "p99Seconds": p99.as_secs_f64(),
        "minSeconds": min.as_secs_f64(),
        "maxSeconds": max.as_secs_f64(),
    }));
}

/// The line of a rate mode (connections, requests).
pub fn print_rate(mode: Mode, iterations: u32, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    let rate = f64::from(iterations) / secs;
    eprintln!(
        "{}: {iterations} in {secs:.3} s, {rate:.1} per second",
        mode.name()
    );
    print_line(json!({
        "type": mode.name(),
        "iterations": iterations,
        "timeSeconds": secs,
        "perSecond": rate,
    }));
}
