//! Streams handed to a thread: move bytes between a [`DetachedStream`]'s
//! bounded buffers and QUIC, both ways, and apply its finish and drop.

use quinn_proto::{VarInt, WriteError};

use crate::detached_stream::{DetachedStream, Shared};
use crate::error::StreamError;
use crate::events::PacketFlow;
use crate::ids::StreamRef;
use crate::stream::Owner;

use super::core::Core;
use crate::stream::write_unsent;

impl Core {
    /// Move bytes between a thread's handle and QUIC, both ways, and apply
    /// `finish` and drop.
    pub(crate) fn pump_thread_stream(&mut self, sref: StreamRef) {
        let index = sref.conn.index as usize;
        let Some(conn) = self.conn(sref.conn) else {
            return;
        };
        if let Some(shared) = conn
            .streams
            .get(&sref.id)
            .and_then(|s| s.packet_thread.clone())
        {
            self.pump_packet_thread(PacketFlow(sref), shared);
            return;
        }
        let conn = &mut self.connections[index];
        let Some(stream) = conn.streams.get_mut(&sref.id) else {
            return;
        };
        let Owner::Thread(shared) = &stream.owner else {
            return;
        };
        let shared = shared.clone();
        let mut st = shared.lock();
        let negotiation_sent = match write_unsent(&mut conn.quic, sref.id, stream) {
            Ok(sent) => sent,
            Err(e) => {
                if let WriteError::Stopped(code) = e {
                    st.error
                        .get_or_insert(StreamError::Stopped(code.into_inner()));
                }
                st.send.clear();
                st.send_len = 0;
                false
            }
        };
        let mut send = conn.quic.send_stream(sref.id);
        while let Some(front) = st.send.front_mut().filter(|_| negotiation_sent) {
            let before = front.len();
            match send.write_chunks(std::slice::from_mut(front)) {
                Ok(_) => {
                    let left = front.len();
                    st.send_len -= before - left;
                    // A partial write is retried at once: only `Blocked`
                    // registers the stream for a `Writable` event.
                    if left == 0 {
                        st.send.pop_front();
                    }
                }
                Err(WriteError::Blocked) => break,
                Err(WriteError::Stopped(code)) => {
                    st.error
                        .get_or_insert(StreamError::Stopped(code.into_inner()));
                    st.send.clear();
                    st.send_len = 0;
                    break;
                }
                Err(_) => {
                    st.send.clear();
                    st.send_len = 0;
                    break;
                }
            }
        }
        if negotiation_sent
            && st.send.is_empty()
            && st.send_fin
            && !stream.send_finishing
            && !stream.send_done
        {
            stream.send_finishing = true;
            if send.finish().is_err() {
                stream.send_done = true;
            }
        }
        let dropped = st.handle_dropped;
        drop(st);
        shared.notify_thread();
        if dropped && !stream.recv_done {
            let _ = conn.quic.recv_stream(sref.id).stop(VarInt::from_u32(0));
            stream.recv_done = true;
        }
        self.touch(index);
        self.read_stream(index, sref.id);
    }

    pub(crate) fn detach_stream(&mut self, sref: StreamRef) -> Result<DetachedStream, StreamError> {
        let notifier = self.notifier.clone();
        let limit = self.config.limits.threaded_stream_buffer;
        let stream = self.stream_mut(sref)?;
        if stream.packet_flow {
            return Err(StreamError::PacketFlow(sref));
        }
        if !matches!(stream.owner, Owner::Plugin(_)) {
            return Err(StreamError::Detached(sref));
        }
        let shared = Shared::new(sref, limit, notifier);
        stream.owner = Owner::Thread(shared.clone());
        stream.read_paused = false;
        if stream.recv_done {
            // The plugin already saw the end; keep the handle consistent.
            shared.lock().recv_fin = true;
        }
        // Data may already wait in QUIC for the new owner.
        self.notifier.notify(sref);
        Ok(DetachedStream::new(shared))
    }
}
