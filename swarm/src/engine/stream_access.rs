//! The one way in to a stream for an operation: every plugin stream call
//! goes through [`Core::plugin_stream`] or [`Core::owned_stream`], which
//! refuse streams the caller does not own (a thread's, a packet flow's
//! control stream) by their owner state.

use crate::error::StreamError;
use crate::ids::StreamRef;
use crate::stream::{Owner, Stream};

use super::core::Core;

impl Core {
    pub(crate) fn stream_mut(&mut self, sref: StreamRef) -> Result<&mut Stream, StreamError> {
        self.conn_mut(sref.conn)
            .and_then(|c| c.streams.get_mut(&sref.id))
            .ok_or(StreamError::UnknownStream(sref))
    }

    /// The connection and stream for a plugin's stream call, refusing
    /// threads' streams and packet flows' control streams (whose data the
    /// plugin never sees, and whose `Writable` it must not be told about).
    pub(crate) fn plugin_stream(
        &mut self,
        sref: StreamRef,
    ) -> Result<(&mut quinn_proto::Connection, &mut Stream), StreamError> {
        let (quic, stream) = self.owned_stream(sref)?;
        if stream.packet_flow {
            return Err(StreamError::PacketFlow(sref));
        }
        Ok((quic, stream))
    }

    /// The connection and stream for an operation on the swarm thread's
    /// side (a plugin's stream or a flow's control stream), refusing threads.
    pub(crate) fn owned_stream(
        &mut self,
        sref: StreamRef,
    ) -> Result<(&mut quinn_proto::Connection, &mut Stream), StreamError> {
        let conn = self
            .connections
            .get_mut(sref.conn.index as usize)
            .filter(|c| c.generation == sref.conn.generation && !c.closing)
            .ok_or(StreamError::UnknownStream(sref))?;
        let stream = conn
            .streams
            .get_mut(&sref.id)
            .ok_or(StreamError::UnknownStream(sref))?;
        if matches!(stream.owner, Owner::Thread(_)) {
            return Err(StreamError::Detached(sref));
        }
        Ok((&mut conn.quic, stream))
    }
}
