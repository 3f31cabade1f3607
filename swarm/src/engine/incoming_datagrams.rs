//! Datagrams in: feed one UDP datagram to its socket's QUIC endpoint, and
//! decide about a new inbound connection there: accept it, make the sender
//! prove its address with a Retry under handshake pressure, or refuse it.

use std::net::{IpAddr, SocketAddr};

use bytes::BytesMut;
use quinn_proto::{DatagramEvent, EcnCodepoint};
use tracing::debug;

use crate::address::canonical;
use crate::connection::{Origin, SocketIndex};

use super::core::Core;

/// One UDP datagram as the driver received it, for [`Swarm::feed_datagrams`](crate::Swarm::feed_datagrams).
#[derive(Debug)]
pub struct ReceivedDatagram {
    /// Who sent it.
    pub remote: SocketAddr,
    /// The local address it was sent to, where the socket reports it.
    pub local_ip: Option<IpAddr>,
    /// Its ECN bits.
    pub ecn: Option<EcnCodepoint>,
    /// The payload (one QUIC datagram; GRO batches are split before).
    pub data: BytesMut,
}

impl Core {
    pub(crate) fn feed_endpoint(
        &mut self,
        socket: SocketIndex,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        ecn: Option<EcnCodepoint>,
        data: BytesMut,
    ) {
        let Some(s) = self.sockets.get_mut(socket.0) else {
            return;
        };
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let event = s
            .endpoint
            .handle(self.now, remote, local_ip, ecn, data, &mut buf);
        match event {
            None => {}
            Some(DatagramEvent::ConnectionEvent(handle, event)) => {
                if let Some(&index) = self.by_quic_handle.get(&(socket, handle)) {
                    if let Some(q) = self.connections[index].transport.quic() {
                        q.handle_event(event);
                    }
                    self.touch(index);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                let remote = canonical(incoming.remote_address());
                let refusal = if self.shutting_down {
                    Some("shutting down".to_string())
                } else {
                    self.check_connection_limits(None, Some(remote.ip()))
                        .err()
                        .map(|e| e.to_string())
                };
                // Under handshake pressure, make unvalidated senders prove
                // their address with a Retry first, so spoofed Initials
                // cannot hold the pending-handshake slots.
                let pending = self
                    .connections
                    .iter()
                    .filter(|(_, c)| matches!(c.origin, Origin::Accepted) && !c.established)
                    .count();
                let pressure = pending * 2 >= self.config.limits.max_pending_handshakes;
                let endpoint = &mut self.sockets[socket.0].endpoint;
                if refusal.is_none()
                    && pressure
                    && !incoming.remote_address_validated()
                    && incoming.may_retry()
                {
                    match endpoint.retry(incoming, &mut buf) {
                        Ok(t) => self.endpoint_transmits.push_back((socket, t, buf)),
                        Err(e) => endpoint.ignore(e.into_incoming()),
                    }
                    return;
                }
                if let Some(reason) = refusal {
                    debug!(%remote, %reason, "refusing inbound connection");
                    let t = endpoint.refuse(incoming, &mut buf);
                    self.endpoint_transmits.push_back((socket, t, buf));
                    return;
                }
                match endpoint.accept(incoming, self.now, &mut buf, None) {
                    Ok((handle, conn)) => {
                        let id = self.insert_connection(socket, handle, conn, Origin::Accepted);
                        debug!(%id, %remote, "accepted inbound connection");
                    }
                    Err(e) => {
                        debug!(%remote, error = %e.cause, "inbound connection failed");
                        if let Some(t) = e.response {
                            self.endpoint_transmits.push_back((socket, t, buf));
                            return;
                        }
                    }
                }
            }
            Some(DatagramEvent::Response(t)) => {
                self.endpoint_transmits.push_back((socket, t, buf));
                return;
            }
        }
        self.scratch = buf;
    }
}
