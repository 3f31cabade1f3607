//! Datagrams out: endpoint responses first, then each connection in turn
//! (rotating, so one busy connection shares the socket).

use quinn_proto::Transmit;

use super::core::Core;

impl Core {
    pub(crate) fn poll_transmit(
        &mut self,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<(usize, Transmit)> {
        if let Some((socket, t, data)) = self.endpoint_transmits.pop_front() {
            buf.clear();
            buf.extend_from_slice(&data[..t.size]);
            return Some((socket.0, t));
        }
        while let Some(&index) = self.transmit_queue.front() {
            let Some(conn) = self.connections.get_mut(index) else {
                self.transmit_queue.pop_front();
                continue;
            };
            buf.clear();
            // TCP connections send through the driver's sockets instead
            // (`poll_tcp_outbound`).
            if let Some(t) = conn
                .transport
                .quic()
                .and_then(|q| q.poll_transmit(self.now, max_datagrams.max(1), buf))
            {
                // Sending changes quinn-proto's timers (loss detection).
                self.touched.push(index);
                let socket = conn.socket.0;
                // Rotate so that one busy connection shares the socket.
                self.transmit_queue.rotate_left(1);
                return Some((socket, t));
            }
            conn.queued_for_transmit = false;
            self.transmit_queue.pop_front();
            // Polling can produce events (e.g. a handshake timing out).
            self.touched.push(index);
        }
        self.drain_touched();
        None
    }
}
