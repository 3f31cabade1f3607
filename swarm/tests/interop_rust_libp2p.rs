//! Interop with a real rust-libp2p node (crates.io, QUIC) in both directions:
//! handshakes, identity checks, and a negotiated stream protocol carrying
//! bytes both ways, including rust-libp2p's optimistic first flight.

mod common;

use std::io::{Read, Write};

use common::*;
use rust_libp2p_peer::{MultistreamVersion, PeerConfig, PeerEvent, RustPeer};
use swarm::{DialError, HandleError, PeerId, SwarmEvent};

fn rust_peer(version: MultistreamVersion, echo: bool) -> RustPeer {
    RustPeer::spawn(PeerConfig {
        multistream_version: version,
        echo_protocols: if echo { vec![ECHO.into()] } else { vec![] },
        ..PeerConfig::default()
    })
}

/// rust-libp2p dials us and opens an echo stream; `version` picks whether
/// its first flight is optimistic (V1Lazy: header, protocol, data and FIN in
/// one packet) or waits for our answer (V1).
fn rust_libp2p_dials_us(version: MultistreamVersion) {
    let ours = node(config(40), vec![Box::new(EchoPlugin)]);
    let rust = rust_peer(version, false);
    let peer = rust
        .connect(ours.p2p_addr(), TIMEOUT)
        .expect("rust-libp2p connects to us");
    assert_eq!(peer, ours.peer, "rust-libp2p saw our PeerId");
    let seen = ours.wait_for(|e| match e {
        SwarmEvent::ConnectionEstablished { peer, dialer, .. } => Some((*peer, *dialer)),
        _ => None,
    });
    assert_eq!(seen, Some((rust.peer_id(), false)));
    for data in [b"x".to_vec(), pattern(100_000)] {
        let back = rust
            .request(ours.peer, ECHO, data.clone(), TIMEOUT)
            .expect("echo request");
        assert_eq!(back, data, "bytes came back changed ({version:?})");
    }
}

#[test]
fn rust_libp2p_dials_us_with_optimistic_first_flight() {
    rust_libp2p_dials_us(MultistreamVersion::V1Lazy);
}

#[test]
fn rust_libp2p_dials_us_with_plain_v1_negotiation() {
    rust_libp2p_dials_us(MultistreamVersion::V1);
}

#[test]
fn we_dial_rust_libp2p_and_exchange_bytes_both_ways() {
    let rust = rust_peer(MultistreamVersion::V1, true);
    let ours = node(config(41), vec![]);
    let addr = rust.dial_addr().expect("rust-libp2p listens");
    let conn = ours
        .handle
        .dial(&addr, false, TIMEOUT)
        .expect("we connect to rust-libp2p");
    let rust_id = rust.peer_id();
    let peer = ours
        .handle
        .call(TIMEOUT, move |s| s.connections_to(&rust_id))
        .unwrap();
    assert_eq!(peer, vec![conn]);
    let data = pattern(300_000);
    let mut s = ours
        .handle
        .open_stream(rust.peer_id(), ECHO, TIMEOUT)
        .expect("rust-libp2p accepts the protocol");
    s.set_timeout(Some(TIMEOUT));
    s.write_all(&data).unwrap();
    s.finish().unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back, data);
    let inbound = rust.wait_for(TIMEOUT, |e| match e {
        PeerEvent::InboundStream {
            protocol,
            bytes_read,
            ..
        } if protocol == ECHO => Some(*bytes_read),
        _ => None,
    });
    assert_eq!(inbound, Some(data.len()), "rust-libp2p read every byte");
}

#[test]
fn dialing_rust_libp2p_with_wrong_peer_id_fails_in_handshake() {
    let rust = rust_peer(MultistreamVersion::V1, false);
    let ours = node(config(42), vec![]);
    let wrong = PeerId::random();
    let addr = rust.listen_addrs()[0]
        .clone()
        .with(swarm::multiaddr::Protocol::P2p(wrong));
    let err = ours
        .handle
        .dial(&addr, false, TIMEOUT)
        .expect_err("must fail");
    match err {
        HandleError::Failed(DialError::WrongPeerId { expected, actual }) => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, rust.peer_id());
        }
        other => panic!("expected WrongPeerId, got {other:?}"),
    }
}
