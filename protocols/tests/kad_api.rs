//! The two ways in: a [`KadClient`] blocking on another thread (real
//! swarms on loopback), and a plugin that starts queries with
//! [`start_query`] and gets [`KadEvent::QueryFinished`].

mod kad_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kad_support::loopback::{self, LoopbackNode as Node};
use protocols::kad::{
    KadClient, KadError, KadEvent, KadOutput, KadRequest, KadResult, Mode, QueryId, Record,
    start_query,
};
use swarm::{Context, Message, PluginId, Protocol, ProtocolEvent};

const WAIT: Duration = Duration::from_secs(20);

/// A QUIC node on loopback.
fn node(seed: u8, mode: Mode, bootstrap: &[&Node]) -> Node {
    loopback::node(seed, mode, bootstrap, loopback::QUIC)
}

#[test]
fn a_thread_uses_the_dht_through_kad_client() {
    let a = node(41, Mode::Server, &[]);
    let b = node(42, Mode::Server, &[&a]);
    let c = node(43, Mode::Client, &[&a]);
    // b and c learn about each other through a.
    assert!(b.dht.bootstrap(WAIT).unwrap() >= 1);
    assert!(c.dht.bootstrap(WAIT).unwrap() >= 1);

    let stored = b
        .dht
        .put_value(Record::new(*b"/app/k", *b"v"), WAIT)
        .unwrap();
    assert!(stored >= 1, "stored on {stored}");
    let records = c.dht.get_value(b"/app/k", WAIT).unwrap();
    assert_eq!(records[0].value, b"v");
    assert_eq!(c.dht.get_value(b"/app/none", WAIT), Err(KadError::NotFound));

    assert!(b.dht.start_providing(b"content", WAIT).unwrap() >= 1);
    let providers = c.dht.get_providers(b"content", WAIT).unwrap();
    assert_eq!(providers[0].peer, b.peer);
    assert_eq!(providers[0].addrs, vec![b.addr.clone()]);

    assert_eq!(c.dht.find_peer(b.peer, WAIT).unwrap(), vec![b.addr.clone()]);
    let closest = c.dht.get_closest_peers(b"anything", WAIT).unwrap();
    assert!(
        closest.contains(&a.peer) && closest.contains(&b.peer),
        "{closest:?}"
    );
    assert!(!closest.contains(&c.peer), "a client is nobody's peer");
    // b never lists the client c.
    let table = b.dht.run(KadRequest::RoutingTable, WAIT).unwrap();
    assert_eq!(table, KadOutput::Peers(vec![a.peer]));
}

#[test]
fn kad_client_errors_are_typed() {
    let lonely = node(44, Mode::Server, &[]);
    assert_eq!(lonely.dht.bootstrap(WAIT), Err(KadError::NoKnownPeers));
    assert_eq!(
        lonely.dht.get_closest_peers(b"k", WAIT),
        Err(KadError::NoKnownPeers)
    );
    assert_eq!(
        lonely.dht.put_value(Record::new(*b"k", *b"v"), WAIT),
        Err(KadError::NoKnownPeers)
    );
    // The value is stored locally all the same, so a get finds it.
    assert_eq!(lonely.dht.get_value(b"k", WAIT).unwrap()[0].value, b"v");
    // A plugin id that is not Kademlia: the message is dropped.
    let wrong = KadClient::new(lonely.handle.clone(), PluginId::external());
    assert!(matches!(
        wrong.get_value(b"k", Duration::from_millis(500)),
        Err(KadError::Unavailable(_)) | Err(KadError::Timeout(_))
    ));
    let big = Record::new(*b"big", vec![0u8; 100_000]);
    assert!(matches!(
        lonely.dht.put_value(big, WAIT),
        Err(KadError::Store(
            protocols::kad::StoreError::RecordTooLarge { .. }
        ))
    ));
}

/// Starts a `GetClosestPeers` when told (a message with the Kademlia
/// plugin's id) and keeps what comes back.
#[derive(Clone, Default)]
struct Asker {
    started: Arc<Mutex<Vec<QueryId>>>,
    finished: Arc<Mutex<Vec<(QueryId, KadResult)>>>,
}

impl Protocol for Asker {
    fn name(&self) -> &'static str {
        "asker"
    }

    fn handle_message(&mut self, ctx: &mut Context<'_>, message: Message) {
        if let Ok(kad) = message.downcast::<PluginId>() {
            let id = start_query(ctx, *kad, KadRequest::GetClosestPeers(b"x".to_vec()));
            self.started.lock().unwrap().push(id);
        }
    }

    fn handle_protocol_event(&mut self, _: &mut Context<'_>, event: &ProtocolEvent) {
        if let Some(KadEvent::QueryFinished { id, result, .. }) = event.downcast_ref::<KadEvent>()
            && self.started.lock().unwrap().contains(id)
        {
            self.finished.lock().unwrap().push((*id, result.clone()));
        }
    }
}

#[test]
fn a_plugin_starts_queries_and_gets_events() {
    let mut net = kad_support::KadNet::new(31);
    let a = net.add(Mode::Server, &[], |_| {});
    let b = net.add(Mode::Server, &[a], |_| {});
    let asker = Asker::default();
    let asker_id = net.net.swarm(b).add_protocol(Box::new(asker.clone()));
    net.net.run_for(Duration::from_secs(1));
    let kad = net.nodes[b].kad;
    net.net
        .swarm(b)
        .handle()
        .send_message(asker_id, kad)
        .unwrap();
    let finished = asker.finished.clone();
    net.net.run_until(Duration::from_secs(30), |_| {
        !finished.lock().unwrap().is_empty()
    });
    let done = asker.finished.lock().unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, asker.started.lock().unwrap()[0]);
    assert_eq!(
        done[0].1,
        Ok(KadOutput::ClosestPeers(vec![net.nodes[a].peer]))
    );
}
