//! Transports under the swarm. Today one: QUIC v1 ([`quic`]).
pub(crate) mod quic;
