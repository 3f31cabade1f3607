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

/// Write `data` until it is empty (`Ok(true)`) or a write takes nothing
/// (`Ok(false)`: the swarm calls `handle_stream_writable` when there is
/// room again).
///
/// A write that takes only part of `data` is followed by another: QUIC
/// (quinn-proto) arranges a writable event only for a write that was
/// refused outright, so stopping after a short write could wait forever
/// when the connection's send window, not the stream's, was the limit.
pub(crate) fn write_until_blocked(
    ctx: &mut Context<'_>,
    stream: StreamRef,
    data: &mut Bytes,
) -> Result<bool, StreamError> {
    while !data.is_empty() {
        if ctx.write_bytes(stream, data)? == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Write zeros until `*left` reaches 0 or a write is refused.
///
/// Returns the bytes written by this call; `*left` is decreased by as much.
/// When it is not 0 afterwards, `handle_stream_writable` follows once
/// there is room.
pub(crate) fn send_zeros(
    ctx: &mut Context<'_>,
    stream: StreamRef,
    left: &mut u64,
) -> Result<u64, StreamError> {
    let mut written = 0;
    while *left > 0 {
        let len = usize::try_from(*left).unwrap_or(usize::MAX).min(CHUNK);
        let mut data = chunk(len);
        let done = write_until_blocked(ctx, stream, &mut data);
        let n = (len - data.len()) as u64;
        written += n;
        *left -= n;
        if !done? {
            break;
        }
    }
    Ok(written)
}
