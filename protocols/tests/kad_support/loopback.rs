//! Real swarms on loopback with identify and Kademlia, driven from the test
//! thread through a [`KadClient`].

use std::thread::JoinHandle;

use protocols::identify::{Identify, IdentifyConfig};
use protocols::kad::{KadClient, KadConfig, Kademlia, Mode};
use swarm::multiaddr::Protocol as AddrPart;
use swarm::{Keypair, Multiaddr, PeerId, Runtime, SwarmConfig, SwarmHandle};

/// Listen address for QUIC nodes.
pub const QUIC: &str = "/ip4/127.0.0.1/udp/0/quic-v1";
/// Listen address for TCP nodes.
pub const TCP: &str = "/ip4/127.0.0.1/tcp/0";

/// A swarm on loopback with identify and Kademlia; shut down when dropped.
pub struct LoopbackNode {
    pub handle: SwarmHandle,
    pub peer: PeerId,
    pub addr: Multiaddr,
    pub dht: KadClient,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Drop for LoopbackNode {
    fn drop(&mut self) {
        let _ = self.handle.shutdown(0);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A node with key `[seed; 32]` listening on `listen`, bootstrapping from
/// `bootstrap`.
pub fn node(seed: u8, mode: Mode, bootstrap: &[&LoopbackNode], listen: &str) -> LoopbackNode {
    let key = Keypair::ed25519_from_bytes([seed; 32]).unwrap();
    let mut runtime = Runtime::new(SwarmConfig::new(key.clone())).unwrap();
    runtime.add_protocol(Box::new(Identify::new(IdentifyConfig::new(key.public()))));
    let config = KadConfig {
        mode,
        bootstrap_peers: bootstrap
            .iter()
            .map(|n| n.addr.clone().with(AddrPart::P2p(n.peer)))
            .collect(),
        ..KadConfig::default()
    };
    let kad = runtime.add_protocol(Box::new(Kademlia::new(config)));
    let addr = runtime.listen(&listen.parse().unwrap()).unwrap();
    let peer = runtime.swarm().local_peer_id();
    let (handle, thread) = runtime.spawn().unwrap();
    LoopbackNode {
        dht: KadClient::new(handle.clone(), kad),
        handle,
        peer,
        addr,
        thread: Some(thread),
    }
}
