//! `bandwidth_perf`: a libp2p perf server and client over QUIC.
//!
//! Two interfaces, one program:
//!
//! - the Zig tool's: `bandwidth_perf server` / `bandwidth_perf client`,
//!   configured by environment variables (see `--help` and [`env`](mod@env));
//! - rust-libp2p perf's flags, so libp2p's perf runner can drive it:
//!   `--run-server --server-address IP:PORT`, and
//!   `--server-address IP:PORT --transport quic-v1|tcp --upload-bytes N --download-bytes N`;
//! - `bandwidth_perf loopback`: a server process and a client on 127.0.0.1
//!   in one go.
//!
//! Besides transfers, the client measures latency, handshakes and requests
//! (`MODE`, `ITERATIONS` or `--mode`, `--iterations`) for the benchmarks in
//! `perf/bench/`.

mod client;
mod env;
mod loopback;
mod measure;
mod output;
mod server;

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::env::{ClientMode, ClientSettings, TransferProtocol};

const ENVIRONMENT_HELP: &str = "\
Environment, server:
  PORT               UDP port to listen on (default 54321; 0 picks a free one);
                     TCP is served on the same port number
  LISTEN_IP          IP to listen on (default 0.0.0.0; :: for IPv6)
  SECRET_KEY         host key: Zig format ('b' + base32 of the 32-byte ed25519
                     secret) or the path of a key file. Unset: a key is
                     generated and printed as 'Secret key: …' for reuse.
  The server prints 'Responder peer id: <bafzaa…>', the same id as 12D3Koo…,
  and 'Listening on <multiaddr>/p2p/<12D3Koo…>' per address, on stderr.
  It serves /perf/1.0.0, /libp2p/test/data, ping and identify.

Environment, client:
  RESPONDER_KEY      the server's peer id, bafzaa… or 12D3Koo…
  RESPONDER_KEY_HEX  the server's raw ed25519 public key in hex (used if
                     RESPONDER_KEY is unset). With neither, any peer id is
                     accepted, printed and warned about.
  RESPONDER_IP       (default 127.0.0.1)
  RESPONDER_PORT     (default 54321)
  BYTE_SIZE          bytes to download (default 1048576)
  UPLOAD_SIZE        bytes to upload (default 0; perf only)
                     Sizes: decimal, 0x hex, optionally with KiB, MiB or GiB.
  PROTOCOL           perf (default) or test-data
  TRANSPORT          quic-v1 (default) or tcp (Noise, then Yamux)
  STREAMS            parallel streams on one connection (default 1, at most
                     256); the sizes are totals, split among the streams.
  MODE               what to measure (default transfer):
                       transfer     one transfer of BYTE_SIZE / UPLOAD_SIZE
                       latency      per iteration a fresh connection and a
                                    1-byte perf run on it, timed from the
                                    dial to the byte; prints median and p99
                       connections  sequential handshakes (dial, established,
                                    close); prints connections per second
                       requests     sequential 1-byte perf runs, each on a new
                                    stream of one connection; prints requests
                                    per second
  ITERATIONS         repetitions for latency (default 100), connections
                     (default 1000) and requests (default 10000); at most
                     1000000
  The client prints 'Transfer took <ns> nanoseconds' and 'Speed <x> MiB/s' on
  stderr, and JSON lines on stdout: {\"type\":\"intermediary\",...} each second
  (that second's bytes), then {\"type\":\"final\",...} (the whole run, timed
  from before connecting). It exits non-zero with a one-line reason if the
  peer id does not match, the peer is unreachable, the byte count is short or
  the protocol is refused.
  The measuring modes print one summary line on stderr and one JSON line on
  stdout: {\"type\":\"latency\",\"iterations\":N,\"medianSeconds\":…,
  \"p99Seconds\":…,\"minSeconds\":…,\"maxSeconds\":…} or
  {\"type\":\"connections\"|\"requests\",\"iterations\":N,\"timeSeconds\":…,
  \"perSecond\":…}.

Loopback (bandwidth_perf loopback):
  Starts 'bandwidth_perf server' as a child process on 127.0.0.1 (a free
  port), reads its 'Listening on' line, then runs the client against it:
  first a download of BYTE_SIZE, then an upload of UPLOAD_SIZE (both 1 GiB
  by default; 0 skips that run), each printing the client's usual lines.
  PROTOCOL, STREAMS, MODE and ITERATIONS apply as for the client; the
  server's lines are shown prefixed with '[server] '. The server stops with
  the client.

Both:
  RUST_LOG           log filter for stderr (default warn)";

/// A libp2p perf server and client over QUIC.
#[derive(Debug, Parser)]
#[command(
    name = "bandwidth_perf",
    version,
    after_help = ENVIRONMENT_HELP,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// rust-libp2p perf: run as a server on --server-address.
    #[arg(long)]
    run_server: bool,

    /// rust-libp2p perf: the address to listen on (with --run-server) or
    /// to connect to.
    #[arg(long, value_name = "IP:PORT")]
    server_address: Option<SocketAddr>,

    /// rust-libp2p perf: the transport, quic-v1 or tcp (Noise, Yamux).
    #[arg(long, value_name = "TRANSPORT")]
    transport: Option<String>,

    /// rust-libp2p perf: bytes to upload (default 0).
    #[arg(long, value_name = "N", value_parser = env::parse_size)]
    upload_bytes: Option<u64>,

    /// rust-libp2p perf: bytes to download (default 0).
    #[arg(long, value_name = "N", value_parser = env::parse_size)]
    download_bytes: Option<u64>,

    /// Client: what to measure instead of one transfer: latency,
    /// connections or requests (the MODE variable; see below).
    #[arg(long, value_name = "MODE", value_parser = env::parse_mode)]
    mode: Option<ClientMode>,

    /// Client: repetitions of the --mode (the ITERATIONS variable).
    #[arg(long, value_name = "N", value_parser = env::parse_iterations)]
    iterations: Option<u32>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve perf, test-data, ping and identify (configured by PORT,
    /// LISTEN_IP, SECRET_KEY).
    Server {
        /// Exit when standard input closes (used by `loopback`, so the
        /// server cannot outlive it).
        #[arg(long, hide = true)]
        exit_with_stdin: bool,
    },
    /// Download (and upload) from a server, or measure latency, handshakes
    /// or requests (configured by RESPONDER_*, BYTE_SIZE, UPLOAD_SIZE,
    /// PROTOCOL, STREAMS, MODE, ITERATIONS).
    Client,
    /// Run a server and a client on 127.0.0.1 in one go: 1 GiB down, then
    /// 1 GiB up (BYTE_SIZE, UPLOAD_SIZE, PROTOCOL, STREAMS, MODE,
    /// ITERATIONS).
    Loopback,
}

fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the reason and its causes, joined by ": ".
            eprintln!("bandwidth_perf: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let lookup = env::process_env;
    match cli.command {
        Some(Command::Server { exit_with_stdin }) => {
            if exit_with_stdin {
                server::exit_when_stdin_closes();
            }
            server::run(env::server_settings(&lookup)?)
        }
        Some(Command::Client) => client::run(&env::client_settings(&lookup)?),
        Some(Command::Loopback) => loopback::run(&env::loopback_settings(&lookup)?),
        None => run_with_flags(cli),
    }
}

/// rust-libp2p perf's interface. Environment variables that make sense
/// here still apply: SECRET_KEY for the server, RESPONDER_KEY(_HEX) for
/// the client.
fn run_with_flags(cli: Cli) -> anyhow::Result<()> {
    let Some(address) = cli.server_address else {
        if cli.run_server {
            bail!("--run-server needs --server-address IP:PORT");
        }
        bail!("give a command (server or client) or --server-address IP:PORT; see --help");
    };
    if cli.run_server {
        if cli.transport.is_some()
            || cli.upload_bytes.is_some()
            || cli.download_bytes.is_some()
            || cli.mode.is_some()
            || cli.iterations.is_some()
        {
            bail!("--run-server takes only --server-address");
        }
        let mut settings = env::server_settings(&env::process_env)?;
        settings.listen = address;
        return server::run(settings);
    }
    let transport = match cli.transport.as_deref() {
        Some(t) => env::parse_transport(t).map_err(|e| anyhow::anyhow!("--transport {t}: {e}"))?,
        None => bail!("--transport quic-v1 (or tcp) is required with --server-address"),
    };
    let mode = cli.mode.unwrap_or(ClientMode::Transfer);
    let settings = ClientSettings {
        server: address,
        responder: env::responder(&env::process_env)?,
        download: cli.download_bytes.unwrap_or(0),
        upload: cli.upload_bytes.unwrap_or(0),
        protocol: TransferProtocol::Perf,
        streams: 1,
        mode,
        iterations: cli.iterations.unwrap_or_else(|| mode.default_iterations()),
        transport,
    };
    client::run(&settings).context("perf client")
}
