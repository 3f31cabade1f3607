//! scratch stub with the promised API
#![allow(missing_docs, dead_code)]
use std::time::{Duration, Instant};
use libp2p_identity::{PeerId, PublicKey};
use multiaddr::Multiaddr;
use crate::ids::ConnId;
#[derive(Default)]
pub struct PeerStore;
#[derive(Clone, Debug, Default)]
pub struct PeerRecord;
impl PeerStore {
    pub fn new() -> Self { Self }
    pub fn add_address(&mut self, _p: PeerId, _a: Multiaddr, _t: Duration, _n: Instant) {}
    pub fn addresses(&self, _p: &PeerId, _n: Instant) -> Vec<Multiaddr> { vec![] }
    pub fn add_connection(&mut self, _p: PeerId, _c: ConnId) {}
    pub fn remove_connection(&mut self, _p: PeerId, _c: ConnId) {}
    pub fn get(&self, _p: &PeerId) -> Option<&PeerRecord> { None }
    pub fn set_protocols(&mut self, _p: PeerId, _v: Vec<String>) {}
    pub fn set_agent_version(&mut self, _p: PeerId, _v: String) {}
    pub fn set_protocol_version(&mut self, _p: PeerId, _v: String) {}
    pub fn set_observed_addr(&mut self, _p: PeerId, _v: Multiaddr) {}
    pub fn set_public_key(&mut self, _p: PeerId, _v: PublicKey) {}
    pub fn set_rtt(&mut self, _p: PeerId, _v: Duration) {}
}
