//! The stream table's entries: one per live bidirectional stream.
//!
//! A stream's state is three small machines instead of a heap of flags:
//!
//! - [`Owner`]: who gets its data. It starts [`Owner::Negotiating`]
//!   (multistream-select, remembering who opened it), then belongs to a
//!   plugin ([`Owner::Plugin`]), to a thread through a
//!   [`DetachedStream`] ([`Owner::Thread`]), or is a packet flow's control
//!   stream ([`Owner::FlowControl`]), which carries no data; or carries a
//!   whole relayed connection ([`Owner::Carrier`]); a stream we
//!   refused while negotiating only drains ([`Owner::Draining`]).
//! - [`SendState`]: open, finish waiting for the queue, finishing, closed.
//! - [`RecvState`]: open or closed.
//!
//! Which calls a stream accepts follows from its owner alone; see
//! [`Access`] and `engine/stream_access.rs`, the one accessor every plugin
//! stream call goes through.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::detached_packet_flow::FlowShared;
use crate::detached_stream::{DetachedStream, Shared};
use crate::error::{OpenStreamError, StreamError};
use crate::ids::{PluginId, StreamId, StreamRef};
use crate::multistream::Negotiation;
use crate::transport::{SendError, Transport};

/// Where a handle's `open_stream` result goes.
pub(crate) type HandleWaiter = std::sync::mpsc::Sender<Result<DetachedStream, OpenStreamError>>;

/// Who opened a stream that is still negotiating, so that the negotiated
/// stream goes to the right owner.
pub(crate) enum Opener {
    /// The remote: the negotiated protocol picks the plugin.
    Remote,
    /// A plugin, for a stream of its own.
    Plugin(PluginId),
    /// A plugin, as a packet flow's control stream.
    Flow(PluginId),
    /// A [`SwarmHandle`](crate::SwarmHandle): a thread waits for a
    /// [`DetachedStream`].
    Handle(HandleWaiter),
}

/// Who receives a stream's data.
pub(crate) enum Owner {
    /// multistream-select is under way.
    Negotiating {
        negotiation: Box<Negotiation>,
        opener: Opener,
        /// When negotiation must be over.
        deadline: Instant,
    },
    /// Negotiated; data goes to the plugin's callbacks.
    Plugin(PluginId),
    /// Handed to a thread through a [`DetachedStream`].
    Thread(Arc<Shared>),
    /// A packet flow's control stream: no data after negotiation; the
    /// flow's packets go to `plugin`, or to a thread once detached.
    FlowControl {
        plugin: PluginId,
        thread: Option<Arc<FlowShared>>,
    },
    /// We refused the stream during negotiation: nobody owns it; what we
    /// answered drains to the remote ahead of our FIN, then it goes.
    Draining,
    /// The stream carries the bytes of a relayed connection, `inner`
    /// (Noise or TLS, then Yamux, as over TCP): what it reads goes to that
    /// connection, and `pending` holds the part of the connection's output
    /// the stream's send window has not taken yet.
    Carrier {
        inner: crate::ids::ConnId,
        pending: Bytes,
    },
}

/// Our send side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SendState {
    /// Writes are taken.
    Open,
    /// The owner finished while bytes were queued: the FIN follows them.
    FinishQueued,
    /// The FIN went to the transport; waiting for the acknowledgement.
    Finishing,
    /// Over: finished and acknowledged, reset, or stopped by the remote.
    Closed,
}

/// Our receive side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecvState {
    /// Data may still arrive.
    Open,
    /// Over: FIN read, reset by the remote, or stopped by us.
    Closed,
}

/// Which kind of caller an operation on a stream comes from; the owner
/// decides whether it may (see `Core::stream_for`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// A plugin's stream call (write, send, finish, reset, …): refused on a
    /// thread's stream, on a packet flow's control stream, and on a stream
    /// a handle opened.
    PluginStream,
    /// A packet-flow call on the flow's control stream.
    FlowControl,
    /// Bookkeeping that applies to any stream (keep-alive).
    Any,
}

/// One stream's state on the swarm thread.
pub(crate) struct Stream {
    pub(crate) owner: Owner,
    pub(crate) send: SendState,
    pub(crate) recv: RecvState,
    /// The protocol id once negotiated.
    pub(crate) protocol: Option<String>,
    /// The owner asked us not to read for now (plugin back-pressure).
    pub(crate) read_paused: bool,
    /// Reading is paused because `unsent` is above the high-water mark.
    pub(crate) queue_paused: bool,
    /// A plugin write was refused for lack of window: tell it when writable.
    pub(crate) wants_writable: bool,
    /// Whether this stream keeps its connection from idling out (a ping
    /// stream does not, as in rust-libp2p).
    pub(crate) keeps_alive: bool,
    /// Bytes waiting for the send window, in order: multistream-select
    /// messages first, then what the owner queued with `Context::send`.
    pub(crate) unsent: VecDeque<Bytes>,
    /// Total length of `unsent`.
    pub(crate) unsent_len: usize,
}

impl Stream {
    pub(crate) fn new(owner: Owner) -> Self {
        Self {
            owner,
            send: SendState::Open,
            recv: RecvState::Open,
            protocol: None,
            read_paused: false,
            queue_paused: false,
            wants_writable: false,
            keeps_alive: true,
            unsent: VecDeque::new(),
            unsent_len: 0,
        }
    }

    /// The plugin that owns or will own the stream, if any.
    pub(crate) fn plugin(&self) -> Option<PluginId> {
        match &self.owner {
            Owner::Negotiating {
                opener: Opener::Plugin(p) | Opener::Flow(p),
                ..
            } => Some(*p),
            Owner::Plugin(p) | Owner::FlowControl { plugin: p, .. } => Some(*p),
            Owner::Negotiating { .. }
            | Owner::Thread(_)
            | Owner::Draining
            | Owner::Carrier { .. } => None,
        }
    }

    /// Whether the stream is, or is being opened as, a packet flow's control stream.
    pub(crate) fn is_flow_control(&self) -> bool {
        matches!(
            self.owner,
            Owner::FlowControl { .. }
                | Owner::Negotiating {
                    opener: Opener::Flow(_),
                    ..
                }
        )
    }

    /// Whether `access` may act on this stream; the error says why not.
    pub(crate) fn check(&self, sref: StreamRef, access: Access) -> Result<(), StreamError> {
        match (access, &self.owner) {
            (Access::Any, _) => Ok(()),
            (_, Owner::Draining) => Err(StreamError::UnknownStream(sref)),
            (_, Owner::Carrier { .. }) => Err(StreamError::CarriesConnection(sref)),
            (_, Owner::Thread(_))
            | (
                _,
                Owner::Negotiating {
                    opener: Opener::Handle(_),
                    ..
                },
            ) => Err(StreamError::Detached(sref)),
            (Access::PluginStream, _) if self.is_flow_control() => {
                Err(StreamError::PacketFlow(sref))
            }
            (Access::PluginStream, _) => Ok(()),
            (Access::FlowControl, Owner::FlowControl { .. }) => Ok(()),
            (Access::FlowControl, _) => Err(StreamError::UnknownStream(sref)),
        }
    }

    pub(crate) fn is_negotiating(&self) -> bool {
        matches!(self.owner, Owner::Negotiating { .. })
    }

    /// When negotiation must be over, while it is under way.
    pub(crate) fn negotiation_deadline(&self) -> Option<Instant> {
        match self.owner {
            Owner::Negotiating { deadline, .. } => Some(deadline),
            _ => None,
        }
    }

    /// Whether our send side still takes writes and a finish.
    pub(crate) fn send_open(&self) -> bool {
        self.send == SendState::Open
    }

    /// Whether our send side is not over yet (open or finishing).
    pub(crate) fn send_live(&self) -> bool {
        self.send != SendState::Closed
    }

    /// Whether the receive side is still open.
    pub(crate) fn recv_open(&self) -> bool {
        self.recv == RecvState::Open
    }

    /// Queue bytes behind whatever is already waiting.
    pub(crate) fn queue(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.unsent_len += data.len();
            self.unsent.push_back(data);
        }
    }

    /// Our send side is over: drop everything queued.
    pub(crate) fn close_send(&mut self) {
        self.send = SendState::Closed;
        self.unsent.clear();
        self.unsent_len = 0;
    }

    /// Both directions are over; the entry can go.
    pub(crate) fn is_done(&self) -> bool {
        self.recv == RecvState::Closed && self.send == SendState::Closed
    }

    /// Write what is queued (multistream-select messages, then the owner's
    /// `send`s), then the FIN the owner asked for meanwhile. `Ok(true)`
    /// once nothing is left, so direct writes may follow; `Ok(false)` while
    /// the send window is full (the transport then reports it writable).
    pub(crate) fn write_unsent(
        &mut self,
        transport: &mut Transport,
        sid: StreamId,
    ) -> Result<bool, SendError> {
        while let Some(front) = self.unsent.front_mut() {
            let before = front.len();
            let written = transport.write_bytes(sid, front)?;
            self.unsent_len -= written;
            if front.is_empty() {
                self.unsent.pop_front();
            } else {
                debug_assert!(written < before);
                return Ok(false);
            }
        }
        if self.send == SendState::FinishQueued {
            self.send = match transport.finish(sid) {
                Ok(()) => SendState::Finishing,
                Err(_) => SendState::Closed,
            };
        }
        Ok(true)
    }

    /// Before a plugin's direct write: `Ok(false)` (nothing may be written
    /// yet, and the plugin hears `handle_stream_writable` later) while
    /// queued bytes still wait for the send window.
    pub(crate) fn queue_sent_for_write(
        &mut self,
        transport: &mut Transport,
        sid: StreamId,
    ) -> Result<bool, StreamError> {
        match self.write_unsent(transport, sid) {
            Ok(true) => Ok(true),
            Ok(false) => {
                self.wants_writable = true;
                Ok(false)
            }
            Err(SendError::Stopped(code)) => Err(StreamError::Stopped(code)),
            Err(_) => Err(StreamError::SendClosed),
        }
    }
}
