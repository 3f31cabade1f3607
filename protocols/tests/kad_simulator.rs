//! Kademlia on the virtual network: 50 seeded nodes (45 servers, 5
//! clients) join through three seeds; then records, providers, peer
//! lookups, closest-peer lookups and `dial_with_id` through peer routing
//! all work, and clients never enter a routing table.

mod kad_support;

use std::time::Duration;

use kad_support::KadNet;
use protocols::kad::{KadConfig, KadError, KadOutput, KadRequest, Key, Mode, Record};
use swarm::PeerId;

const SERVERS: usize = 45;
const CLIENTS: usize = 5;
const SEEDS: [usize; 3] = [0, 1, 2];
/// A bucket size below the default 20, so that 45 servers are not one
/// hop from everyone: lookups must iterate, and the test needs fewer
/// QUIC handshakes (each costs milliseconds in a debug build).
const K: usize = 10;
const LIMIT: Duration = Duration::from_secs(120);

fn network(seed: u64) -> KadNet {
    let mut net = KadNet::new(seed);
    // No periodic bootstrap (its bucket refreshes would connect every node
    // to every other in a network this small): each node joins with a
    // lookup of its own id, as in the Kademlia paper.
    let config = |c: &mut KadConfig| {
        c.k = K;
        c.bootstrap_interval = None;
    };
    for _ in 0..SERVERS {
        net.add(Mode::Server, &SEEDS, config);
    }
    for _ in 0..CLIENTS {
        net.add(Mode::Client, &SEEDS, config);
    }
    // Everyone joins at once, so the seeds know nobody yet when the first
    // lookups reach them; a second round (as the periodic refresh would do)
    // finds the network.
    for _round in 0..2 {
        net.net.run_for(Duration::from_millis(500));
        let joins = (0..SERVERS + CLIENTS)
            .map(|n| {
                let own = net.nodes[n].peer.to_bytes();
                (n, KadRequest::GetClosestPeers(own))
            })
            .collect();
        for (n, r) in net.ask_all(joins, LIMIT).into_iter().enumerate() {
            assert!(
                matches!(r, Ok(KadOutput::ClosestPeers(_))),
                "node {n}: {r:?}"
            );
        }
    }
    net
}

/// One network for everything (building it is most of the cost).
#[test]
fn a_fifty_node_network_routes_stores_finds_and_dials_by_id() {
    let mut net = network(11);
    let servers: Vec<PeerId> = net.nodes[..SERVERS].iter().map(|n| n.peer).collect();
    let clients: Vec<PeerId> = net.nodes[SERVERS..].iter().map(|n| n.peer).collect();

    // Every node knows a good part of the network, and no client is in
    // anyone's table.
    for n in 0..SERVERS + CLIENTS {
        let table = net.table(n);
        assert!(
            table.len() >= K,
            "node {n} knows only {} peers",
            table.len()
        );
        for c in &clients {
            assert!(!table.contains(c), "client {c} in node {n}'s table");
        }
    }

    // get_closest_peers gives the true k closest servers.
    let key = b"some key".to_vec();
    let target = Key::from_bytes(&key);
    let mut expected = servers.clone();
    expected.sort_by_key(|p| Key::from_peer(p).distance(&target));
    expected.truncate(K);
    for asker in [3, 30, SERVERS + 1] {
        let r = net.ask(asker, KadRequest::GetClosestPeers(key.clone()), LIMIT);
        let Ok(KadOutput::ClosestPeers(mut got)) = r else {
            panic!("node {asker}: {r:?}");
        };
        // The asker is not among its own results.
        let mut want: Vec<PeerId> = servers
            .iter()
            .copied()
            .filter(|p| *p != net.nodes[asker].peer)
            .collect();
        want.sort_by_key(|p| Key::from_peer(p).distance(&target));
        want.truncate(K);
        got.sort_by_key(|p| Key::from_peer(p).distance(&target));
        assert_eq!(got, want, "node {asker}'s closest peers");
    }
    let _ = expected;

    // put_value from one node, get_value from others (a client too).
    let record = Record::new(*b"/app/greeting", *b"hello");
    let r = net.ask(10, KadRequest::PutValue(record.clone()), LIMIT);
    let Ok(KadOutput::Stored(stored)) = r else {
        panic!("put: {r:?}");
    };
    assert!(stored >= K / 2, "only {stored} peers stored the record");
    for asker in [33, 44, SERVERS + 2] {
        let r = net.ask(asker, KadRequest::GetValue(record.key.clone()), LIMIT);
        let Ok(KadOutput::Records(records)) = r else {
            panic!("get at node {asker}: {r:?}");
        };
        assert_eq!(records[0].value, record.value);
    }
    let r = net.ask(20, KadRequest::GetValue(b"/app/missing".to_vec()), LIMIT);
    assert_eq!(r, Err(KadError::NotFound));

    // A client can put too; servers store it.
    let r = net.ask(
        SERVERS + 3,
        KadRequest::PutValue(Record::new(*b"from-client", *b"x")),
        LIMIT,
    );
    assert!(matches!(r, Ok(KadOutput::Stored(n)) if n >= K / 2), "{r:?}");

    // provide / get_providers.
    let content = b"\x12\x20content-id-of-thirty-two-bytes!!".to_vec();
    let r = net.ask(5, KadRequest::StartProviding(content.clone()), LIMIT);
    assert!(
        matches!(r, Ok(KadOutput::Providing(n)) if n >= K / 2),
        "{r:?}"
    );
    for asker in [6, 39, SERVERS + 4] {
        let r = net.ask(asker, KadRequest::GetProviders(content.clone()), LIMIT);
        let Ok(KadOutput::Providers(providers)) = r else {
            panic!("providers at node {asker}: {r:?}");
        };
        let p = providers
            .iter()
            .find(|p| p.peer == servers[5])
            .expect("node 5 is a provider");
        assert_eq!(
            p.addrs,
            vec![net.net.multiaddr(5)],
            "the provider entry carries its listen address"
        );
    }

    // find_peer.
    let r = net.ask(20, KadRequest::FindPeer(servers[33]), LIMIT);
    assert_eq!(r, Ok(KadOutput::PeerAddrs(vec![net.net.multiaddr(33)])));
    let r = net.ask(20, KadRequest::FindPeer(PeerId::random()), LIMIT);
    assert_eq!(r, Err(KadError::NotFound));

    // dial_with_id of a peer nobody told us about finds it through the DHT.
    // A newcomer that only knows seed 0 joins and looks itself up (no
    // bucket refreshes), so only the nodes closest to it learn it.
    let newcomer = net.add(Mode::Server, &[0], |c| c.bootstrap_interval = None);
    net.net.run_for(Duration::from_secs(2));
    let target = net.nodes[newcomer].peer;
    let r = net.ask(
        newcomer,
        KadRequest::GetClosestPeers(target.to_bytes()),
        LIMIT,
    );
    assert!(r.is_ok(), "{r:?}");
    let now = net.net.now();
    // The clients joined before the newcomer and have asked nothing since.
    let dialer = (3..SERVERS + CLIENTS)
        .find(|&n| {
            let swarm = net.net.swarm(n);
            swarm.peer_store().addresses(&target, now).is_empty()
                && swarm.connections_to(&target).is_empty()
        })
        .expect("some node does not know the newcomer");
    let kad = net.nodes[dialer].kad;
    net.net
        .swarm(dialer)
        .with_context(kad, |ctx| ctx.dial_with_id(target, false))
        .expect("dial_with_id starts");
    let outcome = net.net.run_until(LIMIT, |n| {
        !n.swarm(dialer).connections_to(&target).is_empty()
    });
    assert!(
        outcome.is_done(),
        "node {dialer} never reached the newcomer"
    );
}

#[test]
fn one_seed_gives_one_trace() {
    fn run(seed: u64) -> u64 {
        let mut net = KadNet::new(seed);
        net.net.event_trace = Some(Vec::new());
        for _ in 0..12 {
            net.add(Mode::Server, &[0], |_| {});
        }
        net.net.run_for(Duration::from_secs(20));
        let _ = net.ask(7, KadRequest::PutValue(Record::new(*b"k", *b"v")), LIMIT);
        let _ = net.ask(3, KadRequest::GetValue(b"k".to_vec()), LIMIT);
        net.net.trace_hash()
    }
    assert_eq!(run(5), run(5));
}
