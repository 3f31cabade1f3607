//! Chooses a small replay corpus: runs every input of `<from>` (a
//! libFuzzer-minimized corpus), records its features, and copies a greedy
//! set cover of them, at most `<max>` files, into `<to>`:
//! `cargo run --release --example select -- <target> <max> <from> <to> [<control>]`.
//!
//! The features of an input are its behavioural features
//! (`swarm_fuzz::observe`; only the network targets note any) and, when
//! `<control>` is given, the coverage edges libFuzzer recorded for it in a
//! merge control file (`COV` lines), made by
//! `<fuzz binary> -merge=1 -merge_control_file=<control> <empty dir> <from>`
//! (see the README). The greedy cover first covers every behavioural
//! feature, then the edges, taking the input with the most uncovered
//! features per cost first, the shorter one on a tie, where an
//! input costs its run time plus [`FILE_COST_MS`] (so that the replay in
//! `cargo test` stays fast, and cheap inputs still count as files); it
//! prints how much it covers with the first 25, 50, ... inputs and their
//! run time, to choose `<max>` from.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Instant;

/// What one more file costs besides its run time, in milliseconds of a
/// release build (a network target's run takes 1-10 ms).
const FILE_COST_MS: f64 = 1.0;

/// The edges of each file in a libFuzzer merge control file, by file name.
fn control_edges(path: &str) -> HashMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(path).expect("read control file");
    let mut lines = text.lines();
    let count: usize = lines
        .next()
        .and_then(|l| l.parse().ok())
        .expect("control file: file count");
    let _first_new = lines.next();
    let names: Vec<String> = lines
        .by_ref()
        .take(count)
        .map(|l| {
            PathBuf::from(l)
                .file_name()
                .expect("control file: file name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let mut edges = HashMap::new();
    for line in lines {
        let mut words = line.split_ascii_whitespace();
        if words.next() != Some("COV") {
            continue;
        }
        let Some(index) = words.next().and_then(|w| w.parse::<usize>().ok()) else {
            continue;
        };
        let Some(name) = names.get(index) else {
            continue;
        };
        edges.insert(name.clone(), words.map(|e| format!("edge {e}")).collect());
    }
    edges
}

fn is_edge(feature: &str) -> bool {
    feature.starts_with("edge ")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (target, max, from, to, control) = match &args[..] {
        [t, m, f, to] => (t, m, f, to, None),
        [t, m, f, to, c] => (t, m, f, to, Some(c)),
        _ => panic!("usage: select <target> <max> <from> <to> [<control file>]"),
    };
    let max: usize = max.parse().expect("max");
    let check: fn(&[u8]) = match target.as_str() {
        "multistream" => swarm_fuzz::multistream::check,
        "certificate" => swarm_fuzz::certificate::check,
        "identify" => swarm_fuzz::identify::check,
        "perf_ping" => swarm_fuzz::perf_ping::check,
        "plugin_api" => swarm_fuzz::plugin_api::check,
        other => panic!("unknown target {other}"),
    };
    let mut edges = control.map(|c| control_edges(c)).unwrap_or_default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(from)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    // (file, length, run time in ms, features)
    let runs: Vec<(PathBuf, usize, f64, BTreeSet<String>)> = files
        .into_iter()
        .map(|f| {
            let data = std::fs::read(&f).expect("read");
            let start = Instant::now();
            let mut features = swarm_fuzz::observe::record(|| check(&data));
            let ms = start.elapsed().as_secs_f64() * 1e3;
            let name = f.file_name().expect("name").to_string_lossy().into_owned();
            features.extend(edges.remove(&name).unwrap_or_default());
            (f, data.len(), ms, features)
        })
        .collect();
    let all: BTreeSet<&String> = runs.iter().flat_map(|(_, _, _, f)| f).collect();
    let mut covered: BTreeSet<&String> = BTreeSet::new();
    let mut chosen: Vec<&PathBuf> = Vec::new();
    let mut time = 0.0;
    while chosen.len() < max {
        // Behavioural features first, then edges.
        let behaviour_left = all.iter().any(|f| !is_edge(f) && !covered.contains(f));
        let best = runs
            .iter()
            .map(|(f, len, ms, features)| {
                let new = features
                    .iter()
                    .filter(|x| !covered.contains(x) && (!behaviour_left || !is_edge(x)))
                    .count();
                (
                    new,
                    new as f64 / (ms + FILE_COST_MS),
                    *len,
                    *ms,
                    f,
                    features,
                )
            })
            .filter(|r| r.0 > 0)
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.2.cmp(&a.2)));
        let Some((_, _, _, ms, file, features)) = best else {
            break;
        };
        covered.extend(features.iter());
        chosen.push(file);
        time += ms;
        if chosen.len().is_multiple_of(25) {
            println!(
                "{:>4} files: {} of {} features, {time:.0} ms",
                chosen.len(),
                covered.len(),
                all.len()
            );
        }
    }
    std::fs::create_dir_all(to).expect("create");
    for file in &chosen {
        let name = file.file_name().expect("name");
        std::fs::copy(file, PathBuf::from(to).join(name)).expect("copy");
    }
    let missing: Vec<&&String> = all
        .iter()
        .filter(|f| !covered.contains(*f) && !is_edge(f))
        .collect();
    let missing_edges = all
        .iter()
        .filter(|f| !covered.contains(*f) && is_edge(f))
        .count();
    println!(
        "{target}: {} inputs, {} features; chose {} files covering {} in {time:.0} ms; \
         edges not covered: {missing_edges}; other features not covered: {missing:?}",
        runs.len(),
        all.len(),
        chosen.len(),
        covered.len()
    );
}
