//! One peer's outbound queue: framed RPCs waiting for the peer's stream,
//! bounded by bytes and by count, in two lanes. Control and our own
//! publishes go in the high lane and leave first; forwards and gossip go
//! in the low lane, which may fill only part of the bound, and are dropped
//! (and counted) when it is full. The swarm is handed bytes only as the
//! stream takes them, so this queue is all the memory a slow peer costs.

use std::collections::VecDeque;

use bytes::Bytes;

use super::config::QueueLimits;
use super::message::MessageId;

/// Which lane a frame travels in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Control (GRAFT, PRUNE, subscriptions, IDONTWANT) and our publishes.
    High,
    /// Forwarded messages, IHAVE gossip and IWANT answers.
    Low,
}

/// A framed RPC waiting, with the id of the message it carries if it is
/// a forward (so that an IDONTWANT that arrives while it waits skips it).
#[derive(Clone, Debug)]
pub struct Frame {
    /// The framed RPC.
    pub bytes: Bytes,
    /// The forwarded message's id.
    pub message_id: Option<MessageId>,
}

/// A bounded two-lane queue of framed RPCs.
#[derive(Debug)]
pub struct OutboundQueue {
    high: VecDeque<Frame>,
    low: VecDeque<Frame>,
    high_bytes: usize,
    low_bytes: usize,
    limits: QueueLimits,
    /// Frames refused because the queue was full.
    pub dropped: u64,
}

impl OutboundQueue {
    /// An empty queue with these bounds.
    pub fn new(limits: QueueLimits) -> Self {
        Self {
            high: VecDeque::new(),
            low: VecDeque::new(),
            high_bytes: 0,
            low_bytes: 0,
            limits,
            dropped: 0,
        }
    }

    /// Queue a frame; `false` (counted as dropped) if the bound refuses it.
    /// A high-priority frame that does not fit evicts low ones, newest
    /// first, since they are the least urgent.
    pub fn push(&mut self, frame: Frame, priority: Priority) -> bool {
        let len = frame.bytes.len();
        match priority {
            Priority::Low => {
                let pct = usize::from(self.limits.low_priority_percent);
                let max_bytes = self.limits.max_bytes * pct / 100;
                let max_frames = (self.limits.max_frames * pct / 100).max(1);
                if self.bytes() + len > self.limits.max_bytes
                    || self.low_bytes + len > max_bytes
                    || self.len() >= self.limits.max_frames
                    || self.low.len() >= max_frames
                {
                    self.dropped += 1;
                    return false;
                }
                self.low_bytes += len;
                self.low.push_back(frame);
            }
            Priority::High => {
                while (self.bytes() + len > self.limits.max_bytes
                    || self.len() >= self.limits.max_frames)
                    && let Some(evicted) = self.low.pop_back()
                {
                    self.low_bytes -= evicted.bytes.len();
                    self.dropped += 1;
                }
                if self.bytes() + len > self.limits.max_bytes
                    || self.len() >= self.limits.max_frames
                {
                    self.dropped += 1;
                    return false;
                }
                self.high_bytes += len;
                self.high.push_back(frame);
            }
        }
        true
    }

    /// The next frame to send, high lane first.
    pub fn pop(&mut self) -> Option<Frame> {
        if let Some(f) = self.high.pop_front() {
            self.high_bytes -= f.bytes.len();
            return Some(f);
        }
        let f = self.low.pop_front()?;
        self.low_bytes -= f.bytes.len();
        Some(f)
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.high_bytes + self.low_bytes
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.high.len() + self.low.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop everything (the peer left).
    pub fn clear(&mut self) {
        self.high.clear();
        self.low.clear();
        self.high_bytes = 0;
        self.low_bytes = 0;
    }
}
