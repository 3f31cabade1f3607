//! Interop with rust-libp2p 0.57's Kademlia (libp2p-kad 0.49, through the
//! dev-only `rust-libp2p-peer`) over loopback QUIC, both ways: our node
//! stores, finds and provides through a rust-libp2p server, the rust-libp2p
//! node does the same through ours, and our client mode is honoured.

use std::thread::JoinHandle;
use std::time::Duration;

use protocols::identify::{Identify, IdentifyConfig};
use protocols::kad::{KadClient, KadConfig, KadOutput, KadRequest, Kademlia, Mode, Record};
use rust_libp2p_peer::{KadConfig as RustKadConfig, PeerConfig, RustPeer};
use swarm::multiaddr::Protocol as AddrPart;
use swarm::{Keypair, Multiaddr, PeerId, Runtime, SwarmConfig, SwarmHandle};

const T: Duration = Duration::from_secs(15);

/// One of our nodes on loopback; shut down when dropped.
struct Ours {
    handle: SwarmHandle,
    peer: PeerId,
    addr: Multiaddr,
    dht: KadClient,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Drop for Ours {
    fn drop(&mut self) {
        let _ = self.handle.shutdown(0);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ours(seed: u8, mode: Mode, bootstrap: Vec<Multiaddr>) -> Ours {
    let key = Keypair::ed25519_from_bytes([seed; 32]).unwrap();
    let mut runtime = Runtime::new(SwarmConfig::new(key.clone())).unwrap();
    runtime.add_protocol(Box::new(Identify::new(IdentifyConfig::new(key.public()))));
    let config = KadConfig {
        mode,
        bootstrap_peers: bootstrap,
        ..KadConfig::default()
    };
    let kad = runtime.add_protocol(Box::new(Kademlia::new(config)));
    let addr = runtime
        .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
        .unwrap();
    let peer = runtime.swarm().local_peer_id();
    let (handle, thread) = runtime.spawn().unwrap();
    Ours {
        dht: KadClient::new(handle.clone(), kad),
        handle,
        peer,
        addr,
        thread: Some(thread),
    }
}

fn rust_server() -> RustPeer {
    RustPeer::spawn(PeerConfig {
        kad: Some(RustKadConfig::default()),
        ..PeerConfig::default()
    })
}

/// Their PeerId and address as our types (and back), through bytes.
fn to_ours(peer: rust_libp2p_peer::PeerId) -> PeerId {
    PeerId::from_bytes(&peer.to_bytes()).unwrap()
}
fn to_theirs(peer: PeerId) -> rust_libp2p_peer::PeerId {
    rust_libp2p_peer::PeerId::from_bytes(&peer.to_bytes()).unwrap()
}
fn addr_to_ours(addr: &rust_libp2p_peer::Multiaddr) -> Multiaddr {
    addr.to_string().parse().unwrap()
}
fn addr_to_theirs(addr: &Multiaddr) -> rust_libp2p_peer::Multiaddr {
    addr.to_string().parse().unwrap()
}

fn boot_addr(rust: &RustPeer) -> Multiaddr {
    addr_to_ours(&rust.listen_addrs()[0]).with(AddrPart::P2p(to_ours(rust.peer_id())))
}

#[test]
fn our_node_uses_a_rust_libp2p_server_and_it_uses_ours() {
    let rust = rust_server();
    let rust_peer = to_ours(rust.peer_id());
    let node = ours(61, Mode::Server, vec![boot_addr(&rust)]);
    assert!(node.dht.bootstrap(T).unwrap() >= 1);

    // Ours → theirs: PUT_VALUE counts (their answer echoes the record),
    // ADD_PROVIDER, FIND_NODE.
    let stored = node.dht.put_value(Record::new(*b"/v/ours", *b"1"), T);
    assert_eq!(stored, Ok(1));
    let content = b"\x12\x20abcdefghijklmnopqrstuvwxyz012345".to_vec();
    assert_eq!(node.dht.start_providing(&content, T), Ok(1));
    assert_eq!(node.dht.get_closest_peers(b"x", T), Ok(vec![rust_peer]));
    let rust_addr = addr_to_ours(&rust.listen_addrs()[0]);
    assert_eq!(node.dht.find_peer(rust_peer, T), Ok(vec![rust_addr]));

    // Theirs → ours: they stored our record and provider, and ask us.
    rust.kad_add_address(to_theirs(node.peer), addr_to_theirs(&node.addr))
        .unwrap();
    let records = rust.kad_get_value(b"/v/ours".to_vec(), T).unwrap();
    assert!(
        records
            .iter()
            .any(|r| r.from == Some(to_theirs(node.peer)) && r.value == b"1"),
        "our node did not answer GET_VALUE: {records:?}"
    );
    let providers = rust.kad_get_providers(content.clone(), T).unwrap();
    assert!(providers.contains(&to_theirs(node.peer)), "{providers:?}");
    let closest = rust.kad_get_closest_peers(b"y".to_vec(), T).unwrap();
    assert!(closest.iter().any(|p| p.peer == to_theirs(node.peer)));
    let stored = rust.kad_put_value(b"/v/rust".to_vec(), b"2".to_vec(), T);
    assert_eq!(stored, Ok(1), "our node did not echo their PUT_VALUE");
    let r = node.dht.run(KadRequest::GetValue(b"/v/rust".to_vec()), T);
    assert!(
        matches!(r, Ok(KadOutput::Records(ref v)) if v[0].value == b"2"),
        "{r:?}"
    );
}

#[test]
fn our_client_is_not_added_by_a_rust_libp2p_server() {
    let rust = rust_server();
    let client = ours(62, Mode::Client, vec![boot_addr(&rust)]);
    assert!(client.dht.bootstrap(T).unwrap() >= 1);
    // The client's lookups reached the server; the server did not add it.
    std::thread::sleep(Duration::from_millis(300));
    let table: Vec<_> = rust.kad_routing_table().iter().map(|e| e.peer).collect();
    assert!(!table.contains(&to_theirs(client.peer)), "{table:?}");
    // Our server, joining through the same rust-libp2p node, lists the
    // rust node and not the client.
    let server = ours(63, Mode::Server, vec![boot_addr(&rust)]);
    assert!(server.dht.bootstrap(T).unwrap() >= 1);
    let table = server.dht.run(KadRequest::RoutingTable, T).unwrap();
    assert_eq!(table, KadOutput::Peers(vec![to_ours(rust.peer_id())]));
}
