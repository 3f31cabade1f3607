//! Replaying a target's committed inputs in plain `cargo test`: shared by
//! `swarm/tests/fuzz_corpus_replay.rs` and
//! `protocols/tests/fuzz_corpus_replay.rs`, which include this file with
//! `#[path]`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Every input of `target`: the files of `fuzz/corpus/<target>` and
/// `fuzz/regressions/<target>`, then the seeds, each with a name to report.
pub fn inputs(fuzz: &Path, target: &str, seeds: Vec<Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        files.extend(entries.map(|e| e.expect("corpus entry").path()));
    }
    files.sort();
    let mut inputs: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .map(|f| {
            let data = std::fs::read(&f).expect("corpus file");
            (f.display().to_string(), data)
        })
        .collect();
    inputs.extend(
        seeds
            .into_iter()
            .enumerate()
            .map(|(i, s)| (format!("{target} seed {i}"), s)),
    );
    inputs
}

/// Run `check` on every input of `target` under `fuzz`; fail naming every
/// input that panicked.
pub fn replay(fuzz: &Path, target: &str, seeds: Vec<Vec<u8>>, check: fn(&[u8])) {
    let start = Instant::now();
    let inputs = inputs(fuzz, target, seeds);
    assert!(!inputs.is_empty(), "no inputs for {target}");
    let failed: Vec<&str> = inputs
        .iter()
        .filter(|(_, data)| catch_unwind(AssertUnwindSafe(|| check(data))).is_err())
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(failed.is_empty(), "{target}: failing inputs: {failed:#?}");
    eprintln!("{target}: {} inputs in {:?}", inputs.len(), start.elapsed());
}
