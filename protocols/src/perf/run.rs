//! What a transfer reports: the [`PerfReport`], the [`PerfError`], live
//! [`Progress`] counters, and the [`Run`] a caller waits on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use swarm::multistream::MultistreamError;
use swarm::{HandleError, OpenStreamError, StreamError};

/// The outcome of one transfer. Byte counts are payload only (no header)
/// and are named from the client's point of view on both sides: `bytes_up`
/// went from client to server, `bytes_down` from server to client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerfReport {
    /// Payload bytes sent by the client.
    pub bytes_up: u64,
    /// Payload bytes sent by the server.
    pub bytes_down: u64,
    /// Client: from opening the stream until the upload was handed to QUIC
    /// and finished. Server: from accepting the stream until the client's EOF.
    pub upload_time: Duration,
    /// Client: from the end of the upload until the server's EOF (or, for
    /// test-data, the last byte wanted). Server: from the client's EOF until
    /// the download was handed to QUIC and finished.
    pub download_time: Duration,
    /// The whole transfer: `upload_time + download_time`.
    pub total_time: Duration,
}

impl PerfReport {
    /// Throughput of both directions together, in MiB/s (0 for no time).
    pub fn mib_per_sec(&self) -> f64 {
        mib_per_sec(self.bytes_up + self.bytes_down, self.total_time)
    }
}

/// `bytes` over `time` in MiB/s; 0 when no time passed.
pub fn mib_per_sec(bytes: u64, time: Duration) -> f64 {
    let secs = time.as_secs_f64();
    if secs > 0.0 {
        bytes as f64 / secs / (1024.0 * 1024.0)
    } else {
        0.0
    }
}

/// Why a transfer failed. Each failure concerns one stream; the connection
/// and other streams carry on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PerfError {
    /// The stream ended before the 8-byte perf header was complete.
    #[error("perf header cut short: {received} of 8 bytes before end of stream")]
    HeaderTruncated {
        /// Header bytes received.
        received: usize,
    },
    /// The peer does not speak the protocol (it answered `na`).
    #[error("the peer refused protocol {0}")]
    Refused(String),
    /// The stream could not be opened.
    #[error("cannot open stream: {0}")]
    Open(OpenStreamError),
    /// The stream failed: reset, stopped, or its connection closed.
    #[error("stream failed: {0}")]
    Stream(StreamError),
    /// The server sent a different number of bytes than asked for.
    #[error("expected {expected} bytes from the server, got {received}")]
    WrongByteCount {
        /// Bytes asked for.
        expected: u64,
        /// Bytes received before the server's end of stream.
        received: u64,
    },
    /// The server ended its side before our upload was finished (it must
    /// read to our end of stream before it answers).
    #[error("the server ended the stream before the upload was finished")]
    EndedEarly,
    /// A blocking read or write on a thread's stream handle failed.
    #[error("stream i/o: {0}")]
    Io(String),
    /// The swarm thread has stopped.
    #[error("the swarm has stopped")]
    SwarmStopped,
    /// No answer within the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

impl From<StreamError> for PerfError {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::Negotiation(MultistreamError::Refused { protocol }) => {
                PerfError::Refused(protocol)
            }
            e => PerfError::Stream(e),
        }
    }
}

impl From<OpenStreamError> for PerfError {
    fn from(e: OpenStreamError) -> Self {
        match e {
            OpenStreamError::Negotiation(MultistreamError::Refused { protocol }) => {
                PerfError::Refused(protocol)
            }
            e => PerfError::Open(e),
        }
    }
}

impl<E: std::error::Error + Into<PerfError> + 'static> From<HandleError<E>> for PerfError {
    fn from(e: HandleError<E>) -> Self {
        match e {
            HandleError::Stopped => PerfError::SwarmStopped,
            HandleError::Timeout(t) => PerfError::Timeout(t),
            HandleError::Failed(e) => e.into(),
        }
    }
}

impl From<std::convert::Infallible> for PerfError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// Live byte counters of a transfer, readable from any thread while it runs
/// (for progress lines). Updated once per write and per received chunk.
#[derive(Debug, Default)]
pub struct Progress {
    uploaded: AtomicU64,
    downloaded: AtomicU64,
}

impl Progress {
    /// Payload bytes handed to QUIC so far (client to server).
    pub fn uploaded(&self) -> u64 {
        self.uploaded.load(Ordering::Relaxed)
    }

    /// Payload bytes received so far (server to client).
    pub fn downloaded(&self) -> u64 {
        self.downloaded.load(Ordering::Relaxed)
    }

    pub(crate) fn add_uploaded(&self, n: u64) {
        self.uploaded.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_downloaded(&self, n: u64) {
        self.downloaded.fetch_add(n, Ordering::Relaxed);
    }
}

/// The result of a transfer, as sent back to whoever asked for it.
pub type RunResult = Result<PerfReport, PerfError>;

/// A transfer started on the swarm thread: its live [`Progress`] and its
/// eventual result.
#[derive(Debug)]
pub struct Run {
    progress: Arc<Progress>,
    outcome: Receiver<RunResult>,
}

impl Run {
    /// A run and the two ends the plugin keeps: counters and the reply.
    pub(crate) fn new() -> (Self, Arc<Progress>, Sender<RunResult>) {
        let progress = Arc::new(Progress::default());
        let (tx, rx) = mpsc::channel();
        let run = Self {
            progress: progress.clone(),
            outcome: rx,
        };
        (run, progress, tx)
    }

    /// The live counters.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Wait up to `timeout` for the result; `None` if still running.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<RunResult> {
        match self.outcome.recv_timeout(timeout) {
            Ok(r) => Some(r),
            Err(RecvTimeoutError::Timeout) => None,
            // The plugin dropped the reply without answering: the swarm
            // stopped, or no plugin took the request.
            Err(RecvTimeoutError::Disconnected) => Some(Err(PerfError::SwarmStopped)),
        }
    }

    /// Wait up to `timeout` for the result; a run still going is an error.
    pub fn wait(&self, timeout: Duration) -> RunResult {
        self.wait_timeout(timeout)
            .unwrap_or(Err(PerfError::Timeout(timeout)))
    }
}
