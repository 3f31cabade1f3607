//! Hostile peers against a running node over real TCP connections.
//!
//! Yamux and Noise input: a raw peer runs the Noise handshake itself
//! (Yamux chosen inline), then writes Yamux frames by hand. Stream-level
//! violations reset that stream and the connection keeps answering;
//! connection-level ones end that connection with a clear reason; either
//! way the node goes on serving a well-behaved peer.
//!
//! Connection floods: the per-IP, pending-handshake and per-peer limits
//! hold for TCP as they do for QUIC.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::*;
use swarm::multiaddr::Protocol as P;
use swarm::multistream::{MultistreamLimits, Negotiation, Progress};
use swarm::noise::{HandshakeProgress, NoiseConfig, NoiseHandshake, NoiseTransport};
use swarm::yamux::{DEFAULT_WINDOW, YamuxConfig};
use swarm::{Keypair, Multiaddr, PeerId, SwarmEvent};

const DATA: u8 = 0;
const WINDOW_UPDATE: u8 = 1;
const PING: u8 = 2;
const GO_AWAY: u8 = 3;
const SYN: u16 = 1;
const ACK: u16 = 2;
const RST: u16 = 8;

/// One Yamux frame as read off the wire.
#[derive(Debug)]
struct Frame {
    ty: u8,
    flags: u16,
    stream: u32,
    length: u32,
}

/// A peer that speaks Noise properly and Yamux however the test says.
struct RawPeer {
    sock: TcpStream,
    noise: NoiseTransport,
    plain: BytesMut,
}

impl RawPeer {
    /// Connect, select `/noise`, run the handshake listing Yamux (so no
    /// multistream-select for the muxer follows).
    fn connect(addr: SocketAddr, peer: PeerId) -> RawPeer {
        Self::connect_as(addr, peer, &Keypair::generate_ed25519())
    }

    /// [`RawPeer::connect`] with our identity `key`.
    fn connect_as(addr: SocketAddr, peer: PeerId, key: &Keypair) -> RawPeer {
        let mut sock = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut select = Negotiation::dialer("/noise", MultistreamLimits::default());
        let config = NoiseConfig {
            stream_muxers: vec!["/yamux/1.0.0".into()],
        };
        let mut handshake =
            NoiseHandshake::initiator(key, Some(peer), config, rand::random()).unwrap();
        sock.write_all(&select.take_outbound()).unwrap();
        sock.write_all(&handshake.take_outbound()).unwrap();
        let deadline = Instant::now() + TIMEOUT;
        let mut selected = false;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            assert!(Instant::now() < deadline, "handshake timed out");
            let n = match sock.read(&mut buf) {
                Ok(0) => panic!("the node closed the connection in the handshake"),
                Ok(n) => n,
                Err(e) if is_timeout(&e) => continue,
                Err(e) => panic!("{e}"),
            };
            let mut data = Bytes::copy_from_slice(&buf[..n]);
            if !selected {
                match select.feed(data, &|_| false).expect("selects /noise") {
                    Progress::Done { remainder, .. } => {
                        selected = true;
                        data = remainder;
                    }
                    Progress::Pending => continue,
                }
            }
            let progress = handshake.feed(&data).expect("handshake");
            sock.write_all(&handshake.take_outbound()).unwrap();
            if progress == HandshakeProgress::Done {
                break;
            }
        }
        let (noise, remote) = handshake.into_transport().unwrap();
        assert_eq!(remote.stream_muxers, vec!["/yamux/1.0.0".to_string()]);
        RawPeer {
            sock,
            noise,
            plain: BytesMut::new(),
        }
    }

    /// Write a frame header and `payload` (which may be shorter than
    /// `length`: a lie the node must catch).
    fn send(&mut self, ty: u8, flags: u16, stream: u32, length: u32, payload: &[u8]) {
        let mut plain = vec![0u8, ty];
        plain.extend_from_slice(&flags.to_be_bytes());
        plain.extend_from_slice(&stream.to_be_bytes());
        plain.extend_from_slice(&length.to_be_bytes());
        plain.extend_from_slice(payload);
        self.send_plain(&plain);
    }

    fn send_plain(&mut self, plain: &[u8]) {
        let mut out = BytesMut::new();
        self.noise.encrypt(plain, &mut out).unwrap();
        // The node may already have closed: what it said is read next.
        let _ = self.sock.write_all(&out);
    }

    /// The next frame from the node, answering its pings on the way; `None`
    /// when the connection ended or nothing came within `wait`.
    fn next_frame(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if self.plain.len() >= 12 {
                let h = self.plain.split_to(12);
                let frame = Frame {
                    ty: h[1],
                    flags: u16::from_be_bytes([h[2], h[3]]),
                    stream: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                    length: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
                };
                if frame.ty == DATA {
                    // Data payloads are skipped whole (they are small here).
                    while self.plain.len() < frame.length as usize {
                        if !self.read_more(&mut buf, deadline) {
                            return None;
                        }
                    }
                    let _ = self.plain.split_to(frame.length as usize);
                }
                if frame.ty == PING && frame.flags & SYN != 0 {
                    self.send(PING, ACK, 0, frame.length, &[]);
                }
                return Some(frame);
            }
            if !self.read_more(&mut buf, deadline) {
                return None;
            }
        }
    }

    fn read_more(&mut self, buf: &mut [u8], deadline: Instant) -> bool {
        loop {
            if Instant::now() >= deadline {
                return false;
            }
            match self.sock.read(buf) {
                Ok(0) => return false,
                Ok(n) => {
                    self.noise.decrypt(&buf[..n], &mut self.plain).unwrap();
                    return true;
                }
                Err(e) if is_timeout(&e) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Frames until `f` picks one (or the connection ends, or `TIMEOUT`).
    fn wait_for(&mut self, mut f: impl FnMut(&Frame) -> bool) -> Option<Frame> {
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            let frame = self.next_frame(deadline - Instant::now())?;
            if f(&frame) {
                return Some(frame);
            }
        }
        None
    }

    /// The connection still runs: our ping gets its acknowledgement.
    fn answers_ping(&mut self, opaque: u32) -> bool {
        self.send(PING, SYN, 0, opaque, &[]);
        self.wait_for(|f| f.ty == PING && f.flags & ACK != 0 && f.length == opaque)
            .is_some()
    }

    /// The node ended the connection: a go-away (if it got one out), then
    /// the end of the socket.
    fn was_closed(&mut self) -> bool {
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            match self.next_frame(deadline - Instant::now()) {
                Some(_) => continue,
                None => return Instant::now() < deadline,
            }
        }
        false
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn socket_addr(addr: &Multiaddr) -> SocketAddr {
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            P::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            P::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    SocketAddr::new(ip.expect("ip4"), port.expect("tcp port"))
}

/// The node, with a raw peer connected to it over TCP.
fn node_and_raw_peer(seed: u8) -> (Node, Multiaddr, RawPeer) {
    let (node, tcp) = dual_node(seed);
    let raw = RawPeer::connect(socket_addr(&tcp), node.peer);
    (node, tcp, raw)
}

/// A well-behaved node still gets its echo through `node`.
fn still_serves(node: &Node, tcp: &Multiaddr, seed: u8) {
    let (other, _) = dual_node(seed);
    other
        .handle
        .dial(&tcp.clone().with(P::P2p(node.peer)), false, TIMEOUT)
        .expect("a well-behaved peer connects");
    let data = pattern(50_000);
    assert_eq!(echo_roundtrip(&other.handle, node.peer, &data), data);
}

/// The reason the node gave for the first connection it closed.
fn close_reason(node: &Node) -> Option<String> {
    node.wait_for(|e| match e {
        SwarmEvent::ConnectionClosed { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

#[test]
fn a_data_frame_beyond_the_stream_window_resets_only_that_stream() {
    let (node, tcp, mut raw) = node_and_raw_peer(90);
    // One frame one byte longer than the window a new stream starts with:
    // a valid echo request, so a node that let it through would echo.
    let len = DEFAULT_WINDOW + 1;
    let mut payload = Vec::new();
    for line in ["/multistream/1.0.0\n", &format!("{ECHO}\n")] {
        payload.push(line.len() as u8);
        payload.extend_from_slice(line.as_bytes());
    }
    payload.resize(len as usize, 0x5a);
    raw.send(DATA, SYN, 1, len, &payload);
    let first = raw
        .wait_for(|f| f.stream == 1)
        .expect("an answer on stream 1");
    assert!(
        first.flags & RST != 0 && first.ty != DATA,
        "stream 1 reset, nothing of it served: {first:?}"
    );
    assert!(raw.answers_ping(7), "the connection keeps running");
    still_serves(&node, &tcp, 91);
}

#[test]
fn a_frame_longer_than_any_window_ends_the_connection_with_a_clear_reason() {
    let (node, tcp, mut raw) = node_and_raw_peer(92);
    let len = YamuxConfig::default().max_stream_window + 1;
    // The header alone: the node must not wait for 16 MiB to judge it.
    raw.send(DATA, SYN, 1, len, &[]);
    let go_away = raw.wait_for(|f| f.ty == GO_AWAY);
    assert_eq!(go_away.map(|f| f.length), Some(1), "protocol-error go-away");
    assert!(raw.was_closed(), "the connection ended");
    let reason = close_reason(&node).expect("ConnectionClosed");
    assert!(reason.contains("exceeds the limit"), "{reason}");
    still_serves(&node, &tcp, 93);
}

#[test]
fn a_frame_for_a_stream_never_opened_is_dropped_and_the_connection_keeps_running() {
    let (node, tcp, mut raw) = node_and_raw_peer(94);
    raw.send(DATA, 0, 5, 4, b"lost");
    raw.send(WINDOW_UPDATE, 0, 7, 1024, &[]);
    assert!(raw.answers_ping(11), "the connection keeps running");
    still_serves(&node, &tcp, 95);
}

#[test]
fn opens_beyond_the_stream_limit_are_reset_and_the_connection_keeps_running() {
    let (node, tcp, mut raw) = node_and_raw_peer(96);
    let limit = YamuxConfig::default().max_streams as u32;
    let extra = 100;
    let mut plain = Vec::new();
    for i in 0..limit + extra {
        let id = 1 + 2 * i;
        plain.extend_from_slice(&[0, WINDOW_UPDATE]);
        plain.extend_from_slice(&SYN.to_be_bytes());
        plain.extend_from_slice(&id.to_be_bytes());
        plain.extend_from_slice(&0u32.to_be_bytes());
    }
    // In Noise messages of at most 64 KiB.
    for chunk in plain.chunks(60_000) {
        raw.send_plain(chunk);
    }
    let first_refused = 1 + 2 * limit;
    let mut refused = 0;
    while refused < extra {
        let frame = raw
            .wait_for(|f| f.flags & RST != 0 && f.stream >= first_refused)
            .expect("the opens beyond the limit are reset");
        assert_eq!(frame.stream % 2, 1, "{frame:?}");
        refused += 1;
    }
    assert!(raw.answers_ping(13), "the connection keeps running");
    still_serves(&node, &tcp, 97);
}

#[test]
fn a_stream_opened_with_the_listeners_parity_ends_the_connection() {
    let (node, tcp, mut raw) = node_and_raw_peer(98);
    // The dialer (client) must use odd ids.
    raw.send(WINDOW_UPDATE, SYN, 2, 0, &[]);
    let go_away = raw.wait_for(|f| f.ty == GO_AWAY);
    assert_eq!(go_away.map(|f| f.length), Some(1), "protocol-error go-away");
    assert!(raw.was_closed(), "the connection ended");
    let reason = close_reason(&node).expect("ConnectionClosed");
    assert!(reason.contains("parity"), "{reason}");
    still_serves(&node, &tcp, 99);
}

#[test]
fn corrupt_ciphertext_ends_the_connection_and_the_node_keeps_serving() {
    let (node, tcp, mut raw) = node_and_raw_peer(100);
    // A Noise message of 40 bytes whose tag cannot verify.
    let mut bogus = vec![0u8, 40];
    bogus.extend_from_slice(&[0xa5; 40]);
    raw.sock.write_all(&bogus).unwrap();
    assert!(raw.was_closed(), "the connection ended");
    let reason = close_reason(&node).expect("ConnectionClosed");
    assert!(reason.contains("failed to decrypt"), "{reason}");
    still_serves(&node, &tcp, 101);
}

/// A node with `limits` changed by `f`.
fn limited_node(seed: u8, f: impl FnOnce(&mut swarm::Limits)) -> (Node, Multiaddr) {
    let mut cfg = config(seed);
    f(&mut cfg.limits);
    dual_node_with(cfg)
}

/// Whether the node closed `sock` (without a word) within `wait`.
fn closed_by_node(sock: &mut TcpStream, wait: Duration) -> bool {
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        match sock.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if is_timeout(&e) => continue,
            Err(_) => return true,
        }
    }
    false
}

/// Connect until the node keeps a socket open for a while (it closes
/// refused ones at once).
fn eventually_accepted(addr: SocketAddr) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
        if !closed_by_node(&mut s, Duration::from_millis(300)) {
            return;
        }
        assert!(Instant::now() < deadline, "never accepted again");
    }
}

#[test]
fn tcp_connections_beyond_the_per_ip_limit_are_refused_and_the_others_keep_running() {
    let (node, tcp) = limited_node(102, |l| l.max_connections_per_ip = 3);
    let addr = socket_addr(&tcp);
    let mut peers: Vec<RawPeer> = (0..3).map(|_| RawPeer::connect(addr, node.peer)).collect();
    let mut fourth = TcpStream::connect_timeout(&addr, TIMEOUT).expect("kernel accepts");
    assert!(
        closed_by_node(&mut fourth, TIMEOUT),
        "the fourth is refused"
    );
    for (i, p) in peers.iter_mut().enumerate() {
        assert!(
            p.answers_ping(20 + i as u32),
            "connection {i} keeps running"
        );
    }
    // One leaves: the next one from that address is served.
    drop(peers.remove(0));
    eventually_accepted(addr);
}

#[test]
fn tcp_handshakes_beyond_the_pending_limit_are_refused() {
    let (node, tcp) = limited_node(104, |l| l.max_pending_handshakes = 2);
    let addr = socket_addr(&tcp);
    // Two sockets that never speak hold the two handshake slots.
    let silent: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect_timeout(&addr, TIMEOUT).unwrap())
        .collect();
    let mut third = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    assert!(closed_by_node(&mut third, TIMEOUT), "the third is refused");
    // The slots free up when they leave: a real handshake goes through.
    drop(silent);
    eventually_accepted(addr);
    let mut peer = RawPeer::connect(addr, node.peer);
    assert!(peer.answers_ping(40));
}

#[test]
fn a_second_tcp_connection_from_a_peer_over_its_limit_is_closed() {
    let (node, tcp) = limited_node(106, |l| l.max_connections_per_peer = 1);
    let addr = socket_addr(&tcp);
    let key = Keypair::generate_ed25519();
    let mut first = RawPeer::connect_as(addr, node.peer, &key);
    // The limit applies once the handshake proved who it is: the second
    // is closed right after it (a refused connection was never
    // established, so no event reports it).
    let mut second = RawPeer::connect_as(addr, node.peer, &key);
    assert!(second.was_closed(), "the second connection is closed");
    assert!(first.answers_ping(30), "the first keeps running");
    // Another peer is not affected.
    let mut other = RawPeer::connect(addr, node.peer);
    assert!(other.answers_ping(31));
}
