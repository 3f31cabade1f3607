//! Request/response: one request and one response per stream, each a
//! length-prefixed message, with size limits and a timeout.
//!
//! # Wire format
//!
//! The requester opens a stream for the protocol id, writes the request as
//! `uvarint(length) ‖ bytes` and finishes its send side. The responder reads
//! that one message (at most [`RequestResponseConfig::max_request_size`]
//! bytes), calls its handler, writes the response the same way and finishes.
//! A responder that will not answer resets the stream with one of the
//! `RESET_*` codes below, which the requester turns into a typed
//! [`RequestError`].
//!
//! # Use
//!
//! - **Serve** a protocol: register a [`RequestResponse`] plugin with a
//!   handler closure. The handler runs on the swarm thread, so it must not
//!   block; it returns the response, or `None`/`Err` to decline.
//! - **Ask from any thread**: [`request`] opens a stream through a
//!   [`SwarmHandle`] and blocks until the response, an error or the timeout.
//!   The asking node needs no plugin for this.
//! - **Ask from a plugin**: register a [`RequestResponse`] for the protocol
//!   (a handler is optional), call [`send_request`] with your plugin's
//!   [`Context`], and receive the outcome as a [`ResponseEvent`] in
//!   [`Protocol::handle_protocol_event`].
//!
//! ```no_run
//! use std::time::Duration;
//! use protocols::request_response::{self, RequestResponse, RequestResponseConfig};
//! use swarm::Bytes;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let mut runtime = swarm::Runtime::new(swarm::SwarmConfig::new(swarm::Keypair::generate_ed25519()))?;
//! // Serve `/upper/1.0.0`: answer every request with its upper-case copy.
//! runtime.add_protocol(Box::new(
//!     RequestResponse::new("/upper/1.0.0", RequestResponseConfig::default())
//!         .with_handler(|_peer, request: Bytes| request.to_ascii_uppercase()),
//! ));
//! let (handle, _thread) = runtime.spawn()?;
//! // Ask a connected peer, from this thread.
//! # let peer = swarm::PeerId::random();
//! let response = request_response::request(&handle, peer, "/upper/1.0.0", b"hi", Duration::from_secs(5))?;
//! assert_eq!(&response[..], b"HI");
//! # Ok(())
//! # }
//! ```
//!
//! [`SwarmHandle`]: swarm::SwarmHandle
//! [`Context`]: swarm::Context
//! [`Protocol::handle_protocol_event`]: swarm::Protocol::handle_protocol_event

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use swarm::PeerId;

// Reset codes start at 2: 0 is "no reason" and 1 is the swarm's
// `RESET_CODE_NEGOTIATION`.
/// Reset code: the responder's handler declined to answer.
pub const RESET_DECLINED: u64 = 2;
/// Reset code: a message exceeded the receiver's size limit.
pub const RESET_TOO_LARGE: u64 = 3;
/// Reset code: a message was not a single length-prefixed message.
pub const RESET_MALFORMED: u64 = 4;
/// Reset code: the exchange did not finish within the timeout.
pub const RESET_TIMEOUT: u64 = 5;

/// Longest uvarint length prefix (a `u64`).
pub(super) const MAX_PREFIX_LEN: usize = 10;

/// Size limits and the timeout of one protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestResponseConfig {
    /// Largest request, in bytes, that is sent or accepted. Default 1 MiB.
    pub max_request_size: usize,
    /// Largest response, in bytes, that is sent or accepted. Default 10 MiB.
    pub max_response_size: usize,
    /// Longest a whole exchange may take, from opening the stream to the
    /// last byte of the response. Default 10 s.
    pub timeout: Duration,
}

impl Default for RequestResponseConfig {
    fn default() -> Self {
        Self {
            max_request_size: 1 << 20,
            max_response_size: 10 << 20,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Names one outbound request, to match it with its [`ResponseEvent`].
/// Unique within the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

impl RequestId {
    pub(super) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        RequestId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request#{}", self.0)
    }
}

/// A request for the [`RequestResponse`] plugin of `protocol` to send.
///
/// Plugins emit it with [`send_request`]; other threads may send it with
/// [`SwarmHandle::send_event`](swarm::SwarmHandle::send_event) and watch [`SwarmHandle::subscribe`](swarm::SwarmHandle::subscribe) for the
/// [`ResponseEvent`] (or simply call [`request`]).
#[derive(Clone, Debug)]
pub struct OutboundRequest {
    /// The id its [`ResponseEvent`] will carry.
    pub id: RequestId,
    /// The peer to ask; it must be connected.
    pub peer: PeerId,
    /// The protocol id.
    pub protocol: String,
    /// The request bytes.
    pub request: Bytes,
}

impl OutboundRequest {
    /// A request with a fresh id.
    pub fn new(peer: PeerId, protocol: &str, request: impl Into<Bytes>) -> Self {
        Self {
            id: RequestId::next(),
            peer,
            protocol: protocol.to_string(),
            request: request.into(),
        }
    }
}

/// The outcome of an [`OutboundRequest`], emitted by the [`RequestResponse`]
/// plugin to the other plugins and to subscribers.
#[derive(Clone, Debug)]
pub struct ResponseEvent {
    /// The request's id.
    pub id: RequestId,
    /// The peer that was asked.
    pub peer: PeerId,
    /// The protocol id.
    pub protocol: String,
    /// The response, or why there is none.
    pub result: Result<Bytes, RequestError>,
}

mod blocking;
mod error;
mod message;
mod plugin;
#[cfg(test)]
mod tests;

pub use blocking::{request, request_with_config};
pub use error::RequestError;
pub use plugin::{IntoResponse, RequestResponse, send_request};
