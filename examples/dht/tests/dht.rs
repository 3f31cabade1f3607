//! `dht serve` nodes and one-shot `dht` queries as separate processes on
//! loopback: a record put through one node is found through another,
//! providers announced by servers are found, a peer's address is found by
//! its id, and the exit codes say found / not found / bad usage.

// One copy of the process helpers serves every example crate.
#[path = "../../test-support/process.rs"]
mod common;

use common::*;

const DHT: &str = env!("CARGO_BIN_EXE_dht");

/// A bootstrap server and three more that join through it, two of which
/// provide "film".
fn network() -> Vec<Server> {
    let first = start_server(DHT, &["serve"]);
    let boot = first.addr.clone();
    let mut servers = vec![first];
    servers.push(start_server(
        DHT,
        &["serve", "--bootstrap", &boot, "--provide", "film"],
    ));
    servers.push(start_server(
        DHT,
        &["serve", "--bootstrap", &boot, "--provide", "film"],
    ));
    servers.push(start_server(DHT, &["serve", "--bootstrap", &boot]));
    servers
}

fn peer_id(addr: &str) -> &str {
    addr.rsplit("/p2p/").next().unwrap()
}

#[test]
fn put_get_providers_find_peer_and_closest_across_processes() {
    let servers = network();
    let (boot, other) = (&servers[0].addr, &servers[3].addr);
    let put = run(DHT, &["put", "--bootstrap", boot, "colour", "blue"]);
    assert_eq!(put.code(), Some(0), "stderr: {}", put.stderr);
    // Found through another node than the one it was put through.
    let get = run(DHT, &["get", "--bootstrap", other, "colour"]);
    assert_eq!(get.code(), Some(0), "stderr: {}", get.stderr);
    assert_eq!(get.stdout, "blue\n");

    // The two providers announce while joining; ask until both are seen
    // (bounded: a few attempts).
    let wanted = [peer_id(&servers[1].addr), peer_id(&servers[2].addr)];
    let mut providers = String::new();
    for _ in 0..10 {
        let out = run(DHT, &["providers", "--bootstrap", boot, "film"]);
        providers = out.stdout;
        if wanted.iter().all(|p| providers.contains(p)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    for p in wanted {
        assert!(providers.lines().any(|l| l == p), "{p} not in {providers}");
    }

    let target = &servers[2].addr;
    let found = run(DHT, &["find-peer", "--bootstrap", boot, peer_id(target)]);
    assert_eq!(found.code(), Some(0), "stderr: {}", found.stderr);
    let port_part = target.split("/p2p/").next().unwrap();
    assert!(
        found.stdout.lines().any(|l| l == port_part),
        "{port_part} not in {}",
        found.stdout
    );

    let closest = run(DHT, &["closest", "--bootstrap", boot, "some key"]);
    assert_eq!(closest.code(), Some(0), "stderr: {}", closest.stderr);
    // Every server answers (the querying client is never in the list).
    let lines: Vec<&str> = closest.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", closest.stdout);
    for s in &servers {
        assert!(lines.contains(&peer_id(&s.addr)), "{}", closest.stdout);
    }
}

#[test]
fn not_found_exits_1_and_bad_usage_exits_2() {
    let servers = network();
    let boot = &servers[0].addr;
    let get = run(DHT, &["get", "--bootstrap", boot, "no such key"]);
    assert_eq!(get.code(), Some(1), "stderr: {}", get.stderr);
    assert_eq!(get.stdout, "");
    assert_eq!(get.stderr.lines().count(), 1, "one line: {}", get.stderr);
    let providers = run(DHT, &["providers", "--bootstrap", boot, "nothing"]);
    assert_eq!(providers.code(), Some(1), "stderr: {}", providers.stderr);
    let stranger = swarm::PeerId::random().to_string();
    let find = run(DHT, &["find-peer", "--bootstrap", boot, &stranger]);
    assert_eq!(find.code(), Some(1), "stderr: {}", find.stderr);
    let no_id = boot.split("/p2p/").next().unwrap();
    let bad = run(DHT, &["get", "--bootstrap", no_id, "colour"]);
    assert_eq!(bad.code(), Some(2), "stderr: {}", bad.stderr);
    assert!(bad.stderr.contains("/p2p/"), "{}", bad.stderr);
}
