//! `bandwidth_perf` as a user runs it: a server and a client process on
//! loopback, configured by environment variables or rust-libp2p perf's
//! flags. Exact byte counts, exit codes and messages; no timing asserted.

use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use swarm::identity;

const BIN: &str = env!("CARGO_BIN_EXE_bandwidth_perf");
/// A bound on every wait, against a hung process (not a speed check).
const TIMEOUT: Duration = Duration::from_secs(120);
const MIB: u64 = 1024 * 1024;

/// Every variable the program reads, cleared so the caller's environment
/// cannot leak into a test.
const VARS: &[&str] = &[
    "PORT",
    "LISTEN_IP",
    "SECRET_KEY",
    "RESPONDER_KEY",
    "RESPONDER_KEY_HEX",
    "RESPONDER_IP",
    "RESPONDER_PORT",
    "BYTE_SIZE",
    "UPLOAD_SIZE",
    "PROTOCOL",
    "STREAMS",
    "MODE",
    "ITERATIONS",
    "RUST_LOG",
];

/// A UDP port that was free a moment ago.
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind a UDP socket")
        .port()
}

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for var in VARS {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// A running server; killed when dropped.
struct Server {
    child: Child,
    port: u16,
    /// The `bafzaa…` and `12D3Koo…` forms it printed.
    cid: String,
    peer: String,
    /// Everything it printed before it was ready.
    banner: Vec<String>,
}

impl Server {
    /// `bandwidth_perf server` on 127.0.0.1 and a free port.
    fn start(env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let port_text = port.to_string();
        let mut env = env.to_vec();
        env.extend([("PORT", port_text.as_str()), ("LISTEN_IP", "127.0.0.1")]);
        Self::spawn(command(&["server"], &env), port)
    }

    /// Spawn `cmd` and read its banner up to the first `Listening on` line.
    fn spawn(mut cmd: Command, port: u16) -> Server {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        // Read stderr to its end on a thread, so the server never blocks on it.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut banner = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("server never said it listens: {banner:#?}"));
            let ready = line.starts_with("Listening on ");
            banner.push(line);
            if ready {
                break;
            }
        }
        let ids: Vec<String> = banner
            .iter()
            .filter_map(|l| l.strip_prefix("Responder peer id: "))
            .map(str::to_string)
            .collect();
        assert_eq!(ids.len(), 2, "two peer id lines expected: {banner:#?}");
        Server {
            child,
            port,
            cid: ids[0].clone(),
            peer: ids[1].clone(),
            banner,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a finished process printed.
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Run to completion (killed after [`TIMEOUT`]).
fn run(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the process");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process hung: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn client(server: &Server, env: &[(&str, &str)]) -> Output {
    let port = server.port.to_string();
    let mut env = env.to_vec();
    env.push(("RESPONDER_PORT", &port));
    run(command(&["client"], &env))
}

/// The JSON lines of a successful client run: every line parses, the last
/// is the final one; returns (intermediary lines, final line).
fn json_lines(out: &Output) -> (Vec<Value>, Value) {
    assert!(
        out.status.success(),
        "client failed: {}\n{}",
        out.status,
        out.stderr
    );
    let mut lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}")))
        .collect();
    let last = lines.pop().expect("at least the final line");
    assert_eq!(last["type"], "final", "{last}");
    for line in &lines {
        assert_eq!(line["type"], "intermediary", "{line}");
        for field in ["timeSeconds", "uploadBytes", "downloadBytes"] {
            assert!(line[field].is_number(), "{field} missing in {line}");
        }
    }
    assert!(last["timeSeconds"].as_f64().unwrap() > 0.0, "{last}");
    (lines, last)
}

fn assert_totals(out: &Output, up: u64, down: u64) {
    let (intermediary, last) = json_lines(out);
    assert_eq!(last["uploadBytes"].as_u64(), Some(up), "{last}");
    assert_eq!(last["downloadBytes"].as_u64(), Some(down), "{last}");
    // Progress lines count each interval once: never more than the total.
    let sum = |f: &str| -> u64 { intermediary.iter().map(|l| l[f].as_u64().unwrap()).sum() };
    assert!(sum("uploadBytes") <= up && sum("downloadBytes") <= down);
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("Transfer took ") && l.ends_with(" nanoseconds")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("Speed ") && l.ends_with(" MiB/s")),
        "{}",
        out.stderr
    );
}

/// The one-line reason a failed run gave.
fn error_line(out: &Output) -> &str {
    assert!(!out.status.success(), "expected failure:\n{}", out.stderr);
    let line = out.stderr.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("bandwidth_perf: error: "),
        "{}",
        out.stderr
    );
    line
}

#[test]
fn server_prints_its_ids_in_both_forms_and_its_listen_address() {
    let key = identity::keypair_from_seed([42; 32]);
    let secret = identity::format_zig_secret(&key).unwrap();
    let peer = key.public().to_peer_id();
    let server = Server::start(&[("SECRET_KEY", &secret)]);
    assert_eq!(server.cid, identity::peer_id_to_cid(&peer));
    assert!(server.cid.starts_with("bafzaa"), "{}", server.cid);
    assert_eq!(server.peer, peer.to_string());
    let listening = server.banner.last().unwrap();
    assert_eq!(
        listening,
        &format!(
            "Listening on /ip4/127.0.0.1/udp/{}/quic-v1/p2p/{peer}",
            server.port
        )
    );
    assert!(
        !server.banner.iter().any(|l| l.contains(&secret)),
        "a given secret must not be printed"
    );
}

#[test]
fn server_without_a_key_prints_a_reusable_secret() {
    let server = Server::start(&[]);
    let secret = server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("Secret key: "))
        .expect("the generated secret is printed");
    let key = identity::parse_zig_secret(secret).expect("printed in the Zig format");
    assert_eq!(key.public().to_peer_id().to_string(), server.peer);
}

#[test]
fn perf_between_two_processes_counts_exactly() {
    let server = Server::start(&[]);
    let out = client(
        &server,
        &[
            ("RESPONDER_KEY", &server.cid),
            ("BYTE_SIZE", "10MiB"),
            ("UPLOAD_SIZE", "0x300000"),
        ],
    );
    assert_totals(&out, 3 * MIB, 10 * MIB);
    // Several streams, the key in its base58 form, sizes in decimal.
    let out = client(
        &server,
        &[
            ("RESPONDER_KEY", &server.peer),
            ("BYTE_SIZE", "1000001"),
            ("UPLOAD_SIZE", "999"),
            ("STREAMS", "3"),
        ],
    );
    assert_totals(&out, 999, 1_000_001);
    // Over TCP (Noise, Yamux) on the same port number.
    let out = client(
        &server,
        &[
            ("RESPONDER_KEY", &server.peer),
            ("TRANSPORT", "tcp"),
            ("BYTE_SIZE", "10MiB"),
            ("UPLOAD_SIZE", "3MiB"),
            ("STREAMS", "2"),
        ],
    );
    assert_totals(&out, 3 * MIB, 10 * MIB);
}

#[test]
fn test_data_between_two_processes_counts_exactly() {
    let server = Server::start(&[]);
    let out = client(
        &server,
        &[
            ("RESPONDER_KEY", &server.peer),
            ("PROTOCOL", "test-data"),
            ("BYTE_SIZE", "0x500000"),
        ],
    );
    assert_totals(&out, 0, 5 * MIB);
    let out = client(
        &server,
        &[
            ("RESPONDER_KEY", &server.cid),
            ("PROTOCOL", "test-data"),
            ("BYTE_SIZE", "3 MiB"),
            ("STREAMS", "4"),
        ],
    );
    assert_totals(&out, 0, 3 * MIB);
}

#[test]
fn responder_key_hex_and_no_key_both_work() {
    let key = identity::keypair_from_seed([43; 32]);
    let secret = identity::format_zig_secret(&key).unwrap();
    let server = Server::start(&[("SECRET_KEY", &secret)]);
    let hex: String = key
        .public()
        .try_into_ed25519()
        .unwrap()
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let out = client(
        &server,
        &[("RESPONDER_KEY_HEX", &hex), ("BYTE_SIZE", "1KiB")],
    );
    assert_totals(&out, 0, 1024);
    // No key: accepted, with the id seen and a warning.
    let out = client(&server, &[("BYTE_SIZE", "1")]);
    assert_totals(&out, 0, 1);
    assert!(
        out.stderr.contains("Warning") && out.stderr.contains(&server.peer),
        "{}",
        out.stderr
    );
}

#[test]
fn wrong_responder_key_exits_non_zero_with_the_reason() {
    let server = Server::start(&[]);
    let other = identity::keypair_from_seed([44; 32]).public().to_peer_id();
    let out = client(&server, &[("RESPONDER_KEY", &other.to_string())]);
    let line = error_line(&out);
    assert!(line.contains("peer id mismatch"), "{line}");
    assert!(
        line.contains(&other.to_string()) && line.contains(&server.peer),
        "{line}"
    );
    assert!(
        out.stdout.is_empty(),
        "no JSON for a failed run: {}",
        out.stdout
    );
}

#[test]
fn rust_libp2p_perf_flags_work() {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let server = Server::spawn(
        command(&["--run-server", "--server-address", &address], &[]),
        port,
    );
    let out = run(command(
        &[
            "--server-address",
            &address,
            "--transport",
            "quic-v1",
            "--upload-bytes",
            "1234567",
            "--download-bytes",
            "7654321",
        ],
        &[],
    ));
    assert_totals(&out, 1_234_567, 7_654_321);
    // The same server over TCP (Noise, Yamux), on the same port number.
    let out = run(command(
        &[
            "--server-address",
            &address,
            "--transport",
            "tcp",
            "--upload-bytes",
            "2345678",
            "--download-bytes",
            "8765432",
        ],
        &[],
    ));
    assert_totals(&out, 2_345_678, 8_765_432);
    // Nothing else is spoken.
    let out = run(command(
        &["--server-address", &address, "--transport", "ws"],
        &[],
    ));
    assert!(
        error_line(&out).contains("unknown transport"),
        "{}",
        out.stderr
    );
    drop(server);
}

#[test]
fn bad_environment_values_give_clear_errors() {
    for (args, var, value, words) in [
        (
            ["client"],
            "BYTE_SIZE",
            "12XB",
            "bad BYTE_SIZE=\"12XB\": unknown unit",
        ),
        (
            ["client"],
            "UPLOAD_SIZE",
            "-1",
            "bad UPLOAD_SIZE=\"-1\": not a size",
        ),
        (
            ["client"],
            "RESPONDER_KEY",
            "12D3KooWbogus",
            "bad RESPONDER_KEY=",
        ),
        (
            ["client"],
            "RESPONDER_KEY_HEX",
            "abc",
            "bad RESPONDER_KEY_HEX=",
        ),
        (
            ["client"],
            "RESPONDER_PORT",
            "70000",
            "bad RESPONDER_PORT=\"70000\"",
        ),
        (
            ["client"],
            "RESPONDER_IP",
            "nowhere",
            "bad RESPONDER_IP=\"nowhere\"",
        ),
        (["client"], "PROTOCOL", "http", "bad PROTOCOL=\"http\""),
        (["client"], "STREAMS", "0", "bad STREAMS=\"0\""),
        (["server"], "PORT", "port", "bad PORT=\"port\""),
        (["server"], "LISTEN_IP", "1.2.3", "bad LISTEN_IP=\"1.2.3\""),
        (
            ["server"],
            "SECRET_KEY",
            "bsecretbutbroken",
            "bad SECRET_KEY: ",
        ),
    ] {
        let out = run(command(&args, &[(var, value)]));
        let line = error_line(&out);
        assert!(line.contains(words), "{var}={value}: {line}");
        if var == "SECRET_KEY" {
            assert!(
                !out.stderr.contains(value),
                "the secret leaked: {}",
                out.stderr
            );
        }
    }
}

#[test]
fn help_documents_the_environment_and_the_flags() {
    let out = run(command(&["--help"], &[]));
    assert!(out.status.success(), "{}", out.stderr);
    for word in VARS.iter().copied().chain([
        "--run-server",
        "--server-address",
        "--transport",
        "--upload-bytes",
        "--download-bytes",
        "server",
        "client",
        "loopback",
        "--mode",
        "--iterations",
        "latency",
        "connections",
        "requests",
    ]) {
        assert!(out.stdout.contains(word), "--help does not mention {word}");
    }
}

/// The one JSON line a measuring mode prints, checked for its type and
/// iteration count.
fn mode_line(out: &Output, kind: &str, iterations: u64) -> Value {
    assert!(
        out.status.success(),
        "{kind} failed: {}\n{}",
        out.status,
        out.stderr
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line expected: {}", out.stdout);
    let line: Value = serde_json::from_str(lines[0]).expect("a JSON line");
    assert_eq!(line["type"], kind, "{line}");
    assert_eq!(line["iterations"].as_u64(), Some(iterations), "{line}");
    line
}

#[test]
fn measuring_modes_print_their_json_line() {
    let server = Server::start(&[]);
    let key = [("RESPONDER_KEY", server.peer.as_str())];
    let out = client(&server, &[key[0], ("MODE", "latency"), ("ITERATIONS", "3")]);
    let line = mode_line(&out, "latency", 3);
    let seconds = |f: &str| line[f].as_f64().unwrap_or_else(|| panic!("{f} in {line}"));
    assert!(seconds("minSeconds") <= seconds("medianSeconds"));
    assert!(seconds("medianSeconds") <= seconds("p99Seconds"));
    assert!(seconds("p99Seconds") <= seconds("maxSeconds"));
    for (mode, n) in [("connections", 5), ("requests", 20)] {
        let n_text = n.to_string();
        let out = client(&server, &[key[0], ("MODE", mode), ("ITERATIONS", &n_text)]);
        let line = mode_line(&out, mode, n);
        assert!(line["timeSeconds"].as_f64().unwrap() > 0.0, "{line}");
        assert!(line["perSecond"].as_f64().unwrap() > 0.0, "{line}");
    }
    // The same through rust-libp2p perf's flags.
    let address = format!("127.0.0.1:{}", server.port);
    let out = run(command(
        &[
            "--server-address",
            &address,
            "--transport",
            "quic-v1",
            "--mode",
            "requests",
            "--iterations",
            "4",
        ],
        &[],
    ));
    mode_line(&out, "requests", 4);
    // A wrong key still fails the mode.
    let other = identity::keypair_from_seed([45; 32]).public().to_peer_id();
    let out = client(
        &server,
        &[("RESPONDER_KEY", &other.to_string()), ("MODE", "requests")],
    );
    assert!(
        error_line(&out).contains("peer id mismatch"),
        "{}",
        out.stderr
    );
}

#[test]
fn loopback_downloads_then_uploads_with_its_own_server() {
    let out = run(command(
        &["loopback"],
        &[("BYTE_SIZE", "3MiB"), ("UPLOAD_SIZE", "0x200000")],
    ));
    assert!(out.status.success(), "{}\n{}", out.status, out.stderr);
    let finals: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}")))
        .filter(|v| v["type"] == "final")
        .collect();
    assert_eq!(finals.len(), 2, "{}", out.stdout);
    let totals = |v: &Value| (v["uploadBytes"].as_u64(), v["downloadBytes"].as_u64());
    assert_eq!(totals(&finals[0]), (Some(0), Some(3 * MIB)));
    assert_eq!(totals(&finals[1]), (Some(2 * MIB), Some(0)));
    let download = out.stderr.find("Download of 3 MiB:").expect(&out.stderr);
    let upload = out.stderr.find("Upload of 2 MiB:").expect(&out.stderr);
    assert!(download < upload, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("[server] Listening on /ip4/127.0.0.1/udp/"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.matches("Speed ").count(), 2, "{}", out.stderr);
    // No secret of a throwaway server is shown.
    assert!(!out.stderr.contains("Secret key"), "{}", out.stderr);
}

#[test]
fn loopback_runs_a_measuring_mode_and_checks_sizes() {
    let out = run(command(
        &["loopback"],
        &[("MODE", "requests"), ("ITERATIONS", "10")],
    ));
    mode_line(&out, "requests", 10);
    let out = run(command(
        &["loopback"],
        &[("BYTE_SIZE", "0"), ("UPLOAD_SIZE", "0")],
    ));
    assert!(
        error_line(&out).contains("nothing to transfer"),
        "{}",
        out.stderr
    );
    let out = run(command(&["loopback"], &[("BYTE_SIZE", "1 TB")]));
    assert!(
        error_line(&out).contains("bad BYTE_SIZE="),
        "{}",
        out.stderr
    );
}
