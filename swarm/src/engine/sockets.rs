//! Sockets and listening: the UDP sockets (one QUIC endpoint each), binding
//! them through the driver's [`SocketBinder`], listen addresses, and the
//! choice of a socket to dial from.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use multiaddr::Multiaddr;
use rand::Rng;
use tracing::info;

use crate::address::{parse_quic_addr, parse_tcp_addr, quic_multiaddr, tcp_multiaddr};
use crate::connection::SocketIndex;
use crate::error::{DialError, ListenError};
use crate::events::SwarmEvent;

use super::core::Core;
use super::queues::Callback;
use crate::transport::quic::Socket;
use quinn_proto::Endpoint;

impl Core {
    pub(crate) fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.sockets
            .iter()
            .filter(|s| s.listening)
            .map(|s| quic_multiaddr(s.local))
            .chain(self.tcp_listeners.iter().map(|a| tcp_multiaddr(*a)))
            .collect()
    }

    pub(crate) fn bind_socket(
        &mut self,
        addr: SocketAddr,
        listening: bool,
    ) -> io::Result<SocketIndex> {
        let local = self.binder.bind(addr)?;
        // A seeded swarm seeds each endpoint (its connections' randomness
        // derives from it); otherwise quinn-proto seeds from the OS.
        let rng_seed = self.config.seed.map(|_| self.rng.random());
        let endpoint = Endpoint::new(
            self.endpoint_config.clone(),
            Some(self.server_config.clone()),
            true,
            rng_seed,
        );
        self.sockets.push(Socket {
            endpoint,
            local,
            listening,
        });
        Ok(SocketIndex(self.sockets.len() - 1))
    }

    pub(crate) fn listen(&mut self, addr: &Multiaddr) -> Result<Multiaddr, ListenError> {
        if self.shutting_down {
            return Err(ListenError::ShuttingDown);
        }
        if crate::address::is_circuit(addr) {
            return self.listen_circuit(addr);
        }
        if let Some(tcp) = parse_tcp_addr(addr).filter(|t| t.peer.is_none()) {
            return self.tcp_listen(addr, tcp.socket);
        }
        let quic = parse_quic_addr(addr)
            .filter(|q| q.peer.is_none())
            .ok_or_else(|| ListenError::UnsupportedAddress(addr.clone()))?;
        let index = self
            .bind_socket(quic.socket, true)
            .map_err(|source| ListenError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let resolved = quic_multiaddr(self.sockets[index.0].local);
        info!(addr = %resolved, "listening");
        self.publish(SwarmEvent::ListenAddr(resolved.clone()));
        self.callbacks
            .push_back(Callback::ListenAddr(resolved.clone()));
        Ok(resolved)
    }

    /// A socket to dial `remote` from: a listening one of the same family
    /// (so the peer sees our listen port), else a fresh ephemeral one.
    pub(crate) fn socket_for(&mut self, remote: SocketAddr) -> Result<SocketIndex, DialError> {
        let same_family = |s: &Socket| s.local.is_ipv4() == remote.is_ipv4();
        let loopback_ok = |s: &Socket| !s.local.ip().is_loopback() || remote.ip().is_loopback();
        if let Some(i) = self
            .sockets
            .iter()
            .position(|s| same_family(s) && loopback_ok(s))
        {
            return Ok(SocketIndex(i));
        }
        self.bind_ephemeral(remote)
    }

    /// A socket that does not listen, of `remote`'s family: the one an
    /// earlier call bound (so dial-backs cost one socket, not one each),
    /// else a fresh ephemeral one.
    pub(crate) fn non_listening_socket_for(
        &mut self,
        remote: SocketAddr,
    ) -> Result<SocketIndex, DialError> {
        if let Some(i) = self
            .sockets
            .iter()
            .position(|s| !s.listening && s.local.is_ipv4() == remote.is_ipv4())
        {
            return Ok(SocketIndex(i));
        }
        self.bind_ephemeral(remote)
    }

    /// Bind a non-listening socket on the unspecified address of
    /// `remote`'s family, port 0.
    fn bind_ephemeral(&mut self, remote: SocketAddr) -> Result<SocketIndex, DialError> {
        let any: IpAddr = if remote.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        self.bind_socket(SocketAddr::new(any, 0), false)
            .map_err(|e| DialError::NoSocket(Arc::new(e)))
    }
}
