//! Relayed connections (`Context::relay_connection`): a stream of one
//! connection carries a second connection between the same two nodes,
//! upgraded with Noise and Yamux as TCP is. Here the "relay" is the direct
//! connection itself (a tunnel plugin on each side hands its stream over),
//! which exercises everything a circuit relay client needs from the swarm:
//! the upgrade over a stream on both sides, the PeerId check, streams both
//! ways, back-pressure across the carrier, and each side's end ending the
//! other.

mod common;

use std::io::{Read, Write};

use common::*;
use swarm::multiaddr::Protocol as P;
use swarm::{
    Bytes, ConnId, Context, DialError, Multiaddr, PeerId, PluginId, Protocol, RelayedRole,
    StreamRef, StreamTarget, SwarmEvent,
};

const TUNNEL: &str = "/test/tunnel/1.0.0";
const SINK: &str = "/test/sink/1.0.0";

/// Opens a tunnel stream on every direct connection it dialed and makes
/// it carry a relayed connection to the same peer (or to `expect`, to test
/// the PeerId check); answers tunnels the other way.
struct TunnelPlugin {
    expect: Option<PeerId>,
}

fn circuit_addr(peer: PeerId) -> Multiaddr {
    Multiaddr::empty()
        .with(P::P2p(peer))
        .with(P::P2pCircuit)
        .with(P::P2p(peer))
}

impl Protocol for TunnelPlugin {
    fn name(&self) -> &'static str {
        "tunnel"
    }
    fn protocol_ids(&self) -> Vec<String> {
        vec![TUNNEL.into()]
    }
    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, _peer: PeerId) {
        if ctx.connection_is_outbound(conn) == Some(true) && !ctx.connection_is_relayed(conn) {
            ctx.open_stream(StreamTarget::Conn(conn), TUNNEL)
                .expect("open tunnel");
        }
    }
    fn handle_stream_negotiated(
        &mut self,
        ctx: &mut Context<'_>,
        stream: StreamRef,
        _protocol: &str,
    ) {
        let peer = ctx.connection_peer(stream.conn).expect("peer");
        let expected = self.expect.unwrap_or(peer);
        ctx.relay_connection(
            stream,
            RelayedRole::Dialer { expected },
            circuit_addr(peer),
            Bytes::new(),
        )
        .expect("relay");
    }
    fn accept_inbound_stream(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _p: &str) {
        let peer = ctx.connection_peer(stream.conn).expect("peer");
        ctx.relay_connection(
            stream,
            RelayedRole::Listener,
            circuit_addr(peer),
            Bytes::new(),
        )
        .expect("relay");
    }
}

/// Counts what a stream brings; when it finishes, answers the count (8
/// bytes, big-endian) and finishes.
struct SinkPlugin {
    counts: std::collections::HashMap<StreamRef, u64>,
}

impl Protocol for SinkPlugin {
    fn name(&self) -> &'static str {
        "sink"
    }
    fn protocol_ids(&self) -> Vec<String> {
        vec![SINK.into()]
    }
    fn handle_stream_data(&mut self, _ctx: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        *self.counts.entry(stream).or_default() += data.len() as u64;
    }
    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        let n = self.counts.remove(&stream).unwrap_or(0);
        ctx.write(stream, &n.to_be_bytes()).expect("answer");
        ctx.finish(stream).expect("finish");
    }
}

fn tunnel_node(seed: u8, expect: Option<PeerId>) -> Node {
    node(
        config(seed),
        vec![
            Box::new(EchoPlugin),
            Box::new(TunnelPlugin { expect }),
            Box::new(SinkPlugin {
                counts: Default::default(),
            }),
        ],
    )
}

/// The relayed connection a node reports established.
fn relayed_conn(node: &Node) -> (ConnId, PeerId) {
    node.wait_for(|e| match e {
        SwarmEvent::ConnectionEstablished {
            conn,
            peer,
            remote_addr,
            ..
        } if remote_addr.to_string().contains("p2p-circuit") => Some((*conn, *peer)),
        _ => None,
    })
    .expect("a relayed connection")
}

fn is_relayed(node: &Node, conn: ConnId) -> bool {
    node.handle
        .call(TIMEOUT, move |s| {
            s.with_context(PluginId::external(), |ctx| ctx.connection_is_relayed(conn))
        })
        .expect("call")
}

/// Echo `data` over one given connection.
fn echo_over(node: &Node, conn: ConnId, data: &[u8]) -> Vec<u8> {
    let mut s = node
        .handle
        .open_stream(StreamTarget::Conn(conn), ECHO, TIMEOUT)
        .expect("stream on the relayed connection");
    s.set_timeout(Some(TIMEOUT));
    s.write_all(data).expect("write");
    s.finish().expect("finish");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    out
}

#[test]
fn a_relayed_connection_over_a_stream_carries_streams_both_ways() {
    let a = tunnel_node(110, None);
    let b = tunnel_node(111, None);
    let direct = a.handle.dial(&b.p2p_addr(), false, TIMEOUT).expect("dial");
    let (a_relayed, peer) = relayed_conn(&a);
    assert_eq!(peer, b.peer);
    let (b_relayed, peer) = relayed_conn(&b);
    assert_eq!(peer, a.peer);
    assert!(is_relayed(&a, a_relayed) && is_relayed(&b, b_relayed));
    assert!(!is_relayed(&a, direct));
    for data in [b"through the tunnel".to_vec(), pattern(200_000)] {
        assert_eq!(echo_over(&a, a_relayed, &data), data);
        assert_eq!(echo_over(&b, b_relayed, &data), data);
    }
}

#[test]
fn bulk_data_crosses_a_relayed_connection_in_order_and_complete() {
    let a = tunnel_node(112, None);
    let b = tunnel_node(113, None);
    a.handle.dial(&b.p2p_addr(), false, TIMEOUT).expect("dial");
    let (relayed, _) = relayed_conn(&a);
    // Far more than every window on the way (inner Yamux, carrier QUIC).
    let total: u64 = 24 << 20;
    let mut s = a
        .handle
        .open_stream(StreamTarget::Conn(relayed), SINK, TIMEOUT)
        .expect("sink stream");
    s.set_timeout(Some(TIMEOUT));
    let chunk = pattern(64 * 1024);
    let mut sent = 0u64;
    while sent < total {
        s.write_all(&chunk).expect("write");
        sent += chunk.len() as u64;
    }
    s.finish().expect("finish");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("answer");
    assert_eq!(answer, total.to_be_bytes());
}

#[test]
fn closing_the_relayed_connection_leaves_the_carrying_one_open() {
    let a = tunnel_node(114, None);
    let b = tunnel_node(115, None);
    let direct = a.handle.dial(&b.p2p_addr(), false, TIMEOUT).expect("dial");
    let (a_relayed, _) = relayed_conn(&a);
    let (b_relayed, _) = relayed_conn(&b);
    a.handle
        .call(TIMEOUT, move |s| {
            s.with_context(PluginId::external(), |ctx| {
                ctx.close_connection(a_relayed, 0)
            })
        })
        .expect("call")
        .expect("close");
    let closed = b.wait_for(|e| match e {
        SwarmEvent::ConnectionClosed { conn, .. } if *conn == b_relayed => Some(()),
        _ => None,
    });
    assert!(closed.is_some(), "the other side's relayed connection ends");
    assert_eq!(echo_over(&a, direct, b"still here"), b"still here");
}

#[test]
fn closing_the_carrying_connection_ends_the_relayed_one_with_a_reason() {
    let a = tunnel_node(116, None);
    let b = tunnel_node(117, None);
    let direct = a.handle.dial(&b.p2p_addr(), false, TIMEOUT).expect("dial");
    let (a_relayed, _) = relayed_conn(&a);
    a.handle
        .call(TIMEOUT, move |s| {
            s.with_context(PluginId::external(), |ctx| ctx.close_connection(direct, 0))
        })
        .expect("call")
        .expect("close");
    let reason = a
        .wait_for(|e| match e {
            SwarmEvent::ConnectionClosed { conn, reason, .. } if *conn == a_relayed => {
                Some(reason.clone())
            }
            _ => None,
        })
        .expect("the relayed connection ends");
    assert!(reason.contains("relay"), "{reason}");
}

#[test]
fn a_relayed_dial_of_the_wrong_peer_fails_in_the_handshake() {
    let wrong = swarm::Keypair::generate_ed25519().public().to_peer_id();
    let a = tunnel_node(118, Some(wrong));
    let b = tunnel_node(119, None);
    a.handle.dial(&b.p2p_addr(), false, TIMEOUT).expect("dial");
    let error = a
        .wait_for(|e| match e {
            SwarmEvent::DialFailed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .expect("the relayed dial fails");
    match error {
        DialError::WrongPeerId { expected, actual } => {
            assert_eq!((expected, actual), (wrong, b.peer))
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_relayed_connection_rides_a_tcp_connection_too() {
    let (a, _) = tunnel_tcp_node(122);
    let (b, b_tcp) = tunnel_tcp_node(123);
    a.handle
        .dial(&b_tcp.with(P::P2p(b.peer)), false, TIMEOUT)
        .expect("TCP dial");
    let (relayed, _) = relayed_conn(&a);
    assert!(is_relayed(&a, relayed));
    let data = pattern(150_000);
    assert_eq!(echo_over(&a, relayed, &data), data);
}

/// A node with the tunnel plugins listening on QUIC and TCP.
fn tunnel_tcp_node(seed: u8) -> (Node, Multiaddr) {
    let mut rt = swarm::Runtime::new(config(seed)).expect("runtime");
    rt.add_protocol(Box::new(EchoPlugin));
    rt.add_protocol(Box::new(TunnelPlugin { expect: None }));
    let quic = rt
        .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
        .expect("quic listen");
    let tcp = rt
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .expect("tcp listen");
    let peer = rt.swarm().local_peer_id();
    let (handle, thread) = rt.spawn().expect("spawn");
    let events = subscribed(&handle);
    (Node::from_parts(handle, peer, quic, events, thread), tcp)
}
