//! Whether a test can build network namespaces with working nftables
//! (root, `ip netns`, `nft`, and the tools it names), shared by the tests
//! that run `perf/netns/nat.sh`. Where it cannot, the test prints
//! `skipped: <reason>` and passes.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Why namespaces with nftables cannot be used here (needing also each of
/// `tools` on PATH), or `None` when they can.
pub fn why_not_runnable(tools: &[&str]) -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root".into());
    }
    for tool in ["ip", "nft"].iter().chain(tools) {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("no {tool}"));
        }
    }
    // One probe name per call: tests run in parallel.
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let probe = format!("hpnatprobe{}x{n}", std::process::id() % 100_000);
    let made = Command::new("ip")
        .args(["netns", "add", &probe])
        .status()
        .is_ok_and(|s| s.success());
    // nftables must also work there (the kernel may lack nf_tables).
    let nft = made
        && Command::new("ip")
            .args([
                "netns", "exec", &probe, "nft", "add", "table", "ip", "probe",
            ])
            .status()
            .is_ok_and(|s| s.success());
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    if !made {
        return Some("cannot create network namespaces".into());
    }
    (!nft).then(|| "nftables does not work in a network namespace here".into())
}
