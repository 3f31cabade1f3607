//! Noise (`/noise`) without I/O: the libp2p security handshake for TCP
//! (libp2p/specs `noise/README.md`), on the `snow` crate.
//!
//! | file | concept |
//! |---|---|
//! | `handshake.rs` | the XX handshake and the PeerId check |
//! | `payload.rs` | the identity payload and its signature |
//! | `transport.rs` | encrypting and decrypting after the handshake |
//! | `framing.rs` | 2-byte big-endian length prefixes |
//! | `resolver.rs` | snow's crypto with the swarm's randomness |
//! | `error.rs` | what can fail |

mod error;
mod framing;
mod handshake;
mod payload;
mod resolver;
mod transport;

pub use error::NoiseError;
pub use framing::MAX_MESSAGE;
pub use handshake::{HandshakeProgress, MAX_HANDSHAKE_MESSAGE, NoiseConfig, NoiseHandshake};
pub use payload::RemoteIdentity;
pub use transport::{MAX_PLAINTEXT, NoiseTransport};

#[cfg(test)]
mod tests;
