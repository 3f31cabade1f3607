//! `/libp2p/test/data`, the legacy protocol of the Zig bandwidth_perf.
//!
//! After negotiation the server streams data until the client stops reading
//! (STOP_SENDING) or resets the stream; that is the normal end, not an
//! error. The client counts bytes until it has the amount it wants, then
//! stops the stream cleanly: stop-sending for the server's side, finish for
//! its own.
//!
//! - [`TestDataServer`]: the server plugin; emits [`TestDataServed`] per stream.
//! - [`TestDataClient`]: the client plugin, driven by [`TestDataRequest`]
//!   messages to its `PluginId` (see [`start`]); reports through a [`Run`]
//!   like perf.
//!
//! The server's data is endless, so it is written from a static zero
//! buffer only as the send window takes it, never queued.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Instant;

use swarm::{
    Bytes, Context, Message, PeerId, PluginId, Protocol, StreamError, StreamRef, StreamTarget,
    SwarmHandle,
};
use tracing::{debug, warn};

use crate::perf::zeros::send_zeros;
use crate::perf::{PerfError, PerfReport, Progress, Run, RunResult};

/// The protocol id.
pub const PROTOCOL_ID: &str = "/libp2p/test/data";

/// The code our client stops the server's side with: "enough", not a fault.
pub const STOP_CODE: u64 = 0;

/// Stream error code for a client run that failed.
const RESET_CODE: u64 = 1;

/// Emitted by the server when a client stopped (or reset) a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestDataServed {
    /// The client.
    pub peer: PeerId,
    /// The stream.
    pub stream: StreamRef,
    /// Bytes handed to QUIC before the client stopped; the client may have
    /// read fewer (the rest was in flight).
    pub bytes_sent: u64,
}

/// Streams zeros on every inbound `/libp2p/test/data` stream until the
/// client stops reading.
#[derive(Default)]
pub struct TestDataServer {
    /// Per stream: the client and the bytes sent so far.
    streams: HashMap<StreamRef, (PeerId, u64)>,
}

impl TestDataServer {
    /// A server with no streams.
    pub fn new() -> Self {
        Self::default()
    }

    fn pump(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        let Some((_, sent)) = self.streams.get_mut(&stream) else {
            return;
        };
        // Endless: the client decides when it has enough.
        let mut left = u64::MAX;
        match send_zeros(ctx, stream, &mut left) {
            Ok(n) => *sent += n,
            Err(e) => self.ended(ctx, stream, &e),
        }
    }

    /// The stream ended, by the client's choice or not.
    fn ended(&mut self, ctx: &mut Context<'_>, stream: StreamRef, reason: &StreamError) {
        let Some((peer, bytes_sent)) = self.streams.remove(&stream) else {
            return;
        };
        // Release the stream both ways; a side already over is left alone
        // and a stream already gone makes this fail harmlessly.
        let code = match reason {
            // The client stopping or resetting is how every run ends. A write
            // can also find the stream stopped (or already gone, with the
            // client's FIN) before `handle_stream_stopped` came round. Only
            // the client's side is left to end: "stop", not a fault.
            StreamError::Stopped(_) | StreamError::Reset(_) | StreamError::UnknownStream(_) => {
                debug!(%stream, %peer, bytes_sent, %reason, "test-data client stopped reading");
                STOP_CODE
            }
            _ => {
                warn!(%stream, %peer, bytes_sent, %reason, "test-data stream failed");
                RESET_CODE
            }
        };
        let _ = ctx.abort(stream, code);
        ctx.emit(TestDataServed {
            peer,
            stream,
            bytes_sent,
        });
    }
}

impl Protocol for TestDataServer {
    fn name(&self) -> &'static str {
        "test-data-server"
    }

    fn protocol_ids(&self) -> Vec<String> {
        vec![PROTOCOL_ID.to_string()]
    }

    fn accept_inbound_stream(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _: &str) {
        let Some(peer) = ctx.connection_peer(stream.conn) else {
            let _ = ctx.abort(stream, RESET_CODE);
            return;
        };
        debug!(%stream, %peer, "test-data stream accepted");
        self.streams.insert(stream, (peer, 0));
        self.pump(ctx, stream);
    }

    fn handle_stream_writable(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        self.pump(ctx, stream);
    }

    // Whatever the client sends is ignored, and its end of stream too: the
    // client finishes its side when it stops ours.

    /// The client has enough: the normal end of a run.
    fn handle_stream_stopped(&mut self, ctx: &mut Context<'_>, stream: StreamRef, code: u64) {
        self.ended(ctx, stream, &StreamError::Stopped(code));
    }

    fn handle_stream_closed(
        &mut self,
        ctx: &mut Context<'_>,
        stream: StreamRef,
        reason: &StreamError,
    ) {
        self.ended(ctx, stream, reason);
    }
}

/// Ask a [`TestDataClient`] plugin to download `bytes` bytes: a message to
/// that plugin's [`PluginId`], sent with [`SwarmHandle::send_message`] (or
/// use [`start`]) or, from another plugin, with [`Context::send_message`].
#[derive(Debug)]
pub struct TestDataRequest {
    target: StreamTarget,
    bytes: u64,
    /// The run's counters and reply channel; the plugin takes them over.
    progress: Arc<Progress>,
    reply: Sender<RunResult>,
}

impl TestDataRequest {
    /// A request to download `bytes` bytes from `target`, and its [`Run`].
    pub fn new(target: impl Into<StreamTarget>, bytes: u64) -> (Self, Run) {
        let (run, progress, reply) = Run::new();
        let request = Self {
            target: target.into(),
            bytes,
            progress,
            reply,
        };
        (request, run)
    }
}

/// Start a download through the [`TestDataClient`] plugin `client` (the id
/// `add_protocol` returned for it).
pub fn start(
    handle: &SwarmHandle,
    client: PluginId,
    target: impl Into<StreamTarget>,
    bytes: u64,
) -> Result<Run, PerfError> {
    let (request, run) = TestDataRequest::new(target, bytes);
    handle.send_message(client, request)?;
    Ok(run)
}

/// One download.
struct ClientRun {
    progress: Arc<Progress>,
    reply: Sender<RunResult>,
    wanted: u64,
    start: Instant,
}

/// Runs downloads asked for with [`TestDataRequest`] messages: counts bytes until it
/// has the amount wanted (bytes past it in the last chunk are not counted),
/// then stops the stream cleanly.
#[derive(Default)]
pub struct TestDataClient {
    runs: HashMap<StreamRef, ClientRun>,
}

impl TestDataClient {
    /// A client with no runs.
    pub fn new() -> Self {
        Self::default()
    }

    fn end(&mut self, ctx: &mut Context<'_>, stream: StreamRef, result: RunResult) {
        let Some(run) = self.runs.remove(&stream) else {
            return;
        };
        match &result {
            Ok(report) => {
                debug!(%stream, ?report, "test-data download done");
                // Enough: stop the server's side and end ours cleanly.
                let _ = ctx.stop_sending(stream, STOP_CODE);
                let _ = ctx.finish(stream);
            }
            Err(error) => {
                let _ = ctx.abort(stream, RESET_CODE);
                warn!(%stream, %error, "test-data download failed");
            }
        }
        let _ = run.reply.send(result);
    }
}

impl Protocol for TestDataClient {
    fn name(&self) -> &'static str {
        "test-data-client"
    }

    fn handle_message(&mut self, ctx: &mut Context<'_>, message: Message) {
        let Ok(request) = message.downcast::<TestDataRequest>() else {
            return;
        };
        let TestDataRequest {
            target,
            bytes,
            progress,
            reply,
        } = *request;
        match ctx.open_stream(target, PROTOCOL_ID) {
            Ok(stream) => {
                debug!(%stream, bytes, "test-data download started");
                let run = ClientRun {
                    progress,
                    reply,
                    wanted: bytes,
                    start: ctx.now(),
                };
                self.runs.insert(stream, run);
            }
            Err(e) => {
                let _ = reply.send(Err(e.into()));
            }
        }
    }

    fn handle_stream_negotiated(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _: &str) {
        // Nothing wanted: the server accepting the protocol is the whole run.
        if self.runs.get(&stream).is_some_and(|run| run.wanted == 0) {
            self.handle_stream_data(ctx, stream, Bytes::new());
        }
    }

    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        let Some(run) = self.runs.get(&stream) else {
            return;
        };
        let have = run.progress.downloaded();
        let take = (run.wanted - have).min(data.len() as u64);
        run.progress.add_downloaded(take);
        if have + take == run.wanted {
            let time = ctx.now() - run.start;
            let report = PerfReport {
                bytes_up: 0,
                bytes_down: run.wanted,
                upload_time: Default::default(),
                download_time: time,
                total_time: time,
            };
            self.end(ctx, stream, Ok(report));
        }
    }

    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        // The server never ends first; if it does, we got too little.
        if let Some(run) = self.runs.get(&stream) {
            let error = PerfError::WrongByteCount {
                expected: run.wanted,
                received: run.progress.downloaded(),
            };
            self.end(ctx, stream, Err(error));
        }
    }

    /// The server stopped our send side, on which we send nothing but our
    /// final FIN: the download is unaffected and goes on.
    fn handle_stream_stopped(&mut self, _: &mut Context<'_>, stream: StreamRef, code: u64) {
        debug!(%stream, code, "test-data server stopped our (empty) side");
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
