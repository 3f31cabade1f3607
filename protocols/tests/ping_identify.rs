//! ping and identify between our nodes, against misbehaving peers, through
//! the `ping` binary, and against a real rust-libp2p node in both
//! directions. Loopback only; every wait is bounded.

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use protocols::identify::{
    self, Identify, IdentifyConfig, IdentifyError, IdentifyEvent, IdentifyInfo, IdentifyPush,
};
use protocols::ping::{self, Ping, PingConfig, PingError, PingEvent};
use rust_libp2p_peer::{PeerConfig, PeerEvent, RustPeer};
use swarm::multiaddr::Protocol as AddrPart;
use swarm::{
    Bytes, Context, Multiaddr, PeerId, Protocol, ProtocolEvent, StreamError, StreamRef, SwarmEvent,
};

// ----- helpers -----

/// The first ping result `node` reports for `peer`.
fn next_ping(node: &Node, peer: PeerId) -> Result<Duration, PingError> {
    node.wait_for::<PingEvent, _>("a ping event", |e| {
        (e.peer == peer).then(|| e.result.clone())
    })
}

/// The first identify answer (not push) `node` receives from `peer`.
fn identified(node: &Node, peer: PeerId) -> IdentifyInfo {
    node.wait_for::<IdentifyEvent, _>("identify", |e| match e {
        IdentifyEvent::Received {
            peer: p,
            info,
            pushed: false,
            ..
        } if *p == peer => Some(info.clone()),
        IdentifyEvent::Error { peer: p, error, .. } if *p == peer => {
            panic!("identify with {peer} failed: {error}")
        }
        _ => None,
    })
}

/// The remote address of `node`'s first connection to `peer`.
fn remote_addr_of(node: &Node, peer: PeerId) -> Multiaddr {
    node.wait_for_swarm("the connection", |e| match e {
        SwarmEvent::ConnectionEstablished {
            peer: p,
            remote_addr,
            ..
        } if *p == peer => Some(remote_addr.clone()),
        _ => None,
    })
}

fn without_p2p(mut addr: Multiaddr) -> Multiaddr {
    if let Some(AddrPart::P2p(_)) = addr.iter().last() {
        addr.pop();
    }
    addr
}

const OUR_PROTOCOLS: [&str; 3] = [identify::PROTOCOL, identify::PUSH_PROTOCOL, ping::PROTOCOL];

/// Every field `info` carries about `node`, seen by a peer that reached it
/// from `observed`.
fn assert_describes(info: &IdentifyInfo, node: &Node, agent: &str, observed: &Multiaddr) {
    assert_eq!(info.public_key, node.keypair.public(), "public key");
    assert_eq!(
        info.public_key.to_peer_id(),
        node.peer,
        "key matches PeerId"
    );
    assert_eq!(info.protocol_version, identify::DEFAULT_PROTOCOL_VERSION);
    assert_eq!(info.agent_version, agent);
    for p in OUR_PROTOCOLS {
        assert!(
            info.protocols.iter().any(|q| q == p),
            "{p} missing from {:?}",
            info.protocols
        );
    }
    assert!(
        info.listen_addrs.contains(&node.addr),
        "{} missing from {:?}",
        node.addr,
        info.listen_addrs
    );
    assert_eq!(
        info.observed_addr.as_ref(),
        Some(observed),
        "observed address"
    );
}

/// What a peer store holds about `peer`, read on the swarm thread.
#[derive(Debug)]
struct Stored {
    protocols: Vec<String>,
    addresses: Vec<Multiaddr>,
    agent_version: Option<String>,
    protocol_version: Option<String>,
    observed_addr: Option<Multiaddr>,
    public_key: Option<swarm::PublicKey>,
    rtt: Option<Duration>,
}

fn stored(node: &Node, peer: PeerId) -> Stored {
    node.peer_store(move |store| {
        let record = store.get(&peer).expect("the peer store knows the peer");
        Stored {
            protocols: record.protocols().to_vec(),
            addresses: store.addresses(&peer, Instant::now()),
            agent_version: record.agent_version().map(str::to_owned),
            protocol_version: record.protocol_version().map(str::to_owned),
            observed_addr: record.observed_addr().cloned(),
            public_key: record.public_key().cloned(),
            rtt: record.last_rtt(),
        }
    })
}

// ----- ping between our nodes -----

#[test]
fn ping_reports_rtts_both_ways_on_one_stream_and_records_them() {
    let a = Node::start(1, |_| vec![fast_ping()]);
    let b = Node::start(2, |_| vec![fast_ping()]);
    a.dial(b.p2p_addr());
    for _ in 0..3 {
        let rtt = next_ping(&a, b.peer).expect("a pings b");
        assert!(rtt < TIMEOUT, "implausible rtt {rtt:?}");
        next_ping(&b, a.peer).expect("b pings a");
    }
    // Three pings each way, and still one stream per direction.
    assert_eq!(a.handle.call(TIMEOUT, |s| s.stream_count()).unwrap(), 2);
    assert!(stored(&a, b.peer).rtt.is_some(), "a recorded b's rtt");
    assert!(stored(&b, a.peer).rtt.is_some(), "b recorded a's rtt");
}

/// Answers `/ipfs/ping/1.0.0` with every byte off by one, and reports how
/// its streams end.
struct WrongEcho {
    closed: mpsc::Sender<StreamError>,
}

impl Protocol for WrongEcho {
    fn protocol_ids(&self) -> Vec<String> {
        vec![ping::PROTOCOL.into()]
    }
    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        let wrong: Vec<u8> = data.iter().map(|b| b.wrapping_add(1)).collect();
        let _ = ctx.write(stream, &wrong);
    }
    // The pinger aborts a stream both ways; either direction's end may come first.
    fn handle_stream_stopped(&mut self, _: &mut Context<'_>, _: StreamRef, code: u64) {
        let _ = self.closed.send(StreamError::Stopped(code));
    }
    fn handle_stream_closed(&mut self, _: &mut Context<'_>, _: StreamRef, reason: &StreamError) {
        let _ = self.closed.send(reason.clone());
    }
}

#[test]
fn wrong_ping_echo_is_an_error_and_resets_the_stream() {
    let (tx, closed) = mpsc::channel();
    let a = Node::start(3, |_| vec![fast_ping()]);
    let b = Node::start(4, |_| vec![Box::new(WrongEcho { closed: tx })]);
    a.dial(b.p2p_addr());
    assert_eq!(next_ping(&a, b.peer), Err(PingError::WrongEcho));
    let reason = closed.recv_timeout(TIMEOUT).expect("the stream was reset");
    assert!(
        matches!(reason, StreamError::Reset(_) | StreamError::Stopped(_)),
        "stream ended with {reason:?}"
    );
    // The next ping, on a new stream, fails the same way: no stale state.
    assert_eq!(next_ping(&a, b.peer), Err(PingError::WrongEcho));
}

/// Accepts `/ipfs/ping/1.0.0` and never answers.
struct SilentPing;

impl Protocol for SilentPing {
    fn protocol_ids(&self) -> Vec<String> {
        vec![ping::PROTOCOL.into()]
    }
}

#[test]
fn ping_without_echo_times_out() {
    let timeout = Duration::from_millis(300);
    let a = Node::start(25, |_| {
        vec![Box::new(Ping::new(PingConfig {
            interval: FAST_PING,
            timeout,
            ..PingConfig::default()
        }))]
    });
    let b = Node::start(26, |_| vec![Box::new(SilentPing)]);
    a.dial(b.p2p_addr());
    assert_eq!(next_ping(&a, b.peer), Err(PingError::Timeout(timeout)));
    assert_eq!(
        a.connections_to(b.peer),
        1,
        "a ping timeout keeps the connection"
    );
}

#[test]
fn inbound_ping_echoes_chunked_frames_and_a_third_stream_is_reset() {
    let a = Node::start(5, |_| vec![]);
    let b = Node::start(6, |_| {
        vec![Box::new(Ping::new(PingConfig {
            ping_on_connect: false,
            ..PingConfig::default()
        }))]
    });
    a.dial(b.p2p_addr());
    let open = || {
        let mut s = a
            .handle
            .open_stream(b.peer, ping::PROTOCOL, TIMEOUT)
            .expect("b speaks ping");
        s.set_timeout(Some(TIMEOUT));
        s
    };
    let payload: Vec<u8> = (0..64).collect();
    let mut streams = vec![open(), open()];
    for s in &mut streams {
        // One frame split in two writes, then two frames in one write.
        s.write_all(&payload[..5]).unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        s.write_all(&payload[5..32]).unwrap();
        let mut echo = [0u8; 32];
        s.read_exact(&mut echo).unwrap();
        assert_eq!(echo[..], payload[..32]);
        s.write_all(&payload).unwrap();
        let mut echo = [0u8; 64];
        s.read_exact(&mut echo).unwrap();
        assert_eq!(echo[..], payload[..]);
    }
    // A third stream is reset. The reset may overtake the end of
    // negotiation, so opening it may already fail.
    let third = a.handle.open_stream(b.peer, ping::PROTOCOL, TIMEOUT);
    let mut buf = [0u8; 32];
    if let Ok(mut third) = third {
        third.set_timeout(Some(TIMEOUT));
        let _ = third.write_all(&payload[..32]);
        assert!(
            third.read_exact(&mut buf).is_err(),
            "a third stream is reset"
        );
    }
    // The first two still work.
    streams[0].write_all(&payload[..32]).unwrap();
    streams[0].read_exact(&mut buf).unwrap();
    assert_eq!(buf[..], payload[..32]);
}

// ----- identify between our nodes -----

#[test]
fn identify_sends_every_field_both_ways_and_fills_the_peer_store() {
    let a = Node::start(7, |k| vec![identify(k, "node-a"), fast_ping()]);
    let b = Node::start(8, |k| vec![identify(k, "node-b"), fast_ping()]);
    a.dial(b.p2p_addr());
    let b_seen_by_a = remote_addr_of(&a, b.peer);
    let a_seen_by_b = remote_addr_of(&b, a.peer);
    // The dialer's real address: we dial from our listening socket.
    assert_eq!(a_seen_by_b, a.addr);

    let from_b = identified(&a, b.peer);
    assert_describes(&from_b, &b, "node-b", &a_seen_by_b);
    let from_a = identified(&b, a.peer);
    assert_describes(&from_a, &a, "node-a", &b_seen_by_a);

    let s = stored(&a, b.peer);
    assert_eq!(s.public_key.as_ref(), Some(&b.keypair.public()));
    assert_eq!(s.agent_version.as_deref(), Some("node-b"));
    assert_eq!(
        s.protocol_version.as_deref(),
        Some(identify::DEFAULT_PROTOCOL_VERSION)
    );
    assert_eq!(s.observed_addr.as_ref(), Some(&a_seen_by_b));
    for p in OUR_PROTOCOLS {
        assert!(s.protocols.iter().any(|q| q == p), "{p} not stored: {s:?}");
    }
    assert!(
        s.addresses.contains(&b.addr),
        "b's address not stored: {s:?}"
    );
    let s = stored(&b, a.peer);
    assert_eq!(s.agent_version.as_deref(), Some("node-a"));
    assert!(
        s.addresses.contains(&a.addr),
        "a's address not stored: {s:?}"
    );
}

#[test]
fn identify_push_announces_a_new_listen_address() {
    let a = Node::start(9, |k| vec![identify(k, "node-a")]);
    let b = Node::start(10, |k| vec![identify(k, "node-b")]);
    a.dial(b.p2p_addr());
    identified(&a, b.peer);
    let new_addr = b
        .handle
        .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap(), TIMEOUT)
        .expect("listen");
    let pushed = a.wait_for::<IdentifyEvent, _>("a push", |e| match e {
        IdentifyEvent::Received {
            peer,
            info,
            pushed: true,
            ..
        } if *peer == b.peer => Some(info.clone()),
        _ => None,
    });
    assert!(pushed.listen_addrs.contains(&new_addr), "{pushed:?}");
    assert!(pushed.listen_addrs.contains(&b.addr), "{pushed:?}");
    assert_eq!(pushed.agent_version, "node-b");
    b.wait_for::<IdentifyEvent, _>("pushed", |e| {
        matches!(e, IdentifyEvent::Pushed { peer, .. } if *peer == a.peer).then_some(())
    });
    assert!(stored(&a, b.peer).addresses.contains(&new_addr));
}

#[test]
fn identify_push_event_pushes_to_connected_peers() {
    let a = Node::start(11, |k| vec![identify(k, "node-a")]);
    let b = Node::start(12, |k| vec![identify(k, "node-b")]);
    a.dial(b.p2p_addr());
    identified(&a, b.peer);
    b.handle
        .send_event(ProtocolEvent::new("test", IdentifyPush))
        .unwrap();
    let pushed = a.wait_for::<IdentifyEvent, _>("a push", |e| match e {
        IdentifyEvent::Received {
            peer,
            info,
            pushed: true,
            ..
        } if *peer == b.peer => Some(info.clone()),
        _ => None,
    });
    assert_eq!(pushed.public_key, b.keypair.public());
}

/// Answers `/ipfs/id/1.0.0` with fixed raw bytes, then finishes unless
/// told to hang.
struct RawIdentify {
    reply: Vec<u8>,
    finish: bool,
}

impl Protocol for RawIdentify {
    fn protocol_ids(&self) -> Vec<String> {
        vec![identify::PROTOCOL.into()]
    }
    fn accept_inbound_stream(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _: &str) {
        // Small enough to fit the window at once; errors mean the reader
        // already gave up, which is what the tests expect.
        let _ = ctx.write(stream, &self.reply);
        if self.finish {
            let _ = ctx.finish(stream);
        }
    }
}

/// `a` asks `b` for identify (giving up after `timeout`) and `b` answers
/// as `responder` does; returns a's error, and checks the connection still
/// carries pings afterwards.
fn identify_against(seed: u8, responder: RawIdentify, timeout: Duration) -> IdentifyError {
    let a = Node::start(seed, |k| {
        let mut config = IdentifyConfig::new(k.public());
        config.timeout = timeout;
        vec![Box::new(Identify::new(config)), fast_ping()]
    });
    let b = Node::start(seed + 1, |_| vec![Box::new(responder), fast_ping()]);
    a.dial(b.p2p_addr());
    let error = a.wait_for::<IdentifyEvent, _>("identify error", |e| match e {
        IdentifyEvent::Error { peer, error, .. } if *peer == b.peer => Some(error.clone()),
        IdentifyEvent::Received { .. } => panic!("the bad answer was accepted"),
        _ => None,
    });
    // The connection survives: pings after the error still succeed.
    next_ping(&a, b.peer).expect("ping after the identify error");
    assert_eq!(a.connections_to(b.peer), 1);
    error
}

/// [`identify_against`] a responder that sends `reply` and finishes.
fn identify_against_raw_reply(seed: u8, reply: Vec<u8>) -> IdentifyError {
    let responder = RawIdentify {
        reply,
        finish: true,
    };
    identify_against(seed, responder, TIMEOUT)
}

#[test]
fn identify_message_over_the_limit_is_rejected_and_connection_survives() {
    let size = identify::DEFAULT_MAX_MESSAGE_SIZE + 1;
    // The uvarint length, then that many bytes.
    let mut prefix = unsigned_varint::encode::usize_buffer();
    let mut reply = unsigned_varint::encode::usize(size, &mut prefix).to_vec();
    reply.resize(reply.len() + size, 0);
    let error = identify_against_raw_reply(13, reply);
    assert_eq!(
        error,
        IdentifyError::MessageTooLarge {
            size,
            limit: identify::DEFAULT_MAX_MESSAGE_SIZE
        }
    );
}

#[test]
fn identify_answer_that_never_ends_times_out() {
    let timeout = Duration::from_millis(500);
    let responder = RawIdentify {
        reply: Vec::new(),
        finish: false,
    };
    let error = identify_against(23, responder, timeout);
    assert_eq!(error, IdentifyError::Timeout(timeout));
}

#[test]
fn garbage_identify_message_is_rejected_and_connection_survives() {
    // Length 4, then field 1 with the invalid wire type 7.
    let error = identify_against_raw_reply(15, vec![4, 0x0f, 0xff, 0xff, 0xff]);
    assert!(matches!(error, IdentifyError::Decode(_)), "{error:?}");
}

#[test]
fn identify_answer_with_another_peers_key_is_rejected() {
    let other = keypair(99).public();
    let mut message = Vec::new();
    // Field 1 (publicKey), length-delimited.
    let key = other.encode_protobuf();
    message.push(0x0a);
    message.push(key.len() as u8);
    message.extend_from_slice(&key);
    let mut reply = vec![message.len() as u8];
    reply.extend_from_slice(&message);
    let error = identify_against_raw_reply(17, reply);
    assert_eq!(
        error,
        IdentifyError::WrongPeerId {
            actual: other.to_peer_id()
        }
    );
}

// ----- the ping binary -----

/// Run the `ping` binary, killing it if it outlives `limit`.
fn ping_bin(args: &[String], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ping"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ping");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ping did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn ping_binary_exits_zero_and_prints_identify_and_rtts() {
    let target = Node::start(19, |k| vec![identify(k, "ping-target/1"), fast_ping()]);
    let args = [
        target.p2p_addr().to_string(),
        "3".into(),
        "--interval".into(),
        "0.1".into(),
    ];
    let out = ping_bin(&args, TIMEOUT);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        text(&out.stderr)
    );
    assert!(stdout.contains("agent version: ping-target/1"), "{stdout}");
    assert!(stdout.contains(ping::PROTOCOL), "{stdout}");
    for i in 1..=3 {
        assert!(stdout.contains(&format!("ping {i}: rtt ")), "{stdout}");
    }
    assert!(!stdout.contains("ping 4:"), "{stdout}");
    assert!(stdout.contains("rtt min/median/max = "), "{stdout}");
}

/// A failed run: non-zero exit and exactly one line on stderr.
fn assert_fails_with(out: &Output, reason: &str) {
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "ping succeeded: {}",
        text(&out.stdout)
    );
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(
        stderr.to_lowercase().contains(reason),
        "{stderr:?} lacks {reason:?}"
    );
}

#[test]
fn ping_binary_exits_nonzero_for_a_wrong_peer_id() {
    let target = Node::start(20, |k| vec![identify(k, "ping-target/1"), fast_ping()]);
    let addr = target.addr.clone().with(AddrPart::P2p(PeerId::random()));
    let out = ping_bin(&[addr.to_string()], TIMEOUT);
    assert_fails_with(&out, "wrong peer id");
}

#[test]
fn ping_binary_exits_nonzero_for_an_unreachable_address() {
    // A port nobody listens on.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("/ip4/127.0.0.1/udp/{port}/quic-v1/p2p/{}", PeerId::random());
    let out = ping_bin(&[addr, "--timeout".into(), "2".into()], TIMEOUT);
    assert_fails_with(&out, "cannot connect");
}

#[test]
fn ping_binary_exits_nonzero_when_the_peer_does_not_answer_pings() {
    let target = Node::start(21, |k| vec![identify(k, "no-ping/1")]);
    let args = [target.p2p_addr().to_string(), "1".into()];
    let out = ping_bin(&args, TIMEOUT);
    assert_fails_with(&out, "does not support ping");
}

#[test]
fn ping_binary_refuses_an_address_without_peer_id() {
    let out = ping_bin(&["/ip4/127.0.0.1/udp/1/quic-v1".into()], TIMEOUT);
    assert_fails_with(&out, "/p2p/");
}

// ----- interop with rust-libp2p -----

const RUST_AGENT: &str = "rust-libp2p-interop/1";

/// A rust-libp2p node whose events can be waited for in any order (the
/// peer's own `wait_for` drops the events it passes over).
struct Rust {
    peer: RustPeer,
    backlog: RefCell<Vec<PeerEvent>>,
}

impl Rust {
    fn start() -> Rust {
        Rust {
            peer: RustPeer::spawn(PeerConfig {
                ping_interval: FAST_PING,
                agent_version: RUST_AGENT.into(),
                ..PeerConfig::default()
            }),
            backlog: RefCell::default(),
        }
    }

    /// The first event `f` maps to `Some`, consuming it; panics after
    /// [`TIMEOUT`].
    fn wait_for<R>(&self, what: &str, mut f: impl FnMut(&PeerEvent) -> Option<R>) -> R {
        let mut backlog = self.backlog.borrow_mut();
        for i in 0..backlog.len() {
            if let Some(r) = f(&backlog[i]) {
                backlog.remove(i);
                return r;
            }
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(event) = self.peer.next_event(left) else {
                panic!("waited {TIMEOUT:?} for rust-libp2p's {what}");
            };
            match f(&event) {
                Some(r) => return r,
                None => backlog.push(event),
            }
        }
    }
}

/// What rust-libp2p received from us by identify.
fn rust_identified(rust: &Rust, peer: PeerId) -> rust_libp2p_peer::IdentifyInfo {
    rust.wait_for("identify", |e| match e {
        PeerEvent::IdentifyReceived { peer: p, info } if *p == peer => Some(info.clone()),
        PeerEvent::IdentifyError { peer: p, error } if *p == peer => {
            panic!("rust-libp2p could not identify us: {error}")
        }
        _ => None,
    })
}

/// Pings both ways, then identify checked field by field both ways.
/// `ours_addr_seen_by_rust` / `rust_addr_seen_by_us` are each side's real
/// address as the other reached it.
fn check_ping_and_identify(
    ours: &Node,
    rust: &Rust,
    ours_addr_seen_by_rust: &Multiaddr,
    rust_addr_seen_by_us: &Multiaddr,
) {
    let rust_id = rust.peer.peer_id();
    // ping: RTTs on our side, successes on theirs.
    for _ in 0..2 {
        next_ping(ours, rust_id).expect("we ping rust-libp2p");
    }
    let theirs = rust.wait_for("ping", |e| match e {
        PeerEvent::Ping { peer, result } if *peer == ours.peer => Some(result.clone()),
        _ => None,
    });
    theirs.expect("rust-libp2p's ping to us succeeded");
    assert!(stored(ours, rust_id).rtt.is_some(), "rtt recorded");

    // identify, our side: what rust-libp2p told us.
    let info = identified(ours, rust_id);
    assert_eq!(info.public_key.to_peer_id(), rust_id, "key matches PeerId");
    assert_eq!(info.agent_version, RUST_AGENT);
    assert_eq!(
        info.protocol_version,
        rust_libp2p_peer::IDENTIFY_PROTOCOL_VERSION
    );
    for p in [identify::PROTOCOL, identify::PUSH_PROTOCOL, ping::PROTOCOL] {
        assert!(
            info.protocols.iter().any(|q| q == p),
            "{p} missing: {info:?}"
        );
    }
    for addr in rust.peer.listen_addrs() {
        assert!(
            info.listen_addrs.contains(&addr),
            "{addr} missing: {info:?}"
        );
    }
    assert_eq!(
        info.observed_addr.map(without_p2p).as_ref(),
        Some(ours_addr_seen_by_rust),
        "observed address"
    );
    // Our peer store holds rust-libp2p's protocols and addresses.
    let s = stored(ours, rust_id);
    assert_eq!(s.agent_version.as_deref(), Some(RUST_AGENT));
    assert!(s.protocols.iter().any(|q| q == ping::PROTOCOL), "{s:?}");
    for addr in rust.peer.listen_addrs() {
        assert!(s.addresses.contains(&addr), "{addr} not stored: {s:?}");
    }

    // identify, their side: what we told rust-libp2p.
    let theirs = rust_identified(rust, ours.peer);
    assert_eq!(
        theirs.public_key.to_peer_id(),
        ours.peer,
        "key matches PeerId"
    );
    assert_eq!(theirs.public_key, ours.keypair.public());
    assert_eq!(theirs.agent_version, "ours");
    assert_eq!(theirs.protocol_version, identify::DEFAULT_PROTOCOL_VERSION);
    for p in OUR_PROTOCOLS {
        assert!(
            theirs.protocols.iter().any(|q| q == p),
            "{p} missing: {theirs:?}"
        );
    }
    assert!(theirs.listen_addrs.contains(&ours.addr), "{theirs:?}");
    assert_eq!(
        &theirs.observed_addr, rust_addr_seen_by_us,
        "observed address"
    );
}

#[test]
fn interop_we_dial_rust_libp2p_ping_and_identify_both_ways() {
    let rust = Rust::start();
    let ours = Node::start(30, |k| vec![identify(k, "ours"), fast_ping()]);
    let rust_addr = rust.peer.listen_addrs()[0].clone();
    ours.dial(rust.peer.dial_addr().expect("rust-libp2p listens"));
    let seen = rust.wait_for("connection", |e| match e {
        PeerEvent::ConnectionEstablished {
            peer, remote_addr, ..
        } if *peer == ours.peer => Some(remote_addr.clone()),
        _ => None,
    });
    // We dial from our listening socket: rust-libp2p sees our real address.
    assert_eq!(seen, ours.addr);
    check_ping_and_identify(&ours, &rust, &ours.addr, &rust_addr);
}

#[test]
fn interop_rust_libp2p_dials_us_ping_and_identify_both_ways() {
    let rust = Rust::start();
    let ours = Node::start(31, |k| vec![identify(k, "ours"), fast_ping()]);
    rust.peer
        .connect(ours.p2p_addr(), TIMEOUT)
        .expect("rust-libp2p connects to us");
    let rust_seen_by_us = remote_addr_of(&ours, rust.peer.peer_id());
    // rust-libp2p dials from its listening socket too.
    assert_eq!(rust_seen_by_us, rust.peer.listen_addrs()[0]);
    check_ping_and_identify(&ours, &rust, &ours.addr, &rust_seen_by_us);
}

#[test]
fn interop_rust_libp2p_dials_us_over_tcp_ping_and_identify_both_ways() {
    // Ping and identify run unchanged over TCP + Noise + Yamux; identify
    // reports the TCP listen address and the TCP address observed.
    let rust = Rust::start();
    let ours = Node::start(33, |k| vec![identify(k, "ours"), fast_ping()]);
    let rust_id = rust.peer.peer_id();
    let tcp = ours
        .handle
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap(), TIMEOUT)
        .expect("tcp listen");
    rust.peer
        .connect(tcp.clone().with(AddrPart::P2p(ours.peer)), TIMEOUT)
        .expect("rust-libp2p connects to us over TCP");
    let rust_seen_by_us = remote_addr_of(&ours, rust_id);
    assert!(
        rust_seen_by_us
            .iter()
            .any(|p| matches!(p, AddrPart::Tcp(_))),
        "{rust_seen_by_us}"
    );
    for _ in 0..2 {
        next_ping(&ours, rust_id).expect("we ping rust-libp2p over TCP");
    }
    let theirs = rust.wait_for("ping", |e| match e {
        PeerEvent::Ping { peer, result } if *peer == ours.peer => Some(result.clone()),
        _ => None,
    });
    theirs.expect("rust-libp2p's ping to us over TCP succeeded");
    let info = identified(&ours, rust_id);
    assert!(
        info.protocols.iter().any(|q| q == ping::PROTOCOL),
        "{info:?}"
    );
    assert_eq!(
        info.observed_addr.map(without_p2p).as_ref(),
        Some(&tcp),
        "rust-libp2p observed the TCP address it dialed"
    );
    let theirs = rust_identified(&rust, ours.peer);
    assert!(theirs.listen_addrs.contains(&tcp), "{theirs:?}");
    assert!(theirs.listen_addrs.contains(&ours.addr), "{theirs:?}");
    assert_eq!(theirs.observed_addr, rust_seen_by_us, "observed address");
}

#[test]
fn interop_identify_push_works_both_ways() {
    let rust = Rust::start();
    let ours = Node::start(32, |k| vec![identify(k, "ours"), fast_ping()]);
    let rust_id = rust.peer.peer_id();
    ours.dial(rust.peer.dial_addr().expect("rust-libp2p listens"));
    identified(&ours, rust_id);
    rust_identified(&rust, ours.peer);

    // Our push, on a new listen address, reaches rust-libp2p.
    let new_addr = ours
        .handle
        .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap(), TIMEOUT)
        .expect("listen");
    let theirs = rust.wait_for("our push", |e| match e {
        PeerEvent::IdentifyReceived { peer, info } if *peer == ours.peer => {
            info.listen_addrs.contains(&new_addr).then(|| info.clone())
        }
        _ => None,
    });
    assert!(theirs.listen_addrs.contains(&ours.addr), "{theirs:?}");

    // rust-libp2p's push reaches us and lands in the peer store.
    let external: Multiaddr = "/ip4/127.0.0.1/udp/9/quic-v1".parse().unwrap();
    rust.peer.add_external_listen_addr(external.clone());
    rust.peer.push_identify(vec![ours.peer]);
    let pushed = ours.wait_for::<IdentifyEvent, _>("rust-libp2p's push", |e| match e {
        IdentifyEvent::Received {
            peer,
            info,
            pushed: true,
            ..
        } if *peer == rust_id => Some(info.clone()),
        _ => None,
    });
    assert!(pushed.listen_addrs.contains(&external), "{pushed:?}");
    assert!(stored(&ours, rust_id).addresses.contains(&external));
}

#[test]
fn interop_ping_binary_pings_rust_libp2p() {
    let rust = Rust::start();
    let addr = rust.peer.dial_addr().expect("rust-libp2p listens");
    let args = [
        addr.to_string(),
        "2".into(),
        "--interval".into(),
        "0.1".into(),
    ];
    let out = ping_bin(&args, TIMEOUT);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        text(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("agent version: {RUST_AGENT}")),
        "{stdout}"
    );
    assert!(stdout.contains("ping 2: rtt "), "{stdout}");
}

#[test]
fn pinging_alone_does_not_keep_a_connection_open() {
    let mut config = swarm::SwarmConfig::new(keypair(60));
    config.idle_connection_timeout = Duration::from_millis(500);
    let mut rt = swarm::Runtime::new(config).expect("runtime");
    rt.add_protocol(fast_ping());
    let (handle, thread) = rt.spawn().expect("spawn");
    let events = handle.subscribe(1024).expect("subscribe");
    let b = Node::start(61, |_| vec![fast_ping()]);
    handle.dial(&b.p2p_addr(), false, TIMEOUT).expect("dial");
    let (mut pinged, mut closed) = (false, false);
    let deadline = Instant::now() + TIMEOUT;
    while !closed && Instant::now() < deadline {
        match events.recv_timeout(Duration::from_millis(100)) {
            Ok(SwarmEvent::Protocol(e)) => {
                if let Some(p) = e.downcast_ref::<PingEvent>() {
                    pinged |= p.result.is_ok();
                }
            }
            Ok(SwarmEvent::ConnectionClosed { .. }) => closed = true,
            _ => {}
        }
    }
    assert!(pinged, "the connection was pinged");
    assert!(
        closed,
        "an idle connection with only ping traffic must close"
    );
    handle.shutdown(0).unwrap();
    thread.join().unwrap().unwrap();
}
