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

    /// The smallest one-way delay any datagram can have: what lets nodes
    /// run a stretch of time that short apart (see
    /// [`VirtualNet::set_threads`](super::VirtualNet::set_threads)).
    /// Default zero: no such stretch.
    fn min_delay(&self) -> Duration {
        Duration::ZERO
    }
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
    /// Per pair of nodes, an extra fixed one-way delay in `[0, spread)`,
    /// drawn once per pair from the seed (the same both ways): a network
    /// whose nodes are near and far from each other.
    pub latency_spread: Duration,
    /// Each node's uplink in bytes per second: a datagram leaves only once
    /// those before it have (serialization delay). `None`: unlimited.
    pub bandwidth: Option<u64>,
    /// Bytes that may wait for a node's uplink; a datagram that would
    /// exceed it is dropped, as a router's queue drops. Default 64 KiB.
    pub queue: usize,
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
            latency_spread: Duration::ZERO,
            bandwidth: None,
            queue: 64 * 1024,
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
    /// When each sender's uplink is free again (with a bandwidth limit).
    uplink_free: HashMap<usize, Instant>,
    seed: u64,
}

impl LossyLink {
    /// A link doing what `config` says, with randomness from `seed`.
    pub fn new(config: LinkConfig, seed: u64) -> Self {
        Self {
            config,
            rng: StdRng::seed_from_u64(seed),
            burst_left: HashMap::new(),
            uplink_free: HashMap::new(),
            seed,
        }
    }

    /// The pair's fixed extra delay: a hash of the seed and the unordered
    /// pair, so it costs no draw from the RNG and is the same both ways.
    fn pair_delay(&self, a: usize, b: usize) -> Duration {
        if self.config.latency_spread.is_zero() {
            return Duration::ZERO;
        }
        let (lo, hi) = (a.min(b) as u64, a.max(b) as u64);
        // splitmix64 over the seed and the pair.
        let mut z = self.seed ^ lo.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ hi.rotate_left(32);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
        self.config.latency_spread.mul_f64(unit)
    }
}

impl LinkModel for LossyLink {
    fn min_delay(&self) -> Duration {
        // Spread, jitter and the uplink only ever add to it.
        self.config.latency
    }

    fn carry(
        &mut self,
        now: Instant,
        from: usize,
        to: usize,
        mut data: Vec<u8>,
        deliver: &mut Vec<(Duration, Vec<u8>)>,
        stats: &mut LinkStats,
    ) {
        // The uplink first: a datagram that finds the queue full is dropped
        // before anything else happens to it.
        let mut departs = Duration::ZERO;
        if let Some(rate) = self.config.bandwidth.filter(|r| *r > 0) {
            let free = self.uplink_free.entry(from).or_insert(now);
            let waiting = free.saturating_duration_since(now);
            if waiting.as_secs_f64() * rate as f64 + data.len() as f64 > self.config.queue as f64 {
                stats.queue_dropped += 1;
                return;
            }
            let serialize = Duration::from_secs_f64(data.len() as f64 / rate as f64);
            *free = (*free).max(now) + serialize;
            departs = *free - now;
        }
        let base = self.config.latency + self.pair_delay(from, to) + departs;
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
            deliver.push((base + jitter, payload));
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
    /// Dropped because the sender's uplink queue was full.
    pub queue_dropped: u64,
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
