//! `echo`: the `/echo/1.0.0` example. The plugin is `src/lib.rs`; this is
//! the program around it: a listener, and a dialer that sends a text and
//! prints the echo.
//!
//! Serve in one terminal, dial from another:
//!
//! ```text
//! $ cargo run -p echo -- listen
//! Listening on /ip4/127.0.0.1/udp/51234/quic-v1/p2p/12D3KooW…
//! $ cargo run -p echo -- dial /ip4/127.0.0.1/udp/51234/quic-v1/p2p/12D3KooW… "hello"
//! hello
//! ```
//!
//! `RUST_LOG=debug` shows the swarm's logs on stderr. Exit codes: see
//! [`Failure`].

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use echo::{Echo, PROTOCOL};
use swarm::multistream::MultistreamError;
use swarm::{
    ConnId, DialError, HandleError, Multiaddr, OpenStreamError, Runtime, SwarmConfig, SwarmHandle,
    identity,
};

/// The command line.
#[derive(Parser)]
#[command(
    about = "The /echo/1.0.0 example: serve it, or send a text and print the echo",
    after_help = "Exit codes: 0 ok, 2 bad usage, 3 no connection or no answer in time, \
                  4 wrong peer id, 5 the peer does not support /echo/1.0.0, 6 the stream failed"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What to do.
#[derive(Subcommand)]
enum Command {
    /// Serve /echo/1.0.0 and print the address to dial.
    Listen {
        /// The QUIC address to listen on.
        #[arg(default_value = "/ip4/127.0.0.1/udp/0/quic-v1")]
        addr: Multiaddr,
    },
    /// Send TEXT to a listener and print what comes back.
    Dial {
        /// The listener's address; with /p2p/PEER_ID, the peer must prove it.
        addr: Multiaddr,
        /// The text to send.
        text: String,
        /// Seconds to wait for the connection, and then for the echo.
        #[arg(long, default_value = "10", value_parser = seconds)]
        timeout: Duration,
    },
}

/// Why the program failed. Each reason has its own exit code.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// Exit 2: the address cannot be used.
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
    /// Exit 6: anything else (the stream broke, the runtime did not start).
    #[error("{0}")]
    Failed(String),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::NoAnswer(_) => 3,
            Failure::WrongPeer(_) => 4,
            Failure::Refused => 5,
            Failure::Failed(_) => 6,
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::TimedOut => Failure::NoAnswer(format!("no echo in time: {e}")),
            _ => Failure::Failed(e.to_string()),
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
        Command::Listen { addr } => listen(&addr),
        Command::Dial {
            addr,
            text,
            timeout,
        } => dial(&addr, &text, timeout),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("echo: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

/// `echo listen`: serve until killed.
fn listen(addr: &Multiaddr) -> Result<(), Failure> {
    // 1. A swarm with a fresh identity and the echo plugin.
    let config = SwarmConfig::new(identity::generate_keypair());
    let mut runtime = Runtime::new(config).map_err(|e| Failure::Failed(e.to_string()))?;
    runtime.add_protocol(Box::new(Echo));
    // 2. Listen. Port 0 resolves to a real port here.
    let addr = runtime
        .listen(addr)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    // 3. Say where to dial us (the only line on stdout), then serve on this
    //    thread until the process is killed.
    println!(
        "Listening on {addr}/p2p/{}",
        runtime.swarm().local_peer_id()
    );
    runtime.run()?;
    Ok(())
}

/// `echo dial`: send `text`, print the echo.
fn dial(addr: &Multiaddr, text: &str, timeout: Duration) -> Result<(), Failure> {
    // 1. A swarm on its own thread, with no plugin: this side only dials,
    //    and uses the stream from this thread.
    let mut config = SwarmConfig::new(identity::generate_keypair());
    config.limits.handshake_timeout = timeout;
    let runtime = Runtime::new(config).map_err(|e| Failure::Failed(e.to_string()))?;
    let (handle, thread) = runtime.spawn()?;
    // 2. Connect. With /p2p/<id> in the address, the TLS handshake fails
    //    unless the listener proves that identity.
    let conn = connect(&handle, addr, timeout)?;
    // 3. Open a stream; multistream-select settles the protocol first.
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
    // 4. Send the text and finish our side: the listener sees the end and
    //    finishes its side after the last echoed byte.
    stream.set_timeout(Some(timeout));
    stream.write_all(text.as_bytes())?;
    stream.finish()?;
    // 5. Read the echo to its end and print it exactly.
    let mut echoed = Vec::new();
    stream.read_to_end(&mut echoed)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&echoed)?;
    stdout.write_all(b"\n")?;
    // 6. Close the connection politely and let the swarm thread end.
    drop(stream);
    let _ = handle.shutdown(0);
    let _ = thread.join();
    Ok(())
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

/// Parse a number of seconds (`0.5`, `10`).
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{e}"))
}
