//! The circuit relay v2 client and DCUtR against rust-libp2p 0.57
//! (libp2p-relay, libp2p-dcutr) on loopback. There is no NAT here, so the
//! hole punch itself always succeeds; what is tested is the exchange.
//!
//! - Our nodes reserve on a rust-libp2p relay and reach each other through
//!   it (hop CONNECT on one side, stop on the other), then run perf over
//!   the relayed connection, which the swarm marks relayed.
//! - A rust-libp2p node reaches ours through the same relay and
//!   identifies it over the relayed connection.
//! - A CONNECT to a peer without a reservation fails with the relay's
//!   status.
//! - DCUtR upgrades a relayed connection to a direct one between our
//!   nodes, and with rust-libp2p in either role.

mod common;

use std::time::Duration;

use common::*;
use protocols::dcutr::{Dcutr, DcutrConfig, DcutrEvent};
use protocols::perf::{self, PerfServer};
use protocols::relay::{ConnectVia, RelayClient, RelayClientConfig, RelayClientEvent};
use rust_libp2p_peer::{PeerConfig, PeerEvent, RustPeer};
use swarm::multiaddr::Protocol as P;
use swarm::{ConnId, Multiaddr, PeerId, PluginId, ProtocolEvent, SwarmEvent};

fn rust_relay() -> (RustPeer, Multiaddr) {
    let relay = RustPeer::spawn(PeerConfig {
        relay_server: true,
        ..PeerConfig::default()
    });
    let addr = relay.dial_addr().expect("the relay listens");
    // libp2p-relay serves hop only once it has a confirmed external address.
    let listen = relay.listen_addrs()[0].clone();
    relay.add_external_listen_addr(listen);
    (relay, addr)
}

/// A node with the relay client (reserving on `reserve_on`), identify and
/// a perf server.
fn relay_node(seed: u8, reserve_on: Vec<Multiaddr>) -> Node {
    Node::start(seed, |k| {
        vec![
            identify(k, "ours"),
            Box::new(RelayClient::new(RelayClientConfig { reserve_on })),
            Box::new(PerfServer::new()),
        ]
    })
}

fn reserved(node: &Node, relay: PeerId) -> Vec<Multiaddr> {
    node.wait_for::<RelayClientEvent, _>("a reservation", |e| match e {
        RelayClientEvent::Reserved {
            relay: r, addrs, ..
        } if *r == relay => Some(addrs.clone()),
        RelayClientEvent::ReservationFailed { reason, .. } => {
            panic!("reservation failed: {reason}")
        }
        _ => None,
    })
}

/// Ask `node`'s relay client to reach `target` through `relay`.
fn connect_via(node: &Node, relay: Multiaddr, target: PeerId) {
    node.handle
        .send_event(ProtocolEvent::new("test", ConnectVia { relay, target }))
        .expect("send");
}

fn is_relayed(node: &Node, conn: ConnId) -> bool {
    node.handle
        .call(TIMEOUT, move |s| {
            s.with_context(PluginId::external(), |ctx| ctx.connection_is_relayed(conn))
        })
        .expect("call")
}

#[test]
fn our_nodes_reserve_on_a_rust_libp2p_relay_and_reach_each_other_through_it() {
    let (relay, relay_addr) = rust_relay();
    let b = relay_node(90, vec![relay_addr.clone()]);
    let addrs = reserved(&b, relay.peer_id());
    assert!(
        addrs.iter().all(|a| a.iter().any(|p| p == P::P2pCircuit)),
        "{addrs:?}"
    );
    let external = b.wait_for_swarm("the relayed address", |e| match e {
        SwarmEvent::ExternalAddrConfirmed(a) => Some(a.clone()),
        _ => None,
    });
    assert!(addrs.contains(&external), "{external} in {addrs:?}");

    let a = relay_node(91, Vec::new());
    connect_via(&a, relay_addr, b.peer);
    let conn = a.wait_for::<RelayClientEvent, _>("the circuit", |e| match e {
        RelayClientEvent::OutboundCircuit { target, conn, .. } if *target == b.peer => Some(*conn),
        RelayClientEvent::CircuitFailed { reason, .. } => panic!("circuit failed: {reason}"),
        _ => None,
    });
    let (peer, remote) = a.wait_for_swarm("the relayed connection", |e| match e {
        SwarmEvent::ConnectionEstablished {
            conn: c,
            peer,
            remote_addr,
            ..
        } if *c == conn => Some((*peer, remote_addr.clone())),
        _ => None,
    });
    assert_eq!(peer, b.peer);
    assert!(remote.iter().any(|p| p == P::P2pCircuit), "{remote}");
    assert!(is_relayed(&a, conn));
    let src = b.wait_for::<RelayClientEvent, _>("the inbound circuit", |e| match e {
        RelayClientEvent::InboundCircuit { src, .. } => Some(*src),
        _ => None,
    });
    assert_eq!(src, a.peer);
    // Within libp2p-relay's default circuit limit (128 KiB each way).
    let report = perf::run_blocking(
        &a.handle,
        swarm::StreamTarget::Conn(conn),
        40_000,
        50_000,
        TIMEOUT,
    )
    .expect("perf over the relayed connection");
    assert_eq!((report.bytes_up, report.bytes_down), (40_000, 50_000));
}

#[test]
fn a_rust_libp2p_node_reaches_ours_through_a_rust_libp2p_relay() {
    let (relay, relay_addr) = rust_relay();
    let b = relay_node(92, vec![relay_addr.clone()]);
    reserved(&b, relay.peer_id());
    let dialer = RustPeer::spawn(PeerConfig {
        listen: false,
        ping_interval: Duration::from_millis(200),
        ..PeerConfig::default()
    });
    let circuit = relay_addr.with(P::P2pCircuit).with(P::P2p(b.peer));
    let peer = dialer
        .connect(circuit, TIMEOUT)
        .expect("rust-libp2p connects through the relay");
    assert_eq!(peer, b.peer);
    // Identify runs over the relayed connection (rust-libp2p's ping did not
    // run on it in this setup, so identify is the check).
    let agent = dialer.wait_for(TIMEOUT, |e| match e {
        PeerEvent::IdentifyReceived { peer, info } if *peer == b.peer => {
            Some(info.agent_version.clone())
        }
        _ => None,
    });
    assert_eq!(agent.as_deref(), Some("ours"));
    let conn = b.wait_for_swarm("the relayed connection", |e| match e {
        SwarmEvent::ConnectionEstablished { conn, peer, .. } if *peer == dialer.peer_id() => {
            Some(*conn)
        }
        _ => None,
    });
    assert!(is_relayed(&b, conn));
    let src = b.wait_for::<RelayClientEvent, _>("the inbound circuit", |e| match e {
        RelayClientEvent::InboundCircuit { src, .. } => Some(*src),
        _ => None,
    });
    assert_eq!(src, dialer.peer_id());
}

#[test]
fn a_connect_to_a_peer_without_reservation_fails_with_the_relays_status() {
    let (_relay, relay_addr) = rust_relay();
    let a = relay_node(93, Vec::new());
    let nobody = PeerId::random();
    connect_via(&a, relay_addr, nobody);
    let reason = a.wait_for::<RelayClientEvent, _>("the failure", |e| match e {
        RelayClientEvent::CircuitFailed { target, reason, .. } if *target == nobody => {
            Some(reason.clone())
        }
        RelayClientEvent::OutboundCircuit { .. } => panic!("a circuit to nobody"),
        _ => None,
    });
    assert!(reason.contains("NoReservation"), "{reason}");
}

/// `node`'s DCUtR upgrade of its connection to `peer`: (direct, relayed).
fn upgraded(node: &Node, peer: PeerId) -> (ConnId, ConnId) {
    node.wait_for::<DcutrEvent, _>("the upgrade", |e| match e {
        DcutrEvent::DirectConnectionUpgraded {
            peer: p,
            direct,
            relayed,
            ..
        } if *p == peer => Some((*direct, *relayed)),
        DcutrEvent::UpgradeFailed { reason, .. } => panic!("upgrade failed: {reason}"),
        _ => None,
    })
}

/// A node with the relay client, DCUtR and identify (and a perf server).
fn dcutr_node(seed: u8, reserve_on: Vec<Multiaddr>) -> Node {
    Node::start(seed, |k| {
        vec![
            identify(k, "ours"),
            Box::new(RelayClient::new(RelayClientConfig { reserve_on })),
            Box::new(Dcutr::new(DcutrConfig::default())),
            Box::new(PerfServer::new()),
        ]
    })
}

#[test]
fn dcutr_upgrades_a_relayed_connection_between_our_nodes_to_a_direct_one() {
    let (relay, relay_addr) = rust_relay();
    let b = dcutr_node(94, vec![relay_addr.clone()]);
    reserved(&b, relay.peer_id());
    let a = dcutr_node(95, Vec::new());
    // A learns its observed address from the relay (identify) first.
    a.dial(relay_addr.clone());
    connect_via(&a, relay_addr, b.peer);
    let (b_direct, b_relayed) = upgraded(&b, a.peer);
    let (a_direct, a_relayed) = upgraded(&a, b.peer);
    assert!(!is_relayed(&b, b_direct) && is_relayed(&b, b_relayed));
    assert!(!is_relayed(&a, a_direct) && is_relayed(&a, a_relayed));
    // New streams to the peer take the direct connection: far more than
    // the relay's circuit limit (128 KiB) goes through.
    let report = perf::run_blocking(&a.handle, b.peer, 1 << 20, 1 << 20, TIMEOUT)
        .expect("perf on the direct path");
    assert_eq!((report.bytes_up, report.bytes_down), (1 << 20, 1 << 20));
}

#[test]
fn dcutr_with_rust_libp2p_initiating_and_responding() {
    let (relay, relay_addr) = rust_relay();
    // Ours behind the relay; rust-libp2p reaches it through the relay and
    // answers our DCUtR (we received the relayed connection: we initiate).
    let ours = dcutr_node(96, vec![relay_addr.clone()]);
    reserved(&ours, relay.peer_id());
    let rust = RustPeer::spawn(PeerConfig::default());
    rust.connect(relay_addr.clone(), TIMEOUT)
        .expect("rust-libp2p reaches the relay");
    rust.connect(
        relay_addr
            .clone()
            .with(P::P2pCircuit)
            .with(P::P2p(ours.peer)),
        TIMEOUT,
    )
    .expect("rust-libp2p reaches ours through the relay");
    let (direct, _) = upgraded(&ours, rust.peer_id());
    assert!(!is_relayed(&ours, direct));

    // rust-libp2p behind the relay; ours reaches it and answers its DCUtR.
    let listener = RustPeer::spawn(PeerConfig::default());
    listener
        .connect(relay_addr.clone(), TIMEOUT)
        .expect("rust-libp2p reaches the relay");
    listener
        .listen_on(relay_addr.clone().with(P::P2pCircuit))
        .expect("listen via the relay");
    let reserved_ok = listener.wait_for(TIMEOUT, |e| match e {
        PeerEvent::Relay(text) if text.contains("ReservationReqAccepted") => Some(()),
        _ => None,
    });
    assert!(reserved_ok.is_some(), "rust-libp2p reserved on the relay");
    let a = dcutr_node(97, Vec::new());
    a.dial(relay_addr.clone());
    connect_via(&a, relay_addr, listener.peer_id());
    let (direct, _) = upgraded(&a, listener.peer_id());
    assert!(!is_relayed(&a, direct));
    let theirs = listener.wait_for(TIMEOUT, |e| match e {
        PeerEvent::Dcutr { peer, result } if *peer == a.peer => Some(result.clone()),
        _ => None,
    });
    assert_eq!(theirs, Some(Ok(())));
}
