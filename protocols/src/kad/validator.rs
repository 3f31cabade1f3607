//! Record validators: what a key namespace accepts (`/pk/` as IPFS has
//! it, or any closure), chosen by the key's namespace.

use swarm::{PeerId, PublicKey};

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
