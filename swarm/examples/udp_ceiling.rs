//! The ceiling for packet flows: plain UDP on loopback with quinn-udp's
//! GSO/GRO (sendmmsg-style batching), no QUIC, no crypto.
//!
//! Run: `cargo run --release -p swarm --example udp_ceiling -- [COUNT] [SIZE]`
//! Sends COUNT datagrams of SIZE bytes (default 1,000,000 × 1200) from one
//! thread to a receiver thread and reports datagrams per second and loss.

use std::io::IoSliceMut;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let count: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1200);
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    rx.set_read_timeout(Some(Duration::from_millis(200)))?;
    let rx_state = UdpSocketState::new(UdpSockRef::from(&rx))?;
    let _ = rx_state.set_recv_buffer_size(UdpSockRef::from(&rx), 8 << 20);
    let dest = rx.local_addr()?;
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut bufs: Vec<Vec<u8>> =
                (0..quinn_udp::BATCH_SIZE).map(|_| vec![0; 65536]).collect();
            let mut meta = [RecvMeta::default(); quinn_udp::BATCH_SIZE];
            let mut received = 0u64;
            let mut first: Option<Instant> = None;
            let mut last = Instant::now();
            loop {
                let mut slices: Vec<IoSliceMut<'_>> =
                    bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
                match rx_state.recv(UdpSockRef::from(&rx), &mut slices, &mut meta) {
                    Ok(n) => {
                        first.get_or_insert_with(Instant::now);
                        last = Instant::now();
                        for m in &meta[..n] {
                            received += (m.len / m.stride.max(1)) as u64;
                        }
                    }
                    Err(_) if done.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
            (received, first.map_or(Duration::ZERO, |f| last - f))
        })
    };
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    let tx_state = UdpSocketState::new(UdpSockRef::from(&tx))?;
    let _ = tx_state.set_send_buffer_size(UdpSockRef::from(&tx), 8 << 20);
    let segments = tx_state.max_gso_segments().min(65_000 / size).max(1);
    let batch = vec![0u8; size * segments];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < count {
        let n = (count - sent).min(segments as u64) as usize;
        let t = Transmit {
            destination: dest,
            ecn: None,
            contents: &batch[..n * size],
            segment_size: (n > 1).then_some(size),
            src_ip: None,
        };
        match tx_state.try_send(UdpSockRef::from(&tx), &t) {
            Ok(()) => sent += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) => return Err(e),
        }
    }
    let send_time = start.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    let (received, recv_time) = receiver.join().expect("receiver");
    println!(
        "sent {sent} x {size} B in {:.3} s ({:.0}/s, GSO {segments}); received {received} in {:.3} s ({:.0}/s); loss {:.2}%",
        send_time.as_secs_f64(),
        sent as f64 / send_time.as_secs_f64(),
        recv_time.as_secs_f64(),
        received as f64 / recv_time.as_secs_f64().max(1e-9),
        100.0 * (sent - received) as f64 / sent as f64
    );
    Ok(())
}
