//! The state of peer routing (see `peer_routing`): the registered router,
//! the searches it runs, and the dials waiting for them. Kept apart from
//! the code so that `Core` can hold it without importing that code.

use std::collections::HashMap;

use libp2p_identity::PeerId;

use crate::connection::Requester;
use crate::ids::{ConnId, PluginId};

/// The slab index no connection ever has: a dial waiting for peer routing
/// gets a [`ConnId`] with this index, so any call on it before the dial
/// starts is refused as an unknown connection.
pub(crate) const ROUTING_INDEX: u32 = u32::MAX;

/// The router and the searches it is running.
#[derive(Default)]
pub(crate) struct PeerRouting {
    pub(crate) router: Option<PluginId>,
    pub(crate) searches: HashMap<PeerId, Search>,
    pub(crate) next_search: u64,
    pub(crate) next_placeholder: u32,
}

/// One search for one PeerId, and the dials that wait for it.
pub(crate) struct Search {
    pub(crate) serial: u64,
    pub(crate) waiting: Vec<WaitingDial>,
}

/// A dial by PeerId waiting for the router.
pub(crate) struct WaitingDial {
    /// The id the caller got back from `dial_with_id`.
    pub(crate) placeholder: ConnId,
    pub(crate) force_new: bool,
    pub(crate) requester: Requester,
}
