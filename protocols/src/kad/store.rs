//! The record and provider store: what other peers asked us to keep.
//!
//! Everything is bounded by [`KadConfig`] limits (records, record size,
//! providers per key, keys with providers), and everything expires: the
//! store never reads a clock, every call that deals with time takes `now`,
//! and [`RecordStore::expire`] (called from the plugin's housekeeping timer)
//! drops what is past its time.
//!
//! Records are checked by a [`Validator`] chosen by the key's namespace
//! (`/pk/…` → `pk`); keys outside any configured namespace are accepted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use swarm::{Multiaddr, PeerId, PublicKey};

use super::codec::MAX_ADDRS_PER_PEER;
use super::config::KadConfig;
use super::error::StoreError;

/// A key/value record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The key (bytes; often a `/namespace/…` path).
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// The original publisher, when known.
    pub publisher: Option<PeerId>,
}

impl Record {
    /// A record with no publisher set.
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            publisher: None,
        }
    }
}

/// Checks records of one key namespace before they are stored or returned
/// from a GET_VALUE.
pub trait Validator: Send + Sync {
    /// `Ok` if `value` is acceptable under `key`; otherwise why not.
    fn validate(&self, key: &[u8], value: &[u8]) -> Result<(), String>;
}

impl<F> Validator for F
where
    F: Fn(&[u8], &[u8]) -> Result<(), String> + Send + Sync,
{
    fn validate(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        self(key, value)
    }
}

/// The `/pk/` namespace, as IPFS has it: the key is `/pk/` followed by a
/// PeerId's bytes, the value that peer's protobuf-encoded public key.
#[derive(Clone, Copy, Debug, Default)]
pub struct PublicKeyValidator;

impl Validator for PublicKeyValidator {
    fn validate(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        let id = key
            .strip_prefix(b"/pk/")
            .ok_or_else(|| "not a /pk/ key".to_string())?;
        let peer = PeerId::from_bytes(id).map_err(|e| format!("key holds no PeerId: {e}"))?;
        let public_key = PublicKey::try_decode_protobuf(value)
            .map_err(|e| format!("value is not a public key: {e}"))?;
        if public_key.to_peer_id() != peer {
            return Err("the public key belongs to another peer".into());
        }
        Ok(())
    }
}

/// The namespace of a `/namespace/rest` key, if it has one.
pub fn namespace(key: &[u8]) -> Option<&[u8]> {
    let rest = key.strip_prefix(b"/")?;
    let end = rest.iter().position(|&b| b == b'/')?;
    Some(&rest[..end])
}

/// A provider of a key: a peer that said it has the content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provider {
    /// The provider.
    pub peer: PeerId,
    /// Where it said it can be reached (at most
    /// [`MAX_ADDRS_PER_PEER`]).
    pub addrs: Vec<Multiaddr>,
}

#[derive(Clone, Debug)]
struct ProviderEntry {
    provider: Provider,
    expires: Instant,
}

#[derive(Clone, Debug)]
struct StoredRecord {
    record: Record,
    expires: Instant,
}

/// The bounded, expiring record and provider store.
pub struct RecordStore {
    max_records: usize,
    max_record_size: usize,
    max_key_size: usize,
    max_providers_per_key: usize,
    max_provider_keys: usize,
    record_ttl: Duration,
    provider_ttl: Duration,
    validators: Vec<(String, Arc<dyn Validator>)>,
    records: HashMap<Vec<u8>, StoredRecord>,
    providers: HashMap<Vec<u8>, Vec<ProviderEntry>>,
}

impl RecordStore {
    /// An empty store with the limits, lifetimes and validators of `config`.
    pub fn new(config: &KadConfig) -> Self {
        Self {
            max_records: config.max_records,
            max_record_size: config.max_record_size,
            max_key_size: config.max_key_size,
            max_providers_per_key: config.max_providers_per_key,
            max_provider_keys: config.max_provider_keys,
            record_ttl: config.record_ttl,
            provider_ttl: config.provider_ttl,
            validators: config.validators.clone(),
            records: HashMap::new(),
            providers: HashMap::new(),
        }
    }

    /// Check a key's length.
    pub fn check_key(&self, key: &[u8]) -> Result<(), StoreError> {
        if key.is_empty() || key.len() > self.max_key_size {
            return Err(StoreError::InvalidKey(key.len()));
        }
        Ok(())
    }

    /// Check a record against the size limit and its namespace's validator,
    /// without storing it.
    pub fn validate(&self, record: &Record) -> Result<(), StoreError> {
        self.check_key(&record.key)?;
        let size = record.key.len() + record.value.len();
        if size > self.max_record_size {
            return Err(StoreError::RecordTooLarge {
                size,
                limit: self.max_record_size,
            });
        }
        if let Some(ns) = namespace(&record.key)
            && let Some((_, validator)) = self.validators.iter().find(|(n, _)| n.as_bytes() == ns)
        {
            validator
                .validate(&record.key, &record.value)
                .map_err(StoreError::Invalid)?;
        }
        Ok(())
    }

    /// Store (or replace) a record until `now` + the record TTL.
    pub fn put(&mut self, record: Record, now: Instant) -> Result<(), StoreError> {
        self.validate(&record)?;
        if !self.records.contains_key(&record.key) && self.records.len() >= self.max_records {
            self.expire(now);
            if self.records.len() >= self.max_records {
                return Err(StoreError::RecordsFull(self.max_records));
            }
        }
        let expires = now + self.record_ttl;
        self.records
            .insert(record.key.clone(), StoredRecord { record, expires });
        Ok(())
    }

    /// The record under `key`, if stored and not expired at `now`.
    pub fn get(&self, key: &[u8], now: Instant) -> Option<&Record> {
        self.records
            .get(key)
            .filter(|r| r.expires > now)
            .map(|r| &r.record)
    }

    /// Remove the record under `key`.
    pub fn remove(&mut self, key: &[u8]) {
        self.records.remove(key);
    }

    /// Add (or refresh) `provider` for `key` until `now` + the provider TTL.
    pub fn add_provider(
        &mut self,
        key: &[u8],
        mut provider: Provider,
        now: Instant,
    ) -> Result<(), StoreError> {
        self.check_key(key)?;
        provider.addrs.truncate(MAX_ADDRS_PER_PEER);
        let expires = now + self.provider_ttl;
        if !self.providers.contains_key(key) && self.providers.len() >= self.max_provider_keys {
            self.expire(now);
            if self.providers.len() >= self.max_provider_keys {
                return Err(StoreError::ProviderKeysFull(self.max_provider_keys));
            }
        }
        let entries = self.providers.entry(key.to_vec()).or_default();
        if let Some(entry) = entries
            .iter_mut()
            .find(|e| e.provider.peer == provider.peer)
        {
            // A refresh; an announcement without addresses keeps the ones
            // we had.
            if !provider.addrs.is_empty() {
                entry.provider.addrs = provider.addrs;
            }
            entry.expires = expires;
            return Ok(());
        }
        entries.retain(|e| e.expires > now);
        if entries.len() >= self.max_providers_per_key {
            return Err(StoreError::ProvidersPerKeyFull(self.max_providers_per_key));
        }
        entries.push(ProviderEntry { provider, expires });
        Ok(())
    }

    /// The live providers of `key` at `now`, oldest first.
    pub fn providers(&self, key: &[u8], now: Instant) -> Vec<Provider> {
        self.providers
            .get(key)
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e.expires > now)
                    .map(|e| e.provider.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Drop records and provider entries expired at `now`.
    pub fn expire(&mut self, now: Instant) {
        self.records.retain(|_, r| r.expires > now);
        self.providers.retain(|_, entries| {
            entries.retain(|e| e.expires > now);
            !entries.is_empty()
        });
    }

    /// Number of records held (expired ones included until [`RecordStore::expire`]).
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// Number of keys with provider entries.
    pub fn provider_key_count(&self) -> usize {
        self.providers.len()
    }

    /// Number of provider entries over all keys.
    pub fn provider_count(&self) -> usize {
        self.providers.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(f: impl FnOnce(&mut KadConfig)) -> RecordStore {
        let mut config = KadConfig::default();
        f(&mut config);
        RecordStore::new(&config)
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn records_expire_after_their_ttl() {
        let t0 = Instant::now();
        let mut s = store(|_| {});
        s.put(Record::new(*b"k", *b"v"), t0).unwrap();
        assert_eq!(s.get(b"k", t0 + 47 * HOUR).unwrap().value, b"v");
        assert!(s.get(b"k", t0 + 48 * HOUR).is_none());
        s.expire(t0 + 48 * HOUR);
        assert_eq!(s.record_count(), 0);
    }

    #[test]
    fn limits_refuse_with_typed_errors() {
        let t0 = Instant::now();
        let mut s = store(|c| {
            c.max_records = 2;
            c.max_record_size = 10;
            c.max_providers_per_key = 2;
            c.max_provider_keys = 2;
        });
        assert_eq!(
            s.put(Record::new(*b"k", [0u8; 10]), t0),
            Err(StoreError::RecordTooLarge {
                size: 11,
                limit: 10
            })
        );
        s.put(Record::new(*b"a", *b"1"), t0).unwrap();
        s.put(Record::new(*b"b", *b"1"), t0).unwrap();
        assert_eq!(
            s.put(Record::new(*b"c", *b"1"), t0),
            Err(StoreError::RecordsFull(2))
        );
        // Replacing an existing key is always allowed.
        s.put(Record::new(*b"a", *b"2"), t0).unwrap();
        let p = |peer| Provider {
            peer,
            addrs: vec![],
        };
        s.add_provider(b"x", p(PeerId::random()), t0).unwrap();
        s.add_provider(b"x", p(PeerId::random()), t0).unwrap();
        assert_eq!(
            s.add_provider(b"x", p(PeerId::random()), t0),
            Err(StoreError::ProvidersPerKeyFull(2))
        );
        s.add_provider(b"y", p(PeerId::random()), t0).unwrap();
        assert_eq!(
            s.add_provider(b"z", p(PeerId::random()), t0),
            Err(StoreError::ProviderKeysFull(2))
        );
        assert_eq!(
            s.add_provider(b"", p(PeerId::random()), t0),
            Err(StoreError::InvalidKey(0))
        );
        // Once expired, room is made again.
        s.add_provider(b"z", p(PeerId::random()), t0 + 49 * HOUR)
            .unwrap();
        assert_eq!(s.provider_key_count(), 1);
    }

    #[test]
    fn pk_namespace_checks_the_key_belongs_to_the_peer() {
        let t0 = Instant::now();
        let mut s = store(|_| {});
        let key = swarm::Keypair::generate_ed25519().public();
        let other = swarm::Keypair::generate_ed25519().public();
        let mut k = b"/pk/".to_vec();
        k.extend_from_slice(&key.to_peer_id().to_bytes());
        s.put(Record::new(k.clone(), key.encode_protobuf()), t0)
            .unwrap();
        assert!(matches!(
            s.put(Record::new(k.clone(), other.encode_protobuf()), t0),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            s.put(Record::new(k, *b"junk"), t0),
            Err(StoreError::Invalid(_))
        ));
        // Other namespaces, and keys with none, are accepted as they are.
        s.put(Record::new(*b"/other/x", *b"junk"), t0).unwrap();
        s.put(Record::new(*b"plain", *b"junk"), t0).unwrap();
        assert_eq!(namespace(b"/pk/abc"), Some(&b"pk"[..]));
        assert_eq!(namespace(b"pk"), None);
    }

    #[test]
    fn a_custom_validator_runs_for_its_namespace() {
        let t0 = Instant::now();
        let mut s = store(|c| {
            let v: Arc<dyn Validator> = Arc::new(|_: &[u8], value: &[u8]| {
                if value == b"ok" {
                    Ok(())
                } else {
                    Err("not ok".to_string())
                }
            });
            c.validators.push(("app".into(), v));
        });
        s.put(Record::new(*b"/app/1", *b"ok"), t0).unwrap();
        assert_eq!(
            s.put(Record::new(*b"/app/1", *b"no"), t0),
            Err(StoreError::Invalid("not ok".into()))
        );
    }
}
