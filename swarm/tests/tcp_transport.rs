//! TCP in the swarm's engine, beside QUIC on the same mio thread: our
//! nodes over TCP, rust-libp2p 0.57 over tcp/noise/yamux both ways, one
//! node reached over QUIC and TCP at once, the PeerId check, and the
//! packet-flow refusal on TCP connections.

mod common;

use common::*;
use rust_libp2p_peer::{PeerConfig, PeerEvent, RustPeer};
use swarm::multiaddr::Protocol as P;
use swarm::{DialError, HandleError, PacketError, PluginId, Runtime, StreamTarget};

#[test]
fn two_of_our_nodes_talk_over_tcp_noise_yamux() {
    let (a, a_tcp) = dual_node(60);
    let (b, _) = dual_node(61);
    let conn = b
        .handle
        .dial(&a_tcp.clone().with(P::P2p(a.peer)), false, TIMEOUT)
        .expect("TCP dial");
    let addr = b
        .handle
        .call(TIMEOUT, move |s| {
            s.with_context(PluginId::external(), |ctx| ctx.connection_remote_addr(conn))
        })
        .expect("call")
        .expect("connection known");
    assert!(
        addr.iter().any(|p| matches!(p, P::Tcp(_))),
        "the connection is TCP: {addr}"
    );
    for data in [b"x".to_vec(), pattern(100_000)] {
        assert_eq!(echo_roundtrip(&b.handle, a.peer, &data), data);
    }
}

#[test]
fn tcp_dial_with_the_wrong_peer_id_fails_in_the_handshake() {
    let (a, a_tcp) = dual_node(62);
    let (b, _) = dual_node(63);
    let wrong = swarm::Keypair::generate_ed25519().public().to_peer_id();
    let err = b
        .handle
        .dial(&a_tcp.with(P::P2p(wrong)), false, TIMEOUT)
        .expect_err("must fail");
    match err {
        HandleError::Failed(DialError::WrongPeerId { expected, actual }) => {
            assert_eq!((expected, actual), (wrong, a.peer));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn packet_flows_on_a_tcp_connection_fail_with_a_clear_error() {
    let (a, a_tcp) = dual_node(64);
    let (b, _) = dual_node(65);
    let conn = b
        .handle
        .dial(&a_tcp.with(P::P2p(a.peer)), false, TIMEOUT)
        .expect("TCP dial");
    let r = b
        .handle
        .call(TIMEOUT, move |s| {
            s.with_context(PluginId::external(), |ctx| {
                ctx.open_packet_flow(StreamTarget::Conn(conn), "/test/flow")
                    .map(|_| ())
            })
        })
        .expect("call");
    assert!(matches!(r, Err(PacketError::NotQuic)), "{r:?}");
}

#[test]
fn rust_libp2p_dials_our_swarm_over_tcp_and_echoes() {
    let (ours, tcp) = dual_node(66);
    let rust = RustPeer::spawn(PeerConfig {
        listen: false,
        ping_interval: std::time::Duration::from_millis(200),
        ..PeerConfig::default()
    });
    let peer = rust
        .connect(tcp.with(P::P2p(ours.peer)), TIMEOUT)
        .expect("rust-libp2p connects over TCP");
    assert_eq!(peer, ours.peer);
    for data in [b"y".to_vec(), pattern(100_000)] {
        let back = rust
            .request(ours.peer, ECHO, data.clone(), TIMEOUT)
            .expect("echo");
        assert_eq!(back, data);
    }
    let seen = ours.wait_for(|e| match e {
        swarm::SwarmEvent::ConnectionEstablished {
            peer,
            dialer,
            remote_addr,
            ..
        } => Some((*peer, *dialer, remote_addr.to_string())),
        _ => None,
    });
    let (p, dialer, remote) = seen.expect("established");
    assert_eq!((p, dialer), (rust.peer_id(), false));
    assert!(remote.contains("/tcp/"), "{remote}");
}

#[test]
fn our_swarm_dials_rust_libp2p_over_tcp_and_echoes() {
    let rust = RustPeer::spawn(PeerConfig {
        listen_tcp: true,
        echo_protocols: vec![ECHO.into()],
        ..PeerConfig::default()
    });
    let (ours, _) = dual_node(67);
    let addr = rust.tcp_dial_addr(TIMEOUT).expect("rust listens on TCP");
    ours.handle.dial(&addr, false, TIMEOUT).expect("TCP dial");
    for data in [b"z".to_vec(), pattern(100_000)] {
        assert_eq!(echo_roundtrip(&ours.handle, rust.peer_id(), &data), data);
    }
    assert!(
        rust.wait_for(TIMEOUT, |e| match e {
            PeerEvent::InboundStream { .. } => Some(()),
            _ => None,
        })
        .is_some()
    );
}

#[test]
fn one_node_serves_a_quic_peer_and_a_tcp_peer_with_one_plugin() {
    let (hub, hub_tcp) = dual_node(68);
    let (quic_peer, _) = dual_node(69);
    let rust = RustPeer::spawn(PeerConfig {
        listen: false,
        ..PeerConfig::default()
    });
    quic_peer
        .handle
        .dial(&hub.p2p_addr(), false, TIMEOUT)
        .expect("QUIC dial");
    rust.connect(hub_tcp.with(P::P2p(hub.peer)), TIMEOUT)
        .expect("TCP dial");
    let data = pattern(50_000);
    assert_eq!(echo_roundtrip(&quic_peer.handle, hub.peer, &data), data);
    assert_eq!(
        rust.request(hub.peer, ECHO, data.clone(), TIMEOUT)
            .expect("echo"),
        data
    );
}

/// Hands every inbound stream to a thread that sleeps before reading.
struct SlowReader {
    streams: std::sync::mpsc::Sender<swarm::DetachedStream>,
}

impl swarm::Protocol for SlowReader {
    fn protocol_ids(&self) -> Vec<String> {
        vec!["/test/sink/1.0.0".into()]
    }
    fn accept_inbound_stream(
        &mut self,
        ctx: &mut swarm::Context<'_>,
        stream: swarm::StreamRef,
        _: &str,
    ) {
        let handle = ctx.detach_stream(stream).expect("detach");
        let _ = self.streams.send(handle);
    }
}

#[test]
fn slow_reader_over_yamux_stays_bounded_and_gets_every_byte_in_order() {
    use std::io::{Read, Write};
    use std::time::Duration;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut rt = Runtime::new(config(70)).expect("runtime");
    rt.add_protocol(Box::new(SlowReader { streams: tx }));
    let b_tcp = rt
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .expect("tcp listen");
    let b_peer = rt.swarm().local_peer_id();
    let (b_handle, b_thread) = rt.spawn().expect("spawn");
    let b_events = subscribed(&b_handle);
    let b = Node::from_parts(b_handle, b_peer, b_tcp.clone(), b_events, b_thread);
    let (a, _) = dual_node(71);
    a.handle
        .dial(&b_tcp.with(P::P2p(b.peer)), false, TIMEOUT)
        .expect("TCP dial");
    const TOTAL: usize = 32 << 20;
    let limit = swarm::Limits::default().threaded_stream_buffer;
    let data = pattern(TOTAL);
    let sender = {
        let handle = a.handle.clone();
        let peer = b.peer;
        let data = data.clone();
        std::thread::spawn(move || {
            let mut s = handle
                .open_stream(peer, "/test/sink/1.0.0", TIMEOUT)
                .unwrap();
            s.set_timeout(Some(Duration::from_secs(60)));
            s.write_all(&data).unwrap();
            s.finish().unwrap();
            s.flush().unwrap();
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        })
    };
    let mut reader = rx.recv_timeout(TIMEOUT).expect("stream arrives");
    reader.set_timeout(Some(TIMEOUT));
    // The reader sleeps while the sender pushes: the swarm stops reading
    // and the Yamux window stops the sender.
    let mut peak = 0;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(50));
        let buffered = b
            .handle
            .call(TIMEOUT, |s| s.threaded_buffered_bytes())
            .unwrap();
        peak = peak.max(buffered);
    }
    assert!(
        peak > 0,
        "the swarm buffered nothing; the test proves nothing"
    );
    assert!(
        peak <= limit,
        "buffered {peak} bytes for a sleeping thread, bound is {limit}"
    );
    let mut got = Vec::with_capacity(TOTAL);
    reader.read_to_end(&mut got).expect("read");
    assert_eq!(got.len(), TOTAL);
    assert!(got == data, "bytes arrived out of order or corrupted");
    drop(reader);
    sender.join().unwrap();
}

#[test]
fn garbage_on_our_tcp_listener_is_dropped_and_the_node_keeps_serving() {
    use std::io::{Read, Write};
    let (a, a_tcp) = dual_node(72);
    let addr = match a_tcp.iter().nth(1) {
        Some(P::Tcp(port)) => std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        _ => panic!("tcp address {a_tcp}"),
    };
    // Not multistream-select: a length prefix far beyond the limit.
    let mut raw = std::net::TcpStream::connect(addr).unwrap();
    raw.set_read_timeout(Some(TIMEOUT)).unwrap();
    raw.write_all(&[0xff, 0xff, 0x03, b'x', b'y']).unwrap();
    let mut buf = [0u8; 256];
    let mut closed = false;
    for _ in 0..10 {
        match raw.read(&mut buf) {
            Ok(0) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {} // our multistream header
        }
    }
    assert!(closed, "the connection was not closed");
    let failed = a.wait_for(|e| match e {
        swarm::SwarmEvent::IncomingConnectionFailed { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert!(
        failed.is_some_and(|r| r.contains("multistream")),
        "no clear reason"
    );
    // Someone well-behaved still gets through.
    let (b, _) = dual_node(73);
    b.handle
        .dial(&a_tcp.with(P::P2p(a.peer)), false, TIMEOUT)
        .expect("TCP dial after the garbage");
    assert_eq!(echo_roundtrip(&b.handle, a.peer, b"ok"), b"ok");
}

#[test]
fn an_idle_tcp_connection_closes_after_the_idle_timeout() {
    let mut cfg = config(74);
    cfg.idle_connection_timeout = std::time::Duration::from_millis(300);
    let mut rt = Runtime::new(cfg).expect("runtime");
    let tcp = rt
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .expect("tcp listen");
    let peer = rt.swarm().local_peer_id();
    let (handle, thread) = rt.spawn().expect("spawn");
    let events = subscribed(&handle);
    let a = Node::from_parts(handle, peer, tcp.clone(), events, thread);
    let (b, _) = dual_node(75);
    b.handle
        .dial(&tcp.with(P::P2p(a.peer)), false, TIMEOUT)
        .expect("TCP dial");
    let closed = a.wait_for(|e| match e {
        swarm::SwarmEvent::ConnectionClosed { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert!(closed.is_some(), "the idle TCP connection stayed open");
    // The other side hears of it too (its socket reached end of file).
    let seen = b.wait_for(|e| match e {
        swarm::SwarmEvent::ConnectionClosed { .. } => Some(()),
        _ => None,
    });
    assert!(seen.is_some(), "the remote did not see the close");
}

#[test]
fn streams_beyond_the_yamux_limit_are_refused_and_the_others_keep_working() {
    use std::io::{Read, Write};
    let mut cfg = config(76);
    cfg.yamux.max_streams = 4;
    let mut rt = Runtime::new(cfg).expect("runtime");
    rt.add_protocol(Box::new(EchoPlugin));
    let tcp = rt
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .expect("tcp listen");
    let peer = rt.swarm().local_peer_id();
    let (handle, thread) = rt.spawn().expect("spawn");
    let events = subscribed(&handle);
    let a = Node::from_parts(handle, peer, tcp.clone(), events, thread);
    let (b, _) = dual_node(77);
    b.handle
        .dial(&tcp.with(P::P2p(a.peer)), false, TIMEOUT)
        .expect("TCP dial");
    // Four streams held open fill the listener's limit.
    let mut held: Vec<_> = (0..4)
        .map(|_| {
            let mut s = b.handle.open_stream(a.peer, ECHO, TIMEOUT).expect("open");
            s.set_timeout(Some(TIMEOUT));
            s.write_all(b"held").unwrap();
            let mut back = [0u8; 4];
            s.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"held");
            s
        })
        .collect();
    // The fifth is reset by the listener: an error, not a hang.
    let fifth = b.handle.open_stream(a.peer, ECHO, TIMEOUT);
    let refused = match fifth {
        Err(_) => true,
        Ok(mut s) => {
            s.set_timeout(Some(TIMEOUT));
            let _ = s.write_all(b"x");
            let _ = s.finish();
            let mut out = Vec::new();
            s.read_to_end(&mut out).is_err()
        }
    };
    assert!(refused, "a stream beyond the limit was served");
    // The held streams still work, and once they are done a new one opens.
    for s in &mut held {
        s.write_all(b"more").unwrap();
        s.finish().unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"more");
    }
    drop(held);
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(mut s) = b.handle.open_stream(a.peer, ECHO, TIMEOUT) {
            s.set_timeout(Some(TIMEOUT));
            if s.write_all(b"again").is_ok() && s.finish().is_ok() {
                let mut out = Vec::new();
                if s.read_to_end(&mut out).is_ok() && out == b"again" {
                    ok = true;
                    break;
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(ok, "no stream opened after the others ended");
}

#[test]
fn a_tcp_dial_to_a_closed_port_fails_promptly_with_the_reason() {
    let (b, _) = dual_node(78);
    // A port that was just free: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let err = b
        .handle
        .dial(
            &format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap(),
            false,
            TIMEOUT,
        )
        .expect_err("nothing listens");
    assert!(
        matches!(err, HandleError::Failed(DialError::Connect(_))),
        "{err:?}"
    );
    assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// A node that dials TCP with TLS instead of Noise.
fn tls_dialer(seed: u8) -> Node {
    let mut cfg = config(seed);
    cfg.tcp_security = swarm::TcpSecurity::Tls;
    let mut rt = Runtime::new(cfg).expect("runtime");
    rt.add_protocol(Box::new(EchoPlugin));
    let quic = rt
        .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
        .expect("quic listen");
    let peer = rt.swarm().local_peer_id();
    let (handle, thread) = rt.spawn().expect("spawn");
    let events = subscribed(&handle);
    Node::from_parts(handle, peer, quic, events, thread)
}

#[test]
fn our_swarm_dials_rust_libp2p_over_tcp_tls_yamux_and_echoes() {
    let rust = RustPeer::spawn(PeerConfig {
        listen_tcp: true,
        echo_protocols: vec![ECHO.into()],
        ..PeerConfig::default()
    });
    let ours = tls_dialer(79);
    let addr = rust.tcp_dial_addr(TIMEOUT).expect("rust listens on TCP");
    ours.handle
        .dial(&addr, false, TIMEOUT)
        .expect("TCP + TLS dial");
    let data = pattern(100_000);
    assert_eq!(echo_roundtrip(&ours.handle, rust.peer_id(), &data), data);
}

#[test]
fn tls_over_tcp_between_our_nodes_and_the_peer_id_check() {
    let (a, a_tcp) = dual_node(80);
    let b = tls_dialer(81);
    let wrong = swarm::Keypair::generate_ed25519().public().to_peer_id();
    match b
        .handle
        .dial(&a_tcp.clone().with(P::P2p(wrong)), false, TIMEOUT)
    {
        Err(HandleError::Failed(DialError::WrongPeerId { expected, actual })) => {
            assert_eq!((expected, actual), (wrong, a.peer));
        }
        other => panic!("unexpected {other:?}"),
    }
    b.handle
        .dial(&a_tcp.with(P::P2p(a.peer)), false, TIMEOUT)
        .expect("TCP + TLS dial");
    assert_eq!(echo_roundtrip(&b.handle, a.peer, b"tls"), b"tls");
}
