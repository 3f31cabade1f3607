//! Replays the committed fuzz corpora of the protocol targets in plain
//! `cargo test` (stable, no cargo-fuzz): every file of
//! `swarm/fuzz/corpus/<target>/` and `swarm/fuzz/regressions/<target>/`, and
//! the targets' seeds, go through the very checks the fuzz targets run (the
//! target bodies are included from `swarm/fuzz/src/`): the identify decoder,
//! and the perf and ping stream state, driven over a virtual network.

#[allow(dead_code)]
#[path = "../../swarm/fuzz/src/identify.rs"]
mod identify;
#[allow(dead_code)]
#[path = "../../swarm/fuzz/src/input.rs"]
mod input;
#[allow(dead_code)]
#[path = "../../swarm/fuzz/src/net.rs"]
mod net;
#[allow(dead_code)]
#[path = "../../swarm/fuzz/src/observe.rs"]
mod observe;
#[allow(dead_code)]
#[path = "../../swarm/fuzz/src/peer.rs"]
mod peer;
#[allow(dead_code)]
#[path = "../../swarm/fuzz/src/perf_ping.rs"]
mod perf_ping;

#[path = "../../swarm/fuzz/src/replay.rs"]
mod replay;

/// The fuzz crate's directory, where the corpora and regressions live.
fn fuzz_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../swarm/fuzz")
}

/// Replay `target`'s committed inputs and seeds through `check`.
fn replay(target: &str, seeds: Vec<Vec<u8>>, check: fn(&[u8])) {
    replay::replay(&fuzz_dir(), target, seeds, check);
}

#[test]
fn identify_corpus_replays_clean() {
    replay("identify", identify::seeds(), identify::check);
}

#[test]
fn perf_ping_corpus_replays_clean() {
    replay("perf_ping", perf_ping::seeds(), perf_ping::check);
}

/// The identify oracle agrees with the seeds' intent: a full message from
/// the peer decodes to its info, and each broken one to its error.
#[test]
fn identify_oracle_reads_the_seed_messages() {
    let peer = net::peer_id(1);
    let full = identify::frame(&identify::full_message());
    let info = identify::predict(&full, peer).expect("a valid message");
    assert_eq!(info.public_key.to_peer_id(), peer);
    assert_eq!(
        info.listen_addrs.len(),
        2,
        "own /p2p stripped, foreign skipped"
    );
    assert!(matches!(
        identify::predict(&full[..full.len() - 1], peer),
        Err(protocols::identify::IdentifyError::Truncated)
    ));
    assert!(matches!(
        identify::predict(&[], peer),
        Err(protocols::identify::IdentifyError::Empty)
    ));
}
