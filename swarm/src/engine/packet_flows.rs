//! Packet flows: QUIC datagrams for one plugin protocol on one connection,
//! named by a control stream (see [`PacketFlow`] for the wire format).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use quinn_proto::{StreamId, VarInt};
use tracing::trace;

use crate::connection::Connection;
use crate::detached_packet_flow::{DetachedPacketFlow, FlowShared};
use crate::error::{OpenStreamError, PacketError};
use crate::events::{PacketFlow, StreamTarget};
use crate::ids::{ConnId, PluginId, StreamRef};
use crate::quic_varint;
use crate::stream::Owner;

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
        let conn_id = match target {
            StreamTarget::Conn(c) => c,
            StreamTarget::Peer(p) => *self
                .connections_to(&p)
                .first()
                .ok_or(OpenStreamError::NotConnected(p))?,
        };
        let conn = self
            .conn_mut(conn_id)
            .ok_or(OpenStreamError::UnknownConnection(conn_id))?;
        if conn.established && conn.quic.datagrams().max_size().is_none() {
            return Err(PacketError::PeerUnsupported);
        }
        let sref = self.open_stream(StreamTarget::Conn(conn_id), protocol, Some(plugin))?;
        if let Some(s) = self.connections[conn_id.index as usize]
            .streams
            .get_mut(&sref.id)
        {
            s.packet_flow = true;
        }
        Ok(PacketFlow(sref))
    }

    /// The connection of an open flow whose control stream can still send.
    pub(crate) fn flow_conn(&mut self, flow: PacketFlow) -> Result<&mut Connection, PacketError> {
        let conn = self.conn_mut(flow.0.conn).ok_or(PacketError::FlowClosed)?;
        match conn.streams.get(&flow.0.id) {
            Some(s)
                if s.packet_flow
                    && matches!(s.owner, Owner::Plugin(_))
                    && !s.send_done
                    && !s.send_finishing => {}
            _ => return Err(PacketError::FlowClosed),
        }
        Ok(conn)
    }

    pub(crate) fn max_packet_size(&mut self, flow: PacketFlow) -> Result<usize, PacketError> {
        let limit = self.config.max_packet_size;
        let conn = self.flow_conn(flow)?;
        let header = quic_varint::len(u64::from(flow.0.id));
        let max = conn
            .quic
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
        let id = u64::from(flow.0.id);
        let mut buf = BytesMut::with_capacity(quic_varint::len(id) + data.len());
        quic_varint::encode(id, &mut buf);
        buf.extend_from_slice(data);
        // `drop = true`: under pressure the oldest queued datagram goes; a
        // game tick or position update is stale by then anyway.
        match conn.quic.datagrams().send(buf.freeze(), true) {
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
        c.quic
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
        self.finish_owned(flow.0)
            .map_err(|_| PacketError::FlowClosed)?;
        let _ = self.stop_sending_owned(flow.0, 0);
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
        if stream.packet_thread.is_some() {
            return Err(PacketError::FlowClosed);
        }
        let shared = FlowShared::new(flow, max, notifier);
        stream.packet_thread = Some(shared.clone());
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
        while let Some(mut datagram) = conn.quic.datagrams().recv() {
            let target = quic_varint::decode(&mut datagram).and_then(|id| {
                let sid = StreamId::from(VarInt::from_u64(id).ok()?);
                let stream = conn.streams.get(&sid)?;
                match stream.owner {
                    Owner::Plugin(p) if stream.packet_flow && !stream.recv_done => {
                        Some((p, sid, stream.packet_thread.clone()))
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
