//! `holepunch relay`, `listen` and `dial` as separate processes on
//! loopback: the listener's relayed address comes from its reservation,
//! the dialer reaches it through the relay, reports the relayed and then
//! the direct connection with its RTT, and pings over it; the exit codes
//! say done / bad usage / failure. Loopback has no NAT: the punch always
//! works here; NATs need the network-namespace testbed.

#[path = "../../test-support/process.rs"]
mod common;

use common::*;
use serde_json::Value;

const HOLEPUNCH: &str = env!("CARGO_BIN_EXE_holepunch");
const LOOPBACK: &str = "/ip4/127.0.0.1/udp/0/quic-v1";
const LOOPBACK_TCP: &str = "/ip4/127.0.0.1/tcp/0";

fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn a_peer_reached_through_the_relay_is_then_reached_directly() {
    reached_directly(LOOPBACK, "/quic-v1");
}

/// Over TCP the peers dial from their listen ports, so the relay observes
/// those (identify) and each can dial the other's.
#[test]
fn a_peer_reached_through_the_relay_over_tcp_is_then_reached_directly_over_tcp() {
    reached_directly(LOOPBACK_TCP, "/tcp/");
}

fn reached_directly(listen: &str, transport: &str) {
    let relay = start_server(HOLEPUNCH, &["relay", "--listen", listen]);
    let listener = start_server(
        HOLEPUNCH,
        &["listen", "--relay", &relay.addr, "--listen", listen],
    );
    assert!(
        listener.addr.contains("/p2p-circuit/p2p/"),
        "{}",
        listener.addr
    );
    let (_, peer) = listener.addr.rsplit_once("/p2p/").expect("peer id");
    let out = run(
        HOLEPUNCH,
        &[
            "dial",
            "--relay",
            &relay.addr,
            peer,
            "--listen",
            listen,
            "--pings",
            "2",
        ],
    );
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    let events = events(&out.stdout);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        kinds,
        ["relayed", "direct", "ping", "ping"],
        "{}",
        out.stdout
    );
    assert!(
        events[0]["addr"]
            .as_str()
            .unwrap()
            .contains("/p2p-circuit/"),
        "{}",
        out.stdout
    );
    let direct = events[1]["addr"].as_str().unwrap();
    assert!(
        direct.contains(transport) && !direct.contains("p2p-circuit"),
        "{}",
        out.stdout
    );
    assert!(events[1]["rtt_ms"].as_f64().is_some_and(|r| r > 0.0));
}

#[test]
fn a_dial_to_a_peer_without_reservation_fails_with_a_reason() {
    let relay = start_server(HOLEPUNCH, &["relay", "--listen", LOOPBACK]);
    let nobody = "12D3KooWGRh8u1hBgWeRtYy4QWdhbsLbHqB9AR9zLcMAw1nRMf2x";
    let out = run(
        HOLEPUNCH,
        &["dial", "--relay", &relay.addr, nobody, "--listen", LOOPBACK],
    );
    assert_eq!(out.code(), Some(3), "{}", out.stderr);
    assert!(out.stderr.contains("NoReservation"), "{}", out.stderr);
}

#[test]
fn a_relay_address_without_a_peer_id_is_bad_usage() {
    let out = run(
        HOLEPUNCH,
        &["listen", "--relay", "/ip4/127.0.0.1/udp/1/quic-v1"],
    );
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("/p2p/"), "{}", out.stderr);
}
