//! The connection table: lookups by [`ConnId`] (stale ids resolve to
//! nothing), insertion, the "touched" list of connections whose QUIC state
//! changed, and the connection limits.

use std::net::IpAddr;

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use quinn_proto::ConnectionHandle;
use rustc_hash::FxHashMap;

use crate::address::{canonical, quic_multiaddr};
use crate::connection::{Connection, Origin, SocketIndex};
use crate::error::OpenStreamError;
use crate::events::StreamTarget;
use crate::ids::ConnId;
use crate::limits::ConnectionLimit;
use crate::transport::Transport;

use super::core::Core;
use super::queues::Deadline;

impl Core {
    pub(crate) fn conn(&self, id: ConnId) -> Option<&Connection> {
        self.connections
            .get(id.index as usize)
            .filter(|c| c.generation == id.generation && !c.closing)
    }

    pub(crate) fn conn_mut(&mut self, id: ConnId) -> Option<&mut Connection> {
        self.connections
            .get_mut(id.index as usize)
            .filter(|c| c.generation == id.generation && !c.closing)
    }

    pub(crate) fn conn_id(&self, index: usize) -> ConnId {
        ConnId {
            index: index as u32,
            generation: self.connections[index].generation,
        }
    }

    pub(crate) fn connection_peer(&self, conn: ConnId) -> Option<PeerId> {
        self.conn(conn)
            .filter(|c| c.established)
            .and_then(|c| c.peer)
    }

    pub(crate) fn connection_remote_addr(&self, conn: ConnId) -> Option<Multiaddr> {
        self.conn(conn).map(|c| c.remote_addr.clone())
    }

    pub(crate) fn connection_is_outbound(&self, conn: ConnId) -> Option<bool> {
        self.conn(conn)
            .map(|c| matches!(c.origin, Origin::Dialed { .. }))
    }

    pub(crate) fn connections_to(&self, peer: &PeerId) -> Vec<ConnId> {
        self.connections
            .iter()
            .filter(|(_, c)| c.established && !c.closing && c.peer.as_ref() == Some(peer))
            .map(|(i, c)| ConnId {
                index: i as u32,
                generation: c.generation,
            })
            .collect()
    }

    /// The connection a stream or flow for `target` goes on: the one
    /// named, or the first established one to the peer, a direct one
    /// before a relayed one (once DCUtR found a direct path, new streams
    /// take it).
    pub(crate) fn target_conn(&self, target: StreamTarget) -> Result<ConnId, OpenStreamError> {
        match target {
            StreamTarget::Conn(c) => Ok(c),
            StreamTarget::Peer(p) => {
                let conns = self.connections_to(&p);
                conns
                    .iter()
                    .find(|c| self.conn(**c).is_some_and(|c| c.carrier.is_none()))
                    .or(conns.first())
                    .copied()
                    .ok_or(OpenStreamError::NotConnected(p))
            }
        }
    }

    pub(crate) fn insert_connection(
        &mut self,
        socket: SocketIndex,
        quic_handle: ConnectionHandle,
        quic: quinn_proto::Connection,
        origin: Origin,
    ) -> ConnId {
        let remote = canonical(quic.remote_address());
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let index = self.connections.insert(Connection {
            generation,
            transport: Transport::Quic(Box::new(quic)),
            quic_handle,
            socket,
            origin,
            peer: None,
            remote,
            remote_addr: quic_multiaddr(remote),
            established: false,
            streams: FxHashMap::default(),
            kept_by: Vec::new(),
            idle_since: None,
            closing: false,
            quic_deadline: None,
            queued_for_transmit: false,
            pending_flows: Vec::new(),
            idle_deadline_queued: false,
            negotiation_deadline_queued: None,
            carrier: None,
        });
        self.by_quic_handle.insert((socket, quic_handle), index);
        let id = self.conn_id(index);
        self.push_deadline(
            self.now + self.config.limits.handshake_timeout,
            Deadline::Handshake(id),
        );
        self.touch(index);
        id
    }

    /// Note that a connection's quinn-proto state changed: drain its events
    /// and transmits soon.
    pub(crate) fn touch(&mut self, index: usize) {
        self.touched.push(index);
        if let Some(c) = self.connections.get_mut(index)
            && !c.queued_for_transmit
        {
            c.queued_for_transmit = true;
            if c.carrier.is_some() {
                // A relayed connection's bytes go out through its carrier
                // stream (engine/relayed.rs), not through a driver socket.
            } else if matches!(c.transport, Transport::Tcp(_)) {
                // The driver asks TCP connections for bytes to write.
                let id = ConnId {
                    index: index as u32,
                    generation: c.generation,
                };
                self.tcp_ready.push_back(id);
            } else {
                self.transmit_queue.push_back(index);
            }
        }
    }

    /// Whether `conn` runs on our listen port: a QUIC connection on a
    /// listening socket, or a TCP connection our listener accepted (TCP
    /// dials leave from an ephemeral port; a relayed connection from the
    /// relay). What the remote observes of such a connection is what it
    /// would see of our listener.
    pub(crate) fn uses_listen_port(&self, conn: ConnId) -> Option<bool> {
        let c = self.conn(conn)?;
        if c.carrier.is_some() {
            return Some(false);
        }
        Some(match &c.transport {
            Transport::Quic(_) => self.sockets.get(c.socket.0).is_some_and(|s| s.listening),
            Transport::Tcp(t) => matches!(c.origin, Origin::Accepted) || t.from_listen_port,
        })
    }

    pub(crate) fn check_connection_limits(
        &self,
        peer: Option<PeerId>,
        ip: Option<IpAddr>,
    ) -> Result<(), ConnectionLimit> {
        let limits = &self.config.limits;
        // Connections draining after a close no longer count: a client that
        // reconnects quickly must not be refused for its own old ones.
        let live = self.connections.iter().filter(|(_, c)| !c.closing);
        if live.clone().count() >= limits.max_connections {
            return Err(ConnectionLimit::Total(limits.max_connections));
        }
        if let Some(peer) = peer
            && self.connections_to(&peer).len() >= limits.max_connections_per_peer
        {
            return Err(ConnectionLimit::PerPeer(limits.max_connections_per_peer));
        }
        if let Some(ip) = ip {
            let from_ip = live
                .clone()
                // A relayed connection has the relay's address: it says
                // nothing of how many connections that IP opened to us.
                .filter(|(_, c)| {
                    matches!(c.origin, Origin::Accepted)
                        && c.carrier.is_none()
                        && c.remote.ip() == ip
                })
                .count();
            if from_ip >= limits.max_connections_per_ip {
                return Err(ConnectionLimit::PerIp(limits.max_connections_per_ip));
            }
            let pending = live
                .filter(|(_, c)| matches!(c.origin, Origin::Accepted) && !c.established)
                .count();
            if pending >= limits.max_pending_handshakes {
                return Err(ConnectionLimit::PendingHandshakes(
                    limits.max_pending_handshakes,
                ));
            }
        }
        Ok(())
    }
}
