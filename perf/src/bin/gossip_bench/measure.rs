//! What the benchmark measures about this process (the same definitions as
//! rust-libp2p's side): CPU time and peak memory from `getrusage`, the
//! current RSS from `/proc/self/status`, nearest-rank percentiles.

use anyhow::Context as _;
use nix::sys::resource::{Usage, UsageWho, getrusage};

fn rusage() -> anyhow::Result<Usage> {
    getrusage(UsageWho::RUSAGE_SELF).context("getrusage")
}

/// User + system CPU seconds of the whole process, all threads.
pub fn cpu_seconds() -> anyhow::Result<f64> {
    let usage = rusage()?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Ok(secs(usage.user_time()) + secs(usage.system_time()))
}

/// Peak resident set size of the process (Linux gives `ru_maxrss` in KiB).
pub fn peak_rss_bytes() -> anyhow::Result<u64> {
    Ok(rusage()?.max_rss().max(0) as u64 * 1024)
}

/// Resident set size now (`VmRSS`, the statm resident pages that the
/// rust-libp2p side reads, in bytes), 0 if it cannot be read.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Nearest-rank percentile `p` (0..=1) of sorted microsecond values, in
/// milliseconds; 0 when there are none.
pub fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    round(f64::from(sorted_us[rank - 1]) / 1000.0, 3)
}

/// `x` rounded to `digits` decimals (for readable JSON).
pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_the_ceiling_rank() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 0.5), 50.0);
        assert_eq!(percentile_ms(&v, 0.99), 99.0);
        assert_eq!(percentile_ms(&v[..1], 0.99), 1.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }

    #[test]
    fn process_counters_are_readable() {
        assert!(cpu_seconds().unwrap() >= 0.0);
        assert!(peak_rss_bytes().unwrap() > 0);
        assert!(rss_bytes() > 0);
    }
}
