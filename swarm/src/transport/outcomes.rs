//! What stream operations on any transport report to the engine.

use bytes::Bytes;

/// Why a write, a finish or an open could not go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendError {
    /// No send window now; the transport reports the stream writable later.
    Blocked,
    /// The remote asked us to stop sending, with this code.
    Stopped(u64),
    /// Our send side is already over (finished or reset), or the stream is gone.
    Closed,
}

/// What one read step produced.
pub(crate) enum ReadStep {
    /// The next chunk of the stream, in order.
    Data(Bytes),
    /// The remote finished its side: no more data.
    Fin,
    /// Nothing more for now.
    Blocked,
    /// The remote reset its side with this code.
    Reset(u64),
}

/// Why a stream cannot be read now.
pub(crate) enum ReadUnavailable {
    /// The receive side is over (or the stream is gone).
    Closed,
    /// Not readable at the moment (a read of the other kind is under way).
    NotNow,
}

/// A read under way on one stream (see `Transport::read`): take chunks
/// with [`StreamReader::next`].
pub(crate) enum StreamReader<'a> {
    /// QUIC: quinn-proto's chunk reader.
    Quic(quinn_proto::Chunks<'a>),
    /// TCP: a stream of the Yamux session (reading credits its window).
    Yamux {
        session: &'a mut crate::yamux::Session,
        id: u32,
        now: std::time::Instant,
    },
}

impl StreamReader<'_> {
    /// The next step of the read, at most `max` bytes of data.
    pub(crate) fn next(&mut self, max: usize) -> ReadStep {
        match self {
            StreamReader::Quic(chunks) => next_quic_chunk(chunks, max),
            StreamReader::Yamux { session, id, now } => {
                super::tcp::next_yamux_chunk(session, *id, *now, max)
            }
        }
    }
}

fn next_quic_chunk(chunks: &mut quinn_proto::Chunks<'_>, max: usize) -> ReadStep {
    use quinn_proto::ReadError;
    match chunks.next(max) {
        Ok(Some(chunk)) => ReadStep::Data(chunk.bytes),
        Ok(None) => ReadStep::Fin,
        Err(ReadError::Blocked) => ReadStep::Blocked,
        Err(ReadError::Reset(code)) => ReadStep::Reset(code.into_inner()),
    }
}
