//! Circuit relay v2 (libp2p/specs `relay/circuit-v2.md`): reach a peer
//! through a relay when no direct connection is possible.
//!
//! The server ([`RelayServer`]) grants reservations and splices circuits
//! within its limits. The client ([`RelayClient`]) reserves slots on
//! relays, so that others reach it at `<relay addr>/p2p/<relay>/p2p-circuit`,
//! and connects to peers through relays. The relayed connection is a stream of the
//! connection to the relay, upgraded with Noise (or TLS) and Yamux by the
//! swarm ([`swarm::Context::relay_connection`]).
//!
//! | file | concept |
//! |---|---|
//! | `proto.rs` | the hop and stop messages |
//! | `voucher.rs` | the reservation voucher, a signed envelope |
//! | `server.rs` | the relay: reservations, circuits, limits, the splice |
//! | `client.rs` | reservations, inbound circuits (stop), outbound circuits (connect) |

mod client;
pub mod proto;
mod server;
pub mod voucher;

pub use client::{ConnectVia, RelayClient, RelayClientConfig, RelayClientEvent};
pub use server::{RelayServer, RelayServerConfig, RelayServerEvent};

use swarm::multiaddr::Protocol as P;
use swarm::{Multiaddr, PeerId};

/// The hop protocol (client to relay).
pub const HOP: &str = "/libp2p/circuit/relay/0.2.0/hop";
/// The stop protocol (relay to target).
pub const STOP: &str = "/libp2p/circuit/relay/0.2.0/stop";
/// Largest hop or stop message read: a peer with a few addresses, a
/// reservation with a voucher.
const MAX_MESSAGE: usize = 4096;

/// `<relay addr>/p2p/<relay>/p2p-circuit` (the `/p2p/` added when missing;
/// with no address, `/p2p/<relay>/p2p-circuit`).
pub fn circuit_addr(relay_addr: Option<Multiaddr>, relay: PeerId) -> Multiaddr {
    let mut addr = relay_addr.unwrap_or_else(Multiaddr::empty);
    if !matches!(addr.iter().last(), Some(P::P2p(p)) if p == relay) {
        addr.push(P::P2p(relay));
    }
    addr.with(P::P2pCircuit)
}

/// Split `…/p2p/<relay>/p2p-circuit[/p2p/<target>]` into the relay's
/// address (ending in `/p2p/<relay>`) and the target.
pub fn split_circuit_addr(addr: &Multiaddr) -> Option<(Multiaddr, Option<PeerId>)> {
    let parts: Vec<P<'_>> = addr.iter().collect();
    let at = parts.iter().position(|p| matches!(p, P::P2pCircuit))?;
    let relay: Multiaddr = parts[..at].iter().cloned().collect();
    if !matches!(relay.iter().last(), Some(P::P2p(_))) {
        return None;
    }
    let target = match parts.get(at + 1..) {
        Some([]) | None => None,
        Some([P::P2p(peer)]) => Some(*peer),
        Some(_) => return None,
    };
    Some((relay, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circuit_addresses_are_built_and_split() {
        let relay = PeerId::random();
        let target = PeerId::random();
        let base: Multiaddr = "/ip4/1.2.3.4/udp/4001/quic-v1".parse().unwrap();
        let listen = circuit_addr(Some(base.clone()), relay);
        assert_eq!(
            circuit_addr(Some(base.clone().with(P::P2p(relay))), relay),
            listen
        );
        let dial = listen.clone().with(P::P2p(target));
        assert_eq!(
            split_circuit_addr(&dial),
            Some((base.clone().with(P::P2p(relay)), Some(target)))
        );
        assert_eq!(
            split_circuit_addr(&listen),
            Some((base.with(P::P2p(relay)), None))
        );
        assert_eq!(
            split_circuit_addr(&"/ip4/1.2.3.4/tcp/1".parse().unwrap()),
            None
        );
    }
}
