//! TCP dials from the listen port (`SwarmConfig::tcp_port_reuse`): the
//! remote sees the port we listen on, which identify's observed address
//! and DCUtR's TCP hole punch rely on; a second dial to the same address
//! leaves from another port instead of failing; `dial_as_listener` (the
//! hole punch's simultaneous open) refuses what it cannot do.
//!
//! The simultaneous open itself needs SYNs that cross, which loopback does
//! not give (the first one reaches the listener): it is exercised through
//! real NATs in `examples/holepunch/tests/through_nats.rs`.

mod common;

use common::*;
use swarm::multiaddr::Protocol as P;
use swarm::{ConnId, DialError, Multiaddr, PluginId, SwarmEvent};

fn tcp_port(addr: &Multiaddr) -> u16 {
    addr.iter()
        .find_map(|p| match p {
            P::Tcp(port) => Some(port),
            _ => None,
        })
        .expect("a TCP address")
}

/// The remote address `node` sees for the next connection `from` made.
fn seen_by(node: &Node, from: swarm::PeerId) -> Multiaddr {
    node.wait_for(|e| match e {
        SwarmEvent::ConnectionEstablished {
            peer, remote_addr, ..
        } if *peer == from => Some(remote_addr.clone()),
        _ => None,
    })
    .expect("an established connection")
}

#[test]
fn a_tcp_dial_leaves_from_the_listen_port_and_a_second_one_from_another() {
    let (a, a_tcp) = dual_node(70);
    let (b, b_tcp) = dual_node(71);
    let target = a_tcp.with(P::P2p(a.peer));
    b.handle.dial(&target, false, TIMEOUT).expect("TCP dial");
    assert_eq!(
        tcp_port(&seen_by(&a, b.peer)),
        tcp_port(&b_tcp),
        "the first dial comes from B's listen port"
    );
    // The same four-tuple is taken: this one must use another port.
    let second = b.handle.dial(&target, true, TIMEOUT).expect("second dial");
    let port = tcp_port(&seen_by(&a, b.peer));
    assert_ne!(port, tcp_port(&b_tcp), "the second dial from another port");
    let data = pattern(10_000);
    assert_eq!(echo_roundtrip(&b.handle, a.peer, &data), data);
    let open = b
        .handle
        .call(TIMEOUT, move |s| {
            s.with_context(PluginId::external(), |ctx| ctx.connection_peer(second))
        })
        .expect("call");
    assert_eq!(open, Some(a.peer), "the second connection stands");
}

#[test]
fn without_port_reuse_a_tcp_dial_leaves_from_an_ephemeral_port() {
    let (a, a_tcp) = dual_node(72);
    let mut cfg = config(73);
    cfg.tcp_port_reuse = false;
    let (b, b_tcp) = dual_node_with(cfg);
    b.handle
        .dial(&a_tcp.with(P::P2p(a.peer)), false, TIMEOUT)
        .expect("TCP dial");
    assert_ne!(tcp_port(&seen_by(&a, b.peer)), tcp_port(&b_tcp));
}

fn dial_as_listener(node: &Node, addr: Multiaddr) -> Result<ConnId, DialError> {
    node.handle
        .call(TIMEOUT, move |s| {
            s.with_context(PluginId::external(), |ctx| ctx.dial_as_listener(&addr))
        })
        .expect("call")
}

#[test]
fn dial_as_listener_refuses_quic_and_needs_a_tcp_listener() {
    let (a, a_tcp) = dual_node(74);
    let quic = a.addr.clone().with(P::P2p(a.peer));
    assert!(
        matches!(
            dial_as_listener(&a, quic.clone()),
            Err(DialError::UnsupportedAddress(_))
        ),
        "a QUIC address cannot be opened simultaneously"
    );
    // A node without a TCP listener has no port to dial from; answering
    // as a listener from an ephemeral port would wait forever.
    let quic_only = node(config(75), Vec::new());
    let err = dial_as_listener(&quic_only, a_tcp.with(P::P2p(a.peer))).expect_err("refused");
    assert!(
        matches!(&err, DialError::Connect(e) if e.to_string().contains("listen address")),
        "{err}"
    );
}
