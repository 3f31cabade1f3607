//! `netsim`'s command line: the ping scenario runs, prints a summary with
//! the figures the issue names, and the same seed gives the same trace hash
//! while another seed gives another.

use std::process::Command;

/// Run `netsim` with `args`; its last line, the summary, as JSON.
fn summary(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_netsim"))
        .args(args)
        .output()
        .expect("netsim runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout.lines().last().expect("a summary line");
    serde_json::from_str(last).expect("JSON")
}

fn run(seed: u64) -> serde_json::Value {
    let seed = seed.to_string();
    summary(&[
        "ping", "--nodes", "12", "--conns", "3", "--pings", "3", "--loss", "0.02", "--seed", &seed,
    ])
}

#[test]
fn ping_scenario_reports_its_figures_and_replays_by_seed() {
    let a = run(5);
    assert_eq!(a["event"], "summary");
    assert_eq!(a["scenario"], "ping");
    assert_eq!(a["finished"], true, "{a}");
    assert_eq!(a["dials"], 36);
    assert_eq!(a["connections_made"], 36, "{a}");
    assert_eq!(a["handshakes_failed"], 0);
    // 36 connections, 3 pings each way; failed pings still count as done.
    let pings = a["pings"].as_u64().unwrap() + a["pings_failed"].as_u64().unwrap();
    assert!(pings >= 216, "{a}");
    let p50 = a["rtt_p50_ms"].as_f64().unwrap();
    let p99 = a["rtt_p99_ms"].as_f64().unwrap();
    // 20 ms + [0, 5 ms) each way.
    assert!((40.0..=50.0).contains(&p50) && p50 <= p99, "{a}");
    assert!(a["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert_eq!(a["replayable"], true, "nothing was handed to a thread");
    assert_eq!(
        run(5)["trace_hash"],
        a["trace_hash"],
        "same seed, other trace"
    );
    assert_ne!(
        run(6)["trace_hash"],
        a["trace_hash"],
        "other seed, same trace"
    );
}

#[test]
fn churn_scenario_leaves_no_connection_to_departed_nodes() {
    let s = summary(&[
        "churn",
        "--nodes",
        "20",
        "--conns",
        "3",
        "--duration-s",
        "20",
    ]);
    assert_eq!(s["scenario"], "churn");
    assert_eq!(s["joins"], 20, "{s}");
    assert_eq!(s["leaves"], 20, "{s}");
    assert_eq!(s["failed_dials"], 0, "{s}");
    assert_eq!(s["leaked_connections"], 0, "{s}");
    assert!(s["pings"].as_u64().unwrap() > 0, "{s}");
}

#[test]
fn ping_scenario_runs_on_ipv6_addresses() {
    let a = summary(&[
        "ping", "--nodes", "8", "--conns", "2", "--pings", "2", "--ipv6",
    ]);
    assert_eq!(a["finished"], true, "{a}");
    assert_eq!(a["connections_made"], 16, "{a}");
    assert_eq!(a["handshakes_failed"], 0, "{a}");
    // Other addresses, other events: the trace differs from the IPv4 run.
    let v4 = summary(&["ping", "--nodes", "8", "--conns", "2", "--pings", "2"]);
    assert_ne!(a["trace_hash"], v4["trace_hash"], "{a}");
}

fn kad(seed: &str) -> serde_json::Value {
    kad_with(seed, "20", &[])
}

fn kad_with(seed: &str, nodes: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "kad",
        "--nodes",
        nodes,
        "--k",
        "4",
        "--seeds",
        "2",
        "--puts",
        "5",
        "--lookups",
        "20",
        "--gets",
        "20",
        "--query-rate",
        "50",
        "--seed",
        seed,
    ];
    args.extend_from_slice(extra);
    summary(&args)
}

/// 20 nodes with k = 4 (so records live on a few nodes and gets go over
/// the network), two of them leaving during the queries: every lookup of
/// a live peer and every get finds what it looks for, and the run replays.
#[test]
fn kad_scenario_finds_live_peers_and_records_while_nodes_leave() {
    let a = kad("3");
    assert_eq!(a["scenario"], "kad");
    assert_eq!(a["left"], 2, "{a}");
    assert_eq!(a["bootstrap_success_rate"], 1.0, "{a}");
    assert_eq!(a["put_success_rate"], 1.0, "{a}");
    assert_eq!(a["lookup_success_rate"], 1.0, "{a}");
    assert_eq!(a["get_success_rate"], 1.0, "{a}");
    let counted = a["lookups"].as_u64().unwrap() + a["gets"].as_u64().unwrap();
    let abandoned = a["abandoned_queries"].as_u64().unwrap();
    assert_eq!(counted + abandoned, 40, "{a}");
    // One request over a fresh connection: at least one round trip
    // (2 x 20 ms) and at most a few.
    let p50 = a["lookup_p50_ms"].as_f64().unwrap();
    assert!((40.0..500.0).contains(&p50), "{a}");
    // Hops: at least the one request to a peer that answered; in a network
    // this small, a handful at most.
    for key in [
        "lookup_hops_p50",
        "lookup_hops_p99",
        "get_hops_p50",
        "get_hops_p99",
    ] {
        let hops = a[key].as_u64().unwrap_or(0);
        assert!((1..=6).contains(&hops), "{key}: {a}");
    }
    assert_eq!(
        kad("3")["trace_hash"],
        a["trace_hash"],
        "same seed, other trace"
    );
}

/// The kad scenario in lookahead windows on two threads, without the
/// refresh wave: everything is found as in the sequential run, and the run
/// is the same as on one thread (the thread count changes nothing).
#[test]
fn kad_scenario_on_two_threads_replays_the_one_thread_run() {
    let two = kad_with("4", "40", &["--threads", "2", "--no-refresh"]);
    for key in [
        "bootstrap_success_rate",
        "put_success_rate",
        "lookup_success_rate",
        "get_success_rate",
    ] {
        assert_eq!(two[key], 1.0, "{key}: {two}");
    }
    // Half the bootstraps of a run with the refresh wave: one per node
    // that joined.
    assert_eq!(two["bootstraps"], 38, "{two}");
    let one = kad_with("4", "40", &["--threads", "1", "--no-refresh"]);
    assert_eq!(one["trace_hash"], two["trace_hash"], "{one}\n{two}");
    assert_eq!(
        one["connections_established"], two["connections_established"],
        "{one}\n{two}"
    );
}

fn gossipsub(extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "gossipsub",
        "--nodes",
        "30",
        "--conns",
        "3",
        "--publishers",
        "3",
        "--messages",
        "5",
        "--loss",
        "0.01",
        "--unsigned",
        "--seed",
        "7",
    ];
    args.extend_from_slice(extra);
    summary(&args)
}

/// 30 nodes, 1 % loss: every message reaches every node but its publisher,
/// within a few hops' latency, never twice to the application; IDONTWANT
/// goes out for 2 KiB messages unless turned off; the run replays.
#[test]
fn gossipsub_scenario_delivers_every_message_under_loss_and_replays() {
    let a = gossipsub(&[]);
    assert_eq!(a["scenario"], "gossipsub");
    assert_eq!(a["finished"], true, "{a}");
    assert_eq!(a["published"], 15, "{a}");
    assert_eq!(a["publish_failed"], 0, "{a}");
    assert_eq!(a["delivery_rate"], 1.0, "{a}");
    assert_eq!(a["deliveries"], 15 * 29, "{a}");
    assert_eq!(a["repeated_deliveries"], 0, "{a}");
    // At least one hop (20 ms), well under a heartbeat's gossip round.
    let p50 = a["latency_p50_ms"].as_f64().unwrap();
    let p99 = a["latency_p99_ms"].as_f64().unwrap();
    assert!(20.0 <= p50 && p50 <= p99 && p99 < 1000.0, "{a}");
    assert!(a["mesh_min"].as_u64().unwrap() >= 1, "{a}");
    assert!(a["idontwant_sent"].as_u64().unwrap() > 0, "{a}");
    let off = gossipsub(&["--no-idontwant"]);
    assert_eq!(off["delivery_rate"], 1.0, "{off}");
    assert_eq!(off["idontwant_sent"], 0, "{off}");
    assert_eq!(
        gossipsub(&[])["trace_hash"],
        a["trace_hash"],
        "same seed, other trace"
    );
}
