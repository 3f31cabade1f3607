//! Where a stream gets negotiated: multistream-select on inbound streams
//! (accept) and outbound ones (open), writing what the negotiation queues,
//! and handing the negotiated stream to its owner (a plugin, a thread, or a
//! packet flow).

use bytes::Bytes;
use tracing::{debug, trace, warn};

use crate::detached_stream::{DetachedStream, Shared};
use crate::error::{OpenStreamError, StreamError};
use crate::events::{PacketFlow, StreamTarget};
use crate::ids::{PluginId, StreamId, StreamRef};
use crate::multistream::Negotiation;
use crate::stream::{HandleWaiter, Opener, Owner, RecvState, SendState, Stream};
use crate::transport::SendError;

use super::core::Core;
use super::queues::Callback;
use crate::codes::RESET_CODE_NEGOTIATION;

impl Core {
    /// Take every stream the remote opened and start negotiating it, up to
    /// the limit of streams negotiating at once.
    pub(crate) fn accept_streams(&mut self, index: usize) {
        let id = self.conn_id(index);
        let max_negotiating = self.config.limits.max_negotiating_streams;
        let deadline = self.now + self.config.limits.negotiation_timeout;
        loop {
            let conn = &mut self.connections[index];
            let Some(sid) = conn.transport.accept_stream() else {
                break;
            };
            if conn.closing {
                continue;
            }
            if conn.negotiating_streams() >= max_negotiating {
                debug!(conn = %id, "too many negotiating streams; resetting a new one");
                let code = u64::from(RESET_CODE_NEGOTIATION);
                conn.transport.stop(sid, code);
                conn.transport.reset(sid, code);
                continue;
            }
            let negotiation = Negotiation::listener(self.config.multistream);
            conn.streams.insert(
                sid,
                Stream::new(Owner::Negotiating {
                    negotiation: Box::new(negotiation),
                    opener: Opener::Remote,
                    deadline,
                }),
            );
            self.arm_negotiation_deadline(index);
            self.flush_negotiation(index, sid);
            self.update_idle(index);
            self.read_stream(index, sid);
        }
    }

    /// Write what multistream-select queued (header, echo, `na`).
    pub(crate) fn flush_negotiation(&mut self, index: usize, sid: StreamId) {
        let conn = &mut self.connections[index];
        let Some(stream) = conn.streams.get_mut(&sid) else {
            return;
        };
        let Owner::Negotiating { negotiation, .. } = &mut stream.owner else {
            return;
        };
        let out = negotiation.take_outbound();
        if out.is_empty() {
            return;
        }
        // Behind whatever is still waiting, so the messages keep their order.
        stream.queue(out);
        // Other streams may have used up the connection's send window: what
        // does not fit waits for `Writable`, ahead of the owner's data.
        match stream.write_unsent(&mut conn.transport, sid) {
            Ok(_) => {}
            Err(SendError::Stopped(_)) => {
                // A write-only optimistic dialer (rust-libp2p's identify
                // push) sends its message, FIN and STOP_SENDING at once: our
                // echo cannot go out, but its data must still be delivered.
                stream.close_send();
            }
            Err(_) => {
                let sref = StreamRef {
                    conn: self.conn_id(index),
                    id: sid,
                };
                self.fail_stream(sref, StreamError::SendClosed);
            }
        }
        self.touch(index);
    }

    /// A listener's negotiation went past the round cap: rather than reset
    /// (which may discard what we already answered), send the header and
    /// the answer to each proposal up to the cap, then FIN, so the dialer
    /// reads why; stop its side. The stream then only drains.
    pub(crate) fn refuse_negotiation(&mut self, sref: StreamRef, error: StreamError) {
        let index = sref.conn.index as usize;
        debug!(stream = %sref, %error, "stream failed; our answers drain, then FIN");
        self.flush_negotiation(index, sref.id);
        let Some(conn) = self.connections.get_mut(index) else {
            return;
        };
        let Some(stream) = conn.streams.get_mut(&sref.id) else {
            return; // the flush failed the stream already
        };
        stream.owner = Owner::Draining;
        stream.keeps_alive = false;
        if stream.recv_open() {
            conn.transport
                .stop(sref.id, u64::from(RESET_CODE_NEGOTIATION));
            stream.recv = RecvState::Closed;
        }
        if stream.send_open() {
            stream.send = if !stream.unsent.is_empty() {
                SendState::FinishQueued
            } else if conn.transport.finish(sref.id).is_ok() {
                SendState::Finishing
            } else {
                SendState::Closed
            };
        }
        self.touch(index);
        self.update_idle(index);
        self.maybe_remove_stream(index, sref.id);
    }

    /// Open a stream for a plugin (or, with `None`, for no one: tests).
    pub(crate) fn open_stream(
        &mut self,
        target: StreamTarget,
        protocol: &str,
        plugin: Option<PluginId>,
    ) -> Result<StreamRef, OpenStreamError> {
        let opener = plugin.map_or(Opener::Remote, Opener::Plugin);
        self.open_stream_inner(target, protocol, opener)
    }

    /// Open a stream for a [`SwarmHandle`](crate::SwarmHandle); the result
    /// (a [`DetachedStream`] or the error) goes to `reply`.
    pub(crate) fn open_stream_for_handle(
        &mut self,
        target: StreamTarget,
        protocol: &str,
        reply: HandleWaiter,
    ) {
        if let Err(e) = self.open_stream_inner(target, protocol, Opener::Handle(reply.clone())) {
            let _ = reply.send(Err(e));
        }
    }

    /// Open a stream and start negotiating `protocol` on it; `opener` says
    /// who gets it once negotiated.
    pub(crate) fn open_stream_inner(
        &mut self,
        target: StreamTarget,
        protocol: &str,
        opener: Opener,
    ) -> Result<StreamRef, OpenStreamError> {
        if self.shutting_down {
            return Err(OpenStreamError::ShuttingDown);
        }
        let conn_id = self.target_conn(target)?;
        let deadline = self.now + self.config.limits.negotiation_timeout;
        let limits = self.config.multistream;
        let conn = self
            .conn_mut(conn_id)
            .ok_or(OpenStreamError::UnknownConnection(conn_id))?;
        if !conn.established {
            return Err(OpenStreamError::NotEstablished(conn_id));
        }
        let sid = conn
            .transport
            .open_stream()
            .ok_or(OpenStreamError::TooManyStreams)?;
        conn.streams.insert(
            sid,
            Stream::new(Owner::Negotiating {
                negotiation: Box::new(Negotiation::dialer(protocol, limits)),
                opener,
                deadline,
            }),
        );
        let index = conn_id.index as usize;
        self.arm_negotiation_deadline(index);
        self.flush_negotiation(index, sid);
        self.update_idle(index);
        trace!(stream = %StreamRef { conn: conn_id, id: sid }, protocol, "opened stream");
        Ok(StreamRef {
            conn: conn_id,
            id: sid,
        })
    }

    /// Negotiation settled on `protocol`: hand the stream (and whatever
    /// arrived behind the negotiation, `remainder`) to its owner.
    pub(crate) fn on_negotiated(
        &mut self,
        index: usize,
        sid: StreamId,
        protocol: String,
        remainder: Bytes,
    ) {
        let sref = StreamRef {
            conn: self.conn_id(index),
            id: sid,
        };
        self.flush_negotiation(index, sid);
        let Some(stream) = self.connections[index].streams.get_mut(&sid) else {
            return;
        };
        let Owner::Negotiating { opener, .. } = &mut stream.owner else {
            return;
        };
        // The opener moves into the new owner; `Remote` is a placeholder
        // that the match below always replaces.
        let opener = std::mem::replace(opener, Opener::Remote);
        stream.protocol = Some(protocol.clone());
        trace!(stream = %sref, %protocol, "negotiated");
        let flow = PacketFlow(sref);
        let (owner, callback) = match opener {
            Opener::Handle(reply) => {
                let limit = self.config.limits.threaded_stream_buffer;
                let shared = Shared::new(sref, limit, self.notifier.clone());
                if !remainder.is_empty() {
                    let mut st = shared.lock();
                    st.recv_len += remainder.len();
                    st.recv.push_back(remainder);
                }
                stream.owner = Owner::Thread(shared.clone());
                self.handed_to_threads += 1;
                // If the requester gave up, the handle is dropped with the
                // message, which already asks to close the stream.
                let _ = reply.send(Ok(DetachedStream::new(shared)));
                self.pump_thread_stream(sref);
                return;
            }
            Opener::Flow(p) => (
                Owner::FlowControl {
                    plugin: p,
                    thread: None,
                },
                Callback::FlowReady(p, flow, protocol),
            ),
            Opener::Plugin(p) => (Owner::Plugin(p), Callback::Negotiated(p, sref, protocol)),
            Opener::Remote => match self.protocols.get(&protocol) {
                Some(&p) => (Owner::Plugin(p), Callback::Inbound(p, sref, protocol)),
                None => match self.packet_protocols.get(&protocol) {
                    Some(&p) => (
                        Owner::FlowControl {
                            plugin: p,
                            thread: None,
                        },
                        Callback::InboundFlow(p, flow, protocol),
                    ),
                    None => {
                        // multistream only accepts protocols in the table.
                        warn!(stream = %sref, %protocol, "negotiated a protocol no plugin owns");
                        self.fail_stream(sref, StreamError::EndedDuringNegotiation);
                        return;
                    }
                },
            },
        };
        stream.owner = owner;
        self.callbacks.push_back(callback);
        if remainder.is_empty() {
            return;
        }
        match &stream.owner {
            Owner::Plugin(p) => self
                .callbacks
                .push_back(Callback::Data(*p, sref, remainder)),
            // A flow's control stream carries no data (as in `read_stream`).
            _ => debug!(
                stream = %sref,
                bytes = remainder.len(),
                "dropped data on a packet flow's control stream"
            ),
        }
    }
}
