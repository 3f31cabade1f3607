//! What the swarm knows about other peers.
//!
//! For each [`PeerId`] the store keeps a [`PeerRecord`]: addresses to dial
//! (each with an expiry), what identify told us (protocols, versions, the
//! address the peer observed us at, its public key), the open connections and
//! the last measured round-trip time.
//!
//! The store never reads a clock: every call that deals with time takes `now`.
//! Everything a remote peer can feed into it is bounded: the number of peers,
//! addresses per peer, protocols per peer, and the length of every string and
//! address. Records whose addresses all expired (and that have no connection)
//! are swept out as addresses are added, at most once a minute, so a
//! long-running node that keeps learning addresses does not keep them all.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p_identity::{PeerId, PublicKey};
use multiaddr::{Multiaddr, Protocol};

use crate::ids::ConnId;

/// Most peers kept. A new peer beyond it makes room: expired records go
/// first, then the unconnected records whose addresses expire soonest (an
/// eighth of the store at once, so that a flood of new peers costs a sort
/// per eighth, not a scan per peer). Connected peers are never evicted.
pub const MAX_PEERS: usize = 65_536;
/// How often adding an address also sweeps out expired records.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Most addresses kept per peer. Adding one more drops the soonest-expiring.
pub const MAX_ADDRESSES_PER_PEER: usize = 32;
/// Longest address kept, in bytes of its binary form; longer ones are ignored.
pub const MAX_ADDRESS_LEN: usize = 512;
/// Most protocols kept per peer; the rest of a longer list is dropped.
pub const MAX_PROTOCOLS_PER_PEER: usize = 128;
/// Longest protocol name kept, in bytes; longer names are dropped (a cut-off
/// name would name a different protocol).
pub const MAX_PROTOCOL_LEN: usize = 256;
/// Longest agent or protocol version kept, in bytes; longer ones are cut at a
/// character boundary.
pub const MAX_VERSION_LEN: usize = 256;

/// Everything the swarm knows about one peer. Read-only: change it through
/// [`PeerStore`].
#[derive(Clone, Debug, Default)]
pub struct PeerRecord {
    addresses: Vec<(Multiaddr, Instant)>,
    protocols: Vec<String>,
    agent_version: Option<String>,
    protocol_version: Option<String>,
    observed_addr: Option<Multiaddr>,
    public_key: Option<PublicKey>,
    connections: Vec<ConnId>,
    last_rtt: Option<Duration>,
}

impl PeerRecord {
    /// Known addresses with the instant each expires, oldest first. May include
    /// addresses that expired since the last [`PeerStore::expire`]; use
    /// [`PeerStore::addresses`] for the live ones.
    pub fn addresses(&self) -> &[(Multiaddr, Instant)] {
        &self.addresses
    }

    /// The protocols the peer said it supports (identify), in its order.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// Whether the peer said it supports `protocol`.
    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p == protocol)
    }

    /// The peer's agent version (identify), e.g. `rust-libp2p/0.54.0`.
    pub fn agent_version(&self) -> Option<&str> {
        self.agent_version.as_deref()
    }

    /// The peer's protocol version (identify), e.g. `ipfs/0.1.0`.
    pub fn protocol_version(&self) -> Option<&str> {
        self.protocol_version.as_deref()
    }

    /// The address the peer told us it sees us at (identify's `observedAddr`).
    pub fn observed_addr(&self) -> Option<&Multiaddr> {
        self.observed_addr.as_ref()
    }

    /// The peer's public key, once learnt; it always matches the peer id.
    pub fn public_key(&self) -> Option<&PublicKey> {
        self.public_key.as_ref()
    }

    /// The swarm's open connections to the peer, in the order they opened.
    pub fn connections(&self) -> &[ConnId] {
        &self.connections
    }

    /// Whether at least one connection to the peer is open.
    pub fn is_connected(&self) -> bool {
        !self.connections.is_empty()
    }

    /// The last measured round-trip time (ping).
    pub fn last_rtt(&self) -> Option<Duration> {
        self.last_rtt
    }

    /// Whether the record is worth keeping at `now`: it has an open
    /// connection or an address that has not expired.
    fn worth_keeping(&self, now: Instant) -> bool {
        self.is_connected() || self.addresses.iter().any(|(_, exp)| *exp > now)
    }
}

/// What the swarm knows about peers, keyed by [`PeerId`].
#[derive(Debug, Default)]
pub struct PeerStore {
    peers: HashMap<PeerId, PeerRecord>,
    /// When `add_address` next sweeps expired records.
    next_sweep: Option<Instant>,
}

impl PeerStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `peer` can be reached at `addr` until `now + ttl`.
    ///
    /// A trailing `/p2p/<peer>` is stripped; an address whose trailing
    /// `/p2p/<id>` names another peer, an empty address and one longer than
    /// [`MAX_ADDRESS_LEN`] are ignored. Adding a known address again extends
    /// its expiry to `now + ttl` (never shortens it). With
    /// [`MAX_ADDRESSES_PER_PEER`] live addresses already, the soonest-expiring
    /// one makes room, unless the new one would expire sooner still.
    pub fn add_address(&mut self, peer: PeerId, addr: Multiaddr, ttl: Duration, now: Instant) {
        let mut addr = addr;
        if let Some(Protocol::P2p(id)) = addr.iter().last() {
            if id != peer {
                tracing::debug!(%peer, %addr, "ignoring an address that names another peer");
                return;
            }
            addr.pop();
        }
        if addr.is_empty() || addr.len() > MAX_ADDRESS_LEN {
            tracing::debug!(%peer, len = addr.len(), "ignoring an empty or overlong address");
            return;
        }
        let expires = saturating_add(now, ttl);
        if self.next_sweep.is_none_or(|at| now >= at) {
            self.next_sweep = Some(saturating_add(now, SWEEP_INTERVAL));
            self.expire(now);
        }
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_PEERS && !self.make_room(now)
        {
            tracing::debug!(%peer, "peer store full of connected peers: address not kept");
            return;
        }
        let record = self.peers.entry(peer).or_default();
        if let Some((_, exp)) = record.addresses.iter_mut().find(|(a, _)| *a == addr) {
            *exp = (*exp).max(expires);
            return;
        }
        if record.addresses.len() >= MAX_ADDRESSES_PER_PEER {
            record.addresses.retain(|(_, exp)| *exp > now);
        }
        if record.addresses.len() >= MAX_ADDRESSES_PER_PEER {
            let Some((soonest, _)) = record
                .addresses
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, exp))| *exp)
            else {
                return;
            };
            if record.addresses[soonest].1 >= expires {
                return;
            }
            record.addresses.remove(soonest);
        }
        record.addresses.push((addr, expires));
    }

    /// The addresses of `peer` that have not expired at `now`, oldest first.
    pub fn addresses(&self, peer: &PeerId, now: Instant) -> Vec<Multiaddr> {
        self.peers
            .get(peer)
            .map(|record| {
                record
                    .addresses
                    .iter()
                    .filter(|(_, exp)| *exp > now)
                    .map(|(addr, _)| addr.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Replaces the protocols `peer` supports. Duplicates and empty names are
    /// dropped, as are names over [`MAX_PROTOCOL_LEN`] bytes; at most
    /// [`MAX_PROTOCOLS_PER_PEER`] are kept, the first ones given.
    pub fn set_protocols(&mut self, peer: PeerId, protocols: Vec<String>) {
        let mut kept: Vec<String> = Vec::with_capacity(protocols.len().min(MAX_PROTOCOLS_PER_PEER));
        for protocol in protocols {
            if kept.len() == MAX_PROTOCOLS_PER_PEER {
                tracing::debug!(%peer, "peer lists too many protocols; keeping the first");
                break;
            }
            if protocol.is_empty() || protocol.len() > MAX_PROTOCOL_LEN || kept.contains(&protocol)
            {
                continue;
            }
            kept.push(protocol);
        }
        self.peers.entry(peer).or_default().protocols = kept;
    }

    /// Whether `peer` said it supports `protocol`. False for unknown peers.
    pub fn supports(&self, peer: &PeerId, protocol: &str) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|record| record.supports(protocol))
    }

    /// Sets the agent version `peer` reported, cut to [`MAX_VERSION_LEN`] bytes.
    pub fn set_agent_version(&mut self, peer: PeerId, version: String) {
        self.peers.entry(peer).or_default().agent_version = Some(bounded(version));
    }

    /// Sets the protocol version `peer` reported, cut to [`MAX_VERSION_LEN`]
    /// bytes.
    pub fn set_protocol_version(&mut self, peer: PeerId, version: String) {
        self.peers.entry(peer).or_default().protocol_version = Some(bounded(version));
    }

    /// Sets the address `peer` says it sees us at. Ignored if over
    /// [`MAX_ADDRESS_LEN`] bytes.
    pub fn set_observed_addr(&mut self, peer: PeerId, addr: Multiaddr) {
        if addr.len() > MAX_ADDRESS_LEN {
            tracing::debug!(%peer, len = addr.len(), "ignoring an overlong observed address");
            return;
        }
        self.peers.entry(peer).or_default().observed_addr = Some(addr);
    }

    /// Records `peer`'s public key. A key whose peer id is not `peer` is
    /// refused: returns whether the key was stored.
    pub fn set_public_key(&mut self, peer: PeerId, key: PublicKey) -> bool {
        if key.to_peer_id() != peer {
            tracing::debug!(%peer, "ignoring a public key that does not match the peer id");
            return false;
        }
        self.peers.entry(peer).or_default().public_key = Some(key);
        true
    }

    /// Records the last measured round-trip time to `peer`.
    pub fn set_rtt(&mut self, peer: PeerId, rtt: Duration) {
        self.peers.entry(peer).or_default().last_rtt = Some(rtt);
    }

    /// Records an open connection to `peer`. Adding the same one twice is a
    /// no-op.
    pub fn add_connection(&mut self, peer: PeerId, conn: ConnId) {
        let record = self.peers.entry(peer).or_default();
        if !record.connections.contains(&conn) {
            record.connections.push(conn);
        }
    }

    /// Records that a connection to `peer` closed. The record stays (with its
    /// addresses and identify data) until [`expire`](Self::expire) finds
    /// nothing worth keeping.
    pub fn remove_connection(&mut self, peer: PeerId, conn: ConnId) {
        if let Some(record) = self.peers.get_mut(&peer) {
            record.connections.retain(|c| *c != conn);
        }
    }

    /// The open connections to `peer`; empty for unknown peers.
    pub fn connections(&self, peer: &PeerId) -> &[ConnId] {
        self.peers
            .get(peer)
            .map_or(&[][..], |record| &record.connections)
    }

    /// Everything known about `peer`.
    pub fn get(&self, peer: &PeerId) -> Option<&PeerRecord> {
        self.peers.get(peer)
    }

    /// Every peer with a record, in no particular order.
    pub fn peers(&self) -> impl Iterator<Item = &PeerId> {
        self.peers.keys()
    }

    /// Drops addresses expired at `now`, then the records of peers with no
    /// open connection and no address left: identify data alone is not kept
    /// for a peer we can neither reach nor are connected to.
    pub fn expire(&mut self, now: Instant) {
        self.peers.retain(|_, record| {
            record.addresses.retain(|(_, exp)| *exp > now);
            record.worth_keeping(now)
        });
    }

    /// Free room for a new peer (see [`MAX_PEERS`]); `false` if every
    /// record belongs to a connected peer.
    fn make_room(&mut self, now: Instant) -> bool {
        self.expire(now);
        if self.peers.len() < MAX_PEERS {
            return true;
        }
        let mut evictable: Vec<(Instant, PeerId)> = self
            .peers
            .iter()
            .filter(|(_, r)| !r.is_connected())
            .map(|(p, r)| {
                let latest = r.addresses.iter().map(|(_, exp)| *exp).max();
                (latest.unwrap_or(now), *p)
            })
            .collect();
        evictable.sort_unstable_by_key(|(exp, _)| *exp);
        for (_, peer) in evictable.into_iter().take(MAX_PEERS / 8) {
            self.peers.remove(&peer);
        }
        self.peers.len() < MAX_PEERS
    }

    /// Number of peers with a record.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer has a record.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

/// `now + ttl`, or the latest representable instant short of it when the sum
/// overflows (a huge TTL means "for as long as the process lives").
fn saturating_add(now: Instant, ttl: Duration) -> Instant {
    let mut ttl = ttl;
    loop {
        if let Some(t) = now.checked_add(ttl) {
            return t;
        }
        ttl /= 2;
    }
}

/// `text` cut to at most [`MAX_VERSION_LEN`] bytes, at a character boundary.
fn bounded(mut text: String) -> String {
    if text.len() > MAX_VERSION_LEN {
        let mut end = MAX_VERSION_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8) -> PeerId {
        let mut seed = [0u8; 32];
        seed[0] = n;
        crate::identity::keypair_from_seed(seed)
            .public()
            .to_peer_id()
    }

    fn conn(index: u32) -> ConnId {
        ConnId {
            index,
            generation: 1,
        }
    }

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/udp/{port}/quic-v1")
            .parse()
            .unwrap()
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn addresses_expire_after_ttl() {
        let t0 = Instant::now();
        let mut store = PeerStore::new();
        let p = peer(1);
        store.add_address(p, addr(1), 10 * SEC, t0);
        store.add_address(p, addr(2), 20 * SEC, t0);
        assert_eq!(store.addresses(&p, t0), vec![addr(1), addr(2)]);
        assert_eq!(store.addresses(&p, t0 + 9 * SEC), vec![addr(1), addr(2)]);
        assert_eq!(store.addresses(&p, t0 + 10 * SEC), vec![addr(2)]);
        assert!(store.addresses(&p, t0 + 20 * SEC).is_empty());
        // Reading does not remove; expire does.
        assert_eq!(store.get(&p).unwrap().addresses().len(), 2);
        store.expire(t0 + 15 * SEC);
        assert_eq!(store.get(&p).unwrap().addresses().len(), 1);
        store.expire(t0 + 20 * SEC);
        assert!(store.get(&p).is_none());
        assert!(store.is_empty());
        assert!(store.addresses(&peer(9), t0).is_empty());
    }

    #[test]
    fn re_adding_refreshes_ttl() {
        let t0 = Instant::now();
        let mut store = PeerStore::new();
        let p = peer(1);
        store.add_address(p, addr(1), 10 * SEC, t0);
        store.add_address(p, addr(1), 10 * SEC, t0 + 8 * SEC);
        assert_eq!(store.get(&p).unwrap().addresses().len(), 1, "no duplicate");
        assert_eq!(store.addresses(&p, t0 + 15 * SEC), vec![addr(1)]);
        assert!(store.addresses(&p, t0 + 18 * SEC).is_empty());
        // A shorter TTL later does not cut a longer one short.
        store.add_address(p, addr(2), 100 * SEC, t0);
        store.add_address(p, addr(2), SEC, t0 + SEC);
        assert_eq!(store.addresses(&p, t0 + 50 * SEC), vec![addr(2)]);
        // A TTL too large for `Instant` saturates instead of panicking.
        store.add_address(p, addr(3), Duration::MAX, t0);
        assert!(store.addresses(&p, t0 + 1_000_000 * SEC).contains(&addr(3)));
    }

    #[test]
    fn p2p_suffix_is_stripped() {
        let t0 = Instant::now();
        let mut store = PeerStore::new();
        let p = peer(1);
        store.add_address(p, addr(1).with(Protocol::P2p(p)), 10 * SEC, t0);
        assert_eq!(store.addresses(&p, t0), vec![addr(1)]);
        // Same address with and without the suffix is one entry.
        store.add_address(p, addr(1), 10 * SEC, t0);
        assert_eq!(store.get(&p).unwrap().addresses().len(), 1);
        // A suffix naming another peer: the address is not this peer's.
        store.add_address(p, addr(2).with(Protocol::P2p(peer(2))), 10 * SEC, t0);
        assert_eq!(store.addresses(&p, t0), vec![addr(1)]);
        // Only a trailing /p2p goes: a relayed address keeps its relay's id.
        let relayed = addr(3)
            .with(Protocol::P2p(peer(3)))
            .with(Protocol::P2pCircuit);
        store.add_address(p, relayed.clone().with(Protocol::P2p(p)), 10 * SEC, t0);
        assert_eq!(store.addresses(&p, t0), vec![addr(1), relayed]);
        // Nothing left after stripping: ignored.
        store.add_address(p, Multiaddr::empty().with(Protocol::P2p(p)), 10 * SEC, t0);
        assert_eq!(store.addresses(&p, t0).len(), 2);
    }

    #[test]
    fn address_count_is_bounded() {
        let t0 = Instant::now();
        let mut store = PeerStore::new();
        let p = peer(1);
        // Address i expires at t0 + (100 + i)s.
        for i in 0..MAX_ADDRESSES_PER_PEER as u16 {
            store.add_address(p, addr(i), (100 + u32::from(i)) * SEC, t0);
        }
        assert_eq!(store.addresses(&p, t0).len(), MAX_ADDRESSES_PER_PEER);
        // One more, living longest: the soonest-expiring (port 0) goes.
        store.add_address(p, addr(1000), 1000 * SEC, t0);
        let now = store.addresses(&p, t0);
        assert_eq!(now.len(), MAX_ADDRESSES_PER_PEER);
        assert!(!now.contains(&addr(0)));
        assert!(now.contains(&addr(1000)));
        // One that would expire before all the others is not added.
        store.add_address(p, addr(2000), SEC, t0);
        assert!(!store.addresses(&p, t0).contains(&addr(2000)));
        // Expired addresses make room first.
        store.add_address(p, addr(3000), 10_000 * SEC, t0 + 120 * SEC);
        assert!(store.addresses(&p, t0 + 120 * SEC).contains(&addr(3000)));
        assert!(store.get(&p).unwrap().addresses().len() <= MAX_ADDRESSES_PER_PEER);
        // Overlong addresses are ignored.
        let mut long = Multiaddr::empty();
        while long.len() <= MAX_ADDRESS_LEN {
            long.push(Protocol::Dns("a-long-name.example.com".into()));
        }
        store.add_address(peer(2), long, SEC, t0);
        assert!(store.get(&peer(2)).is_none());
    }

    #[test]
    fn connections_tracked_and_removed() {
        let mut store = PeerStore::new();
        let p = peer(1);
        assert!(store.connections(&p).is_empty());
        store.add_connection(p, conn(1));
        store.add_connection(p, conn(2));
        store.add_connection(p, conn(1));
        assert_eq!(store.connections(&p), &[conn(1), conn(2)]);
        assert!(store.get(&p).unwrap().is_connected());
        store.remove_connection(p, conn(1));
        assert_eq!(store.connections(&p), &[conn(2)]);
        // A different generation of the same slot is a different connection.
        store.remove_connection(
            p,
            ConnId {
                index: 2,
                generation: 2,
            },
        );
        assert_eq!(store.connections(&p), &[conn(2)]);
        store.remove_connection(p, conn(2));
        assert!(store.connections(&p).is_empty());
        assert!(!store.get(&p).unwrap().is_connected());
        // Removing from an unknown peer creates nothing.
        store.remove_connection(peer(2), conn(1));
        assert!(store.get(&peer(2)).is_none());
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn expire_keeps_connected_peers() {
        let t0 = Instant::now();
        let mut store = PeerStore::new();
        let (connected, reachable, gone) = (peer(1), peer(2), peer(3));
        store.add_connection(connected, conn(1));
        store.set_agent_version(connected, "a/1".into());
        store.add_address(connected, addr(1), SEC, t0);
        store.add_address(reachable, addr(2), 100 * SEC, t0);
        store.add_address(gone, addr(3), SEC, t0);
        store.set_protocols(gone, vec!["/ipfs/ping/1.0.0".into()]);
        store.expire(t0 + 10 * SEC);
        let mut left: Vec<PeerId> = store.peers().copied().collect();
        left.sort();
        let mut expected = vec![connected, reachable];
        expected.sort();
        assert_eq!(left, expected);
        // The connected peer keeps its identify data, loses its dead address.
        let record = store.get(&connected).unwrap();
        assert_eq!(record.agent_version(), Some("a/1"));
        assert!(record.addresses().is_empty());
        // Once it disconnects, it goes at the next expire.
        store.remove_connection(connected, conn(1));
        store.expire(t0 + 10 * SEC);
        assert!(store.get(&connected).is_none());
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn protocols_replaced_and_queried() {
        let mut store = PeerStore::new();
        let p = peer(1);
        assert!(!store.supports(&p, "/ipfs/ping/1.0.0"));
        store.set_protocols(
            p,
            vec![
                "/ipfs/ping/1.0.0".into(),
                "/ipfs/id/1.0.0".into(),
                "/ipfs/ping/1.0.0".into(),
                String::new(),
            ],
        );
        assert!(store.supports(&p, "/ipfs/ping/1.0.0"));
        assert!(store.supports(&p, "/ipfs/id/1.0.0"));
        assert!(!store.supports(&p, "/ipfs/ping"));
        assert_eq!(
            store.get(&p).unwrap().protocols(),
            &["/ipfs/ping/1.0.0", "/ipfs/id/1.0.0"]
        );
        // Replaced, not merged.
        store.set_protocols(p, vec!["/perf/1.0.0".into()]);
        assert!(!store.supports(&p, "/ipfs/ping/1.0.0"));
        assert!(store.supports(&p, "/perf/1.0.0"));
        // Bounded in count and length.
        let mut many: Vec<String> = (0..500).map(|i| format!("/p/{i}")).collect();
        many.insert(0, format!("/{}", "x".repeat(MAX_PROTOCOL_LEN)));
        store.set_protocols(p, many);
        let kept = store.get(&p).unwrap().protocols();
        assert_eq!(kept.len(), MAX_PROTOCOLS_PER_PEER);
        assert_eq!(kept[0], "/p/0");
        assert!(kept.iter().all(|p| p.len() <= MAX_PROTOCOL_LEN));
    }

    #[test]
    fn identify_fields_are_stored_and_bounded() {
        let mut store = PeerStore::new();
        let key = crate::identity::keypair_from_seed([1; 32]).public();
        let p = key.to_peer_id();
        store.set_agent_version(p, "é".repeat(MAX_VERSION_LEN));
        store.set_protocol_version(p, "ipfs/0.1.0".into());
        store.set_observed_addr(p, addr(7));
        store.set_rtt(p, Duration::from_millis(12));
        assert!(!store.set_public_key(p, crate::identity::generate_keypair().public()));
        assert!(store.get(&p).unwrap().public_key().is_none());
        assert!(store.set_public_key(p, key.clone()));
        let record = store.get(&p).unwrap();
        let agent = record.agent_version().unwrap();
        assert!(agent.len() <= MAX_VERSION_LEN && agent.chars().all(|c| c == 'é'));
        assert_eq!(record.protocol_version(), Some("ipfs/0.1.0"));
        assert_eq!(record.observed_addr(), Some(&addr(7)));
        assert_eq!(record.last_rtt(), Some(Duration::from_millis(12)));
        assert_eq!(record.public_key(), Some(&key));
    }

    #[test]
    fn expired_records_are_swept_as_addresses_are_added() {
        let t0 = Instant::now();
        let mut store = PeerStore::new();
        store.add_address(peer(1), addr(1), 10 * SEC, t0);
        store.add_address(peer(2), addr(2), 3600 * SEC, t0);
        // Expired, but within the sweep interval: still held.
        store.add_address(peer(3), addr(3), 3600 * SEC, t0 + 30 * SEC);
        assert_eq!(store.len(), 3);
        // A minute on, the next addition sweeps peer 1 out; no caller had
        // to call `expire`.
        store.add_address(peer(4), addr(4), 3600 * SEC, t0 + 61 * SEC);
        assert!(store.get(&peer(1)).is_none());
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn the_store_holds_at_most_max_peers_and_keeps_connected_ones() {
        let t0 = Instant::now();
        let mut store = PeerStore::new();
        let first = PeerId::random();
        store.add_address(first, addr(1), 10 * SEC, t0);
        store.add_connection(first, conn(1));
        let peers: Vec<PeerId> = (0..MAX_PEERS).map(|_| PeerId::random()).collect();
        for (i, p) in peers.iter().enumerate() {
            // Later peers' addresses live longer.
            let ttl = SEC * (100 + i as u32);
            store.add_address(*p, addr(2), ttl, t0);
        }
        assert!(store.len() <= MAX_PEERS, "{}", store.len());
        assert!(store.len() >= MAX_PEERS - MAX_PEERS / 8, "{}", store.len());
        assert!(store.get(&first).is_some(), "a connected peer stays");
        let last = peers.last().unwrap();
        assert_eq!(
            store.addresses(last, t0),
            vec![addr(2)],
            "the newest is kept"
        );
        assert!(store.get(&peers[0]).is_none(), "the soonest to expire went");
    }
}
