//! Upgrading a raw TCP connection to libp2p streams, without I/O:
//! multistream-select picks `/noise` (or `/tls/1.0.0`), the Noise XX (or
//! TLS 1.3) handshake proves both identities, multistream-select (inside Noise) picks `/yamux/1.0.0`, and
//! a Yamux session carries the streams.
//!
//! | file | concept |
//! |---|---|
//! | `upgrade.rs` | the upgrade steps, dialer and listener |
//! | `tls_channel.rs` | TLS 1.3 over TCP (`/tls/1.0.0`) on rustls |
//! | `channel.rs` | Noise or TLS behind one interface |
//! | `secured.rs` | the upgraded connection: Yamux inside the channel |
//! | `error.rs` | what can fail on the way |

mod channel;
mod error;
mod secured;
mod tls_channel;
mod upgrade;

pub use error::UpgradeError;
pub use secured::SecuredConnection;
pub use upgrade::{
    DialSecurity, MUXER_PROTOCOL, NOISE_PROTOCOL, TLS_PROTOCOL, TcpUpgrade, UpgradeProgress,
};

#[cfg(test)]
mod tests;
