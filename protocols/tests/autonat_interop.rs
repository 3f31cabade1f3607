//! AutoNAT v2 against rust-libp2p 0.57 (libp2p-autonat 0.16) over QUIC on
//! loopback, both roles: our client confirms its address through a
//! rust-libp2p server's dial-back, and a rust-libp2p client confirms its
//! address through ours. (Our nodes allow 127.0.0.0/8 by configuration;
//! rust-libp2p tests whatever identify reports.)

mod common;

use std::time::Duration;

use common::*;
use protocols::autonat::{
    AutonatClient, AutonatServer, ClientConfig, ClientEvent, DialStatus, IpNetwork, ServerConfig,
    ServerEvent,
};
use rust_libp2p_peer::{PeerConfig, PeerEvent, RustPeer};

fn loopback() -> Vec<IpNetwork> {
    vec![IpNetwork::new("127.0.0.0".parse().unwrap(), 8)]
}

#[test]
fn our_client_confirms_its_address_with_a_rust_libp2p_server() {
    let rust = RustPeer::spawn(PeerConfig {
        autonat_server: true,
        ..PeerConfig::default()
    });
    let ours = Node::start(80, |k| {
        vec![
            identify(k, "ours"),
            Box::new(AutonatClient::new(ClientConfig {
                probe_interval: Duration::from_millis(200),
                confirmations: 1,
                allowed_networks: loopback(),
                ..ClientConfig::default()
            })),
        ]
    });
    let addr = rust.dial_addr().expect("rust-libp2p listens");
    ours.dial(addr);
    let (server, from) = ours.wait_for::<ClientEvent, _>("a verdict", |e| match e {
        ClientEvent::Reachable {
            addr,
            server,
            dial_back_from,
        } if *addr == ours.addr => Some((*server, dial_back_from.clone())),
        ClientEvent::Unreachable { addr } => panic!("{addr} unreachable"),
        _ => None,
    });
    assert_eq!(server, rust.peer_id());
    assert!(from.is_some());
    let served = rust.wait_for(TIMEOUT, |e| match e {
        PeerEvent::AutonatServed {
            client,
            addr,
            result,
            ..
        } => Some((*client, addr.clone(), result.clone())),
        _ => None,
    });
    assert_eq!(served, Some((ours.peer, ours.addr.clone(), Ok(()))));
}

#[test]
fn a_rust_libp2p_client_confirms_its_address_with_our_server() {
    let ours = Node::start(81, |k| {
        vec![
            identify(k, "ours"),
            Box::new(AutonatServer::new(ServerConfig {
                allowed_networks: loopback(),
                ..ServerConfig::default()
            })),
        ]
    });
    let rust = RustPeer::spawn(PeerConfig {
        autonat_client: true,
        ..PeerConfig::default()
    });
    rust.connect(ours.p2p_addr(), TIMEOUT)
        .expect("rust-libp2p connects");
    // libp2p-autonat's client probes every 5 s.
    let tested = rust.wait_for(TIMEOUT, |e| match e {
        PeerEvent::AutonatTested {
            addr,
            server,
            result,
            ..
        } => Some((addr.clone(), *server, result.clone())),
        _ => None,
    });
    let (addr, server, result) = tested.expect("rust-libp2p tested an address");
    assert_eq!(server, ours.peer);
    assert_eq!(result, Ok(()), "{addr}");
    let ours_saw = ours.wait_for::<ServerEvent, _>("our report", |e| match e {
        ServerEvent::Tested {
            addr: a, status, ..
        } => Some((a.clone(), *status)),
        _ => None,
    });
    assert_eq!(ours_saw, (addr, DialStatus::Ok));
}
