//! Points in the Kademlia key space: a [`Key`] is the SHA-256 of a key's
//! bytes (a PeerId's bytes, a record key, a provider key), and two keys are
//! as far apart as the [`Distance`] of their XOR, read as a 256-bit
//! big-endian number.

use std::fmt;

use swarm::PeerId;

/// A point in the key space: SHA-256 of the original bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key([u8; 32]);

impl Key {
    /// The key of arbitrary bytes (a record or provider key).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Key(out)
    }

    /// The key of a peer: SHA-256 of its PeerId's bytes (its multihash).
    pub fn from_peer(peer: &PeerId) -> Self {
        Self::from_bytes(&peer.to_bytes())
    }

    /// A key given by its 32 bytes (already hashed); for tests and for
    /// picking points in a bucket's range.
    pub fn from_raw(raw: [u8; 32]) -> Self {
        Key(raw)
    }

    /// The 32 hashed bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The XOR distance to `other`.
    pub fn distance(&self, other: &Key) -> Distance {
        let mut out = [0u8; 32];
        for (o, (a, b)) in out.iter_mut().zip(self.0.iter().zip(other.0.iter())) {
            *o = a ^ b;
        }
        Distance(out)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…")
    }
}

/// The XOR of two keys; ordered as a 256-bit big-endian number, so the
/// derived `Ord` on the byte array is the distance order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct Distance([u8; 32]);

impl Distance {
    /// The bucket a key at this distance belongs in: the position of the
    /// highest set bit (255 for the farthest half of the space, 0 for the
    /// closest pair), or `None` for distance zero (the key itself).
    pub fn bucket_index(&self) -> Option<usize> {
        let leading: u32 = self
            .0
            .iter()
            .position(|&b| b != 0)
            .map(|i| i as u32 * 8 + self.0[i].leading_zeros())?;
        Some(255 - leading as usize)
    }

    /// The 32 bytes, big-endian.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_is_xor_and_symmetric() {
        let a = Key::from_raw([0b1010_0000; 32]);
        let b = Key::from_raw([0b0110_0000; 32]);
        assert_eq!(a.distance(&b).as_bytes(), &[0b1100_0000; 32]);
        assert_eq!(a.distance(&b), b.distance(&a));
        assert_eq!(a.distance(&a), Distance::default());
    }

    #[test]
    fn bucket_index_is_the_highest_set_bit() {
        let zero = Key::from_raw([0; 32]);
        let mut raw = [0u8; 32];
        assert_eq!(zero.distance(&Key::from_raw(raw)).bucket_index(), None);
        raw[31] = 1;
        assert_eq!(zero.distance(&Key::from_raw(raw)).bucket_index(), Some(0));
        raw[31] = 0x80;
        assert_eq!(zero.distance(&Key::from_raw(raw)).bucket_index(), Some(7));
        raw[0] = 0x80;
        assert_eq!(zero.distance(&Key::from_raw(raw)).bucket_index(), Some(255));
        raw[0] = 0x01;
        assert_eq!(zero.distance(&Key::from_raw(raw)).bucket_index(), Some(248));
    }

    #[test]
    fn key_is_sha256() {
        // SHA-256("abc"), FIPS 180-2 test vector.
        let k = Key::from_bytes(b"abc");
        assert_eq!(k.as_bytes()[..4], [0xba, 0x78, 0x16, 0xbf]);
    }
}
