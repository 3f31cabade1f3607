//! Deadlines and timers: one heap of instants for QUIC timeouts, plugin
//! timers, handshake, negotiation and idle deadlines. Entries are checked
//! when popped, so stale ones are skipped instead of searched for.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::error::StreamError;
use crate::ids::{PluginId, StreamId, StreamRef, TimerId};
use crate::stream::Stream;

use super::core::Core;
use super::end_reason::EndReason;
use super::queues::{Callback, Deadline};
use crate::codes::CLOSE_CODE_IDLE;

impl Core {
    pub(crate) fn push_deadline(&mut self, at: Instant, what: Deadline) {
        self.deadlines.push(Reverse((at, what)));
    }

    pub(crate) fn set_timer(&mut self, plugin: PluginId, delay: Duration, token: u64) -> TimerId {
        let id = self.next_timer;
        self.next_timer += 1;
        self.timers.insert(id, (plugin, token));
        self.push_deadline(self.now + delay, Deadline::Timer(id));
        TimerId(id)
    }

    pub(crate) fn cancel_timer(&mut self, timer: TimerId) {
        self.timers.remove(&timer.0);
    }

    pub(crate) fn fire_deadlines(&mut self) {
        while let Some(Reverse((at, what))) = self.deadlines.peek().copied() {
            if at > self.now {
                break;
            }
            self.deadlines.pop();
            match what {
                Deadline::Timer(id) => {
                    if let Some((plugin, token)) = self.timers.remove(&id) {
                        self.callbacks.push_back(Callback::Timer(plugin, token));
                    }
                }
                Deadline::Quic(id) => {
                    let now = self.now;
                    if let Some(c) = self.connections.get_mut(id.index as usize)
                        && c.generation == id.generation
                        && c.quic_deadline == Some(at)
                    {
                        c.quic_deadline = None;
                        if let Some(q) = c.transport.quic() {
                            q.handle_timeout(now);
                        }
                        self.touch(id.index as usize);
                    }
                }
                Deadline::Handshake(id) => {
                    if let Some(c) = self.conn(id)
                        && !c.established
                    {
                        debug!(%id, "handshake timed out");
                        self.end_connection(id.index as usize, EndReason::HandshakeTimeout);
                    }
                }
                Deadline::Negotiation(id) => {
                    let now = self.now;
                    let Some(c) = self.conn_mut(id) else {
                        continue;
                    };
                    c.negotiation_deadline_queued = None;
                    let late: Vec<StreamId> = c
                        .streams
                        .iter()
                        .filter(|(_, s)| s.negotiation_deadline().is_some_and(|d| d <= now))
                        .map(|(sid, _)| *sid)
                        .collect();
                    for sid in late {
                        let stream = StreamRef { conn: id, id: sid };
                        debug!(%stream, "multistream negotiation timed out");
                        self.fail_stream(stream, StreamError::NegotiationTimeout);
                    }
                    self.arm_negotiation_deadline(id.index as usize);
                }
                Deadline::PeerRouting(serial) => self.peer_routing_timed_out(serial),
                Deadline::CircuitDial(dial) => {
                    self.fail_circuit_dial(dial, crate::error::DialError::Timeout)
                }
                Deadline::TcpKeepAlive(id) => self.tcp_keep_alive(id),
                Deadline::Idle(id) => {
                    let idle_after = self.config.idle_connection_timeout;
                    let now = self.now;
                    let Some(c) = self.conn_mut(id) else {
                        continue;
                    };
                    c.idle_deadline_queued = false;
                    let Some(since) = c.idle_since.filter(|_| c.is_idle()) else {
                        continue;
                    };
                    if since + idle_after <= now {
                        debug!(%id, "closing idle connection");
                        let _ = self.close_connection(id, CLOSE_CODE_IDLE, b"idle");
                    } else {
                        // Idle again since an earlier entry was queued.
                        c.idle_deadline_queued = true;
                        self.push_deadline(since + idle_after, Deadline::Idle(id));
                    }
                }
            }
        }
        // Popped entries leave capacity behind; give it back after a burst.
        let cap = self.deadlines.capacity();
        if cap > 4096 && self.deadlines.len() * 4 < cap {
            self.deadlines.shrink_to(self.deadlines.len() * 2);
        }
    }

    /// Queue the earliest negotiation deadline of a connection's streams,
    /// unless an entry at or before it is already queued.
    pub(crate) fn arm_negotiation_deadline(&mut self, index: usize) {
        let Some(conn) = self.connections.get_mut(index) else {
            return;
        };
        let Some(next) = conn
            .streams
            .values()
            .filter_map(Stream::negotiation_deadline)
            .min()
        else {
            return;
        };
        if conn.negotiation_deadline_queued.is_none_or(|q| next < q) {
            conn.negotiation_deadline_queued = Some(next);
            let id = self.conn_id(index);
            self.push_deadline(next, Deadline::Negotiation(id));
        }
    }
}
