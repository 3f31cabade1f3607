//! The routing table: 256 [`KBucket`]s by the highest bit of the XOR
//! distance to our own key, with per-network limits (at most so many
//! entries of one /24 or /48 per bucket and in the whole table) so that a
//! host cannot fill our table with identities it made up.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use swarm::PeerId;

use super::config::IpLimits;
use super::kbucket::{BucketInsert, Entry, KBucket};
use super::key::{Distance, Key};

/// The network an address counts against: its /24 (IPv4) or /48 (IPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpGroup {
    /// The first three octets.
    V4([u8; 3]),
    /// The first six bytes.
    V6([u8; 6]),
}

impl IpGroup {
    /// The group of `ip`, or `None` for loopback (not limited: local
    /// clusters and tests share one address).
    pub fn of(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V4(v4) if v4.is_loopback() => None,
            IpAddr::V4(v4) => {
                let o = v4.octets();
                Some(IpGroup::V4([o[0], o[1], o[2]]))
            }
            IpAddr::V6(v6) if v6.is_loopback() => None,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::of(IpAddr::V4(v4)),
                None => {
                    let o = v6.octets();
                    Some(IpGroup::V6([o[0], o[1], o[2], o[3], o[4], o[5]]))
                }
            },
        }
    }
}

/// What became of an offer to the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    /// A new entry.
    Inserted,
    /// Known already; now the most recently seen of its bucket.
    Updated,
    /// Its bucket is full: it waits while `check` is checked (ask it
    /// something; then [`RoutingTable::mark_seen`] or
    /// [`RoutingTable::remove`]).
    Pending {
        /// The least recently seen entry of the bucket.
        check: PeerId,
    },
    /// Its bucket is full and already has a candidate: dropped.
    BucketFull,
    /// Its network already has its share of the bucket or the table.
    IpLimited,
    /// It is us.
    Local,
}

/// Our view of the network: peers by distance.
pub struct RoutingTable {
    local: Key,
    k: usize,
    ip_limits: Option<IpLimits>,
    buckets: Vec<KBucket>,
    /// Entries per network in the whole table.
    per_group: HashMap<IpGroup, usize>,
    /// When each bucket was last the target of a lookup.
    last_lookup: Vec<Option<Instant>>,
}

impl RoutingTable {
    /// An empty table around `local`, with buckets of `k`.
    pub fn new(local: Key, k: usize, ip_limits: Option<IpLimits>) -> Self {
        Self {
            local,
            k,
            ip_limits,
            buckets: vec![KBucket::default(); 256],
            per_group: HashMap::new(),
            last_lookup: vec![None; 256],
        }
    }

    /// Our own key.
    pub fn local_key(&self) -> &Key {
        &self.local
    }

    fn bucket_of(&self, key: &Key) -> Option<usize> {
        self.local.distance(key).bucket_index()
    }

    /// Offer a peer that proved it speaks the protocol, reached at `ip`.
    pub fn insert(&mut self, peer: PeerId, ip: Option<IpAddr>, now: Instant) -> InsertOutcome {
        let key = Key::from_peer(&peer);
        let Some(index) = self.bucket_of(&key) else {
            return InsertOutcome::Local;
        };
        let known = self.buckets[index].contains(&peer);
        if !known && !self.ip_allowed(index, ip) {
            return InsertOutcome::IpLimited;
        }
        let entry = Entry {
            peer,
            key,
            ip,
            last_seen: now,
        };
        match self.buckets[index].insert(entry, self.k) {
            BucketInsert::Inserted => {
                self.count(ip, true);
                InsertOutcome::Inserted
            }
            BucketInsert::Updated => InsertOutcome::Updated,
            BucketInsert::Pending { check } => InsertOutcome::Pending { check },
            BucketInsert::Full => InsertOutcome::BucketFull,
        }
    }

    /// Whether one more entry at `ip` fits the network limits of bucket
    /// `index` and the table.
    fn ip_allowed(&self, index: usize, ip: Option<IpAddr>) -> bool {
        let (Some(limits), Some(group)) = (self.ip_limits, ip.and_then(IpGroup::of)) else {
            return true;
        };
        let in_bucket = self.buckets[index]
            .entries()
            .iter()
            .filter(|e| e.ip.and_then(IpGroup::of) == Some(group))
            .count();
        let in_table = self.per_group.get(&group).copied().unwrap_or(0);
        in_bucket < limits.per_bucket && in_table < limits.per_table
    }

    fn count(&mut self, ip: Option<IpAddr>, add: bool) {
        let Some(group) = ip.and_then(IpGroup::of) else {
            return;
        };
        let n = self.per_group.entry(group).or_insert(0);
        if add {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_group.remove(&group);
            }
        }
    }

    /// `peer` answered or otherwise proved alive at `now`. Returns whether
    /// it is in the table.
    pub fn mark_seen(&mut self, peer: &PeerId, now: Instant) -> bool {
        let key = Key::from_peer(peer);
        match self.bucket_of(&key) {
            Some(index) => self.buckets[index].mark_seen(peer, now),
            None => false,
        }
    }

    /// Remove `peer` (it failed a check, or stopped speaking the protocol);
    /// its bucket's candidate, if any, takes its place when the network
    /// limits allow. Returns whether an entry was removed.
    pub fn remove(&mut self, peer: &PeerId) -> bool {
        let key = Key::from_peer(peer);
        let Some(index) = self.bucket_of(&key) else {
            return false;
        };
        let Some(removed) = self.buckets[index].remove_entry_only(peer) else {
            // Maybe it was the candidate.
            if self.buckets[index]
                .candidate()
                .is_some_and(|c| c.peer == *peer)
            {
                self.buckets[index].drop_candidate();
            }
            return false;
        };
        self.count(removed.ip, false);
        if let Some(candidate) = self.buckets[index].drop_candidate()
            && self.ip_allowed(index, candidate.ip)
        {
            let ip = candidate.ip;
            self.buckets[index].insert(candidate, self.k);
            self.count(ip, true);
        }
        true
    }

    /// Whether `peer` is an entry.
    pub fn contains(&self, peer: &PeerId) -> bool {
        let key = Key::from_peer(peer);
        self.bucket_of(&key)
            .is_some_and(|i| self.buckets[i].contains(peer))
    }

    /// The `n` entries closest to `target`, closest first.
    pub fn closest(&self, target: &Key, n: usize) -> Vec<PeerId> {
        let mut all: Vec<(Distance, PeerId)> = self
            .buckets
            .iter()
            .flat_map(|b| b.entries())
            .map(|e| (e.key.distance(target), e.peer))
            .collect();
        all.sort_unstable_by_key(|(d, _)| *d);
        all.truncate(n);
        all.into_iter().map(|(_, p)| p).collect()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.entries().len()).sum()
    }

    /// Whether the table has no entry.
    pub fn is_empty(&self) -> bool {
        self.buckets.iter().all(|b| b.entries().is_empty())
    }

    /// Every entry, bucket by bucket.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.buckets.iter().flat_map(|b| b.entries())
    }

    /// Bucket `index`.
    pub fn bucket(&self, index: usize) -> &KBucket {
        &self.buckets[index]
    }

    /// A lookup for `target` started at `now`: its bucket counts as fresh.
    pub fn note_lookup(&mut self, target: &Key, now: Instant) {
        if let Some(i) = self.bucket_of(target) {
            self.last_lookup[i] = Some(now);
        }
    }

    /// The buckets worth a refresh at `now`: from the closest non-empty one
    /// (or `floor`, whichever is farther) to the farthest, those no lookup
    /// has targeted within `interval`.
    pub fn stale_buckets(
        &self,
        now: Instant,
        interval: std::time::Duration,
        floor: usize,
    ) -> Vec<usize> {
        let lowest = self
            .buckets
            .iter()
            .position(|b| !b.entries().is_empty())
            .unwrap_or(255)
            .max(floor);
        (lowest..256)
            .filter(|&i| {
                self.last_lookup[i].is_none_or(|t| now.saturating_duration_since(t) >= interval)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn table(limits: Option<IpLimits>) -> (RoutingTable, PeerId) {
        let local = PeerId::random();
        (RoutingTable::new(Key::from_peer(&local), 20, limits), local)
    }

    /// Random peers whose keys fall into bucket `index` of `table`.
    fn peers_in_bucket(table: &RoutingTable, index: usize, n: usize) -> Vec<PeerId> {
        let mut out = Vec::new();
        for _ in 0..100_000 {
            let p = PeerId::random();
            if table.bucket_of(&Key::from_peer(&p)) == Some(index) {
                out.push(p);
                if out.len() == n {
                    break;
                }
            }
        }
        assert_eq!(out.len(), n);
        out
    }

    fn ip(a: u8, b: u8, c: u8, d: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
    }

    #[test]
    fn closest_orders_by_xor_distance() {
        let (mut t, local) = table(None);
        let now = Instant::now();
        let peers: Vec<PeerId> = (0..50).map(|_| PeerId::random()).collect();
        for p in &peers {
            t.insert(*p, None, now);
        }
        assert_eq!(t.insert(local, None, now), InsertOutcome::Local);
        let target = Key::from_bytes(b"target");
        let got = t.closest(&target, 5);
        let mut expected = peers.clone();
        expected.sort_by_key(|p| Key::from_peer(p).distance(&target));
        // All 50 fit: the far buckets take at most 20 each, and random peers
        // spread over several.
        let present: Vec<PeerId> = expected.into_iter().filter(|p| t.contains(p)).collect();
        assert_eq!(got, present[..5].to_vec());
    }

    #[test]
    fn full_bucket_asks_for_a_check_then_replaces_the_dead_entry() {
        let (mut t, _) = table(None);
        let now = Instant::now();
        let peers = peers_in_bucket(&t, 255, 22);
        for p in &peers[..20] {
            assert_eq!(t.insert(*p, None, now), InsertOutcome::Inserted);
        }
        assert_eq!(
            t.insert(peers[20], None, now),
            InsertOutcome::Pending { check: peers[0] }
        );
        assert_eq!(t.insert(peers[21], None, now), InsertOutcome::BucketFull);
        assert!(t.remove(&peers[0]));
        assert!(t.contains(&peers[20]));
        assert!(!t.contains(&peers[0]));
        assert_eq!(t.len(), 20);
    }

    #[test]
    fn ip_limits_per_bucket_and_table_hold_except_for_loopback() {
        let (mut t, _) = table(Some(IpLimits {
            per_bucket: 2,
            per_table: 3,
        }));
        let now = Instant::now();
        let b255 = peers_in_bucket(&t, 255, 4);
        let b254 = peers_in_bucket(&t, 254, 3);
        assert_eq!(
            t.insert(b255[0], ip(10, 0, 0, 1), now),
            InsertOutcome::Inserted
        );
        assert_eq!(
            t.insert(b255[1], ip(10, 0, 0, 2), now),
            InsertOutcome::Inserted
        );
        assert_eq!(
            t.insert(b255[2], ip(10, 0, 0, 3), now),
            InsertOutcome::IpLimited
        );
        // Another /24 is fine.
        assert_eq!(
            t.insert(b255[2], ip(10, 0, 1, 3), now),
            InsertOutcome::Inserted
        );
        assert_eq!(
            t.insert(b254[0], ip(10, 0, 0, 4), now),
            InsertOutcome::Inserted
        );
        // The table holds 3 of 10.0.0.0/24 now.
        assert_eq!(
            t.insert(b254[1], ip(10, 0, 0, 5), now),
            InsertOutcome::IpLimited
        );
        // Loopback is not limited.
        assert_eq!(
            t.insert(b254[1], ip(127, 0, 0, 1), now),
            InsertOutcome::Inserted
        );
        assert_eq!(
            t.insert(b254[2], ip(127, 0, 0, 1), now),
            InsertOutcome::Inserted
        );
        // Removing frees the network's share.
        assert!(t.remove(&b255[0]));
        assert_eq!(
            t.insert(b255[3], ip(10, 0, 0, 9), now),
            InsertOutcome::Inserted
        );
        // IPv6 counts per /48.
        let v6 = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            IpGroup::of("2001:db8:1::1".parse().unwrap()),
            IpGroup::of("2001:db8:1:ffff::2".parse().unwrap())
        );
        assert_ne!(
            IpGroup::of("2001:db8:1::1".parse().unwrap()),
            IpGroup::of("2001:db8:2::1".parse().unwrap())
        );
        let _ = v6;
    }
}
