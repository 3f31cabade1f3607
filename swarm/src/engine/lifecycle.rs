//! Connection lifecycle: established (PeerId from the certificate, per-peer
//! limit), ended (every stream dies, the right party hears why), closed
//! locally, shutdown, keep-alive and the idle clock.

use std::time::Duration;

use bytes::Bytes;
use quinn_proto::VarInt;
use tracing::{debug, info, warn};

use crate::connection::{Origin, Requester};
use crate::error::{ConnectionError, DialError, StreamError, cause};
use crate::events::{StreamTarget, SwarmEvent};
use crate::ids::{ConnId, PluginId, StreamId, StreamRef};
use crate::limits::ConnectionLimit;
use crate::stream::Stream;

use super::core::Core;
use super::end_reason::EndReason;
use super::queues::{Callback, Deadline};
use crate::codes::CLOSE_CODE_LIMIT;

/// How long addresses learned by dialing stay in the peer store.
const DIALED_ADDRESS_TTL: Duration = Duration::from_secs(3600);

impl Core {
    /// QUIC's handshake finished: the PeerId is the certificate's.
    pub(crate) fn on_connected(&mut self, index: usize) {
        let id = self.conn_id(index);
        let conn = &mut self.connections[index];
        let peer = conn
            .transport
            .quic()
            .and_then(|q| q.crypto_session().peer_identity())
            .and_then(|any| {
                any.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                    .ok()
            })
            .and_then(|chain| self.tls.verified_peer_id(&chain).ok());
        let Some(peer) = peer else {
            // The verifiers already checked the certificate; this would be a bug.
            warn!(%id, "handshake finished without a usable libp2p certificate");
            self.end_connection(
                index,
                EndReason::Refused(DialError::Handshake(cause("no libp2p certificate"))),
            );
            return;
        };
        self.on_established(index, peer);
    }

    /// A connection's handshake proved `peer` (QUIC's TLS, or TCP's Noise
    /// or TLS): apply the per-peer limit, then tell everyone.
    pub(crate) fn on_established(&mut self, index: usize, peer: libp2p_identity::PeerId) {
        let id = self.conn_id(index);
        let conn = &mut self.connections[index];
        conn.peer = Some(peer);
        let dialer = matches!(conn.origin, Origin::Dialed { .. });
        let per_peer = self.config.limits.max_connections_per_peer;
        if self.connections_to(&peer).len() >= per_peer {
            let limit = ConnectionLimit::PerPeer(per_peer);
            debug!(%id, %peer, %limit, "closing connection over the per-peer limit");
            self.end_connection(index, EndReason::Refused(DialError::Limit(limit)));
            return;
        }
        let conn = &mut self.connections[index];
        conn.established = true;
        let remote_addr = conn.remote_addr.clone();
        self.peer_store.add_connection(peer, id);
        if dialer {
            self.peer_store
                .add_address(peer, remote_addr.clone(), DIALED_ADDRESS_TTL, self.now);
        }
        info!(%id, %peer, remote = %remote_addr, dialer, "connection established");
        if let Origin::Dialed {
            requester: Requester::Handle(reply),
            ..
        } = &self.connections[index].origin
        {
            let _ = reply.send(Ok(id));
        }
        self.callbacks.push_back(Callback::NewConnection(id, peer));
        for (plugin, protocol) in std::mem::take(&mut self.connections[index].pending_flows) {
            if let Err(e) = self.open_packet_flow(StreamTarget::Conn(id), &protocol, plugin) {
                self.callbacks
                    .push_back(Callback::FlowClosed(plugin, id, None, e));
            }
        }
        self.publish(SwarmEvent::ConnectionEstablished {
            conn: id,
            peer,
            remote_addr,
            dialer,
        });
        self.update_idle(index);
    }

    /// Run the end-of-connection callbacks once, and make handles stale.
    pub(crate) fn end_connection(&mut self, index: usize, reason: EndReason) {
        let id = self.conn_id(index);
        let conn = &mut self.connections[index];
        if conn.closing {
            return;
        }
        conn.closing = true;
        if let Some(q) = conn.transport.quic()
            && !q.is_closed()
        {
            let (code, why): (u32, &[u8]) = match &reason {
                EndReason::Refused(DialError::Limit(_)) => (CLOSE_CODE_LIMIT, b"limit"),
                _ => (0, b""),
            };
            q.close(
                self.now,
                VarInt::from_u32(code),
                Bytes::copy_from_slice(why),
            );
        }
        if let Some(t) = conn.transport.tcp() {
            t.close();
        }
        let text = reason.to_string();
        // Every stream dies with the connection.
        let streams: Vec<(StreamId, Stream)> = conn.streams.drain().collect();
        for (sid, stream) in streams {
            let sref = StreamRef { conn: id, id: sid };
            self.stream_died(sref, stream, StreamError::ConnectionClosed(text.clone()));
        }
        let conn = &self.connections[index];
        if conn.established {
            let peer = conn.peer.expect("established connections have a peer");
            self.peer_store.remove_connection(peer, id);
            info!(%id, %peer, reason = %text, "connection closed");
            self.callbacks
                .push_back(Callback::ClosedConnection(id, peer));
            self.publish(SwarmEvent::ConnectionClosed {
                conn: id,
                peer,
                reason: text,
            });
        } else if let Origin::Dialed {
            expected,
            observed,
            requester,
        } = &conn.origin
        {
            let error = reason.into_dial_error(*expected, observed.get());
            info!(%id, %error, "dial failed");
            match requester {
                Requester::Plugin(p) => {
                    self.callbacks
                        .push_back(Callback::DialFailure(*p, id, error.clone()));
                }
                Requester::PluginAs(p, announced) => {
                    self.callbacks
                        .push_back(Callback::DialFailure(*p, *announced, error.clone()));
                }
                Requester::Handle(reply) => {
                    let _ = reply.send(Err(error.clone()));
                }
                Requester::Internal => {}
            }
            self.publish(SwarmEvent::DialFailed { conn: id, error });
        } else {
            debug!(%id, reason = %text, "inbound connection failed");
            self.publish(SwarmEvent::IncomingConnectionFailed {
                remote_addr: conn.remote_addr.clone(),
                reason: text,
            });
        }
        self.touch(index);
    }

    pub(crate) fn close_connection(
        &mut self,
        id: ConnId,
        code: u32,
        reason: &[u8],
    ) -> Result<(), ConnectionError> {
        let now = self.now;
        let conn = self
            .conn_mut(id)
            .ok_or(ConnectionError::UnknownConnection(id))?;
        if let Some(q) = conn.transport.quic() {
            q.close(now, VarInt::from_u32(code), Bytes::copy_from_slice(reason));
        }
        self.end_connection(id.index as usize, EndReason::Local(code));
        Ok(())
    }

    pub(crate) fn shutdown(&mut self, code: u32) {
        if self.shutting_down {
            return;
        }
        info!("shutting down");
        self.shutting_down = true;
        self.fail_all_routed_dials();
        let ids: Vec<ConnId> = self
            .connections
            .iter()
            .filter(|(_, c)| !c.closing)
            .map(|(i, c)| ConnId {
                index: i as u32,
                generation: c.generation,
            })
            .collect();
        for id in ids {
            let _ = self.close_connection(id, code, b"shutdown");
        }
    }

    pub(crate) fn keep_alive(
        &mut self,
        id: ConnId,
        plugin: PluginId,
        keep: bool,
    ) -> Result<(), ConnectionError> {
        let conn = self
            .conn_mut(id)
            .ok_or(ConnectionError::UnknownConnection(id))?;
        conn.kept_by.retain(|p| *p != plugin);
        if keep {
            conn.kept_by.push(plugin);
        }
        self.update_idle(id.index as usize);
        Ok(())
    }

    /// Start or stop the idle clock after streams or keepers changed.
    pub(crate) fn update_idle(&mut self, index: usize) {
        let idle_after = self.config.idle_connection_timeout;
        let now = self.now;
        let Some(conn) = self.connections.get_mut(index) else {
            return;
        };
        if conn.closing || !conn.is_idle() {
            conn.idle_since = None;
            return;
        }
        if conn.idle_since.is_none() {
            conn.idle_since = Some(now);
            // One queued entry per connection: when it fires it re-queues
            // itself if the connection went busy and idle again meanwhile.
            if !conn.idle_deadline_queued {
                conn.idle_deadline_queued = true;
                let id = self.conn_id(index);
                self.push_deadline(now + idle_after, Deadline::Idle(id));
            }
        }
    }
}
