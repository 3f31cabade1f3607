//! Two `RustPeer`s talking to each other over loopback QUIC.

use std::time::Duration;

use rust_libp2p_peer::{
    IDENTIFY_PROTOCOL_VERSION, MultistreamVersion, PERF_PROTOCOL, PeerConfig, PeerEvent, PeerId,
    RustPeer, identity,
};

const T: Duration = Duration::from_secs(10);
const ECHO: &str = "/test/echo/1.0.0";

fn server(version: MultistreamVersion) -> RustPeer {
    RustPeer::spawn(PeerConfig {
        agent_version: "self-test-server/1.0".into(),
        echo_protocols: vec![ECHO.into()],
        perf_server: true,
        multistream_version: version,
        ..PeerConfig::default()
    })
}

fn client(version: MultistreamVersion) -> RustPeer {
    RustPeer::spawn(PeerConfig {
        multistream_version: version,
        ..PeerConfig::default()
    })
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn wait_inbound(peer: &RustPeer, from: PeerId, protocol: &str) -> usize {
    peer.wait_for(T, |e| match e {
        PeerEvent::InboundStream {
            peer,
            protocol: p,
            bytes_read,
        } if *peer == from && p == protocol => Some(*bytes_read),
        _ => None,
    })
    .unwrap_or_else(|| panic!("no InboundStream event for {protocol}"))
}

fn full_exchange(version: MultistreamVersion) {
    let a = server(version);
    let b = client(version);
    let a_addr = a.listen_addrs()[0].clone();
    assert_eq!(a_addr.to_string().split('/').nth(2), Some("127.0.0.1"));
    assert!(a_addr.to_string().ends_with("/quic-v1"), "{a_addr}");

    // Connect b -> a.
    let remote = b.connect(a.dial_addr().unwrap(), T).expect("connect");
    assert_eq!(remote, a.peer_id());
    let dialer = a
        .wait_for(T, |e| match e {
            PeerEvent::ConnectionEstablished { peer, dialer, .. } if *peer == b.peer_id() => {
                Some(*dialer)
            }
            _ => None,
        })
        .expect("a sees the connection");
    assert!(!dialer);

    // Identify, as seen by b.
    let info = b
        .wait_for(T, |e| match e {
            PeerEvent::IdentifyReceived { peer, info } if *peer == a.peer_id() => {
                Some(info.clone())
            }
            _ => None,
        })
        .expect("identify received");
    assert_eq!(info.public_key.to_peer_id(), a.peer_id());
    assert_eq!(info.protocol_version, IDENTIFY_PROTOCOL_VERSION);
    assert_eq!(info.agent_version, "self-test-server/1.0");
    assert!(
        info.listen_addrs.contains(&a_addr),
        "{:?}",
        info.listen_addrs
    );
    for p in ["/ipfs/ping/1.0.0", "/ipfs/id/1.0.0", ECHO, PERF_PROTOCOL] {
        assert!(
            info.protocols.iter().any(|x| x == p),
            "{p} missing: {:?}",
            info.protocols
        );
    }
    assert_eq!(info.observed_addr, b.listen_addrs()[0]);

    // Ping, both directions.
    for (me, other) in [(&b, &a), (&a, &b)] {
        let rtt = me
            .wait_for(T, |e| match e {
                PeerEvent::Ping { peer, result } if *peer == other.peer_id() => {
                    Some(result.clone())
                }
                _ => None,
            })
            .expect("ping event");
        assert!(rtt.is_ok(), "{rtt:?}");
    }

    // Echo.
    for n in [0usize, 1, 5, 100_000] {
        let data = pattern(n);
        let got = b
            .request(a.peer_id(), ECHO, data.clone(), T)
            .expect("echo request");
        assert_eq!(got.len(), n);
        assert!(got == data, "echo of {n} bytes differs");
        assert_eq!(wait_inbound(&a, b.peer_id(), ECHO), n);
    }

    // Unsupported protocol is an error, not a hang.
    let err = b
        .request(a.peer_id(), "/not/supported/1.0.0", b"x".to_vec(), T)
        .expect_err("unsupported protocol");
    assert!(!err.is_empty());

    // Perf: 1 MiB up, 1 MiB down.
    let mib = 1 << 20;
    let (sent, received) = b.perf(a.peer_id(), mib, mib, T).expect("perf");
    assert_eq!((sent, received), (mib, mib));
    assert_eq!(wait_inbound(&a, b.peer_id(), PERF_PROTOCOL), mib as usize);
    let (sent, received) = b.perf(a.peer_id(), 0, 12345, T).expect("perf");
    assert_eq!((sent, received), (0, 12345));

    assert_eq!(b.connected_peers(), vec![a.peer_id()]);
}

#[test]
fn full_exchange_v1_lazy() {
    full_exchange(MultistreamVersion::V1Lazy);
}

#[test]
fn full_exchange_v1() {
    full_exchange(MultistreamVersion::V1);
}

#[test]
fn request_dials_remembered_address_and_identify_push() {
    let key = identity::Keypair::generate_ed25519();
    let a = RustPeer::spawn(PeerConfig {
        keypair: Some(key.clone()),
        // V1: with V1Lazy the write-only identify push stream is dropped
        // (FIN + STOP_SENDING in the first flight) before the listener has
        // written its multistream confirmation, and a rust-libp2p listener
        // then resets the stream and loses the push.
        multistream_version: MultistreamVersion::V1,
        echo_protocols: vec![ECHO.into()],
        ..PeerConfig::default()
    });
    assert_eq!(a.peer_id(), key.public().to_peer_id());
    let b = RustPeer::spawn(PeerConfig {
        listen: false,
        ..PeerConfig::default()
    });
    assert!(b.listen_addrs().is_empty());

    // Not connected and no address known: error.
    assert!(b.request(a.peer_id(), ECHO, b"hi".to_vec(), T).is_err());

    b.add_peer_address(a.peer_id(), a.listen_addrs()[0].clone());
    let got = b.request(a.peer_id(), ECHO, b"hello".to_vec(), T).unwrap();
    assert_eq!(got, b"hello");
    let dialer = b
        .wait_for(T, |e| match e {
            PeerEvent::ConnectionEstablished { peer, dialer, .. } if *peer == a.peer_id() => {
                Some(*dialer)
            }
            _ => None,
        })
        .expect("connection established");
    assert!(dialer);

    // Identify push with a new external address.
    b.wait_for(T, |e| {
        matches!(e, PeerEvent::IdentifyReceived { .. }).then_some(())
    })
    .expect("initial identify");
    let ext: rust_libp2p_peer::Multiaddr = "/ip4/127.0.0.2/udp/4242/quic-v1".parse().unwrap();
    a.add_external_listen_addr(ext.clone());
    a.push_identify(vec![b.peer_id()]);
    a.wait_for(T, |e| {
        matches!(e, PeerEvent::IdentifyPushed { .. }).then_some(())
    })
    .expect("pushed");
    let addrs = b
        .wait_for(T, |e| match e {
            PeerEvent::IdentifyReceived { info, .. } => Some(info.listen_addrs.clone()),
            _ => None,
        })
        .expect("pushed identify received");
    assert!(addrs.contains(&ext), "{addrs:?}");

    // Disconnect is reported on both sides.
    b.disconnect(a.peer_id());
    for p in [&a, &b] {
        p.wait_for(T, |e| {
            matches!(e, PeerEvent::ConnectionClosed { .. }).then_some(())
        })
        .expect("connection closed");
    }
}

#[test]
fn dial_failure_is_an_event() {
    let b = client(MultistreamVersion::V1Lazy);
    // A peer id nobody listens as, on a port we just freed.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let other = identity::Keypair::generate_ed25519().public().to_peer_id();
    let addr = format!("/ip4/127.0.0.1/udp/{port}/quic-v1/p2p/{other}")
        .parse()
        .unwrap();
    b.dial(addr);
    let ev = b
        .wait_for(Duration::from_secs(30), |e| match e {
            PeerEvent::OutgoingConnectionError { peer, error } => Some((*peer, error.clone())),
            _ => None,
        })
        .expect("dial error event");
    assert_eq!(ev.0, Some(other));
}
