//! `/echo/1.0.0`: every byte a remote sends on a stream comes back to it.
//!
//! This is the whole protocol plugin. Data arrives as `Bytes` straight from
//! QUIC and goes back out without a copy. When the send window is full, the
//! plugin keeps what QUIC did not take and stops reading the stream, so QUIC
//! flow control holds the remote back instead of memory growing; it goes on
//! at `handle_stream_writable`. When the remote finishes, the plugin
//! finishes too, once everything is sent.

use std::collections::{HashMap, VecDeque};

use swarm::{Bytes, Context, Protocol, StreamError, StreamRef};

/// The protocol id.
pub const PROTOCOL: &str = "/echo/1.0.0";

/// The echo plugin: register it with `Runtime::add_protocol`.
#[derive(Default)]
pub struct Echo {
    /// Per stream: bytes waiting for send window, and "the remote finished".
    backlog: HashMap<StreamRef, (VecDeque<Bytes>, bool)>,
}

impl Echo {
    /// Write what the window takes; read on only once all is written.
    fn flush(&mut self, ctx: &mut Context<'_>, s: StreamRef) {
        let Some((queue, remote_done)) = self.backlog.get_mut(&s) else {
            return;
        };
        while let Some(chunk) = queue.front_mut() {
            match ctx.write_bytes(s, chunk) {
                Ok(_) if !chunk.is_empty() => break, // full: wait for writable
                Ok(_) => drop(queue.pop_front()),
                Err(_) => queue.clear(), // the remote stopped reading
            }
        }
        if queue.is_empty() && *remote_done {
            let _ = ctx.finish(s);
            self.backlog.remove(&s);
        } else {
            let _ = ctx.set_reading(s, queue.is_empty());
        }
    }
}

impl Protocol for Echo {
    fn protocol_ids(&self) -> Vec<String> {
        vec![PROTOCOL.into()]
    }

    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, s: StreamRef, data: Bytes) {
        self.backlog.entry(s).or_default().0.push_back(data);
        self.flush(ctx, s);
    }

    fn handle_stream_writable(&mut self, ctx: &mut Context<'_>, s: StreamRef) {
        self.flush(ctx, s);
    }

    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, s: StreamRef) {
        self.backlog.entry(s).or_default().1 = true;
        self.flush(ctx, s);
    }

    // The remote's STOP_SENDING used to arrive as `handle_stream_closed(Stopped)`.
    fn handle_stream_stopped(&mut self, ctx: &mut Context<'_>, stream: StreamRef, code: u64) {
        self.handle_stream_closed(ctx, stream, &StreamError::Stopped(code));
    }

    fn handle_stream_closed(&mut self, _: &mut Context<'_>, s: StreamRef, _: &StreamError) {
        self.backlog.remove(&s);
    }
}
