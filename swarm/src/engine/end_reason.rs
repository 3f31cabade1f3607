//! Why a connection ended, before it is turned into an error for whoever
//! must hear it (a dialer, a plugin, subscribers).

use std::sync::Arc;

use libp2p_identity::PeerId;

use crate::error::{DialError, cause};

/// Why a connection ended, before it is turned into an error for someone.
pub(crate) enum EndReason {
    Quic(quinn_proto::ConnectionError),
    HandshakeTimeout,
    Refused(DialError),
    Local(u32),
    Lost(String),
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndReason::Quic(e) => write!(f, "{e}"),
            EndReason::HandshakeTimeout => write!(f, "handshake timed out"),
            EndReason::Refused(e) => write!(f, "{e}"),
            EndReason::Local(code) => write!(f, "closed locally with code {code}"),
            EndReason::Lost(s) => write!(f, "{s}"),
        }
    }
}

impl EndReason {
    pub(crate) fn into_dial_error(
        self,
        expected: Option<PeerId>,
        observed: Option<PeerId>,
    ) -> DialError {
        if let (Some(expected), Some(actual)) = (expected, observed)
            && expected != actual
        {
            return DialError::WrongPeerId { expected, actual };
        }
        match self {
            EndReason::Quic(quinn_proto::ConnectionError::TimedOut)
            | EndReason::HandshakeTimeout => DialError::Timeout,
            EndReason::Quic(e) => DialError::Handshake(Arc::new(e)),
            EndReason::Refused(e) => e,
            EndReason::Local(_) => DialError::ShuttingDown,
            EndReason::Lost(s) => DialError::Handshake(cause(&s)),
        }
    }
}
