//! `datagram listen` and `datagram send` as two processes on loopback.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_datagram");

/// Kills the listener even when an assertion fails.
struct Listener(Child);

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn listen() -> (Listener, String) {
    let mut child = Command::new(BIN)
        .arg("listen")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn listener");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("listening line");
    let addr = line
        .trim()
        .strip_prefix("Listening on ")
        .expect("Listening on …")
        .to_string();
    (Listener(child), addr)
}

#[test]
fn send_reports_echoes_and_rtt_percentiles() {
    let (_listener, addr) = listen();
    let out = Command::new(BIN)
        .args(["send", &addr, "2000", "1200", "--timeout", "30"])
        .output()
        .expect("run send");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "send failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = stdout.lines().next().unwrap_or_default();
    let words: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(words[..2], ["sent", "2000"], "{first}");
    let echoed: u32 = words[3].parse().unwrap();
    // Loopback may drop a few datagrams under load, never most of them.
    assert!(echoed > 1000, "only {echoed} of 2000 echoed: {first}");
    assert!(stdout.contains("rtt us: p50"), "{stdout}");
}

#[test]
fn oversized_packets_fail_with_the_maximum() {
    let (_listener, addr) = listen();
    let out = Command::new(BIN)
        .args(["send", &addr, "1", "5000", "--timeout", "30"])
        .output()
        .expect("run send");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("too large"), "{stderr}");
    assert!(stderr.contains("maximum is"), "{stderr}");
}

#[test]
fn wrong_peer_id_fails() {
    let (_listener, addr) = listen();
    let (base, _) = addr.rsplit_once("/p2p/").unwrap();
    let wrong = format!("{base}/p2p/12D3KooWAPWNDpCV2h4LSsnzKJt78qHwCJxsJooEnJsy9a1RMjvi");
    let out = Command::new(BIN)
        .args(["send", &wrong, "1", "100", "--timeout", "20"])
        .output()
        .expect("run send");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wrong peer id"), "{stderr}");
}
