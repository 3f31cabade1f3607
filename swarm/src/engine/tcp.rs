//! TCP connections in the engine: listening and dialing through the
//! driver's sockets, the upgrade (multistream-select, Noise or TLS,
//! Yamux), and the Yamux event pump into the stream layer's entry points
//! (`accept_streams`, `read_stream`, `on_writable`, `on_finished`,
//! `on_stopped`), as `quic_events.rs` does for QUIC.
//!
//! The driver owns the sockets; the engine asks it to connect
//! ([`Core::poll_tcp_connect`]), is told of accepted and connected
//! sockets, received bytes and closes, and hands it bytes to write
//! ([`Core::tcp_outbound`]). A connection leaves the table when the
//! driver reports its socket closed.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use multiaddr::Multiaddr;
use quinn_proto::ConnectionHandle;
use rand::Rng;
use rustc_hash::FxHashMap;
use tracing::{debug, info};

use crate::address::{TcpAddr, canonical, tcp_multiaddr};
use crate::config::TcpSecurity;
use crate::connection::{Connection, Origin, Requester, SocketIndex};
use crate::error::{DialError, ListenError, cause};
use crate::events::SwarmEvent;
use crate::ids::{ConnId, StreamId};
use crate::tcp_upgrade::{DialSecurity, TcpUpgrade, UpgradeError};
use crate::tls::ObservedPeer;
use crate::transport::Transport;
use crate::transport::tcp::{TcpConn, TcpProgress};
use crate::yamux::Event;

use super::core::Core;
use super::end_reason::EndReason;
use super::queues::{Callback, Deadline};

/// What the driver must do with a TCP connection's socket now.
#[derive(Debug, Default)]
pub struct TcpOutbound {
    /// Bytes to write, in order.
    pub data: Bytes,
    /// After writing them, close the socket and report it with
    /// [`Swarm::feed_tcp_closed`](crate::Swarm::feed_tcp_closed).
    pub close: bool,
}

/// A socket the driver must connect for a dialed TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpConnect {
    /// The connection; report the connect with
    /// [`Swarm::feed_tcp_connected`](crate::Swarm::feed_tcp_connected).
    pub conn: ConnId,
    /// Where to connect.
    pub remote: SocketAddr,
    /// Bind the socket here first, with `SO_REUSEADDR` and `SO_REUSEPORT`
    /// (it is one of our TCP listen addresses), so that the remote sees
    /// our listen port; if that fails, connect from any port unless
    /// `local_only`.
    pub local: Option<SocketAddr>,
    /// The dial is only of use from `local` (a simultaneous open): if
    /// `local` cannot be used, fail it rather than connect from another
    /// port.
    pub local_only: bool,
}

/// Which part a TCP dial takes in the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpgradeRole {
    /// The usual: we propose the security protocol and the muxer.
    Dialer,
    /// The remote's simultaneous dial met ours (DCUtR's TCP hole punch):
    /// one connection, on which we answer as a listener would.
    Listener,
}

/// Placeholders for the QUIC-only fields of a TCP connection's entry.
const NO_QUIC_HANDLE: ConnectionHandle = ConnectionHandle(usize::MAX);
const NO_SOCKET: SocketIndex = SocketIndex(usize::MAX);

impl Core {
    /// Listen on a TCP address through the driver's binder.
    pub(crate) fn tcp_listen(
        &mut self,
        addr: &Multiaddr,
        socket: SocketAddr,
    ) -> Result<Multiaddr, ListenError> {
        let local = self
            .binder
            .bind_tcp(socket)
            .map_err(|source| ListenError::Bind {
                addr: addr.clone(),
                source,
            })?;
        self.tcp_listeners.push(local);
        let resolved = tcp_multiaddr(local);
        info!(addr = %resolved, "listening");
        self.publish(SwarmEvent::ListenAddr(resolved.clone()));
        self.callbacks
            .push_back(Callback::ListenAddr(resolved.clone()));
        Ok(resolved)
    }

    /// Dial a TCP address: the connection waits for the driver's connect.
    /// With `from_listen_port` (and port reuse configured) the socket is
    /// bound to a listen address first.
    pub(crate) fn dial_tcp(
        &mut self,
        addr: &Multiaddr,
        tcp: TcpAddr,
        requester: Requester,
        from_listen_port: bool,
        role: UpgradeRole,
    ) -> Result<ConnId, DialError> {
        if !self.binder.tcp_supported() {
            return Err(DialError::UnsupportedAddress(addr.clone()));
        }
        self.check_connection_limits(tcp.peer, None)?;
        let (upgrade, observed) = match role {
            UpgradeRole::Dialer => self.dialer_upgrade(tcp.peer)?,
            UpgradeRole::Listener => (self.listener_upgrade(), ObservedPeer::default()),
        };
        let conn = TcpConn::dialing(upgrade, self.now);
        let origin = Origin::Dialed {
            expected: tcp.peer,
            observed,
            requester,
        };
        let local = if from_listen_port && self.config.tcp_port_reuse {
            self.tcp_listen_addr_toward(tcp.socket)
        } else {
            None
        };
        let local_only = role == UpgradeRole::Listener;
        if local_only && local.is_none() {
            // Both ends answering as listeners would wait for each other.
            return Err(DialError::Connect(cause(
                "a simultaneous open needs a TCP listen address (and port reuse) to dial from",
            )));
        }
        let id = self.insert_tcp_connection(tcp.socket, conn, origin);
        self.tcp_connects.push_back(TcpConnect {
            conn: id,
            remote: tcp.socket,
            local,
            local_only,
        });
        debug!(%id, %addr, ?local, ?role, "dialing over TCP");
        Ok(id)
    }

    /// The listen address a dial to `remote` goes out from: one of the same
    /// address family, loopback only toward loopback (a socket bound to
    /// 127.0.0.1 cannot reach other hosts, nor one bound to a public
    /// address reach 127.0.0.1).
    fn tcp_listen_addr_toward(&self, remote: SocketAddr) -> Option<SocketAddr> {
        let remote = canonical(remote);
        self.tcp_listeners
            .iter()
            .find(|l| {
                l.is_ipv4() == remote.is_ipv4()
                    && (l.ip().is_unspecified()
                        || l.ip().is_loopback() == remote.ip().is_loopback())
            })
            .copied()
    }

    /// The next socket the driver must connect, for a dialed connection.
    pub(crate) fn poll_tcp_connect(&mut self) -> Option<TcpConnect> {
        while let Some(connect) = self.tcp_connects.pop_front() {
            if self.conn(connect.conn).is_some() {
                return Some(connect);
            }
        }
        None
    }

    /// The driver accepted a socket: a connection if the limits allow it.
    pub(crate) fn tcp_accepted(&mut self, remote: SocketAddr) -> Option<ConnId> {
        if self.shutting_down {
            return None;
        }
        let remote = canonical(remote);
        if let Err(limit) = self.check_connection_limits(None, Some(remote.ip())) {
            debug!(%remote, %limit, "refusing TCP connection");
            return None;
        }
        let conn = TcpConn::accepted(self.listener_upgrade(), self.now);
        Some(self.insert_tcp_connection(remote, conn, Origin::Accepted))
    }

    /// The dialing side of the upgrade, proposing the configured security
    /// protocol, and where the TLS verifier records the remote's PeerId.
    pub(super) fn dialer_upgrade(
        &mut self,
        expected: Option<libp2p_identity::PeerId>,
    ) -> Result<(TcpUpgrade, ObservedPeer), DialError> {
        let (security, observed) = match self.config.tcp_security {
            TcpSecurity::Noise => (DialSecurity::Noise, ObservedPeer::default()),
            TcpSecurity::Tls => {
                let (config, observed) = self
                    .tls
                    .client_config(expected)
                    .map_err(|e| DialError::Connect(Arc::new(e)))?;
                let security = DialSecurity::Tls {
                    config,
                    observed: observed.clone(),
                };
                (security, observed)
            }
        };
        let upgrade = TcpUpgrade::dialer(
            &self.config.keypair,
            expected,
            security,
            self.config.yamux,
            self.rng.random(),
        );
        Ok((upgrade, observed))
    }

    /// The listening side of the upgrade (Noise, and TLS when its server
    /// config can be built).
    pub(super) fn listener_upgrade(&mut self) -> TcpUpgrade {
        let tls = match &self.tcp_tls_server {
            Some(c) => Some(c.clone()),
            None => {
                let config = self.tls.server_config().ok();
                self.tcp_tls_server.clone_from(&config);
                config
            }
        };
        TcpUpgrade::listener(
            &self.config.keypair,
            tls,
            self.config.yamux,
            self.rng.random(),
        )
    }

    /// The next TCP connection that may have bytes to write or must close.
    pub(crate) fn poll_tcp_ready(&mut self) -> Option<ConnId> {
        while let Some(id) = self.tcp_ready.pop_front() {
            if let Some(c) = self.connections.get_mut(id.index as usize)
                && c.generation == id.generation
            {
                c.queued_for_transmit = false;
                return Some(id);
            }
        }
        None
    }

    /// The driver's connect finished, from `local`.
    pub(crate) fn tcp_connected(&mut self, id: ConnId, local: SocketAddr) {
        let listen_port = self.tcp_listeners.iter().any(|l| l.port() == local.port());
        if let Some(t) = self.conn_mut(id).and_then(|c| c.transport.tcp()) {
            t.on_connected(listen_port);
            self.touch(id.index as usize);
        }
    }

    /// Bytes from a connection's socket.
    pub(crate) fn tcp_data(&mut self, id: ConnId, data: &[u8]) {
        let now = self.now;
        let index = id.index as usize;
        let Some(t) = self.conn_mut(id).and_then(|c| c.transport.tcp()) else {
            return;
        };
        match t.feed(data, now) {
            Ok(TcpProgress::Pending) => {}
            Ok(TcpProgress::Established(peer)) => {
                // A dial that answered as a listener did not check the
                // PeerId inside the handshake.
                if let Origin::Dialed {
                    expected: Some(expected),
                    ..
                } = self.connections[index].origin
                    && expected != peer
                {
                    let refused = DialError::WrongPeerId {
                        expected,
                        actual: peer,
                    };
                    self.end_connection(index, EndReason::Refused(refused));
                    self.touch(index);
                    return;
                }
                self.on_established(index, peer);
                let at = self.now + self.config.keep_alive_interval;
                self.push_deadline(at, Deadline::TcpKeepAlive(id));
                // Yamux frames that came with the upgrade's last message
                // (see `SecuredConnection::new`), on the established
                // connection.
                if self.conn(id).is_some_and(|c| c.established && !c.closing) {
                    self.tcp_data(id, &[]);
                }
            }
            Err(e) => self.tcp_failed(index, e),
        }
        self.touch(index);
    }

    /// Send a Yamux ping on an open TCP connection, as QUIC's PINGs do, so
    /// NATs and the peer's idle timers keep it; then schedule the next.
    pub(crate) fn tcp_keep_alive(&mut self, id: ConnId) {
        let now = self.now;
        let at = now + self.config.keep_alive_interval;
        let Some(t) = self.conn_mut(id).and_then(|c| c.transport.tcp()) else {
            return;
        };
        t.ping(now);
        self.touch(id.index as usize);
        self.push_deadline(at, Deadline::TcpKeepAlive(id));
    }

    /// The upgrade or the session failed: the connection ends.
    fn tcp_failed(&mut self, index: usize, e: UpgradeError) {
        let established = self.connections[index].established;
        debug!(conn = %self.conn_id(index), error = %e, "TCP connection failed");
        let reason = if established {
            EndReason::Lost(e.to_string())
        } else if let Some((expected, actual)) = e.wrong_peer_id() {
            EndReason::Refused(DialError::WrongPeerId { expected, actual })
        } else {
            EndReason::Refused(DialError::Handshake(cause(&e.to_string())))
        };
        self.end_connection(index, reason);
    }

    /// The driver closed the socket (the remote closed it, an error, or
    /// after our close): the connection ends and leaves the table.
    pub(crate) fn tcp_closed(&mut self, id: ConnId, error: Option<String>) {
        let index = id.index as usize;
        match self.connections.get(index) {
            Some(c) if c.generation == id.generation => {}
            _ => return,
        }
        if !self.connections[index].closing {
            let text = error.unwrap_or_else(|| "connection closed by the remote".into());
            let conn = &mut self.connections[index];
            let connecting = conn.transport.tcp().is_some_and(|t| t.is_connecting());
            let reason = if conn.established {
                EndReason::Lost(text)
            } else if connecting {
                EndReason::Refused(DialError::Connect(cause(&text)))
            } else {
                EndReason::Refused(DialError::Handshake(cause(&text)))
            };
            self.end_connection(index, reason);
        }
        self.connections.remove(index);
        debug!(%id, "TCP connection removed");
    }

    /// What the driver must write (and whether to close) for `id`.
    pub(crate) fn tcp_outbound(&mut self, id: ConnId) -> TcpOutbound {
        let index = id.index as usize;
        let Some(conn) = self.connections.get_mut(index) else {
            return TcpOutbound {
                data: Bytes::new(),
                close: true,
            };
        };
        if conn.generation != id.generation {
            return TcpOutbound {
                data: Bytes::new(),
                close: true,
            };
        }
        let Some(t) = conn.transport.tcp() else {
            return TcpOutbound::default();
        };
        t.set_now(self.now);
        let close = t.close_requested;
        match t.take_outbound() {
            Ok(data) => {
                if !data.is_empty() {
                    // Taking bytes frees session buffer room: writers wake
                    // (and the driver asks again).
                    self.touch(index);
                }
                TcpOutbound { data, close }
            }
            Err(e) => {
                self.tcp_failed(index, e);
                TcpOutbound {
                    data: Bytes::new(),
                    close: true,
                }
            }
        }
    }

    /// Drain a TCP connection's Yamux events into the stream layer.
    pub(crate) fn process_tcp_connection(&mut self, index: usize) {
        // Bounded: each event is handled once; handling may queue more
        // (window updates), which the next drain pass picks up.
        for _ in 0..4096 {
            let Some(conn) = self.connections.get_mut(index) else {
                return;
            };
            let Some(t) = conn.transport.tcp() else {
                return;
            };
            t.set_now(self.now);
            let finished = t.take_finished();
            let event = t.poll_event();
            for sid in finished {
                self.on_finished(index, sid);
            }
            let Some(event) = event else {
                return;
            };
            if !self.connections.contains(index) || self.connections[index].closing {
                continue;
            }
            match event {
                Event::InboundStream => self.accept_streams(index),
                Event::Readable(id) => self.read_stream(index, StreamId(u64::from(id))),
                Event::Writable(id) => self.on_writable(index, StreamId(u64::from(id))),
                Event::Reset(id) => {
                    let sid = StreamId(u64::from(id));
                    self.on_stopped(index, sid, 0);
                    self.read_stream(index, sid);
                }
                Event::StreamFailed(e) => {
                    debug!(conn = %self.conn_id(index), error = %e, "yamux stream failed")
                }
                Event::GoAway(code) => {
                    debug!(conn = %self.conn_id(index), code, "remote sent go-away")
                }
                Event::Rtt(rtt) => tracing::trace!(conn = %self.conn_id(index), ?rtt, "yamux rtt"),
            }
        }
        // More events than one pass handles: come back.
        self.touched.push(index);
    }

    fn insert_tcp_connection(
        &mut self,
        remote: SocketAddr,
        tcp: TcpConn,
        origin: Origin,
    ) -> ConnId {
        self.insert_upgrading_connection(remote, tcp_multiaddr(remote), tcp, origin, None)
    }

    /// A connection that runs the TCP upgrade, over a driver socket or
    /// (with `carrier`) over a stream of another connection.
    pub(super) fn insert_upgrading_connection(
        &mut self,
        remote: SocketAddr,
        remote_addr: Multiaddr,
        tcp: TcpConn,
        origin: Origin,
        carrier: Option<crate::ids::StreamRef>,
    ) -> ConnId {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let index = self.connections.insert(Connection {
            generation,
            transport: Transport::Tcp(Box::new(tcp)),
            quic_handle: NO_QUIC_HANDLE,
            socket: NO_SOCKET,
            origin,
            peer: None,
            remote,
            remote_addr,
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
            carrier,
        });
        let id = self.conn_id(index);
        // An accepted connection has its multistream header to send.
        self.touch(index);
        // Covers the connect and the whole upgrade.
        self.push_deadline(
            self.now + self.config.limits.handshake_timeout,
            Deadline::Handshake(id),
        );
        id
    }
}
