//! Real hosts: `perf/netns/hosts.sh` starts `bandwidth_perf` servers and
//! clients, and `ping` dialers, in separate network namespaces joined by a
//! bridge, so swarms talk over real sockets as separate hosts.
//!
//! Needs root and network namespaces. Where either is missing (a normal
//! user, a container without CAP_SYS_ADMIN, no iproute2) the test prints
//! `skipped: ...` on stderr and passes. The `ping` dialer is the `protocols`
//! package's binary, which this package cannot name through
//! `CARGO_BIN_EXE_*`: it is taken from `PING_BIN` or from next to
//! `bandwidth_perf` in the target directory, where `cargo test --workspace`
//! puts it; without it the test fails saying how to build it.
//!
//! Asserted: every pair moved its bytes; every dial connected, no handshake
//! and no ping failed, RTT percentiles are present; and afterwards no
//! namespace of the run's tag remains, whatever happened.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_bandwidth_perf");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/netns/hosts.sh");
/// A bound on each scenario, against a hang (not a speed check): the
/// script's own per-process limit is `SWNET_TIMEOUT` below.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);
const PERF_HOSTS: usize = 8;
const PERF_BYTES: u64 = 8 << 20;
const PING_HOSTS: u64 = 4;
const PING_DIALS: u64 = 2;
const PING_COUNT: u64 = 3;

#[test]
fn perf_pairs_and_ping_over_network_namespaces() {
    if let Some(reason) = why_not_runnable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let ping = ping_binary();
    let base = format!("t{:x}", std::process::id());

    let perf = Scenario::run(
        &format!("{base}p"),
        &["perf", &PERF_HOSTS.to_string(), &PERF_BYTES.to_string()],
        &ping,
    );
    let lines = perf.json_lines();
    let pairs: Vec<&Value> = lines.iter().filter(|l| l["type"] == "pair").collect();
    assert_eq!(pairs.len(), PERF_HOSTS / 2, "one line per pair: {lines:?}");
    for pair in pairs {
        assert_eq!(pair["ok"], true, "{pair}");
        assert_eq!(pair["downloadBytes"], PERF_BYTES, "{pair}");
        assert!(pair["mibPerSecond"].as_f64().unwrap() > 0.0, "{pair}");
    }
    let summary = summary_line(&lines);
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(
        summary["downloadBytes"],
        PERF_BYTES * PERF_HOSTS as u64 / 2,
        "{summary}"
    );
    perf.assert_succeeded_and_gone();

    let ping_run = Scenario::run(
        &format!("{base}q"),
        &[
            "ping",
            &PING_HOSTS.to_string(),
            &PING_DIALS.to_string(),
            &PING_COUNT.to_string(),
        ],
        &ping,
    );
    let lines = ping_run.json_lines();
    let summary = summary_line(&lines);
    let dials = PING_HOSTS * PING_DIALS;
    assert_eq!(summary["dials"], dials, "{summary}");
    assert_eq!(summary["connectionsMade"], dials, "{summary}");
    assert_eq!(summary["handshakesFailed"], 0, "{summary}");
    assert_eq!(summary["pings"], dials * PING_COUNT, "{summary}");
    assert_eq!(summary["pingsFailed"], 0, "{summary}");
    let p50 = summary["rttP50Ms"].as_f64().expect("an RTT p50");
    let p99 = summary["rttP99Ms"].as_f64().expect("an RTT p99");
    assert!(0.0 < p50 && p50 <= p99, "{summary}");
    ping_run.assert_succeeded_and_gone();
}

/// Why namespaces cannot be used here, if they cannot: not root, no `ip`,
/// or creating one fails (probed with a throwaway namespace, removed again).
fn why_not_runnable() -> Option<String> {
    match effective_uid() {
        Some(0) => {}
        Some(uid) => return Some(format!("network namespaces need root (euid {uid})")),
        None => return Some("cannot read the effective uid from /proc/self/status".into()),
    }
    let probe = format!("swnet-probe{}", std::process::id());
    let added = match Command::new("ip")
        .args(["netns", "add", &probe])
        .stderr(Stdio::piped())
        .output()
    {
        Err(e) => return Some(format!("cannot run 'ip' (install iproute2): {e}")),
        Ok(out) => out,
    };
    if !added.status.success() {
        return Some(format!(
            "'ip netns add' fails here: {}",
            String::from_utf8_lossy(&added.stderr).trim()
        ));
    }
    let deleted = Command::new("ip").args(["netns", "del", &probe]).status();
    assert!(
        deleted.is_ok_and(|s| s.success()),
        "cannot delete the probe namespace {probe}"
    );
    None
}

/// The effective uid (the second field of `Uid:` in /proc/self/status), read
/// without libc since this crate denies unsafe code.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The `protocols` package's `ping`: `PING_BIN`, or next to `bandwidth_perf`.
fn ping_binary() -> PathBuf {
    let path = std::env::var_os("PING_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(BIN).with_file_name("ping"));
    assert!(
        path.is_file(),
        "no ping binary at {}: build it with 'cargo build -p protocols --bin ping' \
         (cargo test --workspace does), or set PING_BIN",
        path.display()
    );
    path
}

/// One run of the script. Dropping it runs `hosts.sh down TAG`, so that even
/// a failed assertion or a killed script leaves no namespace behind.
struct Scenario {
    tag: String,
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

impl Scenario {
    fn run(tag: &str, args: &[&str], ping: &Path) -> Scenario {
        let mut child = Command::new("bash")
            .arg(SCRIPT)
            .args(args)
            .env("SWNET_TAG", tag)
            .env("BANDWIDTH_PERF", BIN)
            .env("PING_BIN", ping)
            .env("SWNET_TIMEOUT", "30")
            .env_remove("SWNET_KEEP_LOGS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run hosts.sh");
        // Read both pipes on threads so a full pipe cannot stall the script.
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + SCENARIO_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for hosts.sh") {
                break status;
            }
            if Instant::now() > deadline {
                // TERM lets the script's trap clean up; Drop does it anyway.
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                std::thread::sleep(Duration::from_secs(3));
                let _ = child.kill();
                let _ = child.wait();
                down(tag);
                panic!("hosts.sh {args:?} did not finish within {SCENARIO_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let scenario = Scenario {
            tag: tag.into(),
            status,
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        };
        eprint!(
            "hosts.sh {}:\n{}{}",
            args.join(" "),
            scenario.stderr,
            scenario.stdout
        );
        scenario
    }

    /// Every stdout line, parsed as JSON.
    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// The script exited 0 and removed every namespace of its tag.
    fn assert_succeeded_and_gone(&self) {
        assert!(
            self.status.success(),
            "hosts.sh failed ({}): {}",
            self.status,
            self.stderr
        );
        let left = namespaces_of(&self.tag);
        assert!(left.is_empty(), "namespaces left behind: {left:?}");
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        down(&self.tag);
    }
}

/// `hosts.sh down TAG`: a second line of defence after the script's trap.
fn down(tag: &str) {
    let _ = Command::new("bash")
        .args([SCRIPT, "down", tag])
        .stdin(Stdio::null())
        .status();
}

/// The namespaces named after `tag` that exist now.
fn namespaces_of(tag: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with(&format!("swnet-{tag}-")))
        .map(String::from)
        .collect()
}

/// The one summary line.
fn summary_line(lines: &[Value]) -> &Value {
    let mut summaries = lines.iter().filter(|l| l["type"] == "summary");
    let summary = summaries.next().expect("a summary line");
    assert!(summaries.next().is_none(), "one summary line: {lines:?}");
    summary
}
