//! Kademlia against rust-libp2p 0.57's `kad` (the published crate) over
//! loopback QUIC: a mixed network of their nodes and ours, where records,
//! providers, peer lookups and closest-peer queries work from either side
//! to either side, and client mode is honoured both ways.

use std::time::{Duration, Instant};

use protocols::identify::{Identify, IdentifyConfig};
use protocols::kad::{KadClient, KadConfig, KadOutput, KadRequest, Kademlia, Mode, Record};
use rust_libp2p_peer::{
    KadConfig as RustKadConfig, KadMode, MultistreamVersion, PeerConfig, RustPeer,
};
use swarm::{Multiaddr, PeerId, Runtime, SwarmConfig, SwarmHandle, identity};

/// Bound on every query; a six-node network answers in milliseconds, the
/// margin is for a loaded CI machine.
const T: Duration = Duration::from_secs(20);

/// One of our nodes on its own thread.
struct Ours {
    peer: PeerId,
    addr: Multiaddr,
    kad: KadClient,
    handle: SwarmHandle,
}

impl Drop for Ours {
    fn drop(&mut self) {
        let _ = self.handle.shutdown(0);
    }
}

fn ours(mode: Mode, bootstrap: Vec<Multiaddr>) -> Ours {
    let keypair = identity::generate_keypair();
    let public_key = keypair.public();
    let mut runtime = Runtime::new(SwarmConfig::new(keypair)).expect("runtime");
    runtime.add_protocol(Box::new(Identify::new(IdentifyConfig::new(public_key))));
    let kad = runtime.add_protocol(Box::new(Kademlia::new(KadConfig {
        mode,
        bootstrap_peers: bootstrap,
        bootstrap_interval: None,
        ..KadConfig::default()
    })));
    let addr = runtime
        .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
        .expect("listen");
    let peer = runtime.swarm().local_peer_id();
    let (handle, _thread) = runtime.spawn().expect("spawn");
    Ours {
        peer,
        addr: addr.with(swarm::multiaddr::Protocol::P2p(peer)),
        kad: KadClient::new(handle.clone(), kad),
        handle,
    }
}

fn theirs(mode: KadMode) -> RustPeer {
    RustPeer::spawn(PeerConfig {
        // Stock multistream-select, so that identify pushes (a mode change)
        // reach every listener.
        multistream_version: MultistreamVersion::V1,
        ping_interval: Duration::from_secs(3600),
        kad: Some(RustKadConfig {
            mode: Some(mode),
            periodic_bootstrap_interval: None,
            ..RustKadConfig::default()
        }),
        ..PeerConfig::default()
    })
}

fn rust_addr(p: &RustPeer) -> Multiaddr {
    p.listen_addrs()[0].clone()
}

/// The mixed network: our seed O1, our server O2, their servers R1 and R2,
/// all joined through O1 and bootstrapped twice (the second round meets
/// the nodes that joined after the first).
struct Net {
    o1: Ours,
    o2: Ours,
    r1: RustPeer,
    r2: RustPeer,
}

fn network() -> Net {
    let o1 = ours(Mode::Server, Vec::new());
    let o2 = ours(Mode::Server, vec![o1.addr.clone()]);
    let r1 = theirs(KadMode::Server);
    let r2 = theirs(KadMode::Server);
    for r in [&r1, &r2] {
        r.kad_add_address(o1.peer, strip_p2p(&o1.addr))
            .expect("add O1");
    }
    for _ in 0..2 {
        o2.kad.bootstrap(T).expect("O2 bootstrap");
        r1.kad_bootstrap(T).expect("R1 bootstrap");
        r2.kad_bootstrap(T).expect("R2 bootstrap");
        o1.kad.bootstrap(T).expect("O1 bootstrap");
    }
    Net { o1, o2, r1, r2 }
}

fn strip_p2p(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|p| !matches!(p, swarm::multiaddr::Protocol::P2p(_)))
        .collect()
}

/// Poll `f` until it returns true, for at most `T`.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn records_and_providers_cross_between_implementations() {
    let net = network();
    // Ours puts, theirs gets; theirs puts, ours gets.
    let stored = net
        .o2
        .kad
        .put_value(Record::new(b"from-ours".to_vec(), b"blue".to_vec()), T)
        .expect("our put");
    assert!(stored >= 2, "stored on {stored} peers");
    let found = net
        .r1
        .kad_get_first_value(b"from-ours".to_vec(), T)
        .expect("their get of our record");
    assert_eq!(found.value, b"blue");
    let stored = net
        .r2
        .kad_put_value(b"from-theirs".to_vec(), b"red".to_vec(), T)
        .expect("their put");
    assert!(stored >= 2, "stored on {stored} peers");
    let records = net.o2.kad.get_value(b"from-theirs", T).expect("our get");
    assert!(records.iter().any(|r| r.value == b"red"), "{records:?}");

    // Providers both ways.
    net.o1
        .kad
        .start_providing(b"ours-provide", T)
        .expect("our provide");
    eventually("R2 sees O1 as provider", || {
        net.r2
            .kad_get_providers(b"ours-provide".to_vec(), T)
            .is_ok_and(|p| p.contains(&net.o1.peer))
    });
    net.r1
        .kad_start_providing(b"theirs-provide".to_vec(), T)
        .expect("their provide");
    eventually("O2 sees R1 as provider", || {
        net.o2
            .kad
            .get_providers(b"theirs-provide", T)
            .is_ok_and(|p| p.iter().any(|p| p.peer == net.r1.peer_id()))
    });
}

#[test]
fn peer_lookups_cross_between_implementations() {
    let net = network();
    // Ours finds theirs, theirs finds ours.
    let addrs = net.o2.kad.find_peer(net.r2.peer_id(), T).expect("our find");
    let want = rust_addr(&net.r2);
    assert!(
        addrs.iter().any(|a| strip_p2p(a) == want),
        "{addrs:?} vs {want}"
    );
    let addrs = net.r1.kad_find_peer(net.o2.peer, T).expect("their find");
    let want = strip_p2p(&net.o2.addr);
    assert!(
        addrs.iter().any(|a| strip_p2p(a) == want),
        "{addrs:?} vs {want}"
    );

    // Closest peers of a key, from each side, list servers of both kinds.
    let everyone = [net.o1.peer, net.o2.peer, net.r1.peer_id(), net.r2.peer_id()];
    let ours: Vec<PeerId> = net.o1.kad.get_closest_peers(b"some key", T).expect("ours");
    let theirs: Vec<PeerId> = net
        .r2
        .kad_get_closest_peers(b"some key".to_vec(), T)
        .expect("theirs")
        .into_iter()
        .map(|p| p.peer)
        .collect();
    for (who, list, me) in [
        ("ours", &ours, net.o1.peer),
        ("theirs", &theirs, net.r2.peer_id()),
    ] {
        for p in everyone.iter().filter(|p| **p != me) {
            assert!(list.contains(p), "{who}: {p} missing from {list:?}");
        }
    }
}

#[test]
fn client_mode_is_honoured_both_ways() {
    let net = network();
    // Our client asks their server, and no server adds it.
    let our_client = ours(
        Mode::Client,
        vec![
            strip_p2p(&net.r1.listen_addrs()[0])
                .with(swarm::multiaddr::Protocol::P2p(net.r1.peer_id())),
        ],
    );
    our_client
        .kad
        .bootstrap(T)
        .expect("our client joins through R1");
    net.o2
        .kad
        .put_value(Record::new(b"for-clients".to_vec(), b"green".to_vec()), T)
        .expect("put");
    let records = our_client
        .kad
        .get_value(b"for-clients", T)
        .expect("our client gets");
    assert!(records.iter().any(|r| r.value == b"green"));
    // Their client asks our server, and no server adds it.
    let their_client = theirs(KadMode::Client);
    their_client
        .kad_add_address(net.o1.peer, strip_p2p(&net.o1.addr))
        .expect("add O1");
    their_client
        .kad_bootstrap(T)
        .expect("their client joins through O1");
    let found = their_client
        .kad_get_first_value(b"for-clients".to_vec(), T)
        .expect("their client gets");
    assert_eq!(found.value, b"green");
    // Let identify and any late table updates settle, then look.
    std::thread::sleep(Duration::from_millis(500));
    for r in [&net.r1, &net.r2] {
        let table: Vec<PeerId> = r.kad_routing_table().iter().map(|e| e.peer).collect();
        assert!(!table.contains(&our_client.peer), "theirs added our client");
        assert!(
            !table.contains(&their_client.peer_id()),
            "theirs added their client"
        );
    }
    for o in [&net.o1, &net.o2] {
        let table = match o.kad.run(KadRequest::RoutingTable, T) {
            Ok(KadOutput::Peers(peers)) => peers,
            other => panic!("routing table: {other:?}"),
        };
        assert!(!table.contains(&our_client.peer), "ours added our client");
        assert!(
            !table.contains(&their_client.peer_id()),
            "ours added their client"
        );
    }
}
