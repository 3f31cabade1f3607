//! Yamux errors: one enum per scope (connection, stream, open, write).

use super::frame::HeaderError;

/// A protocol violation that ends the whole session. The session queues a
/// go-away with the protocol-error code and refuses all later input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// A header that cannot be decoded.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// A data frame longer than any window we would ever grant.
    #[error("yamux data frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The announced payload length.
        len: u32,
        /// `YamuxConfig::max_stream_window`.
        max: u32,
    },
    /// A data or window-update frame on stream 0, or a ping / go-away on
    /// another stream.
    #[error("yamux {0} frame on the wrong stream id")]
    WrongStreamId(&'static str),
    /// The remote opened a stream id of our parity (clients use odd ids,
    /// servers even ones).
    #[error("remote opened stream {0} with our parity")]
    WrongParity(u32),
    /// The remote opened a stream id that is already in use.
    #[error("remote opened stream {0} twice")]
    DuplicateStream(u32),
    /// A window update that would grow a send window past 2^32 - 1.
    #[error("yamux window update overflows the send window of stream {0}")]
    WindowOverflow(u32),
    /// The session already failed earlier (with this error).
    #[error("yamux session failed earlier: {0}")]
    Failed(Box<ConnectionError>),
}

/// Why one stream ended on our side; the rest of the session keeps running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The remote sent more than the stream's receive window allowed. The
    /// stream was reset and the excess dropped.
    #[error("stream {id}: remote sent {len} bytes into a window of {window}")]
    WindowExceeded {
        /// The stream.
        id: u32,
        /// The data frame's length.
        len: u32,
        /// What was left of the receive window.
        window: u32,
    },
    /// The remote opened a stream beyond `max_streams`, or after a go-away;
    /// it was reset.
    #[error("stream {0}: inbound open refused (stream limit or go-away)")]
    Refused(u32),
}

/// Why a stream could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// `max_streams` streams are open.
    #[error("yamux stream limit reached")]
    TooManyStreams,
    /// `max_ack_backlog` of our opens wait for the remote's acknowledgement.
    #[error("too many unacknowledged yamux stream opens")]
    AckBacklog,
    /// The remote sent a go-away, or we did: no new streams.
    #[error("yamux session is going away")]
    GoingAway,
    /// Stream ids are exhausted.
    #[error("yamux stream ids exhausted")]
    IdsExhausted,
    /// The session failed.
    #[error("yamux session failed")]
    Failed,
}

/// Why a stream operation (write, finish) could not go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// No such stream (never opened, or already gone).
    #[error("unknown yamux stream")]
    UnknownStream,
    /// Our send side is already finished or reset.
    #[error("yamux stream send side is closed")]
    Closed,
    /// The remote reset the stream.
    #[error("yamux stream was reset by the remote")]
    Reset,
}
