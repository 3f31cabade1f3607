//! `ping MULTIADDR [COUNT]`: dial a libp2p peer over QUIC, identify it, and
//! measure COUNT round trips with `/ipfs/ping/1.0.0`.
//!
//! ```text
//! ping /ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooW… 5
//! ```
//!
//! It prints the remote's agent version and protocols, each round-trip
//! time, then min/median/max. It exits 0 only if every ping succeeded;
//! otherwise (wrong PeerId, unreachable address, timeout, failed ping) it
//! exits 1 with a one-line reason on stderr. Logs go to stderr, filtered by
//! `RUST_LOG` (e.g. `RUST_LOG=debug`).

use std::process::ExitCode;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::Parser;
use protocols::identify::{Identify, IdentifyConfig, IdentifyEvent, IdentifyInfo};
use protocols::ping::{Ping, PingConfig, PingError, PingEvent};
use swarm::multiaddr::Protocol as AddrPart;
use swarm::{ConnId, Keypair, Multiaddr, PeerId, Runtime, SwarmConfig, SwarmEvent, SwarmHandle};

/// Ping a libp2p peer over QUIC.
#[derive(Parser, Debug)]
#[command(name = "ping", version)]
struct Args {
    /// The peer's address, ending in `/p2p/<peer id>` (base58 `12D3KooW…` or
    /// CIDv1 `bafz…`), e.g. `/ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooW…`
    multiaddr: String,
    /// How many pings to send.
    #[arg(default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    count: u32,
    /// Seconds between pings.
    #[arg(long, default_value = "1", value_parser = parse_seconds)]
    interval: Duration,
    /// Seconds allowed for connecting, for identify, and for each ping.
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    timeout: Duration,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{e}"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` keeps the whole cause chain on one line.
            eprintln!("ping: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A started local node; shuts down when dropped.
struct Node {
    handle: SwarmHandle,
    events: Receiver<SwarmEvent>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.handle.shutdown(0);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn start_node(args: &Args) -> anyhow::Result<Node> {
    // A throw-away identity: this tool never needs to be recognised.
    let keypair = Keypair::generate_ed25519();
    let mut config = SwarmConfig::new(keypair.clone());
    config.limits.handshake_timeout = args.timeout;
    let mut runtime = Runtime::new(config).context("cannot start the swarm")?;
    let mut identify = IdentifyConfig::new(keypair.public());
    identify.agent_version = concat!("swarm-ping/", env!("CARGO_PKG_VERSION")).into();
    identify.timeout = args.timeout;
    runtime.add_protocol(Box::new(Identify::new(identify)));
    runtime.add_protocol(Box::new(Ping::new(PingConfig {
        interval: args.interval,
        timeout: args.timeout,
        ping_on_connect: true,
        // Nothing else uses the connection; keep it until we are done.
        keep_alive: true,
    })));
    let (handle, thread) = runtime.spawn().context("cannot start the swarm thread")?;
    // Subscribe before dialing so that no event is missed.
    let events = handle
        .subscribe(1024)
        .context("cannot subscribe to events")?;
    Ok(Node {
        handle,
        events,
        thread: Some(thread),
    })
}

/// Split `text` into an address ending in `/p2p/<peer>` and the peer. Parsed
/// here rather than by clap so that a bad address gets a one-line reason, and
/// by the swarm's parser so that CIDv1 peer ids work too.
fn parse_target(text: &str) -> anyhow::Result<(Multiaddr, PeerId)> {
    let Some((transport, id)) = text.rsplit_once("/p2p/") else {
        bail!("{text} does not end in /p2p/<peer id>");
    };
    let peer = swarm::identity::parse_peer_id(id).with_context(|| format!("bad peer id {id:?}"))?;
    let addr: Multiaddr = transport
        .parse()
        .with_context(|| format!("bad multiaddr {transport:?}"))?;
    Ok((addr.with(AddrPart::P2p(peer)), peer))
}

fn run(args: &Args) -> anyhow::Result<()> {
    let (addr, peer) = parse_target(&args.multiaddr)?;
    let addr = &addr;
    let node = start_node(args)?;
    let conn = node
        .handle
        .dial(addr, false, args.timeout + Duration::from_secs(2))
        .map_err(|e| anyhow!("cannot connect to {addr}: {e}"))?;
    println!("connected to {peer} via {addr}");

    let mut watcher = Watcher {
        events: &node.events,
        peer,
        conn,
        pings: Vec::new(),
    };
    match watcher.identify(args.timeout)? {
        Ok(info) => print_identify(&info),
        // Identify is informative; the verdict is the pings'.
        Err(e) => eprintln!("ping: identify failed: {e}"),
    }

    let mut rtts = Vec::new();
    let mut failures = Vec::new();
    for i in 1..=args.count {
        // The plugin reports its own timeouts; this only guards against
        // hearing nothing at all.
        let wait = args.interval + args.timeout + Duration::from_secs(2);
        match watcher.next_ping(wait)? {
            Ok(rtt) => {
                println!("ping {i}: rtt {:.3} ms", millis(rtt));
                rtts.push(rtt);
            }
            Err(e) => {
                println!("ping {i}: failed: {e}");
                failures.push(e);
            }
        }
    }
    if let Some((min, median, max)) = stats(&mut rtts) {
        println!(
            "rtt min/median/max = {:.3}/{:.3}/{:.3} ms",
            millis(min),
            millis(median),
            millis(max)
        );
    }
    if let Some(first) = failures.first() {
        bail!("{} of {} pings failed: {first}", failures.len(), args.count);
    }
    Ok(())
}

/// Reads the swarm's events for one peer and connection.
struct Watcher<'a> {
    events: &'a Receiver<SwarmEvent>,
    peer: PeerId,
    conn: ConnId,
    /// Ping results that came while we waited for something else.
    pings: Vec<Result<Duration, PingError>>,
}

impl Watcher<'_> {
    /// Wait for identify's outcome. The outer error ends the run (timeout,
    /// connection lost); the inner one is identify's own failure.
    fn identify(&mut self, timeout: Duration) -> anyhow::Result<Result<IdentifyInfo, String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let event = self.next_event(deadline, "identify")?;
            match event.downcast_ref::<IdentifyEvent>() {
                Some(IdentifyEvent::Received { peer, info, .. }) if *peer == self.peer => {
                    return Ok(Ok(info.clone()));
                }
                Some(IdentifyEvent::Error { peer, error, .. }) if *peer == self.peer => {
                    return Ok(Err(error.to_string()));
                }
                _ => {}
            }
        }
    }

    /// The next ping result, buffered or new.
    fn next_ping(&mut self, timeout: Duration) -> anyhow::Result<Result<Duration, PingError>> {
        if !self.pings.is_empty() {
            return Ok(self.pings.remove(0));
        }
        let deadline = Instant::now() + timeout;
        loop {
            self.next_event(deadline, "a ping")?;
            if !self.pings.is_empty() {
                return Ok(self.pings.remove(0));
            }
        }
    }

    /// The next plugin event, buffering ping results on the way; fails if
    /// the connection closes or nothing comes before `deadline`.
    fn next_event(
        &mut self,
        deadline: Instant,
        what: &str,
    ) -> anyhow::Result<swarm::ProtocolEvent> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self
                .events
                .recv_timeout(left)
                .map_err(|_| anyhow!("timed out waiting for {what}"))?;
            match event {
                SwarmEvent::ConnectionClosed { conn, reason, .. } if conn == self.conn => {
                    bail!("connection closed: {reason}");
                }
                SwarmEvent::Protocol(event) => {
                    if let Some(ping) = event.downcast_ref::<PingEvent>()
                        && ping.peer == self.peer
                    {
                        self.pings.push(ping.result.clone());
                    }
                    return Ok(event);
                }
                _ => {}
            }
        }
    }
}

fn print_identify(info: &IdentifyInfo) {
    println!("agent version: {}", info.agent_version);
    println!("protocol version: {}", info.protocol_version);
    println!("protocols: {}", info.protocols.join(", "));
    for addr in &info.listen_addrs {
        println!("listen address: {addr}");
    }
    if let Some(observed) = &info.observed_addr {
        println!("observed address: {observed}");
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Min, median and max; the median of an even count is the mean of the two
/// middle values.
fn stats(rtts: &mut [Duration]) -> Option<(Duration, Duration, Duration)> {
    if rtts.is_empty() {
        return None;
    }
    rtts.sort();
    let n = rtts.len();
    let median = if n % 2 == 1 {
        rtts[n / 2]
    } else {
        (rtts[n / 2 - 1] + rtts[n / 2]) / 2
    };
    Some((rtts[0], median, rtts[n - 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn stats_take_the_middle_or_the_mean_of_the_two_middles() {
        let d = Duration::from_millis;
        assert_eq!(stats(&mut ms(&[3, 1, 2])), Some((d(1), d(2), d(3))));
        assert_eq!(
            stats(&mut ms(&[4, 1, 2, 3])),
            Some((d(1), Duration::from_micros(2500), d(4)))
        );
        assert_eq!(stats(&mut []), None);
    }

    #[test]
    fn target_accepts_base58_and_cid_peer_ids_and_needs_one() {
        let peer = Keypair::ed25519_from_bytes([1; 32])
            .unwrap()
            .public()
            .to_peer_id();
        let base = "/ip4/127.0.0.1/udp/4001/quic-v1";
        let cid = swarm::identity::peer_id_to_cid(&peer);
        for id in [peer.to_string(), cid] {
            let (addr, parsed) = parse_target(&format!("{base}/p2p/{id}")).unwrap();
            assert_eq!(parsed, peer);
            assert_eq!(addr.to_string(), format!("{base}/p2p/{peer}"));
        }
        assert!(parse_target(base).is_err());
        assert!(parse_target(&format!("{base}/p2p/nope")).is_err());
    }
}
