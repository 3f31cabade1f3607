//! Peer routing: a dial by PeerId with no known address asks the plugin
//! registered as the swarm's peer router (Kademlia, say) to find one, and
//! waits for its answer, then dials what is in the peer store.
//!
//! The router is any plugin that called [`Context::register_peer_router`];
//! the swarm knows nothing of how it searches. One search runs per PeerId
//! however many dials wait for it, and every search is bounded by
//! [`Limits::peer_routing_timeout`] whatever the router does.
//!
//! [`Context::register_peer_router`]: crate::Context::register_peer_router
//! [`Limits::peer_routing_timeout`]: crate::Limits::peer_routing_timeout

use libp2p_identity::PeerId;
use tracing::{debug, info, warn};

use crate::connection::Requester;
use crate::error::DialError;
use crate::events::SwarmEvent;
use crate::ids::{ConnId, PluginId};

use super::peer_searches::{ROUTING_INDEX, Search, WaitingDial};

use super::core::Core;
use super::queues::{Callback, Deadline};

impl Core {
    /// Make `plugin` the swarm's peer router (the last one registered wins).
    pub(crate) fn register_peer_router(&mut self, plugin: PluginId) {
        if let Some(old) = self.peer_routing.router.replace(plugin)
            && old != plugin
        {
            warn!(?old, new = ?plugin, "replacing the peer router");
        }
    }

    /// `dial_with_id` found no address: ask the router, if there is one.
    /// Returns the id the dial is known by until it starts.
    pub(crate) fn route_dial(
        &mut self,
        peer: PeerId,
        force_new: bool,
        requester: Requester,
    ) -> Result<ConnId, DialError> {
        let Some(router) = self.peer_routing.router else {
            return Err(DialError::NoAddresses(peer));
        };
        let routing = &mut self.peer_routing;
        let placeholder = ConnId {
            index: ROUTING_INDEX,
            generation: routing.next_placeholder,
        };
        routing.next_placeholder = routing.next_placeholder.wrapping_add(1);
        let waiting = WaitingDial {
            placeholder,
            force_new,
            requester,
        };
        if let Some(search) = routing.searches.get_mut(&peer) {
            search.waiting.push(waiting);
            return Ok(placeholder);
        }
        let serial = routing.next_search;
        routing.next_search += 1;
        routing.searches.insert(
            peer,
            Search {
                serial,
                waiting: vec![waiting],
            },
        );
        debug!(%peer, %placeholder, "no known address: asking the peer router");
        self.push_deadline(
            self.now + self.config.limits.peer_routing_timeout,
            Deadline::PeerRouting(serial),
        );
        self.callbacks.push_back(Callback::FindPeer(router, peer));
        Ok(placeholder)
    }

    /// The router finished its search for `peer`: dial the waiting dials
    /// from the peer store, or fail them.
    pub(crate) fn peer_routing_done(&mut self, peer: PeerId) {
        let Some(search) = self.peer_routing.searches.remove(&peer) else {
            return;
        };
        for dial in search.waiting {
            let WaitingDial {
                placeholder,
                force_new,
                requester,
            } = dial;
            // A failure of the dial that starts now is reported under the
            // id the plugin already holds.
            let requester = match requester {
                Requester::Plugin(p) => Requester::PluginAs(p, placeholder),
                other => other,
            };
            if let Err(error) = self.dial_known_peer(peer, force_new, requester.clone()) {
                self.fail_routed_dial(placeholder, requester, error);
            }
        }
    }

    /// A search ran out of time: fail its dials.
    pub(crate) fn peer_routing_timed_out(&mut self, serial: u64) {
        let Some(peer) = self
            .peer_routing
            .searches
            .iter()
            .find(|(_, s)| s.serial == serial)
            .map(|(p, _)| *p)
        else {
            return;
        };
        info!(%peer, "peer routing timed out");
        let search = self.peer_routing.searches.remove(&peer).expect("found");
        for dial in search.waiting {
            self.fail_routed_dial(
                dial.placeholder,
                dial.requester,
                DialError::PeerRoutingTimeout(peer),
            );
        }
    }

    /// Fail every waiting dial (the swarm is shutting down).
    pub(crate) fn fail_all_routed_dials(&mut self) {
        let searches: Vec<Search> = self.peer_routing.searches.drain().map(|(_, s)| s).collect();
        for search in searches {
            for dial in search.waiting {
                self.fail_routed_dial(dial.placeholder, dial.requester, DialError::ShuttingDown);
            }
        }
    }

    fn fail_routed_dial(&mut self, placeholder: ConnId, requester: Requester, error: DialError) {
        debug!(%placeholder, %error, "routed dial failed");
        match requester {
            Requester::Plugin(p) | Requester::PluginAs(p, _) => {
                self.callbacks
                    .push_back(Callback::DialFailure(p, placeholder, error.clone()));
            }
            Requester::Handle(reply) => {
                let _ = reply.send(Err(error.clone()));
            }
            Requester::Internal => {}
        }
        self.publish(SwarmEvent::DialFailed {
            conn: placeholder,
            error,
        });
    }
}
