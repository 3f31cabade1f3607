//! The one way in to a stream for an operation: every stream call from a
//! plugin, a packet flow or a thread's bookkeeping goes through
//! [`Core::stream_for`], which finds the stream (a stale handle is an
//! error, never a panic) and lets its owner state decide whether this kind
//! of caller may act on it ([`Stream::check`]).

use crate::error::StreamError;
use crate::ids::StreamRef;
use crate::stream::{Access, Stream};
use crate::transport::Transport;

use super::core::Core;

impl Core {
    /// The transport and the stream for an operation of kind `access`.
    pub(crate) fn stream_for(
        &mut self,
        sref: StreamRef,
        access: Access,
    ) -> Result<(&mut Transport, &mut Stream), StreamError> {
        let conn = self
            .conn_mut(sref.conn)
            .ok_or(StreamError::UnknownStream(sref))?;
        let stream = conn
            .streams
            .get_mut(&sref.id)
            .ok_or(StreamError::UnknownStream(sref))?;
        stream.check(sref, access)?;
        Ok((&mut conn.transport, stream))
    }
}
