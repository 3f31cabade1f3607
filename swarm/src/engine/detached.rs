//! Streams handed to a thread: move bytes between a [`DetachedStream`]'s
//! bounded buffers and the transport, both ways, and apply its finish and
//! drop. (A detached packet flow is pumped in `packet_flows.rs`.)

use crate::detached_stream::{DetachedStream, Shared};
use crate::error::StreamError;
use crate::events::PacketFlow;
use crate::ids::StreamRef;
use crate::stream::{Access, Owner, RecvState, SendState};
use crate::transport::SendError;

use super::core::Core;

impl Core {
    /// Move bytes between a thread's handle and the transport, both ways,
    /// and apply `finish` and drop. Called when the handle's thread touched
    /// the stream, and when the stream became writable.
    pub(crate) fn pump_thread_stream(&mut self, sref: StreamRef) {
        let index = sref.conn.index as usize;
        let Some(conn) = self.conn_mut(sref.conn) else {
            return;
        };
        let Some(stream) = conn.streams.get_mut(&sref.id) else {
            return;
        };
        let shared = match &stream.owner {
            Owner::Thread(shared) => shared.clone(),
            Owner::FlowControl {
                thread: Some(flow), ..
            } => {
                let flow = flow.clone();
                self.pump_packet_thread(PacketFlow(sref), flow);
                return;
            }
            _ => return,
        };
        let transport = &mut conn.transport;
        let mut st = shared.lock();
        let failed = |st: &mut crate::detached_stream::State, e: SendError| {
            if let SendError::Stopped(code) = e {
                st.error.get_or_insert(StreamError::Stopped(code));
            }
            st.send.clear();
            st.send_len = 0;
        };
        // What the swarm still queues for the stream (its negotiation) goes
        // first; the thread's bytes only once it is out.
        let queue_sent = match stream.write_unsent(transport, sref.id) {
            Ok(sent) => sent,
            Err(e) => {
                failed(&mut st, e);
                false
            }
        };
        while let Some(front) = st.send.front_mut().filter(|_| queue_sent) {
            match transport.write_bytes(sref.id, front) {
                Ok(written) => {
                    st.send_len -= written;
                    if !st.send.front().is_some_and(|f| f.is_empty()) {
                        break; // the window is full: wait for writable
                    }
                    st.send.pop_front();
                }
                Err(e) => {
                    failed(&mut st, e);
                    break;
                }
            }
        }
        if queue_sent && st.send.is_empty() && st.send_fin && stream.send_open() {
            stream.send = match transport.finish(sref.id) {
                Ok(()) => SendState::Finishing,
                Err(_) => SendState::Closed,
            };
        }
        let dropped = st.handle_dropped;
        drop(st);
        shared.notify_thread();
        if dropped && stream.recv_open() {
            transport.stop(sref.id, 0);
            stream.recv = RecvState::Closed;
        }
        self.touch(index);
        self.read_stream(index, sref.id);
    }

    /// `Context::detach_stream`: the stream becomes the thread's.
    pub(crate) fn detach_stream(&mut self, sref: StreamRef) -> Result<DetachedStream, StreamError> {
        let notifier = self.notifier.clone();
        let limit = self.config.limits.threaded_stream_buffer;
        let (_, stream) = self.stream_for(sref, Access::PluginStream)?;
        if !matches!(stream.owner, Owner::Plugin(_)) {
            return Err(StreamError::Detached(sref));
        }
        let shared = Shared::new(sref, limit, notifier);
        stream.owner = Owner::Thread(shared.clone());
        stream.read_paused = false;
        stream.queue_paused = false;
        if !stream.recv_open() {
            // The plugin already saw the end; keep the handle consistent.
            shared.lock().recv_fin = true;
        }
        self.handed_to_threads += 1;
        // Data may already wait in the transport for the new owner.
        self.notifier.notify(sref);
        Ok(DetachedStream::new(shared))
    }
}
