//! Hostile input to the router and the RPC reader: garbage and oversized
//! RPCs, IHAVE floods, IWANT for ids never advertised, invalid
//! signatures. Each is refused and counted, and the node keeps serving.

mod gossipsub_harness;

use gossipsub_harness::{RouterNet, SEC, TOPIC, decode, signed};
use protocols::gossipsub::proto::{ControlIHave, ControlIWant, ControlMessage, Rpc};
use protocols::gossipsub::{RpcReader, WireError, encode};
use rand::SeedableRng;
use rand::rngs::StdRng;

#[test]
fn garbage_and_oversized_rpcs_are_typed_errors() {
    let mut out = Vec::new();
    // A valid length prefix around bytes that are not protobuf.
    let mut reader = RpcReader::new(1024);
    let err = reader.push(&[4, 0xff, 0xff, 0xff, 0xff], &mut out);
    assert!(matches!(err, Err(WireError::Decode(_))), "{err:?}");
    // A prefix announcing more than the limit is refused before buffering.
    let mut reader = RpcReader::new(1024);
    let mut prefix = unsigned_varint::encode::usize_buffer();
    let err = reader.push(
        unsigned_varint::encode::usize(1 << 30, &mut prefix),
        &mut out,
    );
    assert_eq!(
        err,
        Err(WireError::TooLarge {
            size: 1 << 30,
            limit: 1024
        })
    );
    // An overlong varint.
    let mut reader = RpcReader::new(1024);
    let err = reader.push(&[0xff; 11], &mut out);
    assert_eq!(err, Err(WireError::InvalidLengthPrefix));
    // Valid RPCs split at every byte still decode.
    let frame = encode(&Rpc {
        subscriptions: vec![],
        publish: vec![],
        control: Some(ControlMessage::default()),
    });
    let mut reader = RpcReader::new(1024);
    let two = [frame.clone(), frame].concat();
    for b in &two {
        reader.push(std::slice::from_ref(b), &mut out).unwrap();
    }
    assert_eq!(out.len(), 2);
    assert!(reader.is_between_rpcs());
}

fn two_subscribed_nodes() -> RouterNet {
    let mut net = RouterNet::new(2, 11, signed);
    net.connect(0, 1);
    net.deliver();
    net.subscribe(0);
    net.subscribe(1);
    net.deliver();
    net.tick(SEC);
    net
}

#[test]
fn ihave_flood_is_capped_per_heartbeat() {
    let mut net = two_subscribed_nodes();
    let attacker = net.ids[1];
    let mut rng = StdRng::seed_from_u64(1);
    let now = net.now;
    // 100 IHAVEs of 10,000 ids each in one heartbeat.
    for k in 0..100u32 {
        let ids = (0..10_000u32)
            .map(|i| [k.to_be_bytes(), i.to_be_bytes()].concat())
            .collect();
        let rpc = Rpc {
            control: Some(ControlMessage {
                ihave: vec![ControlIHave {
                    topic_id: Some(TOPIC.into()),
                    message_ids: ids,
                }],
                ..ControlMessage::default()
            }),
            ..Rpc::default()
        };
        net.r(0).handle_rpc(attacker, rpc, now, &mut rng);
    }
    let mut asked = 0;
    while let Some(frame) = net.r(0).pop_frame(&attacker) {
        for rpc in decode(&frame) {
            asked += rpc
                .control
                .map(|c| c.iwant.iter().map(|w| w.message_ids.len()).sum::<usize>())
                .unwrap_or(0);
        }
    }
    let config_max = net.r(0).config().max_ihave_length;
    assert!(asked <= config_max, "asked {asked} ids");
    assert!(
        net.r(0).stats().ihave_ignored >= 90,
        "IHAVEs over the limit not counted"
    );
    // Next heartbeat the budget is back.
    net.tick(SEC);
    assert_eq!(net.r(0).peers().count(), 1, "attacker still served");
}

#[test]
fn iwant_for_never_advertised_ids_gets_nothing() {
    let mut net = two_subscribed_nodes();
    let attacker = net.ids[1];
    let mut rng = StdRng::seed_from_u64(1);
    let now = net.now;
    let rpc = Rpc {
        control: Some(ControlMessage {
            iwant: vec![ControlIWant {
                message_ids: (0..500u32).map(|i| i.to_be_bytes().to_vec()).collect(),
            }],
            ..ControlMessage::default()
        }),
        ..Rpc::default()
    };
    net.r(0).handle_rpc(attacker, rpc, now, &mut rng);
    while let Some(frame) = net.r(0).pop_frame(&attacker) {
        for rpc in decode(&frame) {
            assert!(rpc.publish.is_empty(), "sent a message for an unknown id");
        }
    }
    assert_eq!(net.r(0).stats().iwant_unknown, 500);
    // An id we did publish is answered, at most `gossip_retransmission` times.
    let id = net.publish(0, b"real").unwrap();
    while net.r(0).pop_frame(&attacker).is_some() {}
    for _ in 0..5 {
        let rpc = Rpc {
            control: Some(ControlMessage {
                iwant: vec![ControlIWant {
                    message_ids: vec![id.0.clone()],
                }],
                ..ControlMessage::default()
            }),
            ..Rpc::default()
        };
        net.r(0).handle_rpc(attacker, rpc, now, &mut rng);
    }
    let mut answers = 0;
    while let Some(frame) = net.r(0).pop_frame(&attacker) {
        answers += decode(&frame)
            .iter()
            .map(|r| r.publish.len())
            .sum::<usize>();
    }
    assert_eq!(answers, 3);
    assert_eq!(net.r(0).stats().iwant_over_limit, 2);
}

#[test]
fn invalid_signatures_are_refused_and_counted_and_the_node_keeps_serving() {
    let mut net = RouterNet::new(3, 12, signed);
    net.connect(0, 1);
    net.connect(1, 2);
    net.deliver();
    for i in 0..3 {
        net.subscribe(i);
    }
    net.deliver();
    net.tick(SEC);
    // Take a message node 0 signed, tamper with it, send it to node 1.
    net.stalled.insert(0);
    net.publish(0, b"genuine").unwrap();
    let to1 = net.ids[1];
    let frame = net.r(0).pop_frame(&to1).unwrap();
    net.stalled.clear();
    let mut rpc = decode(&frame).remove(0);
    let genuine = rpc.clone();
    rpc.publish[0].data = Some(b"forged".to_vec());
    let mut no_signature = genuine.clone();
    no_signature.publish[0].signature = None;
    no_signature.publish[0].seqno = Some(vec![9; 8]);
    let mut bad_seqno = genuine.clone();
    bad_seqno.publish[0].seqno = Some(vec![1, 2, 3]);
    let from = net.ids[0];
    let now = net.now;
    let mut rng = StdRng::seed_from_u64(3);
    for bad in [rpc, no_signature, bad_seqno] {
        net.r(1).handle_rpc(from, bad, now, &mut rng);
    }
    net.deliver();
    assert_eq!(net.r(1).stats().invalid_messages, 3);
    assert!(net.received(1).is_empty());
    assert!(
        net.received(2).is_empty(),
        "an invalid message was forwarded"
    );
    // The genuine one still passes, and is forwarded.
    net.r(1).handle_rpc(from, genuine, now, &mut rng);
    net.deliver();
    assert_eq!(net.received(1), vec![b"genuine".to_vec()]);
    assert_eq!(net.received(2), vec![b"genuine".to_vec()]);
}
