//! Limits and windows of a Yamux session.

/// The initial stream window every Yamux peer assumes (spec: 256 KiB).
pub const DEFAULT_WINDOW: u32 = 256 * 1024;

/// Yamux settings. The defaults follow what rust-libp2p's `yamux` crate
/// does, with a bounded memory budget per connection.
#[derive(Debug, Clone, Copy)]
pub struct YamuxConfig {
    /// Most streams open at once (both directions). An inbound open beyond
    /// it is reset; an outbound one is refused (default 512).
    pub max_streams: usize,
    /// Most of our opens the remote has not acknowledged yet; beyond it
    /// [`Session::open_stream`](super::Session::open_stream) refuses
    /// (default 256, as the `yamux` crate).
    pub max_ack_backlog: usize,
    /// Largest window one stream's receive window may grow to by
    /// auto-tuning (default 16 MiB). A data frame longer than this ends the
    /// connection: no window we could have granted admits it.
    pub max_stream_window: u32,
    /// Budget for all receive windows of a connection together (default
    /// 64 MiB): what a remote can make us buffer at most.
    pub max_connection_window: u64,
    /// Largest data frame payload we send (default 16 KiB).
    pub max_frame_payload: usize,
    /// Bytes queued for the wire above which writes are refused until the
    /// driver takes them (default 1 MiB): bounds the write buffer when the
    /// socket is slower than the streams.
    pub max_outbound_buffer: usize,
}

impl Default for YamuxConfig {
    fn default() -> Self {
        Self {
            max_streams: 512,
            max_ack_backlog: 256,
            max_stream_window: 16 * 1024 * 1024,
            max_connection_window: 64 * 1024 * 1024,
            max_frame_payload: 16 * 1024,
            max_outbound_buffer: 1024 * 1024,
        }
    }
}
