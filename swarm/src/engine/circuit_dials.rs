//! Dials of relayed addresses (`…/p2p/<relay>/p2p-circuit/p2p/<peer>`):
//! the swarm has no transport for them, so it hands them to the plugin
//! registered as the circuit transport (a circuit relay client), which
//! reaches the peer through the relay and then completes the dial with the
//! stream that carries the relayed connection, or fails it.
//!
//! Until then the dial is known by a placeholder id, as a routed dial is;
//! the requester (a plugin, or a `SwarmHandle` waiting in `dial`) hears of
//! the outcome as for any dial, and every dial is bounded by the handshake
//! timeout whatever the plugin does.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use multiaddr::Multiaddr;
use tracing::debug;

use crate::connection::Requester;
use crate::error::{DialError, ListenError, RelayConnectionError};
use crate::events::{RelayedRole, SwarmEvent};
use crate::ids::{ConnId, PluginId, StreamRef};

use super::core::Core;
use super::queues::{Callback, Deadline};

/// The placeholder index of circuit dials (next to peer routing's).
const CIRCUIT_INDEX: u32 = u32::MAX - 1;

/// The circuit transport and the dials waiting for it.
#[derive(Default)]
pub(crate) struct CircuitDials {
    transport: Option<PluginId>,
    pending: HashMap<ConnId, Requester>,
    next: u32,
}

impl Core {
    /// `Context::register_circuit_transport`.
    pub(crate) fn register_circuit_transport(&mut self, plugin: PluginId) {
        self.circuit_dials.transport = Some(plugin);
    }

    /// Listening on `…/p2p/<relay>/p2p-circuit`: the circuit transport
    /// reserves on the relay (asynchronously; the address is returned as
    /// accepted, and the relayed addresses become external addresses once
    /// the relay grants the reservation).
    pub(crate) fn listen_circuit(&mut self, addr: &Multiaddr) -> Result<Multiaddr, ListenError> {
        let relay_given = matches!(
            addr.iter()
                .take_while(|p| !matches!(p, multiaddr::Protocol::P2pCircuit))
                .last(),
            Some(multiaddr::Protocol::P2p(_))
        );
        let ends_in_circuit = matches!(addr.iter().last(), Some(multiaddr::Protocol::P2pCircuit));
        let (Some(transport), true, true) =
            (self.circuit_dials.transport, relay_given, ends_in_circuit)
        else {
            return Err(ListenError::UnsupportedAddress(addr.clone()));
        };
        debug!(%addr, "listening through a relay");
        self.callbacks
            .push_back(Callback::ListenCircuit(transport, addr.clone()));
        Ok(addr.clone())
    }

    /// A dial of a relayed address: to the circuit transport.
    pub(crate) fn dial_circuit(
        &mut self,
        addr: &Multiaddr,
        requester: Requester,
    ) -> Result<ConnId, DialError> {
        let Some(transport) = self.circuit_dials.transport else {
            return Err(DialError::UnsupportedAddress(addr.clone()));
        };
        let dials = &mut self.circuit_dials;
        let placeholder = ConnId {
            index: CIRCUIT_INDEX,
            generation: dials.next,
        };
        dials.next = dials.next.wrapping_add(1);
        dials.pending.insert(placeholder, requester);
        debug!(%addr, %placeholder, "dialing through a relay");
        let at: Instant = self.now + self.config.limits.handshake_timeout;
        self.push_deadline(at, Deadline::CircuitDial(placeholder));
        self.callbacks
            .push_back(Callback::DialCircuit(transport, placeholder, addr.clone()));
        Ok(placeholder)
    }

    /// `Context::complete_circuit_dial`: the relayed connection of `dial`
    /// rides `stream`; its outcome goes to the dial's requester.
    pub(crate) fn complete_circuit_dial(
        &mut self,
        plugin: PluginId,
        dial: ConnId,
        stream: StreamRef,
        role: RelayedRole,
        remote_addr: Multiaddr,
        initial: Bytes,
    ) -> Result<ConnId, RelayConnectionError> {
        let conn = self.relay_connection(plugin, stream, role, remote_addr, initial)?;
        if let Some(requester) = self.circuit_dials.pending.remove(&dial)
            && let Some(c) = self.conn_mut(conn)
            && let crate::connection::Origin::Dialed { requester: r, .. } = &mut c.origin
        {
            // A plugin's failure report keeps the id it got from `dial`.
            *r = match requester {
                Requester::Plugin(p) => Requester::PluginAs(p, dial),
                other => other,
            };
        }
        Ok(conn)
    }

    /// `Context::fail_circuit_dial`, and the timeout.
    pub(crate) fn fail_circuit_dial(&mut self, dial: ConnId, error: DialError) {
        let Some(requester) = self.circuit_dials.pending.remove(&dial) else {
            return;
        };
        debug!(%dial, %error, "dial through a relay failed");
        match requester {
            Requester::Plugin(p) | Requester::PluginAs(p, _) => {
                self.callbacks
                    .push_back(Callback::DialFailure(p, dial, error.clone()));
            }
            Requester::Handle(reply) => {
                let _ = reply.send(Err(error.clone()));
            }
            Requester::Internal => {}
        }
        self.publish(SwarmEvent::DialFailed { conn: dial, error });
    }
}
