//! The blocking Kademlia calls of [`RustPeer`]: each sends a command to
//! the background thread's libp2p-kad behaviour and waits for its answer.

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use crate::kad::KadCommand;
use crate::{
    Command, KAD_LOCAL_TIMEOUT, KadError, KadMode, KadPeerInfo, KadRecord, Multiaddr, PeerId,
    RustPeer,
};

impl RustPeer {
    /// Add `addr` for `peer` to the Kademlia routing table (libp2p-kad's
    /// `add_address`: no check that the peer speaks the DHT protocol).
    /// `Ok(true)` if the peer is in the table (or pending insertion) now,
    /// `Ok(false)` if its bucket is full or the address names another peer.
    pub fn kad_add_address(&self, peer: PeerId, addr: Multiaddr) -> Result<bool, KadError> {
        self.kad_call(KAD_LOCAL_TIMEOUT, |reply| KadCommand::AddAddress {
            peer,
            addr,
            reply,
        })
    }

    /// Remove `peer` from the Kademlia routing table; `Ok(true)` if it was
    /// there.
    pub fn kad_remove_peer(&self, peer: PeerId) -> Result<bool, KadError> {
        self.kad_call(KAD_LOCAL_TIMEOUT, |reply| KadCommand::RemovePeer {
            peer,
            reply,
        })
    }

    /// Run one Kademlia bootstrap (a lookup of our own id, then one lookup
    /// of a random key in each bucket farther than the closest non-empty
    /// one) and wait until all its steps are done; returns the number of
    /// routing table entries then. [`KadError::NoKnownPeers`] if the table
    /// is empty. Bounded by `timeout`.
    pub fn kad_bootstrap(&self, timeout: Duration) -> Result<usize, KadError> {
        self.kad_call(timeout, |reply| KadCommand::Bootstrap { timeout, reply })
    }

    /// Store `value` under `key` locally and at the closest peers to `key`
    /// (libp2p-kad `put_record`, the record's publisher is this node).
    /// Returns how many remote peers acknowledged it (this node's own copy
    /// not counted), at most the replication factor;
    /// [`KadError::QuorumFailed`] if none did. An empty routing table gives
    /// `QuorumFailed` too (libp2p-kad does not fail early).
    pub fn kad_put_value(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        timeout: Duration,
    ) -> Result<usize, KadError> {
        self.kad_call(timeout, |reply| KadCommand::PutValue {
            key,
            value,
            timeout,
            reply,
        })
    }

    /// Look `key` up and return every record found during the whole lookup
    /// (one per peer that returned it, plus this node's own copy first, with
    /// `from: None`). [`KadError::NotFound`] if none. If `timeout` passes with
    /// some records found, those are returned.
    pub fn kad_get_value(
        &self,
        key: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<KadRecord>, KadError> {
        self.kad_call(timeout, |reply| KadCommand::GetValue {
            key,
            first_only: false,
            timeout,
            reply,
        })
    }

    /// Like [`RustPeer::kad_get_value`] but stops the lookup at the first
    /// record found and returns it.
    pub fn kad_get_first_value(
        &self,
        key: Vec<u8>,
        timeout: Duration,
    ) -> Result<KadRecord, KadError> {
        let mut found = self.kad_call(timeout, |reply| KadCommand::GetValue {
            key,
            first_only: true,
            timeout,
            reply,
        })?;
        found.pop().ok_or(KadError::NotFound)
    }

    /// Announce this node as a provider of `key` (libp2p-kad
    /// `start_providing`): stored locally, then ADD_PROVIDER to the closest
    /// peers found. libp2p-kad reports success without saying how many
    /// peers took it, even when there were none; the provider entry it sends
    /// carries only confirmed external addresses (none on loopback unless
    /// [`RustPeer::add_external_listen_addr`] was called).
    pub fn kad_start_providing(&self, key: Vec<u8>, timeout: Duration) -> Result<(), KadError> {
        self.kad_call(timeout, |reply| KadCommand::StartProviding {
            key,
            timeout,
            reply,
        })
    }

    /// Look up the providers of `key`, collecting them over the whole lookup
    /// (this node itself first if it provides `key`).
    /// [`KadError::NotFound`] if none. If `timeout` passes with some found,
    /// those are returned.
    pub fn kad_get_providers(
        &self,
        key: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<PeerId>, KadError> {
        self.kad_call(timeout, |reply| KadCommand::GetProviders {
            key,
            timeout,
            reply,
        })
    }

    /// Iterative lookup of the peers closest to `key` (libp2p-kad
    /// `get_closest_peers`: the key's SHA-256 is the target; up to the
    /// replication factor peers that answered, closest first, this node not
    /// included). Addresses are those the lookup learnt, or else the routing
    /// table's. [`KadError::Timeout`] if the lookup timed out.
    pub fn kad_get_closest_peers(
        &self,
        key: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<KadPeerInfo>, KadError> {
        self.kad_call(timeout, |reply| KadCommand::GetClosestPeers {
            key,
            timeout,
            reply,
        })
    }

    /// Find the addresses of `peer`: a closest-peers lookup of its id that
    /// must return the peer itself. [`KadError::NotFound`] otherwise.
    pub fn kad_find_peer(
        &self,
        peer: PeerId,
        timeout: Duration,
    ) -> Result<Vec<Multiaddr>, KadError> {
        self.kad_call(timeout, |reply| KadCommand::FindPeer {
            peer,
            timeout,
            reply,
        })
    }

    /// Switch Kademlia to client or server mode; `None` gives libp2p-kad's
    /// automatic mode (server once an external address is confirmed). The
    /// change reaches existing connections at once, and identify pushes the
    /// new protocol list to connected peers (a push reaches a rust-libp2p
    /// listener only with [`MultistreamVersion::V1`], see the crate docs).
    pub fn kad_set_mode(&self, mode: Option<KadMode>) {
        self.send(Command::Kad(KadCommand::SetMode(mode)));
    }

    /// The current Kademlia mode; `None` if Kademlia is disabled or the node
    /// does not answer within 5 s.
    pub fn kad_mode(&self) -> Option<KadMode> {
        let (tx, rx) = std_mpsc::channel();
        self.send(Command::Kad(KadCommand::Mode(tx)));
        rx.recv_timeout(KAD_LOCAL_TIMEOUT).ok().flatten()
    }

    /// The Kademlia routing table: every entry with its addresses (empty if
    /// Kademlia is disabled or the node does not answer within 5 s).
    pub fn kad_routing_table(&self) -> Vec<KadPeerInfo> {
        let (tx, rx) = std_mpsc::channel();
        self.send(Command::Kad(KadCommand::RoutingTable(tx)));
        rx.recv_timeout(KAD_LOCAL_TIMEOUT).unwrap_or_default()
    }
}
