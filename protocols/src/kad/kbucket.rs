//! One k-bucket: at most k peers at one range of distance from us, least
//! recently seen first, and at most one candidate waiting for a place while
//! the least recently seen entry is checked for liveness.
//!
//! The order is Kademlia's bet that a peer that has been up for long will
//! stay up: a full bucket keeps its live entries, and a newcomer gets a
//! place only if the oldest one fails its check.

use std::net::IpAddr;
use std::time::Instant;

use swarm::PeerId;

use super::key::Key;

/// A routing table entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The peer.
    pub peer: PeerId,
    /// Its key (SHA-256 of its id).
    pub key: Key,
    /// The IP we reach it at (for the per-network limits), if known.
    pub ip: Option<IpAddr>,
    /// When it last answered or proved alive.
    pub last_seen: Instant,
}

/// What became of an offer to a bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BucketInsert {
    /// Added as the most recently seen.
    Inserted,
    /// It was there already; now the most recently seen.
    Updated,
    /// The bucket is full: the newcomer waits as the candidate while
    /// `check` (the least recently seen entry) is checked.
    Pending {
        /// The entry to check for liveness.
        check: PeerId,
    },
    /// The bucket is full and a candidate already waits: dropped.
    Full,
}

/// One bucket.
#[derive(Clone, Debug, Default)]
pub struct KBucket {
    /// Least recently seen first.
    entries: Vec<Entry>,
    /// A newcomer waiting for the check of the least recently seen entry.
    /// Boxed: few buckets ever have one, and a table holds 256 buckets.
    candidate: Option<Box<Entry>>,
}

impl KBucket {
    /// The entries, least recently seen first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The waiting candidate, if any.
    pub fn candidate(&self) -> Option<&Entry> {
        self.candidate.as_deref()
    }

    /// Whether `peer` is an entry.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.entries.iter().any(|e| e.peer == *peer)
    }

    /// Offer `entry` to a bucket of capacity `k`.
    pub fn insert(&mut self, entry: Entry, k: usize) -> BucketInsert {
        if let Some(pos) = self.entries.iter().position(|e| e.peer == entry.peer) {
            let mut existing = self.entries.remove(pos);
            existing.last_seen = existing.last_seen.max(entry.last_seen);
            if entry.ip.is_some() {
                existing.ip = entry.ip;
            }
            self.entries.push(existing);
            return BucketInsert::Updated;
        }
        if self.entries.len() < k {
            self.entries.push(entry);
            return BucketInsert::Inserted;
        }
        if self.candidate.is_some() {
            return BucketInsert::Full;
        }
        let check = self.entries[0].peer;
        self.candidate = Some(Box::new(entry));
        BucketInsert::Pending { check }
    }

    /// `peer` proved alive at `now`: make it the most recently seen. If it
    /// was the entry under check, the candidate is dropped.
    pub fn mark_seen(&mut self, peer: &PeerId, now: Instant) -> bool {
        let Some(pos) = self.entries.iter().position(|e| e.peer == *peer) else {
            return false;
        };
        let mut entry = self.entries.remove(pos);
        entry.last_seen = entry.last_seen.max(now);
        self.entries.push(entry);
        if pos == 0 {
            self.candidate = None;
        }
        true
    }

    /// Remove `peer`; a waiting candidate takes the freed place. Returns the
    /// removed entry and the candidate that was promoted.
    pub fn remove(&mut self, peer: &PeerId) -> (Option<Entry>, Option<Entry>) {
        if self.candidate.as_ref().is_some_and(|c| c.peer == *peer) {
            return (self.candidate.take().map(|c| *c), None);
        }
        let Some(pos) = self.entries.iter().position(|e| e.peer == *peer) else {
            return (None, None);
        };
        let removed = self.entries.remove(pos);
        let promoted = self.candidate.take().map(|c| *c);
        if let Some(c) = &promoted {
            self.entries.push(c.clone());
        }
        (Some(removed), promoted)
    }

    /// Drop the candidate (it broke a limit at promotion time).
    pub fn drop_candidate(&mut self) -> Option<Entry> {
        self.candidate.take().map(|c| *c)
    }

    /// Remove an entry without promoting the candidate.
    pub(crate) fn remove_entry_only(&mut self, peer: &PeerId) -> Option<Entry> {
        let pos = self.entries.iter().position(|e| e.peer == *peer)?;
        Some(self.entries.remove(pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(now: Instant) -> Entry {
        let peer = PeerId::random();
        Entry {
            peer,
            key: Key::from_peer(&peer),
            ip: None,
            last_seen: now,
        }
    }

    #[test]
    fn a_full_bucket_keeps_live_entries_and_replaces_dead_ones() {
        let t0 = Instant::now();
        let mut b = KBucket::default();
        let entries: Vec<Entry> = (0..3).map(|_| entry(t0)).collect();
        for e in &entries {
            assert_eq!(b.insert(e.clone(), 3), BucketInsert::Inserted);
        }
        // Full: the newcomer waits while the oldest is checked.
        let newcomer = entry(t0);
        assert_eq!(
            b.insert(newcomer.clone(), 3),
            BucketInsert::Pending {
                check: entries[0].peer
            }
        );
        assert_eq!(b.insert(entry(t0), 3), BucketInsert::Full);
        // The oldest answers: it stays (now most recent), newcomer dropped.
        assert!(b.mark_seen(&entries[0].peer, t0));
        assert!(b.candidate().is_none());
        assert_eq!(b.entries().last().unwrap().peer, entries[0].peer);
        // Next time the oldest is entries[1]; it fails and is replaced.
        assert_eq!(
            b.insert(newcomer.clone(), 3),
            BucketInsert::Pending {
                check: entries[1].peer
            }
        );
        let (removed, promoted) = b.remove(&entries[1].peer);
        assert_eq!(removed.unwrap().peer, entries[1].peer);
        assert_eq!(promoted.unwrap().peer, newcomer.peer);
        assert!(b.contains(&newcomer.peer));
        assert!(!b.contains(&entries[1].peer));
        assert_eq!(b.entries().len(), 3);
    }

    #[test]
    fn re_inserting_moves_to_most_recent() {
        let t0 = Instant::now();
        let mut b = KBucket::default();
        let (a, c) = (entry(t0), entry(t0));
        b.insert(a.clone(), 20);
        b.insert(c.clone(), 20);
        assert_eq!(b.insert(a.clone(), 20), BucketInsert::Updated);
        let order: Vec<PeerId> = b.entries().iter().map(|e| e.peer).collect();
        assert_eq!(order, vec![c.peer, a.peer]);
    }
}
