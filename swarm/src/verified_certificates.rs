//! Certificates that already passed the libp2p checks, so that verifying one
//! again costs a lookup instead of two signature verifications.
//!
//! A handshake needs a peer's certificate three times: the verifier checks
//! it, the CertificateVerify signature needs its key, and the swarm derives
//! the PeerId once the connection is up. A peer that connects again presents
//! the same certificate (libp2p stacks generate one per process). The
//! self-signature and the host key's signature depend only on the
//! certificate's bytes, so an exact byte match may reuse their result; the
//! validity period depends on the clock and is checked on every use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use libp2p_identity::PeerId;

/// How many certificates a swarm's own table remembers. When full, the
/// table starts over: a flood of fresh certificates costs what it would
/// cost without a cache.
const CAPACITY: usize = 1024;

/// What a verified certificate proved, and what later uses need from it.
#[derive(Clone, Debug)]
pub(crate) struct Verified {
    /// The PeerId of the host key in the libp2p extension.
    pub(crate) peer: PeerId,
    /// `notBefore`, seconds since the Unix epoch.
    pub(crate) not_before: i64,
    /// `notAfter`, seconds since the Unix epoch.
    pub(crate) not_after: i64,
    /// The certificate's SubjectPublicKeyInfo DER, for handshake signatures.
    pub(crate) spki: Arc<[u8]>,
}

/// A bounded table from a certificate's DER bytes to what its verification
/// proved. Shared by the client and server verifiers of one identity and by
/// the swarm thread; keyed by the whole DER (SipHash: the bytes are the
/// peer's), so only an identical certificate hits.
#[derive(Debug)]
pub(crate) struct VerifiedCertificates {
    table: Mutex<HashMap<Box<[u8]>, Verified>>,
    capacity: usize,
}

impl Default for VerifiedCertificates {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl VerifiedCertificates {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            table: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    /// What verifying `der` proved, if it was verified before.
    pub(crate) fn get(&self, der: &[u8]) -> Option<Verified> {
        self.lock().get(der).cloned()
    }

    /// Remember a certificate that passed every check.
    pub(crate) fn insert(&self, der: &[u8], verified: Verified) {
        let mut table = self.lock();
        if table.len() >= self.capacity && !table.contains_key(der) {
            table.clear();
        }
        table.insert(der.into(), verified);
    }

    /// How many certificates are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<[u8]>, Verified>> {
        // The table holds no invariant a panicking holder could break.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A table of verified peer certificates that several swarms of one
/// process share (see [`SwarmConfig::certificate_cache`]): a certificate
/// any of them verified costs the others a lookup. Meant for simulations,
/// where thousands of swarms meet the same few thousand certificates; the
/// handshake itself (key exchange, the CertificateVerify signature over
/// the transcript, validity dates) still runs in full every time.
///
/// [`SwarmConfig::certificate_cache`]: crate::SwarmConfig::certificate_cache
#[derive(Clone, Debug)]
pub struct CertificateCache(pub(crate) Arc<VerifiedCertificates>);

impl CertificateCache {
    /// A shared table of at most `capacity` certificates (it starts over
    /// when full, as a swarm's own table of 1,024 does).
    pub fn new(capacity: usize) -> Self {
        Self(Arc::new(VerifiedCertificates::with_capacity(capacity)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(peer: PeerId) -> Verified {
        Verified {
            peer,
            not_before: 0,
            not_after: i64::MAX,
            spki: Arc::from(&b"spki"[..]),
        }
    }

    #[test]
    fn only_identical_bytes_hit() {
        let cache = VerifiedCertificates::default();
        let peer = PeerId::random();
        cache.insert(b"certificate", verified(peer));
        assert_eq!(cache.get(b"certificate").map(|v| v.peer), Some(peer));
        assert!(cache.get(b"certificatf").is_none());
        assert!(cache.get(b"certificat").is_none());
    }

    #[test]
    fn the_table_stays_bounded() {
        let cache = VerifiedCertificates::default();
        for i in 0..CAPACITY * 3 + 7 {
            cache.insert(&i.to_be_bytes(), verified(PeerId::random()));
            assert!(cache.len() <= CAPACITY);
        }
        let last = (CAPACITY * 3 + 6).to_be_bytes();
        assert!(cache.get(&last).is_some(), "the newest entry is kept");
    }
}
