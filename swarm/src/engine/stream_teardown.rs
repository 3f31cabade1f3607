//! Stream teardown: kill a stream both ways, tell a removed stream's owner
//! why it died, and remove streams whose both directions are over.

use tracing::debug;

use crate::codes::RESET_CODE_NEGOTIATION;
use crate::error::{OpenStreamError, PacketError, StreamError};
use crate::events::PacketFlow;
use crate::ids::{StreamId, StreamRef};
use crate::stream::{Opener, Owner, Stream};

use super::core::Core;
use super::queues::Callback;

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
        let code = u64::from(RESET_CODE_NEGOTIATION);
        if stream.recv_open() {
            conn.transport.stop(sref.id, code);
        }
        if stream.send_live() {
            conn.transport.reset(sref.id, code);
        }
        debug!(stream = %sref, %error, "stream failed");
        self.stream_died(sref, stream, error);
        self.touch(index);
        self.update_idle(index);
    }

    /// Tell a removed stream's owner that it died.
    pub(crate) fn stream_died(&mut self, sref: StreamRef, stream: Stream, error: StreamError) {
        let flow_closed = |error: StreamError| match error {
            StreamError::Negotiation(m) => PacketError::Open(OpenStreamError::Negotiation(m)),
            _ => PacketError::FlowClosed,
        };
        let callback = match stream.owner {
            Owner::Thread(shared) => {
                shared.lock().error.get_or_insert(error);
                shared.notify_thread();
                return;
            }
            Owner::Negotiating { opener, .. } => match opener {
                Opener::Handle(reply) => {
                    let e = match error {
                        StreamError::Negotiation(m) => OpenStreamError::Negotiation(m),
                        other => OpenStreamError::Stream(other),
                    };
                    let _ = reply.send(Err(e));
                    return;
                }
                Opener::Remote => return,
                Opener::Plugin(p) => Callback::Closed(p, sref, error),
                Opener::Flow(p) => {
                    Callback::FlowClosed(p, sref.conn, Some(PacketFlow(sref)), flow_closed(error))
                }
            },
            Owner::Plugin(p) => Callback::Closed(p, sref, error),
            Owner::Draining => return,
            Owner::Carrier { inner, .. } => {
                self.relayed_lost(inner, format!("the relay stream failed: {error}"));
                return;
            }
            Owner::FlowControl { plugin, thread } => {
                if let Some(shared) = &thread {
                    shared.close(PacketError::FlowClosed);
                }
                Callback::FlowClosed(
                    plugin,
                    sref.conn,
                    Some(PacketFlow(sref)),
                    flow_closed(error),
                )
            }
        };
        self.callbacks.push_back(callback);
    }

    /// Remove a stream whose both directions are over.
    pub(crate) fn maybe_remove_stream(&mut self, index: usize, sid: StreamId) {
        let Some(conn) = self.connections.get_mut(index) else {
            return;
        };
        if conn.streams.get(&sid).is_some_and(Stream::is_done) {
            let stream = conn.streams.remove(&sid);
            // A detached flow's thread must hear that the flow is over.
            if let Some(Stream {
                owner:
                    Owner::FlowControl {
                        thread: Some(shared),
                        ..
                    },
                ..
            }) = stream
            {
                shared.close(PacketError::FlowClosed);
            }
            self.update_idle(index);
        }
    }
}
