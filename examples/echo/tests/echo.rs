//! `echo listen` and `echo dial` as two processes on loopback: the text
//! comes back, and each failure has its exit code and one line on stderr.

// One copy of the process helpers serves every example crate.
#[path = "../../test-support/process.rs"]
mod common;

use common::*;

const ECHO: &str = env!("CARGO_BIN_EXE_echo");

#[test]
fn dial_prints_exactly_the_text_it_sent() {
    let server = start_server(ECHO, &["listen"]);
    for text in ["hello", "spaces,  tabs\tand ünïcödé ✓", ""] {
        let out = run(ECHO, &["dial", &server.addr, text]);
        assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
        assert_eq!(out.stdout, format!("{text}\n"));
    }
}

#[test]
fn a_long_text_comes_back_whole() {
    let server = start_server(ECHO, &["listen"]);
    // Long enough for several QUIC packets; command lines cap one argument
    // at 128 KiB.
    let text: String = (0..100_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let out = run(ECHO, &["dial", &server.addr, &text]);
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(out.stdout == format!("{text}\n"), "the echo differs");
}

#[test]
fn dial_with_wrong_peer_id_exits_4() {
    let server = start_server(ECHO, &["listen"]);
    let stranger = swarm::PeerId::random().to_string();
    let out = run(ECHO, &["dial", &with_peer_id(&server.addr, &stranger), "x"]);
    assert_eq!(out.code(), Some(4));
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
    assert!(out.stderr.contains("wrong peer id"), "{}", out.stderr);
}

#[test]
fn dial_to_a_peer_without_echo_exits_5() {
    let node = MuteNode::start();
    let out = run(ECHO, &["dial", &node.addr, "x"]);
    assert_eq!(out.code(), Some(5));
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
    assert!(out.stderr.contains("does not support /echo/1.0.0"));
}

#[test]
fn dial_to_a_silent_port_times_out_with_exit_3() {
    let (_socket, addr) = silent_port();
    let out = run(ECHO, &["dial", &addr, "x", "--timeout", "1"]);
    assert_eq!(out.code(), Some(3));
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
    assert!(
        out.took < std::time::Duration::from_secs(10),
        "{:?}",
        out.took
    );
}

#[test]
fn a_bad_address_exits_2() {
    // TCP is dialable now; WebSocket is not.
    let out = run(ECHO, &["dial", "/ip4/127.0.0.1/tcp/1/ws", "x"]);
    assert_eq!(out.code(), Some(2));
    let out = run(ECHO, &["dial", "not-an-address", "x"]);
    assert_eq!(out.code(), Some(2));
}
