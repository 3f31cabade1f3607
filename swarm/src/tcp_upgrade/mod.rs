//! Upgrading a raw TCP connection to libp2p streams, without I/O:
//! multistream-select picks `/noise`, the Noise XX handshake proves both
//! identities, multistream-select (inside Noise) picks `/yamux/1.0.0`, and
//! a Yamux session carries the streams.
//!
//! | file | concept |
//! |---|---|
//! | `upgrade.rs` | the upgrade steps, dialer and listener |
//! | `secured.rs` | the upgraded connection: Noise around a Yamux session |
//! | `error.rs` | what can fail on the way |

mod error;
mod secured;
mod upgrade;

pub use error::UpgradeError;
pub use secured::SecuredConnection;
pub use upgrade::{MUXER_PROTOCOL, NOISE_PROTOCOL, TcpUpgrade, UpgradeProgress};

#[cfg(test)]
mod tests;
