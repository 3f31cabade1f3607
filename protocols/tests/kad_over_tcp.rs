//! Kademlia runs unchanged over TCP + Noise + Yamux: three real swarms
//! that listen on TCP only find each other, store and get a record.

use std::thread::JoinHandle;
use std::time::Duration;

use protocols::identify::{Identify, IdentifyConfig};
use protocols::kad::{KadClient, KadConfig, Kademlia, Mode, Record};
use swarm::multiaddr::Protocol as AddrPart;
use swarm::{Keypair, Multiaddr, PeerId, Runtime, SwarmConfig, SwarmHandle};

const WAIT: Duration = Duration::from_secs(20);

/// A swarm listening on TCP on loopback, with identify and Kademlia.
struct Node {
    handle: SwarmHandle,
    peer: PeerId,
    addr: Multiaddr,
    dht: KadClient,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.handle.shutdown(0);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn node(seed: u8, mode: Mode, bootstrap: &[&Node]) -> Node {
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
    let addr = runtime
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    assert!(addr.to_string().contains("/tcp/"), "{addr}");
    let peer = runtime.swarm().local_peer_id();
    let (handle, thread) = runtime.spawn().unwrap();
    Node {
        dht: KadClient::new(handle.clone(), kad),
        handle,
        peer,
        addr,
        thread: Some(thread),
    }
}

#[test]
fn kademlia_finds_peers_and_records_over_tcp() {
    let a = node(61, Mode::Server, &[]);
    let b = node(62, Mode::Server, &[&a]);
    let c = node(63, Mode::Client, &[&a]);
    assert!(b.dht.bootstrap(WAIT).unwrap() >= 1);
    assert!(c.dht.bootstrap(WAIT).unwrap() >= 1);
    // c learns b's TCP address through a.
    assert_eq!(c.dht.find_peer(b.peer, WAIT).unwrap(), vec![b.addr.clone()]);
    let stored = b
        .dht
        .put_value(Record::new(*b"/app/tcp", *b"over tcp"), WAIT)
        .unwrap();
    assert!(stored >= 1, "stored on {stored}");
    let records = c.dht.get_value(b"/app/tcp", WAIT).unwrap();
    assert_eq!(records[0].value, b"over tcp");
}
