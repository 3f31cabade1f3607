//! The network running: each datagram routed (filter, dark switches,
//! partitions, the link), each turn's nodes polled and their datagrams
//! sent, the virtual clock advanced to the next deadline or delivery, and
//! the runs bounded by time, turns or a condition.

use std::cmp::Reverse;
use std::fmt::Write as _;
use std::hash::Hasher;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::warn;

use super::node::in_node;
use super::{Fate, HashWriter, Outcome, TraceEntry, TracedEvent, VirtualNet};
use crate::{Swarm, SwarmEvent};

impl VirtualNet {
    /// Put one datagram on the network: route, filter, dark switches,
    /// partitions, link.
    pub(super) fn send(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        let size = data.len();
        let fate = self.route(from, to, data);
        if let Some(trace) = &mut self.trace {
            trace.push(TraceEntry {
                at: self.now - self.start,
                from,
                to,
                size,
                fate,
            });
        }
    }

    fn route(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) -> Fate {
        self.stats.sent += 1;
        let Some(&to_index) = self.routes.get(&to) else {
            self.stats.unroutable += 1;
            return Fate::Unroutable;
        };
        if let Some(filter) = &mut self.filter
            && !filter(from, to, &data)
        {
            self.stats.filtered += 1;
            return Fate::Filtered;
        }
        // Every sender is a node (datagrams only come from `flush`).
        let from_index = self.routes[&from];
        let (sender, receiver) = (self.slot(from_index), self.slot(to_index));
        if self.dark || sender.dark || receiver.dark {
            self.stats.dark += 1;
            return Fate::Dark;
        }
        if sender.side != receiver.side {
            self.stats.partitioned += 1;
            return Fate::Partitioned;
        }
        let mut deliveries = std::mem::take(&mut self.deliveries);
        self.link.carry(
            self.now,
            from_index,
            to_index,
            data,
            &mut deliveries,
            &mut self.stats,
        );
        let fate = if deliveries.is_empty() {
            Fate::Lost
        } else {
            Fate::Sent
        };
        for (delay, data) in deliveries.drain(..) {
            self.seq += 1;
            self.in_flight
                .insert((self.now + delay, self.seq), (to_index, from, data));
        }
        self.deliveries = deliveries;
        fate
    }

    /// Step 1 of a turn: drain the outgoing datagrams of every node marked
    /// for polling (in index order) onto the network, note their timeouts
    /// and trace their swarms' events.
    fn flush(&mut self) {
        let now = self.now;
        let woken: Vec<usize> =
            std::mem::take(&mut *self.woken.lock().unwrap_or_else(|p| p.into_inner()));
        for n in woken {
            self.mark(n);
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        let mut out = std::mem::take(&mut self.outgoing);
        // Reused, so that a test counting a node's allocations does not see
        // the network's own buffers grow inside that node's calls.
        let mut sent = std::mem::take(&mut self.sent);
        let mut events = std::mem::take(&mut self.events);
        let at = now - self.start;
        for &i in &dirty {
            let Some(slot) = self.slots[i].as_mut() else {
                continue;
            };
            slot.dirty = false;
            let buf = &mut self.buf;
            let node = &mut slot.node;
            in_node(i, || node.poll_transmits(now, buf, &mut sent));
            out.extend(sent.drain(..).map(|(to, data)| (slot.addr, to, data)));
            if !self.uses_threads && slot.node.uses_threads() {
                self.uses_threads = true;
                warn!(
                    node = i,
                    "a node handed a stream to a thread: this run is no longer replayable"
                );
            }
            let timeout = in_node(i, || slot.node.poll_timeout());
            if timeout != slot.timeout {
                slot.timeout = timeout;
                if let Some(t) = timeout {
                    self.timeouts.push(Reverse((t, i)));
                }
            }
            slot.node.take_events(&mut events);
            for event in events.drain(..) {
                self.hash_event(at, i, &event);
            }
        }
        dirty.clear();
        self.dirty = dirty;
        for (from, to, data) in out.drain(..) {
            self.send(from, to, data);
        }
        self.outgoing = out;
        self.sent = sent;
        self.events = events;
    }

    /// Add one swarm event of node `node` at `at` (since the start) to
    /// the trace hash, and to the event trace if one is kept.
    pub(super) fn hash_event(&mut self, at: Duration, node: usize, event: &SwarmEvent) {
        self.hasher.write_u128(at.as_nanos());
        self.hasher.write_usize(node);
        // The hash takes the event's Debug text as a byte stream, written
        // in pieces: no String unless the trace keeps it.
        match &mut self.event_trace {
            Some(trace) => {
                let event = format!("{event:?}");
                self.hasher.write(event.as_bytes());
                trace.push(TracedEvent { at, node, event });
            }
            None => {
                let _ = write!(HashWriter(&mut self.hasher), "{event:?}");
            }
        }
    }

    /// The earliest current entry of the timeout heap (stale ones go).
    fn next_timeout(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, n))) = self.timeouts.peek() {
            match self.slots.get(n).and_then(Option::as_ref) {
                Some(slot) if slot.timeout == Some(at) => return Some(at),
                _ => {
                    self.timeouts.pop();
                }
            }
        }
        None
    }

    /// Run turns (see the module docs) until `done` holds, at most `limit`
    /// more virtual time.
    ///
    /// # Panics
    ///
    /// After [`VirtualNet::max_turns`] turns, or past the
    /// [`VirtualNet::wall_limit`].
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&mut VirtualNet) -> bool,
    ) -> Outcome {
        let deadline = self.now + limit;
        for _ in 0..self.max_turns {
            self.flush();
            if done(self) {
                return Outcome::Done;
            }
            if !self.dirty.is_empty() {
                // `done` may have acted on a node (dialed, opened a
                // stream): send what it queued now, before time moves.
                self.flush();
            }
            if let Some(wall) = self.wall_limit {
                let ran = self.wall_start.elapsed();
                assert!(ran < wall, "wall-clock guard: the network ran {ran:?}");
            }
            let next_arrival = self.in_flight.keys().next().map(|k| k.0);
            let Some(next) = next_arrival.into_iter().chain(self.next_timeout()).min() else {
                return Outcome::Quiet;
            };
            if next > deadline {
                self.now = self.now.max(deadline);
                return Outcome::VirtualTimeout;
            }
            // `max`: a timeout in the past does not move the clock back.
            self.now = self.now.max(next);
            match self.window_end() {
                Some(end) => self.run_window(end, deadline),
                None => self.step(),
            }
        }
        panic!(
            "the network did not settle in {} turns: a node spins",
            self.max_turns
        );
    }

    /// Steps 4 and 5 of a turn: deliver what is due, then fire the due
    /// timeouts of the nodes that got datagrams or whose timeout is due,
    /// in index order.
    fn step(&mut self) {
        let now = self.now;
        while let Some((_, to, from, data)) = self.pop_arrival(|at| at <= now) {
            let Some(slot) = self.slots[to].as_mut() else {
                continue; // `pop_arrival` returns live nodes' datagrams only
            };
            let node = &mut slot.node;
            in_node(to, || node.feed_datagram(now, from, &data));
            self.mark(to);
        }
        let mut candidates = std::mem::take(&mut self.candidates);
        candidates.extend_from_slice(&self.dirty);
        self.pop_due_timeouts(|at| at <= now, &mut candidates);
        candidates.sort_unstable();
        candidates.dedup();
        for &i in &candidates {
            let Some(slot) = self.slots[i].as_mut() else {
                continue;
            };
            let node = &mut slot.node;
            in_node(i, || {
                if node.poll_timeout().is_some_and(|t| t <= now) {
                    node.feed_timeout(now);
                }
            });
            // Its heap entry may have been popped: the next flush re-reads
            // the timeout and queues it again.
            slot.timeout = None;
            self.mark(i);
        }
        candidates.clear();
        self.candidates = candidates;
    }

    /// Take the next datagram in flight if `due(arrival)`, as (arrival,
    /// node, sender, bytes), and count it delivered; one to a node removed
    /// while it was in flight is counted unroutable and skipped.
    pub(super) fn pop_arrival(
        &mut self,
        due: impl Fn(Instant) -> bool,
    ) -> Option<(Instant, usize, SocketAddr, Vec<u8>)> {
        loop {
            let entry = self.in_flight.first_entry()?;
            let at = entry.key().0;
            if !due(at) {
                return None;
            }
            let (to, from, data) = entry.remove();
            if self.slots[to].is_none() {
                self.stats.unroutable += 1;
                continue;
            }
            self.stats.delivered += 1;
            self.stats.bytes_delivered += data.len() as u64;
            return Some((at, to, from, data));
        }
    }

    /// Pop the timeout-heap entries with `due(at)`, pushing onto `nodes`
    /// each node whose current timeout it is. A stale entry (the node's
    /// timeout moved since) polls nobody.
    pub(super) fn pop_due_timeouts(
        &mut self,
        due: impl Fn(Instant) -> bool,
        nodes: &mut Vec<usize>,
    ) {
        while let Some(&Reverse((at, n))) = self.timeouts.peek() {
            if !due(at) {
                break;
            }
            self.timeouts.pop();
            if self.slots[n]
                .as_ref()
                .is_some_and(|s| s.timeout == Some(at))
            {
                nodes.push(n);
            }
        }
    }

    /// Let `d` of virtual time pass with the network running; the clock
    /// ends at exactly `d` later.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(d, |net| net.now >= until);
        // A quiet network stops the clock early; the time passes anyway.
        self.now = self.now.max(until);
    }

    /// Shut every swarm down with `code` and run until each is shut down
    /// (its connections closed and drained), at most `limit`.
    pub fn shutdown_swarms(&mut self, code: u32, limit: Duration) -> Outcome {
        let swarms: Vec<usize> = (0..self.len())
            .filter(|&n| self.contains(n) && self.node_mut::<Swarm>(n).is_some())
            .collect();
        for &n in &swarms {
            self.swarm(n).shutdown(code);
        }
        self.run_until(limit, |net| {
            swarms.iter().all(|&n| net.swarm(n).is_shut_down())
        })
    }
}
