//! Where a stream gets negotiated: multistream-select on inbound streams
//! (accept) and outbound ones (open), writing what the negotiation queues,
//! and handing the negotiated stream to its owner (a plugin, a thread, or a
//! packet flow).

use bytes::Bytes;
use quinn_proto::{Dir, StreamId, VarInt, WriteError};
use tracing::{debug, trace, warn};

use crate::detached_stream::{DetachedStream, Shared};
use crate::error::{OpenStreamError, StreamError};
use crate::events::{PacketFlow, StreamTarget};
use crate::ids::{PluginId, StreamRef};
use crate::multistream::Negotiation;
use crate::stream::{HandleWaiter, Owner, Stream};

use super::core::Core;
use super::queues::Callback;
use crate::codes::RESET_CODE_NEGOTIATION;
use crate::stream::write_unsent;

impl Core {
    pub(crate) fn accept_streams(&mut self, index: usize) {
        let id = self.conn_id(index);
        let max_negotiating = self.config.limits.max_negotiating_streams;
        let deadline = self.now + self.config.limits.negotiation_timeout;
        loop {
            let conn = &mut self.connections[index];
            let Some(sid) = conn.quic.streams().accept(Dir::Bi) else {
                break;
            };
            if conn.closing {
                continue;
            }
            if conn.negotiating_streams() >= max_negotiating {
                debug!(conn = %id, "too many negotiating streams; resetting a new one");
                let code = VarInt::from_u32(RESET_CODE_NEGOTIATION);
                let _ = conn.quic.recv_stream(sid).stop(code);
                let _ = conn.quic.send_stream(sid).reset(code);
                continue;
            }
            let negotiation = Negotiation::listener(self.config.multistream);
            conn.streams.insert(
                sid,
                Stream::new(Owner::Negotiating {
                    negotiation: Box::new(negotiation),
                    plugin: None,
                    waiter: None,
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
        match write_unsent(&mut conn.quic, sid, stream) {
            Ok(_) => {}
            Err(WriteError::Stopped(_)) => {
                // A write-only optimistic dialer (rust-libp2p's identify
                // push) sends its message, FIN and STOP_SENDING at once: our
                // echo cannot go out, but its data must still be delivered.
                stream.send_done = true;
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

    pub(crate) fn open_stream(
        &mut self,
        target: StreamTarget,
        protocol: &str,
        plugin: Option<PluginId>,
    ) -> Result<StreamRef, OpenStreamError> {
        self.open_stream_inner(target, protocol, plugin, None)
    }

    pub(crate) fn open_stream_for_handle(
        &mut self,
        target: StreamTarget,
        protocol: &str,
        reply: HandleWaiter,
    ) {
        if let Err(e) = self.open_stream_inner(target, protocol, None, Some(reply.clone())) {
            let _ = reply.send(Err(e));
        }
    }

    pub(crate) fn open_stream_inner(
        &mut self,
        target: StreamTarget,
        protocol: &str,
        plugin: Option<PluginId>,
        waiter: Option<HandleWaiter>,
    ) -> Result<StreamRef, OpenStreamError> {
        if self.shutting_down {
            return Err(OpenStreamError::ShuttingDown);
        }
        let conn_id = match target {
            StreamTarget::Conn(c) => c,
            StreamTarget::Peer(p) => *self
                .connections_to(&p)
                .first()
                .ok_or(OpenStreamError::NotConnected(p))?,
        };
        let deadline = self.now + self.config.limits.negotiation_timeout;
        let limits = self.config.multistream;
        let conn = self
            .conn_mut(conn_id)
            .ok_or(OpenStreamError::UnknownConnection(conn_id))?;
        if !conn.established {
            return Err(OpenStreamError::NotEstablished(conn_id));
        }
        let sid = conn
            .quic
            .streams()
            .open(Dir::Bi)
            .ok_or(OpenStreamError::TooManyStreams)?;
        conn.streams.insert(
            sid,
            Stream::new(Owner::Negotiating {
                negotiation: Box::new(Negotiation::dialer(protocol, limits)),
                plugin,
                waiter,
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
        let notifier = self.notifier.clone();
        let limit = self.config.limits.threaded_stream_buffer;
        let Some(stream) = self.connections[index].streams.get_mut(&sid) else {
            return;
        };
        let Owner::Negotiating { plugin, waiter, .. } =
            std::mem::replace(&mut stream.owner, Owner::Plugin(PluginId(usize::MAX)))
        else {
            return;
        };
        stream.protocol = Some(protocol.clone());
        trace!(stream = %sref, %protocol, "negotiated");
        if let Some(reply) = waiter {
            let shared = Shared::new(sref, limit, notifier);
            if !remainder.is_empty() {
                let mut st = shared.lock();
                st.recv_len += remainder.len();
                st.recv.push_back(remainder);
            }
            stream.owner = Owner::Thread(shared.clone());
            if reply.send(Ok(DetachedStream::new(shared))).is_err() {
                // The requester gave up; the handle was dropped with the
                // message, which already asked to close the stream.
            }
            self.pump_thread_stream(sref);
            return;
        }
        let flow = PacketFlow(sref);
        let owner = match plugin {
            Some(p) if stream.packet_flow => {
                self.callbacks
                    .push_back(Callback::FlowReady(p, flow, protocol));
                p
            }
            Some(p) => {
                self.callbacks
                    .push_back(Callback::Negotiated(p, sref, protocol));
                p
            }
            None => match self.protocols.get(&protocol) {
                Some(&p) => {
                    self.callbacks
                        .push_back(Callback::Inbound(p, sref, protocol));
                    p
                }
                None if self.packet_protocols.contains_key(&protocol) => {
                    let p = self.packet_protocols[&protocol];
                    stream.packet_flow = true;
                    self.callbacks
                        .push_back(Callback::InboundFlow(p, flow, protocol));
                    p
                }
                None => {
                    // multistream only accepts protocols in the table.
                    warn!(stream = %sref, %protocol, "negotiated a protocol no plugin owns");
                    self.fail_stream(sref, StreamError::EndedDuringNegotiation);
                    return;
                }
            },
        };
        if let Some(stream) = self.connections[index].streams.get_mut(&sid) {
            stream.owner = Owner::Plugin(owner);
        }
        let packet_flow = self.connections[index]
            .streams
            .get(&sid)
            .is_some_and(|s| s.packet_flow);
        if packet_flow && !remainder.is_empty() {
            // A flow's control stream carries no data (as in `read_stream`).
            debug!(stream = %sref, bytes = remainder.len(), "dropped data on a packet flow's control stream");
        } else if !remainder.is_empty() {
            self.callbacks
                .push_back(Callback::Data(owner, sref, remainder));
        }
    }
}
