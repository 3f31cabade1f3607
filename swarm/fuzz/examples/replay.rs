//! Runs one target's check over files or directories, with timings:
//! `cargo run --release --example replay -- <target> <path>...`.

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().expect("target name");
    let check: fn(&[u8]) = match target.as_str() {
        "multistream" => swarm_fuzz::multistream::check,
        "certificate" => swarm_fuzz::certificate::check,
        "identify" => swarm_fuzz::identify::check,
        "perf_ping" => swarm_fuzz::perf_ping::check,
        "plugin_api" => swarm_fuzz::plugin_api::check,
        other => panic!("unknown target {other}"),
    };
    let mut files = Vec::new();
    for path in args.map(std::path::PathBuf::from) {
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(&path)
                .expect("read dir")
                .map(|e| e.expect("entry").path())
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(path);
        }
    }
    let start = Instant::now();
    for file in &files {
        let data = std::fs::read(file).expect("read");
        let t = Instant::now();
        check(&data);
        println!(
            "{:>8.1} ms  {}",
            t.elapsed().as_secs_f64() * 1e3,
            file.display()
        );
    }
    println!("{} files in {:?}", files.len(), start.elapsed());
}
