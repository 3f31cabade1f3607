//! AutoNAT v2 on the test node: rust-libp2p's client and server
//! behaviours (libp2p-autonat 0.16), with their events as [`PeerEvent`]s.
//! Both use libp2p-autonat's defaults (the client probes every 5 s, from
//! the address candidates identify reports).

use libp2p::autonat::v2::{client, server};

use crate::PeerEvent;

/// The client behaviour.
pub(crate) type Client = client::Behaviour;
/// The server behaviour.
pub(crate) type Server = server::Behaviour;

/// A client test's outcome as a [`PeerEvent::AutonatTested`].
pub(crate) fn client_event(ev: client::Event) -> PeerEvent {
    PeerEvent::AutonatTested {
        addr: ev.tested_addr,
        server: ev.server,
        bytes_sent: ev.bytes_sent,
        result: ev.result.map_err(|e| e.to_string()),
    }
}

/// A request the server served, as a [`PeerEvent::AutonatServed`].
pub(crate) fn server_event(ev: server::Event) -> PeerEvent {
    PeerEvent::AutonatServed {
        client: ev.client,
        addr: ev.tested_addr,
        data_amount: ev.data_amount,
        result: ev.result.map_err(|e| e.to_string()),
    }
}
