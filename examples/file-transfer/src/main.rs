//! `file-transfer`: serve the files of a directory, or fetch one. Each
//! transfer runs on a thread of its own (see the library's docs).
//!
//! Serve in one terminal, fetch from another:
//!
//! ```text
//! $ cargo run --release -p file-transfer -- serve ./public
//! Listening on /ip4/127.0.0.1/udp/51234/quic-v1/p2p/12D3KooW…
//! $ cargo run --release -p file-transfer -- get /ip4/127.0.0.1/udp/51234/quic-v1/p2p/12D3KooW… big.iso ./big.iso
//! big.iso: 1073741824 bytes in 2.1 s (487.6 MiB/s)
//! ```
//!
//! `get` writes to `OUT.part` and renames it to OUT once every byte has
//! arrived. `RUST_LOG=debug` shows the swarm's logs on stderr. Exit codes:
//! see [`Failure`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use file_transfer::{FetchError, FileServer, PROTOCOL, check_name, fetch};
use swarm::multistream::MultistreamError;
use swarm::{
    ConnId, DialError, HandleError, Multiaddr, OpenStreamError, Runtime, SwarmConfig, SwarmHandle,
    identity,
};

/// The command line.
#[derive(Parser)]
#[command(
    about = "Serve the files of a directory over /file-transfer/1.0.0, or fetch one",
    after_help = "Exit codes: 0 ok, 1 the server refused (no such file), 2 bad usage, \
                  3 no connection or no answer in time, 4 wrong peer id, 5 the peer does \
                  not support /file-transfer/1.0.0, 6 the transfer failed"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What to do.
#[derive(Subcommand)]
enum Command {
    /// Serve the files directly in DIR and print the address to dial.
    Serve {
        /// The directory to serve.
        dir: PathBuf,
        /// The QUIC address to listen on.
        #[arg(default_value = "/ip4/127.0.0.1/udp/0/quic-v1")]
        addr: Multiaddr,
    },
    /// Fetch the file NAME and write it to OUT.
    Get {
        /// The server's address; with /p2p/PEER_ID, the server must prove it.
        addr: Multiaddr,
        /// The file's name in the served directory (no '/', '\', '..').
        name: String,
        /// Where to write the file.
        out: PathBuf,
        /// Seconds to wait for the connection, and for each step of the transfer.
        #[arg(long, default_value = "10", value_parser = seconds)]
        timeout: Duration,
        /// Receive at most this many bytes per second (a slow reader).
        #[arg(long, value_name = "BYTES_PER_SEC")]
        limit_rate: Option<u64>,
    },
}

/// Why the program failed. Each reason has its own exit code.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// Exit 1: the server refused (no such file, or a bad name).
    #[error("{0}")]
    Remote(String),
    /// Exit 2: a bad name, directory or address.
    #[error("{0}")]
    Usage(String),
    /// Exit 3: no connection, or no answer in time.
    #[error("{0}")]
    NoAnswer(String),
    /// Exit 4: the peer is not the one named by `/p2p/…`.
    #[error("{0}")]
    WrongPeer(DialError),
    /// Exit 5: the peer does not support the protocol.
    #[error("the peer does not support {PROTOCOL}")]
    Refused,
    /// Exit 6: the transfer failed (cut short, disk error, …).
    #[error("{0}")]
    Failed(String),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Remote(_) => 1,
            Failure::Usage(_) => 2,
            Failure::NoAnswer(_) => 3,
            Failure::WrongPeer(_) => 4,
            Failure::Refused => 5,
            Failure::Failed(_) => 6,
        }
    }
}

impl From<FetchError> for Failure {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Remote(reason) => Failure::Remote(format!("the server refused: {reason}")),
            FetchError::Name(e) => Failure::Usage(e.to_string()),
            FetchError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                Failure::NoAnswer(format!("the transfer stalled: {e}"))
            }
            e => Failure::Failed(e.to_string()),
        }
    }
}

fn main() -> ExitCode {
    // Logs go to stderr, and only if RUST_LOG asks for them.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let result = match Cli::parse().command {
        Command::Serve { dir, addr } => serve(&dir, &addr),
        Command::Get {
            addr,
            name,
            out,
            timeout,
            limit_rate,
        } => get(&addr, &name, &out, timeout, limit_rate),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("file-transfer: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

/// `file-transfer serve`: serve until killed.
fn serve(dir: &Path, addr: &Multiaddr) -> Result<(), Failure> {
    // 1. The plugin: it hands every stream to a thread of its own.
    let plugin =
        FileServer::new(dir).map_err(|e| Failure::Usage(format!("{}: {e}", dir.display())))?;
    // 2. A swarm with a fresh identity and the plugin.
    let config = SwarmConfig::new(identity::generate_keypair());
    let mut runtime = Runtime::new(config).map_err(|e| Failure::Failed(e.to_string()))?;
    runtime.add_protocol(Box::new(plugin));
    // 3. Listen, say where (the only line on stdout), serve until killed.
    let addr = runtime
        .listen(addr)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    println!(
        "Listening on {addr}/p2p/{}",
        runtime.swarm().local_peer_id()
    );
    runtime.run().map_err(|e| Failure::Failed(e.to_string()))
}

/// `file-transfer get`: fetch `name` into `out`.
fn get(
    addr: &Multiaddr,
    name: &str,
    out: &Path,
    timeout: Duration,
    limit_rate: Option<u64>,
) -> Result<(), Failure> {
    // 1. Refuse a bad name before touching the network.
    check_name(name).map_err(|e| Failure::Usage(e.to_string()))?;
    // 2. A swarm on its own thread, with no plugin: this side only asks,
    //    and moves the bytes on this thread.
    let mut config = SwarmConfig::new(identity::generate_keypair());
    config.limits.handshake_timeout = timeout;
    let runtime = Runtime::new(config).map_err(|e| Failure::Failed(e.to_string()))?;
    let (handle, thread) = runtime
        .spawn()
        .map_err(|e| Failure::Failed(e.to_string()))?;
    // 3. Connect and open the stream.
    let conn = connect(&handle, addr, timeout)?;
    let mut stream = match handle.open_stream(conn, PROTOCOL, timeout) {
        Ok(stream) => stream,
        Err(HandleError::Failed(OpenStreamError::Negotiation(MultistreamError::Refused {
            ..
        }))) => {
            return Err(Failure::Refused);
        }
        Err(HandleError::Failed(e)) => return Err(Failure::Failed(e.to_string())),
        Err(e) => return Err(Failure::NoAnswer(e.to_string())),
    };
    stream.set_timeout(Some(timeout));
    // 4. Copy the file into OUT.part, through a buffer the copy fills
    //    straight from the stream; rename it to OUT once it is whole.
    let part = out.with_extension(match out.extension() {
        Some(ext) => format!("{}.part", ext.to_string_lossy()),
        None => "part".into(),
    });
    let file = File::create(&part)
        .map_err(|e| Failure::Usage(format!("cannot create {}: {e}", part.display())))?;
    let mut writer = BufWriter::with_capacity(256 * 1024, RateLimited::new(file, limit_rate));
    let started = Instant::now();
    let fetched = fetch(stream, name, &mut writer);
    drop(writer);
    let result = match fetched {
        Ok(len) => std::fs::rename(&part, out)
            .map(|()| report(name, len, started.elapsed()))
            .map_err(|e| Failure::Failed(format!("cannot write {}: {e}", out.display()))),
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e.into())
        }
    };
    // 5. Close the connection politely and let the swarm thread end.
    let _ = handle.shutdown(0);
    let _ = thread.join();
    result
}

/// One line on stderr about a finished transfer.
fn report(name: &str, len: u64, took: Duration) {
    let mib_per_s = len as f64 / (1 << 20) as f64 / took.as_secs_f64().max(1e-9);
    eprintln!("{name}: {len} bytes in {took:.1?} ({mib_per_s:.1} MiB/s)");
}

/// Dial `addr` and wait for the handshake to finish.
fn connect(handle: &SwarmHandle, addr: &Multiaddr, timeout: Duration) -> Result<ConnId, Failure> {
    // The swarm's own handshake timeout answers first; the extra second
    // only guards against a swarm that does not answer at all.
    match handle.dial(addr, false, timeout + Duration::from_secs(1)) {
        Ok(conn) => Ok(conn),
        Err(HandleError::Failed(e @ DialError::WrongPeerId { .. })) => Err(Failure::WrongPeer(e)),
        Err(HandleError::Failed(e @ DialError::UnsupportedAddress(_))) => {
            Err(Failure::Usage(e.to_string()))
        }
        Err(HandleError::Failed(e)) => {
            Err(Failure::NoAnswer(format!("cannot connect to {addr}: {e}")))
        }
        Err(e) => Err(Failure::NoAnswer(format!("cannot connect to {addr}: {e}"))),
    }
}

/// A writer that takes at most `rate` bytes per second (none: no limit).
/// The copy that feeds it, and so the stream, goes no faster.
struct RateLimited<W> {
    inner: W,
    rate: Option<u64>,
    started: Instant,
    written: u64,
}

impl<W> RateLimited<W> {
    fn new(inner: W, rate: Option<u64>) -> Self {
        Self {
            inner,
            rate: rate.filter(|&r| r > 0),
            started: Instant::now(),
            written: 0,
        }
    }
}

impl<W: Write> Write for RateLimited<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        if let Some(rate) = self.rate {
            // Sleep until the bytes so far are due at `rate`.
            let due = self.started + Duration::from_secs_f64(self.written as f64 / rate as f64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Parse a number of seconds (`0.5`, `10`).
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{e}"))
}
