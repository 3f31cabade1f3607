//! One benchmark node: a [`Runtime`] on its own thread with its own UDP
//! socket on 127.0.0.1, running only our gossipsub plugin at its defaults.

use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use protocols::gossipsub::{Gossipsub, GossipsubClient, GossipsubConfig, ReceivedMessage};
use swarm::multiaddr::Protocol as AddrPart;
use swarm::{Keypair, Multiaddr, PluginId, Protocol, Runtime, SwarmConfig, SwarmHandle};

/// Received messages one node may hold before the plugin drops (and counts)
/// more. The receiver thread empties it continuously; 4,096 is several
/// seconds of the whole network's publishing at the rates run here, and
/// small enough (the channel's slots are allocated up front) not to weigh
/// on peak RSS. Drops show up as `channel_drops` in the summary.
pub const CHANNEL_CAPACITY: usize = 4096;

/// A running node.
pub struct Node {
    /// Where to dial it, with `/p2p/<peer>`.
    pub addr: Multiaddr,
    /// Its swarm.
    pub handle: SwarmHandle,
    /// Its gossipsub plugin.
    pub client: GossipsubClient,
    /// The plugin's id (for messages other than gossipsub commands).
    pub plugin: PluginId,
    /// Messages it received (taken by its receiver thread).
    pub messages: Option<Receiver<ReceivedMessage>>,
    /// The swarm thread, joined at shutdown.
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

/// The swarm settings of every node (and of the stalled peer): defaults,
/// except connections are kept for 10 min without streams, as the
/// rust-libp2p side sets its idle timeout, so that nothing closes while
/// the network waits between phases.
pub fn swarm_config(keypair: Keypair) -> SwarmConfig {
    let mut config = SwarmConfig::new(keypair);
    config.idle_connection_timeout = Duration::from_secs(600);
    config
}

/// Gossipsub at its defaults: StrictSign with the host key, D = 6 / 4 /
/// 12, heartbeat 1 s, flood publish, source + seqno ids, no validator.
pub fn gossipsub_config(keypair: Keypair) -> GossipsubConfig {
    GossipsubConfig::new(keypair)
}

/// The plugin with [`gossipsub_config`] and the bounded received-message
/// channel.
pub fn gossipsub(keypair: Keypair) -> (Gossipsub, Receiver<ReceivedMessage>) {
    Gossipsub::with_message_channel(gossipsub_config(keypair), CHANNEL_CAPACITY)
}

impl Node {
    /// Start a node with this identity. `wrap` may put the plugin inside
    /// another (the stalled peer's pause switch); benchmark nodes pass it
    /// through.
    pub fn start(
        keypair: Keypair,
        wrap: impl FnOnce(Gossipsub) -> Box<dyn Protocol>,
    ) -> anyhow::Result<Self> {
        let peer = keypair.public().to_peer_id();
        let mut runtime = Runtime::new(swarm_config(keypair.clone()))?;
        let (plugin, messages) = gossipsub(keypair);
        let id = runtime.add_protocol(wrap(plugin));
        let addr = runtime
            .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse()?)
            .context("listen on loopback")?
            .with(AddrPart::P2p(peer));
        let (handle, thread) = runtime.spawn()?;
        Ok(Self {
            addr,
            client: GossipsubClient::new(handle.clone(), id),
            plugin: id,
            handle,
            messages: Some(messages),
            thread: Some(thread),
        })
    }

    /// Stop the swarm and wait (bounded) for its thread.
    pub fn shutdown(&mut self) {
        let _ = self.handle.shutdown(0);
        let Some(thread) = self.thread.take() else {
            return;
        };
        // Connections drain within the QUIC close period; don't hang the
        // benchmark's exit on a swarm that does not stop.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !thread.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
}
