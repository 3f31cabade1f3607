//! The engine: everything the swarm owns except the plugins, with no I/O
//! of its own and the time as an argument.
//!
//! The facade ([`Swarm`](crate::Swarm)) feeds it (datagrams, time,
//! commands) and then makes the plugin calls it queued
//! ([`callbacks::Callback`]); plugins act on it through their
//! [`Context`](crate::Context). Each file below holds one concept:
//!
//! | file | concept |
//! |---|---|
//! | `sockets.rs` | UDP sockets and QUIC endpoints, listening, the socket to dial from |
//! | `incoming_datagrams.rs` | a datagram into its endpoint; accept, retry or refuse a new connection |
//! | `transmit.rs` | datagrams out, fairly across connections |
//! | `connection_table.rs` | the connection table, stale-id checks, connection limits |
//! | `dial.rs` | dialing by address or by PeerId |
//! | `circuit_dials.rs` | dials of relayed addresses, handed to the circuit transport plugin |
//! | `quic_events.rs` | the quinn-proto event pump |
//! | `lifecycle.rs` | connection established / ended / closed, shutdown, keep-alive, idle |
//! | `deadlines.rs` | one deadline heap: QUIC timers, plugin timers, handshake, negotiation, idle |
//! | `negotiation.rs` | multistream-select on inbound and outbound streams, handing a stream to its owner |
//! | `receive.rs` | stream data from QUIC to its owner |
//! | `send.rs` | writes, the send queue, finish / reset / stop / abort, writable and stopped |
//! | `stream_access.rs` | the one accessor every plugin stream call goes through |
//! | `detached.rs` | streams handed to threads: the bounded pump |
//! | `stream_teardown.rs` | failing, ending and removing streams |
//! | `packet_flows.rs` | QUIC datagrams per plugin protocol |
//! | `tcp.rs` | TCP connections: driver sockets, the upgrade, the Yamux event pump |
//! | `relayed.rs` | relayed connections: the TCP upgrade and Yamux over another connection's stream |
//! | `publish.rs` | events and messages to plugins and applications |
//! | `external_addrs.rs` | the addresses others reach us at, as a plugin confirmed them |
//! | `hole_punch.rs` | random datagrams that open our NAT toward an address (DCUtR over QUIC) |
//! | `core.rs` | the engine's state and accessors |
//! | `queues.rs` | what is queued: plugin calls for the facade, deadlines |
//! | `end_reason.rs` | why a connection ended, turned into errors |

mod circuit_dials;
mod connection_table;
mod core;
mod deadlines;
mod detached;
mod dial;
mod end_reason;
mod external_addrs;
mod hole_punch;
mod incoming_datagrams;
mod lifecycle;
mod negotiation;
mod packet_flows;
mod peer_routing;
mod peer_searches;
mod publish;
mod queues;
mod quic_events;
mod receive;
mod relayed;
mod send;
mod sockets;
mod stream_access;
mod stream_teardown;
mod tcp;
mod transmit;

pub(crate) use self::core::Core;
pub use incoming_datagrams::ReceivedDatagram;
pub(crate) use queues::Callback;
pub use tcp::{TcpConnect, TcpOutbound};
