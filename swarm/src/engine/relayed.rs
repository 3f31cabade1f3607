//! Relayed connections: a connection whose bytes ride a stream of another
//! connection (a circuit relay's), upgraded as TCP is (multistream-select,
//! Noise or TLS, Yamux), so that plugins use it like any other.
//!
//! The carrier stream's owner becomes [`Owner::Carrier`]. What the stream
//! reads is fed to the inner connection (`tcp_data`, in `receive.rs`);
//! what the inner connection queues is written to the stream as far as its
//! send window takes ([`Core::pump_relayed_out`], again when the stream
//! turns writable), so back-pressure crosses the relay both ways: the
//! inner Yamux windows bound what the remote may send, the carrier's send
//! window bounds what we buffer. When either side ends, so does the other.

use std::net::SocketAddr;

use bytes::Bytes;
use multiaddr::Multiaddr;
use tracing::debug;

use crate::connection::{Origin, Requester};
use crate::error::{RelayConnectionError, StreamError};
use crate::events::RelayedRole;
use crate::ids::{ConnId, PluginId, StreamRef};
use crate::stream::{Access, Owner, RecvState, SendState};
use crate::transport::tcp::TcpConn;

use super::core::Core;
use super::queues::Callback;

/// Output batches a relayed connection hands its carrier per pass; more
/// waits for the next pass (fairness with the rest of the engine).
const MAX_BATCHES_PER_PASS: usize = 64;

impl Core {
    /// `Context::relay_connection`: `stream` (negotiated, owned by
    /// `plugin`) becomes the carrier of a new connection to the peer at
    /// the far end of the relay; `initial` are its first bytes, which the
    /// plugin already read.
    pub(crate) fn relay_connection(
        &mut self,
        plugin: PluginId,
        sref: StreamRef,
        role: RelayedRole,
        remote_addr: Multiaddr,
        initial: Bytes,
    ) -> Result<ConnId, RelayConnectionError> {
        let (_, stream) = self.stream_for(sref, Access::PluginStream)?;
        match stream.owner {
            Owner::Plugin(p) if p == plugin => {}
            Owner::Negotiating { .. } => return Err(RelayConnectionError::Negotiating(sref)),
            _ => return Err(StreamError::UnknownStream(sref).into()),
        }
        let expected = match role {
            RelayedRole::Dialer { expected } => Some(expected),
            RelayedRole::Listener => None,
        };
        self.check_connection_limits(expected, None)?;
        let (upgrade, origin) = match role {
            RelayedRole::Dialer { expected } => {
                let (upgrade, observed) = self
                    .dialer_upgrade(Some(expected))
                    .map_err(RelayConnectionError::Start)?;
                let origin = Origin::Dialed {
                    expected: Some(expected),
                    observed,
                    requester: Requester::Plugin(plugin),
                };
                (upgrade, origin)
            }
            RelayedRole::Listener => (self.listener_upgrade(), Origin::Accepted),
        };
        // The relay's socket address: the IP limits are about direct
        // connections, and this one is reached through the relay.
        let remote: SocketAddr = self.connections[sref.conn.index as usize].remote;
        // The carrier is already connected: the upgrade starts at once.
        let conn = TcpConn::accepted(upgrade, self.now);
        let inner = self.insert_upgrading_connection(remote, remote_addr, conn, origin, Some(sref));
        let (_, stream) = self.stream_for(sref, Access::Any)?;
        stream.owner = Owner::Carrier {
            inner,
            pending: Bytes::new(),
        };
        stream.read_paused = false;
        stream.queue_paused = false;
        debug!(%inner, carrier = %sref, "relayed connection over a stream");
        // What arrived right behind the stream's negotiation was queued for
        // the plugin before it handed the stream over: it is the relayed
        // connection's first bytes (e.g. the remote's multistream header).
        let (early, finished) = self.take_queued_stream_input(sref);
        for bytes in std::iter::once(initial)
            .chain(early)
            .filter(|b| !b.is_empty())
        {
            self.tcp_data(inner, &bytes);
        }
        if finished {
            self.relayed_lost(inner, "the relay stream finished".into());
            return Ok(inner);
        }
        // Bytes may also wait in the transport for the new connection.
        self.read_stream(sref.conn.index as usize, sref.id);
        Ok(inner)
    }

    /// Take the stream data and end that are queued as plugin callbacks for
    /// `sref`, in order.
    fn take_queued_stream_input(&mut self, sref: StreamRef) -> (Vec<Bytes>, bool) {
        let mut data = Vec::new();
        let mut finished = false;
        self.callbacks.retain(|cb| match cb {
            Callback::Data(_, s, bytes) if *s == sref => {
                data.push(bytes.clone());
                false
            }
            Callback::Finished(_, s) if *s == sref => {
                finished = true;
                false
            }
            _ => true,
        });
        (data, finished)
    }

    /// Whether `conn` is carried by another connection's stream.
    pub(crate) fn is_relayed(&self, conn: ConnId) -> bool {
        self.conn(conn).is_some_and(|c| c.carrier.is_some())
    }

    /// Write what relayed connection `index` queued to its carrier stream,
    /// as far as the stream's send window takes it; close the carrier
    /// after the connection's last bytes when it closed.
    pub(crate) fn pump_relayed_out(&mut self, index: usize) {
        let Some(carrier) = self.connections.get(index).and_then(|c| c.carrier) else {
            return;
        };
        let inner = self.conn_id(index);
        for _ in 0..MAX_BATCHES_PER_PASS {
            let Some(conn) = self.conn_mut(carrier.conn) else {
                self.relayed_lost(inner, "the relay connection closed".into());
                return;
            };
            let Some(stream) = conn.streams.get_mut(&carrier.id) else {
                self.relayed_lost(inner, "the relay stream ended".into());
                return;
            };
            // What the plugin queued before the hand-over goes first.
            match stream.write_unsent(&mut conn.transport, carrier.id) {
                Ok(true) => {}
                Ok(false) => return,
                Err(_) => {
                    self.fail_stream(carrier, StreamError::SendClosed);
                    return;
                }
            }
            let Owner::Carrier { pending, .. } = &mut stream.owner else {
                return;
            };
            let mut data = std::mem::take(pending);
            let mut close = false;
            if data.is_empty() {
                let out = self.tcp_outbound(inner);
                data = out.data;
                close = out.close;
            }
            if data.is_empty() && !close {
                return;
            }
            let carrier_index = carrier.conn.index as usize;
            let Some(conn) = self.conn_mut(carrier.conn) else {
                continue;
            };
            if !conn.streams.contains_key(&carrier.id) {
                continue;
            }
            if !data.is_empty() {
                if let Err(e) = conn.transport.write_bytes(carrier.id, &mut data) {
                    debug!(%inner, carrier = %carrier, ?e, "relay stream refused the bytes");
                    self.fail_stream(carrier, StreamError::SendClosed);
                    return;
                }
                self.touch(carrier_index);
                if !data.is_empty() {
                    // The window is full: the rest goes when it is writable.
                    if let Some(Owner::Carrier { pending, .. }) = self
                        .conn_mut(carrier.conn)
                        .and_then(|c| c.streams.get_mut(&carrier.id))
                        .map(|s| &mut s.owner)
                    {
                        *pending = data;
                    }
                    return;
                }
                continue;
            }
            if close {
                self.end_carrier(carrier);
                self.tcp_closed(inner, None);
                return;
            }
        }
        // More than one pass takes: come back.
        self.touched.push(index);
    }

    /// The carrier of `inner` ended (finished, reset, or its connection
    /// closed): the relayed connection ends with `reason` and leaves.
    pub(crate) fn relayed_lost(&mut self, inner: ConnId, reason: String) {
        if self.conn(inner).is_some() {
            debug!(%inner, %reason, "relayed connection lost its carrier");
            self.tcp_closed(inner, Some(reason));
        }
    }

    /// The relayed connection over `carrier` is over: finish the stream
    /// after what it carried, stop reading it, and let it go.
    fn end_carrier(&mut self, carrier: StreamRef) {
        let index = carrier.conn.index as usize;
        let Some(conn) = self.conn_mut(carrier.conn) else {
            return;
        };
        let Some(stream) = conn.streams.get_mut(&carrier.id) else {
            return;
        };
        stream.owner = Owner::Draining;
        if stream.send_open() {
            stream.send = match conn.transport.finish(carrier.id) {
                Ok(()) => SendState::Finishing,
                Err(_) => SendState::Closed,
            };
        }
        if stream.recv_open() {
            conn.transport.stop(carrier.id, 0);
            stream.recv = RecvState::Closed;
        }
        self.touch(index);
        self.maybe_remove_stream(index, carrier.id);
    }
}
