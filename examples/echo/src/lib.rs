//! `/echo/1.0.0`: every byte a remote sends on a stream comes back to it.
//!
//! This is the whole protocol plugin. Data arrives as `Bytes` straight from
//! QUIC and goes back out with [`Context::send`], without a copy. `send`
//! queues what a full send window does not take, and while that queue is
//! above its mark the swarm stops reading the stream: QUIC flow control
//! then holds the remote back instead of memory growing. When the remote
//! finishes, [`Context::finish`] ends our side once the queue has drained.

use swarm::{Bytes, Context, Protocol, StreamRef};

/// The protocol id.
pub const PROTOCOL: &str = "/echo/1.0.0";

/// Error code for a stream we give up on.
const ABORT_CODE: u64 = 1;

/// The echo plugin: register it with `Runtime::add_protocol`.
#[derive(Default)]
pub struct Echo;

impl Protocol for Echo {
    fn protocol_ids(&self) -> Vec<String> {
        vec![PROTOCOL.into()]
    }

    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, s: StreamRef, data: Bytes) {
        // Fails only once our send side is gone: then reading on is pointless.
        if ctx.send(s, data).is_err() {
            let _ = ctx.abort(s, ABORT_CODE);
        }
    }

    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, s: StreamRef) {
        let _ = ctx.finish(s);
    }

    // The remote reads no more echoes: stop its sending too, and forget the stream.
    fn handle_stream_stopped(&mut self, ctx: &mut Context<'_>, s: StreamRef, _: u64) {
        let _ = ctx.abort(s, ABORT_CODE);
    }
}
