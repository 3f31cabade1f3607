//! The seen-cache: ids of messages already handled, for `seen_ttl`, so a
//! duplicate is dropped. Expiry is in arrival order, so a queue suffices.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::message::MessageId;

/// Ids seen within the TTL.
pub(crate) struct SeenCache {
    ids: HashSet<MessageId>,
    order: VecDeque<(Instant, MessageId)>,
    ttl: Duration,
}

impl SeenCache {
    /// A cache that forgets ids after `ttl`.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ids: HashSet::new(),
            order: VecDeque::new(),
            ttl,
        }
    }

    /// Record `id`; `false` if it was already there.
    pub(crate) fn insert(&mut self, id: MessageId, now: Instant) -> bool {
        self.expire(now);
        if !self.ids.insert(id.clone()) {
            return false;
        }
        self.order.push_back((now + self.ttl, id));
        true
    }

    /// Whether `id` was seen within the TTL.
    pub(crate) fn contains(&self, id: &MessageId) -> bool {
        self.ids.contains(id)
    }

    /// Forget ids past their TTL.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if *at > now {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.ids.remove(&id);
            }
        }
    }

    /// Ids held.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}
