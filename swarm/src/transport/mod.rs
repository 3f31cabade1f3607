//! The transport seam: what carries a connection's streams.
//!
//! Above this seam the engine speaks only of streams: open one, accept one,
//! read its chunks, write, finish, reset, stop; and it learns of stream
//! changes through the same few entry points whatever the transport
//! (a stream was opened by the remote, became readable or writable, was
//! finished or stopped). A plugin cannot tell one transport's stream from
//! another's.
//!
//! Below it, each transport keeps what only it has. QUIC ([`quic`]) gives
//! streams natively: a UDP socket and its quinn-proto endpoint, the
//! handshake, QUIC datagrams, timers. A second transport (TCP with Noise
//! and Yamux) adds a variant to [`Transport`] and [`StreamReader`]; the
//! compiler then points at every `match` that must learn about it, and
//! the engine's stream layer stays as it is.

pub(crate) mod outcomes;
pub(crate) mod quic;

use bytes::Bytes;

use crate::ids::StreamId;
pub(crate) use outcomes::{ReadStep, ReadUnavailable, SendError, StreamReader};

/// A connection's transport, as the engine's stream layer uses it.
pub(crate) enum Transport {
    /// A QUIC v1 connection (quinn-proto). Boxed: the state is a few KiB,
    /// and the connection slab grows by doubling and moves its entries
    /// (at 1,000 simulated nodes the unboxed slab was 17 % of the heap).
    Quic(Box<quinn_proto::Connection>),
}

impl Transport {
    /// Open an outbound bidirectional stream; `None` at the peer's limit.
    pub(crate) fn open_stream(&mut self) -> Option<StreamId> {
        match self {
            Transport::Quic(q) => quic::open_stream(q),
        }
    }

    /// The next bidirectional stream the remote opened, if any.
    pub(crate) fn accept_stream(&mut self) -> Option<StreamId> {
        match self {
            Transport::Quic(q) => quic::accept_stream(q),
        }
    }

    /// Read a stream: `f` takes chunks from the reader as far as the
    /// stream's owner accepts them; afterwards the remote gets flow-control
    /// credit for what was read.
    pub(crate) fn read<R>(
        &mut self,
        id: StreamId,
        f: impl FnOnce(&mut StreamReader<'_>) -> R,
    ) -> Result<R, ReadUnavailable> {
        match self {
            Transport::Quic(q) => quic::read(q, id, f),
        }
    }

    /// Write as much of `data` as the send window takes; `Ok(n)` with
    /// `n < data.len()` means the window is full and the stream will be
    /// reported writable.
    pub(crate) fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, SendError> {
        match self {
            Transport::Quic(q) => quic::write(q, id, data),
        }
    }

    /// Like [`Transport::write`] without copying: `data` is advanced past
    /// what was taken.
    pub(crate) fn write_bytes(
        &mut self,
        id: StreamId,
        data: &mut Bytes,
    ) -> Result<usize, SendError> {
        match self {
            Transport::Quic(q) => quic::write_bytes(q, id, data),
        }
    }

    /// Finish our send side after what was written.
    pub(crate) fn finish(&mut self, id: StreamId) -> Result<(), SendError> {
        match self {
            Transport::Quic(q) => quic::finish(q, id),
        }
    }

    /// Abort our send side with `code`; unsent data is dropped.
    pub(crate) fn reset(&mut self, id: StreamId, code: u64) {
        match self {
            Transport::Quic(q) => quic::reset(q, id, code),
        }
    }

    /// Ask the remote to stop sending, with `code`.
    pub(crate) fn stop(&mut self, id: StreamId, code: u64) {
        match self {
            Transport::Quic(q) => quic::stop(q, id, code),
        }
    }

    /// The QUIC connection under a QUIC transport, for the QUIC-only parts
    /// of the engine (handshake, timers, datagrams, transmit).
    pub(crate) fn quic(&mut self) -> &mut quinn_proto::Connection {
        match self {
            Transport::Quic(q) => q,
        }
    }

    /// Shared-reference form of [`Transport::quic`].
    pub(crate) fn quic_ref(&self) -> &quinn_proto::Connection {
        match self {
            Transport::Quic(q) => q,
        }
    }
}
