//! AutoNAT v2 (libp2p/specs `autonat/autonat-v2.md`): learn which of our
//! addresses others can reach, one address at a time.
//!
//! A client ([`AutonatClient`]) asks a server to dial one of its addresses
//! back with a nonce; the server ([`AutonatServer`]) dials it on a new
//! connection from a port it does not listen on, hands over the nonce on a
//! `/libp2p/autonat/2/dial-back` stream, and reports how the dial went.
//! Reachable addresses become the swarm's confirmed external addresses
//! (identify announces them); the client emits [`ClientEvent`]s, the
//! server [`ServerEvent`]s.
//!
//! | file | concept |
//! |---|---|
//! | `proto.rs` | the messages |
//! | `addresses.rs` | which addresses are tested (public, or allowed networks) |
//! | `server.rs` | the server: choose, (charge,) dial back, report |
//! | `client.rs` | the client: candidates, probes, votes, verdicts |

mod addresses;
mod client;
pub mod proto;
mod server;

pub use addresses::{IpNetwork, ip_of, is_public};
pub use client::{AutonatClient, ClientConfig, ClientEvent, Reachability};
pub use proto::{DialStatus, ResponseStatus};
pub use server::{AutonatServer, ServerConfig, ServerEvent};

/// The request protocol (client to server).
pub const DIAL_REQUEST: &str = "/libp2p/autonat/2/dial-request";
/// The dial-back protocol (server to client, on the new connection).
pub const DIAL_BACK: &str = "/libp2p/autonat/2/dial-back";
/// Largest message we read: a request with a few dozen addresses, or a
/// dial-data message the client serialized larger than 4 KiB.
const MAX_MESSAGE: usize = 16 * 1024;
