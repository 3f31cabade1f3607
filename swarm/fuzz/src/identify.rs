//! Target `identify`: arbitrary bytes into the identify decoder and its
//! merging of pushes. `protocols::identify` keeps its decoder private, so the
//! target drives the real plugin over the virtual network: node 0 runs
//! `Identify`; node 1 is a scripted peer that answers node 0's request and
//! pushes with whatever the input says, chunked and timed as it says.
//!
//! Checks: no panic; the connection survives whatever identify receives;
//! every `Received` event names the connection's peer with its own key; and,
//! for inputs without pushes whose answer ends before the timeout, the
//! outcome (the merged info, or the exact error) equals what an independent
//! reading of the answer bytes predicts. Tables are empty after shutdown.
//!
//! Input: a sequence of operations (at most [`MAX_OPS`]), each one byte and
//! its arguments: `0 len:u16 bytes` answer chunk, `1 len:u16 bytes` push
//! chunk (opens a push stream if none), `2` finish the push, `3` finish the
//! answer, `4 t:u8` let time pass (`t & 0x7f` seconds if `t & 0x80`, else
//! `4 t` ms), `5 which:u8` reset the answer (even) or the push (odd).

use std::time::Duration;

use prost::Message;
use protocols::identify::{
    Identify as IdentifyPlugin, IdentifyConfig, IdentifyError, IdentifyEvent, IdentifyInfo,
    PROTOCOL, PUSH_PROTOCOL,
};
use swarm::multiaddr::Protocol as AddrPart;
use swarm::{Multiaddr, PeerId, PublicKey, StreamRef, SwarmConfig};

use crate::input::Input;
use crate::net;
use crate::observe;
use crate::peer::{self, Peer};

/// Operations per input.
pub const MAX_OPS: usize = 64;
const VICTIM: usize = 0;
const HOSTILE: usize = 1;
/// `IdentifyConfig`'s defaults, which the victim uses.
const MAX_MESSAGE_SIZE: usize = protocols::identify::DEFAULT_MAX_MESSAGE_SIZE;
const MAX_MESSAGES: usize = 10;
/// Answers that end this long after the request are not predicted (the
/// 30 s identify timeout may win the race).
const PREDICT_WITHIN: Duration = Duration::from_secs(25);

/// The identify wire message (libp2p `identify.proto`), for the oracle and
/// the seeds. Named like the plugin's so that decode errors read the same.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Identify {
    /// Protocol family and version.
    #[prost(string, optional, tag = "5")]
    pub protocol_version: Option<String>,
    /// Implementation name and version.
    #[prost(string, optional, tag = "6")]
    pub agent_version: Option<String>,
    /// The sender's host public key, protobuf-encoded.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub public_key: Option<Vec<u8>>,
    /// Listen addresses, as multiaddr bytes.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub listen_addrs: Vec<Vec<u8>>,
    /// The receiver's address as the sender sees it.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub observed_addr: Option<Vec<u8>>,
    /// Protocol ids.
    #[prost(string, repeated, tag = "3")]
    pub protocols: Vec<String>,
    /// A signed peer record (ignored).
    #[prost(bytes = "vec", optional, tag = "8")]
    pub signed_peer_record: Option<Vec<u8>>,
}

fn node_config(n: u8) -> SwarmConfig {
    let mut config = net::config(n);
    // Only identify may end the connection, never idleness.
    config.idle_connection_timeout = Duration::from_secs(24 * 3600);
    config
}

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let mut net = net::new();
    let (observer, victim_log) = Peer::new(&[]);
    net::add_swarm(&mut net, node_config(0), |s| {
        let config = IdentifyConfig::new(net::keypair(0).public());
        s.add_protocol(Box::new(IdentifyPlugin::new(config)));
        s.add_protocol(Box::new(observer));
    });
    let (hostile, log) = Peer::new(&[PROTOCOL]);
    let mut hostile_id = None;
    net::add_swarm(&mut net, node_config(1), |s| {
        hostile_id = Some(s.add_protocol(Box::new(hostile)))
    });
    let hostile_id = hostile_id.expect("plugin id");
    let victim_addr = net.dial_addr(VICTIM);
    net.swarm(HOSTILE).dial(&victim_addr, false).expect("dial");
    let asked = net
        .run_until(Duration::from_secs(5), |_| {
            log.lock().streams.values().any(|s| s.inbound)
        })
        .is_done();
    assert!(asked, "the victim never asked who we are");
    let answer = *log.lock().order.first().expect("request stream");
    let conn = answer.conn;
    let asked_at = net.now();

    let mut push: Option<StreamRef> = None;
    let mut pushed = false;
    let mut answer_finished_at = None;
    let mut answer_reset = false;
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let swarm = net.swarm(HOSTILE);
        let op = input.u8() % 6;
        observe::note(|| format!("op {op}"));
        match op {
            0 => {
                let chunk = input.long_bytes(12_000);
                swarm.with_context(hostile_id, |ctx| peer::write(ctx, &log, answer, chunk));
            }
            1 => {
                let chunk = input.long_bytes(12_000);
                pushed = true;
                swarm.with_context(hostile_id, |ctx| {
                    if push.is_none() {
                        push = peer::open(ctx, &log, conn, PUSH_PROTOCOL);
                    }
                    if let Some(s) = push {
                        peer::write(ctx, &log, s, chunk);
                    }
                });
            }
            2 => {
                if let Some(s) = push.take() {
                    swarm.with_context(hostile_id, |ctx| peer::finish(ctx, &log, s));
                }
            }
            3 => {
                swarm.with_context(hostile_id, |ctx| peer::finish(ctx, &log, answer));
                answer_finished_at.get_or_insert(net.now());
            }
            4 => {
                let t = input.u8();
                let d = if t & 0x80 != 0 {
                    Duration::from_secs(u64::from(t & 0x7f))
                } else {
                    Duration::from_millis(4 * u64::from(t))
                };
                net.run_for(d);
            }
            _ => {
                let target = if input.u8().is_multiple_of(2) {
                    answer_reset = true;
                    Some(answer)
                } else {
                    push.take()
                };
                if let Some(s) = target {
                    swarm.with_context(hostile_id, |ctx| peer::abort(ctx, &log, s, 9));
                }
            }
        }
    }
    // End whatever is still open, and let every exchange finish or time out.
    let swarm = net.swarm(HOSTILE);
    swarm.with_context(hostile_id, |ctx| {
        if let Some(s) = push {
            peer::finish(ctx, &log, s);
        }
        peer::finish(ctx, &log, answer);
    });
    answer_finished_at.get_or_insert(net.now());
    net.run_for(Duration::from_secs(40));

    // The connection survives any identify input.
    let victim_peer = net::peer_id(0);
    let hostile_peer = net::peer_id(1);
    assert_eq!(
        net.swarm(VICTIM).connections_to(&hostile_peer).len(),
        1,
        "identify input closed the connection"
    );
    assert_eq!(net.swarm(HOSTILE).connections_to(&victim_peer).len(), 1);

    let events: Vec<IdentifyEvent> = victim_log
        .lock()
        .events
        .iter()
        .filter_map(|e| e.downcast_ref::<IdentifyEvent>().cloned())
        .collect();
    let mut answers = Vec::new();
    for event in &events {
        observe::note(|| match event {
            IdentifyEvent::Received { info, pushed, .. } => format!(
                "received pushed={pushed} addrs={} protocols={} observed={}",
                info.listen_addrs.len().min(2),
                info.protocols.len().min(2),
                info.observed_addr.is_some()
            ),
            IdentifyEvent::Error { error, .. } => format!("error {}", observe::shape(error)),
            other => observe::shape(other).split(' ').next().unwrap_or("").into(),
        });
        match event {
            IdentifyEvent::Received {
                peer,
                info,
                pushed: was_push,
                ..
            } => {
                assert_eq!(*peer, hostile_peer, "received info for another peer");
                assert_eq!(
                    info.public_key.to_peer_id(),
                    hostile_peer,
                    "foreign key accepted"
                );
                if !was_push {
                    answers.push(Ok(info.clone()));
                }
            }
            IdentifyEvent::Error { peer, error, .. } => {
                assert_eq!(*peer, hostile_peer);
                answers.push(Err(error.clone()));
            }
            IdentifyEvent::Sent { .. } | IdentifyEvent::Pushed { .. } => {}
        }
    }

    for l in log.lock().streams.values() {
        observe::note(|| {
            let closed = l.closed.as_ref().map(observe::shape);
            format!("stream {} fin={} closed={closed:?}", l.protocol, l.finished)
        });
    }
    let answered_in_time = answer_finished_at.is_some_and(|t| t - asked_at < PREDICT_WITHIN);
    if !pushed && !answer_reset && answered_in_time {
        let wire = log.lock().streams[&answer].written.clone();
        let expected = predict(&wire, hostile_peer);
        observe::note(|| {
            format!(
                "predicted {}",
                observe::shape(&expected.as_ref().map(|_| ()))
            )
        });
        assert_eq!(answers.len(), 1, "one answer, one outcome: {events:?}");
        match (&expected, &answers[0]) {
            (Err(IdentifyError::Decode(_)), Err(IdentifyError::Decode(_))) => {}
            (expected, actual) => assert_eq!(expected, actual, "identify decoded differently"),
        }
    }
    net::shutdown_and_check_empty(&mut net);
}

/// Independent reading of an answer stream: what identify must conclude.
pub fn predict(wire: &[u8], peer: PeerId) -> Result<IdentifyInfo, IdentifyError> {
    let mut rest = wire;
    let mut merged: Option<Identify> = None;
    let mut count = 0;
    while !rest.is_empty() {
        let (len, used) = match varint(rest) {
            Varint::Value(len, used) => (len, used),
            Varint::Incomplete => return Err(IdentifyError::Truncated),
            Varint::Invalid => return Err(IdentifyError::InvalidLengthPrefix),
        };
        if len > MAX_MESSAGE_SIZE as u64 {
            return Err(IdentifyError::MessageTooLarge {
                size: len as usize,
                limit: MAX_MESSAGE_SIZE,
            });
        }
        if count >= MAX_MESSAGES {
            return Err(IdentifyError::TooManyMessages(MAX_MESSAGES));
        }
        let len = len as usize;
        if rest.len() - used < len {
            return Err(IdentifyError::Truncated);
        }
        merged
            .get_or_insert_with(Identify::default)
            .merge(&rest[used..used + len])?;
        count += 1;
        rest = &rest[used + len..];
    }
    let message = merged.ok_or(IdentifyError::Empty)?;
    let public_key = match &message.public_key {
        None => None,
        Some(bytes) => {
            let key = PublicKey::try_decode_protobuf(bytes)
                .map_err(|e| IdentifyError::InvalidPublicKey(e.to_string()))?;
            if key.to_peer_id() != peer {
                return Err(IdentifyError::WrongPeerId {
                    actual: key.to_peer_id(),
                });
            }
            Some(key)
        }
    };
    let public_key = public_key.ok_or(IdentifyError::MissingPublicKey)?;
    let listen_addrs = message
        .listen_addrs
        .iter()
        .filter_map(|b| Multiaddr::try_from(b.clone()).ok())
        .filter_map(|mut a| match a.iter().last() {
            Some(AddrPart::P2p(id)) if id == peer => {
                a.pop();
                Some(a)
            }
            Some(AddrPart::P2p(_)) => None,
            _ => Some(a),
        })
        .collect();
    Ok(IdentifyInfo {
        public_key,
        protocol_version: message.protocol_version.unwrap_or_default(),
        agent_version: message.agent_version.unwrap_or_default(),
        listen_addrs,
        protocols: message.protocols,
        observed_addr: message
            .observed_addr
            .and_then(|b| Multiaddr::try_from(b).ok()),
    })
}

enum Varint {
    /// The value and the bytes it took.
    Value(u64, usize),
    Incomplete,
    Invalid,
}

/// An unsigned LEB128 length as libp2p frames it: at most 10 bytes, minimal.
fn varint(buf: &[u8]) -> Varint {
    let mut value = 0u64;
    for (i, &b) in buf.iter().enumerate() {
        value |= u64::from(b & 0x7f).wrapping_shl(7 * i as u32);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return Varint::Invalid;
            }
            return Varint::Value(value, i + 1);
        }
        if i == 9 {
            return Varint::Invalid;
        }
    }
    Varint::Incomplete
}

/// A length-prefixed identify message.
pub fn frame(message: &Identify) -> Vec<u8> {
    message.encode_length_delimited_to_vec()
}

/// A complete, valid message from node 1.
pub fn full_message() -> Identify {
    let peer = net::peer_id(1);
    let listen: Multiaddr = "/ip4/10.0.0.2/udp/1000/quic-v1".parse().expect("addr");
    Identify {
        protocol_version: Some("/ipfs/0.1.0".into()),
        agent_version: Some("fuzz/1.0".into()),
        public_key: Some(net::keypair(1).public().encode_protobuf()),
        listen_addrs: vec![
            listen.to_vec(),
            listen.clone().with(AddrPart::P2p(peer)).to_vec(),
            listen.with(AddrPart::P2p(net::peer_id(0))).to_vec(),
            vec![0xff, 0x01],
        ],
        observed_addr: Some(net::quic_multiaddr(([10, 0, 0, 1], 1000).into()).to_vec()),
        protocols: vec![PROTOCOL.into(), "/ipfs/ping/1.0.0".into()],
        signed_peer_record: None,
    }
}

fn op_chunk(op: u8, data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).expect("short chunk");
    [&[op][..], &len.to_le_bytes(), data].concat()
}

/// Inputs worth starting from.
pub fn seeds() -> Vec<Vec<u8>> {
    let full = frame(&full_message());
    let (head, tail) = full.split_at(full.len() / 2);
    let split_go_style = [
        frame(&Identify {
            protocols: vec![],
            ..full_message()
        }),
        frame(&Identify {
            protocols: vec!["/x/1.0.0".into()],
            ..Identify::default()
        }),
    ]
    .concat();
    let keyless = frame(&Identify {
        public_key: None,
        ..full_message()
    });
    let foreign_key = frame(&Identify {
        public_key: Some(net::keypair(0).public().encode_protobuf()),
        ..full_message()
    });
    let bad_key = frame(&Identify {
        public_key: Some(vec![8, 1, 18, 3, 1, 2, 3]),
        ..full_message()
    });
    let update = frame(&Identify {
        agent_version: Some("fuzz/2.0".into()),
        ..Identify::default()
    });
    let tiny = frame(&Identify {
        agent_version: Some("a".into()),
        ..Identify::default()
    });
    vec![
        [op_chunk(0, &full), vec![3]].concat(),
        [op_chunk(0, head), vec![4, 10], op_chunk(0, tail), vec![3]].concat(),
        [op_chunk(0, &split_go_style), vec![3]].concat(),
        [
            op_chunk(0, &full),
            vec![3, 4, 20],
            op_chunk(1, &update),
            vec![2],
        ]
        .concat(),
        [
            op_chunk(1, &update),
            vec![2, 4, 20],
            op_chunk(0, &full),
            vec![3],
        ]
        .concat(),
        [op_chunk(0, &[3, 0x0f, 0xff, 0xff]), vec![3]].concat(),
        [op_chunk(0, &[0xa8, 0x46]), vec![3]].concat(),
        [op_chunk(0, &keyless), vec![3]].concat(),
        [op_chunk(0, &foreign_key), vec![3]].concat(),
        [op_chunk(0, &bad_key), vec![3]].concat(),
        [op_chunk(0, &tiny.repeat(11)), vec![3]].concat(),
        [op_chunk(0, &full[..full.len() - 1]), vec![3]].concat(),
        vec![3],
        [op_chunk(0, head), vec![5, 0]].concat(),
        [op_chunk(0, head), vec![4, 0xa0]].concat(),
    ]
}
