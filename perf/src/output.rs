//! What the client prints: JSON lines on stdout in rust-libp2p perf's
//! shape, and the Zig tool's summary lines on stderr.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

/// One JSON line, in rust-libp2p perf's field order and names.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonLine {
    /// `"intermediary"` (progress over the last interval) or `"final"`
    /// (the whole run).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Length of the interval (intermediary) or of the whole run, from
    /// before connecting (final), in seconds.
    pub time_seconds: f64,
    /// Bytes uploaded in that time.
    pub upload_bytes: u64,
    /// Bytes downloaded in that time.
    pub download_bytes: u64,
}

impl JsonLine {
    /// Progress over the last interval.
    pub fn intermediary(time: Duration, upload_bytes: u64, download_bytes: u64) -> Self {
        Self {
            kind: "intermediary",
            time_seconds: time.as_secs_f64(),
            upload_bytes,
            download_bytes,
        }
    }

    /// The whole run.
    pub fn final_(time: Duration, upload_bytes: u64, download_bytes: u64) -> Self {
        Self {
            kind: "final",
            time_seconds: time.as_secs_f64(),
            upload_bytes,
            download_bytes,
        }
    }

    /// Print as one line on stdout, flushed at once so a reader sees
    /// progress as it happens.
    pub fn print(&self) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, self)?;
        out.write_all(b"\n")?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_rust_libp2p_perf_field_names_in_order() {
        let line = JsonLine::final_(Duration::from_millis(1500), 3, 4);
        assert_eq!(
            serde_json::to_string(&line).unwrap(),
            r#"{"type":"final","timeSeconds":1.5,"uploadBytes":3,"downloadBytes":4}"#
        );
    }
}
