//! The 12-byte Yamux frame header (hashicorp/yamux `spec.md`), encoded and
//! decoded without I/O.
//!
//! ```text
//! version: u8 (0) | type: u8 | flags: u16 BE | stream id: u32 BE | length: u32 BE
//! ```
//! `length` is the payload size of a data frame, the window delta of a
//! window update, the opaque value of a ping and the error code of a
//! go-away; only data frames carry a payload.

use bytes::BufMut;

/// Size of a frame header in bytes.
pub const HEADER_LEN: usize = 12;

/// The only Yamux version there is.
const VERSION: u8 = 0;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    /// Stream data; `length` payload bytes follow the header.
    Data,
    /// Adds `length` bytes to the receiver's send window of a stream.
    WindowUpdate,
    /// A liveness / RTT probe on stream 0; `length` is an opaque value.
    Ping,
    /// The sender will open no more streams; `length` is the error code.
    GoAway,
}

impl FrameType {
    fn code(self) -> u8 {
        match self {
            FrameType::Data => 0,
            FrameType::WindowUpdate => 1,
            FrameType::Ping => 2,
            FrameType::GoAway => 3,
        }
    }
}

/// Frame flags: a bit set, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u16);

impl Flags {
    /// Opens a stream (or asks for a pong).
    pub const SYN: Flags = Flags(1);
    /// Acknowledges a stream open (or is the pong).
    pub const ACK: Flags = Flags(2);
    /// Half-closes the sender's side of a stream.
    pub const FIN: Flags = Flags(4);
    /// Resets a stream at once, both ways.
    pub const RST: Flags = Flags(8);
    /// No flag.
    pub const NONE: Flags = Flags(0);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
}

/// Go-away codes of the spec.
pub mod go_away_code {
    /// Normal termination.
    pub const NORMAL: u32 = 0;
    /// The remote broke the protocol.
    pub const PROTOCOL_ERROR: u32 = 1;
    /// An internal error.
    pub const INTERNAL_ERROR: u32 = 2;
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The frame type.
    pub kind: FrameType,
    /// The flags.
    pub flags: Flags,
    /// The stream (0 for ping and go-away).
    pub stream: u32,
    /// Payload length, window delta, ping value or go-away code.
    pub length: u32,
}

/// Why a header cannot be decoded. Both end the connection: nothing after
/// a bad header can be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A version other than 0.
    #[error("unsupported yamux version {0}")]
    Version(u8),
    /// A frame type other than 0..=3.
    #[error("unknown yamux frame type {0}")]
    Type(u8),
}

impl Header {
    /// A header of `kind` with `flags` for `stream`.
    pub fn new(kind: FrameType, flags: Flags, stream: u32, length: u32) -> Self {
        Self {
            kind,
            flags,
            stream,
            length,
        }
    }

    /// Append the 12 header bytes to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(VERSION);
        out.put_u8(self.kind.code());
        out.put_u16(self.flags.0);
        out.put_u32(self.stream);
        out.put_u32(self.length);
    }

    /// Decode the first 12 bytes of `b`.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<Self, HeaderError> {
        if b[0] != VERSION {
            return Err(HeaderError::Version(b[0]));
        }
        let kind = match b[1] {
            0 => FrameType::Data,
            1 => FrameType::WindowUpdate,
            2 => FrameType::Ping,
            3 => FrameType::GoAway,
            t => return Err(HeaderError::Type(t)),
        };
        Ok(Self {
            kind,
            flags: Flags(u16::from_be_bytes([b[2], b[3]])),
            stream: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            length: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_in_network_order() {
        let h = Header::new(FrameType::WindowUpdate, Flags(Flags::SYN.0), 3, 0x0102_0304);
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(out, [0, 1, 0, 1, 0, 0, 0, 3, 1, 2, 3, 4]);
        let arr: [u8; HEADER_LEN] = out.try_into().unwrap();
        assert_eq!(Header::decode(&arr), Ok(h));
    }

    #[test]
    fn bad_version_and_type_are_refused() {
        let mut b = [0u8; HEADER_LEN];
        b[0] = 1;
        assert_eq!(Header::decode(&b), Err(HeaderError::Version(1)));
        b[0] = 0;
        b[1] = 4;
        assert_eq!(Header::decode(&b), Err(HeaderError::Type(4)));
    }
}
