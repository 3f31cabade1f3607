//! A network of gossipsub routers wired to each other in memory, on a
//! virtual clock, with a seeded RNG: the router tests drive it directly.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use protocols::gossipsub::proto::Rpc;
use protocols::gossipsub::{
    GossipEvent, GossipsubConfig, PeerKind, Router, RpcReader, SigningPolicy,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use swarm::{Keypair, PeerId};

/// The test topic.
pub const TOPIC: &str = "test-topic";

/// The deterministic key for `i`.
pub fn keypair(i: usize) -> Keypair {
    let mut bytes = [7u8; 32];
    bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Keypair::ed25519_from_bytes(bytes).expect("32 bytes")
}

/// Decode the frames of a queue into RPCs.
pub fn decode(frame: &[u8]) -> Vec<Rpc> {
    let mut out = Vec::new();
    RpcReader::new(usize::MAX)
        .push(frame, &mut out)
        .expect("our own frames decode");
    out
}

/// Which frames a link loses: (from, to, rpc) -> drop?
pub type LossFn = Box<dyn FnMut(usize, usize, &Rpc) -> bool>;

/// Routers, their links, a clock and an RNG.
pub struct RouterNet {
    pub routers: Vec<Option<Router>>,
    pub ids: Vec<PeerId>,
    pub links: BTreeSet<(usize, usize)>,
    pub now: Instant,
    pub rng: StdRng,
    pub loss: Option<LossFn>,
    /// Events per router, drained from the routers after each delivery.
    pub events: Vec<Vec<GossipEvent>>,
    /// Nodes whose queues are not drained (stalled readers).
    pub stalled: BTreeSet<usize>,
}

impl RouterNet {
    /// `n` routers made by `config(i)`.
    pub fn new(n: usize, seed: u64, config: impl Fn(usize) -> GossipsubConfig) -> Self {
        let mut net = Self {
            routers: Vec::new(),
            ids: Vec::new(),
            links: BTreeSet::new(),
            now: Instant::now(),
            rng: StdRng::seed_from_u64(seed),
            loss: None,
            events: Vec::new(),
            stalled: BTreeSet::new(),
        };
        for i in 0..n {
            net.add(config(i));
        }
        net
    }

    /// Add a router; its index.
    pub fn add(&mut self, config: GossipsubConfig) -> usize {
        let i = self.routers.len();
        let id = match &config.keypair {
            Some(k) => k.public().to_peer_id(),
            None => keypair(i).public().to_peer_id(),
        };
        self.routers
            .push(Some(Router::new(config, id, (i as u64) << 32)));
        self.ids.push(id);
        self.events.push(Vec::new());
        i
    }

    /// Router `i`.
    pub fn r(&mut self, i: usize) -> &mut Router {
        self.routers[i].as_mut().expect("router present")
    }

    /// Connect `a` (dialer) and `b`, both speaking v1.2.
    pub fn connect(&mut self, a: usize, b: usize) {
        let (ia, ib) = (self.ids[a], self.ids[b]);
        self.r(a).add_peer(ib, true);
        self.r(a).set_peer_kind(ib, PeerKind::Gossipsub12);
        self.r(b).add_peer(ia, false);
        self.r(b).set_peer_kind(ia, PeerKind::Gossipsub12);
        self.links.insert((a.min(b), a.max(b)));
    }

    /// Disconnect `a` and `b`.
    pub fn disconnect(&mut self, a: usize, b: usize) {
        let (ia, ib) = (self.ids[a], self.ids[b]);
        if let Some(r) = self.routers[a].as_mut() {
            r.remove_peer(&ib);
        }
        if let Some(r) = self.routers[b].as_mut() {
            r.remove_peer(&ia);
        }
        self.links.remove(&(a.min(b), a.max(b)));
    }

    /// Remove node `n` and all its links.
    pub fn remove(&mut self, n: usize) {
        let peers: Vec<usize> = self
            .links
            .iter()
            .filter_map(|&(a, b)| {
                if a == n {
                    Some(b)
                } else if b == n {
                    Some(a)
                } else {
                    None
                }
            })
            .collect();
        for p in peers {
            self.disconnect(n, p);
        }
        self.routers[n] = None;
    }

    /// Subscribe `i` to the topic.
    pub fn subscribe(&mut self, i: usize) {
        let now = self.now;
        let mut rng = StdRng::seed_from_u64(self.rng_next());
        self.r(i).subscribe(TOPIC, now, &mut rng);
    }

    fn rng_next(&mut self) -> u64 {
        use rand::RngCore;
        self.rng.next_u64()
    }

    /// Index of a peer id.
    pub fn index(&self, id: &PeerId) -> usize {
        self.ids.iter().position(|p| p == id).expect("known peer")
    }

    /// Move every queued frame to its destination until all queues are
    /// empty (bounded rounds).
    pub fn deliver(&mut self) {
        for _round in 0..1000 {
            let mut moved = false;
            for from in 0..self.routers.len() {
                if self.routers[from].is_none() || self.stalled.contains(&from) {
                    continue;
                }
                let peers: Vec<PeerId> = self.r(from).peers().copied().collect();
                for to_id in peers {
                    let to = self.index(&to_id);
                    if self.stalled.contains(&to) {
                        continue;
                    }
                    while let Some(frame) = self.r(from).pop_frame(&to_id) {
                        moved = true;
                        for rpc in decode(&frame) {
                            if let Some(loss) = self.loss.as_mut()
                                && loss(from, to, &rpc)
                            {
                                continue;
                            }
                            let now = self.now;
                            let src = self.ids[from];
                            let mut rng = StdRng::seed_from_u64(self.rng_next());
                            if let Some(r) = self.routers[to].as_mut() {
                                r.handle_rpc(src, rpc, now, &mut rng);
                            }
                        }
                    }
                }
            }
            for i in 0..self.routers.len() {
                if let Some(r) = self.routers[i].as_mut() {
                    let ev = r.take_events();
                    self.events[i].extend(ev);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the router network did not settle");
    }

    /// Advance the clock by `d`, run every heartbeat, deliver.
    pub fn tick(&mut self, d: Duration) {
        self.now += d;
        for i in 0..self.routers.len() {
            let now = self.now;
            let mut rng = StdRng::seed_from_u64(self.rng_next());
            if let Some(r) = self.routers[i].as_mut() {
                r.heartbeat(now, &mut rng);
            }
        }
        self.deliver();
    }

    /// Publish from `i`.
    pub fn publish(
        &mut self,
        i: usize,
        data: &[u8],
    ) -> Result<protocols::gossipsub::MessageId, protocols::gossipsub::PublishError> {
        let now = self.now;
        let mut rng = StdRng::seed_from_u64(self.rng_next());
        self.r(i).publish(TOPIC, data.to_vec(), now, &mut rng)
    }

    /// Messages delivered to `i` so far (data).
    pub fn received(&self, i: usize) -> Vec<Vec<u8>> {
        self.events[i]
            .iter()
            .filter_map(|e| match e {
                GossipEvent::Message { message, .. } => Some(message.data.clone()),
                _ => None,
            })
            .collect()
    }
}

/// The default configuration for node `i` (StrictSign with its key).
pub fn signed(i: usize) -> GossipsubConfig {
    GossipsubConfig::new(keypair(i))
}

/// An unsigned configuration (cheap: no signatures), content ids.
pub fn unsigned(_i: usize) -> GossipsubConfig {
    let mut c = GossipsubConfig::new(keypair(0));
    c.keypair = None;
    c.signing = SigningPolicy::StrictNoSign;
    c.message_id_fn = std::sync::Arc::new(protocols::gossipsub::content_hash_id);
    c
}

/// A second.
pub const SEC: Duration = Duration::from_secs(1);
