//! The state of one Yamux stream inside a [`Session`](super::Session).

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use super::config::DEFAULT_WINDOW;

/// How the receive side stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecvState {
    /// Data may still come.
    Open,
    /// The remote sent FIN; buffered data is still to be read.
    Finished,
    /// The remote reset the stream.
    Reset,
    /// We asked to stop reading: data is dropped and credited at once.
    Discarding,
}

/// One stream: windows both ways, received data not read yet, and where
/// each side stands.
#[derive(Debug)]
pub(super) struct StreamState {
    /// Credit the remote still has: bytes it may send before our next
    /// window update.
    pub(super) recv_window: u32,
    /// The window size we grant (grows by auto-tuning).
    pub(super) recv_window_max: u32,
    /// Received chunks the owner has not read, in order.
    pub(super) recv_buf: VecDeque<Bytes>,
    /// Sum of `recv_buf`'s lengths.
    pub(super) buffered: u32,
    /// When we last sent a window update (for auto-tuning).
    pub(super) last_update: Instant,
    pub(super) recv: RecvState,
    /// Bytes we may still send.
    pub(super) send_window: u32,
    /// We sent FIN or RST.
    pub(super) send_closed: bool,
    /// Our open is not acknowledged yet (outbound streams).
    pub(super) awaiting_ack: bool,
    /// A write was refused; report writable when it can go on.
    pub(super) write_blocked: bool,
    /// The owner has seen the end of the receive side (FIN or reset).
    pub(super) end_read: bool,
}

impl StreamState {
    /// A fresh stream: both windows at the spec's initial 256 KiB, our
    /// receive window raised to `recv_window` by the opening frame.
    pub(super) fn new(recv_window: u32, now: Instant) -> Self {
        Self {
            recv_window,
            recv_window_max: recv_window,
            recv_buf: VecDeque::new(),
            buffered: 0,
            last_update: now,
            recv: RecvState::Open,
            send_window: DEFAULT_WINDOW,
            send_closed: false,
            awaiting_ack: false,
            write_blocked: false,
            end_read: false,
        }
    }

    /// Both sides are over and the owner has seen the end: the stream can
    /// be forgotten.
    pub(super) fn is_done(&self) -> bool {
        self.send_closed
            && match self.recv {
                RecvState::Open => false,
                RecvState::Discarding => true,
                RecvState::Finished | RecvState::Reset => self.end_read,
            }
    }
}
