//! The hole punch through real NATs: `perf/netns/nat.sh` builds two
//! private networks behind router namespaces doing source NAT with
//! nftables, and a public network with the relay, then runs the
//! `holepunch` roles in them.
//!
//! Asserted, for each NAT variant:
//! - `selftest`: the NAT maps as it should (endpoint-independent: one
//!   external port for every destination; address-and-port-dependent: one
//!   per destination), drops unsolicited datagrams, and a plain UDP punch
//!   works through `eim` only;
//! - `punch`, over QUIC and over TCP (a TCP simultaneous open): through
//!   `eim` the dialer gets a direct connection to the listener's NAT
//!   address, pings over it and runs perf (1 MiB each way, past the
//!   relay's circuit limit); through `apdm` the punch fails cleanly (exit
//!   1, a reason) and a ping over the relayed connection still works;
//!   either way AutoNAT finds the relay reachable and the listener behind
//!   its NAT unreachable;
//! - no namespace of the run remains afterwards.
//!
//! Needs root, `ip netns`, `nft` and python3; where one is missing the
//! test prints `skipped: ...` and passes.

// One copy of the namespace probe serves every test that runs nat.sh.
#[path = "../../test-support/netns.rs"]
mod netns;

use std::process::Command;

use serde_json::Value;

const HOLEPUNCH: &str = env!("CARGO_BIN_EXE_holepunch");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../perf/netns/nat.sh");

/// Run `nat.sh args…` (bounded) and parse its JSON lines; also return the
/// tag it used.
fn nat_sh(args: &[&str]) -> (Vec<Value>, String) {
    nat_sh_over("quic", args)
}

/// [`nat_sh`] with the peers and the relay on `transport` (quic | tcp).
fn nat_sh_over(transport: &str, args: &[&str]) -> (Vec<Value>, String) {
    let out = Command::new("timeout")
        .arg("300")
        .arg(SCRIPT)
        .args(args)
        .env("HOLEPUNCH", HOLEPUNCH)
        .env("HPNAT_TRANSPORT", transport)
        .env("HPNAT_TIMEOUT", "30")
        .output()
        .expect("run nat.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "nat.sh {args:?} failed:\n{stdout}\n{stderr}"
    );
    let tag = stderr
        .lines()
        .find_map(|l| l.strip_prefix("nat.sh: tag "))
        .and_then(|l| l.split(',').next())
        .unwrap_or_default()
        .to_string();
    let lines = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (lines, tag)
}

fn summary(lines: &[Value]) -> &Value {
    lines
        .iter()
        .find(|l| l["type"] == "summary")
        .unwrap_or_else(|| panic!("no summary in {lines:#?}"))
}

fn assert_gone(tag: &str) {
    assert!(!tag.is_empty(), "nat.sh named no tag");
    let list = Command::new(SCRIPT).arg("list").output().expect("list");
    let left = String::from_utf8_lossy(&list.stdout);
    assert!(
        !left
            .lines()
            .any(|l| l.starts_with(&format!("hpnat-{tag}-"))),
        "namespaces of {tag} remain: {left}"
    );
}

#[test]
fn the_nat_testbed_maps_filters_and_punches_as_each_variant_should() {
    if let Some(why) = netns::why_not_runnable(&["python3"]) {
        eprintln!("skipped: {why}");
        return;
    }
    for (variant, same_mapping, udp_punch) in [("eim", true, true), ("apdm", false, false)] {
        let (lines, tag) = nat_sh(&["selftest", variant]);
        let s = summary(&lines);
        assert_eq!(s["same_mapping"], same_mapping, "{variant}: {lines:#?}");
        assert_eq!(s["unsolicited_dropped"], true, "{variant}: {lines:#?}");
        assert_eq!(s["udp_punch"], udp_punch, "{variant}: {lines:#?}");
        assert_gone(&tag);
    }
}

#[test]
fn holepunch_goes_direct_through_eim_nats_and_fails_cleanly_through_apdm_ones() {
    if let Some(why) = netns::why_not_runnable(&["python3"]) {
        eprintln!("skipped: {why}");
        return;
    }
    for (transport, variant, direct) in [
        ("quic", "eim", 1),
        ("quic", "apdm", 0),
        ("tcp", "eim", 1),
        ("tcp", "apdm", 0),
    ] {
        let (lines, tag) = nat_sh_over(transport, &["punch", variant, "1"]);
        let variant = format!("{variant} over {transport}");
        let s = summary(&lines);
        assert_eq!(s["direct"], direct, "{variant}: {lines:#?}");
        assert_eq!(s["relay_reachable"], true, "{variant}: {lines:#?}");
        assert_eq!(s["b_unreachable"], true, "{variant}: {lines:#?}");
        let attempt = lines
            .iter()
            .find(|l| l["type"] == "attempt")
            .expect("an attempt");
        assert_eq!(
            attempt["relayed"], true,
            "the circuit came first: {attempt}"
        );
        if direct == 1 {
            let addr = attempt["direct"]["addr"].as_str().unwrap_or_default();
            // B's NAT's public address, not a relayed one.
            let prefix = match transport {
                "tcp" => "/ip4/198.51.100.12/tcp/",
                _ => "/ip4/198.51.100.12/udp/",
            };
            assert!(addr.starts_with(prefix), "{attempt}");
            // 1 MiB each way: far past the relay's circuit limit.
            assert_eq!(attempt["perf"]["bytes_down"], 1 << 20, "{attempt}");
        } else {
            assert_eq!(attempt["exit"], 1, "{attempt}");
            let reason = attempt["reason"].as_str().unwrap_or_default();
            assert!(reason.contains("hole punch failed"), "{attempt}");
            assert_eq!(
                attempt["relayed_ping"], true,
                "the relayed path still works: {attempt}"
            );
        }
        assert_gone(&tag);
    }
}
