//! The fuzz targets' bodies, shared with the replay tests in
//! `swarm/tests/fuzz_corpus_replay.rs` and
//! `protocols/tests/fuzz_corpus_replay.rs` (which include these files with
//! `#[path]`, so that plain `cargo test` on stable runs the same checks over
//! the committed corpora).
//!
//! Each target module has `check(&[u8])` (the target: panics on a finding)
//! and `seeds()` (inputs to start a corpus from).

pub mod certificate;
pub mod identify;
pub mod input;
pub mod multistream;
pub mod net;
pub mod observe;
pub mod peer;
pub mod perf_ping;
pub mod plugin_api;
pub mod replay;

/// Write every seed of every target into `corpus/<target>/seed-<n>`.
pub fn write_seeds(corpus: &std::path::Path) -> std::io::Result<()> {
    type Seeds = fn() -> Vec<Vec<u8>>;
    let targets: [(&str, Seeds); 5] = [
        ("multistream", multistream::seeds),
        ("certificate", certificate::seeds),
        ("identify", identify::seeds),
        ("perf_ping", perf_ping::seeds),
        ("plugin_api", plugin_api::seeds),
    ];
    for (name, seeds) in targets {
        let dir = corpus.join(name);
        std::fs::create_dir_all(&dir)?;
        for (i, seed) in seeds().into_iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:03}")), seed)?;
        }
    }
    Ok(())
}
