//! Interop over TCP + Noise + Yamux with a real rust-libp2p 0.57 node, in
//! both directions: ping, identify, perf 10 MiB each way, many parallel
//! streams, and the PeerId check; and TCP + TLS + Yamux, both directions.
//! Our side is the sans-I/O upgrade and Yamux driven by `tcp_driver` on a
//! blocking socket, so a test can see what was negotiated; the engine's
//! TCP path meets rust-libp2p in `tcp_transport.rs`.

mod tcp_driver;

use std::time::Duration;

use rust_libp2p_peer::{KAD_PROTOCOL, KadConfig, PeerConfig, PeerEvent, RustPeer};
use swarm::Keypair;
use swarm::noise::NoiseError;
use swarm::tcp_upgrade::UpgradeError;
use tcp_driver::*;

const TIMEOUT: Duration = Duration::from_secs(30);
const TEN_MIB: u64 = 10 * 1024 * 1024;
const IDENTIFY: &str = "/ipfs/id/1.0.0";

fn rust_peer() -> RustPeer {
    RustPeer::spawn(PeerConfig {
        listen_tcp: true,
        echo_protocols: vec![ECHO.into()],
        perf_server: true,
        ..PeerConfig::default()
    })
}

fn dial_rust(rust: &RustPeer, key: &Keypair) -> Conn {
    let addr = rust
        .tcp_dial_addr(TIMEOUT)
        .expect("rust-libp2p listens on TCP");
    Conn::dial(socket_addr(&addr), key, Some(rust.peer_id())).expect("upgrade")
}

#[test]
fn we_dial_rust_libp2p_over_tcp_and_ping_and_identify() {
    let rust = rust_peer();
    let key = Keypair::generate_ed25519();
    let mut conn = dial_rust(&rust, &key);
    assert_eq!(conn.sec.remote_peer(), rust.peer_id());

    let payload: Vec<u8> = (0..32).collect();
    let id = conn.open(PING);
    conn.write_all(id, &payload);
    assert_eq!(conn.read_reply_up_to(id, PING, 32), payload, "ping echoed");

    let info = conn.request(IDENTIFY, &[]);
    let key_bytes = rust.peer_id().to_bytes();
    assert!(!info.is_empty(), "identify answered");
    let public = rust_public_key_bytes(&rust);
    assert!(
        info.windows(public.len()).any(|w| w == public.as_slice()),
        "identify carries rust-libp2p's public key ({} bytes, peer {key_bytes:?})",
        info.len()
    );
    let seen = rust.wait_for(TIMEOUT, |e| match e {
        PeerEvent::ConnectionEstablished { peer, dialer, .. } => Some((*peer, *dialer)),
        _ => None,
    });
    assert_eq!(seen, Some((key.public().to_peer_id(), false)));
}

/// The protobuf encoding of rust-libp2p's public key, as identify sends it.
fn rust_public_key_bytes(rust: &RustPeer) -> Vec<u8> {
    // An ed25519 PeerId is the identity multihash of the protobuf key:
    // 0x00, length, then the key.
    let bytes = rust.peer_id().to_bytes();
    bytes[2..].to_vec()
}

#[test]
fn we_run_perf_ten_mib_each_way_against_rust_libp2p_over_tcp() {
    let rust = rust_peer();
    let key = Keypair::generate_ed25519();
    let mut conn = dial_rust(&rust, &key);
    let mut upload = TEN_MIB.to_be_bytes().to_vec();
    upload.extend(std::iter::repeat_n(0x5a, TEN_MIB as usize));
    let reply = conn.request(PERF, &upload);
    assert_eq!(reply.len() as u64, TEN_MIB);
}

#[test]
fn many_streams_one_after_another_to_rust_libp2p_over_tcp() {
    // rust-libp2p's stream behaviour (the echo protocol here) drops an
    // inbound stream that arrives while the previous one is still being
    // handed over (a zero-capacity channel), so these go one after
    // another; `many_parallel_kad_streams_from_us_to_rust_libp2p_over_tcp`
    // is the parallel case, on a protocol whose handler takes many.
    let rust = rust_peer();
    let key = Keypair::generate_ed25519();
    let mut conn = dial_rust(&rust, &key);
    for i in 0..64u32 {
        let data: Vec<u8> = (0..20_000u32).map(|j| (i * 7 + j) as u8).collect();
        assert_eq!(conn.request(ECHO, &data), data, "stream {i}");
    }
}

/// A uvarint-length-prefixed Kademlia `FIND_NODE` request for `key`
/// (`type` = 4 in field 1, `key` in field 2).
fn find_node_request(key: &[u8; 32]) -> Vec<u8> {
    let mut msg = vec![0x08, 0x04, 0x12, 32];
    msg.extend_from_slice(key);
    let mut framed = vec![msg.len() as u8];
    framed.extend(msg);
    framed
}

#[test]
fn many_parallel_kad_streams_from_us_to_rust_libp2p_over_tcp() {
    // Below libp2p-kad's limit of concurrent inbound streams (32).
    const STREAMS: u8 = 24;
    let rust = RustPeer::spawn(PeerConfig {
        listen_tcp: true,
        kad: Some(KadConfig::default()),
        ..PeerConfig::default()
    });
    let key = Keypair::generate_ed25519();
    let mut conn = dial_rust(&rust, &key);
    // Every request is on the wire before the first answer is read.
    let ids: Vec<u32> = (0..STREAMS)
        .map(|i| {
            let id = conn.open(KAD_PROTOCOL);
            conn.write_all(id, &find_node_request(&[i; 32]));
            conn.sec.session().finish(id).unwrap();
            id
        })
        .collect();
    conn.flush();
    for (i, id) in ids.into_iter().enumerate() {
        let reply = conn.read_reply(id, KAD_PROTOCOL);
        // A length prefix, then a FIND_NODE message (its type first).
        assert!(reply.len() >= 3, "stream {i}: {reply:?}");
        assert_eq!(reply[0] as usize, reply.len() - 1, "stream {i}: {reply:?}");
        assert_eq!(&reply[1..3], &[0x08, 0x04], "stream {i}: {reply:?}");
    }
}

#[test]
fn rust_libp2p_opens_many_parallel_streams_to_us() {
    let server = serve_one(Duration::from_secs(60));
    let ours = server.peer;
    let rust = RustPeer::spawn(PeerConfig {
        listen: false,
        ..PeerConfig::default()
    });
    rust.connect(server.addr.clone(), TIMEOUT)
        .expect("rust-libp2p connects to us over TCP");
    std::thread::scope(|s| {
        let rust = &rust;
        let handles: Vec<_> = (0..48u32)
            .map(|i| {
                s.spawn(move || {
                    let data: Vec<u8> = (0..30_000u32).map(|j| (i + j) as u8).collect();
                    let back = rust
                        .request(ours, ECHO, data.clone(), TIMEOUT)
                        .expect("echo");
                    assert_eq!(back, data, "stream {i}");
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    assert_eq!(server.stop().served.get(ECHO).copied(), Some(48));
}

#[test]
fn we_dial_rust_libp2p_over_tcp_tls_yamux_and_ping_and_run_perf() {
    let rust = rust_peer();
    let key = Keypair::generate_ed25519();
    let addr = rust.tcp_dial_addr(TIMEOUT).expect("tcp");
    let mut conn = Conn::dial_tls(socket_addr(&addr), &key, Some(rust.peer_id())).expect("upgrade");
    assert!(conn.sec.is_tls());
    let payload: Vec<u8> = (100..132).collect();
    let id = conn.open(PING);
    conn.write_all(id, &payload);
    assert_eq!(conn.read_reply_up_to(id, PING, 32), payload, "ping echoed");
    let mut upload = TEN_MIB.to_be_bytes().to_vec();
    upload.extend(std::iter::repeat_n(0x33, TEN_MIB as usize));
    assert_eq!(conn.request(PERF, &upload).len() as u64, TEN_MIB);
}

#[test]
fn tls_dial_of_rust_libp2p_with_the_wrong_peer_id_fails_in_the_handshake() {
    let rust = rust_peer();
    let key = Keypair::generate_ed25519();
    let wrong = Keypair::generate_ed25519().public().to_peer_id();
    let addr = rust.tcp_dial_addr(TIMEOUT).expect("tcp");
    let err = Conn::dial_tls(socket_addr(&addr), &key, Some(wrong))
        .err()
        .expect("must fail");
    assert_eq!(err.wrong_peer_id(), Some((wrong, rust.peer_id())));
}

#[test]
fn dialing_rust_libp2p_with_the_wrong_peer_id_fails_in_the_noise_handshake() {
    let rust = rust_peer();
    let key = Keypair::generate_ed25519();
    let wrong = Keypair::generate_ed25519().public().to_peer_id();
    let addr = rust.tcp_dial_addr(TIMEOUT).expect("tcp");
    let err = Conn::dial(socket_addr(&addr), &key, Some(wrong))
        .err()
        .expect("must fail");
    assert_eq!(
        err,
        UpgradeError::Noise(NoiseError::WrongPeerId {
            expected: wrong,
            actual: rust.peer_id()
        })
    );
}

#[test]
fn rust_libp2p_dials_us_over_tcp_pings_echoes_and_runs_perf_both_ways() {
    let server = serve_one(Duration::from_secs(60));
    let ours = server.peer;
    let rust = RustPeer::spawn(PeerConfig {
        listen: false,
        ping_interval: Duration::from_millis(200),
        ..PeerConfig::default()
    });
    let peer = rust
        .connect(server.addr.clone(), TIMEOUT)
        .expect("rust-libp2p connects to us over TCP");
    assert_eq!(peer, ours);
    let rtt = rust.wait_for(TIMEOUT, |e| match e {
        PeerEvent::Ping {
            result: Ok(rtt), ..
        } => Some(*rtt),
        _ => None,
    });
    assert!(rtt.is_some(), "rust-libp2p pinged us over yamux");
    let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    let back = rust
        .request(ours, ECHO, data.clone(), TIMEOUT)
        .expect("echo");
    assert_eq!(back, data);
    let (sent, received) = rust.perf(ours, TEN_MIB, TEN_MIB, TIMEOUT).expect("perf");
    assert_eq!((sent, received), (TEN_MIB, TEN_MIB));
    let conn = server.stop();
    let served = &conn.served;
    assert!(served.get(PING).copied().unwrap_or(0) >= 1, "{served:?}");
    assert_eq!(served.get(PERF), Some(&1));
    assert_eq!(conn.perf_uploaded, TEN_MIB);
}

#[test]
fn rust_libp2p_dials_us_over_tcp_tls_yamux_and_pings_and_echoes() {
    let server = serve_one(Duration::from_secs(30));
    let ours = server.peer;
    let rust = RustPeer::spawn(PeerConfig {
        listen: false,
        tcp_tls_first: true,
        ping_interval: Duration::from_millis(200),
        ..PeerConfig::default()
    });
    let peer = rust
        .connect(server.addr.clone(), TIMEOUT)
        .expect("rust-libp2p connects to us over TCP + TLS");
    assert_eq!(peer, ours);
    let rtt = rust.wait_for(TIMEOUT, |e| match e {
        PeerEvent::Ping {
            result: Ok(rtt), ..
        } => Some(*rtt),
        _ => None,
    });
    assert!(rtt.is_some(), "rust-libp2p pinged us over TLS + yamux");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    let back = rust
        .request(ours, ECHO, data.clone(), TIMEOUT)
        .expect("echo");
    assert_eq!(back, data);
    let conn = server.stop();
    let served = &conn.served;
    assert!(
        conn.sec.is_tls(),
        "rust-libp2p proposed /tls/1.0.0 first and we accepted it"
    );
    assert!(served.get(PING).copied().unwrap_or(0) >= 1, "{served:?}");
}
