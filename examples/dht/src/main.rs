//! `dht`: a Kademlia DHT node (`serve`) and one-shot queries against a
//! DHT reached through one bootstrap node.
//!
//! ```text
//! $ cargo run -p dht -- serve
//! Listening on /ip4/127.0.0.1/udp/51234/quic-v1/p2p/12D3KooW…
//! $ cargo run -p dht -- serve --bootstrap /ip4/127.0.0.1/udp/51234/quic-v1/p2p/12D3KooW…
//! $ cargo run -p dht -- put --bootstrap /ip4/…/p2p/12D3KooW… colour blue
//! $ cargo run -p dht -- get --bootstrap /ip4/…/p2p/12D3KooW… colour
//! blue
//! ```
//!
//! A query runs a client-mode node (it asks, and is never added to anyone's
//! routing table) that learns the network from the bootstrap node, then
//! asks. Record keys are UTF-8 strings used as bytes. Provider keys name
//! content, so `--provide` and `providers` use the SHA-256 multihash of
//! the key's UTF-8 bytes (`0x12 0x20` and the digest, what a CIDv1 `raw`
//! of that string carries): go and js refuse provider keys that are not
//! multihashes.
//!
//! The protocol is `/ipfs/kad/1.0.0` unless `--protocol` names an
//! application DHT. `RUST_LOG=debug` shows the swarm's logs on stderr.
//! Exit codes: see [`Failure`].

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use protocols::identify::{Identify, IdentifyConfig};
use protocols::kad::{KadClient, KadConfig, KadError, Kademlia, Mode, Record};
use swarm::{Multiaddr, PeerId, Runtime, SwarmConfig, identity};

/// The command line.
#[derive(Parser)]
#[command(
    about = "A Kademlia DHT node, and one-shot queries through a bootstrap node",
    after_help = "Exit codes: 0 found (or done), 1 not found, 2 bad usage, 3 any other failure \
                  (one line on stderr says why)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What to do.
#[derive(Subcommand)]
enum Command {
    /// Serve the DHT (server mode) until stopped; prints one
    /// `Listening on <multiaddr>/p2p/<peer id>` line per listen address.
    Serve {
        /// A QUIC address to listen on (repeatable).
        #[arg(long = "listen", default_value = "/ip4/127.0.0.1/udp/0/quic-v1")]
        listen: Vec<Multiaddr>,
        /// A node of the DHT to join through, with /p2p/PEER_ID (repeatable).
        #[arg(long = "bootstrap")]
        bootstrap: Vec<Multiaddr>,
        /// Announce this node as a provider of KEY (repeatable).
        #[arg(long = "provide")]
        provide: Vec<String>,
        /// The DHT's protocol id.
        #[arg(long, default_value = protocols::kad::DEFAULT_PROTOCOL)]
        protocol: String,
    },
    /// Store VALUE under KEY on the peers closest to it.
    Put {
        #[command(flatten)]
        query: QueryArgs,
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Print the value stored under KEY; exit 1 if none is found.
    Get {
        #[command(flatten)]
        query: QueryArgs,
        /// The key.
        key: String,
    },
    /// Print the providers of KEY, one peer id a line; exit 1 if none.
    Providers {
        #[command(flatten)]
        query: QueryArgs,
        /// The key (its SHA-256 multihash is looked up).
        key: String,
    },
    /// Print the addresses of PEER_ID, one multiaddr a line; exit 1 if not
    /// found.
    FindPeer {
        #[command(flatten)]
        query: QueryArgs,
        /// The peer.
        peer: PeerId,
    },
    /// Print the peers closest to KEY, one peer id a line, closest first.
    Closest {
        #[command(flatten)]
        query: QueryArgs,
        /// The key.
        key: String,
    },
}

/// What every query needs.
#[derive(Args)]
struct QueryArgs {
    /// A node of the DHT, with /p2p/PEER_ID.
    #[arg(long)]
    bootstrap: Multiaddr,
    /// The DHT's protocol id.
    #[arg(long, default_value = protocols::kad::DEFAULT_PROTOCOL)]
    protocol: String,
    /// Seconds the whole query may take.
    #[arg(long, default_value = "30", value_parser = seconds)]
    timeout: Duration,
}

/// Why the program failed. Each reason has its own exit code.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// Exit 1: nothing was found.
    #[error("not found")]
    NotFound,
    /// Exit 2: an argument cannot be used.
    #[error("{0}")]
    Usage(String),
    /// Exit 3: anything else (no connection, a timeout, a refusal).
    #[error("{0}")]
    Failed(String),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::NotFound => 1,
            Failure::Usage(_) => 2,
            Failure::Failed(_) => 3,
        }
    }
}

impl From<KadError> for Failure {
    fn from(e: KadError) -> Self {
        match e {
            KadError::NotFound => Failure::NotFound,
            e => Failure::Failed(e.to_string()),
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let result = match Cli::parse().command {
        Command::Serve {
            listen,
            bootstrap,
            provide,
            protocol,
        } => serve(&listen, bootstrap, &provide, protocol),
        Command::Put { query, key, value } => with_client(&query, |client, timeout| {
            let stored = client.put_value(Record::new(key, value), timeout)?;
            println!("stored on {stored} peers");
            Ok(())
        }),
        Command::Get { query, key } => with_client(&query, |client, timeout| {
            let records = client.get_value(key.as_bytes(), timeout)?;
            let record = records.first().ok_or(Failure::NotFound)?;
            println!("{}", String::from_utf8_lossy(&record.value));
            Ok(())
        }),
        Command::Providers { query, key } => with_client(&query, |client, timeout| {
            let providers = client.get_providers(&provider_key(&key), timeout)?;
            if providers.is_empty() {
                return Err(Failure::NotFound);
            }
            for provider in providers {
                println!("{}", provider.peer);
            }
            Ok(())
        }),
        Command::FindPeer { query, peer } => with_client(&query, |client, timeout| {
            let addrs = client.find_peer(peer, timeout)?;
            if addrs.is_empty() {
                return Err(Failure::NotFound);
            }
            for addr in addrs {
                println!("{addr}");
            }
            Ok(())
        }),
        Command::Closest { query, key } => with_client(&query, |client, timeout| {
            let peers = client.get_closest_peers(key.as_bytes(), timeout)?;
            if peers.is_empty() {
                return Err(Failure::NotFound);
            }
            for peer in peers {
                println!("{peer}");
            }
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("dht: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

/// The SHA-256 multihash of `key`'s UTF-8 bytes: the provider key.
fn provider_key(key: &str) -> Vec<u8> {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    [&[0x12, 0x20][..], digest.as_ref()].concat()
}

/// A swarm with identify (so that peers learn which protocols we speak)
/// and Kademlia in `mode`, joining through `bootstrap`.
fn node(
    mode: Mode,
    protocol: String,
    bootstrap: Vec<Multiaddr>,
) -> Result<(Runtime, swarm::PluginId), Failure> {
    if let Some(addr) = bootstrap.iter().find(|a| !has_peer_id(a)) {
        return Err(Failure::Usage(format!(
            "bootstrap address {addr} must end with /p2p/<peer id>"
        )));
    }
    let keypair = identity::generate_keypair();
    let public_key = keypair.public();
    let mut runtime =
        Runtime::new(SwarmConfig::new(keypair)).map_err(|e| Failure::Failed(e.to_string()))?;
    runtime.add_protocol(Box::new(Identify::new(IdentifyConfig::new(public_key))));
    let kad = runtime.add_protocol(Box::new(Kademlia::new(KadConfig {
        protocol,
        mode,
        bootstrap_peers: bootstrap,
        ..KadConfig::default()
    })));
    Ok((runtime, kad))
}

fn has_peer_id(addr: &Multiaddr) -> bool {
    matches!(addr.iter().last(), Some(swarm::multiaddr::Protocol::P2p(_)))
}

/// `dht serve`: listen, join, announce, and serve until killed.
fn serve(
    listen: &[Multiaddr],
    bootstrap: Vec<Multiaddr>,
    provide: &[String],
    protocol: String,
) -> Result<(), Failure> {
    let joining = !bootstrap.is_empty();
    let (mut runtime, kad) = node(Mode::Server, protocol, bootstrap)?;
    let peer = runtime.swarm().local_peer_id();
    let mut lines = Vec::new();
    for addr in listen {
        let addr = runtime
            .listen(addr)
            .map_err(|e| Failure::Usage(e.to_string()))?;
        lines.push(format!("Listening on {addr}/p2p/{peer}"));
    }
    for line in lines {
        println!("{line}");
    }
    // Joining and announcing wait for the network: on a thread of their
    // own, while this one runs the swarm.
    let client = KadClient::new(runtime.handle(), kad);
    let provide: Vec<Vec<u8>> = provide.iter().map(|k| provider_key(k)).collect();
    std::thread::spawn(move || {
        let timeout = Duration::from_secs(60);
        if joining && let Err(e) = client.bootstrap(timeout) {
            eprintln!("dht: bootstrap: {e}");
        }
        for key in provide {
            if let Err(e) = client.start_providing(&key, timeout) {
                eprintln!("dht: providing: {e}");
            }
        }
    });
    runtime.run().map_err(|e| Failure::Failed(e.to_string()))
}

/// Run one query on a client-mode node that joined through
/// `query.bootstrap`, then shut the node down.
fn with_client(
    query: &QueryArgs,
    ask: impl FnOnce(&KadClient, Duration) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let (runtime, kad) = node(
        Mode::Client,
        query.protocol.clone(),
        vec![query.bootstrap.clone()],
    )?;
    let (handle, thread) = runtime
        .spawn()
        .map_err(|e| Failure::Failed(e.to_string()))?;
    let client = KadClient::new(handle.clone(), kad);
    // Learn the network first: a lookup of our own id through the
    // bootstrap node fills the routing table with the peers around us.
    let result = client
        .bootstrap(query.timeout)
        .map_err(|e| Failure::Failed(format!("cannot join through {}: {e}", query.bootstrap)))
        .and_then(|_| ask(&client, query.timeout));
    let _ = handle.shutdown(0);
    let _ = thread.join();
    result
}

/// Parse a number of seconds (`0.5`, `10`).
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}
