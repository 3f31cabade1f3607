//! `bandwidth_perf server`: serve perf, test-data, ping and identify.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context as _;
use protocols::identify::{Identify, IdentifyConfig};
use protocols::perf::{PerfServer, PerfServerEvent};
use protocols::ping::{Ping, PingConfig};
use protocols::test_data::{TestDataServed, TestDataServer};
use swarm::address::quic_multiaddr;
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
    let mut rt = Runtime::new(SwarmConfig::new(key)).context("cannot start the swarm")?;
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
    for addr in dialable(&bound) {
        eprintln!("Listening on {addr}/p2p/{peer}");
    }

    let (handle, thread) = rt.spawn().context("cannot start the swarm thread")?;
    let events = handle.subscribe(1024)?;
    for event in events {
        log_event(&event);
    }
    thread
        .join()
        .map_err(|_| anyhow::anyhow!("the swarm thread panicked"))?
        .context("the swarm stopped")
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
    let Some(quic) = swarm::address::parse_quic_addr(bound) else {
        return vec![bound.clone()];
    };
    let ip = quic.socket.ip();
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
        .map(|a| quic_multiaddr(SocketAddr::new(a, quic.socket.port())))
        .collect()
}
