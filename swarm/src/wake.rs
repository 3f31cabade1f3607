//! Waking the swarm thread from other threads.
//!
//! Other threads never touch swarm state. They queue what needs attention
//! (a stream handle that read or wrote, a command) and call [`Wake::wake`];
//! the mio driver turns that into a `mio::Waker` wake-up, and a test driver
//! may do nothing at all and simply poll.

use std::sync::{Arc, Mutex};

use crate::ids::StreamRef;

/// Something that makes the swarm thread run a turn soon.
pub trait Wake: Send + Sync {
    /// Wake the swarm thread. Must be cheap and may be called often.
    fn wake(&self);
}

impl Wake for mio::Waker {
    fn wake(&self) {
        // A failed wake means the poll is gone, i.e. the swarm has stopped.
        let _ = mio::Waker::wake(self);
    }
}

/// A waker that does nothing, for drivers that poll anyway (tests).
pub struct NoWake;

impl Wake for NoWake {
    fn wake(&self) {}
}

/// Streams that other threads touched, plus the waker to run the swarm.
#[derive(Clone)]
pub(crate) struct Notifier {
    ready: Arc<Mutex<Vec<StreamRef>>>,
    waker: Arc<dyn Wake>,
}

impl Notifier {
    pub(crate) fn new(waker: Arc<dyn Wake>) -> Self {
        Self {
            ready: Arc::new(Mutex::new(Vec::new())),
            waker,
        }
    }

    /// Mark a stream as needing the swarm's attention and wake it.
    pub(crate) fn notify(&self, stream: StreamRef) {
        let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        let first = ready.is_empty();
        if !ready.contains(&stream) {
            ready.push(stream);
        }
        drop(ready);
        if first {
            self.waker.wake();
        }
    }

    /// Wake the swarm without naming a stream (a command was queued).
    pub(crate) fn wake(&self) {
        self.waker.wake();
    }

    /// Take the streams marked since the last call.
    pub(crate) fn take_ready(&self) -> Vec<StreamRef> {
        std::mem::take(&mut *self.ready.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
