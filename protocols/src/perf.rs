//! `/perf/1.0.0`, the libp2p perf protocol.
//!
//! On each stream the client writes a big-endian u64 (how many bytes it
//! wants back), uploads its bytes and finishes its side. The server reads to
//! that end of stream, then sends the requested bytes and finishes. The
//! header may arrive split across chunks; a stream that ends before the
//! header is complete fails alone, the connection carries on.
//!
//! - [`PerfServer`]: the server plugin. It emits a [`PerfServerEvent`] per run.
//! - [`PerfClient`]: the client plugin, driven by [`PerfRequest`] messages
//!   to its `PluginId` (see [`start`]); each run reports through its [`Run`].
//! - [`run_blocking`]: the client on a thread, with a blocking stream handle.
//!
//! Both sides send zeros from one static buffer without copying, and count
//! and drop what they receive, so a run's memory does not depend on its size.

mod client;
mod header;
mod run;
mod server;
pub(crate) mod zeros;

pub use client::{PerfClient, PerfRequest, run_blocking, send, start};
pub use run::{PerfError, PerfReport, Progress, Run, RunResult, mib_per_sec};
pub use server::{PerfServer, PerfServerEvent};

/// The protocol id.
pub const PROTOCOL_ID: &str = "/perf/1.0.0";

/// Stream error code used when a run fails (reset and stop-sending).
pub const RESET_CODE: u64 = 1;
