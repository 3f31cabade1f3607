//! `pubsub` processes on loopback: a subscriber prints what a publisher
//! sends, as JSON lines.

// One copy of the process helpers serves every example crate.
#[path = "../../test-support/process.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

const PUBSUB: &str = env!("CARGO_BIN_EXE_pubsub");

#[test]
fn a_subscriber_prints_every_message_a_publisher_sends() {
    let mut subscriber = Command::new(PUBSUB)
        .args(["--topic", "news", "--duration", "20"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start subscriber");
    let stdout = subscriber.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(TIMEOUT).expect("a listening line");
    let addr = first
        .strip_prefix("Listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    let publisher = run(
        PUBSUB,
        &[
            "--topic",
            "news",
            "--peer",
            &addr,
            "--publish",
            "hello",
            "--count",
            "3",
            "--interval-ms",
            "50",
            "--duration",
            "2",
        ],
    );
    assert_eq!(publisher.code(), Some(0), "stderr: {}", publisher.stderr);
    let published: Vec<&str> = publisher
        .stdout
        .lines()
        .filter(|l| l.contains("\"published\""))
        .collect();
    assert_eq!(published.len(), 3, "{}", publisher.stdout);
    let publisher_id = publisher
        .stdout
        .lines()
        .next()
        .and_then(|l| l.rsplit("/p2p/").next())
        .unwrap()
        .to_string();
    let mut got = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while got.len() < 3 && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            got.push(line);
        }
    }
    let _ = subscriber.kill();
    let _ = subscriber.wait();
    for (n, line) in got.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        assert_eq!(v["event"], "message");
        assert_eq!(v["topic"], "news");
        assert_eq!(v["from"], publisher_id.as_str());
        assert_eq!(v["data"], format!("hello-{}", n + 1));
    }
    assert_eq!(got.len(), 3, "{got:?}");
}
