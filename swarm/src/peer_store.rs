//! TEMPORARY STUB
#![allow(missing_docs, dead_code)]
use std::time::{Duration, Instant};
use libp2p_identity::PeerId;
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
}
