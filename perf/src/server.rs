//! `bandwidth_perf server`: serve perf, test-data, ping and identify.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context as _;
use protocols::identify::{Identify, IdentifyConfig};
use protocols::perf::{PerfServer, PerfServerEvent};
use protocols::ping::{Ping, PingConfig};
use protocols::test_data::{TestDataServed, TestDataServer};
use swarm::address::{quic_multiaddr, tcp_multiaddr};
use swarm::identity::{format_zig_secret, peer_id_to_cid};
use swarm::{Multiaddr, Runtime, SwarmConfig, SwarmEvent};
use tracing::{info, warn};

use crate::env::ServerSettings;

/// The agent version we announce through identify.
const AGENT_VERSION: &str = concat!("bandwidth_perf/", env!("CARGO_PKG_VERSION"));

/// Listen and serve until killed.
pub fn run(settings: ServerSettings) -> anyhow::Result<()> {
    let ServerSettings {
        listen,
        key,
        key_generated,
    } = settings;
    if key_generated {
        // Generated keys are ed25519, which always has a Zig form.
        if let Some(secret) = format_zig_secret(&key) {
            eprintln!("Secret key: {secret}");
        }
    }
    let peer = key.public().to_peer_id();
    eprintln!("Responder peer id: {}", peer_id_to_cid(&peer));
    eprintln!("Responder peer id: {peer}");

    let mut identify = IdentifyConfig::new(key.public());
    identify.agent_version = AGENT_VERSION.into();
    let mut config = SwarmConfig::new(key);
    // A perf server is driven by load generators that open connection after
    // connection from one address (perf runners, the client's latency and
    // connections modes). Closed connections count against the per-IP limit
    // while QUIC drains them (3 PTOs, ~80 ms on loopback), so the default of
    // 64 would refuse a client doing more than ~800 handshakes a second.
    // The total limit still applies.
    config.limits.max_connections_per_ip = config.limits.max_connections;
    let mut rt = Runtime::new(config).context("cannot start the swarm")?;
    rt.add_protocol(Box::new(PerfServer::new()));
    rt.add_protocol(Box::new(TestDataServer::new()));
    rt.add_protocol(Box::new(Identify::new(identify)));
    // Answer pings, but do not ping clients: they may not serve ping, and
    // a perf server should not add traffic of its own.
    rt.add_protocol(Box::new(Ping::new(PingConfig {
        ping_on_connect: false,
        ..PingConfig::default()
    })));
    let bound = rt
        .listen(&quic_multiaddr(listen))
        .with_context(|| format!("cannot listen on {listen}"))?;
    // TCP (Noise, Yamux) on the port QUIC got: one PORT for both.
    let quic_port =
        swarm::address::parse_quic_addr(&bound).map_or(listen.port(), |q| q.socket.port());
    let tcp_listen = SocketAddr::new(listen.ip(), quic_port);
    let tcp_bound = rt
        .listen(&tcp_multiaddr(tcp_listen))
        .with_context(|| format!("cannot listen on TCP {tcp_listen}"))?;
    for addr in dialable(&bound).into_iter().chain(dialable(&tcp_bound)) {
        eprintln!("Listening on {addr}/p2p/{peer}");
    }

    let (handle, thread) = rt.spawn().context("cannot start the swarm thread")?;
    // Events only feed the info log: without it, do not subscribe, which
    // would cost a thread wake-up per perf run.
    if tracing::enabled!(tracing::Level::INFO) {
        let events = handle.subscribe(1024)?;
        for event in events {
            log_event(&event);
        }
    }
    thread
        .join()
        .map_err(|_| anyhow::anyhow!("the swarm thread panicked"))?
        .context("the swarm stopped")
}

/// End the process once standard input reaches its end (or fails): the
/// parent that started us with a pipe there has gone.
pub fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        std::process::exit(0);
    });
}

/// Log what the operator wants to see: finished and failed runs.
fn log_event(event: &SwarmEvent) {
    let SwarmEvent::Protocol(e) = event else {
        return;
    };
    if let Some(e) = e.downcast_ref::<PerfServerEvent>() {
        match e {
            PerfServerEvent::Finished { peer, report, .. } => info!(
                %peer,
                up = report.bytes_up,
                down = report.bytes_down,
                time = ?report.total_time,
                "perf run served"
            ),
            PerfServerEvent::Failed { peer, error, .. } => warn!(%peer, %error, "perf run failed"),
        }
    } else if let Some(TestDataServed {
        peer, bytes_sent, ..
    }) = e.downcast_ref()
    {
        info!(%peer, bytes_sent, "test-data stream served");
    }
}

/// The addresses peers can dial for a bound listen address: the address
/// itself, or for `0.0.0.0` / `::` every local address of that family.
fn dialable(bound: &Multiaddr) -> Vec<Multiaddr> {
    let (socket, make): (SocketAddr, fn(SocketAddr) -> Multiaddr) =
        if let Some(q) = swarm::address::parse_quic_addr(bound) {
            (q.socket, quic_multiaddr)
        } else if let Some(t) = swarm::address::parse_tcp_addr(bound) {
            (t.socket, tcp_multiaddr)
        } else {
            return vec![bound.clone()];
        };
    let ip = socket.ip();
    if !ip.is_unspecified() {
        return vec![bound.clone()];
    }
    let mut ips: Vec<IpAddr> = match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces
            .iter()
            .map(|i| i.ip())
            .filter(|a| a.is_ipv4() == ip.is_ipv4())
            .collect(),
        Err(e) => {
            warn!(error = %e, "cannot list local addresses");
            Vec::new()
        }
    };
    ips.sort();
    ips.dedup();
    if ips.is_empty() {
        return vec![bound.clone()];
    }
    ips.into_iter()
        .map(|a| make(SocketAddr::new(a, socket.port())))
        .collect()
}
