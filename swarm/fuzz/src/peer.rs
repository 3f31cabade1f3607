//! A scripted peer for the protocol targets: a plugin that claims some
//! protocol ids, records everything the swarm tells it, and answers inbound
//! streams the way the script says (echo, corrupt, stay silent, …). The
//! fuzz driver acts through `Swarm::with_context` with the plugin's id.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use swarm::{Bytes, ConnId, Context, PeerId, Protocol, ProtocolEvent, StreamError, StreamRef};

/// Received bytes kept per stream (the count goes on beyond).
pub const KEEP: usize = 64 * 1024;

/// How the peer answers data on streams the remote opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Answer {
    /// Record only.
    #[default]
    Silent,
    /// Send every chunk back as it came.
    Echo,
    /// Send every chunk back with its first byte flipped.
    Corrupt,
    /// Send every chunk back with one byte more.
    Extra,
    /// Finish our side on the first data.
    Finish,
    /// Reset the stream on the first data.
    Reset,
}

impl Answer {
    /// One of the modes, from a byte.
    pub fn from_byte(b: u8) -> Self {
        match b % 6 {
            0 => Answer::Silent,
            1 => Answer::Echo,
            2 => Answer::Corrupt,
            3 => Answer::Extra,
            4 => Answer::Finish,
            _ => Answer::Reset,
        }
    }
}

/// What happened on one stream.
#[derive(Debug, Default)]
pub struct StreamLog {
    /// The protocol (ours when we opened it, negotiated when inbound).
    pub protocol: String,
    /// The remote opened it.
    pub inbound: bool,
    /// Our outbound stream was accepted by the remote.
    pub negotiated: bool,
    /// The first [`KEEP`] received bytes.
    pub data: Vec<u8>,
    /// All received bytes, counted.
    pub received: u64,
    /// Bytes we wrote (accepted by `write`).
    pub written: Vec<u8>,
    /// The remote finished its side.
    pub finished: bool,
    /// The stream died (the last reason).
    pub closed: Option<StreamError>,
    /// We finished our side.
    pub we_finished: bool,
    /// We reset or stopped it.
    pub we_aborted: bool,
    /// We wrote something other than an exact echo.
    pub tampered: bool,
}

/// Everything the peer saw.
#[derive(Debug, Default)]
pub struct Log {
    /// Connections as they were established.
    pub conns: Vec<(ConnId, PeerId)>,
    /// Connections as they closed.
    pub closed_conns: Vec<ConnId>,
    /// Every stream, in id order.
    pub streams: BTreeMap<StreamRef, StreamLog>,
    /// Streams in the order we learned of them.
    pub order: Vec<StreamRef>,
    /// Events from other plugins of the same swarm.
    pub events: Vec<ProtocolEvent>,
    /// How to answer inbound data.
    pub answer: Answer,
    /// Answer only on inbound streams of this protocol (all when `None`).
    pub answer_only: Option<String>,
    /// Dials that failed.
    pub dial_failures: usize,
    /// Stop reading (stop_sending) a stream once this many bytes arrived.
    pub stop_after: u64,
}

impl Log {
    fn stream(&mut self, s: StreamRef) -> &mut StreamLog {
        if !self.streams.contains_key(&s) {
            self.order.push(s);
        }
        self.streams.entry(s).or_default()
    }
}

/// Shared access to a [`Log`].
#[derive(Clone, Default)]
pub struct Shared(pub Arc<Mutex<Log>>);

impl Shared {
    /// Lock the log (a poisoned lock still holds a usable log).
    pub fn lock(&self) -> MutexGuard<'_, Log> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The scripted peer plugin.
pub struct Peer {
    ids: Vec<String>,
    log: Shared,
}

impl Peer {
    /// A peer claiming `ids`, recording into a new log.
    pub fn new(ids: &[&str]) -> (Self, Shared) {
        let log = Shared(Arc::new(Mutex::new(Log {
            stop_after: u64::MAX,
            ..Log::default()
        })));
        let ids = ids.iter().map(|s| s.to_string()).collect();
        (
            Self {
                ids,
                log: log.clone(),
            },
            log,
        )
    }
}

/// Write `data` on `s`, recording what the stream took.
pub fn write(ctx: &mut Context<'_>, log: &Shared, s: StreamRef, data: &[u8]) -> usize {
    let n = ctx.write(s, data).unwrap_or(0);
    log.lock().stream(s).written.extend_from_slice(&data[..n]);
    n
}

/// Open a stream for `protocol` and record it.
pub fn open(
    ctx: &mut Context<'_>,
    log: &Shared,
    conn: ConnId,
    protocol: &str,
) -> Option<StreamRef> {
    let s = ctx.open_stream(conn, protocol).ok()?;
    log.lock().stream(s).protocol = protocol.to_string();
    Some(s)
}

/// Finish our side of `s`, recording it.
pub fn finish(ctx: &mut Context<'_>, log: &Shared, s: StreamRef) {
    if ctx.finish(s).is_ok() {
        log.lock().stream(s).we_finished = true;
    }
}

/// Reset and stop `s`, recording it.
pub fn abort(ctx: &mut Context<'_>, log: &Shared, s: StreamRef, code: u64) {
    let _ = ctx.reset(s, code);
    let _ = ctx.stop_sending(s, code);
    log.lock().stream(s).we_aborted = true;
}

impl Protocol for Peer {
    fn name(&self) -> &'static str {
        "scripted-peer"
    }

    fn protocol_ids(&self) -> Vec<String> {
        self.ids.clone()
    }

    fn handle_new_connection(&mut self, _: &mut Context<'_>, conn: ConnId, peer: PeerId) {
        self.log.lock().conns.push((conn, peer));
    }

    fn handle_closed_connection(&mut self, _: &mut Context<'_>, conn: ConnId, _: PeerId) {
        self.log.lock().closed_conns.push(conn);
    }

    fn handle_dial_failure(&mut self, _: &mut Context<'_>, _: ConnId, _: &swarm::DialError) {
        self.log.lock().dial_failures += 1;
    }

    fn accept_inbound_stream(&mut self, _: &mut Context<'_>, s: StreamRef, protocol: &str) {
        let mut log = self.log.lock();
        let entry = log.stream(s);
        entry.protocol = protocol.to_string();
        entry.inbound = true;
    }

    fn handle_stream_negotiated(&mut self, _: &mut Context<'_>, s: StreamRef, _: &str) {
        self.log.lock().stream(s).negotiated = true;
    }

    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, s: StreamRef, data: Bytes) {
        let (answer, stop) = {
            let mut log = self.log.lock();
            let (answer, stop_after) = (log.answer, log.stop_after);
            let entry = log.stream(s);
            let room = KEEP.saturating_sub(entry.data.len()).min(data.len());
            entry.data.extend_from_slice(&data[..room]);
            entry.received += data.len() as u64;
            let stop = entry.received > stop_after && !entry.we_aborted;
            let answers = log
                .answer_only
                .as_ref()
                .is_none_or(|p| *p == log.streams[&s].protocol);
            let entry = log.stream(s);
            (answers.then_some(answer).filter(|_| entry.inbound), stop)
        };
        if stop {
            abort(ctx, &self.log, s, 7);
            return;
        }
        match answer {
            None | Some(Answer::Silent) => {}
            Some(Answer::Echo) => {
                write(ctx, &self.log, s, &data);
            }
            Some(Answer::Corrupt) => {
                let mut bad = data.to_vec();
                if let Some(b) = bad.first_mut() {
                    *b ^= 0x5a;
                }
                write(ctx, &self.log, s, &bad);
                self.log.lock().stream(s).tampered = true;
            }
            Some(Answer::Extra) => {
                write(ctx, &self.log, s, &[&data[..], b"!"].concat());
                self.log.lock().stream(s).tampered = true;
            }
            Some(Answer::Finish) => finish(ctx, &self.log, s),
            Some(Answer::Reset) => abort(ctx, &self.log, s, 3),
        }
    }

    fn handle_stream_finished(&mut self, _: &mut Context<'_>, s: StreamRef) {
        self.log.lock().stream(s).finished = true;
    }

    // The remote's STOP_SENDING used to arrive as `handle_stream_closed(Stopped)`.
    fn handle_stream_stopped(&mut self, ctx: &mut Context<'_>, stream: StreamRef, code: u64) {
        self.handle_stream_closed(ctx, stream, &StreamError::Stopped(code));
    }

    fn handle_stream_closed(&mut self, _: &mut Context<'_>, s: StreamRef, reason: &StreamError) {
        self.log.lock().stream(s).closed = Some(reason.clone());
    }

    fn handle_protocol_event(&mut self, _: &mut Context<'_>, event: &ProtocolEvent) {
        self.log.lock().events.push(event.clone());
    }
}
