//! Why a request got no response.

use std::io;
use std::time::Duration;

use swarm::multistream::MultistreamError;
use swarm::{PeerId, StreamError};

use super::{RESET_DECLINED, RESET_MALFORMED, RESET_TIMEOUT, RESET_TOO_LARGE};

/// Why a request got no response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// There is no connection to the peer: dial it first.
    #[error("not connected to {0}")]
    NotConnected(PeerId),
    /// The remote does not support the protocol (multistream-select `na`).
    #[error("the remote does not support {0}")]
    Refused(String),
    /// No full response within the timeout.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// Our request, or the response we received, is over our size limit.
    #[error("message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The message's length.
        len: u64,
        /// The limit it exceeds.
        limit: usize,
    },
    /// The remote refused our request as larger than its limit.
    #[error("the remote refused the request as too large")]
    RemoteTooLarge,
    /// The remote's handler gave no response.
    #[error("the remote declined to answer")]
    Declined,
    /// A message was not a single length-prefixed message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The stream or connection ended before the full response.
    #[error("closed before the response: {0}")]
    Closed(String),
    /// The swarm could not start the exchange (stopped, shutting down,
    /// stream limit reached).
    #[error("the swarm cannot send the request: {0}")]
    Swarm(String),
}

impl RequestError {
    /// The error for a stream the remote reset or stopped with `code`.
    pub(super) fn from_code(code: u64) -> Self {
        match code {
            RESET_DECLINED => RequestError::Declined,
            RESET_TOO_LARGE => RequestError::RemoteTooLarge,
            RESET_MALFORMED => RequestError::Malformed("the remote could not parse it".into()),
            other => RequestError::Closed(format!("the remote reset the stream with code {other}")),
        }
    }

    /// The error for a stream that died with `error`.
    pub(super) fn from_stream(error: &StreamError, protocol: &str) -> Self {
        match error {
            StreamError::Negotiation(MultistreamError::Refused { .. }) => {
                RequestError::Refused(protocol.to_string())
            }
            StreamError::Reset(code) | StreamError::Stopped(code) => Self::from_code(*code),
            other => RequestError::Closed(other.to_string()),
        }
    }

    /// The error for a failed read or write on a thread's stream handle.
    pub(super) fn from_io(error: io::Error, timeout: Duration, protocol: &str) -> Self {
        if error.kind() == io::ErrorKind::TimedOut {
            return RequestError::Timeout(timeout);
        }
        match error
            .get_ref()
            .and_then(|e| e.downcast_ref::<StreamError>())
        {
            Some(stream_error) => Self::from_stream(stream_error, protocol),
            None => RequestError::Closed(error.to_string()),
        }
    }

    /// The reset code that tells the remote about this error, if any.
    pub(super) fn reset_code(&self) -> u64 {
        match self {
            RequestError::TooLarge { .. } => RESET_TOO_LARGE,
            RequestError::Malformed(_) => RESET_MALFORMED,
            RequestError::Timeout(_) => RESET_TIMEOUT,
            _ => 0,
        }
    }
}
