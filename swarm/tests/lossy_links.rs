//! Section 3 of the hardening issue: lossy links. Two swarm cores on a
//! simulated link with a virtual clock and a seeded RNG: loss (independent
//! and in bursts), reordering, duplication, corruption, and a link that goes
//! dark. Every run is bounded in virtual time, iterations and wall time.

mod support;

use std::time::{Duration, Instant};

use support::bulk::{self, Receiver, Sender};
use swarm::virtual_net::{LinkConfig, LinkStats, Outcome};
use swarm::{DialError, Keypair, SwarmConfig, SwarmEvent};

fn config(seed: u8) -> SwarmConfig {
    SwarmConfig::new(Keypair::ed25519_from_bytes([seed; 32]).unwrap())
}

struct TransferReport {
    bytes: usize,
    identical: bool,
    virtual_time: Duration,
    wall: Duration,
    stats: LinkStats,
    sender_error: Option<String>,
    receiver_error: Option<String>,
    /// Connections each side holds at the end (corrupted datagrams must not
    /// have started any).
    connections: [usize; 2],
}

fn transfer(len: usize, link: LinkConfig, seed: u64) -> TransferReport {
    let wall = Instant::now();
    let data = bulk::payload(len, seed);
    let expected = bulk::sha256(&data);
    let mut net = support::net::new(seed, link);
    let a = net.add_swarm(config(1), [127, 0, 0, 1]);
    let b = net.add_swarm(config(2), [127, 0, 0, 2]);
    let (sender, sent) = Sender::new(data, None);
    let (receiver, received) = Receiver::new();
    net.swarm(a).add_protocol(Box::new(sender));
    net.swarm(b).add_protocol(Box::new(receiver));
    let b_peer = net.swarm(b).local_peer_id();
    let target = net
        .multiaddr(b)
        .with(swarm::multiaddr::Protocol::P2p(b_peer));
    net.swarm(a).dial(&target, false).unwrap();
    let outcome = net.run_until(Duration::from_secs(600), |_| {
        let r = received.lock().unwrap();
        r.finished_at.is_some() || r.error.is_some() || sent.lock().unwrap().error.is_some()
    });
    assert_eq!(outcome, Outcome::Done, "transfer did not end");
    let r = received.lock().unwrap();
    let s = sent.lock().unwrap();
    TransferReport {
        bytes: r.bytes,
        identical: r.digest() == expected,
        virtual_time: net.elapsed(),
        wall: wall.elapsed(),
        stats: net.stats(),
        sender_error: s.error.clone(),
        receiver_error: r.error.clone(),
        connections: [
            net.swarm(a).connection_count(),
            net.swarm(b).connection_count(),
        ],
    }
}

fn check(name: &str, len: usize, r: &TransferReport) {
    let s = &r.stats;
    eprintln!(
        "{name}: {} of {len} bytes, identical {}, virtual {:.2?} ({:.1} Mbit/s), wall {:.2?}; \
         datagrams sent {} dropped {} ({:.1}%) duplicated {} corrupted {}",
        r.bytes,
        r.identical,
        r.virtual_time,
        r.bytes as f64 * 8.0 / r.virtual_time.as_secs_f64() / 1e6,
        r.wall,
        s.sent,
        s.dropped,
        100.0 * s.dropped as f64 / s.sent.max(1) as f64,
        s.duplicated,
        s.corrupted,
    );
    assert_eq!(r.connections, [1, 1]);
    assert_eq!(r.sender_error, None);
    assert_eq!(r.receiver_error, None);
    assert_eq!(r.bytes, len);
    assert!(r.identical, "SHA-256 differs");
}

const MIB16: usize = 16 << 20;

/// 10 ms each way; reordering and duplication get their own test, because
/// a reordering link makes QUIC's loss detection fire spuriously, which
/// hides what loss alone does.
fn lossy(loss: f64, burst: u32) -> LinkConfig {
    LinkConfig {
        loss,
        burst,
        latency: Duration::from_millis(10),
        ..LinkConfig::clean()
    }
}

#[test]
fn sixteen_mib_at_2_percent_loss_is_byte_identical() {
    let r = transfer(MIB16, lossy(0.02, 1), 2);
    check("16 MiB, 2% loss", MIB16, &r);
}

/// 5% of datagrams start a loss event that drops 3 in a row on that
/// direction: about 13.6% of all datagrams are lost.
#[test]
fn sixteen_mib_at_5_percent_loss_events_in_bursts_of_3_is_byte_identical() {
    let r = transfer(MIB16, lossy(0.05, 3), 5);
    check("16 MiB, 5% loss events x burst 3", MIB16, &r);
    assert!(r.stats.dropped as f64 > 0.10 * r.stats.sent as f64);
}

/// The other reading of "5% loss in bursts of 3": 5% of all datagrams lost,
/// three at a time (a loss event every 1/0.0175 datagrams).
#[test]
fn sixteen_mib_at_5_percent_total_loss_in_bursts_of_3_is_byte_identical() {
    let r = transfer(MIB16, lossy(0.0175, 3), 53);
    check("16 MiB, 5% total loss in bursts of 3", MIB16, &r);
    let rate = r.stats.dropped as f64 / r.stats.sent as f64;
    assert!((0.04..0.06).contains(&rate), "loss rate {rate}");
}

/// Reordering (0-5 ms jitter on a 10 ms link), 2% duplicates, 1% of
/// datagrams with one byte flipped (QUIC's AEAD must discard them, or the
/// header checks must), and 1% loss.
#[test]
fn sixteen_mib_with_reordering_duplication_and_corruption_is_byte_identical() {
    let link = LinkConfig {
        loss: 0.01,
        duplicate: 0.02,
        corrupt: 0.01,
        jitter: Duration::from_millis(5),
        ..lossy(0.0, 1)
    };
    let r = transfer(MIB16, link, 11);
    check("16 MiB, reorder + 2% dup + 1% corrupt + 1% loss", MIB16, &r);
    assert!(r.stats.corrupted > 50 && r.stats.duplicated > 100);
}

/// Dial `count` fresh connections one after the other over `link`; each
/// must be established within `each` of virtual time. Returns the time each
/// took, or the error of the first that failed.
fn handshakes(
    count: usize,
    link: LinkConfig,
    seed: u64,
    each: Duration,
    tweak: fn(&mut SwarmConfig),
) -> Vec<Result<Duration, String>> {
    let mut net = support::net::new(seed, link);
    let (mut ca, mut cb) = (config(1), config(2));
    tweak(&mut ca);
    tweak(&mut cb);
    let a = net.add_swarm(ca, [127, 0, 0, 1]);
    let b = net.add_swarm(cb, [127, 0, 0, 2]);
    let events = net.swarm(a).handle().subscribe(100_000).unwrap();
    let b_peer = net.swarm(b).local_peer_id();
    let target = net
        .multiaddr(b)
        .with(swarm::multiaddr::Protocol::P2p(b_peer));
    let mut results = Vec::new();
    for _ in 0..count {
        let started = net.now();
        let conn = net.swarm(a).dial(&target, true).unwrap();
        let mut result = None;
        net.run_until(each, |_| {
            for e in events.try_iter() {
                match e {
                    SwarmEvent::ConnectionEstablished { conn: c, .. } if c == conn => {
                        result = Some(Ok(()))
                    }
                    SwarmEvent::DialFailed { conn: c, error } if c == conn => {
                        result = Some(Err(error.to_string()))
                    }
                    _ => {}
                }
            }
            result.is_some()
        });
        let took = net.now() - started;
        let n = results.len() + 1;
        results.push(match result {
            Some(Ok(())) => Ok(took),
            Some(Err(e)) => Err(format!("handshake {n}: dial failed after {took:?}: {e}")),
            None => Err(format!("handshake {n}: no outcome within {each:?}")),
        });
        // Close it and let both sides forget it before the next one, so the
        // per-peer limit never plays a part.
        net.swarm(a)
            .with_context(swarm::PluginId::external(), |ctx| {
                ctx.close_connection(conn, 0)
            })
            .ok();
        let outcome = net.run_until(Duration::from_secs(400), |net| {
            net.swarm(a).connection_count() == 0 && net.swarm(b).connection_count() == 0
        });
        assert_eq!(outcome, Outcome::Done, "connections were not cleaned up");
    }
    results
}

fn fifty_handshakes(tweak: fn(&mut SwarmConfig), name: &str) {
    let wall = Instant::now();
    let link = LinkConfig {
        loss: 0.30,
        ..lossy(0.0, 1)
    };
    let results = handshakes(50, link, 30, Duration::from_secs(60), tweak);
    let mut times: Vec<Duration> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    times.sort();
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    eprintln!(
        "{name}: {} of {} handshakes at 30% loss succeeded; median {:?}, max {:?}; wall {:.2?}; \
         failures {failures:?}",
        times.len(),
        results.len(),
        times.get(times.len() / 2),
        times.last(),
        wall.elapsed()
    );
    assert!(failures.is_empty(), "{failures:?}");
}

/// With the default config. At 30% loss a handshake's first flights can be
/// lost several times in a row, and QUIC's probe timeout backs off
/// exponentially from an initial RTT of 333 ms (1 s, 2 s, 4 s, ...): over
/// 1000 seeded handshakes, 1.1% took longer than the 10 s handshake
/// timeout, so 50 in a row all succeed only about 57% of the time.
#[test]
fn fifty_of_fifty_handshakes_succeed_at_30_percent_loss() {
    fifty_handshakes(|_| {}, "default config");
}

/// The same 50 seeded handshakes with a 30 s handshake and idle timeout:
/// every one completes, and each is bounded (60 s of virtual time).
#[test]
fn fifty_of_fifty_handshakes_succeed_at_30_percent_loss_with_a_30s_handshake_timeout() {
    fifty_handshakes(
        |c| {
            c.limits.handshake_timeout = Duration::from_secs(30);
            c.quic_idle_timeout = Duration::from_secs(30);
        },
        "30 s handshake timeout",
    );
}

/// A transfer is under way (paced, so its stream keeps the connection
/// busy) when the link goes dark for 30 s, longer than the 10 s idle
/// timeout: both sides must end the connection with a timeout error well
/// before the link comes back, tell the plugins, and forget it.
#[test]
fn link_dark_longer_than_idle_timeout_ends_in_timeout_error_on_both_sides() {
    let mut net = support::net::new(77, lossy(0.0, 1));
    let a = net.add_swarm(config(1), [127, 0, 0, 1]);
    let b = net.add_swarm(config(2), [127, 0, 0, 2]);
    let (sender, sent) = Sender::new(
        bulk::payload(4 << 20, 1),
        Some((64 * 1024, Duration::from_millis(100))),
    );
    let (receiver, received) = Receiver::new();
    net.swarm(a).add_protocol(Box::new(sender));
    net.swarm(b).add_protocol(Box::new(receiver));
    let events_a = net.swarm(a).handle().subscribe(10_000).unwrap();
    let events_b = net.swarm(b).handle().subscribe(10_000).unwrap();
    let b_peer = net.swarm(b).local_peer_id();
    let target = net
        .multiaddr(b)
        .with(swarm::multiaddr::Protocol::P2p(b_peer));
    net.swarm(a).dial(&target, false).unwrap();
    // Let the transfer run for a while, then cut the link.
    let outcome = net.run_until(Duration::from_secs(30), |_| {
        received.lock().unwrap().bytes > 256 * 1024
    });
    assert_eq!(outcome, Outcome::Done);
    let idle = config(1).quic_idle_timeout;
    // RFC 9000 10.1: sending the first ack-eliciting packet since the last
    // one received restarts the idle timer; the receiver sends only ACKs
    // until its keep-alive PING, so it may wait up to one interval more.
    let latest = idle + config(1).keep_alive_interval + Duration::from_secs(1);
    let dark_at = net.now();
    net.dark = true;
    let mut closed: [Option<(Duration, String)>; 2] = [None, None];
    let outcome = net.run_until(latest + Duration::from_secs(5), |net| {
        for (i, events) in [&events_a, &events_b].into_iter().enumerate() {
            for e in events.try_iter() {
                if let SwarmEvent::ConnectionClosed { reason, .. } = e {
                    closed[i].get_or_insert((net.now() - dark_at, reason));
                }
            }
        }
        closed.iter().all(Option::is_some)
    });
    eprintln!("dark link: closed after {closed:?} (idle timeout {idle:?})");
    assert_eq!(
        outcome,
        Outcome::Done,
        "no ConnectionClosed within the idle timeout of darkness"
    );
    for (after, reason) in closed.iter().flatten() {
        assert!(reason.contains("timed out"), "reason {reason:?}");
        assert!(*after >= idle && *after <= latest, "closed after {after:?}");
    }
    // The plugins were told, with the same cause.
    let send_error = sent.lock().unwrap().error.clone().unwrap_or_default();
    let recv_error = received.lock().unwrap().error.clone().unwrap_or_default();
    assert!(send_error.contains("timed out"), "sender: {send_error:?}");
    assert!(recv_error.contains("timed out"), "receiver: {recv_error:?}");
    // Nothing is left behind, and the link works again afterwards.
    for n in [a, b] {
        assert_eq!(net.swarm(n).stream_count(), 0);
    }
    net.run_for(Duration::from_secs(5));
    for n in [a, b] {
        assert_eq!(net.swarm(n).connection_count(), 0);
    }
    net.dark = false;
    let conn = net.swarm(a).dial(&target, false).unwrap();
    let mut up = false;
    net.run_until(Duration::from_secs(5), |_| {
        up |= events_a
            .try_iter()
            .any(|e| matches!(e, SwarmEvent::ConnectionEstablished { conn: c, .. } if c == conn));
        up
    });
    assert!(up, "no new connection once the link is back");
}

/// The link is dark from the start: the dial must fail with
/// `DialError::Timeout` at the handshake timeout, not hang.
#[test]
fn dial_over_a_dark_link_fails_with_a_timeout() {
    let mut net = support::net::new(78, lossy(0.0, 1));
    let a = net.add_swarm(config(1), [127, 0, 0, 1]);
    let b = net.add_swarm(config(2), [127, 0, 0, 2]);
    let events = net.swarm(a).handle().subscribe(10_000).unwrap();
    let b_peer = net.swarm(b).local_peer_id();
    let target = net
        .multiaddr(b)
        .with(swarm::multiaddr::Protocol::P2p(b_peer));
    net.dark = true;
    let conn = net.swarm(a).dial(&target, false).unwrap();
    let mut failed = None;
    let outcome = net.run_until(Duration::from_secs(60), |net| {
        for e in events.try_iter() {
            if let SwarmEvent::DialFailed { conn: c, error } = e
                && c == conn
            {
                failed = Some((net.elapsed(), error));
            }
        }
        failed.is_some()
    });
    eprintln!("dark dial: {failed:?}");
    assert_eq!(outcome, Outcome::Done);
    let (after, error) = failed.unwrap();
    assert!(matches!(error, DialError::Timeout), "{error:?}");
    let limit = config(1).limits.handshake_timeout;
    assert!(
        after >= limit.min(config(1).quic_idle_timeout) && after <= limit + Duration::from_secs(1)
    );
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.swarm(a).connection_count(), 0);
    assert_eq!(net.swarm(b).connection_count(), 0);
}

/// Not a CI test: the distribution behind the figures quoted above (1000
/// seeded handshakes at 30% loss with 100 s timeouts; about a minute).
/// Run with `cargo test -p swarm --test lossy_links -- --ignored --nocapture`.
#[test]
#[ignore = "measurement, about a minute"]
fn handshake_time_distribution_at_30_percent_loss() {
    let link = LinkConfig {
        loss: 0.30,
        ..lossy(0.0, 1)
    };
    let mut times = Vec::new();
    for seed in 0..20u64 {
        let results = handshakes(
            50,
            link.clone(),
            1000 + seed,
            Duration::from_secs(120),
            |c| {
                c.limits.handshake_timeout = Duration::from_secs(100);
                c.quic_idle_timeout = Duration::from_secs(100);
            },
        );
        times.extend(results.into_iter().map(|r| r.expect("handshake")));
    }
    times.sort();
    let n = times.len();
    let q = |f: f64| times[((n as f64 * f) as usize).min(n - 1)];
    eprintln!(
        "{n} handshakes at 30% loss: p50 {:?} p90 {:?} p99 {:?} p99.9 {:?} max {:?}",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        times[n - 1]
    );
    for limit in [5u64, 10, 15, 20, 30, 45, 60] {
        let over = times.iter().filter(|d| d.as_secs() >= limit).count();
        eprintln!("  longer than {limit} s: {over}");
    }
}
