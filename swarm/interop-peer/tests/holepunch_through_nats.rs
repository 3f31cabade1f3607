//! Hole punching between our node and rust-libp2p 0.57 through real NATs
//! (endpoint-independent mapping), both ways: `perf/netns/nat.sh punch eim
//! 1` with rust-libp2p as the dialer (`HPNAT_A=rust`, our `holepunch
//! listen` behind NAT B initiates DCUtR) and as the listener
//! (`HPNAT_B=rust`, our `holepunch dial` answers its DCUtR and runs perf
//! over the direct connection). Our relay serves both. Over QUIC, and over
//! TCP (both dial from their listen ports; the DCUtR initiator dials as the
//! listener, and the SYNs crossing in the NATs make one connection).
//!
//! Our `holepunch` binary is taken from next to `rust_holepunch` in the
//! target directory (`cargo test --workspace` builds it), or from
//! `HOLEPUNCH`. Needs root, `ip netns` and `nft`; where one is missing the
//! test prints `skipped: ...` and passes.

// One copy of the namespace probe serves every test that runs nat.sh.
#[path = "../../../examples/test-support/netns.rs"]
mod netns;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const RUST_HOLEPUNCH: &str = env!("CARGO_BIN_EXE_rust_holepunch");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../perf/netns/nat.sh");

fn holepunch_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("HOLEPUNCH") {
        return path.into();
    }
    let path = PathBuf::from(RUST_HOLEPUNCH).with_file_name("holepunch");
    assert!(
        path.exists(),
        "no {}: build it (cargo build -p holepunch) or set HOLEPUNCH",
        path.display()
    );
    path
}

fn punch(who: &str, transport: &str) -> Vec<Value> {
    let out = Command::new("timeout")
        .arg("300")
        .arg(SCRIPT)
        .args(["punch", "eim", "1"])
        .env("HOLEPUNCH", holepunch_binary())
        .env("RUST_HOLEPUNCH", RUST_HOLEPUNCH)
        .env(who, "rust")
        .env("HPNAT_TRANSPORT", transport)
        .output()
        .expect("run nat.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "nat.sh failed:\n{stdout}\n{stderr}");
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn ours_and_rust_libp2p_punch_through_eim_nats_both_ways() {
    if let Some(why) = netns::why_not_runnable(&[]) {
        eprintln!("skipped: {why}");
        return;
    }
    for (who, transport) in [
        ("HPNAT_A", "quic"),
        ("HPNAT_B", "quic"),
        ("HPNAT_A", "tcp"),
        ("HPNAT_B", "tcp"),
    ] {
        let lines = punch(who, transport);
        let who = format!("{who} over {transport}");
        let attempt = lines
            .iter()
            .find(|l| l["type"] == "attempt")
            .unwrap_or_else(|| panic!("{who}: no attempt in {lines:#?}"));
        assert_eq!(attempt["ok"], true, "{who}: {attempt}");
        assert_eq!(attempt["relayed"], true, "{who}: {attempt}");
        // The listener's NAT (B's router) is where the direct connection
        // goes.
        let addr = attempt["direct"]["addr"].as_str().unwrap_or_default();
        let prefix = match transport {
            "tcp" => "/ip4/198.51.100.12/tcp/",
            _ => "/ip4/198.51.100.12/udp/",
        };
        assert!(addr.starts_with(prefix), "{who}: {attempt}");
        if who.starts_with("HPNAT_B") {
            assert_eq!(attempt["perf"]["bytes_down"], 1 << 20, "{attempt}");
        }
    }
}
