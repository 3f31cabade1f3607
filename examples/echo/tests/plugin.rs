//! The echo plugin under back-pressure, in one process: far more data than
//! every window on the path, so the plugin must keep what a full window did
//! not take, pause reading, and go on when the stream is writable again.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use echo::{Echo, PROTOCOL};
use swarm::{Runtime, SwarmConfig, identity};

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn echoes_32_mib_byte_for_byte_under_back_pressure() {
    // The listener, with the plugin.
    let mut listener = Runtime::new(SwarmConfig::new(identity::generate_keypair())).unwrap();
    listener.add_protocol(Box::new(Echo));
    let addr = listener
        .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
        .unwrap();
    let (listener, listener_thread) = listener.spawn().unwrap();
    // The dialer, with the stream on this thread.
    let dialer = Runtime::new(SwarmConfig::new(identity::generate_keypair())).unwrap();
    let (dialer, dialer_thread) = dialer.spawn().unwrap();
    let conn = dialer.dial(&addr, false, TIMEOUT).unwrap();
    let mut stream = dialer.open_stream(conn, PROTOCOL, TIMEOUT).unwrap();
    // Write and read in turns, never waiting long for either, so this side
    // always takes what comes back: more is in flight than the windows
    // hold, and only the plugin's back-pressure keeps the flow going.
    const LEN: usize = 32 << 20;
    let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    let mut got = Vec::with_capacity(LEN);
    let mut buf = vec![0u8; 64 << 10];
    let mut sent = 0;
    let mut last_progress = Instant::now();
    stream.set_timeout(Some(Duration::from_millis(1)));
    loop {
        assert!(
            last_progress.elapsed() < TIMEOUT,
            "stalled at {sent} sent, {} echoed",
            got.len()
        );
        if sent < LEN {
            match stream.write(&data[sent..(sent + (64 << 10)).min(LEN)]) {
                Ok(n) => {
                    sent += n;
                    last_progress = Instant::now();
                    if sent == LEN {
                        // The plugin finishes after the last echoed byte.
                        stream.finish().unwrap();
                    }
                }
                Err(e) if e.kind() == ErrorKind::TimedOut => {}
                Err(e) => panic!("write: {e}"),
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                last_progress = Instant::now();
            }
            Err(e) if e.kind() == ErrorKind::TimedOut => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    assert_eq!(got.len(), LEN);
    assert!(got == data, "the echo differs");
    drop(stream);
    for (handle, thread) in [(dialer, dialer_thread), (listener, listener_thread)] {
        let _ = handle.shutdown(0);
        let _ = thread.join();
    }
}
