//! The iterative lookup, as a state machine with no I/O: it says whom to
//! ask next, takes answers and failures, and says when it is done.
//!
//! Rules (libp2p kad-dht): keep the candidates sorted by distance to the
//! target; ask the closest not yet asked, at most α at a time; a peer's
//! answer adds the peers it names; a peer that fails (timeout, garbage,
//! unreachable) is set aside. The lookup is over when the k closest peers
//! that have not failed have all answered.
//!
//! That rule, not "stop when an answer brings nobody strictly closer", is
//! what makes small networks work: with a handful of nodes, every one of
//! them is among the k closest, so every one is asked.
//!
//! Everything is bounded: at most [`MAX_CANDIDATES`] candidates are kept
//! (the farthest unasked ones go first) and at most [`MAX_SEEN`] distinct
//! peers are ever considered, whatever the answers contain.

use std::collections::HashSet;

use swarm::PeerId;

use super::key::{Distance, Key};

/// Most candidates one lookup keeps.
pub const MAX_CANDIDATES: usize = 200;
/// Most distinct peers one lookup considers over its life.
pub const MAX_SEEN: usize = 2000;

/// Where a candidate stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// Known, not asked yet.
    NotContacted,
    /// Asked, no answer yet.
    Waiting,
    /// Answered.
    Succeeded,
    /// Timed out, was unreachable or answered garbage.
    Failed,
}

#[derive(Clone, Debug)]
struct Candidate {
    peer: PeerId,
    distance: Distance,
    state: PeerState,
    /// Requests on the path that found it: 1 for a seed (a peer we knew),
    /// one more than the peer that named it otherwise.
    hop: u32,
}

/// One iterative lookup towards `target`.
#[derive(Clone, Debug)]
pub struct Lookup {
    target: Key,
    local: PeerId,
    k: usize,
    alpha: usize,
    /// Sorted by distance, closest first.
    candidates: Vec<Candidate>,
    seen: HashSet<PeerId>,
}

impl Lookup {
    /// A lookup for `target` starting from `seeds` (our closest known
    /// peers). `local` is never a candidate.
    pub fn new(target: Key, local: PeerId, seeds: &[PeerId], k: usize, alpha: usize) -> Self {
        let mut lookup = Self {
            target,
            local,
            k: k.max(1),
            alpha: alpha.max(1),
            candidates: Vec::new(),
            seen: HashSet::new(),
        };
        lookup.add(seeds, 1);
        lookup
    }

    /// The target.
    pub fn target(&self) -> &Key {
        &self.target
    }

    fn add(&mut self, peers: &[PeerId], hop: u32) {
        for &peer in peers {
            if peer == self.local || self.seen.len() >= MAX_SEEN || !self.seen.insert(peer) {
                continue;
            }
            let distance = Key::from_peer(&peer).distance(&self.target);
            let at = self.candidates.partition_point(|c| c.distance < distance);
            self.candidates.insert(
                at,
                Candidate {
                    peer,
                    distance,
                    state: PeerState::NotContacted,
                    hop,
                },
            );
        }
        // Over the bound: drop the farthest that are not being asked.
        while self.candidates.len() > MAX_CANDIDATES {
            let Some(pos) = self
                .candidates
                .iter()
                .rposition(|c| c.state != PeerState::Waiting)
            else {
                break;
            };
            self.candidates.remove(pos);
        }
    }

    /// The k closest candidates that have not failed.
    fn closest_live(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates
            .iter()
            .filter(|c| c.state != PeerState::Failed)
            .take(self.k)
    }

    /// The next peer to ask, marked as asked; `None` while α requests are
    /// out or when nobody among the k closest is left to ask.
    pub fn next_to_ask(&mut self) -> Option<PeerId> {
        if self.waiting() >= self.alpha {
            return None;
        }
        let peer = self
            .closest_live()
            .find(|c| c.state == PeerState::NotContacted)?
            .peer;
        self.set(&peer, PeerState::Waiting);
        Some(peer)
    }

    fn set(&mut self, peer: &PeerId, state: PeerState) -> bool {
        match self.candidates.iter_mut().find(|c| c.peer == *peer) {
            Some(c) if c.state == PeerState::Waiting => {
                c.state = state;
                true
            }
            Some(c) if c.state == PeerState::NotContacted && state == PeerState::Waiting => {
                c.state = state;
                true
            }
            _ => false,
        }
    }

    /// `peer` answered, naming `closer`. Answers from peers we did not ask
    /// (or already heard from) are ignored.
    pub fn on_success(&mut self, peer: &PeerId, closer: &[PeerId]) {
        if self.set(peer, PeerState::Succeeded) {
            let hop = self.hop_of(peer).saturating_add(1);
            self.add(closer, hop);
        }
    }

    fn hop_of(&self, peer: &PeerId) -> u32 {
        self.candidates
            .iter()
            .find(|c| c.peer == *peer)
            .map_or(0, |c| c.hop)
    }

    /// Hops to the closest peer that answered: the requests on the path
    /// that led to it, itself included (1: a peer we already knew); 0 if
    /// nobody answered.
    pub fn hops(&self) -> u32 {
        self.candidates
            .iter()
            .find(|c| c.state == PeerState::Succeeded)
            .map_or(0, |c| c.hop)
    }

    /// Asking `peer` failed.
    pub fn on_failure(&mut self, peer: &PeerId) {
        self.set(peer, PeerState::Failed);
    }

    /// How many requests are out.
    pub fn waiting(&self) -> usize {
        self.candidates
            .iter()
            .filter(|c| c.state == PeerState::Waiting)
            .count()
    }

    /// Whether the k closest live candidates have all answered (true also
    /// when every candidate failed, or there were none).
    pub fn is_finished(&self) -> bool {
        self.closest_live().all(|c| c.state == PeerState::Succeeded)
    }

    /// The closest peers that answered, closest first, at most `n`.
    pub fn closest_succeeded(&self, n: usize) -> Vec<PeerId> {
        self.candidates
            .iter()
            .filter(|c| c.state == PeerState::Succeeded)
            .take(n)
            .map(|c| c.peer)
            .collect()
    }

    /// The state of `peer`, if it is a candidate.
    pub fn state(&self, peer: &PeerId) -> Option<PeerState> {
        self.candidates
            .iter()
            .find(|c| c.peer == *peer)
            .map(|c| c.state)
    }

    /// Number of candidates kept.
    pub fn candidate_count(&self) -> usize {
        self.candidates.len()
    }
}
