//! The payload perf and test-data send: zeros from one static buffer, and
//! the write loop that goes with it.
//!
//! The bytes carry no meaning, so every run shares a single zeroed buffer
//! and hands slices of it to QUIC as `Bytes::from_static`: no allocation,
//! no copy and no reference counting per chunk.

use swarm::{Bytes, Context, StreamError, StreamRef};

/// Size of the static buffer, and so the largest slice offered to one write.
/// Large enough that a write rarely stops before the send window does.
const CHUNK: usize = 256 * 1024;

/// Lives in `.bss`: it costs address space, not binary size.
static ZEROS: [u8; CHUNK] = [0; CHUNK];

/// A chunk of `len` zeros, at most [`CHUNK`] long.
pub(crate) fn chunk(len: usize) -> Bytes {
    Bytes::from_static(&ZEROS[..len.min(CHUNK)])
}

/// Write zeros until `*left` reaches 0 or the window is full.
///
/// Returns the bytes written by this call; `*left` is decreased by as much.
/// When it is not 0 afterwards, the last write was short and the swarm
/// calls `handle_stream_writable` once there is room. Nothing is queued:
/// the payload may be any size, so it is written only as the window takes
/// it (for bounded messages, `Context::send` is simpler).
pub(crate) fn send_zeros(
    ctx: &mut Context<'_>,
    stream: StreamRef,
    left: &mut u64,
) -> Result<u64, StreamError> {
    let mut written = 0;
    while *left > 0 {
        let len = usize::try_from(*left).unwrap_or(usize::MAX).min(CHUNK);
        let mut data = chunk(len);
        // `write_bytes` writes until the chunk is taken or the window is
        // full; a short write means full.
        let n = ctx.write_bytes(stream, &mut data)? as u64;
        written += n;
        *left -= n;
        if !data.is_empty() {
            break;
        }
    }
    Ok(written)
}
