//! The addresses others reach us at: confirmed by a plugin (AutoNAT v2
//! after a dial-back), withdrawn when a later probe fails. Identify
//! announces them beside the listen addresses; the swarm itself only keeps
//! the bounded list and publishes its changes.

use multiaddr::Multiaddr;
use tracing::info;

use crate::events::SwarmEvent;

use super::core::Core;

/// Most external addresses kept: a host has a few (IPv4/IPv6 × QUIC/TCP,
/// maybe a second NAT mapping); a plugin that confirms more is wrong, and
/// the oldest make room.
pub(crate) const MAX_EXTERNAL_ADDRS: usize = 16;

impl Core {
    /// Confirm `addr`; `true` if it was not confirmed yet.
    pub(crate) fn add_external_address(&mut self, addr: Multiaddr) -> bool {
        if self.external_addrs.contains(&addr) {
            return false;
        }
        if self.external_addrs.len() >= MAX_EXTERNAL_ADDRS {
            let oldest = self.external_addrs.remove(0);
            self.publish(SwarmEvent::ExternalAddrExpired(oldest));
        }
        info!(%addr, "external address confirmed");
        self.external_addrs.push(addr.clone());
        self.publish(SwarmEvent::ExternalAddrConfirmed(addr));
        true
    }

    /// Withdraw `addr`; `true` if it was confirmed.
    pub(crate) fn remove_external_address(&mut self, addr: &Multiaddr) -> bool {
        let Some(i) = self.external_addrs.iter().position(|a| a == addr) else {
            return false;
        };
        let addr = self.external_addrs.remove(i);
        info!(%addr, "external address expired");
        self.publish(SwarmEvent::ExternalAddrExpired(addr));
        true
    }
}
