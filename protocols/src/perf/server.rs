//! The perf server: read the header and the upload to EOF, then send the
//! requested bytes and finish.

use std::collections::HashMap;
use std::time::Instant;

use swarm::{Bytes, Context, PeerId, Protocol, StreamError, StreamRef};
use tracing::{debug, warn};

use super::header::Header;
use super::run::{PerfError, PerfReport};
use super::zeros::send_zeros;
use super::{PROTOCOL_ID, RESET_CODE};

/// What the server emits (see [`Context::emit`]) when a run ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PerfServerEvent {
    /// The requested bytes were handed to QUIC and the stream finished.
    Finished {
        /// The client.
        peer: PeerId,
        /// The stream the run used.
        stream: StreamRef,
        /// Bytes and times as the server saw them.
        report: PerfReport,
    },
    /// The run failed; only this stream is affected.
    Failed {
        /// The client.
        peer: PeerId,
        /// The stream the run used.
        stream: StreamRef,
        /// Why.
        error: PerfError,
    },
}

/// One inbound run.
struct ServerRun {
    peer: PeerId,
    header: Header,
    /// Upload payload received so far.
    received: u64,
    /// When the stream was accepted.
    start: Instant,
    /// When the client's EOF arrived; from then on we send.
    upload_done: Option<Instant>,
    /// Bytes still to send.
    left: u64,
    /// Bytes sent so far.
    sent: u64,
}

/// Serves `/perf/1.0.0`. Any number of runs at once, each on its own stream;
/// memory per run is a few dozen bytes, whatever the transfer size, since
/// uploads are counted and dropped and downloads come from a static buffer.
#[derive(Default)]
pub struct PerfServer {
    runs: HashMap<StreamRef, ServerRun>,
}

impl PerfServer {
    /// A server with no runs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Send what the window allows; finish and report once all is sent.
    fn pump(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        let Some(run) = self.runs.get_mut(&stream) else {
            return;
        };
        let Some(upload_done) = run.upload_done else {
            return;
        };
        let result = send_zeros(ctx, stream, &mut run.left).and_then(|n| {
            run.sent += n;
            if run.left == 0 {
                ctx.finish(stream).map(|()| true)
            } else {
                Ok(false)
            }
        });
        match result {
            Ok(false) => {}
            Ok(true) => {
                let now = ctx.now();
                let report = PerfReport {
                    bytes_up: run.received,
                    bytes_down: run.sent,
                    upload_time: upload_done - run.start,
                    download_time: now - upload_done,
                    total_time: now - run.start,
                };
                let peer = run.peer;
                self.runs.remove(&stream);
                debug!(%stream, %peer, ?report, "perf run served");
                ctx.emit(PerfServerEvent::Finished {
                    peer,
                    stream,
                    report,
                });
            }
            Err(e) => self.fail(ctx, stream, e.into()),
        }
    }

    /// End a run with an error: reset the stream and tell the application.
    fn fail(&mut self, ctx: &mut Context<'_>, stream: StreamRef, error: PerfError) {
        let Some(run) = self.runs.remove(&stream) else {
            return;
        };
        // The stream may already be gone (that may be why we fail).
        let _ = ctx.abort(stream, RESET_CODE);
        warn!(%stream, peer = %run.peer, %error, "perf run failed");
        ctx.emit(PerfServerEvent::Failed {
            peer: run.peer,
            stream,
            error,
        });
    }
}

impl Protocol for PerfServer {
    fn name(&self) -> &'static str {
        "perf-server"
    }

    fn protocol_ids(&self) -> Vec<String> {
        vec![PROTOCOL_ID.to_string()]
    }

    fn accept_inbound_stream(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _: &str) {
        let Some(peer) = ctx.connection_peer(stream.conn) else {
            // Streams only exist on established connections; be safe anyway.
            let _ = ctx.abort(stream, RESET_CODE);
            return;
        };
        debug!(%stream, %peer, "perf run accepted");
        self.runs.insert(
            stream,
            ServerRun {
                peer,
                header: Header::default(),
                received: 0,
                start: ctx.now(),
                upload_done: None,
                left: 0,
                sent: 0,
            },
        );
    }

    fn handle_stream_data(&mut self, _: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        if let Some(run) = self.runs.get_mut(&stream) {
            // The payload is counted and dropped; only the header is kept.
            let body = if run.header.value().is_some() {
                data.len()
            } else {
                run.header.feed(&data)
            };
            run.received += body as u64;
        }
    }

    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        let Some(run) = self.runs.get_mut(&stream) else {
            return;
        };
        match run.header.value() {
            Some(wanted) => {
                run.left = wanted;
                run.upload_done = Some(ctx.now());
                self.pump(ctx, stream);
            }
            None => {
                let received = run.header.received();
                self.fail(ctx, stream, PerfError::HeaderTruncated { received });
            }
        }
    }

    fn handle_stream_writable(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        self.pump(ctx, stream);
    }

    /// The client will not read the download: the run cannot complete,
    /// whether the upload is still coming or the download is under way.
    fn handle_stream_stopped(&mut self, ctx: &mut Context<'_>, stream: StreamRef, code: u64) {
        if self.runs.contains_key(&stream) {
            self.fail(ctx, stream, StreamError::Stopped(code).into());
        }
    }

    fn handle_stream_closed(
        &mut self,
        ctx: &mut Context<'_>,
        stream: StreamRef,
        reason: &StreamError,
    ) {
        if self.runs.contains_key(&stream) {
            self.fail(ctx, stream, reason.clone().into());
        }
    }
}
