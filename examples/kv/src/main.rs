//! `kv`: a tiny key-value service over `protocols::request_response`.
//!
//! Serve in one terminal, use it from another:
//!
//! ```text
//! $ cargo run -p kv -- serve
//! Listening on /ip4/127.0.0.1/udp/51234/quic-v1/p2p/12D3KooW…
//! $ cargo run -p kv -- put /ip4/127.0.0.1/udp/51234/quic-v1/p2p/12D3KooW… colour blue
//! $ cargo run -p kv -- get /ip4/127.0.0.1/udp/51234/quic-v1/p2p/12D3KooW… colour
//! blue
//! ```
//!
//! The whole server is one handler closure on `/kv/1.0.0`; the clients send
//! one request each with the blocking `request_response::request`. The
//! messages (see [`Request`]) are small binary records. The store lives in
//! memory, at most [`MAX_ENTRIES`] keys.
//!
//! `RUST_LOG=debug` shows the swarm's logs on stderr. Exit codes: see
//! [`Failure`].

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use protocols::request_response::{self, RequestError, RequestResponse, RequestResponseConfig};
use swarm::{
    Bytes, ConnId, DialError, HandleError, Multiaddr, Runtime, SwarmConfig, SwarmHandle, identity,
};

/// The protocol id.
const PROTOCOL: &str = "/kv/1.0.0";
/// Most keys the server keeps; a `put` of a new key beyond this is declined.
const MAX_ENTRIES: usize = 100_000;

/// The command line.
#[derive(Parser)]
#[command(
    about = "A tiny key-value service over /kv/1.0.0",
    after_help = "Exit codes: 0 ok, 1 no such key, 2 bad usage, 3 no connection or no answer \
                  in time, 4 wrong peer id, 5 the peer does not support /kv/1.0.0, \
                  6 the request failed"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What to do.
#[derive(Subcommand)]
enum Command {
    /// Serve an in-memory store and print the address to dial.
    Serve {
        /// The QUIC address to listen on.
        #[arg(default_value = "/ip4/127.0.0.1/udp/0/quic-v1")]
        addr: Multiaddr,
    },
    /// Store VALUE under KEY.
    Put {
        /// The server's address; with /p2p/PEER_ID, the server must prove it.
        addr: Multiaddr,
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Seconds to wait for the connection, and then for the answer.
        #[arg(long, default_value = "10", value_parser = seconds)]
        timeout: Duration,
    },
    /// Print the value stored under KEY; exit 1 if there is none.
    Get {
        /// The server's address; with /p2p/PEER_ID, the server must prove it.
        addr: Multiaddr,
        /// The key.
        key: String,
        /// Seconds to wait for the connection, and then for the answer.
        #[arg(long, default_value = "10", value_parser = seconds)]
        timeout: Duration,
    },
}

/// A request on the wire: a tag byte, then `P ‖ uvarint(key length) ‖ key ‖
/// value` or `G ‖ key`. The response is `+ ‖ value` (stored, or found; a
/// `put` answers with an empty value) or `-` (no such key).
#[derive(Debug, PartialEq, Eq)]
enum Request {
    /// Store `value` under `key`.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// Look `key` up.
    Get {
        /// The key.
        key: Bytes,
    },
}

impl Request {
    fn encode(&self) -> Vec<u8> {
        match self {
            Request::Put { key, value } => {
                let mut buf = unsigned_varint::encode::usize_buffer();
                let len = unsigned_varint::encode::usize(key.len(), &mut buf);
                [b"P", len, key, value].concat()
            }
            Request::Get { key } => [b"G", &key[..]].concat(),
        }
    }

    /// Parse a request; keys and values are slices of `bytes`, not copies.
    fn decode(bytes: &Bytes) -> Option<Request> {
        match bytes.first()? {
            b'P' => {
                let (key_len, rest) = unsigned_varint::decode::usize(&bytes[1..]).ok()?;
                let start = bytes.len() - rest.len();
                let end = start
                    .checked_add(key_len)
                    .filter(|&end| end <= bytes.len())?;
                Some(Request::Put {
                    key: bytes.slice(start..end),
                    value: bytes.slice(end..),
                })
            }
            b'G' => Some(Request::Get {
                key: bytes.slice(1..),
            }),
            _ => None,
        }
    }
}

/// Why the program failed. Each reason has its own exit code.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// Exit 1: `get` found no such key.
    #[error("no such key")]
    Absent,
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
    /// Exit 6: anything else (the server declined, the stream broke, …).
    #[error("{0}")]
    Failed(String),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Absent => 1,
            Failure::Usage(_) => 2,
            Failure::NoAnswer(_) => 3,
            Failure::WrongPeer(_) => 4,
            Failure::Refused => 5,
            Failure::Failed(_) => 6,
        }
    }
}

impl From<RequestError> for Failure {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Refused(_) => Failure::Refused,
            RequestError::Timeout(_) => Failure::NoAnswer(e.to_string()),
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
        Command::Serve { addr } => serve(&addr),
        Command::Put {
            addr,
            key,
            value,
            timeout,
        } => {
            let request = Request::Put {
                key: key.into(),
                value: value.into(),
            };
            ask(&addr, &request, timeout).map(drop)
        }
        Command::Get { addr, key, timeout } => {
            let request = Request::Get { key: key.into() };
            ask(&addr, &request, timeout).and_then(|value| {
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(&value)
                    .and_then(|()| stdout.write_all(b"\n"))
                    .map_err(|e| Failure::Failed(e.to_string()))
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("kv: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

/// `kv serve`: answer requests until killed.
fn serve(addr: &Multiaddr) -> Result<(), Failure> {
    // 1. The store, owned by the handler. The handler runs on the swarm
    //    thread, one request at a time, so it needs no lock.
    let mut store: HashMap<Bytes, Bytes> = HashMap::new();
    let handler = move |_peer, request: Bytes| {
        Some(match Request::decode(&request)? {
            Request::Put { key, value } => {
                if store.len() >= MAX_ENTRIES && !store.contains_key(&key) {
                    return None; // full: decline
                }
                store.insert(key, value);
                Bytes::from_static(b"+")
            }
            Request::Get { key } => match store.get(&key) {
                Some(value) => [b"+", &value[..]].concat().into(),
                None => Bytes::from_static(b"-"),
            },
        })
    };
    // 2. A swarm with the request/response plugin for /kv/1.0.0.
    let config = SwarmConfig::new(identity::generate_keypair());
    let mut runtime = Runtime::new(config).map_err(|e| Failure::Failed(e.to_string()))?;
    let plugin = RequestResponse::new(PROTOCOL, RequestResponseConfig::default());
    runtime.add_protocol(Box::new(plugin.with_handler(handler)));
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

/// Send one request to the server at `addr`; the value it answers with.
fn ask(addr: &Multiaddr, request: &Request, timeout: Duration) -> Result<Bytes, Failure> {
    // 1. A swarm on its own thread, with no plugin: this side only asks.
    let mut config = SwarmConfig::new(identity::generate_keypair());
    config.limits.handshake_timeout = timeout;
    let runtime = Runtime::new(config).map_err(|e| Failure::Failed(e.to_string()))?;
    let (handle, thread) = runtime
        .spawn()
        .map_err(|e| Failure::Failed(e.to_string()))?;
    // 2. Connect, then send the request and wait for the response.
    let conn = connect(&handle, addr, timeout)?;
    let response = request_response::request(&handle, conn, PROTOCOL, &request.encode(), timeout);
    // 3. Close the connection politely and let the swarm thread end.
    let _ = handle.shutdown(0);
    let _ = thread.join();
    let response = response?;
    match response.first() {
        Some(b'+') => Ok(response.slice(1..)),
        Some(b'-') => Err(Failure::Absent),
        _ => Err(Failure::Failed("malformed response".into())),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_the_wire_format() {
        for request in [
            Request::Put {
                key: "k".into(),
                value: "v".into(),
            },
            Request::Put {
                key: "".into(),
                value: "".into(),
            },
            Request::Put {
                key: "ä".repeat(200).into(),
                value: "P\x00".into(),
            },
            Request::Get { key: "k".into() },
        ] {
            let bytes = Bytes::from(request.encode());
            assert_eq!(Request::decode(&bytes), Some(request));
        }
    }

    #[test]
    fn malformed_requests_are_rejected() {
        for bytes in [&b""[..], b"X", b"P", b"P\x05abc", b"P\xff"] {
            assert_eq!(Request::decode(&Bytes::copy_from_slice(bytes)), None);
        }
    }
}
