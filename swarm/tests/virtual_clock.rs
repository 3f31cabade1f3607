//! Two swarm cores wired together with no sockets and a virtual clock: the
//! sans-I/O contract at work, with loss and reordering injected by the link.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use swarm::{
    Bytes, ConnId, Context, Keypair, NoWake, PeerId, Protocol, SocketBinder, StreamRef, Swarm,
    SwarmConfig,
};

const PROTO: &str = "/test/bulk/1.0.0";

/// Hands out loopback addresses without binding anything.
struct VirtualBinder {
    ip: [u8; 4],
    next_port: u16,
}

impl SocketBinder for VirtualBinder {
    fn bind(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let port = if addr.port() == 0 {
            self.next_port += 1;
            self.next_port
        } else {
            addr.port()
        };
        Ok(SocketAddr::from((self.ip, port)))
    }
}

/// Sends `total` bytes on a new stream as soon as a connection is up.
struct Sender {
    total: usize,
    sent: usize,
    stream: Option<StreamRef>,
}

impl Sender {
    fn pump(&mut self, ctx: &mut Context<'_>) {
        let Some(s) = self.stream else { return };
        while self.sent < self.total {
            let chunk = (self.total - self.sent).min(16 * 1024);
            let data: Vec<u8> = (self.sent..self.sent + chunk)
                .map(|i| (i % 251) as u8)
                .collect();
            let n = ctx.write(s, &data).expect("write");
            self.sent += n;
            if n < chunk {
                return; // wait for handle_stream_writable
            }
        }
        ctx.finish(s).expect("finish");
        self.stream = None;
    }
}

impl Protocol for Sender {
    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: PeerId) {
        self.stream = Some(ctx.open_stream(conn, PROTO).expect("open"));
        self.pump(ctx);
    }
    fn handle_stream_writable(&mut self, ctx: &mut Context<'_>, _: StreamRef) {
        self.pump(ctx);
    }
}

/// Checks every received byte against the pattern and records completion.
struct Receiver {
    result: Arc<Mutex<(usize, bool, bool)>>, // (bytes, all in order, finished)
}

impl Protocol for Receiver {
    fn protocol_ids(&self) -> Vec<String> {
        vec![PROTO.into()]
    }
    fn handle_stream_data(&mut self, _: &mut Context<'_>, _: StreamRef, data: Bytes) {
        let mut r = self.result.lock().unwrap();
        for (k, b) in data.iter().enumerate() {
            if *b != ((r.0 + k) % 251) as u8 {
                r.1 = false;
            }
        }
        r.0 += data.len();
    }
    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, s: StreamRef) {
        self.result.lock().unwrap().2 = true;
        let _ = ctx.finish(s);
    }
}

struct Link {
    loss: f64,
    latency: Duration,
    jitter: Duration,
    rng: StdRng,
}

/// Run both swarms until `done` or the virtual deadline; returns virtual time used.
fn run(
    swarms: &mut [Swarm; 2],
    addrs: [SocketAddr; 2],
    link: &mut Link,
    start: Instant,
    done: impl Fn() -> bool,
) -> Duration {
    let mut now = start;
    // In flight: (arrival, seq) -> (to swarm, from addr, payload)
    let mut in_flight: BTreeMap<(Instant, u64), (usize, SocketAddr, Vec<u8>)> = BTreeMap::new();
    let mut seq = 0u64;
    let mut buf = Vec::new();
    for _ in 0..2_000_000 {
        for (i, s) in swarms.iter_mut().enumerate() {
            s.feed_wakeup(now);
            while let Some((_, t)) = s.poll_transmit(now, 1, &mut buf) {
                let to = addrs
                    .iter()
                    .position(|a| *a == t.destination)
                    .expect("known address");
                if link.rng.random::<f64>() < link.loss {
                    continue;
                }
                let jitter = link.jitter.mul_f64(link.rng.random::<f64>());
                seq += 1;
                in_flight.insert(
                    (now + link.latency + jitter, seq),
                    (to, addrs[i], buf[..t.size].to_vec()),
                );
            }
        }
        if done() {
            return now - start;
        }
        let next_packet = in_flight.keys().next().map(|k| k.0);
        let next_timer = swarms.iter().filter_map(|s| s.poll_timeout()).min();
        let Some(next) = [next_packet, next_timer].into_iter().flatten().min() else {
            break;
        };
        now = now.max(next);
        while let Some(entry) = in_flight.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (to, from, data) = entry.remove();
            swarms[to].feed_datagram(now, 0, from, None, None, BytesMut::from(&data[..]));
        }
        for s in swarms.iter_mut() {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.feed_timeout(now);
            }
        }
        assert!(
            now - start < Duration::from_secs(600),
            "virtual deadline passed"
        );
    }
    now - start
}

fn transfer(total: usize, loss: f64, seed: u64) -> (usize, bool, bool, Duration) {
    let start = Instant::now();
    let result = Arc::new(Mutex::new((0usize, true, false)));
    let mk = |seed: u8, ip: [u8; 4]| {
        let cfg = SwarmConfig::new(Keypair::ed25519_from_bytes([seed; 32]).unwrap());
        Swarm::new(
            cfg,
            Box::new(VirtualBinder {
                ip,
                next_port: 1000,
            }),
            Arc::new(NoWake),
            start,
        )
        .unwrap()
    };
    let mut a = mk(1, [127, 0, 0, 1]);
    let mut b = mk(2, [127, 0, 0, 2]);
    a.add_protocol(Box::new(Sender {
        total,
        sent: 0,
        stream: None,
    }));
    b.add_protocol(Box::new(Receiver {
        result: result.clone(),
    }));
    let a_addr = a
        .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
        .unwrap();
    let b_addr = b
        .listen(&"/ip4/127.0.0.2/udp/0/quic-v1".parse().unwrap())
        .unwrap();
    let to_socket = |m: &swarm::Multiaddr| swarm::address::parse_quic_addr(m).unwrap().socket;
    let addrs = [to_socket(&a_addr), to_socket(&b_addr)];
    let b_peer = b.local_peer_id();
    a.dial(&b_addr.with(swarm::multiaddr::Protocol::P2p(b_peer)), false)
        .unwrap();
    let mut link = Link {
        loss,
        latency: Duration::from_millis(10),
        jitter: Duration::from_millis(5),
        rng: StdRng::seed_from_u64(seed),
    };
    let mut swarms = [a, b];
    let r2 = result.clone();
    let took = run(&mut swarms, addrs, &mut link, start, move || {
        r2.lock().unwrap().2
    });
    let r = *result.lock().unwrap();
    (r.0, r.1, r.2, took)
}

#[test]
fn virtual_link_transfers_every_byte_in_order() {
    let (bytes, in_order, finished, _) = transfer(2 << 20, 0.0, 1);
    assert!(finished);
    assert!(in_order);
    assert_eq!(bytes, 2 << 20);
}

#[test]
fn virtual_link_with_loss_and_reordering_still_delivers_exactly() {
    let (bytes, in_order, finished, took) = transfer(1 << 20, 0.05, 7);
    assert!(finished, "transfer did not finish (virtual time {took:?})");
    assert!(in_order);
    assert_eq!(bytes, 1 << 20);
}
