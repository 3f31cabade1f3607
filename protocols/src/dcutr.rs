//! DCUtR, direct connection upgrade through relay (libp2p/specs
//! `relay/DCUtR.md`): over a relayed connection, two peers exchange the
//! addresses others observed them at, synchronise on the relay's round
//! trip, and open a direct QUIC connection (datagram punches) or TCP one
//! (a simultaneous open from both listen ports) through both NATs at once
//! ([`Dcutr`], events [`DcutrEvent`]).
//!
//! | file | concept |
//! |---|---|
//! | `proto.rs` | the message |
//! | `upgrade.rs` | the exchange, the timed dial and hole punch, retries |

pub mod proto;
mod upgrade;

pub use upgrade::{Dcutr, DcutrConfig, DcutrEvent};

/// The protocol id.
pub const PROTOCOL: &str = "/libp2p/dcutr";
/// Largest message read (the spec's 4 KiB).
const MAX_MESSAGE: usize = 4096;
