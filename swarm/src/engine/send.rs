//! The send path and plugin stream operations: direct writes, the send
//! queue (`Context::send`), finish, reset, stop, abort, pausing reads, and
//! what happens when the transport reports a stream writable, finished
//! (acknowledged) or stopped.

use bytes::Bytes;

use crate::error::StreamError;
use crate::ids::{StreamId, StreamRef};
use crate::stream::{Access, Owner, RecvState, SendState};
use crate::transport::SendError;

use super::core::Core;
use super::queues::Callback;

/// The plugin-facing error for a transport's refusal to send.
fn stream_error(e: SendError) -> StreamError {
    match e {
        SendError::Stopped(code) => StreamError::Stopped(code),
        SendError::Blocked | SendError::Closed => StreamError::SendClosed,
    }
}

impl Core {
    /// The stream has send window again: write its queue, then wake its
    /// owner (a thread's pump, or the plugin that wrote short).
    pub(crate) fn on_writable(&mut self, index: usize, sid: StreamId) {
        let sref = StreamRef {
            conn: self.conn_id(index),
            id: sid,
        };
        let conn = &mut self.connections[index];
        let Some(stream) = conn.streams.get_mut(&sid) else {
            return;
        };
        match stream.write_unsent(&mut conn.transport, sid) {
            Ok(true) => {}
            Ok(false) => return,
            Err(SendError::Stopped(_)) => stream.close_send(),
            Err(_) => {
                self.fail_stream(sref, StreamError::SendClosed);
                return;
            }
        }
        self.touch(index);
        let Some(stream) = self.connections[index].streams.get_mut(&sid) else {
            return;
        };
        if let Owner::Thread(_) = stream.owner {
            self.pump_thread_stream(sref);
            return;
        }
        if let Owner::Carrier { inner, .. } = stream.owner {
            if self.conn(inner).is_some() {
                self.pump_relayed_out(inner.index as usize);
            }
            return;
        }
        if std::mem::take(&mut stream.wants_writable)
            && let Some(p) = stream.plugin()
        {
            self.callbacks.push_back(Callback::Writable(p, sref));
        }
        // The queue drained: read again what the owner answers.
        if std::mem::take(&mut stream.queue_paused) {
            self.read_stream(index, sid);
        }
    }

    /// Our FIN (or reset) was acknowledged: the send side is over.
    pub(crate) fn on_finished(&mut self, index: usize, sid: StreamId) {
        if let Some(s) = self.connections[index].streams.get_mut(&sid) {
            s.send = SendState::Closed;
        }
        self.maybe_remove_stream(index, sid);
    }

    /// The remote sent STOP_SENDING: our send side is over; the owner hears
    /// it (a flow's control stream dies with it).
    pub(crate) fn on_stopped(&mut self, index: usize, sid: StreamId, code: u64) {
        let sref = StreamRef {
            conn: self.conn_id(index),
            id: sid,
        };
        let Some(stream) = self.connections[index].streams.get_mut(&sid) else {
            return;
        };
        stream.close_send();
        match &stream.owner {
            Owner::Thread(shared) => {
                let mut st = shared.lock();
                st.error.get_or_insert(StreamError::Stopped(code));
                st.send.clear();
                st.send_len = 0;
                drop(st);
                shared.notify_thread();
            }
            _ if stream.is_flow_control() => {
                self.fail_stream(sref, StreamError::Stopped(code));
                return;
            }
            _ => {
                if let Some(p) = stream.plugin() {
                    self.callbacks.push_back(Callback::Stopped(p, sref, code));
                }
            }
        }
        self.maybe_remove_stream(index, sid);
    }

    /// `Context::write`.
    pub(crate) fn write(&mut self, sref: StreamRef, data: &[u8]) -> Result<usize, StreamError> {
        let (transport, stream) = self.stream_for(sref, Access::PluginStream)?;
        if !stream.queue_sent_for_write(transport, sref.id)? {
            return Ok(0);
        }
        let r = transport.write(sref.id, data).map_err(stream_error);
        if matches!(r, Ok(n) if n < data.len()) {
            stream.wants_writable = true;
        }
        self.touch(sref.conn.index as usize);
        r
    }

    /// `Context::write_bytes`.
    pub(crate) fn write_bytes(
        &mut self,
        sref: StreamRef,
        data: &mut Bytes,
    ) -> Result<usize, StreamError> {
        let (transport, stream) = self.stream_for(sref, Access::PluginStream)?;
        if !stream.queue_sent_for_write(transport, sref.id)? {
            return Ok(0);
        }
        let r = transport.write_bytes(sref.id, data).map_err(stream_error);
        if r.is_ok() && !data.is_empty() {
            stream.wants_writable = true;
        }
        self.touch(sref.conn.index as usize);
        r
    }

    /// `Context::send`: queue `data` behind what waits and write what the
    /// window takes.
    pub(crate) fn send(&mut self, sref: StreamRef, data: Bytes) -> Result<usize, StreamError> {
        let high_water = self.config.limits.send_queue_high_water;
        let (transport, stream) = self.stream_for(sref, Access::PluginStream)?;
        if !stream.send_open() {
            return Err(StreamError::SendClosed);
        }
        stream.queue(data);
        let r = match stream.write_unsent(transport, sref.id) {
            Ok(drained) => {
                if stream.unsent_len > high_water {
                    stream.queue_paused = true;
                }
                // The owner hears `handle_stream_writable` once the queue
                // has drained, so it can pace what it sends next.
                if !drained {
                    stream.wants_writable = true;
                }
                Ok(stream.unsent_len)
            }
            Err(e) => {
                stream.close_send();
                Err(stream_error(e))
            }
        };
        self.touch(sref.conn.index as usize);
        r
    }

    /// `Context::queued`.
    pub(crate) fn queued(&self, sref: StreamRef) -> usize {
        self.conn(sref.conn)
            .and_then(|c| c.streams.get(&sref.id))
            .map_or(0, |s| s.unsent_len)
    }

    /// `Context::finish`.
    pub(crate) fn finish(&mut self, sref: StreamRef) -> Result<(), StreamError> {
        self.finish_as(sref, Access::PluginStream)
    }

    /// Finish the send side of a plugin's stream or a flow's control stream.
    pub(crate) fn finish_as(&mut self, sref: StreamRef, access: Access) -> Result<(), StreamError> {
        let (transport, stream) = self.stream_for(sref, access)?;
        if !stream.send_open() {
            return Err(StreamError::SendClosed);
        }
        if !stream.unsent.is_empty() {
            // The FIN goes out after the queued bytes.
            stream.send = SendState::FinishQueued;
            return Ok(());
        }
        let r = match transport.finish(sref.id) {
            Ok(()) => {
                stream.send = SendState::Finishing;
                Ok(())
            }
            Err(e) => Err(stream_error(e)),
        };
        self.touch(sref.conn.index as usize);
        r
    }

    /// `Context::reset`.
    pub(crate) fn reset(&mut self, sref: StreamRef, code: u64) -> Result<(), StreamError> {
        let (transport, stream) = self.stream_for(sref, Access::PluginStream)?;
        transport.reset(sref.id, code);
        stream.close_send();
        self.touch(sref.conn.index as usize);
        self.maybe_remove_stream(sref.conn.index as usize, sref.id);
        Ok(())
    }

    /// `Context::stop_sending`.
    pub(crate) fn stop_sending(&mut self, sref: StreamRef, code: u64) -> Result<(), StreamError> {
        self.stop_sending_as(sref, code, Access::PluginStream)
    }

    /// Stop the receive side of a plugin's stream or a flow's control stream.
    pub(crate) fn stop_sending_as(
        &mut self,
        sref: StreamRef,
        code: u64,
        access: Access,
    ) -> Result<(), StreamError> {
        let (transport, stream) = self.stream_for(sref, access)?;
        transport.stop(sref.id, code);
        stream.recv = RecvState::Closed;
        self.touch(sref.conn.index as usize);
        self.maybe_remove_stream(sref.conn.index as usize, sref.id);
        Ok(())
    }

    /// `Context::abort`: reset our side and stop the remote's, whatever is
    /// still open.
    pub(crate) fn abort(&mut self, sref: StreamRef, code: u64) -> Result<(), StreamError> {
        let (transport, stream) = self.stream_for(sref, Access::PluginStream)?;
        if stream.send_live() {
            transport.reset(sref.id, code);
            stream.close_send();
        }
        if stream.recv_open() {
            transport.stop(sref.id, code);
            stream.recv = RecvState::Closed;
        }
        self.touch(sref.conn.index as usize);
        self.maybe_remove_stream(sref.conn.index as usize, sref.id);
        Ok(())
    }

    /// `Context::set_reading`.
    pub(crate) fn set_reading(
        &mut self,
        sref: StreamRef,
        reading: bool,
    ) -> Result<(), StreamError> {
        let (_, stream) = self.stream_for(sref, Access::PluginStream)?;
        let resume = stream.read_paused && reading;
        stream.read_paused = !reading;
        if resume {
            self.read_stream(sref.conn.index as usize, sref.id);
        }
        Ok(())
    }

    /// `Context::set_stream_keep_alive`.
    pub(crate) fn set_stream_keep_alive(
        &mut self,
        sref: StreamRef,
        keep: bool,
    ) -> Result<(), StreamError> {
        self.stream_for(sref, Access::Any)?.1.keeps_alive = keep;
        self.update_idle(sref.conn.index as usize);
        Ok(())
    }
}
