//! Lookahead windows: the turns of a stretch of virtual time shorter than
//! the link's smallest delay, run node by node on several threads.
//!
//! No datagram sent at time `t` arrives before `t + min_delay`
//! ([`LinkModel::min_delay`](super::LinkModel::min_delay)), so within
//! `[now, now + min_delay)` every datagram a node will receive is already
//! in flight, and what one node does cannot reach another. Each node
//! touched in the window therefore runs its own turns (deliveries, due
//! timeouts, then its flush) on its own, in time order, while other nodes
//! run theirs on other threads. What the nodes sent and recorded is then
//! put on the network in the order sequential turns would have: by time,
//! then turn round at that time, then node index. The link's randomness is
//! drawn in that order and events are hashed in it, so a windowed run is
//! the same for any number of threads, and the same as a sequential one
//! except that a `run_until` condition is checked once per window rather
//! than once per turn.

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use tracing::warn;

use super::node::in_node;
use super::{Slot, VirtualNet};
use crate::SwarmEvent;

/// Nodes per thread below which a window's nodes run on fewer threads (on
/// the calling one when under twice this): handing out a few nodes costs
/// more than it saves.
const MIN_NODES_FOR_THREADS: usize = 8;

/// One node's part of a window: what arrives for it, its timeouts, and
/// what it did.
struct NodeWindow<'a> {
    index: usize,
    slot: &'a mut Slot,
    /// Datagrams due in the window, in arrival order (ties in send order).
    arrivals: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    /// What each of its turns produced.
    turns: Vec<TurnOutput>,
    /// When its last turn ran.
    last: Option<Instant>,
    uses_threads: bool,
}

/// What one turn of one node produced: its datagrams and events, with the
/// time and round that place it among other nodes' turns.
struct TurnOutput {
    at: Instant,
    node: usize,
    /// The node's address, the datagrams' source.
    from: SocketAddr,
    /// 0 for the node's first turn at `at`, 1 for a second one (a timeout
    /// it asked for at or before `at`), and so on.
    round: u32,
    sent: Vec<(SocketAddr, Vec<u8>)>,
    events: Vec<SwarmEvent>,
}

impl NodeWindow<'_> {
    /// Run the node's turns before `end` (and at most at `deadline`),
    /// as the network's `step` and `flush` would; `buf` is the scratch
    /// space of [`Node::poll_transmits`](super::Node::poll_transmits).
    fn run(&mut self, end: Instant, deadline: Instant, max_turns: u64, buf: &mut Vec<u8>) {
        let i = self.index;
        let mut round = 0;
        for _ in 0..max_turns {
            let next_arrival = self.arrivals.front().map(|a| a.0);
            // Only the node's current timeout counts, as in `step`.
            let next_due = self.slot.timeout;
            let Some(next) = next_arrival.into_iter().chain(next_due).min() else {
                return;
            };
            // As the network's clock: a timeout in the past runs now.
            let at = self.last.map_or(next, |l| l.max(next));
            if at >= end || at > deadline {
                return;
            }
            round = if self.last == Some(at) { round + 1 } else { 0 };
            self.last = Some(at);
            let node = &mut self.slot.node;
            while self.arrivals.front().is_some_and(|a| a.0 <= at) {
                let (_, from, data) = self.arrivals.pop_front().expect("peeked");
                in_node(i, || node.feed_datagram(at, from, &data));
            }
            in_node(i, || {
                if node.poll_timeout().is_some_and(|t| t <= at) {
                    node.feed_timeout(at);
                }
            });
            // The flush of this turn.
            let mut sent = Vec::new();
            in_node(i, || node.poll_transmits(at, buf, &mut sent));
            self.uses_threads |= node.uses_threads();
            self.slot.timeout = in_node(i, || node.poll_timeout());
            let mut events = Vec::new();
            node.take_events(&mut events);
            if !sent.is_empty() || !events.is_empty() {
                self.turns.push(TurnOutput {
                    at,
                    node: i,
                    from: self.slot.addr,
                    round,
                    sent,
                    events,
                });
            }
        }
        panic!("node {i} did not settle in {max_turns} turns of one window: it spins");
    }
}

impl VirtualNet {
    /// Run nodes' turns within lookahead windows on `threads` threads
    /// (0: sequential turns, the default). Windows need a link with a
    /// smallest delay above zero ([`LinkModel::min_delay`](super::LinkModel::min_delay));
    /// on another, runs stay sequential. See the module docs of `window`
    /// for what changes: only how often a `run_until` condition is checked.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads;
    }

    /// The end (exclusive) of a window starting now, if windows are on
    /// and the link allows one.
    pub(super) fn window_end(&self) -> Option<Instant> {
        let lookahead = self.link.min_delay();
        (self.threads > 0 && !lookahead.is_zero()).then(|| self.now + lookahead)
    }

    /// Steps 4, 5 and 1 of every turn before `end` (and at most at
    /// `deadline`), node by node; see the module docs.
    pub(super) fn run_window(&mut self, end: Instant, deadline: Instant) {
        let in_window = |at: Instant| at < end && at <= deadline;
        // What is due in the window, by node.
        let mut arrivals: Vec<(usize, Instant, SocketAddr, Vec<u8>)> = Vec::new();
        while let Some((at, to, from, data)) = self.pop_arrival(in_window) {
            arrivals.push((to, at, from, data));
        }
        // And the nodes whose current timeout is due in the window.
        let mut touched: Vec<usize> = arrivals.iter().map(|a| a.0).collect();
        self.pop_due_timeouts(in_window, &mut touched);
        // Stable: each node's arrivals stay in arrival order.
        arrivals.sort_by_key(|a| a.0);
        touched.sort_unstable();
        touched.dedup();

        let mut windows: Vec<NodeWindow<'_>> = Vec::with_capacity(touched.len());
        let mut arrivals = arrivals.into_iter().peekable();
        let mut wanted = touched.iter().copied().peekable();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if wanted.peek() != Some(&index) {
                continue;
            }
            wanted.next();
            let mut w = NodeWindow {
                index,
                slot: match slot {
                    Some(s) => s,
                    None => continue,
                },
                arrivals: VecDeque::new(),
                turns: Vec::new(),
                last: None,
                uses_threads: false,
            };
            while let Some((_, at, from, data)) = arrivals.next_if(|a| a.0 == index) {
                w.arrivals.push_back((at, from, data));
            }
            windows.push(w);
        }
        // Timeouts of removed nodes are simply dropped.

        let max_turns = self.max_turns;
        let threads = self.threads.min(windows.len() / MIN_NODES_FOR_THREADS);
        if threads <= 1 {
            let mut buf = std::mem::take(&mut self.buf);
            for w in &mut windows {
                w.run(end, deadline, max_turns, &mut buf);
            }
            self.buf = buf;
        } else {
            let queue = Mutex::new(windows.iter_mut());
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        let mut buf = Vec::with_capacity(64 * 1024);
                        loop {
                            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                            let Some(w) = next else { break };
                            w.run(end, deadline, max_turns, &mut buf);
                        }
                    });
                }
            });
        }

        // Put it all on the network, in sequential order.
        let mut turns: Vec<TurnOutput> = Vec::new();
        let mut last = self.now;
        for w in windows {
            let index = w.index;
            last = last.max(w.last.unwrap_or(last));
            if w.uses_threads && !self.uses_threads {
                self.uses_threads = true;
                warn!(
                    node = index,
                    "a node handed a stream to a thread: this run is no longer replayable"
                );
            }
            if let Some(t) = w.slot.timeout {
                self.timeouts.push(Reverse((t, index)));
            }
            turns.extend(w.turns);
        }
        turns.sort_by_key(|t| (t.at, t.round, t.node));
        let mut turns = turns.into_iter().peekable();
        while let Some(first) = turns.peek() {
            // One sequential turn: every node's flush at (at, round), then
            // the datagrams, as `flush` sends them.
            let (at, round) = (first.at, first.round);
            self.now = at;
            let since_start = at - self.start;
            let mut out = Vec::new();
            while let Some(turn) = turns.next_if(|t| (t.at, t.round) == (at, round)) {
                let from = turn.from;
                out.extend(turn.sent.into_iter().map(|(to, data)| (from, to, data)));
                for event in &turn.events {
                    self.hash_event(since_start, turn.node, event);
                }
            }
            for (from, to, data) in out {
                self.send(from, to, data);
            }
        }
        // The clock stands at the window's last turn, as after sequential
        // turns.
        self.now = last;
    }
}
