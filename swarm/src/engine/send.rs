//! The send path and plugin stream operations: direct writes, the send
//! queue (`Context::send`), finish, reset, stop, abort, pausing reads, and
//! what happens when QUIC reports a stream writable or stopped.

use bytes::Bytes;
use quinn_proto::{StreamId, VarInt, WriteError};

use crate::error::StreamError;
use crate::ids::StreamRef;
use crate::stream::Owner;

use super::core::Core;
use super::queues::Callback;
use crate::stream::{queue_sent_for_write, write_unsent};

impl Core {
    pub(crate) fn on_writable(&mut self, index: usize, sid: StreamId) {
        let sref = StreamRef {
            conn: self.conn_id(index),
            id: sid,
        };
        let conn = &mut self.connections[index];
        let Some(stream) = conn.streams.get_mut(&sid) else {
            return;
        };
        match write_unsent(&mut conn.quic, sid, stream) {
            Ok(true) => {}
            Ok(false) => return,
            Err(WriteError::Stopped(_)) => {
                stream.send_done = true;
                stream.clear_queue();
            }
            Err(_) => {
                self.fail_stream(sref, StreamError::SendClosed);
                return;
            }
        }
        self.touch(index);
        let Some(stream) = self.connections[index].streams.get_mut(&sid) else {
            return;
        };
        match &stream.owner {
            Owner::Thread(_) => self.pump_thread_stream(sref),
            _ => {
                if stream.wants_writable {
                    stream.wants_writable = false;
                    if let Some(p) = stream.plugin() {
                        self.callbacks.push_back(Callback::Writable(p, sref));
                    }
                }
                // The queue drained: read again what the owner answers.
                if std::mem::take(&mut stream.queue_paused) {
                    self.read_stream(index, sid);
                }
            }
        }
    }

    pub(crate) fn on_stopped(&mut self, index: usize, sid: StreamId, code: u64) {
        let sref = StreamRef {
            conn: self.conn_id(index),
            id: sid,
        };
        let Some(stream) = self.connections[index].streams.get_mut(&sid) else {
            return;
        };
        stream.send_done = true;
        match &stream.owner {
            Owner::Thread(shared) => {
                let mut st = shared.lock();
                st.error.get_or_insert(StreamError::Stopped(code));
                st.send.clear();
                st.send_len = 0;
                drop(st);
                shared.notify_thread();
            }
            _ if stream.packet_flow => {
                self.fail_stream(sref, StreamError::Stopped(code));
                return;
            }
            _ => {
                stream.clear_queue();
                if let Some(p) = stream.plugin() {
                    self.callbacks.push_back(Callback::Stopped(p, sref, code));
                }
            }
        }
        self.maybe_remove_stream(index, sid);
    }

    pub(crate) fn write(&mut self, sref: StreamRef, data: &[u8]) -> Result<usize, StreamError> {
        let (quic, stream) = self.plugin_stream(sref)?;
        if !queue_sent_for_write(quic, sref.id, stream)? {
            return Ok(0);
        }
        let mut send = quic.send_stream(sref.id);
        let mut written = 0;
        // Write until everything is taken or quinn says `Blocked`: only a
        // refused write registers the stream for a `Writable` event; a
        // partial one does not, and the stream would never be woken.
        let r = loop {
            match send.write(&data[written..]) {
                Ok(n) => {
                    written += n;
                    if written == data.len() {
                        break Ok(written);
                    }
                }
                Err(WriteError::Blocked) => {
                    stream.wants_writable = true;
                    break Ok(written);
                }
                Err(WriteError::Stopped(code)) => {
                    break Err(StreamError::Stopped(code.into_inner()));
                }
                Err(_) => break Err(StreamError::SendClosed),
            }
        };
        self.touch(sref.conn.index as usize);
        r
    }

    pub(crate) fn write_bytes(
        &mut self,
        sref: StreamRef,
        data: &mut Bytes,
    ) -> Result<usize, StreamError> {
        let (quic, stream) = self.plugin_stream(sref)?;
        if !queue_sent_for_write(quic, sref.id, stream)? {
            return Ok(0);
        }
        let mut send = quic.send_stream(sref.id);
        let before = data.len();
        // As in `write`: keep going until `Blocked` registers the stream.
        let r = loop {
            match send.write_chunks(std::slice::from_mut(data)) {
                Ok(_) if data.is_empty() => break Ok(before),
                Ok(_) => {}
                Err(WriteError::Blocked) => {
                    stream.wants_writable = true;
                    break Ok(before - data.len());
                }
                Err(WriteError::Stopped(code)) => {
                    break Err(StreamError::Stopped(code.into_inner()));
                }
                Err(_) => break Err(StreamError::SendClosed),
            }
        };
        self.touch(sref.conn.index as usize);
        r
    }

    /// Queue `data` behind what waits and write what the window takes.
    pub(crate) fn send(&mut self, sref: StreamRef, data: Bytes) -> Result<usize, StreamError> {
        let high_water = self.config.limits.send_queue_high_water;
        let (quic, stream) = self.plugin_stream(sref)?;
        if stream.send_finishing || stream.send_done {
            return Err(StreamError::SendClosed);
        }
        stream.queue(data);
        let r = match write_unsent(quic, sref.id, stream) {
            Ok(_) => {
                if stream.unsent_len > high_water {
                    stream.queue_paused = true;
                }
                Ok(stream.unsent_len)
            }
            Err(e) => {
                stream.clear_queue();
                Err(match e {
                    WriteError::Stopped(code) => StreamError::Stopped(code.into_inner()),
                    _ => StreamError::SendClosed,
                })
            }
        };
        self.touch(sref.conn.index as usize);
        r
    }

    pub(crate) fn queued(&self, sref: StreamRef) -> usize {
        self.conn(sref.conn)
            .and_then(|c| c.streams.get(&sref.id))
            .map_or(0, |s| s.unsent_len)
    }

    pub(crate) fn finish(&mut self, sref: StreamRef) -> Result<(), StreamError> {
        self.plugin_stream(sref)?;
        self.finish_owned(sref)
    }

    /// `finish` for a plugin's stream or a flow's control stream.
    pub(crate) fn finish_owned(&mut self, sref: StreamRef) -> Result<(), StreamError> {
        let (quic, stream) = self.owned_stream(sref)?;
        if stream.send_finishing || stream.send_done {
            return Err(StreamError::SendClosed);
        }
        if !stream.unsent.is_empty() {
            // The FIN goes out after the queued bytes.
            stream.send_finishing = true;
            stream.finish_when_drained = true;
            return Ok(());
        }
        let r = match quic.send_stream(sref.id).finish() {
            Ok(()) => {
                stream.send_finishing = true;
                Ok(())
            }
            Err(quinn_proto::FinishError::Stopped(code)) => {
                Err(StreamError::Stopped(code.into_inner()))
            }
            Err(quinn_proto::FinishError::ClosedStream) => Err(StreamError::SendClosed),
        };
        self.touch(sref.conn.index as usize);
        r
    }

    pub(crate) fn reset(&mut self, sref: StreamRef, code: u64) -> Result<(), StreamError> {
        let (quic, stream) = self.plugin_stream(sref)?;
        let code = VarInt::from_u64(code).unwrap_or(VarInt::MAX);
        let _ = quic.send_stream(sref.id).reset(code);
        stream.send_done = true;
        stream.clear_queue();
        self.touch(sref.conn.index as usize);
        self.maybe_remove_stream(sref.conn.index as usize, sref.id);
        Ok(())
    }

    pub(crate) fn stop_sending(&mut self, sref: StreamRef, code: u64) -> Result<(), StreamError> {
        self.plugin_stream(sref)?;
        self.stop_sending_owned(sref, code)
    }

    /// `stop_sending` for a plugin's stream or a flow's control stream.
    pub(crate) fn stop_sending_owned(
        &mut self,
        sref: StreamRef,
        code: u64,
    ) -> Result<(), StreamError> {
        let (quic, stream) = self.owned_stream(sref)?;
        let code = VarInt::from_u64(code).unwrap_or(VarInt::MAX);
        let _ = quic.recv_stream(sref.id).stop(code);
        stream.recv_done = true;
        self.touch(sref.conn.index as usize);
        self.maybe_remove_stream(sref.conn.index as usize, sref.id);
        Ok(())
    }

    /// Reset our side and stop the remote's, whatever is still open.
    pub(crate) fn abort(&mut self, sref: StreamRef, code: u64) -> Result<(), StreamError> {
        let (quic, stream) = self.plugin_stream(sref)?;
        let code = VarInt::from_u64(code).unwrap_or(VarInt::MAX);
        if !stream.send_done {
            let _ = quic.send_stream(sref.id).reset(code);
            stream.send_done = true;
            stream.clear_queue();
        }
        if !stream.recv_done {
            let _ = quic.recv_stream(sref.id).stop(code);
            stream.recv_done = true;
        }
        self.touch(sref.conn.index as usize);
        self.maybe_remove_stream(sref.conn.index as usize, sref.id);
        Ok(())
    }

    pub(crate) fn set_reading(
        &mut self,
        sref: StreamRef,
        reading: bool,
    ) -> Result<(), StreamError> {
        let (_, stream) = self.plugin_stream(sref)?;
        let resume = stream.read_paused && reading;
        stream.read_paused = !reading;
        if resume {
            self.read_stream(sref.conn.index as usize, sref.id);
        }
        Ok(())
    }

    pub(crate) fn set_stream_keep_alive(
        &mut self,
        sref: StreamRef,
        keep: bool,
    ) -> Result<(), StreamError> {
        self.stream_mut(sref)?.keeps_alive = keep;
        self.update_idle(sref.conn.index as usize);
        Ok(())
    }
}
