//! Packet flows handed to a thread of their own: [`DetachedPacketFlow`].
//!
//! Like [`DetachedStream`](crate::DetachedStream), the swarm thread and the
//! handle's thread share small bounded queues. Datagrams are unreliable by
//! nature, so a full queue drops the oldest packet (counted) rather than
//! blocking either side: a slow reader loses stale position updates, not
//! memory.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::PacketError;
use crate::events::PacketFlow;
use crate::wake::Notifier;

/// Packets queued per direction before the oldest is dropped.
pub(crate) const PACKET_QUEUE: usize = 1024;

pub(crate) struct FlowShared {
    state: Mutex<FlowState>,
    changed: Condvar,
    notifier: Notifier,
    flow: PacketFlow,
}

#[derive(Default)]
pub(crate) struct FlowState {
    pub(crate) inbox: VecDeque<Bytes>,
    pub(crate) outbox: VecDeque<Bytes>,
    /// The largest payload the flow takes now (refreshed by the swarm).
    pub(crate) max_size: usize,
    /// Packets dropped because a queue was full.
    pub(crate) dropped: u64,
    pub(crate) closed: Option<PacketError>,
    pub(crate) handle_dropped: bool,
}

impl FlowShared {
    pub(crate) fn new(flow: PacketFlow, max_size: usize, notifier: Notifier) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(FlowState {
                max_size,
                ..FlowState::default()
            }),
            changed: Condvar::new(),
            notifier,
            flow,
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, FlowState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a received packet for the thread (swarm side).
    pub(crate) fn deliver(&self, packet: Bytes) {
        let mut st = self.lock();
        if st.inbox.len() >= PACKET_QUEUE {
            st.inbox.pop_front();
            st.dropped += 1;
        }
        st.inbox.push_back(packet);
        drop(st);
        self.changed.notify_all();
    }

    /// End the flow for the thread (swarm side).
    pub(crate) fn close(&self, reason: PacketError) {
        self.lock().closed.get_or_insert(reason);
        self.changed.notify_all();
    }
}

/// A packet flow owned by another thread. `Send`; obtain one with
/// [`Context::detach_packet_flow`](crate::Context::detach_packet_flow).
pub struct DetachedPacketFlow {
    shared: Arc<FlowShared>,
}

impl DetachedPacketFlow {
    pub(crate) fn new(shared: Arc<FlowShared>) -> Self {
        Self { shared }
    }

    /// The flow this handle owns.
    pub fn flow(&self) -> PacketFlow {
        self.shared.flow
    }

    /// Queue one packet for sending. Fails at once if it is too large or
    /// the flow is closed; a full queue drops its oldest packet.
    pub fn send(&self, data: &[u8]) -> Result<(), PacketError> {
        let mut st = self.shared.lock();
        if let Some(e) = &st.closed {
            return Err(e.clone());
        }
        if data.len() > st.max_size {
            return Err(PacketError::TooLarge {
                size: data.len(),
                max: st.max_size,
            });
        }
        if st.outbox.len() >= PACKET_QUEUE {
            st.outbox.pop_front();
            st.dropped += 1;
        }
        st.outbox.push_back(Bytes::copy_from_slice(data));
        drop(st);
        self.shared.notifier.notify(self.shared.flow.0);
        Ok(())
    }

    /// The next received packet, waiting at most `timeout`. `Ok(None)` on
    /// timeout; an error once the flow is closed and drained.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Bytes>, PacketError> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if let Some(p) = st.inbox.pop_front() {
                return Ok(Some(p));
            }
            if let Some(e) = &st.closed {
                return Err(e.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Packets dropped so far because a queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }
}

impl Drop for DetachedPacketFlow {
    fn drop(&mut self) {
        self.shared.lock().handle_dropped = true;
        self.shared.notifier.notify(self.shared.flow.0);
    }
}

impl std::fmt::Debug for DetachedPacketFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetachedPacketFlow")
            .field("flow", &self.shared.flow)
            .finish()
    }
}
