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
//! handshake, QUIC datagrams, timers. TCP ([`tcp`]) gets them from Yamux
//! after Noise or TLS; its socket belongs to the driver, which feeds bytes
//! in and writes what the connection queues. The engine's stream layer is
//! the same for both.

pub(crate) mod outcomes;
pub(crate) mod quic;
pub(crate) mod tcp;

use bytes::Bytes;

use crate::ids::StreamId;
pub(crate) use outcomes::{ReadStep, ReadUnavailable, SendError, StreamReader};

/// A connection's transport, as the engine's stream layer uses it.
pub(crate) enum Transport {
    /// A QUIC v1 connection (quinn-proto). Boxed: the state is a few KiB,
    /// and the connection slab grows by doubling and moves its entries
    /// (at 1,000 simulated nodes the unboxed slab was 17 % of the heap).
    Quic(Box<quinn_proto::Connection>),
    /// A TCP connection upgraded to Noise (or TLS) and Yamux.
    Tcp(Box<tcp::TcpConn>),
}

impl Transport {
    /// Open an outbound bidirectional stream; `None` at the peer's limit.
    pub(crate) fn open_stream(&mut self) -> Option<StreamId> {
        match self {
            Transport::Quic(q) => quic::open_stream(q),
            Transport::Tcp(t) => tcp::open_stream(t),
        }
    }

    /// The next bidirectional stream the remote opened, if any.
    pub(crate) fn accept_stream(&mut self) -> Option<StreamId> {
        match self {
            Transport::Quic(q) => quic::accept_stream(q),
            Transport::Tcp(t) => tcp::accept_stream(t),
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
            Transport::Tcp(t) => tcp::read(t, id, f),
        }
    }

    /// Write as much of `data` as the send window takes; `Ok(n)` with
    /// `n < data.len()` means the window is full and the stream will be
    /// reported writable.
    pub(crate) fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, SendError> {
        match self {
            Transport::Quic(q) => quic::write(q, id, data),
            Transport::Tcp(t) => tcp::write(t, id, data),
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
            Transport::Tcp(t) => tcp::write_bytes(t, id, data),
        }
    }

    /// Finish our send side after what was written.
    pub(crate) fn finish(&mut self, id: StreamId) -> Result<(), SendError> {
        match self {
            Transport::Quic(q) => quic::finish(q, id),
            Transport::Tcp(t) => tcp::finish(t, id),
        }
    }

    /// Abort our send side with `code`; unsent data is dropped.
    pub(crate) fn reset(&mut self, id: StreamId, code: u64) {
        match self {
            Transport::Quic(q) => quic::reset(q, id, code),
            // Yamux resets carry no code.
            Transport::Tcp(t) => tcp::reset(t, id),
        }
    }

    /// Ask the remote to stop sending, with `code`.
    pub(crate) fn stop(&mut self, id: StreamId, code: u64) {
        match self {
            Transport::Quic(q) => quic::stop(q, id, code),
            Transport::Tcp(t) => tcp::stop(t, id),
        }
    }

    /// The QUIC connection under a QUIC transport, for the QUIC-only parts
    /// of the engine (handshake, timers, datagrams, transmit); `None` on TCP.
    pub(crate) fn quic(&mut self) -> Option<&mut quinn_proto::Connection> {
        match self {
            Transport::Quic(q) => Some(q),
            Transport::Tcp(_) => None,
        }
    }

    /// Shared-reference form of [`Transport::quic`].
    pub(crate) fn quic_ref(&self) -> Option<&quinn_proto::Connection> {
        match self {
            Transport::Quic(q) => Some(q),
            Transport::Tcp(_) => None,
        }
    }

    /// The TCP connection under a TCP transport; `None` on QUIC.
    pub(crate) fn tcp(&mut self) -> Option<&mut tcp::TcpConn> {
        match self {
            Transport::Tcp(t) => Some(t),
            Transport::Quic(_) => None,
        }
    }
}
