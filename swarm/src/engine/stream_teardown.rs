//! Stream teardown: kill a stream both ways, tell a removed stream's owner
//! why it died, and remove streams whose both directions are over.

use quinn_proto::{StreamId, VarInt};
use tracing::debug;

use crate::error::{OpenStreamError, PacketError, StreamError};
use crate::events::PacketFlow;
use crate::ids::StreamRef;
use crate::stream::{Owner, Stream};

use super::core::Core;
use super::queues::Callback;
use crate::codes::RESET_CODE_NEGOTIATION;

impl Core {
    /// Kill a stream both ways and tell its owner why.
    pub(crate) fn fail_stream(&mut self, sref: StreamRef, error: StreamError) {
        let index = sref.conn.index as usize;
        let Some(conn) = self.connections.get_mut(index) else {
            return;
        };
        let Some(stream) = conn.streams.remove(&sref.id) else {
            return;
        };
        let code = VarInt::from_u32(RESET_CODE_NEGOTIATION);
        if !stream.recv_done {
            let _ = conn.quic.recv_stream(sref.id).stop(code);
        }
        if !stream.send_done {
            let _ = conn.quic.send_stream(sref.id).reset(code);
        }
        debug!(stream = %sref, %error, "stream failed");
        self.stream_died(sref, stream, error);
        self.touch(index);
        self.update_idle(index);
    }

    /// Tell a removed stream's owner that it died.
    pub(crate) fn stream_died(&mut self, sref: StreamRef, stream: Stream, error: StreamError) {
        match stream.owner {
            Owner::Thread(shared) => {
                shared.lock().error.get_or_insert(error);
                shared.notify_thread();
            }
            Owner::Negotiating {
                waiter: Some(reply),
                ..
            } => {
                let e = match error {
                    StreamError::Negotiation(m) => OpenStreamError::Negotiation(m),
                    other => OpenStreamError::Stream(other),
                };
                let _ = reply.send(Err(e));
            }
            Owner::Negotiating {
                plugin: Some(p), ..
            }
            | Owner::Plugin(p)
                if stream.packet_flow =>
            {
                if let Some(shared) = &stream.packet_thread {
                    shared.close(PacketError::FlowClosed);
                }
                let reason = match error {
                    StreamError::Negotiation(m) => {
                        PacketError::Open(OpenStreamError::Negotiation(m))
                    }
                    _ => PacketError::FlowClosed,
                };
                self.callbacks.push_back(Callback::FlowClosed(
                    p,
                    sref.conn,
                    Some(PacketFlow(sref)),
                    reason,
                ));
            }
            Owner::Negotiating {
                plugin: Some(p), ..
            }
            | Owner::Plugin(p) => {
                self.callbacks.push_back(Callback::Closed(p, sref, error));
            }
            Owner::Negotiating { .. } => {}
        }
    }

    pub(crate) fn maybe_remove_stream(&mut self, index: usize, sid: StreamId) {
        let Some(conn) = self.connections.get_mut(index) else {
            return;
        };
        if conn.streams.get(&sid).is_some_and(Stream::is_done) {
            let stream = conn.streams.remove(&sid);
            // A detached flow's thread must hear that the flow is over.
            if let Some(shared) = stream.and_then(|s| s.packet_thread) {
                shared.close(PacketError::FlowClosed);
            }
            self.update_idle(index);
        }
    }
}
