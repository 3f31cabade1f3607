//! Our circuit relay v2 server: rust-libp2p 0.57 nodes reserve on it and
//! connect through it; our own clients do too, within the circuit's byte
//! limit (a transfer past it closes the circuit); a flood of reservations
//! beyond the limit gets typed refusals while the relay keeps serving; a
//! malformed hop message gets MALFORMED_MESSAGE on that stream only; a
//! CONNECT to a peer without a reservation gets NO_RESERVATION.

mod common;

use std::io::{Read, Write};

use common::*;
use protocols::framing::{FrameReader, encode};
use protocols::perf::{self, PerfServer};
use protocols::relay::proto::{self, Status, hop_message};
use protocols::relay::{
    ConnectVia, HOP, RelayClient, RelayClientConfig, RelayClientEvent, RelayServer,
    RelayServerConfig, RelayServerEvent,
};
use rust_libp2p_peer::{PeerConfig, PeerEvent, RustPeer};
use swarm::multiaddr::Protocol as P;
use swarm::{Multiaddr, PeerId, ProtocolEvent};

fn relay_with(seed: u8, config: RelayServerConfig) -> Node {
    Node::start(seed, |k| {
        vec![identify(k, "relay"), Box::new(RelayServer::new(config))]
    })
}

fn roomy() -> RelayServerConfig {
    RelayServerConfig {
        max_reservations_per_ip: 64,
        ..RelayServerConfig::default()
    }
}

fn client(seed: u8, reserve_on: Vec<Multiaddr>) -> Node {
    Node::start(seed, |k| {
        vec![
            identify(k, "ours"),
            Box::new(RelayClient::new(RelayClientConfig { reserve_on })),
            Box::new(PerfServer::new()),
        ]
    })
}

fn reservation_outcome(node: &Node, relay: PeerId) -> Result<Vec<Multiaddr>, String> {
    node.wait_for::<RelayClientEvent, _>("a reservation outcome", |e| match e {
        RelayClientEvent::Reserved {
            relay: r, addrs, ..
        } if *r == relay => Some(Ok(addrs.clone())),
        RelayClientEvent::ReservationFailed { relay: r, reason } if *r == relay => {
            Some(Err(reason.clone()))
        }
        _ => None,
    })
}

fn connect_via(node: &Node, relay: &Multiaddr, target: PeerId) {
    node.handle
        .send_event(ProtocolEvent::new(
            "test",
            ConnectVia {
                relay: relay.clone(),
                target,
            },
        ))
        .expect("send");
}

fn circuit(node: &Node, target: PeerId) -> Result<swarm::ConnId, String> {
    node.wait_for::<RelayClientEvent, _>("the circuit", |e| match e {
        RelayClientEvent::OutboundCircuit {
            target: t, conn, ..
        } if *t == target => Some(Ok(*conn)),
        RelayClientEvent::CircuitFailed {
            target: t, reason, ..
        } if *t == target => Some(Err(reason.clone())),
        _ => None,
    })
}

#[test]
fn rust_libp2p_nodes_reserve_on_our_relay_and_connect_through_it() {
    let relay = relay_with(100, roomy());
    let listener = RustPeer::spawn(PeerConfig::default());
    listener
        .connect(relay.p2p_addr(), TIMEOUT)
        .expect("rust-libp2p reaches our relay");
    listener
        .listen_on(relay.p2p_addr().with(P::P2pCircuit))
        .expect("listen via our relay");
    let accepted = listener.wait_for(TIMEOUT, |e| match e {
        PeerEvent::Relay(text) if text.contains("ReservationReqAccepted") => Some(()),
        _ => None,
    });
    assert!(
        accepted.is_some(),
        "rust-libp2p holds a reservation on our relay"
    );
    relay.wait_for::<RelayServerEvent, _>("the reservation", |e| match e {
        RelayServerEvent::ReservationAccepted { peer, .. } if *peer == listener.peer_id() => {
            Some(())
        }
        _ => None,
    });
    let dialer = RustPeer::spawn(PeerConfig {
        listen: false,
        ..PeerConfig::default()
    });
    let target = relay
        .p2p_addr()
        .with(P::P2pCircuit)
        .with(P::P2p(listener.peer_id()));
    let peer = dialer
        .connect(target, TIMEOUT)
        .expect("rust-libp2p connects through our relay");
    assert_eq!(peer, listener.peer_id());
    let identified = dialer.wait_for(TIMEOUT, |e| match e {
        PeerEvent::IdentifyReceived { peer, .. } if *peer == listener.peer_id() => Some(()),
        _ => None,
    });
    assert!(identified.is_some(), "identify ran over the circuit");
    let opened = relay.wait_for::<RelayServerEvent, _>("the circuit", |e| match e {
        RelayServerEvent::CircuitOpened { src, dst } => Some((*src, *dst)),
        _ => None,
    });
    assert_eq!(opened, (dialer.peer_id(), listener.peer_id()));
}

#[test]
fn our_clients_connect_through_our_relay_and_the_byte_limit_closes_the_circuit() {
    let relay = relay_with(
        101,
        RelayServerConfig {
            circuit_bytes: 256 * 1024,
            ..roomy()
        },
    );
    let b = client(102, vec![relay.p2p_addr()]);
    let addrs = reservation_outcome(&b, relay.peer).expect("reserved");
    assert!(addrs.iter().all(|a| a.iter().any(|p| p == P::P2pCircuit)));
    let a = client(103, Vec::new());
    connect_via(&a, &relay.p2p_addr(), b.peer);
    let conn = circuit(&a, b.peer).expect("circuit");
    a.wait_for_swarm("the relayed connection", |e| match e {
        swarm::SwarmEvent::ConnectionEstablished { conn: c, .. } if *c == conn => Some(()),
        _ => None,
    });
    let small = perf::run_blocking(
        &a.handle,
        swarm::StreamTarget::Conn(conn),
        30_000,
        40_000,
        TIMEOUT,
    )
    .expect("a small transfer fits the limit");
    assert_eq!((small.bytes_up, small.bytes_down), (30_000, 40_000));
    let big = perf::run_blocking(
        &a.handle,
        swarm::StreamTarget::Conn(conn),
        1 << 20,
        0,
        TIMEOUT,
    );
    assert!(
        big.is_err(),
        "1 MiB went through a 256 KiB circuit: {big:?}"
    );
    let reason = relay.wait_for::<RelayServerEvent, _>("the closed circuit", |e| match e {
        RelayServerEvent::CircuitClosed { reason, bytes, .. } => Some((reason.clone(), *bytes)),
        _ => None,
    });
    assert_eq!(reason.0, "data limit reached", "{reason:?}");
    assert!(reason.1.0 <= 256 * 1024 + 64 * 1024, "{reason:?}");
}

#[test]
fn reservations_beyond_the_limit_are_refused_and_the_relay_keeps_serving() {
    let relay = relay_with(
        104,
        RelayServerConfig {
            max_reservations: 2,
            ..roomy()
        },
    );
    let first = client(105, vec![relay.p2p_addr()]);
    reservation_outcome(&first, relay.peer).expect("first reserved");
    let second = client(106, vec![relay.p2p_addr()]);
    reservation_outcome(&second, relay.peer).expect("second reserved");
    for seed in 107..110 {
        let extra = client(seed, vec![relay.p2p_addr()]);
        let refused = reservation_outcome(&extra, relay.peer).expect_err("over the limit");
        assert!(refused.contains("ResourceLimitExceeded"), "{refused}");
    }
    let status = relay.wait_for::<RelayServerEvent, _>("a refusal", |e| match e {
        RelayServerEvent::ReservationRefused { status, .. } => Some(*status),
        _ => None,
    });
    assert_eq!(status, Status::ResourceLimitExceeded);
    // The reserved ones are still reachable through it.
    let a = client(110, Vec::new());
    connect_via(&a, &relay.p2p_addr(), first.peer);
    circuit(&a, first.peer).expect("circuit to a reserved peer");
}

fn hop_roundtrip(node: &Node, relay: PeerId, wire: &[u8]) -> proto::HopMessage {
    let mut s = node
        .handle
        .open_stream(relay, HOP, TIMEOUT)
        .expect("hop stream");
    s.set_timeout(Some(TIMEOUT));
    s.write_all(wire).expect("write");
    let mut reader = FrameReader::new(4096);
    let mut buf = [0u8; 1024];
    loop {
        if let Some(m) = reader.next_message().expect("framing") {
            return m;
        }
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "the relay ended the stream without an answer");
        reader.push(&buf[..n]);
    }
}

#[test]
fn bad_hop_requests_get_typed_statuses_and_the_relay_keeps_serving() {
    let relay = relay_with(111, roomy());
    let raw = Node::start(112, |_| vec![]);
    raw.dial(relay.p2p_addr());
    // Length 3, then an invalid wire type: not a HopMessage.
    let answer = hop_roundtrip(&raw, relay.peer, &[3, 0x0f, 0xff, 0xff]);
    assert_eq!(
        Status::from_wire(answer.status),
        Some(Status::MalformedMessage)
    );
    // A STATUS is not a request.
    let status = proto::HopMessage {
        r#type: Some(hop_message::Type::Status as i32),
        ..Default::default()
    };
    let answer = hop_roundtrip(&raw, relay.peer, &encode(&status));
    assert_eq!(
        Status::from_wire(answer.status),
        Some(Status::UnexpectedMessage)
    );
    // CONNECT to a peer without a reservation.
    let connect = proto::HopMessage {
        r#type: Some(hop_message::Type::Connect as i32),
        peer: Some(proto::Peer {
            id: Some(PeerId::random().to_bytes()),
            addrs: Vec::new(),
        }),
        ..Default::default()
    };
    let answer = hop_roundtrip(&raw, relay.peer, &encode(&connect));
    assert_eq!(
        Status::from_wire(answer.status),
        Some(Status::NoReservation)
    );
    // Still serving: a reservation goes through.
    let b = client(113, vec![relay.p2p_addr()]);
    reservation_outcome(&b, relay.peer).expect("reserved after the bad requests");
}

#[test]
fn a_dial_of_a_circuit_address_goes_through_the_relay_client() {
    let relay = relay_with(114, roomy());
    let b = client(115, vec![relay.p2p_addr()]);
    reservation_outcome(&b, relay.peer).expect("reserved");
    let a = client(116, Vec::new());
    let circuit = relay.p2p_addr().with(P::P2pCircuit).with(P::P2p(b.peer));
    let conn = a
        .handle
        .dial(&circuit, false, TIMEOUT)
        .expect("the dial completes with the relayed connection");
    let (peer, relayed) = a
        .handle
        .call(TIMEOUT, move |s| {
            s.with_context(swarm::PluginId::external(), |ctx| {
                (ctx.connection_peer(conn), ctx.connection_is_relayed(conn))
            })
        })
        .expect("call");
    assert_eq!((peer, relayed), (Some(b.peer), true));
    // A peer without a reservation: the dial fails with the relay's status.
    let nobody = relay
        .p2p_addr()
        .with(P::P2pCircuit)
        .with(P::P2p(PeerId::random()));
    let err = a
        .handle
        .dial(&nobody, false, TIMEOUT)
        .expect_err("no reservation");
    assert!(err.to_string().contains("NoReservation"), "{err}");
    // Without a relay client, a circuit address is not dialable.
    let plain = Node::start(117, |_| vec![]);
    let err = plain
        .handle
        .dial(&circuit, false, TIMEOUT)
        .expect_err("no circuit transport");
    assert!(
        matches!(
            err,
            swarm::HandleError::Failed(swarm::DialError::UnsupportedAddress(_))
        ),
        "{err:?}"
    );
}

#[test]
fn listening_on_a_circuit_address_reserves_on_that_relay() {
    let relay = relay_with(118, roomy());
    let b = client(119, Vec::new());
    let listen = relay.p2p_addr().with(P::P2pCircuit);
    let accepted = b.handle.listen(&listen, TIMEOUT).expect("listen accepted");
    assert_eq!(accepted, listen);
    let addrs = reservation_outcome(&b, relay.peer).expect("reserved");
    assert!(
        addrs.iter().all(|a| a.to_string().contains("/p2p-circuit")),
        "{addrs:?}"
    );
    // Reachable through it.
    let a = client(120, Vec::new());
    let target = listen.clone().with(P::P2p(b.peer));
    let conn = a
        .handle
        .dial(&target, false, TIMEOUT)
        .expect("dial via relay");
    let peer = a
        .handle
        .call(TIMEOUT, move |s| {
            s.with_context(swarm::PluginId::external(), |ctx| ctx.connection_peer(conn))
        })
        .expect("call");
    assert_eq!(peer, Some(b.peer));
    // A circuit listen address must name its relay, and needs a relay
    // client.
    for (node, addr) in [
        (&b, Multiaddr::empty().with(P::P2pCircuit)),
        (&Node::start(121, |_| vec![]), listen),
    ] {
        let err = node.handle.listen(&addr, TIMEOUT).expect_err("refused");
        assert!(
            matches!(
                err,
                swarm::HandleError::Failed(swarm::ListenError::UnsupportedAddress(_))
            ),
            "{addr}: {err:?}"
        );
    }
}
