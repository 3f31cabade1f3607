//! Section 2 of the hardening issue: hostile peers. A raw quinn-proto peer
//! (see `support::raw`) attacks a swarm core on a simulated network with a
//! virtual clock, while an honest swarm runs a paced bulk transfer to the
//! same swarm on another connection. Each case checks:
//!
//! - the expected typed error (where no API reports it, the `Display` the
//!   swarm logged or sent in its CONNECTION_CLOSE);
//! - no panic (a panic fails the test);
//! - no state left behind: the target's `connection_count()` and
//!   `stream_count()` return to their size before the attack;
//! - the bulk transfer alongside completes with the exact byte count and
//!   SHA-256.

mod common;
mod support;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use quinn_proto::{ConnectionError, ConnectionHandle, StreamId, TransportErrorCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::bulk::{self, ECHO, Echo, Receiver, RecvState, SendState, Sender};
use support::certs::{self, CertCase};
use support::logs::Logs;
use support::net::RawNodes;
use support::raw::RawPeer;
use swarm::multistream::MultistreamError;
use swarm::virtual_net::{LinkConfig, Outcome, VirtualNet as Net};
use swarm::{
    ConnectionLimit, Context, DialError, Keypair, Multiaddr, PeerId, Protocol,
    RESET_CODE_NEGOTIATION, StreamError, StreamRef, SwarmConfig, SwarmEvent,
};
use tracing::subscriber::DefaultGuard;

const T_IP: [u8; 4] = [127, 0, 0, 1];
const A_IP: [u8; 4] = [127, 0, 0, 2];
const H_IP: [u8; 4] = [127, 0, 0, 3];
const BULK_LEN: usize = 1 << 20;
const HEADER: &[u8] = b"/multistream/1.0.0";

fn config(seed: u8) -> SwarmConfig {
    SwarmConfig::new(Keypair::ed25519_from_bytes([seed; 32]).unwrap())
}

fn h_addr(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from((H_IP, port))
}

fn frames(msgs: &[&[u8]]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for m in msgs {
        swarm::multistream::encode_frame(m, &mut out);
    }
    out.to_vec()
}

fn p2p(addr: Multiaddr, peer: PeerId) -> Multiaddr {
    addr.with(swarm::multiaddr::Protocol::P2p(peer))
}

/// The target swarm `t`, an honest swarm `a` sending it a paced bulk
/// transfer, and room for raw hostile peers.
struct Arena {
    net: Net,
    t: usize,
    a: usize,
    t_peer: PeerId,
    t_events: mpsc::Receiver<SwarmEvent>,
    /// Everything `t` published, in order.
    seen: Vec<SwarmEvent>,
    logs: Logs,
    _guard: DefaultGuard,
    sent: Arc<Mutex<SendState>>,
    received: Arc<Mutex<RecvState>>,
    digest: [u8; 32],
}

impl Arena {
    /// `bulk_for`: how long the bulk transfer should take (it is paced).
    fn new(tweak: impl FnOnce(&mut SwarmConfig), bulk_for: Duration) -> Self {
        let (logs, guard) = Logs::capture();
        let mut net = support::net::new(42, LinkConfig::clean());
        let mut tc = config(1);
        tweak(&mut tc);
        let t = net.add_swarm(tc, T_IP);
        let a = net.add_swarm(config(2), A_IP);
        let data = bulk::payload(BULK_LEN, 9);
        let digest = bulk::sha256(&data);
        let ticks = (bulk_for.as_millis() / 50).max(1) as usize;
        let pace = (BULK_LEN.div_ceil(ticks), Duration::from_millis(50));
        let (sender, sent) = Sender::new(data, Some(pace));
        let (receiver, received) = Receiver::new();
        net.swarm(a).add_protocol(Box::new(sender));
        net.swarm(t).add_protocol(Box::new(receiver));
        net.swarm(t).add_protocol(Box::new(Echo));
        let t_events = net.swarm(t).handle().subscribe(100_000).unwrap();
        let t_peer = net.swarm(t).local_peer_id();
        let target = p2p(net.multiaddr(t), t_peer);
        net.swarm(a).dial(&target, false).unwrap();
        let mut arena = Self {
            net,
            t,
            a,
            t_peer,
            t_events,
            seen: Vec::new(),
            logs,
            _guard: guard,
            sent,
            received,
            digest,
        };
        let r = arena.received.clone();
        let outcome = arena.run_until(Duration::from_secs(5), |_| r.lock().unwrap().bytes > 0);
        assert_eq!(outcome, Outcome::Done, "bulk transfer did not start");
        assert_eq!(arena.net.swarm(t).connection_count(), 1);
        assert_eq!(arena.net.swarm(t).stream_count(), 1);
        arena
    }

    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Arena) -> bool) -> Outcome {
        // `Net::run_until` borrows the net; step it in slices so `done` can
        // see the whole arena.
        let deadline = self.net.now() + limit;
        loop {
            self.seen.extend(self.t_events.try_iter());
            if done(self) {
                return Outcome::Done;
            }
            if self.net.now() >= deadline {
                return Outcome::VirtualTimeout;
            }
            let step = (deadline - self.net.now()).min(Duration::from_millis(1));
            self.net.run_for(step);
        }
    }

    fn run_for(&mut self, d: Duration) {
        self.run_until(d, |_| false);
    }

    fn bulk_running(&self) -> bool {
        self.received.lock().unwrap().finished_at.is_none()
    }

    fn add_raw(&mut self, port: u16, server: Option<Arc<quinn_proto::ServerConfig>>) -> usize {
        self.add_raw_at(H_IP, port, server)
    }

    fn add_raw_at(
        &mut self,
        ip: [u8; 4],
        port: u16,
        server: Option<Arc<quinn_proto::ServerConfig>>,
    ) -> usize {
        let addr = std::net::SocketAddr::from((ip, port));
        self.net.add_raw(RawPeer::new(addr, server, port as u8))
    }

    /// Start a raw client connection with an honest certificate for
    /// `host`, without waiting.
    fn start_raw_conn(&mut self, raw: usize, host: &Keypair) -> ConnectionHandle {
        let cfg = certs::honest_client(host, Some(self.t_peer));
        let to = self.net.addr(self.t);
        let now = self.net.now();
        self.net.raw(raw).connect(now, cfg, to)
    }

    /// Run until the raw connection is lost; returns why.
    fn until_lost(&mut self, raw: usize, h: ConnectionHandle, limit: Duration) -> ConnectionError {
        let outcome = self.run_until(limit, |ar| ar.net.raw(raw).conn(h).lost.is_some());
        assert_eq!(outcome, Outcome::Done, "the raw connection was not closed");
        self.net.raw(raw).conn(h).lost.clone().unwrap().0
    }

    /// A raw client connection to the target with an honest libp2p
    /// certificate, run until established.
    fn honest_raw_conn(&mut self, raw: usize, host: &Keypair) -> ConnectionHandle {
        let h = self.start_raw_conn(raw, host);
        let outcome = self.run_until(Duration::from_secs(5), |ar| {
            let c = ar.net.raw(raw).conn(h);
            c.connected_at.is_some() || c.lost.is_some()
        });
        assert_eq!(outcome, Outcome::Done);
        assert!(
            self.net.raw(raw).conn(h).lost.is_none(),
            "raw connection lost"
        );
        // The target has established it too.
        let peer = host.public().to_peer_id();
        let before = self.established_with(peer);
        let outcome = self.run_until(Duration::from_secs(1), |ar| {
            ar.established_with(peer) > before || ar.net.raw(raw).conn(h).lost.is_some()
        });
        assert_eq!(outcome, Outcome::Done);
        h
    }

    /// Established connections the target reported for `peer`.
    fn established_with(&self, peer: PeerId) -> usize {
        self.seen
            .iter()
            .filter(
                |e| matches!(e, SwarmEvent::ConnectionEstablished { peer: p, .. } if *p == peer),
            )
            .count()
    }

    /// Run until the target reset the raw stream (and asked it to stop
    /// sending, unless `fin`: a finished stream needs no STOP_SENDING).
    fn until_stream_ends(
        &mut self,
        raw: usize,
        h: ConnectionHandle,
        s: StreamId,
        fin: bool,
        limit: Duration,
    ) {
        let outcome = self.run_until(limit, |ar| {
            let st = ar.net.raw(raw).conn(h).stream(s);
            st.reset.is_some() && (fin || st.stopped.is_some())
        });
        assert_eq!(outcome, Outcome::Done, "the target did not end the stream");
    }

    /// The connection still works: an echo stream round-trips.
    fn echo_probe(&mut self, raw: usize, h: ConnectionHandle) {
        let c = self.net.raw(raw).conn(h);
        let s = c.open_bi();
        let mut msg = frames(&[HEADER, ECHO.as_bytes()]);
        msg.extend_from_slice(b"still alive");
        c.write(s, &msg);
        c.finish(s);
        let outcome = self.run_until(Duration::from_secs(5), |ar| {
            ar.net.raw(raw).conn(h).stream(s).fin
        });
        assert_eq!(outcome, Outcome::Done, "echo probe did not complete");
        let mut expected = frames(&[HEADER, ECHO.as_bytes()]);
        expected.extend_from_slice(b"still alive");
        assert_eq!(self.net.raw(raw).conn(h).stream(s).received, expected);
    }

    /// Close every raw connection, let the bulk transfer finish, and check
    /// that nothing is left behind and every byte arrived.
    fn finish(mut self) {
        let now = self.net.now();
        for r in self.a + 1..self.net.len() {
            for c in self.net.raw(r).conns.values_mut() {
                if c.lost.is_none() {
                    c.close(now, 0);
                }
            }
        }
        let received = self.received.clone();
        let outcome = self.run_until(Duration::from_secs(60), |_| {
            received.lock().unwrap().finished_at.is_some()
        });
        assert_eq!(outcome, Outcome::Done, "bulk transfer did not finish");
        {
            let r = self.received.lock().unwrap();
            let s = self.sent.lock().unwrap();
            assert_eq!(s.error, None, "bulk sender error");
            assert_eq!(r.error, None, "bulk receiver error");
            assert_eq!(r.bytes, BULK_LEN, "bulk byte count");
            assert_eq!(r.digest(), self.digest, "bulk SHA-256");
            assert_eq!(r.streams, 1);
        }
        let (t, a) = (self.t, self.a);
        let outcome = self.run_until(Duration::from_secs(30), |ar| {
            ar.net.swarm(t).connection_count() == 1 && ar.net.swarm(t).stream_count() == 0
        });
        assert_eq!(
            outcome,
            Outcome::Done,
            "state left behind: {} connections, {} streams",
            self.net.swarm(t).connection_count(),
            self.net.swarm(t).stream_count()
        );
        assert_eq!(self.net.swarm(a).connection_count(), 1);
        // The honest connection was never disturbed.
        let a_peer = self.net.swarm(a).local_peer_id();
        let bulk_conn = self
            .seen
            .iter()
            .find_map(|e| match e {
                SwarmEvent::ConnectionEstablished { conn, peer, .. } if *peer == a_peer => {
                    Some(*conn)
                }
                _ => None,
            })
            .expect("the honest connection");
        assert!(
            !self.seen.iter().any(
                |e| matches!(e, SwarmEvent::ConnectionClosed { conn, .. } if *conn == bulk_conn)
            )
        );
    }
}

// ----- multistream-select -----

/// A raw client (honest TLS) opens a stream, writes `bytes` (and FIN if
/// `fin`), and the target must reset the stream (STOP_SENDING and
/// RESET_STREAM with `RESET_CODE_NEGOTIATION`) and log `error`, within
/// `within`. The connection must keep working, the bulk transfer too.
fn multistream_case(bytes: &[u8], fin: bool, error: &str, within: Duration) {
    let mut ar = Arena::new(|_| {}, within + Duration::from_secs(3));
    let raw = ar.add_raw(4000, None);
    let host = Keypair::ed25519_from_bytes([7; 32]).unwrap();
    let h = ar.honest_raw_conn(raw, &host);
    ar.logs.clear();
    let c = ar.net.raw(raw).conn(h);
    let s = c.open_bi();
    c.write(s, bytes);
    if fin {
        c.finish(s);
    }
    let opened = ar.net.now();
    ar.until_stream_ends(raw, h, s, fin, within + Duration::from_secs(1));
    let st = ar.net.raw(raw).conn(h).stream(s);
    let took = st.ended_at.unwrap() - opened;
    assert_eq!(st.reset, Some(RESET_CODE_NEGOTIATION.into()));
    let stop = (!fin).then_some(RESET_CODE_NEGOTIATION.into());
    assert_eq!(st.stopped, stop);
    assert!(
        took <= within + Duration::from_millis(50),
        "reset after {took:?}"
    );
    let logged = ar.logs.lines_with(&["stream failed", error]);
    assert_eq!(
        logged.len(),
        1,
        "expected one log line with {error:?}:\n{}",
        ar.logs.text()
    );
    // Only the bulk stream is left on the target, which is still running.
    assert!(
        ar.bulk_running(),
        "the bulk transfer should still be running"
    );
    assert_eq!(ar.net.swarm(ar.t).stream_count(), 1);
    assert_eq!(ar.net.swarm(ar.t).connection_count(), 2);
    eprintln!("multistream {error:?}: reset after {took:?}");
    ar.echo_probe(raw, h);
    ar.finish();
}

#[test]
fn multistream_frame_over_the_limit_is_refused_before_buffering() {
    // 1025 (varint 0x81 0x08) > max_frame_len 1024, then its 1025 bytes.
    let mut bytes = frames(&[HEADER]);
    bytes.extend_from_slice(&[0x81, 0x08]);
    bytes.extend_from_slice(&[b'x'; 1025]);
    multistream_case(
        &bytes,
        false,
        "multistream frame of 1025 bytes exceeds the limit of 1024",
        Duration::from_millis(100),
    );
}

#[test]
fn multistream_three_byte_length_varint_is_refused() {
    let mut bytes = frames(&[HEADER]);
    bytes.extend_from_slice(&[0x80, 0x80, 0x01]);
    multistream_case(
        &bytes,
        false,
        "malformed multistream length prefix",
        Duration::from_millis(100),
    );
}

#[test]
fn multistream_malformed_varints_are_refused() {
    for bad in [&[0xff; 10][..], &[0x81, 0x00], &[0x80, 0x80, 0x80, 0x80]] {
        let mut bytes = frames(&[HEADER]);
        bytes.extend_from_slice(bad);
        multistream_case(
            &bytes,
            false,
            "malformed multistream length prefix",
            Duration::from_millis(100),
        );
    }
}

#[test]
fn multistream_non_utf8_protocol_id_is_refused() {
    multistream_case(
        &frames(&[HEADER, b"/\xff\xfe/1.0.0"]),
        false,
        "multistream message is not UTF-8",
        Duration::from_millis(100),
    );
}

#[test]
fn multistream_frame_without_newline_and_wrong_header_are_refused() {
    let mut bytes = frames(&[HEADER]);
    bytes.extend_from_slice(b"\x04/abc");
    multistream_case(
        &bytes,
        false,
        "multistream message does not end with a newline",
        Duration::from_millis(100),
    );
    multistream_case(
        &frames(&[b"/multistream/2.0.0", ECHO.as_bytes()]),
        false,
        "expected multistream header, got \"/multistream/2.0.0\"",
        Duration::from_millis(100),
    );
}

/// A dialer sends the header and 100 unknown proposals in one flight. The
/// listener answers the first `max_rounds` (16) with `na` after its own
/// header, then ends its side with a FIN (not a reset, which could discard
/// those answers) and stops the dialer's: on the wire the dialer reads
/// exactly header + 16 × `na`, then EOF, and learns why.
#[test]
fn multistream_round_cap_answers_each_proposal_then_finishes() {
    let max_rounds = swarm::multistream::MultistreamLimits::default().max_rounds;
    let mut msgs: Vec<&[u8]> = vec![HEADER];
    msgs.extend(std::iter::repeat_n(&b"/nope/1.0.0"[..], 100));
    let mut ar = Arena::new(|_| {}, Duration::from_secs(4));
    let raw = ar.add_raw(4000, None);
    let host = Keypair::ed25519_from_bytes([7; 32]).unwrap();
    let h = ar.honest_raw_conn(raw, &host);
    ar.logs.clear();
    let c = ar.net.raw(raw).conn(h);
    let s = c.open_bi();
    c.write(s, &frames(&msgs));
    let outcome = ar.run_until(Duration::from_secs(1), |ar| {
        let st = ar.net.raw(raw).conn(h).stream(s);
        st.fin && st.stopped.is_some()
    });
    assert_eq!(
        outcome,
        Outcome::Done,
        "the listener did not end the stream"
    );
    let st = ar.net.raw(raw).conn(h).stream(s);
    let mut expected: Vec<&[u8]> = vec![HEADER];
    expected.extend(std::iter::repeat_n(&b"na"[..], max_rounds));
    assert_eq!(st.received, frames(&expected), "what the dialer read");
    assert_eq!(st.reset, None, "the answers end in a FIN, not a reset");
    assert_eq!(st.stopped, Some(RESET_CODE_NEGOTIATION.into()));
    let logged = ar.logs.lines_with(&[
        "stream failed",
        "more than 16 multistream negotiation rounds",
    ]);
    assert_eq!(logged.len(), 1, "{}", ar.logs.text());
    // The refused stream is gone once its FIN is acknowledged, and the
    // connection and the honest bulk transfer carry on.
    let gone = ar.run_until(Duration::from_secs(1), |ar| {
        ar.net.swarm(ar.t).stream_count() == 1
    });
    assert_eq!(
        gone,
        Outcome::Done,
        "the refused stream stayed in the table"
    );
    assert!(
        ar.bulk_running(),
        "the bulk transfer should still be running"
    );
    ar.echo_probe(raw, h);
    ar.finish();
}

#[test]
fn multistream_stream_ending_before_negotiation_is_refused() {
    multistream_case(
        &frames(&[HEADER]),
        true,
        "stream ended during negotiation",
        Duration::from_millis(100),
    );
}

/// The header, then half a proposal, then silence: the negotiation timeout
/// (10 s, virtual) resets the stream.
#[test]
fn multistream_stream_that_never_finishes_negotiating_times_out() {
    let mut bytes = frames(&[HEADER]);
    bytes.extend_from_slice(b"\x11/test/ec");
    let timeout = swarm::Limits::default().negotiation_timeout;
    multistream_case(&bytes, false, "negotiation timed out", timeout);
}

/// 40 streams that each send only the header: the first
/// `max_negotiating_streams` (32) wait for their proposal, the other 8 are
/// reset at once; the 32 are reset by the negotiation timeout; then the
/// connection negotiates normally again (the count did not leak).
#[test]
fn more_negotiating_streams_than_allowed_are_reset() {
    let limits = swarm::Limits::default();
    let max = limits.max_negotiating_streams;
    let mut ar = Arena::new(|_| {}, limits.negotiation_timeout + Duration::from_secs(3));
    let raw = ar.add_raw(4000, None);
    let host = Keypair::ed25519_from_bytes([7; 32]).unwrap();
    let h = ar.honest_raw_conn(raw, &host);
    ar.logs.clear();
    let c = ar.net.raw(raw).conn(h);
    let streams: Vec<StreamId> = (0..max + 8)
        .map(|_| {
            let s = c.open_bi();
            c.write(s, &frames(&[HEADER]));
            s
        })
        .collect();
    let reset_count = |ar: &mut Arena| {
        let c = ar.net.raw(raw).conn(h);
        streams
            .iter()
            .filter(|s| c.stream(**s).reset.is_some())
            .count()
    };
    let outcome = ar.run_until(Duration::from_secs(1), |ar| reset_count(ar) >= 8);
    assert_eq!(outcome, Outcome::Done);
    ar.run_for(Duration::from_millis(100));
    assert_eq!(
        reset_count(&mut ar),
        8,
        "exactly the streams over the limit"
    );
    let over = ar.logs.lines_with(&["too many negotiating streams"]);
    assert_eq!(over.len(), 8, "{}", ar.logs.text());
    // The 8 latest streams were the ones refused.
    for s in &streams[max..] {
        let st = ar.net.raw(raw).conn(h).stream(*s);
        assert_eq!(st.reset, Some(RESET_CODE_NEGOTIATION.into()));
        assert_eq!(st.stopped, Some(RESET_CODE_NEGOTIATION.into()));
    }
    assert!(ar.bulk_running());
    assert_eq!(ar.net.swarm(ar.t).stream_count(), 1 + max);
    let outcome = ar.run_until(limits.negotiation_timeout + Duration::from_secs(1), |ar| {
        reset_count(ar) == max + 8
    });
    assert_eq!(
        outcome,
        Outcome::Done,
        "the waiting streams did not time out"
    );
    let timed_out = ar
        .logs
        .lines_with(&["stream failed", "negotiation timed out"]);
    assert_eq!(timed_out.len(), max);
    assert!(ar.bulk_running());
    assert_eq!(ar.net.swarm(ar.t).stream_count(), 1);
    ar.echo_probe(raw, h);
    ar.finish();
}

// ----- TLS -----

/// What a raw client saw when the target refused its handshake.
fn refused_raw_client(
    cfg: quinn_proto::ClientConfig,
    host_peer: Option<PeerId>,
) -> (ConnectionError, Duration, Arena) {
    let mut ar = Arena::new(|_| {}, Duration::from_secs(3));
    let raw = ar.add_raw(4000, None);
    let to = ar.net.addr(ar.t);
    let now = ar.net.now();
    let h = ar.net.raw(raw).connect(now, cfg, to);
    let outcome = ar.run_until(Duration::from_secs(15), |ar| {
        ar.net.raw(raw).conn(h).lost.is_some()
    });
    assert_eq!(
        outcome,
        Outcome::Done,
        "the target did not refuse the handshake"
    );
    let (error, at) = ar.net.raw(raw).conn(h).lost.clone().unwrap();
    if let Some(peer) = host_peer {
        assert_eq!(ar.established_with(peer), 0, "the target accepted the peer");
    }
    assert!(ar.bulk_running());
    (error, at - now, ar)
}

/// A raw client presents a bad certificate: the target refuses it inside
/// the handshake with the TLS alert and our typed error's text, logs the
/// typed error, never reports the peer as connected, and forgets the
/// connection.
fn hostile_client_certificate(case: CertCase) {
    let host = Keypair::generate_ed25519();
    let cfg = certs::hostile_client(certs::presented(case, &host), &[b"libp2p"]);
    let (error, took, ar) = refused_raw_client(cfg, Some(host.public().to_peer_id()));
    eprintln!("client role {case:?}: refused after {took:?}: {error}");
    let ConnectionError::ConnectionClosed(close) = &error else {
        panic!("{case:?}: expected a CONNECTION_CLOSE from the target, got {error:?}");
    };
    assert_eq!(close.error_code, TransportErrorCode::crypto(case.alert()));
    let reason = String::from_utf8_lossy(&close.reason);
    assert!(reason.contains(case.wire_text()), "{case:?}: {reason}");
    if let Some(display) = case.display() {
        let logged = ar.logs.lines_with(&["refusing peer certificate", display]);
        assert_eq!(logged.len(), 1, "{case:?}: {}", ar.logs.text());
    }
    ar.finish();
}

macro_rules! client_role {
    ($($name:ident: $case:ident,)*) => {$(
        #[test]
        fn $name() {
            hostile_client_certificate(CertCase::$case);
        }
    )*};
}

client_role! {
    tls_client_role_spec_invalid_vector_is_refused: SpecInvalidVector,
    tls_client_role_two_certificate_chain_is_refused: TwoCertChain,
    tls_client_role_expired_certificate_is_refused: Expired,
    tls_client_role_missing_extension_is_refused: MissingExtension,
    tls_client_role_unparsable_extension_is_refused: UnparsableExtension,
    tls_client_role_unparsable_key_protobuf_is_refused: UnparsableKeyProtobuf,
    tls_client_role_bad_host_key_signature_is_refused: BadHostSignature,
    tls_client_role_bad_handshake_signature_is_refused: BadHandshakeSignature,
    tls_client_role_unknown_critical_extension_is_refused: UnknownCriticalExtension,
}

/// A raw client that offers only `h3`, or no ALPN at all, with a valid
/// certificate: refused with no_application_protocol (120).
#[test]
fn tls_client_role_wrong_or_missing_alpn_is_refused() {
    for alpn in [&[&b"h3"[..]][..], &[]] {
        let host = Keypair::generate_ed25519();
        let cfg = certs::hostile_client(certs::presented(CertCase::Valid, &host), alpn);
        let (error, took, ar) = refused_raw_client(cfg, Some(host.public().to_peer_id()));
        eprintln!("client role ALPN {alpn:?}: refused after {took:?}: {error}");
        let ConnectionError::ConnectionClosed(close) = &error else {
            panic!("expected a CONNECTION_CLOSE, got {error:?}");
        };
        assert_eq!(close.error_code, TransportErrorCode::crypto(120));
        ar.finish();
    }
}

/// Control: the same raw client with a valid certificate is accepted, so
/// the refusals above are about the certificates.
#[test]
fn tls_client_role_valid_hostile_config_is_accepted() {
    let mut ar = Arena::new(|_| {}, Duration::from_secs(3));
    let raw = ar.add_raw(4000, None);
    let host = Keypair::generate_ed25519();
    let cfg = certs::hostile_client(certs::presented(CertCase::Valid, &host), &[b"libp2p"]);
    let to = ar.net.addr(ar.t);
    let now = ar.net.now();
    let h = ar.net.raw(raw).connect(now, cfg, to);
    let peer = host.public().to_peer_id();
    let outcome = ar.run_until(Duration::from_secs(5), |ar| ar.established_with(peer) == 1);
    assert_eq!(outcome, Outcome::Done);
    ar.echo_probe(raw, h);
    ar.finish();
}

/// The target dials a raw server presenting `p` with `alpn`; returns the
/// dial error and how long it took.
fn dial_hostile_server(
    server: Arc<quinn_proto::ServerConfig>,
    dial_as: PeerId,
) -> (DialError, Duration, Arena) {
    let mut ar = Arena::new(|_| {}, Duration::from_secs(3));
    let raw = ar.add_raw(4000, Some(server));
    let addr = p2p(ar.net.multiaddr(raw), dial_as);
    let t = ar.t;
    let now = ar.net.now();
    let conn = ar.net.swarm(t).dial(&addr, false).unwrap();
    let outcome = ar.run_until(Duration::from_secs(15), |ar| {
        ar.seen
            .iter()
            .any(|e| matches!(e, SwarmEvent::DialFailed { conn: c, .. } if *c == conn))
    });
    assert_eq!(outcome, Outcome::Done, "the dial did not fail");
    let error = ar
        .seen
        .iter()
        .find_map(|e| match e {
            SwarmEvent::DialFailed { conn: c, error } if *c == conn => Some(error.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(ar.established_with(dial_as), 0);
    assert!(ar.bulk_running());
    let took = ar.net.now() - now;
    (error, took, ar)
}

/// The target dials a raw server presenting a bad certificate: the dial
/// fails with `DialError::Handshake` carrying our typed error's text, the
/// verifier logs the typed error, and nothing is left behind.
fn hostile_server_certificate(case: CertCase) {
    let host = Keypair::generate_ed25519();
    let cfg = certs::hostile_server(certs::presented(case, &host), &[b"libp2p"]);
    let (error, took, ar) = dial_hostile_server(cfg, host.public().to_peer_id());
    eprintln!("server role {case:?}: dial failed after {took:?}: {error}");
    let DialError::Handshake(cause) = &error else {
        panic!("{case:?}: expected DialError::Handshake, got {error:?}");
    };
    let text = cause.to_string();
    assert!(
        text.contains(&format!("error {}", case.alert())),
        "{case:?}: {text}"
    );
    assert!(text.contains(case.wire_text()), "{case:?}: {text}");
    if let Some(display) = case.display() {
        let logged = ar.logs.lines_with(&["refusing peer certificate", display]);
        assert_eq!(logged.len(), 1, "{case:?}: {}", ar.logs.text());
    }
    ar.finish();
}

macro_rules! server_role {
    ($($name:ident: $case:ident,)*) => {$(
        #[test]
        fn $name() {
            hostile_server_certificate(CertCase::$case);
        }
    )*};
}

server_role! {
    tls_server_role_spec_invalid_vector_is_refused: SpecInvalidVector,
    tls_server_role_two_certificate_chain_is_refused: TwoCertChain,
    tls_server_role_expired_certificate_is_refused: Expired,
    tls_server_role_missing_extension_is_refused: MissingExtension,
    tls_server_role_unparsable_extension_is_refused: UnparsableExtension,
    tls_server_role_unparsable_key_protobuf_is_refused: UnparsableKeyProtobuf,
    tls_server_role_bad_host_key_signature_is_refused: BadHostSignature,
    tls_server_role_bad_handshake_signature_is_refused: BadHandshakeSignature,
    tls_server_role_unknown_critical_extension_is_refused: UnknownCriticalExtension,
}

/// A valid certificate for another peer than the one dialed.
#[test]
fn tls_server_role_peer_id_mismatch_is_refused() {
    let host = Keypair::generate_ed25519();
    let cfg = certs::hostile_server(certs::presented(CertCase::Valid, &host), &[b"libp2p"]);
    let dialed = Keypair::generate_ed25519().public().to_peer_id();
    let (error, took, ar) = dial_hostile_server(cfg, dialed);
    eprintln!("server role PeerId mismatch: dial failed after {took:?}: {error}");
    match error {
        DialError::WrongPeerId { expected, actual } => {
            assert_eq!(expected, dialed);
            assert_eq!(actual, host.public().to_peer_id());
        }
        other => panic!("expected WrongPeerId, got {other:?}"),
    }
    ar.finish();
}

/// A server that selects `h3`, or no ALPN at all.
#[test]
fn tls_server_role_wrong_or_missing_alpn_is_refused() {
    for alpn in [&[&b"h3"[..]][..], &[]] {
        let host = Keypair::generate_ed25519();
        let cfg = certs::hostile_server(certs::presented(CertCase::Valid, &host), alpn);
        let (error, took, ar) = dial_hostile_server(cfg, host.public().to_peer_id());
        eprintln!("server role ALPN {alpn:?}: dial failed after {took:?}: {error}");
        let DialError::Handshake(cause) = &error else {
            panic!("expected DialError::Handshake, got {error:?}");
        };
        let text = cause.to_string();
        assert!(text.contains("error 120"), "{text}");
        ar.finish();
    }
}

/// Control: the same raw server with a valid certificate is accepted.
#[test]
fn tls_server_role_valid_hostile_config_is_accepted() {
    let host = Keypair::generate_ed25519();
    let cfg = certs::hostile_server(certs::presented(CertCase::Valid, &host), &[b"libp2p"]);
    let mut ar = Arena::new(|_| {}, Duration::from_secs(3));
    let raw = ar.add_raw(4000, Some(cfg));
    let peer = host.public().to_peer_id();
    let addr = p2p(ar.net.multiaddr(raw), peer);
    let t = ar.t;
    ar.net.swarm(t).dial(&addr, false).unwrap();
    let outcome = ar.run_until(Duration::from_secs(5), |ar| ar.established_with(peer) == 1);
    assert_eq!(outcome, Outcome::Done);
    ar.finish();
}

// ----- raw network noise -----

/// One random datagram of 0 to 1500 bytes: a third pure noise, a third
/// shaped like a QUIC v1 long-header packet (Initial, 0-RTT, Handshake or
/// Retry, random connection ids, random rest; some at least 1200 bytes, as
/// a client Initial must be), a third like a short-header packet.
fn noise(rng: &mut StdRng) -> Vec<u8> {
    let len = rng.random_range(0..=1500usize);
    let mut d: Vec<u8> = (0..len).map(|_| rng.random()).collect();
    match rng.random_range(0..3) {
        0 => {}
        1 if len >= 7 => {
            d[0] = 0xc0 | (d[0] & 0x3f);
            d[1..5].copy_from_slice(&1u32.to_be_bytes());
            d[5] = rng.random_range(0..=20);
            if rng.random_bool(0.3) {
                d.resize(rng.random_range(1200..=1500), 0);
            }
        }
        _ if len >= 1 => d[0] = 0x40 | (d[0] & 0x3f),
        _ => {}
    }
    d
}

/// 3000 random datagrams at the target's listening port, from 100 random
/// addresses, the honest peer's and the raw client's, spread over 3 s
/// while a bulk transfer runs and a raw client is connected: no connection
/// appears, nothing breaks, the transfer completes exactly.
#[test]
fn random_datagrams_at_the_listening_port_change_nothing() {
    let mut ar = Arena::new(|_| {}, Duration::from_secs(4));
    let raw = ar.add_raw(4000, None);
    let host = Keypair::ed25519_from_bytes([7; 32]).unwrap();
    let h = ar.honest_raw_conn(raw, &host);
    let mut rng = StdRng::seed_from_u64(1500);
    let t = ar.t;
    let mut sources: Vec<std::net::SocketAddr> = (0..100)
        .map(|i| {
            std::net::SocketAddr::from(([127, 9, (i / 250) as u8, (i % 250) as u8 + 1], 5000 + i))
        })
        .collect();
    sources.push(ar.net.addr(ar.a));
    sources.push(h_addr(4000));
    let unroutable_before = ar.net.stats().unroutable;
    let (mut bytes, mut empty, mut long) = (0usize, 0usize, 0usize);
    for round in 0..300 {
        for _ in 0..10 {
            let d = noise(&mut rng);
            bytes += d.len();
            empty += usize::from(d.is_empty());
            long += usize::from(d.len() >= 1200 && d[0] & 0x80 != 0);
            let from = sources[rng.random_range(0..sources.len())];
            ar.net.inject(t, from, &d);
        }
        ar.run_for(Duration::from_millis(10));
        assert_eq!(ar.net.swarm(t).connection_count(), 2, "round {round}");
    }
    let answers = ar.net.stats().unroutable - unroutable_before;
    eprintln!(
        "noise: 3000 datagrams ({bytes} bytes, {empty} empty, {long} long-header >= 1200 B) -> \
         {answers} answers to noise sources; target still has 2 connections"
    );
    assert!(ar.bulk_running());
    assert_eq!(ar.net.swarm(t).stream_count(), 1);
    assert!(
        ar.net.raw(raw).conn(h).lost.is_none(),
        "the raw client's connection died"
    );
    ar.echo_probe(raw, h);
    ar.finish();
}

// ----- connection limits -----

fn key(seed: u8) -> Keypair {
    Keypair::ed25519_from_bytes([seed; 32]).unwrap()
}

/// The connection was refused by the target's endpoint (a limit).
fn assert_refused(error: &ConnectionError) {
    match error {
        ConnectionError::ConnectionClosed(close) => {
            assert_eq!(
                close.error_code,
                TransportErrorCode::CONNECTION_REFUSED,
                "{close:?}"
            )
        }
        other => panic!("expected CONNECTION_REFUSED, got {other:?}"),
    }
}

/// `max_connections` = 3: the honest peer and two raw clients fill it; a
/// third raw client is refused (CONNECTION_REFUSED), an outbound dial is
/// refused with `DialError::Limit(Total(3))`; once one closes, a new
/// client gets in.
#[test]
fn total_connection_limit_refuses_in_and_out_and_keeps_serving() {
    let mut ar = Arena::new(|c| c.limits.max_connections = 3, Duration::from_secs(4));
    let t = ar.t;
    let raw = ar.add_raw(4000, None);
    let h1 = ar.honest_raw_conn(raw, &key(11));
    let h2 = ar.honest_raw_conn(raw, &key(12));
    assert_eq!(ar.net.swarm(t).connection_count(), 3);
    ar.logs.clear();
    let h3 = ar.start_raw_conn(raw, &key(13));
    let error = ar.until_lost(raw, h3, Duration::from_secs(2));
    assert_refused(&error);
    let logged = ar.logs.lines_with(&[
        "refusing inbound connection",
        "total connection limit (3) reached",
    ]);
    assert_eq!(logged.len(), 1, "{}", ar.logs.text());
    assert_eq!(ar.established_with(key(13).public().to_peer_id()), 0);
    let elsewhere: Multiaddr = "/ip4/127.0.0.9/udp/1000/quic-v1".parse().unwrap();
    match ar.net.swarm(t).dial(&elsewhere, false) {
        Err(DialError::Limit(ConnectionLimit::Total(3))) => {}
        other => panic!("expected Limit(Total(3)), got {other:?}"),
    }
    assert_eq!(ar.net.swarm(t).connection_count(), 3);
    assert!(ar.bulk_running());
    ar.echo_probe(raw, h1);
    // Free a slot; the next client gets in.
    let now = ar.net.now();
    ar.net.raw(raw).conn(h2).close(now, 0);
    let outcome = ar.run_until(Duration::from_secs(2), |ar| {
        ar.net.swarm(t).connection_count() == 2
    });
    assert_eq!(outcome, Outcome::Done);
    let h4 = ar.honest_raw_conn(raw, &key(14));
    ar.echo_probe(raw, h4);
    ar.finish();
}

/// `max_connections_per_peer` = 2: a third connection from the same
/// PeerId completes TLS and is then closed with `CLOSE_CODE_LIMIT`, never
/// reported as established; an outbound `force_new` dial over the limit is
/// refused with `DialError::Limit(PerPeer(2))`.
#[test]
fn per_peer_connection_limit_refuses_in_and_out_and_keeps_serving() {
    let mut ar = Arena::new(
        |c| c.limits.max_connections_per_peer = 2,
        Duration::from_secs(4),
    );
    let t = ar.t;
    let raw = ar.add_raw(4000, None);
    let host = key(11);
    let peer = host.public().to_peer_id();
    let h1 = ar.honest_raw_conn(raw, &host);
    let _h2 = ar.honest_raw_conn(raw, &host);
    ar.logs.clear();
    let h3 = ar.start_raw_conn(raw, &host);
    let error = ar.until_lost(raw, h3, Duration::from_secs(2));
    match &error {
        ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, swarm::CLOSE_CODE_LIMIT.into());
            assert_eq!(&close.reason[..], b"limit");
        }
        other => panic!("expected an application close with the limit code, got {other:?}"),
    }
    assert_eq!(ar.established_with(peer), 2);
    let logged = ar
        .logs
        .lines_with(&["per-peer connection limit (2) reached"]);
    assert!(!logged.is_empty(), "{}", ar.logs.text());
    // Outbound: a second connection to the honest peer is allowed, a third
    // is refused before anything is sent.
    let a_peer = ar.net.swarm(ar.a).local_peer_id();
    let a_addr = p2p(ar.net.multiaddr(ar.a), a_peer);
    ar.net.swarm(t).dial(&a_addr, true).unwrap();
    let outcome = ar.run_until(Duration::from_secs(2), |ar| {
        ar.established_with(a_peer) == 2
    });
    assert_eq!(outcome, Outcome::Done);
    match ar.net.swarm(t).dial(&a_addr, true) {
        Err(DialError::Limit(ConnectionLimit::PerPeer(2))) => {}
        other => panic!("expected Limit(PerPeer(2)), got {other:?}"),
    }
    assert!(ar.bulk_running());
    ar.echo_probe(raw, h1);
    // Another peer from the same address is not affected.
    let h4 = ar.honest_raw_conn(raw, &key(12));
    ar.echo_probe(raw, h4);
    // The second connection to the honest peer has no streams: it idles
    // out, and the table is back to one connection.
    ar.run_for(Duration::from_secs(11));
    ar.finish();
}

/// `max_connections_per_ip` = 2: a third client from the same IP (another
/// PeerId) is refused; a client from another IP gets in.
#[test]
fn per_ip_connection_limit_refuses_and_keeps_serving_other_ips() {
    let mut ar = Arena::new(
        |c| c.limits.max_connections_per_ip = 2,
        Duration::from_secs(4),
    );
    let raw = ar.add_raw(4000, None);
    let h1 = ar.honest_raw_conn(raw, &key(11));
    let _h2 = ar.honest_raw_conn(raw, &key(12));
    ar.logs.clear();
    let h3 = ar.start_raw_conn(raw, &key(13));
    assert_refused(&ar.until_lost(raw, h3, Duration::from_secs(2)));
    let logged = ar.logs.lines_with(&[
        "refusing inbound connection",
        "per-IP connection limit (2) reached",
    ]);
    assert_eq!(logged.len(), 1, "{}", ar.logs.text());
    let other_ip = ar.add_raw_at([127, 0, 0, 4], 4000, None);
    let h4 = ar.honest_raw_conn(other_ip, &key(14));
    ar.echo_probe(other_ip, h4);
    ar.echo_probe(raw, h1);
    assert!(ar.bulk_running());
    ar.finish();
}

/// `max_pending_handshakes` = 2: two clients that go silent after their
/// Initial (the second after answering a Retry) hold two handshakes open; a third client is refused;
/// the honest transfer goes on; the handshake timeout (10 s) frees both
/// slots and the third client gets in.
#[test]
fn pending_handshake_limit_refuses_until_the_handshake_timeout_frees_slots() {
    let limits = swarm::Limits::default();
    let mut ar = Arena::new(
        |c| c.limits.max_pending_handshakes = 2,
        limits.handshake_timeout + Duration::from_secs(4),
    );
    let t = ar.t;
    // Datagrams each stalled client may send before it goes silent. Once
    // one handshake is pending (half the limit), the target answers new
    // unvalidated clients with a Retry, so the second stalled client needs
    // two: its first Initial and the one carrying the Retry token.
    let mut quota = std::collections::HashMap::from([(h_addr(4001), 1), (h_addr(4002), 2)]);
    ar.net.filter = Some(Box::new(move |from, _, _| match quota.get_mut(&from) {
        None => true,
        Some(0) => false,
        Some(n) => {
            *n -= 1;
            true
        }
    }));
    let p1 = ar.add_raw(4001, None);
    let p2 = ar.add_raw(4002, None);
    let p3 = ar.add_raw_at([127, 0, 0, 4], 4003, None);
    let h1 = ar.start_raw_conn(p1, &key(11));
    let h2 = ar.start_raw_conn(p2, &key(12));
    ar.run_for(Duration::from_millis(200));
    assert_eq!(
        ar.net.swarm(t).connection_count(),
        3,
        "two handshakes pending"
    );
    ar.logs.clear();
    let h3 = ar.start_raw_conn(p3, &key(13));
    assert_refused(&ar.until_lost(p3, h3, Duration::from_secs(2)));
    let logged = ar.logs.lines_with(&[
        "refusing inbound connection",
        "pending handshake limit (2) reached",
    ]);
    assert_eq!(logged.len(), 1, "{}", ar.logs.text());
    // Both stalled handshakes end by the handshake timeout; then a client
    // gets in again.
    let outcome = ar.run_until(limits.handshake_timeout + Duration::from_secs(2), |ar| {
        ar.net.swarm(t).connection_count() == 1
    });
    assert_eq!(
        outcome,
        Outcome::Done,
        "the pending handshakes were not cleaned up"
    );
    assert!(
        ar.bulk_running(),
        "the transfer should outlast the stalled handshakes"
    );
    // The target never took the stalled clients for connected (they think
    // they are: a TLS 1.3 client is done once it sent its Finished, which
    // never arrived).
    for (p, h, k) in [(p1, h1, 11), (p2, h2, 12)] {
        assert_eq!(ar.established_with(key(k).public().to_peer_id()), 0);
        assert!(ar.net.raw(p).conn(h).connected_at.is_some());
    }
    let h4 = ar.honest_raw_conn(p3, &key(13));
    ar.echo_probe(p3, h4);
    ar.finish();
}

// ----- multistream-select, dialer role -----

/// What happened to the streams a `Recorder` opened.
#[derive(Default)]
struct Recorded {
    negotiated: Vec<(StreamRef, String)>,
    closed: Vec<(StreamRef, StreamError, std::time::Instant)>,
}

/// A plugin the test opens streams as, recording their fate.
struct Recorder(Arc<Mutex<Recorded>>);

impl Protocol for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn handle_stream_negotiated(&mut self, _: &mut Context<'_>, s: StreamRef, p: &str) {
        self.0.lock().unwrap().negotiated.push((s, p.to_owned()));
    }
    // The remote's STOP_SENDING used to arrive as `handle_stream_closed(Stopped)`.
    fn handle_stream_stopped(&mut self, ctx: &mut Context<'_>, stream: StreamRef, code: u64) {
        self.handle_stream_closed(ctx, stream, &StreamError::Stopped(code));
    }

    fn handle_stream_closed(&mut self, ctx: &mut Context<'_>, s: StreamRef, e: &StreamError) {
        self.0
            .lock()
            .unwrap()
            .closed
            .push((s, e.clone(), ctx.now()));
    }
}

/// The target dials a raw server (valid certificate), opens a stream to it
/// as a plugin, and the raw server answers the proposal with `answer`
/// (then FIN if `fin`, or a reset with `reset`). The plugin must get
/// `handle_stream_closed` with the expected typed error within `within`,
/// the stream must leave the table, and the connection must stay usable.
fn dialer_case(
    answer: &[u8],
    fin: bool,
    reset: Option<u32>,
    within: Duration,
    expected: impl Fn(&StreamError) -> bool,
) {
    let host = Keypair::generate_ed25519();
    let cfg = certs::hostile_server(certs::presented(CertCase::Valid, &host), &[b"libp2p"]);
    let mut ar = Arena::new(|_| {}, within + Duration::from_secs(3));
    let t = ar.t;
    let record = Arc::new(Mutex::new(Recorded::default()));
    let recorder = ar
        .net
        .swarm(t)
        .add_protocol(Box::new(Recorder(record.clone())));
    let raw = ar.add_raw(4000, Some(cfg));
    let peer = host.public().to_peer_id();
    let addr = p2p(ar.net.multiaddr(raw), peer);
    let conn = ar.net.swarm(t).dial(&addr, false).unwrap();
    let outcome = ar.run_until(Duration::from_secs(2), |ar| ar.established_with(peer) == 1);
    assert_eq!(outcome, Outcome::Done);
    let proposal = "/test/hostile/1.0.0";
    let stream = ar
        .net
        .swarm(t)
        .with_context(recorder, |ctx| ctx.open_stream(conn, proposal))
        .unwrap();
    assert_eq!(ar.net.swarm(t).stream_count(), 2);
    // The raw server sees the optimistic header and proposal.
    let expected_flight = frames(&[HEADER, proposal.as_bytes()]);
    let mut sid = None;
    let outcome = ar.run_until(Duration::from_secs(1), |ar| {
        let c = ar.net.raw(raw).conns.values_mut().next().unwrap();
        sid = c
            .streams
            .iter()
            .find(|(_, s)| s.received == expected_flight)
            .map(|(id, _)| *id);
        sid.is_some()
    });
    assert_eq!(outcome, Outcome::Done, "the proposal did not arrive");
    let sid = sid.unwrap();
    let h = *ar.net.raw(raw).conns.keys().next().unwrap();
    let opened = ar.net.now();
    let c = ar.net.raw(raw).conn(h);
    c.write(sid, answer);
    if fin {
        c.finish(sid);
    }
    if let Some(code) = reset {
        c.reset(sid, code);
    }
    let outcome = ar.run_until(within + Duration::from_secs(1), |_| {
        !record.lock().unwrap().closed.is_empty()
    });
    assert_eq!(outcome, Outcome::Done, "the plugin was not told");
    let (s, error, at) = record.lock().unwrap().closed[0].clone();
    eprintln!("dialer role: {error:?} after {:?}", at - opened);
    assert_eq!(s, stream);
    assert!(expected(&error), "unexpected error {error:?}");
    assert!(at - opened <= within + Duration::from_millis(50));
    assert!(record.lock().unwrap().negotiated.is_empty());
    assert!(ar.bulk_running());
    ar.run_for(Duration::from_millis(100));
    assert_eq!(
        ar.net.swarm(t).stream_count(),
        1,
        "the failed stream is gone"
    );
    // The connection still carries a stream: the raw server sees a second
    // proposal arrive.
    ar.net
        .swarm(t)
        .with_context(recorder, |ctx| ctx.open_stream(conn, proposal))
        .unwrap();
    let outcome = ar.run_until(Duration::from_secs(1), |ar| {
        let c = ar.net.raw(raw).conn(h);
        c.streams
            .values()
            .filter(|s| s.received == expected_flight)
            .count()
            == 2
    });
    assert_eq!(
        outcome,
        Outcome::Done,
        "the connection no longer carries streams"
    );
    // Leave it to the negotiation timeout and the raw close in `finish`.
    ar.run_for(swarm::Limits::default().negotiation_timeout + Duration::from_secs(1));
    ar.finish();
}

fn negotiation_error(e: &StreamError) -> Option<&MultistreamError> {
    match e {
        StreamError::Negotiation(m) => Some(m),
        _ => None,
    }
}

#[test]
fn dialer_role_answer_frame_over_the_limit_fails_the_stream() {
    let mut answer = frames(&[HEADER]);
    answer.extend_from_slice(&[0x81, 0x08]);
    answer.extend_from_slice(&[b'x'; 1025]);
    dialer_case(&answer, false, None, Duration::from_millis(100), |e| {
        negotiation_error(e)
            == Some(&MultistreamError::FrameTooLarge {
                len: 1025,
                max: 1024,
            })
    });
}

#[test]
fn dialer_role_answer_with_bad_varint_or_non_utf8_fails_the_stream() {
    let mut answer = frames(&[HEADER]);
    answer.extend_from_slice(&[0x80, 0x80, 0x01]);
    dialer_case(&answer, false, None, Duration::from_millis(100), |e| {
        negotiation_error(e) == Some(&MultistreamError::BadVarint)
    });
    dialer_case(
        &frames(&[HEADER, b"/\xff\xfe"]),
        false,
        None,
        Duration::from_millis(100),
        |e| negotiation_error(e) == Some(&MultistreamError::NotUtf8),
    );
}

#[test]
fn dialer_role_na_and_unexpected_answers_fail_the_stream() {
    dialer_case(
        &frames(&[HEADER, b"na"]),
        false,
        None,
        Duration::from_millis(100),
        |e| matches!(negotiation_error(e), Some(MultistreamError::Refused { .. })),
    );
    dialer_case(
        &frames(&[HEADER, b"/other/1.0.0"]),
        false,
        None,
        Duration::from_millis(100),
        |e| {
            negotiation_error(e)
                == Some(&MultistreamError::UnexpectedMessage("/other/1.0.0".into()))
        },
    );
}

#[test]
fn dialer_role_listener_that_ends_or_resets_fails_the_stream() {
    dialer_case(
        &frames(&[HEADER]),
        true,
        None,
        Duration::from_millis(100),
        |e| *e == StreamError::EndedDuringNegotiation,
    );
    dialer_case(b"", false, Some(77), Duration::from_millis(100), |e| {
        *e == StreamError::Reset(77)
    });
}

#[test]
fn dialer_role_listener_that_never_answers_times_out() {
    let timeout = swarm::Limits::default().negotiation_timeout;
    dialer_case(&frames(&[HEADER]), false, None, timeout, |e| {
        *e == StreamError::NegotiationTimeout
    });
}

// ----- QUIC DATAGRAM frames -----

/// 2000 QUIC DATAGRAM frames with random payloads (no packet flow is open;
/// some name the bulk stream's id): every one is dropped and counted, and
/// nothing else changes.
#[test]
fn random_quic_datagrams_without_a_flow_are_dropped() {
    let mut ar = Arena::new(|_| {}, Duration::from_secs(4));
    let t = ar.t;
    let raw = ar.add_raw(4000, None);
    let h = ar.honest_raw_conn(raw, &key(7));
    let mut rng = StdRng::seed_from_u64(9221);
    let before = ar.net.swarm(t).dropped_datagrams();
    let mut sent = 0u64;
    for _ in 0..100 {
        let c = ar.net.raw(raw).conn(h);
        let max = c
            .quic
            .datagrams()
            .max_size()
            .expect("the target accepts datagrams");
        for _ in 0..20 {
            let len = rng.random_range(0..=max.min(1100));
            let mut d: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if len > 0 && rng.random_bool(0.2) {
                d[0] = 0; // stream id 0: the bulk stream, not a flow
            }
            c.quic.datagrams().send(d.into(), false).unwrap();
            sent += 1;
        }
        ar.run_for(Duration::from_millis(5));
    }
    ar.run_for(Duration::from_millis(50));
    let dropped = ar.net.swarm(t).dropped_datagrams() - before;
    eprintln!("datagrams: {sent} sent, {dropped} dropped by the target");
    assert_eq!(dropped, sent);
    assert_eq!(ar.net.swarm(t).stream_count(), 1);
    assert!(ar.bulk_running());
    ar.echo_probe(raw, h);
    ar.finish();
}

/// The same noise through the real mio runtime: 2000 random datagrams from
/// a loopback UDP socket at a running node's port while another node runs
/// echo round trips through it.
#[test]
fn random_datagrams_at_a_real_loopback_port_change_nothing() {
    use std::io::{Read, Write};
    let target = common::node(common::config(41), vec![Box::new(common::EchoPlugin)]);
    let client = common::node(common::config(42), vec![]);
    client
        .handle
        .dial(&target.p2p_addr(), false, common::TIMEOUT)
        .unwrap();
    let port_addr = swarm::address::parse_quic_addr(&target.addr)
        .unwrap()
        .socket;
    let data = common::pattern(256 * 1024);
    std::thread::scope(|scope| {
        let echo = scope.spawn(|| {
            for _ in 0..4 {
                let mut s = client
                    .handle
                    .open_stream(target.peer, common::ECHO, common::TIMEOUT)
                    .unwrap();
                s.set_timeout(Some(common::TIMEOUT));
                s.write_all(&data).unwrap();
                s.finish().unwrap();
                let mut out = Vec::new();
                s.read_to_end(&mut out).unwrap();
                assert_eq!(out, data);
            }
        });
        let noise_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut rng = StdRng::seed_from_u64(1501);
        for i in 0..2000 {
            let _ = noise_socket.send_to(&noise(&mut rng), port_addr);
            if i % 100 == 99 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        echo.join().unwrap();
    });
    assert_eq!(
        common::echo_roundtrip(&client.handle, target.peer, b"after the noise"),
        b"after the noise"
    );
    let (conns, streams) = target
        .handle
        .call(common::TIMEOUT, |s| {
            (s.connection_count(), s.stream_count())
        })
        .unwrap();
    assert_eq!(conns, 1);
    // The last echo stream may still be waiting for its final ACK.
    let mut streams = streams;
    for _ in 0..100 {
        if streams == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        streams = target
            .handle
            .call(common::TIMEOUT, |s| s.stream_count())
            .unwrap();
    }
    assert_eq!(streams, 0);
}

// ----- stream churn and memory -----

/// Counts the bytes allocated minus freed while the simulated network is
/// calling into node 0 on this thread (see `swarm::virtual_net::current_node`),
/// so a test can see what the target swarm itself holds.
#[allow(unsafe_code)]
mod counting_alloc {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static TARGET_LIVE: Cell<isize> = const { Cell::new(0) };
    }

    fn count(delta: isize) {
        if swarm::virtual_net::current_node() == Some(0) {
            let _ = TARGET_LIVE.try_with(|c| c.set(c.get() + delta));
        }
    }

    /// Bytes node 0 allocated and has not freed, on this thread.
    pub fn target_live() -> isize {
        TARGET_LIVE.with(Cell::get)
    }

    struct Counting;

    // SAFETY: every call is forwarded unchanged to the system allocator;
    // the counter is a const-initialized thread-local that never allocates.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count(layout.size() as isize);
            // SAFETY: same contract as ours.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            count(-(layout.size() as isize));
            // SAFETY: same contract as ours.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count(new_size as isize - layout.size() as isize);
            // SAFETY: same contract as ours.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;
}

/// A peer that opens streams and ends them at once (header, then FIN:
/// `EndedDuringNegotiation`) as fast as QUIC's stream credit allows. Every
/// stream is gone from the table right away, so what the target holds must
/// not grow with the number of streams.
#[test]
fn stream_churn_does_not_grow_the_targets_memory() {
    let mut net = support::net::new(
        5,
        LinkConfig {
            latency: Duration::from_micros(500),
            ..LinkConfig::clean()
        },
    );
    let t = net.add_swarm(config(1), T_IP);
    assert_eq!(t, 0, "the allocator counts node 0");
    net.swarm(t).add_protocol(Box::new(Echo));
    let raw = net.add_raw(RawPeer::new(h_addr(4000), None, 4));
    let t_peer = net.swarm(t).local_peer_id();
    let to = net.addr(t);
    let now = net.now();
    let h = net
        .raw(raw)
        .connect(now, certs::honest_client(&key(7), Some(t_peer)), to);
    net.run_for(Duration::from_millis(50));
    assert!(net.raw(raw).conn(h).connected_at.is_some());
    let header = frames(&[HEADER]);
    let churn = |net: &mut Net, count: usize| {
        let mut opened = 0;
        for _ in 0..100_000 {
            let c = net.raw(raw).conn(h);
            while opened < count
                && let Some(s) = c.quic.streams().open(quinn_proto::Dir::Bi)
            {
                c.write(s, &header);
                c.finish(s);
                opened += 1;
            }
            net.run_for(Duration::from_millis(1));
            net.raw(raw).conn(h).streams.clear();
            if opened == count {
                break;
            }
        }
        net.run_for(Duration::from_millis(100));
        assert_eq!(opened, count);
        assert_eq!(net.swarm(t).stream_count(), 0);
    };
    churn(&mut net, 1_000);
    let before = counting_alloc::target_live();
    let streams = 20_000;
    churn(&mut net, streams);
    let grown = counting_alloc::target_live() - before;
    let per_stream = grown as f64 / streams as f64;
    eprintln!(
        "stream churn: {streams} streams, the target holds {grown} more bytes ({per_stream:.0} B/stream)"
    );
    assert!(net.raw(raw).conn(h).lost.is_none());
    assert!(
        per_stream < 16.0,
        "{per_stream:.0} bytes held per stream that no longer exists"
    );
}
