//! The slow-reader memory bound: a client that reads at a throttled rate
//! fetches a file much larger than every window and buffer on the way, and
//! the server's memory stays flat.
//!
//! The server runs in this test's process (its own test binary, so no other
//! test's allocations blur the figure): the test asks its swarm how many
//! bytes it holds for the transfer thread, and reads this process's
//! `VmRSS`/`VmHWM` from `/proc/self/status`. The client is the
//! `file-transfer get --limit-rate` binary, in a process of its own.
//! Run with `--nocapture` to see the figures.

// One copy of the process helpers serves every example crate.
#[path = "../../test-support/process.rs"]
mod common;
mod files;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use file_transfer::FileServer;
use files::*;
use swarm::{Limits, Runtime, SwarmConfig};

const BIN: &str = env!("CARGO_BIN_EXE_file-transfer");

/// The file: four times the sum of the windows on the path (10 MB stream
/// window at the client, 15 MB send window at the server).
const FILE_LEN: u64 = 64 << 20;
/// The client's reading rate: the transfer takes at least 4 s.
const RATE: u64 = 16 << 20;
/// What the server may add to its resident memory while it sends: QUIC's
/// send buffer (at most the 15 MB send window), the thread's bounded
/// buffer and copy buffer, and allocator slack. Holding the file would
/// take 64 MiB.
const MAX_GROWTH_KIB: u64 = 40 << 10;

#[test]
fn a_slow_reader_keeps_the_servers_memory_bounded() {
    // 1. The file, written in 1 MiB pieces.
    let served = TempDir::new("ft-slow-served");
    let received = TempDir::new("ft-slow-received");
    let expected = write_random_file(&served.path().join("big.bin"), FILE_LEN, 7);
    // 2. The server, in this process.
    let mut runtime = Runtime::new(SwarmConfig::new(swarm::identity::generate_keypair())).unwrap();
    runtime.add_protocol(Box::new(FileServer::new(served.path()).unwrap()));
    let addr = runtime
        .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
        .unwrap();
    let addr = format!("{addr}/p2p/{}", runtime.swarm().local_peer_id());
    let (handle, thread) = runtime.spawn().unwrap();
    let baseline_kib = proc_status_kib("self", "VmRSS").expect("/proc/self/status");
    // 3. The slow client, in its own process (killed if the test fails).
    let out = received.path().join("big.bin");
    let started = Instant::now();
    let mut client = KillOnDrop(
        Command::new(BIN)
            .args(["get", &addr, "big.bin", out.to_str().unwrap()])
            .args(["--limit-rate", &RATE.to_string(), "--timeout", "30"])
            .stdin(Stdio::null())
            .spawn()
            .expect("start client"),
    );
    let client_pid = client.0.id().to_string();
    // 4. While it reads, sample what the server's swarm buffers for the
    //    transfer thread, and the client's peak memory.
    let mut peak_buffered = 0;
    let mut client_hwm_kib = 0;
    let status = loop {
        if let Some(status) = client.0.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < TIMEOUT, "the transfer took too long");
        let buffered = handle
            .call(TIMEOUT, |swarm| swarm.threaded_buffered_bytes())
            .expect("swarm answers");
        peak_buffered = peak_buffered.max(buffered);
        if let Some(kib) = proc_status_kib(&client_pid, "VmHWM") {
            client_hwm_kib = client_hwm_kib.max(kib);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    let server_hwm_kib = proc_status_kib("self", "VmHWM").unwrap();
    let _ = handle.shutdown(0);
    let _ = thread.join();
    eprintln!(
        "slow reader: {} MiB at {} MiB/s took {took:.1?}; server: RSS before {} KiB, \
         peak (VmHWM) {} KiB, growth {} KiB, threaded buffer peak {} bytes; \
         client peak (VmHWM) {} KiB",
        FILE_LEN >> 20,
        RATE >> 20,
        baseline_kib,
        server_hwm_kib,
        server_hwm_kib.saturating_sub(baseline_kib),
        peak_buffered,
        client_hwm_kib,
    );
    // 5. The file arrived whole, at the throttled pace...
    assert!(status.success(), "client failed: {status}");
    assert_eq!(sha256_file(&out), expected, "SHA-256 differs");
    let min_time = Duration::from_secs_f64(FILE_LEN as f64 / RATE as f64 * 0.9);
    assert!(took >= min_time, "not throttled: {took:?}");
    // 6. ...while the server held no more than its bounds.
    let limit = Limits::default().threaded_stream_buffer;
    assert!(
        peak_buffered > 0,
        "nothing was buffered: the test proves nothing"
    );
    assert!(
        peak_buffered <= limit,
        "the swarm buffered {peak_buffered} bytes for the thread; the bound is {limit}"
    );
    assert!(
        server_hwm_kib.saturating_sub(baseline_kib) < MAX_GROWTH_KIB,
        "the server grew by {} KiB while sending {} MiB",
        server_hwm_kib.saturating_sub(baseline_kib),
        FILE_LEN >> 20
    );
}

/// A child process killed when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
