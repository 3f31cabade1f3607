//! IHAVE promises (gossipsub v1.1): a peer that advertised a message we
//! then asked for with IWANT owes it to us within the follow-up time; a
//! promise that expires unkept costs the peer a behaviour penalty (P7).
//! One promise per IWANT, on a randomly chosen id, as the spec suggests:
//! a peer cannot tell which id is watched, and the table stays as small
//! as the IWANTs we send.

use std::collections::HashMap;
use std::time::Instant;

use swarm::PeerId;

use super::message::MessageId;

/// Open promises by message id, each peer with its deadline.
#[derive(Default)]
pub(crate) struct GossipPromises {
    by_id: HashMap<MessageId, HashMap<PeerId, Instant>>,
}

impl GossipPromises {
    /// `peer` promised `id` by `deadline` (an earlier promise stands).
    pub(crate) fn add(&mut self, peer: PeerId, id: MessageId, deadline: Instant) {
        self.by_id
            .entry(id)
            .or_default()
            .entry(peer)
            .or_insert(deadline);
    }

    /// `id` arrived valid, from whoever: every promise of it is kept.
    pub(crate) fn delivered(&mut self, id: &MessageId) {
        self.by_id.remove(id);
    }

    /// Promises past their deadline, removed, counted per peer.
    pub(crate) fn take_broken(&mut self, now: Instant) -> HashMap<PeerId, usize> {
        let mut broken: HashMap<PeerId, usize> = HashMap::new();
        self.by_id.retain(|_, peers| {
            peers.retain(|peer, deadline| {
                if *deadline <= now {
                    *broken.entry(*peer).or_default() += 1;
                    false
                } else {
                    true
                }
            });
            !peers.is_empty()
        });
        broken
    }

    /// Forget a departed peer's promises.
    pub(crate) fn remove_peer(&mut self, peer: &PeerId) {
        self.by_id.retain(|_, peers| {
            peers.remove(peer);
            !peers.is_empty()
        });
    }

    /// Open promises.
    pub(crate) fn len(&self) -> usize {
        self.by_id.values().map(HashMap::len).sum()
    }
}
