//! Streams handed to a thread of their own: a blocking `Read + Write` handle.
//!
//! The swarm thread and the handle's thread share one small buffer per
//! direction, each bounded by [`Limits::threaded_stream_buffer`]:
//!
//! - receive: the swarm moves chunks (`Bytes`, no copy) from QUIC into the
//!   buffer until it is full, then stops reading the QUIC stream. QUIC flow
//!   control then holds the remote back; memory does not grow. When the
//!   thread drains the buffer below half, it wakes the swarm to read again.
//! - send: `write` copies the caller's bytes into the buffer (the only copy)
//!   and blocks while it is full; the swarm drains it into QUIC as the
//!   stream's send window allows.
//!
//! [`Limits::threaded_stream_buffer`]: crate::Limits::threaded_stream_buffer

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};

use crate::error::StreamError;
use crate::ids::StreamRef;
use crate::wake::Notifier;

/// State shared by the swarm thread and the handle's thread.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Signalled when data, room or an end arrives for the handle's thread.
    changed: Condvar,
    notifier: Notifier,
    stream: StreamRef,
    limit: usize,
}

#[derive(Default)]
pub(crate) struct State {
    /// Received chunks waiting for the thread.
    pub(crate) recv: VecDeque<Bytes>,
    pub(crate) recv_len: usize,
    /// The remote finished its send side; every byte is in `recv`.
    pub(crate) recv_fin: bool,
    /// The swarm stopped reading QUIC because `recv` was full.
    pub(crate) recv_paused: bool,
    /// Bytes the thread wrote, waiting for the swarm.
    pub(crate) send: VecDeque<Bytes>,
    pub(crate) send_len: usize,
    /// The thread finished its send side (after `send` drains).
    pub(crate) send_fin: bool,
    /// The handle was dropped: the swarm should stop the receive side.
    pub(crate) handle_dropped: bool,
    /// The stream ended abnormally; both directions fail with this.
    pub(crate) error: Option<StreamError>,
}

impl Shared {
    pub(crate) fn new(stream: StreamRef, limit: usize, notifier: Notifier) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            notifier,
            stream,
            limit: limit.max(1),
        })
    }

    /// Lock the state. A poisoned lock only means a thread panicked while
    /// holding it; the data is still consistent enough to shut down.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wake the handle's thread after the swarm changed the state.
    pub(crate) fn notify_thread(&self) {
        self.changed.notify_all();
    }

    /// How many more bytes the swarm may buffer for the thread.
    pub(crate) fn recv_room(&self, state: &State) -> usize {
        self.limit.saturating_sub(state.recv_len)
    }

    /// Ask the swarm thread to look at this stream again.
    fn notify_swarm(&self) {
        self.notifier.notify(self.stream);
    }
}

/// A stream owned by another thread: blocking `Read` and `Write`.
///
/// `read` returns 0 at the remote's end of stream. `finish` (or drop) ends
/// our send side cleanly; dropping the handle also stops the receive side if
/// the remote is still sending. Obtain one with
/// [`Context::detach_stream`](crate::Context::detach_stream) or
/// [`SwarmHandle::open_stream`](crate::SwarmHandle::open_stream).
pub struct DetachedStream {
    shared: Arc<Shared>,
    read_timeout: Option<Duration>,
    finished: bool,
}

impl DetachedStream {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            read_timeout: None,
            finished: false,
        }
    }

    /// The stream this handle owns.
    pub fn stream(&self) -> StreamRef {
        self.shared.stream
    }

    /// Bound each blocking `read` (and `flush`/`write` waits); `None` waits
    /// forever. A read that times out fails with `ErrorKind::TimedOut`.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// Finish our send side after the queued bytes: the remote reads EOF.
    pub fn finish(&mut self) -> io::Result<()> {
        if self.finished {
            return Ok(());
        }
        let mut state = self.shared.lock();
        if let Some(e) = &state.error {
            return Err(e.clone().into());
        }
        state.send_fin = true;
        drop(state);
        self.finished = true;
        self.shared.notify_swarm();
        Ok(())
    }

    /// Wait on the condition variable, honouring the handle's timeout.
    fn wait<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        deadline: Option<Instant>,
    ) -> io::Result<MutexGuard<'a, State>> {
        match deadline {
            None => Ok(self
                .shared
                .changed
                .wait(guard)
                .unwrap_or_else(|p| p.into_inner())),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "stream timed out"));
                }
                let (guard, _) = self
                    .shared
                    .changed
                    .wait_timeout(guard, left)
                    .unwrap_or_else(|p| p.into_inner());
                Ok(guard)
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.read_timeout.map(|t| Instant::now() + t)
    }
}

impl Read for DetachedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let deadline = self.deadline();
        let mut state = self.shared.lock();
        loop {
            if !state.recv.is_empty() {
                // Fill the caller's buffer from as many chunks as are queued:
                // one chunk per call would cap a reader with a large buffer.
                let mut n = 0;
                while n < buf.len() {
                    let Some(front) = state.recv.front_mut() else {
                        break;
                    };
                    let take = front.len().min(buf.len() - n);
                    buf[n..n + take].copy_from_slice(&front[..take]);
                    front.advance(take);
                    if front.is_empty() {
                        state.recv.pop_front();
                    }
                    n += take;
                }
                state.recv_len -= n;
                // Resume the swarm's reading once half the buffer is free, not
                // on every byte, so a slow reader costs few wake-ups.
                let resume = state.recv_paused && state.recv_len <= self.shared.limit / 2;
                if resume {
                    state.recv_paused = false;
                }
                drop(state);
                if resume {
                    self.shared.notify_swarm();
                }
                return Ok(n);
            }
            if state.recv_fin {
                return Ok(0);
            }
            if let Some(e) = &state.error {
                return Err(e.clone().into());
            }
            state = self.wait(state, deadline)?;
        }
    }
}

impl Write for DetachedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.finished {
            return Err(StreamError::SendClosed.into());
        }
        let deadline = self.deadline();
        let mut state = self.shared.lock();
        loop {
            if let Some(e) = &state.error {
                return Err(e.clone().into());
            }
            let room = self.shared.limit.saturating_sub(state.send_len);
            if room > 0 {
                let n = room.min(buf.len());
                let was_empty = state.send.is_empty();
                state.send.push_back(Bytes::copy_from_slice(&buf[..n]));
                state.send_len += n;
                drop(state);
                if was_empty {
                    self.shared.notify_swarm();
                }
                return Ok(n);
            }
            state = self.wait(state, deadline)?;
        }
    }

    /// Wait until the swarm has handed every queued byte to QUIC.
    fn flush(&mut self) -> io::Result<()> {
        let deadline = self.deadline();
        let mut state = self.shared.lock();
        loop {
            if let Some(e) = &state.error {
                return Err(e.clone().into());
            }
            if state.send.is_empty() {
                return Ok(());
            }
            state = self.wait(state, deadline)?;
        }
    }
}

impl Drop for DetachedStream {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.send_fin = true;
        state.handle_dropped = true;
        drop(state);
        self.shared.notify_swarm();
    }
}

impl std::fmt::Debug for DetachedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetachedStream")
            .field("stream", &self.shared.stream)
            .finish()
    }
}
