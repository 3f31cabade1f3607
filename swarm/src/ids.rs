//! Handles: small `Copy` values that name a connection, a stream, a timer or a plugin.
//!
//! Connections live in a slab. A slab index alone would be reused after a
//! connection closes, so a [`ConnId`] also carries a generation: a handle kept
//! past its connection's life resolves to an error, never to a stranger.

use std::fmt;

/// A connection owned by the swarm. Stale handles are detected by generation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}.{}", self.index, self.generation)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A stream on a connection. A transport never reuses a stream id within
/// a connection (QUIC and Yamux both count up), so the pair is unique for
/// the life of the swarm.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamRef {
    /// The connection the stream belongs to.
    pub conn: ConnId,
    pub(crate) id: StreamId,
}

impl StreamRef {
    /// The transport's stream id as a number (for logs and wire formats;
    /// on QUIC, the QUIC stream id).
    pub fn quic_id(&self) -> u64 {
        self.id.0
    }
}

/// A stream's id within its connection, whatever the transport: the QUIC
/// stream id, or (later) a Yamux stream id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct StreamId(pub(crate) u64);

impl fmt::Debug for StreamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s{}", self.conn, self.id.0)
    }
}

impl fmt::Display for StreamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The position of a plugin in the swarm's plugin list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PluginId(pub(crate) usize);

impl PluginId {
    /// The id for code outside any plugin (an application using
    /// [`Swarm::with_context`](crate::Swarm::with_context)). Callbacks that
    /// would go to it are dropped.
    pub fn external() -> Self {
        PluginId(usize::MAX)
    }
}

/// A timer set by a plugin; the token is the plugin's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub(crate) u64);
