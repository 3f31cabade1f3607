//! Dialing: by address (`/p2p/` checked inside the TLS handshake) or by
//! PeerId through the peer store (and peer routing when it knows none).

use std::sync::Arc;

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use tracing::debug;

use crate::address::{parse_quic_addr, parse_tcp_addr};
use crate::connection::{Origin, Requester};
use crate::error::DialError;
use crate::ids::ConnId;
use crate::transport;

use super::core::Core;
use super::tcp::UpgradeRole;

/// Which local port a dial goes out from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DialPort {
    /// A listening socket's, so the peer sees (and can dial back) our
    /// listen port, and NATs map it as they map our listener (for TCP,
    /// when [`SwarmConfig::tcp_port_reuse`](crate::SwarmConfig) allows).
    Listening,
    /// A socket that does not listen: a NAT in front of the remote cannot
    /// let the dial in as the answer to an earlier packet from our listen
    /// port (AutoNAT's dial-back).
    Other,
}

impl Core {
    pub(crate) fn dial(
        &mut self,
        addr: &Multiaddr,
        force_new: bool,
        requester: Requester,
    ) -> Result<ConnId, DialError> {
        self.dial_from(
            addr,
            force_new,
            requester,
            DialPort::Listening,
            UpgradeRole::Dialer,
        )
    }

    /// `Context::dial_back`: a new connection to `addr`, from a port we do
    /// not listen on.
    pub(crate) fn dial_back(
        &mut self,
        addr: &Multiaddr,
        requester: Requester,
    ) -> Result<ConnId, DialError> {
        self.dial_from(addr, true, requester, DialPort::Other, UpgradeRole::Dialer)
    }

    /// `Context::dial_as_listener`: a new TCP connection from our listen
    /// port on which we take the listener's part.
    pub(crate) fn dial_as_listener(
        &mut self,
        addr: &Multiaddr,
        requester: Requester,
    ) -> Result<ConnId, DialError> {
        if parse_tcp_addr(addr).is_none() {
            return Err(DialError::UnsupportedAddress(addr.clone()));
        }
        self.dial_from(
            addr,
            true,
            requester,
            DialPort::Listening,
            UpgradeRole::Listener,
        )
    }

    fn dial_from(
        &mut self,
        addr: &Multiaddr,
        force_new: bool,
        requester: Requester,
        port: DialPort,
        role: UpgradeRole,
    ) -> Result<ConnId, DialError> {
        if self.shutting_down {
            return Err(DialError::ShuttingDown);
        }
        if crate::address::is_circuit(addr) {
            return self.dial_circuit(addr, requester);
        }
        if let Some(tcp) = parse_tcp_addr(addr) {
            if let Some(peer) = tcp.peer
                && !force_new
                && let Some(existing) = self.connections_to(&peer).first().copied()
            {
                if let Requester::Handle(reply) = &requester {
                    let _ = reply.send(Ok(existing));
                }
                return Ok(existing);
            }
            return self.dial_tcp(addr, tcp, requester, port == DialPort::Listening, role);
        }
        let quic =
            parse_quic_addr(addr).ok_or_else(|| DialError::UnsupportedAddress(addr.clone()))?;
        if let Some(peer) = quic.peer
            && !force_new
            && let Some(existing) = self.connections_to(&peer).first().copied()
        {
            if let Requester::Handle(reply) = &requester {
                let _ = reply.send(Ok(existing));
            }
            return Ok(existing);
        }
        self.check_connection_limits(quic.peer, None)?;
        let socket = match port {
            DialPort::Listening => self.socket_for(quic.socket)?,
            DialPort::Other => self.non_listening_socket_for(quic.socket)?,
        };
        let (client_config, observed) =
            transport::quic::client_config(&self.tls, quic.peer, self.transport.clone())
                .map_err(|e| DialError::Connect(Arc::new(e)))?;
        let endpoint = &mut self.sockets[socket.0].endpoint;
        let (handle, conn) = endpoint
            .connect(self.now, client_config, quic.socket, "l")
            .map_err(|e| DialError::Connect(Arc::new(e)))?;
        let id = self.insert_connection(
            socket,
            handle,
            conn,
            Origin::Dialed {
                expected: quic.peer,
                observed,
                requester,
            },
        );
        debug!(%id, %addr, "dialing");
        Ok(id)
    }

    pub(crate) fn dial_with_id(
        &mut self,
        peer: PeerId,
        force_new: bool,
        requester: Requester,
    ) -> Result<ConnId, DialError> {
        if self.shutting_down {
            return Err(DialError::ShuttingDown);
        }
        match self.dial_known_peer(peer, force_new, requester.clone()) {
            Err(DialError::NoAddresses(_)) => self.route_dial(peer, force_new, requester),
            other => other,
        }
    }

    /// `dial_with_id` without peer routing: an existing connection, or a
    /// dial to the first dialable address in the peer store.
    pub(crate) fn dial_known_peer(
        &mut self,
        peer: PeerId,
        force_new: bool,
        requester: Requester,
    ) -> Result<ConnId, DialError> {
        if !force_new && let Some(existing) = self.connections_to(&peer).first().copied() {
            if let Requester::Handle(reply) = &requester {
                let _ = reply.send(Ok(existing));
            }
            return Ok(existing);
        }
        let addrs = self.peer_store.addresses(&peer, self.now);
        // QUIC first (one handshake fewer), TCP otherwise.
        let addr = addrs
            .iter()
            .find(|a| parse_quic_addr(a).is_some())
            .or_else(|| addrs.iter().find(|a| parse_tcp_addr(a).is_some()))
            .cloned()
            .ok_or(DialError::NoAddresses(peer))?;
        let addr = addr.with(multiaddr::Protocol::P2p(peer));
        self.dial(&addr, force_new, requester)
    }
}
