//! Interop with js-libp2p 3 over TCP, Noise (Yamux chosen inline in the
//! handshake, as both sides list it) and Yamux, in both directions: ping,
//! identify, perf 10 MiB each way, and many perf streams in parallel,
//! through the node script in `tests/js-peer` (its packages are pinned in
//! its `package-lock.json`; `.ci/run` installs them with `npm ci`).
//! Without Node.js or the packages the tests say "skipped" and pass, except
//! under CI (`CI` set), where that is a failure.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use common::*;
use protocols::identify::IdentifyEvent;
use protocols::perf;
use protocols::ping::{self, PingEvent};
use swarm::multiaddr::Protocol as AddrPart;
use swarm::{Multiaddr, PeerId, SwarmEvent};

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js-peer")
}

/// Why the js peer cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    let node = Command::new("node").arg("--version").output();
    if node.is_err() {
        return Some("no node on PATH".into());
    }
    if !js_dir().join("node_modules/libp2p").exists() {
        return Some("no packages: run `npm ci` in protocols/tests/js-peer".into());
    }
    None
}

/// `true` if the test should go on; prints why not otherwise (and fails
/// under CI, where the peer must be there).
fn js_peer_ready() -> bool {
    match unavailable() {
        None => true,
        Some(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "js-libp2p peer unavailable under CI: {why}"
            );
            eprintln!("skipped: {why}");
            false
        }
    }
}

/// Start the js peer with `args`; its stdout lines arrive on the channel.
fn spawn_js(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new("node")
        .arg("--import")
        .arg(js_dir().join("polyfill.mjs"))
        .arg(js_dir().join("peer.mjs"))
        .args(args)
        .current_dir(js_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Lines until one starting with `stop` (included), bounded by TIMEOUT.
fn lines_until(rx: &mpsc::Receiver<String>, stop: &str) -> Vec<String> {
    let deadline = Instant::now() + TIMEOUT;
    let mut lines = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.starts_with(stop);
                lines.push(line);
                if done {
                    return lines;
                }
            }
            Err(_) => break,
        }
    }
    panic!("the js peer never printed {stop}: {lines:#?}");
}

/// Start the js peer listening for `seconds`: the child, its lines, its
/// address (with `/p2p/`) and its PeerId.
fn js_listener(seconds: u32) -> (Child, mpsc::Receiver<String>, Multiaddr, PeerId) {
    let (child, rx) = spawn_js(&["listen", &seconds.to_string()]);
    let listen = lines_until(&rx, "LISTEN ");
    let addr: Multiaddr = listen
        .last()
        .and_then(|l| l.strip_prefix("LISTEN "))
        .expect("address")
        .parse()
        .expect("a multiaddr");
    let Some(AddrPart::P2p(js_peer)) = addr.iter().last() else {
        panic!("no /p2p/ in {addr}");
    };
    (child, rx, addr, js_peer)
}

fn tcp_listen(node: &Node) -> Multiaddr {
    node.handle
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap(), TIMEOUT)
        .expect("tcp listen")
}

#[test]
fn js_libp2p_dials_us_over_tcp_pings_and_identifies() {
    if !js_peer_ready() {
        return;
    }
    let ours = Node::start(50, |k| vec![identify(k, "ours"), fast_ping()]);
    let tcp = tcp_listen(&ours);
    let target = tcp.clone().with(AddrPart::P2p(ours.peer)).to_string();
    let (mut child, rx) = spawn_js(&["dial", &target]);
    let lines = lines_until(&rx, "DONE");
    let _ = child.wait();
    let pings = lines.iter().filter(|l| l.starts_with("PING ")).count();
    assert_eq!(pings, 3, "{lines:#?}");
    let identified = lines
        .iter()
        .find(|l| l.starts_with("IDENTIFIED "))
        .unwrap_or_else(|| panic!("js-libp2p did not identify us: {lines:#?}"));
    let fields: Vec<&str> = identified.split(' ').collect();
    assert_eq!(fields[1], ours.peer.to_string());
    assert_eq!(fields[2], "ours");
    assert!(
        fields[4..].contains(&tcp.to_string().as_str()),
        "{identified}"
    );
    // Our side pinged the js peer over the same connection.
    let js_peer: PeerId = ours.wait_for_swarm("the connection", |e| match e {
        SwarmEvent::ConnectionEstablished { peer, .. } => Some(*peer),
        _ => None,
    });
    let rtt = ours.wait_for::<PingEvent, _>("a ping of the js peer", |e| {
        (e.peer == js_peer).then(|| e.result.clone())
    });
    assert!(rtt.is_ok(), "{rtt:?}");
}

#[test]
fn we_dial_js_libp2p_over_tcp_ping_and_identify() {
    if !js_peer_ready() {
        return;
    }
    let (mut child, rx, addr, js_peer) = js_listener(20);
    let ours = Node::start(51, |k| vec![identify(k, "ours"), fast_ping()]);
    ours.dial(addr.clone());
    let rtt = ours.wait_for::<PingEvent, _>("a ping of the js peer", |e| {
        (e.peer == js_peer).then(|| e.result.clone())
    });
    assert!(rtt.is_ok(), "{rtt:?}");
    let info = ours.wait_for::<IdentifyEvent, _>("identify", |e| match e {
        IdentifyEvent::Received { peer, info, .. } if *peer == js_peer => Some(info.clone()),
        IdentifyEvent::Error { peer, error, .. } if *peer == js_peer => {
            panic!("identify failed: {error}")
        }
        _ => None,
    });
    assert!(
        info.protocols.iter().any(|p| p == ping::PROTOCOL),
        "{info:?}"
    );
    assert_eq!(info.public_key.to_peer_id(), js_peer);
    let theirs = lines_until(&rx, "IDENTIFIED ");
    assert!(
        theirs
            .last()
            .is_some_and(|l| l.contains(&ours.peer.to_string())),
        "{theirs:#?}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

const MIB: u64 = 1024 * 1024;

/// The `PERF <up> <down>` lines of the js peer, as numbers.
fn perf_lines(lines: &[String]) -> Vec<(u64, u64)> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("PERF "))
        .map(|l| {
            let (up, down) = l.split_once(' ').expect("two numbers");
            (up.parse().unwrap(), down.parse().unwrap())
        })
        .collect()
}

fn perf_server_node(seed: u8) -> (Node, String) {
    let ours = Node::start(seed, |k| {
        vec![identify(k, "ours"), Box::new(perf::PerfServer::new())]
    });
    let tcp = tcp_listen(&ours);
    let target = tcp.with(AddrPart::P2p(ours.peer)).to_string();
    (ours, target)
}

#[test]
fn js_libp2p_runs_perf_ten_mib_each_way_against_us_over_tcp() {
    if !js_peer_ready() {
        return;
    }
    let (_ours, target) = perf_server_node(52);
    let size = (10 * MIB).to_string();
    let (mut child, rx) = spawn_js(&["perf", &target, "1", &size, &size]);
    let lines = lines_until(&rx, "DONE");
    let _ = child.wait();
    assert_eq!(perf_lines(&lines), vec![(10 * MIB, 10 * MIB)], "{lines:#?}");
}

#[test]
fn js_libp2p_opens_many_parallel_perf_streams_to_us_over_tcp() {
    if !js_peer_ready() {
        return;
    }
    let (_ours, target) = perf_server_node(53);
    let (up, down) = (256 * 1024u64, 300_001u64);
    let (mut child, rx) = spawn_js(&["perf", &target, "32", &up.to_string(), &down.to_string()]);
    let lines = lines_until(&rx, "DONE");
    let _ = child.wait();
    assert_eq!(perf_lines(&lines), vec![(up, down); 32], "{lines:#?}");
}

#[test]
fn we_run_perf_against_js_libp2p_over_tcp_one_big_and_many_parallel() {
    if !js_peer_ready() {
        return;
    }
    let (mut child, _rx, addr, js_peer) = js_listener(60);
    let ours = Node::start(54, |k| vec![identify(k, "ours")]);
    ours.dial(addr);
    let report = perf::run_blocking(&ours.handle, js_peer, 10 * MIB, 10 * MIB, TIMEOUT)
        .expect("perf against js-libp2p");
    assert_eq!((report.bytes_up, report.bytes_down), (10 * MIB, 10 * MIB));
    // 16 streams at once, each on its own thread.
    let runs: Vec<_> = (0..16u64)
        .map(|i| {
            let handle = ours.handle.clone();
            std::thread::spawn(move || {
                perf::run_blocking(&handle, js_peer, 100_000 + i, 200_000 + i, TIMEOUT)
            })
        })
        .collect();
    for (i, run) in runs.into_iter().enumerate() {
        let report = run.join().unwrap().expect("parallel perf");
        let i = i as u64;
        assert_eq!(
            (report.bytes_up, report.bytes_down),
            (100_000 + i, 200_000 + i)
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
