//! The quinn-proto event pump (the QUIC side of the transport seam): drain
//! the events of every touched connection (endpoint bookkeeping, handshake,
//! datagrams) and re-arm its timer; stream events go to the stream layer's
//! entry points (`accept_streams`, `read_stream`, `on_writable`,
//! `on_finished`, `on_stopped`).

use quinn_proto::{Dir, Event, StreamEvent, VarInt};
use tracing::trace;

use crate::ids::ConnId;

use super::core::Core;
use super::end_reason::EndReason;
use super::queues::Deadline;
use crate::transport::quic::our_id;

impl Core {
    /// Drain events of every touched connection, until none is left.
    pub(crate) fn drain_touched(&mut self) {
        // Bounded: each pass handles what the previous one touched; events
        // cannot cascade forever because quinn-proto's queues are finite.
        for _ in 0..64 {
            if self.touched.is_empty() {
                return;
            }
            let mut touched = std::mem::take(&mut self.touched);
            touched.sort_unstable();
            touched.dedup();
            for index in touched {
                self.process_connection(index);
            }
        }
    }

    pub(crate) fn process_connection(&mut self, index: usize) {
        let Some(conn) = self.connections.get_mut(index) else {
            return;
        };
        let Some(quic) = conn.transport.quic() else {
            // TCP: Yamux events instead (engine/tcp.rs); a relayed
            // connection's output then goes to its carrier stream.
            self.process_tcp_connection(index);
            self.pump_relayed_out(index);
            return;
        };
        let _ = quic;
        // Endpoint <-> connection bookkeeping (CIDs, drain).
        while let Some(ev) = conn.transport.quic().and_then(|q| q.poll_endpoint_events()) {
            let socket = conn.socket;
            if let Some(back) = self.sockets[socket.0]
                .endpoint
                .handle_event(conn.quic_handle, ev)
                && let Some(q) = conn.transport.quic()
            {
                q.handle_event(back);
            }
        }
        while let Some(ev) = self.connections[index]
            .transport
            .quic()
            .and_then(|q| q.poll())
        {
            self.handle_event(index, ev);
            if !self.connections.contains(index) {
                return;
            }
        }
        let conn = &mut self.connections[index];
        if conn.transport.quic_ref().is_some_and(|q| q.is_drained()) {
            let id = ConnId {
                index: index as u32,
                generation: conn.generation,
            };
            if !conn.closing {
                self.end_connection(index, EndReason::Lost("drained".into()));
            }
            let conn = self.connections.remove(index);
            self.by_quic_handle.remove(&(conn.socket, conn.quic_handle));
            trace!(%id, "connection drained and removed");
            return;
        }
        let next = conn.transport.quic().and_then(|q| q.poll_timeout());
        let id = ConnId {
            index: index as u32,
            generation: conn.generation,
        };
        // Queue a heap entry only when the deadline moves earlier (or none is
        // queued). A later deadline is found when the queued entry fires:
        // `quic_deadline` then no longer matches and is re-queued from here.
        match (next, conn.quic_deadline) {
            (Some(at), queued) if queued.is_none_or(|q| at < q) => {
                conn.quic_deadline = Some(at);
                self.push_deadline(at, Deadline::Quic(id));
            }
            (None, _) => conn.quic_deadline = None,
            _ => {}
        }
    }

    pub(crate) fn handle_event(&mut self, index: usize, ev: Event) {
        match ev {
            Event::HandshakeDataReady | Event::DatagramsUnblocked => {}
            Event::DatagramReceived => self.receive_datagrams(index),
            Event::Connected => self.on_connected(index),
            Event::ConnectionLost { reason } => {
                self.end_connection(index, EndReason::Quic(reason));
            }
            Event::Stream(StreamEvent::Opened { dir: Dir::Bi }) => self.accept_streams(index),
            Event::Stream(StreamEvent::Opened { dir: Dir::Uni }) => {
                // libp2p uses bidirectional streams only; refuse the rest.
                if let Some(quic) = self.connections[index].transport.quic() {
                    while let Some(id) = quic.streams().accept(Dir::Uni) {
                        let _ = quic.recv_stream(id).stop(VarInt::from_u32(0));
                    }
                }
            }
            // From here on the stream layer's entry points, the same for
            // every transport.
            Event::Stream(StreamEvent::Readable { id }) => self.read_stream(index, our_id(id)),
            Event::Stream(StreamEvent::Writable { id }) => self.on_writable(index, our_id(id)),
            Event::Stream(StreamEvent::Finished { id }) => self.on_finished(index, our_id(id)),
            Event::Stream(StreamEvent::Stopped { id, error_code }) => {
                self.on_stopped(index, our_id(id), error_code.into_inner())
            }
            Event::Stream(StreamEvent::Available { .. }) => {}
        }
    }
}
