//! TEMPORARY STUB, replaced by the real module.
#![allow(missing_docs, dead_code)]
use std::sync::{Arc, Mutex};
use libp2p_identity::{Keypair, PeerId};
use rustls::pki_types::CertificateDer;
pub const ALPN: &[u8] = b"libp2p";
pub struct TlsIdentity;
#[derive(Clone, Default)]
pub struct ObservedPeer(Arc<Mutex<Option<PeerId>>>);
impl ObservedPeer { pub fn get(&self) -> Option<PeerId> { *self.0.lock().unwrap() } }
#[derive(Debug, thiserror::Error)]
pub enum TlsError { #[error("x")] X, #[error("q")] Quic(String) }
#[derive(Debug, thiserror::Error)]
pub enum CertificateError { #[error("x")] X }
impl TlsIdentity {
    pub fn new(_k: &Keypair) -> Result<Self, TlsError> { todo!() }
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> { todo!() }
    pub fn client_config(&self, _e: Option<PeerId>) -> Result<(Arc<rustls::ClientConfig>, ObservedPeer), TlsError> { todo!() }
}
pub fn peer_id_from_chain(_c: &[CertificateDer<'_>]) -> Result<PeerId, CertificateError> { todo!() }
