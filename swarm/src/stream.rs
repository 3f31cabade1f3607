//! The stream table's entries: one per live QUIC bidirectional stream.
//!
//! A stream starts in multistream-select negotiation, then belongs to one
//! plugin (which gets its data as callbacks) or to a thread (which reads and
//! writes through a [`DetachedStream`](crate::DetachedStream)).

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use quinn_proto::{StreamId, WriteError};

use crate::detached_stream::{DetachedStream, Shared};
use crate::error::{OpenStreamError, StreamError};
use crate::ids::PluginId;
use crate::multistream::Negotiation;

/// Where a handle's `open_stream` result goes.
pub(crate) type HandleWaiter = std::sync::mpsc::Sender<Result<DetachedStream, OpenStreamError>>;

/// Who receives a stream's data.
pub(crate) enum Owner {
    /// Still negotiating. `plugin` is set for streams we opened.
    Negotiating {
        negotiation: Box<Negotiation>,
        plugin: Option<PluginId>,
        /// A `SwarmHandle::open_stream` caller waiting for a thread handle.
        waiter: Option<HandleWaiter>,
        /// When negotiation must be over.
        deadline: std::time::Instant,
    },
    /// Negotiated; data goes to the plugin's callbacks.
    Plugin(PluginId),
    /// Handed to a thread through a `DetachedStream`.
    Thread(Arc<Shared>),
}

/// One stream's state on the swarm thread.
pub(crate) struct Stream {
    pub(crate) owner: Owner,
    /// The protocol id once negotiated.
    pub(crate) protocol: Option<String>,
    /// The owner asked us not to read for now (plugin back-pressure).
    pub(crate) read_paused: bool,
    /// The receive side is over: FIN read, reset, or stopped by us.
    pub(crate) recv_done: bool,
    /// The send side is over: finished and acknowledged, reset, or stopped.
    pub(crate) send_done: bool,
    /// We called `finish` (waiting for the acknowledgement).
    pub(crate) send_finishing: bool,
    /// A plugin write was refused for lack of window: tell it when writable.
    pub(crate) wants_writable: bool,
    /// Whether this stream keeps its connection from idling out (a ping
    /// stream does not, as in rust-libp2p).
    pub(crate) keeps_alive: bool,
    /// This is a packet flow's control stream.
    pub(crate) packet_flow: bool,
    /// The flow was handed to a thread.
    pub(crate) packet_thread: Option<Arc<crate::detached_packet_flow::FlowShared>>,
    /// Bytes waiting for the send window, in order: multistream-select
    /// messages first, then what the owner queued with `Context::send`.
    pub(crate) unsent: VecDeque<Bytes>,
    /// Total length of `unsent`.
    pub(crate) unsent_len: usize,
    /// Reading is paused because `unsent` is above the high-water mark.
    pub(crate) queue_paused: bool,
    /// The owner finished while `unsent` was waiting: send the FIN once it
    /// is out.
    pub(crate) finish_when_drained: bool,
}

impl Stream {
    pub(crate) fn new(owner: Owner) -> Self {
        Self {
            owner,
            protocol: None,
            read_paused: false,
            recv_done: false,
            send_done: false,
            send_finishing: false,
            wants_writable: false,
            keeps_alive: true,
            packet_flow: false,
            packet_thread: None,
            unsent: VecDeque::new(),
            unsent_len: 0,
            queue_paused: false,
            finish_when_drained: false,
        }
    }

    /// The plugin that owns or will own the stream, if any.
    pub(crate) fn plugin(&self) -> Option<PluginId> {
        match &self.owner {
            Owner::Negotiating { plugin, .. } => *plugin,
            Owner::Plugin(p) => Some(*p),
            Owner::Thread(_) => None,
        }
    }

    pub(crate) fn is_negotiating(&self) -> bool {
        matches!(self.owner, Owner::Negotiating { .. })
    }

    /// When negotiation must be over, while it is under way.
    pub(crate) fn negotiation_deadline(&self) -> Option<std::time::Instant> {
        match self.owner {
            Owner::Negotiating { deadline, .. } => Some(deadline),
            _ => None,
        }
    }

    /// Queue bytes behind whatever is already waiting.
    pub(crate) fn queue(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.unsent_len += data.len();
            self.unsent.push_back(data);
        }
    }

    /// Drop everything queued (the send side is over).
    pub(crate) fn clear_queue(&mut self) {
        self.unsent.clear();
        self.unsent_len = 0;
    }

    /// Both directions are over; the entry can go.
    pub(crate) fn is_done(&self) -> bool {
        self.recv_done && self.send_done
    }
}

/// Write what is queued on a stream (multistream-select messages, then the
/// owner's `send`s), then the FIN its owner asked for meanwhile. `Ok(true)`
/// once nothing is left, so direct writes may follow; `Ok(false)` while the
/// send window is full (quinn then reports the stream `Writable`).
pub(crate) fn write_unsent(
    quic: &mut quinn_proto::Connection,
    sid: StreamId,
    stream: &mut Stream,
) -> Result<bool, WriteError> {
    if stream.unsent.is_empty() && !stream.finish_when_drained {
        return Ok(true);
    }
    let mut send = quic.send_stream(sid);
    // Until `Blocked`: only a refused write registers for `Writable`.
    while let Some(front) = stream.unsent.front_mut() {
        let before = front.len();
        match send.write_chunks(std::slice::from_mut(front)) {
            Ok(_) => {
                stream.unsent_len -= before - front.len();
                if front.is_empty() {
                    stream.unsent.pop_front();
                }
            }
            Err(WriteError::Blocked) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    if std::mem::take(&mut stream.finish_when_drained) && send.finish().is_err() {
        stream.send_done = true;
    }
    Ok(true)
}

/// Before a plugin's direct write: `Ok(false)` (nothing may be written yet,
/// and the plugin hears `handle_stream_writable` later) while queued bytes
/// still wait for the send window.
pub(crate) fn queue_sent_for_write(
    quic: &mut quinn_proto::Connection,
    sid: StreamId,
    stream: &mut Stream,
) -> Result<bool, StreamError> {
    match write_unsent(quic, sid, stream) {
        Ok(true) => Ok(true),
        Ok(false) => {
            stream.wants_writable = true;
            Ok(false)
        }
        Err(WriteError::Stopped(code)) => Err(StreamError::Stopped(code.into_inner())),
        Err(_) => Err(StreamError::SendClosed),
    }
}
