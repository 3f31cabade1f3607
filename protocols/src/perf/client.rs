//! The perf client, two ways: a plugin driven by [`PerfRequest`] messages
//! (zero-copy, the fast path), and [`run_blocking`] on a thread's stream
//! handle (simple, one copy per write).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use swarm::{
    Bytes, Context, DetachedStream, Message, PluginId, Protocol, StreamError, StreamRef,
    StreamTarget, SwarmHandle,
};
use tracing::{debug, warn};

use super::run::{PerfError, PerfReport, Progress, Run, RunResult};
use super::zeros::{chunk, send_zeros};
use super::{PROTOCOL_ID, RESET_CODE};

/// Ask a [`PerfClient`] plugin for a run: a message to that plugin's
/// [`PluginId`] (what `add_protocol` returned), sent with [`send`] (or use
/// [`start`]) or, from another plugin, with [`Context::send_message`].
#[derive(Debug)]
pub struct PerfRequest {
    target: StreamTarget,
    upload: u64,
    download: u64,
    optimistic: bool,
    /// The run's counters and reply channel; the plugin takes them over.
    progress: Arc<Progress>,
    reply: Sender<RunResult>,
}

impl PerfRequest {
    /// A request to upload `upload` bytes and download `download` bytes on a
    /// new stream to `target`, and the [`Run`] to watch it with.
    pub fn new(target: impl Into<StreamTarget>, upload: u64, download: u64) -> (Self, Run) {
        let (run, progress, reply) = Run::new();
        let request = Self {
            target: target.into(),
            upload,
            download,
            optimistic: false,
            progress,
            reply,
        };
        (request, run)
    }

    /// Send the header and upload right behind the protocol proposal,
    /// without waiting for the peer to accept it: saves a round trip per
    /// run. The cost: a peer that refuses the protocol then reads our data
    /// as a malformed proposal and resets the stream, and the reset may
    /// arrive before its refusal, so the run fails with
    /// [`PerfError::Stream`] instead of [`PerfError::Refused`].
    pub fn optimistic(mut self, optimistic: bool) -> Self {
        self.optimistic = optimistic;
        self
    }
}

/// Start a run through the [`PerfClient`] plugin `client` (the id
/// `add_protocol` returned for it).
pub fn start(
    handle: &SwarmHandle,
    client: PluginId,
    target: impl Into<StreamTarget>,
    upload: u64,
    download: u64,
) -> Result<Run, PerfError> {
    let (request, run) = PerfRequest::new(target, upload, download);
    send(handle, client, request)?;
    Ok(run)
}

/// Hand a request to the [`PerfClient`] plugin `client`. If no plugin has
/// that id, the run ends with [`PerfError::SwarmStopped`].
pub fn send(handle: &SwarmHandle, client: PluginId, request: PerfRequest) -> Result<(), PerfError> {
    handle.send_message(client, request)?;
    Ok(())
}

/// One outbound run.
struct ClientRun {
    progress: Arc<Progress>,
    reply: Sender<RunResult>,
    /// The 8-byte header, until it is handed to the swarm.
    header: Option<Bytes>,
    /// Upload bytes still to write.
    left: u64,
    upload: u64,
    download: u64,
    start: Instant,
    /// We may write: the peer accepted the protocol, or the run is optimistic.
    may_write: bool,
    /// When the upload was written and our side finished.
    upload_done: Option<Instant>,
}

/// Runs perf transfers asked for with [`PerfRequest`] messages. Sends the
/// header and upload once the peer accepted the protocol (or at once, for
/// [`PerfRequest::optimistic`] runs), the upload from a static zero buffer;
/// received bytes are counted and dropped.
#[derive(Default)]
pub struct PerfClient {
    runs: HashMap<StreamRef, ClientRun>,
}

impl PerfClient {
    /// A client with no runs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Write the header, then upload, then finish.
    fn pump(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        let Some(run) = self.runs.get_mut(&stream) else {
            return;
        };
        if run.upload_done.is_some() || !run.may_write {
            return;
        }
        match write_request(ctx, stream, run) {
            Ok(true) => run.upload_done = Some(ctx.now()),
            Ok(false) => {}
            Err(e) => self.end(ctx, stream, Err(PerfError::from(e))),
        }
    }

    /// Remove a run and send its result.
    fn end(&mut self, ctx: &mut Context<'_>, stream: StreamRef, result: RunResult) {
        let Some(run) = self.runs.remove(&stream) else {
            return;
        };
        match &result {
            Ok(report) => debug!(%stream, ?report, "perf run done"),
            Err(error) => {
                // Drop whatever is left of the stream; it may already be gone.
                let _ = ctx.abort(stream, RESET_CODE);
                warn!(%stream, %error, "perf run failed");
            }
        }
        // The requester may have given up; nothing else to do then.
        let _ = run.reply.send(result);
    }
}

impl Protocol for PerfClient {
    fn name(&self) -> &'static str {
        "perf-client"
    }

    fn handle_message(&mut self, ctx: &mut Context<'_>, message: Message) {
        let Ok(request) = message.downcast::<PerfRequest>() else {
            return;
        };
        let PerfRequest {
            target,
            upload,
            download,
            optimistic,
            progress,
            reply,
        } = *request;
        let stream = match ctx.open_stream(target, PROTOCOL_ID) {
            Ok(s) => s,
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return;
            }
        };
        debug!(%stream, upload, download, "perf run started");
        let header = Some(Bytes::copy_from_slice(&download.to_be_bytes()));
        self.runs.insert(
            stream,
            ClientRun {
                progress,
                reply,
                header,
                left: upload,
                upload,
                download,
                start: ctx.now(),
                may_write: optimistic,
                upload_done: None,
            },
        );
        self.pump(ctx, stream);
    }

    fn handle_stream_negotiated(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _: &str) {
        if let Some(run) = self.runs.get_mut(&stream) {
            run.may_write = true;
            self.pump(ctx, stream);
        }
    }

    fn handle_stream_writable(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        self.pump(ctx, stream);
    }

    fn handle_stream_data(&mut self, _: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        if let Some(run) = self.runs.get(&stream) {
            run.progress.add_downloaded(data.len() as u64);
        }
    }

    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        let Some(run) = self.runs.get(&stream) else {
            return;
        };
        let received = run.progress.downloaded();
        let result = match run.upload_done {
            _ if received != run.download => Err(PerfError::WrongByteCount {
                expected: run.download,
                received,
            }),
            // The server must read to our EOF before it answers; an early
            // EOF from it means the upload was not all taken.
            None => Err(PerfError::EndedEarly),
            Some(upload_done) => {
                let now = ctx.now();
                Ok(PerfReport {
                    bytes_up: run.upload,
                    bytes_down: received,
                    upload_time: upload_done - run.start,
                    download_time: now - upload_done,
                    total_time: now - run.start,
                })
            }
        };
        self.end(ctx, stream, result);
    }

    /// The server stopped our upload. Before it was all sent, the run
    /// cannot succeed; after our FIN, the stop changes nothing (the server
    /// had read the upload) and the download goes on.
    fn handle_stream_stopped(&mut self, ctx: &mut Context<'_>, stream: StreamRef, code: u64) {
        match self.runs.get(&stream) {
            Some(run) if run.upload_done.is_none() => {
                self.end(ctx, stream, Err(StreamError::Stopped(code).into()));
            }
            Some(_) => debug!(%stream, code, "perf upload stopped after our end of stream"),
            None => {}
        }
    }

    fn handle_stream_closed(
        &mut self,
        ctx: &mut Context<'_>,
        stream: StreamRef,
        reason: &StreamError,
    ) {
        self.end(ctx, stream, Err(reason.clone().into()));
    }
}

/// Send the header, write what the window takes of the upload, and finish
/// after it; `Ok(true)` once finished, `Ok(false)` to go on when writable.
///
/// The header is a bounded message, so it goes through the swarm's send
/// queue; the upload (up to any size) is written from the static zero
/// buffer only as the window takes it, never queued. While the header
/// waits in the queue, the upload's writes take nothing and the swarm
/// calls `handle_stream_writable` once there is room.
fn write_request(
    ctx: &mut Context<'_>,
    stream: StreamRef,
    run: &mut ClientRun,
) -> Result<bool, StreamError> {
    if let Some(header) = run.header.take() {
        ctx.send(stream, header)?;
    }
    let n = send_zeros(ctx, stream, &mut run.left)?;
    run.progress.add_uploaded(n);
    if run.left > 0 {
        return Ok(false);
    }
    ctx.finish(stream)?;
    Ok(true)
}

/// Size of the buffers [`run_blocking`] writes from and reads into.
const BLOCKING_BUFFER: usize = 64 * 1024;

/// Run one transfer on a thread: open a stream through `handle`, then use
/// blocking reads and writes. Slower than the plugin (each write is copied
/// into the hand-off buffer) but needs no plugin. Each blocking step waits
/// at most `timeout`.
pub fn run_blocking(
    handle: &SwarmHandle,
    target: impl Into<StreamTarget>,
    upload: u64,
    download: u64,
    timeout: Duration,
) -> RunResult {
    let start = Instant::now();
    let mut stream = handle.open_stream(target, PROTOCOL_ID, timeout)?;
    stream.set_timeout(Some(timeout));
    let io = |e: std::io::Error| PerfError::Io(e.to_string());
    stream.write_all(&download.to_be_bytes()).map_err(io)?;
    upload_blocking(&mut stream, upload).map_err(io)?;
    stream.finish().map_err(io)?;
    let upload_done = Instant::now();
    let received = drain_blocking(&mut stream).map_err(io)?;
    let end = Instant::now();
    if received != download {
        return Err(PerfError::WrongByteCount {
            expected: download,
            received,
        });
    }
    Ok(PerfReport {
        bytes_up: upload,
        bytes_down: received,
        upload_time: upload_done - start,
        download_time: end - upload_done,
        total_time: end - start,
    })
}

fn upload_blocking(stream: &mut DetachedStream, mut left: u64) -> std::io::Result<()> {
    let zeros = chunk(BLOCKING_BUFFER);
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(zeros.len());
        stream.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    Ok(())
}

fn drain_blocking(stream: &mut DetachedStream) -> std::io::Result<u64> {
    let mut buf = vec![0u8; BLOCKING_BUFFER];
    let mut total = 0u64;
    loop {
        match stream.read(&mut buf)? {
            0 => return Ok(total),
            n => total += n as u64,
        }
    }
}
