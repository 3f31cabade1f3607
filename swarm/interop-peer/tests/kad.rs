//! Kademlia between `RustPeer`s in one process over loopback QUIC: proves the
//! blocking `kad_*` support code, not libp2p-kad itself.

use std::time::{Duration, Instant};

use rust_libp2p_peer::{
    KAD_PROTOCOL, KadConfig, KadError, KadMode, MultistreamVersion, PeerConfig, PeerEvent, PeerId,
    RustPeer,
};

/// Bound on every blocking kad call; a few-node network answers in
/// milliseconds, the margin is for a loaded CI machine.
const T: Duration = Duration::from_secs(10);

fn kad_peer(kad: KadConfig) -> RustPeer {
    RustPeer::spawn(PeerConfig {
        kad: Some(kad),
        ..PeerConfig::default()
    })
}

fn server() -> RustPeer {
    kad_peer(KadConfig::default())
}

/// Wait until `peer` has received identify from `from` (so that its
/// identify hook has run for `from`).
fn wait_identified(peer: &RustPeer, from: PeerId) {
    peer.wait_for(T, |e| match e {
        PeerEvent::IdentifyReceived { peer, .. } if *peer == from => Some(()),
        _ => None,
    })
    .unwrap_or_else(|| panic!("no identify from {from}"));
}

/// Poll `peer`'s routing table until `pred` holds, for at most `T`.
fn wait_table(peer: &RustPeer, what: &str, pred: impl Fn(&[PeerId]) -> bool) {
    let deadline = Instant::now() + T;
    loop {
        let table: Vec<PeerId> = peer.kad_routing_table().iter().map(|e| e.peer).collect();
        if pred(&table) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: table is {table:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn join(peer: &RustPeer, seed: &RustPeer) {
    let added = peer
        .kad_add_address(seed.peer_id(), seed.listen_addrs()[0].clone())
        .expect("add_address");
    assert!(added);
    let n = peer.kad_bootstrap(T).expect("bootstrap");
    assert!(n >= 1, "table size after bootstrap: {n}");
}

#[test]
fn three_kad_peers_put_get_provide_and_find_each_other() {
    let a = server();
    let b = server();
    let c = server();
    assert_eq!(a.kad_mode(), Some(KadMode::Server));
    join(&b, &a);
    join(&c, &a);
    // `a` never dialed anyone: it learns b and c only through the identify
    // hook (libp2p-kad alone would report them as unroutable).
    wait_table(&a, "a learns b and c", |t| {
        t.contains(&b.peer_id()) && t.contains(&c.peer_id())
    });
    // c's bootstrap asked a, which knew b by then or soon after; another
    // bootstrap settles it.
    c.kad_bootstrap(T).expect("second bootstrap");
    wait_table(&c, "c learns b", |t| t.contains(&b.peer_id()));

    let stored = b
        .kad_put_value(b"greeting".to_vec(), b"hello".to_vec(), T)
        .expect("put");
    assert_eq!(stored, 2, "a and c store it");
    let records = c.kad_get_value(b"greeting".to_vec(), T).expect("get");
    assert!(records.iter().all(|r| r.value == b"hello"), "{records:?}");
    assert!(records.iter().all(|r| r.publisher == Some(b.peer_id())));
    // c stored its own copy during the put, so it comes first, from itself.
    assert_eq!(records[0].from, None);
    let first = a
        .kad_get_first_value(b"greeting".to_vec(), T)
        .expect("get first");
    assert_eq!(first.value, b"hello");
    assert_eq!(
        a.kad_get_value(b"missing".to_vec(), T),
        Err(KadError::NotFound)
    );

    c.kad_start_providing(b"content".to_vec(), T)
        .expect("provide");
    let providers = a
        .kad_get_providers(b"content".to_vec(), T)
        .expect("providers");
    assert_eq!(providers, vec![c.peer_id()]);
    assert_eq!(
        b.kad_get_providers(b"nobody".to_vec(), T),
        Err(KadError::NotFound)
    );

    // libp2p-kad keeps (and sends) addresses with `/p2p/<id>` appended.
    let addrs = b.kad_find_peer(c.peer_id(), T).expect("find_peer");
    assert!(addrs.contains(&c.dial_addr().unwrap()), "{addrs:?}");
    let closest = a
        .kad_get_closest_peers(b"any key".to_vec(), T)
        .expect("closest");
    let ids: Vec<PeerId> = closest.iter().map(|p| p.peer).collect();
    assert_eq!(ids.len(), 2, "{closest:?}");
    assert!(ids.contains(&b.peer_id()) && ids.contains(&c.peer_id()));
    assert!(closest.iter().all(|p| !p.addrs.is_empty()), "{closest:?}");
}

#[test]
fn client_mode_peer_queries_but_is_not_added_by_servers() {
    let a = server();
    // V1 so that identify pushes reach a rust-libp2p listener (see the
    // crate docs on `V1Lazy` and write-only streams).
    let d = RustPeer::spawn(PeerConfig {
        kad: Some(KadConfig {
            mode: Some(KadMode::Client),
            ..KadConfig::default()
        }),
        multistream_version: MultistreamVersion::V1,
        ..PeerConfig::default()
    });
    assert_eq!(d.kad_mode(), Some(KadMode::Client));
    join(&d, &a);
    wait_identified(&a, d.peer_id());
    assert!(
        !a.kad_routing_table().iter().any(|e| e.peer == d.peer_id()),
        "a client must not enter the routing table"
    );
    // The client still stores at and reads from servers.
    assert_eq!(d.kad_put_value(b"k".to_vec(), b"v".to_vec(), T), Ok(1));
    assert_eq!(a.kad_get_first_value(b"k".to_vec(), T).unwrap().value, b"v");

    // Switched to server mode, identify push tells a, which then adds d.
    d.kad_set_mode(Some(KadMode::Server));
    wait_table(&a, "a adds d once it serves", |t| t.contains(&d.peer_id()));
}

#[test]
fn peers_on_another_dht_protocol_stay_apart() {
    let custom = || KadConfig {
        protocol: "/myapp/kad/1.0.0".to_string(),
        ..KadConfig::default()
    };
    let a = server();
    let e = kad_peer(custom());
    let f = kad_peer(custom());
    assert_ne!(custom().protocol, KAD_PROTOCOL);

    // e dials a (default protocol): a sees identify without its protocol.
    e.kad_add_address(a.peer_id(), a.listen_addrs()[0].clone())
        .expect("add_address");
    let _ = e.kad_bootstrap(T);
    wait_identified(&a, e.peer_id());
    assert!(!a.kad_routing_table().iter().any(|x| x.peer == e.peer_id()));

    // e and f share their protocol and work together.
    join(&f, &e);
    assert_eq!(f.kad_put_value(b"k".to_vec(), b"v".to_vec(), T), Ok(1));
    assert_eq!(e.kad_get_first_value(b"k".to_vec(), T).unwrap().value, b"v");
}

#[test]
fn kad_calls_on_a_peer_without_kad_fail_with_disabled() {
    let p = RustPeer::spawn(PeerConfig::default());
    assert_eq!(
        p.kad_get_closest_peers(b"x".to_vec(), T),
        Err(KadError::Disabled)
    );
    assert_eq!(p.kad_mode(), None);
    let q = server();
    assert_eq!(q.kad_bootstrap(T), Err(KadError::NoKnownPeers));
}
