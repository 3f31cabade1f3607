//! The message cache: the messages of the last `history_length`
//! heartbeats, for answering IWANT, and the ids of the last
//! `history_gossip` heartbeats, for IHAVE gossip.

use std::collections::{HashMap, VecDeque};

use swarm::PeerId;

use super::message::MessageId;
use super::proto;

/// A cached message and how often each peer asked for it.
struct Entry {
    message: proto::Message,
    iwant_counts: HashMap<PeerId, u32>,
}

/// The sliding window cache.
pub(crate) struct MessageCache {
    entries: HashMap<MessageId, Entry>,
    /// Newest window first; each holds (id, topic).
    windows: VecDeque<Vec<(MessageId, String)>>,
    gossip: usize,
}

impl MessageCache {
    /// A cache of `history` windows, gossiping the newest `gossip`.
    pub(crate) fn new(history: usize, gossip: usize) -> Self {
        let mut windows = VecDeque::with_capacity(history.max(1));
        windows.push_front(Vec::new());
        windows.resize_with(history.max(1), Vec::new);
        Self {
            entries: HashMap::new(),
            windows,
            gossip,
        }
    }

    /// Add a message to the newest window.
    pub(crate) fn put(&mut self, id: MessageId, message: proto::Message) {
        if self.entries.contains_key(&id) {
            return;
        }
        self.windows[0].push((id.clone(), message.topic.clone()));
        self.entries.insert(
            id,
            Entry {
                message,
                iwant_counts: HashMap::new(),
            },
        );
    }

    /// Whether the cache holds `id`.
    pub(crate) fn contains(&self, id: &MessageId) -> bool {
        self.entries.contains_key(id)
    }

    /// The message for an IWANT from `peer`, counting the request; `None`
    /// once `peer` asked more than `limit` times (or unknown id).
    pub(crate) fn get_for(
        &mut self,
        id: &MessageId,
        peer: PeerId,
        limit: u32,
    ) -> Option<&proto::Message> {
        let entry = self.entries.get_mut(id)?;
        let count = entry.iwant_counts.entry(peer).or_insert(0);
        *count += 1;
        (*count <= limit).then_some(&entry.message)
    }

    /// Ids of the gossip windows for `topic`.
    pub(crate) fn gossip_ids(&self, topic: &str) -> Vec<MessageId> {
        self.windows
            .iter()
            .take(self.gossip)
            .flatten()
            .filter(|(_, t)| t == topic)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Heartbeat: drop the oldest window, open a new one.
    pub(crate) fn shift(&mut self) {
        if let Some(old) = self.windows.pop_back() {
            for (id, _) in old {
                self.entries.remove(&id);
            }
        }
        self.windows.push_front(Vec::new());
    }

    /// Messages held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
