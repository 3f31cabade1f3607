//! Scale benchmark: one swarm holding many concurrent idle connections.
//!
//! ```text
//! cargo build --release -p swarm --example scale_idle
//! target/release/examples/scale_idle server 10000 &          # prints its address, then stats every 5 s
//! target/release/examples/scale_idle client ADDR 10000 8     # 10,000 connections over 8 dialing threads
//! ```
//!
//! The server's limit is the count it is given; the client makes one more
//! dial than that and reports how it is refused. The server prints its RSS
//! and CPU time every 5 s, so memory per connection and idle CPU can be read
//! off. Connections are kept open by a plugin, with QUIC keep-alive PINGs
//! every 5 s as in normal operation.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use swarm::{ConnId, Context, Multiaddr, PeerId, Protocol, Runtime, SwarmConfig};

/// Keeps every connection open without streams.
struct KeepAll(Arc<AtomicUsize>);

impl Protocol for KeepAll {
    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: PeerId) {
        let _ = ctx.keep_alive(conn, true);
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn handle_closed_connection(&mut self, _: &mut Context<'_>, _: ConnId, _: PeerId) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// (RSS in KiB, CPU seconds user+system) of this process.
fn usage() -> (u64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of /proc/self/stat (1-based), in
    // clock ticks of 1/100 s on Linux.
    (rss, (ticks(11) + ticks(12)) / 100.0)
}

fn config(limit: usize) -> SwarmConfig {
    let mut c = SwarmConfig::new(swarm::identity::generate_keypair());
    c.limits.max_connections = limit;
    c.limits.max_connections_per_peer = limit;
    c.limits.max_connections_per_ip = limit;
    c.limits.max_pending_handshakes = limit;
    c
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("server") => {
            let limit: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(10_000);
            let live = Arc::new(AtomicUsize::new(0));
            let mut rt = Runtime::new(config(limit))?;
            rt.add_protocol(Box::new(KeepAll(live.clone())));
            let addr = rt.listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse()?)?;
            println!("{addr}/p2p/{}", rt.swarm().local_peer_id());
            let (_handle, _thread) = rt.spawn()?;
            let start = Instant::now();
            loop {
                let (rss, cpu) = usage();
                println!(
                    "t={:.0}s connections={} rss_kib={rss} cpu_s={cpu:.2}",
                    start.elapsed().as_secs_f64(),
                    live.load(Ordering::Relaxed)
                );
                std::thread::sleep(Duration::from_secs(5));
            }
        }
        Some("client") => {
            let addr: Multiaddr = args.get(2).ok_or("client ADDR COUNT [THREADS]")?.parse()?;
            let count: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(10_000);
            let threads: usize = args.get(4).and_then(|v| v.parse().ok()).unwrap_or(8);
            let mut rt = Runtime::new(config(count + 10))?;
            rt.add_protocol(Box::new(KeepAll(Arc::new(AtomicUsize::new(0)))));
            let (handle, _thread) = rt.spawn()?;
            let start = Instant::now();
            let failures = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for t in 0..threads {
                    let (handle, addr, failures) = (handle.clone(), addr.clone(), &failures);
                    s.spawn(move || {
                        for _ in (t..count).step_by(threads) {
                            match handle.dial(&addr, true, Duration::from_secs(60)) {
                                Ok(_) => {}
                                _ => {
                                    failures.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    });
                }
            });
            let took = start.elapsed();
            println!(
                "{count} dials in {:.2} s ({:.0}/s), {} failed",
                took.as_secs_f64(),
                count as f64 / took.as_secs_f64(),
                failures.load(Ordering::Relaxed)
            );
            // One more than the server's limit: it must be refused.
            match handle.dial(&addr, true, Duration::from_secs(60)) {
                Ok(conn) => println!("over the limit: unexpectedly connected ({conn})"),
                Err(e) => println!("over the limit: refused: {e}"),
            }
            println!("holding the connections; stop with Ctrl-C");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        _ => {
            Err("usage: scale_idle server [LIMIT] | scale_idle client ADDR COUNT [THREADS]".into())
        }
    }
}
