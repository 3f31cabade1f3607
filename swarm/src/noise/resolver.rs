//! snow's crypto with our randomness: ring for ChaChaPoly and SHA-256,
//! curve25519-dalek for X25519, and the ephemeral keys drawn from a seeded
//! RNG, so that a seeded swarm's handshakes repeat (see DESIGN.md,
//! "Determinism is a feature").

use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver, FallbackResolver, RingResolver};
use snow::types::{Cipher, Dh, Hash, Random};

/// Randomness for snow from a seed.
struct SeededRandom(StdRng);

impl Random for SeededRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

/// The resolver for one handshake.
pub(super) struct Resolver {
    /// Each RNG snow asks for (one for the static key, one for the
    /// ephemeral) is seeded from this one, so no two share a stream.
    master: Mutex<StdRng>,
    crypto: FallbackResolver,
}

impl Resolver {
    /// A resolver whose randomness comes from `seed` (32 bytes from the
    /// swarm's CSPRNG, or from a test seed).
    pub(super) fn new(seed: [u8; 32]) -> Self {
        Self {
            master: Mutex::new(StdRng::from_seed(seed)),
            crypto: FallbackResolver::new(Box::new(RingResolver), Box::new(DefaultResolver)),
        }
    }
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        let mut seed = [0u8; 32];
        self.master
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fill_bytes(&mut seed);
        Some(Box::new(SeededRandom(StdRng::from_seed(seed))))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        self.crypto.resolve_dh(choice)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        self.crypto.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        self.crypto.resolve_cipher(choice)
    }
}
