//! Reservation vouchers: the relay's signed statement that it serves a
//! peer until a time, as a signed envelope (libp2p/specs `RFC/0002`) with
//! the `libp2p-relay-rsvp` domain and payload type 0x0302.

use prost::Message as _;
use swarm::{PeerId, PublicKey};

/// The signature's domain.
const DOMAIN: &[u8] = b"libp2p-relay-rsvp";
/// The multicodec of a voucher (0x0302) as an unsigned varint.
const PAYLOAD_TYPE: &[u8] = &[0x82, 0x06];

#[derive(Clone, PartialEq, prost::Message)]
struct Voucher {
    #[prost(bytes = "vec", optional, tag = "1")]
    relay: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    peer: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "3")]
    expiration: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Envelope {
    #[prost(bytes = "vec", optional, tag = "1")]
    public_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    payload_type: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    payload: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "5")]
    signature: Option<Vec<u8>>,
}

/// What the signature covers: each part with its varint length.
fn signed_bytes(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in [DOMAIN, PAYLOAD_TYPE, payload] {
        let mut len = unsigned_varint::encode::usize_buffer();
        out.extend_from_slice(unsigned_varint::encode::usize(part.len(), &mut len));
        out.extend_from_slice(part);
    }
    out
}

/// The voucher for `peer` on `relay` until `expiration` (UNIX seconds),
/// signed by `sign` (the relay's host key) whose public half is `key`.
pub fn encode(
    relay: PeerId,
    peer: PeerId,
    expiration: u64,
    key: &PublicKey,
    sign: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
) -> Option<Vec<u8>> {
    let payload = Voucher {
        relay: Some(relay.to_bytes()),
        peer: Some(peer.to_bytes()),
        expiration: Some(expiration),
    }
    .encode_to_vec();
    let signature = sign(&signed_bytes(&payload))?;
    Some(
        Envelope {
            public_key: Some(key.encode_protobuf()),
            payload_type: Some(PAYLOAD_TYPE.to_vec()),
            payload: Some(payload),
            signature: Some(signature),
        }
        .encode_to_vec(),
    )
}

/// The relay, peer and expiration of a voucher whose signature holds.
pub fn verify(bytes: &[u8]) -> Option<(PeerId, PeerId, u64)> {
    let envelope = Envelope::decode(bytes).ok()?;
    let key = PublicKey::try_decode_protobuf(&envelope.public_key?).ok()?;
    if envelope.payload_type.as_deref() != Some(PAYLOAD_TYPE) {
        return None;
    }
    let payload = envelope.payload?;
    if !key.verify(&signed_bytes(&payload), &envelope.signature?) {
        return None;
    }
    let voucher = Voucher::decode(payload.as_slice()).ok()?;
    let relay = PeerId::from_bytes(&voucher.relay?).ok()?;
    if relay != key.to_peer_id() {
        return None;
    }
    Some((
        relay,
        PeerId::from_bytes(&voucher.peer?).ok()?,
        voucher.expiration?,
    ))
}

/// Why a reservation's voucher cannot be accepted by `peer` from `relay`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoucherError {
    /// Not a signed voucher envelope, or its signature does not hold.
    #[error("the voucher's signature does not hold")]
    BadSignature,
    /// Signed by (or naming) another relay.
    #[error("the voucher is from {0}, not the relay")]
    OtherRelay(PeerId),
    /// Made out to another peer.
    #[error("the voucher is for {0}, not us")]
    OtherPeer(PeerId),
}

/// Check a reservation's voucher: signed by `relay`, made out to `peer`.
/// (Its expiration is advisory, as the voucher is: the reservation's own
/// `expire` is what the client renews by.)
pub fn check(bytes: &[u8], relay: PeerId, peer: PeerId) -> Result<(), VoucherError> {
    let (signer, holder, _expiration) = verify(bytes).ok_or(VoucherError::BadSignature)?;
    if signer != relay {
        return Err(VoucherError::OtherRelay(signer));
    }
    if holder != peer {
        return Err(VoucherError::OtherPeer(holder));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_voucher_verifies_and_a_tampered_one_does_not() {
        let key = swarm::Keypair::generate_ed25519();
        let relay = key.public().to_peer_id();
        let peer = PeerId::random();
        let bytes = encode(relay, peer, 1_000, &key.public(), |d| key.sign(d).ok()).unwrap();
        assert_eq!(verify(&bytes), Some((relay, peer, 1_000)));
        let mut tampered = bytes.clone();
        let n = tampered.len();
        tampered[n - 1] ^= 1;
        assert_eq!(verify(&tampered), None);
    }

    #[test]
    fn a_voucher_for_another_relay_or_peer_is_refused() {
        let key = swarm::Keypair::generate_ed25519();
        let relay = key.public().to_peer_id();
        let me = PeerId::random();
        let bytes = encode(relay, me, 1_000, &key.public(), |d| key.sign(d).ok()).unwrap();
        assert_eq!(check(&bytes, relay, me), Ok(()));
        let other = PeerId::random();
        assert_eq!(
            check(&bytes, other, me),
            Err(VoucherError::OtherRelay(relay))
        );
        assert_eq!(
            check(&bytes, relay, other),
            Err(VoucherError::OtherPeer(me))
        );
        assert_eq!(check(b"junk", relay, me), Err(VoucherError::BadSignature));
    }
}
