//! The nodes of the ping-based scenarios: a seeded swarm with ping and a
//! recorder plugin that counts what happened, and their addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocols::ping::{Ping, PingConfig, PingEvent};
use rand::Rng;
use rand::rngs::StdRng;
use swarm::virtual_net::VirtualNet;
use swarm::{
    ConnId, Context, DialError, Keypair, PeerId, PluginId, Protocol, ProtocolEvent, SwarmConfig,
};

/// What the recorder plugins saw, shared by all nodes (one thread).
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) connections: u64,
    pub(crate) dial_failures: u64,
    pub(crate) rtts: Vec<Duration>,
    pub(crate) ping_failures: u64,
}

/// Counts connections, dial failures and ping results on one node.
pub(crate) struct Recorder(Arc<Mutex<Seen>>);

impl Protocol for Recorder {
    fn name(&self) -> &'static str {
        "netsim-recorder"
    }

    fn handle_new_connection(&mut self, _: &mut Context<'_>, _: ConnId, _: PeerId) {
        self.0.lock().unwrap().connections += 1;
    }

    fn handle_dial_failure(&mut self, _: &mut Context<'_>, _: ConnId, _: &DialError) {
        self.0.lock().unwrap().dial_failures += 1;
    }

    fn handle_protocol_event(&mut self, _: &mut Context<'_>, event: &ProtocolEvent) {
        if let Some(ping) = event.downcast_ref::<PingEvent>() {
            let mut seen = self.0.lock().unwrap();
            match ping.result {
                Ok(rtt) => seen.rtts.push(rtt),
                Err(_) => seen.ping_failures += 1,
            }
        }
    }
}

/// Node `i`'s address: 10.x.y.z (unique up to 16 million nodes), or
/// fd00::i with `ipv6`.
pub(crate) fn node_ip(i: usize, ipv6: bool) -> IpAddr {
    let i = i as u32 + 1;
    if ipv6 {
        Ipv6Addr::from(0xfd00_u128 << 112 | u128::from(i)).into()
    } else {
        Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8).into()
    }
}

/// A seeded node with ping and a recorder; returns its index and the
/// recorder's plugin id (dials made through it report their failures).
pub(crate) fn add_node(
    net: &mut VirtualNet,
    rng: &mut StdRng,
    i: usize,
    seen: &Arc<Mutex<Seen>>,
    interval: Duration,
    ipv6: bool,
) -> anyhow::Result<(usize, PluginId)> {
    let mut config = SwarmConfig::new(Keypair::ed25519_from_bytes(rng.random::<[u8; 32]>())?);
    config.seed = Some(rng.random());
    // Pinged connections stay busy; a long idle timeout keeps the rest.
    config.idle_connection_timeout = Duration::from_secs(3600);
    let mut recorder = None;
    let n = net.add_swarm_with(config, node_ip(i, ipv6), |s| {
        s.add_protocol(Box::new(Ping::new(PingConfig {
            interval,
            ..PingConfig::default()
        })));
        recorder = Some(s.add_protocol(Box::new(Recorder(seen.clone()))));
    });
    Ok((n, recorder.expect("added")))
}
