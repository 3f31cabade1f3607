//! `holepunch`: a public relay, and two peers that meet through it and
//! then punch a direct QUIC (or TCP) connection through their NATs.
//!
//! ```text
//! relay$  holepunch relay --listen /ip4/0.0.0.0/udp/4001/quic-v1
//! Listening on /ip4/0.0.0.0/udp/4001/quic-v1/p2p/12D3KooWRelay…
//! b$      holepunch listen --relay /ip4/<relay ip>/udp/4001/quic-v1/p2p/12D3KooWRelay…
//! Listening on /ip4/<relay ip>/udp/4001/quic-v1/p2p/12D3KooWRelay…/p2p-circuit/p2p/12D3KooWB…
//! a$      holepunch dial --relay /ip4/<relay ip>/udp/4001/quic-v1/p2p/12D3KooWRelay… 12D3KooWB…
//! {"event":"relayed","addr":"…/p2p-circuit/p2p/12D3KooWB…"}
//! {"event":"direct","addr":"/ip4/<b's public ip>/udp/<port>/quic-v1","rtt_ms":21.4}
//! {"event":"ping","rtt_ms":20.9}
//! ```
//!
//! Every role runs identify, ping, AutoNAT v2 (client and server) and the
//! relay client; `relay` adds the relay server, `listen` and `dial` add
//! DCUtR. AutoNAT's verdicts appear as `{"event":"reachable"|"unreachable",
//! "addr":…}` lines. `dial` exits 0 once it pinged over the direct
//! connection, non-zero with a one-line reason on stderr when the punch
//! fails (exit 1) or anything else does (exit 3; 2 is bad usage).
//! `RUST_LOG=debug` shows the swarm's logs on stderr.
//!
//! For TCP, give every role a TCP listen address (`--listen
//! /ip4/0.0.0.0/tcp/0`) and the relay's TCP address: the peers then dial
//! from their listen ports and punch with a TCP simultaneous open.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use protocols::autonat::{
    AutonatClient, AutonatServer, ClientConfig, ClientEvent, IpNetwork, ServerConfig,
};
use protocols::dcutr::{Dcutr, DcutrConfig, DcutrEvent};
use protocols::identify::{Identify, IdentifyConfig};
use protocols::ping::{self, Ping, PingConfig};
use protocols::relay::{
    ConnectVia, RelayClient, RelayClientConfig, RelayClientEvent, RelayServer, RelayServerConfig,
};
use serde_json::json;
use swarm::multiaddr::Protocol as P;
use swarm::{
    ConnId, Multiaddr, PeerId, ProtocolEvent, Runtime, StreamTarget, SwarmConfig, SwarmEvent,
    SwarmHandle, identity,
};

/// The command line.
#[derive(Parser)]
#[command(
    about = "A circuit relay, and peers that meet through it and punch a direct QUIC or TCP \
             connection",
    after_help = "Exit codes: 0 done, 1 the hole punch failed, 2 bad usage, 3 any other failure \
                  (one line on stderr says why)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// A QUIC or TCP address to listen on (repeatable; default
    /// /ip4/0.0.0.0/udp/0/quic-v1). The punch uses the transports listened
    /// on.
    #[arg(long = "listen", global = true)]
    listen: Vec<Multiaddr>,
    /// A network AutoNAT may test though it is not public, e.g.
    /// 192.168.0.0/16 on a LAN (repeatable).
    #[arg(long = "autonat-allow", global = true, value_parser = network)]
    autonat_allow: Vec<IpNetwork>,
    /// Seconds `dial` may take from start to the last ping.
    #[arg(long, global = true, default_value = "60", value_parser = seconds)]
    timeout: Duration,
}

/// The roles.
#[derive(Subcommand)]
enum Command {
    /// A public relay: serves reservations and circuits until stopped;
    /// prints `Listening on <multiaddr>/p2p/<peer id>` per listen address.
    Relay,
    /// Reserve on the relay and wait for peers: prints `Listening on
    /// <relayed address>` (`…/p2p-circuit/p2p/<peer id>`) once reserved.
    Listen {
        /// The relay, with /p2p/PEER_ID.
        #[arg(long)]
        relay: Multiaddr,
    },
    /// Reach PEER_ID through the relay, upgrade to a direct connection and
    /// ping over it.
    Dial {
        /// The relay, with /p2p/PEER_ID.
        #[arg(long)]
        relay: Multiaddr,
        /// The peer to reach (it runs `holepunch listen` on that relay).
        peer: PeerId,
        /// Pings over the direct connection before exiting.
        #[arg(long, default_value = "3")]
        pings: u32,
        /// Then download and upload this many bytes over the direct
        /// connection (perf), far more than a relay would carry.
        #[arg(long, default_value = "0")]
        perf: u64,
    },
}

/// Why `holepunch` failed; each has its own exit code.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// Exit 1: no direct connection.
    #[error("hole punch failed: {0}")]
    Punch(String),
    /// Exit 2: an argument cannot be used.
    #[error("{0}")]
    Usage(String),
    /// Exit 3: anything else.
    #[error("{0}")]
    Failed(String),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Punch(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Failed(_) => 3,
        }
    }
}

fn seconds(s: &str) -> Result<Duration, String> {
    s.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|e| e.to_string())
}

fn network(s: &str) -> Result<IpNetwork, String> {
    let (ip, prefix) = s.split_once('/').ok_or("expected ADDRESS/PREFIX")?;
    let addr = ip.parse().map_err(|e| format!("{ip}: {e}"))?;
    let prefix = prefix.parse().map_err(|e| format!("{prefix}: {e}"))?;
    Ok(IpNetwork::new(addr, prefix))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("holepunch: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// One JSON line on stdout.
fn emit(value: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// A running node of the given role, with its event stream.
struct Node {
    handle: SwarmHandle,
    peer: PeerId,
    listening: Vec<Multiaddr>,
    events: Receiver<SwarmEvent>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Drop for Node {
    /// Close every connection before the process ends, so that the relay
    /// frees our circuit at once instead of after an idle timeout.
    fn drop(&mut self) {
        let _ = self.handle.shutdown(0);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn start(cli: &Cli) -> Result<Node, Failure> {
    let keypair = identity::Keypair::generate_ed25519();
    let mut rt = Runtime::new(SwarmConfig::new(keypair.clone()))
        .map_err(|e| Failure::Failed(e.to_string()))?;
    let mut identify = IdentifyConfig::new(keypair.public());
    identify.agent_version = "holepunch".into();
    rt.add_protocol(Box::new(Identify::new(identify)));
    rt.add_protocol(Box::new(Ping::new(PingConfig::default())));
    rt.add_protocol(Box::new(AutonatServer::new(ServerConfig {
        allowed_networks: cli.autonat_allow.clone(),
        // A dial-back that takes longer is as good as failed here, and the
        // client learns "unreachable" sooner.
        dial_back_timeout: Duration::from_secs(5),
        ..ServerConfig::default()
    })));
    rt.add_protocol(Box::new(AutonatClient::new(ClientConfig {
        allowed_networks: cli.autonat_allow.clone(),
        // One server's word: the example often meets only one or two.
        confirmations: 1,
        probe_interval: Duration::from_secs(2),
        ..ClientConfig::default()
    })));
    rt.add_protocol(Box::new(RelayClient::new(RelayClientConfig::default())));
    match cli.command {
        Command::Relay => {
            rt.add_protocol(Box::new(RelayServer::new(RelayServerConfig::default())));
        }
        Command::Listen { .. } | Command::Dial { .. } => {
            rt.add_protocol(Box::new(Dcutr::new(DcutrConfig::default())));
            rt.add_protocol(Box::new(protocols::perf::PerfServer::new()));
        }
    }
    let mut listen = if cli.listen.is_empty() {
        vec!["/ip4/0.0.0.0/udp/0/quic-v1".parse().expect("a multiaddr")]
    } else {
        cli.listen.clone()
    };
    if let Command::Listen { relay } = &cli.command {
        // Listening through the relay: the relay client reserves on it.
        relay_peer(relay)?;
        listen.push(relay.clone().with(P::P2pCircuit));
    }
    let mut listening = Vec::new();
    for addr in &listen {
        listening.push(
            rt.listen(addr)
                .map_err(|e| Failure::Usage(format!("cannot listen on {addr}: {e}")))?,
        );
    }
    let peer = rt.swarm().local_peer_id();
    let (handle, thread) = rt.spawn().map_err(|e| Failure::Failed(e.to_string()))?;
    let events = handle
        .subscribe(4096)
        .map_err(|e| Failure::Failed(e.to_string()))?;
    Ok(Node {
        handle,
        peer,
        listening,
        events,
        thread: Some(thread),
    })
}

fn run(cli: Cli) -> Result<(), Failure> {
    let node = start(&cli)?;
    match &cli.command {
        Command::Relay => {
            for addr in &node.listening {
                println!("Listening on {}", addr.clone().with(P::P2p(node.peer)));
            }
            serve(&node, None)
        }
        Command::Listen { relay } => {
            let relay_peer = relay_peer(relay)?;
            serve(&node, Some(relay_peer))
        }
        Command::Dial {
            relay,
            peer,
            pings,
            perf,
        } => dial(&node, relay, *peer, (*pings, *perf), cli.timeout),
    }
}

fn relay_peer(relay: &Multiaddr) -> Result<PeerId, Failure> {
    match relay.iter().last() {
        Some(P::P2p(peer)) => Ok(peer),
        _ => Err(Failure::Usage(format!(
            "{relay}: the relay address needs /p2p/PEER_ID"
        ))),
    }
}

/// Print AutoNAT's verdicts; `true` if `event` was one.
fn report_autonat(event: &ProtocolEvent) -> bool {
    match event.downcast_ref::<ClientEvent>() {
        Some(ClientEvent::Reachable { addr, .. }) => {
            emit(json!({"event": "reachable", "addr": addr.to_string()}));
            true
        }
        Some(ClientEvent::Unreachable { addr }) => {
            emit(json!({"event": "unreachable", "addr": addr.to_string()}));
            true
        }
        _ => false,
    }
}

/// Serve until stopped, reporting reservations and verdicts.
fn serve(node: &Node, relay: Option<PeerId>) -> Result<(), Failure> {
    loop {
        let Ok(event) = node.events.recv() else {
            return Err(Failure::Failed("the swarm stopped".into()));
        };
        let SwarmEvent::Protocol(event) = event else {
            continue;
        };
        if report_autonat(&event) {
            continue;
        }
        match event.downcast_ref::<RelayClientEvent>() {
            Some(RelayClientEvent::Reserved {
                relay: r, addrs, ..
            }) if Some(*r) == relay => {
                for addr in addrs {
                    println!("Listening on {}", addr.clone().with(P::P2p(node.peer)));
                }
            }
            Some(RelayClientEvent::ReservationFailed { reason, .. }) => {
                emit(json!({"event": "reservation_failed", "reason": reason}));
            }
            _ => {}
        }
        if let Some(event) = event.downcast_ref::<DcutrEvent>() {
            report_dcutr(node, event);
        }
    }
}

fn report_dcutr(node: &Node, event: &DcutrEvent) {
    match event {
        DcutrEvent::DirectConnectionUpgraded { peer, direct, .. } => {
            let addr = remote_addr(node, *direct).unwrap_or_default();
            emit(json!({"event": "direct", "peer": peer.to_string(), "addr": addr}));
        }
        DcutrEvent::UpgradeFailed { peer, reason } => {
            emit(json!({"event": "punch_failed", "peer": peer.to_string(), "reason": reason}));
        }
    }
}

fn remote_addr(node: &Node, conn: ConnId) -> Option<String> {
    node.handle
        .call(Duration::from_secs(5), move |s| {
            s.with_context(swarm::PluginId::external(), |ctx| {
                ctx.connection_remote_addr(conn)
            })
        })
        .ok()
        .flatten()
        .map(|a| a.to_string())
}

/// The next protocol event of type `T` that `f` accepts, until `deadline`.
fn wait_for<T: 'static, R>(
    node: &Node,
    deadline: Instant,
    mut f: impl FnMut(&T) -> Option<R>,
) -> Result<R, Failure> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = node
            .events
            .recv_timeout(left)
            .map_err(|_| Failure::Failed("timed out".into()))?;
        if let SwarmEvent::Protocol(event) = event {
            report_autonat(&event);
            if let Some(r) = event.downcast_ref::<T>().and_then(&mut f) {
                return Ok(r);
            }
        }
    }
}

/// Reach `peer` through `relay`, wait for DCUtR's direct connection, then
/// `work.0` pings and a perf of `work.1` bytes each way over it.
fn dial(
    node: &Node,
    relay: &Multiaddr,
    peer: PeerId,
    work: (u32, u64),
    timeout: Duration,
) -> Result<(), Failure> {
    let (pings, perf_bytes) = work;
    let deadline = Instant::now() + timeout;
    let relay_peer = relay_peer(relay)?;
    // The relay first: identify tells us our observed address, which DCUtR
    // offers the peer.
    node.handle
        .dial(relay, false, timeout)
        .map_err(|e| Failure::Failed(format!("cannot reach the relay: {e}")))?;
    node.handle
        .send_event(ProtocolEvent::new(
            "holepunch",
            ConnectVia {
                relay: relay.clone(),
                target: peer,
            },
        ))
        .map_err(|e| Failure::Failed(e.to_string()))?;
    let relayed = wait_for::<RelayClientEvent, _>(node, deadline, |e| match e {
        RelayClientEvent::OutboundCircuit { target, conn, .. } if *target == peer => {
            Some(Ok(*conn))
        }
        RelayClientEvent::CircuitFailed { target, reason, .. } if *target == peer => {
            Some(Err(reason.clone()))
        }
        _ => None,
    })?
    .map_err(|reason| Failure::Failed(format!("no circuit through {relay_peer}: {reason}")))?;
    emit(json!({"event": "relayed", "addr": remote_addr(node, relayed).unwrap_or_default()}));
    let direct = wait_for::<DcutrEvent, _>(node, deadline, |e| match e {
        DcutrEvent::DirectConnectionUpgraded {
            peer: p, direct, ..
        } if *p == peer => Some(Ok(*direct)),
        DcutrEvent::UpgradeFailed { peer: p, reason } if *p == peer => Some(Err(reason.clone())),
        _ => None,
    })?;
    let direct = match direct {
        Ok(direct) => direct,
        Err(reason) => {
            // The relayed connection still works (within the relay's
            // limits): show it, then report the failed punch.
            emit(json!({"event": "punch_failed", "reason": reason}));
            let mut pinger = Pinger::open(node, relayed, deadline)?;
            emit(json!({"event": "relayed_ping", "rtt_ms": ms(pinger.ping()?)}));
            return Err(Failure::Punch(reason));
        }
    };
    let addr = remote_addr(node, direct).unwrap_or_default();
    let mut pinger = Pinger::open(node, direct, deadline)?;
    emit(json!({"event": "direct", "addr": addr, "rtt_ms": ms(pinger.ping()?)}));
    for _ in 0..pings {
        emit(json!({"event": "ping", "rtt_ms": ms(pinger.ping()?)}));
    }
    if perf_bytes > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        let report = protocols::perf::run_blocking(
            &node.handle,
            StreamTarget::Conn(direct),
            perf_bytes,
            perf_bytes,
            left,
        )
        .map_err(|e| Failure::Failed(format!("perf over the direct connection: {e}")))?;
        emit(json!({
            "event": "perf",
            "bytes_up": report.bytes_up,
            "bytes_down": report.bytes_down,
            "seconds": report.total_time.as_secs_f64(),
        }));
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Pings on one stream of a connection (the ping protocol echoes every
/// 32 bytes; peers take only a couple of ping streams at once).
struct Pinger {
    stream: swarm::DetachedStream,
}

fn ping_failed(e: &dyn std::fmt::Display) -> Failure {
    Failure::Failed(format!("ping failed: {e}"))
}

impl Pinger {
    fn open(node: &Node, conn: ConnId, deadline: Instant) -> Result<Self, Failure> {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut stream = node
            .handle
            .open_stream(StreamTarget::Conn(conn), ping::PROTOCOL, left)
            .map_err(|e| ping_failed(&e))?;
        stream.set_timeout(Some(left));
        Ok(Self { stream })
    }

    /// One round trip.
    fn ping(&mut self) -> Result<Duration, Failure> {
        let payload: Vec<u8> = (0..ping::PAYLOAD_LEN).map(|i| i as u8 ^ 0x5a).collect();
        let start = Instant::now();
        self.stream
            .write_all(&payload)
            .map_err(|e| ping_failed(&e))?;
        let mut echo = vec![0u8; payload.len()];
        self.stream
            .read_exact(&mut echo)
            .map_err(|e| ping_failed(&e))?;
        let rtt = start.elapsed();
        if echo != payload {
            return Err(Failure::Failed("ping echoed other bytes".into()));
        }
        Ok(rtt)
    }
}
