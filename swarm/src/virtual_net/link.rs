//! The link between nodes of a [`VirtualNet`](super::VirtualNet): what
//! happens to each datagram (loss, bursts, duplication, corruption,
//! latency and jitter), decided by a seeded RNG, and the counters.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Decides what happens to each datagram on the link between two nodes.
pub trait LinkModel {
    /// Carry one datagram that node `from` sent to node `to` at `now`: push
    /// each copy to deliver onto `deliver`, with its one-way delay (none:
    /// the datagram is lost). Count what was done in `stats` (`dropped`,
    /// `duplicated`, `corrupted`; the network counts the rest).
    fn carry(
        &mut self,
        now: Instant,
        from: usize,
        to: usize,
        data: Vec<u8>,
        deliver: &mut Vec<(Duration, Vec<u8>)>,
        stats: &mut LinkStats,
    );
}

/// What a [`LossyLink`] does to each datagram, the same in both directions
/// between every pair of nodes.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// Probability that a datagram starts a loss event.
    pub loss: f64,
    /// Datagrams dropped per loss event (the first one included), on the
    /// same direction of the same pair of nodes. 1 means independent loss.
    pub burst: u32,
    /// Probability that a delivered datagram is delivered twice (the copy
    /// with its own delay).
    pub duplicate: f64,
    /// Probability that a delivered datagram has one byte flipped.
    pub corrupt: f64,
    /// One-way delay.
    pub latency: Duration,
    /// Extra random delay in `[0, jitter)`: reorders datagrams.
    pub jitter: Duration,
}

impl LinkConfig {
    /// No loss, 5 ms each way, no jitter.
    pub fn clean() -> Self {
        Self {
            loss: 0.0,
            burst: 1,
            duplicate: 0.0,
            corrupt: 0.0,
            latency: Duration::from_millis(5),
            jitter: Duration::ZERO,
        }
    }
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self::clean()
    }
}

/// The default [`LinkModel`]: loss in bursts, duplication, corruption, a
/// fixed delay and jitter, as a [`LinkConfig`] says, from a seeded RNG.
pub struct LossyLink {
    /// What the link does; may be changed between runs.
    pub config: LinkConfig,
    rng: StdRng,
    /// Datagrams still to drop in the current loss event, per direction.
    burst_left: HashMap<(usize, usize), u32>,
}

impl LossyLink {
    /// A link doing what `config` says, with randomness from `seed`.
    pub fn new(config: LinkConfig, seed: u64) -> Self {
        Self {
            config,
            rng: StdRng::seed_from_u64(seed),
            burst_left: HashMap::new(),
        }
    }
}

impl LinkModel for LossyLink {
    fn carry(
        &mut self,
        _now: Instant,
        from: usize,
        to: usize,
        mut data: Vec<u8>,
        deliver: &mut Vec<(Duration, Vec<u8>)>,
        stats: &mut LinkStats,
    ) {
        let link = &self.config;
        // The RNG is drawn from only for what is switched on, so that a
        // clean link uses no randomness and adding one impairment does not
        // reshuffle the others' draws more than it must.
        let left = self.burst_left.entry((from, to)).or_insert(0);
        if *left > 0 {
            *left -= 1;
            stats.dropped += 1;
            return;
        }
        if link.loss > 0.0 && self.rng.random::<f64>() < link.loss {
            *left = link.burst.saturating_sub(1);
            stats.dropped += 1;
            return;
        }
        if link.corrupt > 0.0 && self.rng.random::<f64>() < link.corrupt && !data.is_empty() {
            let at = self.rng.random_range(0..data.len());
            let flip = self.rng.random_range(1..=255u8);
            data[at] ^= flip;
            stats.corrupted += 1;
        }
        let copies = if link.duplicate > 0.0 && self.rng.random::<f64>() < link.duplicate {
            stats.duplicated += 1;
            2
        } else {
            1
        };
        for copy in 0..copies {
            let jitter = if link.jitter.is_zero() {
                Duration::ZERO
            } else {
                link.jitter.mul_f64(self.rng.random::<f64>())
            };
            let payload = if copy + 1 == copies {
                std::mem::take(&mut data)
            } else {
                data.clone()
            };
            deliver.push((link.latency + jitter, payload));
        }
    }
}

/// Counters of what the network did with datagrams.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinkStats {
    /// Datagrams nodes sent.
    pub sent: u64,
    /// Lost by the link model.
    pub dropped: u64,
    /// Lost to a partition ([`VirtualNet::isolate`](super::VirtualNet::isolate)).
    pub partitioned: u64,
    /// Refused by [`VirtualNet::filter`](super::VirtualNet::filter).
    pub filtered: u64,
    /// Lost while [`VirtualNet::dark`](super::VirtualNet::dark) was set.
    pub dark: u64,
    /// Delivered twice by the link model.
    pub duplicated: u64,
    /// Had a byte flipped by the link model.
    pub corrupted: u64,
    /// Fed to a node (each copy counts).
    pub delivered: u64,
    /// Sent to an address where no node is.
    pub unroutable: u64,
    /// Bytes fed to nodes.
    pub bytes_delivered: u64,
}
