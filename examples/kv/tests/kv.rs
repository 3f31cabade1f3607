//! `kv serve`, `kv put` and `kv get` as separate processes on loopback.

// One copy of the process helpers serves every example crate.
#[path = "../../test-support/process.rs"]
mod common;

use common::*;

const KV: &str = env!("CARGO_BIN_EXE_kv");

#[test]
fn put_then_get_returns_the_value() {
    let server = start_server(KV, &["serve"]);
    let put = run(KV, &["put", &server.addr, "colour", "blue"]);
    assert_eq!(put.code(), Some(0), "stderr: {}", put.stderr);
    let get = run(KV, &["get", &server.addr, "colour"]);
    assert_eq!(get.code(), Some(0), "stderr: {}", get.stderr);
    assert_eq!(get.stdout, "blue\n");
    // A second put replaces the value; other keys are independent.
    assert_eq!(
        run(KV, &["put", &server.addr, "colour", "dark red"]).code(),
        Some(0)
    );
    assert_eq!(run(KV, &["put", &server.addr, "shape", ""]).code(), Some(0));
    assert_eq!(
        run(KV, &["get", &server.addr, "colour"]).stdout,
        "dark red\n"
    );
    assert_eq!(run(KV, &["get", &server.addr, "shape"]).stdout, "\n");
}

#[test]
fn get_of_a_missing_key_exits_1() {
    let server = start_server(KV, &["serve"]);
    let get = run(KV, &["get", &server.addr, "nothing here"]);
    assert_eq!(get.code(), Some(1));
    assert_eq!(get.stdout, "");
    assert_eq!(get.stderr.lines().count(), 1, "one line: {}", get.stderr);
}

#[test]
fn asking_a_peer_without_kv_exits_5() {
    let node = MuteNode::start();
    let get = run(KV, &["get", &node.addr, "k"]);
    assert_eq!(get.code(), Some(5));
    assert!(
        get.stderr.contains("does not support /kv/1.0.0"),
        "{}",
        get.stderr
    );
}

#[test]
fn asking_with_wrong_peer_id_exits_4() {
    let server = start_server(KV, &["serve"]);
    let stranger = swarm::PeerId::random().to_string();
    let put = run(
        KV,
        &["put", &with_peer_id(&server.addr, &stranger), "k", "v"],
    );
    assert_eq!(put.code(), Some(4));
    assert!(put.stderr.contains("wrong peer id"), "{}", put.stderr);
}

#[test]
fn asking_a_silent_port_times_out_with_exit_3() {
    let (_socket, addr) = silent_port();
    let get = run(KV, &["get", &addr, "k", "--timeout", "1"]);
    assert_eq!(get.code(), Some(3));
    assert!(
        get.took < std::time::Duration::from_secs(10),
        "{:?}",
        get.took
    );
}
