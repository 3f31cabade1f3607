//! Hostile input against a Kademlia server on the virtual network: oversized
//! and malformed messages, unknown types, bad PUT_VALUEs, too many streams,
//! a flood of ADD_PROVIDERs, and a peer whose FIND_NODE answers are full of
//! unreachable and duplicate entries. Each is refused with a typed error,
//! memory stays within the limits, and the node keeps answering others.

mod kad_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kad_support::KadNet;
use protocols::kad::wire::{self, Message as WireMessage, Peer as WirePeer, Record as WireRecord};
use protocols::kad::{
    DEFAULT_PROTOCOL, KadConfig, KadEvent, KadOutput, KadRequest, Mode, Record, StoreError,
    WireError,
};
use swarm::{Bytes, Context, PeerId, PluginId, Protocol, ProtocolEvent, StreamError, StreamRef};

const LIMIT: Duration = Duration::from_secs(60);

/// What happened to one of the attacker's streams.
#[derive(Clone, Debug, Default)]
struct StreamLog {
    received: Vec<u8>,
    closed: Option<StreamError>,
    finished: bool,
}

/// The attacker's plugin: opens raw streams (through `with_context`) and
/// logs what comes back on each.
#[derive(Clone, Default)]
struct Raw {
    log: Arc<Mutex<HashMap<StreamRef, StreamLog>>>,
}

impl Protocol for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }

    fn handle_stream_data(&mut self, _: &mut Context<'_>, s: StreamRef, data: Bytes) {
        self.log
            .lock()
            .unwrap()
            .entry(s)
            .or_default()
            .received
            .extend_from_slice(&data);
    }

    fn handle_stream_finished(&mut self, _: &mut Context<'_>, s: StreamRef) {
        self.log.lock().unwrap().entry(s).or_default().finished = true;
    }

    fn handle_stream_closed(&mut self, _: &mut Context<'_>, s: StreamRef, reason: &StreamError) {
        self.log.lock().unwrap().entry(s).or_default().closed = Some(reason.clone());
    }

    fn handle_stream_stopped(&mut self, ctx: &mut Context<'_>, s: StreamRef, code: u64) {
        self.log.lock().unwrap().entry(s).or_default().closed = Some(StreamError::Stopped(code));
        let _ = ctx.abort(s, 0);
    }
}

/// Records the Kademlia events of the node it runs on.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<KadEvent>>>);

impl Protocol for Events {
    fn name(&self) -> &'static str {
        "events"
    }

    fn handle_protocol_event(&mut self, _: &mut Context<'_>, event: &ProtocolEvent) {
        if let Some(e) = event.downcast_ref::<KadEvent>() {
            self.0.lock().unwrap().push(e.clone());
        }
    }
}

struct Setup {
    net: KadNet,
    victim: usize,
    honest: usize,
    attacker: usize,
    raw: Raw,
    raw_id: PluginId,
    events: Events,
}

fn small_limits(c: &mut KadConfig) {
    c.max_message_size = 4096;
    c.max_record_size = 1024;
    c.max_provider_keys = 50;
    c.max_providers_per_key = 5;
    c.max_inbound_streams_per_peer = 4;
    c.max_requests_per_stream = 8;
    c.request_timeout = Duration::from_secs(2);
}

/// A victim server, an honest server that knows it, and an attacker with a
/// raw-stream plugin connected to the victim.
fn setup() -> Setup {
    let mut net = KadNet::new(3);
    let events = Events::default();
    let victim = net.add(Mode::Server, &[], small_limits);
    let e = events.clone();
    net.net.swarm(victim).add_protocol(Box::new(e));
    let honest = net.add(Mode::Server, &[victim], small_limits);
    let attacker = net.add(Mode::Client, &[], |_| {});
    let raw = Raw::default();
    let raw_id = net.net.swarm(attacker).add_protocol(Box::new(raw.clone()));
    let addr = net.net.dial_addr(victim);
    net.net.swarm(attacker).dial(&addr, false).unwrap();
    net.net.run_for(Duration::from_secs(1));
    Setup {
        net,
        victim,
        honest,
        attacker,
        raw,
        raw_id,
        events,
    }
}

impl Setup {
    /// Open a stream to the victim, send `bytes`, optionally finish.
    fn send(&mut self, bytes: Vec<u8>, finish: bool) -> StreamRef {
        let victim = self.net.nodes[self.victim].peer;
        self.net
            .net
            .swarm(self.attacker)
            .with_context(self.raw_id, |ctx| {
                let s = ctx.open_stream(victim, DEFAULT_PROTOCOL).expect("open");
                ctx.send(s, Bytes::from(bytes)).expect("send");
                if finish {
                    ctx.finish(s).expect("finish");
                }
                s
            })
    }

    fn run(&mut self, d: Duration) {
        self.net.net.run_for(d);
    }

    fn log(&self, s: StreamRef) -> StreamLog {
        self.raw
            .log
            .lock()
            .unwrap()
            .get(&s)
            .cloned()
            .unwrap_or_default()
    }

    fn inbound_errors(&self) -> Vec<WireError> {
        self.events
            .0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                KadEvent::InboundError { error, .. } => Some(error.clone()),
                _ => None,
            })
            .collect()
    }

    fn stats(&mut self) -> protocols::kad::KadStats {
        match self.net.ask(self.victim, KadRequest::Stats, LIMIT) {
            Ok(KadOutput::Stats(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    /// The victim still serves: the honest node stores a record on it.
    fn assert_still_serving(&mut self, key: &str) {
        let r = self.net.ask(
            self.honest,
            KadRequest::PutValue(Record::new(key.as_bytes().to_vec(), *b"v")),
            LIMIT,
        );
        assert_eq!(r, Ok(KadOutput::Stored(1)), "the victim stopped serving");
    }
}

fn framed(message: &WireMessage) -> Vec<u8> {
    wire::encode_message(message).to_vec()
}

fn was_refused(log: &StreamLog) -> bool {
    matches!(
        log.closed,
        Some(StreamError::Reset(protocols::kad::RESET_REFUSED))
            | Some(StreamError::Stopped(protocols::kad::RESET_REFUSED))
    )
}

#[test]
fn oversized_malformed_and_unknown_messages_are_refused_and_serving_goes_on() {
    let mut t = setup();
    // A length prefix over the limit: refused before the body arrives.
    let mut prefix = unsigned_varint::encode::usize_buffer();
    let oversized = unsigned_varint::encode::usize(1 << 20, &mut prefix).to_vec();
    let s1 = t.send(oversized, false);
    // A bad prefix, undecodable protobuf, an unknown message type.
    let s2 = t.send(vec![0xff; 12], false);
    let s3 = t.send(vec![3, 0x0f, 0xff, 0xff], false);
    let s4 = t.send(
        framed(&WireMessage {
            r#type: 99,
            key: b"k".to_vec(),
            ..Default::default()
        }),
        true,
    );
    t.run(Duration::from_secs(1));
    for s in [s1, s2, s3, s4] {
        assert!(was_refused(&t.log(s)), "{s}: {:?}", t.log(s));
    }
    let errors = t.inbound_errors();
    assert!(errors.contains(&WireError::MessageTooLarge {
        size: 1 << 20,
        limit: 4096
    }));
    assert!(errors.contains(&WireError::InvalidLengthPrefix));
    assert!(errors.iter().any(|e| matches!(e, WireError::Decode(_))));
    assert!(errors.contains(&WireError::UnexpectedType(99)));
    // A request cut off by the end of the stream.
    let mut cut = framed(&WireMessage {
        r#type: wire::FIND_NODE,
        key: b"abc".to_vec(),
        ..Default::default()
    });
    cut.pop();
    let s5 = t.send(cut, true);
    t.run(Duration::from_secs(1));
    assert!(was_refused(&t.log(s5)));
    assert!(t.inbound_errors().contains(&WireError::Truncated));
    t.assert_still_serving("after-garbage");
    assert_eq!(t.stats().inbound_streams, 0, "no stream left behind");
}

#[test]
fn bad_put_values_are_refused_with_typed_errors() {
    let mut t = setup();
    let put = |key: &[u8], record_key: &[u8], value: Vec<u8>| WireMessage {
        r#type: wire::PUT_VALUE,
        key: key.to_vec(),
        record: Some(WireRecord {
            key: record_key.to_vec(),
            value,
            ..Default::default()
        }),
        ..Default::default()
    };
    let s1 = t.send(framed(&put(b"a", b"b", b"v".to_vec())), true);
    let s2 = t.send(framed(&put(b"big", b"big", vec![0; 2000])), true);
    let s3 = t.send(
        framed(&WireMessage {
            r#type: wire::PUT_VALUE,
            key: b"none".to_vec(),
            ..Default::default()
        }),
        true,
    );
    // A /pk/ record whose value is not the key's public key.
    let mut pk = b"/pk/".to_vec();
    pk.extend_from_slice(&PeerId::random().to_bytes());
    let s4 = t.send(framed(&put(&pk, &pk, b"junk".to_vec())), true);
    // And a good one, echoed back.
    let good = put(b"good", b"good", b"v".to_vec());
    let s5 = t.send(framed(&good), true);
    t.run(Duration::from_secs(1));
    for s in [s1, s2, s3, s4] {
        assert!(was_refused(&t.log(s)), "{s}: {:?}", t.log(s));
    }
    let errors = t.inbound_errors();
    assert!(errors.iter().any(|e| matches!(e, WireError::Invalid(_))));
    assert!(
        errors.contains(&WireError::Refused(StoreError::RecordTooLarge {
            size: 2003,
            limit: 1024
        }))
    );
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, WireError::Refused(StoreError::Invalid(_))))
    );
    let log = t.log(s5);
    assert!(log.finished, "{log:?}");
    assert_eq!(log.received, framed(&good), "the answer echoes the request");
    assert_eq!(t.stats().records, 1);
}

#[test]
fn too_many_streams_or_requests_from_one_peer_are_refused() {
    let mut t = setup();
    let find = framed(&WireMessage {
        r#type: wire::FIND_NODE,
        key: b"k".to_vec(),
        ..Default::default()
    });
    // Six streams left open (limit 4): two are refused at once.
    let streams: Vec<StreamRef> = (0..6).map(|_| t.send(find.clone(), false)).collect();
    t.run(Duration::from_millis(200));
    let refused = streams.iter().filter(|s| was_refused(&t.log(**s))).count();
    assert_eq!(refused, 2);
    assert!(t.inbound_errors().contains(&WireError::TooManyInbound(4)));
    // The others are answered, then time out as idle (2 s) and free up.
    t.run(Duration::from_secs(3));
    assert_eq!(t.stats().inbound_streams, 0);
    // Nine requests on one stream (limit 8).
    let s = t.send(find.repeat(9), true);
    t.run(Duration::from_secs(1));
    assert!(was_refused(&t.log(s)));
    assert!(t.inbound_errors().contains(&WireError::TooManyRequests(8)));
    t.assert_still_serving("after-streams");
}

#[test]
fn an_add_provider_flood_stays_within_the_limits() {
    let mut t = setup();
    let attacker = t.net.nodes[t.attacker].peer;
    let me = WirePeer {
        id: attacker.to_bytes(),
        addrs: vec![t.net.net.multiaddr(t.attacker).to_vec()],
        connection: 0,
    };
    let someone_else = WirePeer {
        id: PeerId::random().to_bytes(),
        ..Default::default()
    };
    // 1000 ADD_PROVIDERs for distinct keys, 8 per stream, 4 streams at a time.
    let mut sent = 0;
    while sent < 1000 {
        for _ in 0..4 {
            let mut bytes = Vec::new();
            for _ in 0..8 {
                bytes.extend(framed(&WireMessage {
                    r#type: wire::ADD_PROVIDER,
                    key: format!("key-{sent}").into_bytes(),
                    provider_peers: vec![me.clone()],
                    ..Default::default()
                }));
                sent += 1;
            }
            t.send(bytes, true);
        }
        t.run(Duration::from_millis(100));
    }
    // One announcing a provider other than the sender.
    let s = t.send(
        framed(&WireMessage {
            r#type: wire::ADD_PROVIDER,
            key: b"foreign".to_vec(),
            provider_peers: vec![someone_else],
            ..Default::default()
        }),
        true,
    );
    t.run(Duration::from_secs(1));
    assert!(was_refused(&t.log(s)));
    let stats = t.stats();
    assert_eq!(stats.provider_keys, 50, "{stats:?}");
    assert_eq!(stats.providers, 50);
    let errors = t.inbound_errors();
    assert!(errors.contains(&WireError::Refused(StoreError::ProviderKeysFull(50))));
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, WireError::Refused(StoreError::ForeignProvider { .. })))
    );
    t.assert_still_serving("after-flood");
}

/// A server whose every FIND_NODE answer names 20 made-up peers at an
/// address nobody has, one of them 10 times, and itself.
struct Liar {
    me: PeerId,
}

impl Protocol for Liar {
    fn name(&self) -> &'static str {
        "liar"
    }

    fn protocol_ids(&self) -> Vec<String> {
        vec![DEFAULT_PROTOCOL.into()]
    }

    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, s: StreamRef, _: Bytes) {
        let nowhere: swarm::Multiaddr = "/ip4/10.99.0.1/udp/1000/quic-v1".parse().unwrap();
        let fake = |id: PeerId| WirePeer {
            id: id.to_bytes(),
            addrs: vec![nowhere.to_vec()],
            connection: 0,
        };
        let mut closer: Vec<WirePeer> = (0..20).map(|_| fake(PeerId::random())).collect();
        let twin = PeerId::random();
        closer.extend((0..10).map(|_| fake(twin)));
        closer.push(fake(self.me));
        let answer = WireMessage {
            r#type: wire::FIND_NODE,
            closer_peers: closer,
            ..Default::default()
        };
        let _ = ctx.send(s, wire::encode_message(&answer));
        let _ = ctx.finish(s);
    }
}

#[test]
fn closer_peers_full_of_unreachable_and_duplicate_entries_do_not_stall_a_lookup() {
    let mut net = KadNet::new(4);
    let honest = net.add(Mode::Server, &[], |_| {});
    // The liar: a client-mode node (so that its Kademlia plugin does not
    // take the protocol) with the lying plugin serving it.
    let liar = net.add(Mode::Client, &[], |_| {});
    let me = net.nodes[liar].peer;
    net.net.swarm(liar).add_protocol(Box::new(Liar { me }));
    let asker = net.add(Mode::Client, &[honest, liar], |c| {
        c.request_timeout = Duration::from_secs(2);
        c.bootstrap_interval = None;
    });
    let started = net.net.now();
    let r = net.ask(asker, KadRequest::GetClosestPeers(b"k".to_vec()), LIMIT);
    let took = net.net.now() - started;
    let Ok(KadOutput::ClosestPeers(peers)) = r else {
        panic!("{r:?}");
    };
    // The honest node and the liar answered; none of the made-up peers did.
    assert!(peers.contains(&net.nodes[honest].peer), "{peers:?}");
    assert!(peers.len() <= 2, "{peers:?}");
    // The made-up peers were tried (and failed within the request timeout,
    // three at a time), and the lookup ended well before its own timeout.
    assert!(
        took >= Duration::from_secs(2),
        "took {took:?}: nobody was tried"
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
    // The made-up peers' addresses came from an answer: the peer store
    // holds them for `lookup_address_ttl` (2 min), not for an hour.
    let nowhere: swarm::Multiaddr = "/ip4/10.99.0.1/udp/1000/quic-v1".parse().unwrap();
    let made_up = |net: &mut KadNet| {
        let now = net.net.now();
        let store = net.net.swarm(asker).peer_store();
        store
            .peers()
            .filter(|p| store.addresses(p, now).contains(&nowhere))
            .count()
    };
    assert!(made_up(&mut net) >= 20, "the answer's peers were learned");
    net.net.run_for(Duration::from_secs(121));
    assert_eq!(made_up(&mut net), 0, "expired after lookup_address_ttl");
}
