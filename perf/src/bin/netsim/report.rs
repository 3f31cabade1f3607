//! What every scenario prints: progress lines every few seconds of wall
//! time, and figures for the summary.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use swarm::virtual_net::VirtualNet;

/// Prints `{"event":"progress",...}` at most every [`Progress::EVERY`] of
/// wall time.
pub(crate) struct Progress {
    start: Instant,
    last: Instant,
}

impl Progress {
    /// How often a progress line is printed.
    const EVERY: Duration = Duration::from_secs(3);

    /// Wall time counts from now.
    pub(crate) fn new() -> Self {
        let now = Instant::now();
        Self {
            start: now,
            last: now,
        }
    }

    /// Wall time since the scenario started.
    pub(crate) fn wall_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Print a progress line with the scenario's `figures` if it is time.
    pub(crate) fn tick(&mut self, net: &VirtualNet, figures: impl FnOnce() -> Value) {
        if self.last.elapsed() < Self::EVERY {
            return;
        }
        self.last = Instant::now();
        let mut line = json!({
            "event": "progress",
            "virtual_s": net.elapsed().as_secs_f64(),
            "wall_s": self.wall_s(),
        });
        if let (Some(line), Value::Object(more)) = (line.as_object_mut(), figures()) {
            line.extend(more);
        }
        println!("{line}");
    }
}

/// The `p` quantile (0..=1) of sorted durations, in milliseconds.
pub(crate) fn percentile_ms(sorted: &[Duration], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let i = ((sorted.len() as f64 * p) as usize).min(last);
    Some(sorted[i].as_secs_f64() * 1000.0)
}

/// The process's peak resident memory (Linux `VmHWM`), if readable.
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
