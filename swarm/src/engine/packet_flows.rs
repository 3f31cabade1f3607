//! Packet flows: QUIC datagrams for one plugin protocol on one connection,
//! named by a control stream (see [`PacketFlow`] for the wire format).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tracing::trace;

use crate::connection::Connection;
use crate::detached_packet_flow::{DetachedPacketFlow, FlowShared};
use crate::error::{OpenStreamError, PacketError};
use crate::events::{PacketFlow, StreamTarget};
use crate::ids::{ConnId, PluginId, StreamId, StreamRef};
use crate::quic_varint;
use crate::stream::Owner;
use crate::stream::{Access, Opener};

use super::core::Core;
use super::queues::Callback;

impl Core {
    pub(crate) fn request_packet_flow(&mut self, conn: ConnId, protocol: &str, plugin: PluginId) {
        let established = self.conn(conn).is_some_and(|c| c.established);
        if established {
            if let Err(e) = self.open_packet_flow(StreamTarget::Conn(conn), protocol, plugin) {
                self.callbacks
                    .push_back(Callback::FlowClosed(plugin, conn, None, e));
            }
        } else if let Some(c) = self.conn_mut(conn) {
            c.pending_flows.push((plugin, protocol.to_string()));
        }
    }

    pub(crate) fn open_packet_flow(
        &mut self,
        target: StreamTarget,
        protocol: &str,
        plugin: PluginId,
    ) -> Result<PacketFlow, PacketError> {
        let conn_id = self.target_conn(target)?;
        let conn = self
            .conn_mut(conn_id)
            .ok_or(OpenStreamError::UnknownConnection(conn_id))?;
        let Some(quic) = conn.transport.quic() else {
            return Err(PacketError::NotQuic);
        };
        if conn.established && quic.datagrams().max_size().is_none() {
            return Err(PacketError::PeerUnsupported);
        }
        let sref =
            self.open_stream_inner(StreamTarget::Conn(conn_id), protocol, Opener::Flow(plugin))?;
        Ok(PacketFlow(sref))
    }

    /// The connection of an open flow that can still send (its control
    /// stream negotiated and not finished).
    pub(crate) fn flow_conn(&mut self, flow: PacketFlow) -> Result<&mut Connection, PacketError> {
        let conn = self.conn_mut(flow.0.conn).ok_or(PacketError::FlowClosed)?;
        match conn.streams.get(&flow.0.id) {
            Some(s) if s.check(flow.0, Access::FlowControl).is_ok() && s.send_open() => Ok(conn),
            _ => Err(PacketError::FlowClosed),
        }
    }

    pub(crate) fn max_packet_size(&mut self, flow: PacketFlow) -> Result<usize, PacketError> {
        let limit = self.config.max_packet_size;
        let conn = self.flow_conn(flow)?;
        let header = quic_varint::len(flow.0.id.0);
        let max = conn
            .transport
            .quic()
            .ok_or(PacketError::NotQuic)?
            .datagrams()
            .max_size()
            .ok_or(PacketError::PeerUnsupported)?;
        Ok(max.saturating_sub(header).min(limit))
    }

    pub(crate) fn send_packet(&mut self, flow: PacketFlow, data: &[u8]) -> Result<(), PacketError> {
        let max = self.max_packet_size(flow)?;
        if data.len() > max {
            return Err(PacketError::TooLarge {
                size: data.len(),
                max,
            });
        }
        let conn = self.flow_conn(flow)?;
        let id = flow.0.id.0;
        let mut buf = BytesMut::with_capacity(quic_varint::len(id) + data.len());
        quic_varint::encode(id, &mut buf);
        buf.extend_from_slice(data);
        // `drop = true`: under pressure the oldest queued datagram goes; a
        // game tick or position update is stale by then anyway.
        let quic = conn.transport.quic().ok_or(PacketError::NotQuic)?;
        match quic.datagrams().send(buf.freeze(), true) {
            Ok(()) => {}
            Err(quinn_proto::SendDatagramError::TooLarge) => {
                return Err(PacketError::TooLarge {
                    size: data.len(),
                    max,
                });
            }
            Err(_) => return Err(PacketError::PeerUnsupported),
        }
        self.touch(flow.0.conn.index as usize);
        Ok(())
    }

    pub(crate) fn send_raw_datagram(
        &mut self,
        conn: ConnId,
        data: Bytes,
    ) -> Result<(), PacketError> {
        let c = self.conn_mut(conn).ok_or(PacketError::FlowClosed)?;
        c.transport
            .quic()
            .ok_or(PacketError::NotQuic)?
            .datagrams()
            .send(data, true)
            .map_err(|_| PacketError::PeerUnsupported)?;
        self.touch(conn.index as usize);
        Ok(())
    }

    pub(crate) fn close_packet_flow(&mut self, flow: PacketFlow) -> Result<(), PacketError> {
        self.flow_conn(flow)?;
        // FIN says "no more packets from us"; STOP_SENDING says "none
        // wanted": the peer's flow closes either way, and packets still in
        // flight to us are dropped and counted.
        self.finish_as(flow.0, Access::FlowControl)
            .map_err(|_| PacketError::FlowClosed)?;
        let _ = self.stop_sending_as(flow.0, 0, Access::FlowControl);
        Ok(())
    }

    pub(crate) fn detach_packet_flow(
        &mut self,
        flow: PacketFlow,
    ) -> Result<DetachedPacketFlow, PacketError> {
        let max = self.max_packet_size(flow)?;
        let notifier = self.notifier.clone();
        let conn = self.flow_conn(flow)?;
        let stream = conn
            .streams
            .get_mut(&flow.0.id)
            .ok_or(PacketError::FlowClosed)?;
        let Owner::FlowControl { thread, .. } = &mut stream.owner else {
            return Err(PacketError::FlowClosed);
        };
        if thread.is_some() {
            return Err(PacketError::FlowClosed);
        }
        let shared = FlowShared::new(flow, max, notifier);
        *thread = Some(shared.clone());
        self.handed_to_threads += 1;
        Ok(DetachedPacketFlow::new(shared))
    }

    /// Send what a flow's thread queued, refresh its size limit, and close
    /// the flow when the handle is gone.
    pub(crate) fn pump_packet_thread(&mut self, flow: PacketFlow, shared: Arc<FlowShared>) {
        let max = self.max_packet_size(flow);
        let (outbox, dropped_handle) = {
            let mut st = shared.lock();
            if let Ok(max) = max {
                st.max_size = max;
            }
            (std::mem::take(&mut st.outbox), st.handle_dropped)
        };
        for packet in outbox {
            if let Err(e) = self.send_packet(flow, &packet) {
                shared.close(e);
                break;
            }
        }
        if dropped_handle {
            let _ = self.close_packet_flow(flow);
        }
    }

    /// Hand received datagrams to their flows' plugins; drop and count the rest.
    pub(crate) fn receive_datagrams(&mut self, index: usize) {
        let conn_id = self.conn_id(index);
        let conn = &mut self.connections[index];
        while let Some(mut datagram) = conn.transport.quic().and_then(|q| q.datagrams().recv()) {
            let target = quic_varint::decode(&mut datagram).and_then(|id| {
                let sid = StreamId(id);
                let stream = conn.streams.get(&sid)?;
                match &stream.owner {
                    Owner::FlowControl { plugin, thread } if stream.recv_open() => {
                        Some((*plugin, sid, thread.clone()))
                    }
                    _ => None,
                }
            });
            match target {
                Some((_, _, Some(thread))) => thread.deliver(datagram),
                Some((plugin, sid, None)) => {
                    let flow = PacketFlow(StreamRef {
                        conn: conn_id,
                        id: sid,
                    });
                    self.callbacks
                        .push_back(Callback::PacketData(plugin, flow, datagram));
                }
                None => {
                    self.dropped_datagrams += 1;
                    trace!(conn = %conn_id, "dropped a datagram for no open flow");
                }
            }
        }
    }
}
