//! The libp2p handshake payload: who we are, proved over the Noise static
//! key.
//!
//! ```protobuf
//! message NoiseExtensions {
//!   repeated bytes webtransport_certhashes = 1;
//!   repeated string stream_muxers = 2;
//! }
//! message NoiseHandshakePayload {
//!   optional bytes identity_key = 1;
//!   optional bytes identity_sig = 2;
//!   optional NoiseExtensions extensions = 4;
//! }
//! ```
//! Some peers send only the key and the signature; extensions are optional.

use libp2p_identity::{Keypair, PublicKey};
use prost::Message;

use super::error::NoiseError;

/// What the identity key signs: this prefix, then the static DH key.
const SIGNATURE_PREFIX: &[u8] = b"noise-libp2p-static-key:";

#[derive(Clone, PartialEq, prost::Message)]
struct NoiseExtensions {
    #[prost(bytes = "vec", repeated, tag = "1")]
    webtransport_certhashes: Vec<Vec<u8>>,
    #[prost(string, repeated, tag = "2")]
    stream_muxers: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NoiseHandshakePayload {
    #[prost(bytes = "vec", optional, tag = "1")]
    identity_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    identity_sig: Option<Vec<u8>>,
    #[prost(message, optional, tag = "4")]
    extensions: Option<NoiseExtensions>,
}

/// The remote's identity as the handshake proved it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteIdentity {
    /// The remote's identity key.
    pub public_key: PublicKey,
    /// The muxers the remote listed in its extensions (empty when it sent
    /// none).
    pub stream_muxers: Vec<String>,
}

/// Our payload: identity key, its signature over `static_key`, and
/// `muxers` as extensions when there are any.
pub(super) fn encode(
    keypair: &Keypair,
    static_key: &[u8],
    muxers: &[String],
) -> Result<Vec<u8>, NoiseError> {
    let mut signed = SIGNATURE_PREFIX.to_vec();
    signed.extend_from_slice(static_key);
    let sig = keypair
        .sign(&signed)
        .map_err(|e| NoiseError::Signing(e.to_string()))?;
    let payload = NoiseHandshakePayload {
        identity_key: Some(keypair.public().encode_protobuf()),
        identity_sig: Some(sig),
        extensions: (!muxers.is_empty()).then(|| NoiseExtensions {
            webtransport_certhashes: Vec::new(),
            stream_muxers: muxers.to_vec(),
        }),
    };
    Ok(payload.encode_to_vec())
}

/// Check a remote payload against the remote's static key.
pub(super) fn verify(bytes: &[u8], static_key: &[u8]) -> Result<RemoteIdentity, NoiseError> {
    let payload = NoiseHandshakePayload::decode(bytes).map_err(|_| NoiseError::BadPayload)?;
    let key = payload.identity_key.ok_or(NoiseError::BadIdentityKey)?;
    let public_key =
        PublicKey::try_decode_protobuf(&key).map_err(|_| NoiseError::BadIdentityKey)?;
    let sig = payload.identity_sig.ok_or(NoiseError::BadSignature)?;
    let mut signed = SIGNATURE_PREFIX.to_vec();
    signed.extend_from_slice(static_key);
    if !public_key.verify(&signed, &sig) {
        return Err(NoiseError::BadSignature);
    }
    Ok(RemoteIdentity {
        public_key,
        stream_muxers: payload
            .extensions
            .map(|e| e.stream_muxers)
            .unwrap_or_default(),
    })
}
